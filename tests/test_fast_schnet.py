"""The fast SchNet backend (issue 7) against the TorchScript SchNetPack model with the same weights.

Models are SchNetPack 2.2 SchNets with random weights, prepared as ``pymotor export`` does
(postprocessors removed, offsets in the metadata, energy scale as ScaleProperty):
"big" = 128 features, 3 interactions, 20 Gaussian RBF, cutoff 5 A (the shipped size);
"small" = 32 features, 24 filters, 2 shared interactions, 12 RBF, cutoff 4 A.

Achieved on CPNX (9 frames: a short NVE trajectory + rattled geometries; |F| up to 2.2 eV/A):
big   float32: max |dE| 7.8e-6 eV, max |dF| 2.5e-6 eV/A;  float64: 1.3e-5 eV, 2.4e-6 eV/A
small float32: max |dE| 5.1e-6 eV, max |dF| 1.2e-6 eV/A;  float64: 5.4e-6 eV, 1.2e-6 eV/A
(the TorchScript reference itself runs in float32; energies compared with the offset removed).
Automatic filter grid: 1024 intervals (0.005 A) for big, 512 (0.008 A) for small; big vs a
4096-interval table: 7e-7 eV/A.
"""
import json

import numpy as np
import pytest
import torch

import pymotor
from pymotor import _core

spk = pytest.importorskip("schnetpack")

from pymotor.fast_schnet import FastSchNetModel, UnsupportedModelError  # noqa: E402
from torch_models import spk_schnet  # noqa: E402
from isa_checks import assert_every_isa_gives_the_same_numbers, assert_isa_errors  # noqa: E402

pytestmark = pytest.mark.schnetpack

KCAL = 0.04336410390059322  # eV


def _metadata(cutoff, energy_unit="eV", offset=None):
    return {"format": "pymotor.model/1", "cutoff": cutoff, "length_unit": "Angstrom", "energy_unit": energy_unit,
            "elements": [1, 6, 8], "architecture": "schnet",
            "energy_offset": offset or {"atomrefs": {}, "mean_per_atom": 0.0}}


def _save(scripted, path, cutoff, metadata):
    torch.jit.save(scripted, str(path), _extra_files={"cutoff": str(cutoff), "metadata": json.dumps(metadata)})
    return str(path)


def _big_model(path):
    """As `pymotor train` builds and `pymotor export` writes it: kcal/mol, energy scale, atomrefs."""
    from pymotor.train.export import script_model
    from pymotor.train.model import DEFAULT_HYPERPARAMETERS, build_model

    torch.manual_seed(1)
    hp = dict(DEFAULT_HYPERPARAMETERS)  # 128 features, 3 interactions, 20 RBF, cutoff 5
    model = build_model("schnet", hp, None, 0.0, energy_scale=40.0)  # forces of a few eV/A
    offset = {"atomrefs": {"1": -313.0, "6": -23000.0, "8": -47000.0}, "mean_per_atom": 0.25}
    return _save(script_model(model), path, 5.0, _metadata(5.0, "kcal/mol", offset))


def _small_model(path):
    c = 4.0
    model = spk_schnet(n_atom_basis=32, n_interactions=2, n_rbf=12, cutoff=c, seed=2,
                       shared_interactions=True, n_filters=24)
    return _save(torch.jit.script(model), path, c, _metadata(c))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("fast_schnet")
    return {"big": _big_model(d / "big.pt"), "small": _small_model(d / "small.pt")}


@pytest.fixture(scope="module")
def frames(models):
    """CPNX geometries: a short NVE trajectory of the big model (TorchScript) + rattled frames."""
    atoms = pymotor.data.cpnx()
    traj = pymotor.run_md(pymotor.load_model(models["big"]), atoms, steps=40, timestep_fs=0.5,
                          temperature_K=600.0, thermostat=None, interval=8, seed=3,
                          on_bond_change="ignore")  # random weights: bonds break; numerics only
    out = [p for p in traj.positions]
    for k in range(3):
        a = atoms.copy()
        a.rattle(0.08, seed=10 + k)
        out.append(a.positions.copy())
    return atoms.numbers, np.array(out)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("which", ["big", "small"])
