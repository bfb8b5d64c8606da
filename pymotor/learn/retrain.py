"""Fine-tuning a committee on labelled frames plus a replay of its original data.

* :func:`run_dir_from_model` turns a deployed model file (``pymotor export``) back into a
  training run directory that :func:`pymotor.train.train` can fine-tune from
  (``init_from=``): the SchNetPack model is rebuilt from the card's hyperparameters and the
  file's weights (the exported weights are the run's best EMA weights, so this equals the
  original run's ``best_model.pt``), with the same energy offset and output scale.
* :func:`write_labels_db` writes labelled frames as a SchNetPack database in the committee's
  energy unit and atom references, with a split file (every 5th frame validation).
* :func:`fine_tune` trains one member on the replay databases (strided to about
  ``replay_frames`` training frames) plus the labels, and exports it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["run_dir_from_model", "write_labels_db", "write_split", "replay_stride", "fine_tune", "labels_split"]


def run_dir_from_model(model_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A run directory (``run.json`` + ``best_model.pt``) rebuilt from a deployed model file."""
    import torch

    from ..modelfile import ModelFile
    from ..train.core import RUN_FORMAT, _atomref_tensor, _write_json
    from ..train.model import DEFAULT_HYPERPARAMETERS, LEGACY_HYPERPARAMETERS, build_model

    f = ModelFile(model_path)
    md = f.metadata
    card = md.get("card") or {}
    if md.get("format") != "pymotor.model/1" or "hyperparameters" not in card:
        raise ValueError(f"`committee`: {f.path} has no pymotor model card with hyperparameters (it was not written "
                         "by `pymotor export`); it can be evaluated but not fine-tuned (use retrain=False, "
                         "CLI --no-retrain)")
    arch = md.get("architecture")
    chp = card["hyperparameters"]
    hp = dict(DEFAULT_HYPERPARAMETERS)
    hp.update(LEGACY_HYPERPARAMETERS)
    hp.update({k: v for k, v in chp.items() if k in DEFAULT_HYPERPARAMETERS})
    unit = md["energy_unit"]
    off = md.get("energy_offset") or {}
    atomrefs = {int(z): float(v) for z, v in (off.get("atomrefs") or {}).items()} or None
    mean_per_atom = float(off.get("mean_per_atom", 0.0))
    norm = card.get("loss_normalisation") or {}
    scale = float(norm.get("energy_scale") or 1.0)
    net = build_model(arch, hp, _atomref_tensor(atomrefs), mean_per_atom, energy_scale=scale, energy_unit=unit)
    scripted = torch.jit.load(str(f.path), map_location="cpu")
    missing, unexpected = net.load_state_dict(scripted.state_dict(), strict=False)
    bad = [k for k in missing if not k.startswith("postprocessors.")] + list(unexpected)
    if bad:
        raise ValueError(f"`committee`: the weights of {f.path} do not fit the architecture its card describes "
                         f"({bad[:4]})")
    net.eval()
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(net, tmp / "best_model.pt")
    cfg = {
        "format": RUN_FORMAT,
        "source": "rebuilt from a deployed model by pymotor.learn.retrain.run_dir_from_model",
        "model_file": str(f.path.resolve()), "model_sha256": f.sha256(),
        "config": {"model": arch, "energy_unit": unit, "hyperparameters": hp,
                   "batch_size": int(chp.get("batch_size", 16)), "seed": int(chp.get("seed", 0)),
                   "loss_weights": list(chp.get("loss_weights", (0.01, 0.99))),
                   "weighting": chp.get("weighting", "fixed"), "init_from": chp.get("init_from"),
                   "stride": chp.get("stride", 1)},
        "databases": [{"path": d.get("path"), "sha256": d.get("sha256")} for d in card.get("datasets", [])],
        "elements": md.get("elements"),
        "length_unit": "Angstrom",
        "energy_offset": {"atomrefs": {str(z): v for z, v in (atomrefs or {}).items()},
                          "mean_per_atom": mean_per_atom, "unit": unit},
        "loss_normalisation": {"energy_scale": scale},
        "sessions": [],
    }
    _write_json(tmp / "run.json", cfg)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def labels_split(n: int) -> dict:
    """Every 5th labelled frame (indices 4, 9, ...) validation, the rest training, no test part
    (the labels are training data; a fixed independent set measures the error)."""
    if n < 2:
        raise ValueError(f"{n} labelled frame(s) are too few to fine-tune on (need 2: one for validation)")
    idx = np.arange(n)
    val = idx[4::5] if n >= 5 else idx[-1:]
    return {"train": np.setdiff1d(idx, val), "val": val, "test": np.zeros(0, dtype=np.int64)}


