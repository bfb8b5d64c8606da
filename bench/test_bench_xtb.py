"""GFN2-xTB MD step benchmarks: pymotor.run_md vs ASE's driver vs the file-based xtb route.

The 48-atom CPNX motor, GFN2-xTB, NVT Nose-Hoover chain (300 K, dt 0.5 fs, tdamp 100 fs, chain
of 3, one Suzuki-Yoshida order-3 sweep, 3N thermostat degrees of freedom in both integrators),
from the same start state (``start_state`` of bench/conftest.py: Maxwell-Boltzmann velocities
at 300 K, seed 0, zero total and angular momentum). Group ``xtb-md``, one round = ``STEPS``
steps (or the ``STEPS + 1`` force calls of such a run), ``ROUNDS`` rounds after one warm-up:

* ``test_bare_tblite_call``: ``make_calculator("tblite")`` energy + forces on the ``STEPS + 1``
  geometries of a pymotor reference trajectory (the calls of one MD run, without the MD);
* ``test_pymotor_run_md_tblite``: ``pymotor.run_md(make_calculator("tblite"), ...)``, pymotor's
  C++ integrator calling back into the in-process tblite calculator;
* ``test_ase_nhc_tblite``: ASE ``NoseHooverChainNVT`` with the same calculator;
* ``test_ase_nhc_xtb_file_route``: ASE ``NoseHooverChainNVT`` with
  :class:`xtb_file_route.XTBFileCalculator`, the source work's route: per step write the
  geometry, run the ``xtb`` 6.5.1 binary (one thread), read the Turbomole ``gradient`` file;
  ``[xtbrestart]`` keeps xtb's restart file between steps (xtb's default in one directory),
  ``[no-restart]`` deletes it, so every SCF starts from the guess.

Every round gets a fresh calculator (built untimed), so each starts its SCF from the guess
once and then from the previous step's wavefunction (tblite) or ``xtbrestart`` (xtb binary).
Before timing, the xtb binary's energy and forces are checked against tblite's; after timing,
every MD route must end where pymotor's reference run ends.

**Timer.** The file route's work happens in child processes, which ``time.process_time`` does
not see. ``PYMOTOR_BENCH_TIMER=cpu`` (default) therefore times CPU time of this process *plus*
that of its finished children (``resource.getrusage(RUSAGE_CHILDREN)``, user + system), for
every route; ``PYMOTOR_BENCH_TIMER=wall`` times wall-clock time. Each round also records the
other clock, so both medians are printed and saved (``extra_info``).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest bench/test_bench_xtb.py --benchmark-only -q -s``.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")
pytest.importorskip("tblite")
sys.path.insert(0, str(Path(__file__).parent))
from xtb_file_route import XTBFileCalculator  # noqa: E402


def cpu_with_children() -> float:
    """CPU seconds (user + system) of this process and of its waited-for children."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


TIMER_NAME = os.environ.get("PYMOTOR_BENCH_TIMER", "cpu")
if TIMER_NAME not in ("cpu", "wall"):
    raise ValueError(f"PYMOTOR_BENCH_TIMER must be 'cpu' or 'wall', got {TIMER_NAME!r}")
TIMER = cpu_with_children if TIMER_NAME == "cpu" else time.perf_counter
CLOCKS = {"cpu": cpu_with_children, "wall": time.perf_counter}

pytestmark = [pytest.mark.xtb, pytest.mark.benchmark(timer=TIMER)]

TEMPERATURE_K = 300.0
TIMESTEP_FS = 0.5
TDAMP_FS = 100.0
CHAIN_LENGTH = 3
#: MD steps per round, timed rounds (after one warm-up round).
STEPS = 20
ROUNDS = 3
#: xtb binary vs tblite for the same geometry (measured: 1.5e-6 eV, 2.0e-4 eV/A at the CPNX
#: minimum; STACK.md: 1.4e-6 eV, 2.4e-4 eV/A).
E_TOL_EV = 1e-4
F_TOL_EV_PER_A = 1e-3
#: End positions after STEPS steps vs pymotor's reference run (Angstrom). ASE + tblite repeats
#: the same calls (~1e-8); the xtb binary's slightly different forces move atoms by ~1e-5.
POS_TOL_A = 1e-3

