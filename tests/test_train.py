"""Training, evaluation and export with SchNetPack 2.2 (pymotor.train), on a toy dataset.

The toy dataset (pymotor.train.toydata) is ethanol on an analytic anharmonic elastic network
with an absolute energy of about -4150 eV, so the float64 offset handling is exercised.
Models are small (32 features, 2 interactions) to keep the default run fast.
"""

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("schnetpack")
pytest.importorskip("pytorch_lightning")

import torch  # noqa: E402

from pymotor.train import (  # noqa: E402
    TrainingDataError,
    evaluate,
    export,
    read_metadata,
    summarize_seeds,
    train,
)
from pymotor.train.data import energy_conversion  # noqa: E402
from pymotor.train.evaluate import error_statistics  # noqa: E402
from pymotor.train.plot import read_logs  # noqa: E402
from pymotor.train.toydata import _ethanol, make_toy_database, toy_energy_forces  # noqa: E402

pytestmark = pytest.mark.schnetpack

HP = {"n_atom_basis": 32, "n_interactions": 2, "lr": 1e-3, "val_batch_size": 64}
EV_PER_KCAL = energy_conversion("kcal/mol", "eV")


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    return {
        "eV": make_toy_database(d / "eth_eV.db", 240, "eV", seed=0),
        "kcal_b": make_toy_database(d / "eth_kcal_b.db", 120, "kcal/mol", seed=1),  # = eV_b
        "eV_b": make_toy_database(d / "eth_eV_b.db", 120, "eV", seed=1),
        "ar": make_toy_database(d / "eth_ar.db", 120, "eV", atomrefs=True, seed=2),
        "Ha": make_toy_database(d / "eth_Ha.db", 120, "Hartree", seed=3),
        "noF": make_toy_database(d / "eth_noF.db", 30, "eV", forces=False, seed=4),
    }


@pytest.fixture(scope="module")
def run(dbs, tmp_path_factory):
    """A 5-epoch SchNet run in kcal/mol on an eV database (unit conversion on the way)."""
    out = tmp_path_factory.mktemp("runs") / "r0"
    train(dbs["eV"], out, energy_unit="kcal/mol", epochs=5, seed=0, progress=False, hyperparameters=HP)
    return out