def write_labels_db(labels: list[dict], path: str | os.PathLike, *, energy_unit: str, atomrefs_eV: dict | None,
                    numbers, masses, name: str = "learn", metadata: dict | None = None,
                    timestep_fs: float = 1.0, split: bool = True) -> Path:
    """Journal labels (:class:`~pymotor.learn.journal.Journal`) as a SchNetPack database (rows in
    (step, replica) order; key-value pairs ``step``, ``time_fs``, ``replica``, ``round``,
    ``max_force_std``), written to a temporary file and moved into place, with
    ``<stem>_split.npz`` (:func:`labels_split`) beside it when ``split``."""
    from ase.db import connect

    from ..data.generate import write_database
    from ..trajectory import Trajectory
    from .journal import Journal

    path = Path(path)
    if not labels:
        raise ValueError("no labelled frames to write")
    pos, en, fo = Journal.label_arrays(labels)
    n = len(labels)
    zeros = np.zeros(n)
    steps = np.array([e["step"] for e in labels])
    traj = Trajectory(atomic_numbers=np.asarray(numbers), masses=np.asarray(masses, dtype=float), step=steps,
                      time_fs=steps * float(timestep_fs), positions=pos, velocities=np.zeros_like(pos), forces=fo,
                      potential_energy=en, kinetic_energy=zeros, conserved_energy=zeros,
                      n_dof=max(1, 3 * len(numbers) - 6))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.db")
    write_database(tmp, traj, energy_unit=energy_unit, atomrefs_eV=atomrefs_eV or None,
                   metadata=dict(metadata or {}, method="GFN2-xTB", source="pymotor.learn on-the-fly labels"),
                   name=name)
    with connect(str(tmp), use_lock_file=False) as conn:
        for row_id, e in zip(range(1, n + 1), labels):
            conn.update(row_id, replica=int(e["replica"]), round=int(e["round"]),
                        max_force_std=float(e["std"]))
    os.replace(tmp, path)
    if split:
        write_split(path.with_name(path.stem + "_split.npz"), labels_split(n), path)
    return path


def write_split(path: str | os.PathLike, split: dict, db_path: str | os.PathLike) -> Path:
    """A split file as training reads it (``train_idx``, ``val_idx``, ``test_idx``, ``n_frames``,
    ``db_sha256``), written to a temporary file and moved into place."""
    from ..train.data import sha256_file

    path = Path(path)
    n = sum(len(v) for v in split.values())
    tmp = path.with_name(path.name + ".tmp.npz")
    idx = {f"{k}_idx": np.asarray(split[k], dtype=np.int64) for k in ("train", "val", "test")}
    np.savez(tmp, **idx, n_frames=np.int64(n),
             db_sha256=np.array(sha256_file(db_path)))
    os.replace(tmp, path)
    return path


def replay_stride(databases: Sequence, replay_frames: int) -> int:
    """The stride that leaves about ``replay_frames`` training frames of ``databases``."""
    from ..train.data import choose_split, inspect_database

    total = 0
    for d in databases:
        info = inspect_database(d, hash_file=False)
        total += len(choose_split(info)["train"])
    return max(1, int(math.ceil(total / max(1, int(replay_frames)))))


def fine_tune(init_run: str | os.PathLike, replay: Sequence, labels_db: str | os.PathLike, out: str | os.PathLike,
              model_out: str | os.PathLike, *, epochs: int, lr: float | None, seed: int, stride: int,
              num_threads: int | None = 1, name: str | None = None) -> dict:
    """Fine-tune the run ``init_run`` on ``replay`` (every ``stride``-th training frame) plus
    ``labels_db`` (all frames), from scratch in ``out`` (a deterministic result: a partial
    earlier attempt is removed), and export the best model to ``model_out``."""
    from ..train import export, train
    from ..train.core import read_run

    cfg = read_run(init_run)
    c = cfg["config"]
    hp = dict(c["hyperparameters"])
    if lr is not None:
        hp["lr"] = float(lr)
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    dbs = [str(d) for d in replay] + [str(labels_db)]
    res = train(dbs, out, model=c["model"], energy_unit=c["energy_unit"], epochs=int(epochs),
                batch_size=int(c.get("batch_size", 16)), seed=int(seed),
                loss_weights=tuple(c.get("loss_weights", (0.01, 0.99))),
                weighting=c.get("weighting", "fixed"), init_from=str(init_run), device="cpu", progress=False,
                num_threads=num_threads, hyperparameters=hp, stride=[int(stride)] * len(replay) + [1])
    export(out, model_out, card=True, check=True, metrics=False, name=name)
    (out / "fine_tune.json").write_text(json.dumps({"init_from": str(init_run), "replay": [str(d) for d in replay],
                                                    "labels": str(labels_db), "stride": int(stride), "lr": hp["lr"],
                                                    "epochs": int(epochs), "seed": int(seed),
                                                    "result": res}, indent=1))
    return res
