"""Streaming analysis of H5MD trajectories too long for memory, in the manner of
MDAnalysis' ``AnalysisBase``: ``Analysis(source, ...).run(start, stop, step)`` fills
``.results``. A source is the path of an H5MD file in pymotor's layout (see
docs/ARCHITECTURE.md), read ``chunk_frames`` frames at a time, or an in-memory
(n_frames, n_atoms, 3) array. Results equal those of the in-memory functions of
:mod:`pymotor.analysis` on the same frames.

Example::

    from pymotor.analysis import RMSF, DistanceHistogram
    f = RMSF("nn.h5").run().results.rmsf                      # masses from the file
    h = DistanceHistogram("nn.h5", bins=np.linspace(0, 20, 401)).run(step=10).results
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import validation
from .kernels import _core

__all__ = [
    "H5MDReader", "Results", "AnalysisBase", "RadiusOfGyration", "RMSF",
    "DistanceHistogram", "Dihedrals", "VACF", "PowerSpectrum",
]

from ..h5md import READ_UNITS, VECTORS  # noqa: E402  (one schema with the writer)

_FIELDS = {key: element for key, (element, _, _) in VECTORS.items()}


def _unit_factors():
    return READ_UNITS


def _factor(ds, kind: str, path) -> float:
    """Factor from the dataset's ``unit`` attribute to pymotor's unit (1 if absent)."""
    unit = ds.attrs.get("unit")
    if unit is None:
        return 1.0
    if isinstance(unit, bytes):
        unit = unit.decode()
    table = _unit_factors()[kind]
    if str(unit) not in table:
        raise ValueError(f"{path}: unsupported {kind} unit {unit!r} (known: {sorted(table)})")
    return table[str(unit)]


class Results(dict):
    """A dict whose keys are also attributes (as MDAnalysis' ``Results``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


class H5MDReader:
    """Chunked, read-only access to a pymotor H5MD trajectory (Angstrom, fs, amu, eV).

    Values are converted from the ``unit`` attributes of the datasets (pymotor writes
    forces in kJ/mol/Angstrom for MDAnalysis; files in nm and ps work too).

    ``read("positions", start, stop, step, atoms)`` returns float64 arrays; energies and
    other observables are small and read whole with :meth:`observable`.
    """

    def __init__(self, path):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"trajectory file not found: {self.path}")
        self._file = h5py.File(self.path, "r")
        parts = self._file.get("particles")
        if parts is None or len(parts) == 0:
            self.close()
            raise ValueError(f"{self.path} is not an H5MD trajectory: no /particles group")
        self._group = parts["trajectory"] if "trajectory" in parts else parts[next(iter(parts))]
        if "position" not in self._group:
            self.close()
            raise ValueError(f"{self.path}: no /particles/*/position in this H5MD file")
        shape = self._group["position/value"].shape
        self.n_frames, self.n_atoms = int(shape[0]), int(shape[1])

    # -- metadata -------------------------------------------------------------------------
    def has(self, field: str) -> bool:
        return _FIELDS.get(field, field) in self._group

    @property
    def masses(self):
        """(n_atoms,) amu, or None if the file has none."""
        return np.asarray(self._group["mass"], dtype=np.float64) if "mass" in self._group else None

    @property
    def atomic_numbers(self):
        return np.asarray(self._group["species"], dtype=np.int64) if "species" in self._group else None

    @property
    def time_fs(self) -> np.ndarray:
        g = self._group["position"]
        if "time" in g and g["time"].shape != ():
            return np.asarray(g["time"], dtype=np.float64) * _factor(g["time"], "time", self.path)
        dt = self.attrs.get("timestep_fs", 1.0)
        return self.step.astype(np.float64) * float(dt)

    @property
    def step(self) -> np.ndarray:
        g = self._group["position"]
        if "step" in g and g["step"].shape != ():
            return np.asarray(g["step"], dtype=np.int64)
        return np.arange(self.n_frames, dtype=np.int64)

    @property
    def frame_interval_fs(self) -> float:
        """Time between consecutive frames in fs."""
        t = self.time_fs
        if t.shape[0] >= 2:
            return float(t[1] - t[0])
        return float(self.attrs.get("timestep_fs", 1.0))

    @property
    def attrs(self) -> dict:
        g = self._file.get("pymotor")
        return dict(g.attrs) if g is not None else {}

    def observable(self, name: str):
        """(n_frames,) float64 values of /observables/<name>, or None if absent."""
        obs = self._file.get("observables")
        if obs is None or name not in obs:
            return None
        node = obs[name]
        data = node["value"] if hasattr(node, "keys") else node
        return np.asarray(data, dtype=np.float64)

    # -- frames ---------------------------------------------------------------------------
    def read(self, field: str = "positions", start=None, stop=None, step=None, atoms=None):
        """Frames ``[start:stop:step]`` (and atoms ``[atoms]``, a slice) as float64."""
        name = _FIELDS.get(field, field)
        if name not in self._group:
            raise KeyError(f"{self.path} has no {field} ({name}) data")
        ds = self._group[name]["value"]
        sel = (slice(start, stop, step),) + ((atoms,) if atoms is not None else ())
        out = np.ascontiguousarray(ds[sel], dtype=np.float64)
        factor = _factor(ds, name, self.path)
        if factor != 1.0:
            out *= factor
        return out

    def close(self):
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


