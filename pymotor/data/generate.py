"""GFN2-xTB reference molecular dynamics, written as SchNetPack databases.

:func:`generate_reference` runs, for each of ``trajectories`` independent trajectories
(seeds ``seed``, ``seed + 1``, ...), one task each on Dask's distributed scheduler
(:mod:`pymotor.parallel`: by default a local cluster of one worker process per core; an
existing cluster with ``scheduler="tcp://HOST:PORT"`` or a ``distributed.Client``):

1. an equilibration of ``equilibrate_fs`` with pymotor's Nose-Hoover chain (run, kept in
   ``raw/`` for inspection, and discarded from the dataset);
2. the production run of ``steps`` steps from the equilibrated positions and velocities,
   frames every ``interval`` steps (frame 0 is the start);
3. a SchNetPack ``ASEAtomsData`` database ``<name>_<k>.db`` and split file
   ``<name>_<k>_split.npz``;

then merges them into ``<name>.db`` / ``<name>_split.npz``. Layout of ``out`` (e.g.
``data/T300``, name ``T300``)::

    manifest.json             parameters, backend + version, status of every trajectory
    raw/T300_1.equil.h5       equilibration (H5MD, pymotor's restart state inside)
    raw/T300_1.h5             production trajectory (H5MD)
    T300_1.db, T300_1_split.npz
    T300_2.db, T300_2_split.npz
    T300.db, T300_split.npz   all trajectories, in order

Everything is resumable: the MD runs continue from their files' last saved frame and
thermostat state (``pymotor.run_md(..., restart=...)``), so repeating the same command after
a kill loses no saved frame; finished databases are not rewritten. A worker that dies
mid-trajectory is replaced: the scheduler runs the task again elsewhere and it resumes from its
file. A trajectory that fails (an SCF that does not converge) does not stop the others; the
error names it once they have finished.

Database contents (per row, in time order): positions in Angstrom with the centre of mass
subtracted, ``energy`` (shape (1,)) in ``energy_unit``, ``forces`` in
``energy_unit``/Angstrom, ``velocities`` in Angstrom/fs, ``beta``/``delta`` (deg) and
``conformer`` (index into :data:`pymotor.data.conformers.LABELS`) for a motor molecule; the
row's key-value pairs hold ``step``, ``time_fs``, ``trajectory`` and ``conformer`` (the label).
Metadata: SchNetPack's ``_distance_unit`` ("Ang"), ``_property_unit_dict`` and ``atomrefs``
(``{"energy": [E_atom(Z) for Z = 0..99]}``, GFN2-xTB energies of the isolated neutral atoms
from the same backend, in ``energy_unit``; zero for absent elements), so SchNetPack's
``RemoveOffsets``/``AddOffsets`` can use them; and ``pymotor`` with the backend, its version,
temperature, time step, thermostat, seeds and ``energy_offset`` (``atomrefs`` by element and
``mean_per_atom``: E = sum_i atomrefs[Z_i] + n_atoms * mean_per_atom + rest).

Split files: ``train_idx``, ``val_idx``, ``test_idx`` (0-based rows), ``n_frames``,
``db_sha256``. ``split="time"``: the last 20 % of each trajectory is the test set, the rest is
split 80/20 into training and validation, each contiguous; ``split="random"``: a random
permutation (seeded) with the same sizes.
"""

from __future__ import annotations

import json
import math
import os
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "GenerationError",
    "generate_reference",
    "write_database",
    "make_split",
    "merge_databases",
    "isolated_atom_energies",
    "SPLITS",
]

from ..splits import SPLITS, make_split  # noqa: E402  (one split convention; re-exported)
#: length of SchNetPack's atomref lists (as QM9's)
ATOMREF_LENGTH = 100
#: MD steps per call of run_md (between two progress reports)
SEGMENT_STEPS = 500
_FORMAT = "pymotor.reference/1"


class GenerationError(RuntimeError):
    """Reference generation stopped; the frames written before it are kept on disk."""


