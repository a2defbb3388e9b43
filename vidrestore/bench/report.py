"""Turn :func:`~vidrestore.bench.run.run_bench`'s figures into the public report.

:func:`write_report` writes ``report.md`` (headline figures, tables, plots, how to regenerate,
the machine), ``results.json`` (every figure) and PNG plots (with matplotlib, from the ``bench``
extra; without it the report says so). :func:`summary` is the text the CLI prints.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidrestore.bench.methods import BM3D, REALESRGAN, VIDRESTORE
from vidrestore.io._files import atomic_output

__all__ = ["headline", "prepare_out", "summary", "write_report"]

Row = dict[str, Any]

SPEED_TARGET = 20.0  # the engine should be at least this many times faster than Real-ESRGAN
RIVALS = (REALESRGAN, BM3D)
WARM_UP = "one frame restored untimed first (loading weights, creating kernels: one-off costs, not throughput)"
SETUP = ("fresh clone: `apt-get install libvulkan1 libomp5` (Real-ESRGAN's ncnn build needs them even on "
         "the CPU), `scripts/bootstrap.sh bench` (the `bench` extra, headless OpenCV kept) and "
         "`.venv/bin/vidrestore corpus data/corpus` (the default photos)")


# --------------------------------------------------------------------------------------------
# Headline figures
# --------------------------------------------------------------------------------------------


def _ok(row: Row | None) -> bool:
    return row is not None and row.get("status") == "ok"


def _comparison(ours: Row, rival: Row | None) -> Row | None:
    """vidrestore's PSNR/SSIM gains over ``rival`` and whether it beats it on each; None when
    either has no figures."""
    if not (_ok(ours) and _ok(rival)):
        return None
    assert rival is not None
    psnr_gain, ssim_gain = ours["psnr"] - rival["psnr"], ours["ssim"] - rival["ssim"]
    return {"psnr_gain": psnr_gain, "ssim_gain": ssim_gain, "beats_psnr": psnr_gain > 0, "beats_ssim": ssim_gain > 0}


def headline(result: dict[str, Any]) -> Row:
    """The figures the report leads with: engine MP/s ÷ Real-ESRGAN MP/s (target ≥ 20×), whether
    vidrestore beats Real-ESRGAN and BM3D on PSNR and SSIM (images and clips), and the engine's
    effective FLOP/s as a share of the bf16 matmul peak."""
    images = result["images"]["rows"]
    ours, rival = images[VIDRESTORE], images.get(REALESRGAN)
    ratio = ours["mp_per_s"] / rival["mp_per_s"] if _ok(ours) and _ok(rival) else None
    return {
        "speed_vs_realesrgan": ratio,
        "speed_target": SPEED_TARGET,
        "speed_target_met": None if ratio is None else ratio >= SPEED_TARGET,
        "quality": {
            subset: {name: _comparison(result[subset]["rows"][VIDRESTORE], result[subset]["rows"].get(name))
                     for name in RIVALS}
            for subset in ("images", "clips")
        },
        "percent_of_bf16_peak": result["engine"]["percent_of_peak"]["bf16"],
    }


def _verdict(comparison: Row | None, rival: str) -> str:
    if comparison is None:
        return f"vs {rival}: n/a (not measured)"
    words = {True: "beats", False: "does not beat"}
    return (f"vs {rival}: PSNR {comparison['psnr_gain']:+.2f} dB ({words[comparison['beats_psnr']]}), "
            f"SSIM {comparison['ssim_gain']:+.4f} ({words[comparison['beats_ssim']]})")


def _headline_lines(result: dict[str, Any], figures: Row) -> list[str]:
    images, engine = result["images"]["rows"], result["engine"]
    speed = f"- Speed, engine MP/s ÷ Real-ESRGAN MP/s (target ≥ {SPEED_TARGET:.0f}×): "
    if figures["speed_vs_realesrgan"] is None:
        speed += f"n/a (Real-ESRGAN: {images.get(REALESRGAN, {}).get('status', 'absent')})"
    else:
        met = "met" if figures["speed_target_met"] else "NOT met"
        speed += (f"{images[VIDRESTORE]['mp_per_s']:.3g} ÷ {images[REALESRGAN]['mp_per_s']:.3g} = "
                  f"**{figures['speed_vs_realesrgan']:.1f}×** ({met})")
    lines = [speed]
    for subset, comparisons in figures["quality"].items():
        lines.append(f"- Quality, {subset}: vidrestore " + "; ".join(_verdict(c, n) for n, c in comparisons.items()))
    if figures["speed_vs_realesrgan"] is not None:
        lines.append("  (Real-ESRGAN x4plus, a 4× super-resolution net, gets each frame shrunk 4× and returns it at "
                     "full size: its own setting, which discards detail the input had — even the clean crops score "
                     "about 23 dB that way. The quality rows compare the tools as used, not the networks.)")
    if engine["gflops"] is None:
        lines.append("- Engine efficiency: n/a (vidrestore was not measured)")
    else:
        peaks, shares = engine["peak_gflops"], engine["percent_of_peak"]
        effective = (f"- Engine efficiency: {engine['gflops']:.1f} GFLOP/s effective ({engine['gflop_per_megapixel']:.1f} "
                     f"GFLOP per MP × {engine['mp_per_s']:.3g} MP/s) = ")
        measured = (f"measured in this run ({engine['matmul_size']}³ products; torch's matmul, not a hardware ceiling: "
                    "oneDNN's convolutions can beat it, hence over 100 %)")
        if result["machine"]["dtype"] == "float32":  # e.g. a CPU without bf16 (there bf16 matmul is emulated)
            lines.append(f"{effective}**{shares['fp32']:.1f} % of the fp32 matmul peak** ({peaks['fp32']:.0f} GFLOP/s: "
                         f"the engine ran fp32), {measured}; bf16 matmul here: {peaks['bf16']:.0f} GFLOP/s")
        else:
            lines.append(f"{effective}**{shares['bf16']:.1f} % of the bf16 matmul peak** ({peaks['bf16']:.0f} GFLOP/s), "
                         f"{shares['fp32']:.1f} % of fp32's ({peaks['fp32']:.0f} GFLOP/s), both {measured}")
    return lines


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

Column = tuple[str, str, Callable[[float], str]]

IMAGE_COLUMNS: list[Column] = [
    ("PSNR (dB)", "psnr", "{:.2f}".format),
    ("SSIM", "ssim", "{:.4f}".format),
    ("MP/s", "mp_per_s", "{:.3g}".format),
]
CLIP_COLUMNS: list[Column] = [
    ("PSNR (dB)", "psnr", "{:.2f}".format),
    ("SSIM", "ssim", "{:.4f}".format),
    ("warping error (×10⁻³)", "warping_error", "{:.3f}".format),
    ("frames/s", "frames_per_s", "{:.3g}".format),
    ("MP/s", "mp_per_s", "{:.3g}".format),
]


def markdown_table(rows: dict[str, Row], columns: list[Column]) -> list[str]:
    """One line per method; a method without figures shows its status (e.g. "not installed")."""
    lines = ["| method | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        if _ok(row):
            cells = [fmt(row[key]) if row.get(key) is not None else "" for _, key, fmt in columns]
        else:
            cells = [row["status"]] + [""] * (len(columns) - 1)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _image_lines(result: dict[str, Any]) -> list[str]:
    images, config = result["images"], result["config"]
    ops = ", ".join(f"{k} {v}" for k, v in images["degradations"].items())
    return [
        f"{_count(images['count'], 'crop')} of {images['size']}² from {images['photos']} photos and videos in "
        f"`{config['photos']}` "
        f"(photos at half size, videos' middle frames as they are; crop seed {config['seed']}), each degraded "
        "with the default `DegradeConfig` "
        f"(seed 10000 + i; operators drawn, by crops: {ops}). MP/s: restored megapixels per second.",
        "",
        *markdown_table(images["rows"], IMAGE_COLUMNS),
    ]


def _clip_lines(result: dict[str, Any]) -> list[str]:
    clips = result["clips"]
    ops = ", ".join(f"{k} {v}" for k, v in clips["degradations"].items())
    return [
        f"{_count(clips['count'], 'clip')} × {clips['frames']} frames of {clips['width']}×{clips['height']}: "
        "the middle frames of each video (scaled down to cover the frame, centre cropped) and slow pans (zoom 2, "
        f"seed 100 + i) over each photo, from {', '.join(clips['sources'])}, each degraded as a clip with the default "
        "`DegradeConfig` "
        f"(seed 500 + i: same optics and codec for the clip, fresh noise per frame; operators drawn, by clips: {ops}). "
        "PSNR/SSIM: means over frames, then clips. Warping error: mean squared difference between output t and "
        "output t−1 warped by the clean clip's optical flow, non-occluded pixels (`vidrestore.metrics`).",
        "",
        *markdown_table(clips["rows"], CLIP_COLUMNS),
    ]


def summary(result: dict[str, Any]) -> str:
    """Headline figures and both tables as plain markdown (what ``vidrestore bench`` prints)."""
    return "\n".join([*_headline_lines(result, headline(result)), "", "Images", "", *_image_lines(result), "",
                      "Clips", "", *_clip_lines(result)])


def _machine_line(machine: Row) -> str:
    return (f"Measured {machine['date']} on {machine['cpu']} ({_count(machine['cpu_count'], 'CPU')}), torch "
            f"{machine['torch']} with {_count(machine['torch_threads'], 'thread')}, OpenCV with "
            f"{machine['opencv_threads']}; engine on "
            f"{machine['device']} in {machine['dtype']} (tile {machine['tile']}, batch {machine['batch_size']}"
            + (f", correction floor {machine['correction_floor']:g}" if "correction_floor" in machine else "")
            + "), "
            f"model {machine['model']}; {machine['platform']}, Python {machine['python']}, "
            f"vidrestore {machine['vidrestore']}.")


def markdown_report(result: dict[str, Any], command: str, plots: list[str] | str) -> str:
    """The whole ``report.md``; ``plots`` are PNG names, or why there are none."""
    figures = headline(result)
    if isinstance(plots, str):
        plot_lines = [plots]
    else:
        plot_lines = [f"![{name.removesuffix('.png').replace('_', ' ')}]({name})" for name in plots]
    return "\n".join([
        "# vidrestore benchmark",
        "",
        f"Regenerate: `{command}` ({SETUP}).",
        "",
        _machine_line(result["machine"]),
        "Every speed was measured in this run on this machine; compare speeds only within one report.",
        "",
        "## Headline",
        "",
        *_headline_lines(result, figures),
        "",
        "## Images",
        "",
        *_image_lines(result),
        "",
        "## Clips",
        "",
        *_clip_lines(result),
        "",
        "## Plots",
        "",
        *plot_lines,
        "",
        "## How each method runs",
        "",
        *[f"- **{name}**: {method['about']}" + (f"; {WARM_UP}" if method["warm_up"] else "")
          for name, method in result["methods"].items()],
        "",
        "All figures are in `results.json`.",
        "",
    ])


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _measured(rows: dict[str, Row], key: str) -> dict[str, float]:
    return {name: row[key] for name, row in rows.items() if _ok(row) and row.get(key) is not None}


def _bars(axis: Any, values: dict[str, float], title: str, *, log_scale: bool = False, zoom: bool = False) -> None:
    """Horizontal bars, vidrestore's rows highlighted; ``zoom`` starts the axis just below the
    smallest value (PSNR differences of tenths of a dB vanish on an axis from 0)."""
    names = list(values)
    colours = ["tab:red" if name.startswith(VIDRESTORE) else "tab:gray" for name in names]
    axis.barh(names, [values[n] for n in names], color=colours)
    axis.invert_yaxis()
    axis.set_title(title, fontsize=10)
    axis.tick_params(labelsize=8)
    if log_scale:
        axis.set_xscale("log")
    elif zoom and values:
        low, high = min(values.values()), max(values.values())
        axis.set_xlim(low - 0.15 * (high - low + 1e-3), high + 0.05 * (high - low + 1e-3))


def _scatter(axis: Any, rows: dict[str, Row], title: str) -> None:
    """PSNR against MP/s (log), one labelled point per timed method."""
    speeds, quality = _measured(rows, "mp_per_s"), _measured(rows, "psnr")
    for name in speeds:
        colour = "tab:red" if name.startswith(VIDRESTORE) else "tab:blue"
        axis.scatter(speeds[name], quality[name], color=colour)
        axis.annotate(name, (speeds[name], quality[name]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    for name in set(quality) - set(speeds):  # the degraded input: no speed, drawn as a reference level
        axis.axhline(quality[name], color="gray", linestyle=":", linewidth=1, label=name)
        axis.legend(fontsize=7, loc="lower right")
    axis.set_xscale("log")
    axis.set_xlabel("MP/s (log)")
    axis.set_ylabel("PSNR (dB)")
    axis.set_title(title, fontsize=10)


def write_plots(result: dict[str, Any], out: Path) -> list[str] | str:
    """The four PNGs in ``out``; their names, or why there are none (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on a server
        import matplotlib.pyplot as plt
    except ImportError:
        return "No plots: matplotlib is not installed (`pip install 'vidrestore[bench]'`)."
    images, clips = result["images"]["rows"], result["clips"]["rows"]
    panels: dict[str, list[tuple[Callable[[Any], None], ...]]] = {
        "quality.png": [
            (lambda ax: _bars(ax, _measured(images, "psnr"), "images: PSNR (dB)", zoom=True),
             lambda ax: _bars(ax, _measured(images, "ssim"), "images: SSIM", zoom=True)),
            (lambda ax: _bars(ax, _measured(clips, "psnr"), "clips: PSNR (dB)", zoom=True),
             lambda ax: _bars(ax, _measured(clips, "ssim"), "clips: SSIM", zoom=True)),
        ],
        "warping_error.png": [(lambda ax: _bars(ax, _measured(clips, "warping_error"),
                                                "clips: warping error (×10⁻³, lower is steadier)"),)],
        "speed.png": [(lambda ax: _bars(ax, _measured(images, "mp_per_s"), "images: MP/s (log)", log_scale=True),
                       lambda ax: _bars(ax, _measured(clips, "mp_per_s"), "clips: MP/s (log)", log_scale=True))],
        "quality_vs_speed.png": [(lambda ax: _scatter(ax, images, "images: quality vs speed"),
                                  lambda ax: _scatter(ax, clips, "clips: quality vs speed"))],
    }
    for name, grid in panels.items():
        figure, axes = plt.subplots(len(grid), len(grid[0]), figsize=(6 * len(grid[0]), 3.2 * len(grid)),
                                    squeeze=False, layout="constrained")
        for row, draws in zip(axes, grid):
            for axis, draw in zip(row, draws):
                draw(axis)
        with atomic_output(out / name) as temporary:
            figure.savefig(temporary, dpi=110)
        plt.close(figure)
    return list(panels)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """``value`` with NaN/∞ floats replaced by None, so the JSON is standard (no ``NaN`` tokens)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write_text(path: Path, text: str) -> None:
    """Write atomically: a report is never left half-written under its name."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def prepare_out(out: str | Path) -> Path:
    """Create the report folder ``out`` if needed; a ValueError says why it cannot be used."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"report folder {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"report folder {out}: cannot be created ({exc.strerror or exc})") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"report folder {out}: not writable")
    return out


def write_report(result: dict[str, Any], out: str | Path, command: str) -> Path:
    """Write ``report.md``, ``results.json`` (every figure, the headline and ``command``) and the
    plots into ``out`` (created); returns the report's path."""
    out = prepare_out(out)
    plots = write_plots(result, out)
    document = {"command": command, **result, "headline": headline(result)}
    text = json.dumps(_finite(document), indent=2, allow_nan=False, ensure_ascii=False)
    _write_text(out / "results.json", text + "\n")
    _write_text(out / "report.md", markdown_report(result, command, plots))
    return out / "report.md"
