"""On-the-fly learning MD (pymotor.learn): ethanol, GFN2-xTB (tblite) and a committee of two
small SchNets trained here for seconds on a 400 K GFN2-xTB trajectory.

What is shown: the committee's mean and spread; the default threshold's calibration; the loop
labels the checked frames whose committee force spread is above the threshold and no others
(recomputed here from the trajectory with each member on its own); the labels equal direct
GFN2-xTB single points; fine-tuning lowers the committee's error on the frames it labelled; a
loop killed (SIGKILL at a label, in the middle of a round of retraining, and by an exception)
resumes to the uninterrupted run's labels, trajectory and models with no xTB call repeated;
bad options get errors naming them (API and CLI).
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("schnetpack")
pytest.importorskip("tblite")

from ase.build import molecule  # noqa: E402

import pymotor  # noqa: E402
from pymotor.learn import Committee, calibrate_threshold, force_std, on_the_fly, resolve_committee  # noqa: E402
from pymotor.learn.journal import Journal  # noqa: E402

pytestmark = [pytest.mark.xtb, pytest.mark.schnetpack]

HP = {"n_atom_basis": 32, "n_interactions": 2, "n_rbf": 16, "lr": 3e-3, "val_batch_size": 64}
KCAL_EV = pymotor.units.ENERGY_UNITS_EV["kcal/mol"]  # eV per kcal/mol, as the databases
#: the loop's settings in the MD-only tests (labels, no retraining)
LABEL_RUN = dict(temperature_K=700.0, steps=240, check_every=3, segment_steps=240, interval=1, retrain=False,
                 on_bond_change="ignore", progress=False)
#: the settings of the retraining runs (uninterrupted and killed: they must agree)
RETRAIN_RUN = dict(temperature_K=700.0, steps=120, check_every=2, segment_steps=60, interval=2, retrain_every=8,
                   retrain_epochs=6, retrain_lr=1e-3, replay_frames=50, on_bond_change="ignore")


def _xtb_database(path, temperature_K, steps, seed):
    """A GFN2-xTB NVT trajectory of ethanol as a pymotor reference database (kcal/mol, atom
    references) with a random split."""
    from pymotor.data.generate import isolated_atom_energies, make_split, write_database
    from pymotor.data.xtb import make_calculator
    from pymotor.learn.retrain import write_split

    atoms = molecule("CH3CH2OH")
    traj = pymotor.run_md(make_calculator("tblite"), atoms, steps=steps, timestep_fs=0.5,
                          temperature_K=temperature_K, seed=seed)
    write_database(path, traj, energy_unit="kcal/mol", atomrefs_eV=isolated_atom_energies(atoms.numbers),
                   metadata={"method": "GFN2-xTB"}, name=Path(path).stem)
    write_split(Path(path).with_name(Path(path).stem + "_split.npz"), make_split(len(traj), "random", seed=0), path)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("learn_data")
    return {"ref": _xtb_database(d / "ref.db", 400.0, 400, 0),
            "test": _xtb_database(d / "indep.db", 700.0, 200, 7)}


@pytest.fixture(scope="module")
def members(data, tmp_path_factory):
    """Two SchNets (seeds 0 and 1), 12 epochs on the 400 K frames, exported."""
    from pymotor.train import export, train

    d = tmp_path_factory.mktemp("learn_models")
    paths = []
    for seed in (0, 1):
        train(data["ref"], d / f"run{seed}", energy_unit="kcal/mol", epochs=12, seed=seed, progress=False,
              hyperparameters=HP)
        paths.append(str(export(d / f"run{seed}", d / f"m{seed}.pt", metrics=False)))
    return {"paths": paths, "runs": [d / "run0", d / "run1"], "dir": d}


@pytest.fixture(scope="module")
def threshold(members, data):
    """The median max force std of the committee on the independent 700 K frames: at 700 K
    the loop meets geometries on both sides of it."""
    from pymotor.train.evaluate import reference_frames

    atoms, _, _ = reference_frames([data["test"]], split="test")
    c = Committee(members["paths"])
    pred = c.evaluate_frames(np.array([a.positions for a in atoms]), atoms[0].numbers)
    return float(np.median(pred.max_force_std))


@pytest.fixture(scope="module")
def label_run(members, threshold, tmp_path_factory):
    out = tmp_path_factory.mktemp("learn_label") / "run"
    res = on_the_fly(members["paths"], molecule("CH3CH2OH"), out, threshold=threshold, **LABEL_RUN)
    return {"out": out, "res": res}


# ---------------------------------------------------------------------------------------
# the committee
# ---------------------------------------------------------------------------------------
def test_committee_mean_spread_and_specs(members, rng):
    a = molecule("CH3CH2OH")
    pos = a.positions[None] + rng.normal(0, 0.05, (3, len(a), 3))
    c = Committee(members["paths"])
    pred = c.evaluate(pos, a.numbers)
    singles = [pymotor.load_model(p).potential(a.numbers).compute(pos) for p in members["paths"]]
    e = np.array([s[0] for s in singles])
    f = np.array([s[1] for s in singles])
    assert np.allclose(pred.energy, e.mean(0), rtol=0, atol=1e-10)
    assert np.allclose(pred.forces, f.mean(0), rtol=0, atol=1e-10)
    # sigma_i = sqrt(1/M sum_m |F_i^m - <F_i>|^2), written out for two members: |F^0 - F^1| / 2
    assert np.allclose(pred.force_std, np.linalg.norm(f[0] - f[1], axis=-1) / 2, atol=1e-12)
    assert np.allclose(pred.max_force_std, (np.linalg.norm(f[0] - f[1], axis=-1) / 2).max(-1), atol=1e-12)
    assert np.allclose(force_std(f), pred.force_std)
    # batched frames = one call
    many = c.evaluate_frames(np.concatenate([pos] * 3), a.numbers, batch=4)
    assert np.allclose(many.max_force_std, np.tile(pred.max_force_std, 3), atol=1e-12)
    # specs: list, comma string, folder
    assert resolve_committee(",".join(members["paths"])) == [Path(p) for p in members["paths"]]
    assert resolve_committee(members["dir"]) == [Path(p) for p in members["paths"]]
    # a shipped committee's manifest: members relative to the models folder
    import json

    import pymotor.models as models

    shipped = Path(members["dir"])
    (shipped / "test-committee.json").write_text(json.dumps({"members": [Path(p).name for p in members["paths"]]}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "MODEL_DIR", shipped)
        assert resolve_committee("test-committee") == [Path(p) for p in members["paths"]]
    (shipped / "test-committee.json").unlink()
    # the committee mean drives plain MD too
    t = pymotor.run_md(c.potential(a.numbers), a, steps=20, temperature_K=300.0)
    assert len(t) == 21 and np.isfinite(t.potential_energy).all()


def test_committee_calibration_ranks_the_true_error(members, data, tmp_path):
    """committee_calibration on the 400 K (training distribution) and 700 K (beyond it) test
    frames: spread and error per frame equal a recomputation from each member's forces and the
    reference; the 700 K frames have larger errors and larger spreads, the spread ranks the error
    (Spearman > 0.3 over both sets); the CLI prints the same numbers and writes the plot."""
    from scipy.stats import spearmanr

    from pymotor.learn.calibration import committee_calibration, plot_calibration
    from pymotor.train.data import energy_conversion
    from pymotor.train.evaluate import reference_frames

    both = committee_calibration(members["paths"], [data["ref"], data["test"]], split="test", n_bins=5)
    atoms, _, f_ref = reference_frames([data["ref"], data["test"]], split="test")
    assert both["n_frames"] == len(atoms) and both["n_members"] == 2
    kcal = energy_conversion("eV", "kcal/mol")
    pred = Committee(members["paths"]).evaluate_frames(np.array([a.positions for a in atoms]), atoms[0].numbers)
    f = pred.member_forces * kcal                                          # (M, F, N, 3)
    mean = f.mean(axis=0)
    spread = np.sqrt(((f - mean) ** 2).sum(-1).mean(axis=0)).max(axis=1)
    error = np.linalg.norm(mean - np.array(f_ref), axis=-1).max(axis=1)
    np.testing.assert_allclose(both["spread"], spread, rtol=1e-9)
    np.testing.assert_allclose(both["error"], error, rtol=1e-9)
    assert both["spearman_frame"] == pytest.approx(spearmanr(spread, error).statistic, abs=1e-12)
    assert both["spearman_frame"] > 0.3, both["spearman_frame"]
    assert [b["n"] for b in both["bins"]] == [len(atoms) // 5 + (k < len(atoms) % 5) for k in range(5)]
    assert both["bins"][-1]["rmse"] > both["bins"][0]["rmse"]  # the top spread bin has the larger errors

    cool = committee_calibration(members["paths"], [data["ref"]], split="test")
    hot = committee_calibration(members["paths"], [data["test"]], split="test")
    assert np.median(hot["error"]) > np.median(cool["error"])
    assert np.median(hot["spread"]) > np.median(cool["spread"])
    png = plot_calibration([cool, hot], tmp_path / "cal.png", ["400 K", "700 K"])
    assert png.stat().st_size > 5000

    r = subprocess.run([sys.executable, "-m", "pymotor.cli", "committee-calibration", "--committee",
                        ",".join(members["paths"]), "--data", data["ref"], data["test"], "--bins", "5",
                        "--plot", str(tmp_path / "cli.png")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"Spearman per frame {both['spearman_frame']:.3f}" in r.stdout and (tmp_path / "cli.png").is_file()


def test_threshold_calibrated_on_own_validation_frames(members, data):
    from pymotor.train.data import Frames, choose_split, inspect_database

    c = Committee(members["paths"])
    cal = calibrate_threshold(c, quantile=0.9)
    assert cal["databases"] == [data["ref"]]  # the members' own training data, from their cards
    info = inspect_database(data["ref"], hash_file=False)
    val = choose_split(info)["val"]
    fr = Frames(info, "eV")
    pots = [pymotor.load_model(p).potential(fr.Z[0]) for p in members["paths"]]
    fs = np.array([[pot.compute(fr.R[i][None])[1][0] for i in val] for pot in pots])  # (M, frames, N, 3)
    s = (np.linalg.norm(fs[0] - fs[1], axis=-1) / 2).max(-1)
    assert cal["n_frames"] == len(val)
    assert cal["threshold_eV_per_A"] == pytest.approx(np.quantile(s, 0.9), rel=1e-9)


# ---------------------------------------------------------------------------------------
# labelling
# ---------------------------------------------------------------------------------------
def test_labels_exactly_the_checked_frames_above_threshold(label_run, members, threshold):
    out = label_run["out"]
    traj = pymotor.read_trajectory(out / "md.h5")
    assert list(traj.step) == list(range(LABEL_RUN["steps"] + 1))
    z = traj.atomic_numbers
    checked = np.arange(0, LABEL_RUN["steps"] + 1, LABEL_RUN["check_every"])
    fs = np.array([pymotor.load_model(p).potential(z).compute(traj.positions[checked])[1] for p in members["paths"]])
    sigma = np.sqrt(((fs - fs.mean(0)) ** 2).sum(-1).mean(0)).max(-1)  # written out, independently
    expected = set(checked[sigma > threshold].tolist())
    j = Journal(out / "journal.jsonl", read_only=True)
    assert sorted(k[0] for k in j.entries) == checked.tolist()  # every checked step, no other
    called = {e["step"] for e in j.checks() if "xtb" in e or "xtb_error" in e}
    assert called == expected
    assert 0 < len(expected) < len(checked)  # both kinds of decision happen
    assert label_run["res"].xtb_calls == len(expected)
    for e in j.checks():
        k = int(np.flatnonzero(checked == e["step"])[0])
        assert e["std"] == pytest.approx(sigma[k], rel=1e-9, abs=1e-12)
    # at a labelled step the trajectory went on with GFN2-xTB's energy and forces
    lab = j.labels()
    s0 = lab[0]["step"]
    assert traj.potential_energy[s0] == lab[0]["xtb"]["energy_eV"]
    assert np.allclose(traj.forces[s0], lab[0]["xtb"]["forces_eV_A"], rtol=1e-12, atol=0)  # (stored in kJ/mol/A)
    assert np.array_equal(traj.positions[s0], np.array(lab[0]["xtb"]["positions_A"]))


def test_labels_equal_direct_gfn2_xtb(label_run):
    from ase import Atoms
    from ase.db import connect

    from pymotor.data.xtb import make_calculator

    out = label_run["out"]
    j = Journal(out / "journal.jsonl", read_only=True)
    lab = j.labels()
    calc = make_calculator("tblite", reuse_wavefunction=False)
    with connect(str(out / "labels.db")) as db:
        rows = list(db.select(sort="id"))
        units = db.metadata["_property_unit_dict"]
    assert units["energy"] == "kcal/mol" and len(rows) == len(lab)
    for row, e in zip(rows, lab):
        assert (row.key_value_pairs["step"], row.key_value_pairs["replica"]) == (e["step"], e["replica"])
        a = Atoms(numbers=row.numbers, positions=e["xtb"]["positions_A"])
        a.calc = calc
        en, fo = a.get_potential_energy(), a.get_forces()
        assert e["xtb"]["energy_eV"] == pytest.approx(en, abs=1e-9)
        assert np.allclose(e["xtb"]["forces_eV_A"], fo, rtol=0, atol=1e-9)
        assert float(row.data["energy"][0]) * KCAL_EV == pytest.approx(en, abs=1e-6)
        assert np.allclose(row.data["forces"] * KCAL_EV, fo, rtol=0, atol=1e-6)
        # the database holds the geometry (centre of mass at the origin)
        shift = row.positions - np.asarray(e["xtb"]["positions_A"])
        assert np.allclose(shift, shift[0], atol=1e-10)


def test_threshold_zero_labels_every_checked_frame_of_every_replica(members, tmp_path):
    res = on_the_fly(members["paths"], molecule("CH3CH2OH"), tmp_path / "all", threshold=0, steps=20,
                     check_every=10, replicas=2, retrain=False, temperature_K=300.0, progress=False)
    j = Journal(tmp_path / "all" / "journal.jsonl", read_only=True)
    assert sorted((e["step"], e["replica"]) for e in j.labels()) == [(s, r) for s in (0, 10, 20) for r in (0, 1)]
    assert res.xtb_calls == 6 and res.report["fraction_steps_on_xtb"] == pytest.approx(6 / 40)
    t0, t1 = (pymotor.read_trajectory(tmp_path / "all" / f"md_{r}.h5") for r in (0, 1))
    assert not np.allclose(t0.positions[-1], t1.positions[-1])  # replicas of their own


def test_exception_then_resume_repeats_no_xtb_call(label_run, members, threshold, tmp_path, monkeypatch):
    """An exception (KeyboardInterrupt) right after the 25th label is journaled, in the middle of
    a segment (run_md has committed its state after 100 or 200 steps): the repeated call runs
    the steps after the commit again, takes the labels there from the journal, and finishes
    with the uninterrupted run's journal and trajectory; the two calls together make as many
    xTB calls as the uninterrupted run."""
    from pymotor.learn import journal as journal_mod

    out = tmp_path / "run"
    orig = journal_mod.Journal.append
    seen = []

    def append(self, entry, durable=False):
        orig(self, entry, durable)
        if "xtb" in entry:
            seen.append(entry["step"])
            if len(seen) == 25:
                raise KeyboardInterrupt

    monkeypatch.setattr(journal_mod.Journal, "append", append)
    with pytest.raises(KeyboardInterrupt):
        on_the_fly(members["paths"], molecule("CH3CH2OH"), out, threshold=threshold, **LABEL_RUN)
    monkeypatch.undo()
    first = json.loads((out / "learn_state.json").read_text())["sessions"][-1]
    assert first["xtb_calls"] == 25 and first["steps_to"] in (100, 200) and seen[-1] > first["steps_to"]
    res = on_the_fly(out=out, resume=True, progress=False)  # everything else from the stored settings
    ref = label_run["res"]
    assert first["xtb_calls"] + res.xtb_calls == ref.xtb_calls
    a = Journal(out / "journal.jsonl", read_only=True).checks()
    b = Journal(label_run["out"] / "journal.jsonl", read_only=True).checks()
    assert a == b
    ta, tb = pymotor.read_trajectory(out / "md.h5"), pymotor.read_trajectory(label_run["out"] / "md.h5")
    assert np.array_equal(ta.positions, tb.positions) and np.array_equal(ta.velocities, tb.velocities)


# ---------------------------------------------------------------------------------------
# retraining, and kills at any point
# ---------------------------------------------------------------------------------------
_SCRIPT = r"""
import json, os, signal, sys
cfg = json.loads(sys.argv[1])
from ase.build import molecule
from pymotor.learn import journal, loop, retrain

