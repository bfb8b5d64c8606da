"""The shipped models (pymotor.models)."""

import numpy as np
import pytest

import pymotor
import pymotor.models as models


def test_unknown_model_names_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"no shipped model 'nope'.*available"):
        models.load("nope")


@pytest.mark.skipif("cpnx-schnet" not in models.available(), reason="cpnx-schnet not built yet")
def test_cpnx_schnet_loads_and_reproduces_gfn2_energy_of_cpnx():
    m = models.load("cpnx-schnet", device="cpu")
    md = m.metadata
    assert md["format"] == "pymotor.model/1" and md["architecture"] == "schnet"
    assert md["elements"] == [1, 6, 8] and md["cutoff"] == 5.0
    assert "metrics" in md["card"] and md["card"]["datasets"]
    assert models.card("cpnx-schnet").startswith("# Model card: cpnx-schnet")
    atoms = pymotor.data.cpnx()
    e, f = m.compute(atoms)
    assert f.shape == (48, 3) and np.isfinite(f).all()
    # the GFN2-xTB minimum-energy geometry: the model's absolute energy (offset included)
    # is within 1 eV (23 kcal/mol) of the reference; it is outside the 300 K training
    # distribution, so this is a loose check of units and offset, not of accuracy
    assert abs(e - atoms.info["energy_eV"]) < 1.0


@pytest.mark.skipif("cpnx-schnet" not in models.available(), reason="cpnx-schnet not built yet")
def test_cpnx_schnet_conserves_energy_in_nve():
    """1000 steps of 0.5 fs NVE from the GFN2-xTB minimum with 300 K velocities: the total
    energy stays constant to a small fraction of the kinetic-energy fluctuations and does not
    drift, and the motor neither explodes nor leaves the 300 K range."""
    m = models.load("cpnx-schnet", device="cpu")
    traj = pymotor.run_md(m, pymotor.data.cpnx(), steps=1000, timestep_fs=0.5, thermostat=None,
                          temperature_K=300.0, seed=1)
    etot = traj.potential_energy + traj.kinetic_energy
    kin_sd = traj.kinetic_energy.std()
    assert etot.std() < 0.05 * kin_sd, (etot.std(), kin_sd)
    half = len(etot) // 2
    assert abs(etot[half:].mean() - etot[:half].mean()) < 0.01 * kin_sd
    # equipartition from a minimum: about half of the initial 300 K goes into potential energy
    # (measured: 123-130 K; Etot sd 1.2-1.6 meV against KE sd 93-103 meV for the models tried)
    assert 100.0 < traj.temperature[half:].mean() < 200.0


@pytest.mark.skipif("cpnx-schnet" not in models.available(), reason="cpnx-schnet not built yet")
def test_cpnx_schnet_has_a_repulsive_wall_and_runs_on_the_fast_backend():
    """The shipped model carries the ZBL prior: one H pushed along its C–H bond meets a wall like
    GFN2-xTB's (28 eV at 0.5 Å, 14 eV at 0.6 Å above the equilibrium length; models without
    the prior level off at ~3 eV), and backend="auto" evaluates it with the fast kernels."""
    from pymotor.fast_schnet import FastSchNetModel

    m = pymotor.load_model(models.path("cpnx-schnet"), backend="auto")
    assert isinstance(m, FastSchNetModel)
    assert m.metadata["card"]["hyperparameters"]["prior"] == "zbl"
    a0 = pymotor.data.cpnx()
    h = int(np.where(a0.numbers == 1)[0][5])
    d = a0.get_distances(h, range(len(a0)))
    d[h] = np.inf
    c = int(np.argmin(d))
    u = (a0.positions[h] - a0.positions[c]) / d[c]

    def energy(r):
        a = a0.copy()
        a.positions[h] = a0.positions[c] + r * u
        return m.compute(a)[0]

    e0 = energy(d[c])
    assert 20.0 < energy(0.5) - e0 < 40.0
    assert 8.0 < energy(0.6) - e0 < 20.0
    assert 0.5 < energy(0.9) - e0 < 1.3  # the network alone, where the data are


@pytest.mark.slow
@pytest.mark.skipif("cpnx-schnet" not in models.available(), reason="cpnx-schnet not built yet")
def test_cpnx_schnet_md_stability():
    """Acceptance check for a shipped model: 12 NVT runs of 5 ps at 300 K and 12 at 500 K (1 fs
    steps) from the GFN2-xTB minimum; at most 1 of each may blow up (measured: the shipped
    model 0/12 and 0/12; the previous shipped model 1/12 and 5/12, and more accurate fine-tuned
    models without the prior, 500 K data and active learning 6/12 to 11/12 at 300 K)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "md_stability", Path(__file__).parents[1] / "scripts" / "md_stability.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for temperature_K in (300.0, 500.0):
        failed = mod.blow_up_steps(str(models.path("cpnx-schnet")), runs=12, timestep_fs=1.0, time_fs=5000.0,
                                   temperature_K=temperature_K)
        assert len(failed) <= 1, (temperature_K, failed)
