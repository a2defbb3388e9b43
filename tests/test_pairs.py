"""``vidrestore degrade``: reproducible paired sets, manifest, resume, videos, bad files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import textured_image, write_audio_only
from vidrestore.cli import main
from vidrestore.degrade import DegradeConfig, Plan, apply_plan
from vidrestore.degrade.sample import NoiseConfig
from vidrestore.io import Image, VideoReader, VideoWriter, probe, read_image, to_float, write_image
from vidrestore.pairs import write_pairs


def make_inputs(root: Path) -> Path:
    for index in range(3):
        write_image(root / "in" / f"sub{index % 2}" / f"p{index}.png", Image(pixels=textured_image(index, 64, 80)))
    gray16 = (textured_image(7, 48, 48)[..., :1].astype(np.uint16) * 257)
    write_image(root / "in" / "gray16.png", Image(pixels=gray16))
    (root / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    return root / "in"


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((folder / "degraded").rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs_and_manifest_replays(tmp_path):
    source = make_inputs(tmp_path)
    a = write_pairs(source, tmp_path / "a", seed=5, jobs=2, progress=False)
    write_pairs(source, tmp_path / "b", seed=5, jobs=1, progress=False)
    write_pairs(source, tmp_path / "c", seed=6, jobs=1, progress=False)
    assert a == {"done": 4, "skipped": 0, "left_alone": 0, "failed": 1}
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert digests(tmp_path / "a") != digests(tmp_path / "c")
    # The manifest too: its lines came in the order the workers finished, which --jobs changed.
    assert (tmp_path / "a/manifest.jsonl").read_bytes() == (tmp_path / "b/manifest.jsonl").read_bytes()
    records = [json.loads(line) for line in open(tmp_path / "a/manifest.jsonl")]
    failed = [r for r in records if "error" in r]
    assert len(failed) == 1 and "broken.png" in failed[0]["error"]
    # Every manifest record replays: apply its plan to the clean file → the degraded file.
    for record in (r for r in records if "error" not in r):
        clean = read_image(tmp_path / "a" / record["clean"]).pixels
        degraded = read_image(tmp_path / "a" / record["degraded"]).pixels
        assert degraded.dtype == clean.dtype and degraded.shape == clean.shape  # 16-bit gray stays 16-bit gray
        if clean.shape[2] == 3 and clean.dtype == np.uint8:
            replay = apply_plan(to_float(clean), Plan.from_dict(record["plan"]))
            assert np.abs(np.clip(replay * 255 + 0.5, 0, 255).astype(np.uint8).astype(int) - degraded.astype(int)).max() == 0
    # Mirrored tree.
    assert (tmp_path / "a/degraded/sub1/p1.png__v0.png").is_file() and (tmp_path / "a/clean/sub1/p1.png").is_file()


def test_resume_skips_finished_and_repairs_a_cut_manifest(tmp_path):
    source = make_inputs(tmp_path)
    out = tmp_path / "out"
    write_pairs(source, out, seed=1, jobs=1, progress=False)
    reference = digests(out)
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    good = [line for line in lines if '"error"' not in line]
    # Simulate a crash: the last finished record was cut mid-line and its file is gone; a temp file is left.
    victim = json.loads(good[-1])
    (out / victim["degraded"]).unlink()
    manifest.write_text("".join(good[:-1]) + good[-1][:25])
    (out / "degraded" / ".p0.tmp.partial.png").write_bytes(b"half")
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "degraded").rglob("*.png") if not p.name.startswith(".")}
    counts = write_pairs(source, out, seed=1, jobs=1, progress=False)
    assert counts["done"] == 1 + 0 and counts["skipped"] == 3  # the cut one is redone, the others skipped
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items()), "finished files were rewritten"
    assert digests(out) == reference
    keys = [json.loads(line)["key"] for line in manifest.read_text().splitlines()]
    assert len([k for k in keys if not k.startswith("broken")]) == len({k for k in keys if not k.startswith("broken")}) == 4


def test_an_edited_source_is_degraded_again_and_its_clean_copy_replaced(tmp_path):
    """A re-run notices a source changed since its pair was made (in place, or replaced by a new
    file as editors save), redoes that pair alone and refreshes its clean copy."""
    source = make_inputs(tmp_path)
    out = tmp_path / "out"
    write_pairs(source, out, seed=1, jobs=1, progress=False)
    before = digests(out)
    edited = textured_image(11, 64, 80)
    write_image(tmp_path / "new.png", Image(pixels=edited))
    (tmp_path / "new.png").replace(source / "sub0" / "p0.png")  # a new file under the old name
    counts = write_pairs(source, out, seed=1, jobs=1, progress=False)
    assert counts == {"done": 1, "skipped": 3, "left_alone": 0, "failed": 1}
    after = digests(out)
    assert after["degraded/sub0/p0.png__v0.png"] != before["degraded/sub0/p0.png__v0.png"]
    assert {k: v for k, v in after.items() if "p0" not in k} == {k: v for k, v in before.items() if "p0" not in k}
    assert np.array_equal(read_image(out / "clean/sub0/p0.png").pixels, edited)
    # Edited in place (the same file, as an editor that overwrites does): redone again; then nothing is left.
    write_image(tmp_path / "again.png", Image(pixels=textured_image(12, 64, 80)))
    inode = (source / "sub0" / "p0.png").stat().st_ino
    (source / "sub0" / "p0.png").write_bytes((tmp_path / "again.png").read_bytes())
    assert (source / "sub0" / "p0.png").stat().st_ino == inode
    assert write_pairs(source, out, seed=1, jobs=1, progress=False)["done"] == 1
    keys = [json.loads(line)["key"] for line in open(out / "manifest.jsonl") if "error" not in line]
    assert len(keys) == len(set(keys)) == 4  # the redone pair is listed once (its old record went)
    assert write_pairs(source, out, seed=1, jobs=1, progress=False) == {"done": 0, "skipped": 4, "left_alone": 0, "failed": 1}


def test_video_pairs_keep_timing_and_audio(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "samples/pan_degraded.mp4"
    (tmp_path / "in").mkdir()
    (tmp_path / "in/clip.mp4").write_bytes(sample.read_bytes())
    write_pairs(tmp_path / "in", tmp_path / "out", seed=3, jobs=1, progress=False,
                config=__import__("vidrestore.degrade", fromlist=["DegradeConfig"]).DegradeConfig())
    record = json.loads((tmp_path / "out/manifest.jsonl").read_text().splitlines()[0])
    out = probe(tmp_path / "out" / record["degraded"])
    src = probe(sample)
    assert out.frame_count == src.frame_count and out.fps == src.fps and out.has_audio


def test_an_audio_only_file_is_left_alone_and_an_anamorphic_interlaced_one_keeps_its_shape(tmp_path, caplog):
    """A .3gp voice memo in the folder failed every run (exit 1, retried on each resume); a DV-like
    source (interlaced, 16:15 pixels) gave degraded files with square pixels, progressive, unsaid."""
    import av

    (tmp_path / "in").mkdir()
    write_audio_only(tmp_path / "in/memo.3gp")
    with av.open(str(tmp_path / "in/tape.mkv"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = {"x264-params": "interlaced=1:bff=1"}
        stream.codec_context.sample_aspect_ratio = Fraction(16, 15)
        for index in range(4):
            rgb = textured_image(index, 64, 96)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    config = DegradeConfig.from_dict({"h264": {"probability": 1.0}})  # libx264: it keeps the field order
    counts = write_pairs(tmp_path / "in", tmp_path / "out", seed=1, jobs=1, progress=False, config=config)
    assert counts == {"done": 1, "skipped": 0, "left_alone": 1, "failed": 0}
    assert "memo.3gp: no video stream (audio only?); left alone" in caplog.text
    assert "tape.mkv: interlaced: its pairs are whole frames" in caplog.text
    record = json.loads((tmp_path / "out/manifest.jsonl").read_text())  # one line: the memo is not in it
    degraded = probe(tmp_path / "out" / record["degraded"])
    assert degraded.sample_aspect_ratio == Fraction(16, 15) and degraded.interlaced
    assert main(["degrade", str(tmp_path / "in"), str(tmp_path / "out"), "--seed", "1",
                 "--set", "h264.probability=1.0"]) == 0  # a re-run: done, the memo left alone again


def test_cli_degrade(tmp_path):
    source = make_inputs(tmp_path)
    result = subprocess.run([sys.executable, "-m", "vidrestore.cli", "degrade", str(source), str(tmp_path / "o"),
                             "--seed", "2", "--variants", "2", "--set", "jpeg.probability=1.0"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1  # the broken file is reported
    assert "degraded 8" in result.stdout and "failed 2" in result.stdout  # broken.png, both variants
    records = [json.loads(line) for line in open(tmp_path / "o/manifest.jsonl")]
    assert all(any(op["op"] == "jpeg" for op in r["plan"]["ops"]) for r in records if "plan" in r)


def test_output_folder_in_the_input_folder_is_refused(tmp_path):
    source = make_inputs(tmp_path)
    before = sorted(source.rglob("*"))
    for out in (source, source / "pairs"):
        with pytest.raises(ValueError, match="inside"):
            write_pairs(source, out, jobs=1, progress=False)
    assert sorted(source.rglob("*")) == before  # nothing written, so nothing to degrade again later


def test_rerun_with_other_settings_is_refused_and_the_same_settings_resume(tmp_path, capsys):
    source = make_inputs(tmp_path)
    out = tmp_path / "out"
    write_pairs(source, out, seed=1, jobs=1, progress=False)
    reference, manifest = digests(out), (out / "manifest.jsonl").read_text()
    for other in ({"seed": 2}, {"seed": 1, "config": DegradeConfig(noise=NoiseConfig(probability=1.0))}):
        with pytest.raises(ValueError, match="another --seed, --config or --set"):
            write_pairs(source, out, **other, jobs=1, progress=False)
    assert main(["degrade", str(source), str(out), "--seed", "1", "--set", "noise.probability=1", "--jobs", "1"]) == 2
    assert "delete it to start over" in capsys.readouterr().err
    assert digests(out) == reference and (out / "manifest.jsonl").read_text() == manifest
    counts = write_pairs(source, out, seed=1, jobs=1, progress=False)
    assert (counts["done"], counts["skipped"]) == (0, 4)
    # A folder from before settings were recorded is not mistaken for one made with other settings.
    legacy = "".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "settings"}) + "\n"
                     for line in manifest.splitlines())
    (out / "manifest.jsonl").write_text(legacy)
    with pytest.raises(ValueError, match="from an older vidrestore"):
        write_pairs(source, out, seed=1, jobs=1, progress=False)


def test_bad_inputs_and_settings_fail_up_front_with_one_line(tmp_path, capsys):
    source = make_inputs(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/notes.txt").write_text("no media")
    (tmp_path / "bad.json").write_text('{"noise": 5}')
    cases = [
        ([str(tmp_path / "empty"), str(tmp_path / "o1")], "no images or videos"),
        ([str(source), str(tmp_path / "o2"), "--variants", "0"], "variants must be >= 1"),
        ([str(source), str(tmp_path / "o3"), "--config", str(tmp_path / "bad.json")], "noise must be a group"),
        ([str(source), str(tmp_path / "o4"), "--set", "noise.probability=2"], "noise.probability"),
        ([str(source), str(tmp_path / "o5"), "--set", "jpeg.quality=90,30"], "jpeg.quality"),
        ([str(tmp_path / "missing"), str(tmp_path / "o6")], "no such file"),
    ]
    for argv, message in cases:
        assert main(["degrade", *argv, "--jobs", "1"]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 7))  # nothing created before the check
    for option, value, message in (("--seed", "-1", "--seed: must be 0..9223372036854775807, got -1"),
                                   ("--jobs", "-2", "--jobs: must be >= 0, got -2")):
        with pytest.raises(SystemExit) as exit_:
            main(["degrade", str(source), str(tmp_path / "o7"), option, value])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_folder_another_degrade_run_is_writing_is_refused(tmp_path):
    """Each run deletes the temporary files it finds as a killed run's: a second one deleted the first's."""
    from vidrestore.io._files import hold_folder

    source = make_inputs(tmp_path)
    (tmp_path / "out").mkdir()
    with hold_folder(tmp_path / "out"):
        with pytest.raises(ValueError, match="in use by another process .*another degrade run is writing there"):
            write_pairs(source, tmp_path / "out", jobs=1, progress=False)
    assert write_pairs(source, tmp_path / "out", jobs=1, progress=False)["done"] == 4


def test_a_float_tiff_is_degraded_to_16_bit_and_one_bad_file_does_not_stop_the_run(tmp_path, monkeypatch):
    """A float32 TIFF (which curate keeps and train reads) aborted the whole degrade run with an
    unnamed "from_float: target dtype" error."""
    import cv2

    source = make_inputs(tmp_path)
    picture = textured_image(3, 64, 80).astype(np.float32) / 255
    assert cv2.imwrite(str(source / "float.tif"), np.ascontiguousarray(picture[..., ::-1]))
    counts = write_pairs(source, tmp_path / "out", seed=1, jobs=1)
    assert counts["failed"] == 1  # broken.png only
    degraded = read_image(tmp_path / "out" / "degraded" / "float.tif__v0.png")
    assert degraded.pixels.dtype == np.uint16 and degraded.pixels.shape == (64, 80, 3)
    # Any other per-file error names its file and the run goes on.
    import vidrestore.pairs as pairs

    real = pairs._degrade_image

    def failing(task, plan):
        if task.source.name == "p0.png":
            raise ValueError("something odd")
        return real(task, plan)

    monkeypatch.setattr(pairs, "_degrade_image", failing)
    counts = write_pairs(source, tmp_path / "out2", seed=1, jobs=1)
    assert counts["failed"] == 2 and counts["done"] == 4
    errors = [json.loads(line).get("error", "") for line in open(tmp_path / "out2" / "manifest.jsonl")]
    assert any(e.endswith("p0.png: something odd") for e in errors)
