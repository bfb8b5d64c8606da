"""The fast PaiNN backend (issue 15) against the TorchScript SchNetPack model with the same weights.

Models are SchNetPack 2.2 PaiNNs with random weights:
"big" = as ``pymotor train --model painn --prior zbl`` builds it and ``pymotor export`` writes it
(128 features, 3 interactions, 20 Gaussian RBF, cutoff 5 A, kcal/mol, energy scale, atomrefs and
the ZBL prior; the size of the shipped accurate model), the AVX2 kernels with F known at compile time;
"small" = 20 features (not a multiple of the vector width: the generic loops), 2 shared interactions,
shared filters, shifted-softplus activations, 12 RBF, cutoff 4 A, eV.

Achieved on CPNX (10 frames: 6 of a short 600 K trajectory, 3 rattled by 0.08 A, one with a C-H
at 0.7 A inside the ZBL prior's switch; |F| up to 49 eV/A where the prior acts), against the
TorchScript model (itself float32), energies without the float64 offset (printed with -s):
big   float32: max |dE| 1.4e-5 eV, max |dF| 7.4e-5 eV/A (thermal frames: 1.4e-5 eV, 2.0e-6 eV/A)
big   float64: max |dE| 1.3e-5 eV, max |dF| 7.5e-5 eV/A (thermal frames: 1.3e-5 eV, 1.3e-6 eV/A)
small float32: max |dE| 8.2e-6 eV, max |dF| 1.1e-5 eV/A;  float64: 7.2e-6 eV, 8.5e-7 eV/A
The large-force differences are the TorchScript model's float32 rounding (1.5e-6 relative): the
fast float64 evaluator against SchNetPack's eager PaiNN in float64 differs by max |dE| 1.4e-8 eV,
max |dF| 9.9e-7 eV/A with the default table (512 intervals, 0.0098 A: the interpolation error) and
by 6e-12 eV, 2.1e-9 eV/A with 4096 intervals (the backward pass is exact). NVE, 60 fs: max
|E_tot - E_tot(0)| 6.26e-4 eV (fast) vs 6.23e-4 eV (TorchScript).
"""
import json

import numpy as np
import pytest
import torch

import pymotor
from pymotor import _core

spk = pytest.importorskip("schnetpack")

from pymotor.backends import UnsupportedModelError  # noqa: E402
from pymotor.backends.fast_painn import FastPaiNNModel  # noqa: E402
from isa_checks import assert_every_isa_gives_the_same_numbers, assert_isa_errors  # noqa: E402

pytestmark = pytest.mark.schnetpack

OFFSET = {"atomrefs": {"1": -313.0, "6": -23000.0, "8": -47000.0}, "mean_per_atom": 0.25}


def _metadata(cutoff, energy_unit="eV", offset=None):
    return {"format": "pymotor.model/1", "cutoff": cutoff, "length_unit": "Angstrom", "energy_unit": energy_unit,
            "elements": [1, 6, 8], "architecture": "painn",
            "energy_offset": offset or {"atomrefs": {}, "mean_per_atom": 0.0}}


def _save(scripted, path, cutoff, metadata=None):
    extra = {"cutoff": str(cutoff)}
    if metadata is not None:
        extra["metadata"] = json.dumps(metadata)
    torch.jit.save(scripted, str(path), _extra_files=extra)
    return str(path)


def spk_painn(n_atom_basis=16, n_interactions=2, n_rbf=8, cutoff=5.0, seed=0, radial_basis=None, postprocessors=None,
              **painn_kwargs):
    """A random-weight SchNetPack PaiNN NeuralNetworkPotential (eval mode)."""
    torch.manual_seed(seed)
    rep = spk.representation.PaiNN(n_atom_basis=n_atom_basis, n_interactions=n_interactions,
                                   radial_basis=radial_basis or spk.nn.GaussianRBF(n_rbf, cutoff),
                                   cutoff_fn=spk.nn.CosineCutoff(cutoff), **painn_kwargs)
    model = spk.model.NeuralNetworkPotential(
        representation=rep, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_atom_basis, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")],
        postprocessors=postprocessors)
    return model.eval()


