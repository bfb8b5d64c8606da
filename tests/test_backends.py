"""The backend conformance check: every registered backend, on every model file it supports
(for ``pt2``: the same model deployed as an AOTInductor package),
reproduces the eager SchNetPack model (float64) on CPNX frames, gives forces equal to minus
the numerical gradient, evaluates batched replicas as single runs, and is invariant to
rotations and translations. A backend that does not support a file must say so
(UnsupportedModelError), and ``auto`` must then fall back to TorchScript."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("schnetpack")

import pymotor  # noqa: E402
from pymotor.backends import REGISTRY, UnsupportedModelError, backend_class  # noqa: E402
from pymotor.units import energy_unit_in_eV  # noqa: E402
from torch_models import reference_energy_forces  # noqa: E402

pytestmark = pytest.mark.schnetpack

OFFSET = {"atomrefs": {"1": -313.0, "6": -23000.0, "8": -47000.0}, "mean_per_atom": 0.25}


def _export(path, architecture, prior):
    """A model as `pymotor train` builds and `pymotor export` writes it (kcal/mol, atomrefs)."""
    from pymotor.train.export import script_model
    from pymotor.train.model import DEFAULT_HYPERPARAMETERS, build_model

    torch.manual_seed(3)
    hp = dict(DEFAULT_HYPERPARAMETERS, prior=prior)
    if architecture == "painn":
        hp.update(n_atom_basis=32)
    model = build_model(architecture, hp, None, 0.0, energy_scale=40.0)
    meta = {"format": "pymotor.model/1", "cutoff": 5.0, "length_unit": "Angstrom", "energy_unit": "kcal/mol",
            "elements": [1, 6, 8], "architecture": architecture, "energy_offset": OFFSET}
    torch.jit.save(script_model(model), str(path), _extra_files={"cutoff": "5.0", "metadata": json.dumps(meta)})
    return str(path), model.eval()


MODELS = {"schnet": ("schnet", "none"), "schnet-zbl": ("schnet", "zbl"), "painn": ("painn", "none")}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("backends")
    return {name: _export(d / f"{name}.pt", *spec) for name, spec in MODELS.items()}


@pytest.fixture(scope="module")
def pt2_files(files, tmp_path_factory):
    """The same eager models as AOTInductor packages (pymotor.deploy; ~0.5-2 min each)."""
    d = tmp_path_factory.mktemp("pt2")
    out = {}
    for name, (_, eager) in files.items():
        path = d / f"{name}.pt2"
        pymotor.deploy(eager, path, cutoff_A=5.0, energy_unit="kcal/mol", elements=[1, 6, 8], energy_offset=OFFSET)
        out[name] = (str(path), eager)
    return out


@pytest.fixture(scope="module")
def frames():
    """CPNX: the minimum, a thermal-like rattle, a strong rattle and one with a short C-H."""
    atoms = pymotor.data.cpnx()
    out = [atoms.positions.copy()]
    for k, s in enumerate((0.05, 0.15)):
        a = atoms.copy()
        a.rattle(s, seed=20 + k)
        out.append(a.positions.copy())
    close = atoms.positions.copy()
    b = pymotor.connectivity.bonds(atoms.numbers, close)
    i, j = next((int(i), int(j)) for i, j in b if atoms.numbers[j] == 1)
    close[j] = close[i] + 0.7 * (close[j] - close[i]) / np.linalg.norm(close[j] - close[i])  # inside the prior
    out.append(close)
    return atoms.numbers, out


def _load(name, path):
    try:
        return backend_class(name)(path, device="cpu")
    except UnsupportedModelError as exc:
        return exc


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("backend", sorted(set(REGISTRY) - {"fast"}))  # "fast" dispatches to these
def test_backend_conformance(backend, model_name, files, frames, request):
    # the pt2 backend runs the same eager model compiled into a package
    path, eager = (request.getfixturevalue("pt2_files") if backend == "pt2" else files)[model_name]
    m = _load(backend, path)
    if isinstance(m, UnsupportedModelError):
        assert str(m), "an unsupported file must be named in the error"
        auto = pymotor.load_model(path, device="cpu")  # auto falls back to one that supports it
        assert auto.backend != backend and auto.backend in REGISTRY
        pytest.skip(f"{backend} does not support {model_name}: {m}")
    assert m.describe()["kind"] == backend == m.backend
    numbers, geometries = frames
    pot = m.potential(numbers)
    kcal = energy_unit_in_eV("kcal/mol")
    offset = m.energy_offset_eV(numbers)

    # 1. equal to the eager SchNetPack model in float64
    for pos in geometries:
        e_ref, f_ref = reference_energy_forces(eager, pos, numbers, 5.0)
        e, f = pot.compute(pos[None])
        assert abs(e[0] - (e_ref * kcal + offset)) < 1e-4 + 1e-6 * abs(e_ref * kcal), (backend, model_name)
        assert np.abs(f[0] - f_ref * kcal).max() < 1e-4 + 1e-5 * np.abs(f_ref * kcal).max()

    # 2. forces = -numerical gradient (central differences, 6 components; the float32 network
    #    energy limits the step: h = 5e-3 Angstrom keeps both round-off and h^2 error < 5 meV/A)
    pos = geometries[1]
    _, f = pot.compute(pos[None])
    h = 5e-3
    rng = np.random.default_rng(0)
    for a, c in zip(rng.integers(0, len(numbers), 6), rng.integers(0, 3, 6)):
        p, q = pos.copy(), pos.copy()
        p[a, c] += h
        q[a, c] -= h
        ep, eq = pot.compute(np.stack([p, q]))[0]
        assert abs(-(ep - eq) / (2 * h) - f[0, a, c]) < 5e-3 + 2e-3 * abs(f[0, a, c])

    # 3. batched replicas = single runs
    batch = np.stack(geometries)
    eb, fb = pot.compute(batch)
    for k, g in enumerate(geometries):
        es, fs = m.potential(numbers).compute(g[None])
        assert abs(eb[k] - es[0]) < 1e-5 and np.abs(fb[k] - fs[0]).max() < 1e-5

    # 4. rotation and translation: the energy is invariant, the forces rotate
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(random_state=4).as_matrix()
    moved = geometries[1] @ rot.T + np.array([3.0, -7.0, 11.0])
    e0, f0 = pot.compute(geometries[1][None])
    e1, f1 = m.potential(numbers).compute(moved[None])
    assert abs(e1[0] - e0[0]) < 1e-4
    np.testing.assert_allclose(f1[0], f0[0] @ rot.T, atol=1e-4)


def test_auto_picks_the_fastest_supported_backend(files, tiny_model_path):
    from pymotor.backends import AUTO_ORDER

    assert AUTO_ORDER.index("fast") < AUTO_ORDER.index("torchscript")
    assert pymotor.load_model(files["schnet"][0], device="cpu").backend == "fast-schnet"
    assert pymotor.load_model(files["schnet-zbl"][0], device="cpu").backend == "fast-schnet"
    assert pymotor.load_model(files["painn"][0], device="cpu").backend == "fast-painn"
    # "fast" is the fast evaluator of the file's architecture
    assert pymotor.load_model(files["painn"][0], backend="fast").backend == "fast-painn"
    assert pymotor.load_model(files["schnet"][0], backend="fast").backend == "fast-schnet"
    with pytest.raises(UnsupportedModelError, match="representation PaiNN is not supported"):
        pymotor.load_model(files["painn"][0], backend="fast-schnet")
    with pytest.raises(UnsupportedModelError, match="no fast evaluator reads.*fast-schnet: .*fast-painn: "):
        pymotor.load_model(tiny_model_path, backend="fast")
    # a model no fast backend reads: auto falls back to TorchScript
    assert pymotor.load_model(tiny_model_path, device="cpu").backend == "torchscript"  # a custom module


def test_trajectory_records_the_backend_used(files, tmp_path):
    atoms = pymotor.data.cpnx()
    for backend in ("fast", "torchscript"):
        t = pymotor.run_md(pymotor.load_model(files["schnet"][0], backend=backend), atoms, steps=2,
                           trajectory=tmp_path / f"{backend}.h5", on_bond_change="ignore")
        pot = t.metadata["potential"]
        assert pot["kind"] == {"fast": "fast-schnet"}.get(backend, backend) and pot["sha256"] and pot["path"].endswith("schnet.pt")


# ---------------------------------------------------------------------------------------
# AOTInductor packages (.pt2)
# ---------------------------------------------------------------------------------------
def test_pt2_equals_torchscript_and_drives_md(files, pt2_files, frames, tmp_path):
    """pymotor.deploy(format="pt2") of SchNet, SchNet+ZBL and PaiNN: energies and forces equal
    the TorchScript file's (<= 1e-4 eV/A) through the same C++ potential; auto picks pt2; NVE
    conserves energy like the TorchScript run; a restarted run equals the uninterrupted one."""
    numbers, geometries = frames
    for name in MODELS:
        ts = backend_class("torchscript")(files[name][0], device="cpu")
        pt2 = pymotor.load_model(pt2_files[name][0])
        assert pt2.backend == "pt2" and pt2.describe()["kind"] == "pt2" and pt2.file.format == "pt2"
        assert pt2.cutoff_A == 5.0 and pt2.energy_unit == "kcal/mol" and pt2.file.elements == [1, 6, 8]
        e0, f0 = ts.potential(numbers).compute(np.stack(geometries))
        e1, f1 = pt2.potential(numbers).compute(np.stack(geometries))
        assert np.abs(e1 - e0).max() < 1e-4, name
        assert np.abs(f1 - f0).max() < 1e-4, name
    # fewer than 2 pairs (the package's shapes start at 2): padded with far self-pairs that add
    # nothing; two atoms beyond the cutoff (0 pairs) and a lone atom equal TorchScript's
    for z, xyz in (([6, 8], [[0.0, 0.0, 0.0], [7.5, 0.0, 0.0]]), ([8], [[0.0, 0.0, 0.0]])):
        for name in ("schnet-zbl", "painn"):
            ts = backend_class("torchscript")(files[name][0], device="cpu")
            pt2 = pymotor.load_model(pt2_files[name][0])
            e0, f0 = ts.potential(z).compute(np.array([xyz]))
            e1, f1 = pt2.potential(z).compute(np.array([xyz]))
            assert abs(float(e1[0]) - float(e0[0])) < 1e-4 and np.abs(f1).max() == 0.0 == np.abs(f0).max(), (name, z)

    from ase import Atoms

    atoms = Atoms(numbers, positions=geometries[0])
    kw = dict(steps=200, timestep_fs=0.25, thermostat=None, temperature_K=100.0, seed=1, interval=10,
              on_bond_change="ignore")
    runs = {k: pymotor.run_md(m, atoms, **kw) for k, m in
            (("torchscript", backend_class("torchscript")(files["painn"][0], device="cpu")),
             ("pt2", pymotor.load_model(pt2_files["painn"][0])))}
    drift = {k: float(np.abs(t.conserved_energy - t.conserved_energy[0]).max()) for k, t in runs.items()}
    assert drift["pt2"] < max(3.0 * drift["torchscript"], 2e-4), drift  # eV; measured ~1e-5 both
    assert np.abs(runs["pt2"].positions[:3] - runs["torchscript"].positions[:3]).max() < 1e-4  # steps 0-20
    assert runs["pt2"].metadata["potential"]["kind"] == "pt2"

    pt2 = pymotor.load_model(pt2_files["schnet-zbl"][0])
    kw = dict(timestep_fs=0.5, temperature_K=300.0, seed=2, interval=5, on_bond_change="ignore")
    whole = pymotor.run_md(pt2, atoms, steps=60, **kw)
    part = tmp_path / "part.h5"
    pymotor.run_md(pt2, atoms, steps=30, trajectory=part, restart=part, **kw)
    cont = pymotor.run_md(pt2, atoms, steps=60, trajectory=part, restart=part, **kw)
    np.testing.assert_array_equal(cont.positions, whole.positions)
    np.testing.assert_array_equal(cont.velocities, whole.velocities)


def test_pt2_bad_files_and_mismatches_are_named(pt2_files, files, tmp_path):
    import re
    import warnings
    import zipfile
    from pathlib import Path

    import torch

    path = pt2_files["schnet"][0]
    # truncated
    cut = tmp_path / "cut.pt2"
    data = Path(path).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pt2"):
        pymotor.load_model(cut)
    # a package compiled for another device kind / by another torch release
    with pytest.raises(ValueError, match="compiled for cpu, not for cuda"):
        pymotor.load_model(path, device="cuda")
    old = tmp_path / "old.pt2"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            blob = src.read(item.filename)
            if item.filename.endswith("_metadata.json") and b"pymotor" in blob:
                meta = json.loads(blob)
                md = json.loads(meta["pymotor"])
                md["pt2"]["torch"] = "2.9.1+cpu"
                meta["pymotor"] = json.dumps(md)
                blob = json.dumps(meta).encode()
            dst.writestr(item, blob)
    with pytest.raises(ValueError, match=rf"compiled by torch 2\.9\.1\+cpu; this is torch {re.escape(torch.__version__)}"):
        pymotor.load_model(old)
    # other backends name the format
    with pytest.raises(UnsupportedModelError, match="is a pt2 file, not TorchScript"):
        pymotor.load_model(path, backend="torchscript")
    with pytest.raises(UnsupportedModelError, match="fast evaluators read the weights of TorchScript"):
        pymotor.load_model(path, backend="fast")
    with pytest.raises(UnsupportedModelError, match="not an AOTInductor package"):
        pymotor.load_model(files["schnet"][0], backend="pt2")
    # a foreign package without pymotor's metadata
    lin = torch.nn.Linear(3, 1)
    ep = torch.export.export(lin, (torch.randn(4, 3),))
    with warnings.catch_warnings():  # torch's own pytree deprecation inside the packager
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        foreign = torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp_path / "foreign.pt2"))
    with pytest.raises(ValueError, match="AOTInductor package without pymotor metadata"):
        pymotor.load_model(foreign)
    # deploy's own arguments
    eager = files["schnet"][1]
    with pytest.raises(ValueError, match="`path` must end in .pt"):
        pymotor.deploy(eager, tmp_path / "m.onnx", cutoff_A=5.0, energy_unit="kcal/mol")
    with pytest.raises(ValueError, match="`path` of a pt2 file must end in .pt2"):
        pymotor.deploy(eager, tmp_path / "m.pt", cutoff_A=5.0, energy_unit="kcal/mol", format="pt2")
    with pytest.raises(TypeError, match="`model` must be a SchNetPack NeuralNetworkPotential"):
        pymotor.deploy(lin, tmp_path / "m.pt2", cutoff_A=5.0, energy_unit="kcal/mol")
    with pytest.raises(ValueError, match="`cutoff_A` must be a number > 0"):
        pymotor.deploy(eager, tmp_path / "m.pt2", cutoff_A=-1.0, energy_unit="kcal/mol")


def test_pt2_deploys_so3net_which_no_fast_evaluator_reads(tmp_path, frames):
    """pymotor.deploy on a SchNetPack SO3net (spherical-harmonics messages, lmax 2): the pt2
    package and the TorchScript file agree (<= 1e-4 eV, eV/A) on CPNX frames; auto runs the
    TorchScript file through libtorch (no fast evaluator reads SO3net) and the package as pt2."""
    import schnetpack as spk

    torch.manual_seed(1)
    rep = spk.representation.SO3net(n_atom_basis=16, n_interactions=2, lmax=2,
                                    radial_basis=spk.nn.GaussianRBF(8, 5.0), cutoff_fn=spk.nn.CosineCutoff(5.0))
    net = spk.model.NeuralNetworkPotential(
        representation=rep, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=16, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")]).eval()
    kw = dict(cutoff_A=5.0, energy_unit="kcal/mol", elements=[1, 6, 8], energy_offset=OFFSET)
    md = pymotor.deploy(net, tmp_path / "so3.pt2", **kw)
    assert md["architecture"] == "so3net" and md["check"]["max_abs_dF"] < 1e-4
    pymotor.deploy(net, tmp_path / "so3.pt", **kw)
    ts, pt2 = pymotor.load_model(tmp_path / "so3.pt", device="cpu"), pymotor.load_model(tmp_path / "so3.pt2")
    assert (ts.backend, pt2.backend) == ("torchscript", "pt2")
    numbers, geometries = frames
    e0, f0 = ts.potential(numbers).compute(np.stack(geometries))
    e1, f1 = pt2.potential(numbers).compute(np.stack(geometries))
    assert np.abs(e1 - e0).max() < 1e-4 and np.abs(f1 - f0).max() < 1e-4
