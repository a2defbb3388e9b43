"""Quality classifier accuracy on held-out photos, against NIQE.

    .venv/bin/python benchmarks/quality_accuracy.py [--model FILE] [--photos data/curated/val]
        [--pristine data/curated/train] [--crops-per-image 8]

A held-out labelled set is built with the labeller (``vidrestore quality label``, seed 1234)
from ``--photos`` — by default the curated val split (else the corpus's raw val split), photos the
shipped classifier never saw, not even for early stopping —
keeping only sources whose background score passes curation (≥ 0.2: no flat graphics). Prints:

1. the classifier: 3-class accuracy, confusion matrix, and the Spearman rank correlation of its
   score with the labeller's numeric severity, sign flipped so that + means agreement;
2. NIQE (Mittal, Soundararajan & Bovik 2013), implemented below: MSCN coefficients, the 36
   GGD/AGGD features on 64-px patches at two scales, a multivariate Gaussian "pristine" model
   fitted on the sharpest patches (≥ 0.75 × the image's sharpest) of the ``--pristine`` photos
   (the classifier's training photos, at 0.75 scale like the labeller's average crop), and the
   Mahalanobis-like distance to it. Its Spearman figure uses −NIQE; its accuracy uses the two
   thresholds that maximise accuracy *on this very set* (an optimistic upper bound for NIQE).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from scipy.special import gamma as gamma_fn
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ------------------------------------------------------------------------------------------- NIQE
_GAMMAS = np.arange(0.2, 10.0, 0.001)
_R_GGD = gamma_fn(1 / _GAMMAS) * gamma_fn(3 / _GAMMAS) / gamma_fn(2 / _GAMMAS) ** 2
_R_AGGD = gamma_fn(2 / _GAMMAS) ** 2 / (gamma_fn(1 / _GAMMAS) * gamma_fn(3 / _GAMMAS))
PATCH = 64


def _mscn(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = cv2.GaussianBlur(gray, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(cv2.GaussianBlur(gray * gray, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE) - mu * mu))
    return (gray - mu) / (sigma + 1.0), sigma


def _ggd(x: np.ndarray) -> list[float]:
    rho = np.mean(x * x) / (np.mean(np.abs(x)) ** 2 + 1e-12)
    return [float(_GAMMAS[np.argmin(np.abs(rho - _R_GGD))]), float(np.mean(x * x))]


def _aggd(x: np.ndarray) -> list[float]:
    left, right = x[x < 0], x[x > 0]
    left_std = np.sqrt(np.mean(left * left)) if left.size else 1e-6
    right_std = np.sqrt(np.mean(right * right)) if right.size else 1e-6
    g = left_std / right_std
    r = np.mean(np.abs(x)) ** 2 / (np.mean(x * x) + 1e-12) * (g**3 + 1) * (g + 1) / (g * g + 1) ** 2
    alpha = float(_GAMMAS[np.argmin(np.abs(r - _R_AGGD))])
    mean = (right_std - left_std) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha) * np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    return [alpha, float(mean), float(left_std**2), float(right_std**2)]


def _patch_features(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(patches, 36)`` features and ``(patches,)`` sharpness of a float gray image in [0, 255]."""
    features, sharpness = [], []
    for scale in (1, 2):
        image = gray if scale == 1 else cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_CUBIC)
        mscn, sigma = _mscn(image)
        size = PATCH // scale
        rows = []
        for top in range(0, mscn.shape[0] - size + 1, size):
            for left in range(0, mscn.shape[1] - size + 1, size):
                p = mscn[top : top + size, left : left + size]
                pairs = (p[:, :-1] * p[:, 1:], p[:-1, :] * p[1:, :], p[:-1, :-1] * p[1:, 1:], p[:-1, 1:] * p[1:, :-1])
                rows.append(_ggd(p) + sum((_aggd(q) for q in pairs), []))
                if scale == 1:
                    sharpness.append(float(sigma[top : top + size, left : left + size].mean()))
        features.append(np.array(rows))
    return np.hstack(features), np.array(sharpness)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64) * 255.0


