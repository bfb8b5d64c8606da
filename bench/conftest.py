"""Shared fixtures of the MD benchmarks (bench/test_bench_md.py).

* one random-weight SchNetPack 2.2 SchNet ``NeuralNetworkPotential`` (128 features,
  3 interactions, 20 Gaussian RBF, cosine cutoff 5 Angstrom, ``PairwiseDistances`` input
  module, ``Atomwise`` energy + ``Forces``), seeded, built once per session in a temporary
  folder and saved twice: pickled (``torch.save``: for SchNetPack's ``SpkCalculator`` and
  ``schnetpack.md``) and as TorchScript with ``_extra_files={"cutoff": "5.0"}`` (as
  ``spkdeploy`` writes it: for pymotor). Energies in kcal/mol, lengths in Angstrom.
* the CPNX motor with Maxwell-Boltzmann velocities at 300 K (seeded; zero total and
  angular momentum), the common start state of every MD benchmark;
* one torch thread everywhere (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)`` and
  pymotor's libtorch thread count);
* a per-step summary: each benchmark reports its median per MD step (or per model call)
  with the ``record`` fixture; the ratios are printed after pytest-benchmark's tables and stored
  in the saved benchmark JSON under ``"pymotor_md"``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import types  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from md_settings import (  # noqa: E402  (bench/ is on sys.path under pytest)
    CHAIN_LENGTH,
    CUTOFF_A,
    ENERGY_UNIT,
    LENGTH_UNIT,
    SEED,
    TDAMP_FS,
    TEMPERATURE_K,
    TIMER_NAME,
    TIMESTEP_FS,
)

# float32 model: agreement expected to ~1e-5 eV; these bounds still catch a different
# model, unit, cutoff or geometry by orders of magnitude.
E_TOL_EV = 2e-4
F_TOL_EV_PER_A = 2e-4


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread for torch (Python) and for pymotor's libtorch (C++)."""
    import torch

    import pymotor

    torch.set_num_threads(1)
    pymotor._core.set_num_threads(1)
    yield
    assert torch.get_num_threads() == 1, "a benchmark changed the torch thread count"


def build_schnet(seed: int = SEED):
    """The random-weight SchNet of the benchmarks (eval mode, float32, no postprocessors):
    tests/torch_models.py's ``spk_schnet`` with 128 features, 3 interactions, 20 RBF."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from torch_models import spk_schnet

    return spk_schnet(n_atom_basis=128, n_interactions=3, n_rbf=20, cutoff=CUTOFF_A, seed=seed)


@pytest.fixture(scope="session")
def spk_model_files(tmp_path_factory):
    """Paths of the benchmark model: ``pickle`` (torch.save of the SchNetPack model) and
    ``script`` (TorchScript, spkdeploy style), plus the Python ``model`` itself."""
    pytest.importorskip("schnetpack")
    import torch

    from pymotor.train.export import script_model

    folder = tmp_path_factory.mktemp("bench_models")
    model = build_schnet()
    pickled = folder / "schnet_random.pt"
    torch.save(model, pickled)
    scripted = folder / "schnet_random_deployed.pt"
    torch.jit.save(script_model(model), str(scripted), _extra_files={"cutoff": str(CUTOFF_A)})
    return types.SimpleNamespace(model=model, pickle=str(pickled), script=str(scripted))


@pytest.fixture(scope="session")
def pymotor_model(spk_model_files):
    import pymotor

    # the TorchScript route (explicit: load_model's default is "auto", which picks the fast backend)
    return pymotor.load_model(spk_model_files.script, energy_unit=ENERGY_UNIT, length_unit=LENGTH_UNIT,
                              backend="torchscript")


@pytest.fixture(scope="session")
def cpnx():
    import pymotor

    return pymotor.data.cpnx()


def start_velocities(atoms, seed: int = SEED) -> np.ndarray:
    """Maxwell-Boltzmann velocities (Angstrom/fs) at 300 K, zero total and angular momentum."""
    from pymotor.md import maxwell_boltzmann_velocities

    rng = np.random.default_rng(seed)
    return maxwell_boltzmann_velocities(atoms.get_masses(), TEMPERATURE_K, rng, 1,
                                        positions=atoms.get_positions())[0]


def with_velocities(atoms, velocities_A_per_fs):
    from pymotor.units import FS_IN_ASE_TIME

    a = atoms.copy()
    a.set_velocities(np.asarray(velocities_A_per_fs) / FS_IN_ASE_TIME)
    return a


@pytest.fixture(scope="session")
def settings():
    """The benchmark's model and MD settings (units: Angstrom, fs, K, eV)."""
    return types.SimpleNamespace(cutoff_A=CUTOFF_A, energy_unit=ENERGY_UNIT, length_unit=LENGTH_UNIT,
                                 temperature_K=TEMPERATURE_K, timestep_fs=TIMESTEP_FS, tdamp_fs=TDAMP_FS,
                                 chain_length=CHAIN_LENGTH, seed=SEED)


