"""Model and MD settings shared by the MD benchmarks (bench/conftest.py, bench/test_bench_md.py).

Units: Angstrom, fs, K; the benchmark model's energies are in kcal/mol.
"""
import os
import time

#: Timer: "cpu" (default) = time.process_time, the CPU time of this process; every competitor
#: runs in one thread, so on an idle machine it equals the wall time, and on a shared machine
#: it leaves out the time the process waits for a CPU. "wall" = time.perf_counter.
#: Chosen with the environment variable PYMOTOR_BENCH_TIMER.
TIMER_NAME = os.environ.get("PYMOTOR_BENCH_TIMER", "cpu")
if TIMER_NAME not in ("cpu", "wall"):
    raise ValueError(f"PYMOTOR_BENCH_TIMER must be 'cpu' or 'wall', got {TIMER_NAME!r}")
TIMER = time.process_time if TIMER_NAME == "cpu" else time.perf_counter

CUTOFF_A = 5.0
ENERGY_UNIT = "kcal/mol"
LENGTH_UNIT = "Angstrom"
TEMPERATURE_K = 300.0
TIMESTEP_FS = 0.5
TDAMP_FS = 100.0
CHAIN_LENGTH = 3
SEED = 0


def ase_nhc(calculator, start):
    """A copy of ``start`` (ase.Atoms) driven by ASE's NoseHooverChainNVT with ``calculator`` and
    the settings above (the competitor's integrator in the MD benchmarks)."""
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    atoms = start.copy()
    atoms.calc = calculator
    dyn = NoseHooverChainNVT(atoms, timestep=TIMESTEP_FS * units.fs, temperature_K=TEMPERATURE_K,
                             tdamp=TDAMP_FS * units.fs, tchain=CHAIN_LENGTH, tloop=1)
    return atoms, dyn
