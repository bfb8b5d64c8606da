"""Analytic reference potentials (tests, integrator checks): evaluated in C++."""
from __future__ import annotations

import numpy as np

from .. import _core


class HarmonicPotential:
    """E = sum_i k/2 |r_i - c_i|^2: isotropic oscillators tethered to ``centers_A``.

    ``k_eV_per_A2`` is the force constant in eV/Angstrom^2; the angular frequency of atom i
    is sqrt(k/m_i). An analytic reference for integrator tests."""

    backend = "harmonic"

    def __init__(self, k_eV_per_A2: float, centers_A):
        self.k_eV_per_A2 = float(k_eV_per_A2)
        self.centers_A = np.ascontiguousarray(centers_A, dtype=float)
        if not self.k_eV_per_A2 > 0:
            raise ValueError(f"`k_eV_per_A2` must be positive, got {k_eV_per_A2}")
        if self.centers_A.ndim != 2 or self.centers_A.shape[1] != 3:
            raise ValueError(f"`centers_A` must be an (n_atoms, 3) array, got {self.centers_A.shape}")

    def potential(self, atomic_numbers):
        if len(atomic_numbers) != len(self.centers_A):
            raise ValueError(f"`atoms` has {len(atomic_numbers)} atoms but the harmonic potential "
                             f"has {len(self.centers_A)} centres")
        return _core.HarmonicPotential(self.k_eV_per_A2, self.centers_A)

    def describe(self) -> dict:
        return {"kind": "HarmonicPotential", "k_eV_per_A2": self.k_eV_per_A2}


class LennardJonesPotential:
    """Lennard-Jones 12-6 (``epsilon_eV``, ``sigma_A``), truncated and shifted at ``cutoff_A``,
    on a Verlet list with ``skin_A``."""

    backend = "lennard-jones"

    def __init__(self, epsilon_eV: float, sigma_A: float, cutoff_A: float, skin_A: float = 0.5):
        for name, v in (("epsilon_eV", epsilon_eV), ("sigma_A", sigma_A), ("cutoff_A", cutoff_A)):
            if not v > 0:
                raise ValueError(f"`{name}` must be positive, got {v}")
        if not skin_A >= 0:
            raise ValueError(f"`skin_A` must be >= 0, got {skin_A}")
        self.args = (float(epsilon_eV), float(sigma_A), float(cutoff_A), float(skin_A))

    def potential(self, atomic_numbers):
        return _core.LennardJonesPotential(*self.args)

    def describe(self) -> dict:
        return dict({"kind": "LennardJonesPotential"},
                    **dict(zip(("epsilon_eV", "sigma_A", "cutoff_A", "skin_A"), self.args)))
