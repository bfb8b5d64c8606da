"""The report of an on-the-fly run: ``OUT/learn.json`` and ``OUT/learn.png``.

* **xTB calls per ps** over simulated time (per replica: calls / (replicas x ps)), in bins, and
  per round (the span of MD each committee drove);
* **errors per round** on the fixed independent test set (``test_dbs``): energy and force MAE
  of the committee mean and of each member, kcal/mol and kcal/mol/Angstrom; and the
  committee's errors on each round's new labels before and after fine-tuning;
* the **fraction of steps on xTB** (labelled steps / replica steps) and of checks labelled;
* wall time: GFN2-xTB, committee and training seconds, and the time pure GFN2-xTB MD of the
  same length would take at the measured time per xTB call.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .journal import Journal

__all__ = ["build_report", "write_report", "plot_report"]

REPORT_FORMAT = "pymotor.learn.report/1"


def build_report(out: str | os.PathLike, n_bins: int = 40) -> dict:
    """The report of the run in ``out`` (read only; a running loop may be reported on)."""
    out = Path(out)
    state_path = out / "learn_state.json"
    if not state_path.is_file():
        raise FileNotFoundError(f"`out`: {out} holds no on-the-fly run (no learn_state.json)")
    state = json.loads(state_path.read_text())
    s = state["settings"]
    journal = Journal(out / "journal.jsonl", read_only=True)
    R = int(s["replicas"])
    dt_ps = float(s["timestep_fs"]) / 1000.0
    steps_done = max([int(x.get("steps_to") or 0) for x in state.get("sessions", [])] + [0])
    checks = journal.checks()
    calls = [e for e in checks if "xtb" in e or "xtb_error" in e]
    labels = [e for e in checks if "xtb" in e]
    call_steps = np.array([e["step"] for e in calls], dtype=float)

    # xTB calls per ps over time, in bins of whole check intervals
    bins = []
    if steps_done > 0:
        ce = int(s["check_every"])
        width = max(ce, int(np.ceil(steps_done / n_bins / ce)) * ce)
        for a in range(0, steps_done, width):
            b = min(steps_done, a + width)
            n = int(((call_steps > a) & (call_steps <= b)).sum() + (a == 0) * (call_steps == 0).sum())
            bins.append({"from_ps": a * dt_ps, "to_ps": b * dt_ps, "xtb_calls": n,
                         "xtb_calls_per_ps": n / (R * (b - a) * dt_ps)})

    rounds = []
    done = [r for r in state["rounds"] if r.get("status") == "done"]
    for k, r in enumerate(done):
        a = int(r["step"])
        b = int(done[k + 1]["step"]) if k + 1 < len(done) else steps_done
        mine = [e for e in calls if int(e.get("round", -1)) == int(r["round"])]
        n_checks = sum(1 for e in checks if int(e.get("round", -1)) == int(r["round"]))
        span_ps = max(0, b - a) * dt_ps
        rounds.append({
            "round": int(r["round"]), "from_step": a, "to_step": b, "from_ps": a * dt_ps, "to_ps": b * dt_ps,
            "models": r.get("models"), "n_labels_trained_on": int(r.get("n_labels", 0)),
            "n_new_labels": r.get("n_new_labels"), "xtb_calls": len(mine), "checks": n_checks,
            "xtb_calls_per_ps": len(mine) / (R * span_ps) if span_ps > 0 else None,
            "fraction_steps_on_xtb": len(mine) / (R * (b - a)) if b > a else None,
            "threshold_eV_per_A": (r.get("threshold") or state.get("threshold") or {}).get("threshold_eV_per_A"),
            "train_seconds": r.get("train_seconds"), "test_errors": r.get("test_errors"),
            "new_label_errors": r.get("new_label_errors"),
        })

    sessions = state.get("sessions", [])
    xtb_s = sum(float(x.get("xtb_seconds") or 0) for x in sessions)
    n_calls_timed = sum(int(x.get("xtb_calls") or 0) for x in sessions)
    com_s = sum(float(x.get("committee_seconds") or 0) for x in sessions)
    com_n = sum(int(x.get("committee_calls") or 0) for x in sessions)
    per_call = xtb_s / n_calls_timed if n_calls_timed else None
    report = {
        "format": REPORT_FORMAT,
        "out": str(out.resolve()),
        "settings": s,
        "threshold": state.get("threshold"),
        "committee": state.get("committee"),
        "steps": steps_done, "time_ps": steps_done * dt_ps, "replicas": R,
        "checks": len(checks), "xtb_calls": len(calls), "labels": len(labels),
        "xtb_failures": len(calls) - len(labels),
        "xtb_calls_per_ps": len(calls) / (R * steps_done * dt_ps) if steps_done else None,
        "fraction_steps_on_xtb": len(calls) / (R * steps_done) if steps_done else None,
        "fraction_checks_labelled": len(calls) / len(checks) if checks else None,
        "rounds": rounds,
        "timeline": bins,
        "final_models": done[-1].get("models") if done else None,
        "wall": {
            "seconds": sum(float(x.get("wall_seconds") or 0) for x in sessions),
            "xtb_seconds": xtb_s, "train_seconds": sum(float(x.get("train_seconds") or 0) for x in sessions),
            "committee_seconds": com_s,
            "seconds_per_xtb_call": per_call,
            "seconds_per_committee_call": com_s / com_n if com_n else None,
            "pure_xtb_md_seconds_estimate": per_call * R * steps_done if per_call else None,
            "note": "pure GFN2-xTB MD estimated as (seconds per xTB call) x replicas x steps, an upper "
                    "estimate: each label's SCF starts from scratch, xTB MD reuses the previous wavefunction "
                    "(~1.6x faster per step for CPNX); sessions: " + str(len(sessions)),
        },
        "sessions": sessions,
    }
    return report


def write_report(out: str | os.PathLike) -> dict:
    """Write ``learn.json`` and ``learn.png`` into ``out``; returns the report."""
    out = Path(out)
    rep = build_report(out)
    tmp = out / "learn.json.tmp"
    tmp.write_text(json.dumps(rep, indent=1, default=float))
    os.replace(tmp, out / "learn.json")
    plot_report(rep, out / "learn.png")
    return rep


def plot_report(rep: dict, path: str | os.PathLike) -> Path:
    """Three panels: xTB calls per ps over time (round starts marked), test-set errors per round,
    fraction of steps on xTB per round."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(14, 4.2))
    t = rep["timeline"]
    if t:
        x = [b["from_ps"] for b in t] + [t[-1]["to_ps"]]
        y = [b["xtb_calls_per_ps"] for b in t]
        ax[0].stairs(y, x, fill=False, lw=1.5, color="C0")
    for r in rep["rounds"][1:]:
        ax[0].axvline(r["from_ps"], color="0.6", ls="--", lw=0.8)
        ax[0].text(r["from_ps"], 1.0, f" r{r['round']}", transform=ax[0].get_xaxis_transform(), va="top",
                   fontsize=8, color="0.4")
    ax[0].set_xlabel("simulated time (ps)")
    ax[0].set_ylabel("GFN2-xTB calls per ps (per replica)")
    ax[0].set_title(f"xTB calls: {rep['xtb_calls']} in {rep['time_ps']:.3g} ps x {rep['replicas']}")

    rounds = rep["rounds"]
    with_test = [r for r in rounds if r.get("test_errors")]
    if with_test:
        k = [r["round"] for r in with_test]
        ax[1].plot(k, [r["test_errors"]["committee"]["forces_mae"] for r in with_test], "o-", color="C1",
                   label="committee force MAE")
        for r in with_test:
            ax[1].plot([r["round"]] * len(r["test_errors"]["members"]),
                       [m["forces_mae"] for m in r["test_errors"]["members"]], ".", color="C1", alpha=0.4)
        ax[1].set_ylabel("force MAE (kcal/mol/Å)")
        ax2 = ax[1].twinx()
        ax2.plot(k, [r["test_errors"]["committee"]["energy_mae"] for r in with_test], "s--", color="C2",
                 label="committee energy MAE")
        ax2.set_ylabel("energy MAE (kcal/mol)")
        h1, l1 = ax[1].get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax[1].legend(h1 + h2, l1 + l2, fontsize=8)
        n = with_test[0]["test_errors"]["committee"]["n_frames"]
        ax[1].set_title(f"errors on the fixed test set ({n} frames)")
    else:
        ax[1].text(0.5, 0.5, "no independent test set\n(test_dbs / --test-db)", ha="center", va="center",
                   transform=ax[1].transAxes)
        ax[1].set_title("errors on the fixed test set")
    ax[1].set_xlabel("round")

    ran = [r for r in rounds if r["fraction_steps_on_xtb"] is not None]  # rounds that drove MD
    ax[2].bar([r["round"] for r in ran], [100 * r["fraction_steps_on_xtb"] for r in ran], color="C3")
    k = [r["round"] for r in rounds]
    ax[2].set_xlabel("round")
    ax[2].set_ylabel("steps on GFN2-xTB (%)")
    tot = rep["fraction_steps_on_xtb"]
    ax[2].set_title("fraction of steps on xTB" + (f": {100 * tot:.3g} % overall" if tot is not None else ""))
    for a in ax[1:]:
        a.set_xticks(k if k else [0])
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
