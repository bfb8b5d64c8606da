"""The train/validation/test split convention (one definition for generation, labelling and
training).

``kind="time"``: contiguous blocks -- training first, then validation, and the last
``test_fraction`` of the frames is the test set (validation is ``val_fraction`` of what is
not test). Frames of an MD trajectory are correlated over ~ps, so a time split keeps test
frames away from training frames. ``kind="random"``: the same sizes from a seeded
permutation (for sparse, uncorrelated frames such as active-learning labels).
"""
from __future__ import annotations

import numpy as np

__all__ = ["SPLITS", "make_split"]

SPLITS = ("time", "random")


def make_split(n_frames: int, kind: str = "time", seed: int = 0, test_fraction: float = 0.2,
               val_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """Train/val/test row indices (sorted int arrays) of ``n_frames`` frames."""
    if kind not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {kind!r}")
    n = int(n_frames)
    n_test = int(round(test_fraction * n))
    n_rest = n - n_test
    n_val = int(round(val_fraction * n_rest))
    n_train = n_rest - n_val
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"{n} frames are too few for a train/val/test split (need at least 7)")
    idx = np.arange(n) if kind == "time" else np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(idx[:n_train]), "val": np.sort(idx[n_train:n_rest]), "test": np.sort(idx[n_rest:])}
