"""A small analytic reference dataset for tests and examples (no quantum chemistry needed).

Ethanol (9 atoms) on an anharmonic elastic network: every atom pair closer than 2.6 Å in the
equilibrium geometry is a spring,

    E = E_0 + sum_pairs [ k (r - r0)^2 + a (r - r0)^3 ],    F = -dE/dR (analytic),

with E_0 = sum of single-atom reference energies (H -13.6, C -1029.0, O -2041.0 eV) - 3.2 eV,
so the absolute energy (~ -4150 eV) is far too large for float32 to resolve 1e-4 eV.
Geometries follow a time-correlated (AR(1)) random walk around equilibrium, like MD frames.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["TOY_ATOMREFS_EV", "toy_energy_forces", "make_toy_database"]

TOY_ATOMREFS_EV = {1: -13.6, 6: -1029.0, 8: -2041.0}
_K = 8.0  # eV / Å^2
_A = -6.0  # eV / Å^3
_RCUT = 2.6


def _ethanol():
    from ase.build import molecule

    return molecule("CH3CH2OH")


def _pairs(R0):
    d = np.linalg.norm(R0[:, None] - R0[None], axis=-1)
    i, j = np.triu_indices(len(R0), 1)
    m = d[i, j] < _RCUT
    return i[m], j[m], d[i, j][m]


def toy_energy_forces(Z, R, R0):
    """Energy (eV) and forces (eV/Å) of geometry `R` on the network built from `R0`."""
    i, j, r0 = _pairs(R0)
    v = R[i] - R[j]
    r = np.linalg.norm(v, axis=1)
    x = r - r0
    e0 = sum(TOY_ATOMREFS_EV[int(z)] for z in Z) - 3.2
    E = e0 + float(np.sum(_K * x**2 + _A * x**3))
    dEdr = 2 * _K * x + 3 * _A * x**2
    g = (dEdr / r)[:, None] * v
    F = np.zeros_like(R)
    np.add.at(F, i, -g)
    np.add.at(F, j, g)
    return E, F


def make_toy_database(path: str | os.PathLike, n_frames: int = 300, energy_unit: str = "eV",
                      atomrefs: bool = False, seed: int = 0, sigma: float = 0.06, rho: float = 0.8,
                      forces: bool = True, distance_unit: str = "Ang") -> str:
    """Write a SchNetPack ``ASEAtomsData`` database of toy ethanol frames.

    Args:
        path: ``.db`` file to create (must not exist).
        n_frames: number of frames.
        energy_unit: unit of the stored energies (forces in this unit per Å).
        atomrefs: store the single-atom reference energies in the metadata.
        seed: RNG seed.
        sigma: displacement amplitude (Å); rho: AR(1) correlation between frames.
        forces: store forces (False makes a database training must refuse).
    """
    from schnetpack.data import ASEAtomsData
    from schnetpack.units import convert_units

    atoms = _ethanol()
    Z = atoms.numbers
    R0 = atoms.positions.copy()
    c = float(convert_units("eV", energy_unit))
    cd = float(convert_units("Ang", distance_unit))
    units = {"energy": energy_unit}
    if forces:
        units["forces"] = f"{energy_unit}/{distance_unit}"
    ar = None
    if atomrefs:
        v = np.zeros(100)
        for z, e in TOY_ATOMREFS_EV.items():
            v[z] = e * c
        ar = {"energy": v.tolist()}
    db = ASEAtomsData.create(str(path), distance_unit=distance_unit, property_unit_dict=units, atomrefs=ar)
    rng = np.random.default_rng(seed)
    x = rng.normal(0, sigma, R0.shape)
    frames, props = [], []
    for _ in range(int(n_frames)):
        x = rho * x + np.sqrt(1 - rho**2) * rng.normal(0, sigma, R0.shape)
        R = R0 + x
        E, F = toy_energy_forces(Z, R, R0)
        a = atoms.copy()
        a.positions = R * cd
        frames.append(a)
        p = {"energy": np.array([E * c])}
        if forces:
            p["forces"] = F * c / cd
        props.append(p)
    db.add_systems(props, frames)
    return str(path)
