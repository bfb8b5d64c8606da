"""Trajectories in memory and on disk (HDF5 in the H5MD 1.1 layout).

Files are appended and flushed chunk by chunk; MDAnalysis' H5MD reader opens them
(positions in Angstrom, velocities in Angstrom/fs, forces stored in kJ/mol/Angstrom, a unit
MDAnalysis knows, and converted back to eV/Angstrom when pymotor reads them). The full
double-precision restart state after the last written frame is kept in ``/pymotor/state``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from .units import FS_IN_ASE_TIME, kinetic_temperature_K

from .h5md import PARTICLES as _PARTICLES  # noqa: E402  (the schema: pymotor/h5md.py)
from .h5md import SCALARS as _SCALARS  # noqa: E402
from .h5md import VECTORS as _VECTORS  # noqa: E402
from .h5md import attr_value  # noqa: E402


@dataclass
class Trajectory:
    """Frames of one MD run. Units: Angstrom, Angstrom/fs, eV, eV/Angstrom, K, fs."""

    atomic_numbers: np.ndarray            # (N,)
    masses: np.ndarray                    # (N,) amu
    step: np.ndarray                      # (T,)
    time_fs: np.ndarray                   # (T,)
    positions: np.ndarray                 # (T, N, 3) Angstrom
    velocities: np.ndarray                # (T, N, 3) Angstrom/fs
    forces: np.ndarray                    # (T, N, 3) eV/Angstrom
    potential_energy: np.ndarray          # (T,) eV
    kinetic_energy: np.ndarray            # (T,) eV
    conserved_energy: np.ndarray          # (T,) eV
    n_dof: float
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def temperature(self) -> np.ndarray:
        """Kinetic temperature 2 E_kin / (n_dof k_B) in K."""
        return kinetic_temperature_K(self.kinetic_energy, self.n_dof)

    @property
    def total_energy(self) -> np.ndarray:
        return self.potential_energy + self.kinetic_energy

    def __len__(self) -> int:
        return len(self.step)

    def to_ase(self) -> list[Atoms]:
        """One ``ase.Atoms`` per frame, with momenta and energy/forces attached."""
        out = []
        for t in range(len(self)):
            a = Atoms(numbers=self.atomic_numbers, positions=self.positions[t], masses=self.masses)
            a.set_velocities(self.velocities[t] / FS_IN_ASE_TIME)
            a.calc = SinglePointCalculator(a, energy=float(self.potential_energy[t]),
                                           free_energy=float(self.potential_energy[t]),
                                           forces=self.forces[t].copy())
            out.append(a)
        return out


class TrajectoryLockedError(RuntimeError):
    """The trajectory file is being written by another process."""


class TrajectoryFileError(ValueError):
    """A trajectory or restart file that cannot be read (damaged, truncated, not HDF5)."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of a trajectory: ``.NAME.lock`` beside it (kept after the run: deleting
    it could let two writers lock two different files of the same name)."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


def _holder(path: Path) -> str:
    try:
        pid = lock_path(path).read_text().strip()
        return f"process {pid}" if pid else "another process"
    except OSError:
        return "another process"


def _lock_or_raise(fd: int, path: Path, what: str) -> None:
    """Take the exclusive writer lock on the open lock file ``fd`` of ``path``, or raise
    :class:`TrajectoryLockedError` naming the process that holds it."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise TrajectoryLockedError(
            f"`{what}`: {path} is being written by {_holder(path)} (lock file "
            f"{lock_path(path)}); wait for that run to end or write to another file") from None


class FileLock:
    """An exclusive advisory lock (``fcntl.flock``) on a trajectory's lock file, taken before
    the trajectory is opened for writing and released by the kernel if the process dies."""

    def __init__(self, path: str | os.PathLike, what: str = "trajectory"):
        self.path = Path(path)
        self._fd = os.open(lock_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock_or_raise(self._fd, self.path, what)
        except TrajectoryLockedError:
            os.close(self._fd)
            self._fd = None
            raise
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def check_not_being_written(path: str | os.PathLike, what: str = "restart") -> None:
    """Raise :class:`TrajectoryLockedError` when another process holds ``path``'s writer lock
    (:class:`FileLock`). HDF5's own lock is not enough: a writer closes its file between
    commits, and a reader slipping into that gap would see a file that is still growing."""
    import fcntl

    try:
        fd = os.open(lock_path(path), os.O_RDWR)
    except FileNotFoundError:
        return  # never written by a run that took the lock
    try:
        _lock_or_raise(fd, Path(path), what)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def open_h5(path: str | os.PathLike, mode: str = "r", what: str = "path", allow_running: bool = False):
    """``h5py.File`` with errors that name the argument: a missing file, a directory, a file
    another process is writing (:class:`TrajectoryLockedError`), an unreadable file
    (:class:`TrajectoryFileError`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"`{what}`: {path} is a directory, not an H5MD file")
    if mode == "r" and not path.is_file():
        raise FileNotFoundError(f"`{what}`: trajectory file {str(path)!r} does not exist")
    try:
        return h5py.File(path, mode, locking=False) if allow_running else h5py.File(path, mode)
    except BlockingIOError:
        raise TrajectoryLockedError(
            f"`{what}`: {path} is being written by {_holder(path)}; read it when that run has ended, "
            "or pass allow_running=True to read the frames flushed so far") from None
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise TrajectoryLockedError(
                f"`{what}`: {path} is locked by {_holder(path)}; read it when that run has ended, "
                "or pass allow_running=True to read the frames flushed so far") from None
        raise TrajectoryFileError(
            f"`{what}`: {path} is not a readable HDF5 file ({path.stat().st_size} bytes; {exc}); it is "
            "damaged or was not written by pymotor") from None