XTB = shutil.which("xtb")
_RESULTS: dict[str, dict] = {}
_EXTRA: list[dict] = []
#: (label, numerator, denominator), per MD step (the bare call: per force call)
RATIOS = [
    ("file route (ASE + xtb binary) / pymotor.run_md", "ase_xtb_file", "pymotor_run_md"),
    ("ASE NoseHooverChainNVT + tblite / pymotor.run_md", "ase_tblite", "pymotor_run_md"),
    ("pymotor.run_md step / bare tblite call", "pymotor_run_md", "bare_tblite"),
    ("file route step / bare tblite call", "ase_xtb_file", "bare_tblite"),
    ("file route without xtbrestart / pymotor.run_md", "ase_xtb_file_no_restart", "pymotor_run_md"),
]


def _nhc_kwargs(n_atoms: int) -> dict:
    return dict(timestep_fs=TIMESTEP_FS, temperature_K=TEMPERATURE_K, thermostat="nose-hoover",
                tdamp_fs=TDAMP_FS, chain_length=CHAIN_LENGTH, n_substeps=1, suzuki_yoshida_order=3,
                n_dof=3.0 * n_atoms, trajectory=None, chunk_steps=STEPS)


def _ase_nhc(calc, start_state):
    """A copy of the start state driven by ASE's NoseHooverChainNVT with ``calc``."""
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    atoms = start_state.copy()
    atoms.calc = calc
    return atoms, NoseHooverChainNVT(atoms, timestep=TIMESTEP_FS * units.fs, temperature_K=TEMPERATURE_K,
                                     tdamp=TDAMP_FS * units.fs, tchain=CHAIN_LENGTH, tloop=1)


