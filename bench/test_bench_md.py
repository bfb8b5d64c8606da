"""MD step benchmarks: pymotor vs ASE + SchNetPack's SpkCalculator vs schnetpack.md.

One random-weight SchNet (128 features, 3 interactions, 20 RBF, cosine cutoff 5 Angstrom;
bench/conftest.py) on the 48-atom CPNX motor, one torch thread, NVT Nose-Hoover chain
(300 K, 0.5 fs, tdamp 100 fs, chain of 3, one Suzuki-Yoshida order-3 sweep per half step)
from the same start state (positions and velocities) for every competitor.

Groups (pytest-benchmark ``group``):

* ``md-1-model-call``: the model calls of one MD run without the MD: the STEPS + 1
  geometries of a pymotor trajectory, with prebuilt inputs, through the frozen scripted model
  (the bare cost), through the Python SchNetPack model (what ``SpkCalculator`` runs), and
  through pymotor's C++ potential ``compute`` (neighbour list + input tensors + the same model);
* ``md-1-replica``: ``STEPS`` MD steps per round with pymotor.run_md (the TorchScript model, and
  the same weights through pymotor's fast C++ SchNet backend), ASE's ``NoseHooverChainNVT`` +
  ``SpkCalculator`` and schnetpack.md's ``Simulator``;
* ``md-1-replica-interleaved``: one round of each of the above in turn, repeated: paired
  ratios that a drifting machine load cannot bias;
* ``md-32-replicas`` (and ``md-32-replicas-interleaved``): 32 rattled CPNX copies for
  ``STEPS_32`` steps: pymotor batched (one model call per step; TorchScript and fast backend),
  32 separate pymotor runs, and schnetpack.md with ``n_replicas=32``.

Every benchmark first checks that its competitor computes the same energy and forces as the
reference SchNetPack model (float32 tolerance) and afterwards that its trajectory ends where
pymotor's does, so that no benchmark silently compares different work. The thermostats are
given the same number of degrees of freedom (3N, ASE's and schnetpack.md's choice; pymotor's
default is 3N - 6) so that the three integrate the same equations of motion.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest bench/test_bench_md.py --benchmark-only``.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("schnetpack")
pytest.importorskip("pytest_benchmark")

# Model and MD settings shared with bench/conftest.py.
from md_settings import (  # noqa: E402  (bench/ is on sys.path under pytest)
    CHAIN_LENGTH,
    CUTOFF_A,
    ENERGY_UNIT,
    LENGTH_UNIT,
    SEED,
    TDAMP_FS,
    TEMPERATURE_K,
    TIMER,
    TIMESTEP_FS,
)
from md_settings import ase_nhc as _ase_nhc  # noqa: E402

pytestmark = [
    pytest.mark.schnetpack,
    pytest.mark.benchmark(timer=TIMER),
    # torch 2.13 deprecates TorchScript, which SchNetPack (scatter_add, spkdeploy) and pymotor use.
    pytest.mark.filterwarnings("ignore:`torch.jit.[a-z_]+` is deprecated:DeprecationWarning"),
]

#: MD steps per round (single replica) and per round of the 32-replica group.
STEPS = 100
STEPS_32 = 10
N_REPLICAS = 32
ROUNDS = 7
ROUNDS_32 = 3
#: Positions after a round must agree with pymotor's to this (Angstrom). Measured: <= 1e-5
#: (schnetpack.md integrates in float32); a thermostat with 3N - 6 instead of 3N degrees of
#: freedom already moves them by 2e-2.
POS_TOL_A = 1e-3


def _nhc_kwargs(n_atoms: int) -> dict:
    return dict(timestep_fs=TIMESTEP_FS, temperature_K=TEMPERATURE_K, thermostat="nose-hoover",
                tdamp_fs=TDAMP_FS, chain_length=CHAIN_LENGTH, n_substeps=1, suzuki_yoshida_order=3,
                n_dof=3.0 * n_atoms, trajectory=None, chunk_steps=STEPS, torch_threads=1)


# ---------------------------------------------------------------------------------------
# shared references
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _settings_agree(settings):
    """This module's MD constants are those of bench/conftest.py (start velocities, model)."""
    assert (settings.cutoff_A, settings.energy_unit, settings.length_unit, settings.temperature_K,
            settings.timestep_fs, settings.tdamp_fs, settings.chain_length, settings.seed) == (
        CUTOFF_A, ENERGY_UNIT, LENGTH_UNIT, TEMPERATURE_K, TIMESTEP_FS, TDAMP_FS, CHAIN_LENGTH, SEED)