def test_energies_and_forces_equal_torchscript(models, frames, which, dtype):
    numbers, pos = frames
    fast = pymotor.load_model(models[which], backend="fast", dtype=dtype)
    ts = pymotor.load_model(models[which])
    assert isinstance(fast, FastSchNetModel) and fast.dtype == dtype
    e_f, f_f = fast.potential(numbers).compute(pos)
    e_t, f_t = ts.potential(numbers).compute(pos)
    off = ts.energy_offset_eV(numbers)
    assert fast.energy_offset_eV(numbers) == off
    if which == "big":
        assert abs(off) > 1e4  # a float64 offset of ~ -7e4 eV is really exercised
    de = np.abs((e_f - off) - (e_t - off)).max()
    df = np.abs(f_f - f_t).max()
    print(f"{which} {dtype}: max |dE| = {de:.2g} eV, max |dF| = {df:.2g} eV/A over {len(pos)} CPNX frames, "
          f"|F| up to {np.abs(f_t).max():.2g} eV/A")
    assert de < 1e-4
    assert df < 1e-4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("which", ["big", "small"])
def test_every_instruction_set_gives_the_same_numbers(models, frames, which, dtype):
    numbers, pos = frames
    assert_every_isa_gives_the_same_numbers(models[which], "fast-schnet", numbers, pos, dtype, which)


def test_instruction_set_errors(models):
    assert_isa_errors(models["small"], "fast-schnet")


def test_forces_are_minus_numerical_gradient(models, frames):
    numbers, pos = frames
    pot = pymotor.load_model(models["big"], backend="fast", dtype="float64").potential(numbers)
    x = pos[-1].copy()
    f = pot.compute(x[None])[1][0]
    h = 1e-4
    rng = np.random.default_rng(0)
    for i in rng.choice(len(x), size=12, replace=False):
        for c in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, c] += h
            xm[i, c] -= h
            num = -(pot.compute(xp[None])[0][0] - pot.compute(xm[None])[0][0]) / (2 * h)
            # the tabulated filter is a C1 piecewise cubic and the forces are its exact derivative
            assert abs(num - f[i, c]) < 2e-6, (i, c, num, f[i, c])


def test_batch_of_replicas_equals_singles(models, frames):
    numbers, pos = frames
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):
        m = pymotor.load_model(models["big"], backend="fast", dtype=dtype)
        pot = m.potential(numbers)
        e_b, f_b = pot.compute(pos)
        for k in range(len(pos)):
            e, f = m.potential(numbers).compute(pos[k][None])
            assert abs(e_b[k] - e[0]) < tol * max(1.0, abs(e[0] - m.energy_offset_eV(numbers)))
            np.testing.assert_allclose(f_b[k], f[0], atol=tol)
        pot.n_threads = 2  # OpenMP over replicas gives the same numbers
        e_2, f_2 = pot.compute(pos)
        np.testing.assert_array_equal(e_2, e_b)
        np.testing.assert_array_equal(f_2, f_b)


def test_nve_energy_conservation_as_torchscript(models):
    atoms = pymotor.data.cpnx()
    kw = dict(steps=120, timestep_fs=0.5, temperature_K=300.0, thermostat=None, seed=7, interval=10,
              on_bond_change="ignore")  # random weights: bonds break; conservation only
    drift = {}
    for backend in ("torchscript", "fast"):
        t = pymotor.run_md(pymotor.load_model(models["big"], backend=backend), atoms, **kw)
        e = t.conserved_energy - t.conserved_energy[0]
        drift[backend] = np.abs(e).max()
        assert np.all(np.isfinite(e))
    print(f"NVE 60 fs, max |E_tot - E_tot(0)|: {drift}")
    # same integrator; the fast forces are at least as smooth (C1 tables, float32 like TorchScript)
    assert drift["fast"] <= 1.5 * drift["torchscript"] + 2e-4


