"""Typed degradation config and parameter sampling.

A :class:`DegradeConfig` holds one small config per operator (probability and parameter
ranges). :func:`sample_plan` draws, from an explicit seed, a :class:`Plan`: the ordered list of
operator records (frozen dataclasses holding concrete parameters, noise seeds included). The
plan is applied by :mod:`vidrestore.degrade.pipeline`; it serialises to JSON and replays exactly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "GaussianBlur",
    "MotionBlur",
    "Resample",
    "GaussianNoise",
    "PoissonNoise",
    "SaltAndPepper",
    "Jpeg",
    "H264",
    "Sharpen",
    "ChromaBleed",
    "Mpeg2",
    "TemporalNoise",
    "OP_TYPES",
    "BlurConfig",
    "MotionBlurConfig",
    "ResampleConfig",
    "NoiseConfig",
    "JpegConfig",
    "H264Config",
    "SharpenConfig",
    "ChromaBleedConfig",
    "Mpeg2Config",
    "DegradeConfig",
    "Plan",
    "mild_config",
    "sample_plan",
]


# --------------------------------------------------------------------------- operator records
@dataclass(frozen=True)
class GaussianBlur:
    name: ClassVar[str] = "gaussian_blur"
    kernel_size: int
    sigma: float


@dataclass(frozen=True)
class MotionBlur:
    name: ClassVar[str] = "motion_blur"
    length: float
    angle: float


@dataclass(frozen=True)
class Resample:
    name: ClassVar[str] = "resample"
    scale: float
    down_mode: str
    up_mode: str


@dataclass(frozen=True)
class GaussianNoise:
    name: ClassVar[str] = "gaussian_noise"
    mean: float
    sigma: float
    gray: bool
    seed: int


@dataclass(frozen=True)
class PoissonNoise:
    name: ClassVar[str] = "poisson_noise"
    lam: float
    gray: bool
    seed: int


@dataclass(frozen=True)
class SaltAndPepper:
    name: ClassVar[str] = "salt_and_pepper"
    snr: float
    seed: int


@dataclass(frozen=True)
class TemporalNoise:
    """Gaussian noise whose σ drifts over a clip (a single image gets σ at t=0)."""

    name: ClassVar[str] = "temporal_noise"
    sigma_min: float
    sigma_max: float
    period: float
    phase: float
    seed: int


@dataclass(frozen=True)
class Jpeg:
    name: ClassVar[str] = "jpeg"
    quality: int


@dataclass(frozen=True)
class H264:
    name: ClassVar[str] = "h264"
    crf: int
    preset: str


@dataclass(frozen=True)
class Sharpen:
    name: ClassVar[str] = "sharpen"
    amount: float
    sigma: float


@dataclass(frozen=True)
class ChromaBleed:
    name: ClassVar[str] = "chroma_bleed"
    horizontal: int
    vertical: int
    shift: float


@dataclass(frozen=True)
class Mpeg2:
    name: ClassVar[str] = "mpeg2"
    qscale: int


OP_TYPES: dict[str, type] = {
    cls.name: cls
    for cls in (GaussianBlur, MotionBlur, Resample, GaussianNoise, PoissonNoise, SaltAndPepper, TemporalNoise, Jpeg, H264,
                Sharpen, ChromaBleed, Mpeg2)
}


# --------------------------------------------------------------------------- configs
def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


# Checked when a config is built, so a bad value fails at once, named, and not only when a sample
# happens to draw it (possibly hours into a run).
def _is_number(value: Any, integer: bool = False) -> bool:
    kinds = int if integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)


def _check_probability(key: str, value: Any) -> None:
    if not (_is_number(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{key} must be a probability in [0, 1], got {value!r}")


def _check_range(key: str, value: Any, low: float = -math.inf, high: float = math.inf, *, positive: bool = False,
                 integer: bool = False) -> None:
    """``value`` is ``(lo, hi)`` with ``low <= lo <= hi <= high`` (and ``lo > 0`` when ``positive``)."""
    pair = isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_number(v, integer) for v in value)
    if not pair or not low <= value[0] <= value[1] <= high or (positive and value[0] <= 0):
        left = "0 < low" if positive else f"{low:g} <= low" if low > -math.inf else "low"
        right = f"high <= {high:g}" if high < math.inf else "high"
        kind = "integers" if integer else "numbers"
        raise ValueError(f"{key} must be two {kind} low,high with {left} <= {right}, got {value!r}")


def _check_choices(key: str, value: Any, allowed: Any) -> None:
    if not (isinstance(value, (tuple, list)) and value and all(v in allowed for v in value)):
        raise ValueError(f"{key} must list one or more of {', '.join(sorted(allowed))}, got {value!r}")


@dataclass
class BlurConfig:
    """Isotropic Gaussian blur: odd kernel size in ``kernel_size``; σ in ``sigma`` capped at size/3."""

    probability: float = 0.35
    kernel_size: tuple[int, int] = (3, 13)
    sigma: tuple[float, float] = (0.3, 3.0)

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.kernel_size", self.kernel_size, 1, integer=True)
        if self.kernel_size[0] == self.kernel_size[1] and self.kernel_size[0] % 2 == 0:
            raise ValueError(f"{name}.kernel_size {self.kernel_size} holds no odd size")
        _check_range(f"{name}.sigma", self.sigma, positive=True)

    def sample(self, rng: np.random.Generator) -> GaussianBlur:
        sizes = [k for k in range(self.kernel_size[0], self.kernel_size[1] + 1) if k % 2 == 1]
        k = int(rng.choice(sizes))
        hi = max(self.sigma[0], min(self.sigma[1], k / 3.0))
        return GaussianBlur(kernel_size=k, sigma=round(_uniform(rng, (self.sigma[0], hi)), 4))


@dataclass
class MotionBlurConfig:
    """Linear motion blur: ``length`` px and ``angle`` degrees."""

    probability: float = 0.2
    length: tuple[float, float] = (0.0, 12.0)
    angle: tuple[float, float] = (0.0, 90.0)

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.length", self.length, 0.0)
        _check_range(f"{name}.angle", self.angle)

    def sample(self, rng: np.random.Generator) -> MotionBlur:
        return MotionBlur(length=round(_uniform(rng, self.length), 3), angle=round(_uniform(rng, self.angle), 3))


@dataclass
class ResampleConfig:
    """Downsample by ``scale`` then re-upscale; modes drawn from ``modes``."""

    probability: float = 0.4
    scale: tuple[float, float] = (1.2, 4.0)
    modes: tuple[str, ...] = ("nearest", "bilinear", "bicubic")
    down_modes: tuple[str, ...] = ("bilinear", "bicubic", "area")

    def check(self, name: str) -> None:
        from vidrestore.degrade.ops import DOWN_MODES, RESAMPLE_MODES

        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.scale", self.scale, 1.0)
        _check_choices(f"{name}.modes", self.modes, RESAMPLE_MODES)
        _check_choices(f"{name}.down_modes", self.down_modes, DOWN_MODES)

    def sample(self, rng: np.random.Generator) -> Resample:
        return Resample(
            scale=round(_log_uniform(rng, self.scale), 4),
            down_mode=str(rng.choice(list(self.down_modes))),
            up_mode=str(rng.choice(list(self.modes))),
        )


@dataclass
class NoiseConfig:
    """One of Gaussian (random μ, σ), Poisson (random λ) or salt-and-pepper (random SNR)."""

    probability: float = 0.6
    kind_weights: tuple[float, float, float] = (0.6, 0.3, 0.1)  # gaussian, poisson, salt-and-pepper
    gaussian_mean: tuple[float, float] = (-0.01, 0.01)
    gaussian_sigma: tuple[float, float] = (0.004, 0.12)
    poisson_lam: tuple[float, float] = (25.0, 2000.0)
    snr: tuple[float, float] = (0.95, 0.999)
    gray_probability: float = 0.3

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        weights = self.kind_weights
        if not (isinstance(weights, (tuple, list)) and len(weights) == 3 and all(_is_number(w) and w >= 0 for w in weights)
                and sum(weights) > 0):
            raise ValueError(f"{name}.kind_weights must be three weights >= 0, not all 0, got {weights!r}")
        _check_range(f"{name}.gaussian_mean", self.gaussian_mean)
        _check_range(f"{name}.gaussian_sigma", self.gaussian_sigma, positive=True)
        _check_range(f"{name}.poisson_lam", self.poisson_lam, positive=True)
        _check_range(f"{name}.snr", self.snr, 0.0, 1.0)
        _check_probability(f"{name}.gray_probability", self.gray_probability)

    def sample(self, rng: np.random.Generator) -> GaussianNoise | PoissonNoise | SaltAndPepper:
        weights = np.asarray(self.kind_weights, dtype=np.float64)
        kind = int(rng.choice(3, p=weights / weights.sum()))
        gray = bool(rng.random() < self.gray_probability)
        if kind == 0:
            return GaussianNoise(
                mean=round(_uniform(rng, self.gaussian_mean), 5),
                sigma=round(_log_uniform(rng, self.gaussian_sigma), 5),
                gray=gray,
                seed=_seed(rng),
            )
        if kind == 1:
            return PoissonNoise(lam=round(_log_uniform(rng, self.poisson_lam), 3), gray=gray, seed=_seed(rng))
        return SaltAndPepper(snr=round(_uniform(rng, self.snr), 5), seed=_seed(rng))


@dataclass
class JpegConfig:
    probability: float = 0.45
    quality: tuple[int, int] = (50, 100)

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.quality", self.quality, 1, 100, integer=True)

    def sample(self, rng: np.random.Generator) -> Jpeg:
        return Jpeg(quality=int(rng.integers(self.quality[0], self.quality[1] + 1)))


_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")


@dataclass
class H264Config:
    """Re-encode through H.264 at a random CRF (the compression a real clip suffers)."""

    probability: float = 0.3
    crf: tuple[int, int] = (18, 38)
    presets: tuple[str, ...] = ("ultrafast", "veryfast", "medium")

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.crf", self.crf, 0, 51, integer=True)
        _check_choices(f"{name}.presets", self.presets, _X264_PRESETS)

    def sample(self, rng: np.random.Generator) -> H264:
        return H264(crf=int(rng.integers(self.crf[0], self.crf[1] + 1)), preset=str(rng.choice(list(self.presets))))


@dataclass
class TemporalNoiseConfig:
    """Clip-only: noise whose σ drifts between two levels over ``period`` frames."""

    probability: float = 0.0
    sigma: tuple[float, float] = (0.004, 0.08)
    period: tuple[float, float] = (8.0, 64.0)

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.sigma", self.sigma, positive=True)
        _check_range(f"{name}.period", self.period, positive=True)

    def sample(self, rng: np.random.Generator) -> TemporalNoise:
        a, b = sorted((_log_uniform(rng, self.sigma), _log_uniform(rng, self.sigma)))
        return TemporalNoise(
            sigma_min=round(a, 5),
            sigma_max=round(b, 5),
            period=round(_uniform(rng, self.period), 3),
            phase=round(_uniform(rng, (0.0, 2 * math.pi)), 4),
            seed=_seed(rng),
        )


@dataclass
class SharpenConfig:
    """Unsharp mask (halos of over-sharpened video): ``amount`` and blur ``sigma`` in px."""

    probability: float = 0.0
    amount: tuple[float, float] = (0.3, 2.0)
    sigma: tuple[float, float] = (0.6, 2.5)

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.amount", self.amount, 0.0)
        _check_range(f"{name}.sigma", self.sigma, positive=True)

    def sample(self, rng: np.random.Generator) -> Sharpen:
        return Sharpen(amount=round(_uniform(rng, self.amount), 4), sigma=round(_uniform(rng, self.sigma), 4))


@dataclass
class ChromaBleedConfig:
    """Low-resolution, shifted colour (analog tape, 4:1:1 DV, cheap capture chains)."""

    probability: float = 0.0
    horizontal: tuple[int, int] = (2, 6)
    vertical: tuple[int, int] = (1, 2)
    shift: tuple[float, float] = (0.0, 2.5)

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.horizontal", self.horizontal, 1, integer=True)
        _check_range(f"{name}.vertical", self.vertical, 1, integer=True)
        _check_range(f"{name}.shift", self.shift)

    def sample(self, rng: np.random.Generator) -> ChromaBleed:
        return ChromaBleed(
            horizontal=int(rng.integers(self.horizontal[0], self.horizontal[1] + 1)),
            vertical=int(rng.integers(self.vertical[0], self.vertical[1] + 1)),
            shift=round(_uniform(rng, self.shift), 3),
        )


@dataclass
class Mpeg2Config:
    """Re-encode through MPEG-2 (DVD, broadcast) at a random fixed quantiser."""

    probability: float = 0.0
    qscale: tuple[int, int] = (3, 20)

    def check(self, name: str) -> None:
        _check_probability(f"{name}.probability", self.probability)
        _check_range(f"{name}.qscale", self.qscale, 1, 31, integer=True)

    def sample(self, rng: np.random.Generator) -> Mpeg2:
        return Mpeg2(qscale=int(rng.integers(self.qscale[0], self.qscale[1] + 1)))


# Operators added after the first release draw from a second random stream (see sample_plan).
_FIRST_RELEASE = ("blur", "motion_blur", "resample", "noise", "temporal_noise", "jpeg", "h264")


@dataclass
class DegradeConfig:
    """Every operator's config, and the order they are applied in.

    ``order`` names config fields; a plan applies the sampled operators in that order (the
    physical order: optics blur, sensor/scaler, noise, then compression). ``min_ops`` ≥ 1
    guarantees at least one degradation: when fewer are drawn, enabled operators are added at
    random until there are enough.

    ``sharpen``, ``chroma_bleed`` and ``mpeg2`` (probability 0 by default: opt in, e.g.
    ``--set degrade.mpeg2.probability=0.15``) model old and broadcast video: over-sharpening
    halos, analog colour bleed, DVD-era compression.
    """

    blur: BlurConfig = field(default_factory=BlurConfig)
    motion_blur: MotionBlurConfig = field(default_factory=MotionBlurConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    temporal_noise: TemporalNoiseConfig = field(default_factory=TemporalNoiseConfig)
    jpeg: JpegConfig = field(default_factory=JpegConfig)
    h264: H264Config = field(default_factory=H264Config)
    sharpen: SharpenConfig = field(default_factory=SharpenConfig)
    chroma_bleed: ChromaBleedConfig = field(default_factory=ChromaBleedConfig)
    mpeg2: Mpeg2Config = field(default_factory=Mpeg2Config)
    order: tuple[str, ...] = (
        "blur", "motion_blur", "resample", "sharpen", "noise", "temporal_noise", "chroma_bleed", "jpeg", "mpeg2", "h264",
    )
    min_ops: int = 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("order", "min_ops"):
                group = getattr(self, f.name)
                if not isinstance(group, f.default_factory):  # type: ignore[arg-type]
                    raise ValueError(f"{f.name} must be a group of {f.default_factory.__name__} fields, "  # type: ignore[union-attr]
                                     f"got {group!r}")
                group.check(f.name)
        for key in self.order:
            if not hasattr(self, key) or key in ("order", "min_ops"):
                raise ValueError(f"unknown degradation {key!r} in order")
        if not _is_number(self.min_ops, integer=True) or self.min_ops < 1:
            raise ValueError("min_ops must be >= 1: every sample gets at least one degradation")
        if not any(getattr(self, key).probability > 0 for key in self.order):
            raise ValueError("every degradation has probability 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DegradeConfig:
        if not isinstance(data, dict):
            raise ValueError(f"a degradation config is a JSON object of groups, got {data!r}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
            if sub is not None and isinstance(value, dict):
                sub_cls = type(sub())
                known = {g.name for g in dataclasses.fields(sub_cls)}
                unknown = set(value) - known
                if unknown:
                    raise ValueError(f"unknown keys for {f.name}: {sorted(unknown)}")
                value = sub_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown degradation config keys: {sorted(unknown)}")
        return cls(**kwargs)


def mild_config() -> DegradeConfig:
    """The default operators at their gentle end: light blur, small rescales, faint noise, high
    JPEG quality and low H.264 CRF — footage that is nearly good already.

    Under the default config a sample carries 2.3 operators on average, mostly strong ones, so a
    net trained on it alone learns to smooth and sharpen everything and damages good footage
    (fine texture under faint noise comes out smoother than it went in). Training mixes some of
    these in (``TrainConfig.mild_fraction``) so it learns how little to do when little is wrong.
    """
    return DegradeConfig(
        blur=BlurConfig(probability=0.3, kernel_size=(3, 7), sigma=(0.3, 1.0)),
        motion_blur=MotionBlurConfig(probability=0.1, length=(0.0, 3.0)),
        resample=ResampleConfig(probability=0.3, scale=(1.1, 1.6)),
        noise=NoiseConfig(probability=0.6, gaussian_sigma=(0.002, 0.02), poisson_lam=(500.0, 5000.0), snr=(0.995, 0.9995)),
        jpeg=JpegConfig(probability=0.5, quality=(80, 100)),
        h264=H264Config(probability=0.3, crf=(16, 26)),
    )


@dataclass(frozen=True)
class Plan:
    """The concrete degradations for one sample, in application order."""

    ops: tuple[Any, ...]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "ops": [{"op": op.name, **dataclasses.asdict(op)} for op in self.ops]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        ops = []
        for record in data["ops"]:
            fields = dict(record)
            ops.append(OP_TYPES[fields.pop("op")](**fields))
        return cls(ops=tuple(ops), seed=int(data["seed"]))

    def describe(self) -> str:
        return ", ".join(
            op.name + "(" + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(op).items() if k != "seed") + ")"
            for op in self.ops
        )


def sample_plan(config: DegradeConfig, seed: int) -> Plan:
    """Draw a :class:`Plan` from ``config`` with ``numpy.random.default_rng(seed)``.

    The first release's operators draw from that stream exactly as they always did; operators
    added later draw from a second stream, ``default_rng([seed, 1])``, so a config that leaves
    them off replays the first release's plans (every seeded benchmark set and training stream
    stays what it was), and enabling them changes the first ones' draws only where none was
    drawn and ``min_ops`` has to add one.
    """
    rng, extra_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    chosen = [key for key in config.order if key in _FIRST_RELEASE and rng.random() < getattr(config, key).probability]
    chosen += [key for key in config.order if key not in _FIRST_RELEASE and getattr(config, key).probability > 0
               and extra_rng.random() < getattr(config, key).probability]
    enabled = [key for key in config.order if getattr(config, key).probability > 0]
    while len(chosen) < min(config.min_ops, len(enabled)):
        extra = [key for key in enabled if key not in chosen]
        chosen.append(str(rng.choice(extra)))
    chosen.sort(key=config.order.index)
    return Plan(ops=tuple(getattr(config, key).sample(rng if key in _FIRST_RELEASE else extra_rng) for key in chosen),
                seed=seed)
