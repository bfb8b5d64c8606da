"""Molecular dynamics with pymotor's C++ engine: :func:`run_md`.

Integrators: velocity Verlet (NVE) and the Nose-Hoover chain of Martyna, Klein and
Tuckerman [J. Chem. Phys. 97, 2635 (1992)] integrated with the Suzuki-Yoshida factorisation
of Martyna, Tuckerman, Tobias and Klein [Mol. Phys. 87, 1117 (1996)]. The loop runs in C++
without the GIL, in chunks; between chunks Python appends the frames to the H5MD file,
saves the restart state and updates the progress bar.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from . import _core
from .potentials import make_potential
from .trajectory import H5MDWriter, Trajectory, read_state, read_trajectory
from .units import AMU_A2_PER_FS2_IN_EV, FS_IN_ASE_TIME, KB_EV_PER_K

THERMOSTATS = ("nose-hoover", None)


class MDError(RuntimeError):
    """An MD run stopped (blew up, or the potential failed); frames before it are saved.

    ``step`` is the MD step that failed (None when the start geometry is already bad).
    """

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


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


def _replica_paths(trajectory, n: int) -> list[Path | None]:
    if trajectory is None:
        return [None] * n
    if isinstance(trajectory, (list, tuple)):
        if len(trajectory) != n:
            raise ValueError(f"`trajectory` names {len(trajectory)} files for {n} replicas")
        return [Path(p) for p in trajectory]
    p = Path(trajectory)
    if n == 1:
        return [p]
    return [p.with_name(f"{p.stem}_{r}{p.suffix}") for r in range(n)]


def _check_positive(name: str, value, integer: bool = False, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be {kind} {bound}, got {value!r}")


def _validate_atoms(atoms) -> list[Atoms]:
    replicas = [atoms] if isinstance(atoms, Atoms) else list(atoms) if isinstance(atoms, Sequence) else None
    if not replicas or not all(isinstance(a, Atoms) for a in replicas):
        raise TypeError("`atoms` must be an ase.Atoms or a non-empty list of ase.Atoms")
    z0 = replicas[0].numbers
    for r, a in enumerate(replicas):
        if len(a) == 0:
            raise ValueError(f"`atoms`[{r}] has no atoms")
        pos = a.get_positions()
        if not np.all(np.isfinite(pos)):
            raise ValueError(f"`atoms`[{r}] has non-finite positions")
        if not np.array_equal(a.numbers, z0):
            raise ValueError(f"`atoms`[{r}] differs in composition or atom order from `atoms`[0]; "
                             "replicas must be the same molecule")
        if a.pbc.any():
            raise ValueError(f"`atoms`[{r}] is periodic; pymotor simulates isolated molecules (pbc=False)")
        if np.any(a.get_masses() <= 0):
            raise ValueError(f"`atoms`[{r}] has non-positive masses")
    return replicas


def run_md(model: Any, atoms: Atoms | Sequence[Atoms], steps: int = 5000, *, timestep_fs: float = 0.5,
           temperature_K: float | None = 300.0, thermostat: str | None = "nose-hoover",
           tdamp_fs: float = 100.0, chain_length: int = 3, n_substeps: int = 1,
           suzuki_yoshida_order: int = 3, seed: int | None = 0,
           trajectory: str | os.PathLike | Sequence | None = None, interval: int = 1,
           chunk_steps: int = 100, restart: str | os.PathLike | Sequence | None = None,
           max_force_eV_per_A: float = 50.0, progress: bool | dict = False,
           n_dof: float | None = None, torch_threads: int | None = 1) -> Trajectory | list[Trajectory]:
    """Run molecular dynamics of one molecule, or of several replicas in one model call per step.

    Parameters
    ----------
    model
        Path of a deployed TorchScript model, a :class:`pymotor.Model`, an analytic
        potential (:class:`pymotor.HarmonicPotential`, ...) or any ASE calculator (for
        example tblite's GFN2-xTB), which the C++ integrator calls back for forces.
    atoms
        ``ase.Atoms`` (isolated molecule) or a list of replicas of the same molecule.
        Start velocities come from the atoms' momenta when set, otherwise from
        Maxwell-Boltzmann at ``temperature_K`` with ``seed`` (zero total momentum).
    steps
        Number of MD steps. With ``restart``, the total number of steps of the run
        including those already in the restart file.
    timestep_fs
        Time step in fs.
    temperature_K, thermostat, tdamp_fs, chain_length, n_substeps, suzuki_yoshida_order
        ``thermostat="nose-hoover"``: NVT with a Nose-Hoover chain of ``chain_length``
        thermostats with time constant ``tdamp_fs`` (fs), ``n_substeps`` sub-steps and a
        Suzuki-Yoshida scheme of order 1, 3, 5 or 7. ``thermostat=None``: NVE velocity
        Verlet (``temperature_K`` then only sets the initial velocities).
    trajectory
        H5MD file to write (one file per replica, ``name_0.h5``, ``name_1.h5``, ... for
        several), appended and flushed every ``chunk_steps`` steps.
    interval
        Save a frame every ``interval`` steps (frame 0 is the start).
    restart
        An H5MD file of an earlier run: continue from its last saved frame and thermostat
        state. When it is also the ``trajectory`` file (or ``trajectory`` is None), the frames
        are appended to it, so repeating a killed command resumes it.
    max_force_eV_per_A
        A force component above this (eV/Angstrom), or a non-finite energy, stops the run
        with :class:`MDError` naming the step; frames before it are on disk.
    n_dof
        Degrees of freedom for the thermostat and the temperature; default from the start
        velocities (:func:`default_n_dof`): 3N - 6 for a molecule that neither drifts nor
        rotates (the usual case, also for Maxwell-Boltzmann start velocities), 3N - 3 for a
        rotating one.
    progress
        Show a progress bar (time per step, time left); a dict gives tqdm options
        (e.g. ``{"desc": "xTB MD", "position": 1}``).
    torch_threads
        libtorch intra-op threads (1 is fastest for a single small molecule); None leaves it.

    Returns
    -------
    Trajectory (or a list, one per replica) with positions (Angstrom), velocities
    (Angstrom/fs), forces (eV/Angstrom), energies (eV), temperature (K) and time (fs).
    """
    replicas = _validate_atoms(atoms)
    _check_positive("steps", steps, integer=True, allow_zero=True)
    if not isinstance(timestep_fs, (int, float)) or not math.isfinite(timestep_fs) or timestep_fs == 0:
        raise ValueError(f"`timestep_fs` must be a non-zero finite number, got {timestep_fs!r}")
    _check_positive("interval", interval, integer=True)
    _check_positive("chunk_steps", chunk_steps, integer=True)
    _check_positive("max_force_eV_per_A", max_force_eV_per_A)
    if thermostat not in THERMOSTATS:
        raise ValueError(f"`thermostat` must be one of {THERMOSTATS}, got {thermostat!r}")
    if thermostat is not None:
        if temperature_K is None:
            raise ValueError("`temperature_K` is required with a thermostat")
        _check_positive("tdamp_fs", tdamp_fs)
        _check_positive("chain_length", chain_length, integer=True)
        _check_positive("n_substeps", n_substeps, integer=True)
        if suzuki_yoshida_order not in (1, 3, 5, 7):
            raise ValueError(f"`suzuki_yoshida_order` must be 1, 3, 5 or 7, got {suzuki_yoshida_order!r}")
    if temperature_K is not None:
        _check_positive("temperature_K", temperature_K)
    if n_dof is not None:
        _check_positive("n_dof", n_dof)
    if torch_threads is not None:
        _check_positive("torch_threads", torch_threads, integer=True)
        _core.set_num_threads(int(torch_threads))

    R = len(replicas)
    template = replicas[0]
    masses = template.get_masses()
    paths = _replica_paths(trajectory, R)
    restart_paths = _replica_paths(restart, R) if restart is not None else None
    chunk = int(math.ceil(chunk_steps / interval) * interval)  # chunk ends on a saved frame

    pos = np.stack([a.get_positions() for a in replicas])
    if all(np.any(a.get_momenta() != 0) for a in replicas):
        vel = np.stack([a.get_velocities() for a in replicas]) * FS_IN_ASE_TIME
    else:
        if temperature_K is None:
            vel = np.zeros_like(pos)
        else:
            vel = maxwell_boltzmann_velocities(masses, temperature_K, np.random.default_rng(seed), R,
                                               positions=pos[0])

    states = None
    append = [False] * R
    if restart_paths is not None:
        states = [read_state(p) for p in restart_paths]
        for r, (p, st) in enumerate(zip(restart_paths, states)):
            if not np.array_equal(st["atomic_numbers"], template.numbers):
                raise ValueError(f"`restart`: {p} is a run of a different molecule than `atoms`")
            if float(st["timestep_fs"]) != float(timestep_fs):
                raise ValueError(f"`restart`: {p} was run with timestep_fs={float(st['timestep_fs'])}, "
                                 f"not {timestep_fs}")
            if thermostat and "eta" not in st:
                raise ValueError(f"`restart`: {p} has no thermostat state (an NVE run?)")
            append[r] = paths[r] is None or Path(paths[r]).resolve() == Path(p).resolve()
            if append[r]:
                paths[r] = Path(p)
        pos = np.stack([st["positions"] for st in states])
        vel = np.stack([st["velocities"] for st in states])
        if n_dof is None:
            n_dof = float(states[0]["attrs"]["n_dof"])
    ndof = float(n_dof) if n_dof is not None else min(default_n_dof(pos[r], vel[r], masses) for r in range(R))

    potential = make_potential(model, template)
    sim = _core.Simulation(
        potential, pos, vel, masses, template.numbers.astype(np.int64), float(timestep_fs),
        temperature_K=float(temperature_K) if thermostat else None, tdamp_fs=float(tdamp_fs),
        chain_length=int(chain_length), n_substeps=int(n_substeps),
        suzuki_yoshida_order=int(suzuki_yoshida_order), n_dof=ndof,
    )
    if states is not None:
        if thermostat:
            sim.set_thermostat_state(np.stack([st["eta"] for st in states]),
                                     np.stack([st["p_eta"] for st in states]))
        sim.step = int(states[0]["step"])
        sim.time_fs = float(states[0]["time_fs"])
    sim.compute_forces()
    _check_start(sim, max_force_eV_per_A)

    attrs = dict(timestep_fs=float(timestep_fs), thermostat=thermostat or "none",
                 temperature_K=float(temperature_K) if temperature_K is not None else float("nan"),
                 tdamp_fs=float(tdamp_fs), chain_length=int(chain_length), n_substeps=int(n_substeps),
                 suzuki_yoshida_order=int(suzuki_yoshida_order), seed=-1 if seed is None else int(seed),
                 interval=int(interval), n_dof=ndof, potential=_describe(model))
    writers = []
    for r, p in enumerate(paths):
        if p is None:
            writers.append(None)
            continue
        w = H5MDWriter(p, template.numbers, masses, attrs, append=append[r])
        if append[r]:
            w.truncate_after(sim.step)
        writers.append(w)
    memory: list[dict] = []

    def save_states() -> None:
        """Write every replica's restart state (the C++ getters copy: read them once)."""
        if all(w is None for w in writers):
            return
        eta, p_eta = sim.thermostat_state()
        pos, vel = sim.positions, sim.velocities
        for r, w in enumerate(writers):
            if w is not None:
                w.write_state(dict(positions=pos[r], velocities=vel[r], step=sim.step, time_fs=sim.time_fs,
                                   timestep_fs=float(timestep_fs), eta=None if eta is None else eta[r],
                                   p_eta=None if p_eta is None else p_eta[r]))

    def emit(frames: dict) -> None:
        for r, w in enumerate(writers):
            if w is not None:
                w.append(frames, r)
        if any(w is None for w in writers):
            memory.append(frames)

    if not any(append):
        emit(_current_frame(sim))
    save_states()

    remaining = max(0, int(steps) - int(sim.step))
    bar = _progress_bar(remaining, progress, model)
    error = None
    try:
        while remaining > 0:
            n = min(chunk, remaining)
            res = sim.run(n, int(interval), float(max_force_eV_per_A))
            emit(res)
            if res["failed"]:
                error, failed_step = res["error"], int(res["failed_step"])
                break
            save_states()
            remaining -= n
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
        for w in writers:
            if w is not None:
                w.close()
    if error is not None:
        saved = ", ".join(str(p) for p in paths if p is not None)
        raise MDError(error + (f"; the frames before it are saved in {saved}" if saved else ""),
                      step=failed_step)

    results = []
    for r in range(R):
        if paths[r] is not None:
            results.append(read_trajectory(paths[r]))
        else:
            results.append(_from_memory(memory, r, template, masses, ndof, attrs))
    return results[0] if isinstance(atoms, Atoms) else results


def _check_start(sim, max_force: float) -> None:
    e, f = sim.potential_energy, sim.forces
    if not np.all(np.isfinite(e)) or not np.all(np.isfinite(f)):
        raise MDError("the potential gives non-finite energy or forces at the start geometry")
    if np.abs(f).max() > max_force:
        raise MDError(f"a start force component is {np.abs(f).max():.3g} eV/Angstrom, above "
                      f"max_force_eV_per_A={max_force}; optimise the geometry or raise the limit")


def _current_frame(sim) -> dict:
    return dict(step=np.array([sim.step]), time_fs=np.array([sim.time_fs]),
                positions=sim.positions[None], velocities=sim.velocities[None], forces=sim.forces[None],
                potential_energy=sim.potential_energy[None], kinetic_energy=sim.kinetic_energy[None],
                conserved_energy=sim.conserved_energy[None])


def _from_memory(memory, r, template, masses, ndof, attrs) -> Trajectory:
    cat = {k: np.concatenate([m[k] for m in memory]) for k in memory[0] if isinstance(memory[0][k], np.ndarray)}
    return Trajectory(atomic_numbers=template.numbers.copy(), masses=np.asarray(masses), step=cat["step"],
                      time_fs=cat["time_fs"], positions=cat["positions"][:, r], velocities=cat["velocities"][:, r],
                      forces=cat["forces"][:, r], potential_energy=cat["potential_energy"][:, r],
                      kinetic_energy=cat["kinetic_energy"][:, r], conserved_energy=cat["conserved_energy"][:, r],
                      n_dof=ndof, metadata=attrs)


def _describe(model) -> dict:
    from .potentials import Model

    if isinstance(model, Model):
        return {"kind": "torchscript", "path": str(model.path), "cutoff_A": model.cutoff_A,
                "energy_unit": model.energy_unit}
    if isinstance(model, (str, os.PathLike)):
        return {"kind": "torchscript", "path": str(model)}
    return {"kind": type(model).__name__}


def _progress_bar(total: int, enabled, model):
    """A tqdm bar; ``enabled`` is a bool or a dict of tqdm options (e.g. desc, position)."""
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    opts = dict(desc=f"MD ({_describe(model)['kind']})", smoothing=0.1, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps "
                           "[{elapsed}<{remaining}, {rate_fmt}]")
    if isinstance(enabled, dict):
        opts.update(enabled)
    return tqdm(total=total, unit="step", **opts)