# ---------------------------------------------------------------------------------------
# splits and databases
# ---------------------------------------------------------------------------------------
def _save_split(path: Path, split: dict, n_frames: int, kind: str, db_path: Path | None) -> None:
    extra = {}
    if db_path is not None:
        extra["db_sha256"] = np.array(sha256_file(db_path))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # this writer's own temporary file
    np.savez(tmp, train_idx=split["train"].astype(np.int64), val_idx=split["val"].astype(np.int64),
             test_idx=split["test"].astype(np.int64), n_frames=np.int64(n_frames),
             kind=np.array(kind), **extra)
    os.replace(tmp, path)


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file (the ``db_sha256`` of split files, as pymotor.train checks it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def isolated_atom_energies(elements: Sequence[int], backend: str = "tblite") -> dict[int, float]:
    """GFN2-xTB energies (eV) of the isolated neutral atoms, fewest unpaired electrons."""
    from ase import Atoms

    from .xtb import make_calculator

    out = {}
    for z in sorted({int(z) for z in elements}):
        a = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]])
        a.calc = make_calculator(backend, charge=0, spin=None)
        out[z] = float(a.get_potential_energy())
    return out


def _energy_units(energy_unit: str) -> tuple[float, str, str]:
    """(eV -> unit factor, SchNetPack energy unit string, force unit string)."""
    from pymotor.units import energy_unit_in_eV

    ev = energy_unit_in_eV(energy_unit, "energy_unit")
    spk = {"Ha": "Hartree"}.get(energy_unit, energy_unit)
    return 1.0 / ev, spk, f"{spk}/Ang"


def write_database(db_path, traj, energy_unit: str = "kcal/mol", atomrefs_eV: dict | None = None,
                   metadata: dict | None = None, name: str = "", motor: bool | None = None):
    """Write a pymotor :class:`Trajectory` as a SchNetPack ``ASEAtomsData`` database.

    Positions get their centre of mass subtracted; energies and forces are converted from
    eV to ``energy_unit``. ``atomrefs_eV`` (isolated-atom energies by Z, eV) become
    SchNetPack's ``atomrefs`` and pymotor's ``energy_offset``. Returns the number of rows.
    The database is written to a temporary file and moved into place at the end.
    """
    from ase import Atoms

    from .conformers import LABELS, find_motor_atoms, motor_dihedrals

    db_path = Path(db_path)
    conv, e_unit, f_unit = _energy_units(energy_unit)
    z = np.asarray(traj.atomic_numbers)
    masses = np.asarray(traj.masses, dtype=float)
    pos = np.asarray(traj.positions, dtype=float)
    com = (masses[None, :, None] * pos).sum(axis=1) / masses.sum()
    pos = pos - com[:, None, :]
    energy = np.asarray(traj.potential_energy, dtype=float) * conv
    forces = np.asarray(traj.forces, dtype=float) * conv
    vel = np.asarray(traj.velocities, dtype=float)
    n_frames, n_atoms = pos.shape[:2]

    # conformer labels (motor molecules only)
    beta = delta = None
    if motor is not False:
        try:
            m = find_motor_atoms(Atoms(numbers=z, positions=pos[0]))
        except Exception:  # noqa: BLE001 - not a motor (or bonds not perceivable): no labels
            if motor:
                raise
            m = None
        if m is not None:
            beta, delta = motor_dihedrals(traj, motor=m)
            dihedral_atoms = {"beta": list(m.beta), "delta": list(m.delta)}
    units = {"energy": e_unit, "forces": f_unit, "velocities": "Ang/fs"}
    if beta is not None:
        units.update({"beta": "deg", "delta": "deg", "conformer": None})

    atomrefs = {}
    energy_offset = {"atomrefs": {}, "mean_per_atom": 0.0}
    if atomrefs_eV:
        ref = np.zeros(ATOMREF_LENGTH)
        for zz, e in atomrefs_eV.items():
            ref[int(zz)] = e * conv
        atomrefs = {"energy": ref.tolist()}
        per_frame_ref = sum(ref[int(zz)] for zz in z)
        energy_offset = {
            "atomrefs": {str(int(zz)): float(ref[int(zz)]) for zz in sorted(set(z.tolist()))},
            "mean_per_atom": float(np.mean(energy - per_frame_ref) / n_atoms),
            "convention": "E = sum_i atomrefs[Z_i] + n_atoms * mean_per_atom + rest",
            "unit": energy_unit,
            "atomrefs_source": "GFN2-xTB isolated neutral atoms, same backend",
        }

    md = dict(metadata or {})
    md.update({"format": _FORMAT, "name": name, "n_frames": int(n_frames), "energy_unit": energy_unit,
               "com_subtracted": True, "energy_offset": energy_offset,
               "step": [int(traj.step[0]), int(traj.step[-1])],
               "time_fs": [float(traj.time_fs[0]), float(traj.time_fs[-1])]})
    if beta is not None:
        md["conformers"] = {"labels": list(LABELS), "dihedral_atoms": dihedral_atoms,
                            "convention": "M: beta<0, P: beta>0; syn: delta<0, anti: delta>0"}

    from .conformers import classify_many

    labels = classify_many(beta, delta) if beta is not None else None
    metadata_doc = {"_property_unit_dict": units, "_distance_unit": "Ang", "atomrefs": atomrefs, "pymotor": md}

    def rows(conn):
        conn.metadata = metadata_doc
        for t in range(n_frames):
            data = {"energy": np.array([energy[t]]), "forces": forces[t], "velocities": vel[t]}
            kv = {"step": int(traj.step[t]), "time_fs": float(traj.time_fs[t])}
            if name:
                kv["trajectory"] = name
            if beta is not None:
                lab = str(labels[t])
                data.update({"beta": np.array([beta[t]]), "delta": np.array([delta[t]]),
                             "conformer": np.array([LABELS.index(lab) if lab else -1])})
                if lab:
                    kv["conformer"] = lab
            conn.write(Atoms(numbers=z, positions=pos[t]), data=data, key_value_pairs=kv)

    _write_db_atomically(db_path, rows)
    return int(n_frames)


