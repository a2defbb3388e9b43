"""Image quality classes (poor / medium / good): labelled data, training, prediction.

Three parts, each behind one ``vidrestore quality`` sub-command:

``label``
    :func:`label_folder` turns clean photos into a labelled set through the degradation pipeline.
    Each photo gives ``crops_per_image`` native-resolution crops (optionally after an area
    downscale by a factor drawn from ``scale_range``, which makes the clean base crisper, never
    softer); positions are redrawn until a crop has fine detail (:func:`fine_detail` ≥ 0.25; at
    most 30 draws, else the most detailed one) — a crop of bokeh or sky looks the same sharp,
    blurred or JPEG-compressed, so its poor and good copies would be the same picture.
    Every crop is written three times, once per class, so the classes share content and differ
    only in degradation. The classes are these :class:`~vidrestore.degrade.DegradeConfig`
    instances (:data:`SEVERITY_CONFIGS`), with a gap between medium and poor on purpose:

    ========  ====================================================================================
    good      untouched (1/3 of good samples), else one or two imperceptible ops: JPEG quality
              90–100, Gaussian noise σ 0.001–0.004 (σ in [0, 1] units, so ≤ 1/255).
    medium    one or two mild ops: Gaussian blur σ 0.8–1.5, motion blur 2–4 px, downscale
              1.5–2× and back, Gaussian noise σ 0.01–0.03, JPEG quality 50–75.
    poor      one to three heavy ops: Gaussian blur σ 2.5–4, motion blur 8–12 px, downscale 3–4×
              and back, Gaussian noise σ 0.06–0.12, JPEG quality 10–30 (below the restorer's
              training range of 50–100, on purpose: such input is not worth restoring).
    ========  ====================================================================================

    Each sample also gets a numeric ``severity`` (:func:`plan_severity`): the sum over its ops of
    a per-op value that is 0 for no change, about 0.25–0.7 inside the medium ranges and ≥ 1 at the
    start of the poor ranges (blur σ/2.5, motion length/8, (scale − 1)/2, noise σ/0.06,
    JPEG (100 − quality)/70). Output: ``OUT/{poor,medium,good}/<photo>__c<k>.png``, ``<photo>``
    being the photo's path under the input folder, extension included (lossless PNG, so the pixels
    hold exactly the degradation) and ``OUT/labels.csv`` (path, label, severity, source, scale,
    top, left, plan as JSON). Photos smaller than the crop on a side are skipped (enlarged, they
    would be soft yet labelled good). A re-run skips photos already complete.

``train``
    :func:`train_quality` trains :class:`~vidrestore.nets.quality.QualityNet` with cross-entropy
    on random native-resolution crops (flips and quarter turns only: resizing would change the
    very blur and noise being judged) of a labelled set — a folder with ``poor/ medium/ good/``
    subfolders, a labeller output, or a CSV of ``path,label``. After every epoch: validation
    accuracy and confusion matrix (pooled-crop prediction, as at inference), an atomic
    checkpoint for ``resume``, early stopping after ``patience`` epochs without improvement.
    The best model is written as safetensors with its network config in the metadata.

``predict``
    :class:`QualityModel` judges an image at full resolution: ``crop_count`` crops of
    ``crop_size``² spread over the whole picture, softmax averaged over crops. The class is the
    argmax; the score is the expected class value scaled to [0, 1] (poor 0, medium 0.5, good 1)
    for ranking. Videos are judged on ``frames`` evenly spaced frames, probabilities averaged.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import multiprocessing
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from tqdm import tqdm

from vidrestore.data import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_media, load_rgb_float
from vidrestore.degrade import DegradeConfig, Plan, apply_plan, sample_plan
from vidrestore.degrade.sample import (
    BlurConfig,
    GaussianBlur,
    GaussianNoise,
    H264Config,
    Jpeg,
    JpegConfig,
    MotionBlur,
    MotionBlurConfig,
    NoiseConfig,
    PoissonNoise,
    Resample,
    ResampleConfig,
    SaltAndPepper,
)
from vidrestore.errors import ModelError, NoVideoStreamError, VidrestoreError
from vidrestore.io._files import (atomic_output, changed_settings, folders_holding, make_folder, record_settings,
                                  remove_stale_partials)
from vidrestore.parallel import pool_map
from vidrestore.nets.quality import CLASSES, QualityNet, crop_stack, expected_score, pooled_probabilities

__all__ = [
    "CLASSES",
    "DEFAULT_QUALITY_MODEL",
    "LabelledItem",
    "QualityModel",
    "QualityNetConfig",
    "QualityResult",
    "QualityTrainConfig",
    "SEVERITY_CONFIGS",
    "default_quality_model_path",
    "fine_detail",
    "format_results",
    "label_folder",
    "load_labels",
    "load_quality_model",
    "plan_severity",
    "predict_paths",
    "sample_class_plan",
    "save_quality_model",
    "train_quality",
]

log = logging.getLogger(__name__)

DEFAULT_QUALITY_MODEL = "quality-v1.safetensors"
LABELS_CSV = "labels.csv"
_ARCH = "quality"


# ============================================================================ class definitions
def _config(**parts: Any) -> DegradeConfig:
    """A DegradeConfig with every operator off except those given (H.264 off: stills only)."""
    off = {
        "blur": BlurConfig(probability=0.0),
        "motion_blur": MotionBlurConfig(probability=0.0),
        "resample": ResampleConfig(probability=0.0),
        "noise": NoiseConfig(probability=0.0),
        "jpeg": JpegConfig(probability=0.0),
        "h264": H264Config(probability=0.0),
    }
    return DegradeConfig(**{**off, **parts})


_GAUSSIAN_ONLY = {"kind_weights": (1.0, 0.0, 0.0), "gaussian_mean": (0.0, 0.0)}

SEVERITY_CONFIGS: dict[str, DegradeConfig] = {
    "good": _config(
        noise=NoiseConfig(probability=0.5, gaussian_sigma=(0.001, 0.004), **_GAUSSIAN_ONLY),
        jpeg=JpegConfig(probability=0.5, quality=(90, 100)),
    ),
    "medium": _config(
        blur=BlurConfig(probability=0.3, kernel_size=(7, 9), sigma=(0.8, 1.5)),
        motion_blur=MotionBlurConfig(probability=0.15, length=(2.0, 4.0)),
        resample=ResampleConfig(probability=0.3, scale=(1.5, 2.0)),
        noise=NoiseConfig(probability=0.3, gaussian_sigma=(0.01, 0.03), **_GAUSSIAN_ONLY),
        jpeg=JpegConfig(probability=0.3, quality=(50, 75)),
    ),
    "poor": _config(
        blur=BlurConfig(probability=0.3, kernel_size=(13, 13), sigma=(2.5, 4.0)),
        motion_blur=MotionBlurConfig(probability=0.15, length=(8.0, 12.0)),
        resample=ResampleConfig(probability=0.3, scale=(3.0, 4.0)),
        noise=NoiseConfig(probability=0.3, gaussian_sigma=(0.06, 0.12), **_GAUSSIAN_ONLY),
        jpeg=JpegConfig(probability=0.3, quality=(10, 30)),
    ),
}
_MAX_OPS = {"good": 2, "medium": 2, "poor": 3}
GOOD_UNTOUCHED_FRACTION = 1.0 / 3.0


def sample_class_plan(label: str, seed: int) -> Plan:
    """A degradation plan for class ``label`` from ``seed`` (an empty plan = untouched).

    Plans with more ops than the class allows are redrawn from derived seeds (deterministic)."""
    if label not in SEVERITY_CONFIGS:
        raise ValueError(f"unknown quality class {label!r}; choose from {CLASSES}")
    rng = np.random.default_rng([seed, 1])
    if label == "good" and rng.random() < GOOD_UNTOUCHED_FRACTION:
        return Plan(ops=(), seed=seed)
    for attempt in range(100):
        plan = sample_plan(SEVERITY_CONFIGS[label], seed + attempt * 1_000_003)
        if len(plan.ops) <= _MAX_OPS[label]:
            return Plan(ops=plan.ops, seed=seed)
    raise RuntimeError(f"could not draw a {label} plan with at most {_MAX_OPS[label]} ops")


def op_severity(op: object) -> float:
    """One op's severity: 0 = no change, ≈ 0.25–0.7 in the medium ranges, ≥ 1 in the poor ones."""
    match op:
        case GaussianBlur(sigma=sigma):
            return sigma / 2.5
        case MotionBlur(length=length):
            return length / 8.0
        case Resample(scale=scale):
            return (scale - 1.0) / 2.0
        case GaussianNoise(sigma=sigma):
            return sigma / 0.06
        case PoissonNoise(lam=lam):
            return math.sqrt(0.5 / lam) / 0.06  # noise σ at mid-grey
        case SaltAndPepper(snr=snr):
            return (1.0 - snr) / 0.02
        case Jpeg(quality=quality):
            return (100 - quality) / 70.0
    raise TypeError(f"no severity defined for {op!r}")


