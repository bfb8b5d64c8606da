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

from .units import EV_IN_KJ_PER_MOL, FS_IN_ASE_TIME, KB_EV_PER_K

_PARTICLES = "particles/trajectory"
_VECTORS = {"positions": ("position", "Angstrom", 1.0),
            "velocities": ("velocity", "Angstrom fs-1", 1.0),
            "forces": ("force", "kJ mol-1 Angstrom-1", EV_IN_KJ_PER_MOL)}
_SCALARS = {"potential_energy": "eV", "kinetic_energy": "eV", "conserved_energy": "eV",
            "temperature": "K"}


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
        return 2.0 * self.kinetic_energy / (self.n_dof * KB_EV_PER_K)

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


class H5MDWriter:
    """Appends frames of one replica to an H5MD file and keeps its restart state."""

    def __init__(self, path: str | os.PathLike, atomic_numbers, masses, attrs: dict, append: bool = False):
        self.path = Path(path)
        if append:
            self.f = h5py.File(self.path, "r+")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = h5py.File(self.path, "w")
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
        for k, v in attrs.items():
            meta.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v)
        self.f.flush()

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
                  "temperature": 2.0 * ke / (self.n_dof * KB_EV_PER_K)}
        for name, v in values.items():
            g = self.f["observables"][name]
            self._extend(g["step"], frames["step"])
            self._extend(g["time"], frames["time_fs"])
            self._extend(g["value"], v)
        self.f.flush()

    @staticmethod
    def _extend(ds, data) -> None:
        n = ds.shape[0]
        ds.resize(n + len(data), axis=0)
        ds[n:] = data

    def write_state(self, state: dict) -> None:
        """Replace the restart state (positions, velocities, thermostat, step, time)."""
        meta = self.f["pymotor"]
        if "state" in meta:
            del meta["state"]
        g = meta.create_group("state")
        for k, v in state.items():
            if v is not None:
                g.create_dataset(k, data=np.asarray(v))
        self.f.flush()

    def truncate_after(self, step: int) -> None:
        """Drop frames with step > ``step`` (written after the last saved state)."""
        groups = [self.f[_PARTICLES][name] for name, _, _ in _VECTORS.values()]
        groups += [self.f["observables"][name] for name in _SCALARS]
        for g in groups:
            keep = int(np.searchsorted(g["step"][:], step, side="right"))
            for ds in ("step", "time", "value"):
                g[ds].resize(keep, axis=0)
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def read_state(path: str | os.PathLike) -> dict:
    """The restart state stored in a pymotor H5MD file."""
    with h5py.File(path, "r") as f:
        if "pymotor/state" not in f:
            raise ValueError(f"`restart`: {path} holds no pymotor restart state")
        st = {k: v[()] for k, v in f["pymotor/state"].items()}
        st["attrs"] = dict(f["pymotor"].attrs)
        st["atomic_numbers"] = f[_PARTICLES]["species"][()]
    return st


def read_trajectory(path: str | os.PathLike, start: int = 0, stop: int | None = None,
                    step: int = 1) -> Trajectory:
    """Read frames ``start:stop:step`` of a pymotor H5MD file into a :class:`Trajectory`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path`: trajectory file {str(path)!r} does not exist")
    sl = slice(start, stop, step)
    with h5py.File(path, "r") as f:
        if _PARTICLES not in f:
            raise ValueError(f"`path`: {path} is not a pymotor H5MD trajectory (no /{_PARTICLES})")
        traj = f[_PARTICLES]
        data = {key: traj[name]["value"][sl] / scale for key, (name, _, scale) in _VECTORS.items()}
        obs = f["observables"]
        attrs = {}
        for k, v in f["pymotor"].attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, str) and v[:1] in "{[":
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    pass
            attrs[k] = v.item() if isinstance(v, np.generic) else v
        return Trajectory(
            atomic_numbers=traj["species"][()].astype(int), masses=traj["mass"][()],
            step=traj["position"]["step"][sl], time_fs=traj["position"]["time"][sl],
            potential_energy=obs["potential_energy"]["value"][sl],
            kinetic_energy=obs["kinetic_energy"]["value"][sl],
            conserved_energy=obs["conserved_energy"]["value"][sl],
            n_dof=float(attrs.get("n_dof", 3 * len(traj["species"]) - 3)),
            metadata=attrs, path=path, **data,
        )