def _write_db_atomically(db_path: Path, fill: Callable, attempts: int = 2) -> None:
    """Write an ASE database through ``fill(connection)`` into a temporary file of this
    writer alone (process id and a random part in its name, beside ``db_path``) and move it into
    place, so a reader never sees a half-written file and two writers never share a temporary
    file. A write that SQLite refuses (``sqlite3.Error``) is repeated once on a fresh file: the
    rows come from memory, so a repeat writes the same database."""
    import logging
    import sqlite3
    import uuid

    from ase.db import connect

    db_path = Path(db_path)
    for attempt in range(1, attempts + 1):
        tmp = db_path.with_name(f"{db_path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp.db")
        try:
            with connect(str(tmp), use_lock_file=False) as conn:
                fill(conn)
            os.replace(tmp, db_path)
            return
        except sqlite3.Error as exc:
            if attempt == attempts:
                raise
            logging.getLogger(__name__).warning("writing %s failed (%s: %s); writing it again",
                                                db_path, type(exc).__name__, exc)
        finally:
            if tmp.exists():
                tmp.unlink()


def merge_databases(db_paths: Sequence, out_db, split: str = "time", seed: int = 0,
                    test_fraction: float = 0.2, val_fraction: float = 0.2) -> int:
    """Concatenate databases (same units) into ``out_db`` and write ``<out>_split.npz``.

    With ``split="time"`` each source is split by time on its own and the indices are
    offset and concatenated (the test set is the last part of every trajectory).
    """
    from ase.db import connect

    out_db = Path(out_db)
    parts = {"train": [], "val": [], "test": []}
    offset = 0

    def fill(dst):
        nonlocal offset
        for k in parts:
            parts[k].clear()
        offset = 0
        md0 = None
        sources = []
        for p in db_paths:
            with connect(str(p), use_lock_file=False) as src:
                md = src.metadata
                if md0 is None:
                    md0 = md
                    merged_md = json.loads(json.dumps(md))
                elif md["_property_unit_dict"] != md0["_property_unit_dict"]:
                    raise ValueError(f"`db_paths`: {p} has other units than {db_paths[0]}")
                elif md.get("pymotor", {}).get("backend") != md0.get("pymotor", {}).get("backend"):
                    raise ValueError(f"`db_paths`: {p} was made with another GFN2-xTB backend "
                                     f"than {db_paths[0]}; do not mix backends in one dataset")
                n = src.count()
                for row in src.select(sort="id"):
                    dst.write(row.toatoms(), data=row.data, key_value_pairs=row.key_value_pairs)
                sources.append({"path": str(Path(p).name), "n_frames": n,
                                "metadata": md.get("pymotor", {})})
            if split == "time":
                s = make_split(n, "time", test_fraction=test_fraction, val_fraction=val_fraction)
                for k in parts:
                    parts[k].append(s[k] + offset)
            offset += n
        pm = merged_md.get("pymotor", {})
        pm.update({"name": out_db.stem, "n_frames": offset, "merged_from": sources})
        # offsets of the merged data: same atomrefs, mean over all frames
        if sources and all("energy_offset" in s["metadata"] for s in sources):
            means = [s["metadata"]["energy_offset"].get("mean_per_atom", 0.0) for s in sources]
            weights = [s["n_frames"] for s in sources]
            pm["energy_offset"]["mean_per_atom"] = float(np.average(means, weights=weights))
        for key in ("step", "time_fs", "seed"):
            pm.pop(key, None)
        merged_md["pymotor"] = pm
        dst.metadata = merged_md

    _write_db_atomically(out_db, fill)
    if split == "time":
        sp = {k: np.concatenate(v) for k, v in parts.items()}
    else:
        sp = make_split(offset, "random", seed=seed, test_fraction=test_fraction,
                        val_fraction=val_fraction)
    _save_split(out_db.with_name(out_db.stem + "_split.npz"), sp, offset, split, out_db)
    return offset


