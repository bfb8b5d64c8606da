"""Compare two MD runs of the same molecule (e.g. GFN2-xTB reference vs NN candidate).

:func:`compare` computes everything at once and returns a :class:`Report`;
``Report.write(out_dir)`` writes ``index.html``, one PNG per figure and ``summary.json``
(every number shown in the report, units in the key names). The page opens with the
warnings (:func:`pymotor.compare.run_warnings`: a candidate that left the reference's
physics), then a headline table, the figures and the detail tables. Trajectories are read from
H5MD files in chunks (positions never need to fit in memory); in-memory objects with the
attributes of :class:`pymotor.Trajectory` work too.

Units: Angstrom, fs (time axes in ps), eV, amu, cm^-1, degrees.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import analysis
from .. import validation
from ..analysis.stream import H5MDReader
from . import render
from .checks import K_SIGMA, check_runs, criteria

__all__ = ["compare", "Report", "DEFAULT_WINDOWS_STEPS"]

#: rolling-Pearson window lengths in MD steps, as in the source work
DEFAULT_WINDOWS_STEPS = (100, 250, 500, 1000)
#: bin edges of the interatomic distance histograms (Angstrom)
DISTANCE_BINS_A = np.linspace(0.0, 30.0, 3001)
#: wavenumber range in which the power spectra are compared (cm^-1)
SPECTRUM_RANGE_CM = (0.0, 4000.0)


# ---- one run --------------------------------------------------------------------------------
class _Run:
    """Uniform access to one run: an H5MD path (read in chunks) or an in-memory object."""

    def __init__(self, source, label: str, stride: int, chunk_frames: int, stop=None):
        self.label = label
        self.stride = stride
        self.chunk_frames = chunk_frames
        self.stop = stop  # frames [0, stop) only (a blow-up's non-finite frames are left out)
        sl = slice(None, stop, stride)
        if isinstance(source, (str, os.PathLike)):
            self.reader = H5MDReader(source)
            self.path = str(source)
            self._src = self.reader
            self.n_total = self.reader.n_frames
            self.masses = self.reader.masses
            self.numbers = self.reader.atomic_numbers
            self.time_fs = self.reader.time_fs[sl]
            self.step = self.reader.step[sl]
            self.potential_energy = self._obs("potential_energy")
            self.kinetic_energy = self._obs("kinetic_energy")
            self.has_velocities = self.reader.has("velocities")
        else:
            self.reader = None
            self.path = str(getattr(source, "path", None) or "<memory>")
            pos = getattr(source, "positions", None)
            if pos is None:
                raise TypeError(f"`{label}`: expected an H5MD path or a Trajectory-like object, "
                                f"got {type(source).__name__}")
            self._src = np.asarray(pos)[sl]
            self.n_total = np.asarray(pos).shape[0]
            m = getattr(source, "masses", None)
            self.masses = None if m is None else np.asarray(m, dtype=float)
            nums = getattr(source, "atomic_numbers", None)
            self.numbers = None if nums is None else np.asarray(nums)
            t = getattr(source, "time_fs", None)
            t = np.arange(self.n_total, dtype=float) if t is None else np.asarray(t, dtype=float)
            self.time_fs = t[sl]
            st = getattr(source, "step", None)
            self.step = np.asarray(st)[sl] if st is not None else np.arange(self.n_total)[sl]
            self.potential_energy = self._arr(getattr(source, "potential_energy", None))
            self.kinetic_energy = self._arr(getattr(source, "kinetic_energy", None))
            vel = getattr(source, "velocities", None)
            self._vel = None if vel is None else np.asarray(vel)[sl]
            self.has_velocities = vel is not None
        self.n_frames = len(self.time_fs)
        self.n_atoms = self.reader.n_atoms if self.reader is not None else int(np.shape(self._src)[1])
        if self.n_frames < 2:
            raise ValueError(f"`{label}` run has {self.n_frames} frame(s) after stride {stride}; need >= 2")
        self.frame_dt_fs = float(self.time_fs[1] - self.time_fs[0])
        self.steps_per_frame = int(self.step[1] - self.step[0]) if self.step[1] > self.step[0] else 1

    def _obs(self, name):
        v = self.reader.observable(name)
        return None if v is None else v[: self.stop : self.stride]

    def _arr(self, v):
        return None if v is None else np.asarray(v, dtype=float)[: self.stop : self.stride]

    def first_positions(self):
        if self.reader is not None:
            return self.reader.read("positions", 0, 1)[0]
        return np.asarray(self._src[0], dtype=float)

    def run(self, cls, *args, **kw):
        """Run a streaming analysis class on this run's frames (every ``stride``-th)."""
        if self.reader is not None:
            src, step = self.reader, self.stride
        else:
            src, step = (self._src if cls.field == "positions" else self._vel), None
        obj = cls(src, *args, chunk_frames=self.chunk_frames, **kw)
        return obj.run(stop=self.stop if self.reader is not None else None, step=step).results

    def close(self):
        if self.reader is not None:
            self.reader.close()


