"""Integrators: energy conservation, time reversibility, canonical sampling, agreement with ASE."""
import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.md.verlet import VelocityVerlet

import pymotor
from pymotor import _core
from pymotor.units import KB_EV_PER_K

KT_300 = KB_EV_PER_K * 300.0


def argon_cluster(seed=0):
    a = Icosahedron("Ar", 3)  # 55 atoms
    a.rattle(0.02, seed=seed)
    a.pbc = False
    return a


LJ_AR = dict(epsilon_eV=0.0104, sigma_A=3.4, cutoff_A=8.5)


def block_standard_error(x, n_blocks=20):
    blocks = np.array_split(np.asarray(x), n_blocks)
    means = np.array([b.mean() for b in blocks])
    return means.std(ddof=1) / np.sqrt(n_blocks)


def test_harmonic_oscillator_follows_analytic_solution():
    """x(t) = x0 cos(w t) for one oscillator started at rest, w = sqrt(k/m)."""
    a = Atoms("C", positions=[[0.3, 0.0, 0.0]])
    k = 5.0  # eV/A^2
    pot = pymotor.HarmonicPotential(k, [[0.0, 0.0, 0.0]])
    t = pymotor.run_md(pot, a, steps=2000, timestep_fs=0.1, thermostat=None, temperature_K=None, n_dof=3)
    w = np.sqrt(k / (a.get_masses()[0] * pymotor.units.AMU_A2_PER_FS2_IN_EV))  # rad/fs
    np.testing.assert_allclose(t.positions[:, 0, 0], 0.3 * np.cos(w * t.time_fs), atol=2e-5)


def test_nve_energy_conservation_lj_10000_steps():
    a = argon_cluster()
    t = pymotor.run_md(pymotor.LennardJonesPotential(**LJ_AR), a, steps=10_000, timestep_fs=5.0,
                       thermostat=None, temperature_K=40.0, seed=1, interval=10)
    drift = np.abs(t.conserved_energy - t.conserved_energy[0]).max()
    assert drift < 1e-3 * KB_EV_PER_K * 40.0 * len(a)  # far below the thermal energy
    np.testing.assert_allclose(t.conserved_energy, t.potential_energy + t.kinetic_energy, rtol=1e-12)


def test_nve_energy_conservation_schnet_like_model_10000_steps(tiny_model_path, ethanol):
    t = pymotor.run_md(tiny_model_path, ethanol, steps=10_000, timestep_fs=0.25, thermostat=None,
                       temperature_K=300.0, seed=3, interval=10,
                       on_bond_change="ignore")  # random weights: bonds break; conservation only
    drift = np.abs(t.conserved_energy - t.conserved_energy[0]).max()
    assert np.isfinite(t.conserved_energy).all()
    assert drift < 0.05 * KT_300, f"energy drift {drift:.2e} eV"
    # it actually moves
    assert np.abs(t.positions[-1] - t.positions[0]).max() > 0.1


@pytest.mark.parametrize("thermostat", [None, "nose-hoover"])
def test_time_reversibility(thermostat):
    """n steps at dt, then n steps at -dt from the end state, return to the start."""
    a = argon_cluster()
    pot = _core.LennardJonesPotential(LJ_AR["epsilon_eV"], LJ_AR["sigma_A"], LJ_AR["cutoff_A"], 0.5)
    rng = np.random.default_rng(0)
    v0 = pymotor.md.maxwell_boltzmann_velocities(a.get_masses(), 40.0, rng)
    sim = _core.Simulation(pot, a.positions[None], v0, a.get_masses(), a.numbers, 2.0,
                           temperature_K=60.0 if thermostat else None, tdamp_fs=50.0)
    sim.compute_forces()
    sim.run(2000, 2000)
    eta_mid, p_eta_mid = sim.thermostat_state()
    sim.timestep_fs = -2.0
    sim.run(2000, 2000)
    np.testing.assert_allclose(sim.positions[0], a.positions, atol=1e-8)
    np.testing.assert_allclose(sim.velocities, v0, atol=1e-10)
    if thermostat:
        eta, p_eta = sim.thermostat_state()
        # back to zero up to round-off relative to how far the thermostat went
        assert np.abs(eta).max() < 1e-7 * np.abs(eta_mid).max()
        assert np.abs(p_eta).max() < 1e-7 * np.abs(p_eta_mid).max()