#: the restart state's two slots; ``/pymotor`` attribute ``state_slot`` names the committed one
_STATE_SLOTS = ("state0", "state1")
_STATE_REQUIRED = ("positions", "velocities", "step", "time_fs")


class H5MDWriter:
    """Appends frames of one replica to an H5MD file and keeps its restart state.

    Safety: an exclusive lock file is taken before the file is touched (a second writer is
    refused, :class:`TrajectoryLockedError`); an existing file is never truncated unless
    ``overwrite``; a new file is built under a temporary name and renamed into place by
    :meth:`publish` once it holds its first frame and state, so the file at ``path`` is always
    readable; the restart state is committed atomically (:meth:`write_state`)."""

    def __init__(self, path: str | os.PathLike, atomic_numbers, masses, attrs: dict, append: bool = False,
                 overwrite: bool = False):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"`trajectory`: {self.path} is a directory; name a file, e.g. {self.path / 'md.h5'}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.path, "restart" if append else "trajectory")
        self._tmp = None
        try:
            for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                stale.unlink()  # a file of a run killed before its first frame (we hold the lock)
            if append:
                self.f = open_h5(self.path, "r+", "restart")
                return
            if self.path.exists() and not overwrite:
                raise FileExistsError(
                    f"`trajectory`: {self.path} exists; continue that run with restart={str(self.path)!r} "
                    "(CLI: repeat the command) or replace it with overwrite=True (CLI: --overwrite)")
            self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            self.f = h5py.File(self._tmp, "w")
            self._write_header(atomic_numbers, masses, attrs)
        except BaseException:
            self._lock.release()
            raise

    def _write_header(self, atomic_numbers, masses, attrs: dict) -> None:
        from . import __version__

        h5 = self.f.create_group("h5md")
        h5.attrs["version"] = np.array([1, 1])
        h5.create_group("author").attrs["name"] = os.environ.get("USER", "pymotor")
        creator = h5.create_group("creator")
        creator.attrs["name"] = "pymotor"
        creator.attrs["version"] = __version__
        traj = self.f.create_group(_PARTICLES)
        box = traj.create_group("box")
        box.attrs["dimension"] = 3
        box.attrs["boundary"] = np.array([b"none"] * 3)
        n = len(atomic_numbers)
        for key, (name, unit, _) in _VECTORS.items():
            g = traj.create_group(name)
            g.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
            g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,)).attrs["unit"] = "fs"
            v = g.create_dataset("value", shape=(0, n, 3), maxshape=(None, n, 3), dtype="f8",
                                 chunks=(max(1, min(256, 65536 // n)), n, 3))
            v.attrs["unit"] = unit
        traj.create_dataset("species", data=np.asarray(atomic_numbers, dtype="i4"))
        traj.create_dataset("mass", data=np.asarray(masses, dtype="f8")).attrs["unit"] = "amu"
        obs = self.f.create_group("observables")
        for name, unit in _SCALARS.items():
            g = obs.create_group(name)
            g.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
            g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,)).attrs["unit"] = "fs"
            g.create_dataset("value", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,)).attrs["unit"] = unit
        meta = self.f.create_group("pymotor")
        self.set_attrs(attrs)
        meta.create_dataset("bond_events", shape=(0, 4), maxshape=(None, 4), dtype="i8", chunks=(64, 4))
        meta.create_dataset("bond_event_distance_A", shape=(0,), maxshape=(None,), dtype="f8", chunks=(64,))
        self.f.flush()

    def set_attrs(self, attrs: dict) -> None:
        """Write run settings into the ``/pymotor`` attributes (JSON for dicts and lists)."""
        meta = self.f["pymotor"]
        for k, v in attrs.items():
            meta.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v)

    def publish(self) -> None:
        """Move a new file into place (after its first frame and state are written)."""
        if self._tmp is None:
            return
        self.f.flush()
        self.f.close()
        os.replace(self._tmp, self.path)
        self._tmp = None
        self.f = h5py.File(self.path, "r+")

    @property
    def n_dof(self) -> float:
        return float(self.f["pymotor"].attrs["n_dof"])

    def append(self, frames: dict, replica: int = 0) -> None:
        """Append frames (arrays shaped (F, R, ...) as returned by the C++ loop) and flush."""
        nf = len(frames["step"])
        if nf == 0:
            return
        traj = self.f[_PARTICLES]
        for key, (name, _, scale) in _VECTORS.items():
            g = traj[name]
            self._extend(g["step"], frames["step"])
            self._extend(g["time"], frames["time_fs"])
            self._extend(g["value"], frames[key][:, replica] * scale)
        ke = frames["kinetic_energy"][:, replica]
        values = {"potential_energy": frames["potential_energy"][:, replica], "kinetic_energy": ke,
                  "conserved_energy": frames["conserved_energy"][:, replica],
                  "temperature": kinetic_temperature_K(ke, self.n_dof)}
        for name, v in values.items():
            g = self.f["observables"][name]
            self._extend(g["step"], frames["step"])
            self._extend(g["time"], frames["time_fs"])
            self._extend(g["value"], v)
        self.f.flush()

    def append_bond_events(self, events: np.ndarray, distances: np.ndarray) -> None:
        """Record connectivity changes: rows (step, i, j, formed) and distances (Angstrom)."""
        if len(events) == 0:
            return
        meta = self.f["pymotor"]
        if "bond_events" not in meta:  # a file from before bond events were recorded
            meta.create_dataset("bond_events", shape=(0, 4), maxshape=(None, 4), dtype="i8", chunks=(64, 4))
            meta.create_dataset("bond_event_distance_A", shape=(0,), maxshape=(None,), dtype="f8", chunks=(64,))
        self._extend(meta["bond_events"], np.asarray(events, dtype=np.int64).reshape(-1, 4))
        self._extend(meta["bond_event_distance_A"], np.asarray(distances, dtype=float))
        self.f.flush()

    def record_change(self, step: int, changes: dict, attrs: dict) -> None:
        """Record settings changed at a restart (``{key: (old, new)}``) and apply them."""
        meta = self.f["pymotor"]
        log = json.loads(meta.attrs.get("setting_changes", "[]"))
        log.append({"step": int(step), "changes": {k: [_jsonable(a), _jsonable(b)] for k, (a, b) in changes.items()}})
        self.set_attrs(dict(attrs, setting_changes=log))
        self.f.flush()

    @staticmethod
    def _extend(ds, data) -> None:
        n = ds.shape[0]
        ds.resize(n + len(data), axis=0)
        ds[n:] = data

    def write_state(self, state: dict) -> None:
        """Commit the restart state (positions, velocities, thermostat, step, time, bonds).

        Atomic: the state goes into the slot that is not committed (datasets overwritten in
        place), is flushed, and only then does the ``state_slot`` attribute switch to it. A
        kill at any instant leaves either the previous or the new state."""
        meta = self.f["pymotor"]
        current = int(meta.attrs.get("state_slot", -1))
        slot = 1 if current == 0 else 0
        g = meta.require_group(_STATE_SLOTS[slot])
        for k in list(g.keys()):
            if state.get(k) is None:
                del g[k]
        for k, v in state.items():
            if v is None:
                continue
            v = np.asarray(v)
            if k in g and g[k].shape == v.shape and g[k].dtype == v.dtype:
                g[k][...] = v
            else:
                if k in g:
                    del g[k]
                g.create_dataset(k, data=v)
        self.f.flush()
        meta.attrs["state_slot"] = slot
        self.f.flush()

    def truncate_after(self, step: int) -> None:
        """Drop frames and bond events with step > ``step`` (written after the last committed state)."""
        groups = [self.f[_PARTICLES][name] for name, _, _ in _VECTORS.values()]
        groups += [self.f["observables"][name] for name in _SCALARS]
        for g in groups:
            keep = int(np.searchsorted(g["step"][:], step, side="right"))
            for ds in ("step", "time", "value"):
                g[ds].resize(keep, axis=0)
        meta = self.f["pymotor"]
        if "bond_events" in meta and len(meta["bond_events"]):
            keep = int((meta["bond_events"][:, 0] <= step).sum())
            meta["bond_events"].resize(keep, axis=0)
            meta["bond_event_distance_A"].resize(keep, axis=0)
        self.f.flush()

    def close(self) -> None:
        """Close the file; a new file that holds frames is published first, one without
        frames is removed (nothing in it to read or restart)."""
        try:
            if self._tmp is not None and getattr(self, "f", None) is not None and self.f.id.valid \
                    and self.f[_PARTICLES]["position"]["step"].shape[0] > 0:
                self.publish()
            if getattr(self, "f", None) is not None and self.f.id.valid:
                self.f.close()
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()
        finally:
            self._lock.release()


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_state(path: str | os.PathLike, what: str = "restart") -> dict:
    """The committed restart state stored in a pymotor H5MD file (``what`` names the argument
    in errors). Raises :class:`TrajectoryFileError` for a damaged file or state."""
    path = Path(path)
    with open_h5(path, "r", what) as f:
        try:
            if "pymotor" not in f or _PARTICLES not in f:
                raise ValueError(f"`{what}`: {path} is not a pymotor trajectory (no /pymotor, /{_PARTICLES})")
            slot = f["pymotor"].attrs.get("state_slot")
            group = f"pymotor/{_STATE_SLOTS[int(slot)]}" if slot is not None else "pymotor/state"
            if group not in f:
                raise ValueError(f"`{what}`: {path} holds no pymotor restart state")
            st = {k: v[()] for k, v in f[group].items()}
            st["attrs"] = dict(f["pymotor"].attrs)
            st["atomic_numbers"] = f[_PARTICLES]["species"][()]
            st["masses"] = f[_PARTICLES]["mass"][()]
            st["n_frames"] = int(f[_PARTICLES]["position"]["step"].shape[0])
        except (KeyError, OSError, RuntimeError) as exc:
            raise TrajectoryFileError(f"`{what}`: {path} is damaged ({exc})") from None
    missing = [k for k in _STATE_REQUIRED if k not in st]
    if missing:
        raise TrajectoryFileError(f"`{what}`: the restart state in {path} lacks {', '.join(missing)}; "
                                  "the file is damaged")
    return st


