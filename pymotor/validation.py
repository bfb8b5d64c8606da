"""Input validation shared by the package: checked once, with messages that name the argument
and the expected form (``"`timestep_fs` must be a number > 0, got -1"``).

Scalars: :func:`number`, :func:`one_of`. Arrays: :func:`finite_array` (any fixed shape),
:func:`trajectory` ((n_frames, n_atoms, 3)), :func:`atom_weights`, :func:`series`,
:func:`quadruples`. Every function takes the argument's name first and returns the value in
the form the caller computes with. A value of the wrong type raises :class:`ArgumentTypeError`
(both a ``TypeError`` and a ``ValueError``); a value of the right type but out of range or
shape, ``ValueError``. The C++ kernels repeat only cheap checks (dtype, contiguity, dimensions).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["ArgumentTypeError", "number", "one_of", "float_array", "finite_array", "trajectory",
           "atom_weights", "series", "quadruples"]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. A ``TypeError``, and a ``ValueError`` too, so that callers
    that catch every bad argument as a ``ValueError`` catch it."""


# ---- scalars ------------------------------------------------------------------------------------
def number(name: str, value, *, integer: bool = False, minimum: float = 0.0, strict: bool = True,
           allow_none: bool = False):
    """Check that ``value`` is a finite number (an integer if ``integer``) above ``minimum``
    (``>=`` when not ``strict``); returns it as int or float."""
    if value is None and allow_none:
        return None
    expected = f"{'an integer' if integer else 'a number'} {'>' if strict else '>='} {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        raise ArgumentTypeError(f"`{name}` must be {expected}, got {value!r}")
    if not math.isfinite(value) or (value <= minimum if strict else value < minimum):
        raise ValueError(f"`{name}` must be {expected}, got {value!r}")
    return int(value) if integer else float(value)


def one_of(name: str, value, options):
    """``value`` if it is one of ``options``; the message lists them (``'a', 'b' or 'c'``)."""
    if value not in options:
        *first, last = [repr(o) for o in options]
        expected = f"{', '.join(first)} or {last}" if first else last
        raise ValueError(f"`{name}` must be {expected}, got {value!r}")
    return value


# ---- arrays -------------------------------------------------------------------------------------
def float_array(name: str, value) -> np.ndarray:
    """``value`` as a C-contiguous float64 array; real numbers only (ints, floats)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        return np.ascontiguousarray(value, dtype=np.float64)
    try:
        a = np.asarray(value)
    except Exception as exc:  # ragged lists etc.
        raise ArgumentTypeError(f"`{name}` must be a numeric array, got {type(value).__name__}") from exc
    if a.dtype.kind not in "fiu":
        raise ArgumentTypeError(f"`{name}` must be a real numeric array, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def finite_array(name: str, value, shape: tuple) -> np.ndarray:
    """``value`` as a float64 array of ``shape`` (-1 = any length) with finite entries."""
    a = float_array(name, value)
    if a.ndim != len(shape) or any(s not in (-1, n) for s, n in zip(shape, a.shape)):
        raise ValueError(f"`{name}` must be an array of shape {_fmt(shape)}, got {a.shape}")
    _check_finite(name, a)
    return a


def trajectory(name: str, value, *, min_atoms: int = 1, min_frames: int = 1, atoms=None) -> np.ndarray:
    """(n_frames, n_atoms, 3) float64 C-contiguous array, finite (only the columns of
    ``atoms``, if given: kernels that read a few atoms need not scan all of them)."""
    a = float_array(name, value)
    if a.ndim != 3 or a.shape[2] != 3:
        hint = f"; for one frame use `{name}[None]`" if a.ndim == 2 and a.shape[-1] == 3 else ""
        raise ValueError(f"`{name}` must be a (n_frames, n_atoms, 3) array, got {a.shape}{hint}")
    if a.shape[0] < min_frames:
        raise ValueError(f"`{name}` must have at least {min_frames} frame(s), got {a.shape[0]}")
    if a.shape[1] < min_atoms:
        raise ValueError(f"`{name}` must have at least {min_atoms} atom(s), got {a.shape[1]}")
    if atoms is None:
        _check_finite(name, a)
    else:
        cols = np.unique(np.asarray(atoms, dtype=np.int64))
        _check_finite(name, a, cols[(cols >= 0) & (cols < a.shape[1])])
    return a


def atom_weights(name: str, value, n_atoms: int, *, allow_none: bool = True):
    """(n_atoms,) positive finite float64 weights, or None."""
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"`{name}` is required")
    a = float_array(name, value)
    if a.ndim != 1 or a.shape[0] != n_atoms:
        raise ValueError(f"`{name}` must be an (n_atoms,) = ({n_atoms},) array, got {a.shape}")
    _check_finite(name, a)
    if (a <= 0).any():
        raise ValueError(f"`{name}` must be positive, got {a[a <= 0][0]!r}")
    return a


def series(name: str, value) -> np.ndarray:
    """(n,) finite float64 array."""
    a = float_array(name, value)
    if a.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array (n_frames,), got {a.shape}")
    _check_finite(name, a)
    return a


def quadruples(name: str, value, n_atoms: int) -> np.ndarray:
    """(n, 4) int64 atom indices in [0, n_atoms) (a single (4,) is one quadruple)."""
    a = np.asarray(value)
    if a.dtype.kind not in "iu":
        raise ArgumentTypeError(f"`{name}` must be an integer array, got dtype {a.dtype}")
    if a.ndim == 1 and a.shape[0] == 4:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"`{name}` must be an (n_dihedrals, 4) array, got {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= n_atoms):
        raise ValueError(f"`{name}` holds atom indices outside [0, {n_atoms - 1}]")
    return np.ascontiguousarray(a, dtype=np.int64)


def _check_finite(name: str, a: np.ndarray, columns=None) -> None:
    """Raise naming the first non-finite entry of ``a`` (of ``a[:, columns]`` if given)."""
    sub = a if columns is None else a[:, columns]
    if np.isfinite(sub).all():
        return
    idx = [int(i) for i in np.argwhere(~np.isfinite(sub))[0]]
    if columns is not None:
        idx[1] = int(columns[idx[1]])
    idx = tuple(idx)
    raise ValueError(f"`{name}` has a non-finite value ({a[idx]}) at index {idx}")


def _fmt(shape) -> str:
    return "(" + ", ".join("n" if s == -1 else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