def _xtb_version() -> str:
    out = subprocess.run([XTB, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"xtb version (\S+)", out)
    return m.group(1) if m else "unknown"


# ---------------------------------------------------------------------------------------
# per-step summary (printed after pytest-benchmark's tables, saved in the JSON and extra_info)
# ---------------------------------------------------------------------------------------

def _ratios(clock: str) -> list[dict]:
    return [{"ratio": label, "numerator": n, "denominator": d, "clock": clock,
             "value": _RESULTS[n][f"median_ms_{clock}"] / _RESULTS[d][f"median_ms_{clock}"]}
            for label, n, d in RATIOS if n in _RESULTS and d in _RESULTS]


class _Summary:
    """Runtime plugin: the medians per step and the ratios at the end of the terminal output."""

    load_start = os.getloadavg()

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        if not _RESULTS:
            return
        tr = terminalreporter
        tr.section(f"GFN2-xTB MD benchmarks: medians per step and ratios (same run, timer: {TIMER_NAME})")
        for when, load in (("start", self.load_start), ("end", os.getloadavg())):
            tr.write_line(f"load average at the {when:5s} (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} "
                          f"{load[2]:.2f} on {os.cpu_count()} CPUs")
        for key, r in _RESULTS.items():
            tr.write_line(f"  {key:24s} cpu {r['median_ms_cpu']:8.1f}  wall {r['median_ms_wall']:8.1f} ms per "
                          f"{r['unit']} ({r['rounds']} rounds of {r['units_per_round']})")
        for clock in ("cpu", "wall"):
            for row in _ratios(clock):
                tr.write_line(f"  {row['value']:7.2f}  ({clock:4s}) {row['ratio']}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_json(self, config, benchmarks, output_json):
        if _RESULTS:
            output_json["pymotor_xtb_md"] = {"per_unit": _RESULTS, "ratios": _ratios("cpu") + _ratios("wall"),
                                             "timer": TIMER_NAME, "loadavg_at_start": list(self.load_start),
                                             "loadavg_at_save": list(os.getloadavg())}


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    plugin = _Summary()
    request.config.pluginmanager.register(plugin, "pymotor_xtb_md_summary")
    yield
    ratios = _ratios("cpu") + _ratios("wall")
    for extra in _EXTRA:  # the same dicts pytest-benchmark saves
        extra["ratios"] = ratios


def _timed_round(fn, log: dict):
    """``fn`` wrapped to log both clocks of every call (seconds) into ``log``."""
    def wrapped(*args):
        c, w = cpu_with_children(), time.perf_counter()
        fn(*args)
        log.setdefault("cpu", []).append(cpu_with_children() - c)
        log.setdefault("wall", []).append(time.perf_counter() - w)
    return wrapped


def _record(benchmark, key: str, log: dict, units_per_round: int, unit: str = "step", **extra) -> None:
    benchmark.extra_info.update({"timer": TIMER_NAME, "unit": unit, "units_per_round": units_per_round, **extra})
    _EXTRA.append(benchmark.extra_info)
    if getattr(benchmark, "stats", None) is None or log.get("cpu") is None:  # --benchmark-disable
        return
    med = {clock: float(np.median(t[-ROUNDS:])) / units_per_round * 1e3 for clock, t in log.items()}
    r = {"name": benchmark.name, "unit": unit, "units_per_round": units_per_round, "rounds": ROUNDS,
         "median_ms_cpu": med["cpu"], "median_ms_wall": med["wall"]}
    benchmark.extra_info.update({f"median_ms_per_{unit}_cpu": med["cpu"], f"median_ms_per_{unit}_wall": med["wall"]})
    _RESULTS[key] = r


# ---------------------------------------------------------------------------------------
# references and checks
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def versions():
    return {"tblite": pkg_version("tblite"), "ase": pkg_version("ase"),
            "xtb_binary": _xtb_version() if XTB else None, "xtb_binary_path": XTB}


@pytest.fixture(scope="module")
def reference_run(start_state):
    """pymotor + tblite trajectory of STEPS steps from the start state: the geometries of the
    bare-call benchmark and the end point of every MD route."""
    import pymotor
    from pymotor.data.xtb import make_calculator

    return pymotor.run_md(make_calculator("tblite"), start_state, STEPS, **_nhc_kwargs(len(start_state)))


def _compare(atoms, calc_a, calc_b) -> tuple[float, float, float]:
    """|dE| (eV), max |dF| (eV/Angstrom) of two calculators for ``atoms``, and max |F| (eV/Angstrom)."""
    res = []
    for calc in (calc_a, calc_b):
        a = atoms.copy()
        a.calc = calc
        res.append((a.get_potential_energy(), a.get_forces()))
    return (abs(res[0][0] - res[1][0]), float(np.abs(res[0][1] - res[1][1]).max()),
            float(np.abs(res[1][1]).max()))


@pytest.fixture(scope="module")
def xtb_file_checked(cpnx):
    """Checks (once) that the xtb binary's energy and forces through XTBFileCalculator equal
    tblite's, for CPNX (its GFN2-xTB minimum, max |F| ~0.007 eV/A) and for CPNX rattled by
    0.05 Angstrom (max |F| ~ eV/A, where a wrong unit or sign would show); returns the diffs."""
    if XTB is None:
        pytest.skip("the file-based route needs the xtb executable on PATH (Debian: apt-get install xtb)")
    from pymotor.data.xtb import make_calculator

    rattled = cpnx.copy()
    rattled.rattle(stdev=0.05, seed=1)
    out = {}
    for name, atoms in (("cpnx", cpnx), ("cpnx_rattled_0.05A", rattled)):
        calc = XTBFileCalculator()
        try:
            de, df, fmax = _compare(atoms, calc, make_calculator("tblite"))
        finally:
            calc.cleanup()
        assert de < E_TOL_EV and df < F_TOL_EV_PER_A, (
            f"xtb binary vs tblite ({name}): |dE| = {de:.3g} eV (limit {E_TOL_EV}), "
            f"max |dF| = {df:.3g} eV/A (limit {F_TOL_EV_PER_A})")
        out[name] = {"abs_dE_eV": de, "max_abs_dF_eV_per_A": df, "max_abs_F_eV_per_A": fmax}
    return out


def test_xtb_file_route_matches_tblite(xtb_file_checked):
    """The file route computes the same GFN2-xTB as tblite (runs without --benchmark-only)."""
    assert set(xtb_file_checked) == {"cpnx", "cpnx_rattled_0.05A"}


def _assert_same_end(positions, reference_run, what: str) -> float:
    d = float(np.abs(np.asarray(positions) - reference_run.positions[-1]).max())
    assert d < POS_TOL_A, f"{what}: final positions differ from pymotor's by {d:.3g} Angstrom (limit {POS_TOL_A})"
    return d


# ---------------------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------------------

def test_bare_tblite_call(benchmark, cpnx, reference_run, versions):
    """make_calculator("tblite") energy + forces on the STEPS + 1 geometries of the reference run."""
    from pymotor.data.xtb import make_calculator

    frames = list(reference_run.positions)
    energies = {}

    def setup():
        a = cpnx.copy()
        a.calc = make_calculator("tblite")
        return (a,), {}

    def calls(a):
        energies["e"] = e = []
        for x in frames:
            a.set_positions(x)
            a.get_forces()
            e.append(a.get_potential_energy())

    log = {}
    benchmark.group = "xtb-md"
    benchmark.pedantic(_timed_round(calls, log), setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    de = float(np.abs(np.array(energies["e"]) - reference_run.potential_energy).max())
    assert de < 1e-5, f"bare tblite energies differ from run_md's along the trajectory by {de:.3g} eV"
    _record(benchmark, "bare_tblite", log, len(frames), unit="call", versions=versions,
            max_dE_vs_run_md_eV=de)


def test_pymotor_run_md_tblite(benchmark, start_state, reference_run, versions):
    import pymotor
    from pymotor.data.xtb import make_calculator

    kwargs = _nhc_kwargs(len(start_state))
    result = {}

    def run(calc):
        result["traj"] = pymotor.run_md(calc, start_state, STEPS, **kwargs)

    log = {}
    benchmark.group = "xtb-md"
    benchmark.pedantic(_timed_round(run, log), setup=lambda: ((make_calculator("tblite"),), {}),
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert result["traj"].step[-1] == STEPS
    dpos = _assert_same_end(result["traj"].positions[-1], reference_run, "pymotor.run_md")
    _record(benchmark, "pymotor_run_md", log, STEPS, versions=versions, max_dpos_vs_pymotor_A=dpos)


def _ase_benchmark(benchmark, make_calc, key, what, start_state, reference_run, **extra):
    result = {}

    def setup():
        if "calc" in result and hasattr(result["calc"], "cleanup"):
            result["calc"].cleanup()
        result["calc"] = make_calc()
        result["atoms"], result["dyn"] = atoms, dyn = _ase_nhc(result["calc"], start_state)
        return (dyn,), {}

    log = {}
    benchmark.group = "xtb-md"
    benchmark.pedantic(_timed_round(lambda dyn: dyn.run(STEPS), log), setup=setup, rounds=ROUNDS,
                       iterations=1, warmup_rounds=1)
    assert result["dyn"].nsteps == STEPS
    dpos = _assert_same_end(result["atoms"].positions, reference_run, what)
    _record(benchmark, key, log, STEPS, max_dpos_vs_pymotor_A=dpos, **extra)
    return result["calc"]


def test_ase_nhc_tblite(benchmark, start_state, reference_run, versions):
    from pymotor.data.xtb import make_calculator

    _ase_benchmark(benchmark, lambda: make_calculator("tblite"), "ase_tblite", "ASE NoseHooverChainNVT + tblite",
                   start_state, reference_run, versions=versions)


@pytest.mark.parametrize("restart", [True, False], ids=["xtbrestart", "no-restart"])
def test_ase_nhc_xtb_file_route(benchmark, restart, xtb_file_checked, start_state, reference_run, versions):
    """The file route; ``no-restart`` deletes ``xtbrestart`` before every call (each SCF from
    the guess, as when every step runs in a fresh directory)."""
    key = "ase_xtb_file" if restart else "ase_xtb_file_no_restart"
    calc = _ase_benchmark(benchmark, lambda: XTBFileCalculator(keep_restart=restart), key,
                          "ASE NoseHooverChainNVT + xtb binary", start_state, reference_run, versions=versions,
                          xtb_vs_tblite=xtb_file_checked, xtbrestart=restart,
                          xtb_command="xtb coord.xyz --gfn 2 --grad --chrg 0 --uhf 0 (OMP_NUM_THREADS=1)")
    benchmark.extra_info["xtb_calls_last_round"] = calc.n_calls
    assert calc.n_calls == STEPS + 1
    calc.cleanup()
