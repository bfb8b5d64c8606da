"""Input validation shared by the package: checked once, with messages that name the argument
and the expected form (``"`timestep_fs` must be a number > 0, got -1"``)."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["number", "finite_array"]


def number(name: str, value, *, integer: bool = False, minimum: float = 0.0, strict: bool = True,
           allow_none: bool = False):
    """Check that ``value`` is a finite number (an integer if ``integer``) above ``minimum``
    (``>=`` when not ``strict``); returns it as int or float."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok or not math.isfinite(float(value)) or \
            (value <= minimum if strict else value < minimum):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"`{name}` must be {kind} {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return int(value) if integer else float(value)


def finite_array(name: str, value, shape: tuple) -> np.ndarray:
    """``value`` as a float64 array of ``shape`` (-1 = any length) with finite entries."""
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a numeric array of shape {_fmt(shape)}") from None
    if a.ndim != len(shape) or any(s not in (-1, n) for s, n in zip(shape, a.shape)):
        raise ValueError(f"`{name}` must be an array of shape {_fmt(shape)}, got {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"`{name}` has a non-finite value ({a[idx]}) at index {idx}")
    return a


def _fmt(shape) -> str:
    return "(" + ", ".join("n" if s == -1 else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
