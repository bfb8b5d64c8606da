"""Molecular dynamics with pymotor's C++ engine: :func:`run_md` (the chunk loop).

Integrators: velocity Verlet (NVE) and the Nose-Hoover chain of Martyna, Klein and
Tuckerman [J. Chem. Phys. 97, 2635 (1992)] integrated with the Suzuki-Yoshida factorisation
of Martyna, Tuckerman, Tobias and Klein [Mol. Phys. 87, 1117 (1996)]. The loop runs in C++
without the GIL, in chunks; between chunks Python appends the frames to the H5MD file,
commits the restart state and updates the progress bar.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from .. import _core, connectivity
from ..backends import describe, load_model, make_potential
from ..h5md import PARTICLES
from ..trajectory import Trajectory, TrajectoryFileError, check_not_being_written, open_h5, read_state
from .errors import MDError
from .recorder import Recorder, current_frame
from .settings import MDSettings, differences
from .start import RestartState, check_restart, default_n_dof, start_velocities, validate_atoms


def run_md(model: Any, atoms: Atoms | Sequence[Atoms], steps: int = 5000, *, timestep_fs: float = 0.5,
           temperature_K: float | None = 300.0, thermostat: str | None = "nose-hoover",
           tdamp_fs: float = 100.0, chain_length: int = 3, n_substeps: int = 1,
           suzuki_yoshida_order: int = 3, seed: int | None = 0,
           trajectory: str | os.PathLike | Sequence | None = None, interval: int = 1,
           chunk_steps: int = 100, restart: str | os.PathLike | Sequence | None = None,
           max_force_eV_per_A: float = 50.0, progress: bool | dict = False,
           n_dof: float | None = None, torch_threads: int | None = 1, on_bond_change: str = "record",
           overwrite: bool = False, change_settings: bool = False) -> Trajectory | list[Trajectory]:
    """Run molecular dynamics of one molecule, or of several replicas in one model call per step.

    Parameters
    ----------
    model
        Path of a deployed TorchScript model, a :class:`pymotor.Model`, an analytic
        potential (:class:`pymotor.HarmonicPotential`, ...) or any ASE calculator (for
        example tblite's GFN2-xTB), which the C++ integrator calls back for forces.
    atoms
        ``ase.Atoms`` (isolated molecule) or a list of replicas of the same molecule.
        Start velocities come from each replica's momenta where set, otherwise from
        Maxwell-Boltzmann at ``temperature_K`` with ``seed`` (zero total and angular momentum).
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
        several), appended and flushed every ``chunk_steps`` steps. An existing file is
        refused (continue it with ``restart``, or pass ``overwrite=True``); a file another
        process is writing is refused before it is touched.
    interval
        Save a frame every ``interval`` steps (frame 0 is the start).
    restart
        An H5MD file of an earlier run: continue from its last committed state (positions,
        velocities, thermostat, bonds). When it is also the ``trajectory`` file (or
        ``trajectory`` is None), the frames are appended to it, so repeating a killed command
        resumes it, bit for bit. A ``restart`` file that does not exist yet starts a new run
        writing it: one command serves the first run and every resume.
    change_settings
        A restart whose settings (temperature, thermostat, model, interval, masses, time step,
        ...) differ from the file's is refused with the list of differences unless this is
        True; then the file records the change and the step where it happened.
    max_force_eV_per_A
        A force component above this (eV/Angstrom) stops the run with :class:`MDError`; so does
        a non-finite position, velocity, force or energy (checked every step in C++). Frames
        before the failing step are on disk.
    on_bond_change
        Connectivity guard (:mod:`pymotor.connectivity`): when a covalent bond of the start
        structure breaks or a new one forms, ``"record"`` (default) stores the event in the
        file (``/pymotor/bond_events``, ``Trajectory.metadata["bond_events"]``), warns
        (``RuntimeWarning`` naming step and atoms, and a line in the progress output) and goes
        on; ``"stop"`` raises :class:`MDError` naming the step and atoms; ``"ignore"`` skips the
        check (it costs N(N-1)/2 distances per step and replica, ~1 us for 48 atoms).
    n_dof
        Degrees of freedom for the thermostat and the temperature; default from the start
        velocities (:func:`default_n_dof`): 3N - 6 for a molecule that neither drifts nor
        rotates (the usual case, also for Maxwell-Boltzmann start velocities), 3N - 3 for a
        rotating one.
    progress
        Show a progress bar (time per step, time left); a dict gives tqdm options
        (e.g. ``{"desc": "xTB MD", "position": 1}``).
    torch_threads
        libtorch intra-op threads during the run (1 is fastest for a single small molecule);
        the previous setting is restored afterwards. None leaves it.

    Returns
    -------
    Trajectory (or a list, one per replica) with positions (Angstrom), velocities
    (Angstrom/fs), forces (eV/Angstrom), energies (eV), temperature (K) and time (fs).

    Raises
    ------
    MDError
        The run blew up, a bond changed (``on_bond_change="stop"``) or the start is bad; the
        error's ``step``, ``replica``, ``atom``, ``reason`` and ``paths`` say where. When the
        potential itself raised (an SCF failure, a KeyboardInterrupt), that exception is
        re-raised as itself, with the :class:`MDError` as its ``__cause__``.
    """
    settings = MDSettings(steps=steps, timestep_fs=timestep_fs, temperature_K=temperature_K,
                          thermostat=thermostat, tdamp_fs=tdamp_fs, chain_length=chain_length,
                          n_substeps=n_substeps, suzuki_yoshida_order=suzuki_yoshida_order, seed=seed,
                          interval=interval, chunk_steps=chunk_steps, max_force_eV_per_A=max_force_eV_per_A,
                          n_dof=n_dof, torch_threads=torch_threads, on_bond_change=on_bond_change)
    replicas = validate_atoms(atoms)
    R = len(replicas)
    template = replicas[0]
    masses = template.get_masses()
    paths = _replica_paths(trajectory, R, "trajectory")
    restart_state = _read_restart(restart, R, template)
    if restart is not None and restart_state is None and all(p is None for p in paths):
        paths = _replica_paths(restart, R, "restart")  # first run of a resumable command

    pos = np.stack([a.get_positions() for a in replicas])
    vel = start_velocities(replicas, settings.temperature_K, settings.seed)
    append = [False] * R
    ndof = settings.n_dof
    if restart_state is not None:
        for r, p in enumerate(restart_state.paths):
            append[r] = paths[r] is None or paths[r].resolve() == p.resolve()
            if append[r]:
                paths[r] = p
        pos, vel = restart_state.positions(), restart_state.velocities()
        if ndof is None:
            ndof = float(restart_state.attrs["n_dof"])
    if ndof is None:
        ndof = min(default_n_dof(pos[r], vel[r], masses) for r in range(R))

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)  # backend="auto": the fastest that supports the file
    attrs = settings.attrs(ndof, describe(model))
    changes = {}
    if restart_state is not None:
        changes = differences(restart_state.attrs, attrs)
        old_masses = restart_state.states[0]["masses"]
        if not np.array_equal(old_masses, masses):
            k = int(np.flatnonzero(old_masses != masses)[0])
            changes["masses"] = (f"atom {k}: {old_masses[k]} amu", f"{masses[k]} amu")
        if changes and not change_settings:
            listing = "; ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, (a, b) in changes.items())
            raise ValueError(f"`restart`: {restart_state.paths[0]} was run with other settings ({listing}); "
                             "pass change_settings=True (CLI: --change-settings) to continue with the new "
                             "ones (the file records the change)")

    threads_before = _core.get_num_threads()
    if settings.torch_threads is not None:
        _core.set_num_threads(int(settings.torch_threads))
    try:
        sim = _simulation(model, template, pos, vel, masses, settings, ndof, restart_state)
        return _run(sim, settings, replicas, atoms, paths, append, attrs, changes, restart_state, model,
                    ndof, overwrite, progress)
    finally:
        _core.set_num_threads(threads_before)


def _simulation(model, template, pos, vel, masses, settings: MDSettings, ndof: float,
                restart_state: RestartState | None):
    potential = make_potential(model, template)
    nvt = settings.thermostat is not None
    sim = _core.Simulation(
        potential, pos, vel, masses, template.numbers.astype(np.int64), float(settings.timestep_fs),
        temperature_K=float(settings.temperature_K) if nvt else None, tdamp_fs=float(settings.tdamp_fs),
        chain_length=int(settings.chain_length), n_substeps=int(settings.n_substeps),
        suzuki_yoshida_order=int(settings.suzuki_yoshida_order), n_dof=ndof,
    )
    if settings.on_bond_change != "ignore":
        sim.set_connectivity_guard(connectivity.covalent_radii(template.numbers), np.zeros((0, 2), np.int64),
                                   connectivity.BREAK_FACTOR, connectivity.FORM_FACTOR,
                                   settings.on_bond_change == "stop")
        for r in range(len(pos)):
            st = restart_state.states[r] if restart_state is not None else None
            bonds = st["bonds"] if st is not None and "bonds" in st else connectivity.bonds(template.numbers, pos[r])
            sim.set_bonds(r, np.asarray(bonds, dtype=np.int64).reshape(-1, 2))
    if restart_state is not None:
        states = restart_state.states
        if nvt and all("eta" in st for st in states) and len(states[0]["eta"]) == settings.chain_length:
            sim.set_thermostat_state(np.stack([st["eta"] for st in states]), np.stack([st["p_eta"] for st in states]))
        sim.step = restart_state.step
        sim.time_fs = restart_state.time_fs
    return sim


def _run(sim, settings: MDSettings, replicas, atoms, paths, append, attrs, changes, restart_state, model,
         ndof, overwrite, progress):
    sim.compute_forces()  # the potential's own exception propagates as itself (nothing is written yet)
    _check_start(sim, settings.max_force_eV_per_A)
    recorder = Recorder(paths, append, replicas[0], attrs, overwrite=overwrite)
    bar = None
    res = None
    try:
        if restart_state is not None and any(append):
            recorder.truncate_after(sim.step)
            if changes:
                recorder.record_change(sim.step, changes)
        if not any(append):
            recorder.frames(current_frame(sim))
        recorder.commit(sim)
        recorder.publish()
        remaining = max(0, int(settings.steps) - int(sim.step))
        bar = _progress_bar(remaining, progress, attrs["potential"])
        while remaining > 0:
            n = min(settings.chunk, remaining)
            res = sim.run(n, int(settings.interval), float(settings.max_force_eV_per_A))
            recorder.frames(res)
            recorder.bond_events(res)
            for (step, r, i, j, formed), d in zip(res["bond_events"], res["bond_event_distance_A"]):
                what = (f"MD step {step}: {'a new bond formed' if formed else 'the bond broke'} between atoms "
                        f"{i} and {j} ({d:.2f} Angstrom)" + (f", replica {r}" if len(replicas) > 1 else ""))
                if bar is not None:
                    bar.write(what)
                if not res["failed"]:
                    warnings.warn(what + "; recorded in the trajectory (on_bond_change='stop' stops the run)",
                                  RuntimeWarning, stacklevel=3)
            if res["failed"]:
                break
            recorder.commit(sim)
            remaining -= n
            if bar is not None:
                bar.update(n)
        results = None if res is not None and res["failed"] else recorder.trajectories(ndof)
    finally:
        if bar is not None:
            bar.close()
        recorder.close()
    if results is None:
        _raise_failure(res, recorder.saved)
    return results[0] if isinstance(atoms, Atoms) else results


def _raise_failure(res: dict, saved: list[Path]):
    detail = res["error"]
    message = detail + (f"; the frames before it are saved in {', '.join(map(str, saved))}" if saved else "")
    err = MDError(message, step=int(res["failed_step"]),
                  replica=int(res["failed_replica"]) if res["failed_replica"] >= 0 else None,
                  atom=int(res["failed_atom"]) if res["failed_atom"] >= 0 else None,
                  reason=res["reason"], paths=saved)
    err.detail = detail
    exc = res.get("exception")
    if exc is not None:
        raise exc.with_traceback(exc.__traceback__) from err
    raise err


def _read_restart(restart, R: int, template) -> RestartState | None:
    """The restart files' committed states; None when none of them exists yet (a first run)."""
    if restart is None:
        return None
    paths = _replica_paths(restart, R, "restart")
    exists = [p.exists() for p in paths]
    if not any(exists):
        return None
    if not all(exists):
        missing = [str(p) for p, e in zip(paths, exists) if not e]
        raise FileNotFoundError(f"`restart`: some replicas' files are missing ({', '.join(missing)})")
    for p in paths:  # before reading: a running writer's file is not a restart point
        check_not_being_written(p, "restart")
    states = []
    for p in paths:
        try:
            states.append(read_state(p))
        except (TrajectoryFileError, ValueError):
            if _never_started(p):
                warnings.warn(f"`restart`: {p} was killed before its first frame was saved; starting the run "
                              "from scratch", RuntimeWarning, stacklevel=3)
                p.unlink()
                if any(q.exists() for q in paths):
                    raise
                return None
            raise
    check_restart(states, paths, template)
    return RestartState(paths, states)


