"""Trajectory analysis on in-memory numpy arrays, computed by the C++ core.

Units: positions in Angstrom, velocities in Angstrom/fs, masses in amu, time in fs,
wavenumbers in cm^-1. Every result is a new float64 array.
"""
from __future__ import annotations

import numpy as np

from .. import validation

__all__ = [
    "pairwise_distances", "radius_of_gyration", "rmsf", "dihedrals", "vacf",
    "power_spectrum", "rolling_pearson",
]

#: Speed of light in cm/fs (wavenumber [cm^-1] = frequency [1/fs] / c).
try:  # the conversion belongs in pymotor.units; fall back while it is not there
    from ..units import SPEED_OF_LIGHT_CM_PER_FS  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on pymotor.units
    SPEED_OF_LIGHT_CM_PER_FS = 2.99792458e-5


def _core():
    from .. import _core  # the extension; imported lazily so validation errors come first

    return _core.analysis


def pairwise_distances(positions) -> np.ndarray:
    """All interatomic distances of every frame, condensed.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Angstrom.

    Returns
    -------
    (n_frames, n_atoms (n_atoms - 1) / 2) float64 array, Angstrom, each row in the order
    of ``scipy.spatial.distance.pdist``: (0,1), (0,2), ..., (0,N-1), (1,2), ...
    (1128 columns for the 48-atom CPNX motor; 100,000 frames take 0.9 GB: for
    distributions of longer runs use :class:`pymotor.analysis.DistanceHistogram`,
    which never stores them).
    """
    pos = validation.trajectory("positions", positions, min_atoms=2)
    return _core().pairwise_distances(pos)


def radius_of_gyration(positions, masses=None) -> np.ndarray:
    """Mass-weighted radius of gyration of every frame.

    ``Rg = sqrt(sum_i m_i |r_i - r_com|^2 / sum_i m_i)``, as MDAnalysis'
    ``AtomGroup.radius_of_gyration()`` and ``mdtraj.compute_rg(traj, masses=...)``.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Angstrom.
    masses : (n_atoms,) array, amu, positive; None weighs all atoms equally.

    Returns
    -------
    (n_frames,) float64 array, Angstrom.
    """
    pos = validation.trajectory("positions", positions)
    w = validation.atom_weights("masses", masses, pos.shape[1])
    if w is None:
        w = np.ones(pos.shape[1])
    return _core().radius_of_gyration(pos, w)


def rmsf(positions, masses=None, *, max_iter: int = 1, tol: float = 1e-6,
         return_average: bool = False):
    """Root-mean-square fluctuation of every atom about its average position after
    removing overall translation and rotation.

    The recipe of MDAnalysis' ``AverageStructure`` + ``AlignTraj`` + ``RMSF``: every frame
    is superimposed (weighted Kabsch / QCP, weights = ``masses``) onto frame 0 and the
    aligned frames are averaged; every frame is then superimposed onto that average
    structure, and the RMSF is the per-atom RMS deviation from the mean of the aligned
    frames, ``sqrt(sum_xyz <x^2> - <x>^2)``. With ``max_iter > 1`` the alignment onto the
    new average is repeated until the average moves by less than ``tol`` (mass-weighted
    RMSD, Angstrom); ``max_iter=1`` (default) reproduces MDAnalysis.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Angstrom.
    masses : (n_atoms,) array, amu; alignment weights (``weights="mass"`` in MDAnalysis).
        None weighs all atoms equally.
    max_iter : number of alignments onto the average structure (>= 1).
    tol : convergence threshold in Angstrom for ``max_iter > 1``.

    return_average : also return the average structure, (n_atoms, 3) Angstrom, centred
        on its weighted centre in the orientation of frame 0.

    Returns
    -------
    (n_atoms,) float64 array, Angstrom; with ``return_average`` a tuple (rmsf, average).
    """
    pos = validation.trajectory("positions", positions)
    w = validation.atom_weights("masses", masses, pos.shape[1])
    max_iter = validation.number("max_iter", max_iter, integer=True)
    tol = validation.number("tol", tol)
    if w is None:
        w = np.ones(pos.shape[1])
    values, average, _iterations, _change = _core().rmsf(pos, w, max_iter, tol)
    return (values, average) if return_average else values


def dihedrals(positions, quadruples) -> np.ndarray:
    """Dihedral angles of atom quadruples (a, b, c, d) in every frame.

    IUPAC sign convention, the same as ``mdtraj.compute_dihedrals`` and MDAnalysis'
    ``calc_dihedrals``: looking along b->c, the angle is positive when the front bond a-b
    must be rotated clockwise to eclipse the rear bond c-d.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Angstrom.
    quadruples : (n_dihedrals, 4) integer array of atom indices (a single (4,) allowed).

    Returns
    -------
    (n_frames, n_dihedrals) float64 array, degrees in [-180, 180].
    """
    q_in = quadruples
    pos = validation.trajectory("positions", positions, atoms=[])  # finiteness: used atoms only, below
    q = validation.quadruples("quadruples", q_in, pos.shape[1])
    validation.trajectory("positions", pos, atoms=q.ravel())
    return _core().dihedrals(pos, q)


