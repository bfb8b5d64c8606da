"""Reference databases for training: checks, time splits, energy offsets, in-memory datasets.

A training database is a SchNetPack ``ASEAtomsData`` file (``.db``) with the properties
``energy`` (per frame) and ``forces`` (per atom), their units in the database metadata
(``_property_unit_dict``, ``_distance_unit``) and, optionally, single-atom reference
energies (``atomrefs``). Rows are assumed to be in time order (one MD trajectory per file).

Each database is split on its own:

* if a split file sits beside it (``<db>.split.npz``, ``<stem>.split.npz`` or
  ``<stem>_split.npz``) its ``train_idx``/``val_idx``/``test_idx`` are used (0-based row
  indices; the file is checked against the database);
* otherwise by time: the last 20 % of the frames are the test set, the first 80 % of the rest
  the training set and the remaining 20 % the validation set, each contiguous.

Everything here is pure numpy/torch + ASE; SchNetPack transforms are applied per frame.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

# one definition of the database hash that split files record and training checks
from ..data.generate import sha256_file  # noqa: E402
from ..units import TRAINING_ENERGY_UNITS  # noqa: E402
from ..units import unit_conversion as energy_conversion  # noqa: E402  (one unit registry: pymotor.units)

__all__ = [
    "TrainingDataError",
    "DatabaseInfo",
    "SPLIT_SUFFIXES",
    "TRAINING_ENERGY_UNITS",
    "canonical_energy_unit",
    "energy_conversion",
    "inspect_database",
    "time_split",
    "find_split_file",
    "load_split",
    "Frames",
    "FrameDataset",
    "sha256_file",
]


class TrainingDataError(ValueError):
    """A training database, split file or run directory cannot be used as given."""


SPLIT_SUFFIXES = (".split.npz",)


def canonical_energy_unit(unit: str) -> str:
    """The canonical spelling (``"kcal/mol"``, ``"eV"``, ``"Hartree"``) of a training energy unit
    (:func:`pymotor.units.canonical_energy_unit`), as a :class:`TrainingDataError`."""
    from ..units import canonical_energy_unit as canonical

    try:
        return canonical(unit, TRAINING_ENERGY_UNITS)
    except ValueError as exc:
        raise TrainingDataError(str(exc)) from None


@dataclass
class DatabaseInfo:
    """What a training run needs to know about one database."""

    path: str
    n_frames: int
    energy_unit: str  # native unit in the file
    forces_unit: str
    distance_unit: str
    atomrefs: Optional[Dict[int, float]]  # native energy unit, None if absent or all zero
    elements: List[int]
    sha256: str
    split_file: Optional[str] = None
    split: Dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "n_frames": self.n_frames,
            "sha256": self.sha256,
            "units": {
                "energy": self.energy_unit,
                "forces": self.forces_unit,
                "distance": self.distance_unit,
            },
            "elements": self.elements,
            "split_source": self.split_file or "time (train 64 %, val 16 %, test last 20 %)",
            "split_sizes": {k: int(len(v)) for k, v in self.split.items()},
        }


def inspect_database(path: str | os.PathLike, hash_file: bool = True) -> DatabaseInfo:
    """Open `path` read-only, check it is usable for energy+force training, return its info."""
    from ase.db import connect

    path = str(path)
    if not os.path.isfile(path):
        raise TrainingDataError(f"database {path!r} does not exist")
    if not path.endswith(".db"):
        raise TrainingDataError(f"database {path!r}: expected an ASE/SchNetPack `.db` file")
    with connect(path, use_lock_file=False) as conn:
        md = conn.metadata
        n = conn.count()
        if n == 0:
            raise TrainingDataError(f"database {path!r} has no frames")
        if "_property_unit_dict" not in md or "_distance_unit" not in md:
            raise TrainingDataError(
                f"database {path!r} has no SchNetPack unit metadata (`_property_unit_dict`, "
                "`_distance_unit`); write it with schnetpack.data.ASEAtomsData.create"
            )
        units = md["_property_unit_dict"]
        for prop in ("energy", "forces"):
            if prop not in units:
                raise TrainingDataError(
                    f"database {path!r} has no `{prop}` property (it has: "
                    f"{', '.join(sorted(units)) or 'none'}); pymotor trains on energies and forces"
                )
        row = conn.get(1)
        for prop in ("energy", "forces"):
            if prop not in row.data:
                raise TrainingDataError(
                    f"database {path!r}: row 1 has no `{prop}` data although the metadata "
                    "lists it"
                )
        elements = set()
        for r in conn.select(columns=["numbers"]):
            elements.update(int(z) for z in r.numbers)
    atomrefs = None
    ar = (md.get("atomrefs") or {}).get("energy")
    if ar is not None:
        ar = np.asarray(ar, dtype=np.float64)
        if np.any(ar != 0.0):
            missing = [z for z in elements if z >= len(ar) or ar[z] == 0.0]
            if missing:
                raise TrainingDataError(
                    f"database {path!r}: `atomrefs['energy']` has no value for elements {missing}"
                )
            atomrefs = {int(z): float(ar[z]) for z in sorted(elements)}
    return DatabaseInfo(
        path=os.path.abspath(path),
        n_frames=int(n),
        energy_unit=str(units["energy"]),
        forces_unit=str(units["forces"]),
        distance_unit=str(md["_distance_unit"]),
        atomrefs=atomrefs,
        elements=sorted(elements),
        sha256=sha256_file(path) if hash_file else "",
    )


def time_split(n: int, test_fraction: float = 0.2, val_fraction: float = 0.2) -> Dict[str, np.ndarray]:
    """Contiguous split by time (:func:`pymotor.splits.make_split` with ``kind="time"``)."""
    from ..splits import make_split

    try:
        return make_split(n, "time", test_fraction=test_fraction, val_fraction=val_fraction)
    except ValueError:
        raise TrainingDataError(
            f"a database with {n} frames is too small for a train/val/test split by time "
            "(needs at least 1 frame in each; use at least 7 frames)") from None


def find_split_file(db_path: str) -> Optional[str]:
    """The split file that belongs to `db_path`, if one exists."""
    p = Path(db_path)
    stem = p.with_suffix("")
    for cand in (
        Path(str(p) + ".split.npz"),
        Path(str(stem) + ".split.npz"),
        Path(str(stem) + "_split.npz"),
    ):
        if cand.is_file():
            return str(cand)
    return None


def choose_split(info: DatabaseInfo) -> Dict[str, np.ndarray]:
    """The database's split: its split file (recorded in ``info.split_file``) if present, else by
    time; also stored in ``info.split``."""
    sf = find_split_file(info.path)
    if sf is not None:
        info.split_file = os.path.abspath(sf)
        split = load_split(sf, info)
    else:
        split = time_split(info.n_frames)
    info.split = split
    return split


def load_split(split_file: str, info: DatabaseInfo) -> Dict[str, np.ndarray]:
    """Read and check `split_file` (``train_idx``, ``val_idx``, ``test_idx``) against `info`."""
    try:
        s = np.load(split_file, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any read failure is the same user error
        raise TrainingDataError(f"split file {split_file!r} cannot be read: {exc}") from exc
    out = {}
    for key in ("train", "val", "test"):
        name = f"{key}_idx"
        if name not in s.files:
            raise TrainingDataError(
                f"split file {split_file!r} has no `{name}` (it has: {', '.join(s.files)})"
            )
        a = np.asarray(s[name])
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise TrainingDataError(
                f"split file {split_file!r}: `{name}` must be a 1-d integer array, got "
                f"shape {a.shape}, dtype {a.dtype}"
            )
        a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() >= info.n_frames):
            raise TrainingDataError(
                f"split file {split_file!r} does not match database {info.path!r}: `{name}` "
                f"has indices in [{a.min()}, {a.max()}] but the database has {info.n_frames} "
                "frames (indices 0..n-1)"
            )
        if len(np.unique(a)) != len(a):
            raise TrainingDataError(f"split file {split_file!r}: `{name}` has repeated indices")
        out[key] = a
    for key in ("n_frames", "n_total"):
        if key in s.files and int(s[key]) != info.n_frames:
            raise TrainingDataError(
                f"split file {split_file!r} does not match database {info.path!r}: it was "
                f"made for {int(s[key])} frames, the database has {info.n_frames}"
            )
    if "db_sha256" in s.files and info.sha256 and str(s["db_sha256"]) != info.sha256:
        raise TrainingDataError(
            f"split file {split_file!r} does not match database {info.path!r}: "
            "its `db_sha256` differs from the database's hash"
        )
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = np.intersect1d(out[a], out[b])
        if both.size:
            raise TrainingDataError(
                f"split file {split_file!r}: {both.size} frames are in both `{a}_idx` and "
                f"`{b}_idx` (e.g. {both[:5].tolist()})"
            )
    if len(out["train"]) == 0 or len(out["val"]) == 0:
        raise TrainingDataError(f"split file {split_file!r}: empty `train_idx` or `val_idx`")
    return out


class Frames:
    """All frames of one database in memory, converted to the training units (float64).

    Positions in Angstrom, energies in `energy_unit`, forces in `energy_unit`/Angstrom.
    """

    def __init__(self, info: DatabaseInfo, energy_unit: str):
        from ase.db import connect

        self.info = info
        ce = energy_conversion(info.energy_unit, energy_unit)
        cf = energy_conversion(info.forces_unit, f"{energy_unit}/Ang")
        cd = energy_conversion(info.distance_unit, "Ang")
        Z, R, E, F, cells, pbcs = [], [], [], [], [], []
        with connect(info.path, use_lock_file=False) as conn:
            for row in conn.select(sort="id"):
                Z.append(np.asarray(row.numbers, dtype=np.int64))
                R.append(np.asarray(row.positions, dtype=np.float64) * cd)
                E.append(float(np.asarray(row.data["energy"], dtype=np.float64).reshape(-1)[0]) * ce)
                f = np.asarray(row.data["forces"], dtype=np.float64) * cf
                if f.shape != (len(row.numbers), 3):
                    raise TrainingDataError(
                        f"database {info.path!r}: row {row.id} has forces of shape {f.shape}, "
                        f"expected ({len(row.numbers)}, 3)"
                    )
                F.append(f)
                cells.append(np.asarray(row.cell, dtype=np.float64) * cd)
                pbcs.append(np.asarray(row.pbc, dtype=bool))
        self.Z, self.R, self.E, self.F = Z, R, np.asarray(E), F
        self.cells, self.pbcs = cells, pbcs
        if not (np.isfinite(self.E).all() and all(np.isfinite(f).all() for f in F)):
            raise TrainingDataError(f"database {info.path!r} has non-finite energies or forces")

    def __len__(self) -> int:
        return len(self.E)

    def sample(self, i: int) -> Dict[str, torch.Tensor]:
        """One frame as a SchNetPack input dictionary (float64, fresh tensors)."""
        import schnetpack.properties as P

        i = int(i)
        return {
            P.idx: torch.tensor([i]),
            P.Z: torch.from_numpy(self.Z[i].copy()),
            P.n_atoms: torch.tensor([len(self.Z[i])]),
            P.position: torch.from_numpy(self.R[i].copy()),
            P.cell: torch.from_numpy(self.cells[i][None].copy()),
            P.pbc: torch.from_numpy(self.pbcs[i].copy()),
            "energy": torch.tensor([self.E[i]], dtype=torch.float64),
            "forces": torch.from_numpy(self.F[i].copy()),
        }


class FrameDataset(torch.utils.data.Dataset):
    """Frames from several databases (each with its own index list), with transforms."""

    def __init__(self, parts: Sequence[tuple], transforms: Sequence[torch.nn.Module] = ()):
        # parts: sequence of (Frames, index array)
        self.parts = [(fr, np.asarray(idx, dtype=np.int64)) for fr, idx in parts]
        self._lookup = [(p, int(i)) for p, (_, idx) in enumerate(self.parts) for i in idx]
        self.transforms = list(transforms)

    def __len__(self) -> int:
        return len(self._lookup)

    def raw(self, k: int) -> Dict[str, torch.Tensor]:
        p, i = self._lookup[k]
        return self.parts[p][0].sample(i)

    def __getitem__(self, k: int) -> Dict[str, torch.Tensor]:
        x = self.raw(k)
        for t in self.transforms:
            x = t(x)
        return x

    def energies(self) -> np.ndarray:
        return np.concatenate([fr.E[idx] for fr, idx in self.parts]) if self.parts else np.zeros(0)

    def n_atoms(self) -> np.ndarray:
        return np.concatenate(
            [np.array([len(fr.Z[i]) for i in idx]) for fr, idx in self.parts]
        )

    def atomref_sums(self, atomrefs: Optional[Dict[int, float]]) -> np.ndarray:
        if not atomrefs:
            return np.zeros(len(self))
        return np.concatenate(
            [np.array([sum(atomrefs[int(z)] for z in fr.Z[i]) for i in idx]) for fr, idx in self.parts]
        )

    def force_components(self) -> np.ndarray:
        return np.concatenate([np.concatenate([fr.F[i].ravel() for i in idx]) for fr, idx in self.parts])

    def frame_ids(self) -> List[tuple]:
        """(database index, row index) for each item, in order."""
        return list(self._lookup)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")