class _ArraySource:
    """In-memory stand-in for :class:`H5MDReader`."""

    def __init__(self, array, field):
        arr = validation.trajectory(field, array)
        self._arrays = {field: arr}
        self.n_frames, self.n_atoms = arr.shape[:2]
        self.masses = None

    def read(self, field="positions", start=None, stop=None, step=None, atoms=None):
        arr = self._arrays[field][start:stop:step]
        if atoms is not None:
            arr = arr[:, atoms]
        return np.ascontiguousarray(arr)

    def close(self):
        pass


class AnalysisBase:
    """Base class: subclasses implement ``_prepare``, ``_single_chunk(chunk)`` and
    ``_conclude``, and may ask for several passes over the frames (``_n_passes``)."""

    field = "positions"
    _n_passes = 1

    def __init__(self, trajectory, *, chunk_frames: int = 4096):
        self.chunk_frames = validation.number("chunk_frames", chunk_frames, integer=True)
        if isinstance(trajectory, (str, os.PathLike)):
            self._source = H5MDReader(trajectory)
            self._owns = True
        elif isinstance(trajectory, H5MDReader):
            self._source, self._owns = trajectory, False
        else:
            self._source = _ArraySource(trajectory, self.field)
            self._owns = False
        self.n_atoms = self._source.n_atoms
        self.results = Results()

    def _masses(self, masses, name="masses"):
        """masses="file": the file's masses (None for arrays); else validated or None."""
        if isinstance(masses, str):
            if masses != "file":
                raise ValueError(f"`{name}` must be 'file', None or an (n_atoms,) array, got {masses!r}")
            return validation.atom_weights(name, self._source.masses, self.n_atoms)
        return validation.atom_weights(name, masses, self.n_atoms)

    def _frames(self, start, stop, step):
        idx = range(self._source.n_frames)[slice(start, stop, step)]
        if len(idx) == 0:
            raise ValueError("the selection start/stop/step contains no frames")
        return idx

    def _chunks(self, idx):
        per = self.chunk_frames * idx.step
        for a in range(idx.start, idx.stop, per) if idx.step > 0 else ():
            b = min(a + per, idx.stop)
            yield validation.trajectory(self.field, self._source.read(self.field, a, b, idx.step))

    def run(self, start=None, stop=None, step=None):
        """Analyse frames ``[start:stop:step]``; returns self (results in ``.results``)."""
        idx = self._frames(start, stop, step)
        if idx.step < 0:
            raise ValueError("`step` must be positive")
        self.n_frames = len(idx)
        self.frames = np.asarray(idx, dtype=np.int64)
        self._first = validation.trajectory(self.field, self._source.read(self.field, idx.start, idx.start + 1))
        self._prepare()
        self._pass = 0
        while self._pass < self._n_passes:
            for chunk in self._chunks(idx):
                self._single_chunk(chunk)
            self._end_pass()
            self._pass += 1
        self._conclude()
        return self

    def _prepare(self):
        pass

    def _single_chunk(self, chunk):
        raise NotImplementedError

    def _end_pass(self):
        pass

    def _conclude(self):
        pass

    def close(self):
        if self._owns:
            self._source.close()