def vacf(velocities, masses=None, normalize: bool = True) -> np.ndarray:
    """Velocity autocorrelation function by FFT (Wiener-Khinchin).

    ``C(tau) = sum_i w_i sum_xyz <v_i(t) v_i(t + tau)>_t / (3 sum_i w_i)`` for lags
    ``tau = 0 .. n_frames - 1`` (in frames), averaging over the ``n_frames - tau`` time
    origins available. The signals are zero-padded to a power of two >= 2 n_frames, so
    there is no circular wrap-around: the result equals the direct O(T^2) sum.

    Parameters
    ----------
    velocities : (n_frames, n_atoms, 3) array, Angstrom/fs.
    masses : (n_atoms,) array, amu, or None (every atom weighs 1).
    normalize : divide by C(0), giving C(0) = 1.

    Returns
    -------
    (n_frames,) float64 array: dimensionless if ``normalize``, else (Angstrom/fs)^2.
    """
    vel = validation.trajectory("velocities", velocities)
    w = validation.atom_weights("masses", masses, vel.shape[1])
    c = _core().vacf(vel, w)
    if normalize:
        if not c[0] > 0:
            raise ValueError("`velocities` are all zero: the VACF cannot be normalised")
        c = c / c[0]
    return c


def power_spectrum(velocities, timestep_fs: float = 1.0, masses=None, window="hann",
                   pad_to: int | None = None):
    """Vibrational power spectrum (velocity density of states) in cm^-1.

    A one-sided periodogram of the velocities, summed over atoms (weights ``masses``) and
    components: ``P(nu_k) = c_k * dt * sum_s w_s |FFT(h v_s)_k|^2 / (sum_t h_t^2 * 3 sum_i w_i)``
    converted to a density per cm^-1, with ``h`` the window and ``c_k = 2`` except at 0
    and Nyquist. It is the Fourier transform of the (windowed) VACF, and it is normalised
    so that ``sum(p) * (nu[1] - nu[0])`` equals the weighted mean-square velocity per
    component, ``<v^2>`` in (Angstrom/fs)^2, exactly for ``window=None``.

    Parameters
    ----------
    velocities : (n_frames, n_atoms, 3) array, Angstrom/fs, sampled every ``timestep_fs``.
    timestep_fs : time between frames in fs (the MD step times the output interval).
    masses : (n_atoms,) array, amu, or None (every atom weighs 1).
    window : ``"hann"`` (periodic Hann taper, default) or None (rectangular).
    pad_to : FFT length, a power of two >= n_frames; default the smallest >= 2 n_frames.

    Returns
    -------
    nu : (pad_to/2 + 1,) wavenumbers in cm^-1, from 0 to the Nyquist 1 / (2 dt c).
    p : (pad_to/2 + 1,) spectral density, (Angstrom/fs)^2 per cm^-1.
    """
    vel = validation.trajectory("velocities", velocities, min_frames=2)
    dt = validation.number("timestep_fs", timestep_fs)
    w = validation.atom_weights("masses", masses, vel.shape[1])
    m, taper, norm = _spectrum_setup(vel.shape[0], window, pad_to)
    summed = _core().summed_power(vel, w, taper, m)
    wsum = float(np.sum(w)) if w is not None else float(vel.shape[1])
    return _spectrum_finish(summed, m, dt, norm, wsum)


def _spectrum_setup(n: int, window, pad_to):
    """FFT length, taper (or None) and sum of squared taper for ``n`` frames."""
    if pad_to is None:
        m = 1 << (2 * n - 1).bit_length()
    else:
        m = validation.number("pad_to", pad_to, integer=True, minimum=2, strict=False)
        if m & (m - 1) or m < n:
            raise ValueError(f"`pad_to` must be a power of two >= n_frames = {n}, got {m}")
    if window is None:
        return m, None, float(n)
    if isinstance(window, str) and window.lower() in ("hann", "hanning"):
        taper = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic Hann
        return m, taper, float(np.sum(taper * taper))
    raise ValueError(f"`window` must be 'hann' or None, got {window!r}")


def _spectrum_finish(summed, m: int, dt: float, norm: float, weight_sum: float):
    """Wavenumbers and one-sided density per cm^-1 from the summed |FFT|^2 (k = 0..m/2)."""
    p = summed * (dt / (norm * 3.0 * weight_sum))
    p[1:m // 2] *= 2.0  # one-sided
    p *= SPEED_OF_LIGHT_CM_PER_FS  # per (1/fs) -> per cm^-1
    nu = np.arange(m // 2 + 1) / (m * dt * SPEED_OF_LIGHT_CM_PER_FS)
    return nu, p


def rolling_pearson(x, y, window: int = 250) -> np.ndarray:
    """Pearson correlation coefficient of ``x`` and ``y`` in every window of ``window``
    consecutive samples: ``r[k] = corr(x[k:k+window], y[k:k+window])``.

    O(n) from compensated (Neumaier) prefix sums of the data shifted by their first values,
    so long series stay accurate (agrees with ``numpy.corrcoef`` per window to ~1e-10).
    A window in which ``x`` or ``y`` is constant gives NaN.

    Returns
    -------
    (len(x) - window + 1,) float64 array in [-1, 1] (or NaN).
    """
    xa = validation.series("x", x)
    ya = validation.series("y", y)
    if ya.shape != xa.shape:
        raise ValueError(f"`x` and `y` must have the same length, got {xa.shape[0]} and {ya.shape[0]}")
    window = validation.number("window", window, integer=True, minimum=2, strict=False)
    if window > xa.shape[0]:
        raise ValueError(f"`window` ({window}) must not exceed len(x) = {xa.shape[0]}")
    return _core().rolling_pearson(xa, ya, window)