# ---- statistics -------------------------------------------------------------------------------
def _pearson(a, b):
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _js_distance(p, q):
    """Jensen-Shannon distance (base 2, in [0, 1]) of two histograms."""
    from scipy.spatial.distance import jensenshannon

    p = np.asarray(p, float)
    q = np.asarray(q, float)
    if p.sum() <= 0 or q.sum() <= 0:
        return None
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def _wasserstein_binned(p, q, edges):
    """Wasserstein-1 distance of two histograms on the same edges (same unit as edges)."""
    p = np.asarray(p, float) / max(np.sum(p), 1e-300)
    q = np.asarray(q, float) / max(np.sum(q), 1e-300)
    return float(np.sum(np.abs(np.cumsum(p) - np.cumsum(q))[:-1] * np.diff(edges)[:-1]))


def _describe(x):
    x = np.asarray(x, float)
    return {"mean": float(np.mean(x)), "std": float(np.std(x)), "min": float(np.min(x)),
            "max": float(np.max(x))}


def _finite_or_none(obj, notes, path=""):
    """Replace non-finite floats by None (and record where) so that the JSON is valid."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v, notes, f"{path}.{k}" if path else k) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v, notes, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        if not math.isfinite(float(obj)):
            notes.append(f"{path} is undefined ({obj}) and was written as null")
            return None
        return float(obj)
    if isinstance(obj, np.ndarray):
        return _finite_or_none(obj.tolist(), notes, path)
    return obj


# ---- the report -------------------------------------------------------------------------------
@dataclass
class Report:
    """Result of :func:`compare`: ``summary`` (JSON-ready dict), ``figures`` (name ->
    matplotlib Figure), ``notes`` (what was skipped and why). ``write(out_dir)`` writes
    ``index.html``, ``<figure>.png`` and ``summary.json``."""

    summary: dict
    figures: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    captions: dict = field(default_factory=dict)

    @property
    def warnings(self) -> list:
        """The warnings (dicts with ``kind`` and ``message``; see :mod:`pymotor.compare.checks`)."""
        return list(self.summary.get("warnings", []))

    def write(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, fig in self.figures.items():
            fig.savefig(out / f"{name}.png", dpi=110)
        summary = dict(self.summary)
        summary["figures"] = [f"{name}.png" for name in self.figures]
        summary["notes"] = list(self.notes)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / "index.html").write_text(render.page(summary, self.figures, self.captions))
        return out / "index.html"


# ---- figures ------------------------------------------------------------------------------------
def _figure(nrows=1, ncols=1, size=(8, 4)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def compare(reference, candidate, *, labels=("xTB", "NN"), windows_steps=DEFAULT_WINDOWS_STEPS,
            stride: int = 1, chunk_frames: int = 4096, rmsf_max_iter: int = 1, requested_steps=None,
            test_metrics=None, seconds_per_step=None, k_sigma: float = K_SIGMA) -> Report:
    """Compare a candidate MD run with a reference run of the same molecule.

    Parameters
    ----------
    reference, candidate : path of an H5MD trajectory written by pymotor (read in chunks),
        or an object with the attributes of :class:`pymotor.Trajectory`.
    labels : names of the two runs in the report (default ``("xTB", "NN")``).
    windows_steps : rolling-Pearson windows in MD steps (converted to frames with the
        runs' output interval; windows longer than the common run are skipped, with a note).
    stride : use every ``stride``-th frame.
    chunk_frames : frames per chunk when reading files.
    rmsf_max_iter : alignments onto the average structure for the RMSF (1 = MDAnalysis).
    requested_steps : MD steps the candidate was asked for (a shorter run is a blow-up warning);
        default: from the file when recorded there.
    test_metrics : the candidate model's errors on labelled test frames, as returned by
        :func:`pymotor.train.evaluate_model` (``{"energy": {"mae": ..., "mae_se": ...},
        "forces": {...}, "n_frames": ...}``, kcal/mol and kcal/mol/Å); shown in the headline.
    seconds_per_step : wall time per MD step of each run, ``{"reference": s, "candidate": s}``
        (or keyed by the labels); default: read from ``timings.json`` (``{"seconds_per_step":
        {"<file stem>": s}}``, as :func:`pymotor.workflows.run_pair` writes) or
        ``<file stem>_timing.json`` (``{"seconds_per_step": s}``) beside each file.
    k_sigma : the warnings' threshold in reference standard deviations (see
        :mod:`pymotor.compare.checks`).

    Every frame of both runs is checked for warnings (:func:`pymotor.compare.run_warnings`),
    whatever the ``stride``; they are in ``report.warnings`` and ``summary["warnings"]``.

    Returns
    -------
    Report
        ``report.write("report/")`` writes index.html, PNG figures and summary.json.
    """
    stride = validation.number("stride", stride, integer=True)
    chunk_frames = validation.number("chunk_frames", chunk_frames, integer=True)
    if len(labels) != 2 or labels[0] == labels[1]:
        raise ValueError(f"`labels` must be two different names, got {labels!r}")
    checked = check_runs(reference, candidate, labels=tuple(labels), requested_steps=requested_steps,
                         k_sigma=k_sigma)
    runs = []
    try:
        for src, label, bad in zip((reference, candidate), labels, checked.first_nonfinite):
            runs.append(_Run(src, label, stride, chunk_frames, stop=bad))
        report = _compare(runs, tuple(windows_steps), rmsf_max_iter)
    finally:
        for r in runs:
            r.close()
    s, notes = report.summary, report.notes
    for label, bad in zip(labels, checked.first_nonfinite):
        if bad is not None:
            notes.insert(0, f"{label}: non-finite values from frame {bad} on; the comparison uses frames 0-{bad - 1}")
    warnings = checked.warnings
    notes.extend(checked.notes)
    s["warnings"] = _finite_or_none(warnings, notes, "warnings")
    s["warning_criteria"] = criteria(k_sigma)
    if test_metrics is not None:
        s["test_metrics_kcal"] = _finite_or_none(dict(test_metrics), notes, "test_metrics_kcal")
    timing = _timings(reference, candidate, labels, seconds_per_step, notes)
    if timing:
        s["timings"] = _finite_or_none(timing, notes, "timings")
    s["headline"] = _finite_or_none(_headline(s), notes, "headline")
    return report


def _timings(reference, candidate, labels, seconds_per_step, notes) -> dict:
    """{"ms_per_step": {label: ms}, "speedup": ref/cand, "source": ...} or {} when unknown."""
    got, source = {}, "given"
    if seconds_per_step is not None:
        for role, label in zip(("reference", "candidate"), labels):
            v = seconds_per_step.get(label, seconds_per_step.get(role))
            if v is not None:
                got[label] = float(v)
    else:
        found = []
        for src, label in zip((reference, candidate), labels):
            if not isinstance(src, (str, os.PathLike)):
                continue
            path = Path(src)
            for f, pick in ((path.parent / "timings.json", lambda d: d.get("seconds_per_step", {}).get(path.stem)),
                            (path.parent / f"{path.stem}_timing.json", lambda d: d.get("seconds_per_step"))):
                try:
                    v = pick(json.loads(f.read_text())) if f.is_file() else None
                except (OSError, ValueError, AttributeError):
                    v = None
                if isinstance(v, (int, float)) and v > 0:
                    got[label] = float(v)
                    found.append(str(f))
                    break
        source = ", ".join(sorted(set(found)))
        if got:
            notes.append(f"MD cost per step read from {source}")
    if not got:
        return {}
    out = {"ms_per_step": {k: 1e3 * v for k, v in got.items()}, "source": source}
    if len(got) == 2 and got[labels[1]] > 0:
        out["speedup"] = got[labels[0]] / got[labels[1]]
    return out


def _headline(s) -> dict:
    """The source work's numbers in one flat place (also the report's headline table)."""
    ref, cand = s["labels"]["reference"], s["labels"]["candidate"]
    h = {}
    m = s.get("test_metrics_kcal") or {}
    if m:
        e, f = m.get("energy") or {}, m.get("forces") or {}
        h.update(energy_mae_kcal_per_mol=e.get("mae"), energy_mae_se_kcal_per_mol=e.get("mae_se"),
                 forces_mae_kcal_per_mol_per_A=f.get("mae"), forces_mae_se_kcal_per_mol_per_A=f.get("mae_se"),
                 test_frames=m.get("n_frames"))
    h["rmsf_pearson_r"] = s.get("rmsf", {}).get("pearson_r")
    h["power_spectrum_pearson_r"] = s.get("power_spectrum", {}).get("pearson_r")
    h["rolling_pearson_r_median"] = {name: {k: v.get("median") for k, v in res.items()}
                                     for name, res in s.get("rolling_pearson", {}).items()}
    h["distances_jensen_shannon_distance"] = s.get("distances", {}).get("jensen_shannon_distance")
    h["distances_wasserstein_distance_A"] = s.get("distances", {}).get("wasserstein_distance_A")
    h["radius_of_gyration_wasserstein_distance_A"] = s.get("radius_of_gyration", {}).get("wasserstein_distance_A")
    conf = s.get("conformers", {})
    if not conf.get("skipped"):
        h["conformer_populations"] = {r: conf[r]["populations"] for r in (ref, cand) if r in conf}
    t = s.get("timings") or {}
    if t:
        h["ms_per_step"] = t["ms_per_step"]
        h["speedup"] = t.get("speedup")
    h["n_warnings"] = len(s.get("warnings", []))
    return h


def _compare(runs, windows_steps, rmsf_max_iter) -> Report:
    from .. import __version__

    ref, cand = runs
    n_atoms = {r.label: r.n_atoms for r in runs}
    if n_atoms[ref.label] != n_atoms[cand.label]:
        raise ValueError(f"the runs have different numbers of atoms: {n_atoms}")
    if ref.numbers is not None and cand.numbers is not None and not np.array_equal(ref.numbers, cand.numbers):
        raise ValueError("the runs have different atomic numbers (or atom orders)")
    n_common = min(ref.n_frames, cand.n_frames)
    notes, figures, captions = [], {}, {}
    colors = {ref.label: "C0", cand.label: "C3"}
    summary = {
        "pymotor_version": __version__,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "labels": {"reference": ref.label, "candidate": cand.label},
        "inputs": {
            key: {"path": r.path, "label": r.label, "n_frames": r.n_frames, "n_atoms": n_atoms[r.label],
                  "frame_interval_fs": r.frame_dt_fs, "steps_per_frame": r.steps_per_frame,
                  "duration_ps": float((r.time_fs[-1] - r.time_fs[0]) / 1000.0), "stride": r.stride}
            for key, r in (("reference", ref), ("candidate", cand))
        },
    }
    summary["inputs"]["n_common_frames"] = n_common
    if ref.n_frames != cand.n_frames:
        notes.append(f"the runs differ in length ({ref.n_frames} vs {cand.n_frames} frames): "
                     f"frame-by-frame comparisons use the first {n_common} frames")
    if not math.isclose(ref.frame_dt_fs, cand.frame_dt_fs, rel_tol=1e-9):
        notes.append(f"frame intervals differ ({ref.frame_dt_fs} vs {cand.frame_dt_fs} fs)")

    # -- energies -------------------------------------------------------------------------
    energies = {}
    fig, ax = _figure(2, 1, (9, 6))
    for i, (name, title) in enumerate((("potential_energy", "potential energy"),
                                        ("kinetic_energy", "kinetic energy"))):
        have = [getattr(r, name) is not None for r in runs]
        if not all(have):
            notes.append(f"{title}: missing in {[r.label for r, h in zip(runs, have) if not h]}; skipped")
            continue
        e = {}
        for r in runs:
            v = getattr(r, name)
            e[r.label] = {f"{k}_eV": x for k, x in _describe(v).items()}
            ax[i, 0].plot(r.time_fs / 1000.0, v, lw=0.8, color=colors[r.label], label=r.label)
        a, b = getattr(ref, name)[:n_common], getattr(cand, name)[:n_common]
        e["difference"] = {"mean_candidate_minus_reference_eV": float(np.mean(b - a)),
                           "rmse_eV": float(np.sqrt(np.mean((b - a) ** 2))),
                           "pearson_r": _pearson(a, b)}
        energies[name] = e
        ax[i, 0].set_ylabel(f"{title} (eV)")
        ax[i, 0].legend(loc="upper right")
    ax[-1, 0].set_xlabel("time (ps)")
    figures["energies"] = fig
    captions["energies"] = "Potential and kinetic energy of both runs over time."
    summary["energies"] = energies

    # -- rolling Pearson ----------------------------------------------------------------------
    rolling = {}
    series = [n for n in ("potential_energy", "kinetic_energy")
              if getattr(ref, n) is not None and getattr(cand, n) is not None]
    if series:
        fig, ax = _figure(len(series), 1, (9, 3 * len(series)))
        spf = ref.steps_per_frame
        if spf != cand.steps_per_frame:
            notes.append(f"output intervals differ ({spf} vs {cand.steps_per_frame} steps per frame); "
                         "rolling windows use the reference's")
        for i, name in enumerate(series):
            a, b = getattr(ref, name)[:n_common], getattr(cand, name)[:n_common]
            res = {}
            for w_steps in windows_steps:
                w = int(round(w_steps / spf))  # steps_per_frame includes the stride
                key = f"window_{w_steps}_steps"
                if w < 2:
                    notes.append(f"rolling Pearson ({name}): window of {w_steps} steps is shorter than "
                                 f"2 frames ({spf} steps per frame); skipped")
                    continue
                if w > n_common:
                    notes.append(f"rolling Pearson ({name}): window of {w_steps} steps ({w} frames) is "
                                 f"longer than the common run ({n_common} frames); skipped")
                    continue
                r = analysis.rolling_pearson(a, b, window=w)
                ok = np.isfinite(r)
                t_mid = (ref.time_fs[:n_common][w // 2: w // 2 + len(r)]) / 1000.0
                ax[i, 0].plot(t_mid, r, lw=0.8, label=f"{w_steps} steps")
                res[key] = {"window_frames": w, "n_windows": int(r.size),
                            "n_undefined": int(r.size - ok.sum())}
                if ok.any():
                    rv = r[ok]
                    res[key].update(mean=float(rv.mean()), median=float(np.median(rv)),
                                    min=float(rv.min()), max=float(rv.max()),
                                    fraction_above_0_5=float(np.mean(rv > 0.5)))
            rolling[name] = res
            ax[i, 0].set_ylabel(f"r ({name.replace('_', ' ')})")
            ax[i, 0].set_ylim(-1.05, 1.05)
            ax[i, 0].axhline(0, color="0.6", lw=0.6)
            if res:
                ax[i, 0].legend(loc="lower left", fontsize="small")
        ax[-1, 0].set_xlabel("time at window centre (ps)")
        figures["rolling_pearson"] = fig
        captions["rolling_pearson"] = (f"Pearson r between {cand.label} and {ref.label} in sliding windows "
                                       f"(MD steps); windows are drawn at their centre.")
    summary["rolling_pearson"] = rolling

    # -- RMSF -------------------------------------------------------------------------------------
    masses = {r.label: r.masses for r in runs}
    rmsf = {}
    for r in runs:
        res = r.run(analysis.RMSF, masses=masses[r.label], max_iter=rmsf_max_iter)
        rmsf[r.label] = res.rmsf
    fa, fb = rmsf[ref.label], rmsf[cand.label]
    fig, ax = _figure(1, 1, (9, 3.5))
    idx = np.arange(fa.size)
    for r in runs:
        ax[0, 0].plot(idx, rmsf[r.label], "o-", ms=3, lw=0.8, color=colors[r.label], label=r.label)
    ax[0, 0].set_xlabel("atom index")
    ax[0, 0].set_ylabel("RMSF (Å)")
    ax[0, 0].legend()
    figures["rmsf"] = fig
    captions["rmsf"] = "RMSF per atom after mass-weighted alignment onto the average structure."
    summary["rmsf"] = {
        "pearson_r": _pearson(fa, fb), "mae_A": float(np.mean(np.abs(fa - fb))),
        "max_abs_difference_A": float(np.max(np.abs(fa - fb))),
        ref.label: {"mean_A": float(fa.mean()), "max_A": float(fa.max()), "per_atom_A": fa},
        cand.label: {"mean_A": float(fb.mean()), "max_A": float(fb.max()), "per_atom_A": fb},
    }

    # -- interatomic distances ----------------------------------------------------------------------
    hist = {r.label: r.run(analysis.DistanceHistogram, bins=DISTANCE_BINS_A) for r in runs}
    edges = DISTANCE_BINS_A
    ca, cb = hist[ref.label].counts, hist[cand.label].counts
    hi = max(h.max for h in hist.values())
    fig, ax = _figure(1, 1, (9, 3.5))
    centres = 0.5 * (edges[1:] + edges[:-1])
    coarse = 10  # draw 0.1 A bins
    for r in runs:
        c = hist[r.label].counts
        n = c.size // coarse * coarse
        cc = c[:n].reshape(-1, coarse).sum(1)
        x = centres[:n].reshape(-1, coarse).mean(1)
        ax[0, 0].step(x, cc / max(cc.sum(), 1) / (edges[1] - edges[0]) / coarse, where="mid",
                      color=colors[r.label], label=r.label)
    ax[0, 0].set_xlim(0, hi * 1.05)
    ax[0, 0].set_xlabel("interatomic distance (Å)")
    ax[0, 0].set_ylabel("probability density (1/Å)")
    ax[0, 0].legend()
    figures["distances"] = fig
    captions["distances"] = "Distribution of all interatomic distances over all frames."
    summary["distances"] = {
        "jensen_shannon_distance": _js_distance(ca, cb),
        "wasserstein_distance_A": _wasserstein_binned(ca, cb, edges),
        "bin_width_A": float(edges[1] - edges[0]),
        **{r.label: {"mean_A": hist[r.label].mean, "min_A": hist[r.label].min, "max_A": hist[r.label].max,
                     "n_distances": hist[r.label].n_distances, "n_beyond_bins": hist[r.label].n_above}
           for r in runs},
    }
    for r in runs:
        if hist[r.label].n_above:
            notes.append(f"{r.label}: {hist[r.label].n_above} distances beyond {edges[-1]} Å "
                         "are not in the histogram")

    # -- radius of gyration ----------------------------------------------------------------------------
    from scipy.stats import wasserstein_distance

    rg = {r.label: r.run(analysis.RadiusOfGyration, masses=masses[r.label]).rgyr for r in runs}
    lo = min(x.min() for x in rg.values())
    hi = max(x.max() for x in rg.values())
    pad = max(1e-6, 0.02 * (hi - lo))
    rg_edges = np.linspace(lo - pad, hi + pad, 61)
    fig, ax = _figure(1, 1, (7, 3.5))
    counts = {}
    for r in runs:
        counts[r.label] = np.histogram(rg[r.label], bins=rg_edges)[0]
        ax[0, 0].hist(rg[r.label], bins=rg_edges, density=True, histtype="step", lw=1.5,
                      color=colors[r.label], label=r.label)
    ax[0, 0].set_xlabel("radius of gyration (Å)")
    ax[0, 0].set_ylabel("probability density (1/Å)")
    ax[0, 0].legend()
    figures["radius_of_gyration"] = fig
    captions["radius_of_gyration"] = "Distribution of the mass-weighted radius of gyration."
    summary["radius_of_gyration"] = {
        "wasserstein_distance_A": float(wasserstein_distance(rg[ref.label], rg[cand.label])),
        "jensen_shannon_distance": _js_distance(counts[ref.label], counts[cand.label]),
        **{r.label: {f"{k}_A": v for k, v in _describe(rg[r.label]).items()} for r in runs},
    }

    # -- power spectra ----------------------------------------------------------------------------------
    if all(r.has_velocities for r in runs):
        spec = {}
        for r in runs:
            dt = None if r.reader is not None else r.frame_dt_fs  # files: interval x stride
            res = r.run(analysis.PowerSpectrum, timestep_fs=dt, masses=masses[r.label])
            spec[r.label] = (res.nu, res.power)
        hi_cm = min(SPECTRUM_RANGE_CM[1], *(s[0][-1] for s in spec.values()))
        grid = spec[ref.label][0]
        grid = grid[(grid >= SPECTRUM_RANGE_CM[0]) & (grid <= hi_cm)]
        pa = np.interp(grid, *spec[ref.label])
        pb = np.interp(grid, *spec[cand.label])
        fig, ax = _figure(1, 1, (9, 3.5))
        for r in runs:
            nu, p = spec[r.label]
            m = nu <= hi_cm
            ax[0, 0].plot(nu[m], p[m], lw=0.8, color=colors[r.label], label=r.label)
        ax[0, 0].set_xlabel("wavenumber (cm$^{-1}$)")
        ax[0, 0].set_ylabel("power ((Å/fs)$^2$ cm)")
        ax[0, 0].legend()
        figures["power_spectrum"] = fig
        captions["power_spectrum"] = ("Mass-weighted vibrational power spectra (Hann window) "
                                      "of the velocities.")
        summary["power_spectrum"] = {
            "range_cm-1": [float(SPECTRUM_RANGE_CM[0]), float(hi_cm)],
            "pearson_r": _pearson(pa, pb),
            **{r.label: {"peak_cm-1": float(spec[r.label][0][np.argmax(spec[r.label][1])]),
                         "resolution_cm-1": float(spec[r.label][0][1])} for r in runs},
        }
    else:
        notes.append("power spectra: velocities missing in one of the runs; skipped")

    # -- conformers ----------------------------------------------------------------------------------------
    summary["conformers"] = _conformers(runs, figures, captions, notes, colors)

    summary = _finite_or_none(summary, notes)
    return Report(summary=summary, figures=figures, notes=notes, captions=captions)


def _conformers(runs, figures, captions, notes, colors):
    try:
        from ase import Atoms

        from ..data import conformers as conf

        if any(r.numbers is None for r in runs):
            raise ValueError("atomic numbers are missing")
        motor = conf.find_motor_atoms(Atoms(numbers=runs[0].numbers, positions=runs[0].first_positions()))
    except Exception as exc:  # optional part: the report goes on without it
        notes.append(f"conformers: skipped ({type(exc).__name__}: {exc})")
        return {"skipped": True, "reason": f"{type(exc).__name__}: {exc}"}
    out = {"labels": list(conf.LABELS), "beta_atoms": list(map(int, motor.beta)),
           "delta_atoms": list(map(int, motor.delta))}
    fig, ax = _figure(1, 2, (10, 4))
    width = 0.38
    lim = 60.0
    for k, r in enumerate(runs):
        ang = r.run(analysis.Dihedrals, [motor.beta, motor.delta]).angles
        beta, delta = ang[:, 0], ang[:, 1]
        lab = conf.classify_many(beta, delta)
        pops = {name: float(np.mean(lab == name)) for name in conf.LABELS}
        out[r.label] = {"populations": pops, "beta_mean_deg": float(np.mean(beta)),
                        "delta_mean_deg": float(np.mean(delta)),
                        "n_transitions": int(np.count_nonzero(lab[1:] != lab[:-1]))}
        lim = max(lim, 1.1 * float(np.max(np.abs(ang))))
        sub = slice(None, None, max(1, len(beta) // 5000))
        ax[0, 0].scatter(beta[sub], delta[sub], s=3, alpha=0.4, color=colors[r.label], label=r.label)
        ax[0, 1].bar(np.arange(4) + (k - 0.5) * width, [pops[n] for n in conf.LABELS], width,
                     color=colors[r.label], label=r.label)
    ax[0, 0].axhline(0, color="0.5", lw=0.8)
    ax[0, 0].axvline(0, color="0.5", lw=0.8)
    ax[0, 0].set_xlim(-lim, lim)
    ax[0, 0].set_ylim(-lim, lim)
    for x, y, name in ((-1, 1, "anti-M"), (-1, -1, "syn-M"), (1, 1, "anti-P"), (1, -1, "syn-P")):
        ax[0, 0].text(0.5 * lim * x, 0.9 * lim * y, name, ha="center", va="center", color="0.4")
    ax[0, 0].set_xlabel("β (deg)")
    ax[0, 0].set_ylabel("δ (deg)")
    ax[0, 0].legend()
    ax[0, 1].set_xticks(np.arange(4), conf.LABELS)
    ax[0, 1].set_ylabel("population")
    ax[0, 1].set_ylim(0, 1)
    ax[0, 1].legend()
    figures["conformers"] = fig
    captions["conformers"] = ("β/δ scatter (M: β < 0, P: β > 0; syn: δ < 0, anti: δ > 0) "
                              "and conformer populations.")
    return out
