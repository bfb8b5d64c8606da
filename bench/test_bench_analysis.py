"""pymotor.analysis against the routes it replaces, in the same run (pytest-benchmark).

The system and the competitor routes are defined in bench/analysis_routes.py (also used by
scripts/bench_scaling.py). Sizes:

    PYMOTOR_BENCH_FRAMES   frames (default 10000; the issue's target is 100000)
    PYMOTOR_BENCH_ATOMS    atoms (default 48; > 48 tiles CPNX copies 12 A apart)

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest bench/test_bench_analysis.py
--benchmark-only --benchmark-group-by=group --benchmark-columns=min,median,rounds``.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from pymotor import analysis  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from analysis_routes import ROUTES, SLOW, Context, make_system  # noqa: E402

T = int(os.environ.get("PYMOTOR_BENCH_FRAMES", "10000"))
N = int(os.environ.get("PYMOTOR_BENCH_ATOMS", "48"))
ROUNDS = int(os.environ.get("PYMOTOR_BENCH_ROUNDS", "3"))
TAG = f"T={T} N={N}"


def _run(benchmark, group, fn, rounds=ROUNDS):
    benchmark.group = f"{group} {TAG}"
    benchmark.extra_info.update(frames=T, atoms=N, threads=os.environ.get("OMP_NUM_THREADS", "?"))
    # one warm-up round (first-touch page faults of big outputs), except for the slow
    # Python-loop routes that run once
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1 if rounds > 1 else 0)


@pytest.fixture(scope="module")
def system():
    return make_system(T, N)


@pytest.fixture(scope="module")
def ctx(system):
    return Context(*system)


CASES = [(kernel, route) for kernel, routes in ROUTES.items() for route in routes]


@pytest.mark.parametrize("kernel,route", CASES, ids=[f"{k}-{r}" for k, r in CASES])
def test_kernel(benchmark, ctx, kernel, route):
    if route == "mdanalysis":
        pytest.importorskip("MDAnalysis")
    if route == "mdtraj":
        pytest.importorskip("mdtraj")
        ctx.mdtraj()  # built outside the timed region
    out = _run(benchmark, kernel, lambda: ROUTES[kernel][route](ctx), rounds=1 if route in SLOW else ROUNDS)
    if kernel == "distances":
        assert np.shape(out) == (T, N * (N - 1) // 2)


# ---- dihedrals and rolling Pearson --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quads():
    rng = np.random.default_rng(2)
    return np.array([rng.choice(N, 4, replace=False) for _ in range(16)])


def test_dihedrals_pymotor(benchmark, system, quads):
    _run(benchmark, "dihedrals", lambda: analysis.dihedrals(system[0], quads))


def test_dihedrals_mdtraj(benchmark, ctx, quads):
    import mdtraj

    md_traj = ctx.mdtraj()
    _run(benchmark, "dihedrals", lambda: mdtraj.compute_dihedrals(md_traj, quads, periodic=False))


def test_dihedrals_mdanalysis(benchmark, system, quads):
    from MDAnalysis.lib.distances import calc_dihedrals

    pos = system[0]
    _run(benchmark, "dihedrals",
         lambda: calc_dihedrals(*(np.ascontiguousarray(pos[:, quads[:, k]].reshape(-1, 3)) for k in range(4))))


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=T))
    return x, 0.5 * x + rng.normal(size=T)


def test_rolling_pearson_pymotor(benchmark, series):
    _run(benchmark, "rolling_pearson W=250", lambda: analysis.rolling_pearson(*series, window=250))


def test_rolling_pearson_numpy(benchmark, series):
    from numpy.lib.stride_tricks import sliding_window_view

    def route():  # vectorised O(T W) windows
        x, y = (sliding_window_view(s, 250) for s in series)
        xc = x - x.mean(1, keepdims=True)
        yc = y - y.mean(1, keepdims=True)
        return (xc * yc).sum(1) / np.sqrt((xc * xc).sum(1) * (yc * yc).sum(1))

    _run(benchmark, "rolling_pearson W=250", route)
