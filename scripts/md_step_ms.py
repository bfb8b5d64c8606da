"""CPU milliseconds per NVT MD step of CPNX for shipped/deployed models and backends, measured
side by side (interleaved rounds, one thread; medians), for the model table of docs/training.md.

    OMP_NUM_THREADS=1 python scripts/md_step_ms.py cpnx-schnet:fast cpnx-painn:fast \\
        cpnx-painn:fast:avx2 cpnx-painn:torchscript --steps 200 --rounds 5

A third field picks the fast evaluators' instruction set (avx512, avx2, generic; default: the widest).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="+", metavar="MODEL:BACKEND[:ISA]",
                    help="shipped name or file, a backend, and optionally the fast evaluators' instruction set")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    import torch

    import pymotor
    from pymotor import models
    from pymotor.backends.tabulated import ISA_NAMES

    torch.set_num_threads(1)
    atoms = pymotor.data.cpnx()
    runs = {}
    for spec in args.specs:
        options = {}
        if spec.count(":") >= 2 and spec.rsplit(":", 1)[1] in ISA_NAMES:
            spec_mb, _, options["isa"] = spec.rpartition(":")  # MODEL:BACKEND:ISA (fast kernels)
        else:
            spec_mb = spec
        name, _, backend = spec_mb.rpartition(":")
        if not name:
            raise SystemExit(f"expected MODEL:BACKEND[:ISA], got {spec!r}")
        model = pymotor.load_model(models.resolve(name), backend=backend, **options)
        pymotor.run_md(model, atoms, steps=10, timestep_fs=0.5, temperature_K=300.0, seed=0)  # warm-up
        runs[spec] = (model, [])
    for _ in range(args.rounds):
        for spec, (model, times) in runs.items():
            t = time.process_time()
            traj = pymotor.run_md(model, atoms, steps=args.steps, timestep_fs=0.5, temperature_K=300.0, seed=0)
            times.append((time.process_time() - t) / args.steps * 1e3)
            assert np.isfinite(traj.potential_energy).all()
    print("| model:backend | ms per MD step (median) | rounds |")
    print("|---|---|---|")
    for spec, (_, times) in runs.items():
        print(f"| {spec} | {statistics.median(times):.2f} | {', '.join(f'{x:.2f}' for x in times)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
