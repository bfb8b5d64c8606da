"""Errors of a trained model on its validation or test frames, always in kcal/mol (per Angstrom).

Statistics (M frames of the split, errors e = predicted - reference):

* energy: MAE = mean_k |e_k|, RMSE = sqrt(mean_k e_k^2), over frames;
* forces: over Cartesian components. For each frame k, a_k = mean over its 3N components of
  |dF| and s_k = mean of dF^2; MAE = mean_k a_k, RMSE = sqrt(mean_k s_k) (all frames have
  the same number of atoms in a single-molecule dataset, so this equals the plain
  component-wise MAE/RMSE).

Standard errors treat the *frame* as the unit of sampling, because the 3N force components of
one frame are strongly correlated: SE(MAE) = std_k(a_k) / sqrt(M) (ddof=1) and, by the delta
method, SE(RMSE) = std_k(s_k) / sqrt(M) / (2 RMSE).  Frames of one MD trajectory are also
correlated in time, so a blocked estimate is given as well (``*_se_block``): the same formulas
applied to the means of `n_blocks` contiguous blocks of frames (default 10).  When the blocked
value is clearly larger, the frames were not independent and it is the one to quote.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .. import validation
from .data import FrameDataset, TrainingDataError, dumps, energy_conversion

__all__ = ["evaluate", "evaluate_model", "summarize_seeds", "format_metrics", "error_statistics", "predict"]

_PARTS = ("train", "val", "test")  # the parts of a split

SE_METHOD = (
    "energy: over frames; forces: over Cartesian components, SE from per-frame means "
    "(frames as the sampling unit); *_se_block: from means of contiguous blocks of frames"
)


def error_statistics(per_frame_abs: np.ndarray, per_frame_sq: np.ndarray, n_blocks: int = 10) -> dict:
    """MAE, RMSE and their standard errors from per-frame mean |error| and mean error^2."""
    a = np.asarray(per_frame_abs, dtype=np.float64)
    s = np.asarray(per_frame_sq, dtype=np.float64)
    m = len(a)
    if m == 0:
        raise ValueError("no frames to evaluate")
    mae = float(a.mean())
    rmse = float(np.sqrt(s.mean()))
    out = {"mae": mae, "rmse": rmse, "mae_se": float("nan"), "rmse_se": float("nan"),
           "mae_se_block": float("nan"), "rmse_se_block": float("nan"), "n_blocks": 0}
    if m >= 2:
        out["mae_se"] = float(a.std(ddof=1) / np.sqrt(m))
        out["rmse_se"] = float(s.std(ddof=1) / np.sqrt(m) / (2 * rmse)) if rmse > 0 else 0.0
    nb = min(int(n_blocks), m // 2)
    if nb >= 2:
        ab = np.array([b.mean() for b in np.array_split(a, nb)])
        sb = np.array([b.mean() for b in np.array_split(s, nb)])
        out["mae_se_block"] = float(ab.std(ddof=1) / np.sqrt(nb))
        out["rmse_se_block"] = float(sb.std(ddof=1) / np.sqrt(nb) / (2 * rmse)) if rmse > 0 else 0.0
        out["n_blocks"] = nb
    return out


def _error_summary(de, dfs, n_blocks: int) -> dict:
    """Error statistics from energy errors `de` (kcal/mol, one per frame) and force errors
    `dfs` (kcal/mol/Å, one array per frame)."""
    de = np.asarray(de)
    return {
        "n_force_components": int(sum(d.size for d in dfs)),
        "units": {"energy": "kcal/mol", "forces": "kcal/mol/Angstrom"},
        "energy": error_statistics(np.abs(de), de ** 2, n_blocks),
        "forces": error_statistics(np.array([np.abs(d).mean() for d in dfs]),
                                   np.array([(d ** 2).mean() for d in dfs]), n_blocks),
        "se_method": SE_METHOD,
    }


def _load_python_model(run_dir: Path, device: str = "cpu"):
    import torch

    f = run_dir / "best_model.pt"
    if not f.is_file():
        raise TrainingDataError(f"run {str(run_dir)!r} has no best_model.pt (has it finished an epoch?)")
    # our own file, written by SchNetPack's ModelCheckpoint: a pickled nn.Module
    model = torch.load(f, map_location=device, weights_only=False)
    model.eval()
    return model


def predict(model, dataset: FrameDataset, batch_size: int = 32, device: str = "cpu"):
    """Energies (float64, with offsets) and forces of `model` on `dataset` (no RemoveOffsets)."""
    import torch
    from schnetpack.data import AtomsLoader

    loader = AtomsLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    E, F = [], []
    with torch.enable_grad():
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(batch)
            e = out["energy"].detach().to(torch.float64).cpu().numpy()
            f = out["forces"].detach().to(torch.float64).cpu().numpy()
            n = batch["_n_atoms"].cpu().numpy()
            E.append(e)
            F.extend(np.split(f, np.cumsum(n)[:-1]))
    return np.concatenate(E), F


def evaluate(run_dir: Union[str, os.PathLike], split: str = "val", batch_size: int = 32,
             device: str = "cpu", n_blocks: int = 10, write: bool = True, stride: int = 1) -> dict:
    """MAE and RMSE (± standard errors) of energies and forces on `split`, in kcal/mol.

    Uses the run's best model (EMA weights) with its float64 energy offset. Writes
    ``metrics_<split>.json`` into the run directory (unless `write` is False).
    `stride` > 1 evaluates every `stride`-th frame of the split (faster on long trajectories).
    """
    from .core import load_run_data, read_run
    from .model import preprocessing_transforms

    validation.one_of("split", split, _PARTS)
    stride = validation.number("stride", stride, integer=True)
    run_dir = Path(run_dir).absolute()
    cfg = read_run(run_dir)
    unit = cfg["config"]["energy_unit"]
    infos, frames = load_run_data(cfg, run_dir)
    ds = FrameDataset([(fr, i.split[split][::stride]) for fr, i in zip(frames, infos)],
                      preprocessing_transforms(float(cfg["config"]["hyperparameters"]["cutoff"]),
                                               None, 0.0, remove_offsets=False))
    if len(ds) == 0:
        raise TrainingDataError(f"run {str(run_dir)!r}: the {split} split is empty")
    model = _load_python_model(run_dir, device)
    E_pred, F_pred = predict(model, ds, batch_size=batch_size, device=device)
    E_ref = ds.energies()
    F_ref = [fr.F[i] for fr, idx in ds.parts for i in idx]
    c = energy_conversion(unit, "kcal/mol")
    res = {
        "run_dir": str(run_dir),
        "split": split,
        "n_frames": int(len(ds)),
        "stride": int(stride),
        "training_energy_unit": unit,
        **_error_summary((E_pred - E_ref) * c, [(fp - fr) * c for fp, fr in zip(F_pred, F_ref)], n_blocks),
        "global_step": cfg.get("global_step"),
        "evaluated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_mtime": os.path.getmtime(run_dir / "best_model.pt"),
    }
    if write:
        (run_dir / f"metrics_{split}.json").write_text(dumps(res))
    return res


def _as_list(databases) -> list:
    """One database path or a sequence of them, as a list."""
    return [databases] if isinstance(databases, (str, os.PathLike)) else list(databases)


def reference_frames(databases: Sequence[Union[str, os.PathLike]], split: str = "test", stride: int = 1):
    """Atoms, energies (kcal/mol) and forces (kcal/mol/Å) of the `split` frames of databases.

    Each database is checked and split as for training (its split file, e.g. the
    ``<stem>_split.npz`` that `pymotor generate` writes, else the default split by time);
    every `stride`-th frame of the split is taken.
    """
    from ase import Atoms

    from .data import Frames, choose_split, inspect_database

    validation.one_of("split", split, _PARTS + ("all",))
    stride = validation.number("stride", stride, integer=True)
    databases = _as_list(databases)
    atoms, energies, forces = [], [], []
    for db in databases:
        info = inspect_database(db, hash_file=False)
        parts = choose_split(info)
        idx = np.sort(np.concatenate([parts[p] for p in _PARTS])) if split == "all" else parts[split]
        frames = Frames(info, "kcal/mol")
        for i in idx[::stride]:
            atoms.append(Atoms(numbers=frames.Z[i], positions=frames.R[i]))
            energies.append(frames.E[i])
            forces.append(frames.F[i])
    if not atoms:
        raise TrainingDataError(f"the {split} split of {[str(d) for d in databases]} is empty")
    shapes = {f.shape for f in forces}
    if len(shapes) > 1:
        raise TrainingDataError(f"`databases` hold molecules of different sizes {sorted(shapes)}")
    return atoms, np.array(energies), np.array(forces)


def evaluate_model(model, databases: Sequence[Union[str, os.PathLike]], split: str = "test",
                   stride: int = 1, n_blocks: int = 10, by_conformer: bool = False) -> dict:
    """Errors of a deployed model on the `split` frames of reference databases, in kcal/mol.

    ``evaluate`` scores a training run on its own split; this scores any exported model
    (a TorchScript or pt2 file, a shipped model name such as ``"cpnx-schnet"`` or a
    :class:`pymotor.Model`) through pymotor's C++ engine, so that models trained on different
    data can be compared on one common set of frames. Same statistics as ``evaluate``.
    ``split="all"``: every frame (a trajectory held out from training as a whole).
    ``by_conformer``: also the errors per conformer of a molecular motor, grouped by the
    mirror-invariant pair label of :func:`pymotor.data.conformers.motor_labels` (helix,
    syn/anti and the configuration of C2), in ``result["by_conformer"]``.
    """
    import pymotor
    from pymotor import models

    if isinstance(model, (str, os.PathLike)):
        model = pymotor.load_model(models.resolve(model))
    databases = _as_list(databases)
    atoms, e_ref, f_ref = reference_frames(databases, split, stride)
    kcal_per_eV = energy_conversion("eV", "kcal/mol")
    e = np.empty(len(atoms))
    f = np.empty_like(f_ref)
    for k, a in enumerate(atoms):
        e[k], f[k] = model.compute(a)  # eV, eV/Å
    de, df = e * kcal_per_eV - e_ref, f * kcal_per_eV - f_ref
    res = {
        "model": str(getattr(model, "path", "")),
        "databases": [str(d) for d in databases],
        "split": split,
        "n_frames": int(len(atoms)),
        "stride": int(stride),
        "training_energy_unit": getattr(model, "energy_unit", "?"),
        **_error_summary(de, list(df), n_blocks),
    }
    if by_conformer:
        labels = _pair_labels(atoms)
        res["by_conformer"] = {}
        for lab in sorted(set(labels)):
            sel = np.flatnonzero(labels == lab)
            res["by_conformer"][str(lab)] = {"n_frames": int(len(sel)),
                                             **_error_summary(de[sel], [df[i] for i in sel],
                                                              min(n_blocks, max(2, len(sel))))}
    return res


def frames_by_molecule(atoms) -> dict:
    """``{atomic numbers (tuple): [indices of the frames with them]}``, in order of appearance:
    the groups that a per-molecule evaluator (a potential, motor labels) takes at once."""
    groups: dict = {}
    for k, a in enumerate(atoms):
        groups.setdefault(tuple(int(z) for z in a.numbers), []).append(k)
    return groups


def _pair_labels(atoms) -> np.ndarray:
    """The mirror-invariant pair label of every frame (frames of one molecule at a time)."""
    from ..data.conformers import motor_labels

    out = np.empty(len(atoms), dtype=object)
    for idx in frames_by_molecule(atoms).values():
        out[idx] = motor_labels([atoms[k] for k in idx]).pair
    return out


def _cached_or_evaluate(run_dir: Path, split: str, **kw) -> dict:
    f = run_dir / f"metrics_{split}.json"
    m = run_dir / "best_model.pt"
    if f.is_file() and m.is_file():
        res = json.loads(f.read_text())
        if res.get("model_mtime") == os.path.getmtime(m) and res.get("stride", 1) == kw.get("stride", 1):
            return res
    return evaluate(run_dir, split, **kw)


def summarize_seeds(run_dirs: Sequence[Union[str, os.PathLike]], split: str = "val", **kw) -> dict:
    """Mean ± standard error across runs (seeds) of each metric, in kcal/mol.

    SE = std(ddof=1) / sqrt(number of runs); NaN for a single run.
    """
    runs = [_cached_or_evaluate(Path(r).absolute(), split, **kw) for r in run_dirs]
    if not runs:
        raise ValueError("`run_dirs` is empty")
    out = {"split": split, "n_runs": len(runs), "units": runs[0]["units"],
           "runs": [r["run_dir"] for r in runs]}
    for prop in ("energy", "forces"):
        out[prop] = {}
        for key in ("mae", "rmse"):
            v = np.array([r[prop][key] for r in runs])
            se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
            out[prop][key] = {"mean": float(v.mean()), "se": se, "values": v.tolist()}
    return out


def format_metrics(res: dict) -> str:
    """Human-readable lines for `evaluate` or `summarize_seeds` results."""
    lines = []
    if "n_runs" in res:
        lines.append(f"{res['split']}: {res['n_runs']} runs, mean ± SE across runs")
        for prop, u in (("energy", "kcal/mol"), ("forces", "kcal/mol/Å")):
            m = res[prop]
            lines.append(f"  {prop:7s} MAE {m['mae']['mean']:.4f} ± {m['mae']['se']:.4f}   "
                         f"RMSE {m['rmse']['mean']:.4f} ± {m['rmse']['se']:.4f}  {u}")
        return "\n".join(lines)
    lines.append(f"{res['split']}: {res['n_frames']} frames (trained in {res['training_energy_unit']})")
    for prop, u in (("energy", "kcal/mol"), ("forces", "kcal/mol/Å")):
        m = res[prop]
        lines.append(
            f"  {prop:7s} MAE {m['mae']:.4f} ± {m['mae_se']:.4f} (block {m['mae_se_block']:.4f})   "
            f"RMSE {m['rmse']:.4f} ± {m['rmse_se']:.4f} (block {m['rmse_se_block']:.4f})  {u}"
        )
    lines.append(f"  SE: {res['se_method']}")
    for lab, m in res.get("by_conformer", {}).items():
        lines.append(f"  {lab}: {m['n_frames']} frames, energy MAE {m['energy']['mae']:.4f} ± "
                     f"{m['energy']['mae_se']:.4f}, force MAE {m['forces']['mae']:.4f} ± "
                     f"{m['forces']['mae_se']:.4f}")
    return "\n".join(lines)
