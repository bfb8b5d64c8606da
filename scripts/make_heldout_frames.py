"""Provenance of ``tests/data/cpnx_heldout_frames.npz``: GFN2-xTB frames of CPNX held out from
every training run, small enough to ship, for the slow acceptance test of ``cpnx-painn``.

Frames: every ``--every``-th frame of whole held-out trajectories (``data/IND300/IND300_1.db``:
the (2R,P) configuration from its own RDKit embedding, seed 101; ``data/RMSP300/RMSP300_2.db``:
the other diastereomer), with their energies (kcal/mol) and forces (kcal/mol/Angstrom) as the
databases hold them (the reference frames of ``pymotor evaluate --split all``).

Run (after the commands of docs/training.md that make data/):
``python scripts/make_heldout_frames.py --every 200 --out tests/data/cpnx_heldout_frames.npz``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", default=["data/IND300/IND300_1.db", "data/RMSP300/RMSP300_2.db"])
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--out", default="tests/data/cpnx_heldout_frames.npz")
    args = ap.parse_args(argv)

    from pymotor.train.evaluate import reference_frames

    z, pos, e, f, src = [], [], [], [], []
    for k, db in enumerate(args.data):
        atoms, energies, forces = reference_frames([db], split="all", stride=args.every)
        z.append(np.array([a.numbers for a in atoms]))
        pos.append(np.array([a.positions for a in atoms]))
        e.append(np.asarray(energies))
        f.append(np.asarray(forces))
        src.append(np.full(len(atoms), k))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, atomic_numbers=np.concatenate(z), positions=np.concatenate(pos),
                        energy_kcal_mol=np.concatenate(e), forces_kcal_mol_A=np.concatenate(f),
                        source=np.concatenate(src), sources=np.array(args.data), every=args.every)
    print(f"wrote {out}: {sum(len(x) for x in e)} frames from {args.data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
