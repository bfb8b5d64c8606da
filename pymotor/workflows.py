"""End-to-end workflows: NN and GFN2-xTB MD from the same start, and the demo pipeline.

``run_pair`` runs the same integrator twice from the same positions and velocities, once
with the neural-network model and once with GFN2-xTB through the Python-callback potential,
so the two trajectories differ only in the potential (as in the source work, whose start
was the last frame of a data set's test split, with its velocities).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from .units import FS_IN_ASE_TIME


def start_from_dataset(db_path: str | os.PathLike, split: str = "test", index: int = -1) -> Atoms:
    """A start state from a reference database: frame ``index`` of ``split`` (default: the
    last test frame) with its velocities (stored in Angstrom/fs) as ASE momenta."""
    from ase.db import connect

    db_path = Path(db_path)
    if not db_path.is_file():
        raise FileNotFoundError(f"`db_path`: {db_path} does not exist")
    split_file = db_path.with_name(db_path.stem + "_split.npz")
    if not split_file.is_file():
        raise FileNotFoundError(f"`db_path`: no split file {split_file.name} beside {db_path.name}")
    key = f"{split}_idx"
    with np.load(split_file) as sp:
        if key not in sp:
            raise ValueError(f"`split` must be one of train, val, test, got {split!r}")
        idx = int(sp[key][index])
    with connect(str(db_path), use_lock_file=False) as db:
        row = db.get(id=idx + 1)
        atoms = row.toatoms()
        vel = row.data.get("velocities")
    if vel is None:
        raise ValueError(f"`db_path`: {db_path} stores no velocities; cannot start MD from it")
    atoms.set_velocities(np.asarray(vel).reshape(-1, 3) / FS_IN_ASE_TIME)
    atoms.info["start"] = {"db": str(db_path), "split": split, "frame": idx}
    return atoms


@dataclass
class PairResult:
    nn: Path
    xtb: Path | None
    seconds_per_step: dict


def run_pair(model, atoms: Atoms, out_dir: str | os.PathLike, steps: int = 5000, timestep_fs: float = 1.0,
             temperature_K: float = 300.0, thermostat: str | None = "nose-hoover", tdamp_fs: float = 100.0,
             xtb_backend: str | None = "tblite", interval: int = 1, progress: bool = True,
             resume: bool = True, backend: str = "auto", parallel: bool = True,
             on_bond_change: str = "record", change_settings: bool = False) -> PairResult:
    """NN and GFN2-xTB MD from the same start with the same integrator; writes
    ``out_dir/nn.h5``, ``out_dir/xtb.h5`` and ``out_dir/timings.json`` (s per step).
    ``xtb_backend=None`` runs only the NN. Existing files are resumed when ``resume`` (with
    ``change_settings`` as in :func:`pymotor.run_md`), replaced otherwise. ``on_bond_change``: the
    connectivity guard of :func:`pymotor.run_md`.
    ``backend`` is the evaluator of a model given as a path (see :func:`pymotor.load_model`).
    ``parallel``: the NN run goes in a second thread while xTB runs (the C++ MD loop releases
    the GIL, so on two cores the pair costs about the xTB run alone); each run's time per
    step is measured in its own thread."""
    from . import run_md
    from .backends import NNModel, load_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not isinstance(model, NNModel):
        model = load_model(model, backend=backend)
    runs = [("nn", model)]
    if xtb_backend:
        from .data import make_calculator

        runs.append(("xtb", make_calculator(backend=xtb_backend, atoms=atoms)))
    timings, errors = {}, {}

    def one(position, name, pot):
        path = out / f"{name}.h5"
        done_before = _steps_in(path) if resume else 0
        bar = {"desc": f"{name.upper()} MD", "position": position} if progress else False
        t0 = time.perf_counter()
        try:
            run_md(pot, atoms, steps=steps, timestep_fs=timestep_fs, temperature_K=temperature_K,
                   thermostat=thermostat, tdamp_fs=tdamp_fs, interval=interval, progress=bar,
                   trajectory=path, restart=path if resume else None, overwrite=not resume,
                   on_bond_change=on_bond_change, change_settings=change_settings)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the calling thread)
            errors[name] = exc
            return
        timings[name] = (time.perf_counter() - t0) / max(steps - done_before, 1)

    if parallel and len(runs) == 2:
        import threading

        worker = threading.Thread(target=one, args=(0, *runs[0]), name="pymotor-nn-md", daemon=True)
        worker.start()
        one(1, *runs[1])
        worker.join()
    else:
        for i, (name, pot) in enumerate(runs):
            one(i, name, pot)
    for name, _ in runs:
        if name in errors:
            raise errors[name]
    (out / "timings.json").write_text(json.dumps({"seconds_per_step": timings, "parallel": bool(parallel),
                                                  "steps": steps, "timestep_fs": timestep_fs}, indent=2))
    return PairResult(nn=out / "nn.h5", xtb=out / "xtb.h5" if xtb_backend else None, seconds_per_step=timings)


def _steps_in(path: Path) -> int:
    """Steps already in a run's file (0 for none or no committed state)."""
    from .trajectory import committed_step

    return committed_step(path) or 0
