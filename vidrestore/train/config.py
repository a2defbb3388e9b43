"""Typed training config: a dataclass with defaults, CLI overrides that reject unknown keys,
and JSON round trip (saved with every run).

Overrides are ``key=value`` strings; nested fields use dots (``generator.base_channels=48``,
``degrade.noise.probability=0.8``); tuples are comma-separated (``degrade.jpeg.quality=30,90``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidrestore.degrade import DegradeConfig, mild_config
from vidrestore.io._files import atomic_output

__all__ = ["GeneratorConfig", "DiscriminatorConfig", "TrainConfig", "apply_overrides", "changed_fields"]


@dataclass
class GeneratorConfig:
    base_channels: int = 32
    channel_multipliers: tuple[int, ...] = (1, 2, 4, 8)
    encoder_blocks: tuple[int, ...] = (2, 2, 2, 1)  # the shipped model's; (1, 1, 1, 1) is 35 % cheaper
    decoder_blocks: tuple[int, ...] = (2, 2, 2, 1)
    middle_blocks: int = 2
    gate: bool = False  # per-pixel weight on the correction (see UNet); grows onto gate-less weights


@dataclass
class DiscriminatorConfig:
    base_channels: int = 32
    layers: int = 3


@dataclass
class TrainConfig:
    train_data: str = "data/corpus/train"
    val_data: str = "data/corpus/val"
    out_dir: str = "runs/default"
    init_from: str = ""  # warm-start generator weights (safetensors); a smaller U-Net (fewer blocks, narrower levels) grows function-preservingly (UNet.load_grown)
    train_only: tuple[str, ...] = ()  # generator parameter-name prefixes to train (e.g. gate); the rest stay frozen; empty = all
    seed: int = 0
    steps: int = 20_000  # generator steps in the adversarial phase
    stop_after: int = 0  # stop (checkpointed) at this global step; 0 = run to the end; not saved: a resume runs to the end
    g_pretrain_steps: int = 0  # L1-only generator steps first (no discriminator: the PSNR warm-up of ESRGAN)
    d_pretrain_steps: int = 200  # discriminator-only steps before the adversarial phase
    batch_size: int = 16  # per process
    patch_size: int = 128
    scale_range: tuple[float, float] = (0.25, 2.0)  # crop scale; above 1 enlarges (soft clean targets)
    mild_fraction: float = 0.25  # share of training items degraded from ``mild`` instead of ``degrade``
    clean_fraction: float = 0.0  # share of items left undegraded (input = target: leave good footage alone)
    defocus_fraction: float = 0.2  # share of items whose clean target is itself blurred (soft and correct)
    defocus_sigma: tuple[float, float] = (0.8, 3.0)
    lr_g: float = 4e-4
    lr_d: float = 2e-4
    lr_min_ratio: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # largest gradient norm of G and of D per step; 0 = no clipping
    k1: float = 1.0  # L1 weight
    l1_sample_eps: float = 0.0  # > 0: the L1 term is the batch mean of eps·log(1 + L1_i/eps) over samples (see losses.sample_balanced); 0 = plain mean (the spec)
    k2: float = 1e-4  # GAN weight
    ema_decay: float = 0.999
    val_every: int = 500
    val_samples: int = 64
    checkpoint_every: int = 250
    log_every: int = 25
    image_every: int = 1000
    num_workers: int = 1
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | bf16 | fp32 (fp16 is refused: no loss scaling; auto picks fp32 on a GPU without bf16)
    channels_last: bool = True
    compile: bool = False  # torch.compile the generator's training forward (measure first: benchmarks/train_throughput.py --compile)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    mild: DegradeConfig = field(default_factory=mild_config)  # near-good footage (see mild_fraction)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically: a run's ``config.json`` is what a plain resume loads."""
        with atomic_output(path) as temporary:
            temporary.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def check(self) -> None:
        """Raise ValueError naming the first setting out of its range (before a run starts)."""
        minimum = {"batch_size": 1, "val_every": 1, "checkpoint_every": 1, "log_every": 1, "image_every": 1,
                   "val_samples": 1, "steps": 0, "stop_after": 0, "g_pretrain_steps": 0, "d_pretrain_steps": 0,
                   "warmup_steps": 0, "num_workers": 0, "threads": 0}
        for name, low in minimum.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        # Validation crops (max(patch_size, 128) px; degraded, clean and a soft copy) are held in memory.
        side = max(self.patch_size, 128)
        held = self.val_samples * 3 * 3 * side * side * 4
        if held > 8 * 2**30:
            raise ValueError(f"val_samples={self.val_samples} would hold {held / 2**30:.0f} GiB of validation crops "
                             f"of {side} px in memory (8 GiB at most): use fewer")
        # Each discriminator layer halves the crop (2^layers), and the soft-input check halves it (2).
        smallest = 2 ** max(1, self.discriminator.layers)
        if self.patch_size < smallest:
            raise ValueError(f"patch_size must be at least {smallest} "
                             f"(discriminator.layers={self.discriminator.layers}), got {self.patch_size}")
        for name in ("out_dir", "train_data", "val_data"):  # "" would be the current folder, searched recursively
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must name a folder (it was empty)")
        for name in ("lr_g", "lr_d"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be > 0 and finite, got {getattr(self, name)}")
        for name in ("k1", "k2", "weight_decay"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be >= 0 and finite, got {getattr(self, name)}")
        _check_networks(self.generator, self.discriminator)
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")
        if not 0 <= self.lr_min_ratio <= 1:
            raise ValueError(f"lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        if not self.l1_sample_eps >= 0:
            raise ValueError(f"l1_sample_eps must be >= 0 (0: the plain mean), got {self.l1_sample_eps}")
        for name in ("mild_fraction", "clean_fraction", "defocus_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("scale_range", "defocus_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {low},{high}")
        if not self.grad_clip >= 0:
            raise ValueError(f"grad_clip must be >= 0 (0: no clipping), got {self.grad_clip}")
        if not 0 <= self.ema_decay <= 1:
            raise ValueError(f"ema_decay must be in [0, 1], got {self.ema_decay}")
        if self.steps + self.g_pretrain_steps + self.d_pretrain_steps == 0:
            raise ValueError("nothing to train: steps, g_pretrain_steps and d_pretrain_steps are all 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_json_object(path))


def _check_networks(generator: GeneratorConfig, discriminator: DiscriminatorConfig) -> None:
    """Network sizes torch would only refuse with a traceback, or after a warm-up phase."""
    levels = len(generator.channel_multipliers)
    if not levels or len(generator.encoder_blocks) != levels or len(generator.decoder_blocks) != levels:
        raise ValueError("generator.channel_multipliers, encoder_blocks and decoder_blocks need one entry per level, "
                         f"got {levels}, {len(generator.encoder_blocks)}, {len(generator.decoder_blocks)}")
    if generator.base_channels < 1 or min(generator.channel_multipliers) < 1:
        raise ValueError("generator.base_channels and channel_multipliers must be at least 1, got "
                         f"{generator.base_channels} and {generator.channel_multipliers}")
    if min(generator.encoder_blocks + generator.decoder_blocks + (generator.middle_blocks,)) < 0:
        raise ValueError("generator.encoder_blocks, decoder_blocks and middle_blocks must be at least 0")
    if discriminator.base_channels < 1 or discriminator.layers < 0:
        raise ValueError("discriminator.base_channels must be at least 1 and layers at least 0, got "
                         f"{discriminator.base_channels} and {discriminator.layers}")


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; ValueError naming the file when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a config file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a JSON text file") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of settings, got a {type(data).__name__}")
    return data


def _build(cls: type, data: dict[str, Any], prefix: str, base: Any = None) -> Any:
    """``cls`` from a (possibly partial) dict: missing fields keep ``base``'s values, else the
    field defaults — for a nested group, the *field's* default (``mild`` starts from
    :func:`~vidrestore.degrade.mild_config`, not from ``DegradeConfig()``)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(prefix + k for k in unknown)}")
    base = base if base is not None else cls()
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ValueError(f"{prefix}{name}: expected an object of settings, got {value!r}")
            value = _build(hint, value, prefix + name + ".", getattr(base, name))
        else:
            value = _typed(value, hint, prefix + name)
        kwargs[name] = value
    return dataclasses.replace(base, **kwargs)


def _typed(value: Any, hint: Any, key: str) -> Any:
    """A JSON value as the field's type wants it — the checks ``--set`` makes by parsing: a list
    of the right length for a tuple, an integer (not a bool) for int, a number for float (an
    integer is fine), a bool, a string. ValueError naming ``key`` otherwise."""
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        item_types = _item_types(hint, len(value))
        if len(item_types) != len(value):
            raise ValueError(f"{key}: expected {len(item_types)} values, got {list(value)!r}")
        return tuple(_typed(item, item_type, key) for item, item_type in zip(value, item_types))
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    fits = {bool: isinstance(value, bool), int: number and isinstance(value, int), float: number,
            str: isinstance(value, str)}.get(hint, True)
    if not fits:
        raise ValueError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return float(value) if hint is float else value


def _item_types(hint: Any, count: int) -> list[Any]:
    """The item types of a ``tuple[...]`` hint for ``count`` items (``tuple[int, ...]``: any count)."""
    args = typing.get_args(hint)
    return [args[0]] * count if (len(args) == 2 and args[1] is Ellipsis) else list(args)


def _parse(text: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        parts = [p for p in text.split(",") if p != ""]
        item_types = _item_types(hint, len(parts))
        if len(item_types) != len(parts):
            raise ValueError(f"expected {len(item_types)} comma-separated values, got {text!r}")
        return tuple(_parse(p, t) for p, t in zip(parts, item_types))
    if hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if hint in (int, float, str):
        return hint(text)
    raise ValueError(f"cannot parse {text!r} as {hint}")


def changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ between two ``to_dict()`` trees (lists and tuples
    compare equal)."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += changed_fields(a, b, prefix + key + ".")
        elif (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            changed.append(prefix + key)
    return changed


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """Return a copy of ``config`` with ``key=value`` overrides applied (dots for nesting)."""
    config = dataclasses.replace(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, text = item.split("=", 1)
        parts = key.split(".")
        target = config
        chain = [config]
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(target) or part not in {f.name for f in dataclasses.fields(target)}:
                raise ValueError(f"unknown config key {key!r}")
            target = getattr(target, part)
            chain.append(target)
        leaf = parts[-1]
        if not dataclasses.is_dataclass(target) or leaf not in {f.name for f in dataclasses.fields(target)}:
            raise ValueError(f"unknown config key {key!r}")
        hint = typing.get_type_hints(type(target))[leaf]
        if dataclasses.is_dataclass(hint):
            raise ValueError(f"{key!r} is a group; set one of its fields")
        try:
            value = _parse(text, hint)
        except ValueError as exc:  # "expected 2 comma-separated values" alone does not say where
            raise ValueError(f"{key}={text}: {exc}") from exc
        # Rebuild the chain bottom-up so no shared default object is mutated.
        new = dataclasses.replace(target, **{leaf: value})
        for parent, name in zip(reversed(chain[:-1]), reversed(parts[:-1])):
            new = dataclasses.replace(parent, **{name: new})
        config = new
    return config
