"""pymotor.compare: the NN-vs-reference report from two short CPNX trajectories."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import pymotor
import pymotor.compare  # noqa: F401  (the package is callable: pymotor.compare(...))
from pymotor.units import AMU_A2_PER_FS2_IN_EV

C_CM_PER_FS = 2.99792458e-5
FIGURES = ("energies", "rolling_pearson", "rmsf", "distances", "radius_of_gyration",
           "power_spectrum", "conformers")


def synthetic_run(n_frames, seed, scale=1.0, dt_fs=0.5):
    """CPNX vibrating harmonically about its minimum (every atom an independent 3D
    oscillator, 500-3200 cm^-1): exact positions, velocities and energies."""
    atoms = pymotor.data.cpnx()
    x0, m = atoms.get_positions(), atoms.get_masses()
    rng = np.random.default_rng(seed)
    n = len(atoms)
    omega = 2 * np.pi * C_CM_PER_FS * rng.uniform(500, 3200, size=(n, 3)) * scale  # 1/fs
    amp = 0.05 * rng.uniform(0.5, 1.5, size=(n, 3))  # Angstrom
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3))
    t = np.arange(n_frames)[:, None, None] * dt_fs
    pos = x0 + amp * np.cos(omega * t + phase)
    vel = -amp * omega * np.sin(omega * t + phase)
    k = m[:, None] * omega**2 * AMU_A2_PER_FS2_IN_EV  # eV/A^2
    epot = -1234.5 + 0.5 * np.einsum("na,tna->t", k, (pos - x0) ** 2)
    ekin = 0.5 * np.einsum("n,tna->t", m, vel**2) * AMU_A2_PER_FS2_IN_EV
    return atoms, pos, vel, epot, ekin


def write_run(path, n_frames, seed, scale=1.0, dt_fs=0.5):
    from pymotor.trajectory import H5MDWriter

    atoms, pos, vel, epot, ekin = synthetic_run(n_frames, seed, scale, dt_fs)
    n = len(atoms)
    w = H5MDWriter(path, atoms.get_atomic_numbers(), atoms.get_masses(),
                   attrs={"timestep_fs": dt_fs, "n_dof": 3 * n - 6, "thermostat": "none"})
    steps = np.arange(n_frames)
    w.append({"step": steps, "time_fs": steps * dt_fs, "positions": pos[:, None],
              "velocities": vel[:, None], "forces": np.zeros_like(pos)[:, None],
              "potential_energy": epot[:, None], "kinetic_energy": ekin[:, None],
              "conserved_energy": (epot + ekin)[:, None]})
    w.close()
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    return (write_run(d / "xtb.h5", 600, seed=1),
            write_run(d / "nn.h5", 560, seed=2, scale=1.03))


def numbers_in(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from numbers_in(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numbers_in(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def test_compare_writes_report_with_all_figures_and_finite_numbers(runs, tmp_path):
    ref, cand = runs
    report = pymotor.compare(reference=ref, candidate=cand)
    index = report.write(tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    for name in FIGURES:
        png = tmp_path / "report" / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"{name}.png" in index.read_text()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    values = list(numbers_in(summary))
    assert len(values) > 100
    bad = [(p, v) for p, v in values if not math.isfinite(v)]
    assert not bad
    # windows: 100/250/500 steps fit into the 560 common frames, 1000 does not (and is noted)
    roll = summary["rolling_pearson"]["potential_energy"]
    assert set(roll) == {"window_100_steps", "window_250_steps", "window_500_steps"}
    assert roll["window_100_steps"]["n_windows"] == 560 - 100 + 1
    assert any("1000 steps" in n and "skipped" in n for n in summary["notes"])
    assert summary["inputs"]["n_common_frames"] == 560
    for key in ("rmsf", "power_spectrum"):
        assert -1.0 <= summary[key]["pearson_r"] <= 1.0
    assert 0.0 < summary["distances"]["jensen_shannon_distance"] < 1.0
    assert summary["distances"]["wasserstein_distance_A"] > 0.0
    assert summary["radius_of_gyration"]["wasserstein_distance_A"] > 0.0
    assert len(summary["rmsf"]["xTB"]["per_atom_A"]) == 48
    # the motor stays in its start conformer: one population is 1
    pops = summary["conformers"]["NN"]["populations"]
    assert sorted(pops.values())[-1] == 1.0 and set(pops) == {"anti-M", "syn-M", "anti-P", "syn-P"}
    # the power spectrum peaks inside the band of the oscillators
    assert 500 <= summary["power_spectrum"]["xTB"]["peak_cm-1"] <= 3200


def test_compare_a_run_with_itself_is_perfect(runs, tmp_path):
    traj = pymotor.read_trajectory(runs[0])  # in-memory Trajectory objects work too
    s = pymotor.compare.compare(reference=traj, candidate=runs[0], labels=("a", "b")).summary
    assert s["rmsf"]["pearson_r"] == pytest.approx(1.0)
    assert s["rmsf"]["mae_A"] == pytest.approx(0.0, abs=1e-12)
    assert s["distances"]["jensen_shannon_distance"] == pytest.approx(0.0, abs=1e-7)
    assert s["distances"]["wasserstein_distance_A"] == pytest.approx(0.0, abs=1e-12)
    assert s["radius_of_gyration"]["wasserstein_distance_A"] == pytest.approx(0.0, abs=1e-12)
    assert s["power_spectrum"]["pearson_r"] == pytest.approx(1.0)
    assert s["energies"]["potential_energy"]["difference"]["rmse_eV"] == 0.0
    r = s["rolling_pearson"]["kinetic_energy"]["window_250_steps"]
    assert r["min"] == pytest.approx(1.0) and r["max"] == pytest.approx(1.0)


def test_compare_command_line(runs, tmp_path, capsys):
    from pymotor.compare import cli

    out = tmp_path / "cli_report"
    assert cli.main(["compare", str(runs[0]), str(runs[1]), "--out", str(out),
                     "--windows", "50", "100", "--stride", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["rolling_pearson"]["potential_energy"]) == {"window_50_steps", "window_100_steps"}
    assert summary["rolling_pearson"]["potential_energy"]["window_100_steps"]["window_frames"] == 50
    assert all((out / f"{name}.png").is_file() for name in FIGURES)


def test_pymotor_compare_subcommand(runs, tmp_path):
    main_cli = pytest.importorskip("pymotor.cli")
    out = tmp_path / "main_cli_report"
    assert main_cli.main(["compare", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    assert (out / "index.html").is_file() and (out / "summary.json").is_file()


def test_compare_rejects_bad_inputs(runs, tmp_path):
    from pymotor.compare import compare

    with pytest.raises(FileNotFoundError, match="missing.h5"):
        compare(reference=tmp_path / "missing.h5", candidate=runs[1])
    with pytest.raises(ValueError, match="`stride` must be >= 1"):
        compare(reference=runs[0], candidate=runs[1], stride=0)
    with pytest.raises(ValueError, match="`labels` must be two different names"):
        compare(reference=runs[0], candidate=runs[1], labels=("x", "x"))
