"""Errors of deployed models (TorchScript files) on the same frames of reference databases.

    python scripts/eval_models_on_reference.py OLD.pt NEW.pt --data data/T300/T300_1.db \
        data/T300/T300_2.db --split test --stride 5

``pymotor evaluate`` scores a training run on that run's own split; this script scores any
exported models on one common set of frames (the `split` part of each database's
``<stem>_split.npz``, every `stride`-th frame), so that models trained on different data can be
compared. Errors in kcal/mol and kcal/mol/Å (forces over Cartesian components), ± SE over
frames and [± SE from 10 contiguous blocks], as in ``pymotor.train.evaluate``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def reference_frames(db_paths, split: str, stride: int):
    """Atoms, energies (kcal/mol) and forces (kcal/mol/Å) of the chosen frames of each database."""
    import ase.db

    from pymotor.train.data import energy_conversion

    atoms, energies, forces = [], [], []
    for db in db_paths:
        db = Path(db)
        idx = np.load(db.with_name(db.stem + "_split.npz"))[f"{split}_idx"][::stride]
        with ase.db.connect(str(db)) as con:
            units = con.metadata["_property_unit_dict"]
            e_fac = energy_conversion(units["energy"], "kcal/mol")
            f_fac = energy_conversion(units["forces"].split("/Ang")[0], "kcal/mol")
            for i in idx:
                row = con.get(int(i) + 1)
                atoms.append(row.toatoms())
                energies.append(float(np.ravel(row.data["energy"])[0]) * e_fac)
                forces.append(np.asarray(row.data["forces"], float) * f_fac)
    return atoms, np.array(energies), np.array(forces)


def model_errors(model_path, atoms, e_ref, f_ref) -> dict:
    import pymotor
    from pymotor.train.data import energy_conversion
    from pymotor.train.evaluate import error_statistics

    model = pymotor.load_model(model_path)
    kcal_per_eV = energy_conversion("eV", "kcal/mol")
    e = np.empty(len(atoms))
    f = np.empty_like(f_ref)
    for k, a in enumerate(atoms):
        ek, fk = model.compute(a)
        e[k], f[k] = ek * kcal_per_eV, fk * kcal_per_eV
    de, df = e - e_ref, f - f_ref
    return {"energy": error_statistics(np.abs(de), de ** 2),
            "forces": error_statistics(np.abs(df).mean(axis=(1, 2)), (df ** 2).mean(axis=(1, 2)))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="exported TorchScript model files")
    ap.add_argument("--data", nargs="+", required=True, help="reference databases with <stem>_split.npz")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--stride", type=int, default=5)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    atoms, e_ref, f_ref = reference_frames(args.data, args.split, args.stride)
    print(f"{len(atoms)} {args.split} frames (every {args.stride}th) of {', '.join(args.data)}")
    print("| model | energy MAE (kcal/mol) | force MAE (kcal/mol/Å) |\n|---|---|---|")
    for m in args.models:
        r = model_errors(m, atoms, e_ref, f_ref)
        cell = [f"{r[p]['mae']:.3f} ± {r[p]['mae_se']:.3f} [± {r[p]['mae_se_block']:.3f}]"
                for p in ("energy", "forces")]
        print(f"| `{m}` | {cell[0]} | {cell[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
