"""run_md: trajectory files, restart, blow-ups, callbacks, replicas and input validation."""
import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron

import pymotor
from pymotor import MDError
from pymotor.trajectory import read_state

LJ = dict(epsilon_eV=0.0104, sigma_A=3.4, cutoff_A=8.5)


@pytest.fixture
def cluster():
    a = Icosahedron("Ar", 2)  # 13 atoms
    a.rattle(0.02, seed=0)
    return a


def run(cluster, **kw):
    args = dict(steps=300, timestep_fs=4.0, temperature_K=40.0, tdamp_fs=100.0, seed=3, chunk_steps=50)
    args.update(kw)
    return pymotor.run_md(pymotor.LennardJonesPotential(**LJ), cluster, **args)


def test_trajectory_file_roundtrip_and_mdanalysis(cluster, tmp_path):
    mda = pytest.importorskip("MDAnalysis")
    path = tmp_path / "run.h5"
    t = run(cluster, trajectory=path, interval=5)
    assert len(t) == 300 // 5 + 1 and t.step[-1] == 300
    np.testing.assert_allclose(t.time_fs, t.step * 4.0)
    u = mda.Universe.empty(len(cluster), trajectory=True)
    u.load_new(str(path), format="H5MD")
    assert u.trajectory.n_frames == len(t)
    u.trajectory[7]
    np.testing.assert_allclose(u.atoms.positions, t.positions[7], atol=1e-5)
    np.testing.assert_allclose(u.trajectory.ts.forces, t.forces[7] * 96.485332, rtol=1e-5, atol=1e-6)
    assert u.trajectory.ts.time == pytest.approx(t.time_fs[7] / 1000.0)  # MDAnalysis works in ps
    atoms = t.to_ase()
    assert atoms[7].get_potential_energy() == pytest.approx(t.potential_energy[7])
    np.testing.assert_allclose(atoms[7].get_velocities() * units.fs, t.velocities[7], rtol=1e-12)
    mem = run(cluster, interval=5)
    np.testing.assert_allclose(mem.positions, t.positions, rtol=0, atol=0)
    np.testing.assert_allclose(mem.temperature, t.temperature, rtol=1e-12)


def test_restart_equals_uninterrupted_run(cluster, tmp_path):
    full = run(cluster, steps=400, trajectory=tmp_path / "full.h5", interval=2)
    part = tmp_path / "part.h5"
    run(cluster, steps=150, trajectory=part, interval=2)
    cont = run(cluster, steps=400, trajectory=part, restart=part, interval=2)
    np.testing.assert_array_equal(cont.step, full.step)
    np.testing.assert_array_equal(cont.positions, full.positions)
    np.testing.assert_array_equal(cont.velocities, full.velocities)
    np.testing.assert_array_equal(cont.conserved_energy, full.conserved_energy)


def test_killed_run_resumes_and_loses_nothing(cluster, tmp_path):
    """A potential that dies at step 230 (like a killed process): the frames up to the last
    chunk are on disk; repeating the command resumes and equals an uninterrupted run."""
    path = tmp_path / "killed.h5"
    calc_calls = {"n": 0}

    class Dying(LennardJones):
        def calculate(self, *a, **k):
            calc_calls["n"] += 1
            if calc_calls["n"] == 231:
                raise KeyboardInterrupt("killed")
            super().calculate(*a, **k)

    kw = dict(steps=400, timestep_fs=4.0, temperature_K=40.0, seed=3, chunk_steps=50, trajectory=path)
    with pytest.raises(KeyboardInterrupt, match="killed") as exc:  # reaches the caller as itself
        pymotor.run_md(Dying(epsilon=0.0104, sigma=3.4, rc=8.5, smooth=False), cluster, **kw)
    cause = exc.value.__cause__
    assert isinstance(cause, MDError) and cause.step == 230 and cause.reason == "potential"
    assert "at step 230" in str(cause) and cause.paths == [path]
    saved = pymotor.read_trajectory(path)
    assert saved.step[-1] == 229  # every frame before the failure is on disk
    # the same calculator class (a restart with another potential is refused); it dies only once
    resumed = pymotor.run_md(Dying(epsilon=0.0104, sigma=3.4, rc=8.5, smooth=False), cluster,
                             restart=path, **kw)
    ref = run(cluster, steps=400)
    np.testing.assert_array_equal(resumed.step, ref.step)
    np.testing.assert_allclose(resumed.positions, ref.positions, rtol=0, atol=1e-9)


