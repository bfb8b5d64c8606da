"""Command line: ``pymotor learn`` (on-the-fly learning MD, :func:`pymotor.learn.on_the_fly`).

``register(subparsers)`` adds the sub-command; ``python -m pymotor.learn.cli learn ...`` runs it
without the main ``pymotor`` command.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import List, Optional

__all__ = ["register", "main"]

#: API argument -> command-line option, for error messages
_OPTION = {"temperature_K": "--temperature", "timestep_fs": "--timestep-fs", "steps": "--steps",
           "replicas": "--replicas", "threshold": "--threshold", "threshold_quantile": "--threshold-quantile",
           "check_every": "--check-every", "retrain_every": "--retrain-every", "retrain": "--no-retrain",
           "segment_steps": "--segment-steps", "interval": "--interval", "seed": "--seed",
           "tdamp_fs": "--tdamp-fs", "retrain_epochs": "--retrain-epochs", "retrain_lr": "--retrain-lr",
           "replay": "--replay", "replay_frames": "--replay-frames", "test_dbs": "--test-db",
           "test_split": "--test-split", "test_stride": "--test-stride", "calibration_dbs": "--calibration-db",
           "xtb_backend": "--xtb-backend", "backend": "--backend", "committee": "--committee", "out": "--out",
           "resume": "--resume", "atoms": "--xyz/--start-db", "train_threads": "--train-threads",
           "max_force_eV_per_A": "--max-force"}


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return v
    return parse


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return v


def _threshold(text: str):
    if text == "auto":
        return text
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number >= 0 (eV/Angstrom), got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number >= 0 (eV/Angstrom), got {text!r}")
    return v


def _quantile(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (exclusive), got {text!r}")
    return v


def register(subparsers) -> None:
    from ..backends import REGISTRY
    from .loop import DEFAULTS as D

    p = subparsers.add_parser(
        "learn", help="on-the-fly learning MD: a committee runs MD, asks GFN2-xTB when unsure, fine-tunes itself",
        description="NN MD (Nose-Hoover NVT) with a committee of deployed models: every --check-every steps the "
                    "committee's force standard deviation (max over atoms, eV/Å) is compared with --threshold; above "
                    "it GFN2-xTB labels the frame and the step goes on with its forces; every --retrain-every new "
                    "labels the members are fine-tuned on them plus a replay of their training data. Everything "
                    "goes to --out; repeating the command (or --resume --out DIR) resumes a killed run without "
                    "losing a label or repeating an xTB call. Options not given take their defaults, or on "
                    "resume the stored values. docs/learning.md.")
    p.add_argument("--committee", nargs="+", default=None, metavar="MODEL",
                   help="the committee: several model files, 'a.pt,b.pt', a folder of *.pt, "
                        "or a shipped committee name")
    p.add_argument("--out", required=True, help="run folder (resumable)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--xyz", help="start geometry (default: CPNX's GFN2-xTB minimum)")
    src.add_argument("--start-db", help="start geometry: the last test frame of a reference database")
    p.add_argument("--temperature", type=_positive, default=None, help=f"K (default {D['temperature_K']:g})")
    p.add_argument("--steps", type=_int_at_least(1), default=None,
                   help=f"total MD steps (default {D['steps']}; a larger value continues a finished run)")
    p.add_argument("--timestep-fs", type=_positive, default=None, help=f"default {D['timestep_fs']}")
    p.add_argument("--tdamp-fs", type=_positive, default=None,
                   help=f"thermostat time constant (default {D['tdamp_fs']:g})")
    p.add_argument("--replicas", type=_int_at_least(1), default=None,
                   help=f"independent replicas, one batched committee call per step (default {D['replicas']})")
    p.add_argument("--seed", type=_int_at_least(0), default=None, help="seed of the start velocities (default 0)")
    p.add_argument("--threshold", type=_threshold, default=None,
                   help="eV/Å; label when the committee's max force std exceeds it; 0 labels every checked frame; "
                        "auto (default): the --threshold-quantile of the committee's spread on its own validation "
                        "frames")
    p.add_argument("--threshold-quantile", type=_quantile, default=None, help=f"default {D['threshold_quantile']}")
    p.add_argument("--calibration-db", nargs="+", default=None, metavar="DB",
                   help="databases whose validation frames calibrate --threshold auto "
                        "(default: the members' training data)")
    p.add_argument("--check-every", type=_int_at_least(1), default=None, help=f"steps (default {D['check_every']})")
    p.add_argument("--retrain-every", type=_int_at_least(2), default=None,
                   help=f"fine-tune after this many new labels (default {D['retrain_every']})")
    p.add_argument("--no-retrain", action="store_true", help="label only, never fine-tune")
    p.add_argument("--segment-steps", type=_int_at_least(1), default=None,
                   help=f"MD steps between retraining checks (default {D['segment_steps']})")
    p.add_argument("--retrain-epochs", type=_int_at_least(1), default=None, help=f"default {D['retrain_epochs']}")
    p.add_argument("--retrain-lr", type=_positive, default=None, help=f"default {D['retrain_lr']}")
    p.add_argument("--replay", nargs="+", default=None, metavar="DB",
                   help="original data replayed when fine-tuning (default: the members' training databases)")
    p.add_argument("--replay-frames", type=_int_at_least(1), default=None,
                   help=f"about this many replay training frames (default {D['replay_frames']})")
    p.add_argument("--test-db", nargs="+", default=None, metavar="DB",
                   help="a fixed independent test set: errors per round on its --test-split frames")
    p.add_argument("--test-split", choices=["train", "val", "test"], default=None, help="default test")
    p.add_argument("--test-stride", type=_int_at_least(1), default=None, help="default 1")
    p.add_argument("--interval", type=_int_at_least(1), default=None, help=f"trajectory frames every N steps "
                                                                          f"(default {D['interval']})")
    p.add_argument("--xtb-backend", choices=["tblite", "xtb-python"], default=None, help="default tblite")
    p.add_argument("--backend", choices=["auto", *sorted(REGISTRY)], default=None,
                   help="model evaluator (default auto: the fastest that supports each member)")
    p.add_argument("--train-threads", type=_int_at_least(1), default=None, help="torch threads for fine-tuning")
    p.add_argument("--resume", action="store_true",
                   help="resume the run in --out with its stored options (an error if there is none)")
    p.add_argument("--report-only", action="store_true", help="only write --out's learn.json and learn.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_learn)

    p = subparsers.add_parser(
        "committee-calibration",
        help="how a committee's force spread ranks its true force error on reference frames",
        description="Per frame, the committee's max per-atom force std against the max per-atom force error "
                    "of its mean on reference databases: Spearman rank correlations (per frame, per atom), a "
                    "binned calibration curve and a log-log plot (kcal/mol/Å).")
    p.add_argument("--committee", required=True, help="model files a.pt,b.pt,..., a folder of *.pt, or a shipped name")
    p.add_argument("--data", nargs="+", required=True, metavar="DB", help="reference databases")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument("--stride", type=_int_at_least(1), default=1, help="every N-th frame of the split")
    p.add_argument("--bins", type=_int_at_least(2), default=10, help="bins of the calibration curve")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the plot here")
    p.add_argument("--json", default=None, metavar="FILE", help="write the full result (with per-frame values)")
    p.set_defaults(func=_calibration)


def _calibration(args) -> int:
    import json

    from .calibration import committee_calibration, plot_calibration

    res = committee_calibration(args.committee, args.data, split=args.split, stride=args.stride, n_bins=args.bins)
    print(f"{res['n_frames']} frames, {res['n_members']} members ({res['units']}): Spearman per frame "
          f"{res['spearman_frame']:.3f}, per atom {res['spearman_atom']:.3f}; median error / spread "
          f"{res['median_error_over_spread']:.2f}")
    for b in res["bins"]:
        print(f"  spread {b['spread']:.4f}  rmse {b['rmse']:.4f}  ({b['n']} frames)")
    if args.plot:
        print(f"wrote {plot_calibration(res, args.plot, [args.split])}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


def _cli_message(exc: BaseException) -> str:
    return re.sub(r"`([A-Za-z_]+)`", lambda m: _OPTION.get(m.group(1), m.group(0)), str(exc))


def _learn(args) -> int:
    from .loop import on_the_fly
    from .report import write_report

    if args.report_only:
        rep = write_report(args.out)
        _summary(rep, args.out)
        return 0
    atoms = None
    if args.xyz:
        from ..data.inputs import atoms_from_xyz

        atoms = atoms_from_xyz(args.xyz)
    elif args.start_db:
        from ..workflows import start_from_dataset

        atoms = start_from_dataset(args.start_db)  # (its velocities are not used: drawn at --temperature)
    committee = args.committee
    if committee is not None and len(committee) == 1:
        committee = committee[0]
    try:
        res = on_the_fly(committee, atoms, args.out, resume=True if args.resume else None,
                         progress=not args.no_progress, temperature_K=args.temperature, steps=args.steps,
                         timestep_fs=args.timestep_fs, replicas=args.replicas, threshold=args.threshold,
                         threshold_quantile=args.threshold_quantile, check_every=args.check_every,
                         retrain_every=args.retrain_every, retrain=False if args.no_retrain else None,
                         segment_steps=args.segment_steps, interval=args.interval, seed=args.seed,
                         tdamp_fs=args.tdamp_fs, retrain_epochs=args.retrain_epochs, retrain_lr=args.retrain_lr,
                         replay=args.replay, replay_frames=args.replay_frames, test_dbs=args.test_db,
                         test_split=args.test_split, test_stride=args.test_stride,
                         calibration_dbs=args.calibration_db, xtb_backend=args.xtb_backend, backend=args.backend,
                         train_threads=args.train_threads)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as exc:
        raise type(exc)(_cli_message(exc)) from exc
    _summary(res.report, args.out)
    return 0


def _summary(rep: dict, out) -> None:
    thr = (rep.get("threshold") or {}).get("threshold_eV_per_A")
    print(f"{out}: {rep['steps']} steps ({rep['time_ps']:.4g} ps) x {rep['replicas']} replica(s), threshold "
          f"{thr:.4g} eV/Å; {rep['xtb_calls']} GFN2-xTB calls ({rep['labels']} labels), "
          f"{100 * (rep['fraction_steps_on_xtb'] or 0):.3g} % of steps on xTB")
    for r in rep["rounds"]:
        per_ps = r["xtb_calls_per_ps"]
        te = (r.get("test_errors") or {}).get("committee")
        print(f"  round {r['round']}: steps {r['from_step']}-{r['to_step']}, {r['xtb_calls']} xTB calls"
              + (f" ({per_ps:.3g} per ps)" if per_ps is not None else "")
              + (f", test MAE {te['energy_mae']:.3g} kcal/mol, {te['forces_mae']:.3g} kcal/mol/Å" if te else ""))
    if rep.get("final_models"):
        print("  committee now: " + " ".join(rep["final_models"]))
    print(f"  report: {out}/learn.json, {out}/learn.png")


def main(argv: Optional[List[str]] = None) -> int:
    from ..cli import subsystem_main

    return subsystem_main("python -m pymotor.learn.cli", register, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