# ---------------------------------------------------------------------------------------
# one trajectory (runs in a worker process)
# ---------------------------------------------------------------------------------------
@dataclass
class _Job:
    k: int
    name: str
    out: str
    atoms_xyz: str        # start geometry, extended xyz text
    seed: int
    backend: str
    charge: int
    spin: int | None
    temperature_K: float
    timestep_fs: float
    steps: int
    interval: int
    equil_steps: int
    tdamp_fs: float
    chain_length: int
    energy_unit: str
    split: str
    atomrefs_eV: dict
    metadata: dict
    reuse_wavefunction: bool = True


def _state_step(path: Path) -> int | None:
    from ..trajectory import committed_step

    return committed_step(path)


def _last_frame_step(path: Path) -> int | None:
    from ..h5md import position_steps

    return position_steps(path)


def _error_text(exc) -> str:
    """One line for a failed segment: the MD error's own detail (step, atom) or the
    potential's exception (type and message), never a traceback."""
    for e in (exc, exc.__cause__):  # an MDError, or the potential's exception raised from one
        if getattr(e, "detail", None):
            return e.detail
    return f"{type(exc).__name__}: {exc}"


def _run_segmented(calc, atoms, path: Path, total_steps: int, job: _Job, report: Callable,
                   done_before: int, stage: str, interval: int, seed: int, n_dof: float | None = None):
    """run_md in segments of SEGMENT_STEPS (resuming ``path``), reporting progress."""
    import pymotor

    from .xtb import SCFConvergenceError

    current = _state_step(path)
    if current is None and path.exists():
        path.unlink()  # killed before anything restartable was written
    report(done_before + (current or 0), stage)
    while True:
        current = _state_step(path)
        if current is not None and current >= total_steps:
            return
        segment = int(math.ceil(SEGMENT_STEPS / interval)) * interval
        target = min(total_steps, (current or 0) + segment)
        try:
            pymotor.run_md(calc, atoms, steps=target, timestep_fs=job.timestep_fs,
                           temperature_K=job.temperature_K, thermostat="nose-hoover",
                           tdamp_fs=job.tdamp_fs, chain_length=job.chain_length, seed=seed,
                           trajectory=str(path), interval=interval,
                           restart=str(path) if current is not None else None, progress=False,
                           n_dof=n_dof)
        except (SCFConvergenceError, pymotor.MDError, RuntimeError) as exc:
            state = _state_step(path)
            last = _last_frame_step(path)
            saved = (f"frames up to step {last} are saved in {path} (a rerun continues from "
                     f"step {state})") if last is not None else f"nothing was saved in {path}"
            raise GenerationError(
                f"{job.name} {stage}: {_error_text(exc)}; {saved}; repeat the command to resume"
            ) from exc
        report(done_before + target, stage)