def test_ase_calculator_callback_equals_cpp_potential(cluster):
    t_cpp = run(cluster, steps=100)
    t_ase = pymotor.run_md(LennardJones(epsilon=0.0104, sigma=3.4, rc=8.5, smooth=False), cluster, steps=100,
                           timestep_fs=4.0, temperature_K=40.0, tdamp_fs=100.0, seed=3)
    np.testing.assert_allclose(t_ase.positions, t_cpp.positions, atol=1e-9)
    np.testing.assert_allclose(t_ase.conserved_energy, t_cpp.conserved_energy, atol=1e-9)


def test_replicas_in_one_call_equal_separate_runs(tiny_model_path, ethanol, tmp_path):
    reps = []
    for k in range(3):
        a = ethanol.copy()
        a.rattle(0.05, seed=k)
        reps.append(a)
    batch = pymotor.run_md(tiny_model_path, reps, steps=50, timestep_fs=0.5, seed=1, trajectory=tmp_path / "b.h5",
                           on_bond_change="ignore")  # random weights: bonds break
    assert [t.path.name for t in batch] == ["b_0.h5", "b_1.h5", "b_2.h5"]
    from pymotor.md import maxwell_boltzmann_velocities

    v = maxwell_boltzmann_velocities(ethanol.get_masses(), 300.0, np.random.default_rng(1), 3,
                                     positions=reps[0].positions)
    for k, a in enumerate(reps):
        a = a.copy()
        a.set_velocities(v[k] / units.fs)
        single = pymotor.run_md(tiny_model_path, a, steps=50, timestep_fs=0.5, n_dof=batch[k].n_dof,
                                on_bond_change="ignore")
        # float32 model: batched and single evaluations agree to float32 round-off
        np.testing.assert_allclose(batch[k].positions, single.positions, atol=1e-5)


def test_blow_up_names_step_and_keeps_frames(cluster, tmp_path):
    """Velocity Verlet is unstable for omega*dt > 2: the amplitude grows until the force limit."""
    path = tmp_path / "boom.h5"
    pot = pymotor.HarmonicPotential(10.0, cluster.positions)  # omega = 0.049 rad/fs for Ar
    with pytest.raises(MDError, match=r"blew up at step \d+.*on atom \d+ is .* above max_force_eV_per_A=5.*saved in") as exc:
        pymotor.run_md(pot, cluster, steps=500, timestep_fs=60.0, thermostat=None, temperature_K=300.0,
                       trajectory=path, max_force_eV_per_A=5.0, chunk_steps=10)
    t = pymotor.read_trajectory(path)
    assert len(t) >= 1 and np.all(np.isfinite(t.positions))
    assert exc.value.step == t.step[-1] + 1 and f"blew up at step {exc.value.step} " in str(exc.value)
    assert exc.value.reason == "force-limit" and exc.value.atom is not None and exc.value.paths == [path]
    assert int(read_state(path)["step"]) <= t.step[-1]  # the committed restart state