@pytest.fixture(scope="session")
def make_start():
    """``make_start(atoms, seed)``: a copy of ``atoms`` with 300 K velocities from ``seed``."""
    return lambda atoms, seed=SEED: with_velocities(atoms, start_velocities(atoms, seed))


@pytest.fixture(scope="session")
def start_state(cpnx):
    """CPNX with 300 K velocities: the start of every single-replica MD benchmark."""
    return with_velocities(cpnx, start_velocities(cpnx))


@pytest.fixture(scope="session")
def reference(spk_model_files, cpnx):
    """Energy (eV) and forces (eV/Angstrom) of CPNX from the Python SchNetPack model with
    SchNetPack's own neighbour list: what every competitor must reproduce."""
    import schnetpack as spk
    import torch
    from schnetpack.interfaces import AtomsConverter
    from schnetpack.units import convert_units

    conv = AtomsConverter(neighbor_list=spk.transform.VesinNeighborList(cutoff=CUTOFF_A), dtype=torch.float32)
    inputs = conv(cpnx)
    out = spk_model_files.model(inputs)
    e_conv = convert_units(ENERGY_UNIT, "eV")
    return types.SimpleNamespace(
        energy_eV=float(out["energy"].detach().double().item()) * e_conv,
        forces_eV_per_A=out["forces"].detach().double().numpy() * e_conv,
        n_pairs=int(inputs["_idx_i"].numel()),
    )


def _assert_same_physics(energy_eV, forces_eV_per_A, ref, what: str) -> None:
    """The competitor's energy and forces for the CPNX geometry equal the reference's."""
    de = abs(float(energy_eV) - ref.energy_eV)
    df = float(np.abs(np.asarray(forces_eV_per_A).reshape(-1, 3) - ref.forces_eV_per_A).max())
    assert de < E_TOL_EV and df < F_TOL_EV_PER_A, (
        f"{what} computes different physics than the reference SchNetPack model: "
        f"|dE| = {de:.3g} eV (limit {E_TOL_EV}), max |dF| = {df:.3g} eV/A (limit {F_TOL_EV_PER_A})"
    )


@pytest.fixture(scope="session")
def same_physics():
    """``same_physics(energy_eV, forces_eV_per_A, reference, what)`` asserts agreement with
    the reference model within float32 tolerance."""
    return _assert_same_physics


# ---------------------------------------------------------------------------------------
# Per-step summary and ratios
# ---------------------------------------------------------------------------------------

_RESULTS: dict[str, dict] = {}
_LOAD_AT_START: list[float] = []


def pytest_sessionstart(session):
    _LOAD_AT_START[:] = os.getloadavg()

#: (label, numerator key, denominator key): "numerator / denominator" per MD step
#: (or per replica-step for the batched group).
RATIOS = [
    ("pymotor run_md step / bare scripted model call (issue target <= 1.10)", "pymotor_run_md", "bare_scripted"),
    ("pymotor run_md step / pymotor C++ potential.compute", "pymotor_run_md", "pymotor_compute"),
    ("pymotor C++ potential.compute / bare scripted model call", "pymotor_compute", "bare_scripted"),
    ("Python SchNetPack model call / bare scripted model call", "bare_python", "bare_scripted"),
    ("ASE NoseHooverChainNVT + SpkCalculator step / pymotor step (>1: pymotor faster)",
     "ase_spkcalculator", "pymotor_run_md"),
    ("schnetpack.md Simulator step / pymotor step (>1: pymotor faster)", "schnetpack_md", "pymotor_run_md"),
    ("pymotor step / pymotor fast-backend step (>1: fast backend faster)", "pymotor_run_md", "pymotor_fast_run_md"),
    ("ASE + SpkCalculator step / pymotor fast-backend step", "ase_spkcalculator", "pymotor_fast_run_md"),
    ("schnetpack.md step / pymotor fast-backend step", "schnetpack_md", "pymotor_fast_run_md"),
    ("32 separate pymotor runs / 32 batched, per replica-step (>1: batching faster)",
     "pymotor_32_separate", "pymotor_32_batched"),
    ("schnetpack.md 32 replicas / pymotor 32 batched, per replica-step (>1: pymotor faster)",
     "schnetpack_md_32", "pymotor_32_batched"),
    ("pymotor 32 batched per replica-step / pymotor 1-replica step", "pymotor_32_batched", "pymotor_run_md"),
    ("schnetpack.md 32 replicas / pymotor fast 32 batched, per replica-step",
     "schnetpack_md_32", "pymotor_fast_32_batched"),
]


