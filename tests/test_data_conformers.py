"""Motor dihedrals from substructure matching, and the four-conformer classification."""

import numpy as np
import pytest

from pymotor.data import cpnx
from pymotor.data.conformers import (
    LABELS,
    classify,
    classify_many,
    dihedral,
    find_motor_atoms,
    motor_dihedrals,
    plot_dihedrals,
)


def _mirror(atoms):
    m = atoms.copy()
    m.positions[:, 0] *= -1.0
    return m


def _rotation(u, v):
    """Rotation matrix turning unit vector u onto unit vector v (Rodrigues)."""
    k = np.cross(u, v)
    s, c = np.linalg.norm(k), float(np.dot(u, v))
    if s < 1e-12:
        return np.eye(3)
    k /= s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def _flip_pucker(atoms):
    """Hand-made ring flip at fixed configuration of C2: reflect the C2 flap (C2, its H,
    the methyl group) through the plane of C1, C3 and C3a, then exchange the directions of
    the C2-H and C2-CH3 bonds (a reflection inverts C2, the exchange restores it). beta's
    four atoms do not move; delta changes sign; the methyl goes pseudo-axial <-> equatorial."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    m = find_motor_atoms(atoms)
    a = atoms.copy()
    i, j = neighbor_list("ij", a, natural_cutoffs(a, mult=1.15))
    h2 = [int(jj) for ii, jj in zip(i, j) if ii == m.c2 and a.numbers[jj] == 1]
    hme = [int(jj) for ii, jj in zip(i, j) if ii == m.methyl and a.numbers[jj] == 1]
    assert len(h2) == 1 and len(hme) == 3
    p0, p1, p2 = a.positions[[m.c1, m.c3, m.c3a]]
    n = np.cross(p1 - p0, p2 - p0)
    n /= np.linalg.norm(n)
    for k in [m.c2, m.methyl, *h2, *hme]:
        a.positions[k] -= 2.0 * np.dot(a.positions[k] - p0, n) * n
    c2 = a.positions[m.c2]
    u_h = a.positions[h2[0]] - c2
    u_me = a.positions[m.methyl] - c2
    d_h, d_me = np.linalg.norm(u_h), np.linalg.norm(u_me)
    u_h, u_me = u_h / d_h, u_me / d_me
    rot = _rotation(u_me, u_h)
    group = a.positions[[m.methyl, *hme]] - a.positions[m.methyl]
    a.positions[m.methyl] = c2 + d_me * u_h
    a.positions[hme] = a.positions[m.methyl] + group[1:] @ rot.T
    a.positions[h2[0]] = c2 + d_h * u_me
    return a


def test_dihedral_matches_rdkit(rng):
    from rdkit import Chem
    from rdkit.Chem import rdMolTransforms
    from rdkit.Geometry import Point3D

    mol = Chem.AddHs(Chem.MolFromSmiles("CCCC"))
    from rdkit.Chem import AllChem

    AllChem.EmbedMolecule(mol, randomSeed=1)
    conf = mol.GetConformer()
    for _ in range(20):
        pos = rng.normal(size=(mol.GetNumAtoms(), 3)) * 2.0
        for k, p in enumerate(pos):
            conf.SetAtomPosition(k, Point3D(*p))
        ref = rdMolTransforms.GetDihedralDeg(conf, 0, 1, 2, 3)
        assert dihedral(pos, (0, 1, 2, 3)) == pytest.approx(ref, abs=1e-8)
    traj = rng.normal(size=(5, 4, 3))
    assert np.allclose(dihedral(traj, (0, 1, 2, 3)), [dihedral(t, (0, 1, 2, 3)) for t in traj])


def test_motor_atoms_found_by_topology():
    a = cpnx()
    m = find_motor_atoms(a)
    z = a.get_atomic_numbers()
    assert all(z[k] == 6 for k in (*m.beta, *m.delta, m.methyl))
    # the same atoms are found after shuffling the atom order (no hard-coded indices)
    perm = np.random.default_rng(0).permutation(len(a))
    b = a[perm]
    mb = find_motor_atoms(b)
    inv = np.argsort(perm)
    assert tuple(perm[list(mb.beta)]) == m.beta and tuple(perm[list(mb.delta)]) == m.delta
    assert inv[m.c1] == mb.c1
    # and with a molecule built from the SMILES (atom order of the SMILES)
    from rdkit import Chem

    from pymotor.data import CPNX_SMILES

    mol = Chem.AddHs(Chem.MolFromSmiles(CPNX_SMILES))

    class _N:
        def __len__(self):
            return mol.GetNumAtoms()

    ms = find_motor_atoms(_N(), mol=mol)
    assert mol.GetAtomWithIdx(ms.methyl).GetDegree() == 4
    assert mol.GetBondBetweenAtoms(ms.c1, ms.c1p).GetBondType() == Chem.BondType.DOUBLE


def test_not_a_motor_is_refused(ethanol):
    with pytest.raises(ValueError, match="no second-generation motor core"):
        find_motor_atoms(ethanol)


def test_classify_signs():
    assert classify(-30, 20) == "anti-M"
    assert classify(-30, -20) == "syn-M"
    assert classify(30, 20) == "anti-P"
    assert classify(30, -20) == "syn-P"
    with pytest.raises(ValueError, match="beta"):
        classify(0.0, 10.0)
    with pytest.raises(ValueError, match="delta"):
        classify(10.0, 0.0)
    labels = classify_many([-30, -30, 30, 30, 0], [20, -20, 20, -20, 5])
    assert list(labels) == ["anti-M", "syn-M", "anti-P", "syn-P", ""]
    assert set(LABELS) == {"anti-M", "syn-M", "anti-P", "syn-P"}


def test_four_hand_made_conformers():
    shipped = cpnx()  # (2R), P helix, methyl pseudo-axial
    geoms = {
        "shipped": shipped,
        "mirror": _mirror(shipped),
        "flipped": _flip_pucker(shipped),
        "mirror+flipped": _mirror(_flip_pucker(shipped)),
    }
    got = {k: motor_dihedrals(g) for k, g in geoms.items()}
    b0, d0 = got["shipped"]
    assert 25 < b0 < 50 and -45 < d0 < -20
    assert classify(*got["shipped"]) == "syn-P"
    # the mirror image flips M <-> P (and, as every dihedral changes sign, syn <-> anti)
    assert got["mirror"] == pytest.approx((-b0, -d0), abs=1e-8)
    assert classify(*got["mirror"]) == "anti-M"
    # the ring flip keeps beta and inverts delta
    bf, df = got["flipped"]
    assert bf == pytest.approx(b0, abs=1e-8) and df > 10
    assert classify(*got["flipped"]) == "anti-P"
    # ... at the same configuration of C2 (signed volume of C1, C3, CH3 around C2)
    m = find_motor_atoms(shipped)

    def chirality(g):
        p = g.positions
        return np.sign(np.linalg.det(np.array([p[m.c1], p[m.c3], p[m.methyl]]) - p[m.c2]))

    assert chirality(geoms["flipped"]) == chirality(shipped) == -chirality(geoms["mirror"])
    d = geoms["flipped"].get_all_distances()
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.95
    assert classify(*got["mirror+flipped"]) == "syn-M"
    assert len({classify(*v) for v in got.values()}) == 4
    # trajectory input: arrays, one per frame
    beta, delta = motor_dihedrals(list(geoms.values()))
    assert list(classify_many(beta, delta)) == ["syn-P", "anti-M", "anti-P", "syn-M"]


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    b = np.array([-30.0, 30.0, 35.0])
    d = np.array([20.0, -25.0, -30.0])
    out = tmp_path / "bd.png"
    ax = plot_dihedrals([b, -b], [d, -d], labels=["T300_1", "mirror"], out=out)
    assert out.stat().st_size > 1000
    assert "beta" in ax.get_xlabel().lower() or "beta" in ax.get_xlabel()
    import matplotlib.pyplot as plt

    plt.close("all")
