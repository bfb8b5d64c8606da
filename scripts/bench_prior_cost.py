"""Cost of the ZBL prior in the fast SchNet backend: energy+forces of CPNX with the shipped model
(prior) against the same-size stage-1 model (no prior), 10 interleaved rounds of 1000 calls, CPU time.

    python scripts/bench_prior_cost.py
"""
import time, numpy as np, pymotor
a = pymotor.data.cpnx()
names = {"with prior (cpnx-schnet v4)": "pymotor/models/cpnx-schnet.pt", "without (stage 1, same size)": "runs/cpnx-schnet-stage1.pt"}
pots = {k: pymotor.load_model(v, backend="fast").potential(a.numbers) for k, v in names.items()}
x = a.positions[None].copy()
for p in pots.values():
    for _ in range(200): p.compute(x)
res = {k: [] for k in pots}
for rnd in range(10):
    for k, p in pots.items():
        t = time.process_time()
        for _ in range(1000): p.compute(x)
        res[k].append((time.process_time() - t))  # ms per call
for k, v in res.items(): print(k, "median %.3f ms" % np.median(v))
r = np.array(res[list(res)[0]]) / np.array(res[list(res)[1]])
print("ratio with/without: median %.3f, range %.3f-%.3f" % (np.median(r), r.min(), r.max()))
