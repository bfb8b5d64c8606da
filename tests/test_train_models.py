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


@pytest.mark.slow
@pytest.mark.skipif("cpnx-schnet" not in models.available(), reason="cpnx-schnet not built yet")
def test_cpnx_schnet_md_stability():
    """Acceptance check for a shipped model: 12 NVT runs of 5 ps at 300 K (1 fs steps) from
    the GFN2-xTB minimum; at most 2 may blow up (measured: the shipped model 1/12; the more
    accurate fine-tuned models 6/12 to 11/12, which is why they are not shipped)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "md_stability", Path(__file__).parents[1] / "scripts" / "md_stability.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    failed = mod.blow_up_steps(str(models.path("cpnx-schnet")), runs=12, timestep_fs=1.0, time_fs=5000.0)
    assert len(failed) <= 2, failed
