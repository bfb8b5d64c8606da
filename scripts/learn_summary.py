"""The tables of the CPNX on-the-fly learning measurement (issue 17) from learn.json reports.

    python scripts/learn_summary.py runs/learn-600K runs/learn-700K \
        --xtb-md-timings runs/xtbmd-600K/timings.json

Per run: one row per round (the span of MD its committee drove): checks, xTB calls, calls per
ps, fraction of checks labelled, the round's threshold, and the committee's energy / force MAE
(kcal/mol, kcal/mol/Å) on the fixed independent test set; then the wall time against GFN2-xTB
MD of the same length (replicas x steps x the measured seconds per xTB MD step). Markdown.
The reports are rebuilt from each run's journal first (a running loop may be reported on).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _fmt(x, nd=3):
    return "—" if x is None else f"{x:.{nd}f}"


def _offset_free(rep: dict, s: dict) -> None:
    """The first and last committee on the run's test set again, through the loop's own
    test-set reader and error statistics (which store these for runs made since)."""
    from pymotor.learn import Committee
    from pymotor.learn.loop import _errors, _load_test_set

    test = _load_test_set(s)
    for r in (rep["rounds"][0], rep["rounds"][-1]):
        e = _errors(Committee(r["models"]), test)["committee"]
        print(f"\nround {r['round']}: test energy mean error {e['energy_mean_error']:+.3f} kcal/mol, MAE "
              f"{e['energy_mae']:.3f}, MAE without the mean {e['energy_mae_offset_free']:.3f}", end="")
    print()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="on-the-fly run folders (pymotor learn --out)")
    ap.add_argument("--xtb-md-timings", default=None, help="timings.json of `pymotor md` (seconds per xTB MD step)")
    ap.add_argument("--offset-free", action="store_true",
                    help="evaluate the first and last committee on the test set again: mean energy error and "
                         "energy MAE without that constant offset (for reports written before they were stored)")
    args = ap.parse_args(argv)
    from pymotor.learn.report import write_report

    xtb_step = None
    if args.xtb_md_timings:
        xtb_step = float(json.loads(Path(args.xtb_md_timings).read_text())["seconds_per_step"]["xtb"])
    for run in args.runs:
        rep = write_report(run)
        s = rep["settings"]
        print(f"\n### {run}: {s['temperature_K']:g} K, {rep['steps']} steps x {rep['replicas']} replicas "
              f"({rep['time_ps']:.3g} ps each), check every {s['check_every']} steps, retrain every "
              f"{s['retrain_every']} labels\n")
        print("| round | from–to (ps) | checks | xTB calls | calls / ps | checks labelled | threshold (eV/Å) "
              "| test E MAE | test F MAE | train (s) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rep["rounds"]:
            te = (r.get("test_errors") or {}).get("committee") or {}
            frac = r["xtb_calls"] / r["checks"] if r["checks"] else None
            print(f"| {r['round']} | {r['from_ps']:.2f}–{r['to_ps']:.2f} | {r['checks']} | {r['xtb_calls']} | "
                  f"{_fmt(r['xtb_calls_per_ps'], 1)} | {_fmt(frac, 2)} | {_fmt(r.get('threshold_eV_per_A'), 4)} | "
                  f"{_fmt(te.get('energy_mae'))} | {_fmt(te.get('forces_mae'))} | "
                  f"{_fmt(r.get('train_seconds'), 0)} |")
        if args.offset_free and s.get("test_dbs"):
            _offset_free(rep, s)
        w = rep["wall"]
        first = (rep["rounds"][0].get("test_errors") or {}).get("members") or []
        last = (rep["rounds"][-1].get("test_errors") or {}).get("members") or []
        if first and last:
            print("\nmembers, test F MAE first → last round: " + ", ".join(
                f"{a['forces_mae']:.3f} → {b['forces_mae']:.3f}" for a, b in zip(first, last)))
        line = (f"\nwall {w['seconds']:.0f} s (GFN2-xTB labels {w['xtb_seconds']:.0f} s, "
                f"{_fmt(w['seconds_per_xtb_call'])} s per label; committee MD {w['committee_seconds']:.0f} s; "
                f"training {w['train_seconds']:.0f} s); {rep['xtb_calls']} xTB calls, "
                f"{100 * (rep['fraction_steps_on_xtb'] or 0):.2f} % of steps on xTB")
        if xtb_step:
            pure = xtb_step * rep["replicas"] * rep["steps"]
            line += (f"; GFN2-xTB MD of the same length: {pure:.0f} s ({xtb_step * 1000:.1f} ms per step "
                     f"measured) → {pure / w['seconds']:.2f}x the on-the-fly wall time, "
                     f"{pure / max(w['seconds'] - w['train_seconds'], 1e-9):.1f}x without the training")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
