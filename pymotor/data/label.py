"""GFN2-xTB labels for geometries another method sampled (active learning).

MD with a neural-network potential visits geometries its reference MD never did; where the
network extrapolates badly it can fall into spurious low-energy regions ("holes"). Labelling
frames of the network's own trajectories with the reference method and adding them to the
training data fills those regions (active learning: Smith et al., J. Chem. Phys. 148, 241733
(2018); Schran, Brezina, Marsalek, J. Chem. Phys. 153, 104105 (2020)).

:func:`label_frames` computes GFN2-xTB energies and forces of given frames and writes them as a
SchNetPack database in the units and with the single-atom reference energies of an existing
reference database, so that both train together (``pymotor train ref.db new.db``).

The frames are labelled in chunks, one task each on Dask's distributed scheduler
(:mod:`pymotor.parallel`; a local cluster by default, or ``scheduler=`` an existing one). Each
chunk writes its labels to its own file (``.<stem>.labels/`` beside the database, named by a
hash of its frames and settings) before the task ends, so a repeated call after a kill only
labels the chunks that are missing; the folder is removed once the database is written. Every
SCF starts from the same guess by default (``reuse_wavefunction=False``), so a label does not
depend on the chunk, the worker or the order: any chunking gives the same database.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

__all__ = ["label_frames", "reference_energy_convention"]


def reference_energy_convention(db_path) -> dict:
    """Energy unit, single-atom energies (eV, by Z) and mean energy per atom (eV) of a pymotor
    reference database (``pymotor generate``)."""
    from ase.db import connect

    from pymotor.units import energy_unit_in_eV

    p = Path(db_path)
    if not p.is_file():
        raise FileNotFoundError(f"`like_db`: {str(p)!r} does not exist")
    with connect(str(p), use_lock_file=False) as conn:
        md = conn.metadata.get("pymotor")
    if not md or "energy_offset" not in md or "energy_unit" not in md:
        raise ValueError(f"`like_db`: {str(p)!r} is not a pymotor reference database (no pymotor metadata "
                         "with energy_unit and energy_offset); it is written by `pymotor generate`")
    unit = md["energy_unit"]
    ev = energy_unit_in_eV(unit, "energy_unit")
    off = md["energy_offset"]
    if md.get("atomrefs_eV"):  # as computed (the converted values round-trip to ~1e-15)
        atomrefs_eV = {int(z): float(v) for z, v in md["atomrefs_eV"].items()}
    else:
        atomrefs_eV = {int(z): float(v) * ev for z, v in off.get("atomrefs", {}).items()}
    return {"energy_unit": unit, "atomrefs_eV": atomrefs_eV,
            "mean_per_atom_eV": float(off.get("mean_per_atom", 0.0)) * ev,
            "metadata": md}


def _frames_arrays(frames):
    """(numbers, masses, positions (T,N,3), velocities (T,N,3), steps, times) from a Trajectory or Atoms list."""
    from pymotor.trajectory import Trajectory

    if isinstance(frames, Trajectory):
        return (np.asarray(frames.atomic_numbers), np.asarray(frames.masses, dtype=float),
                np.asarray(frames.positions, dtype=float), np.asarray(frames.velocities, dtype=float),
                np.asarray(frames.step), np.asarray(frames.time_fs, dtype=float))
    frames = list(frames)
    if not frames:
        raise ValueError("`frames` is empty")
    z = frames[0].get_atomic_numbers()
    for k, a in enumerate(frames):
        if not np.array_equal(a.get_atomic_numbers(), z):
            raise ValueError(f"`frames`: frame {k} has other atoms than frame 0 (one molecule per database)")
    from pymotor.units import FS_IN_ASE_TIME

    pos = np.array([a.positions for a in frames], dtype=float)
    vel = np.array([a.get_velocities() * FS_IN_ASE_TIME for a in frames], dtype=float)  # zeros if unset
    n = len(frames)
    return z, frames[0].get_masses(), pos, vel, np.arange(n), np.zeros(n)


#: frames per labelling task (default of ``label_frames(chunk_frames=)``)
CHUNK_FRAMES = 50


def _label_chunk(path: str, numbers, positions, backend: str, reuse_wavefunction: bool) -> dict:
    """One labelling task: GFN2-xTB energies (eV; NaN where the SCF failed) and forces (eV/A)
    of ``positions`` (T, N, 3), saved to ``path`` (kept if it is there already)."""
    from ase import Atoms

    from pymotor import parallel

    from .xtb import XTBError, make_calculator

    p = Path(path)
    if p.is_file():
        with np.load(p) as f:
            out = {"energy": f["energy"], "forces": f["forces"]}
        parallel.report(len(positions), "done")
        return out
    numbers = np.asarray(numbers)
    calc = make_calculator(backend, atoms=Atoms(numbers=numbers, positions=positions[0]),
                           reuse_wavefunction=bool(reuse_wavefunction))
    energy = np.full(len(positions), np.nan)
    forces = np.zeros(np.shape(positions))
    for t in range(len(positions)):
        a = Atoms(numbers=numbers, positions=positions[t])
        a.calc = calc
        try:
            energy[t] = a.get_potential_energy()
            forces[t] = a.get_forces()
        except XTBError:  # an SCF that does not converge: the frame is dropped (counted)
            energy[t] = np.nan
        parallel.report(t + 1, "labels")
    tmp = p.with_name(f"{p.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, energy=energy, forces=forces)
    os.replace(tmp, p)
    return {"energy": energy, "forces": forces}


def _chunk_name(numbers, positions, backend: str, reuse: bool, start: int) -> str:
    from .xtb import backend_version

    h = hashlib.sha256()
    h.update(json.dumps([backend, backend_version(backend), bool(reuse)]).encode())
    h.update(np.ascontiguousarray(numbers, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(positions, dtype=np.float64).tobytes())
    return f"frames_{start:06d}-{start + len(positions) - 1:06d}_{h.hexdigest()[:16]}.npz"


def label_frames(frames, out_db, like_db, backend: str = "tblite", max_energy_above_eV: float = 5.0,
                 split_seed: int = 0, progress: bool = True, name: str | None = None,
                 chunk_frames: int = CHUNK_FRAMES, reuse_wavefunction: bool = False, scheduler=None,
                 workers: int | None = None) -> dict:
    """GFN2-xTB energies and forces of `frames`, written as a SchNetPack database like `like_db`.

    Parameters
    ----------
    frames : pymotor Trajectory or list of ase.Atoms
        Geometries (Angstrom) of one molecule; velocities (Angstrom/fs) are stored when present.
    out_db : path
        Database to write (``.db``); a random train/val/test split goes beside it as
        ``<stem>_split.npz`` (frames from many short runs are not a time series).
    like_db : path
        A ``pymotor generate`` database: the new one gets its energy unit and single-atom
        reference energies, so that the two train together.
    backend : "tblite" | "xtb-python"
    max_energy_above_eV : float
        Frames whose GFN2-xTB energy lies more than this above the mean energy of `like_db`
        are dropped (eV; default 5 eV = 115 kcal/mol): they carry forces of tens of eV/Å that
        would dominate a mean-squared-error loss. Frames whose SCF does not converge are dropped.
    split_seed : int
        Seed of the random split.
    chunk_frames : int
        Frames per task (default 50; ~2.5 s of GFN2-xTB for CPNX, so the scheduler's overhead
        does not count). Each chunk's labels are kept in a file until the database is written.
    reuse_wavefunction : bool
        Start each SCF from the previous frame's wavefunction within a chunk. Default False:
        each label is independent of the chunking and the order (the frames of an
        active-learning set come from different runs, where the previous wavefunction is no
        better a guess).
    scheduler, workers
        Where the chunks run (:mod:`pymotor.parallel`): default a local cluster of ``workers``
        processes (one per core, at most one per chunk; with one, in this process).

    Returns
    -------
    dict with ``db``, ``split``, ``n_frames`` (written), ``dropped_energy``, ``dropped_scf``,
    ``energy_above_mean_eV`` (of the written frames).
    """
    from pymotor import parallel
    from pymotor.trajectory import Trajectory

    from .generate import _save_split, make_split, write_database

    out_db = Path(out_db)
    if out_db.suffix != ".db":
        raise ValueError(f"`out_db` must end in .db, got {str(out_db)!r}")
    if not (max_energy_above_eV > 0):
        raise ValueError(f"`max_energy_above_eV` must be positive, got {max_energy_above_eV!r}")
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)) or chunk_frames < 1:
        raise ValueError(f"`chunk_frames` must be a positive integer, got {chunk_frames!r}")
    parallel._kind(scheduler)
    parallel._check_workers(workers)
    ref = reference_energy_convention(like_db)
    z, masses, pos, vel, steps, times = _frames_arrays(frames)
    ref_z = ref["metadata"].get("atomic_numbers")
    if ref_z is not None and list(map(int, ref_z)) != list(map(int, z)):
        raise ValueError("`frames` are not the molecule of `like_db` (atomic numbers differ)")
    e_mean = sum(ref["atomrefs_eV"].get(int(k), 0.0) for k in z) + len(z) * ref["mean_per_atom_eV"]

    # 1. labels, chunk by chunk, as tasks; each chunk's labels in its own file
    work = out_db.with_name(f".{out_db.stem}.labels")
    work.mkdir(parents=True, exist_ok=True)
    tasks = []
    for a in range(0, len(pos), int(chunk_frames)):
        p = pos[a:a + int(chunk_frames)]
        path = work / _chunk_name(z, p, backend, reuse_wavefunction, a)
        tasks.append(parallel.Task(f"frames {a}-{a + len(p) - 1}", _label_chunk,
                                   (str(path.resolve()), z, p, backend, bool(reuse_wavefunction)), steps=len(p)))
    done = parallel.run_tasks(tasks, scheduler=scheduler, workers=workers, progress=progress,
                              desc=f"GFN2-xTB labels ({backend})", unit="frame", what="chunks of frames")
    all_e = np.concatenate([r["energy"] for r in done.values()])
    all_f = np.concatenate([r["forces"] for r in done.values()])

    # 2. the frames kept: SCF converged and not too far above the reference
    keep, energies, forces = [], [], []
    dropped_scf = dropped_energy = 0
    for t in range(len(pos)):
        e = all_e[t]
        if not np.isfinite(e):
            dropped_scf += 1
            continue
        if e - e_mean > max_energy_above_eV:
            dropped_energy += 1
            continue
        keep.append(t)
        energies.append(e)
        forces.append(all_f[t])
    if len(keep) < 7:
        raise ValueError(f"only {len(keep)} of {len(pos)} frames could be labelled within max_energy_above_eV="
                         f"{max_energy_above_eV} eV of the reference mean ({dropped_scf} SCF failures); "
                         "need at least 7 for a train/val/test split")
    k = np.asarray(keep)
    n = len(k)
    zeros = np.zeros(n)
    traj = Trajectory(atomic_numbers=z, masses=masses, step=steps[k], time_fs=times[k], positions=pos[k],
                      velocities=vel[k], forces=np.asarray(forces), potential_energy=np.asarray(energies),
                      kinetic_energy=zeros, conserved_energy=zeros, n_dof=max(1, 3 * len(z) - 6))
    from .xtb import backend_version

    md = {"method": "GFN2-xTB", "backend": backend, "backend_version": backend_version(backend),
          "source": "labelled frames (active learning)", "like_db": os.path.abspath(str(like_db)),
          "max_energy_above_eV": float(max_energy_above_eV), "dropped_energy": dropped_energy,
          "dropped_scf": dropped_scf, "atomic_numbers": [int(v) for v in z],
          "reuse_wavefunction": bool(reuse_wavefunction)}
    out_db.parent.mkdir(parents=True, exist_ok=True)
    write_database(out_db, traj, energy_unit=ref["energy_unit"], atomrefs_eV=ref["atomrefs_eV"] or None,
                   metadata=md, name=name if name is not None else out_db.stem)
    split = make_split(n, "random", seed=int(split_seed))
    split_path = out_db.with_name(out_db.stem + "_split.npz")
    _save_split(split_path, split, n, "random", out_db)
    shutil.rmtree(work, ignore_errors=True)  # the database holds the labels now
    return {"db": str(out_db), "split": str(split_path), "n_frames": n, "dropped_energy": dropped_energy,
            "dropped_scf": dropped_scf, "energy_above_mean_eV": np.asarray(energies) - e_mean}
