"""Command line: ``pymotor generate``, ``pymotor label`` and ``pymotor conformers``.

``register(subparsers)`` adds the sub-commands to pymotor's main parser; each sets ``func``
(called with the parsed namespace, returns an exit code). ``python -m pymotor.data.cli ...``
runs them without the main ``pymotor`` command.

Examples::

    pymotor generate --out data/T300 --temperature 300 --steps 20000 --trajectories 2 \\
                     --equilibrate-fs 2000 --backend tblite            # CPNX (default)
    pymotor generate --smiles "CC(=O)Oc1ccccc1C(=O)O" --out data/aspirin --steps 2000
    pymotor generate --xyz my_motor.xyz --out data/motor
    pymotor generate --out data/T300 --trajectories 32 --scheduler tcp://HEAD:8786   # on a cluster
    pymotor label runs/ens/run_*.h5 --stride 100 --like data/T300/T300.db --out data/AL1/AL1.db
    pymotor conformers data/T300/T300_1.db data/T300/T300_2.db --plot beta_delta.png
"""

from __future__ import annotations

import sys
from typing import List, Optional

__all__ = ["register", "main"]


def register(subparsers) -> None:
    from pymotor import parallel

    p = subparsers.add_parser(
        "generate", help="GFN2-xTB reference MD -> SchNetPack databases (resumable)",
        description="Run GFN2-xTB NVT molecular dynamics with pymotor's Nose-Hoover chain "
                    "(equilibration discarded), independent trajectories as parallel tasks (Dask: a "
                    "local cluster, or --scheduler tcp://HOST:PORT), "
                    "and write SchNetPack databases with split files. Repeating the same "
                    "command resumes a killed run.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--smiles", default=None, help="molecule as SMILES (RDKit ETKDG + MMFF94)")
    src.add_argument("--xyz", default=None,
                     help="start geometry as an (extended) xyz file; several frames are start "
                          "conformers used in turn by the trajectories")
    p.add_argument("--out", required=True, help="output folder, e.g. data/T300 (its name names the datasets)")
    p.add_argument("--temperature", type=float, default=300.0, help="temperature in K (default 300)")
    p.add_argument("--steps", type=int, default=20000, help="production steps per trajectory (default 20000)")
    p.add_argument("--timestep", type=float, default=0.5, help="time step in fs (default 0.5)")
    p.add_argument("--interval", type=int, default=1, help="save a frame every N steps (default 1)")
    p.add_argument("--equilibrate-fs", type=float, default=2000.0,
                   help="equilibration in fs, run and discarded (default 2000)")
    p.add_argument("--trajectories", type=int, default=2, help="independent trajectories (default 2)")
    parallel.add_arguments(p)
    p.add_argument("--backend", default="tblite", choices=["tblite", "xtb-python"])
    p.add_argument("--seed", type=int, default=0, help="seed of trajectory 1 (k-th: seed+k-1)")
    p.add_argument("--charge", type=int, default=0, help="total charge (default 0)")
    p.add_argument("--spin", type=int, default=None,
                   help="unpaired electrons 2S (default: 0 or 1 by electron-count parity)")
    p.add_argument("--energy-unit", default="kcal/mol", help="kcal/mol (default), eV, kJ/mol, Hartree")
    p.add_argument("--split", default="time", choices=["time", "random"],
                   help="time: last 20%% test, rest 80/20 train/val, contiguous (default)")
    p.add_argument("--fresh-scf-guess", action="store_true",
                   help="start every SCF from the same guess (history-independent forces: a "
                        "resumed run repeats an uninterrupted one bit for bit; ~1.6x slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_generate)

    p = subparsers.add_parser(
        "label", help="GFN2-xTB labels of frames (e.g. from NN MD) -> a database like a reference's",
        description="Compute GFN2-xTB energies and forces of the frames of H5MD trajectories or xyz files, in "
                    "chunks as parallel tasks (resumable), and write them as a SchNetPack database in the "
                    "units and with the atom energies of a `pymotor generate` database (active learning).")
    p.add_argument("inputs", nargs="+", help="pymotor .h5 trajectories or (extended) xyz files")
    p.add_argument("--like", required=True, help="a `pymotor generate` database (units and atom references)")
    p.add_argument("--out", required=True, help="database to write (.db; the split file goes beside it)")
    p.add_argument("--stride", type=int, default=1, help="every N-th frame of each input (default 1)")
    p.add_argument("--backend", default="tblite", choices=["tblite", "xtb-python"])
    p.add_argument("--max-energy-above-eV", type=float, default=5.0,
                   help="drop frames more than this above the reference's mean energy (default 5 eV)")
    p.add_argument("--chunk-frames", type=int, default=50, help="frames per task (default 50)")
    p.add_argument("--split-seed", type=int, default=0)
    parallel.add_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_label)

    p = subparsers.add_parser(
        "conformers", help="motor dihedrals beta/delta and conformer counts of datasets",
        description="Print the conformer populations (anti-M, syn-M, anti-P, syn-P) of "
                    "SchNetPack databases or xyz/H5MD trajectories and plot beta against delta.")
    p.add_argument("inputs", nargs="+", help=".db (SchNetPack/ASE), .h5 (pymotor) or .xyz files")
    p.add_argument("--plot", default=None, metavar="PNG", help="save the beta-delta scatter plot")
    p.set_defaults(func=_conformers)


