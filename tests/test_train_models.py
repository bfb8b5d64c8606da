"""The shipped models (pymotor.models)."""

from pathlib import Path

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


SHIPPED = [pytest.param(name, marks=pytest.mark.skipif(name not in models.available(), reason=f"{name} not built yet"))
           for name in ("cpnx-schnet", "cpnx-painn")]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_conserves_energy_in_nve(name):
    """1000 steps of 0.5 fs NVE from the GFN2-xTB minimum with 300 K velocities: the total
    energy stays constant to a small fraction of the kinetic-energy fluctuations and does not
    drift, and the motor neither explodes nor leaves the 300 K range."""
    m = models.load(name, device="cpu")
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


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_has_a_repulsive_wall_and_runs_on_the_fast_backend(name):
    """The shipped model carries the ZBL prior: an H pushed along its C–H bond meets a wall like
    GFN2-xTB's (14 eV at 0.6 Å above the equilibrium length, 28 eV at 0.5 Å; models without the
    prior level off at ~3 eV), for three of the hydrogens, and backend="auto" evaluates it with
    the fast kernels. The PaiNN's wall holds down to 0.6 Å (8–36 eV there, far beyond any
    thermal excursion: 1 eV is ~40 kT at 300 K); below ~0.6 Å its network falls into a hole that
    the prior does not outweigh (docs/training.md, "Known limit"), so 0.5 Å is checked for the
    SchNet only."""
    m = pymotor.load_model(models.path(name), backend="auto")
    arch = m.metadata["architecture"]
    assert m.backend == {"schnet": "fast-schnet", "painn": "fast-painn"}[arch]
    assert m.metadata["card"]["hyperparameters"]["prior"] == "zbl"
    a0 = pymotor.data.cpnx()
    for k in (0, 5, 12):
        h = int(np.where(a0.numbers == 1)[0][k])
        d = a0.get_distances(h, range(len(a0)))
        d[h] = np.inf
        c = int(np.argmin(d))
        u = (a0.positions[h] - a0.positions[c]) / d[c]

        def energy(r):
            a = a0.copy()
            a.positions[h] = a0.positions[c] + r * u
            return m.compute(a)[0]

        e0 = energy(d[c])
        # upper bounds: the SchNet's as before the PaiNN shipped; the PaiNN's wall is steeper
        # (up to 36 eV at 0.6 Å, docs/training.md)
        hi6, hi7 = {"schnet": (30.0, 10.0), "painn": (40.0, 12.0)}[arch]
        if arch == "schnet":
            assert 20.0 < energy(0.5) - e0 < 40.0, k
        assert 8.0 < energy(0.6) - e0 < hi6, k
        assert 4.0 < energy(0.7) - e0 < hi7, k
        assert 0.5 < energy(0.9) - e0 < 1.3, k  # the network alone, where the data are


def _blow_up_steps(name: str, temperature_K: float) -> list[int]:
    """The acceptance runs of a shipped model: 12 NVT runs of 5 ps (1 fs steps) from the
    GFN2-xTB minimum (pymotor stability); the steps at which runs blew up."""
    from pymotor.stability import blow_up_steps

    return blow_up_steps(str(models.path(name)), runs=12, timestep_fs=1.0, time_fs=5000.0,
                         temperature_K=temperature_K)


@pytest.mark.slow
@pytest.mark.skipif("cpnx-schnet" not in models.available(), reason="cpnx-schnet not built yet")
def test_cpnx_schnet_md_stability():
    """Acceptance check for a shipped model: 12 NVT runs of 5 ps at 300 K and 12 at 500 K (1 fs
    steps) from the GFN2-xTB minimum; at most 1 of each may blow up (measured: the shipped
    model 0/12 and 0/12; the previous shipped model 1/12 and 5/12, and more accurate fine-tuned
    models without the prior, 500 K data and active learning 6/12 to 11/12 at 300 K)."""
    for temperature_K in (300.0, 500.0):
        failed = _blow_up_steps("cpnx-schnet", temperature_K)
        assert len(failed) <= 1, (temperature_K, failed)


HELD_OUT = Path(__file__).parent / "data" / "cpnx_heldout_frames.npz"  # scripts/make_heldout_frames.py