@pytest.fixture(scope="module")
def pymotor_reference_run(pymotor_model, start_state):
    """pymotor's trajectory of STEPS steps from the start state (every frame): the geometries
    of the model-call benchmarks and the end point every competitor must reach."""
    import pymotor

    return pymotor.run_md(pymotor_model, start_state, STEPS, **_nhc_kwargs(len(start_state)))


@pytest.fixture(scope="module")
def pymotor_end(pymotor_reference_run):
    return pymotor_reference_run.positions[-1]


@pytest.fixture(scope="module")
def replicas32(cpnx, make_start):
    """32 CPNX copies rattled by 0.05 Angstrom, each with its own 300 K velocities."""
    out = []
    for r in range(N_REPLICAS):
        a = cpnx.copy()
        a.rattle(stdev=0.05, seed=SEED + 1 + r)
        out.append(make_start(a, SEED + 1 + r))
    return out


@pytest.fixture(scope="module")
def replicas32_reference(spk_model_files, replicas32):
    """Energies (eV) of the 32 start geometries from the Python SchNetPack model (one batch)."""
    import schnetpack as spk
    import torch
    from schnetpack.interfaces import AtomsConverter
    from schnetpack.units import convert_units

    conv = AtomsConverter(neighbor_list=spk.transform.VesinNeighborList(cutoff=CUTOFF_A), dtype=torch.float32)
    out = spk_model_files.model(conv(list(replicas32)))
    return out["energy"].detach().double().numpy() * convert_units(ENERGY_UNIT, "eV")


@pytest.fixture(scope="module")
def pymotor_end32(pymotor_model, replicas32):
    import pymotor

    trajs = pymotor.run_md(pymotor_model, replicas32, STEPS_32, **_nhc_kwargs(len(replicas32[0])))
    return np.stack([t.positions[-1] for t in trajs])


def _assert_same_end(positions, target, what: str) -> float:
    d = float(np.abs(np.asarray(positions) - target).max())
    assert d < POS_TOL_A, (f"{what}: final positions differ from pymotor's by {d:.3g} Angstrom "
                           f"(limit {POS_TOL_A}): the competitors do not integrate the same dynamics")
    return d


# ---------------------------------------------------------------------------------------
# 1a. the model calls of one MD run, without the MD
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def frame_inputs(cpnx, pymotor_reference_run):
    """SchNetPack inputs (float32, vesin neighbour list within 5 Angstrom, both directions) of
    the STEPS + 1 geometries of pymotor's reference trajectory: exactly the model calls an MD
    run of STEPS steps makes. (The cost of the frozen TorchScript model differs by up to ~1.5x
    between single geometries; a whole trajectory's calls compare like with like.)"""
    import schnetpack as spk
    import torch
    from schnetpack.interfaces import AtomsConverter

    conv = AtomsConverter(neighbor_list=spk.transform.VesinNeighborList(cutoff=CUTOFF_A), dtype=torch.float32)
    out = []
    for x in pymotor_reference_run.positions:
        a = cpnx.copy()
        a.set_positions(x)
        out.append(conv(a))
    return out


def _check_trajectory_energies(energies_eV, traj, what: str) -> None:
    """Energies along the reference trajectory equal those pymotor's MD computed."""
    d = float(np.abs(np.asarray(energies_eV) - traj.potential_energy).max())
    assert d < 2e-4, f"{what}: energies along the trajectory differ from pymotor.run_md's by {d:.3g} eV"