def _big_model(path):
    """As `pymotor train --model painn --prior zbl` builds and `pymotor export` writes it."""
    from pymotor.train.export import script_model
    from pymotor.train.model import DEFAULT_HYPERPARAMETERS, build_model

    torch.manual_seed(1)
    hp = dict(DEFAULT_HYPERPARAMETERS, prior="zbl")  # 128 features, 3 interactions, 20 RBF, cutoff 5
    model = build_model("painn", hp, None, 0.0, energy_scale=20.0)  # forces of a few eV/A
    _save(script_model(model), path, 5.0, _metadata(5.0, "kcal/mol", OFFSET))
    return str(path), model.eval()


def _small_model(path):
    c = 4.0
    model = spk_painn(n_atom_basis=20, n_interactions=2, n_rbf=12, cutoff=c, seed=2, shared_interactions=True,
                      shared_filters=True, activation=spk.nn.shifted_softplus)
    return _save(torch.jit.script(model), path, c, _metadata(c))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("fast_painn")
    big, eager = _big_model(d / "big.pt")
    return {"big": big, "small": _small_model(d / "small.pt"), "big_eager": eager}


@pytest.fixture(scope="module")
def frames(models):
    """CPNX geometries: a short 600 K trajectory of the big model (TorchScript), rattled frames
    and one C-H at 0.7 A (inside the ZBL prior's switch)."""
    atoms = pymotor.data.cpnx()
    traj = pymotor.run_md(pymotor.load_model(models["big"], backend="torchscript"), atoms, steps=30,
                          timestep_fs=0.5, temperature_K=600.0, thermostat=None, interval=6, seed=3,
                          on_bond_change="ignore")  # random weights: numerics only
    out = [p for p in traj.positions]
    for k in range(3):
        a = atoms.copy()
        a.rattle(0.08, seed=10 + k)
        out.append(a.positions.copy())
    close = atoms.positions.copy()
    b = pymotor.connectivity.bonds(atoms.numbers, close)
    i, j = next((int(i), int(j)) for i, j in b if atoms.numbers[j] == 1)
    close[j] = close[i] + 0.7 * (close[j] - close[i]) / np.linalg.norm(close[j] - close[i])
    out.append(close)
    return atoms.numbers, np.array(out)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("which", ["big", "small"])
def test_energies_and_forces_equal_torchscript(models, frames, which, dtype):
    numbers, pos = frames
    fast = pymotor.load_model(models[which], backend="fast-painn", dtype=dtype)
    ts = pymotor.load_model(models[which], backend="torchscript")
    assert isinstance(fast, FastPaiNNModel) and fast.dtype == dtype and fast.backend == "fast-painn"
    e_f, f_f = fast.potential(numbers).compute(pos)
    e_t, f_t = ts.potential(numbers).compute(pos)
    off = ts.energy_offset_eV(numbers)
    assert fast.energy_offset_eV(numbers) == off
    if which == "big":
        assert abs(off) > 1e4  # a float64 offset of ~ -3e4 eV is really exercised
        assert fast.weights["zbl"] is not None
    de = np.abs((e_f - off) - (e_t - off))
    df = np.abs(f_f - f_t).max(axis=(1, 2))
    fmax = np.abs(f_t).max(axis=(1, 2))
    print(f"\n{which} {dtype} (max |dE| eV, max |dF| eV/A, max |F| eV/A): "
          + ", ".join(f"{k} {de[s].max():.2g} {df[s].max():.2g} {fmax[s].max():.2g}"
                      for k, s in (("thermal", slice(0, -4)), ("rattled", slice(-4, -1)), ("C-H 0.7 A", slice(-1, None))))
          + f"; table {fast.table_info['n_intervals']} intervals")
    de, df = de.max(), df.max()
    assert de < 1e-4
    assert df < 1e-4


