"""A committee of deployed models: mean energy and forces, and their spread as the uncertainty.

A :class:`Committee` holds M deployed models (TorchScript files written by ``pymotor export``,
each evaluated by its fastest backend, see :func:`pymotor.load_model`). One call,
:meth:`CommitteeEvaluator.evaluate`, evaluates every member on R replicas (positions
(R, N, 3), Angstrom; one batched C++ call per member) and returns

* the committee's energy (R,) and forces (R, N, 3): the means over the members (eV, eV/Angstrom);
* the force standard deviation per atom (R, N), eV/Angstrom::

      sigma_i = sqrt( 1/M sum_m |F_i^(m) - <F_i>|^2 )

  (the root of the summed variance of the three components, over members, with 1/M: the
  population standard deviation; al_mlp and ASE's ensemble calculators use the same form);
* its maximum over atoms, ``max_force_std`` (R,): the number compared with the threshold of
  :func:`pymotor.learn.on_the_fly`.

:func:`calibrate_threshold` sets a default threshold from the committee's spread on the
validation frames of its own training data: the ``quantile`` (default 0.99) of
``max_force_std`` over those frames, i.e. on geometries like those it was trained on, about
1 % of checks would call GFN2-xTB.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Committee", "CommitteeEvaluator", "CommitteePrediction", "force_std", "resolve_committee",
           "calibrate_threshold", "DEFAULT_QUANTILE"]

#: quantile of the committee's max force std on its validation frames used as the default threshold
DEFAULT_QUANTILE = 0.99
#: frames per batched committee call when evaluating data sets
_BATCH = 128


def force_std(forces) -> np.ndarray:
    """Per-atom force standard deviation over the members: ``forces`` (M, ..., N, 3) ->
    (..., N), ``sqrt(mean_m |F_m - mean F|^2)`` (population form, 1/M)."""
    f = np.asarray(forces, dtype=float)
    dev = f - f.mean(axis=0, keepdims=True)
    return np.sqrt((dev**2).sum(axis=-1).mean(axis=0))


@dataclass
class CommitteePrediction:
    """The members' and the committee's energies (eV) and forces (eV/Angstrom) for R replicas."""

    energies: np.ndarray       # (M, R)
    member_forces: np.ndarray  # (M, R, N, 3)

    @property
    def energy(self) -> np.ndarray:
        """(R,) mean energy (eV)."""
        return self.energies.mean(axis=0)

    @property
    def forces(self) -> np.ndarray:
        """(R, N, 3) mean forces (eV/Angstrom)."""
        return self.member_forces.mean(axis=0)

    @property
    def force_std(self) -> np.ndarray:
        """(R, N) per-atom force standard deviation (eV/Angstrom)."""
        return force_std(self.member_forces)

    @property
    def max_force_std(self) -> np.ndarray:
        """(R,) the largest per-atom force standard deviation (eV/Angstrom)."""
        return self.force_std.max(axis=-1)

    @property
    def energy_std(self) -> np.ndarray:
        """(R,) standard deviation of the members' energies (eV, 1/M)."""
        return self.energies.std(axis=0)


class CommitteeEvaluator:
    """The members' C++ potentials for one molecule; :meth:`evaluate` takes (R, N, 3) positions."""

    def __init__(self, committee: "Committee", atomic_numbers: Sequence[int]):
        self.committee = committee
        self.atomic_numbers = np.asarray(atomic_numbers, dtype=np.int64)
        self.potentials = [m.potential(self.atomic_numbers) for m in committee.models]

    def evaluate(self, positions) -> CommitteePrediction:
        pos = np.ascontiguousarray(positions, dtype=float)
        if pos.ndim == 2:
            pos = pos[None]
        if pos.ndim != 3 or pos.shape[1:] != (len(self.atomic_numbers), 3):
            raise ValueError(f"`positions` must be an array (R, {len(self.atomic_numbers)}, 3), got {pos.shape}")
        es, fs = [], []
        for p in self.potentials:
            e, f = p.compute(pos)
            es.append(e)
            fs.append(f)
        return CommitteePrediction(np.asarray(es), np.asarray(fs))

    def __call__(self, positions):
        """The committee mean as a force callback: ``(energy (R,), forces (R, N, 3))``."""
        pred = self.evaluate(positions)
        return pred.energy, pred.forces