def _held_out_errors(model) -> dict:
    """Energy and force MAE (kcal/mol, kcal/mol/A) of `model` on the shipped held-out frames,
    per source trajectory (0: IND300, (2R,P) from its own embedding; 1: RMSP300_2, the other
    diastereomer)."""
    from pymotor.train.data import energy_conversion

    d = np.load(HELD_OUT)
    kcal = energy_conversion("eV", "kcal/mol")
    out = {}
    for k in np.unique(d["source"]):
        sel = np.flatnonzero(d["source"] == k)
        z = d["atomic_numbers"][sel[0]]  # each trajectory has its own atom order
        assert (d["atomic_numbers"][sel] == z).all()
        e, f = model.potential(z).compute(d["positions"][sel])
        de = e * kcal - d["energy_kcal_mol"][sel]
        df = f * kcal - d["forces_kcal_mol_A"][sel]
        out[int(k)] = (float(np.abs(de).mean()), float(np.abs(df).mean()))
    return out


def test_shipped_held_out_frames_are_consistent_with_the_shipped_schnet():
    """The held-out frames file (152 GFN2-xTB frames of two trajectories no shipped model was
    trained on) gives the shipped SchNet v4 the errors docs/training.md states for the whole
    trajectories (IND300 0.92 / 1.08, RMSP300_2 5.19 / 2.05 kcal/mol(/A), every 10th frame)."""
    errors = _held_out_errors(pymotor.models.load("cpnx-schnet"))
    (e0, f0), (e1, f1) = errors[0], errors[1]
    assert 0.6 < e0 < 1.3 and 0.8 < f0 < 1.4, errors
    assert 3.5 < e1 < 7.0 and 1.6 < f1 < 2.6, errors


@pytest.mark.skipif("cpnx-painn" not in models.available(), reason="cpnx-painn not shipped yet (issue 14)")
def test_shipped_painn_and_committee_on_held_out_frames():
    """cpnx-painn is the default model and reaches the source work's accuracy on the shipped
    frames of the independent (2R,P) trajectory (0.19 kcal/mol, 0.30 kcal/mol/Å; measured 0.163
    and 0.282), within twice that on the other diastereomer (measured 0.225 / 0.340); so does
    each member of cpnx-committee, which resolves to cpnx-painn and two other files. The
    committee disagrees more on the other diastereomer, which it saw less of (median max force
    std 0.0072 against 0.0056 eV/Å)."""
    from pymotor.learn import Committee, resolve_committee

    assert models.DEFAULT == "cpnx-painn"
    files = resolve_committee("cpnx-committee")
    assert len(files) == 3 and files[0] == models.path("cpnx-painn") and len({f.resolve() for f in files}) == 3
    for f in files:
        errors = _held_out_errors(pymotor.load_model(f))
        assert errors[0][0] <= 0.19 and errors[0][1] <= 0.30, (f, errors)
        assert errors[1][0] <= 0.38 and errors[1][1] <= 0.60, (f, errors)
    d = np.load(HELD_OUT)
    committee = Committee(files)
    spread = []
    for k in (0, 1):
        sel = np.flatnonzero(d["source"] == k)
        spread.append(np.median(committee.evaluate_frames(d["positions"][sel], d["atomic_numbers"][sel[0]]).max_force_std))
    assert 0.0 < spread[0] < spread[1] < 0.05, spread


@pytest.mark.slow
@pytest.mark.skipif("cpnx-painn" not in models.available(), reason="cpnx-painn not shipped yet (issue 14)")
def test_cpnx_painn_accuracy_and_stability():
    """Acceptance check for the accurate model: on the held-out frames of our configuration the
    source work's accuracy (energy MAE <= 0.19 kcal/mol, forces <= 0.30 kcal/mol/A), on the
    other diastereomer at most twice that; and no blow-up in 12 NVT runs of 5 ps at 300 K and
    at 500 K (1 fs steps)."""
    m = pymotor.models.load("cpnx-painn")
    errors = _held_out_errors(m)
    assert errors[0][0] <= 0.19 and errors[0][1] <= 0.30, errors
    assert errors[1][0] <= 0.38 and errors[1][1] <= 0.60, errors
    for temperature_K in (300.0, 500.0):
        failed = _blow_up_steps("cpnx-painn", temperature_K)
        assert not failed, (temperature_K, failed)