def test_float64_equals_the_eager_float64_schnetpack_model(models, frames):
    """Without the float32 rounding of the TorchScript reference: the fast float64 evaluator
    against SchNetPack's own PaiNN run in float64 (all pairs within the cutoff). With the default
    table what remains is the interpolation error; with a 4096-interval table it is gone."""
    from torch_models import reference_energy_forces

    numbers, pos = frames
    refs = [reference_energy_forces(models["big_eager"], x, numbers, 5.0) for x in pos]
    for n_intervals, e_tol, f_tol in ((0, 1e-7, 5e-6), (4096, 1e-9, 2e-8)):
        m = pymotor.load_model(models["big"], backend="fast-painn", dtype="float64", n_intervals=n_intervals,
                               check=False)
        pot = m.potential(numbers)
        kcal = m.energy_unit_eV
        de = df = 0.0
        for x, (e_ref, f_ref) in zip(pos, refs):
            e, f = pot.compute(x[None])
            de = max(de, abs(e[0] - m.energy_offset_eV(numbers) - e_ref * kcal))
            df = max(df, np.abs(f[0] - f_ref * kcal).max())
        print(f"\nbig float64 ({m.table_info['n_intervals']} intervals) vs eager float64 SchNetPack: "
              f"max |dE| = {de:.2g} eV, max |dF| = {df:.2g} eV/A")
        assert de < e_tol and df < f_tol


@pytest.mark.parametrize("which", ["big", "small"])
def test_forces_are_minus_numerical_gradient(models, frames, which):
    numbers, pos = frames
    pot = pymotor.load_model(models[which], backend="fast-painn", dtype="float64").potential(numbers)
    rng = np.random.default_rng(0)
    h = 1e-4
    for x in (pos[-2], pos[-1]):  # rattled, and the short C-H (the prior's range)
        f = pot.compute(x[None])[1][0]
        atoms = rng.choice(len(x), size=10, replace=False)
        if np.array_equal(x, pos[-1]):
            atoms = np.append(atoms, np.argmax(np.linalg.norm(f, axis=1)))
        worst = 0.0
        for i in atoms:
            for c in range(3):
                xp, xm = x.copy(), x.copy()
                xp[i, c] += h
                xm[i, c] -= h
                e = pot.compute(np.stack([xp, xm]))[0]
                num = -(e[0] - e[1]) / (2 * h)
                worst = max(worst, abs(num - f[i, c]))
                # the tabulated filters are C1 piecewise cubics; the forces are their exact derivative
                assert abs(num - f[i, c]) < 2e-6 + 1e-6 * abs(f[i, c]), (i, c, num, f[i, c])
        print(f"{which}: max |F + dE/dx| = {worst:.2g} eV/A (|F| up to {np.abs(f).max():.2g})")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rotation_and_translation(models, frames, dtype):
    from scipy.spatial.transform import Rotation

    numbers, pos = frames
    m = pymotor.load_model(models["big"], backend="fast-painn", dtype=dtype)
    for k, seed in ((0, 1), (len(pos) - 2, 2)):
        rot = Rotation.random(random_state=seed).as_matrix()
        moved = pos[k] @ rot.T + np.array([4.0, -9.0, 2.5])
        e0, f0 = m.potential(numbers).compute(pos[k][None])
        e1, f1 = m.potential(numbers).compute(moved[None])
        tol = 1e-8 if dtype == "float64" else 1e-4
        assert abs(e1[0] - e0[0]) < tol
        np.testing.assert_allclose(f1[0], f0[0] @ rot.T, atol=tol)


def test_batch_of_replicas_equals_singles(models, frames):
    numbers, pos = frames
    for which in ("big", "small"):
        for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):
            m = pymotor.load_model(models[which], backend="fast-painn", dtype=dtype, check=False)
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
            pot.n_threads = 1
            for block in (1, 3 * len(numbers), 10_000):  # blocks of 1, 3 and all replicas
                pot.block_atoms = block
                e_3, f_3 = pot.compute(pos)
                np.testing.assert_allclose(e_3, e_b, rtol=0, atol=tol)
                np.testing.assert_allclose(f_3, f_b, rtol=0, atol=tol)


