"""`pymotor md` and the NN-vs-xTB pair runner."""
import json

import numpy as np
import pytest
from ase.io import write

import pymotor
from pymotor.cli import main
from pymotor.workflows import run_pair


def test_md_command_nn_only(tmp_path, tiny_model_path, ethanol, capsys):
    xyz = tmp_path / "ethanol.xyz"
    write(xyz, ethanol)
    out = tmp_path / "md"
    rc = main(["md", "--model", tiny_model_path, "--xyz", str(xyz), "--no-xtb", "--steps", "20",
               "--timestep-fs", "0.5", "--out", str(out)])
    assert rc == 0
    t = pymotor.read_trajectory(out / "nn.h5")
    assert len(t) == 21 and t.step[-1] == 20
    timings = json.loads((out / "timings.json").read_text())
    assert timings["seconds_per_step"]["nn"] > 0
    assert "ms/step" in capsys.readouterr().out


def test_md_command_reports_bad_input(tmp_path, capsys):
    rc = main(["md", "--model", str(tmp_path / "missing.pt"), "--no-xtb", "--steps", "5", "--out", str(tmp_path)])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.xtb
def test_nn_and_xtb_start_from_the_same_state(tmp_path, tiny_model_path, ethanol):
    pytest.importorskip("tblite")
    res = run_pair(tiny_model_path, ethanol, tmp_path, steps=10, timestep_fs=0.5, progress=False)
    nn, xtb = pymotor.read_trajectory(res.nn), pymotor.read_trajectory(res.xtb)
    np.testing.assert_array_equal(nn.positions[0], xtb.positions[0])
    np.testing.assert_array_equal(nn.velocities[0], xtb.velocities[0])
    assert len(nn) == len(xtb) == 11
    # different potentials: the trajectories separate
    assert np.abs(nn.positions[-1] - xtb.positions[-1]).max() > 1e-6
    # resuming a finished pair runs nothing more
    again = run_pair(tiny_model_path, ethanol, tmp_path, steps=10, timestep_fs=0.5, progress=False)
    assert len(pymotor.read_trajectory(again.nn)) == 11


@pytest.mark.xtb
def test_parallel_pair_equals_sequential_pair(tmp_path, tiny_model_path, ethanol):
    """The NN run in a second thread gives bit-identical trajectories to running the two
    one after the other; an error in either run reaches the caller."""
    pytest.importorskip("tblite")
    kw = dict(steps=20, timestep_fs=0.5, progress=False)
    par = run_pair(tiny_model_path, ethanol, tmp_path / "par", parallel=True, **kw)
    seq = run_pair(tiny_model_path, ethanol, tmp_path / "seq", parallel=False, **kw)
    for a, b in ((par.nn, seq.nn), (par.xtb, seq.xtb)):
        ta, tb = pymotor.read_trajectory(a), pymotor.read_trajectory(b)
        np.testing.assert_array_equal(ta.positions, tb.positions)
        np.testing.assert_array_equal(ta.velocities, tb.velocities)
    with pytest.raises(ValueError, match="timestep_fs"):
        run_pair(tiny_model_path, ethanol, tmp_path / "bad", steps=5, timestep_fs=float("nan"), progress=False)
