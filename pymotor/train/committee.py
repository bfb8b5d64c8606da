"""Committee training: one :func:`~pymotor.train.train` run per seed, each a Dask task.

A committee (query by committee; Seung, Opper & Sompolinsky, COLT 1992; for interatomic
potentials e.g. Schran, Brezina & Marsalek, J. Chem. Phys. 153, 104105 (2020)) is a set of
models trained on the same data from different random seeds; the spread of their force
predictions estimates the error of their mean (:mod:`pymotor.learn.committee`).

Each member is an independent training run, so the members run as tasks of
:func:`pymotor.parallel.run_tasks`: in this process, on a local cluster of worker processes
(one per member and core) or on any Dask cluster. Every member writes its own run directory
(``OUT/runs/member-<seed>``) and resumes from its ``last.ckpt`` when the call is repeated;
a worker that dies is replaced and its member resumes from its last epoch on another worker.
Finished members are exported as ``OUT/member-<seed>.pt`` (+ card), so ``OUT`` itself is a
committee folder that :func:`pymotor.learn.committee.resolve_committee` (``pymotor learn
--committee OUT``) reads.

Members differ by the seed of their weight initialisation and batch order. With ``init_from``
every member starts from the same weights and differs by its batch order only, which gives a
less diverse committee (a smaller spread for the same error); train from scratch where the
compute allows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from .. import parallel
from ..validation import number

__all__ = ["train_committee", "member_name", "COMMITTEE_FORMAT"]

COMMITTEE_FORMAT = "pymotor.committee/1"
_FIXED = ("out", "seed", "progress")  # set per member by train_committee


def member_name(seed: int) -> str:
    """The task, run-directory and model-file name of the member with this seed."""
    return f"member-{int(seed)}"


def _check_seeds(seeds) -> list[int]:
    try:
        seeds = list(seeds)
    except TypeError:
        raise TypeError(f"`seeds` must be a sequence of integers, got {seeds!r}") from None
    if len(seeds) < 2:
        raise ValueError(f"`seeds` must hold at least 2 seeds (a committee of one has no spread), got {seeds!r}")
    for s in seeds:
        number("seeds", s, integer=True, minimum=0, strict=False)
    if len(set(int(s) for s in seeds)) != len(seeds):
        raise ValueError(f"`seeds` repeats a seed: {seeds!r}")
    return [int(s) for s in seeds]


def _train_member(db_paths: list, run_dir: str, model_path: Optional[str], seed: int, export_kw: dict,
                  train_kw: dict) -> dict:
    """One member (runs on a worker): train or resume, then export when the run has a newer
    best model than the exported file."""
    from .core import train
    from .export import export

    res = train(db_paths, run_dir, seed=seed, progress=False, **train_kw)
    res = {k: v for k, v in res.items() if isinstance(v, (int, float, str, type(None)))}
    if model_path is not None:
        best = Path(run_dir) / "best_model.pt"
        out = Path(model_path)
        if not out.is_file() or out.stat().st_mtime < best.stat().st_mtime:
            parallel.report(int(res.get("epoch") or 0), "export")
            export(run_dir, out, **export_kw)
        res["model"] = str(out)
    return res


def train_committee(
    db_paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
    out: Union[str, os.PathLike],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    export: bool = True,
    eval_stride: int = 10,
    scheduler=None,
    workers: Optional[int] = None,
    progress=True,
    **train_kwargs,
) -> dict:
    """Train a committee: one :func:`pymotor.train.train` run per seed, as Dask tasks.

    Args:
        db_paths: the reference databases, as for :func:`~pymotor.train.train` (every member
            sees the same data and the same split).
        out: the committee folder: ``runs/member-<seed>/`` (the runs), ``member-<seed>.pt``
            and ``.md`` (the exported members) and ``committee.json``. Repeating the call
            resumes every unfinished member and exports the ones with a newer best model.
        seeds: one member per seed (at least 2, distinct, non-negative).
        export: export each finished member to ``member-<seed>.pt`` (TorchScript + metadata,
            :func:`~pymotor.train.export`, checked against the Python model).
        eval_stride: every N-th validation/test frame for the exported cards' metrics.
        scheduler, workers, progress: where the members train (:mod:`pymotor.parallel`; the
            default is a local cluster with one single-thread worker per member, at most one
            per core) and the bars over members and their epochs.
        **train_kwargs: the other arguments of :func:`~pymotor.train.train` (``model``,
            ``energy_unit``, ``epochs``, ``init_from``, ``stride``, ``num_threads``,
            ``max_time_s`` per member and session, ...), the same for every member.

    Returns:
        ``{"out", "members": {name: {"run_dir", "model", "epoch", "best_val_loss", ...}},
        "models": [paths]}``; also written to ``OUT/committee.json``. Raises
        :class:`pymotor.parallel.TaskError` naming the members that failed once the others
        have finished (their run directories keep every finished epoch).
    """
    seeds = _check_seeds(seeds)
    fixed = sorted(set(train_kwargs) & set(_FIXED))
    if fixed:
        raise TypeError(f"train_committee sets {', '.join(fixed)} per member; do not pass "
                        f"{'it' if len(fixed) == 1 else 'them'}")
    number("eval_stride", eval_stride, integer=True, minimum=1, strict=False)
    if isinstance(db_paths, (str, os.PathLike)):
        db_paths = [db_paths]
    db_paths = [os.path.abspath(str(p)) for p in db_paths]
    missing = [p for p in db_paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"`db_paths`: no such database: {', '.join(missing)}")
    if train_kwargs.get("init_from") is not None:
        train_kwargs["init_from"] = os.path.abspath(str(train_kwargs["init_from"]))
    out = Path(out).absolute()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    import inspect

    from .core import train

    # the steps bar counts epochs: train's own default unless given
    epochs = int(train_kwargs.get("epochs", inspect.signature(train).parameters["epochs"].default))

    tasks = []
    for s in seeds:
        name = member_name(s)
        model_path = str(out / f"{name}.pt") if export else None
        tasks.append(parallel.Task(name, _train_member,
                                   (db_paths, str(out / "runs" / name), model_path, s,
                                    {"eval_stride": int(eval_stride)}, dict(train_kwargs)),
                                   steps=epochs))
    results = parallel.run_tasks(tasks, scheduler=scheduler, workers=workers, progress=progress,
                                 desc="committee", unit="epoch", what="committee members")
    summary = {"format": COMMITTEE_FORMAT, "out": str(out), "seeds": seeds, "databases": db_paths,
               "train": {k: (list(v) if isinstance(v, tuple) else v) for k, v in train_kwargs.items()},
               "members": {name: {**res, "run_dir": str(out / "runs" / name)} for name, res in results.items()},
               "models": [res["model"] for res in results.values() if "model" in res]}
    tmp = out / "committee.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, out / "committee.json")
    return summary