def test_nve_energy_conservation_as_torchscript(models):
    atoms = pymotor.data.cpnx()
    kw = dict(steps=120, timestep_fs=0.5, temperature_K=300.0, thermostat=None, seed=7, interval=10,
              on_bond_change="ignore")  # random weights: conservation only
    drift = {}
    for backend in ("torchscript", "fast-painn"):
        t = pymotor.run_md(pymotor.load_model(models["big"], backend=backend), atoms, **kw)
        e = t.conserved_energy - t.conserved_energy[0]
        drift[backend] = np.abs(e).max()
        assert np.all(np.isfinite(e))
        assert t.metadata["potential"]["kind"] == backend
    print(f"NVE 60 fs, max |E_tot - E_tot(0)|: {drift}")
    assert drift["fast-painn"] <= 1.5 * drift["torchscript"] + 2e-4


def _orders(core, cutoff, n_list, rng):
    r = np.sort(rng.uniform(0.3, cutoff * 0.999, size=400))
    errs_w, errs_d = [], []
    for n in n_list:
        c = core(n)
        ew = ed = 0.0
        for t in range(c.n_interactions):
            w, dw = c.filter_exact(t, r)
            wi, dwi = c.filter_interpolated(t, r)
            ew = max(ew, np.abs(wi - w).max() / np.abs(w).max())
            ed = max(ed, np.abs(dwi - dw).max() / np.abs(dw).max())
        errs_w.append(ew)
        errs_d.append(ed)
    h = cutoff / np.array(n_list)
    return errs_w, errs_d, np.polyfit(np.log(h), np.log(errs_w), 1)[0], np.polyfit(np.log(h), np.log(errs_d), 1)[0]


def test_tabulation_error_falls_with_grid_refinement_at_cubic_hermite_order(models):
    m = pymotor.load_model(models["big"], backend="fast-painn", check=False)
    w = m.weights
    errs_w, errs_d, slope_w, slope_d = _orders(lambda n: _core.FastPaiNNModel(w, "float64", n), w["cutoff"],
                                               [32, 64, 128, 256], np.random.default_rng(0))
    print(f"relative errors W {errs_w} (order {slope_w:.2f}), dW/dr {errs_d} (order {slope_d:.2f})")
    assert 3.6 < slope_w < 4.6  # cubic Hermite: O(h^4) in the value, O(h^3) in the derivative
    assert 2.6 < slope_d < 3.6
    info = m.table_info  # the automatic grid meets its tolerance
    assert info["max_rel_error"] <= 2e-7 and info["max_rel_error_derivative"] <= 2e-6
    # the filters are SchNetPack's: filter_net(rbf(r)) * fcut(r), split per interaction
    rep = torch.jit.load(m.path).representation
    r = torch.tensor([[0.9], [1.4], [3.3]], dtype=torch.float32)
    ref = (rep.filter_net(rep.radial_basis(r)) * rep.cutoff_fn(r)[..., None]).detach().double().numpy()[:, 0]
    core = m._fast
    for t in range(3):
        w_t = core.filter_exact(t, r.double().numpy().ravel())[0]
        np.testing.assert_allclose(w_t, ref[:, 384 * t:384 * (t + 1)], atol=2e-5)


