"""pymotor.analysis against the routes it replaces, in the same run (pytest-benchmark).

System: a synthetic thermal trajectory of the 48-atom CPNX motor (minimum + 0.15 A
Gaussian noise, every frame rigidly rotated and translated). Sizes:

    PYMOTOR_BENCH_FRAMES   frames (default 10000; the issue's target is 100000)
    PYMOTOR_BENCH_ATOMS    atoms (default 48; > 48 tiles CPNX copies 12 A apart)

Competitors (each in the same benchmark group as the pymotor kernel it matches):
  * "mdanalysis": the route of the source work: a Universe with a MemoryReader, a Python
    loop over frames (self_distance_array, radius_of_gyration) or the analysis classes
    (AverageStructure + AlignTraj + RMSF); for the VACF the MDAKit built on MDAnalysis,
    transport_analysis.VelocityAutocorr(fft=True) (tidynamics.acf per atom).
  * "mdtraj": its C/SSE kernels (float32, nm, unweighted superposition): compute_distances,
    compute_rg, superpose + rmsf, compute_dihedrals.
  * "scipy"/"numpy": pdist per frame, numpy.fft.rfft on all signals at once, a
    sliding-window corrcoef.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest bench/test_bench_analysis.py
--benchmark-only --benchmark-group-by=group --benchmark-columns=min,median,rounds``.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from pymotor import analysis  # noqa: E402

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
    import pymotor
    from scipy.spatial.transform import Rotation

    atoms = pymotor.data.cpnx()
    x0, m0 = atoms.get_positions(), atoms.get_masses()
    reps = -(-N // len(x0))
    shifts = np.array([[12.0 * i, 0.0, 0.0] for i in range(reps)])
    x = (x0[None] + shifts[:, None]).reshape(-1, 3)[:N]
    masses = np.tile(m0, reps)[:N]
    rng = np.random.default_rng(0)
    pos = x[None] + 0.15 * rng.normal(size=(T, N, 3))
    rot = Rotation.random(T, random_state=1).as_matrix()
    pos = np.einsum("tab,tnb->tna", rot, pos) + rng.normal(scale=3.0, size=(T, 1, 3))
    vel = np.cumsum(rng.normal(size=(T, N, 3)), axis=0) * 1e-3
    vel -= vel.mean(0)
    return pos, vel, masses


@pytest.fixture(scope="module")
def universe(system):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    pos, vel, masses = system

    def make():
        u = mda.Universe.empty(N, trajectory=True, velocities=True)
        u.add_TopologyAttr("masses", masses)
        u.load_new(pos.astype(np.float32), format=MemoryReader, velocities=vel.astype(np.float32))
        return u

    return make


@pytest.fixture(scope="module")
def md_traj(system):
    import mdtraj

    top = mdtraj.Topology()
    res = top.add_residue("MOL", top.add_chain())
    for i in range(N):
        top.add_atom(f"C{i}", mdtraj.element.carbon, res)
    return mdtraj.Trajectory(system[0].astype(np.float32) / 10.0, top)


# ---- pairwise distances ---------------------------------------------------------------------------
def test_distances_pymotor(benchmark, system):
    d = _run(benchmark, "distances", lambda: analysis.pairwise_distances(system[0]))
    assert d.shape == (T, N * (N - 1) // 2)


def test_distances_mdtraj(benchmark, md_traj):
    import mdtraj

    i, j = np.triu_indices(N, k=1)
    pairs = np.c_[i, j]
    _run(benchmark, "distances", lambda: mdtraj.compute_distances(md_traj, pairs, periodic=False))


def test_distances_mdanalysis(benchmark, universe):
    from MDAnalysis.lib.distances import self_distance_array

    u = universe()
    _run(benchmark, "distances",
         lambda: np.array([self_distance_array(u.atoms.positions) for _ in u.trajectory]), rounds=1)


def test_distances_scipy(benchmark, system):
    from scipy.spatial.distance import pdist

    _run(benchmark, "distances", lambda: np.array([pdist(x) for x in system[0]]), rounds=1)


# ---- radius of gyration ------------------------------------------------------------------------------
def test_rg_pymotor(benchmark, system):
    _run(benchmark, "radius_of_gyration", lambda: analysis.radius_of_gyration(system[0], system[2]))


def test_rg_mdtraj(benchmark, md_traj, system):
    import mdtraj

    _run(benchmark, "radius_of_gyration", lambda: mdtraj.compute_rg(md_traj, masses=system[2]))


def test_rg_mdanalysis(benchmark, universe):
    u = universe()
    _run(benchmark, "radius_of_gyration",
         lambda: np.array([u.atoms.radius_of_gyration() for _ in u.trajectory]), rounds=1)


# ---- RMSF -------------------------------------------------------------------------------------------------
def test_rmsf_pymotor(benchmark, system):
    _run(benchmark, "rmsf", lambda: analysis.rmsf(system[0], system[2]))


def test_rmsf_mdanalysis(benchmark, universe):
    from MDAnalysis.analysis import align, rms

    def route():
        u = universe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            avg = align.AverageStructure(u, u, select="all", weights="mass", ref_frame=0).run()
            align.AlignTraj(u, avg.results.universe, select="all", weights="mass", in_memory=True).run()
            return rms.RMSF(u.atoms).run().results.rmsf

    _run(benchmark, "rmsf", route, rounds=1)


def test_rmsf_mdtraj(benchmark, md_traj, system):
    import mdtraj

    def route():  # the same recipe: superpose onto frame 0, average, rmsf() onto the average
        t = md_traj[:]  # (mdtraj.rmsf(t, None) alone does not superpose the frames)
        t.superpose(t, 0)
        avg = mdtraj.Trajectory(t.xyz.mean(0)[None], t.topology)
        return mdtraj.rmsf(t, avg)

    _run(benchmark, "rmsf", route)


# ---- VACF --------------------------------------------------------------------------------------------------
def _vacf_numpy(v):
    t = v.shape[0]
    m = 1 << (2 * t - 1).bit_length()
    f = np.fft.rfft(v.reshape(t, -1), n=m, axis=0)
    c = np.fft.irfft((f.real**2 + f.imag**2).sum(1), n=m)[:t]
    return c / np.arange(t, 0, -1)


def test_vacf_pymotor(benchmark, system):
    _run(benchmark, "vacf", lambda: analysis.vacf(system[1]))


def test_vacf_numpy(benchmark, system):
    _run(benchmark, "vacf", lambda: _vacf_numpy(system[1]))


def test_vacf_mdanalysis(benchmark, universe):
    """The MDAnalysis ecosystem's VACF: the MDAKit transport_analysis.VelocityAutocorr
    (fft=True: tidynamics.acf per atom, summed over x, y, z; averaged over atoms)."""
    from transport_analysis.velocityautocorr import VelocityAutocorr

    u = universe()

    def route():
        return VelocityAutocorr(u.atoms, fft=True).run().results.timeseries

    _run(benchmark, "vacf", route, rounds=1)


# ---- dihedrals and rolling Pearson --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quads():
    rng = np.random.default_rng(2)
    return np.array([rng.choice(N, 4, replace=False) for _ in range(16)])


def test_dihedrals_pymotor(benchmark, system, quads):
    _run(benchmark, "dihedrals", lambda: analysis.dihedrals(system[0], quads))


def test_dihedrals_mdtraj(benchmark, md_traj, quads):
    import mdtraj

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