def fit_pristine(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """MVG (mean, covariance) of the sharp patches of float RGB images in [0, 1]."""
    kept = []
    for image in images:
        features, sharpness = _patch_features(_gray(image))
        kept.append(features[sharpness >= 0.75 * sharpness.max()])
    features = np.vstack(kept)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def niqe(image: np.ndarray, pristine: tuple[np.ndarray, np.ndarray]) -> float:
    """NIQE of a float RGB image in [0, 1] (higher = worse)."""
    features, _ = _patch_features(_gray(image))
    mu, cov = features.mean(axis=0), np.cov(features, rowvar=False) if len(features) > 1 else np.zeros((36, 36))
    diff = pristine[0] - mu
    return float(np.sqrt(diff @ np.linalg.pinv((pristine[1] + cov) / 2) @ diff))


# ------------------------------------------------------------------------------------- benchmark
def best_threshold_accuracy(values: np.ndarray, labels: np.ndarray) -> float:
    """Best 3-class accuracy of ``class = 2 if v > b else 1 if v > a else 0`` over thresholds a ≤ b."""
    candidates = np.unique(np.quantile(values, np.linspace(0, 1, 101)))
    best = 0.0
    for i, a in enumerate(candidates):
        for b in candidates[i:]:
            best = max(best, float(np.mean(np.where(values > b, 2, np.where(values > a, 1, 0)) == labels)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="default: vidrestore/weights/quality-v1.safetensors")
    parser.add_argument("--photos", default=None, help="default data/curated/val, else data/corpus/val")
    parser.add_argument("--pristine", default=None, help="default data/curated/train, else data/corpus/train")
    parser.add_argument("--crops-per-image", type=int, default=8)
    parser.add_argument("--max-pristine", type=int, default=12, help="pristine photos used (the most textured first)")
    args = parser.parse_args()
    from vidrestore.bench.testset import default_photos

    args.photos = args.photos or str(default_photos(ROOT))
    args.pristine = args.pristine or str(default_photos(ROOT, "train"))

    from vidrestore.curate import background_stats
    from vidrestore.data import list_media, load_rgb, load_rgb_float
    from vidrestore.nets.quality import CLASSES
    from vidrestore.quality import QualityModel, label_folder, load_labels

    model = QualityModel(args.model)

    def photos(folder: str) -> list[tuple[float, Path]]:
        scored = [(background_stats(load_rgb(p)).score, p) for p in list_media(folder)]
        return sorted(((s, p) for s, p in scored if s >= 0.2), reverse=True)

    with tempfile.TemporaryDirectory() as tmp:
        sources = Path(tmp) / "sources"
        sources.mkdir()
        for _, path in photos(args.photos):
            (sources / path.name).symlink_to(path)
        label_folder(sources, Path(tmp) / "set", crops_per_image=args.crops_per_image, seed=1234, progress=False)
        items = load_labels(Path(tmp) / "set")
        labels = np.array([i.label for i in items])
        severity = np.array([i.severity for i in items])
        images = [load_rgb_float(i.path) for i in items]

    results = [model.predict_array(image) for image in images]
    predicted = np.array([CLASSES.index(r.label) for r in results])
    scores = np.array([r.score for r in results])
    confusion = np.zeros((3, 3), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    print(f"held-out set: {len(items)} samples from {len({i.source for i in items})} photos in {args.photos}")
    print(f"classifier: accuracy {np.mean(predicted == labels):.3f}, Spearman(score, -severity) "
          f"{spearmanr(scores, -severity).statistic:.3f}")
    print("confusion (rows true poor/medium/good, columns predicted):\n" + str(confusion))

    pristine_photos = [load_rgb_float(p) for _, p in photos(args.pristine)[: args.max_pristine]]
    pristine = fit_pristine([cv2.resize(im, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA) for im in pristine_photos])
    quality = -np.array([niqe(image, pristine) for image in images])
    print(f"NIQE (pristine model from {len(pristine_photos)} photos in {args.pristine}): accuracy with thresholds "
          f"tuned on this set {best_threshold_accuracy(quality, labels):.3f}, Spearman(-NIQE, -severity) "
          f"{spearmanr(quality, -severity).statistic:.3f}")


if __name__ == "__main__":
    main()