def committed_step(path: str | os.PathLike) -> int | None:
    """The step of the committed restart state in a pymotor file; None when the file does not
    exist or has no readable state (run_md, given it as ``restart``, then says why)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return int(read_state(path)["step"])
    except Exception:  # noqa: BLE001 - a damaged, locked or not-yet-started file has no usable state
        return None


def read_trajectory(path: str | os.PathLike, start: int = 0, stop: int | None = None,
                    step: int = 1, allow_running: bool = False) -> Trajectory:
    """Read frames ``start:stop:step`` of a pymotor H5MD file into a :class:`Trajectory`.

    A file that another process is still writing is refused with
    :class:`TrajectoryLockedError` unless ``allow_running`` (then the frames flushed so far
    are read)."""
    path = Path(path)
    sl = slice(start, stop, step)
    with open_h5(path, "r", "path", allow_running=allow_running) as f:
        if _PARTICLES not in f:
            raise ValueError(f"`path`: {path} is not a pymotor H5MD trajectory (no /{_PARTICLES})")
        traj = f[_PARTICLES]
        data = {key: traj[name]["value"][sl] / scale for key, (name, _, scale) in _VECTORS.items()}
        obs = f["observables"]
        attrs = {k: attr_value(v) for k, v in f["pymotor"].attrs.items()}
        meta = f["pymotor"]
        if "bond_events" in meta:
            ev, dist = meta["bond_events"][()], meta["bond_event_distance_A"][()]
            attrs["bond_events"] = [dict(step=int(e[0]), i=int(e[1]), j=int(e[2]), formed=bool(e[3]),
                                         distance_A=float(d)) for e, d in zip(ev, dist)]
        return Trajectory(
            atomic_numbers=traj["species"][()].astype(int), masses=traj["mass"][()],
            step=traj["position"]["step"][sl], time_fs=traj["position"]["time"][sl],
            potential_energy=obs["potential_energy"]["value"][sl],
            kinetic_energy=obs["kinetic_energy"]["value"][sl],
            conserved_energy=obs["conserved_energy"]["value"][sl],
            n_dof=float(attrs.get("n_dof", 3 * len(traj["species"]) - 3)),
            metadata=attrs, path=path, **data,
        )
