"""Validation MAE against the training energy unit, with fixed and with variance weighting.

    python scripts/unit_table.py DB [DB ...] --root runs/units --epochs 30 --seeds 0 1 2 \
        [--stride 40 --eval-stride 5] [--units kcal/mol eV] [--weightings fixed]

trains one run per (unit, weighting, seed) (resumable: existing runs continue), then prints a
markdown table of val MAE (energy, forces; kcal/mol, kcal/mol/Å; mean ± SE across seeds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

UNITS = ("kcal/mol", "eV", "Hartree")
WEIGHTINGS = ("fixed", "variance")


def _tag(unit: str) -> str:
    return {"kcal/mol": "kcal", "eV": "eV", "Hartree": "Ha"}[unit]


def run_table(dbs, root, epochs=30, seeds=(0, 1, 2), units=UNITS, weightings=WEIGHTINGS,
              hyperparameters=None, split="val", progress=False, stride=1, eval_stride=1):
    from pymotor.train import summarize_seeds, train

    rows = []
    for w in weightings:
        for unit in units:
            runs = []
            for seed in seeds:
                out = Path(root) / f"{w}_{_tag(unit)}_s{seed}"
                train(dbs, out, energy_unit=unit, weighting=w, seed=seed, epochs=epochs,
                      progress=progress, hyperparameters=hyperparameters, stride=stride)
                runs.append(out)
            s = summarize_seeds(runs, split, stride=eval_stride)
            rows.append((w, unit, s))
            print(f"{w:8s} {unit:8s} E {s['energy']['mae']['mean']:.4f} F {s['forces']['mae']['mean']:.4f}",
                  flush=True)
    return rows


def markdown(rows, split="val") -> str:
    def pm(m):
        se = m["se"]
        return f"{m['mean']:.3f} ± {se:.3f}" if se == se else f"{m['mean']:.3f}"

    lines = [f"| weighting | training unit | {split} energy MAE (kcal/mol) | {split} force MAE (kcal/mol/Å) | seeds |",
             "|---|---|---|---|---|"]
    for w, unit, s in rows:
        lines.append(f"| {w} | {unit} | {pm(s['energy']['mae'])} | {pm(s['forces']['mae'])} | {s['n_runs']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import json

    ap = argparse.ArgumentParser(prog="python scripts/unit_table.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dbs", nargs="+")
    ap.add_argument("--root", required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--hp", default="{}", help="JSON dict of hyperparameter overrides")
    ap.add_argument("--stride", type=int, default=1, help="every N-th train/val frame")
    ap.add_argument("--eval-stride", type=int, default=1, help="every N-th frame for the metrics")
    ap.add_argument("--split", default="val", choices=["val", "test"], help="split for the table (default val)")
    ap.add_argument("--units", nargs="+", default=list(UNITS), choices=UNITS,
                    help="training energy units (default: all three)")
    ap.add_argument("--weightings", nargs="+", default=list(WEIGHTINGS), choices=WEIGHTINGS,
                    help="loss weightings (default: both; variance-weighted runs are unit-invariant, "
                         "so one unit is enough once that is shown)")
    args = ap.parse_args(argv)
    rows = run_table(args.dbs, args.root, args.epochs, tuple(args.seeds),
                     units=tuple(args.units), weightings=tuple(args.weightings), split=args.split,
                     hyperparameters=json.loads(args.hp), stride=args.stride,
                     eval_stride=args.eval_stride)
    print(markdown(rows, args.split))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
