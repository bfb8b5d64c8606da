#!/usr/bin/env python
"""CPU ms per MD step (run_md, TorchScript backend, the shipped cpnx-schnet model): jit_optimize on
(freeze + TorchScript's profiling executor) vs off (plain interpreter, the CPU default), 1 CPNX and
32 batched replicas, interleaved rounds in one process.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_jit_executor.py
"""
import time, torch, numpy as np
torch.set_num_threads(1)
import pymotor
from pymotor.potentials import Model
from pymotor.models import MODEL_DIR
path = str(MODEL_DIR / "cpnx-schnet.pt")
atoms = pymotor.data.cpnx()
rng = np.random.default_rng(0)
reps = []
for i in range(32):
    a = atoms.copy(); a.positions += rng.normal(scale=0.05, size=a.positions.shape); reps.append(a)
res = {}
models = {opt: Model(path, jit_optimize=opt) for opt in (True, False)}
for m in models.values():
    pymotor.run_md(m, atoms, 5); pymotor.run_md(m, reps, 3)
for rnd in range(5):
    for opt in ((True, False) if rnd % 2 == 0 else (False, True)):
        m = models[opt]
        for R, steps in ((1, 100), (32, 5)):
            t0 = time.process_time()
            trajs = pymotor.run_md(m, reps if R > 1 else atoms, steps)
            res.setdefault((opt, R), []).append((time.process_time() - t0) / steps * 1e3)
            if R == 1: res.setdefault(("end", opt), []).append(trajs.positions[-1])
for R in (1, 32):
    on, off = np.array(res[(True, R)]), np.array(res[(False, R)])
    print(f"R={R:2d}: jit_optimize on {np.median(on):7.2f} ms/step, off {np.median(off):7.2f}; ratio on/off per round {np.round(on/off, 3)}, median {np.median(on/off):.3f}")
print("max |dx| between settings (1 replica, end):", np.abs(res[("end", True)][0] - res[("end", False)][0]).max())