def _run_job(job: _Job, report: Callable) -> dict:
    import io

    from ase.io import read

    import pymotor

    from .xtb import make_calculator

    out = Path(job.out)
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    atoms = read(io.StringIO(job.atoms_xyz), format="extxyz")
    atoms.calc = None
    calc = make_calculator(job.backend, charge=job.charge, spin=job.spin, atoms=atoms,
                           reuse_wavefunction=job.reuse_wavefunction)
    db = out / f"{job.name}.db"
    split_path = out / f"{job.name}_split.npz"
    n_expected = job.steps // job.interval + 1
    prod = raw / f"{job.name}.h5"
    status_path = out / f".{job.name}.done.json"

    if db.exists() and split_path.exists() and status_path.exists():
        st = json.loads(status_path.read_text())
        if st.get("n_frames") == n_expected and st.get("steps") == job.steps:
            report(job.equil_steps + job.steps, "done")
            return st

    # 1. equilibration (discarded from the dataset)
    start, n_dof = atoms, None
    if job.equil_steps > 0:
        eq = raw / f"{job.name}.equil.h5"
        if _state_step(prod) is None:
            # frames every gcd(equil_steps, 100) steps: the last frame is the final state
            _run_segmented(calc, atoms, eq, job.equil_steps, job, report, 0, "equilibration",
                           interval=math.gcd(job.equil_steps, 100), seed=job.seed)
            eq_traj = pymotor.read_trajectory(eq)
            start, n_dof = eq_traj.to_ase()[-1], eq_traj.n_dof
        else:
            report(job.equil_steps, "equilibration")
    # 2. production, with the thermostat's degrees of freedom of the equilibration
    _run_segmented(calc, start, prod, job.steps, job, report, job.equil_steps, "production",
                   interval=job.interval, seed=job.seed, n_dof=n_dof)
    traj = pymotor.read_trajectory(prod)
    keep = traj.step <= job.steps
    if not np.all(keep):  # an earlier run of this folder went further: keep `steps` steps
        traj = _slice_traj(traj, keep)
    report(job.equil_steps + job.steps, "database")
    md = dict(job.metadata)
    md.update({"trajectory": job.name, "seed": job.seed, "source_h5": str(prod.relative_to(out))})
    n = write_database(db, traj, job.energy_unit, job.atomrefs_eV, md, name=job.name)
    sp = make_split(n, job.split, seed=job.seed)
    _save_split(split_path, sp, n, job.split, db)
    T = traj.temperature
    st = {"name": job.name, "n_frames": n, "steps": job.steps, "seed": job.seed,
          "mean_temperature_K": float(np.mean(T)), "std_temperature_K": float(np.std(T)),
          "db": db.name, "split": split_path.name,
          "split_sizes": {k: int(len(v)) for k, v in sp.items()}}
    status_path.write_text(json.dumps(st, indent=1))
    report(job.equil_steps + job.steps, "done")
    return st


def _slice_traj(traj, keep):
    import dataclasses

    fields = {}
    for f in dataclasses.fields(traj):
        v = getattr(traj, f.name)
        if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == len(keep) and \
                f.name not in ("atomic_numbers", "masses"):
            v = v[keep]
        fields[f.name] = v
    return type(traj)(**fields)


def _generation_task(job: _Job) -> dict:
    """One trajectory as a task of :mod:`pymotor.parallel` (progress through its report)."""
    from pymotor import parallel

    return _run_job(job, parallel.report)


# ---------------------------------------------------------------------------------------
# the public entry point
# ---------------------------------------------------------------------------------------
def _check_number(name, value, integer=False, minimum=0.0, strict=True):
    from ..validation import number

    number(name, value, integer=integer, minimum=minimum, strict=strict)


