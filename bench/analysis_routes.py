"""The trajectory-analysis routes compared in bench/test_bench_analysis.py and
scripts/bench_scaling.py: pymotor's C++ kernels and the routes a user would otherwise take.

System (:func:`make_system`): the 48-atom CPNX motor (its GFN2-xTB minimum + 0.15 Å Gaussian
noise, every frame rigidly rotated and translated at random; for N > 48, copies 12 Å apart);
velocities a random walk (Å/fs scale irrelevant). Each route is ``fn(ctx) -> array`` where
``ctx`` is a :class:`Context` (arrays plus lazily built MDAnalysis / MDTraj objects).

Competitors:
  * "mdanalysis": the route of the source work: a Universe with a MemoryReader (float32) and a
    Python loop over frames (self_distance_array, radius_of_gyration), the analysis classes
    AverageStructure + AlignTraj + RMSF (mass weights), and for the VACF the MDAKit built on
    MDAnalysis, transport_analysis.VelocityAutocorr(fft=True) (tidynamics.acf per atom).
  * "mdtraj": its C/SSE kernels (float32, nm): compute_distances, compute_rg, superpose +
    rmsf (the same two-alignment recipe, unweighted), compute_dihedrals.
  * "scipy"/"numpy": pdist per frame, numpy.fft.rfft of all 3N signals at once (same zero
    padding), a sliding-window corrcoef.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from pymotor import analysis


def make_system(n_frames: int, n_atoms: int, seed: int = 0):
    """positions (T, N, 3) Å, velocities (T, N, 3), masses (N,) amu."""
    import pymotor
    from scipy.spatial.transform import Rotation

    atoms = pymotor.data.cpnx()
    x0, m0 = atoms.get_positions(), atoms.get_masses()
    reps = -(-n_atoms // len(x0))
    shifts = np.array([[12.0 * i, 0.0, 0.0] for i in range(reps)])
    x = (x0[None] + shifts[:, None]).reshape(-1, 3)[:n_atoms]
    masses = np.tile(m0, reps)[:n_atoms]
    rng = np.random.default_rng(seed)
    pos = x[None] + 0.15 * rng.normal(size=(n_frames, n_atoms, 3))
    rot = Rotation.random(n_frames, random_state=seed + 1).as_matrix()
    pos = np.einsum("tab,tnb->tna", rot, pos) + rng.normal(scale=3.0, size=(n_frames, 1, 3))
    vel = np.cumsum(rng.normal(size=(n_frames, n_atoms, 3)), axis=0) * 1e-3
    vel -= vel.mean(0)
    return pos, vel, masses


@dataclass
class Context:
    positions: np.ndarray
    velocities: np.ndarray
    masses: np.ndarray
    _md: object = field(default=None, repr=False)

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    def universe(self):
        """A fresh MDAnalysis Universe (MemoryReader, float32) on the trajectory."""
        import MDAnalysis as mda
        from MDAnalysis.coordinates.memory import MemoryReader

        u = mda.Universe.empty(self.n_atoms, trajectory=True, velocities=True)
        u.add_TopologyAttr("masses", self.masses)
        u.load_new(self.positions.astype(np.float32), format=MemoryReader,
                   velocities=self.velocities.astype(np.float32))
        return u

    def mdtraj(self):
        """An MDTraj Trajectory (float32, nm) on the positions, built once."""
        if self._md is None:
            import mdtraj

            top = mdtraj.Topology()
            res = top.add_residue("MOL", top.add_chain())
            for i in range(self.n_atoms):
                top.add_atom(f"C{i}", mdtraj.element.carbon, res)
            self._md = mdtraj.Trajectory(self.positions.astype(np.float32) / 10.0, top)
        return self._md


# ---- routes ------------------------------------------------------------------------------------------
def distances_mdanalysis(ctx):
    from MDAnalysis.lib.distances import self_distance_array

    u = ctx.universe()
    return np.array([self_distance_array(u.atoms.positions) for _ in u.trajectory])


def distances_mdtraj(ctx):
    import mdtraj

    i, j = np.triu_indices(ctx.n_atoms, k=1)
    return mdtraj.compute_distances(ctx.mdtraj(), np.c_[i, j], periodic=False)


def distances_scipy(ctx):
    from scipy.spatial.distance import pdist

    return np.array([pdist(x) for x in ctx.positions])


def rg_mdanalysis(ctx):
    u = ctx.universe()
    return np.array([u.atoms.radius_of_gyration() for _ in u.trajectory])


def rg_mdtraj(ctx):
    import mdtraj

    return mdtraj.compute_rg(ctx.mdtraj(), masses=ctx.masses)


def rmsf_mdanalysis(ctx):
    from MDAnalysis.analysis import align, rms

    u = ctx.universe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        avg = align.AverageStructure(u, u, select="all", weights="mass", ref_frame=0).run()
        align.AlignTraj(u, avg.results.universe, select="all", weights="mass", in_memory=True).run()
        return rms.RMSF(u.atoms).run().results.rmsf


def rmsf_mdtraj(ctx):
    import mdtraj

    t = ctx.mdtraj()[:]  # the same recipe: superpose onto frame 0, average, rmsf() onto it
    t.superpose(t, 0)   # (mdtraj.rmsf(t, None) alone does not superpose the frames)
    avg = mdtraj.Trajectory(t.xyz.mean(0)[None], t.topology)
    return mdtraj.rmsf(t, avg)


def vacf_mdanalysis(ctx):
    """transport_analysis.VelocityAutocorr(fft=True): tidynamics.acf per atom, averaged."""
    from transport_analysis.velocityautocorr import VelocityAutocorr

    return VelocityAutocorr(ctx.universe().atoms, fft=True).run().results.timeseries


def vacf_numpy(ctx):
    v = ctx.velocities
    t = v.shape[0]
    m = 1 << (2 * t - 1).bit_length()
    f = np.fft.rfft(v.reshape(t, -1), n=m, axis=0)
    c = np.fft.irfft((f.real**2 + f.imag**2).sum(1), n=m)[:t]
    return c / np.arange(t, 0, -1)


ROUTES = {
    "distances": {
        "pymotor": lambda c: analysis.pairwise_distances(c.positions),
        "mdanalysis": distances_mdanalysis, "mdtraj": distances_mdtraj, "scipy": distances_scipy,
    },
    "radius_of_gyration": {
        "pymotor": lambda c: analysis.radius_of_gyration(c.positions, c.masses),
        "mdanalysis": rg_mdanalysis, "mdtraj": rg_mdtraj,
    },
    "rmsf": {
        "pymotor": lambda c: analysis.rmsf(c.positions, c.masses),
        "mdanalysis": rmsf_mdanalysis, "mdtraj": rmsf_mdtraj,
    },
    "vacf": {
        "pymotor": lambda c: analysis.vacf(c.velocities),
        "mdanalysis": vacf_mdanalysis, "numpy": vacf_numpy,
    },
}

#: routes with a Python loop over frames: one round, no warm-up, in the benchmarks
SLOW = {"mdanalysis", "scipy"}