def plan_severity(plan: Plan) -> float:
    """Sum of :func:`op_severity` over the plan's ops (0 for an untouched sample)."""
    return float(sum(op_severity(op) for op in plan.ops))


# ============================================================================ labelled data
@dataclass(frozen=True)
class LabelledItem:
    path: Path
    label: int  # index into CLASSES
    severity: float | None = None
    source: str = ""  # the clean photo it came from (keeps train/val splits photo-disjoint)


def _label_index(text: str, where: str) -> int:
    text = text.strip().lower()
    if text.isdigit() and int(text) < len(CLASSES):
        return int(text)
    if text not in CLASSES:
        raise ValueError(f"{where}: label {text!r} is not one of {', '.join(CLASSES)}")
    return CLASSES.index(text)


def _read_label_csv(path: Path) -> list[LabelledItem]:
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
    if not rows:
        raise ValueError(f"{path}: no labelled rows")
    header = [cell.strip().lower() for cell in rows[0]]
    has_header = "path" in header and "label" in header
    columns = header if has_header else ["path", "label"]
    items = []
    for number, row in enumerate(rows[1:] if has_header else rows, start=2 if has_header else 1):
        record = dict(zip(columns, row))
        if "path" not in record or "label" not in record:
            raise ValueError(f"{path}:{number}: expected path,label")
        image = Path(record["path"])
        image = image if image.is_absolute() else path.parent / image
        severity = record.get("severity", "")
        items.append(
            LabelledItem(image, _label_index(record["label"], f"{path}:{number}"),
                         float(severity) if severity else None, record.get("source", ""))
        )
    return items


