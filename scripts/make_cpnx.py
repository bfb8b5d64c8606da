#!/usr/bin/env python
"""Build the CPNX motor geometry shipped as ``pymotor/data/cpnx.xyz``.

CPNX (C27H20O, 48 atoms) is the second-generation molecular motor with a
2-methyl-2,3-dihydro-cyclopenta[a]naphthalene upper half and a xanthene lower half::

    CC1Cc2ccc3ccccc3c2C1=C1c2ccccc2Oc2ccccc21

Recipe (deterministic):

1. RDKit: add hydrogens, embed ``--n-conformers`` conformers with ETKDGv3
   (``randomSeed=--seed``), optimise each with MMFF94 and keep the lowest MMFF energy.
2. Reorder the atoms O, then C, then H (RDKit order inside each element), as in the
   source work.
3. Optimise with GFN2-xTB (tblite, ``TBLite(method="GFN2-xTB", verbosity=0)``) using
   ASE's BFGS to ``fmax`` (default 0.01 eV/Angstrom); centre of mass at the origin.
4. Write an extended-xyz file with the GFN2-xTB energy (eV) and forces (eV/Angstrom),
   plus provenance (SMILES, seed, versions) in the comment line.

Run from the repository root::

    OMP_NUM_THREADS=1 python scripts/make_cpnx.py            # writes pymotor/data/cpnx.xyz

The other diastereomer (``pymotor.data.cpnx(diastereomer="RM/SP")``,
``pymotor/data/cpnx_rm_sp.xyz``) is made from the shipped geometry, deterministically::

    OMP_NUM_THREADS=1 python scripts/make_cpnx.py --other-diastereomer

1. Read ``--from`` (default ``pymotor/data/cpnx.xyz``, (2R), P helix, "syn-P").
2. Invert C2 in two ways (:func:`pymotor.data.conformers.invert_c2`): ``how="substituents"``
   reflects the methyl group and the H on C2 through the plane of C1, C2 and C3 (beta and
   delta unchanged, methyl pseudo-axial -> pseudo-equatorial); ``how="flap"`` reflects C2
   with its H and methyl group through the plane of C1, C3 and C3a (the ring pucker flips
   too).
3. Optimise each with GFN2-xTB as above (BFGS to ``--fmax``), centre of mass at the origin.
4. Drop a result whose connectivity changed or whose C2 is no longer inverted relative to
   the helix (relative configuration back to RP/SM); keep the lowest energy; print each
   energy relative to the input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

CPNX_SMILES = "CC1Cc2ccc3ccccc3c2C1=C1c2ccccc2Oc2ccccc21"


def embed_lowest_mmff(smiles: str, n_conformers: int, seed: int):
    """ETKDGv3 conformers + MMFF94; returns (mol with H, conformer id, MMFF energy kcal/mol)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"could not parse SMILES {smiles!r}")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if not cids:
        raise RuntimeError("ETKDG embedding failed")
    results = AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=5000)
    energies = [e if not_converged == 0 else np.inf for not_converged, e in results]
    best = int(np.argmin(energies))
    return mol, cids[best], float(energies[best])


def to_ase_o_c_h(mol, conf_id: int):
    """ase.Atoms with atoms ordered O, C, H (stable inside each element)."""
    from ase import Atoms

    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    pos = mol.GetConformer(conf_id).GetPositions()
    rank = {8: 0, 6: 1, 1: 2}
    order = sorted(range(len(z)), key=lambda i: (rank.get(int(z[i]), 3), i))
    return Atoms(numbers=z[order], positions=pos[order]), order


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smiles", default=CPNX_SMILES)
    ap.add_argument("--seed", type=int, default=42, help="ETKDG random seed")
    ap.add_argument("--n-conformers", type=int, default=20)
    ap.add_argument("--fmax", type=float, default=0.01, help="GFN2-xTB force threshold, eV/Angstrom")
    data_dir = Path(__file__).resolve().parents[1] / "pymotor" / "data"
    ap.add_argument("--out", type=Path, default=None,
                    help="output file (default pymotor/data/cpnx.xyz, or "
                         "pymotor/data/cpnx_rm_sp.xyz with --other-diastereomer)")
    ap.add_argument("--other-diastereomer", action="store_true",
                    help="build the other diastereomer (C2 inverted relative to the helix) "
                         "from --from instead of embedding the SMILES")
    ap.add_argument("--from", dest="source", type=Path, default=data_dir / "cpnx.xyz",
                    help="input geometry of --other-diastereomer (default: the shipped cpnx.xyz)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = data_dir / ("cpnx_rm_sp.xyz" if args.other_diastereomer else "cpnx.xyz")
    if args.other_diastereomer:
        return other_diastereomer(args)

    import ase
    import rdkit
    import tblite
    from ase.io import write
    from ase.optimize import BFGS
    from tblite.ase import TBLite

    try:
        from importlib.metadata import version
        tblite_version = version("tblite")
    except Exception:  # pragma: no cover
        tblite_version = getattr(tblite, "__version__", "unknown")

    mol, cid, e_mmff = embed_lowest_mmff(args.smiles, args.n_conformers, args.seed)
    atoms, _ = to_ase_o_c_h(mol, cid)
    print(f"MMFF94 lowest of {args.n_conformers} ETKDG conformers: {e_mmff:.3f} kcal/mol "
          f"({atoms.get_chemical_formula()}, {len(atoms)} atoms)")

    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    opt = BFGS(atoms, logfile="-")
    converged = opt.run(fmax=args.fmax, steps=2000)
    if not converged:
        print("GFN2-xTB optimisation did not converge", file=sys.stderr)
        return 1
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
    print(f"GFN2-xTB energy {energy:.6f} eV, fmax {fmax:.4g} eV/Angstrom after {opt.nsteps} steps")

    # centre of mass at the origin (a rigid translation: energy and forces unchanged)
    atoms.positions -= atoms.get_center_of_mass()

    from ase.calculators.singlepoint import SinglePointCalculator
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, energy=energy, forces=forces)
    out.info.update({
        "name": "CPNX",
        "smiles": args.smiles,
        "method": "GFN2-xTB",
        "program": f"tblite {tblite_version}",
        "recipe": json.dumps({"etkdg": "v3", "seed": args.seed, "n_conformers": args.n_conformers,
                              "preopt": "MMFF94", "opt": "ase.BFGS", "fmax_eV_per_A": args.fmax,
                              "rdkit": rdkit.__version__, "ase": ase.__version__}),
        "energy_unit": "eV",
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(args.out, out, format="extxyz")
    print(f"wrote {args.out}")
    return 0


def _bonds(atoms) -> set[tuple[int, int]]:
    from ase.neighborlist import natural_cutoffs, neighbor_list

    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=1.15))
    return {(int(a), int(b)) for a, b in zip(i, j) if a < b}


