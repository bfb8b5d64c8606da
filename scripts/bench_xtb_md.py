#!/usr/bin/env python
"""Per-step cost of GFN2-xTB (tblite) NVT MD of CPNX: pymotor.run_md vs ASE's driver.

Both drive the same calculator (pymotor.data.xtb.make_calculator("tblite"), reusing the
previous wavefunction) with a Nose-Hoover chain (length 3, tdamp 100 fs, dt 0.5 fs,
300 K) from the same start, after a warm-up. Reported: wall and CPU (process) time per
step, and the bare cost of one energy+forces call along a trajectory. CPU time is the
fairer number on a shared machine.

    OMP_NUM_THREADS=1 python scripts/bench_xtb_md.py --steps 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args(argv)

    import numpy as np
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    import pymotor
    from pymotor.data import cpnx
    from pymotor.data.xtb import make_calculator

    n = args.steps
    start = cpnx()
    thermalize_momenta(start, temperature_K=300.0, rng=np.random.default_rng(0))
    Stationary(start)

    # bare energy+forces calls along an ASE trajectory (positions change every call)
    a = start.copy()
    a.calc = make_calculator("tblite")
    a.get_forces()
    rng = np.random.default_rng(1)

    def bare():
        for _ in range(n):
            a.positions += rng.normal(scale=0.002, size=a.positions.shape)
            a.get_forces()

    t_bare = _timed(bare)

    # ASE's Nose-Hoover chain driving the calculator
    b = start.copy()
    b.calc = make_calculator("tblite")
    dyn = NoseHooverChainNVT(b, timestep=0.5 * units.fs, temperature_K=300.0,
                             tdamp=100.0 * units.fs, tchain=3)
    dyn.run(5)
    t_ase = _timed(lambda: dyn.run(n))

    # pymotor's engine (C++ integrator calling back into the calculator)
    calc = make_calculator("tblite")
    with tempfile.TemporaryDirectory() as tmp:
        pymotor.run_md(calc, start.copy(), steps=5, timestep_fs=0.5, temperature_K=300.0,
                       trajectory=str(Path(tmp) / "warm.h5"))
        t_pm = _timed(lambda: pymotor.run_md(calc, start.copy(), steps=n, timestep_fs=0.5,
                                             temperature_K=300.0, thermostat="nose-hoover",
                                             tdamp_fs=100.0, chain_length=3, interval=1,
                                             trajectory=str(Path(tmp) / "pm.h5")))

    print(f"CPNX (48 atoms), GFN2-xTB/tblite, {n} steps, 1 thread")
    print(f"{'':28s}{'wall ms/step':>14s}{'CPU ms/step':>14s}")
    for name, (w, c) in (("bare energy+forces call", t_bare), ("ASE NoseHooverChainNVT", t_ase),
                         ("pymotor.run_md", t_pm)):
        print(f"{name:28s}{1e3 * w / n:14.1f}{1e3 * c / n:14.1f}")
    print(f"ratio ASE / pymotor (CPU): {t_ase[1] / t_pm[1]:.2f}; "
          f"pymotor / bare call (CPU): {t_pm[1] / t_bare[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
