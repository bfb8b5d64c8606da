"""Smoke test of the demo pipeline at a tiny scale: every stage runs and the report's
numbers exist and are finite."""
import json
import math

import pytest

pytest.importorskip("tblite")
pytest.importorskip("schnetpack")


@pytest.mark.xtb
@pytest.mark.schnetpack
@pytest.mark.filterwarnings("ignore:MD step .* bond:RuntimeWarning")  # a model trained for seconds
def test_tiny_demo_pipeline(tmp_path):
    from pymotor.demo import run_demo
    h = run_demo(tmp_path / "demo", scale="tiny", progress=False)
    report = tmp_path / "demo" / "report"
    assert (report / "index.html").is_file()
    summary = json.loads((report / "summary.json").read_text())
    for fig in summary["figures"].values() if isinstance(summary["figures"], dict) else summary["figures"]:
        assert (report / fig).is_file()
    for key, value in h["summary"].items():
        assert value is None or math.isfinite(value), key
    assert math.isfinite(h["test_metrics_kcal"]["energy"]["mae"])
    assert h["nn_ms_per_step"] > 0 and h["xtb_ms_per_step"] > 0
    assert json.loads((tmp_path / "demo" / "headline.json").read_text())["report"].endswith("index.html")
    # the xTB MD (run in a second process while the model trains) and the NN MD start from the
    # same state and have the same length
    import numpy as np

    import pymotor
    from pymotor.demo import SCALES

    nn = pymotor.read_trajectory(tmp_path / "demo" / "md" / "nn.h5")
    xtb = pymotor.read_trajectory(tmp_path / "demo" / "md" / "xtb.h5")
    assert len(nn) == len(xtb) == SCALES["tiny"].md_steps + 1
    np.testing.assert_array_equal(nn.positions[0], xtb.positions[0])
    np.testing.assert_array_equal(nn.velocities[0], xtb.velocities[0])
    assert not np.allclose(nn.positions[-1], xtb.positions[-1])


@pytest.mark.xtb
def test_tiny_demo_with_the_shipped_model(tmp_path):
    """--pretrained: no training; the shipped model is scored on the demo reference's test
    frames, which it never saw (a fresh GFN2-xTB run), and must predict them."""
    import pymotor.models as models
    from pymotor.demo import run_demo

    if "cpnx-schnet" not in models.available():
        pytest.skip("cpnx-schnet not built")
    h = run_demo(tmp_path / "demo", scale="tiny", pretrained=True, progress=False)
    m = h["test_metrics_kcal"]
    assert m["n_frames"] > 0 and m["units"]["energy"] == "kcal/mol"
    # measured: 0.28 kcal/mol and 0.66 kcal/mol/Å on these 12 frames (1.1 kcal/mol/Å on the
    # 300 K test frames of data/T300, model card)
    assert m["forces"]["mae"] < 1.5, m["forces"]
    assert m["energy"]["mae"] < 2.0, m["energy"]
    assert not (tmp_path / "demo" / "run").exists()
