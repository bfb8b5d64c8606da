"""GFN2-xTB labels for geometries another method sampled (active learning).

MD with a neural-network potential visits geometries its reference MD never did; where the
network extrapolates badly it can fall into spurious low-energy regions ("holes"). Labelling
frames of the network's own trajectories with the reference method and adding them to the
training data fills those regions (active learning: Smith et al., J. Chem. Phys. 148, 241733
(2018); Schran, Brezina, Marsalek, J. Chem. Phys. 153, 104105 (2020)).

:func:`label_frames` computes GFN2-xTB energies and forces of given frames and writes them as a
SchNetPack database in the units and with the single-atom reference energies of an existing
reference database, so that both train together (``pymotor train ref.db new.db``).
"""
from __future__ import annotations

import os
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


def label_frames(frames, out_db, like_db, backend: str = "tblite", max_energy_above_eV: float = 5.0,
                 split_seed: int = 0, progress: bool = True, name: str | None = None) -> dict:
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

    Returns
    -------
    dict with ``db``, ``split``, ``n_frames`` (written), ``dropped_energy``, ``dropped_scf``,
    ``energy_above_mean_eV`` (of the written frames).
    """
    from pymotor.trajectory import Trajectory

    from .generate import _save_split, make_split, write_database
    from .xtb import XTBError, make_calculator

    out_db = Path(out_db)
    if out_db.suffix != ".db":
        raise ValueError(f"`out_db` must end in .db, got {str(out_db)!r}")
    if not (max_energy_above_eV > 0):
        raise ValueError(f"`max_energy_above_eV` must be positive, got {max_energy_above_eV!r}")
    ref = reference_energy_convention(like_db)
    z, masses, pos, vel, steps, times = _frames_arrays(frames)
    ref_z = ref["metadata"].get("atomic_numbers")
    if ref_z is not None and list(map(int, ref_z)) != list(map(int, z)):
        raise ValueError("`frames` are not the molecule of `like_db` (atomic numbers differ)")
    e_mean = sum(ref["atomrefs_eV"].get(int(k), 0.0) for k in z) + len(z) * ref["mean_per_atom_eV"]

    from ase import Atoms

    calc = make_calculator(backend, atoms=Atoms(numbers=z, positions=pos[0]))
    keep, energies, forces = [], [], []
    dropped_scf = dropped_energy = 0
    it = range(len(pos))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"GFN2-xTB labels ({backend})", unit="frame")
    for t in it:
        a = Atoms(numbers=z, positions=pos[t])
        a.calc = calc
        try:
            e = a.get_potential_energy()
            f = a.get_forces()
        except XTBError:
            dropped_scf += 1
            continue
        if e - e_mean > max_energy_above_eV:
            dropped_energy += 1
            continue
        keep.append(t)
        energies.append(e)
        forces.append(f)
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
          "dropped_scf": dropped_scf, "atomic_numbers": [int(v) for v in z]}
    out_db.parent.mkdir(parents=True, exist_ok=True)
    write_database(out_db, traj, energy_unit=ref["energy_unit"], atomrefs_eV=ref["atomrefs_eV"] or None,
                   metadata=md, name=name if name is not None else out_db.stem)
    split = make_split(n, "random", seed=int(split_seed))
    split_path = out_db.with_name(out_db.stem + "_split.npz")
    _save_split(split_path, split, n, "random", out_db)
    return {"db": str(out_db), "split": str(split_path), "n_frames": n, "dropped_energy": dropped_energy,
            "dropped_scf": dropped_scf, "energy_above_mean_eV": np.asarray(energies) - e_mean}