def _model_call_benchmark(benchmark, model, frame_inputs, traj, reference, key, what, same_physics, record):
    from schnetpack.units import convert_units

    conv = convert_units(ENERGY_UNIT, "eV")

    def calls():
        return [model(dict(inputs)) for inputs in frame_inputs]

    outs = calls()
    same_physics(outs[0]["energy"].item() * conv, outs[0]["forces"].detach().numpy() * conv, reference, what)
    _check_trajectory_energies([o["energy"].item() * conv for o in outs], traj, what)
    benchmark.group = "md-1-model-call"
    benchmark.pedantic(calls, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    record(benchmark, key, len(frame_inputs), unit="call",
           n_pairs_first_last=[int(frame_inputs[0]["_idx_i"].numel()), int(frame_inputs[-1]["_idx_i"].numel())])


def test_bare_scripted_model_call(benchmark, spk_model_files, frame_inputs, pymotor_reference_run, reference,
                                  same_physics, record):
    """The frozen TorchScript model (as pymotor loads it: eval + freeze) on prebuilt inputs."""
    import torch

    model = torch.jit.freeze(torch.jit.load(spk_model_files.script, map_location="cpu").eval())
    _model_call_benchmark(benchmark, model, frame_inputs, pymotor_reference_run, reference, "bare_scripted",
                          "the scripted model", same_physics, record)


def test_bare_python_model_call(benchmark, spk_model_files, frame_inputs, pymotor_reference_run, reference,
                                same_physics, record):
    """The Python SchNetPack model (what SpkCalculator calls) on prebuilt inputs."""
    _model_call_benchmark(benchmark, spk_model_files.model, frame_inputs, pymotor_reference_run, reference,
                          "bare_python", "the Python SchNetPack model", same_physics, record)


def test_pymotor_potential_compute(benchmark, pymotor_model, cpnx, pymotor_reference_run, reference,
                                   same_physics, record):
    """pymotor's C++ potential on the same geometries: Verlet-list check (and rebuild) and pair
    filter, input tensors, model, outputs in eV."""
    pot = pymotor_model.potential(cpnx.numbers)
    frames = [np.ascontiguousarray(x[None]) for x in pymotor_reference_run.positions]
    e, f = pot.compute(frames[0])
    same_physics(e[0], f[0], reference, "pymotor's C++ potential")
    assert pot.last_n_pairs == reference.n_pairs, "pymotor and SchNetPack use different pair lists"

    def calls():
        return [pot.compute(x)[0][0] for x in frames]

    _check_trajectory_energies(calls(), pymotor_reference_run, "pymotor's C++ potential")
    benchmark.group = "md-1-model-call"
    benchmark.pedantic(calls, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    record(benchmark, "pymotor_compute", len(frames), unit="call")


# ---------------------------------------------------------------------------------------
# 1b-d. one replica, STEPS NVT steps per round
# ---------------------------------------------------------------------------------------

def _bench_pymotor_run_md(benchmark, model, start_state, reference, pymotor_end, same_physics, record,
                          name, label, **extra):
    """STEPS NVT steps of ``pymotor.run_md`` with `model` per round; checked against the reference."""
    import pymotor

    kwargs = _nhc_kwargs(len(start_state))
    result = {}

    def run():
        result["traj"] = pymotor.run_md(model, start_state, STEPS, **kwargs)

    benchmark.group = "md-1-replica"
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    traj = result["traj"]
    assert traj.step[-1] == STEPS
    same_physics(traj.potential_energy[0], traj.forces[0], reference, label)
    dpos = _assert_same_end(traj.positions[-1], pymotor_end, label)
    record(benchmark, name, STEPS, steps_per_round=STEPS, max_dpos_vs_pymotor_A=dpos, n_dof=traj.n_dof,
           **extra)


def test_pymotor_run_md(benchmark, pymotor_model, start_state, reference, pymotor_end, same_physics, record):
    _bench_pymotor_run_md(benchmark, pymotor_model, start_state, reference, pymotor_end, same_physics, record,
                          "pymotor_run_md", "pymotor.run_md")


@pytest.fixture(scope="module")
def pymotor_fast_model(spk_model_files):
    """The same file through pymotor's C++ SchNet evaluator (``backend="fast"``, float32)."""
    import pymotor

    try:
        return pymotor.load_model(spk_model_files.script, energy_unit=ENERGY_UNIT, length_unit=LENGTH_UNIT,
                                  backend="fast")
    except (TypeError, ValueError, ImportError) as exc:
        pytest.skip(f"pymotor's fast SchNet backend is not available: {exc}")


def test_pymotor_fast_run_md(benchmark, pymotor_fast_model, start_state, reference, pymotor_end, same_physics,
                             record):
    """As test_pymotor_run_md, with ``load_model(..., backend="fast")`` (same weights)."""
    _bench_pymotor_run_md(benchmark, pymotor_fast_model, start_state, reference, pymotor_end, same_physics,
                          record, "pymotor_fast_run_md", "pymotor.run_md (fast backend)", backend="fast")


@pytest.fixture(scope="module")
def spk_calculator(spk_model_files):
    import schnetpack as spk
    from schnetpack.interfaces import SpkCalculator

    return SpkCalculator(spk_model_files.pickle, neighbor_list=spk.transform.VesinNeighborList(cutoff=CUTOFF_A),
                         energy_unit=ENERGY_UNIT, position_unit=LENGTH_UNIT)


def test_ase_nhc_spkcalculator(benchmark, spk_calculator, start_state, reference, pymotor_end, same_physics, record):
    check = start_state.copy()
    check.calc = spk_calculator
    same_physics(check.get_potential_energy(), check.get_forces(), reference, "ASE + SpkCalculator")
    result = {}

    def setup():
        result["atoms"], result["dyn"] = atoms, dyn = _ase_nhc(spk_calculator, start_state)
        return (dyn,), {}

    def run(dyn):
        dyn.run(STEPS)

    benchmark.group = "md-1-replica"
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert result["dyn"].nsteps == STEPS
    dpos = _assert_same_end(result["atoms"].positions, pymotor_end, "ASE NoseHooverChainNVT + SpkCalculator")
    record(benchmark, "ase_spkcalculator", STEPS, steps_per_round=STEPS, max_dpos_vs_pymotor_A=dpos,
           neighbor_list="VesinNeighborList")


def _spk_md_simulator(model_file, molecules, velocities_A_per_fs, n_replicas: int = 1):
    """schnetpack.md Simulator: VelocityVerlet + NHCThermostat + SchNetPackCalculator with
    NeighborListMD (cutoff 5 + 1 Angstrom shell, as pymotor's Verlet skin), in float32 as
    SchNetPack's MD tutorial and `spkmd` (precision 32) run it. ``molecules`` holds one
    geometry per replica."""
    import schnetpack as spk
    import torch
    from schnetpack import units as su
    from schnetpack.md import Simulator, System
    from schnetpack.md.calculators import SchNetPackCalculator
    from schnetpack.md.integrators import VelocityVerlet
    from schnetpack.md.neighborlist_md import NeighborListMD
    from schnetpack.md.simulation_hooks import NHCThermostat

    system = System()
    system.load_molecules(molecules[0], n_replicas=n_replicas, position_unit_input=LENGTH_UNIT)
    a2i = su.unit2internal(LENGTH_UNIT)
    v2i = a2i / su.unit2internal("fs")
    system.positions = torch.from_numpy(np.stack([m.get_positions() for m in molecules]) * a2i).float()
    system.momenta = system.masses * torch.from_numpy(np.asarray(velocities_A_per_fs) * v2i).float()
    calculator = SchNetPackCalculator(
        model_file, force_key="forces", energy_unit=ENERGY_UNIT, position_unit=LENGTH_UNIT,
        energy_key="energy",
        neighbor_list=NeighborListMD(cutoff=CUTOFF_A, cutoff_shell=1.0, base_nbl=spk.transform.VesinNeighborList),
    )
    thermostat = NHCThermostat(temperature_bath=TEMPERATURE_K, time_constant=TDAMP_FS, chain_length=CHAIN_LENGTH,
                               multi_step=1, integration_order=3)
    sim = Simulator(system, VelocityVerlet(time_step=TIMESTEP_FS), calculator, simulator_hooks=[thermostat],
                    progress=False)
    return sim.to(torch.float32)


def _spk_md_state(sim):
    """Energies (eV, per replica) and positions (Angstrom) / forces (eV/Angstrom) (R, N, 3)."""
    from schnetpack import units as su

    s = sim.system
    e = s.energy.detach().double().numpy().reshape(-1) / su.unit2internal("eV")
    pos = s.positions.detach().double().numpy() / su.unit2internal(LENGTH_UNIT)
    f = s.forces.detach().double().numpy() / su.unit2internal("eV") * su.unit2internal(LENGTH_UNIT)
    return e, pos, f


def test_schnetpack_md(benchmark, spk_model_files, start_state, reference, pymotor_end, same_physics, record):
    from pymotor.units import FS_IN_ASE_TIME

    v = start_state.get_velocities()[None] * FS_IN_ASE_TIME
    check = _spk_md_simulator(spk_model_files.pickle, [start_state], v)
    check.calculator.calculate(check.system)
    e, _, f = _spk_md_state(check)
    same_physics(e[0], f[0], reference, "schnetpack.md SchNetPackCalculator")
    result = {}

    def setup():
        result["sim"] = sim = _spk_md_simulator(spk_model_files.pickle, [start_state], v)
        return (sim,), {}

    def run(sim):
        sim.simulate(STEPS)

    benchmark.group = "md-1-replica"
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert result["sim"].step == STEPS
    dpos = _assert_same_end(_spk_md_state(result["sim"])[1][0], pymotor_end, "schnetpack.md Simulator")
    record(benchmark, "schnetpack_md", STEPS, steps_per_round=STEPS, max_dpos_vs_pymotor_A=dpos,
           precision="float32", cutoff_shell_A=1.0)


# ---------------------------------------------------------------------------------------
# 1e. the same, interleaved: paired ratios that survive a drifting machine load
# ---------------------------------------------------------------------------------------

#: Cycles of the interleaved benchmarks (after one warm-up cycle).
CYCLES = 5
CYCLES_32 = 3


def test_md_interleaved(benchmark, spk_model_files, pymotor_model, pymotor_fast_model, spk_calculator, frame_inputs,
                        cpnx, start_state, pymotor_reference_run, pymotor_end, record_paired):
    """One cycle = one round of every competitor above, back to back, in a rotating order.

    On a shared machine the load drifts between benchmarks measured a minute apart; within a
    cycle it hardly does, so the median over cycles of each cycle's ratio is the robust
    comparison. The benchmark's own time is that of a whole cycle."""
    import pymotor
    import torch
    from pymotor.units import FS_IN_ASE_TIME

    scripted = torch.jit.freeze(torch.jit.load(spk_model_files.script, map_location="cpu").eval())
    frames = [np.ascontiguousarray(x[None]) for x in pymotor_reference_run.positions]
    kwargs = _nhc_kwargs(len(start_state))
    v = start_state.get_velocities()[None] * FS_IN_ASE_TIME
    ends = {}

    def bare():
        for inputs in frame_inputs:
            scripted(dict(inputs))

    def compute():
        pot = pymotor_model.potential(cpnx.numbers)
        for x in frames:
            pot.compute(x)

    def run_md():
        ends["pymotor_run_md"] = pymotor.run_md(pymotor_model, start_state, STEPS, **kwargs).positions[-1]

    def run_md_fast():
        ends["pymotor_fast_run_md"] = pymotor.run_md(pymotor_fast_model, start_state, STEPS, **kwargs).positions[-1]

    def ase_setup():
        atoms, dyn = _ase_nhc(spk_calculator, start_state)
        ends["ase_spkcalculator"] = atoms  # positions read after the run
        return (dyn,)

    def spk_setup():
        ends["schnetpack_md"] = sim = _spk_md_simulator(spk_model_files.pickle, [start_state], v)
        return (sim,)

    # name: (setup or None, timed function, units per part)
    parts = {
        "bare_scripted": (None, bare, len(frames)),
        "pymotor_compute": (None, compute, len(frames)),
        "pymotor_run_md": (None, run_md, STEPS),
        "pymotor_fast_run_md": (None, run_md_fast, STEPS),
        "ase_spkcalculator": (ase_setup, lambda dyn: dyn.run(STEPS), STEPS),
        "schnetpack_md": (spk_setup, lambda sim: sim.simulate(STEPS), STEPS),
    }
    names = list(parts)
    times = {k: [] for k in names}
    cycle_no = [0]

    def cycle():
        k = cycle_no[0]
        cycle_no[0] += 1
        for name in names[k % len(names):] + names[:k % len(names)]:
            setup, fn, units = parts[name]
            args = setup() if setup else ()
            t0 = TIMER()
            fn(*args)
            times[name].append((TIMER() - t0) / units)

    benchmark.group = "md-1-replica-interleaved"
    benchmark.pedantic(cycle, rounds=CYCLES, iterations=1, warmup_rounds=1)
    for name, target in (("pymotor_run_md", ends["pymotor_run_md"]),
                         ("pymotor_fast_run_md", ends["pymotor_fast_run_md"]),
                         ("ase_spkcalculator", ends["ase_spkcalculator"].positions),
                         ("schnetpack_md", _spk_md_state(ends["schnetpack_md"])[1][0])):
        _assert_same_end(target, pymotor_end, f"{name} (interleaved)")
    # drop the warm-up cycle (pedantic runs it through the same function)
    record_paired(benchmark, {k: t[-CYCLES:] for k, t in times.items()},
                  units={k: "call" if k in ("bare_scripted", "pymotor_compute") else "step" for k in names},
                  steps_per_part=STEPS, calls_per_part=len(frames))


# ---------------------------------------------------------------------------------------
# 2. 32 replicas, STEPS_32 steps each per round
# ---------------------------------------------------------------------------------------

def _bench_pymotor_32_batched(benchmark, model, replicas32, replicas32_reference, pymotor_end32, record,
                              name, label, **extra):
    """STEPS_32 NVT steps of the 32 replicas in one ``pymotor.run_md`` call (one model call per step)."""
    import pymotor

    kwargs = _nhc_kwargs(len(replicas32[0]))
    result = {}

    def run():
        result["trajs"] = pymotor.run_md(model, replicas32, STEPS_32, **kwargs)

    benchmark.group = "md-32-replicas"
    benchmark.pedantic(run, rounds=ROUNDS_32, iterations=1, warmup_rounds=1)
    trajs = result["trajs"]
    e0 = np.array([t.potential_energy[0] for t in trajs])
    assert np.abs(e0 - replicas32_reference).max() < 1e-3, f"{label}: energies differ from SchNetPack's"
    dpos = _assert_same_end(np.stack([t.positions[-1] for t in trajs]), pymotor_end32, label)
    record(benchmark, name, STEPS_32 * N_REPLICAS, unit="replica-step", max_dpos_vs_pymotor_A=dpos,
           steps_per_round=STEPS_32, replicas=N_REPLICAS, model_calls_per_step=1, **extra)


def test_pymotor_32_batched(benchmark, pymotor_model, replicas32, replicas32_reference, pymotor_end32, record):
    _bench_pymotor_32_batched(benchmark, pymotor_model, replicas32, replicas32_reference, pymotor_end32, record,
                              "pymotor_32_batched", "pymotor batched")


def test_pymotor_fast_32_batched(benchmark, pymotor_fast_model, replicas32, replicas32_reference, pymotor_end32,
                                 record):
    """As test_pymotor_32_batched, with the fast backend (same weights)."""
    _bench_pymotor_32_batched(benchmark, pymotor_fast_model, replicas32, replicas32_reference, pymotor_end32,
                              record, "pymotor_fast_32_batched", "pymotor fast batched", backend="fast")


def test_pymotor_32_separate(benchmark, pymotor_model, replicas32, replicas32_reference, pymotor_end32, record):
    import pymotor

    kwargs = _nhc_kwargs(len(replicas32[0]))
    result = {}

    def run():
        result["trajs"] = [pymotor.run_md(pymotor_model, a, STEPS_32, **kwargs) for a in replicas32]

    benchmark.group = "md-32-replicas"
    benchmark.pedantic(run, rounds=ROUNDS_32, iterations=1, warmup_rounds=1)
    trajs = result["trajs"]
    e0 = np.array([t.potential_energy[0] for t in trajs])
    assert np.abs(e0 - replicas32_reference).max() < 1e-3, "separate-run energies differ from SchNetPack's"
    dpos = _assert_same_end(np.stack([t.positions[-1] for t in trajs]), pymotor_end32,
                            "32 separate pymotor runs")
    record(benchmark, "pymotor_32_separate", STEPS_32 * N_REPLICAS, unit="replica-step",
           max_dpos_vs_pymotor_A=dpos, steps_per_round=STEPS_32, replicas=N_REPLICAS,
           model_calls_per_step=N_REPLICAS)


def test_schnetpack_md_32(benchmark, spk_model_files, replicas32, replicas32_reference, pymotor_end32, record):
    from pymotor.units import FS_IN_ASE_TIME

    v = np.stack([a.get_velocities() for a in replicas32]) * FS_IN_ASE_TIME
    check = _spk_md_simulator(spk_model_files.pickle, replicas32, v, n_replicas=N_REPLICAS)
    check.calculator.calculate(check.system)
    e0 = _spk_md_state(check)[0]
    assert np.abs(e0 - replicas32_reference).max() < 1e-3, "schnetpack.md replica energies differ"
    result = {}

    def setup():
        result["sim"] = sim = _spk_md_simulator(spk_model_files.pickle, replicas32, v, n_replicas=N_REPLICAS)
        return (sim,), {}

    def run(sim):
        sim.simulate(STEPS_32)

    benchmark.group = "md-32-replicas"
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS_32, iterations=1, warmup_rounds=1)
    dpos = _assert_same_end(_spk_md_state(result["sim"])[1], pymotor_end32, "schnetpack.md n_replicas=32")
    record(benchmark, "schnetpack_md_32", STEPS_32 * N_REPLICAS, unit="replica-step",
           max_dpos_vs_pymotor_A=dpos, steps_per_round=STEPS_32, replicas=N_REPLICAS, precision="float32")


def test_md_32_interleaved(benchmark, spk_model_files, pymotor_model, pymotor_fast_model, replicas32, pymotor_end32,
                           record_paired):
    """The md-32-replicas benchmarks interleaved (rotating order, CYCLES_32 cycles after a
    warm-up cycle): paired ratios per replica-step."""
    import pymotor
    from pymotor.units import FS_IN_ASE_TIME

    kwargs = _nhc_kwargs(len(replicas32[0]))
    v = np.stack([a.get_velocities() for a in replicas32]) * FS_IN_ASE_TIME
    ends = {}

    def batched():
        ends["pymotor_32_batched"] = [t.positions[-1] for t in pymotor.run_md(pymotor_model, replicas32, STEPS_32,
                                                                             **kwargs)]

    def fast_batched():
        ends["pymotor_fast_32_batched"] = [t.positions[-1] for t in pymotor.run_md(pymotor_fast_model, replicas32,
                                                                                  STEPS_32, **kwargs)]

    def separate():
        ends["pymotor_32_separate"] = [pymotor.run_md(pymotor_model, a, STEPS_32, **kwargs).positions[-1]
                                       for a in replicas32]

    def spk_setup():
        sim = _spk_md_simulator(spk_model_files.pickle, replicas32, v, n_replicas=N_REPLICAS)
        ends["schnetpack_md_32"] = sim
        return (sim,)

    parts = {
        "pymotor_32_batched": (None, batched),
        "pymotor_fast_32_batched": (None, fast_batched),
        "pymotor_32_separate": (None, separate),
        "schnetpack_md_32": (spk_setup, lambda sim: sim.simulate(STEPS_32)),
    }
    names = list(parts)
    times = {k: [] for k in names}
    cycle_no = [0]

    def cycle():
        k = cycle_no[0]
        cycle_no[0] += 1
        for name in names[k % len(names):] + names[:k % len(names)]:
            setup, fn = parts[name]
            args = setup() if setup else ()
            t0 = TIMER()
            fn(*args)
            times[name].append((TIMER() - t0) / (STEPS_32 * N_REPLICAS))

    benchmark.group = "md-32-replicas-interleaved"
    benchmark.pedantic(cycle, rounds=CYCLES_32, iterations=1, warmup_rounds=1)
    for name in ("pymotor_32_batched", "pymotor_fast_32_batched", "pymotor_32_separate"):
        _assert_same_end(np.stack(ends[name]), pymotor_end32, f"{name} (interleaved)")
    _assert_same_end(_spk_md_state(ends["schnetpack_md_32"])[1], pymotor_end32, "schnetpack_md_32 (interleaved)")
    record_paired(benchmark, {k: t[-CYCLES_32:] for k, t in times.items()},
                  units={k: "replica-step" for k in names}, steps_per_part=STEPS_32, replicas=N_REPLICAS)