def _orders(model, n_list, rng):
    r = np.sort(rng.uniform(0.3, model.weights["cutoff"] * 0.999, size=400))
    errs_w, errs_d = [], []
    for n in n_list:
        core = _core.FastSchNetModel(model.weights, "float64", n)
        for t in range(core.n_interactions):
            w, dw = core.filter_exact(t, r)
            wi, dwi = core.filter_interpolated(t, r)
            if t == 0:
                errs_w.append(0.0)
                errs_d.append(0.0)
            errs_w[-1] = max(errs_w[-1], np.abs(wi - w).max() / np.abs(w).max())
            errs_d[-1] = max(errs_d[-1], np.abs(dwi - dw).max() / np.abs(dw).max())
    h = model.weights["cutoff"] / np.array(n_list)
    slope_w = np.polyfit(np.log(h), np.log(errs_w), 1)[0]
    slope_d = np.polyfit(np.log(h), np.log(errs_d), 1)[0]
    return errs_w, errs_d, slope_w, slope_d


def test_tabulation_error_falls_with_grid_refinement_at_cubic_hermite_order(models):
    m = pymotor.load_model(models["big"], backend="fast", check=False)
    errs_w, errs_d, slope_w, slope_d = _orders(m, [32, 64, 128, 256], np.random.default_rng(0))
    print(f"relative errors W {errs_w} (order {slope_w:.2f}), dW/dr {errs_d} (order {slope_d:.2f})")
    # cubic Hermite: O(h^4) in the value, O(h^3) in the derivative
    assert 3.6 < slope_w < 4.6
    assert 2.6 < slope_d < 3.6
    assert all(a > b for a, b in zip(errs_w, errs_w[1:]))
    info = m.table_info  # the automatic grid meets its tolerance
    assert info["max_rel_error"] <= 1e-7 and info["max_rel_error_derivative"] <= 1e-6
    assert info["spacing"] <= 0.005


def test_table_errors_are_far_below_model_precision(models, frames):
    """The automatic grid is within 3e-6 eV/A of a 4x finer one; a coarse one is visibly worse."""
    numbers, pos = frames
    fine = pymotor.load_model(models["big"], backend="fast", dtype="float64", n_intervals=4096, check=False)
    auto = pymotor.load_model(models["big"], backend="fast", dtype="float64", check=False)
    coarse = pymotor.load_model(models["big"], backend="fast", dtype="float64", n_intervals=16, check=False)
    e0, f0 = fine.potential(numbers).compute(pos)
    e1, f1 = auto.potential(numbers).compute(pos)
    e2, f2 = coarse.potential(numbers).compute(pos)
    print(f"auto grid vs 4096 intervals: max |dE| {np.abs(e1 - e0).max():.2g} eV, max |dF| "
          f"{np.abs(f1 - f0).max():.2g} eV/A; 16 intervals: {np.abs(f2 - f0).max():.2g} eV/A")
    assert np.abs(f1 - f0).max() < 3e-6 and np.abs(e1 - e0).max() < 1e-6
    assert np.abs(f2 - f0).max() > 100 * np.abs(f1 - f0).max()


def test_spkdeploy_file_with_add_offsets(tmp_path):
    """spkdeploy keeps AddOffsets (float32) in the file: the fast backend adds it in float64."""
    from schnetpack.transform import AddOffsets

    c = 5.0
    atomref = torch.zeros(100, dtype=torch.float64)
    atomref[[1, 6, 8]] = torch.tensor([-13.5, -1029.25, -2041.125], dtype=torch.float64)
    model = spk_schnet(n_atom_basis=16, n_interactions=2, n_rbf=8, cutoff=c, seed=3,
                       postprocessors=[AddOffsets("energy", add_mean=True, add_atomrefs=True, atomrefs=atomref,
                                                  property_mean=torch.tensor([0.75], dtype=torch.float64))])
    pp = model.postprocessors[0]
    pp.mean = pp.mean.float()  # as spkdeploy does
    path = tmp_path / "deployed.pt"
    torch.jit.save(torch.jit.script(model.eval()), str(path), _extra_files={"cutoff": str(c)})
    atoms = pymotor.data.cpnx()
    kw = dict(energy_unit="eV", length_unit="Angstrom")
    e_t, f_t = pymotor.load_model(path, **kw).compute(atoms)
    fast = pymotor.load_model(path, backend="fast", **kw)
    e_f, f_f = fast.compute(atoms)
    z = atoms.numbers
    expected = float(atomref[z].sum()) + 0.75 * len(z)
    assert abs(expected) > 3e4
    assert abs(e_f - e_t) < 1e-4 + 1e-7 * abs(expected)  # float32 rounding of the offset in TorchScript
    np.testing.assert_allclose(f_f, f_t, atol=1e-4)


