"""Command line: ``pymotor train``, ``pymotor train-committee``, ``pymotor evaluate``, ``pymotor export``.

``register(subparsers)`` adds the four sub-commands to pymotor's main parser; each sets
``func`` (called with the parsed namespace, returns an exit code). ``python -m
pymotor.train.cli ...`` runs them without the main ``pymotor`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

__all__ = ["register", "main"]


def _weights(text: str):
    try:
        parts = [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers 'E,F', got {text!r}") from None
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers 'E,F', got {text!r}")
    return tuple(parts)


def _stride(text: str):
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or integers 'N,N,...', got {text!r}") from None
    return vals[0] if len(vals) == 1 else vals


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a SchNet/PaiNN model on SchNetPack databases (resumes if --out exists)",
        description="Train an energy+force model with SchNetPack 2.2. Each database is split on "
                    "its own (its <stem>_split.npz if present, as pymotor generate writes, else by time: last 20%% test, the "
                    "rest 80/20 train/val). If --out exists, training resumes from its last "
                    "checkpoint.")
    p.add_argument("dbs", nargs="+", help="SchNetPack .db files with energy and forces")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--seed", type=int, default=0)
    _add_training_options(p)
    p.set_defaults(func=_train)

    p = subparsers.add_parser(
        "train-committee",
        help="train a committee: one run per seed, as Dask tasks (resumes what exists in --out)",
        description="Train one model per seed on the same databases and split, each member a task "
                    "on a local cluster (default: one single-thread worker per member, at most one "
                    "per core) or on a Dask cluster (--scheduler tcp://HOST:PORT). Members write "
                    "OUT/runs/member-<seed>/ and, when finished, OUT/member-<seed>.pt: OUT is then a "
                    "committee folder for pymotor learn --committee OUT. Repeat the command to resume.")
    p.add_argument("dbs", nargs="+", help="SchNetPack .db files with energy and forces")
    p.add_argument("--out", required=True, help="committee folder")
    p.add_argument("--seeds", type=_seeds, default=(0, 1, 2), metavar="S,S,...",
                   help="one member per seed (default 0,1,2)")
    p.add_argument("--no-export", action="store_true", help="train only; do not export the members")
    p.add_argument("--eval-stride", type=int, default=10,
                   help="every N-th validation/test frame for the exported cards (default 10)")
    _add_training_options(p)
    from ..parallel import add_arguments

    add_arguments(p, "worker processes of --scheduler local (default: one per member, at most one per core; "
                     "1 trains the members one after another in this process)")
    p.set_defaults(func=_train_committee)

    p = subparsers.add_parser(
        "evaluate", help="MAE/RMSE ± SE of a run (or of exported models) in kcal/mol and kcal/mol/Å",
        description="Errors of a training run on its own split; several runs: mean ± SE across "
                    "them (seeds). With --data: errors of exported models (TorchScript or pt2 files, "
                    "or shipped names such as cpnx-schnet) on the split frames of those databases.")
    p.add_argument("runs", nargs="+", help="run directory (several: mean ± SE across seeds); "
                                           "with --data: model files")
    p.add_argument("--data", nargs="+", default=None, metavar="DB",
                   help="reference databases (<stem>.db with <stem>_split.npz) to evaluate model files on")
    p.add_argument("--split", default="val", choices=["train", "val", "test", "all"],
                   help="with --data, 'all' takes every frame (a trajectory held out as a whole)")
    p.add_argument("--stride", type=int, default=1, help="evaluate every STRIDE-th frame")
    p.add_argument("--by-conformer", action="store_true",
                   help="with --data: also the errors per conformer of a molecular motor (pair labels)")
    p.add_argument("--json", action="store_true",
                   help="print the full result as JSON (with --data and several models: {model: result})")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("export", help="export a run's best model (TorchScript or AOTInductor .pt2) "
                                             "+ metadata + card")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default=None, help="model file (default cpnx.pt, or cpnx.pt2 with --format pt2); "
                                              "card: <stem>.md")
    p.add_argument("--format", default=None, choices=["torchscript", "pt2"],
                   help="torchscript (.pt, default) or pt2: an AOTInductor package with the forces compiled in, "
                        "for the device of --device (1-5 min to compile)")
    p.add_argument("--device", default="cpu", help="pt2: the device the package will run on (cpu, cuda)")
    p.add_argument("--no-check", action="store_true", help="skip the scripted-vs-Python comparison")
    p.add_argument("--eval-stride", type=int, default=1, help="evaluate every N-th frame for the card")
    p.set_defaults(func=_export)


def _add_training_options(p) -> None:
    """The options of `pymotor train` that `pymotor train-committee` shares."""
    p.add_argument("--model", default="schnet", choices=["schnet", "painn"])
    p.add_argument("--energy-unit", default="kcal/mol", help="kcal/mol (default), eV or Hartree")
    p.add_argument("--epochs", type=int, default=1000, help="maximum total epochs (default 1000)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--loss-weights", type=_weights, default=(0.01, 0.99), metavar="E,F",
                   help="energy and force loss weights (default 0.01,0.99)")
    p.add_argument("--weighting", default="fixed", choices=["fixed", "variance"],
                   help="'variance': unit-invariant (each MSE divided by its training-set variance)")
    p.add_argument("--init-from", default=None, metavar="RUN", help="fine-tune from this run's best model")
    p.add_argument("--prior", default=None, choices=["none", "zbl"],
                   help="short-range repulsive prior: zbl = ZBL screened nuclear repulsion, full below 0.4 Å "
                        "and switched off above 0.9 Å (set with --hp prior_switch_on=.. prior_switch_off=..)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda[:i]")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--max-time", type=float, default=None, metavar="HOURS",
                   help="stop this session after HOURS (resume later with the same command)")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="hyperparameter override, e.g. --hp lr=1e-3 --hp n_interactions=6")
    p.add_argument("--stride", type=_stride, default=1, metavar="N[,N...]",
                   help="use every N-th training/validation frame (default 1); one N per database, "
                        "comma-separated, to stride long MD references but not sparse frames")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                   help="train through a traced, torch.compile-d energy+force graph (same numbers, "
                        "~1.8x the frames/s of eager training for PaiNN on a CPU; 1-3 min to "
                        "compile). auto (default): on for training sets of 1000 frames or more")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_hp(items: List[str]) -> dict:
    hp = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"--hp expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            hp[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            hp[k.strip()] = v
    return hp


def _with_prior(hp: dict, prior) -> dict:
    if prior is not None:
        hp["prior"] = None if prior == "none" else prior
    return hp


def _training_kwargs(args) -> dict:
    """The keyword arguments of `train` from the shared options (not out, seed, progress)."""
    return dict(model=args.model, energy_unit=args.energy_unit, epochs=args.epochs,
                batch_size=args.batch_size, loss_weights=args.loss_weights,
                weighting=args.weighting, init_from=args.init_from, device=args.device,
                num_threads=args.threads, hyperparameters=_with_prior(_parse_hp(args.hp), args.prior),
                stride=args.stride, max_time_s=None if args.max_time is None else args.max_time * 3600.0,
                compile={"auto": None, "on": True, "off": False}[args.compile])


def _train(args) -> int:
    from .core import train

    res = train(args.dbs, args.out, seed=args.seed, progress=not args.no_progress, **_training_kwargs(args))
    print(f"{res['run_dir']}: epoch {res['epoch']}, step {res['global_step']}, best val loss "
          f"{res['best_val_loss']}, {res['wall_time_s']:.0f} s ({res['stop_reason']})")
    return 0


def _seeds(text: str):
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers 'S,S,...', got {text!r}") from None


def _train_committee(args) -> int:
    from ..parallel import options
    from .committee import train_committee

    res = train_committee(args.dbs, args.out, args.seeds, export=not args.no_export, eval_stride=args.eval_stride,
                          progress=not args.no_progress, **options(args), **_training_kwargs(args))
    for name, m in res["members"].items():
        print(f"{name}: epoch {m.get('epoch')}, best val loss {m.get('best_val_loss')}, "
              f"{m.get('stop_reason')}{', ' + m['model'] if 'model' in m else ''}")
    print(f"committee: {res['out']} ({len(res['models'])} exported members)")
    return 0


def _evaluate(args) -> int:
    from .evaluate import evaluate, evaluate_model, format_metrics, summarize_seeds

    if args.data:
        results = {}
        for m in args.runs:
            res = results[m] = evaluate_model(m, args.data, split=args.split, stride=args.stride,
                                              by_conformer=args.by_conformer)
            if not args.json:
                print(f"model {m}\n" + format_metrics(res), flush=True)
        if args.json:  # one JSON document: the result, or {model: result} for several models
            print(json.dumps(results if len(results) > 1 else results[args.runs[0]], indent=2))
        return 0
    if args.split == "all" or args.by_conformer:
        raise SystemExit("--split all and --by-conformer evaluate model files on --data databases")
    if len(args.runs) == 1:
        res = evaluate(args.runs[0], split=args.split, stride=args.stride)
    else:
        res = summarize_seeds(args.runs, split=args.split, stride=args.stride)
    print(json.dumps(res, indent=2) if args.json else format_metrics(res))
    return 0


def _export(args) -> int:
    from .export import export

    out = args.out or ("cpnx.pt2" if args.format == "pt2" else "cpnx.pt")
    out = export(args.run, out, check=not args.no_check, eval_stride=args.eval_stride, format=args.format,
                 device=args.device)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from ..cli import subsystem_main

    return subsystem_main("python -m pymotor.train.cli", register, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
