"""`train()`: SchNetPack 2.2 training of energy+force models on one or several databases.

Run directory layout (``out``)::

    run.json                 format "pymotor.run/1": configuration, databases (+ sha256),
                             energy offset, loss normalisation, sessions (wall time, steps)
    splits/<k>_<name>.npz    the train/val/test indices used for database k
    checkpoints/last.ckpt    Lightning checkpoint of the last epoch (resume from here)
    checkpoints/best.ckpt    Lightning checkpoint with the lowest validation loss
    best_model.pt            SchNetPack model (EMA weights, with float64 offset postprocessing)
    logs/session_<k>/metrics.csv   Lightning CSV logs, one folder per (re)start
    learning_curve.png       validation loss against optimiser step
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import time
import warnings
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from .data import (
    DatabaseInfo,
    FrameDataset,
    Frames,
    TrainingDataError,
    canonical_energy_unit,
    choose_split,
    dumps,
    inspect_database,
)
from .model import DEFAULT_HYPERPARAMETERS, LEGACY_HYPERPARAMETERS, check_prior
from .. import validation
from ..parallel import report

__all__ = ["RUN_FORMAT", "train", "read_run", "lightning_warning_filters", "quiet_lightning"]

RUN_FORMAT = "pymotor.run/1"

# configuration keys that must agree when a run directory is resumed
_RESUME_KEYS = ("databases", "model", "energy_unit", "batch_size", "seed", "loss_weights",
                "weighting", "init_from", "hyperparameters", "stride")


@contextlib.contextmanager
def quiet_lightning():
    """Silence the specific, harmless warnings Lightning/SchNetPack emit on a CPU laptop run.

    Each filter names one message; anything else still surfaces (pytest turns it into an error).
    """
    with warnings.catch_warnings():
        for category, message in lightning_warning_filters():
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def lightning_warning_filters():
    from pytorch_lightning.utilities.warnings import PossibleUserWarning

    return [
        # in-memory datasets on 2 cores: worker processes would only cost time
        (PossibleUserWarning, r".*does not have many workers.*"),
        (UserWarning, r".*does not have many workers.*"),
        # small test datasets
        (PossibleUserWarning, r".*The number of training batches.*is smaller than the logging interval.*"),
        (UserWarning, r".*The number of training batches.*is smaller than the logging interval.*"),
        # resume: the checkpoint folder is ours and is meant to hold earlier checkpoints
        (UserWarning, r".*Checkpoint directory .* exists and is not empty.*"),
        # the model object is stored in the task's hyperparameters by SchNetPack's AtomisticTask
        (UserWarning, r".*Attribute 'model' is an instance of `nn.Module`.*"),
        (UserWarning, r".*Attribute 'outputs' is an instance of `nn.Module`.*"),
        # AtomisticTask.save_hyperparameters() keeps the output list, which is not YAML
        (UserWarning, r".*Skipping 'outputs' parameter because it is not possible to safely dump to YAML.*"),
        # CPU-only runs on machines where a GPU/TPU is present or absent
        (UserWarning, r".*GPU available but not used.*"),
        (PossibleUserWarning, r".*GPU available but not used.*"),
        # torch 2.13 deprecations triggered inside Lightning/torchmetrics code, not ours
        (FutureWarning, r".*LeafSpec.*"),
        (DeprecationWarning, r".*LeafSpec.*"),
        # resuming a run whose max_epochs was already reached
        (UserWarning, r".*max_epochs=.* reached.*"),
        # Lightning's tip to install litlogger / tensorboard
        (UserWarning, r".*Starting from v1.9.0, `tensorboardX` has been removed.*"),
        # EMA weights are swapped in at validation start; the scheduler then reads val_loss
        (UserWarning, r".*ReduceLROnPlateau conditioned on metric val_loss which is not available.*"),
        (RuntimeWarning, r".*ReduceLROnPlateau conditioned on metric val_loss which is not available.*"),
    ]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_run(run_dir: Union[str, os.PathLike]) -> dict:
    """Read and check ``run.json`` of a pymotor run directory."""
    run_dir = Path(run_dir)
    f = run_dir / "run.json"
    if not f.is_file():
        raise TrainingDataError(
            f"{str(run_dir)!r} is not a pymotor run directory (no run.json); "
            "it is made by `pymotor train ... --out DIR`"
        )
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{str(f)!r} is not valid JSON: {exc}") from exc
    fmt = cfg.get("format")
    if fmt != RUN_FORMAT:
        raise TrainingDataError(
            f"run directory {str(run_dir)!r} was written by another version of pymotor "
            f"(format {fmt!r}, this version reads {RUN_FORMAT!r}); start a new run directory "
            "or use the matching pymotor version"
        )
    hp = cfg.get("config", {}).get("hyperparameters")
    if isinstance(hp, dict):  # runs written before a hyperparameter existed had its legacy value
        for k, v in LEGACY_HYPERPARAMETERS.items():
            hp.setdefault(k, v)
    return cfg


def _check_stride(stride, n_databases: int):
    """`stride` as stored: one int for all databases, or a list with one int per database."""
    if isinstance(stride, (list, tuple)):
        if len(stride) != n_databases:
            raise ValueError(f"`stride` must be an int >= 1 or one int >= 1 per database ({n_databases}), "
                             f"got {stride!r}")
        return [validation.number("stride", v, integer=True) for v in stride]
    return validation.number("stride", stride, integer=True)


def _strides(stride, n_databases: int) -> List[int]:
    return list(stride) if isinstance(stride, list) else [int(stride)] * n_databases


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or str(device).startswith("cuda"):
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"`device` is {device!r} but CUDA is not available")
        return str(device)
    raise ValueError(f"`device` must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")


def _combined_atomrefs(infos: Sequence[DatabaseInfo], energy_unit: str):
    """Atomrefs in `energy_unit` shared by all databases, or None; refuse inconsistent ones."""
    from .data import energy_conversion

    have = [i for i in infos if i.atomrefs]
    if not have:
        return None
    if len(have) != len(infos):
        raise TrainingDataError(
            "some databases have single-atom reference energies (`atomrefs`) and some do not: "
            + ", ".join(f"{i.path} ({'yes' if i.atomrefs else 'no'})" for i in infos)
        )
    out: Dict[int, float] = {}
    for info in infos:
        c = energy_conversion(info.energy_unit, energy_unit)
        for z, v in info.atomrefs.items():
            v = v * c
            if z in out and abs(out[z] - v) > 1e-9 * max(1.0, abs(v)):
                raise TrainingDataError(
                    f"databases disagree on the single-atom reference energy of element {z}: "
                    f"{out[z]} vs {v} {energy_unit} ({info.path}); were they computed with the "
                    "same method?"
                )
            out[z] = v
    return out


def _atomref_tensor(atomrefs: Optional[Dict[int, float]]):
    import torch

    if atomrefs is None:
        return None
    t = torch.zeros(100, dtype=torch.float64)
    for z, v in atomrefs.items():
        t[int(z)] = float(v)
    return t


def _save_split(info: DatabaseInfo, k: int, run_dir: Path) -> None:
    split = info.split
    name = Path(info.path).stem
    np.savez(run_dir / "splits" / f"{k}_{name}.npz", train_idx=split["train"],
             val_idx=split["val"], test_idx=split["test"], n_frames=info.n_frames,
             db_sha256=info.sha256)


def load_run_data(cfg: dict, run_dir: Path, check_hash: bool = True):
    """Databases of a run (checked against their recorded hashes) with their stored splits."""
    infos, frames = [], []
    for k, d in enumerate(cfg["databases"]):
        info = inspect_database(d["path"], hash_file=check_hash)
        if check_hash and info.sha256 != d["sha256"]:
            raise TrainingDataError(
                f"database {d['path']!r} changed since run {str(run_dir)!r} started "
                f"(sha256 {info.sha256[:12]}... != recorded {d['sha256'][:12]}...)"
            )
        info.sha256 = d["sha256"]
        s = np.load(run_dir / "splits" / d["split_npz"])
        info.split = {"train": s["train_idx"], "val": s["val_idx"], "test": s["test_idx"]}
        info.split_file = d.get("split_file")
        infos.append(info)
        frames.append(Frames(info, cfg["config"]["energy_unit"]))
    return infos, frames


def train(
    db_paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
    out: Union[str, os.PathLike],
    model: str = "schnet",
    energy_unit: str = "kcal/mol",
    epochs: int = 1000,
    batch_size: int = 16,
    seed: int = 0,
    loss_weights=(0.01, 0.99),
    weighting: str = "fixed",
    init_from: Optional[Union[str, os.PathLike]] = None,
    device: str = "auto",
    progress: bool = True,
    num_threads: Optional[int] = 1,
    hyperparameters: Optional[dict] = None,
    max_time_s: Optional[float] = None,
    stride: Union[int, Sequence[int]] = 1,
    compile: Optional[bool] = None,
) -> dict:
    """Train a SchNet (or PaiNN) energy+force model with SchNetPack; resume if `out` exists.

    Args:
        db_paths: one or several SchNetPack ``.db`` files with ``energy`` and ``forces``.
            Each is split on its own (its split file if present, else by time).
        out: run directory. If it exists (and holds ``run.json``), training resumes from
            ``checkpoints/last.ckpt``; the configuration must then be the same (``epochs``
            may change: it is the total number of epochs).
        model: ``"schnet"`` (default) or ``"painn"``.
        energy_unit: unit of energies during training, ``"kcal/mol"``, ``"eV"`` or
            ``"Hartree"`` (forces in that unit per Angstrom).
        epochs: maximum total number of epochs (early stopping may end training sooner).
        batch_size: training batch size (frames).
        seed: seed of weights initialisation and batch order.
        loss_weights: (energy, force) weights of the MSE losses.
        weighting: ``"fixed"``: loss = w_E MSE_E + w_F MSE_F (SchNetPack's convention; the
            result depends on the energy unit). ``"variance"``: unit-invariant: each MSE is
            divided by the variance of its property on the training set, and the network's
            energy output is scaled by the training-set force standard deviation, so training
            follows the same path (up to rounding) in any energy unit.
        init_from: run directory to fine-tune from (its best model's weights, energy offset
            and output scale; architecture and energy unit must agree).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:i]"``.
        progress: show Lightning's progress bar.
        num_threads: torch intra-op threads (1 is fastest for a 48-atom molecule);
            None leaves torch's setting alone.
        hyperparameters: overrides of `DEFAULT_HYPERPARAMETERS` (n_atom_basis,
            n_interactions, n_rbf, cutoff, lr, weight_decay, lr_factor, lr_patience, lr_min,
            early_stopping_patience, ema_decay, val_batch_size).
        max_time_s: stop this session after this wall time (seconds); resume later.
        stride: use every `stride`-th frame of each database's training and validation
            parts (MD frames 0.5 fs apart are nearly identical); one int, or one per database
            (e.g. long MD references strided, sparse active-learning frames not). The test part
            is always evaluated in full by `evaluate`.
        compile: train through a traced, ``torch.compile``-d energy+force graph
            (:mod:`pymotor.train.compiled`; the same numbers as the eager model, ~1.8x the
            frames/s of eager training and of SchNetPack's spktrain for the CPNX PaiNN on one
            CPU thread (BENCHMARKS.md), 1-3 min of compilation per session and batch shape).
            ``None`` (default): on when the training set has at least 1000 frames. Not part of the run's configuration: a run may resume either way.

    Returns:
        dict with ``run_dir``, ``global_step``, ``epoch``, ``best_val_loss``, ``wall_time_s``.
    """
    import torch

    # ---- arguments ----------------------------------------------------------------
    if isinstance(db_paths, (str, os.PathLike)):
        db_paths = [db_paths]
    db_paths = [os.path.abspath(str(p)) for p in db_paths]
    if not db_paths:
        raise ValueError("`db_paths` is empty: give at least one database")
    if len(set(db_paths)) != len(db_paths):
        raise ValueError(f"`db_paths` lists a database twice: {db_paths}")
    model = validation.one_of("model", str(model).lower(), ("schnet", "painn"))
    energy_unit = canonical_energy_unit(energy_unit)
    validation.one_of("weighting", weighting, ("fixed", "variance"))
    w = tuple(float(x) for x in loss_weights)
    if len(w) != 2 or min(w) < 0 or sum(w) <= 0:
        raise ValueError(f"`loss_weights` must be two non-negative numbers (energy, forces), got {loss_weights!r}")
    epochs = validation.number("epochs", epochs, integer=True)
    stride = _check_stride(stride, len(db_paths))
    batch_size = validation.number("batch_size", batch_size, integer=True)
    if compile not in (None, True, False):
        raise ValueError(f"`compile` must be None (auto), True or False, got {compile!r}")
    hp = dict(DEFAULT_HYPERPARAMETERS)
    for k, v in (hyperparameters or {}).items():
        if k not in hp:
            raise ValueError(f"unknown hyperparameter {k!r}; known: {', '.join(hp)}")
        hp[k] = v
    if isinstance(hp["prior"], str) and hp["prior"].lower() in ("none", ""):
        hp["prior"] = None
    check_prior(hp)
    dev = _resolve_device(device)
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    run_dir = Path(out).absolute()
    init_dir = str(Path(init_from).absolute()) if init_from is not None else None

    requested = {
        "databases": db_paths,
        "model": model,
        "energy_unit": energy_unit,
        "batch_size": int(batch_size),
        "seed": int(seed),
        "loss_weights": list(w),
        "weighting": weighting,
        "init_from": init_dir,
        "hyperparameters": hp,
        "stride": stride,
    }

    resume = (run_dir / "run.json").is_file()
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise TrainingDataError(
            f"`out` {str(run_dir)!r} exists, is not empty and is not a pymotor run directory "
            "(no run.json); choose a new directory"
        )

    if resume:
        cfg = read_run(run_dir)
        stored = dict(cfg["config"])
        stored.setdefault("stride", 1)
        stored["databases"] = [d["path"] for d in cfg["databases"]]
        diff = [k for k in _RESUME_KEYS if _norm(stored.get(k)) != _norm(requested[k])]
        if diff:
            raise TrainingDataError(
                f"cannot resume {str(run_dir)!r} with a different configuration: "
                + "; ".join(f"{k}: run has {stored.get(k)!r}, requested {requested[k]!r}" for k in diff)
                + ". Use a new `out` directory (or `init_from` to fine-tune)."
            )
        infos, frames = load_run_data(cfg, run_dir)
        atomrefs = {int(z): v for z, v in cfg["energy_offset"]["atomrefs"].items()} or None
        mean_per_atom = float(cfg["energy_offset"]["mean_per_atom"])
        norm = cfg["loss_normalisation"]
    else:
        infos = [inspect_database(p) for p in db_paths]
        for key in ("energy_unit", "forces_unit", "distance_unit"):
            vals = {i.path: getattr(i, key) for i in infos}
            if len(set(vals.values())) > 1:
                raise TrainingDataError(
                    f"mixed units across databases ({key.replace('_unit', '')}): "
                    + ", ".join(f"{Path(p).name}: {u}" for p, u in vals.items())
                    + "; convert them to one unit system before training together"
                )
        init_cfg = read_run(init_dir) if init_dir else None
        if init_cfg is not None:
            ic = init_cfg["config"]
            for key, mine in (("model", model), ("energy_unit", energy_unit)):
                if ic[key] != mine:
                    raise TrainingDataError(
                        f"`init_from` run {init_dir!r} has {key} {ic[key]!r}, this run {mine!r}"
                    )
            for key in ("n_atom_basis", "n_interactions", "n_rbf", "cutoff"):
                if ic["hyperparameters"][key] != hp[key]:
                    raise TrainingDataError(
                        f"`init_from` run {init_dir!r} has {key}={ic['hyperparameters'][key]}, "
                        f"this run {key}={hp[key]}"
                    )
            if not (Path(init_dir) / "best_model.pt").is_file():
                raise TrainingDataError(f"`init_from` run {init_dir!r} has no best_model.pt yet")
        for info in infos:  # all checks before anything is written
            choose_split(info)
        frames = [Frames(info, energy_unit) for info in infos]
        train_set = FrameDataset([(fr, info.split["train"][::st])
                                  for fr, info, st in zip(frames, infos, _strides(stride, len(infos)))])
        if init_cfg is not None:
            atomrefs = {int(z): v for z, v in init_cfg["energy_offset"]["atomrefs"].items()} or None
            mean_per_atom = float(init_cfg["energy_offset"]["mean_per_atom"])
            energy_scale = float(init_cfg["loss_normalisation"]["energy_scale"])
        else:
            atomrefs = _combined_atomrefs(infos, energy_unit)
            resid = train_set.energies() - train_set.atomref_sums(atomrefs)
            mean_per_atom = float(np.mean(resid / train_set.n_atoms()))
            energy_scale = None
        resid = train_set.energies() - train_set.atomref_sums(atomrefs) - mean_per_atom * train_set.n_atoms()
        var_e = float(np.var(resid))
        fc = train_set.force_components()
        var_f = float(np.var(fc))
        if weighting == "variance" and (var_e <= 0 or var_f <= 0):
            raise TrainingDataError(
                "`weighting='variance'` needs energies and forces that vary over the training set "
                f"(variance of energies {var_e}, of force components {var_f})"
            )
        if energy_scale is None:
            energy_scale = float(np.sqrt(var_f)) if weighting == "variance" else 1.0
        norm = {
            "energy_variance": var_e,
            "forces_variance": var_f,
            "energy_scale": energy_scale,
            "units": {"energy_variance": f"({energy_unit})^2",
                      "forces_variance": f"({energy_unit}/Angstrom)^2",
                      "energy_scale": f"{energy_unit}"},
        }
        cfg = {
            "format": RUN_FORMAT,
            "created": _now(),
            "versions": _versions(),
            "config": {k: v for k, v in requested.items() if k != "databases"},
            "databases": [
                dict(info.to_json(), split_npz=f"{k}_{Path(info.path).stem}.npz",
                     split_file=info.split_file)
                for k, info in enumerate(infos)
            ],
            "elements": sorted({z for i in infos for z in i.elements}),
            "length_unit": "Angstrom",
            "energy_offset": {
                "atomrefs": {str(z): v for z, v in (atomrefs or {}).items()},
                "mean_per_atom": mean_per_atom,
                "unit": energy_unit,
                "convention": "E = model + sum_i atomrefs[Z_i] + n_atoms * mean_per_atom",
            },
            "loss_normalisation": norm,
            "sessions": [],
        }
        (run_dir / "splits").mkdir(parents=True, exist_ok=True)
        for k, info in enumerate(infos):
            _save_split(info, k, run_dir)
        _write_json(run_dir / "run.json", cfg)

    cfg["config"]["epochs"] = int(epochs)
    with quiet_lightning(), _quiet_lightning_logs(progress):
        return _fit(cfg, run_dir, infos, frames, atomrefs, mean_per_atom, norm, hp, dev, progress, compile,
                    resume, init_dir, max_time_s)


@contextlib.contextmanager
def _quiet_lightning_logs(verbose: bool):
    """Lightning's info messages (GPU available, tips) only with the progress bar on."""
    import logging

    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")
    old = {n: logging.getLogger(n).level for n in names}
    if not verbose:
        for n in names:
            logging.getLogger(n).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for n, lv in old.items():
            logging.getLogger(n).setLevel(lv)


