"""Motor dihedrals from substructure matching, the four-conformer classification, and the
configuration of the stereocentre C2 (absolute from 3D, relative to the helix)."""

import numpy as np
import pytest

from pymotor.data import cpnx
from pymotor.data.conformers import (
    LABELS,
    PAIR_LABELS,
    RELATIVE_LABELS,
    c2_configuration,
    c2_signed_volume,
    classify,
    classify_full,
    classify_full_many,
    classify_many,
    dihedral,
    find_motor_atoms,
    invert_c2,
    motor_dihedrals,
    motor_labels,
    pair_label,
    plot_dihedrals,
    relative_configuration,
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


# -- the stereocentre C2 ---------------------------------------------------------------------------


def _rdkit_cip(atoms, c2):
    """RDKit's CIP code of atom c2 from the 3D coordinates (bond orders perceived)."""
    from rdkit import Chem
    from rdkit.Chem import rdCIPLabeler, rdDetermineBonds

    from pymotor.data.conformers import _mol_from_atoms

    mol = _mol_from_atoms(atoms)
    rdDetermineBonds.DetermineBonds(mol, charge=0)
    Chem.AssignStereochemistryFrom3D(mol)
    legacy = mol.GetAtomWithIdx(c2).GetProp("_CIPCode")
    rdCIPLabeler.AssignCIPLabels(mol)
    new = mol.GetAtomWithIdx(c2).GetProp("_CIPCode")
    assert legacy == new
    return new


def _random_motion(atoms, seed):
    """Proper rotation + translation (keeps every configuration)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    a = atoms.copy()
    rot = Rotation.random(random_state=seed).as_matrix()
    a.positions = a.positions @ rot.T + rng.normal(size=3)
    return a


def _reflect(atoms, seed):
    """Improper motion: reflection through a random plane, then a rotation."""
    rng = np.random.default_rng(seed)
    n = rng.normal(size=3)
    n /= np.linalg.norm(n)
    a = _random_motion(atoms, seed)
    a.positions -= 2.0 * np.outer(a.positions @ n, n)
    return a


def _kcal(ev):
    import ase.units

    return ev / (ase.units.kcal / ase.units.mol)


def _bonds(atoms):
    from ase.neighborlist import natural_cutoffs, neighbor_list

    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=1.15))
    return {(int(a), int(b)) for a, b in zip(i, j) if a < b}


def test_c2_configuration_matches_rdkit_cip():
    shipped = cpnx()
    m = find_motor_atoms(shipped)
    assert c2_configuration(shipped) == "R" == _rdkit_cip(shipped, m.c2)  # the docstring's (2R)
    assert c2_signed_volume(shipped) == pytest.approx(-2.893, abs=0.01)
    other = cpnx(diastereomer="RM/SP")
    geoms = [shipped, other, _mirror(shipped), _mirror(other), _flip_pucker(shipped),
             invert_c2(shipped), invert_c2(shipped, how="flap"),
             _random_motion(shipped, 1), _reflect(shipped, 2), _reflect(other, 3)]
    got = [c2_configuration(g) for g in geoms]
    assert got == [_rdkit_cip(g, m.c2) for g in geoms]
    assert got == ["R", "S", "S", "R", "R", "S", "S", "R", "S", "R"]


def test_cip_order_is_checked():
    # C3 carrying a fluorine instead of an H: C3 would outrank C1, the order C1 > C3 > CH3 > H
    # no longer holds and the configuration must not be named
    from pymotor.data.conformers import _bonded

    a = cpnx()
    m = find_motor_atoms(a)
    h3 = [k for k in _bonded(a.numbers, a.positions, m.c3) if a.numbers[k] == 1]
    assert len(h3) == 2
    a.numbers[h3[0]] = 9
    a.positions[h3[0]] = a.positions[m.c3] + 1.38 * (a.positions[h3[0]] - a.positions[m.c3]) / \
        np.linalg.norm(a.positions[h3[0]] - a.positions[m.c3])
    with pytest.raises(ValueError, match="CIP order"):
        c2_configuration(a)
    with pytest.raises(ValueError, match="CIP order"):
        motor_labels(a)


def test_other_diastereomer():
    rp, rm = cpnx(), cpnx(diastereomer="RM/SP")
    assert np.array_equal(cpnx("RP/SM").positions, rp.positions)
    assert np.array_equal(rp.numbers, rm.numbers) and len(rm) == 48
    assert _bonds(rp) == _bonds(rm)  # same atom order and connectivity
    assert np.allclose(rm.get_center_of_mass(), 0.0, atol=1e-6)
    # the same atoms are found by the SMARTS in both
    m = find_motor_atoms(rm)
    assert m == find_motor_atoms(rp)
    b, d = motor_dihedrals(rm)
    assert 20 < b < 40 and -30 < d < -10  # +28.4, -19.7: P helix, same ring side as shipped
    lab_rp, lab_rm = motor_labels(rp), motor_labels(rm)
    assert (lab_rp.config[0], lab_rp.relative[0], lab_rp.full[0]) == ("R", "RP/SM", "syn-P (2R,P)")
    assert (lab_rm.config[0], lab_rm.relative[0], lab_rm.full[0]) == ("S", "RM/SP", "syn-P (2S,P)")
    assert lab_rp.pair[0] == "syn-P(2R)=anti-M(2S)" and lab_rm.pair[0] == "anti-M(2R)=syn-P(2S)"
    # beta/delta alone cannot tell them apart, the relative configuration can
    assert classify(*motor_dihedrals(rp)) == classify(b, d) == "syn-P"
    # a minimum a few kcal/mol above the shipped one (GFN2-xTB energies stored in the files)
    de = _kcal(rm.info["energy_eV"] - rp.info["energy_eV"])
    assert de == pytest.approx(3.79, abs=0.01)
    from ase.io import read

    from pymotor.data import DATA_DIR

    f = read(DATA_DIR / "cpnx_rm_sp.xyz").get_forces()
    assert np.sqrt((f**2).sum(axis=1)).max() < 0.01


def test_cpnx_bad_diastereomer():
    for bad in ("RS", "rp/sm", "", None, 1):
        with pytest.raises(ValueError, match=r"`diastereomer`.*'RM/SP', 'RP/SM'"):
            cpnx(diastereomer=bad)


def test_invert_c2():
    shipped = cpnx()
    b0, d0 = motor_dihedrals(shipped)
    sub, flap = invert_c2(shipped), invert_c2(shipped, how="flap")
    assert motor_dihedrals(sub) == pytest.approx((b0, d0), abs=1e-8)
    bf, df = motor_dihedrals(flap)
    assert bf == pytest.approx(b0, abs=1e-8) and df > 20
    assert motor_labels(sub).full[0] == "syn-P (2S,P)"
    assert motor_labels(flap).full[0] == "anti-P (2S,P)"
    assert motor_labels(sub).relative[0] == motor_labels(flap).relative[0] == "RM/SP"
    # inverting twice restores the geometry
    assert np.allclose(invert_c2(sub).positions, shipped.positions, atol=1e-10)
    assert np.allclose(invert_c2(flap, how="flap").positions, shipped.positions, atol=1e-10)
    with pytest.raises(ValueError, match="`how`"):
        invert_c2(shipped, how="swap")


def test_mirror_images_get_the_same_physical_label():
    rp, rm = cpnx(), cpnx(diastereomer="RM/SP")
    geoms = [rp, rm, _flip_pucker(rp), _flip_pucker(rm), invert_c2(rp, how="flap")]
    for k, g in enumerate(geoms):
        lab = motor_labels(g)
        for mirror in (_mirror(g), _reflect(g, k)):
            mlab = motor_labels(mirror)
            assert mlab.relative[0] == lab.relative[0]
            assert mlab.pair[0] == lab.pair[0]
            # ... while the frame's own labels are those of the mirror image
            assert mlab.config[0] != lab.config[0]
            assert mlab.conformer[0] == {"syn-P": "anti-M", "anti-P": "syn-M",
                                         "syn-M": "anti-P", "anti-M": "syn-P"}[lab.conformer[0]]
            assert mlab.full[0] != lab.full[0]
        assert motor_labels(_random_motion(g, k)).full[0] == lab.full[0]
    assert [motor_labels(g).pair[0] for g in geoms] == [
        "syn-P(2R)=anti-M(2S)", "anti-M(2R)=syn-P(2S)", "anti-P(2R)=syn-M(2S)",
        "syn-M(2R)=anti-P(2S)", "syn-M(2R)=anti-P(2S)"]


def test_label_functions():
    assert relative_configuration(30.0, "R") == "RP/SM"
    assert relative_configuration(-30.0, "S") == "RP/SM"
    assert relative_configuration(-30.0, "R") == "RM/SP"
    assert relative_configuration(30.0, "S") == "RM/SP"
    assert classify_full(30.0, -20.0, "R") == "syn-P (2R,P)"
    assert classify_full(-30.0, 20.0, "S") == "anti-M (2S,M)"
    assert pair_label(30.0, -20.0, "R") == pair_label(-30.0, 20.0, "S") == "syn-P(2R)=anti-M(2S)"
    assert pair_label(30.0, -20.0, "S") == pair_label(-30.0, 20.0, "R") == "anti-M(2R)=syn-P(2S)"
    assert pair_label(30.0, 20.0, "R") == pair_label(-30.0, -20.0, "S") == "anti-P(2R)=syn-M(2S)"
    assert pair_label(-30.0, -20.0, "R") == pair_label(30.0, 20.0, "S") == "syn-M(2R)=anti-P(2S)"
    assert set(PAIR_LABELS) == {pair_label(b, d, "R") for b in (-1, 1) for d in (-1, 1)}
    assert set(RELATIVE_LABELS) == {"RP/SM", "RM/SP"}
    for bad in ((0.0, -20.0, "R"), (30.0, 0.0, "R"), (30.0, -20.0, "X"), (np.nan, -20.0, "R")):
        with pytest.raises(ValueError, match="undefined"):
            classify_full(*bad)
    with pytest.raises(ValueError, match="undefined"):
        relative_configuration(0.0, "R")
    with pytest.raises(TypeError, match="config"):
        relative_configuration(30.0, 1)
    with pytest.raises(TypeError, match="classify_full_many"):
        classify_full([30.0], [-20.0], ["R"])
    got = classify_full_many([30.0, 0.0, -30.0, 30.0], [-20.0, -20.0, 20.0, 20.0],
                             ["R", "R", "S", ""])
    assert list(got) == ["syn-P (2R,P)", "", "anti-M (2S,M)", ""]


def test_vectorised_labels_equal_per_frame():
    rp, rm = cpnx(), cpnx(diastereomer="RM/SP")
    base = [rp, rm, _mirror(rp), _mirror(rm), _flip_pucker(rp), _flip_pucker(rm),
            _mirror(_flip_pucker(rp)), _mirror(invert_c2(rp, how="flap"))]
    rng = np.random.default_rng(7)
    frames = []
    for k in range(40):
        g = base[k % len(base)].copy()
        g.positions += rng.normal(scale=0.05, size=g.positions.shape)
        frames.append(_random_motion(g, k) if k % 3 else g)
    lab = motor_labels(frames)
    assert len(lab) == 40
    for k, g in enumerate(frames):
        b, d = motor_dihedrals(g)
        c = c2_configuration(g)
        assert (lab.beta[k], lab.delta[k]) == pytest.approx((b, d), abs=1e-9)
        assert lab.signed_volume[k] == pytest.approx(c2_signed_volume(g), abs=1e-9)
        assert lab.config[k] == c
        assert lab.conformer[k] == classify(b, d)
        assert lab.relative[k] == relative_configuration(b, c)
        assert lab.full[k] == classify_full(b, d, c)
        assert lab.pair[k] == pair_label(b, d, c)
    # all eight full labels and all four pair labels occur
    assert len(set(lab.full)) == 8 and set(lab.pair) == set(PAIR_LABELS)
    assert list(c2_configuration(frames)) == list(lab.config)
    assert np.array_equal(classify_full_many(lab.beta, lab.delta, lab.config), lab.full)
    pops = lab.populations("relative")
    assert pops == {"RP/SM": pytest.approx(np.mean(lab.relative == "RP/SM")),
                    "RM/SP": pytest.approx(np.mean(lab.relative == "RM/SP"))}
    assert sum(lab.populations("pair").values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="`kind`"):
        lab.populations("helix")


def test_cli_prints_relative_configuration(tmp_path, capsys):
    from ase.io import write

    from pymotor.data.cli import main

    rp, rm = cpnx(), cpnx(diastereomer="RM/SP")
    path = tmp_path / "mix.xyz"
    write(path, [rp, rm, _mirror(rm)], format="extxyz")
    assert main(["conformers", str(path)]) == 0
    out = capsys.readouterr().out
    assert "syn-P 66.7%" in out and "anti-M 33.3%" in out
    assert "R 66.7%, S 33.3%" in out
    assert "RP/SM 33.3%, RM/SP 66.7%" in out
    assert "syn-P(2R)=anti-M(2S) 33.3%" in out and "anti-M(2R)=syn-P(2S) 66.7%" in out
    # an ASE/SchNetPack database: the configuration is read from the stored positions
    from ase.db import connect

    db = tmp_path / "mix.db"
    with connect(str(db)) as conn:
        for g in (rp, _mirror(rp), rm, rp):
            conn.write(g, data={"beta": np.array([1.0]), "delta": np.array([1.0])})
    assert main(["conformers", str(db)]) == 0
    out = capsys.readouterr().out
    assert "syn-P 75.0%" in out and "RP/SM 75.0%, RM/SP 25.0%" in out
    assert "R 50.0%, S 50.0%" in out
    assert main(["conformers", str(tmp_path / "missing.db")]) == 2
    assert "no such file" in capsys.readouterr().err
