"""Trajectory analysis: C++ kernels (OpenMP, GIL released) behind validated numpy APIs.

Units: Angstrom, fs, amu; wavenumbers in cm^-1; angles in degrees. ::

    from pymotor import analysis
    d = analysis.pairwise_distances(traj.positions)          # (T, N(N-1)/2), pdist order
    f = analysis.rmsf(traj.positions, traj.masses)            # (N,) after alignment
    rg = analysis.radius_of_gyration(traj.positions, traj.masses)
    c = analysis.vacf(traj.velocities)                        # (T,), C(0) = 1
    nu, p = analysis.power_spectrum(traj.velocities, timestep_fs=0.5)
    r = analysis.rolling_pearson(e_ref, e_nn, window=250)
    phi = analysis.dihedrals(traj.positions, [[0, 1, 2, 3]])

For files too long for memory, the classes of :mod:`pymotor.analysis.stream`
(``RMSF("run.h5").run(step=10).results.rmsf`` ...) read the H5MD file in chunks.
"""
from .kernels import (
    dihedrals,
    pairwise_distances,
    power_spectrum,
    radius_of_gyration,
    rmsf,
    rolling_pearson,
    vacf,
)
from .stream import (
    RMSF,
    VACF,
    AnalysisBase,
    Dihedrals,
    DistanceHistogram,
    H5MDReader,
    PowerSpectrum,
    RadiusOfGyration,
    Results,
)

__all__ = [
    "pairwise_distances", "rmsf", "radius_of_gyration", "vacf", "power_spectrum",
    "rolling_pearson", "dihedrals", "AnalysisBase", "Results", "H5MDReader",
    "RadiusOfGyration", "RMSF", "DistanceHistogram", "Dihedrals", "VACF", "PowerSpectrum",
]
