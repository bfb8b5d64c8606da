"""GFN2-xTB MD step benchmarks: pymotor.run_md vs ASE's driver vs the file-based xtb route.

The 48-atom CPNX motor, GFN2-xTB, NVT Nose-Hoover chain (300 K, dt 0.5 fs, tdamp 100 fs, chain
of 3, one Suzuki-Yoshida order-3 sweep, 3N thermostat degrees of freedom in both integrators),
from the same start state (``start_state`` of bench/conftest.py: Maxwell-Boltzmann velocities
at 300 K, seed 0, zero total and angular momentum). One round = ``STEPS`` MD steps (or the
``STEPS + 1`` force calls of such a run), ``ROUNDS`` rounds after one warm-up round.

Group ``xtb-md``, one benchmark per route:

* ``test_bare_tblite_call``: ``make_calculator("tblite")`` energy + forces on the ``STEPS + 1``
  geometries of a pymotor reference trajectory (the calls of one MD run, without the MD);
* ``test_pymotor_run_md_tblite``: ``pymotor.run_md(make_calculator("tblite"), ...)``, pymotor's
  C++ integrator calling back into the in-process tblite calculator;
* ``test_ase_nhc_tblite``: ASE ``NoseHooverChainNVT`` with the same calculator;
* ``test_ase_nhc_xtb_file_route``: ASE ``NoseHooverChainNVT`` with
  :class:`xtb_file_route.XTBFileCalculator`, the source work's route: per step write the
  geometry, run the ``xtb`` 6.5.1 binary (one thread), read the Turbomole ``gradient`` file;
  ``[xtbrestart]`` keeps xtb's restart file between steps (xtb's default in one directory),
  ``[no-restart]`` deletes it, so every SCF starts from the guess. Skipped without ``xtb``.

Group ``xtb-md-interleaved``: ``test_xtb_md_interleaved`` runs one round of every route in
turn (order rotating), ``CYCLES`` cycles after a warm-up cycle; its ratios are medians over
cycles of each cycle's ratio (paired), which a machine load drifting between benchmarks
measured a minute apart cannot bias. On the shared 2-core machine these are the numbers to quote.

Every round gets a fresh calculator (built untimed): its first SCF starts from the guess, the
later ones from the previous step's wavefunction (tblite) or ``xtbrestart`` (xtb binary). The
xtb binary's energy and forces are checked against tblite's before timing; after every round,
each MD route must end where pymotor's reference run ends (max |dr| < ``POS_TOL_A``).

**Timer.** The file route's work happens in child processes, which ``time.process_time`` does
not see. ``PYMOTOR_BENCH_TIMER=cpu`` (default) therefore times CPU time of this process *plus*
that of its finished children (``resource.getrusage(RUSAGE_CHILDREN)``, user + system), for
every route; ``PYMOTOR_BENCH_TIMER=wall`` times wall-clock time. Each round also records the
other clock, so both medians are printed and saved (``extra_info``, and the JSON key
``"pymotor_xtb_md"``).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest bench/test_bench_xtb.py --benchmark-only -q -s``
(``PYMOTOR_BENCH_XTB_STEPS=100`` for longer rounds; default 20).
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Callable

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
CLOCKS = {"cpu": cpu_with_children, "wall": time.perf_counter}
TIMER = CLOCKS[TIMER_NAME]

pytestmark = [pytest.mark.xtb, pytest.mark.benchmark(timer=TIMER)]

TEMPERATURE_K = 300.0
TIMESTEP_FS = 0.5
TDAMP_FS = 100.0
CHAIN_LENGTH = 3
#: MD steps per round (env PYMOTOR_BENCH_XTB_STEPS); timed rounds (after one warm-up round);
#: interleaved cycles (after one warm-up cycle).
STEPS = int(os.environ.get("PYMOTOR_BENCH_XTB_STEPS", "20"))
ROUNDS = 3
CYCLES = 3
#: xtb binary vs tblite for the same geometry (measured: 1.5e-6 eV, 2.0e-4 eV/A at the CPNX
#: minimum; STACK.md: 1.4e-6 eV, 2.4e-4 eV/A).
E_TOL_EV = 1e-4
F_TOL_EV_PER_A = 1e-3
#: End positions after STEPS steps vs pymotor's reference run (Angstrom). ASE + tblite makes
#: the same calls (measured 1e-9); the xtb binary's slightly different forces: 2e-6.
POS_TOL_A = 1e-3
XTB_COMMAND = "xtb coord.xyz --gfn 2 --grad --chrg 0 --uhf 0 (OMP_NUM_THREADS=1)"

XTB = shutil.which("xtb")
#: (label, numerator, denominator), per MD step (the bare call: per force call)
RATIOS = [
    ("file route (ASE + xtb binary) / pymotor.run_md", "ase_xtb_file", "pymotor_run_md"),
    ("file route without xtbrestart / pymotor.run_md", "ase_xtb_file_no_restart", "pymotor_run_md"),
    ("ASE NoseHooverChainNVT + tblite / pymotor.run_md", "ase_tblite", "pymotor_run_md"),
    ("pymotor.run_md step / bare tblite call", "pymotor_run_md", "bare_tblite"),
    ("file route step / bare tblite call", "ase_xtb_file", "bare_tblite"),
]


def _nhc_kwargs(n_atoms: int) -> dict:
    return dict(timestep_fs=TIMESTEP_FS, temperature_K=TEMPERATURE_K, thermostat="nose-hoover",
                tdamp_fs=TDAMP_FS, chain_length=CHAIN_LENGTH, n_substeps=1, suzuki_yoshida_order=3,
                n_dof=3.0 * n_atoms, trajectory=None, chunk_steps=STEPS)


def _xtb_version() -> str:
    out = subprocess.run([XTB, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"xtb version (\S+)", out)
    return m.group(1) if m else "unknown"


# ---------------------------------------------------------------------------------------
# per-step summary (printed after pytest-benchmark's tables, saved in the JSON and extra_info)
# ---------------------------------------------------------------------------------------

_RESULTS: dict[str, dict] = {}  # key -> medians per unit (ms) of the separate benchmarks
_PAIRED: dict = {}  # the interleaved benchmark's medians and paired ratios
_EXTRA: list[dict] = []  # extra_info dicts of this module's benchmarks


def _ratios(clock: str) -> list[dict]:
    return [{"ratio": label, "numerator": n, "denominator": d, "clock": clock,
             "value": _RESULTS[n][f"median_ms_{clock}"] / _RESULTS[d][f"median_ms_{clock}"]}
            for label, n, d in RATIOS if n in _RESULTS and d in _RESULTS]


def _paired_ratios(times: dict, clock: str) -> list[dict]:
    out = []
    for label, n, d in RATIOS:
        if n in times[clock] and d in times[clock]:
            r = np.asarray(times[clock][n]) / np.asarray(times[clock][d])
            out.append({"ratio": label, "numerator": n, "denominator": d, "clock": clock,
                        "value": float(np.median(r)), "min": float(r.min()), "max": float(r.max())})
    return out


class _Summary:
    """Runtime plugin: medians per step and ratios after pytest-benchmark's tables, and in its JSON."""

    def __init__(self):
        self.load_start = os.getloadavg()

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        if not (_RESULTS or _PAIRED):
            return
        tr = terminalreporter
        tr.section(f"GFN2-xTB MD benchmarks: medians per unit and ratios (same run, timer: {TIMER_NAME})")
        for when, load in (("start", self.load_start), ("end", os.getloadavg())):
            tr.write_line(f"load average at the {when:5s} (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} "
                          f"{load[2]:.2f} on {os.cpu_count()} CPUs")
        for key, r in _RESULTS.items():
            tr.write_line(f"  {key:24s} cpu {r['median_ms_cpu']:7.1f}  wall {r['median_ms_wall']:7.1f} ms per "
                          f"{r['unit']} ({r['rounds']} rounds of {r['units_per_round']})")
        for clock in CLOCKS:
            for row in _ratios(clock):
                tr.write_line(f"  {row['value']:6.2f}  ({clock:4s}) {row['ratio']}")
        if _PAIRED:
            tr.write_line(f"interleaved ({_PAIRED['cycles']} cycles): medians per unit, and medians "
                          "[min, max] over cycles of the per-cycle ratios")
            for key, r in _PAIRED["per_unit"].items():
                tr.write_line(f"  {key:24s} cpu {r['median_ms_cpu']:7.1f}  wall {r['median_ms_wall']:7.1f} ms per "
                              f"{r['unit']}")
            for row in _PAIRED["ratios"]:
                tr.write_line(f"  {row['value']:6.2f} [{row['min']:.2f}, {row['max']:.2f}]  ({row['clock']:4s}) "
                              f"{row['ratio']}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_json(self, config, benchmarks, output_json):
        if _RESULTS or _PAIRED:
            output_json["pymotor_xtb_md"] = {
                "per_unit": _RESULTS, "ratios": _ratios("cpu") + _ratios("wall"), "interleaved": _PAIRED,
                "timer": TIMER_NAME, "loadavg_at_start": list(self.load_start),
                "loadavg_at_save": list(os.getloadavg())}


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    request.config.pluginmanager.register(_Summary(), "pymotor_xtb_md_summary")
    yield
    for extra in _EXTRA:  # the same dicts pytest-benchmark saves
        extra["ratios"] = _ratios("cpu") + _ratios("wall")
        extra["paired_ratios"] = _PAIRED.get("ratios", [])


# ---------------------------------------------------------------------------------------
# references, checks and the routes
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


@pytest.fixture(scope="module")
def xtb_file_checked(cpnx):
    """Checks (once) that the xtb binary through XTBFileCalculator gives tblite's energy and
    forces for CPNX (its GFN2-xTB minimum, max |F| ~0.007 eV/A) and for CPNX rattled by 0.05
    Angstrom (max |F| ~11 eV/A, where a wrong unit or sign would show); returns the diffs."""
    if XTB is None:
        pytest.skip("the file-based route needs the xtb executable on PATH (Debian: apt-get install xtb)")
    from pymotor.data.xtb import make_calculator

    rattled = cpnx.copy()
    rattled.rattle(stdev=0.05, seed=1)
    out = {}
    for name, atoms in (("cpnx", cpnx), ("cpnx_rattled_0.05A", rattled)):
        res = []
        for calc in (XTBFileCalculator(), make_calculator("tblite")):
            a = atoms.copy()
            a.calc = calc
            res.append((a.get_potential_energy(), a.get_forces()))
            getattr(calc, "cleanup", lambda: None)()
        de, df = abs(res[0][0] - res[1][0]), float(np.abs(res[0][1] - res[1][1]).max())
        assert de < E_TOL_EV and df < F_TOL_EV_PER_A, (
            f"xtb binary vs tblite ({name}): |dE| = {de:.3g} eV (limit {E_TOL_EV}), "
            f"max |dF| = {df:.3g} eV/A (limit {F_TOL_EV_PER_A})")
        out[name] = {"abs_dE_eV": de, "max_abs_dF_eV_per_A": df,
                     "max_abs_F_eV_per_A": float(np.abs(res[1][1]).max())}
    return out


def test_xtb_file_route_matches_tblite(xtb_file_checked):
    """The file route computes tblite's GFN2-xTB (also runs without --benchmark-only)."""
    assert set(xtb_file_checked) == {"cpnx", "cpnx_rattled_0.05A"}


def test_read_turbomole_gradient(tmp_path):
    """The parser takes the last cycle and Fortran D exponents (Hartree, Hartree/Bohr)."""
    from xtb_file_route import read_turbomole_gradient

    block = ("  cycle = {c}  SCF energy = -1.5D+00  |dE/dxyz| = 0.1\n  0.0 0.0 0.0 h\n  1.4 0.0 0.0 h\n"
             "  -0.25D-01 0.0 0.0\n  0.25D-01 0.0 0.0\n")
    (tmp_path / "gradient").write_text("$grad\n" + block.format(c=1) + block.format(c=2).replace("-1.5", "-1.6")
                                       + "$end\n")
    e, g = read_turbomole_gradient(tmp_path / "gradient", 2)
    assert e == -1.6 and np.allclose(g, [[-0.025, 0, 0], [0.025, 0, 0]])


@dataclass
class Route:
    """One route: ``setup()`` (untimed) builds a fresh calculator and returns the argument of
    ``run(arg)`` (one timed round, ``units`` steps or calls), whose result ``check(result)``
    validates (returning extra_info); ``teardown(arg)`` cleans up."""

    units: int
    unit: str
    setup: Callable
    run: Callable
    check: Callable
    teardown: Callable = lambda arg: None


@pytest.fixture(scope="module")
def routes(cpnx, start_state, reference_run):
    import pymotor
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from pymotor.data.xtb import make_calculator

    frames = list(reference_run.positions)
    kwargs = _nhc_kwargs(len(start_state))

    def same_end(positions, what: str) -> dict:
        d = float(np.abs(np.asarray(positions) - reference_run.positions[-1]).max())
        assert d < POS_TOL_A, f"{what}: final positions differ from pymotor's by {d:.3g} A (limit {POS_TOL_A})"
        return {"max_dpos_vs_pymotor_A": d}

    def bare_setup():
        a = cpnx.copy()
        a.calc = make_calculator("tblite")
        return a

    def bare_run(a):
        energies = []
        for x in frames:
            a.set_positions(x)
            a.get_forces()
            energies.append(a.get_potential_energy())
        return energies

    def bare_check(energies):
        de = float(np.abs(np.array(energies) - reference_run.potential_energy).max())
        assert de < 1e-5, f"bare tblite energies differ from run_md's along the trajectory by {de:.3g} eV"
        return {"max_dE_vs_run_md_eV": de}

    def pymotor_check(traj):
        assert traj.step[-1] == STEPS
        return same_end(traj.positions[-1], "pymotor.run_md")

    def ase_setup(make_calc):
        def setup():
            atoms = start_state.copy()
            atoms.calc = make_calc()
            return atoms, NoseHooverChainNVT(atoms, timestep=TIMESTEP_FS * units.fs, temperature_K=TEMPERATURE_K,
                                             tdamp=TDAMP_FS * units.fs, tchain=CHAIN_LENGTH, tloop=1)
        return setup

    def ase_run(arg):
        arg[1].run(STEPS)
        return arg

    def ase_check(what):
        def check(arg):
            atoms, dyn = arg
            assert dyn.nsteps == STEPS
            extra = same_end(atoms.positions, what)
            if isinstance(atoms.calc, XTBFileCalculator):
                assert atoms.calc.n_calls == STEPS + 1, f"{what}: {atoms.calc.n_calls} xtb runs"
                extra.update(xtb_runs_per_round=atoms.calc.n_calls, xtb_command=XTB_COMMAND)
            return extra
        return check

    out = {
        "bare_tblite": Route(len(frames), "call", bare_setup, bare_run, bare_check),
        "pymotor_run_md": Route(STEPS, "step", lambda: make_calculator("tblite"),
                                lambda calc: pymotor.run_md(calc, start_state, STEPS, **kwargs), pymotor_check),
        "ase_tblite": Route(STEPS, "step", ase_setup(lambda: make_calculator("tblite")), ase_run,
                            ase_check("ASE NoseHooverChainNVT + tblite")),
    }
    if XTB is not None:
        for key, keep in (("ase_xtb_file", True), ("ase_xtb_file_no_restart", False)):
            out[key] = Route(STEPS, "step", ase_setup(lambda keep=keep: XTBFileCalculator(keep_restart=keep)),
                             ase_run, ase_check(f"ASE NoseHooverChainNVT + xtb binary ({key})"),
                             teardown=lambda arg: arg[0].calc.cleanup())
    return out


# ---------------------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------------------

def _bench(benchmark, route: Route, key: str, **extra) -> None:
    """ROUNDS timed rounds of ``route`` (after one warm-up), both clocks logged per round."""
    result, log = {}, {clock: [] for clock in CLOCKS}

    def run(arg):
        t0 = {clock: f() for clock, f in CLOCKS.items()}
        result["out"] = route.run(arg)
        for clock, f in CLOCKS.items():
            log[clock].append(f() - t0[clock])

    benchmark.group = "xtb-md"
    benchmark.pedantic(run, setup=lambda: ((route.setup(),), {}), teardown=route.teardown, rounds=ROUNDS,
                       iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({"timer": TIMER_NAME, "unit": route.unit, "units_per_round": route.units,
                                 **route.check(result["out"]), **extra})
    _EXTRA.append(benchmark.extra_info)
    if getattr(benchmark, "stats", None) is None:  # --benchmark-disable
        return
    med = {clock: float(np.median(t[-ROUNDS:])) / route.units * 1e3 for clock, t in log.items()}
    benchmark.extra_info.update({f"median_ms_per_{route.unit}_{clock}": m for clock, m in med.items()})
    _RESULTS[key] = {"name": benchmark.name, "unit": route.unit, "units_per_round": route.units,
                     "rounds": ROUNDS, **{f"median_ms_{clock}": m for clock, m in med.items()}}


def test_bare_tblite_call(benchmark, routes, versions):
    """make_calculator("tblite") energy + forces on the STEPS + 1 geometries of the reference run."""
    _bench(benchmark, routes["bare_tblite"], "bare_tblite", versions=versions)


def test_pymotor_run_md_tblite(benchmark, routes, versions):
    _bench(benchmark, routes["pymotor_run_md"], "pymotor_run_md", versions=versions)


def test_ase_nhc_tblite(benchmark, routes, versions):
    _bench(benchmark, routes["ase_tblite"], "ase_tblite", versions=versions)


@pytest.mark.parametrize("restart", [True, False], ids=["xtbrestart", "no-restart"])
def test_ase_nhc_xtb_file_route(benchmark, restart, xtb_file_checked, routes, versions):
    """The file route; ``no-restart`` deletes ``xtbrestart`` before every call (each SCF from
    the guess, as when every step runs in a fresh directory)."""
    key = "ase_xtb_file" if restart else "ase_xtb_file_no_restart"
    _bench(benchmark, routes[key], key, versions=versions, xtb_vs_tblite=xtb_file_checked, xtbrestart=restart)


def test_xtb_md_interleaved(benchmark, request, routes, versions):
    """One cycle = one round of every route, back to back, in a rotating order; paired ratios."""
    if XTB is not None:
        request.getfixturevalue("xtb_file_checked")
    names = list(routes)
    times = {clock: {k: [] for k in names} for clock in CLOCKS}
    cycle_no = [0]

    def cycle():
        k = cycle_no[0] % len(names)
        cycle_no[0] += 1
        for name in names[k:] + names[:k]:
            route = routes[name]
            arg = route.setup()
            t0 = {clock: f() for clock, f in CLOCKS.items()}
            out = route.run(arg)
            for clock, f in CLOCKS.items():
                times[clock][name].append((f() - t0[clock]) / route.units)
            route.teardown(arg)
            route.check(out)

    benchmark.group = "xtb-md-interleaved"
    benchmark.pedantic(cycle, rounds=CYCLES, iterations=1, warmup_rounds=1)
    times = {clock: {k: t[-CYCLES:] for k, t in d.items()} for clock, d in times.items()}  # drop the warm-up
    _PAIRED.update(
        cycles=len(times["cpu"][names[0]]),
        per_unit={k: {"unit": routes[k].unit, **{f"median_ms_{clock}": float(np.median(times[clock][k])) * 1e3
                                                 for clock in CLOCKS}} for k in names},
        ratios=_paired_ratios(times, "cpu") + _paired_ratios(times, "wall"))
    benchmark.extra_info.update({"timer": TIMER_NAME, "steps_per_part": STEPS, "versions": versions,
                                 "per_unit": _PAIRED["per_unit"], "cycles": _PAIRED["cycles"]})
    _EXTRA.append(benchmark.extra_info)
