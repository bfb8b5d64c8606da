"""Smoke test of the demo pipeline at a tiny scale: every stage runs and the report's
numbers exist and are finite."""
import json
import math

import pytest

pytest.importorskip("tblite")
pytest.importorskip("schnetpack")


@pytest.mark.xtb
@pytest.mark.schnetpack
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
