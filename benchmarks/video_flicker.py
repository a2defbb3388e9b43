"""Flicker and quality of video restoration, with and without the temporal stage.

    .venv/bin/python benchmarks/video_flicker.py [--model PATH] [--clips 3] [--frames 24]

Builds clean clips — the middle frames of each clean video in ``--photos`` (filmed footage,
scaled down to cover the clip size, 640×360 unless ``--size``, and centre cropped), then slow camera
pans over the photos — degrades
every frame independently (blur, noise with a fresh seed per frame, JPEG), re-encodes the clip
with H.264 at a low bitrate (CRF 32), then restores it. Prints per method: mean PSNR/SSIM
against the clean clip, warping error (MSE ×10⁻³ between output t and output t−1 warped by the
clean clip's optical flow, non-occluded pixels), flicker (same in mean absolute 8-bit levels)
and tOF. Methods: degraded input; OpenCV ``fastNlMeansDenoisingColoredMulti`` (5-frame window);
vidrestore per frame; vidrestore with the temporal stage; and through VapourSynth on the clip as
YUV420P8 (what a decoded video is): the YUV input itself, MVTools ``Degrain2`` and the
``vidrestore_vs`` filter. Then frames/s of
``vidrestore.video.restore_video`` end to end (decode → restore → temporal → x264 encode) on a
clip of that size, on this machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run, ROOT, add_photos_option, photo_paths  # noqa: E402

from vidrestore.bench.measure import scores  # noqa: E402
from vidrestore.bench.methods import degrain2, nlm_multi, restore_clip, vs_clip, vs_frames  # noqa: E402
from vidrestore.bench.testset import clean_clip, clip_sources  # noqa: E402
from vidrestore.degrade import apply_plan_clip  # noqa: E402
from vidrestore.degrade.sample import H264, GaussianBlur, GaussianNoise, Jpeg, Plan  # noqa: E402
from vidrestore.engine import Restorer  # noqa: E402
from vidrestore.io import VideoWriter, from_float  # noqa: E402
from vidrestore.metrics import temporal_flow_error, warping_errors  # noqa: E402
from vidrestore.temporal import TemporalConfig  # noqa: E402
from vidrestore.video import restore_video  # noqa: E402


def degrade_clip(clean: list[np.ndarray], seed: int) -> list[np.ndarray]:
    plan = Plan(
        ops=(GaussianBlur(kernel_size=5, sigma=1.0), GaussianNoise(mean=0.0, sigma=0.04, gray=False, seed=seed),
             Jpeg(quality=70), H264(crf=32, preset="medium")),
        seed=seed,
    )
    return apply_plan_clip(clean, plan)


def vidrestore_vs(frames: list[np.ndarray], restorer: Restorer) -> list[np.ndarray]:
    sys.path.insert(0, str(ROOT / "plugins"))
    import vidrestore_vs as vr

    return vs_frames(vr.restore(vs_clip(frames), restorer=restorer))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    add_photos_option(parser)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--fps-frames", type=int, default=48)
    parser.add_argument("--size", default="640x360", help="clip frame size WxH, even (default 640x360)")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WxH, got {args.size!r}")
    if width < 16 or height < 16 or width % 2 or height % 2:
        parser.error(f"--size must be even sides of at least 16 (YUV 4:2:0 for VapourSynth), got {args.size}")

    restorer = Restorer(args.model)
    paths, cleans = [], []
    for path in clip_sources(photo_paths(args.photos)):
        if len(paths) == args.clips:
            break
        clip = clean_clip(path, frames=args.frames, width=width, height=height, seed=100 + len(paths))
        if clip is not None:
            paths.append(path)
            cleans.append(clip)
    if not paths:
        sys.exit(f"video_flicker: no photo or video of at least {width}×{height} (videos: {args.frames} frames) in the "
                 "sources; --size picks a smaller clip")
    table: dict[str, dict[str, list[float]]] = {}

    def add(name: str, outputs: list[np.ndarray], clean: list[np.ndarray]) -> None:
        row = table.setdefault(name, {"psnr": [], "ssim": [], "warp": [], "flicker": [], "tof": []})
        pairs = [scores(o, c) for o, c in zip(outputs, clean)]
        row["psnr"].append(float(np.mean([p[0] for p in pairs])))
        row["ssim"].append(float(np.mean([p[1] for p in pairs])))
        errors = warping_errors(outputs, clean)
        row["warp"].append(float(np.mean(errors)) * 1e3)
        row["flicker"].append(float(np.mean([np.sqrt(e) for e in errors])) * 255.0)
        row["tof"].append(temporal_flow_error(outputs, clean))

    for index, (path, clean) in enumerate(zip(paths, cleans)):
        degraded = degrade_clip(clean, seed=500 + index)
        # The clean clip's own warping error (the resampled pan is not error-free): the level a
        # faithful restoration has. Below it is smoothing, not a better result — a constant grey
        # clip scores 0.
        add("clean clip (reference)", clean, clean)
        add("degraded input", degraded, clean)
        add("OpenCV NLM multi (5 frames)", nlm_multi(degraded), clean)
        per_frame, _ = restore_clip(degraded, restorer, None)
        add("vidrestore, per frame", per_frame, clean)
        fused, report = restore_clip(degraded, restorer, TemporalConfig())
        add("vidrestore + temporal", fused, clean)
        add("YUV420P8 input (VapourSynth)", vs_frames(vs_clip(degraded)), clean)
        add("MVTools Degrain2 (VapourSynth)", degrain2(degraded), clean)
        add("vidrestore via VapourSynth", vidrestore_vs(degraded, restorer), clean)
        print(f"clip {index} ({path.name}): in-pipeline flicker check {report.flicker:.2f} levels, spikes {report.spikes}")

    lines = [
        f"{len(paths)} clips × {args.frames} frames, {width}×{height} ({', '.join(p.name for p in paths)}: a video's middle "
        "frames, a slow pan over a photo); per-frame blur + noise σ 0.04 + JPEG 70, then H.264 CRF 32.",
        "Warping error: MSE ×10⁻³ between output t and output t−1 warped by the clean clip's flow (non-occluded pixels);",
        "flicker: its root, in 8-bit levels; tOF: motion difference to the clean clip (px). Lower is not always",
        "better: the clean clip's own row is what a faithful restoration has; below it is smoothing (a constant clip: 0).",
        "",
        "| method | PSNR (dB) | SSIM | warping error | flicker | tOF |",
        "|---|---|---|---|---|---|",
    ]
    means = {name: {k: float(np.mean(v)) for k, v in row.items()} for name, row in table.items()}
    for name, m in means.items():
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['warp']:.3f} | {m['flicker']:.2f} | {m['tof']:.3f} |")
    with_t, without = means["vidrestore + temporal"], means["vidrestore, per frame"]
    lines += [
        "",
        f"temporal stage: warping error {100 * (1 - with_t['warp'] / without['warp']):.1f} % lower than per frame "
        f"({with_t['warp']:.3f} vs {without['warp']:.3f}); degraded input {means['degraded input']['warp']:.3f}; "
        f"PSNR change {with_t['psnr'] - without['psnr']:+.2f} dB",
        f"VapourSynth (YUV420P8 in/out): vidrestore PSNR {means['vidrestore via VapourSynth']['psnr']:.2f} dB, warping "
        f"error {means['vidrestore via VapourSynth']['warp']:.3f}; Degrain2 {means['MVTools Degrain2 (VapourSynth)']['psnr']:.2f} dB, "
        f"{means['MVTools Degrain2 (VapourSynth)']['warp']:.3f}",
    ]

    # End-to-end speed: decode → restore → temporal → encode, at the clip size (a video shorter than
    # fps_frames is played forth and back).
    clean = clean_clip(paths[0], frames=args.fps_frames, width=width, height=height, seed=7)
    if clean is None:
        clean = ((cleans[0] + cleans[0][::-1]) * args.fps_frames)[: args.fps_frames]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.mp4"
        with VideoWriter(source, width=width, height=height, fps=Fraction(24), codec="libx264", crf=23,
                         preset="veryfast") as writer:
            for frame in degrade_clip(clean, seed=9):
                writer.write(from_float(frame, np.uint8))
        restore_video(source, Path(tmp) / "warm.mp4", restorer, progress=False)  # warm-up
        report = restore_video(source, Path(tmp) / "out.mp4", restorer, preset="veryfast", progress=False)
    lines.append(f"end to end (decode → restore → temporal → x264 veryfast), {width}×{height}: {report.fps:.2f} frames/s "
                 f"({report.frames} frames in {report.seconds:.1f} s), engine {restorer.info['device']} {restorer.info['dtype']}")
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "video_flicker.md").write_text("# Video flicker benchmark\n\nRegenerate: `.venv/bin/python benchmarks/video_flicker.py`\n\n" + text + "\n")


if __name__ == "__main__":
    run(main)