class RadiusOfGyration(AnalysisBase):
    """``results.rgyr``: (n_frames,) mass-weighted radius of gyration, Angstrom."""

    def __init__(self, trajectory, masses="file", **kw):
        super().__init__(trajectory, **kw)
        w = self._masses(masses)
        self._w = w if w is not None else np.ones(self.n_atoms)

    def _prepare(self):
        self._parts = []

    def _single_chunk(self, chunk):
        self._parts.append(_core().radius_of_gyration(chunk, self._w))

    def _conclude(self):
        self.results.rgyr = np.concatenate(self._parts)


class RMSF(AnalysisBase):
    """``results.rmsf`` (n_atoms,) Angstrom and ``results.average`` (n_atoms, 3): the
    recipe of :func:`pymotor.analysis.rmsf` (align to the first selected frame, average,
    align to the average, ``max_iter`` times), one pass over the file per alignment."""

    def __init__(self, trajectory, masses="file", *, max_iter: int = 1, tol: float = 1e-6, **kw):
        super().__init__(trajectory, **kw)
        w = self._masses(masses)
        self._w = w if w is not None else np.ones(self.n_atoms)
        self.max_iter = validation.number("max_iter", max_iter, integer=True)
        self.tol = validation.number("tol", tol)

    def _centred(self, x):
        return np.ascontiguousarray(x - (self._w @ x) / self._w.sum())

    def _prepare(self):
        self._n_passes = 1 + self.max_iter
        self._ref = self._centred(self._first[0])
        self._sum = np.zeros((self.n_atoms, 3))
        self._sq = np.zeros((self.n_atoms, 3))
        self.results.iterations = 0
        self.results.last_change = np.nan

    def _single_chunk(self, chunk):
        _core().align_accumulate(chunk, self._w, self._ref, self._sum, self._sq)

    def _end_pass(self):
        mean_dev = self._sum / self.n_frames
        self._average = self._ref + mean_dev
        if self._pass == 0:
            self._next()
            return
        self.results.iterations = self._pass
        change = float(np.sqrt(self._w @ (mean_dev**2).sum(1) / self._w.sum()))
        self.results.last_change = change
        var = (self._sq / self.n_frames - mean_dev**2).sum(1)
        self.results.rmsf = np.sqrt(np.maximum(var, 0.0))
        self.results.average = self._average
        if change < self.tol:
            self._n_passes = self._pass + 1  # converged: stop after this pass
        else:
            self._next()

    def _next(self):
        self._ref = self._centred(self._average)
        self._sum[:] = 0.0
        self._sq[:] = 0.0


class DistanceHistogram(AnalysisBase):
    """Histogram of all interatomic distances over the frames, without storing them.

    ``results.counts`` (len(bins) - 1,), ``results.edges`` Angstrom, ``results.n_below``
    / ``results.n_above`` (distances outside the bins), ``results.mean``,
    ``results.min``, ``results.max`` (Angstrom)."""

    def __init__(self, trajectory, bins=None, **kw):
        super().__init__(trajectory, **kw)
        if self.n_atoms < 2:
            raise ValueError("`trajectory` must have at least 2 atoms for distances")
        edges = np.linspace(0.0, 20.0, 2001) if bins is None else validation.series("bins", bins)
        if edges.shape[0] < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("`bins` must be increasing bin edges (at least 2)")
        self.edges = edges
        # edges numpy would make from (range, n): histogram's no-sort path, same counts
        n = edges.shape[0] - 1
        self._uniform = np.array_equal(edges, np.linspace(edges[0], edges[-1], n + 1))

    def _prepare(self):
        self._counts = np.zeros(self.edges.shape[0] - 1, dtype=np.int64)
        self._below = self._above = 0
        self._sum = 0.0
        self._min, self._max = np.inf, -np.inf

    def _single_chunk(self, chunk):
        d = _core().pairwise_distances(chunk).ravel()
        if self._uniform:
            self._counts += np.histogram(d, bins=self.edges.shape[0] - 1, range=(self.edges[0], self.edges[-1]))[0]
        else:
            self._counts += np.histogram(d, bins=self.edges)[0]
        self._below += int(np.count_nonzero(d < self.edges[0]))
        self._above += int(np.count_nonzero(d > self.edges[-1]))
        self._sum += float(d.sum())
        self._min = min(self._min, float(d.min()))
        self._max = max(self._max, float(d.max()))

    def _conclude(self):
        n = self.n_frames * self.n_atoms * (self.n_atoms - 1) // 2
        self.results.update(counts=self._counts, edges=self.edges, n_below=self._below,
                            n_above=self._above, mean=self._sum / n, min=self._min,
                            max=self._max, n_distances=n)


