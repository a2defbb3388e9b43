"""``vidrestore`` command line: subcommands parse arguments and call the library.

    vidrestore corpus OUT_DIR              build the demo training corpus (Debian packages with photos)
    vidrestore degrade IN OUT --seed N     write a reproducible degraded/clean paired set
    vidrestore train [--set key=value]     train the generator (torchrun for several processes)
    vidrestore restore INPUT... -o OUT     restore images and videos (files, globs, folders)
    vidrestore quality label|train|predict make a labelled set, train, or run the quality classifier
    vidrestore curate IN_DIR OUT_DIR       keep large, content-rich, good-quality images (+ manifest)
    vidrestore bench [--quick]             public benchmark report: quality and speed vs baselines
    vidrestore info                        versions, device, default model

Errors vidrestore raises on purpose are printed as one line (no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from vidrestore.errors import VidrestoreError
from vidrestore.io.listing import VIDEO_ENCODERS

__all__ = ["main"]


def _add_common_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="generator weights (.safetensors); default: the shipped model")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--precision", default="auto", help="auto, bf16, fp16, fp32 (default auto)")
    parser.add_argument("--tile", type=int, default=768, help="tile size in pixels, 0 = whole frame (default 768)")
    parser.add_argument("--tile-overlap", type=int, default=32, help="tile overlap in pixels (default 32)")
    parser.add_argument("--batch-size", type=int, default=2, help="tiles per forward pass (default 2)")


def _cmd_corpus(args: argparse.Namespace) -> int:
    from vidrestore.corpus import DEFAULT_PACKAGES, build_corpus

    entries = build_corpus(
        args.out_dir,
        packages=tuple(args.package or DEFAULT_PACKAGES),
        debs=[Path(d) for d in args.deb] if args.deb else None,
        val_fraction=args.val_fraction,
    )
    train = sum(e.split == "train" for e in entries)
    print(f"{len(entries)} images ({train} train, {len(entries) - train} val) in {args.out_dir}")
    return 0


def _degrade_config(args: argparse.Namespace):
    from vidrestore.degrade import DegradeConfig
    from vidrestore.train.config import apply_overrides, read_json_object

    config = DegradeConfig.from_dict(read_json_object(args.config)) if args.config else DegradeConfig()
    return apply_overrides(config, args.set or [])


def _cmd_degrade(args: argparse.Namespace) -> int:
    from vidrestore.pairs import write_pairs

    counts = write_pairs(
        args.input, args.output, seed=args.seed, variants=args.variants, config=_degrade_config(args), jobs=args.jobs
    )
    left_alone = f", left alone (no video stream) {counts['left_alone']}" if counts.get("left_alone") else ""
    print(f"degraded {counts['done']}, already done {counts['skipped']}{left_alone}, failed {counts['failed']} "
          f"-> {args.output}")
    return 1 if counts["failed"] else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vidrestore.train.config import TrainConfig, apply_overrides
    from vidrestore.train.loop import train

    if args.resume and not args.config:
        config_path = Path(args.out or TrainConfig().out_dir) / "config.json"
        config = TrainConfig.load(config_path) if config_path.is_file() else TrainConfig()
        # A run saved before stop_after stopped being stored would stop again one step on.
        config = dataclasses.replace(config, stop_after=0)
    else:
        config = TrainConfig.load(args.config) if args.config else TrainConfig()
    shorthand = {"train_data": args.train_data, "val_data": args.val_data, "out_dir": args.out, "steps": args.steps}
    overrides = [f"{k}={v}" for k, v in shorthand.items() if v is not None] + (args.set or [])
    config = apply_overrides(config, overrides)
    summary = train(config, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":  # one summary per run, also under torchrun
        print(json.dumps(summary))
    # A planned stop (stop_after) is a success; Ctrl-C/SIGTERM is the shell's 130 (both resume alike).
    return 130 if summary["stopped_by"] == "signal" else 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from vidrestore.engine import Restorer
    from vidrestore.restore import restore_paths

    restorer = Restorer(
        args.model,
        device=args.device,
        precision=args.precision,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        batch_size=args.batch_size,
        strength=args.strength,
        # None: the Restorer's own default (the parser stays torch-free, so it cannot import it).
        **({} if args.correction_floor is None else {"correction_floor": args.correction_floor}),
    )
    report = restore_paths(
        args.inputs,
        args.output,
        restorer,
        skip_existing=args.skip_existing,
        video_options={"codec": args.codec, "crf": args.crf, "preset": args.preset, "chroma": args.chroma,
                       "temporal": not args.no_temporal,
                       "temporal_strength": args.temporal_strength, "temporal_radius": args.temporal_radius,
                       "segment_frames": args.segment_frames, "resume": not args.no_resume,
                       "deinterlace": args.deinterlace},
    )
    for path, reason in report.incomplete:
        print(f"incomplete: {path}: {reason}; restored what could be decoded", file=sys.stderr)
    for path, reason in report.failed:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    incomplete = f" ({len(report.incomplete)} incomplete)" if report.incomplete else ""
    print(f"restored {len(report.done)}{incomplete}, skipped {len(report.skipped)}, failed {len(report.failed)}")
    return 1 if report.failed or report.incomplete else 0


def _cmd_quality_label(args: argparse.Namespace) -> int:
    from vidrestore.quality import label_folder

    counts = label_folder(args.clean_dir, args.out_dir, crops_per_image=args.crops_per_image, crop_size=args.crop_size,
                          scale_range=args.scale_range, seed=args.seed, jobs=args.jobs)
    print(f"{counts['samples']} samples written, {counts['skipped']} photos already done, {counts['too_small']} "
          f"smaller than a {args.crop_size}² crop (skipped), {counts['failed']} failed -> {args.out_dir}")
    return 1 if counts["failed"] else 0


def _cmd_quality_train(args: argparse.Namespace) -> int:
    from vidrestore.quality import QualityTrainConfig, train_quality
    from vidrestore.train.config import apply_overrides

    saved = Path(args.out or QualityTrainConfig().out_dir) / "config.json"
    source = args.config or (saved if args.resume and saved.is_file() else None)
    config = QualityTrainConfig.load(source) if source else QualityTrainConfig()
    shorthand = {"train_data": args.train_data, "val_data": args.val_data, "out_dir": args.out, "epochs": args.epochs}
    overrides = [f"{k}={v}" for k, v in shorthand.items() if v is not None] + (args.set or [])
    summary = train_quality(apply_overrides(config, overrides), resume=args.resume)
    print(json.dumps(summary))
    return 130 if summary["stopped_by"] == "signal" else 0


def _cmd_quality_predict(args: argparse.Namespace) -> int:
    from vidrestore.device import resolve_device
    from vidrestore.quality import QualityModel, format_results, predict_paths

    for name in args.inputs:  # before the table's header is printed
        if not Path(name).exists():
            raise FileNotFoundError(f"{name}: no such file or folder")
    model = QualityModel(args.model, crop_count=args.crops, device=str(resolve_device(args.device)))
    failed: list[str] = []

    def readable():
        for path, result in predict_paths(args.inputs, model, frames=args.frames):
            if isinstance(result, str):
                failed.append(result)
                print(f"failed: {result}", file=sys.stderr)
            else:
                yield path, result

    judged = 0
    for line in format_results(readable(), args.format):
        print(line, flush=True)
        judged += 1
    if judged <= (args.format != "jsonl") and not failed:  # a header and no rows
        print(f"vidrestore quality: error: no images or videos in {' '.join(args.inputs)}", file=sys.stderr)
        return 2
    return 1 if failed else 0


def _cmd_curate(args: argparse.Namespace) -> int:
    from vidrestore.curate import CurateConfig, curate

    config = CurateConfig(min_size=args.min_size, min_background=args.min_background, min_class=args.min_class,
                          model=args.model, crop_count=args.crops, link=args.link)
    counts = curate(args.in_dir, args.out_dir, config, jobs=args.jobs)
    reasons = ", ".join(f"{k} {counts[k]}" for k in ("too_small", "flat_background", "low_quality", "unreadable"))
    print(f"kept {counts['kept']}, rejected {counts['rejected']} ({reasons}), already in the manifest "
          f"{counts['skipped']} -> {Path(args.out_dir) / 'manifest.csv'}")
    if counts["videos"]:
        print(f"videos left out: {counts['videos']} (curate judges photos only)")
    return 0


def _pair(text: str) -> tuple[float, float]:
    """An argparse type: ``LOW,HIGH``, two numbers."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers LOW,HIGH, got {text!r}") from None
    return low, high


