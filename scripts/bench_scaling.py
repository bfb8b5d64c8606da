#!/usr/bin/env python
"""How the cost of the analysis kernels grows with trajectory length T and system size N,
pymotor against MDAnalysis, MDTraj and numpy/scipy measured in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_scaling.py \
        --out-json docs/bench_scaling.json --out-png docs/figures/bench_scaling.png

Sweeps: T = 1,000 ... 100,000 frames at N = 48 (CPNX), and N = 48 ... 1,000 atoms at
T = 1,000 (copies of CPNX 12 Å apart). The routes are those of bench/analysis_routes.py.
Timer: CPU time of the process (``time.process_time``: robust on a shared machine; every
code single-threaded with OMP_NUM_THREADS=1); the minimum of ``--repeats`` runs for the
fast routes, one run for the Python-loop routes (MDAnalysis, scipy pdist loop); every route
runs once on a small system first so that imports and first-use costs are not timed.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from analysis_routes import ROUTES, SLOW, Context, make_system  # noqa: E402

T_SWEEP = (1000, 3000, 10000, 30000, 100000)
N_SWEEP = (48, 100, 200, 500, 1000)


def cpu_seconds(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        gc.collect()
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def measure(n_frames: int, n_atoms: int, repeats: int) -> dict:
    ctx = Context(*make_system(n_frames, n_atoms))
    ctx.mdtraj()
    out = {}
    for kernel, routes in ROUTES.items():
        out[kernel] = {}
        for name, fn in routes.items():
            reps = 1 if name in SLOW else repeats
            if reps > 1:
                fn(ctx)  # warm-up
            out[kernel][name] = cpu_seconds(lambda: fn(ctx), reps)
        ratios = {k: v / out[kernel]["pymotor"] for k, v in out[kernel].items() if k != "pymotor"}
        print(f"T={n_frames:6d} N={n_atoms:4d} {kernel:18s} pymotor {out[kernel]['pymotor']:.4f} s  "
              + "  ".join(f"{k} {r:.1f}x" for k, r in ratios.items()), flush=True)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kernels = list(ROUTES)
    fig, axes = plt.subplots(2, len(kernels), figsize=(4.0 * len(kernels), 7.0), constrained_layout=True)
    styles = {"pymotor": dict(color="C3", lw=2.2, marker="o"), "mdanalysis": dict(color="C0", marker="s"),
              "mdtraj": dict(color="C2", marker="^"), "numpy": dict(color="C1", marker="v"),
              "scipy": dict(color="C1", marker="v")}
    for row, (sweep, xlabel) in enumerate((("T", "frames T (N = 48)"), ("N", "atoms N (T = 1,000)"))):
        pts = results[sweep]
        xs = [p["T"] if sweep == "T" else p["N"] for p in pts]
        for col, kernel in enumerate(kernels):
            ax = axes[row, col]
            for route in ROUTES[kernel]:
                ax.plot(xs, [p["seconds"][kernel][route] for p in pts], label=route, **styles[route])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.grid(True, which="both", alpha=0.3)
            if col == 0:
                ax.set_ylabel("CPU time (s)")
            if row == 0:
                ax.set_title(kernel.replace("_", " "))
            ax.legend(fontsize=8)
    fig.suptitle("pymotor analysis kernels vs MDAnalysis / MDTraj / numpy (one thread, CPU time)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def markdown(results: dict) -> str:
    """Tables of pymotor's CPU time and competitor / pymotor ratios for both sweeps."""
    lines = []
    for sweep in ("T", "N"):
        lines += ["", "| T, N | " + " | ".join(k.replace("_", " ") for k in ROUTES) + " |",
                  "|---" * (len(ROUTES) + 1) + "|"]
        for p in results[sweep]:
            cells = []
            for kernel, routes in ROUTES.items():
                t = p["seconds"][kernel]
                ratios = ", ".join(f"{r} {t[r] / t['pymotor']:.1f}x" for r in routes if r != "pymotor")
                cells.append(f"{ratios} ({t['pymotor'] * 1e3:.3g} ms)")
            lines.append(f"| {p['T']:,}, {p['N']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-json", default="docs/bench_scaling.json")
    ap.add_argument("--out-png", default="docs/figures/bench_scaling.png")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--t-sweep", type=int, nargs="+", default=list(T_SWEEP))
    ap.add_argument("--n-sweep", type=int, nargs="+", default=list(N_SWEEP))
    ap.add_argument("--table", metavar="JSON", help="only print the markdown tables of a saved run")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text())))
        return 0
    results = {
        "command": " ".join(["scripts/bench_scaling.py", *(argv if argv is not None else sys.argv[1:])]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_start": os.getloadavg(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "timer": "process CPU time, s (min over repeats; Python-loop routes once)",
        "T": [], "N": [],
    }
    measure(200, 48, 1)  # warm-up: imports and first-use set-up of every route, not timed below
    print("-- (warm-up above; measurements follow)")
    for t in args.t_sweep:
        results["T"].append({"T": t, "N": 48, "seconds": measure(t, 48, args.repeats)})
    for n in args.n_sweep:
        results["N"].append({"T": 1000, "N": n, "seconds": measure(1000, n, args.repeats)})
    results["machine"]["load_average_end"] = os.getloadavg()
    Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out_json).write_text(json.dumps(results, indent=1))
    plot(results, Path(args.out_png))
    print(markdown(results))
    print(f"wrote {args.out_json} and {args.out_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
