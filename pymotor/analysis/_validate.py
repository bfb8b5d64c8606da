"""Input validation for pymotor.analysis: checked once, here, with messages that name the
argument. The C++ kernels repeat only cheap checks (dtype, contiguity, dimensions)."""
from __future__ import annotations

import numbers

import numpy as np


def _shape(a) -> str:
    shape = getattr(a, "shape", None)
    if shape is None:
        try:
            shape = np.shape(a)
        except Exception:  # ragged input
            return f"a {type(a).__name__}"
    return str(tuple(shape))


def _as_float64(a, name: str) -> np.ndarray:
    if isinstance(a, np.ndarray) and a.dtype.kind in "fiu":
        return np.ascontiguousarray(a, dtype=np.float64)
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"`{name}` must be a numeric array, got {type(a).__name__}") from exc
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"`{name}` must be a real numeric array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"`{name}` contains a non-finite value at index {tuple(int(i) for i in bad)}")


def trajectory(a, name: str = "positions", *, min_atoms: int = 1, min_frames: int = 1,
               atoms=None) -> np.ndarray:
    """(n_frames, n_atoms, 3) float64 C-contiguous array, finite (only the columns of
    ``atoms``, if given: kernels that read a few atoms need not scan all of them)."""
    arr = _as_float64(a, name)
    if arr.ndim != 3 or arr.shape[2] != 3:
        hint = f"; for one frame use `{name}[None]`" if arr.ndim == 2 and arr.shape[-1] == 3 else ""
        raise ValueError(
            f"`{name}` must be a (n_frames, n_atoms, 3) array, got {_shape(arr)}{hint}"
        )
    if arr.shape[0] < min_frames:
        raise ValueError(f"`{name}` must have at least {min_frames} frame(s), got {arr.shape[0]}")
    if arr.shape[1] < min_atoms:
        raise ValueError(f"`{name}` must have at least {min_atoms} atom(s), got {arr.shape[1]}")
    if atoms is None:
        _finite(arr, name)
    else:
        cols = np.unique(np.asarray(atoms, dtype=np.int64))
        cols = cols[(cols >= 0) & (cols < arr.shape[1])]
        sub = arr[:, cols]
        if not np.isfinite(sub).all():
            t, k, c = np.argwhere(~np.isfinite(sub))[0]
            raise ValueError(f"`{name}` contains a non-finite value at index "
                             f"{(int(t), int(cols[k]), int(c))}")
    return arr


def atom_weights(w, n_atoms: int, name: str = "masses", *, allow_none: bool = True):
    """(n_atoms,) positive finite float64 weights, or None."""
    if w is None:
        if allow_none:
            return None
        raise ValueError(f"`{name}` is required")
    arr = _as_float64(w, name)
    if arr.ndim != 1 or arr.shape[0] != n_atoms:
        raise ValueError(f"`{name}` must be an (n_atoms,) = ({n_atoms},) array, got {_shape(arr)}")
    _finite(arr, name)
    if (arr <= 0).any():
        raise ValueError(f"`{name}` must be positive, got {arr[arr <= 0][0]!r}")
    return arr


def series(x, name: str) -> np.ndarray:
    arr = _as_float64(x, name)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array (n_frames,), got {_shape(arr)}")
    _finite(arr, name)
    return arr


def positive_int(v, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {v}")
    return int(v)


def positive_float(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"`{name}` must be a number, got {type(v).__name__}")
    v = float(v)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"`{name}` must be a positive finite number, got {v}")
    return v


def quadruples(q, n_atoms: int, name: str = "quadruples") -> np.ndarray:
    arr = np.asarray(q)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"`{name}` must be an integer array, got dtype {arr.dtype}")
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"`{name}` must be an (n_dihedrals, 4) array, got {_shape(arr)}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_atoms):
        raise ValueError(f"`{name}` holds atom indices outside [0, {n_atoms - 1}]")
    return np.ascontiguousarray(arr, dtype=np.int64)