def generate_reference(atoms, out, temperature_K: float = 300.0, steps: int = 20000,
                       timestep_fs: float = 0.5, interval: int = 1, equilibrate_fs: float = 2000.0,
                       trajectories: int = 2, backend: str = "tblite", seed: int = 0, charge: int = 0,
                       spin: int | None = None, energy_unit: str = "kcal/mol", split: str = "time",
                       progress: bool = True, workers: int | None = None, name: str | None = None,
                       tdamp_fs: float = 100.0, chain_length: int = 3,
                       reuse_wavefunction: bool = True, scheduler=None) -> dict:
    """GFN2-xTB NVT reference MD with pymotor's engine, written as SchNetPack databases.

    Parameters
    ----------
    atoms : ase.Atoms or list of ase.Atoms
        Start geometry (Angstrom), e.g. :func:`pymotor.data.cpnx`; or several start
        conformers of the same molecule, used in turn (trajectory k starts from
        ``atoms[(k - 1) % len(atoms)]``).
    out : path
        Output folder; its name is the dataset name (``data/T300`` -> ``T300_1.db``, ...).
    temperature_K, timestep_fs, steps, interval
        Nose-Hoover chain temperature (K), time step (fs), production steps per trajectory
        and the saving interval in steps.
    equilibrate_fs
        Equilibration time (fs) run before production and discarded.
    trajectories
        Number of independent trajectories (seeds ``seed, seed+1, ...``), run in parallel
        tasks (see ``scheduler``).
    backend : "tblite" | "xtb-python"
    charge, spin
        Total charge (e) and number of unpaired electrons (2S; None: 0 or 1 by parity).
    energy_unit : "kcal/mol" | "eV" | "kJ/mol" | "Hartree" | ...
        Unit of the stored energies (forces in energy_unit/Angstrom).
    split : "time" | "random"
    progress : bool
        tqdm bars over trajectories and over their steps (time per step, time left).
    scheduler : None | "local" | "serial" | "tcp://HOST:PORT" | scheduler file | distributed.Client
        Where the trajectories run, one Dask task each (:mod:`pymotor.parallel`): default a
        local cluster of ``workers`` processes. On a remote cluster ``out`` must be on a file
        system every worker sees (the workers write the files).
    workers : int, optional
        Worker processes of the local cluster (default: one per core, at most
        ``trajectories``; with one, the trajectories run in this process).
    reuse_wavefunction : bool
        Start each SCF from the previous step's wavefunction (default, faster). With False
        every force call is independent of the history, so a resumed run repeats an
        uninterrupted one bit for bit; with True they agree to SCF precision.

    Returns
    -------
    dict with ``out``, ``databases`` (per trajectory), ``merged``, ``splits`` and the
    per-trajectory summaries (frames, mean temperature). Raises :class:`GenerationError`
    (naming the trajectory, stage and step) when an MD run fails; frames are kept.
    """
    from ase import Atoms

    from .xtb import BACKENDS, backend_available, backend_version, check_system

    if isinstance(atoms, (list, tuple)) and atoms and all(isinstance(a, Atoms) for a in atoms):
        starts = list(atoms)  # several start conformers, used in turn by the trajectories
    elif isinstance(atoms, Atoms):
        starts = [atoms]
    else:
        raise TypeError("`atoms` must be an ase.Atoms or a non-empty list of ase.Atoms, got "
                        f"{type(atoms).__name__}")
    for i, a in enumerate(starts):
        where = "`atoms`" if len(starts) == 1 else f"`atoms`[{i}]"
        if len(a) == 0:
            raise ValueError(f"{where} has no atoms")
        if not np.all(np.isfinite(a.get_positions())):
            raise ValueError(f"{where} has non-finite positions")
        if not np.array_equal(a.get_atomic_numbers(), starts[0].get_atomic_numbers()):
            raise ValueError(f"{where} differs in composition or atom order from `atoms`[0]")
    atoms = starts[0]
    _check_number("temperature_K", temperature_K)
    _check_number("steps", steps, integer=True, minimum=0)
    _check_number("timestep_fs", timestep_fs)
    _check_number("interval", interval, integer=True, minimum=0)
    _check_number("equilibrate_fs", equilibrate_fs, strict=False)
    _check_number("trajectories", trajectories, integer=True, minimum=0)
    _check_number("tdamp_fs", tdamp_fs)
    _check_number("chain_length", chain_length, integer=True, minimum=0)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"`seed` must be an integer, got {seed!r}")
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")
    if not backend_available(backend):
        raise ImportError(f"`backend`={backend!r} is not installed")
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}")
    _energy_units(energy_unit)
    uhf = check_system(atoms.get_atomic_numbers(), charge, spin)
    if steps % interval:
        raise ValueError(f"`steps`={steps} must be a multiple of `interval`={interval}")
    n_frames = steps // interval + 1
    make_split(n_frames, split)  # enough frames?
    if workers is not None:
        _check_number("workers", workers, integer=True, minimum=0)
    from pymotor import parallel

    parallel._kind(scheduler)  # a bad scheduler is refused before anything is written

    out = Path(out)
    name = name or out.name
    if not name:
        raise ValueError(f"`out`={str(out)!r} has no folder name to name the dataset")
    equil_steps = int(round(float(equilibrate_fs) / float(timestep_fs)))

    import ase.io

    import io

    def _xyz(a) -> str:
        b = io.StringIO()
        c = a.copy()
        c.calc = None
        ase.io.write(b, c, format="extxyz")
        return b.getvalue()

    start_texts = [_xyz(a) for a in starts]
    buf = io.StringIO("".join(start_texts))  # start.xyz: all start geometries
    params = {"format": _FORMAT, "method": "GFN2-xTB", "backend": backend,
              "backend_version": backend_version(backend), "temperature_K": float(temperature_K),
              "timestep_fs": float(timestep_fs), "interval": int(interval),
              "steps": int(steps), "equilibrate_fs": float(equilibrate_fs),
              "equilibrate_steps": equil_steps, "thermostat": "nose-hoover",
              "tdamp_fs": float(tdamp_fs), "chain_length": int(chain_length), "charge": int(charge),
              "spin": int(uhf), "energy_unit": energy_unit, "split": split,
              "formula": atoms.get_chemical_formula(), "n_atoms": len(atoms),
              "atomic_numbers": [int(z) for z in atoms.get_atomic_numbers()],
              "reuse_wavefunction": bool(reuse_wavefunction)}
    try:
        from importlib.metadata import version

        params["pymotor_version"] = version("pymotor")
    except Exception:  # noqa: BLE001
        params["pymotor_version"] = "unknown"

    # refuse to mix different runs in one folder
    manifest_path = out / "manifest.json"
    fixed = ("method", "backend", "temperature_K", "timestep_fs", "interval", "equilibrate_fs",
             "thermostat", "tdamp_fs", "chain_length", "charge", "spin", "energy_unit",
             "atomic_numbers", "split")
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())["parameters"]
        diff = [k for k in fixed if old.get(k) != params.get(k)]
        if old.get("backend") == backend and old.get("backend_version") != params["backend_version"]:
            diff.append("backend_version")
        if diff:
            raise ValueError(
                f"`out`={str(out)!r} holds a run with other parameters ({', '.join(diff)}: "
                + ", ".join(f"{k}={old.get(k)!r}" for k in diff)
                + "); choose another `out` or remove it")
        start_xyz = (out / "start.xyz").read_text() if (out / "start.xyz").exists() else None
        if start_xyz is not None and start_xyz != buf.getvalue():
            raise ValueError(f"`out`={str(out)!r} was started from another geometry; choose another `out`")
    out.mkdir(parents=True, exist_ok=True)
    (out / "start.xyz").write_text(buf.getvalue())

    atomrefs_eV = isolated_atom_energies(atoms.get_atomic_numbers(), backend)
    params["atomrefs_eV"] = {str(k): v for k, v in atomrefs_eV.items()}
    manifest = {"parameters": params, "trajectories": {}}
    manifest_path.write_text(json.dumps(manifest, indent=1))

    jobs = [_Job(k=k, name=f"{name}_{k}", out=os.path.abspath(out),  # workers may have another cwd
                 atoms_xyz=start_texts[(k - 1) % len(start_texts)],
                 seed=int(seed) + k - 1, backend=backend, charge=int(charge), spin=spin,
                 temperature_K=float(temperature_K), timestep_fs=float(timestep_fs),
                 steps=int(steps), interval=int(interval), equil_steps=equil_steps,
                 tdamp_fs=float(tdamp_fs), chain_length=int(chain_length),
                 energy_unit=energy_unit, split=split, atomrefs_eV=atomrefs_eV, metadata=params,
                 reuse_wavefunction=bool(reuse_wavefunction))
            for k in range(1, int(trajectories) + 1)]
    tasks = [parallel.Task(job.name, _generation_task, (job,), steps=equil_steps + int(steps)) for job in jobs]
    by_name = {job.name: job for job in jobs}
    errors = []
    try:
        done = parallel.run_tasks(tasks, scheduler=scheduler, workers=workers, progress=progress,
                                  desc=f"GFN2-xTB MD {name}", what="trajectories")
    except parallel.TaskError as exc:
        done = exc.results
        for task_name, err in exc.errors.items():
            errors.append(err if isinstance(err, GenerationError) else
                          GenerationError(f"{task_name}: {parallel.error_line(err)}"))
    results: dict[int, dict] = {by_name[n].k: st for n, st in done.items()}
    for k, st in sorted(results.items()):
        manifest["trajectories"][jobs[k - 1].name] = st
    manifest_path.write_text(json.dumps(manifest, indent=1))
    if errors:
        raise GenerationError("; ".join(str(e) for e in errors))

    dbs = [out / f"{job.name}.db" for job in jobs]
    merged = out / f"{name}.db"
    n_total = merge_databases(dbs, merged, split=split, seed=int(seed))
    manifest["merged"] = {"db": merged.name, "split": f"{name}_split.npz", "n_frames": n_total}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return {"out": str(out), "databases": [str(d) for d in dbs],
            "splits": [str(out / f"{job.name}_split.npz") for job in jobs],
            "merged": str(merged), "merged_split": str(out / f"{name}_split.npz"),
            "trajectories": [results[k] for k in sorted(results)]}
