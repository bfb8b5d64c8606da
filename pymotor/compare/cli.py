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
    p.set_defaults(func=_compare)


def _compare(args) -> int:
    from .report import DEFAULT_WINDOWS_STEPS, compare

    report = compare(args.reference, args.candidate, labels=tuple(args.labels),
                     windows_steps=tuple(args.windows or DEFAULT_WINDOWS_STEPS), stride=args.stride)
    index = report.write(args.out)
    print(f"wrote {index}")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from ..cli import subsystem_main

    return subsystem_main("python -m pymotor.compare.cli", register, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