def test_few_epochs_lower_validation_loss(run):
    val = [v for _, v in read_logs(run)["val_loss"]]
    assert len(val) == 5
    assert val[-1] < 0.8 * val[0], val  # measured: 3108 -> 2093 (kcal/mol loss)
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert (run / "best_model.pt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    cfg = json.loads((run / "run.json").read_text())
    assert cfg["format"] == "pymotor.run/1"
    assert cfg["global_step"] == 5 * 10  # 154 train frames / batch 16 -> 10 steps per epoch
    assert cfg["databases"][0]["split_sizes"] == {"train": 154, "val": 38, "test": 48}


def test_metrics_in_kcal_per_mol_against_analytic_reference(run, dbs):
    """evaluate() on an eV database, model trained in kcal/mol: errors recomputed here
    from the analytic toy potential and the Python model, in kcal/mol."""
    res = evaluate(run, "val")
    assert res["units"] == {"energy": "kcal/mol", "forces": "kcal/mol/Angstrom"}
    assert res["n_frames"] == 38
    from ase.db import connect

    model = torch.load(run / "best_model.pt", weights_only=False)
    from pymotor.train.model import preprocessing_transforms
    from schnetpack.data.loader import _atoms_collate_fn

    atoms0 = _ethanol()
    tf = preprocessing_transforms(5.0, None, 0.0, remove_offsets=False)
    de, fa = [], []
    with connect(dbs["eV"]) as conn:
        for i in range(154, 192):  # the validation frames (time split: 154 train, 38 val, 48 test)
            row = conn.get(i + 1)
            E, F = toy_energy_forces(row.numbers, row.positions, atoms0.positions)  # eV
            x = {"_idx": torch.tensor([i]), "_atomic_numbers": torch.tensor(row.numbers),
                 "_n_atoms": torch.tensor([9]), "_positions": torch.tensor(row.positions),
                 "_cell": torch.zeros(1, 3, 3, dtype=torch.float64), "_pbc": torch.zeros(3, dtype=bool)}
            for t in tf:
                x = t(x)
            out = model(_atoms_collate_fn([x]))
            de.append(out["energy"].item() - E / EV_PER_KCAL)
            fa.append(np.abs(out["forces"].detach().double().numpy() - F / EV_PER_KCAL).mean())
    assert res["energy"]["mae"] == pytest.approx(np.mean(np.abs(de)), rel=1e-6)
    assert res["forces"]["mae"] == pytest.approx(np.mean(fa), rel=1e-5)
    assert res["energy"]["mae_se"] == pytest.approx(np.std(np.abs(de), ddof=1) / np.sqrt(38), rel=1e-5)
    assert (run / "metrics_val.json").is_file()


def test_error_statistics_standard_errors():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    s = a**2
    st = error_statistics(a, s, n_blocks=2)
    assert st["mae"] == 2.5
    assert st["mae_se"] == pytest.approx(np.std(a, ddof=1) / 2)
    assert st["rmse"] == pytest.approx(np.sqrt(7.5))
    # delta method: SE(sqrt(m)) = SE(m) / (2 sqrt(m))
    assert st["rmse_se"] == pytest.approx(np.std(s, ddof=1) / 2 / (2 * np.sqrt(7.5)))
    # two blocks: means 1.5 and 3.5
    assert st["mae_se_block"] == pytest.approx(np.std([1.5, 3.5], ddof=1) / np.sqrt(2))


def test_resume_continues_from_checkpoint(dbs, tmp_path):
    out = tmp_path / "res"
    r1 = train(dbs["eV_b"], out, energy_unit="eV", epochs=2, progress=False, hyperparameters=HP)
    ck = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ck["global_step"] == r1["global_step"] == 2 * 5  # 77 training frames: 5 batches of <= 16
    val1 = [v for _, v in read_logs(out)["val_loss"]]
    r2 = train(dbs["eV_b"], out, energy_unit="eV", epochs=4, progress=False, hyperparameters=HP)
    assert r2["global_step"] == 2 * r1["global_step"]
    assert r2["epoch"] == 4
    logs = read_logs(out)
    steps = [s for s, _ in logs["val_loss"]]
    assert steps == sorted(steps) and len(steps) == 4
    assert (out / "logs" / "session_1" / "metrics.csv").is_file()
    cfg = json.loads((out / "run.json").read_text())
    assert [s["global_step"] for s in cfg["sessions"]] == [10, 20]
    # the resumed session starts from the trained weights, not from scratch
    assert logs["val_loss"][2][1] < val1[0]
    # a finished run asked for the same epochs again does nothing more
    r3 = train(dbs["eV_b"], out, energy_unit="eV", epochs=4, progress=False, hyperparameters=HP)
    assert r3["global_step"] == r2["global_step"]


def test_last_checkpoint_is_written_every_epoch_without_improvement(dbs, tmp_path):
    """A killed run resumes from its last epoch even when validation stopped improving
    (Lightning's save_last alone writes last.ckpt only with a new best)."""
    out = tmp_path / "flat"
    train(dbs["eV_b"], out, energy_unit="eV", epochs=3, progress=False, hyperparameters=dict(HP, lr=0.0))
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    best = torch.load(out / "checkpoints" / "best.ckpt", weights_only=False, map_location="cpu")
    assert last["global_step"] == 3 * 5 and best["global_step"] == 5  # lr 0: epoch 1 stays the best


def test_session_time_limit_then_resume(dbs, tmp_path):
    out = tmp_path / "timed"
    hp = dict(HP, n_atom_basis=16, n_interactions=1)
    r1 = train(dbs["eV_b"], out, energy_unit="eV", epochs=3, max_time_s=0.0, progress=False, hyperparameters=hp)
    assert (r1["epoch"], r1["global_step"], r1["stop_reason"]) == (1, 5, "max_time")
    r2 = train(dbs["eV_b"], out, energy_unit="eV", epochs=3, progress=False, hyperparameters=hp)
    assert (r2["epoch"], r2["global_step"], r2["stop_reason"]) == (3, 15, "max_epochs")


def test_killed_session_keeps_its_record_and_logs(dbs, tmp_path, monkeypatch):
    """A session that dies mid-run (here: an exception at the end of epoch 2) keeps its
    run.json entry and its learning-curve log; the next session resumes and logs apart."""
    from pytorch_lightning.callbacks import Callback

    import pymotor.train.core as core

    class Kill(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                raise RuntimeError("simulated kill")

    monkeypatch.setattr(core, "_session_timer", lambda limit_s: Kill())
    out = tmp_path / "killed"
    hp = dict(HP, n_atom_basis=16, n_interactions=1)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(dbs["eV_b"], out, energy_unit="eV", epochs=4, max_time_s=1e9, progress=False,
              hyperparameters=hp)
    cfg = json.loads((out / "run.json").read_text())
    assert len(cfg["sessions"]) == 1
    s0 = cfg["sessions"][0]
    assert (s0["epoch"], s0["global_step"], s0["stop_reason"]) == (1, 5, "killed")
    assert s0["wall_time_s"] > 0 and cfg["wall_time_s"] == s0["wall_time_s"]
    # the best validation loss of the epochs it recorded (val_loss: the last column)
    rows = [r.split(",") for r in (out / "logs" / "session_0" / "metrics.csv").read_text().splitlines()[1:]]
    best = min(float(r[-1]) for r in rows if r[-1] and int(r[0]) < s0["epoch"])
    assert cfg["best_val_loss"] == pytest.approx(best, rel=1e-6)
    n_rows0 = len((out / "logs" / "session_0" / "metrics.csv").read_text().splitlines())
    monkeypatch.undo()
    r = train(dbs["eV_b"], out, energy_unit="eV", epochs=4, progress=False, hyperparameters=hp)
    assert r["epoch"] == 4 and r["stop_reason"] == "max_epochs"
    cfg = json.loads((out / "run.json").read_text())
    assert [s["stop_reason"] for s in cfg["sessions"]] == ["killed", "max_epochs"]
    assert cfg["wall_time_s"] == pytest.approx(sum(s["wall_time_s"] for s in cfg["sessions"]))
    # the first session's log is intact and the second logged into its own folder
    assert len((out / "logs" / "session_0" / "metrics.csv").read_text().splitlines()) == n_rows0
    assert (out / "logs" / "session_1" / "metrics.csv").is_file()
    assert len(read_logs(out)["val_loss"]) >= 3


def test_export_matches_python_model_with_float64_offset(run, tmp_path):
    out = export(run, tmp_path / "toy.pt")
    assert out.with_suffix(".md").read_text().startswith("# Model card: toy")
    md = read_metadata(out)
    assert md["format"] == "pymotor.model/1"
    assert md["energy_unit"] == "kcal/mol" and md["length_unit"] == "Angstrom"
    assert md["elements"] == [1, 6, 8] and md["architecture"] == "schnet"
    assert md["cutoff"] == 5.0
    assert set(md["card"]) >= {"datasets", "hyperparameters", "metrics", "training"}
    assert len(md["card"]["datasets"][0]["sha256"]) == 64
    extra = {"cutoff": ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    assert float(extra["cutoff"]) == 5.0
    assert not any("AddOffsets" in type(m).__name__ for m in scripted.modules())

    python_model = torch.load(run / "best_model.pt", weights_only=False)
    from pymotor.train.export import offset_energy

    offset = offset_energy(md, [8, 6, 6, 1, 1, 1, 1, 1, 1])
    # the absolute energy is beyond float32's 1e-4 eV resolution: offset must stay float64
    assert abs(offset) * EV_PER_KCAL > 4000
    assert abs(np.spacing(np.float32(offset * EV_PER_KCAL))) > 1e-4

    atoms = _ethanol()
    rng = np.random.default_rng(7)
    from pymotor.train.model import preprocessing_transforms
    from schnetpack.data.loader import _atoms_collate_fn

    tf = preprocessing_transforms(5.0, None, 0.0, remove_offsets=False)
    for _ in range(5):
        R = atoms.positions + rng.normal(0, 0.06, atoms.positions.shape)
        x = {"_idx": torch.tensor([0]), "_atomic_numbers": torch.tensor(atoms.numbers),
             "_n_atoms": torch.tensor([9]), "_positions": torch.tensor(R),
             "_cell": torch.zeros(1, 3, 3, dtype=torch.float64), "_pbc": torch.zeros(3, dtype=bool)}
        for t in tf:
            x = t(x)
        b = _atoms_collate_fn([x])
        inp = {k: b[k].clone() for k in ("_positions", "_atomic_numbers", "_idx_i", "_idx_j",
                                         "_idx_m", "_n_atoms", "_offsets", "_cell", "_pbc")}
        ref = python_model({k: v.clone() for k, v in inp.items()})
        got = scripted(inp)
        assert got["energy"].dtype == torch.float32
        e = got["energy"].double().item() + offset
        assert abs(e - ref["energy"].item()) * EV_PER_KCAL <= 1e-4
        dF = (got["forces"].double() - ref["forces"].double()).abs().max().item()
        assert dF * EV_PER_KCAL <= 1e-5


def test_exported_model_through_pymotor_load_model(run, tmp_path):
    """The lead's loader (C++ engine) gives the Python model's energies and forces in eV."""
    pymotor = pytest.importorskip("pymotor")
    if not hasattr(pymotor, "load_model"):
        pytest.skip("pymotor.load_model not available")
    out = export(run, tmp_path / "toy.pt", metrics=False)
    m = pymotor.load_model(out, device="cpu")
    python_model = torch.load(run / "best_model.pt", weights_only=False)
    from schnetpack.interfaces import AtomsConverter
    from schnetpack.transform import VesinNeighborList

    conv = AtomsConverter(neighbor_list=VesinNeighborList(cutoff=5.0), dtype=torch.float32)
    atoms = _ethanol()
    rng = np.random.default_rng(3)
    for _ in range(3):
        a = atoms.copy()
        a.positions += rng.normal(0, 0.06, a.positions.shape)
        e, f = m.compute(a)
        ref = python_model(conv(a))
        assert abs(e - ref["energy"].item() * EV_PER_KCAL) <= 1e-4
        assert np.abs(f - ref["forces"].double().detach().numpy() * EV_PER_KCAL).max() <= 1e-5


def test_evaluate_model_on_databases_equals_run_evaluation(run, dbs, tmp_path, capsys):
    """An exported model scored through the C++ engine on the run's own split gives the
    run's errors (float32 model vs Python model: ~1e-5 kcal/mol)."""
    from pymotor.train import evaluate_model
    from pymotor.train.cli import main

    model = export(run, tmp_path / "m.pt")
    ref = evaluate(run, "val", write=False)
    res = evaluate_model(model, [dbs["eV"]], split="val")
    assert res["n_frames"] == ref["n_frames"] and res["units"]["energy"] == "kcal/mol"
    for prop in ("energy", "forces"):
        for key in ("mae", "rmse", "mae_se"):
            assert res[prop][key] == pytest.approx(ref[prop][key], rel=1e-3, abs=1e-4), (prop, key)
    assert evaluate_model(model, dbs["eV"], split="val", stride=2)["n_frames"] == (ref["n_frames"] + 1) // 2
    assert main(["evaluate", str(model), "--data", dbs["eV"], "--split", "val"]) == 0
    assert f"val: {ref['n_frames']} frames" in capsys.readouterr().out
    # --json: one document; several models: {model: result}
    import json

    assert main(["evaluate", str(model), "--data", dbs["eV"], "--split", "val", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["forces"]["mae"] == pytest.approx(res["forces"]["mae"], rel=1e-12)
    import shutil

    twin = shutil.copy(model, tmp_path / "twin.pt")
    assert main(["evaluate", str(model), str(twin), "--data", dbs["eV"], "--split", "val", "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert list(both) == [str(model), str(twin)] and both[str(model)] == one
    assert both[str(twin)]["forces"] == one["forces"]
    with pytest.raises(TrainingDataError, match="forces"):
        evaluate_model(model, [dbs["noF"]])
    with pytest.raises(ValueError, match="`split`"):
        evaluate_model(model, [dbs["eV"]], split="validation")


def test_exported_model_conserves_energy_in_nve(run, tmp_path):
    """A short NVE run_md with the exported model (offset in float64) conserves energy."""
    pymotor = pytest.importorskip("pymotor")
    if not hasattr(pymotor, "run_md"):
        pytest.skip("pymotor.run_md not available")
    out = export(run, tmp_path / "toy.pt", metrics=False)
    traj = pymotor.run_md(pymotor.load_model(out, device="cpu"), _ethanol(), steps=400,
                          timestep_fs=0.25, temperature_K=300.0, thermostat=None, seed=1,
                          on_bond_change="ignore")  # a toy model; conservation only
    etot = np.asarray(traj.total_energy)
    ekin = np.asarray(traj.kinetic_energy)
    assert abs(etot.mean()) > 4000  # the absolute energy, offset included
    # fluctuations of the total energy are a small fraction of the kinetic energy's
    assert etot.std() < 0.01 * ekin.std(), (etot.std(), ekin.std())
    assert abs(etot[-50:].mean() - etot[:50].mean()) < 0.01 * ekin.std()


def test_variance_weighting_is_unit_invariant(dbs, tmp_path):
    """Same data stored in eV and in kcal/mol, trained in those units: with the variance
    weighting the validation losses agree (constant factor 1) epoch by epoch and the
    errors in kcal/mol are the same; with the fixed weighting the loss ratio drifts."""
    losses = {}
    for w in ("variance", "fixed"):
        for key, unit in (("eV_b", "eV"), ("kcal_b", "kcal/mol")):
            out = tmp_path / f"{w}_{key}"
            train(dbs[key], out, energy_unit=unit, epochs=3, weighting=w, progress=False,
                  hyperparameters=HP)
            losses[w, unit] = np.array([v for _, v in read_logs(out)["val_loss"]])
    ratio = losses["variance", "kcal/mol"] / losses["variance", "eV"]
    np.testing.assert_allclose(ratio, 1.0, rtol=1e-4)
    mv = evaluate(tmp_path / "variance_eV_b", "val")["forces"]["mae"]
    mk = evaluate(tmp_path / "variance_kcal_b", "val")["forces"]["mae"]
    assert mv == pytest.approx(mk, rel=1e-4)
    fixed = losses["fixed", "kcal/mol"] / losses["fixed", "eV"]
    c2 = energy_conversion("eV", "kcal/mol") ** 2
    # fixed weighting: not even the trivial c^2 rescaling holds once training starts
    assert np.ptp(fixed) / fixed.mean() > 0.1 or abs(fixed[-1] / c2 - 1) > 0.1


def test_several_databases_split_files_and_atomrefs(dbs, tmp_path):
    d = tmp_path / "multi"
    d.mkdir()
    a = shutil.copy(dbs["eV"], d / "a.db")
    b = shutil.copy(dbs["eV_b"], d / "b.db")
    np.savez(d / "b.db.split.npz", train_idx=np.arange(0, 60), val_idx=np.arange(70, 90),
             test_idx=np.arange(100, 120))
    out = tmp_path / "run"
    train([a, b], out, energy_unit="eV", epochs=1, progress=False, hyperparameters=HP)
    cfg = json.loads((out / "run.json").read_text())
    sizes = [x["split_sizes"] for x in cfg["databases"]]
    assert sizes == [{"train": 154, "val": 38, "test": 48}, {"train": 60, "val": 20, "test": 20}]
    assert cfg["databases"][1]["split_file"].endswith("b.db.split.npz")
    res = evaluate(out, "val")
    assert res["n_frames"] == 58

    # atomrefs from the database metadata become part of the offset
    out2 = tmp_path / "run_ar"
    train(dbs["ar"], out2, energy_unit="eV", epochs=1, progress=False, hyperparameters=HP)
    off = json.loads((out2 / "run.json").read_text())["energy_offset"]
    assert off["atomrefs"] == {"1": -13.6, "6": -1029.0, "8": -2041.0}
    assert abs(off["mean_per_atom"]) < 1.0  # only the small remainder is left per atom
    md = read_metadata(export(out2, tmp_path / "ar.pt", metrics=False))
    assert md["energy_offset"]["atomrefs"]["8"] == -2041.0


def test_fine_tuning_starts_from_trained_weights(run, dbs, tmp_path):
    out = tmp_path / "ft"
    train(dbs["eV_b"], out, energy_unit="kcal/mol", epochs=1, init_from=run, progress=False,
          hyperparameters=HP)
    fresh = tmp_path / "fresh"
    train(dbs["eV_b"], fresh, energy_unit="kcal/mol", epochs=1, progress=False, hyperparameters=HP)
    ft_loss = read_logs(out)["val_loss"][0][1]
    fresh_loss = read_logs(fresh)["val_loss"][0][1]
    assert ft_loss < 0.5 * fresh_loss
    cfg = json.loads((out / "run.json").read_text())
    src = json.loads((run / "run.json").read_text())
    assert cfg["config"]["init_from"] == str(run)
    assert cfg["energy_offset"]["mean_per_atom"] == src["energy_offset"]["mean_per_atom"]
    with pytest.raises(TrainingDataError, match="energy_unit"):
        train(dbs["eV_b"], tmp_path / "ft2", energy_unit="eV", epochs=1, init_from=run,
              progress=False, hyperparameters=HP)


def test_summarize_seeds(dbs, tmp_path):
    runs = []
    for seed in (0, 1):
        out = tmp_path / f"s{seed}"
        train(dbs["eV_b"], out, energy_unit="kcal/mol", epochs=1, seed=seed, progress=False,
              hyperparameters=HP)
        runs.append(out)
    one = [evaluate(r, "val")["forces"]["mae"] for r in runs]
    assert one[0] != one[1]  # different seeds, different models
    s = summarize_seeds(runs, "val")
    assert s["n_runs"] == 2 and s["units"]["energy"] == "kcal/mol"
    assert s["forces"]["mae"]["mean"] == pytest.approx(np.mean(one))
    assert s["forces"]["mae"]["se"] == pytest.approx(np.std(one, ddof=1) / np.sqrt(2))


# ---- bad input ------------------------------------------------------------------------


def test_database_without_forces_is_refused(dbs, tmp_path):
    with pytest.raises(TrainingDataError, match=r"no `forces` property"):
        train(dbs["noF"], tmp_path / "x", epochs=1, progress=False)
    assert not (tmp_path / "x").exists()


def test_mixed_units_are_refused(dbs, tmp_path):
    with pytest.raises(TrainingDataError, match=r"mixed units across databases \(energy\).*eV.*Hartree"):
        train([dbs["eV_b"], dbs["Ha"]], tmp_path / "x", epochs=1, progress=False)


def test_split_file_that_does_not_match_is_refused(dbs, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    b = shutil.copy(dbs["eV_b"], d / "b.db")
    np.savez(d / "b.split.npz", train_idx=np.arange(0, 100), val_idx=np.arange(100, 130),
             test_idx=np.arange(130, 140))
    with pytest.raises(TrainingDataError, match=r"does not match database .*120 frames"):
        train(b, tmp_path / "x", epochs=1, progress=False)
    assert not (tmp_path / "x").exists()  # nothing written before the checks pass
    np.savez(d / "b.split.npz", train_idx=np.arange(0, 60), val_idx=np.arange(50, 70),
             test_idx=np.arange(100, 110))
    with pytest.raises(TrainingDataError, match=r"10 frames are in both `train_idx` and `val_idx`"):
        train(b, tmp_path / "y", epochs=1, progress=False)
    np.savez(d / "b.split.npz", train_idx=np.arange(0, 60), val_idx=np.arange(60, 70),
             test_idx=np.arange(100, 110), n_frames=500)
    with pytest.raises(TrainingDataError, match=r"made for 500 frames, the database has 120"):
        train(b, tmp_path / "z", epochs=1, progress=False)


def test_run_directory_from_another_version_is_refused(run, dbs, tmp_path):
    other = tmp_path / "old"
    shutil.copytree(run, other)
    cfg = json.loads((other / "run.json").read_text())
    cfg["format"] = "pymotor.run/0"
    (other / "run.json").write_text(json.dumps(cfg))
    with pytest.raises(TrainingDataError, match=r"another version of pymotor .*'pymotor.run/0'"):
        train(dbs["eV"], other, energy_unit="kcal/mol", epochs=6, progress=False, hyperparameters=HP)
    with pytest.raises(TrainingDataError, match=r"another version"):
        evaluate(other)
    with pytest.raises(TrainingDataError, match=r"another version"):
        export(other, tmp_path / "m.pt")


def test_other_bad_arguments(run, dbs, tmp_path):
    with pytest.raises(TrainingDataError, match=r"different configuration: energy_unit"):
        train(dbs["eV"], run, energy_unit="eV", epochs=6, progress=False, hyperparameters=HP)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "file.txt").write_text("x")
    with pytest.raises(TrainingDataError, match=r"not a pymotor run directory"):
        train(dbs["eV"], junk, epochs=1, progress=False)
    with pytest.raises(TrainingDataError, match=r"`energy_unit` must be one of"):
        train(dbs["eV"], tmp_path / "u", energy_unit="kJ/mol", epochs=1)
    with pytest.raises(ValueError, match=r"`weighting` must be"):
        train(dbs["eV"], tmp_path / "u", weighting="auto", epochs=1)
    with pytest.raises(TrainingDataError, match=r"does not exist"):
        train(tmp_path / "missing.db", tmp_path / "u", epochs=1)
    with pytest.raises(TrainingDataError, match=r"not a pymotor run directory"):
        evaluate(junk)


def test_cli_train_evaluate_export(dbs, tmp_path, capsys):
    from pymotor.train.cli import main

    out = tmp_path / "cli_run"
    assert main(["train", dbs["eV_b"], "--out", str(out), "--energy-unit", "eV", "--epochs", "1",
                 "--no-progress", "--hp", "n_atom_basis=16", "--hp", "n_interactions=1"]) == 0
    assert json.loads((out / "run.json").read_text())["global_step"] == 5  # 77 frames / 16
    assert main(["train", dbs["eV_b"], "--out", str(tmp_path / "strided"), "--energy-unit", "eV",
                 "--epochs", "1", "--stride", "2", "--no-progress", "--hp", "n_atom_basis=16"]) == 0
    assert json.loads((tmp_path / "strided" / "run.json").read_text())["global_step"] == 3  # 39 / 16
    # one stride per database: 154 / 2 + 77 frames = 10 batches of 16
    assert main(["train", dbs["eV"], dbs["eV_b"], "--out", str(tmp_path / "strided2"), "--energy-unit", "eV",
                 "--epochs", "1", "--stride", "2,1", "--no-progress", "--hp", "n_atom_basis=16"]) == 0
    run2 = json.loads((tmp_path / "strided2" / "run.json").read_text())
    assert run2["global_step"] == 10 and run2["config"]["stride"] == [2, 1]
    assert main(["evaluate", str(out), "--split", "test"]) == 0
    txt = capsys.readouterr().out
    assert "kcal/mol" in txt and "test: 24 frames" in txt
    assert main(["export", str(out), "--out", str(tmp_path / "c.pt")]) == 0
    assert (tmp_path / "c.md").is_file()
    assert main(["train", dbs["noF"], "--out", str(tmp_path / "bad")]) == 2
    assert "no `forces` property" in capsys.readouterr().err


def test_unit_table_cli_rows_and_units(dbs, tmp_path, capsys):
    """The unit-table command trains one run per (weighting, unit, seed) and prints its rows;
    the same database trained in eV and in kcal/mol gives different errors with fixed weights."""
    import importlib.util
    from pathlib import Path

    # a research script (provenance of docs/training.md's unit table), not part of the package
    spec = importlib.util.spec_from_file_location(
        "unit_table", Path(__file__).resolve().parents[1] / "scripts" / "unit_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main = module.main

    hp = json.dumps({"n_atom_basis": 16, "n_interactions": 1})
    assert main([dbs["eV_b"], "--root", str(tmp_path / "u"), "--epochs", "2", "--seeds", "0",
                 "--units", "kcal/mol", "eV", "--weightings", "fixed", "--split", "test",
                 "--hp", hp]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| fixed |")]
    assert [r.split("|")[2].strip() for r in rows] == ["kcal/mol", "eV"]
    assert "test energy MAE (kcal/mol)" in out
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == ["fixed_eV_s0", "fixed_kcal_s0"]
    e_mae = [float(r.split("|")[3]) for r in rows]
    assert all(np.isfinite(e_mae)) and e_mae[0] != e_mae[1]


@pytest.mark.slow
def test_painn_trains_and_exports(dbs, tmp_path):
    out = tmp_path / "painn"
    train(dbs["eV_b"], out, model="painn", energy_unit="eV", epochs=3, progress=False, hyperparameters=HP)
    val = [v for _, v in read_logs(out)["val_loss"]]
    assert val[-1] < val[0]
    md = read_metadata(export(out, tmp_path / "painn.pt"))
    assert md["architecture"] == "painn"


def _zbl_lammps_eV(z_i, z_j, r_A):
    """ZBL universal screened nuclear repulsion (LAMMPS pair_zbl; Ziegler, Biersack, Littmark 1985), eV."""
    a = 0.46850 / (z_i ** 0.23 + z_j ** 0.23)
    x = r_A / a
    phi = (0.18175 * np.exp(-3.19980 * x) + 0.50986 * np.exp(-0.94229 * x)
           + 0.28022 * np.exp(-0.40290 * x) + 0.02817 * np.exp(-0.20162 * x))
    return 14.399645 * z_i * z_j / r_A * phi


def test_zbl_prior_added_on_fine_tuning_gives_the_repulsive_wall(run, dbs, tmp_path):
    """`--prior zbl` on a plain run: the ZBL wall below 0.9 Å, nothing changed where the data are."""
    from pymotor.fast_schnet import FastSchNetModel
    from pymotor.train.cli import main

    import pymotor

    out = tmp_path / "zbl"
    assert main(["train", dbs["eV_b"], "--out", str(out), "--energy-unit", "kcal/mol", "--epochs", "1",
                 "--init-from", str(run), "--prior", "zbl", "--no-progress",
                 "--hp", "n_atom_basis=32", "--hp", "n_interactions=2"]) == 0
    hp = json.loads((out / "run.json").read_text())["config"]["hyperparameters"]
    assert (hp["prior"], hp["prior_switch_on"], hp["prior_switch_off"]) == ("zbl", 0.4, 0.9)
    path = export(out, tmp_path / "zbl.pt", metrics=False)
    assert read_metadata(path)["card"]["hyperparameters"]["prior"] == "zbl"
    fast = pymotor.load_model(path, backend="auto")  # the fast backend evaluates the prior too
    assert isinstance(fast, FastSchNetModel) and fast.check_report["n_geometries"] == 2
    ts = pymotor.load_model(path, backend="torchscript")

    # without the prior (same weights): the difference is the analytic ZBL term times the switch
    python_model = torch.load(out / "best_model.pt", weights_only=False)
    assert [type(m).__name__ for m in python_model.output_modules] == [
        "Atomwise", "ZBLRepulsionEnergy", "Aggregation", "Forces"]
    plain_dir = tmp_path / "plain"
    shutil.copytree(out, plain_dir)
    mods = list(python_model.output_modules)
    python_model.output_modules = torch.nn.ModuleList([mods[0], mods[3]])
    torch.save(python_model, plain_dir / "best_model.pt")
    cfg = json.loads((plain_dir / "run.json").read_text())
    cfg["config"]["hyperparameters"]["prior"] = None
    (plain_dir / "run.json").write_text(json.dumps(cfg))
    plain = pymotor.load_model(export(plain_dir, tmp_path / "plain.pt", metrics=False), backend="torchscript")

    atoms = _ethanol()
    z = atoms.numbers
    h = 3 + int(np.argmax(z[3:] == 1))
    d = atoms.get_distances(h, range(len(z)))
    d[h] = np.inf
    c = int(np.argmin(d))
    u = (atoms.positions[h] - atoms.positions[c]) / d[c]
    from schnetpack.nn import SwitchFunction
    sw = SwitchFunction(0.4, 0.9)
    rows = []
    for r in (0.3, 0.5, 0.65, 0.8, 0.95, d[c]):
        a = atoms.copy()
        a.positions[h] = atoms.positions[c] + r * u
        e_fast, f_fast = fast.compute(a)
        e_ts, f_ts = ts.compute(a)
        e_plain, _ = plain.compute(a)
        pair = a.get_all_distances()[np.triu_indices(len(z), 1)]
        zi, zj = np.triu_indices(len(z), 1)
        expect = sum(_zbl_lammps_eV(z[i], z[j], rr) * float(sw(torch.tensor([rr]))[0])
                     for i, j, rr in zip(zi, zj, pair) if rr < 0.9)
        # LAMMPS' 0.46850 Å vs SchNetPack's 0.8854 bohr = 0.468514 Å in the screening length: ~1e-4 relative
        assert abs((e_ts - e_plain) - expect) <= 1e-3 + 2e-4 * expect
        assert abs(e_fast - e_ts) <= 1e-4 + 1e-6 * abs(expect)
        assert np.abs(f_fast - f_ts).max() <= 1e-4 * max(1.0, np.abs(f_ts).max())
        rows.append(e_ts - e_plain)
    assert rows[-1] == 0.0 and rows[-2] == 0.0  # above 0.9 Å: the model is unchanged
    assert rows[0] > rows[1] > rows[2] > rows[3] > 0  # a monotonic wall
    assert rows[1] > 20.0  # C-H at 0.5 Å: ~26 eV (GFN2-xTB 28 eV on CPNX)

    # the fast backend's forces are -dE/dx inside the switch
    a = atoms.copy()
    a.positions[h] = atoms.positions[c] + 0.6 * u
    f = fast.compute(a)[1]
    eps = 1e-4
    for k in range(3):
        ap, am = a.copy(), a.copy()
        ap.positions[h, k] += eps
        am.positions[h, k] -= eps
        num = -(fast.compute(ap)[0] - fast.compute(am)[0]) / (2 * eps)
        assert abs(num - f[h, k]) <= 2e-3 * max(1.0, abs(f[h, k]))


def test_runs_written_before_the_prior_option_resume_without_it(dbs, tmp_path):
    old = tmp_path / "old"
    train(dbs["eV_b"], old, energy_unit="eV", epochs=1, progress=False, hyperparameters=HP)
    cfg = json.loads((old / "run.json").read_text())
    for k in ("prior", "prior_switch_on", "prior_switch_off"):  # as a run.json of an earlier version
        cfg["config"]["hyperparameters"].pop(k)
    (old / "run.json").write_text(json.dumps(cfg))
    res = train(dbs["eV_b"], old, energy_unit="eV", epochs=2, progress=False, hyperparameters=HP)
    assert res["epoch"] == 2
    with pytest.raises(ValueError, match=r"`prior` must be one of"):
        train(dbs["eV"], tmp_path / "p", epochs=1, hyperparameters={"prior": "lj"})
    with pytest.raises(ValueError, match=r"prior_switch_on"):
        train(dbs["eV"], tmp_path / "p", epochs=1, hyperparameters={"prior": "zbl", "prior_switch_on": 1.0,
                                                                     "prior_switch_off": 0.5})


def test_export_pt2_through_the_command_line_equals_the_torchscript_export(run, tmp_path):
    """`pymotor export RUN --format pt2`: an AOTInductor package with the run's metadata and a
    card, checked against the Python model at export; through load_model it gives the
    TorchScript export's energies (offset in float64) and forces within 1e-4 eV(/A)."""
    import subprocess
    import sys

    import pymotor

    ts = export(run, tmp_path / "toy.pt", metrics=False)
    out = tmp_path / "toy.pt2"
    r = subprocess.run([sys.executable, "-m", "pymotor.cli", "export", str(run), "--out", str(out),
                        "--format", "pt2", "--eval-stride", "5"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    card = out.with_suffix(".md").read_text()
    assert "AOTInductor package (.pt2) compiled for cpu" in card and "Export check: compiled package" in card
    pt2 = pymotor.load_model(out)
    assert pt2.backend == "pt2" and pt2.file.metadata["card"]["datasets"][0]["sha256"]
    assert pt2.energy_unit == "kcal/mol" and pt2.file.elements == [1, 6, 8]
    atoms = _ethanol()
    rng = np.random.default_rng(3)
    pos = np.stack([atoms.positions + rng.normal(0, 0.05, atoms.positions.shape) for _ in range(3)])
    e0, f0 = pymotor.load_model(ts, backend="torchscript").potential(atoms.numbers).compute(pos)
    e1, f1 = pt2.potential(atoms.numbers).compute(pos)
    assert abs(e0[0]) > 4000  # eV: the offset is added in float64 by both
    assert np.abs(e1 - e0).max() < 1e-4 and np.abs(f1 - f0).max() < 1e-4


def test_evaluate_model_on_a_held_out_trajectory_per_conformer(tmp_path, tiny_model_path):
    """evaluate_model(split="all", by_conformer=True) on CPNX frames of both diastereomers whose
    reference is the model itself plus a known error per diastereomer: the per-conformer MAEs
    are those errors, the labels are the mirror-invariant pair labels, every frame is counted."""
    import pymotor
    from pymotor.data.conformers import motor_labels
    from pymotor.data.generate import write_database
    from pymotor.train.evaluate import evaluate_model
    from pymotor.trajectory import Trajectory

    model = pymotor.load_model(tiny_model_path, backend="torchscript", device="cpu")
    rng = np.random.default_rng(4)
    frames, e_err, f_err = [], [], []
    for dia, de_kcal, df_kcal in (("RP/SM", 0.5, 0.2), ("RM/SP", -1.25, -0.7)):
        base = pymotor.data.cpnx(dia)
        for _ in range(6):
            a = base.copy()
            a.positions += rng.normal(0, 0.01, a.positions.shape)
            frames.append(a)
            e_err.append(de_kcal)
            f_err.append(df_kcal)
    kcal = 1.0 / EV_PER_KCAL
    e = np.empty(len(frames))
    f = np.empty((len(frames), len(frames[0]), 3))
    for k, a in enumerate(frames):
        e[k], f[k] = model.compute(a)
    # reference = model - error, so that model - reference = error (eV in the trajectory)
    e_ref = e - np.array(e_err) / kcal
    f_ref = f - np.array(f_err)[:, None, None] / kcal
    pos = np.stack([a.positions for a in frames])
    n = len(frames)
    traj = Trajectory(atomic_numbers=frames[0].numbers, masses=frames[0].get_masses(), step=np.arange(n),
                      time_fs=np.arange(n) * 1.0, positions=pos, velocities=np.zeros_like(pos), forces=f_ref,
                      potential_energy=e_ref, kinetic_energy=np.zeros(n), conserved_energy=np.zeros(n), n_dof=138)
    db = tmp_path / "held_out.db"
    write_database(db, traj, energy_unit="kcal/mol", name="held_out")

    res = evaluate_model(tiny_model_path, [db], split="all", by_conformer=True)
    assert res["n_frames"] == n and res["split"] == "all"
    pairs = motor_labels(frames).pair
    groups = res["by_conformer"]
    assert sum(g["n_frames"] for g in groups.values()) == n
    assert set(groups) == set(pairs) and len(groups) == 2
    for lab, g in groups.items():
        k = int(np.flatnonzero(pairs == lab)[0])
        assert g["n_frames"] == 6
        assert g["energy"]["mae"] == pytest.approx(abs(e_err[k]), abs=1e-4)  # float32 model, centred positions
        assert g["forces"]["mae"] == pytest.approx(abs(f_err[k]), abs=1e-4)
    assert res["energy"]["mae"] == pytest.approx((0.5 + 1.25) / 2, abs=1e-4)
    with pytest.raises(ValueError, match="`split` must be 'train', 'val', 'test' or 'all'"):
        evaluate_model(tiny_model_path, [db], split="everything")