def _norm(x):
    return json.loads(json.dumps(x))


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps(obj))
    os.replace(tmp, path)


def _versions() -> dict:
    import torch

    v = {"torch": torch.__version__}
    try:
        import schnetpack

        v["schnetpack"] = schnetpack.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        import pytorch_lightning

        v["pytorch_lightning"] = pytorch_lightning.__version__
    except ImportError:  # pragma: no cover
        pass
    try:
        from importlib.metadata import version

        v["pymotor"] = version("pymotor")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        v["pymotor"] = "unknown"
    return v


def _session_recorder(cfg: dict, record: dict, run_dir: Path, t0: float):
    """Callback that writes this session's progress into run.json at every epoch end.

    A session killed later still counts in the run's wall time and epochs; its
    ``stop_reason`` stays ``"killed"`` (written here, replaced when the session ends normally).
    """
    from pytorch_lightning.callbacks import Callback

    class SessionRecorder(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            record.update({"end": _now(), "wall_time_s": time.time() - t0,
                           "global_step": int(trainer.global_step),
                           "epoch": int(trainer.current_epoch) + 1,  # epochs completed
                           "stop_reason": "killed"})
            cfg["global_step"] = int(trainer.global_step)
            cfg["epoch"] = int(trainer.current_epoch) + 1
            cfg["wall_time_s"] = float(sum(s["wall_time_s"] for s in cfg["sessions"]))
            val = trainer.callback_metrics.get("val_loss")
            if val is not None:  # so that a killed session's run still names its best validation loss
                prev = cfg.get("best_val_loss")
                cfg["best_val_loss"] = float(val) if prev is None else min(float(prev), float(val))
            _write_json(run_dir / "run.json", cfg)
            # inside a Dask task (a committee member): the epoch goes to the steps bar
            report(cfg["epoch"], "" if val is None else f"val_loss {float(val):.4g}")

    return SessionRecorder()


def _session_timer(limit_s: float):
    from pytorch_lightning.callbacks import Callback

    class SessionTimer(Callback):
        def __init__(self):
            self.t0 = time.time()
            self.fired = False

        def on_train_epoch_end(self, trainer, pl_module):
            if time.time() - self.t0 > limit_s:
                self.fired = True
                trainer.should_stop = True

    return SessionTimer()


#: training sets at least this large are trained through the compiled graph by default
COMPILE_MIN_FRAMES = 1000


def _task_class(net, compile_cutoff_A):
    """SchNetPack's AtomisticTask, predicting through :class:`CompiledForceField` when
    `compile_cutoff_A` is given (the eager model for batches it does not take)."""
    import schnetpack as spk

    if compile_cutoff_A is None:
        return spk.task.AtomisticTask
    from .compiled import CompiledForceField

    compiled = CompiledForceField(net, compile_cutoff_A)

    class CompiledTask(spk.task.AtomisticTask):
        def forward(self, inputs):
            if not self.model.do_postprocessing:
                out = compiled(inputs)
                if out is not None:
                    return out
            return self.model(inputs)

    return CompiledTask


def _make_datamodule(train_set, val_set, batch_size, val_batch_size):
    import pytorch_lightning as pl
    from schnetpack.data import AtomsLoader

    class FramesDataModule(pl.LightningDataModule):
        def __init__(self):
            super().__init__()
            self.train_dataset, self.val_dataset = train_set, val_set

        def train_dataloader(self):
            return AtomsLoader(self.train_dataset, batch_size=batch_size, shuffle=True, num_workers=0)

        def val_dataloader(self):
            return AtomsLoader(self.val_dataset, batch_size=val_batch_size, shuffle=False, num_workers=0)

    return FramesDataModule()


def _fit(cfg, run_dir, infos, frames, atomrefs, mean_per_atom, norm, hp, dev, progress, compile, resume,
         init_dir, max_time_s):
    import pytorch_lightning as pl
    import torch
    import torchmetrics
    import schnetpack as spk
    from pytorch_lightning.callbacks import EarlyStopping, TQDMProgressBar
    from pytorch_lightning.loggers import CSVLogger

    from .model import build_model, preprocessing_transforms

    c = cfg["config"]
    ar_t = _atomref_tensor(atomrefs)
    transforms = preprocessing_transforms(float(hp["cutoff"]), ar_t, mean_per_atom)
    st = _strides(c.get("stride", 1), len(infos))
    train_set = FrameDataset([(fr, i.split["train"][::s]) for fr, i, s in zip(frames, infos, st)], transforms)
    val_set = FrameDataset([(fr, i.split["val"][::s]) for fr, i, s in zip(frames, infos, st)], transforms)
    if len(val_set) == 0:
        raise TrainingDataError("the validation set is empty")

    pl.seed_everything(int(c["seed"]), workers=True, verbose=False)
    net = build_model(c["model"], hp, ar_t, mean_per_atom, energy_scale=float(norm["energy_scale"]),
                      energy_unit=c["energy_unit"])
    if init_dir is not None and not resume:
        src = torch.load(Path(init_dir) / "best_model.pt", map_location="cpu", weights_only=False)
        missing, unexpected = net.load_state_dict(src.state_dict(), strict=False)
        # a prior added on fine-tuning keeps its own (fixed) parameters
        prior_keys = {f"output_modules.{i}.{k}" for i, m in enumerate(net.output_modules)
                      if type(m).__name__ == "ZBLRepulsionEnergy" for k in m.state_dict()}
        bad = [k for k in list(missing) + list(unexpected)
               if not k.startswith("postprocessors.") and k not in prior_keys]
        if bad:
            raise TrainingDataError(f"`init_from` model does not match this architecture: {bad[:5]}")

    we, wf = c["loss_weights"]
    if c["weighting"] == "variance":
        we, wf = we / norm["energy_variance"], wf / norm["forces_variance"]

    def metrics():
        return {
            "mae": torchmetrics.regression.MeanAbsoluteError(),
            "rmse": torchmetrics.regression.MeanSquaredError(squared=False),
        }

    outputs = [
        spk.task.ModelOutput(name="energy", loss_fn=torch.nn.MSELoss(), loss_weight=we, metrics=metrics()),
        spk.task.ModelOutput(name="forces", loss_fn=torch.nn.MSELoss(), loss_weight=wf, metrics=metrics()),
    ]
    if compile is None:
        compile = len(train_set) >= COMPILE_MIN_FRAMES
    task = _task_class(net, float(hp["cutoff"]) if compile else None)(
        model=net,
        outputs=outputs,
        optimizer_cls=torch.optim.AdamW,
        optimizer_args={"lr": float(hp["lr"]), "weight_decay": float(hp["weight_decay"])},
        scheduler_cls=spk.train.ReduceLROnPlateau,
        scheduler_args={"mode": "min", "factor": float(hp["lr_factor"]),
                        "patience": int(hp["lr_patience"]), "threshold": 0.0,
                        "min_lr": float(hp["lr_min"])},
        scheduler_monitor="val_loss",
    )
    dm = _make_datamodule(train_set, val_set, int(c["batch_size"]), int(hp["val_batch_size"]))

    ckpt_dir = run_dir / "checkpoints"
    callbacks = [
        spk.train.ModelCheckpoint(
            model_path=str(run_dir / "best_model.pt"), dirpath=str(ckpt_dir), filename="best",
            monitor="val_loss", mode="min", save_top_k=1, save_last=False,
        ),
        EarlyStopping(monitor="val_loss", patience=int(hp["early_stopping_patience"]), mode="min",
                      check_on_train_epoch_end=False),
        spk.train.ExponentialMovingAverage(decay=float(hp["ema_decay"])),
        # last.ckpt after every epoch: Lightning's save_last writes it only when the monitored
        # checkpoint is saved (a better val_loss), so a killed run would lose every epoch since
        # its last improvement
        pl.callbacks.ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", monitor=None, save_top_k=1,
                                     every_n_epochs=1, enable_version_counter=False),
    ]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, len(train_set) // int(c["batch_size"]) // 20)))
    # The session is recorded in run.json before training starts and updated at every epoch
    # end, so a killed session keeps its entry, its wall time up to its last epoch and its log
    # folder (the next session logs into a new folder instead of overwriting it).
    session = len(cfg["sessions"])
    while (run_dir / "logs" / f"session_{session}").exists():
        session += 1
    logger = CSVLogger(save_dir=str(run_dir), name="logs", version=f"session_{session}")
    accel = "gpu" if dev.startswith("cuda") else "cpu"
    devices = [int(dev.split(":")[1])] if ":" in dev else 1
    n_batches = max(1, int(np.ceil(len(train_set) / int(c["batch_size"]))))
    trainer_kw = dict(
        max_epochs=int(c["epochs"]),
        accelerator=accel,
        devices=devices,
        callbacks=callbacks,
        logger=logger,
        enable_progress_bar=bool(progress),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        inference_mode=False,  # forces are gradients: validation needs autograd
        log_every_n_steps=min(50, n_batches),
        default_root_dir=str(run_dir),
        deterministic=False,
    )
    timer = None
    if max_time_s is not None:
        # Lightning's own max_time counts the time of all sessions (its Timer state is in the
        # checkpoint); this limit is per session and ends it at an epoch boundary, after the
        # epoch's checkpoint is written.
        timer = _session_timer(float(max_time_s))
        callbacks.append(timer)

    ckpt = ckpt_dir / "last.ckpt"
    t0 = time.time()
    start = _now()
    record = {"start": start, "end": None, "wall_time_s": 0.0, "device": dev,
              "global_step": None, "epoch": None, "epochs_requested": int(c["epochs"]),
              "stop_reason": "running", "log": f"logs/session_{session}", "compiled": bool(compile)}
    cfg["sessions"].append(record)
    _write_json(run_dir / "run.json", cfg)
    callbacks.append(_session_recorder(cfg, record, run_dir, t0))
    trainer = pl.Trainer(**trainer_kw)
    trainer.fit(task, datamodule=dm, ckpt_path=str(ckpt) if (resume and ckpt.is_file()) else None,
                weights_only=False)
    wall = time.time() - t0

    best = callbacks[0].best_model_score
    best = float(best) if best is not None else None
    es = callbacks[1]
    stop_reason = ("early_stopping" if es.stopped_epoch > 0 else
                   "max_time" if (timer is not None and timer.fired) else
                   "max_epochs")
    record.update({"end": _now(), "wall_time_s": wall, "global_step": int(trainer.global_step),
                   "epoch": int(trainer.current_epoch), "stop_reason": stop_reason})
    cfg["best_val_loss"] = best
    cfg["global_step"] = int(trainer.global_step)
    cfg["epoch"] = int(trainer.current_epoch)
    cfg["wall_time_s"] = float(sum(s["wall_time_s"] for s in cfg["sessions"]))
    _write_json(run_dir / "run.json", cfg)

    from .plot import plot_learning_curve

    try:
        plot_learning_curve(run_dir)
    except ValueError:
        pass  # nothing logged yet (e.g. resumed a finished run)
    return {
        "run_dir": str(run_dir),
        "global_step": int(trainer.global_step),
        "epoch": int(trainer.current_epoch),
        "best_val_loss": best,
        "wall_time_s": wall,
        "stop_reason": stop_reason,
    }
