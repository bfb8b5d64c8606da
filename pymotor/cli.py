"""The ``pymotor`` command line: md, demo, generate, train, evaluate, export, compare."""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand modules, each with register(subparsers)
_SUBSYSTEMS = ("pymotor.data.cli", "pymotor.train.cli", "pymotor.compare.cli", "pymotor.ensemble", "pymotor.stability",
               "pymotor.learn.cli")
#: errors of bad user input: one line, exit code 2 (other failures: one line, exit code 1)
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               TypeError, KeyError)


def run_parser(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse and run the chosen subcommand's ``func(args)``. Every failure is one line on
    stderr and a non-zero exit code: 2 for bad input (a bad option or file), 1 for a run that
    failed (an MD blow-up, a file another run holds, any other error). ``--debug`` (before
    or after the subcommand) shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    args = parser.parse_args(argv)
    if debug:
        return int(args.func(args) or 0)
    prefix = f"{parser.prog} {args.command}: error:"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prefix} interrupted (repeat the command to resume)", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{prefix} {msg}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for every failure; --debug for the traceback
        from .md import MDError

        cause = exc.__cause__
        what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, MDError):
            line = what
        elif isinstance(cause, MDError):  # the potential raised; MDError says where
            line = f"{getattr(cause, 'detail', cause)}"
        else:
            line = f"{type(exc).__name__}: {what}"
        print(f"{prefix} {line} (--debug shows the traceback)", file=sys.stderr)
        return 1


def subsystem_main(prog: str, register, argv: list[str] | None = None) -> int:
    """``main()`` of a subcommand module (``python -m pymotor.<x>.cli``)."""
    parser = argparse.ArgumentParser(prog=prog)
    register(parser.add_subparsers(dest="command", required=True))
    return run_parser(parser, argv)


def _register_md(sub) -> None:
    p = sub.add_parser("md", help="NN and GFN2-xTB MD from the same start (same integrator)",
                       description="Run pymotor.run_md with a deployed model and, unless --no-xtb, "
                                   "with GFN2-xTB from the same positions and velocities.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--start-db", help="start from a reference database (default frame: last test frame)")
    src.add_argument("--xyz", help="start from an xyz file (velocities drawn at --temperature)")
    from . import models

    p.add_argument("--model", help=f"deployed model file or shipped model name; default: the shipped {models.DEFAULT}")
    from .backends import REGISTRY

    p.add_argument("--backend", default="auto", choices=["auto", *sorted(REGISTRY)],
                   help="model evaluator (pymotor.backends.REGISTRY): auto (default: the fastest that supports "
                        "the model, checked against libtorch at load; else TorchScript)")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--timestep-fs", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--thermostat", default="nose-hoover", choices=["nose-hoover", "none"])
    p.add_argument("--tdamp-fs", type=float, default=100.0)
    p.add_argument("--interval", type=int, default=1)
    p.add_argument("--xtb-backend", default="tblite", choices=["tblite", "xtb-python"])
    p.add_argument("--no-xtb", action="store_true", help="run only the NN model")
    p.add_argument("--out", default="runs/md", help="output folder (nn.h5, xtb.h5, timings.json); "
                   "repeating the command resumes the runs in it")
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming runs in --out")
    p.add_argument("--change-settings", action="store_true",
                   help="resume runs in --out with other settings (recorded in the files)")
    p.add_argument("--on-bond-change", default="record", choices=["record", "stop", "ignore"],
                   help="when a covalent bond breaks or forms: record it and go on (default), stop, ignore")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_md)


def _md(args) -> int:
    from . import data, models
    from .workflows import run_pair, start_from_dataset

    if args.start_db:
        atoms = start_from_dataset(args.start_db)
    elif args.xyz:
        from .data.inputs import atoms_from_xyz

        atoms = atoms_from_xyz(args.xyz)
    else:
        atoms = data.cpnx()
    model = models.resolve(args.model) if args.model else models.path(models.DEFAULT)
    res = run_pair(model, atoms, args.out, steps=args.steps, timestep_fs=args.timestep_fs,
                   temperature_K=args.temperature,
                   thermostat=None if args.thermostat == "none" else args.thermostat, tdamp_fs=args.tdamp_fs,
                   xtb_backend=None if args.no_xtb else args.xtb_backend, interval=args.interval,
                   backend=args.backend, resume=not args.overwrite, change_settings=args.change_settings,
                   on_bond_change=args.on_bond_change)
    print(f"wrote {res.nn}" + (f" and {res.xtb}" if res.xtb else ""))
    for k, v in res.seconds_per_step.items():
        print(f"  {k}: {1e3 * v:.2f} ms/step")
    return 0


def _register_demo(sub) -> None:
    p = sub.add_parser("demo", help="the whole loop on CPNX: xTB reference, the shipped model (or --train), "
                                    "NN vs xTB MD, report")
    p.add_argument("--out", default="demo", help="work folder (resumable)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--train", action="store_true",
                      help="train a SchNet from scratch (a fixed number of epochs, seed 0: the same model on "
                           "any machine) instead of running the shipped model")
    mode.add_argument("--pretrained", action="store_true",
                      help="the shipped model (the default; kept for compatibility)")
    p.add_argument("--full", action="store_true",
                   help="the source work's scale (states the expected time and asks first)")
    p.add_argument("--tiny", action="store_true", help="a few dozen steps per stage (smoke test)")
    p.add_argument("--yes", action="store_true", help="do not ask before a long --full run")
    p.set_defaults(func=_demo)


def _demo(args) -> int:
    from .demo import main as demo_main

    return demo_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pymotor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _register_md(sub)
    _register_demo(sub)
    for mod in _SUBSYSTEMS:
        try:
            importlib.import_module(mod).register(sub)
        except ModuleNotFoundError as exc:  # a subsystem whose optional dependencies are missing
            if exc.name and exc.name.startswith("pymotor"):
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_parser(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