def _record(benchmark, key: str, units_per_round: int, unit: str = "step", **extra) -> None:
    """Store the median time per ``unit`` (MD step, model call or replica-step) of the
    benchmark that just ran, for the ratio summary and the saved JSON."""
    timer = TIMER_NAME
    benchmark.extra_info.update({"units_per_round": units_per_round, "unit": unit, "timer": timer, **extra})
    stats = getattr(benchmark, "stats", None)
    if stats is None or getattr(stats, "stats", None) is None:  # --benchmark-disable
        return
    median = float(stats.stats.median) / units_per_round
    benchmark.extra_info[f"median_ms_per_{unit}"] = median * 1e3
    _RESULTS[key] = {"name": benchmark.name, "group": benchmark.group, "unit": unit, "timer": timer,
                     "median_ms": median * 1e3, "rounds": int(stats.stats.rounds),
                     "iqr_ms": float(stats.stats.iqr) / units_per_round * 1e3}


@pytest.fixture(scope="session")
def record():
    """``record(benchmark, key, units_per_round, unit="step", **extra_info)`` after a benchmark."""
    return _record


_PAIRED: dict = {}


def _record_paired(benchmark, times: dict, units: dict, **extra) -> None:
    """Interleaved benchmark: ``times[name]`` holds one time per unit for each cycle; the
    ratios are the medians over cycles of the per-cycle ratios (paired comparison)."""
    timer = TIMER_NAME
    per_unit = {k: {"unit": units[k], "median_ms": float(np.median(t)) * 1e3, "cycles": len(t),
                    "timer": timer} for k, t in times.items()}
    ratios = []
    for label, num, den in RATIOS:
        if num in times and den in times:
            r = np.asarray(times[num]) / np.asarray(times[den])
            ratios.append({"ratio": label, "numerator": num, "denominator": den, "value": float(np.median(r)),
                           "min": float(r.min()), "max": float(r.max()), "cycles": len(r)})
    benchmark.extra_info.update({"timer": timer, "per_unit": per_unit, "paired_ratios": ratios, **extra})
    _PAIRED[benchmark.group] = {"per_unit": per_unit, "ratios": ratios}


@pytest.fixture(scope="session")
def record_paired():
    """``record_paired(benchmark, times, units, **extra_info)`` after the interleaved benchmark."""
    return _record_paired


def _ratios() -> list[dict]:
    rows = []
    for label, num, den in RATIOS:
        if num in _RESULTS and den in _RESULTS:
            rows.append({"ratio": label, "numerator": num, "denominator": den,
                         "value": _RESULTS[num]["median_ms"] / _RESULTS[den]["median_ms"]})
    return rows


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS and not _PAIRED:
        return
    tr = terminalreporter
    tr.section("pymotor MD benchmarks: medians per unit and ratios (same run)")
    for when, load in (("start", _LOAD_AT_START), ("end", os.getloadavg())):
        if load:
            tr.write_line(f"load average at the {when:5s} (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} "
                          f"{load[2]:.2f} on {os.cpu_count()} CPUs")
    for key, r in _RESULTS.items():
        tr.write_line(f"  {key:24s} {r['median_ms']:10.3f} ms per {r['unit']:13s} "
                      f"(IQR {r['iqr_ms']:.3f} ms, {r['rounds']} rounds, {r['timer']} time)")
    for row in _ratios():
        tr.write_line(f"  {row['value']:7.3f}  {row['ratio']}")
    for group, paired in _PAIRED.items():
        tr.write_line(f"interleaved ({group}): medians per unit, and medians [min, max] over cycles of the "
                      "per-cycle ratios")
        for key, r in paired["per_unit"].items():
            tr.write_line(f"  {key:24s} {r['median_ms']:10.3f} ms per {r['unit']:13s} "
                          f"({r['cycles']} cycles, {r['timer']} time)")
        for row in paired["ratios"]:
            tr.write_line(f"  {row['value']:7.3f} [{row['min']:.3f}, {row['max']:.3f}]  {row['ratio']}")


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    if _RESULTS or _PAIRED:
        output_json["pymotor_md"] = {"per_unit": _RESULTS, "ratios": _ratios(), "interleaved": _PAIRED,
                                     "loadavg_at_start": list(_LOAD_AT_START),
                                     "loadavg_at_save": list(os.getloadavg())}


def pytest_collection_modifyitems(config, items):
    """The benchmarks run random-weight models, whose MD breaks bonds within a few steps:
    ``run_md`` records and warns (its default ``on_bond_change="record"``, whose per-step check
    is part of the cost measured); the warning is not an error here."""
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore:MD step .* bond:RuntimeWarning"))
