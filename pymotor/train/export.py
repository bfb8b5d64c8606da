"""`export()`: a run's best model -> TorchScript file (or AOTInductor package) with pymotor
metadata + a model card, written and checked by :func:`pymotor.deploy`.

The SchNetPack deploy preparation (as ``spkdeploy`` does), with one change: instead of making
``AddOffsets`` float32, all postprocessors (``CastTo64``, ``AddOffsets``) are removed, so the
scripted model predicts the energy *without* the (large) offset, in float32, and the offset is
stored in the metadata for the loader to add in float64 (docs/ARCHITECTURE.md, "Model files").
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .data import FrameDataset, TrainingDataError

__all__ = ["MODEL_FORMAT", "export", "script_model", "offset_energy", "read_metadata"]

MODEL_FORMAT = "pymotor.model/1"
_METRIC_KEYS = ("mae", "mae_se", "mae_se_block", "rmse", "rmse_se", "rmse_se_block")


def script_model(model):
    """TorchScript version of a SchNetPack model without postprocessors (a deep copy)."""
    import torch

    m = copy.deepcopy(model).cpu()
    m.postprocessors = torch.nn.ModuleList()
    m.do_postprocessing = False
    m.eval()
    return torch.jit.script(m)


def offset_energy(metadata: dict, atomic_numbers) -> float:
    """The float64 energy offset of one molecule: sum_i atomrefs[Z_i] + n_atoms * mean_per_atom."""
    from ..potentials import energy_offset

    off = metadata["energy_offset"]
    return energy_offset(off.get("atomrefs") or {}, off["mean_per_atom"], atomic_numbers)


def _shown(path):
    """`path` relative to the working directory when it lies inside it (for the card)."""
    if not path or not os.path.isabs(str(path)):
        return path
    rel = os.path.relpath(str(path))
    return path if rel.startswith("..") else rel


def read_metadata(path: Union[str, os.PathLike]) -> dict:
    """The ``metadata`` JSON of an exported model file."""
    import torch

    extra = {"metadata": "", "cutoff": ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra["metadata"]:
        raise TrainingDataError(f"{str(path)!r} has no pymotor metadata")
    return json.loads(extra["metadata"])


def _inputs_for_frame(ds: FrameDataset, k: int):
    from schnetpack.data.loader import _atoms_collate_fn

    return _atoms_collate_fn([ds[k]])


def export(run_dir: Union[str, os.PathLike], out: Union[str, os.PathLike] = "cpnx.pt",
           card: bool = True, check: bool = True, metrics: bool = True, name: Optional[str] = None,
           eval_stride: int = 1, format: Optional[str] = None, device: str = "cpu") -> Path:
    """Write `out` (TorchScript + ``_extra_files`` ``cutoff`` and ``metadata``, or an
    AOTInductor package, :func:`pymotor.deploy`) and a model card.

    Args:
        run_dir: a training run directory (``pymotor train --out``).
        out: model file to write; the model card goes beside it as ``<stem>.md``.
        card: write the markdown model card.
        check: compare the written file with the Python model on synthetic molecules and up to
            4 validation frames (:func:`pymotor.deploy`); raise if energies differ by > 1e-4 eV
            or forces by > 1e-5 eV/Å (TorchScript; 1e-4 eV/Å for pt2).
        metrics: evaluate val (and test) errors for the card (cached when up to date).
        name: model name for the card (default: the file stem).
        eval_stride: evaluate every `eval_stride`-th frame for the card's metrics.
        format: ``"torchscript"`` (``.pt``) or ``"pt2"`` (``.pt2``, compiled for ``device``;
            checked against the Python model on synthetic molecules and 4 validation frames,
            forces within 1e-4 eV/Å); default from the suffix of `out`.
        device: where a pt2 package will run (``"cpu"`` or ``"cuda"``).

    Returns:
        the path of the model file.
    """
    from ..deployment import _format
    from .core import read_run
    from .evaluate import _cached_or_evaluate, _load_python_model

    run_dir = Path(run_dir).absolute()
    cfg = read_run(run_dir)

    out = Path(out)
    fmt = _format(out, format)
    c = cfg["config"]
    hp = c["hyperparameters"]
    unit = c["energy_unit"]
    model = _load_python_model(run_dir, "cpu")
    cutoff = float(model.representation.cutoff.item())
    if abs(cutoff - float(hp["cutoff"])) > 1e-6:
        raise TrainingDataError(f"model cutoff {cutoff} differs from the run's {hp['cutoff']}")

    ms = {}
    if metrics:
        for split in ("val", "test"):
            try:
                r = _cached_or_evaluate(run_dir, split, stride=int(eval_stride))
            except TrainingDataError:
                continue  # empty split
            ms[split] = {"n_frames": r["n_frames"], "stride": r.get("stride", 1), "units": r["units"],
                         "energy": {k: r["energy"][k] for k in _METRIC_KEYS},
                         "forces": {k: r["forces"][k] for k in _METRIC_KEYS},
                         "se_method": r["se_method"]}
    sessions = cfg.get("sessions", [])
    metadata = {
        "format": MODEL_FORMAT,
        "cutoff": cutoff,
        "length_unit": "Angstrom",
        "energy_unit": unit,
        "elements": [int(z) for z in cfg["elements"]],
        "architecture": c["model"],
        "energy_offset": {
            "atomrefs": {str(k): float(v) for k, v in cfg["energy_offset"]["atomrefs"].items()},
            "mean_per_atom": float(cfg["energy_offset"]["mean_per_atom"]),
        },
        "card": {
            "name": name or out.stem,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "datasets": [
                {"path": d["path"], "sha256": d["sha256"], "n_frames": d["n_frames"],
                 "units": d["units"], "split_source": d["split_source"], "split_sizes": d["split_sizes"]}
                for d in cfg["databases"]
            ],
            "hyperparameters": dict(hp, batch_size=c["batch_size"], loss_weights=c["loss_weights"],
                                    weighting=c["weighting"], seed=c["seed"], stride=c.get("stride", 1),
                                    optimizer="AdamW", scheduler="ReduceLROnPlateau(val_loss)",
                                    ema=True, init_from=c.get("init_from")),
            "loss_normalisation": cfg.get("loss_normalisation"),
            "training": {
                "epochs": cfg.get("epoch"), "global_step": cfg.get("global_step"),
                "wall_time_s": cfg.get("wall_time_s"), "sessions": len(sessions),
                "devices": sorted({s.get("device", "?") for s in sessions}),
                "best_val_loss": cfg.get("best_val_loss"),
                "stop_reason": sessions[-1]["stop_reason"] if sessions else None,
            },
            "metrics": ms,
            "versions": cfg.get("versions"),
        },
    }
    return _export_deployed(model, out, fmt, metadata, cfg, run_dir, card, check, device)


def _export_deployed(model, out: Path, fmt: str, metadata: dict, cfg: dict, run_dir: Path, card: bool,
                     check: bool, device: str) -> Path:
    """`export` through :func:`pymotor.deploy` (TorchScript or AOTInductor package) with the run's
    metadata, checked against the Python model on synthetic molecules and 4 validation frames."""
    from ..deployment import deploy
    from .core import load_run_data
    from .model import preprocessing_transforms

    molecules = []
    if check:
        infos, frames = load_run_data(cfg, run_dir, check_hash=False)
        ds = FrameDataset([(fr, i.split["val"]) for fr, i in zip(frames, infos)],
                          preprocessing_transforms(metadata["cutoff"], None, 0.0, remove_offsets=False))
        for k in np.linspace(0, len(ds) - 1, min(4, len(ds))).astype(int):
            b = _inputs_for_frame(ds, int(k))
            molecules.append((b["_atomic_numbers"].numpy(), b["_positions"].detach().double().numpy()))
    res = deploy(model, out, cutoff_A=metadata["cutoff"], energy_unit=metadata["energy_unit"],
                 length_unit="Angstrom", format=fmt, elements=metadata["elements"],
                 energy_offset=metadata["energy_offset"], architecture=metadata["architecture"],
                 card=metadata["card"], check=check, check_molecules=molecules or None, device=device)
    if card:
        md = {k: v for k, v in res.items() if k not in ("path", "check")}
        md["card"] = dict(md["card"])
        if check:
            md["card"]["export_check"] = dict(res["check"], frames=len(molecules))
        out.with_suffix(".md").write_text(model_card(md))
    return out


def _fmt(x, nd=4):
    return "n/a" if x is None else f"{x:.{nd}f}"


def _stride_text(stride) -> str:
    if isinstance(stride, list):
        return ("every N-th frame of each database's training/validation part, N = "
                + ", ".join(map(str, stride)) + " (in the order of the table above)")
    return "all frames" if int(stride) == 1 else f"every {stride}-th frame of each training/validation part"


def model_card(md: dict) -> str:
    """Markdown model card from the metadata of an exported model."""
    cd = md["card"]
    hp = cd["hyperparameters"]
    tr = cd["training"]
    lines = [
        f"# Model card: {cd['name']}",
        "",
        f"- Format: `{md['format']}` ("
        + ("AOTInductor package (.pt2) compiled for "
           f"{md['pt2']['device']} by torch {md['pt2']['torch']}" if "pt2" in md else "TorchScript")
        + ", SchNetPack 2.2 deploy inputs; see docs/ARCHITECTURE.md)",
        f"- Architecture: {md['architecture']} ({hp['n_atom_basis']} features, "
        f"{hp['n_interactions']} interactions, {hp['n_rbf']} Gaussian RBF, cosine cutoff {md['cutoff']} Å)"
        + (f" + ZBL repulsive prior (universal parameters, switched from full below {hp['prior_switch_on']} Å "
           f"to zero above {hp['prior_switch_off']} Å)" if hp.get("prior") == "zbl" else ""),
        f"- Units: energy {md['energy_unit']}, length {md['length_unit']}, forces {md['energy_unit']}/Å",
        f"- Elements: {md['elements']}",
        f"- Energy offset (added by the loader in float64): atomrefs {md['energy_offset']['atomrefs'] or 'none'}, "
        f"mean per atom {md['energy_offset']['mean_per_atom']!r} {md['energy_unit']}",
        f"- Created: {cd['created']}",
        "",
        "## Training data",
        "",
        "| database | frames | sha256 | split | train/val/test |",
        "|---|---|---|---|---|",
    ]
    for d in cd["datasets"]:
        s = d["split_sizes"]
        lines.append(f"| `{_shown(d['path'])}` | {d['n_frames']} | `{d['sha256'][:16]}…` | "
                     f"{_shown(d['split_source'])} | "
                     f"{s.get('train')}/{s.get('val')}/{s.get('test')} |")
    lines += [
        "",
        "## Training",
        "",
        f"- Loss: MSE, weights (energy, forces) = {tuple(hp['loss_weights'])}, weighting `{hp['weighting']}`",
        f"- AdamW lr {hp['lr']}, weight decay {hp['weight_decay']}, ReduceLROnPlateau "
        f"(factor {hp['lr_factor']}, patience {hp['lr_patience']}), early stopping patience "
        f"{hp['early_stopping_patience']}, EMA decay {hp['ema_decay']}, batch {hp['batch_size']}, seed {hp['seed']}",
        f"- Frames used: {_stride_text(hp.get('stride', 1))}",
        f"- Fine-tuned from: {_shown(hp.get('init_from')) or '—'}",
        f"- Epochs {tr['epochs']}, steps {tr['global_step']}, wall time {_fmt((tr['wall_time_s'] or 0) / 3600, 2)} h "
        f"in {tr['sessions']} session(s) on {', '.join(tr['devices'])}; stop: {tr['stop_reason']}",
        f"- Best validation loss {tr['best_val_loss']}",
        "",
        "## Errors (kcal/mol, kcal/mol/Å; ± SE over frames [± SE from 10 blocks of consecutive frames])",
        "",
        "| split | frames evaluated | energy MAE | energy RMSE | force MAE | force RMSE |",
        "|---|---|---|---|---|---|",
    ]

    def pm(d, k):
        b = d.get(f"{k}_se_block")
        blk = f" [± {_fmt(b)}]" if b is not None and b == b else ""
        return f"{_fmt(d[k])} ± {_fmt(d[f'{k}_se'])}{blk}"

    for split, m in cd["metrics"].items():
        e, f = m["energy"], m["forces"]
        st = m.get("stride", 1)
        nf = f"{m['n_frames']}" + (f" (every {st}th)" if st and st > 1 else "")
        lines.append(f"| {split} | {nf} | {pm(e, 'mae')} | {pm(e, 'rmse')} | {pm(f, 'mae')} | {pm(f, 'rmse')} |")
    if cd["metrics"]:
        lines += ["", f"Standard errors: {next(iter(cd['metrics'].values()))['se_method']}."]
    if "export_check" in cd:
        x = cd["export_check"]
        what = "compiled package" if "pt2" in md else "scripted model"
        lines += ["", f"Export check: {what} vs Python model on synthetic molecules and {x['frames']} "
                  f"validation frames: max |ΔE| {x['max_abs_dE']:.2e} {x['unit']}, "
                  f"max |ΔF| {x['max_abs_dF']:.2e} {x['unit']}/Å."]
    lines += ["", f"Versions: {cd.get('versions')}", ""]
    return "\n".join(lines)