def test_start_geometry_checks(cluster):
    bad = cluster.copy()
    bad.positions[1] = bad.positions[0] + 0.5  # atoms on top of each other
    with pytest.raises(MDError, match="start force component") as exc:
        pymotor.run_md(pymotor.LennardJonesPotential(**LJ), bad, steps=10)
    assert exc.value.step is None


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=-1), "`steps` must be an integer >= 0"),
    (dict(steps=1.5), "`steps` must be an integer"),
    (dict(timestep_fs=0.0), "`timestep_fs` must be a non-zero finite number"),
    (dict(timestep_fs=float("nan")), "`timestep_fs`"),
    (dict(temperature_K=-5.0), "`temperature_K` must be a number > 0"),
    (dict(temperature_K=None), "`temperature_K` is required"),
    (dict(tdamp_fs=0.0), "`tdamp_fs` must be a number > 0"),
    (dict(chain_length=0), "`chain_length` must be an integer > 0"),
    (dict(thermostat="berendsen"), "`thermostat` must be one of"),
    (dict(suzuki_yoshida_order=4), "`suzuki_yoshida_order` must be 1, 3, 5 or 7"),
    (dict(interval=0), "`interval` must be an integer > 0"),
])
def test_bad_arguments(cluster, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run(cluster, **kwargs)


def test_bad_atoms(cluster, tiny_model_path):
    nan = cluster.copy()
    nan.positions[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"non-finite position \(atom 0"):
        run(nan)
    with pytest.raises(TypeError, match="`atoms` must be an ase.Atoms"):
        run(np.zeros((13, 3)))
    with pytest.raises(ValueError, match="replicas must be the same molecule"):
        run([cluster, Atoms("Ar2", positions=[[0, 0, 0], [4, 0, 0]])])
    periodic = cluster.copy()
    periodic.pbc = True
    with pytest.raises(ValueError, match="periodic"):
        run(periodic)
    with pytest.raises(TypeError, match="`model` must be"):
        pymotor.run_md(42, cluster, steps=1)
    with pytest.raises(ValueError, match=r"\['Ar'\].*not trained on"):
        pymotor.run_md(tiny_model_path, cluster, steps=1)
    with pytest.raises(FileNotFoundError, match="`path`"):
        pymotor.run_md("no_such_model.pt", cluster, steps=1)


def test_restart_errors(cluster, tmp_path):
    p = tmp_path / "a.h5"
    run(cluster, steps=10, trajectory=p)
    with pytest.raises(ValueError, match=r"other settings \(timestep_fs: 4.0 -> 2.0\).*change_settings=True"):
        run(cluster, steps=20, restart=p, timestep_fs=2.0)
    with pytest.raises(ValueError, match="different molecule"):
        run(Icosahedron("Ar", 3), steps=20, restart=p)
    nve = tmp_path / "nve.h5"
    run(cluster, steps=10, trajectory=nve, thermostat=None)
    with pytest.raises(ValueError, match="thermostat: none -> nose-hoover"):
        run(cluster, steps=20, restart=nve)


def test_progress_bar_runs(cluster, capsys):
    t = run(cluster, steps=100, progress=True)
    assert len(t) == 101
    assert "100/100" in capsys.readouterr().err


def test_default_n_dof_follows_the_conserved_momenta():
    """3N - 6 for Maxwell-Boltzmann velocities without P and L, also with the residual
    angular momentum of a long GFN2-xTB reference frame (~1e-5 amu A^2/fs); 3N - 3 for a
    molecule rotating with ~kT/2 per axis; 3N for a drifting one."""
    from pymotor.md import default_n_dof, maxwell_boltzmann_velocities, remove_angular_momentum

    a = pymotor.data.cpnx()
    x, m = a.get_positions(), a.get_masses()
    n = len(m)
    v = maxwell_boltzmann_velocities(m, 300.0, np.random.default_rng(0), positions=x)[0]
    assert default_n_dof(x, v, m) == 3 * n - 6
    c = m @ x / m.sum()
    omega = np.array([2e-9, -1e-9, 3e-9])  # rad/fs: L ~ 1e-5 amu A^2/fs as in data/T300
    v_res = v + np.cross(omega, x - c)
    L = np.einsum("i,ij->j", m, np.cross(x - c, v_res))
    assert 1e-6 < np.abs(L).max() < 1e-4
    assert default_n_dof(x, v_res, m) == 3 * n - 6
    v_rot = v + np.cross(np.array([0.0, 0.0, 2e-3]), x - c)  # E_rot ~ 0.01 eV, ~kT/2
    assert default_n_dof(x, v_rot, m) == 3 * n - 3
    assert default_n_dof(x, v + 1e-3, m) == 3 * n
    np.testing.assert_allclose(remove_angular_momentum(x, v_rot, m), v, atol=1e-12)
