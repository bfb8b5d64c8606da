"""The shipped CPNX geometry: composition, atom order, geometry sanity, lazy imports."""

import subprocess
import sys

import numpy as np
import pytest

from pymotor.data import CPNX_SMILES, cpnx


def test_composition_and_order():
    a = cpnx()
    assert len(a) == 48
    assert a.get_chemical_formula(mode="hill") == "C27H20O"
    z = a.get_atomic_numbers()
    # O first, then the 27 carbons, then the 20 hydrogens
    assert z[0] == 8
    assert np.all(z[1:28] == 6)
    assert np.all(z[28:] == 1)
    assert not a.pbc.any()
    assert a.calc is None
    assert np.isfinite(a.info["energy_eV"])


def test_fresh_copy_each_call():
    a = cpnx()
    a.positions += 1.0
    assert np.allclose(cpnx().get_center_of_mass(), 0.0, atol=1e-6)


def test_geometry_sane():
    from ase.neighborlist import natural_cutoffs, neighbor_list

    a = cpnx()
    d = a.get_all_distances()
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.95  # no clashes (shortest are C-H ~1.09 A)
    i, j, dist = neighbor_list("ijd", a, natural_cutoffs(a, mult=1.15))
    z = a.get_atomic_numbers()
    ch = dist[(z[i] == 6) & (z[j] == 1)]
    cc = dist[(z[i] == 6) & (z[j] == 6)]
    co = dist[(z[i] == 6) & (z[j] == 8)]
    assert len(ch) == 20 and np.all((ch > 1.07) & (ch < 1.12))
    assert np.all((cc > 1.33) & (cc < 1.56))
    assert len(co) == 2 and np.all((co > 1.34) & (co < 1.42))
    # every H bonded to exactly one C; O bonded to two C (diaryl ether)
    assert np.all(np.bincount(i[z[i] == 1], minlength=48)[z == 1] == 1)
    # the bond graph is the SMILES' molecule
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    xyz = "\n".join([str(len(a)), ""] + [f"{s} {x} {y} {w}" for s, (x, y, w) in
                                         zip(a.get_chemical_symbols(), a.positions)])
    mol = Chem.MolFromXYZBlock(xyz + "\n")
    rdDetermineBonds.DetermineBonds(mol, charge=0)
    ref = Chem.MolFromSmiles(CPNX_SMILES)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=False) == Chem.MolToSmiles(ref)


@pytest.mark.xtb
def test_is_gfn2_minimum():
    from pymotor.data.xtb import make_calculator

    a = cpnx()
    a.calc = make_calculator("tblite")
    f = a.get_forces()
    assert np.linalg.norm(f, axis=1).max() < 0.02  # optimised to fmax 0.01 eV/A
    assert a.get_potential_energy() == pytest.approx(a.info["energy_eV"], abs=1e-5)


def test_import_stays_light():
    code = ("import sys, pymotor, pymotor.data; pymotor.data.CPNX_SMILES; "
            "heavy = [m for m in ('rdkit', 'tblite', 'xtb', 'schnetpack', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