class Committee:
    """M >= 2 deployed models evaluated together.

    Parameters
    ----------
    models
        Model files (paths or shipped names), loaded :class:`pymotor.backends.NNModel` objects,
        or a spec that :func:`resolve_committee` understands (a folder of ``*.pt`` files, a
        shipped committee name, comma-separated paths).
    backend
        Evaluator of each member (:func:`pymotor.load_model`; default the fastest that supports it).
    """

    def __init__(self, models, backend: str = "auto"):
        from ..backends import NNModel, load_model

        if isinstance(models, (str, os.PathLike)):
            models = resolve_committee(models)
        models = list(models)
        loaded = []
        for m in models:
            if isinstance(m, NNModel):
                loaded.append(m)
            else:
                loaded.append(load_model(_resolve_one(m), backend=backend))
        if len(loaded) < 2:
            raise ValueError(f"`committee` needs at least 2 models, got {len(loaded)} "
                             f"({', '.join(str(getattr(m, 'path', m)) for m in loaded) or 'none'}): the force "
                             "spread of one model is zero")
        self.models = loaded
        self.backend = backend

    def __len__(self) -> int:
        return len(self.models)

    @property
    def paths(self) -> list[Path]:
        return [Path(m.path) for m in self.models]

    @property
    def energy_unit(self) -> str:
        """The training energy unit of the first member (the unit of its labels' database)."""
        return self.models[0].energy_unit

    def sha256(self) -> str:
        """One hash of the members' file hashes, in order: the committee's identity."""
        h = hashlib.sha256()
        for m in self.models:
            h.update(m.file.sha256().encode())
        return h.hexdigest()

    def evaluator(self, atomic_numbers: Sequence[int]) -> CommitteeEvaluator:
        return CommitteeEvaluator(self, atomic_numbers)

    def evaluate(self, positions, atomic_numbers: Sequence[int]) -> CommitteePrediction:
        """Members and committee on (R, N, 3) positions (Angstrom) of one molecule."""
        return self.evaluator(atomic_numbers).evaluate(positions)

    def potential(self, atomic_numbers: Sequence[int]):
        """The committee mean as a C++ potential (``pymotor.run_md(committee.potential(z), ...)``)."""
        from .. import _core

        return _core.CallbackPotential(self.evaluator(atomic_numbers),
                                       f"committee of {len(self)} ({self.sha256()[:12]})")

    def evaluate_frames(self, positions, atomic_numbers, batch: int = _BATCH) -> CommitteePrediction:
        """Like :meth:`evaluate` for many frames (F, N, 3), in batches of ``batch`` replicas."""
        ev = self.evaluator(atomic_numbers)
        pos = np.asarray(positions, dtype=float)
        parts = [ev.evaluate(pos[a:a + batch]) for a in range(0, len(pos), batch)]
        return CommitteePrediction(np.concatenate([p.energies for p in parts], axis=1),
                                   np.concatenate([p.member_forces for p in parts], axis=1))

    def training_databases(self) -> list[str]:
        """The databases named in the members' model cards (union, in order of appearance)."""
        out: list[str] = []
        for m in self.models:
            for d in m.card.get("datasets", []):
                if d.get("path") and d["path"] not in out:
                    out.append(d["path"])
        return out

    def describe(self) -> dict:
        return {"kind": "committee", "sha256": self.sha256(), "members": [m.describe() for m in self.models]}

    def __repr__(self) -> str:
        return f"Committee({[str(p) for p in self.paths]!r}, backend={self.backend!r})"


def _resolve_one(p) -> Path:
    from .. import models

    path = models.resolve(p)
    if not Path(path).is_file():
        raise FileNotFoundError(f"`committee`: model file {str(path)!r} does not exist")
    return Path(path)


