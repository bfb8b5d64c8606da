"""Potentials: analytic references, ASE agreement, TorchScript models and their metadata."""

import numpy as np
import pytest
import torch
from ase.calculators.lj import LennardJones
from ase.optimize import BFGS

import pymotor
from pymotor import _core
from torch_models import TinySchNet, pymotor_metadata, reference_energy_forces, save_model, spk_schnet


def numerical_forces(potential, x, h=1e-4):
    f = np.zeros_like(x)
    for i in range(x.shape[0]):
        for c in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, c] += h
            xm[i, c] -= h
            f[i, c] = -(potential.compute(xp[None])[0][0] - potential.compute(xm[None])[0][0]) / (2 * h)
    return f


def test_harmonic_analytic(rng):
    c = rng.normal(size=(5, 3))
    x = c + rng.normal(size=(5, 3))
    e, f = pymotor.HarmonicPotential(2.0, c).potential([1] * 5).compute(x[None])
    np.testing.assert_allclose(e[0], np.sum((x - c) ** 2), rtol=1e-14)
    np.testing.assert_allclose(f[0], -2.0 * (x - c), rtol=1e-14)


def test_lennard_jones_matches_ase(rng):
    from ase.cluster import Icosahedron

    a = Icosahedron("Ar", 3)
    a.rattle(0.05, seed=1)
    a.calc = LennardJones(epsilon=0.0104, sigma=3.4, rc=8.0, smooth=False)
    e, f = _core.LennardJonesPotential(0.0104, 3.4, 8.0, 0.5).compute(a.positions[None])
    np.testing.assert_allclose(e[0], a.get_potential_energy(), rtol=1e-11)
    np.testing.assert_allclose(f[0], a.get_forces(), rtol=1e-9, atol=1e-12)


def test_torchscript_equals_python_model(tiny_model_path, ethanol):
    model = pymotor.load_model(tiny_model_path)
    e, f = model.compute(ethanol)
    e_ref, f_ref = reference_energy_forces(TinySchNet(seed=0), ethanol.positions, ethanol.numbers, 5.0)
    # float32 model inputs vs the float64 reference
    assert abs(e - e_ref) < 1e-5
    np.testing.assert_allclose(f, f_ref, atol=2e-5)


@pytest.mark.parametrize("jit_optimize", [True, False])
def test_executor_settings_give_the_same_model(tiny_model_path, ethanol, jit_optimize):
    """Frozen + optimising executor and the plain interpreter (the CPU default) compute the
    same energies and forces, also on the repeated calls where the profiling executor
    switches to its optimised graph."""
    from pymotor.potentials import Model

    model = Model(tiny_model_path, jit_optimize=jit_optimize)
    assert model._module.jit_optimize is jit_optimize
    e_ref, f_ref = reference_energy_forces(TinySchNet(seed=0), ethanol.positions, ethanol.numbers, 5.0)
    for _ in range(4):
        e, f = model.compute(ethanol)
        assert abs(e - e_ref) < 1e-5
        np.testing.assert_allclose(f, f_ref, atol=2e-5)
    assert Model(tiny_model_path)._module.jit_optimize is False  # CPU default


def test_torchscript_forces_are_minus_gradient(tiny_model_path, ethanol):
    model = pymotor.load_model(tiny_model_path)
    pot = model.potential(ethanol.numbers)
    x = ethanol.positions.copy()
    f = pot.compute(x[None])[1][0]
    # float32 inside the model: a step of 1e-2 keeps the rounding error of the difference small
    np.testing.assert_allclose(f, numerical_forces(pot, x, h=1e-2), atol=2e-3)


def test_batched_replicas_equal_single(tiny_model_path, ethanol, rng):
    model = pymotor.load_model(tiny_model_path)
    reps = []
    for k in range(4):
        a = ethanol.copy()
        a.rattle(0.1, seed=k)
        reps.append(a)
    e_b, f_b = model.compute(reps)
    for k, a in enumerate(reps):
        e, f = model.compute(a)
        assert abs(e_b[k] - e) < 1e-5
        np.testing.assert_allclose(f_b[k], f, atol=1e-5)


def test_energy_offset_and_units_from_metadata(tmp_path, ethanol):
    offset = {"atomrefs": {"1": -10.0, "6": -1000.0, "8": -2000.0}, "mean_per_atom": 0.5}
    p_ev = save_model(TinySchNet(seed=0), tmp_path / "ev.pt", metadata=pymotor_metadata())
    p_kcal = save_model(TinySchNet(seed=0, energy_scale=1.0 / 0.0433641043), tmp_path / "kcal.pt",
                        metadata=pymotor_metadata(energy_unit="kcal/mol", offset=offset))
    e_ev, f_ev = pymotor.load_model(p_ev).compute(ethanol)
    e_kcal, f_kcal = pymotor.load_model(p_kcal).compute(ethanol)
    kcal = 0.04336410390059322
    expected_offset = (6 * -10.0 + 2 * -1000.0 - 2000.0 + 9 * 0.5) * kcal
    # The offset (~ -177 eV) is added in float64: the remainder is resolved to float32 precision.
    assert abs((e_kcal - expected_offset) - e_ev) < 1e-4
    np.testing.assert_allclose(f_kcal, f_ev, rtol=1e-5, atol=1e-5)