class Dihedrals(AnalysisBase):
    """``results.angles``: (n_frames, n_dihedrals) degrees, IUPAC convention."""

    def __init__(self, trajectory, quadruples, **kw):
        super().__init__(trajectory, **kw)
        self._q = validation.quadruples("quadruples", quadruples, self.n_atoms)

    def _prepare(self):
        self._parts = []

    def _single_chunk(self, chunk):
        self._parts.append(_core().dihedrals(chunk, self._q))

    def _conclude(self):
        self.results.angles = np.concatenate(self._parts, axis=0)


class _AtomBlocks(AnalysisBase):
    """Analyses that need all frames of a few atoms at a time (sums over atoms)."""

    field = "velocities"

    def _summed_power(self, idx, taper, m):
        total = np.zeros(m // 2 + 1)
        for a in range(0, self.n_atoms, self.atoms_per_block):
            b = min(a + self.atoms_per_block, self.n_atoms)
            block = validation.trajectory(
                self.field, self._source.read(self.field, idx.start, idx.stop, idx.step, atoms=slice(a, b)))
            w = np.ones(b - a) if self._w is None else np.ascontiguousarray(self._w[a:b])
            total += _core().summed_power(block, w, taper, m)
        return total

    def _weight_sum(self):
        return float(self._w.sum()) if self._w is not None else float(self.n_atoms)


class PowerSpectrum(_AtomBlocks):
    """Vibrational power spectrum (as :func:`pymotor.analysis.power_spectrum`) streamed
    over blocks of atoms. ``timestep_fs`` defaults to the file's frame interval (times
    ``step``). ``results.nu`` (cm^-1), ``results.power`` ((Angstrom/fs)^2 per cm^-1)."""

    def __init__(self, trajectory, timestep_fs=None, masses=None, *, window="hann", pad_to=None,
                 atoms_per_block: int = 16, **kw):
        super().__init__(trajectory, **kw)
        if timestep_fs is None:
            if not isinstance(self._source, H5MDReader):
                raise ValueError("`timestep_fs` is required for in-memory velocities")
            timestep_fs = self._source.frame_interval_fs
        self.timestep_fs = validation.number("timestep_fs", timestep_fs)
        self._w = self._masses(masses)
        self.window, self.pad_to = window, pad_to
        self.atoms_per_block = validation.number("atoms_per_block", atoms_per_block, integer=True)

    def run(self, start=None, stop=None, step=None):
        from .kernels import _spectrum_finish, _spectrum_setup

        idx = self._frames(start, stop, step)
        if len(idx) < 2:
            raise ValueError("the power spectrum needs at least 2 frames")
        m, taper, norm = _spectrum_setup(len(idx), self.window, self.pad_to)
        total = self._summed_power(idx, taper, m)
        self.n_frames = len(idx)
        nu, p = _spectrum_finish(total, m, self.timestep_fs * idx.step, norm, self._weight_sum())
        self.results.nu, self.results.power = nu, p
        return self


class VACF(_AtomBlocks):
    """Velocity autocorrelation (as :func:`pymotor.analysis.vacf`) streamed over blocks
    of atoms: every block holds all selected frames of ``atoms_per_block`` atoms.

    ``results.vacf`` (n_frames,), normalised unless ``normalize=False``
    ((Angstrom/fs)^2), ``results.time_lag`` in frames."""

    def __init__(self, trajectory, masses=None, *, normalize: bool = True, atoms_per_block: int = 16,
                 **kw):
        super().__init__(trajectory, **kw)
        self._w = self._masses(masses)
        self.normalize = bool(normalize)
        self.atoms_per_block = validation.number("atoms_per_block", atoms_per_block, integer=True)

    def run(self, start=None, stop=None, step=None):
        idx = self._frames(start, stop, step)
        n = len(idx)
        m = 1 << (2 * n - 1).bit_length()
        total = self._summed_power(idx, None, m)
        corr = np.fft.irfft(total, n=m)[:n]
        c = corr / (np.arange(n, 0, -1) * 3.0 * self._weight_sum())
        if self.normalize:
            if not c[0] > 0:
                raise ValueError("the velocities are all zero: the VACF cannot be normalised")
            c = c / c[0]
        self.n_frames = n
        self.results.vacf = c
        self.results.time_lag = np.arange(n)
        return self