orig_call = loop.XTBLabeller.__call__
def counted(self, positions):
    out = orig_call(self, positions)
    with open(cfg["counter"], "a") as fh:
        fh.write("1\n")
    return out
loop.XTBLabeller.__call__ = counted
if cfg.get("kill_after_label"):
    orig_append = journal.Journal.append
    n = [0]
    def append(self, entry, durable=False):
        orig_append(self, entry, durable)
        if "xtb" in entry:
            n[0] += 1
            if n[0] == cfg["kill_after_label"]:
                os.kill(os.getpid(), signal.SIGKILL)
    journal.Journal.append = append
if cfg.get("kill_in_fine_tune"):
    orig_ft = retrain.fine_tune
    k = [0]
    def fine_tune(*a, **kw):
        k[0] += 1
        if k[0] == cfg["kill_in_fine_tune"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return orig_ft(*a, **kw)
    retrain.fine_tune = fine_tune
loop.on_the_fly(cfg["committee"], molecule("CH3CH2OH"), cfg["out"], progress=False, **cfg["options"])
"""


def _run(tmp, name, committee, options, counter, **kill):
    script = tmp / "learn_script.py"
    script.write_text(_SCRIPT)
    cfg = dict(committee=committee, out=str(tmp / name), options=options, counter=str(counter), **kill)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, str(script), json.dumps(cfg)], env=env, capture_output=True, text=True,
                       timeout=600)
    return p


def _calls(counter) -> int:
    return len(Path(counter).read_text().splitlines()) if Path(counter).exists() else 0


@pytest.fixture(scope="module")
def retrain_runs(members, data, threshold, tmp_path_factory):
    """The same loop with retraining twice: uninterrupted, and killed with SIGKILL (1) right
    after the 5th label is journaled, (2) while fine-tuning the second member of round 1,
    (3) right after the 3rd label of the next session, then (4) finished."""
    tmp = tmp_path_factory.mktemp("learn_retrain")
    opts = dict(RETRAIN_RUN, threshold=0.5 * threshold, test_dbs=[data["test"]])
    p = _run(tmp, "whole", members["paths"], opts, tmp / "whole.calls")
    assert p.returncode == 0, p.stderr[-3000:]
    kills = [dict(kill_after_label=5), dict(kill_in_fine_tune=2), dict(kill_after_label=3), {}]
    codes = []
    for k in kills:
        p = _run(tmp, "killed", members["paths"], opts, tmp / "killed.calls", **k)
        codes.append(p.returncode)
        if k:
            assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert codes[-1] == 0, p.stderr[-3000:]
    return {"whole": tmp / "whole", "killed": tmp / "killed", "calls_whole": _calls(tmp / "whole.calls"),
            "calls_killed": _calls(tmp / "killed.calls")}


def test_fine_tuning_lowers_the_error_on_the_labels(retrain_runs):
    out = retrain_runs["whole"]
    rep = json.loads((out / "learn.json").read_text())
    state = json.loads((out / "learn_state.json").read_text())
    rounds = [r for r in state["rounds"] if r["round"] > 0]
    assert len(rounds) >= 2
    j = Journal(out / "journal.jsonl", read_only=True)
    for r, prev in zip(rounds, state["rounds"]):
        before, after = r["new_label_errors"]["before"], r["new_label_errors"]["after"]
        assert after["forces_mae"] < before["forces_mae"], r["round"]
        # recomputed here from the round's exported members
        new = j.labels(max_step=r["step"])[prev["n_labels"]:]
        pos, en, fo = Journal.label_arrays(new)
        pred = Committee(r["models"]).evaluate_frames(pos, molecule("CH3CH2OH").numbers)
        assert np.abs(pred.forces - fo).mean() / KCAL_EV == pytest.approx(after["forces_mae"], rel=1e-3)
        de = (pred.energy - en) / KCAL_EV
        assert de.mean() == pytest.approx(after["energy_mean_error"], rel=1e-3, abs=1e-9)
        assert np.abs(de - de.mean()).mean() == pytest.approx(after["energy_mae_offset_free"], rel=1e-3)
    # the report: xTB calls per ps per round, errors per round on the fixed test set, fraction on xTB
    assert [r["round"] for r in rep["rounds"]] == [r["round"] for r in state["rounds"]]
    assert all(r["test_errors"]["committee"]["n_frames"] == 40 for r in rep["rounds"])
    assert rep["xtb_calls"] == retrain_runs["calls_whole"] == sum(r["xtb_calls"] for r in rep["rounds"])
    assert rep["fraction_steps_on_xtb"] == pytest.approx(rep["xtb_calls"] / RETRAIN_RUN["steps"])
    assert rep["rounds"][0]["xtb_calls_per_ps"] > 0
    assert (out / "learn.png").stat().st_size > 10_000
    # the trajectory records where the committee changed
    changes = pymotor.read_trajectory(out / "md.h5").metadata["setting_changes"]
    assert [c["step"] for c in changes] == [r["step"] for r in rounds if r["step"] < RETRAIN_RUN["steps"]]


def test_auto_threshold_is_recalibrated_for_every_retrained_committee(members, tmp_path):
    """With ``threshold="auto"`` each retrained committee gets its own threshold, the same
    quantile of its spread on the first calibration's frames, and its checks are decided
    against it (fine-tuning changes the spread everywhere; a fixed number would drift)."""
    q = 0.2  # low, so that the 700 K run labels and retrains twice in 60 steps
    res = on_the_fly(members["paths"], molecule("CH3CH2OH"), tmp_path / "auto", threshold="auto",
                     threshold_quantile=q, temperature_K=700.0, steps=60, check_every=2, segment_steps=20,
                     interval=2, retrain_every=6, retrain_epochs=2, retrain_lr=1e-3, replay_frames=30,
                     on_bond_change="ignore", progress=False)
    state = json.loads((tmp_path / "auto" / "learn_state.json").read_text())
    cal = state["threshold"]
    rounds = state["rounds"]
    assert len(rounds) >= 2 and all(r["status"] == "done" for r in rounds)
    assert "threshold" not in rounds[0]  # round 0 is checked against the first calibration
    thresholds = {0: cal["threshold_eV_per_A"]}
    for r in rounds[1:]:
        again = calibrate_threshold(Committee(r["models"]), cal["databases"], quantile=q)
        assert r["threshold"]["threshold_eV_per_A"] == pytest.approx(again["threshold_eV_per_A"], rel=1e-9)
        assert r["threshold"]["n_frames"] == cal["n_frames"]  # the same frames every round
        thresholds[r["round"]] = r["threshold"]["threshold_eV_per_A"]
    assert len(set(thresholds.values())) == len(thresholds)  # each committee its own
    checks = Journal(tmp_path / "auto" / "journal.jsonl", read_only=True).checks()
    assert {e["round"] for e in checks} == set(thresholds)
    for e in checks:
        assert ("xtb" in e) == (e["std"] > thresholds[e["round"]]), e["step"]
    assert res.threshold_eV_per_A == thresholds[rounds[-1]["round"]]
    rep = json.loads((tmp_path / "auto" / "learn.json").read_text())
    assert [r["threshold_eV_per_A"] for r in rep["rounds"]] == [thresholds[r["round"]] for r in rep["rounds"]]


def test_killed_loop_resumes_exactly(retrain_runs):
    whole, killed = retrain_runs["whole"], retrain_runs["killed"]
    a = Journal(whole / "journal.jsonl", read_only=True).checks()
    b = Journal(killed / "journal.jsonl", read_only=True).checks()
    assert a == b  # same checks, same labels (positions, energies, forces), same rounds
    # no xTB call repeated: the killed sessions together called GFN2-xTB as often as the whole run
    assert retrain_runs["calls_killed"] == retrain_runs["calls_whole"] == sum("xtb" in e or "xtb_error" in e for e in a)
    ta, tb = pymotor.read_trajectory(whole / "md.h5"), pymotor.read_trajectory(killed / "md.h5")
    assert np.array_equal(ta.step, tb.step)
    assert np.array_equal(ta.positions, tb.positions) and np.array_equal(ta.velocities, tb.velocities)
    sa = json.loads((whole / "learn_state.json").read_text())
    sb = json.loads((killed / "learn_state.json").read_text())
    assert len(sb["sessions"]) == 4
    assert [r["n_labels"] for r in sa["rounds"]] == [r["n_labels"] for r in sb["rounds"]]
    # the round killed while training was done again from scratch: the same models
    z = molecule("CH3CH2OH")
    for ma, mb in zip(sa["rounds"][-1]["models"], sb["rounds"][-1]["models"]):
        ea = pymotor.load_model(ma).compute(z)
        eb = pymotor.load_model(mb).compute(z)
        assert ea[0] == eb[0] and np.array_equal(ea[1], eb[1])


def test_run_dir_from_model_equals_the_training_run(members, tmp_path):
    import torch

    from pymotor.learn.retrain import run_dir_from_model

    d = run_dir_from_model(members["paths"][0], tmp_path / "init")
    a = torch.load(d / "best_model.pt", weights_only=False).state_dict()
    b = torch.load(members["runs"][0] / "best_model.pt", weights_only=False).state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------
# bad options
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("option,value,match", [
    ("threshold", -0.1, "`threshold`"), ("threshold", "high", "`threshold`"), ("check_every", 0, "`check_every`"),
    ("retrain_every", 1, "`retrain_every`"), ("replicas", 0, "`replicas`"), ("steps", 0, "`steps`"),
    ("temperature_K", -5.0, "`temperature_K`"), ("threshold_quantile", 1.5, "`threshold_quantile`"),
    ("test_dbs", ["/nonexistent.db"], "`test_dbs`"), ("xtb_backend", "dftb", "`xtb_backend`"),
])
def test_bad_options_name_themselves(members, tmp_path, option, value, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        on_the_fly(members["paths"], molecule("CH3CH2OH"), tmp_path / "bad", progress=False, **{option: value})
    assert not (tmp_path / "bad" / "learn_state.json").exists()


def test_bad_committee_resume_and_changed_settings(members, label_run, tmp_path):
    with pytest.raises(ValueError, match="at least 2 models"):
        on_the_fly(members["paths"][:1], molecule("CH3CH2OH"), tmp_path / "one", progress=False)
    with pytest.raises(ValueError, match="same model file"):
        on_the_fly(members["paths"][:1] * 2, molecule("CH3CH2OH"), tmp_path / "twice", progress=False)
    with pytest.raises(FileNotFoundError, match="`committee`"):
        on_the_fly([members["paths"][0], str(tmp_path / "missing.pt")], molecule("CH3CH2OH"), tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="`resume`"):
        on_the_fly(out=tmp_path / "empty", resume=True)
    with pytest.raises(ValueError, match="`check_every`: 3 -> 5"):
        on_the_fly(out=label_run["out"], check_every=5)
    with pytest.raises(FileExistsError, match="`out`"):
        on_the_fly(members["paths"], out=label_run["out"], resume=False)


def test_cli_errors_name_the_option(members, tmp_path, capsys):
    from pymotor.cli import main

    cases = [(["--threshold", "-1"], "--threshold"), (["--check-every", "0"], "--check-every"),
             (["--retrain-every", "1"], "--retrain-every"), (["--replicas", "x"], "--replicas"),
             (["--test-db", str(tmp_path / "no.db")], "--test-db"), (["--resume"], "--resume")]
    for extra, name in cases:
        args = ["learn", "--out", str(tmp_path / "cli")] + ([] if "--resume" in extra else
                                                          ["--committee"] + members["paths"]) + extra
        try:
            code = main(args)
        except SystemExit as exc:  # argparse
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert name in err, (extra, err)


def test_cli_runs_resumes_and_reports(members, tmp_path, capsys):
    from ase.io import write

    from pymotor.cli import main

    write(tmp_path / "ethanol.xyz", molecule("CH3CH2OH"))
    args = ["learn", "--committee", *members["paths"], "--out", str(tmp_path / "cli"), "--xyz",
            str(tmp_path / "ethanol.xyz"), "--steps", "20", "--threshold", "0", "--check-every", "10", "--no-retrain",
            "--temperature", "300", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 GFN2-xTB calls" in text and "round 0" in text
    assert main(["learn", "--out", str(tmp_path / "cli"), "--resume", "--steps", "30", "--no-progress"]) == 0
    assert "4 GFN2-xTB calls" in capsys.readouterr().out  # one more check (step 30), nothing repeated
    assert main(["learn", "--out", str(tmp_path / "cli"), "--report-only"]) == 0
    rep = json.loads((tmp_path / "cli" / "learn.json").read_text())
    assert rep["steps"] == 30 and rep["xtb_calls"] == 4 and len(rep["sessions"]) == 2