def test_nose_hoover_conserved_energy_drift():
    a = argon_cluster()
    t = pymotor.run_md(pymotor.LennardJonesPotential(**LJ_AR), a, steps=10_000, timestep_fs=5.0,
                       temperature_K=40.0, tdamp_fs=500.0, seed=2, interval=10)
    ke_change = np.ptp(t.kinetic_energy)
    drift = np.abs(t.conserved_energy - t.conserved_energy[0]).max()
    assert drift < 0.02 * ke_change
    assert drift < 1e-3 * KB_EV_PER_K * 40.0 * len(a)


@pytest.mark.parametrize("chain_length,n_substeps,order", [(3, 1, 3), (4, 2, 5)])
def test_nose_hoover_canonical_kinetic_energy(chain_length, n_substeps, order):
    """An Ar55 cluster (zero total and angular momentum, n_dof = 3N - 6) at 30 K:
    <K> = n_dof kT/2 and var(K) = n_dof (kT)^2 / 2 within statistical error."""
    T = 30.0
    replicas = [argon_cluster(seed=s) for s in range(4)]
    trajs = pymotor.run_md(pymotor.LennardJonesPotential(**LJ_AR), replicas, steps=100_000, timestep_fs=5.0,
                           temperature_K=T, tdamp_fs=200.0, chain_length=chain_length, n_substeps=n_substeps,
                           suzuki_yoshida_order=order, seed=5, interval=10)
    kT = KB_EV_PER_K * T
    n_dof = trajs[0].n_dof
    assert n_dof == 3 * 55 - 6
    ke = np.array([t.kinetic_energy[len(t) // 5:] for t in trajs])
    mean_ref, var_ref = n_dof * kT / 2, n_dof * kT**2 / 2
    # standard errors from block averages over the independent replicas
    se_mean = np.sqrt(np.mean([block_standard_error(k) ** 2 for k in ke]) / len(ke))
    var_blocks = np.array([[b.var() for b in np.array_split(k, 10)] for k in ke]).ravel()
    se_var = var_blocks.std(ddof=1) / np.sqrt(len(var_blocks))
    assert abs(ke.mean() - mean_ref) < 4 * se_mean, (ke.mean() / mean_ref, se_mean / mean_ref)
    assert abs(ke.var() - var_ref) < 4 * se_var + 0.02 * var_ref, (ke.var() / var_ref, se_var / var_ref)
    for t in trajs:
        assert np.ptp(t.conserved_energy) < 0.01 * mean_ref


# ASE's units use CODATA 2014 (kB differs from CODATA 2018 by 4e-7, amu by 1e-9 relative):
# trajectories agree to that level, not to machine precision.
def _ase_reference(atoms, dyn_factory, steps):
    atoms = atoms.copy()
    atoms.calc = LennardJones(epsilon=LJ_AR["epsilon_eV"], sigma=LJ_AR["sigma_A"], rc=LJ_AR["cutoff_A"], smooth=False)
    dyn = dyn_factory(atoms)
    pos, vel = [atoms.positions.copy()], [atoms.get_velocities() * units.fs]
    for _ in range(steps):
        dyn.run(1)
        pos.append(atoms.positions.copy())
        vel.append(atoms.get_velocities() * units.fs)
    return np.array(pos), np.array(vel), dyn


def test_velocity_verlet_matches_ase_step_by_step():
    a = argon_cluster()
    a.set_velocities(pymotor.md.maxwell_boltzmann_velocities(a.get_masses(), 40.0, np.random.default_rng(1))[0]
                     / units.fs)
    pos, vel, _ = _ase_reference(a, lambda at: VelocityVerlet(at, timestep=2.0 * units.fs), 200)
    t = pymotor.run_md(pymotor.LennardJonesPotential(**LJ_AR), a, steps=200, timestep_fs=2.0, thermostat=None)
    assert np.abs(t.positions[-1] - a.positions).max() > 0.1
    np.testing.assert_allclose(t.positions, pos, atol=1e-8)
    np.testing.assert_allclose(t.velocities, vel, atol=1e-10)


def test_nose_hoover_chain_matches_ase_step_by_step():
    """Same scheme as ASE's NoseHooverChainNVT (n_dof = 3N, fourth-order Suzuki-Yoshida)."""
    a = argon_cluster()
    a.set_velocities(pymotor.md.maxwell_boltzmann_velocities(a.get_masses(), 20.0, np.random.default_rng(1))[0]
                     / units.fs)
    pos, vel, dyn = _ase_reference(
        a, lambda at: NoseHooverChainNVT(at, timestep=2.0 * units.fs, temperature_K=60.0,
                                         tdamp=50.0 * units.fs, tchain=3, tloop=2), 300)
    t = pymotor.run_md(pymotor.LennardJonesPotential(**LJ_AR), a, steps=300, timestep_fs=2.0, temperature_K=60.0,
                       tdamp_fs=50.0, chain_length=3, n_substeps=2, suzuki_yoshida_order=3, n_dof=3 * len(a))
    np.testing.assert_allclose(t.positions, pos, atol=1e-6)
    np.testing.assert_allclose(t.velocities, vel, atol=1e-8)
    assert t.temperature[-1] > 1.5 * t.temperature[0]  # the thermostat did heat the cluster
    np.testing.assert_allclose(t.conserved_energy[-1], dyn.get_conserved_energy(), atol=1e-6)


def test_initial_velocities_maxwell_boltzmann():
    """Seeded, zero total momentum, temperature close to the target for a large sample."""
    masses = np.full(3000, 12.0)
    v = pymotor.md.maxwell_boltzmann_velocities(masses, 300.0, np.random.default_rng(0))[0]
    np.testing.assert_allclose((masses[:, None] * v).sum(0), 0.0, atol=1e-10)
    ke = 0.5 * (masses[:, None] * v**2).sum() * pymotor.units.AMU_A2_PER_FS2_IN_EV
    T = 2 * ke / ((3 * len(masses) - 3) * KB_EV_PER_K)
    assert abs(T - 300.0) < 3 * 300.0 * np.sqrt(2 / (3 * len(masses)))


def test_momenta_of_atoms_are_used():
    a = argon_cluster()
    v = pymotor.md.maxwell_boltzmann_velocities(a.get_masses(), 30.0, np.random.default_rng(9))[0]
    a.set_velocities(v / units.fs)
    t = pymotor.run_md(pymotor.LennardJonesPotential(**LJ_AR), a, steps=0, timestep_fs=1.0, thermostat=None)
    np.testing.assert_allclose(t.velocities[0], v, atol=1e-12)
    assert len(t) == 1


@pytest.mark.slow
def test_nose_hoover_canonical_cpnx_small_model(tiny_model_path):
    """CPNX (48 atoms) with a small SchNet-like model at 300 K: canonical mean and variance
    of the kinetic energy (n_dof = 3N - 6)."""
    atoms = pymotor.data.cpnx()
    trajs = pymotor.run_md(tiny_model_path, [atoms.copy() for _ in range(4)], steps=40_000, timestep_fs=0.5,
                           temperature_K=300.0, tdamp_fs=50.0, seed=11, interval=5)
    n_dof = trajs[0].n_dof
    assert n_dof == 3 * 48 - 6
    ke = np.array([t.kinetic_energy[len(t) // 5:] for t in trajs])
    mean_ref, var_ref = n_dof * KT_300 / 2, n_dof * KT_300**2 / 2
    se_mean = np.sqrt(np.mean([block_standard_error(k) ** 2 for k in ke]) / len(ke))
    assert abs(ke.mean() - mean_ref) < 4 * se_mean, (ke.mean() / mean_ref, se_mean / mean_ref)
    assert abs(ke.var() / var_ref - 1.0) < 0.1, ke.var() / var_ref
