"""Model and MD settings shared by the MD benchmarks (bench/conftest.py, bench/test_bench_md.py).

Units: Angstrom, fs, K; the benchmark model's energies are in kcal/mol.
"""

CUTOFF_A = 5.0
ENERGY_UNIT = "kcal/mol"
LENGTH_UNIT = "Angstrom"
TEMPERATURE_K = 300.0
TIMESTEP_FS = 0.5
TDAMP_FS = 100.0
CHAIN_LENGTH = 3
SEED = 0
