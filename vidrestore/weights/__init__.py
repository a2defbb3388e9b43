"""Loading and saving generator weights: safetensors only, never pickle.

A generator file is a safetensors file whose metadata holds ``"arch": "unet"`` and
``"config"`` (the JSON of the UNet's keyword arguments), so a file alone rebuilds its network.
``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes are stripped here, once.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from vidrestore.errors import ModelError
from vidrestore.nets.unet import UNet

__all__ = ["DEFAULT_MODEL", "default_model_path", "save_generator", "load_generator", "read_safetensors", "clean_state_dict"]

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in clean_state_dict(model.state_dict()).items()}
    metadata = {"arch": "unet", "config": json.dumps(config), **(extra or {})}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".partial")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make a shared weights file unreadable to others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors with module./_orig_mod. prefixes stripped, metadata)`` of a safetensors file;
    :class:`ModelError` naming the path when it is missing or unreadable. Never unpickles."""
    path = Path(path)
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