def test_table_errors_are_far_below_model_precision(models, frames):
    """The automatic grid is within 5e-6 eV/A of a 4096-interval one (below the float32 evaluation's
    rounding); a coarse one is visibly worse."""
    numbers, pos = frames
    kw = dict(backend="fast-painn", dtype="float64", check=False)
    fine = pymotor.load_model(models["big"], n_intervals=4096, **kw)
    auto = pymotor.load_model(models["big"], **kw)
    coarse = pymotor.load_model(models["big"], n_intervals=16, **kw)
    e0, f0 = fine.potential(numbers).compute(pos)
    e1, f1 = auto.potential(numbers).compute(pos)
    e2, f2 = coarse.potential(numbers).compute(pos)
    print(f"auto grid ({auto.table_info['n_intervals']}) vs 4096 intervals: max |dE| {np.abs(e1 - e0).max():.2g} "
          f"eV, max |dF| {np.abs(f1 - f0).max():.2g} eV/A; 16 intervals: {np.abs(f2 - f0).max():.2g} eV/A")
    assert np.abs(f1 - f0).max() < 5e-6 and np.abs(e1 - e0).max() < 1e-6
    assert np.abs(f2 - f0).max() > 100 * np.abs(f1 - f0).max()
    f32 = pymotor.load_model(models["big"], backend="fast-painn", check=False).potential(numbers).compute(pos)[1]
    assert np.abs(f1 - f0).max() < np.abs(f32 - f0).max()  # the table error is below float32 rounding


def test_spkdeploy_file_with_add_offsets(tmp_path):
    """spkdeploy keeps AddOffsets (float32) in the file: the fast backend adds it in float64."""
    from schnetpack.transform import AddOffsets

    c = 5.0
    atomref = torch.zeros(100, dtype=torch.float64)
    atomref[[1, 6, 8]] = torch.tensor([-13.5, -1029.25, -2041.125], dtype=torch.float64)
    model = spk_painn(n_atom_basis=16, n_interactions=2, n_rbf=8, cutoff=c, seed=3,
                      postprocessors=[AddOffsets("energy", add_mean=True, add_atomrefs=True, atomrefs=atomref,
                                                 property_mean=torch.tensor([0.75], dtype=torch.float64))])
    pp = model.postprocessors[0]
    pp.mean = pp.mean.float()  # as spkdeploy does
    path = _save(torch.jit.script(model.eval()), tmp_path / "deployed.pt", c)
    atoms = pymotor.data.cpnx()
    kw = dict(energy_unit="eV", length_unit="Angstrom")
    e_t, f_t = pymotor.load_model(path, backend="torchscript", **kw).compute(atoms)
    fast = pymotor.load_model(path, **kw)  # auto: the fast PaiNN
    assert fast.backend == "fast-painn"
    e_f, f_f = fast.compute(atoms)
    expected = float(atomref[atoms.numbers].sum()) + 0.75 * len(atoms)
    assert abs(expected) > 3e4
    assert abs(e_f - e_t) < 1e-4 + 1e-7 * abs(expected)  # float32 rounding of the offset in TorchScript
    np.testing.assert_allclose(f_f, f_t, atol=1e-4)


