"""Smoke tests of the demo pipeline at a tiny scale, for both of its paths: the default (the
shipped model with the fast C++ evaluator) and ``--train`` (SchNet trained from scratch for a
budget in epochs). Every stage runs, the files exist and the headline numbers are finite."""
import json
import math

import numpy as np
import pytest

pytest.importorskip("tblite")
pytest.importorskip("schnetpack")


def _check_common(h, work):
    """What both paths must give: the report and its files, finite headline numbers, the NN and
    xTB MD from the same state with the same length, headline.json as returned."""
    import pymotor
    from pymotor.demo import SCALES

    report = work / "report"
    assert (report / "index.html").is_file()
    assert h["report"] == str((report / "index.html").resolve())
    summary = json.loads((report / "summary.json").read_text())
    figures = summary["figures"].values() if isinstance(summary["figures"], dict) else summary["figures"]
    assert figures
    for fig in figures:
        assert (report / fig).is_file()
    for key in ("rmsf_pearson_r", "power_spectrum_pearson_r"):
        assert math.isfinite(h["summary"][key]), key
    for key, value in h["summary"].items():
        assert value is None or math.isfinite(value), key
    m = h["test_metrics_kcal"]
    assert m["n_frames"] > 0 and m["units"]["energy"] == "kcal/mol"
    assert math.isfinite(m["energy"]["mae"]) and math.isfinite(m["forces"]["mae"])
    assert h["nn_ms_per_step"] > 0 and h["xtb_ms_per_step"] > 0
    assert math.isclose(h["speedup"], h["xtb_ms_per_step"] / h["nn_ms_per_step"])
    assert isinstance(h["warnings"], list)
    assert h["warnings"] == [w["message"] if isinstance(w, dict) else str(w) for w in summary["warnings"]]
    saved = json.loads((work / "headline.json").read_text())
    assert saved["model"] == h["model"] and saved["backend"] == h["backend"]
    assert saved["summary"] == pytest.approx(h["summary"], nan_ok=True)

    # the xTB MD (run in a second process meanwhile) and the NN MD start from the same state
    # and have the same length
    nn = pymotor.read_trajectory(work / "md" / "nn.h5")
    xtb = pymotor.read_trajectory(work / "md" / "xtb.h5")
    assert len(nn) == len(xtb) == SCALES["tiny"].md_steps + 1
    np.testing.assert_array_equal(nn.positions[0], xtb.positions[0])
    np.testing.assert_array_equal(nn.velocities[0], xtb.velocities[0])
    assert not np.allclose(nn.positions[-1], xtb.positions[-1])
    assert h["backend"] == nn.metadata["potential"]["kind"]
    assert nn.metadata["potential"]["sha256"] == h["model"]["sha256"]
    return nn


@pytest.mark.xtb
@pytest.mark.schnetpack
def test_tiny_demo_default_runs_the_shipped_model_with_the_fast_backend(tmp_path, capsys):
    """The default: no training; the shipped model (the most accurate stable one) runs with
    the fast C++ evaluator and is scored on the demo reference's test frames, which it never
    saw (a fresh GFN2-xTB run), and must predict them."""
    import pymotor.models as models
    from pymotor.demo import DEFAULT_MODEL, _print_headline, run_demo

    if DEFAULT_MODEL not in models.available():
        pytest.skip(f"{DEFAULT_MODEL} not built")
    from pymotor.train import read_metadata

    # the fast C++ evaluator of the default model's architecture
    fast = {"schnet": "fast-schnet", "painn": "fast-painn"}[read_metadata(models.path(DEFAULT_MODEL))["architecture"]]
    work = tmp_path / "demo"
    h = run_demo(work, scale="tiny", progress=False)
    nn = _check_common(h, work)
    assert nn.metadata["potential"]["kind"] == fast
    assert h["backend"] == fast and h["backend_requested"] == "auto"
    assert h["model"]["name"] == DEFAULT_MODEL and h["model"]["source"] == "shipped"
    assert h["model"]["path"] == str(models.path(DEFAULT_MODEL))
    assert h["training"] is None
    assert not (work / "run").exists() and not (work / "model.pt").exists()
    m = h["test_metrics_kcal"]
    # bounds for any shipped default (measured on these 12 frames: cpnx-schnet 0.28 kcal/mol and
    # 0.66 kcal/mol/Å; cpnx-painn's errors on whole held-out trajectories are ~4x smaller)
    assert m["forces"]["mae"] < 1.5, m["forces"]
    assert m["energy"]["mae"] < 2.0, m["energy"]
    # the stable model does not break bonds in 40 fs at 300 K
    assert not any("broke" in w or "formed" in w for w in h["warnings"]), h["warnings"]

    capsys.readouterr()
    _print_headline(h)
    printed = capsys.readouterr().out
    assert f"model: {DEFAULT_MODEL} (shipped" in printed and f"MD backend: {fast}" in printed
    for text in ("test MAE", "rmsf_pearson_r", "power_spectrum_pearson_r", "ms/step", "speed-up"):
        assert text in printed, text
    assert ("WARNING" in printed) == bool(h["warnings"])