def test_painn_and_custom_models_are_refused_clearly(tmp_path, tiny_model_path):
    c = 5.0
    rep = spk.representation.PaiNN(n_atom_basis=16, n_interactions=2, radial_basis=spk.nn.GaussianRBF(8, c),
                                   cutoff_fn=spk.nn.CosineCutoff(c))
    model = spk.model.NeuralNetworkPotential(
        representation=rep, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(16, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")])
    p = _save(torch.jit.script(model.eval()), tmp_path / "painn.pt", c, _metadata(c))
    with pytest.raises(UnsupportedModelError, match="representation PaiNN is not supported.*SchNet only"):
        pymotor.load_model(p, backend="fast-schnet")
    assert pymotor.load_model(p, backend="fast").backend == "fast-painn"
    auto = pymotor.load_model(p, backend="auto")
    assert auto.backend == "fast-painn"  # auto takes the next registered backend that reads it
    with pytest.raises(UnsupportedModelError, match="TinySchNet, not a SchNetPack NeuralNetworkPotential"):
        pymotor.load_model(tiny_model_path, backend="fast-schnet")
    assert type(pymotor.load_model(tiny_model_path, backend="auto")) is pymotor.Model


def test_backend_choice_and_options(models):
    assert isinstance(pymotor.load_model(models["small"], backend="auto"), FastSchNetModel)
    auto = pymotor.load_model(models["small"])  # the default is auto: the fast backend for a SchNet
    assert isinstance(auto, FastSchNetModel) and auto.describe()["kind"] == "fast-schnet"
    assert type(pymotor.load_model(models["small"], backend="torchscript")) is pymotor.Model
    with pytest.raises(ValueError, match="`backend` must be 'auto' or one of"):
        pymotor.load_model(models["small"], backend="jax")
    with pytest.raises(ValueError, match="`device`: the fast backend runs on the CPU only"):
        pymotor.load_model(models["small"], backend="fast", device="cuda")
    with pytest.raises(ValueError, match="`dtype` must be"):
        pymotor.load_model(models["small"], backend="fast", dtype="float16")
    with pytest.raises(TypeError, match="not options of backend='torchscript'"):
        pymotor.load_model(models["small"], backend="torchscript", dtype="float64")
    assert pymotor.load_model(models["small"], dtype="float64").dtype == "float64"  # auto passes it on
    m = pymotor.load_model(models["small"], backend="fast")
    assert m.check_report["max_abs_dE_eV"] < 1e-4
    assert "FastSchNetModel(" in repr(m) and m.cutoff_A == 4.0 and m.elements == [1, 6, 8]
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    a.calc = m.as_ase_calculator()
    e, f = m.compute(a)
    assert a.get_potential_energy() == pytest.approx(e, abs=1e-12)
    np.testing.assert_allclose(a.get_forces(), f, atol=1e-12)
    with pytest.raises(ValueError, match="not trained on"):
        m.potential([16, 1, 1])


def test_cli_md_accepts_fast_backend():
    from pymotor.cli import build_parser

    args = build_parser().parse_args(["md", "--backend", "fast", "--no-xtb"])
    assert args.backend == "fast"
    assert build_parser().parse_args(["md"]).backend == "auto"  # the fastest backend that supports the file
