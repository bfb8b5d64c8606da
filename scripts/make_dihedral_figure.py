#!/usr/bin/env python
"""Draw docs/figures/cpnx_dihedrals.png: the four atoms of each motor dihedral.

beta  (helicity of the fjord region): C9a - C9b - C1 = C1'   (blue)
delta (cyclopentane ring / methyl):   C9b - C1 - C2 - C3     (orange; C9b and C1 are shared)

The atoms are found with the same SMARTS as ``pymotor.data.conformers.find_motor_atoms``.
Run from the repository root:  python scripts/make_dihedral_figure.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "cpnx_dihedrals.png")
    args = ap.parse_args(argv)

    from rdkit import Chem
    from rdkit.Chem import rdDepictor
    from rdkit.Chem.Draw import rdMolDraw2D

    from pymotor.data import CPNX_SMILES
    from pymotor.data.conformers import find_motor_atoms

    mol_h = Chem.AddHs(Chem.MolFromSmiles(CPNX_SMILES))
    # find_motor_atoms needs only len(atoms) when a molecule is given
    motor = find_motor_atoms(_Dummy(mol_h.GetNumAtoms()), mol=mol_h)
    mol = Chem.RemoveHs(mol_h)  # AddHs appends H at the end: heavy-atom indices unchanged
    rdDepictor.SetPreferCoordGen(True)
    rdDepictor.Compute2DCoords(mol)

    names = {motor.methyl: "Me", motor.c2: "C2", motor.c3: "C3", motor.c3a: "C3a",
             motor.c9b: "C9b", motor.c9a: "C9a", motor.c1: "C1", motor.c1p: "C1'"}
    for idx, name in names.items():
        mol.GetAtomWithIdx(idx).SetProp("atomNote", name)

    blue = (0.35, 0.6, 1.0)
    orange = (1.0, 0.65, 0.25)
    purple = (0.75, 0.55, 0.95)
    beta, delta = set(motor.beta), set(motor.delta)
    atom_colors = {}
    for i in beta | delta:
        atom_colors[i] = purple if (i in beta and i in delta) else (blue if i in beta else orange)
    bond_colors = {}
    for quad, color in ((motor.beta, blue), (motor.delta, orange)):
        for a, b in zip(quad[:-1], quad[1:]):
            bond = mol.GetBondBetweenAtoms(a, b)
            bond_colors[bond.GetIdx()] = purple if bond.GetIdx() in bond_colors else color

    drawer = rdMolDraw2D.MolDraw2DCairo(760, 560)
    opts = drawer.drawOptions()
    opts.annotationFontScale = 0.8
    opts.legendFontSize = 18
    legend = ("beta = C9a-C9b-C1=C1' (blue, fjord helicity: <0 M, >0 P)\n"
              "delta = C9b-C1-C2-C3 (orange, ring/methyl: <0 syn, >0 anti)")
    drawer.DrawMolecule(mol, highlightAtoms=list(atom_colors), highlightAtomColors=atom_colors,
                        highlightBonds=list(bond_colors), highlightBondColors=bond_colors,
                        legend=legend)
    drawer.FinishDrawing()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(drawer.GetDrawingText())
    print(f"wrote {args.out}: beta atoms {motor.beta}, delta atoms {motor.delta} (SMILES order)")
    return 0


class _Dummy:
    def __init__(self, n):
        self._n = n

    def __len__(self):
        return self._n


if __name__ == "__main__":
    raise SystemExit(main())