def resolve_committee(spec) -> list[Path]:
    """The member files of a committee spec.

    * a list of paths or shipped model names;
    * a string with commas: ``"a.pt,b.pt,c.pt"``;
    * a folder: its ``*.pt`` files, sorted;
    * a shipped committee name ``NAME``: ``pymotor/models/NAME.json`` (``{"members": [files
      relative to pymotor/models]}``, so that a member shipped as a model of its own is not
      stored twice), the folder ``pymotor/models/NAME/`` or the files
      ``pymotor/models/NAME-<k>.pt`` (k = 0, 1, ...).
    """
    from .. import models

    if isinstance(spec, (list, tuple)):
        if len(spec) == 1:
            return resolve_committee(spec[0])
        return [_resolve_one(p) for p in spec]
    text = str(spec)
    if "," in text:
        return [_resolve_one(p.strip()) for p in text.split(",") if p.strip()]
    p = Path(text)
    if p.is_dir():
        files = sorted(p.glob("*.pt"))
        if not files:
            raise FileNotFoundError(f"`committee`: folder {text!r} holds no model files (*.pt)")
        return files
    if "/" not in text and os.sep not in text and not text.endswith(".pt"):  # a shipped committee's name
        manifest = models.MODEL_DIR / f"{text}.json"
        if manifest.is_file():
            return [_resolve_one(models.MODEL_DIR / m) for m in json.loads(manifest.read_text())["members"]]
        shipped = models.MODEL_DIR / text
        if shipped.is_dir():
            return sorted(shipped.glob("*.pt"))
        numbered = sorted(models.MODEL_DIR.glob(f"{text}-[0-9]*.pt"), key=lambda q: int(q.stem.rsplit("-", 1)[1]))
        if numbered:
            return numbered
    if p.suffix == ".pt" or p.is_file() or text in models.available():
        return [_resolve_one(text)]
    raise FileNotFoundError(
        f"`committee`: {text!r} is neither model files (a.pt,b.pt or several paths), a folder of *.pt files, "
        f"nor a shipped committee (pymotor/models/{text}/ or {text}-0.pt, {text}-1.pt, ...; shipped models: "
        f"{', '.join(models.available()) or 'none'})")


def calibrate_threshold(committee: Committee, databases: Sequence | None = None, split: str = "val",
                        quantile: float = DEFAULT_QUANTILE, max_frames: int = 2000) -> dict:
    """The default threshold: the ``quantile`` of the committee's max force std (eV/Angstrom) on
    the ``split`` frames of ``databases`` (default: the members' own training databases, from
    their model cards; every k-th frame so that at most ``max_frames`` are evaluated).

    Returns a dict with ``threshold_eV_per_A`` and how it was obtained (databases, frames, the
    quantile and a few other percentiles of the spread)."""
    from ..train.data import Frames, choose_split, inspect_database

    if not (0 < quantile < 1):
        raise ValueError(f"`threshold_quantile` must lie in (0, 1), got {quantile!r}")
    dbs = list(databases) if databases else committee.training_databases()
    if not dbs:
        raise ValueError("`threshold`='auto' needs the committee's validation frames, but its model cards name no "
                         "training databases; give `calibration_dbs` (CLI: --calibration-db) or a number")
    missing = [d for d in dbs if not Path(d).is_file()]
    if missing:
        raise FileNotFoundError(f"`threshold`='auto': the committee's training database(s) {missing} do not exist "
                                "here; give `calibration_dbs` (CLI: --calibration-db DB) or a number for `threshold`")
    counts = []
    for d in dbs:
        info = inspect_database(d, hash_file=False)
        counts.append((info, choose_split(info)[split]))
    total = sum(len(idx) for _, idx in counts)
    if total == 0:
        raise ValueError(f"`threshold`='auto': the {split} split of {dbs} is empty")
    stride = max(1, int(np.ceil(total / int(max_frames))))
    z0, pos = None, []
    for info, idx in counts:
        fr = Frames(info, "eV")
        for i in idx[::stride]:
            if z0 is None:
                z0 = fr.Z[i]
            elif not np.array_equal(fr.Z[i], z0):
                continue  # another molecule in the same database: not this committee's system
            pos.append(fr.R[i])
    pred = committee.evaluate_frames(np.asarray(pos), z0)
    s = pred.max_force_std
    return {"threshold_eV_per_A": float(np.quantile(s, quantile)), "method": "quantile of max force std",
            "quantile": float(quantile), "split": split, "databases": [str(d) for d in dbs], "stride": stride,
            "n_frames": int(len(s)),
            "percentiles_eV_per_A": {str(q): float(np.quantile(s, q / 100)) for q in (50, 90, 95, 99, 100)}}