def other_diastereomer(args) -> int:
    """--other-diastereomer: invert C2 of --from, relax with GFN2-xTB, check, write."""
    import ase
    import ase.units
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write
    from ase.optimize import BFGS
    from tblite.ase import TBLite

    from pymotor.data.conformers import find_motor_atoms, invert_c2, motor_labels

    try:
        from importlib.metadata import version
        tblite_version = version("tblite")
    except Exception:  # pragma: no cover
        tblite_version = "unknown"

    start = read(args.source, format="extxyz")
    e_ref = start.get_potential_energy() if start.calc is not None else None
    start.calc = None
    motor = find_motor_atoms(start)
    before = motor_labels(start, motor)
    bonds = _bonds(start)
    print(f"input {args.source.name}: {before.full[0]} ({before.relative[0]})")
    kcal = 1.0 / (ase.units.kcal / ase.units.mol)

    results = []
    for how in ("substituents", "flap"):
        atoms = invert_c2(start, motor, how=how)
        print(f"\n[{how}] C2 inverted: {motor_labels(atoms, motor).full[0]}")
        atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
        opt = BFGS(atoms, logfile="-")
        if not opt.run(fmax=args.fmax, steps=2000):
            print(f"[{how}] GFN2-xTB optimisation did not converge", file=sys.stderr)
            continue
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
        atoms.positions -= atoms.get_center_of_mass()
        after = motor_labels(atoms, motor)
        rel = "" if e_ref is None else f", E - E(input) = {(energy - e_ref) * kcal:.3f} kcal/mol"
        print(f"[{how}] GFN2-xTB energy {energy:.6f} eV, fmax {fmax:.4g} eV/Angstrom after "
              f"{opt.nsteps} steps: {after.full[0]} ({after.relative[0]}), beta "
              f"{after.beta[0]:.1f} deg, delta {after.delta[0]:.1f} deg{rel}")
        if _bonds(atoms) != bonds:
            print(f"[{how}] connectivity changed during the optimisation; dropped", file=sys.stderr)
            continue
        if after.relative[0] == before.relative[0]:
            print(f"[{how}] the optimisation restored the input's relative configuration; dropped",
                  file=sys.stderr)
            continue
        results.append((energy, how, atoms, forces, after))
    if not results:
        print("no optimised geometry with the other relative configuration", file=sys.stderr)
        return 1
    energy, how, atoms, forces, after = min(results, key=lambda r: r[0])
    print(f"\nkept [{how}] (lowest energy): {after.full[0]} ({after.relative[0]})")

    out = atoms.copy()
    out.calc = SinglePointCalculator(out, energy=energy, forces=forces)
    out.info.clear()
    out.info.update({
        "name": "CPNX",
        "smiles": start.info.get("smiles", CPNX_SMILES),
        "diastereomer": str(after.relative[0]),
        "configuration": str(after.full[0]),
        "method": "GFN2-xTB",
        "program": f"tblite {tblite_version}",
        "recipe": json.dumps({"from": args.source.name, "step": f"invert_c2(how={how!r})",
                              "kept": "lowest GFN2-xTB energy of invert_c2(how='substituents') "
                                      "and invert_c2(how='flap'), each optimised",
                              "opt": "ase.BFGS", "fmax_eV_per_A": args.fmax,
                              "ase": ase.__version__}),
        "energy_unit": "eV",
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(args.out, out, format="extxyz")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
