"""Device and precision choice, shared by training, the engine and the VapourSynth filter.

``auto`` picks CUDA when present, else CPU; precision ``auto`` picks bf16 on CUDA with bf16
support (fp16 otherwise) and bf16 on CPUs with native bf16 (AVX-512 BF16 / AMX), else fp32.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "resolve_precision", "autocast"]

_PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (or a ``torch.device``) → a device that exists here.

    Raises:
        ValueError: an unknown device name, or a CUDA device this machine does not have.
    """
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} asked for, but CUDA is not available here; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(spec: str | None, device: torch.device) -> torch.dtype:
    """Compute dtype for autocast (``torch.float32`` means no autocast)."""
    if spec is None or spec == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if _cpu_has_bf16() else torch.float32
    if spec not in _PRECISIONS:
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32; got {spec!r}")
    if spec == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is not supported on CPU; use bf16 or fp32")
    return _PRECISIONS[spec]


def autocast(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
