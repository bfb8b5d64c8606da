"""The start state of an MD run: replicas, velocities, a restart file's state, degrees of freedom."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from .. import validation
from ..units import AMU_A2_PER_FS2_IN_EV, FS_IN_ASE_TIME, KB_EV_PER_K


def maxwell_boltzmann_velocities(masses, temperature_K: float, rng: np.random.Generator,
                                 n_replicas: int = 1, positions=None) -> np.ndarray:
    """Velocities (R, N, 3) in Angstrom/fs drawn from Maxwell-Boltzmann at ``temperature_K``,
    with the total momentum of each replica removed (and, given ``positions`` (N, 3) of a
    non-linear molecule, the angular momentum too)."""
    masses = np.asarray(masses, dtype=float)
    sigma = np.sqrt(KB_EV_PER_K * temperature_K / (masses * AMU_A2_PER_FS2_IN_EV))
    v = rng.standard_normal((n_replicas, len(masses), 3)) * sigma[None, :, None]
    p = (masses[None, :, None] * v).sum(axis=1, keepdims=True)
    v = v - p / masses.sum()
    if positions is not None and len(masses) >= 3:
        for r in range(n_replicas):
            v[r] = remove_angular_momentum(positions, v[r], masses)
    return v


def _inertia(positions, masses):
    x = positions - masses @ positions / masses.sum()
    r2 = (x**2).sum(1)
    inertia = (masses * r2).sum() * np.eye(3) - np.einsum("i,ij,ik->jk", masses, x, x)
    return x, inertia


def remove_angular_momentum(positions, velocities, masses):
    """Velocities minus the rigid rotation omega x r that carries the angular momentum about
    the centre of mass (no-op for a linear molecule, whose inertia tensor is singular)."""
    masses = np.asarray(masses, dtype=float)
    x, inertia = _inertia(np.asarray(positions, dtype=float), masses)
    L = np.einsum("i,ij->j", masses, np.cross(x, velocities))
    if np.linalg.cond(inertia) > 1e8:
        return velocities
    omega = np.linalg.solve(inertia, L)
    return velocities - np.cross(omega, x)


def default_n_dof(positions, velocities, masses, rel_tol: float = 1e-6) -> float:
    """Degrees of freedom left by the conserved quantities of an isolated molecule.

    3N - 6 when the centre-of-mass and rigid-rotation kinetic energies, P^2/2M and
    L.I^-1.L/2, are both below ``rel_tol`` x the total kinetic energy (the thermostat scales
    all velocities alike, so they stay that small and those modes hold no heat); 3N - 3 when
    only the translation is negligible; 3N otherwise. The energy criterion accepts the
    residual momenta of frames from a long reference trajectory (SCF forces conserve L only
    to ~1e-5 amu A^2/fs), for which a thermostat set for 3N - 3 would heat the 3N - 6 active
    modes of a 48-atom molecule by 141/138 (+6.5 K at 300 K)."""
    masses = np.asarray(masses, dtype=float)
    velocities = np.asarray(velocities, dtype=float)
    n = len(masses)
    kin = 0.5 * (masses[:, None] * velocities**2).sum()
    p = masses @ velocities
    if 0.5 * (p @ p) / masses.sum() > rel_tol * kin:
        return float(3 * n)
    if n >= 3:
        x, inertia = _inertia(np.asarray(positions, dtype=float), masses)
        if np.linalg.cond(inertia) < 1e8:
            L = np.einsum("i,ij->j", masses, np.cross(x, velocities))
            if 0.5 * L @ np.linalg.solve(inertia, L) <= rel_tol * kin:
                return float(3 * n - 6)
    return float(max(3 * n - 3, 1))


def validate_atoms(atoms) -> list[Atoms]:
    """The replicas of ``atoms`` (one ase.Atoms or a list), checked: same molecule, finite
    positions and velocities, positive finite masses, not periodic."""
    replicas = [atoms] if isinstance(atoms, Atoms) else list(atoms) if isinstance(atoms, Sequence) else None
    if not replicas or not all(isinstance(a, Atoms) for a in replicas):
        raise TypeError("`atoms` must be an ase.Atoms or a non-empty list of ase.Atoms")
    z0 = replicas[0].numbers
    for r, a in enumerate(replicas):
        name = "`atoms`" if isinstance(atoms, Atoms) else f"`atoms`[{r}]"
        if len(a) == 0:
            raise ValueError(f"{name} has no atoms")
        pos = a.get_positions()
        if not np.all(np.isfinite(pos)):
            i = int(np.argwhere(~np.isfinite(pos))[0, 0])
            raise ValueError(f"{name} has a non-finite position (atom {i}: {pos[i]})")
        if not np.array_equal(a.numbers, z0):
            raise ValueError(f"{name} differs in composition or atom order from `atoms`[0]; "
                             "replicas must be the same molecule")
        if a.pbc.any():
            raise ValueError(f"{name} is periodic; pymotor simulates isolated molecules (pbc=False)")
        m = a.get_masses()
        if not np.all(np.isfinite(m)) or np.any(m <= 0):
            i = int(np.flatnonzero(~(np.isfinite(m) & (m > 0)))[0])
            raise ValueError(f"{name} has a non-positive or non-finite mass (atom {i}: {m[i]} amu)")
        vel = a.get_velocities()
        if vel is not None and not np.all(np.isfinite(vel)):
            i = int(np.argwhere(~np.isfinite(vel))[0, 0])
            raise ValueError(f"{name} has a non-finite velocity (atom {i}: {vel[i]}); "
                             "set finite momenta or none (then they are drawn at temperature_K)")
        if not np.array_equal(m, replicas[0].get_masses()):
            raise ValueError(f"{name} has other masses than `atoms`[0]; replicas must be the same molecule")
    return replicas


def start_velocities(replicas: list[Atoms], temperature_K: float | None, seed: int | None) -> np.ndarray:
    """(R, N, 3) Angstrom/fs: each replica's own momenta where set, otherwise Maxwell-Boltzmann
    at ``temperature_K`` (seeded; zero total and angular momentum); zero without a temperature."""
    pos = np.stack([a.get_positions() for a in replicas])
    masses = replicas[0].get_masses()
    vel = np.zeros_like(pos)
    drawn = [r for r, a in enumerate(replicas) if not np.any(a.get_momenta() != 0)]
    for r, a in enumerate(replicas):
        if r not in drawn:
            vel[r] = a.get_velocities() * FS_IN_ASE_TIME
    if drawn and temperature_K is not None:
        mb = maxwell_boltzmann_velocities(masses, temperature_K, np.random.default_rng(seed), len(replicas),
                                          positions=pos[0])
        for r in drawn:  # the draw does not depend on which replicas have momenta
            vel[r] = mb[r]
    return vel


@dataclass
class RestartState:
    """The committed restart state of each replica's file."""

    paths: list[Path]
    states: list[dict]

    @property
    def step(self) -> int:
        return int(self.states[0]["step"])

    @property
    def time_fs(self) -> float:
        return float(self.states[0]["time_fs"])

    @property
    def attrs(self) -> dict:
        return self.states[0]["attrs"]

    def positions(self) -> np.ndarray:
        return np.stack([s["positions"] for s in self.states])

    def velocities(self) -> np.ndarray:
        return np.stack([s["velocities"] for s in self.states])


def check_restart(states: list[dict], paths: list[Path], template: Atoms) -> None:
    """A restart state is used only if it is the same molecule, complete and finite."""
    n = len(template)
    steps = {int(s["step"]) for s in states}
    if len(steps) > 1:
        raise ValueError(f"`restart`: the replicas' files are at different steps {sorted(steps)}; "
                         "they must come from one run")
    for p, st in zip(paths, states):
        if not np.array_equal(st["atomic_numbers"], template.numbers):
            raise ValueError(f"`restart`: {p} is a run of a different molecule than `atoms` "
                             f"({len(st['atomic_numbers'])} atoms, `atoms` has {n})")
        for key in ("positions", "velocities"):
            validation.finite_array(f"restart` {p} state `{key}", st[key], (n, 3))
        if "eta" in st:
            validation.finite_array(f"restart` {p} state `eta", st["eta"], (-1,))
            validation.finite_array(f"restart` {p} state `p_eta", st["p_eta"], (-1,))
