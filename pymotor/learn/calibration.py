"""How well a committee's force spread ranks its true force error (issue 14).

On reference frames (a database's test split, a held-out trajectory, or GFN2-xTB labels of
the model's own high-temperature MD), compare per frame the committee's largest per-atom force
standard deviation, ``max_i sigma_i`` (the number :mod:`pymotor.learn` thresholds), with the
committee mean's largest per-atom force error against the reference, ``max_i |F_i - F_i^ref|``;
and the same per atom. Reported:

* Spearman's rank correlation of spread and error (per frame and per atom): does a larger
  spread mean a larger error, whatever the scale;
* a calibration curve: the frames in bins of equal count by spread, each bin's mean spread
  against the root-mean-square error of its frames (a calibrated spread lies on the diagonal;
  for a committee of fine-tuned members it typically lies below it by a constant factor);
* the ratio error / spread (median), the factor by which the spread underestimates the error.

Units: kcal/mol/Angstrom throughout (the reference databases' unit).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import validation

__all__ = ["committee_calibration", "plot_calibration"]


def committee_calibration(committee, databases: Sequence[str | os.PathLike], split: str = "test",
                          stride: int = 1, n_bins: int = 10) -> dict:
    """Spread-vs-error statistics of ``committee`` on the ``split`` frames of ``databases``.

    Args:
        committee: a :class:`~pymotor.learn.committee.Committee` or anything
            :func:`~pymotor.learn.committee.resolve_committee` reads (files, a folder, a name).
        databases: reference databases (SchNetPack, with energies and forces).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (held-out trajectories).
        stride: every N-th frame of the split.
        n_bins: bins of equal frame count for the calibration curve.

    Returns:
        ``{"n_frames", "n_members", "spearman_frame", "spearman_atom", "pearson_log_frame",
        "median_error_over_spread", "bins": [{"spread", "rmse", "n"}], "spread", "error"}``;
        ``spread`` and ``error`` are the per-frame arrays (kcal/mol/Angstrom).
    """
    from scipy.stats import spearmanr

    from ..train.data import energy_conversion
    from ..train.evaluate import frames_by_molecule, reference_frames
    from .committee import Committee, resolve_committee

    n_bins = validation.number("n_bins", n_bins, integer=True, minimum=2, strict=False)
    if not isinstance(committee, Committee):
        committee = Committee(resolve_committee(committee))
    atoms, _, f_ref = reference_frames(databases, split, stride)
    kcal = energy_conversion("eV", "kcal/mol")
    spread_atom, error_atom, spread, error = [], [], [], []
    order = []
    for z, idx in frames_by_molecule(atoms).items():
        pos = np.stack([atoms[k].positions for k in idx])
        pred = committee.evaluate_frames(pos, np.asarray(z))
        s = pred.force_std * kcal                                        # (F, N)
        e = np.linalg.norm(pred.forces * kcal - np.stack([f_ref[k] for k in idx]), axis=-1)  # (F, N)
        spread_atom.append(s.ravel())
        error_atom.append(e.ravel())
        spread.append(s.max(axis=1))
        error.append(e.max(axis=1))
        order += idx
    spread, error = np.concatenate(spread), np.concatenate(error)
    sa, ea = np.concatenate(spread_atom), np.concatenate(error_atom)
    bins = []
    if len(spread) >= n_bins:
        ranks = np.argsort(spread)
        for chunk in np.array_split(ranks, n_bins):
            bins.append({"spread": float(spread[chunk].mean()), "rmse": float(np.sqrt((error[chunk] ** 2).mean())),
                         "n": int(len(chunk))})
    pos_ = (spread > 0) & (error > 0)
    return {
        "n_frames": int(len(spread)),
        "n_members": len(committee),
        "split": split,
        "databases": [str(d) for d in databases],
        "units": "kcal/mol/Angstrom",
        "spearman_frame": float(spearmanr(spread, error).statistic) if len(spread) > 2 else float("nan"),
        "spearman_atom": float(spearmanr(sa, ea).statistic),
        "pearson_log_frame": float(np.corrcoef(np.log(spread[pos_]), np.log(error[pos_]))[0, 1])
        if pos_.sum() > 2 else float("nan"),
        "median_error_over_spread": float(np.median(error[pos_] / spread[pos_])) if pos_.any() else float("nan"),
        "bins": bins,
        "spread": spread[np.argsort(order)].tolist(),
        "error": error[np.argsort(order)].tolist(),
    }


def plot_calibration(results: dict | Sequence[dict], out: str | os.PathLike, labels: Sequence[str] | None = None):
    """Error against spread (log-log scatter, per frame) with each result's binned calibration
    curve and the diagonal; one colour per result (e.g. test frames and high-temperature MD)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [results] if isinstance(results, dict) else list(results)
    labels = list(labels) if labels is not None else [r.get("split", "") for r in results]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    lo, hi = np.inf, 0.0
    for r, lab in zip(results, labels):
        s, e = np.asarray(r["spread"]), np.asarray(r["error"])
        ok = (s > 0) & (e > 0)
        pts = ax.scatter(s[ok], e[ok], s=6, alpha=0.35,
                         label=f"{lab} (Spearman {r['spearman_frame']:.2f}, n = {r['n_frames']})")
        if r["bins"]:
            ax.plot([b["spread"] for b in r["bins"]], [b["rmse"] for b in r["bins"]], "o-",
                    color=pts.get_facecolor()[0][:3], lw=1.5)
        if ok.any():
            lo, hi = min(lo, s[ok].min(), e[ok].min()), max(hi, s[ok].max(), e[ok].max())
    if hi > 0:
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="error = spread")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("committee max force std (kcal/mol/Å)")
    ax.set_ylabel("max force error of the mean (kcal/mol/Å)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out
