"""The traced energy+force graph used for compiled training (pymotor.train.compiled).

Reference: the eager SchNetPack model (energy, forces, and the gradient of the
force-matching loss with respect to every parameter, which goes through the double
backward), in float64, and a central finite difference of the loss.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("schnetpack")

import schnetpack.properties as P  # noqa: E402

from pymotor.train.compiled import CompiledForceField, trace_energy_forces  # noqa: E402
from pymotor.train.model import build_model, preprocessing_transforms  # noqa: E402
from pymotor.train.toydata import TOY_ATOMREFS_EV, _ethanol, toy_energy_forces  # noqa: E402

HP = {"n_atom_basis": 16, "n_interactions": 2, "n_rbf": 8, "cutoff": 4.0, "prior": "zbl",
      "prior_switch_on": 0.4, "prior_switch_off": 0.9}


def _batch(n_mol, seed, sigma=0.08):
    from schnetpack.data.loader import _atoms_collate_fn

    rng = np.random.default_rng(seed)
    mol = _ethanol()
    R0 = mol.positions.copy()
    ar = torch.tensor([TOY_ATOMREFS_EV.get(z, 0.0) for z in range(10)], dtype=torch.float64)
    ts = preprocessing_transforms(HP["cutoff"], ar, 0.0)
    frames = []
    for k in range(n_mol):
        R = R0 + sigma * rng.standard_normal(R0.shape)
        E, F = toy_energy_forces(mol.numbers, R, R0)
        x = {P.idx: torch.tensor([k]), P.Z: torch.tensor(mol.numbers), P.n_atoms: torch.tensor([len(mol)]),
             P.R: torch.tensor(R), P.cell: torch.zeros(1, 3, 3, dtype=torch.float64), P.pbc: torch.zeros(3, dtype=torch.bool),
             "energy": torch.tensor([E]), "forces": torch.tensor(F)}
        for t in ts:
            x = t(x)
        frames.append(x)
    return _atoms_collate_fn(frames)


def _double(b):
    return {k: (v.double() if v.is_floating_point() else v) for k, v in b.items()}


def _net(arch, dtype=torch.float64):
    torch.manual_seed(3)
    net = build_model(arch, HP, None, 0.0, energy_unit="eV").to(dtype)
    net.train()
    return net


def _loss(out, b):
    return 0.01 * ((out["energy"] - b["energy"]) ** 2).mean() + 0.99 * ((out["forces"] - b["forces"]) ** 2).mean()


def _eager(net, b):
    net.do_postprocessing = False
    out = net({k: v.clone() for k, v in b.items()})
    net.do_postprocessing = None
    return out


@pytest.mark.parametrize("arch", ["painn", "schnet"])
def test_traced_graph_equals_eager_model_and_its_loss_gradient(arch):
    net = _net(arch)
    b = _double(_batch(4, seed=1))
    ff = CompiledForceField(net, HP["cutoff"], compile=False)
    ref = _eager(net, b)
    out = ff(b)
    assert ff.traces == 1
    np.testing.assert_allclose(out["energy"].detach(), ref["energy"].detach(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["forces"].detach(), ref["forces"].detach(), rtol=0, atol=1e-10)

    grads = []
    for pred in (ref, out):
        net.zero_grad()
        _loss(pred, b).backward()
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for k in grads[0]:
        np.testing.assert_allclose(grads[1][k], grads[0][k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_detach_removal_is_what_makes_the_loss_gradient_exact():
    """Without removing the tracer's detach nodes the parameters lose the force graph's
    second-order part; the central finite difference of the loss decides."""
    net = _net("painn")
    b = _double(_batch(3, seed=2))
    ff = CompiledForceField(net, HP["cutoff"], compile=False)
    w = dict(net.named_parameters())["representation.interactions.0.interatomic_context_net.0.bias"]

    net.zero_grad()
    _loss(ff(b), b).backward()
    g = w.grad[:3].clone()
    h = 1e-5
    fd = []
    for j in range(3):
        with torch.no_grad():
            w[j] += h
        lp = _loss(ff(b), b).item()
        with torch.no_grad():
            w[j] -= 2 * h
        lm = _loss(ff(b), b).item()
        with torch.no_grad():
            w[j] += h
        fd.append((lp - lm) / (2 * h))
    np.testing.assert_allclose(g.numpy(), fd, rtol=1e-6, atol=1e-9)


def test_padding_capacity_grows_and_shapes_are_bounded():
    net = _net("painn")
    ff = CompiledForceField(net, HP["cutoff"], compile=False, max_shapes=1)
    b1 = _double(_batch(2, seed=3, sigma=0.02))
    ff(b1)
    cap = ff._graphs[next(iter(ff._graphs))][0]
    assert cap >= 1.15 * b1[P.idx_i].shape[0]
    # same shape, more pairs than the capacity (a compressed frame): traced again, still exact
    b2 = _double(_batch(2, seed=4, sigma=0.02))
    n = int(cap - b2[P.idx_i].shape[0]) + 10
    for k in (P.idx_i, P.idx_j):
        b2[k] = torch.cat([b2[k], b2[k][:n]])
    b2[P.offsets] = torch.cat([b2[P.offsets], b2[P.offsets][:n]])
    out = ff(b2)
    assert ff.traces == 2
    np.testing.assert_allclose(out["forces"].detach(), _eager(net, b2)["forces"].detach(), atol=1e-10)
    # a third molecule count is beyond max_shapes: the eager model is used (None)
    assert ff(_double(_batch(3, seed=5))) is None


def test_eval_mode_runs_without_autograd():
    net = _net("schnet")
    b = _double(_batch(2, seed=6))
    ff = CompiledForceField(net, HP["cutoff"], compile=False)
    net.eval()
    out = ff(b)
    assert not out["forces"].requires_grad
    net.do_postprocessing = False
    ref = net({k: v.clone() for k, v in b.items()})
    np.testing.assert_allclose(out["forces"], ref["forces"].detach(), atol=1e-10)


def test_compiled_graph_follows_parameter_updates_in_both_modes():
    """The compiled graph reads the parameters at every call: after in-place updates (the
    optimiser's step, the EMA swap's ``.data.copy_``) energy and forces still equal the eager
    model's, in training (autograd) and evaluation (no_grad) mode. Without functionalizing
    the traced graph, Inductor's training graph kept stale values for the forces."""
    net = _net("painn", torch.float32)
    b = _batch(3, seed=7)
    ff = CompiledForceField(net, HP["cutoff"], compile=True)
    for mode, scale in (("train", 1.0), ("train", 1.1), ("eval", 1.1), ("eval", 1 / 1.1), ("train", 1 / 1.1)):
        net.train(mode == "train")
        with torch.no_grad():
            for p in net.parameters():
                p.data.copy_(p.data * scale)
        ref = _eager(net, b)
        out = ff({k: v.clone() for k, v in b.items()})
        assert out["forces"].requires_grad == (mode == "train")
        f_ref = ref["forces"].detach()
        scale_F = float(f_ref.abs().max())  # float32: errors relative to the largest component
        np.testing.assert_allclose(out["energy"].detach(), ref["energy"].detach(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["forces"].detach(), f_ref, rtol=0, atol=1e-5 * scale_F,
                                   err_msg=f"{mode} after scaling by {scale}")


def test_compile_argument_is_checked(tmp_path):
    from pymotor.train import train

    with pytest.raises(ValueError, match="`compile` must be None"):
        train([str(tmp_path / "x.db")], tmp_path / "run", compile="yes")


@pytest.mark.slow
def test_compiled_training_follows_the_eager_run(tmp_path):
    """Two epochs on toy ethanol, compiled vs eager from the same seed: the same losses up to
    float32 rounding (Inductor reorders sums)."""
    import csv

    from pymotor.train import train
    from pymotor.train.toydata import make_toy_database

    db = make_toy_database(tmp_path / "eth.db", 200, "eV", seed=0)
    hp = dict(HP, val_batch_size=16)
    logs = []
    for flag in (False, True):
        out = tmp_path / f"run_{flag}"
        train([db], out, model="painn", energy_unit="eV", epochs=2, batch_size=8, seed=0,
              hyperparameters=hp, progress=False, compile=flag)
        with open(next(out.glob("logs/*/metrics.csv"))) as fh:
            logs.append([float(r["val_loss"]) for r in csv.DictReader(fh) if r["val_loss"]])
    v0, v1 = logs
    assert len(v0) == len(v1) == 2
    np.testing.assert_allclose(v1, v0, rtol=2e-3)