def _ranged(kind: type, low: float, high: float | None = None):
    """An argparse type: ``kind`` within [low, high] (no upper bound when ``high`` is None)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not (low <= value and (high is None or value <= high)):
            shown = str if kind is int else (lambda number: f"{number:g}")
            span = f"{shown(low)}..{shown(high)}" if high is not None else f">= {shown(low)}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value
    return parse


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")


def _frame_size(text: str) -> tuple[int, int]:
    """``WxH`` → ``(W, H)``, for argparse."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x180, got {text!r}")
    return int(width), int(height)


def _cmd_bench(args: argparse.Namespace) -> int:
    from vidrestore.bench import BenchConfig, run_bench, summary, write_report
    from vidrestore.bench.report import prepare_out

    engine = {"device": args.device, "precision": args.precision, "tile": args.tile,
              "tile_overlap": args.tile_overlap, "batch_size": args.batch_size}
    config = BenchConfig.quick() if args.quick else BenchConfig()
    width, height = args.clip_size or (None, None)
    overrides = {"photos": args.photos, "crops": args.crops, "crop_size": args.crop_size, "clips": args.clips,
                 "clip_frames": args.frames, "clip_width": width, "clip_height": height, "model": args.model}
    config = dataclasses.replace(config, engine=engine, **{k: v for k, v in overrides.items() if v is not None})
    logging.getLogger("vidrestore.bench").setLevel(logging.INFO)  # progress: the full run takes minutes
    prepare_out(args.out)  # a bad --out fails now, not after the whole benchmark
    result = run_bench(config)
    report = write_report(result, args.out, command="vidrestore " + shlex.join(args.argv))
    print(summary(result))
    print(f"report: {report}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:  # noqa: ARG001
    import av
    import cv2
    import numpy
    import torch

    from vidrestore import __version__
    from vidrestore.device import resolve_device, resolve_precision
    from vidrestore.weights import default_model_path

    device = resolve_device("auto")
    print(f"vidrestore {__version__}; torch {torch.__version__}; av {av.__version__}; opencv {cv2.__version__}; numpy {numpy.__version__}")
    print(f"device {device}, precision {resolve_precision('auto', device)}, threads {torch.get_num_threads()}")
    model = default_model_path()
    print(f"default model: {model} ({'present' if model.is_file() else 'missing'})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidrestore", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("corpus", help="build the demo training corpus from Debian packages with photos")
    p.add_argument("out_dir")
    p.add_argument("--package", action="append", help="Debian package (repeatable); default: the two wallpaper packages, gcompris-qt-data, python3-skimage")
    p.add_argument("--deb", action="append", help="use this downloaded .deb instead of apt-get download (repeatable)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of pictures for validation (default 0.2)")
    p.set_defaults(func=_cmd_corpus)

    p = sub.add_parser(
        "degrade", help="write a reproducible degraded/clean paired set with a JSONL manifest",
        description="Write a reproducible degraded/clean paired set. Running the same command again resumes: "
                    "what the manifest lists is skipped. OUTPUT must be a new folder, or one made with the same "
                    "--seed, --config and --set: other settings are refused rather than mixed with the old pairs "
                    "(write to another folder, or delete OUTPUT to start over).")
    p.add_argument("input", help="image/video file or folder (recursive)")
    p.add_argument("output", help="output folder (degraded/, clean/, manifest.jsonl); not INPUT or inside it")
    p.add_argument("--seed", type=_ranged(int, 0, 2**63 - 1), default=0,
                   help="seed of the degradations drawn (default 0; the same seed gives the same pairs)")
    p.add_argument("--variants", type=int, default=1, help="degraded copies per file (default 1)")
    p.add_argument("--jobs", type=_ranged(int, 0), default=0, help="worker processes (default 0: all cores)")
    p.add_argument("--config", help="degradation config JSON (DegradeConfig fields)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. noise.probability=0.9")
    p.set_defaults(func=_cmd_degrade)

    p = sub.add_parser("train", help="train the generator (discriminator pretraining, then joint L1 + GAN)")
    p.add_argument("--config", help="TrainConfig JSON (a run's config.json)")
    p.add_argument("--train-data", help="folder of images/videos to train on (default data/corpus/train)")
    p.add_argument("--val-data", help="held-out folder for validation (default data/corpus/val)")
    p.add_argument("--out", help="run folder (checkpoints, weights, metrics, TensorBoard; default runs/default)")
    p.add_argument("--steps", type=int, help="joint L1 + GAN steps, after the g_pretrain_steps L1 steps and the "
                                             "d_pretrain_steps discriminator steps (default 20000; --set those two)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config field, e.g. batch_size=8")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("restore", help="restore images and videos")
    p.add_argument("inputs", nargs="+", help="files, globs or folders (recursive)")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder (mirrored tree)")
    p.add_argument("--skip-existing", action="store_true", help="leave outputs that already exist")
    _add_common_device(p)
    p.add_argument("--strength", type=float, default=1.0,
                   help="0..1: how much of the model's correction to apply (default 1; lower for nearly good footage)")
    p.add_argument("--correction-floor", type=float, default=None,
                   help="8-bit levels: frames the model changes by about this much (RMS) are left nearly alone, "
                        "larger corrections shrink a little (default 1; 0 = apply the model's output as is)")
    p.add_argument("--codec", default="libx264", type=str.lower, choices=tuple(VIDEO_ENCODERS),
                   metavar="CODEC", help="video codec: libx264 (or h264), libx265 (or h265, hevc), ffv1 (default libx264)")
    p.add_argument("--crf", type=_ranged(float, 0, 51), default=18, help="video quality 0..51, lower is better (default 18)")
    p.add_argument("--preset", default="medium", choices=_X26X_PRESETS, help="x264/x265 preset (default medium)")
    p.add_argument("--chroma", default="420", choices=("420", "422", "444", "source"),
                   help="video chroma subsampling (x264/x265): 420 plays everywhere (default); source keeps a "
                        "4:2:2/4:4:4 source's")
    p.add_argument("--deinterlace", action="store_true",
                   help="video: make interlaced frames (DV, DVD, broadcast) progressive with bwdif before restoring; "
                        "written progressive (default: restored as whole frames and written interlaced)")
    p.add_argument("--no-temporal", action="store_true", help="video: no temporal consistency stage")
    p.add_argument("--temporal-strength", type=_ranged(float, 0.0, 1.0), default=1.0, help="video: 0..1 (default 1)")
    p.add_argument("--temporal-radius", type=_ranged(int, 0), default=2, help="video: neighbours each side (default 2)")
    p.add_argument("--segment-frames", type=_ranged(int, 1), default=250,
                   help="video: frames per resumable segment (default 250; a crash loses at most one)")
    p.add_argument("--no-resume", action="store_true",
                   help="video: discard the finished segments of an interrupted run instead of continuing it")
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser("quality", help="quality classifier: label a set, train, predict poor/medium/good")
    qsub = p.add_subparsers(dest="quality_command", required=True)
    q = qsub.add_parser("label", help="turn clean photos into a poor/medium/good labelled set (labels.csv)")
    q.add_argument("clean_dir")
    q.add_argument("out_dir")
    q.add_argument("--crops-per-image", type=_ranged(int, 1), default=24,
                   help="crops per photo, each written once per class (default 24)")
    q.add_argument("--crop-size", type=_ranged(int, 16), default=256, help="crop side in pixels (default 256)")
    q.add_argument("--scale-range", type=_pair, default=(0.5, 1.0),
                   help="area downscale of the photo before cropping, LOW,HIGH (default 0.5,1.0)")
    q.add_argument("--seed", type=_ranged(int, 0, 2**63 - 1), default=0, help="seed of the crops and degradations (default 0)")
    q.add_argument("--jobs", type=_ranged(int, 0), default=0, help="worker processes (default 0: all cores)")
    q.set_defaults(func=_cmd_quality_label)
    q = qsub.add_parser("train", help="train the classifier (cross-entropy, early stopping, resumable)")
    q.add_argument("--config", help="QualityTrainConfig JSON (a run's config.json)")
    q.add_argument("--train-data", help="labelled folder (poor/ medium/ good/ or labels.csv) or CSV of path,label")
    q.add_argument("--val-data", help="labelled validation set; \"\" = hold out photos of the training set")
    q.add_argument("--out", help="run folder (config.json, checkpoint.pt, metrics.jsonl, quality.safetensors)")
    q.add_argument("--epochs", type=int, help="epochs to train (default: the config's, 30)")
    q.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. net.stage_channels=16,32")
    q.set_defaults(func=_cmd_quality_train)
    q = qsub.add_parser("predict", help="class, probabilities and score of images and videos")
    q.add_argument("inputs", nargs="+", help="image/video files or folders (recursive)")
    q.add_argument("--model", help="quality model (.safetensors); default: vidrestore/weights/quality-v1.safetensors")
    q.add_argument("--format", choices=("table", "csv", "jsonl"), default="table", help="output format (default table)")
    q.add_argument("--frames", type=_ranged(int, 1), default=8, help="video: evenly spaced frames judged (default 8)")
    q.add_argument("--crops", type=_ranged(int, 1), help="crops pooled per image (default: the model's)")
    q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    q.set_defaults(func=_cmd_quality_predict)

    p = sub.add_parser("curate", help="keep images >= min size with background content and good quality")
    p.add_argument("in_dir")
    p.add_argument("out_dir", help="kept images (same relative paths) and manifest.csv")
    p.add_argument("--min-size", type=int, default=500, help="both sides at least this (default 500)")
    p.add_argument("--min-background", type=float, default=0.2, help="background score threshold (default 0.2)")
    p.add_argument("--min-class", choices=("poor", "medium", "good"), default="good",
                   help="lowest quality class kept (default good; poor = no quality check, no model needed)")
    p.add_argument("--model", help="quality model (.safetensors); default: the shipped one")
    p.add_argument("--crops", type=_ranged(int, 1), help="crops pooled per image (default: the model's)")
    p.add_argument("--link", action="store_true", help="hard-link kept files instead of copying")
    p.add_argument("--jobs", type=_ranged(int, 0), default=0, help="worker processes (default 0: all cores)")
    p.set_defaults(func=_cmd_curate)

    p = sub.add_parser("bench", help="benchmark report: PSNR/SSIM, warping error and speed against baselines")
    p.add_argument("--photos", help="folder of clean photos and/or videos (default data/curated/val, else data/corpus/val)")
    p.add_argument("--out", default="docs/bench",
                   help="report folder: report.md, results.json, plots (default docs/bench)")
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration (seconds), for tests")
    p.add_argument("--crops", type=int, help="image crops (default 16; --quick 2)")
    p.add_argument("--crop-size", type=int, help="crop side in pixels (default 256; --quick 64)")
    p.add_argument("--clips", type=int, help="panning clips (default 3; --quick 1)")
    p.add_argument("--frames", type=int, help="frames per clip (default 16; --quick 3)")
    p.add_argument("--clip-size", type=_frame_size, metavar="WxH",
                   help="clip frame size, even (default 320x180; --quick 64x48)")
    _add_common_device(p)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("info", help="versions, device and default model")
    p.set_defaults(func=_cmd_info)
    return parser


_FILE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST,
                          errno.ENOTDIR, errno.EISDIR, errno.ENOENT})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the exact command, for outputs that say how to regenerate them
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "jobs", None) == 0:
        args.jobs = None
    from tqdm.contrib.logging import logging_redirect_tqdm

    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) != signal.SIG_IGN:
        # A scheduler, `timeout` or `kill` stops a job with SIGTERM: stop as Ctrl-C does (temporary
        # files removed, finished video segments kept for the next run, a training run saved —
        # the trainers take over both signals while they run), not mid-write.
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        # Warnings go above the progress bars, not into the middle of a bar's line.
        with logging_redirect_tqdm():
            return int(args.func(args) or 0)
    except (VidrestoreError, ValueError, FileNotFoundError) as exc:
        print(f"vidrestore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader is gone, which is no error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        # An output that cannot be made or written: a file where a folder goes, no permission, a
        # full disk. What was written before is intact (every write is atomic). Others keep
        # their traceback.
        if not (exc.filename or exc.errno in _FILE_ERRNOS):
            raise
        name = exc.filename2 or exc.filename  # a rename's target, not its temporary source
        where = f"{name}: " if name and str(name) not in (exc.strerror or "") else ""
        print(f"vidrestore {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so the same clean-up runs."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


if __name__ == "__main__":
    sys.exit(main())
