"""Checks for option values at the public boundary: numbers from numpy code count as numbers."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["integer", "real"]


def integer(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an ``int``: a whole number (Python's or numpy's, not a bool) >= ``minimum``
    (and <= ``maximum``).

    Raises:
        ValueError: naming ``name`` and what it must be.
    """
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum
            or (maximum is not None and value > maximum)):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def real(value: Any, name: str, low: float, high: float = math.inf, *, unit: str = "") -> float:
    """``value`` as a ``float``: a real number (Python's or numpy's, not a bool) in ``[low, high]``
    (``[low, inf)`` when ``high`` is infinite: infinity and NaN are refused).

    Raises:
        ValueError: naming ``name`` and what it must be.
    """
    if not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real):
        number = float(value)
        if low <= number <= high and math.isfinite(number):
            return number
    bounds = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
    raise ValueError(f"{name} must be a number {bounds}{f' ({unit})' if unit else ''}, got {value!r}")
