"""Neighbour lists against ASE's, for random and molecular geometries."""
import numpy as np
import pytest
from ase.build import molecule
from ase.neighborlist import neighbor_list
from scipy.spatial.transform import Rotation

from pymotor import _core


def ase_pairs(positions, cutoff):
    from ase import Atoms

    a = Atoms("X" * len(positions), positions=positions, pbc=False)
    i, j = neighbor_list("ij", a, cutoff, self_interaction=False)
    return {(int(p), int(q)) for p, q in zip(i, j) if p < q}


def cpp_pairs(positions, cutoff, use_cells):
    i, j = _core.neighbor_pairs(np.ascontiguousarray(positions), cutoff, use_cells)
    assert np.all(i < j)
    pairs = set(zip(i.tolist(), j.tolist()))
    assert len(pairs) == len(i), "duplicate pairs"
    return pairs


@pytest.mark.parametrize("use_cells", [False, True])
@pytest.mark.parametrize("n_atoms,box,cutoff", [(50, 8.0, 3.0), (400, 20.0, 4.5), (300, 6.0, 5.0)])
def test_random_geometries_match_ase(rng, use_cells, n_atoms, box, cutoff):
    x = rng.uniform(-box / 2, box / 2, (n_atoms, 3))
    ref = ase_pairs(x, cutoff)
    assert len(ref) > 0
    assert cpp_pairs(x, cutoff, use_cells) == ref


@pytest.mark.parametrize("use_cells", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_molecule_rotated_translated(use_cells, seed):
    r = np.random.default_rng(seed)
    x0 = molecule("C60").positions
    rot = Rotation.random(random_state=seed).as_matrix()
    x = x0 @ rot.T + r.uniform(-50, 50, 3)
    for cutoff in (1.5, 3.0, 5.0):
        ref = ase_pairs(x0, cutoff)
        assert cpp_pairs(x, cutoff, use_cells) == ref


def test_bad_cutoff():
    with pytest.raises(ValueError, match="cutoff must be positive"):
        _core.neighbor_pairs(np.zeros((3, 3)), -1.0, False)


def test_verlet_list_is_rebuilt_only_after_half_skin(rng):
    """The LJ potential's Verlet list: energies equal a fresh list every time, while the
    list is rebuilt only when an atom moved more than skin/2."""
    x = rng.uniform(-6, 6, (80, 3))
    skin = 1.0
    lj_verlet = _core.LennardJonesPotential(0.01, 2.5, 5.0, skin)
    e0, _ = lj_verlet.compute(x[None])
    assert lj_verlet.n_neighbor_builds == 1
    x_small = x.copy()
    x_small[0] += [0.45 * skin, 0, 0]  # < skin/2: no rebuild
    e1, f1 = lj_verlet.compute(x_small[None])
    assert lj_verlet.n_neighbor_builds == 1
    fresh = _core.LennardJonesPotential(0.01, 2.5, 5.0, 0.0)
    e1_ref, f1_ref = fresh.compute(x_small[None])
    np.testing.assert_allclose(e1, e1_ref, rtol=1e-12)
    np.testing.assert_allclose(f1, f1_ref, rtol=1e-12, atol=1e-14)
    x_big = x.copy()
    x_big[3] += [0, 0.55 * skin, 0]  # > skin/2: rebuild
    lj_verlet.compute(x_big[None])
    assert lj_verlet.n_neighbor_builds == 2