@pytest.mark.xtb
@pytest.mark.schnetpack
@pytest.mark.filterwarnings("ignore:MD step .* bond:RuntimeWarning")  # a model trained for 2 epochs
def test_tiny_demo_train_has_an_epoch_budget_and_is_reproducible(tmp_path):
    """--train: SchNet trained from scratch for the scale's epochs (no wall-time cap), so two
    runs give the same model: identical test metrics."""
    from pymotor.demo import SCALES, run_demo

    epochs = SCALES["tiny"].epochs
    runs = []
    for k in (1, 2):
        work = tmp_path / f"demo{k}"
        h = run_demo(work, scale="tiny", train=True, progress=False)
        _check_common(h, work)
        assert h["model"]["source"] == "trained"
        assert h["model"]["path"] == str((work / "model.pt").resolve())
        assert h["backend"] == "fast-schnet"
        tr = h["training"]
        assert tr["epochs_budget"] == epochs and tr["stop_reason"] == "max_epochs"
        assert tr["epochs_done"] == epochs and tr["optimizer_steps"] > 0
        cfg = json.loads((work / "run" / "run.json").read_text())
        assert cfg["config"]["epochs"] == epochs
        assert [s["stop_reason"] for s in cfg["sessions"]] == ["max_epochs"]
        runs.append(h)
    a, b = (r["test_metrics_kcal"] for r in runs)
    for quantity in ("energy", "forces"):
        assert a[quantity] == b[quantity], quantity  # bit for bit
    assert runs[0]["training"] == runs[1]["training"]
    assert runs[0]["summary"] == pytest.approx(runs[1]["summary"], nan_ok=True)  # the same model, the same MD

    # rerunning resumes every stage: no new training, the same model file, the same trajectory
    work = tmp_path / "demo1"
    before = (work / "model.pt").stat().st_mtime_ns
    h = run_demo(work, scale="tiny", train=True, progress=False)
    assert (work / "model.pt").stat().st_mtime_ns == before
    assert h["test_metrics_kcal"]["forces"] == a["forces"]
    assert not list((work / "md").glob("nn.h5.old*"))


def test_demo_cli_default_is_the_shipped_model(monkeypatch):
    """`pymotor demo` with no options runs the shipped model; --train trains; --pretrained is an
    accepted no-op; the two cannot be combined."""
    import pymotor.demo as demo
    from pymotor.cli import build_parser

    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda out, scale, train: calls.append((out, scale, train)) or {})
    monkeypatch.setattr(demo, "_print_headline", lambda h: None)
    parser = build_parser()
    for argv, expected in ((["demo"], ("demo", "default", False)),
                           (["demo", "--pretrained"], ("demo", "default", False)),
                           (["demo", "--train", "--tiny", "--out", "x"], ("x", "tiny", True)),
                           (["demo", "--tiny"], ("demo", "tiny", False))):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
        assert calls[-1] == expected, argv
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--train", "--pretrained"])


def test_scales_budget_training_in_epochs():
    """No wall-time cap anywhere: the training budget of every scale is a number of epochs."""
    from dataclasses import fields

    from pymotor.demo import SCALES, Scale

    assert not any("time" in f.name for f in fields(Scale))
    for sc in SCALES.values():
        assert isinstance(sc.epochs, int) and sc.epochs >= 1
        assert sc.estimate_s(train=True) >= sc.estimate_s(train=False) > 0
