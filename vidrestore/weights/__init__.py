"""Loading and saving generator weights: safetensors only, never pickle.

A generator file is a safetensors file whose metadata holds ``"arch": "unet"`` and
``"config"`` (the JSON of the UNet's keyword arguments), so a file alone rebuilds its network.
``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes are stripped here, once.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from safetensors import safe_open

from vidrestore.errors import ModelError
from vidrestore.io._files import atomic_output
from vidrestore.nets.unet import UNet

__all__ = [
    "DEFAULT_MODEL", "default_model_path", "save_generator", "save_safetensors", "load_generator", "read_safetensors",
    "clean_state_dict",
]

DEFAULT_MODEL = "vidrestore-unet-v1.safetensors"


def default_model_path() -> Path:
    """The generator shipped inside the package."""
    return Path(str(resources.files("vidrestore.weights") / DEFAULT_MODEL))


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def save_generator(
    path: str | Path,
    model: UNet,
    config: dict[str, Any],
    extra: dict[str, str] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write ``model``'s weights atomically with its config as metadata. ``dtype`` float16 halves
    the file (what the shipped model uses; loading converts back to float32)."""
    state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in clean_state_dict(model.state_dict()).items()}
    save_safetensors(path, state, {"arch": "unet", "config": json.dumps(config), **(extra or {})})


def save_safetensors(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write ``state`` and ``metadata`` to ``path`` atomically, byte for byte the same for the
    same contents: safetensors writes metadata in hash order (different on every run), so the
    header is rewritten with the metadata keys sorted — a weights file then has one checksum."""
    data = bytearray(save(state, metadata=metadata))
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    ordered = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(ordered) <= size:  # same keys and values: the same length, padded as safetensors pads
        data[8 : 8 + size] = ordered + b" " * (size - len(ordered))
    # Written here, not by safetensors' save_file, which creates the file owner-only (0600).
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors with module./_orig_mod. prefixes stripped, metadata)`` of a safetensors file;
    :class:`ModelError` naming the path when it is missing or unreadable. Never unpickles."""
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a model file (a generator .safetensors)")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from exc
    return clean_state_dict(state), metadata


def load_generator(path: str | Path | None = None) -> tuple[UNet, dict[str, str]]:
    """Build the UNet a safetensors file describes and load it. ``None`` = shipped default.

    Returns ``(model in eval mode on CPU, metadata)``. Raises :class:`ModelError` with the path
    for a missing, non-safetensors or mismatched file.
    """
    path = Path(path) if path is not None else default_model_path()
    state, metadata = read_safetensors(path)
    if metadata.get("arch") != "unet":
        raise ModelError(f"{path}: not a vidrestore generator (metadata arch={metadata.get('arch')!r})")
    try:
        config = json.loads(metadata["config"])
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        model = UNet(**config)
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: weights do not match the network ({exc})") from exc
    return model.eval(), metadata
