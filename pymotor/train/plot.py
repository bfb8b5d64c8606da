"""Learning curve of a run: validation (and training) loss against optimiser step."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Union

__all__ = ["read_logs", "plot_learning_curve"]


def read_logs(run_dir: Union[str, Path]) -> Dict[str, List[tuple]]:
    """All sessions' Lightning CSV logs merged: {metric: [(step, value), ...]} sorted by step.

    A resumed session may re-log a step of the previous one; the later value wins.
    """
    out: Dict[str, Dict[int, float]] = {}
    sessions = sorted((Path(run_dir) / "logs").glob("session_*/metrics.csv"),
                      key=lambda p: int(p.parent.name.split("_")[1]))
    for f in sessions:
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                step = row.get("step")
                if step in (None, ""):
                    continue
                for k, v in row.items():
                    if k in ("step", "epoch") or v in (None, ""):
                        continue
                    out.setdefault(k, {})[int(step)] = float(v)
                if row.get("epoch") not in (None, ""):
                    out.setdefault("epoch", {})[int(step)] = float(row["epoch"])
    return {k: sorted(d.items()) for k, d in out.items()}


def plot_learning_curve(run_dir: Union[str, Path], path: Union[str, Path, None] = None) -> Path:
    """Write ``learning_curve.png`` (validation loss vs step, log scale) into `run_dir`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    logs = read_logs(run_dir)
    if "val_loss" not in logs:
        raise ValueError(f"no validation loss logged in {run_dir}")
    path = Path(path) if path is not None else Path(run_dir) / "learning_curve.png"
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    if "train_loss" in logs:
        s, v = zip(*logs["train_loss"])
        ax.plot(s, v, ".", ms=2, alpha=0.4, color="0.5", label="train loss (batch)")
    s, v = zip(*logs["val_loss"])
    ax.plot(s, v, "o-", ms=3, color="C0", label="validation loss (epoch, EMA weights)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(Path(run_dir).name)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
