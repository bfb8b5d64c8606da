"""pymotor.compare: the NN-vs-reference report from two short CPNX trajectories, and its
warnings for a candidate run that left the reference's physics."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import pymotor
import pymotor.compare  # noqa: F401  (the package is callable: pymotor.compare(...))
from pymotor.units import AMU_A2_PER_FS2_IN_EV, KB_EV_PER_K

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
    # RMSF: the report's per-atom values and r are those of pymotor.analysis.rmsf (mass-weighted
    # alignment; itself checked against MDAnalysis in test_analysis.py) on each whole run
    from pymotor.analysis import rmsf

    atoms, pos_ref, *_ = synthetic_run(600, 1)
    _, pos_cand, *_ = synthetic_run(560, 2, 1.03)
    f_ref, f_cand = rmsf(pos_ref, atoms.get_masses()), rmsf(pos_cand, atoms.get_masses())
    np.testing.assert_allclose(summary["rmsf"]["xTB"]["per_atom_A"], f_ref, rtol=1e-9)
    np.testing.assert_allclose(summary["rmsf"]["NN"]["per_atom_A"], f_cand, rtol=1e-9)
    assert abs(summary["rmsf"]["pearson_r"] - np.corrcoef(f_ref, f_cand)[0, 1]) < 1e-9
    assert math.isfinite(summary["power_spectrum"]["pearson_r"])
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
    with pytest.raises(ValueError, match="`stride` must be an integer > 0"):
        compare(reference=runs[0], candidate=runs[1], stride=0)
    with pytest.raises(ValueError, match="`labels` must be two different names"):
        compare(reference=runs[0], candidate=runs[1], labels=("x", "x"))


# ---- warnings ---------------------------------------------------------------------------------
N_DOF = 3 * 48 - 6


def _ar1(rng, n, sigma, rho, shape=()):
    """Stationary AR(1) noise: standard deviation ``sigma``, lag-1 correlation ``rho``."""
    x = np.empty((n,) + shape)
    x[0] = rng.normal(0.0, sigma, shape)
    kick = rng.normal(0.0, sigma * np.sqrt(1 - rho**2), (n,) + shape)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + kick[t]
    return x


def thermal_run(n_frames, seed, dt_fs=0.5):
    """A 300 K CPNX run with the fluctuations of a real one (potential energy sigma 0.25 eV,
    temperature sigma 36 K = 300 K sqrt(2 / n_dof), atoms 0.03 Angstrom about the minimum):
    correlated Gaussian noise, velocities scaled to the kinetic energy of each frame."""
    atoms = pymotor.data.cpnx()
    rng = np.random.default_rng(seed)
    n, m = len(atoms), atoms.get_masses()
    pos = atoms.get_positions() + _ar1(rng, n_frames, 0.03, 0.9, (n, 3))
    epot = -1232.7 + _ar1(rng, n_frames, 0.25, 0.98)
    ekin = 0.5 * N_DOF * KB_EV_PER_K * 300.0 * (1.0 + _ar1(rng, n_frames, np.sqrt(2 / N_DOF), 0.98))
    vel = rng.normal(size=(n_frames, n, 3)) / np.sqrt(m)[:, None]
    vel *= np.sqrt(ekin / (0.5 * np.einsum("n,tna->t", m, vel**2) * AMU_A2_PER_FS2_IN_EV))[:, None, None]
    return {"atoms": atoms, "pos": pos, "vel": vel, "epot": epot, "ekin": ekin, "dt_fs": dt_fs}


def write_arrays(path, run):
    from pymotor.trajectory import H5MDWriter

    atoms, n_frames = run["atoms"], len(run["epot"])
    w = H5MDWriter(path, atoms.get_atomic_numbers(), atoms.get_masses(),
                   attrs={"timestep_fs": run["dt_fs"], "n_dof": N_DOF, "thermostat": "nose-hoover"})
    steps = np.arange(n_frames)
    w.append({"step": steps, "time_fs": steps * run["dt_fs"], "positions": run["pos"][:, None],
              "velocities": run["vel"][:, None], "forces": np.zeros_like(run["pos"])[:, None],
              "potential_energy": run["epot"][:, None], "kinetic_energy": run["ekin"][:, None],
              "conserved_energy": (run["epot"] + run["ekin"])[:, None]})
    w.close()
    return path


N_WARN = 2000  # frames of the warning tests' runs: 1 ps of 0.5 fs


@pytest.fixture(scope="module")
def thermal(tmp_path_factory):
    """The reference, a faithful candidate (another run of the same physics) and the candidate's
    arrays for planting faults."""
    d = tmp_path_factory.mktemp("thermal")
    ref = thermal_run(N_WARN, seed=11)
    cand = thermal_run(N_WARN, seed=12)
    return {"dir": d, "ref": ref, "ref_path": write_arrays(d / "xtb.h5", ref), "cand": cand,
            "cand_path": write_arrays(d / "nn.h5", cand)}


def planted(thermal, name, change):
    run = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in thermal["cand"].items()}
    change(run)
    return write_arrays(thermal["dir"] / f"{name}.h5", run), run


def kinds(warnings):
    return [w["kind"] for w in warnings]


def test_faithful_candidate_gets_no_warning(thermal):
    from pymotor.compare import run_warnings

    assert run_warnings(thermal["ref_path"], thermal["cand_path"]) == []
    assert run_warnings(thermal["ref_path"], thermal["ref_path"]) == []  # a run against itself
    # in-memory trajectories work too
    assert run_warnings(pymotor.read_trajectory(thermal["ref_path"]), thermal["cand_path"]) == []


def test_potential_energy_hole_is_the_only_warning(thermal):
    from pymotor.compare import K_SIGMA, run_warnings

    def hole(run):  # the NN energy drops 3 eV (12 sigma) from 0.6 ps on, nothing else changes
        run["epot"][1200:] -= 3.0

    path, run = planted(thermal, "hole", hole)
    (w,) = run_warnings(thermal["ref_path"], path)
    ref_e = thermal["ref"]["epot"]
    sigma = float(np.std(ref_e))
    assert w["kind"] == "potential_energy_low"
    assert w["frame"] == 1200 and w["time_ps"] == pytest.approx(0.6)
    assert w["sigma_eV"] == pytest.approx(sigma)
    assert w["reference_min_eV"] == pytest.approx(ref_e.min())
    assert w["peak_value_eV"] == pytest.approx(run["epot"].min())
    assert w["beyond_reference_eV"] == pytest.approx(ref_e.min() - run["epot"].min())
    assert 2.0 < w["beyond_reference_eV"] < 4.0 and w["beyond_reference_sigma"] > 2 * K_SIGMA
    assert w["n_frames"] == N_WARN - 1200
    assert w["peak_time_ps"] == pytest.approx(0.5e-3 * int(np.argmin(run["epot"])))
    msg = w["message"]
    assert msg.startswith("NN potential energy fell ") and "below the lowest xTB frame" in msg
    assert f"{w['beyond_reference_eV']:.2f} eV" in msg and "first beyond the 5-sigma limit at 0.600 ps" in msg
    assert "800 of 2000 frames" in msg


def test_heated_run_is_the_only_warning(thermal):
    from pymotor.compare import run_warnings

    def heat(run):  # velocities doubled from 0.5 ps on: 4x the kinetic energy, ~1200 K
        run["vel"][1000:] *= 2.0
        run["ekin"][1000:] *= 4.0

    path, run = planted(thermal, "heated", heat)
    (w,) = run_warnings(thermal["ref_path"], path)
    t_ref = 2 * thermal["ref"]["ekin"] / (N_DOF * KB_EV_PER_K)
    t_cand = 2 * run["ekin"] / (N_DOF * KB_EV_PER_K)
    assert w["kind"] == "temperature_high"
    assert w["frame"] == 1000 and w["time_ps"] == pytest.approx(0.5)
    assert w["reference_max_K"] == pytest.approx(t_ref.max())
    assert w["sigma_K"] == pytest.approx(np.std(t_ref)) and 20 < w["sigma_K"] < 60
    assert w["peak_value_K"] == pytest.approx(t_cand.max()) and w["peak_value_K"] > 1000
    assert w["beyond_reference_K"] == pytest.approx(t_cand.max() - t_ref.max())
    assert w["peak_kinetic_energy_eV"] == pytest.approx(run["ekin"].max())
    assert w["n_frames"] == N_WARN - 1000
    assert "NN temperature reached" in w["message"] and "above the hottest xTB frame" in w["message"]
    assert f"{w['peak_value_K']:.0f} K" in w["message"]


def test_broken_bond_is_the_only_warning(thermal):
    from pymotor.compare import run_warnings
    from pymotor.connectivity import bonds

    atoms = thermal["cand"]["atoms"]
    x0 = atoms.get_positions()
    h = next(a for a in range(len(atoms)) if atoms[a].symbol == "H")
    (c,) = [int(b[0] + b[1] - h) for b in bonds(atoms.numbers, x0) if h in b]
    out = (x0[h] - x0[c]) / np.linalg.norm(x0[h] - x0[c])

    def pull(run):  # the H leaves its carbon along the bond, 3 Angstrom, from 0.75 ps on
        run["pos"][1500:, h] += 3.0 * out

    path, run = planted(thermal, "broken", pull)
    (w,) = run_warnings(thermal["ref_path"], path)
    assert w["kind"] == "bond_broken"
    assert sorted(w["atoms"]) == sorted([h, c]) and sorted(w["elements"]) == ["C", "H"]
    assert w["frame"] == 1500 and w["time_ps"] == pytest.approx(0.75)
    d = np.linalg.norm(run["pos"][1500, h] - run["pos"][1500, c])
    assert w["distance_A"] == pytest.approx(d) and 3.5 < d < 4.5
    assert w["limit_A"] == pytest.approx(1.6 * (0.31 + 0.76), abs=0.01)
    assert w["reference_distance_A"] == pytest.approx(np.linalg.norm(
        thermal["ref"]["pos"][0, h] - thermal["ref"]["pos"][0, c]))
    assert "broke at 0.750 ps" in w["message"] and f"{d:.2f} Å apart" in w["message"]


def test_blow_up_warnings(thermal):
    from pymotor.compare import run_warnings

    def nan(run):  # non-finite from 0.85 ps on
        run["pos"][1700:, 3] = np.nan
        run["epot"][1700:] = np.nan

    path, _ = planted(thermal, "nan", nan)
    (w,) = run_warnings(thermal["ref_path"], path)
    assert w["kind"] == "blow_up" and w["reason"] == "non-finite"
    assert w["frame"] == 1700 and w["time_ps"] == pytest.approx(0.85)
    assert "non-finite positions and potential energy from 0.850 ps" in w["message"]
    # the report is still made, from the frames before the blow-up
    report = pymotor.compare(thermal["ref_path"], path, windows_steps=(100,))
    assert kinds(report.warnings) == ["blow_up"]
    assert report.summary["inputs"]["candidate"]["n_frames"] == 1700
    assert report.notes[0] == "NN: non-finite values from frame 1700 on; the comparison uses frames 0-1699"

    def stop(run):  # the run stopped after 0.4 ps (frames kept up to the stop)
        for k in ("pos", "vel", "epot", "ekin"):
            run[k] = run[k][:801]

    path, _ = planted(thermal, "short", stop)
    (w,) = run_warnings(thermal["ref_path"], path, requested_steps=N_WARN - 1)
    assert w["kind"] == "blow_up" and w["last_step"] == 800 and w["requested_steps"] == 1999
    assert w["message"] == "NN run stopped at step 800 (0.400 ps) of 1999 requested (40%): a blow-up or a killed run"
    (w,) = run_warnings(thermal["ref_path"], path)  # without the requested length: shorter than the reference
    assert w["kind"] == "short_run" and w["duration_ps"] == pytest.approx(0.4)
    assert w["reference_duration_ps"] == pytest.approx(0.9995)


def test_report_and_command_line_show_the_warnings(thermal, tmp_path, capsys):
    from pymotor.compare import cli

    report = pymotor.compare(thermal["ref_path"], thermal["cand_path"], windows_steps=(100,))
    assert report.warnings == [] and report.summary["headline"]["n_warnings"] == 0
    index = report.write(tmp_path / "ok")
    assert json.loads((tmp_path / "ok" / "summary.json").read_text())["warnings"] == []
    assert "No warnings" in index.read_text()

    path, _ = planted(thermal, "hole_report", lambda run: run["epot"].__setitem__(slice(1200, None),
                                                                                 run["epot"][1200:] - 3.0))
    out = tmp_path / "hole"
    assert cli.main(["compare", str(thermal["ref_path"]), str(path), "--out", str(out), "--windows", "100"]) == 0
    printed = capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    (w,) = summary["warnings"]
    assert w["kind"] == "potential_energy_low" and w["time_ps"] == pytest.approx(0.6)
    assert printed.err.strip() == f"warning: {w['message']}"
    assert "1 warning(s)" in printed.out
    html = (out / "index.html").read_text()
    box = html.index("class='warnings'")
    assert box < html.index("<h2>Headline</h2>") < html.index("<h2>Figures</h2>") < html.index("<h2>Details</h2>")
    assert w["message"].split(" (")[0] in html[box:]
    assert summary["warning_criteria"]["k_sigma"] == 5.0
    # --strict turns warnings into an exit status
    assert cli.main(["compare", str(thermal["ref_path"]), str(path), "--out", str(out), "--windows", "100",
                     "--strict"]) == 3


def test_headline_table_and_readable_tables(runs, tmp_path):
    metrics = {"energy": {"mae": 0.781, "mae_se": 0.02}, "forces": {"mae": 1.034, "mae_se": 0.01}, "n_frames": 200}
    report = pymotor.compare(runs[0], runs[1], test_metrics=metrics,
                             seconds_per_step={"reference": 0.120, "candidate": 0.0008})
    h = report.summary["headline"]
    assert h["energy_mae_kcal_per_mol"] == 0.781 and h["forces_mae_kcal_per_mol_per_A"] == 1.034
    assert h["ms_per_step"] == {"xTB": pytest.approx(120.0), "NN": pytest.approx(0.8)}
    assert h["speedup"] == pytest.approx(150.0)
    assert h["rmsf_pearson_r"] == report.summary["rmsf"]["pearson_r"]
    assert h["power_spectrum_pearson_r"] == report.summary["power_spectrum"]["pearson_r"]
    assert h["distances_jensen_shannon_distance"] == report.summary["distances"]["jensen_shannon_distance"]
    assert h["rolling_pearson_r_median"]["potential_energy"]["window_250_steps"] == \
        report.summary["rolling_pearson"]["potential_energy"]["window_250_steps"]["median"]
    assert h["conformer_populations"]["NN"] == report.summary["conformers"]["NN"]["populations"]
    # 560 of 600 frames and no requested length: a shorter candidate is reported
    assert [w["kind"] for w in report.warnings] == ["short_run"]
    html = report.write(tmp_path / "r").read_text()
    head = html[html.index("<h2>Headline</h2>"):html.index("<h2>Figures</h2>")]
    for text in ("Energy MAE of NN on 200 test frames (kcal/mol)", "0.781 ± 0.02", "RMSF per atom, Pearson r",
                 "Power spectrum, Pearson r", "Jensen-Shannon", "MD cost (ms per step)", "xTB 120, NN 0.8",
                 "Speed-up of NN over xTB", "150×", "Population of syn-P (xTB / NN)"):
        assert text in head, text
    assert "rmsf.pearson_r" not in html and "pearson_r" not in html  # no dotted key paths
    assert "Mean (eV)" in html and "Window (MD steps)" in html and "Highest peak (cm⁻¹)" in html
    # the existing numbers stay where other code reads them
    s = report.summary
    for key in (("rmsf", "pearson_r"), ("power_spectrum", "pearson_r"), ("distances", "jensen_shannon_distance"),
                ("energies", "potential_energy", "difference", "pearson_r")):
        v = s
        for k in key:
            v = v[k]
        assert isinstance(v, float)


def test_timings_are_read_beside_the_files(runs, tmp_path):
    import shutil

    d = tmp_path / "md"
    d.mkdir()
    shutil.copy(runs[0], d / "xtb.h5")
    shutil.copy(runs[1], d / "nn.h5")
    (d / "timings.json").write_text(json.dumps({"seconds_per_step": {"nn": 0.002}}))
    (d / "xtb_timing.json").write_text(json.dumps({"seconds_per_step": 0.1}))
    s = pymotor.compare(d / "xtb.h5", d / "nn.h5", windows_steps=(100,)).summary
    assert s["timings"]["ms_per_step"] == {"xTB": pytest.approx(100.0), "NN": pytest.approx(2.0)}
    assert s["headline"]["speedup"] == pytest.approx(50.0)
