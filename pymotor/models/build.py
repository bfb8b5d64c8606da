"""Train and export the shipped ``cpnx-schnet`` model from the project's CPNX GFN2-xTB data.

    python -m pymotor.models.build --data data/T300 data/T500 --extra data/AL1/AL1.db \
        --prior zbl --run runs/cpnx-schnet --max-hours 2

Uses every trajectory database ``<name>_<k>.db`` in the ``--data`` folders (each split by time
with its own ``<name>_<k>_split.npz``; the merged ``<name>.db`` is skipped so no frame is used
twice; every ``--stride``-th frame) and the ``--extra`` databases in full (e.g. active-learning
frames from scripts/active_learning.py, which are sparse already),
trains SchNet (128 features, 3 interactions, 20 Gaussian RBF, cosine cutoff 5 Å) in kcal/mol
with SchNetPack, and exports the best model to ``pymotor/models/cpnx-schnet.pt`` with its model
card. The command is resumable: run it again (e.g. after a kill or with a larger
``--max-hours``) and training continues from the run's last checkpoint.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from . import MODEL_DIR


def trajectory_databases(data_dir: Path):
    """``<name>_<k>.db`` files in `data_dir`, sorted by k (the merged ``<name>.db`` excluded)."""
    dbs = [p for p in Path(data_dir).glob("*.db") if re.search(r"_\d+\.db$", p.name)]
    return sorted(dbs, key=lambda p: int(re.search(r"_(\d+)\.db$", p.name).group(1)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pymotor.models.build", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["data/T300"], help="folders with the reference databases")
    ap.add_argument("--extra", nargs="*", default=[], metavar="DB",
                    help="further databases used without stride (e.g. active-learning frames)")
    ap.add_argument("--prior", default=None, choices=["zbl"], help="short-range repulsive prior (ZBL)")
    ap.add_argument("--run", default="runs/cpnx-schnet", help="training run directory")
    ap.add_argument("--name", default="cpnx-schnet", help="shipped model name")
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--max-hours", type=float, default=None, help="wall-time limit of this session")
    ap.add_argument("--energy-unit", default="kcal/mol")
    ap.add_argument("--weighting", default="fixed", choices=["fixed", "variance"])
    ap.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    ap.add_argument("--lr-patience", type=int, default=10)
    ap.add_argument("--es-patience", type=int, default=40)
    ap.add_argument("--stride", type=int, default=10,
                    help="every N-th frame of train/val (0.5 fs frames are nearly identical)")
    ap.add_argument("--eval-stride", type=int, default=5, help="every N-th frame for the card's metrics")
    ap.add_argument("--init-from", default=None, help="fine-tune from this run (e.g. an interim run)")
    ap.add_argument("--export-only", action="store_true", help="only export the run's best model")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    from pymotor.train import evaluate, export, format_metrics, train

    if not args.export_only:
        dbs = []
        for folder in args.data:
            found = trajectory_databases(Path(folder))
            if not found:
                print(f"no trajectory databases <name>_<k>.db in {folder}", file=sys.stderr)
                return 2
            dbs += found
        strides = [args.stride] * len(dbs) + [1] * len(args.extra)
        dbs += [Path(p) for p in args.extra]
        print("training on:", *[f"{d} (stride {s})" for d, s in zip(dbs, strides)], sep="\n  ", flush=True)
        res = train([str(d) for d in dbs], args.run, model="schnet", energy_unit=args.energy_unit,
                    epochs=args.epochs, seed=0, weighting=args.weighting,
                    stride=strides if len(set(strides)) > 1 else args.stride,
                    init_from=args.init_from,
                    progress=not args.no_progress,
                    hyperparameters={"lr": args.lr, "lr_patience": args.lr_patience,
                                     "early_stopping_patience": args.es_patience, "prior": args.prior},
                    max_time_s=None if args.max_hours is None else args.max_hours * 3600)
        print(res, flush=True)
    for split in ("val", "test"):
        print(format_metrics(evaluate(args.run, split, stride=args.eval_stride)), flush=True)
    out = export(args.run, MODEL_DIR / f"{args.name}.pt", name=args.name, eval_stride=args.eval_stride)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