def test_unsupported_variants_are_named_and_auto_falls_back(tmp_path, tiny_model_path):
    c = 5.0
    bessel = spk_painn(radial_basis=spk.nn.BesselRBF(8, c), cutoff=c)
    p = _save(torch.jit.script(bessel), tmp_path / "bessel.pt", c, _metadata(c))
    with pytest.raises(UnsupportedModelError, match="radial basis BesselRBF is not supported"):
        pymotor.load_model(p, backend="fast-painn")
    assert pymotor.load_model(p).backend == "torchscript"  # auto falls back
    schnet = spk.model.NeuralNetworkPotential(
        representation=spk.representation.SchNet(n_atom_basis=16, n_interactions=1,
                                                 radial_basis=spk.nn.GaussianRBF(8, c),
                                                 cutoff_fn=spk.nn.CosineCutoff(c)),
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(16, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")]).eval()
    p = _save(torch.jit.script(schnet), tmp_path / "schnet.pt", c, _metadata(c))
    with pytest.raises(UnsupportedModelError, match="representation SchNet is not supported.*PaiNN only"):
        pymotor.load_model(p, backend="fast-painn")
    assert pymotor.load_model(p).backend == "fast-schnet"  # auto: the fast SchNet
    with pytest.raises(UnsupportedModelError, match="TinySchNet, not a SchNetPack NeuralNetworkPotential"):
        pymotor.load_model(tiny_model_path, backend="fast-painn")
    assert pymotor.load_model(tiny_model_path).backend == "torchscript"
    # a PaiNN whose mixing has a learnable activation module
    odd = spk_painn(cutoff=c, activation=torch.nn.Tanh())
    p = _save(torch.jit.script(odd), tmp_path / "tanh.pt", c, _metadata(c))
    with pytest.raises(UnsupportedModelError, match="interatomic_context_net.0: .*activation"):
        pymotor.load_model(p, backend="fast-painn")
    assert pymotor.load_model(p).backend == "torchscript"


def test_shared_and_separate_variants_all_load(tmp_path):
    atoms = pymotor.data.cpnx()
    for si in (False, True):
        for sf in (False, True):
            c = 4.5
            m = spk_painn(n_atom_basis=24, n_interactions=3, n_rbf=10, cutoff=c, seed=5, shared_interactions=si,
                          shared_filters=sf)
            p = _save(torch.jit.script(m), tmp_path / f"p{si}{sf}.pt", c, _metadata(c))
            fast = pymotor.load_model(p, backend="fast-painn")
            assert fast.weights["shared_filters"] == sf
            e_t, f_t = pymotor.load_model(p, backend="torchscript").compute(atoms)
            e_f, f_f = fast.compute(atoms)
            assert abs(e_f - e_t) < 1e-4 and np.abs(f_f - f_t).max() < 1e-4, (si, sf)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("which", ["big", "small"])
def test_every_instruction_set_gives_the_same_numbers(models, frames, which, dtype):
    numbers, pos = frames
    assert_every_isa_gives_the_same_numbers(models[which], "fast-painn", numbers, pos, dtype, which)


def test_instruction_set_errors(models):
    assert_isa_errors(models["small"], "fast-painn")
    with pytest.raises(ValueError, match="dense_layer_loop: isa must be 'auto', 'avx512', 'avx2' or 'generic'"):
        _core.dense_layer_loop({"weight": np.zeros((2, 2)), "bias": np.zeros(2), "activation": "none"}, 4, 1, "x")


def test_backend_choice_and_options(models):
    auto = pymotor.load_model(models["small"])  # the default is auto: the fast PaiNN for a PaiNN file
    assert isinstance(auto, FastPaiNNModel) and auto.describe()["kind"] == "fast-painn"
    assert auto.describe()["architecture"] == "painn"
    assert pymotor.load_model(models["small"], dtype="float64").dtype == "float64"  # auto passes it on
    assert pymotor.load_model(models["small"], backend="torchscript").backend == "torchscript"
    with pytest.raises(ValueError, match="`device`: the fast PaiNN backend runs on the CPU only"):
        pymotor.load_model(models["small"], backend="fast-painn", device="cuda")
    with pytest.raises(ValueError, match="`dtype` must be"):
        pymotor.load_model(models["small"], backend="fast-painn", dtype="float16")
    with pytest.raises(ValueError, match="`block_atoms` must be >= 1"):
        pymotor.load_model(models["small"], backend="fast-painn", block_atoms=0)
    m = pymotor.load_model(models["small"], backend="fast-painn")
    assert m.check_report["max_abs_dE_eV"] < 1e-4
    assert "FastPaiNNModel(" in repr(m) and m.cutoff_A == 4.0 and m.elements == [1, 6, 8]
    from ase.build import molecule

    a = molecule("CH3CH2OH")
    a.calc = m.as_ase_calculator()
    e, f = m.compute(a)
    assert a.get_potential_energy() == pytest.approx(e, abs=1e-12)
    np.testing.assert_allclose(a.get_forces(), f, atol=1e-12)
    with pytest.raises(ValueError, match="not trained on"):
        m.potential([16, 1, 1])
    pot = m.potential(a.numbers)
    with pytest.raises(ValueError, match="block_atoms must be >= 1"):
        pot.block_atoms = 0
