"""Command line: ``pymotor compare REFERENCE CANDIDATE --out DIR``.

``register(subparsers)`` adds the sub-command to pymotor's main parser; ``python -m
pymotor.compare.cli ...`` runs it alone.
"""
from __future__ import annotations

import sys
from typing import List, Optional

__all__ = ["register", "main"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare two MD runs (H5MD) in an HTML report with figures and summary.json",
        description="Compare a candidate MD run (e.g. the NN model) with a reference run (e.g. "
                    "GFN2-xTB) of the same molecule: energies, rolling Pearson r, RMSF, interatomic "
                    "distances, radius of gyration, power spectra and conformer populations.")
    p.add_argument("reference", help="reference trajectory (H5MD written by pymotor md)")
    p.add_argument("candidate", help="candidate trajectory (H5MD)")
    p.add_argument("--out", required=True, help="output folder (index.html, *.png, summary.json)")
    p.add_argument("--labels", nargs=2, default=["xTB", "NN"], metavar=("REF", "CAND"),
                   help="names of the two runs (default: xTB NN)")
    p.add_argument("--windows", nargs="+", type=int, default=None, metavar="STEPS",
                   help="rolling Pearson windows in MD steps (default: 100 250 500 1000)")
    p.add_argument("--stride", type=int, default=1, help="use every STRIDE-th frame (default 1)")
    p.add_argument("--requested-steps", type=int, default=None, metavar="N",
                   help="MD steps the candidate was asked for: a shorter run is reported as a blow-up")
    p.add_argument("--metrics", default=None, metavar="JSON",
                   help="the candidate model's test-set errors (JSON of pymotor.train.evaluate_model: "
                        "energy/forces MAE in kcal/mol) for the headline table")
    p.add_argument("--ms-per-step", nargs=2, type=float, default=None, metavar=("REF", "CAND"),
                   help="MD cost of the two runs in ms per step (default: from a timings.json beside the files)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 when there are warnings (the report is written anyway)")
    p.set_defaults(func=_compare)


def _compare(args) -> int:
    import json
    from pathlib import Path

    from .report import DEFAULT_WINDOWS_STEPS, compare

    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
    ms = args.ms_per_step
    report = compare(args.reference, args.candidate, labels=tuple(args.labels),
                     windows_steps=tuple(args.windows or DEFAULT_WINDOWS_STEPS), stride=args.stride,
                     requested_steps=args.requested_steps, test_metrics=metrics,
                     seconds_per_step=None if ms is None else {"reference": ms[0] / 1e3, "candidate": ms[1] / 1e3})
    index = report.write(args.out)
    print(f"wrote {index}")
    for note in report.notes:
        print(f"note: {note}")
    warnings = report.warnings
    for w in warnings:  # one line each, on stderr
        print(f"warning: {w['message']}", file=sys.stderr)
    print(f"{len(warnings)} warning(s)" if warnings else "no warnings")
    return 3 if (warnings and args.strict) else 0


def main(argv: Optional[List[str]] = None) -> int:
    from ..cli import subsystem_main

    return subsystem_main("python -m pymotor.compare.cli", register, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