def _never_started(path: Path) -> bool:
    """True for a file that holds no frame: unreadable and smaller than any file with a frame
    (an HDF5 header alone is a few KiB; the first frame's chunks take > 64 KiB), or readable
    with no frame and no state."""
    try:
        with open_h5(path, "r", "restart") as f:
            steps = f"{PARTICLES}/position/step"
            n = f[steps].shape[0] if steps in f else 0
            return n == 0
    except TrajectoryFileError:
        return path.stat().st_size < 65536


def _replica_paths(trajectory, n: int, name: str) -> list[Path | None]:
    if trajectory is None:
        return [None] * n
    if isinstance(trajectory, (list, tuple)):
        if len(trajectory) != n:
            raise ValueError(f"`{name}` names {len(trajectory)} files for {n} replicas")
        out = [Path(p) for p in trajectory]
    else:
        p = Path(trajectory)
        out = [p] if n == 1 else [p.with_name(f"{p.stem}_{r}{p.suffix}") for r in range(n)]
    for p in out:
        if p.is_dir():
            raise ValueError(f"`{name}`: {p} is a directory; name an H5MD file, e.g. {p / 'md.h5'}")
    return out


def _check_start(sim, max_force: float) -> None:
    e, f = sim.potential_energy, sim.forces
    if not np.all(np.isfinite(e)) or not np.all(np.isfinite(f)):
        bad = np.argwhere(~np.isfinite(f))
        where = f" (atom {bad[0][1]})" if len(bad) else ""
        raise MDError("the potential gives non-finite energy or forces at the start geometry" + where,
                      reason="start")
    if np.abs(f).max() > max_force:
        r, i, _ = np.unravel_index(np.abs(f).argmax(), f.shape)
        raise MDError(f"a start force component (atom {i}) is {np.abs(f).max():.3g} eV/Angstrom, above "
                      f"max_force_eV_per_A={max_force}; optimise the geometry or raise the limit",
                      reason="start", atom=int(i), replica=int(r))


def _short(v) -> str:
    if isinstance(v, dict):
        return v.get("path") or v.get("kind") or str(v)
    return str(v)


def _progress_bar(total: int, enabled, potential: dict):
    """A tqdm bar; ``enabled`` is a bool or a dict of tqdm options (e.g. desc, position)."""
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    opts = dict(desc=f"MD ({potential.get('kind', 'model')})", smoothing=0.1, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps "
                           "[{elapsed}<{remaining}, {rate_fmt}]")
    if isinstance(enabled, dict):
        opts.update(enabled)
    return tqdm(total=total, unit="step", **opts)