def _generate(args) -> int:
    from pymotor import parallel
    from pymotor.data import cpnx
    from pymotor.data.generate import GenerationError, generate_reference
    from pymotor.data.inputs import atoms_from_smiles, atoms_from_xyz

    try:
        if args.smiles is not None:
            atoms = atoms_from_smiles(args.smiles, seed=args.seed)
        elif args.xyz is not None:
            frames = atoms_from_xyz(args.xyz, all_frames=True)
            atoms = frames[0] if len(frames) == 1 else frames  # several start conformers
        else:
            atoms = cpnx()
        res = generate_reference(
            atoms, args.out, temperature_K=args.temperature, steps=args.steps,
            timestep_fs=args.timestep, interval=args.interval, equilibrate_fs=args.equilibrate_fs,
            trajectories=args.trajectories, backend=args.backend, seed=args.seed,
            charge=args.charge, spin=args.spin, energy_unit=args.energy_unit, split=args.split,
            progress=not args.no_progress, reuse_wavefunction=not args.fresh_scf_guess,
            **parallel.options(args))
    except (ValueError, TypeError, FileNotFoundError, ImportError, GenerationError) as exc:
        print(f"pymotor generate: error: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, GenerationError) else 1
    for st in res["trajectories"]:
        print(f"{st['name']}: {st['n_frames']} frames, T = {st['mean_temperature_K']:.1f} "
              f"+- {st['std_temperature_K']:.1f} K, split {st['split_sizes']}")
    print(f"merged: {res['merged']} ({res['merged_split']})")
    return 0


def _label(args) -> int:
    from pathlib import Path

    from pymotor import parallel
    from pymotor.data.label import label_frames

    if args.stride < 1:
        raise ValueError(f"`--stride` must be a positive integer, got {args.stride}")
    frames = []
    for path in args.inputs:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"`inputs`: no such file {path!r}")
        if p.suffix in (".h5", ".hdf5"):
            import pymotor

            frames += pymotor.read_trajectory(p, step=args.stride).to_ase()
        else:
            from ase.io import read

            frames += read(p, index=f"::{args.stride}")
    res = label_frames(frames, args.out, args.like, backend=args.backend,
                       max_energy_above_eV=args.max_energy_above_eV, split_seed=args.split_seed,
                       progress=not args.no_progress, chunk_frames=args.chunk_frames, **parallel.options(args))
    print(f"wrote {res['db']} ({res['n_frames']} of {len(frames)} frames; dropped: {res['dropped_energy']} "
          f"above {args.max_energy_above_eV:g} eV, {res['dropped_scf']} SCF failures) and {res['split']}")
    return 0


def _conformers(args) -> int:
    from pathlib import Path
    from types import SimpleNamespace

    import numpy as np

    from pymotor.data.conformers import LABELS, motor_labels, plot_dihedrals

    def frames_of(path):
        # positions are needed (not only stored beta/delta): the C2 configuration is read from them
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"`inputs`: no such file {path!r}")
        if p.suffix == ".db":
            from ase.db import connect

            with connect(str(p), use_lock_file=False) as conn:
                rows = list(conn.select(sort="id"))
            if not rows:
                raise ValueError(f"`inputs`: {path!r} holds no frames")
            return SimpleNamespace(positions=np.stack([r.positions for r in rows]),
                                   atomic_numbers=rows[0].numbers)
        if p.suffix in (".h5", ".hdf5"):
            import pymotor

            return pymotor.read_trajectory(p)
        from ase.io import read

        return read(p, index=":")

    def percent(pops):
        return ", ".join(f"{lab or 'undefined'} {x * 100:.1f}%" for lab, x in pops.items())

    betas, deltas, names = [], [], []
    try:
        for path in args.inputs:
            lab = motor_labels(frames_of(path))
            b, d = lab.beta, lab.delta
            counts = ", ".join(f"{c} {np.mean(lab.conformer == c) * 100:.1f}%" for c in LABELS)
            print(f"{path}: {len(b)} frames; beta {b.mean():.1f} +- {b.std():.1f} deg, "
                  f"delta {d.mean():.1f} +- {d.std():.1f} deg; {counts}")
            print(f"  C2 configuration: {percent(lab.populations('config'))}; relative "
                  f"configuration (C2 vs helix): {percent(lab.populations('relative'))}")
            print("  enantiomer pairs (same for mirror images): "
                  f"{percent(lab.populations('pair'))}")
            betas.append(b)
            deltas.append(d)
            names.append(path)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"pymotor conformers: error: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        plot_dihedrals(betas, deltas, labels=names, out=args.plot)
        print(f"wrote {args.plot}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from ..cli import subsystem_main

    return subsystem_main("python -m pymotor.data.cli", register, argv)


if __name__ == "__main__":
    raise SystemExit(main())
