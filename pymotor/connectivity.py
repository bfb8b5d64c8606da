"""Covalent connectivity of a molecule and its changes along a trajectory.

One source of truth for what counts as a bond, used by the MD engine's connectivity guard
(:func:`pymotor.run_md`, checked in C++ every step) and by the comparison report's
warnings (:mod:`pymotor.compare`).

Criterion (covalent radii of Cordero et al., Dalton Trans. 2008, 2832, as tabulated in
``ase.data.covalent_radii``; distances in Angstrom):

* atoms i, j are **bonded** in a reference geometry when ``d_ij < BOND_FACTOR * (r_i + r_j)``
  (1.2: the usual factor of bond perception, e.g. ASE's ``natural_cutoffs`` with a 20 %
  margin; C-H 1.28, C-C 1.82, C-O 1.75 Angstrom);
* a bond of the reference **breaks** when ``d_ij > BREAK_FACTOR * (r_i + r_j)`` (1.6: C-H
  1.71 Angstrom; at 500 K the longest C-H in the CPNX GFN2-xTB reference is ~1.3 Angstrom);
* a new bond **forms** between atoms not bonded in the reference when
  ``d_ij < FORM_FACTOR * (r_i + r_j)`` (1.0: H...H 0.62, C...H 1.07 Angstrom; the closest
  non-bonded contacts of CPNX at 500 K are H...H ~1.7 Angstrom).

The gap between 1.2 and 1.6 (and 1.0) is a hysteresis: a stretched bond vibrating around
its equilibrium does not count as an event.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BOND_FACTOR", "BREAK_FACTOR", "FORM_FACTOR", "covalent_radii", "bonds",
           "BondEvent", "bond_events"]

BOND_FACTOR = 1.2
BREAK_FACTOR = 1.6
FORM_FACTOR = 1.0


def covalent_radii(atomic_numbers) -> np.ndarray:
    """Covalent radii (Angstrom) of the atoms, from ``ase.data.covalent_radii``."""
    from ase.data import covalent_radii as table

    z = np.asarray(atomic_numbers, dtype=int)
    if z.ndim != 1 or np.any(z < 1) or np.any(z >= len(table)):
        raise ValueError(f"`atomic_numbers` must be a 1-D array of atomic numbers 1..{len(table) - 1}")
    return np.asarray(table[z], dtype=float)


def _distances(positions: np.ndarray) -> np.ndarray:
    d = positions[..., :, None, :] - positions[..., None, :, :]
    return np.sqrt((d**2).sum(-1))


def bonds(atomic_numbers, positions, factor: float = BOND_FACTOR) -> np.ndarray:
    """Covalent bonds (i < j) of one geometry: int64 array (B, 2).

    ``positions`` (N, 3) in Angstrom; a pair is bonded when closer than ``factor`` times the
    sum of the covalent radii."""
    pos = np.asarray(positions, dtype=float)
    radii = covalent_radii(atomic_numbers)
    if pos.shape != (len(radii), 3):
        raise ValueError(f"`positions` must be an ({len(radii)}, 3) array, got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("`positions` contain non-finite values")
    d = _distances(pos)
    i, j = np.triu_indices(len(radii), k=1)
    keep = d[i, j] < factor * (radii[i] + radii[j])
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64)


@dataclass(frozen=True)
class BondEvent:
    """A bond of the reference that broke, or a new one that formed, first seen at ``frame``."""

    kind: str        # "broken" or "formed"
    i: int
    j: int
    frame: int
    distance_A: float

    def describe(self, symbols=None) -> str:
        a = f"{symbols[self.i]}{self.i}" if symbols is not None else f"atom {self.i}"
        b = f"{symbols[self.j]}{self.j}" if symbols is not None else f"atom {self.j}"
        what = "bond broke" if self.kind == "broken" else "new bond formed"
        return f"{what} between {a} and {b} at frame {self.frame} ({self.distance_A:.2f} Angstrom)"


def bond_events(atomic_numbers, positions, reference=None, *, break_factor: float = BREAK_FACTOR,
                form_factor: float = FORM_FACTOR) -> list[BondEvent]:
    """First frame of every connectivity change of a trajectory.

    ``positions`` (T, N, 3) Angstrom; ``reference`` (N, 3) defines the bonds (default: frame 0).
    Returns one :class:`BondEvent` per pair that changed, ordered by frame."""
    pos = np.asarray(positions, dtype=float)
    radii = covalent_radii(atomic_numbers)
    n = len(radii)
    if pos.ndim != 3 or pos.shape[1:] != (n, 3):
        raise ValueError(f"`positions` must be a (n_frames, {n}, 3) array, got {pos.shape}")
    ref = pos[0] if reference is None else np.asarray(reference, dtype=float)
    bonded = np.zeros((n, n), dtype=bool)
    b = bonds(atomic_numbers, ref)
    bonded[b[:, 0], b[:, 1]] = True
    iu, ju = np.triu_indices(n, k=1)
    rsum = radii[iu] + radii[ju]
    is_bond = bonded[iu, ju]
    first = np.full(len(iu), -1)
    dist_at = np.zeros(len(iu))
    for start in range(0, len(pos), 512):  # bounded memory for long trajectories
        blk = pos[start:start + 512]
        if np.isfinite(blk).all():  # the C++ kernel, pdist order = triu_indices order (~40x numpy)
            from .analysis import pairwise_distances

            d = pairwise_distances(blk)                                  # (t, P)
        else:
            d = np.sqrt(((blk[:, iu] - blk[:, ju]) ** 2).sum(-1))
        with np.errstate(invalid="ignore"):
            event = np.where(is_bond, ~(d <= break_factor * rsum), d < form_factor * rsum)
        hit = event.any(0) & (first < 0)
        if hit.any():
            t = event[:, hit].argmax(0)
            first[hit] = start + t
            dist_at[hit] = d[t, np.flatnonzero(hit)]
    out = [BondEvent("broken" if is_bond[k] else "formed", int(iu[k]), int(ju[k]), int(first[k]),
                     float(dist_at[k])) for k in np.flatnonzero(first >= 0)]
    return sorted(out, key=lambda e: (e.frame, e.i, e.j))