def test_spkdeploy_file_needs_units(tmp_path, ethanol):
    p = save_model(TinySchNet(seed=0), tmp_path / "plain.pt", cutoff=5.0, metadata=None)
    with pytest.raises(ValueError, match="pass `energy_unit=`"):
        pymotor.load_model(p)
    with pytest.raises(ValueError, match="`energy_unit` must be one of"):
        pymotor.load_model(p, energy_unit="furlong", length_unit="Angstrom")
    m = pymotor.load_model(p, energy_unit="eV", length_unit="Angstrom")
    assert m.cutoff_A == 5.0
    e, _ = m.compute(ethanol)
    assert np.isfinite(e)


def test_model_file_errors(tmp_path, tiny_model_path, ethanol):
    with pytest.raises(FileNotFoundError, match="`path`"):
        pymotor.load_model(tmp_path / "missing.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"this is not a torchscript archive")
    with pytest.raises(ValueError, match="not a loadable TorchScript model"):
        pymotor.load_model(bad)
    no_cutoff = save_model(TinySchNet(seed=0), tmp_path / "nocut.pt", cutoff=None, metadata=None)
    with pytest.raises(ValueError, match="no cutoff"):
        pymotor.load_model(no_cutoff, energy_unit="eV", length_unit="Angstrom")
    with pytest.raises(ValueError, match="contradicts the model file"):
        pymotor.load_model(tiny_model_path, energy_unit="kcal/mol")
    m = pymotor.load_model(tiny_model_path)
    from ase import Atoms

    with pytest.raises(ValueError, match=r"\['S'\].*not trained on"):
        m.compute(Atoms("SH2", positions=[[0, 0, 0], [1.3, 0, 0], [0, 1.3, 0]]))
    with pytest.raises(ValueError, match="`device` must be"):
        pymotor.load_model(tiny_model_path, device="tpu")


def test_model_card_and_repr(tiny_model_path):
    m = pymotor.load_model(tiny_model_path)
    assert m.elements == [1, 6, 7, 8]
    assert "cutoff_A=5" in repr(m)
    assert m.card == {}


def test_ase_calculator_single_point_and_optimisation(tiny_model_path, ethanol):
    model = pymotor.load_model(tiny_model_path)
    a = ethanol.copy()
    a.calc = model.as_ase_calculator()
    e0 = a.get_potential_energy()
    assert np.isclose(e0, model.compute(ethanol)[0])
    BFGS(a, logfile=None).run(fmax=0.05, steps=200)
    assert a.get_potential_energy() < e0
    assert np.abs(a.get_forces()).max() < 0.05


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(tiny_model_path, ethanol):
    e_cpu, f_cpu = pymotor.load_model(tiny_model_path, device="cpu").compute(ethanol)
    e_gpu, f_gpu = pymotor.load_model(tiny_model_path, device="cuda").compute(ethanol)
    assert abs(e_cpu - e_gpu) < 1e-4
    np.testing.assert_allclose(f_cpu, f_gpu, atol=1e-4)


@pytest.mark.schnetpack
# SchNetPack's AtomsConverter hands torch tensors to ase.Atoms, which numpy 2 warns about
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_torchscript_equals_python_schnetpack_model(tmp_path):
    """A SchNetPack SchNet (random weights) scripted as spkdeploy does, evaluated by pymotor's
    C++ engine on CPNX, equals the Python model evaluated by SchNetPack's own converter."""
    spk = pytest.importorskip("schnetpack")
    cutoff = 5.0
    model = spk_schnet(n_atom_basis=32, n_interactions=2, n_rbf=20, cutoff=cutoff, seed=0)
    path = save_model(model, tmp_path / "spk.pt", cutoff=cutoff, metadata=None)
    atoms = pymotor.data.cpnx()
    converter = spk.interfaces.AtomsConverter(neighbor_list=spk.transform.MatScipyNeighborList(cutoff=cutoff),
                                              dtype=torch.float32)
    ref = model(converter(atoms))
    m = pymotor.load_model(path, energy_unit="eV", length_unit="Angstrom")
    e, f = m.compute(atoms)
    assert abs(e - ref["energy"].item()) < 1e-4
    np.testing.assert_allclose(f, ref["forces"].detach().numpy(), atol=1e-5)


def test_energy_offset_convention():
    """sum_i atomrefs[Z_i] + N * mean_per_atom (keys int or str, as in JSON metadata); an
    element without an atomref is refused, no atomrefs at all means no per-element part."""
    from pymotor.potentials import energy_offset

    refs = {"1": -0.5, 8: -75.0}
    assert energy_offset(refs, 0.25, [8, 1, 1]) == pytest.approx(-76.0 + 3 * 0.25, abs=1e-12)
    assert energy_offset({}, -2.0, [6, 6]) == -4.0
    with pytest.raises(ValueError, match=r"Z = \[6\]"):
        energy_offset(refs, 0.0, [6, 1])