def load_labels(source: str | Path) -> list[LabelledItem]:
    """Labelled images from a CSV (``path,label[,severity,source...]``, header optional, paths
    relative to the CSV) or a folder: its ``labels.csv`` when present, else images under its
    ``poor/``, ``medium/``, ``good/`` subfolders (recursive)."""
    source = Path(source)
    if source.is_file():
        items = _read_label_csv(source)
    elif (source / LABELS_CSV).is_file():
        items = _read_label_csv(source / LABELS_CSV)
    elif source.is_dir():
        items = []
        for index, name in enumerate(CLASSES):
            if (source / name).is_dir():
                items += [LabelledItem(p, index) for p in list_media(source / name) if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not items:
            raise ValueError(f"{source}: no labelled images (expected {'/, '.join(CLASSES)}/ subfolders or {LABELS_CSV})")
    else:
        raise FileNotFoundError(f"{source}: no such labelled set")
    missing = [item.path for item in items if not item.path.is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: {len(missing)} labelled files missing, e.g. {missing[0]}")
    return items


# ============================================================================ labeller
_LABEL_FIELDS = ["path", "label", "severity", "source", "scale", "top", "left", "plan"]
_DETAIL_MIN, _DETAIL_TRIES = 0.25, 30


def fine_detail(image: np.ndarray) -> float:
    """Share of 16×16 blocks of a float RGB image whose mean |luma − Gaussian(luma, σ 1.5)| exceeds
    1/255: the top-octave detail that blur, downscaling and JPEG remove (sensor noise of σ ≈ 1/255
    alone stays below it; a bokeh or sky crop scores ≈ 0, foliage ≈ 1)."""
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    high = np.abs(luma - cv2.GaussianBlur(luma, (0, 0), 1.5))
    b = 16
    h, w = luma.shape[0] // b * b, luma.shape[1] // b * b
    if h == 0 or w == 0:
        return 0.0
    return float((high[:h, :w].reshape(h // b, b, w // b, b).mean(axis=(1, 3)) > 1.0 / 255.0).mean())


@dataclass(frozen=True)
class _LabelTask:
    source: Path
    relative: str
    out_dir: Path
    crops: int
    crop_size: int
    scale_range: tuple[float, float]
    seed: int


def _label_one(task: _LabelTask) -> tuple[str, list[dict[str, str]] | str]:
    """All samples of one clean photo: ``("ok", CSV rows)``, or ``("failed" | "too_small", message)``."""
    from vidrestore.io import Image, from_float, write_image

    try:
        image = load_rgb_float(task.source)
    except VidrestoreError as exc:
        return "failed", str(exc)
    height, width = image.shape[:2]
    if min(height, width) < task.crop_size:
        return "too_small", f"{task.source}: {width}×{height}, smaller than a {task.crop_size}² crop; skipped"
    rng = np.random.default_rng([task.seed, zlib.crc32(task.relative.encode())])
    rows = []
    for index in range(task.crops):
        best = None
        for _ in range(_DETAIL_TRIES):  # prefer a crop with fine detail; else keep the most detailed
            lo, hi = task.scale_range
            scale = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            side = min(round(task.crop_size / scale), height, width)
            top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
            region = image[top : top + side, left : left + side]
            if side != task.crop_size:
                region = np.clip(cv2.resize(region, (task.crop_size, task.crop_size), interpolation=cv2.INTER_AREA), 0, 1)
            detail = fine_detail(region)
            if best is None or detail > best[0]:
                best = (detail, region, task.crop_size / side, top, left)
            if detail >= _DETAIL_MIN:
                break
        _, clean, scale, top, left = best
        for label in CLASSES:
            plan = sample_class_plan(label, int(rng.integers(2**31 - 1)))
            pixels = from_float(apply_plan(clean, plan), np.uint8)
            relative = f"{label}/{task.relative}__c{index:03d}.png"
            write_image(task.out_dir / relative, Image(pixels=pixels))
            rows.append({
                "path": relative, "label": label, "severity": f"{plan_severity(plan):.4f}", "source": task.relative,
                "scale": f"{scale:.4f}", "top": str(top), "left": str(left),
                "plan": json.dumps(plan.to_dict()["ops"]) if plan.ops else "",
            })
    return "ok", rows


def _rewrite_csv(path: Path, rows: Sequence[dict[str, str]], fields: Sequence[str]) -> None:

    with atomic_output(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)


def _pool_map(function, tasks: list, jobs: int) -> Iterator:
    # The fork server imports torch and vidrestore once; each worker forks from it ready to run.
    return pool_map(function, tasks, jobs, preload=("vidrestore.curate", "vidrestore.quality"))


def label_folder(
    clean_dir: str | Path,
    out_dir: str | Path,
    *,
    crops_per_image: int = 24,
    crop_size: int = 256,
    scale_range: tuple[float, float] = (0.5, 1.0),
    seed: int = 0,
    jobs: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write a labelled set from the clean photos under ``clean_dir`` (see the module docstring).

    Returns ``{"photos", "samples", "skipped", "too_small", "failed"}``: ``skipped`` photos were
    complete already, ``too_small`` ones are smaller than ``crop_size`` on a side and left out."""
    clean_dir, out_dir = Path(clean_dir), Path(out_dir)
    if not 0 < scale_range[0] <= scale_range[1] <= 1.0:
        raise ValueError(f"scale_range must satisfy 0 < low <= high <= 1, got {scale_range}")
    # The output (and earlier ones: folders holding a labels.csv of ours) inside clean_dir is not
    # more photos; an output folder above clean_dir, or clean_dir itself, hides nothing.
    outputs = []
    if clean_dir.is_dir():
        top = clean_dir.resolve()
        outputs = [folder for folder in (out_dir.resolve(), *folders_holding(clean_dir, LABELS_CSV, _LABEL_FIELDS))
                   if folder != top and folder.is_relative_to(top)]
    sources = [p for p in list_media(clean_dir) if p.suffix.lower() in IMAGE_EXTENSIONS
               and not any(p.is_relative_to(folder) for folder in outputs)]
    if not sources:
        raise ValueError(f"{clean_dir}: no images")
    root = clean_dir.resolve() if clean_dir.is_dir() else clean_dir.resolve().parent
    csv_path = out_dir / LABELS_CSV
    settings = {"crops_per_image": crops_per_image, "crop_size": crop_size, "scale_range": list(scale_range), "seed": seed}
    settings_path = out_dir / "label.json"
    if csv_path.is_file() and settings_path.is_file():
        changed = changed_settings(settings_path, settings)
        if changed is None:
            raise ValueError(f"{settings_path}: damaged (not the settings vidrestore wrote); remove it, or use "
                             "another OUT_DIR")
        if changed:
            # The set would mix crops of both settings (old ones of photos now skipped stay on disk).
            raise ValueError(f"{out_dir} was labelled with other settings ({'; '.join(changed)}): use those, or "
                             "another OUT_DIR (or empty this one)")
    make_folder(out_dir)
    record_settings(settings_path, settings)
    existing: dict[str, list[dict[str, str]]] = {}
    if csv_path.is_file():
        with open(csv_path, newline="") as handle:
            for row in csv.DictReader(handle):
                existing.setdefault(row["source"], []).append(row)
    per_photo = crops_per_image * len(CLASSES)
    complete = {
        source: rows for source, rows in existing.items()
        if len(rows) == per_photo and all((out_dir / r["path"]).is_file() for r in rows)
    }
    _rewrite_csv(csv_path, [r for rows in complete.values() for r in rows], _LABEL_FIELDS)
    tasks = []
    for path in sources:
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        if relative not in complete:
            tasks.append(_LabelTask(path, relative, out_dir, crops_per_image, crop_size, tuple(scale_range), seed))
    counts = {"photos": len(sources), "samples": 0, "skipped": len(sources) - len(tasks), "too_small": 0, "failed": 0}
    jobs = jobs or os.cpu_count() or 1
    with open(csv_path, "a", newline="") as handle, tqdm(total=len(tasks), disable=not progress, desc="label", unit="photo") as bar:
        writer = csv.DictWriter(handle, fieldnames=_LABEL_FIELDS)
        for status, result in _pool_map(_label_one, tasks, jobs):
            if status == "ok":
                writer.writerows(result)
                handle.flush()
                counts["samples"] += len(result)
            else:
                counts[status] += 1
                (log.error if status == "failed" else log.warning)("%s", result)
            bar.update(1)
    return counts


# ============================================================================ model files
def default_quality_model_path() -> Path:
    """Where the shipped classifier lives: ``vidrestore/weights/quality-v1.safetensors``."""
    return Path(str(resources.files("vidrestore.weights") / DEFAULT_QUALITY_MODEL))


def save_quality_model(path: str | Path, model: QualityNet, net_config: dict[str, Any], extra: dict[str, str] | None = None) -> None:
    """Write ``model`` atomically as safetensors; metadata ``arch=quality``, ``config`` (the
    network's keyword arguments as JSON), ``classes``, plus ``extra`` (crop size/count, figures)."""
    from vidrestore.weights import clean_state_dict, save_safetensors

    state = {k: v.detach().float().contiguous().cpu() for k, v in clean_state_dict(model.state_dict()).items()}
    metadata = {"arch": _ARCH, "config": json.dumps(net_config), "classes": json.dumps(list(CLASSES)), **(extra or {})}
    save_safetensors(path, state, metadata)


def load_quality_model(path: str | Path | None = None) -> tuple[QualityNet, dict[str, str]]:
    """Build the :class:`QualityNet` a safetensors file describes; ``None`` = the shipped model.

    Returns ``(model in eval mode on CPU, metadata)``; raises :class:`ModelError` with a way out."""
    from vidrestore.weights import read_safetensors

    if path is None:
        path = default_quality_model_path()
        if not path.is_file():
            raise ModelError(
                f"no quality model at {path}: train one (vidrestore quality label ..., then vidrestore quality "
                f"train --out runs/quality, and copy runs/quality/quality.safetensors there) or pass --model FILE"
            )
    path = Path(path)
    state, metadata = read_safetensors(path)
    if metadata.get("arch") != _ARCH:
        raise ModelError(f"{path}: not a vidrestore quality model (metadata arch={metadata.get('arch')!r})")
    if json.loads(metadata.get("classes", "[]")) != list(CLASSES):
        raise ModelError(f"{path}: classes {metadata.get('classes')} are not {list(CLASSES)}")
    try:
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(metadata["config"]).items()}
        model = QualityNet(**config)
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: weights do not match the network ({exc})") from exc
    return model.eval(), metadata


# ============================================================================ prediction
@dataclass(frozen=True)
class QualityResult:
    """``label`` (argmax class), ``probabilities`` (poor, medium, good), ``score`` in [0, 1]."""

    label: str
    probabilities: tuple[float, float, float]
    score: float

    @classmethod
    def from_probabilities(cls, probabilities: torch.Tensor | np.ndarray) -> QualityResult:
        p = torch.as_tensor(probabilities, dtype=torch.float64).reshape(-1)
        return cls(CLASSES[int(p.argmax())], tuple(float(v) for v in p), expected_score(p))


class QualityModel:
    """A loaded classifier plus how it pools crops. ``QualityModel(path=None)`` loads the shipped
    model; ``crop_size``/``crop_count`` default to what the file's metadata says."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        crop_count: int | None = None,
        crop_size: int | None = None,
        device: str = "cpu",
        model: QualityNet | None = None,
    ) -> None:
        metadata: dict[str, str] = {}
        if model is None:
            model, metadata = load_quality_model(path)
        self.model = model.eval().to(device)
        self.metadata = metadata
        self.crop_size = int(crop_size or metadata.get("crop_size", 224))
        self.crop_count = int(crop_count or metadata.get("crop_count", 8))

    def probabilities(self, image: np.ndarray) -> torch.Tensor:
        """Float32 ``(H, W, 3)`` in [0, 1] → pooled probabilities ``(3,)``."""
        return pooled_probabilities(self.model, crop_stack(image, crop_size=self.crop_size, count=self.crop_count))

    def predict_array(self, image: np.ndarray) -> QualityResult:
        return QualityResult.from_probabilities(self.probabilities(image))

    def predict_path(self, path: str | Path, *, frames: int = 8) -> QualityResult:
        """An image file, or a video judged on ``frames`` evenly spaced frames."""
        path = Path(path)
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            images = sample_video_frames(path, frames)
        else:
            images = [load_rgb_float(path)]
        return QualityResult.from_probabilities(torch.stack([self.probabilities(im) for im in images]).mean(dim=0))


def sample_video_frames(path: str | Path, count: int) -> list[np.ndarray]:
    """``count`` evenly spaced frames of a video as float32 RGB (fewer if the video is shorter).

    Uses the container's frame count; without one, keeps every ``2^k``-th frame while decoding."""
    from vidrestore.errors import CorruptMediaError
    from vidrestore.io import VideoReader, probe, to_float

    if count < 1:
        raise ValueError(f"frames must be >= 1, got {count}")
    total = probe(path).frame_count
    wanted = set(np.linspace(0, total - 1, count).round().astype(int).tolist()) if total > 0 else None
    kept: list[np.ndarray] = []
    stride = 1
    last = None
    with VideoReader(path) as reader:
        for frame in reader:
            last = frame
            if wanted is not None:
                if frame.index in wanted:
                    kept.append(to_float(frame.rgb))
            elif frame.index % stride == 0:
                kept.append(to_float(frame.rgb))
                if len(kept) >= 2 * count:
                    kept, stride = kept[::2], stride * 2
    if not kept and last is not None:  # the container announced more frames than it holds
        kept = [to_float(last.rgb)]
    if not kept:
        raise CorruptMediaError(Path(path), "no frame could be decoded")
    return kept[: count] if wanted is None else kept


def predict_paths(
    inputs: Iterable[str | Path], model: QualityModel, *, frames: int = 8
) -> Iterator[tuple[Path, QualityResult | str]]:
    """``(path, result)`` for every image and video under ``inputs`` (files or folders);
    ``(path, error message)`` for one that cannot be read, or a named file of another type. A file
    found in a folder with no video stream (a ``.3gp`` voice memo) is left alone, with a warning."""
    inputs = [Path(p) for p in inputs]
    for path in inputs:
        if path.is_file() and path.suffix.lower() not in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            yield path, f"{path}: not an image or video vidrestore reads"
    named = {path.resolve() for path in inputs if path.is_file()}
    for path in list_media(inputs):
        try:
            yield path, model.predict_path(path, frames=frames)
        except NoVideoStreamError as exc:
            if path in named:
                yield path, str(exc)
            else:  # found in a folder: audio alone under a video suffix (a .3gp voice memo)
                log.warning("%s: %s", path, NoVideoStreamError.LEFT_ALONE)
        except VidrestoreError as exc:
            yield path, str(exc)


def format_results(rows: Iterable[tuple[Path, QualityResult]], fmt: str = "table") -> Iterator[str]:
    """Lines for ``table`` (aligned, with a header), ``csv`` (with a header) or ``jsonl``."""
    if fmt not in ("table", "csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}; choose table, csv or jsonl")
    if fmt == "table":
        yield f"{'class':<7} {'p_poor':>7} {'p_medium':>8} {'p_good':>7} {'score':>6}  path"
    elif fmt == "csv":
        yield "path,class,p_poor,p_medium,p_good,score"
    for path, result in rows:
        p = result.probabilities
        if fmt == "table":
            yield f"{result.label:<7} {p[0]:7.4f} {p[1]:8.4f} {p[2]:7.4f} {result.score:6.4f}  {path}"
        elif fmt == "csv":
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(
                [str(path), result.label, f"{p[0]:.6f}", f"{p[1]:.6f}", f"{p[2]:.6f}", f"{result.score:.6f}"]
            )
            yield buffer.getvalue()
        else:
            yield json.dumps({"path": str(path), "class": result.label, "p_poor": p[0], "p_medium": p[1],
                              "p_good": p[2], "score": result.score})


# ============================================================================ training
@dataclass
class QualityNetConfig:
    sigmas: tuple[float, ...] = (0.7, 1.4, 2.8, 5.6)
    floor: float = 1e-3
    stage_channels: tuple[int, ...] = (32, 48, 64, 96)
    dropout: float = 0.1


@dataclass
class QualityTrainConfig:
    """Everything a quality-classifier run depends on (saved as ``config.json`` in ``out_dir``)."""

    train_data: str = "data/quality/train"  # labelled folder or CSV
    val_data: str = "data/quality/val"  # "" = hold out val_fraction of train, split by source photo
    val_fraction: float = 0.15
    out_dir: str = "runs/quality"
    seed: int = 0
    epochs: int = 30
    stop_after: int = 0  # stop (checkpointed, resumable) after this epoch; 0 = run to the end
    patience: int = 6  # early stopping: epochs without a better validation result
    batch_size: int = 32
    samples_per_epoch: int = 0  # random crops per epoch; 0 = one per labelled image
    crop_size: int = 128  # training crop, and the pooled crop size stored with the model
    crop_count: int = 8  # crops pooled per image at validation and inference
    lr: float = 1e-3
    lr_min_ratio: float = 0.02
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    balance_classes: bool = True  # weight the loss by inverse class frequency
    bn_batches: int = 24  # training batches that recompute BatchNorm statistics before each validation
    num_workers: int = 0
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    net: QualityNetConfig = field(default_factory=QualityNetConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityTrainConfig:
        from vidrestore.train.config import _build  # nested dataclasses, unknown keys rejected

        return _build(cls, data, "")

    @classmethod
    def load(cls, path: str | Path) -> QualityTrainConfig:
        from vidrestore.train.config import read_json_object

        return cls.from_dict(read_json_object(path))

    def check(self) -> None:
        """Raise ValueError naming the first setting out of its range (before a run starts)."""
        minimum = {"batch_size": 1, "epochs": 1, "stop_after": 0, "patience": 1, "samples_per_epoch": 0,
                   "crop_size": 16, "crop_count": 1, "warmup_steps": 0, "bn_batches": 0, "num_workers": 0, "threads": 0}
        for name, low in minimum.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.lr_min_ratio <= 1:
            raise ValueError(f"lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not self.out_dir.strip():
            raise ValueError("out_dir must name a folder (it was empty)")


class _CropDataset(torch.utils.data.Dataset):
    """Item ``i`` of epoch ``e``: labelled image ``order[i]`` (a permutation of the set, or random
    draws when ``length`` differs from its size), a random ``crop_size``² crop at native
    resolution, a random flip and quarter turn — all from ``default_rng([seed, e, ...])``."""

    def __init__(self, items: Sequence[LabelledItem], *, crop_size: int, seed: int, length: int) -> None:
        self.items, self.crop_size, self.seed, self.length = list(items), crop_size, seed, length
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch])
        count = len(self.items)
        self.order = rng.permutation(count) if self.length == count else rng.integers(0, count, self.length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        item = self.items[int(self.order[index])]
        image = load_rgb_float(item.path)
        height, width = image.shape[:2]
        top = int(rng.integers(0, max(0, height - self.crop_size) + 1))
        left = int(rng.integers(0, max(0, width - self.crop_size) + 1))
        window = image[top : top + self.crop_size, left : left + self.crop_size]
        crop = crop_stack(window, crop_size=self.crop_size, count=1)[0]  # pads a small image
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        return torch.rot90(crop, int(rng.integers(4)), dims=(1, 2)).contiguous(), item.label


def _split(items: list[LabelledItem], fraction: float, seed: int) -> tuple[list[LabelledItem], list[LabelledItem]]:
    """Hold out ``fraction`` of the source photos (items without a source count as their own)."""
    groups = sorted({item.source or str(item.path) for item in items})
    rng = np.random.default_rng(seed)
    count = max(1, round(len(groups) * fraction))
    held = set(rng.permutation(groups)[:count].tolist())
    train = [i for i in items if (i.source or str(i.path)) not in held]
    val = [i for i in items if (i.source or str(i.path)) in held]
    if not train:
        raise ValueError("too few labelled source photos to hold out a validation split; pass val_data")
    return train, val


@torch.no_grad()
def _recalibrate_batchnorm(model: QualityNet, dataset: _CropDataset, *, batch_size: int, batches: int) -> None:
    """Recompute BatchNorm's running statistics for the weights as they are now ("precise BN").

    The running averages lag the changing weights; on the log-band features (a heavy tail of
    ``log(floor)`` values from flat areas) that lag swung held-out accuracy between 0.5 and 0.74
    from one epoch to the next. An exact average over ``batches`` fixed training batches (the
    epoch's first crops, so resume stays exact) removes it. Train mode for the BatchNorm layers
    only; dropout stays off.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms or batches <= 0:
        return
    model.eval()
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the exact mean over the batches
        m.train()
    count = min(len(dataset), batches * batch_size)
    for start in range(0, count, batch_size):
        crops = torch.stack([dataset[i][0] for i in range(start, min(count, start + batch_size))])
        model(crops)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


def _validate(model: QualityNet, items: Sequence[LabelledItem], config: QualityTrainConfig) -> dict[str, Any]:
    """Pooled-crop prediction on every validation image: accuracy, NLL, confusion[true][pred]."""
    model.eval()
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    nll = 0.0
    for item in items:
        crops = crop_stack(load_rgb_float(item.path), crop_size=config.crop_size, count=config.crop_count)
        probabilities = pooled_probabilities(model, crops)
        confusion[item.label, int(probabilities.argmax())] += 1
        nll -= math.log(max(float(probabilities[item.label]), 1e-12))
    total = max(1, len(items))
    return {"accuracy": float(np.trace(confusion) / total), "loss": nll / total, "confusion": confusion.tolist()}


def _format_confusion(confusion: list[list[int]]) -> str:
    header = "true\\pred " + " ".join(f"{c:>6}" for c in CLASSES)
    lines = [f"{CLASSES[i]:>9} " + " ".join(f"{v:>6}" for v in row) for i, row in enumerate(confusion)]
    return "\n".join([header, *lines])


def train_quality(config: QualityTrainConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the quality classifier; returns a summary dict.

    Writes into ``config.out_dir``: ``config.json``, ``checkpoint.pt`` (atomic, every epoch),
    ``metrics.jsonl`` (per epoch: train loss, val accuracy/loss/confusion), ``last.safetensors``
    and ``quality.safetensors`` (the best epoch: highest val accuracy, ties to lower val loss).
    SIGINT/SIGTERM finish the current batch and save a mid-epoch checkpoint; ``resume`` continues
    from that batch exactly as an uninterrupted run would (the epoch's crops are fixed by seed)."""
    from vidrestore.train.checkpoint import save_checkpoint
    from vidrestore.train.loop import StopRequest, TrainingError, lr_at, worker_init

    config.check()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.out_dir)
    checkpoint_path = out_dir / "checkpoint.pt"
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"{out_dir}: not a folder")
    if not resume:
        held = [name for name in ("checkpoint.pt", "quality.safetensors", "last.safetensors") if (out_dir / name).exists()]
        if held:
            raise TrainingError(f"{out_dir} already holds a quality run ({', '.join(held)}): continue it with --resume, "
                                "or pick another --out")
    elif not checkpoint_path.is_file():
        raise TrainingError(f"{checkpoint_path}: nothing to resume")

    items = load_labels(config.train_data)
    if config.val_data:
        train_items, val_items = items, load_labels(config.val_data)
    else:
        train_items, val_items = _split(items, config.val_fraction, config.seed)
    counts = np.bincount([i.label for i in train_items], minlength=len(CLASSES))
    if (counts == 0).any():
        raise TrainingError(f"{config.train_data}: no training images for class(es) "
                            f"{[CLASSES[i] for i in np.flatnonzero(counts == 0)]}")
    weights = torch.tensor(counts.sum() / (len(CLASSES) * counts), dtype=torch.float32) if config.balance_classes else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)

    torch.manual_seed(config.seed)
    net_config = dataclasses.asdict(config.net)
    model = QualityNet(**net_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    length = config.samples_per_epoch or len(train_items)
    dataset = _CropDataset(train_items, crop_size=config.crop_size, seed=config.seed, length=length)
    steps_per_epoch = math.ceil(length / config.batch_size)
    epoch, best, bad_epochs = 0, {"accuracy": -1.0, "loss": math.inf, "epoch": 0}, 0
    start_batch, running, seen = 0, 0.0, 0  # a mid-epoch checkpoint's place in its epoch
    if resume:
        from vidrestore.train.config import changed_fields
        from vidrestore.train.loop import misfit, read_checkpoint

        state = read_checkpoint(checkpoint_path)
        started_with = json.loads(state.get("config") or "{}")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise misfit(checkpoint_path, exc,
                         [k for k in changed_fields(started_with, config.to_dict()) if k != "out_dir"]) from exc
        torch.set_rng_state(state["torch_rng"])
        epoch, bad_epochs = int(state["epoch"]), int(state["bad_epochs"])
        best = json.loads(state["best"])
        start_batch, running, seen = int(state.get("batch", 0)), float(state.get("running", 0.0)), int(state.get("seen", 0))
        if start_batch and any(started_with.get(k) != getattr(config, k) for k in ("batch_size", "samples_per_epoch")):
            raise TrainingError(f"{checkpoint_path} stopped inside an epoch: resume it with the batch_size and "
                                f"samples_per_epoch it started with ({started_with.get('batch_size')}, "
                                f"{started_with.get('samples_per_epoch')})")
        log.info("resumed from %s after epoch %d%s", checkpoint_path, epoch,
                 f" and {start_batch} of its {steps_per_epoch} batches" if start_batch else "")
    # Written once the checkpoint has loaded: a failed resume leaves the run as it was.
    make_folder(out_dir)
    remove_stale_partials(out_dir / name for name in ("checkpoint.pt", "config.json", "quality.safetensors",
                                                       "last.safetensors"))  # left by a killed save
    if not resume:
        (out_dir / "metrics.jsonl").unlink(missing_ok=True)  # a run stopped before its first checkpoint
    with atomic_output(out_dir / "config.json") as temporary:
        temporary.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    extra = {"crop_size": str(config.crop_size), "crop_count": str(config.crop_count)}
    stopped_early, interrupted = resume and bad_epochs >= config.patience, False  # finished stays finished
    if stopped_early:
        log.info("%s stopped early after epoch %d; nothing to resume", out_dir, epoch)
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=epoch * steps_per_epoch + start_batch,
               disable=not progress, desc="quality", dynamic_ncols=True)

    def _state(**place: Any) -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "epoch": epoch, "bad_epochs": bad_epochs, "best": json.dumps(best),
                "config": json.dumps(config.to_dict()), **place}

    stop = StopRequest().install()
    try:
        while epoch < config.epochs and not stopped_early:
            dataset.set_epoch(epoch)
            # A mid-epoch resume starts at its batch: the same crops in the same batches.
            source = (torch.utils.data.Subset(dataset, range(start_batch * config.batch_size, length))
                      if start_batch else dataset)
            loader = torch.utils.data.DataLoader(
                source, batch_size=config.batch_size, shuffle=False, num_workers=config.num_workers,
                multiprocessing_context="forkserver" if config.num_workers > 0 else None,
                worker_init_fn=worker_init if config.num_workers > 0 else None,
                # Its own seed source: one drawn from the global generator per loader would put a
                # mid-epoch resume (a new loader) one draw off the uninterrupted run's dropout.
                generator=torch.Generator().manual_seed(config.seed + epoch),
            )
            model.train()
            if not start_batch:
                running, seen = 0.0, 0
            for batch_index, (crops, labels) in enumerate(loader, start=start_batch):
                step = epoch * steps_per_epoch + batch_index
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, total=config.epochs * steps_per_epoch, base=config.lr,
                                        warmup=config.warmup_steps, min_ratio=config.lr_min_ratio)
                loss = loss_fn(model(crops), labels)
                if not math.isfinite(loss.item()):
                    then = (f"resume from {checkpoint_path} (--resume)" if checkpoint_path.is_file()
                            else "start again (no checkpoint had been written)")
                    raise TrainingError(f"non-finite loss in epoch {epoch + 1}; lower lr and {then}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                running += loss.item() * len(labels)
                seen += len(labels)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{running / seen:.4f}")
                if stop.now:
                    save_checkpoint(checkpoint_path, _state(batch=batch_index + 1, running=running, seen=seen))
                    break
            if stop.now:
                interrupted = True
                log.warning("stopped in epoch %d after batch %d of %d: checkpoint saved; continue with --resume",
                            epoch + 1, batch_index + 1, steps_per_epoch)
                break
            start_batch = 0
            epoch += 1
            _recalibrate_batchnorm(model, dataset, batch_size=config.batch_size, batches=config.bn_batches)
            val = _validate(model, val_items, config)
            record = {"epoch": epoch, "train_loss": running / max(seen, 1), "val_accuracy": val["accuracy"],
                      "val_loss": val["loss"], "confusion": val["confusion"]}
            with open(out_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if progress:
                tqdm.write(f"epoch {epoch}: train loss {record['train_loss']:.4f}  val accuracy {val['accuracy']:.3f}  "
                           f"val loss {val['loss']:.4f}\n{_format_confusion(val['confusion'])}")
            figures = {**extra, "epoch": str(epoch), "val_accuracy": f"{val['accuracy']:.4f}",
                       "val_confusion": json.dumps(val["confusion"])}
            if val["accuracy"] > best["accuracy"] or (val["accuracy"] == best["accuracy"] and val["loss"] < best["loss"]):
                best = {"accuracy": val["accuracy"], "loss": val["loss"], "epoch": epoch, "confusion": val["confusion"]}
                bad_epochs = 0
                save_quality_model(out_dir / "quality.safetensors", model, net_config, figures)
            else:
                bad_epochs += 1
            save_quality_model(out_dir / "last.safetensors", model, net_config, figures)
            stopped_early = bad_epochs >= config.patience
            interrupted = bool(config.stop_after and epoch >= config.stop_after and epoch < config.epochs)
            if interrupted:
                stop.request("stop_after")
            save_checkpoint(checkpoint_path, _state())
            if stop.now and not stopped_early and epoch < config.epochs:  # asked during validation: saved whole
                interrupted = True
            if stopped_early:
                log.info("early stop after epoch %d: no better validation result for %d epochs", epoch, bad_epochs)
                break
            if interrupted:
                log.warning("stopped after epoch %d: checkpoint saved; continue with --resume", epoch)
                break
    finally:
        bar.close()
        stop.uninstall()
    return {"epoch": epoch, "best_epoch": best["epoch"], "best_val_accuracy": best["accuracy"],
            "best_confusion": best.get("confusion"), "stopped_early": stopped_early, "interrupted": interrupted,
            "stopped_by": stop.by,
            # None until an epoch has finished (a run stopped in its first epoch has only a checkpoint).
            "model": str(out_dir / "quality.safetensors") if (out_dir / "quality.safetensors").is_file() else None,
            "out_dir": str(out_dir)}
