"""Warnings for a candidate MD run that left the reference run's physics.

:func:`run_warnings` reads the two runs (H5MD paths, read in chunks, or objects with the
attributes of :class:`pymotor.Trajectory`) and returns a list of warnings, empty when all is
well. Every frame of both runs is checked (the report's ``stride`` does not apply here).
Each warning is a small dict:

``kind``
    one of :data:`KINDS` (below);
``message``
    one sentence naming what happened, when (ps) and how big;
``frame``, ``time_ps``
    the candidate frame (index in the file) and time where it is first seen (None when it
    has no time, e.g. a recorded failure);
further numbers
    depending on the kind (``value``, ``limit``, ``sigma``, ... with units in the key names).

Criteria (``k = K_SIGMA = 5``; sigma is the reference run's standard deviation over all of
its frames, at least :data:`SIGMA_FLOOR`):

* ``potential_energy_low`` / ``potential_energy_high``: a candidate frame whose potential
  energy lies more than k sigma below the reference's lowest frame or above its highest. A
  hole in an NN potential (the energy falling several eV below every reference frame) is the
  classic case. If the two runs' first frames already differ by more than k sigma (another
  energy zero, or another start), each run is measured from its own first frame instead,
  and the message says so.
* ``temperature_high`` / ``temperature_low``: the same test on the kinetic temperature
  ``2 E_kin / (n_dof k_B)`` (a kinetic-energy spike, or a run that froze).
* ``bond_broken`` / ``bond_formed``: a connectivity change of the candidate against the bonds of
  the reference run's first frame, by :func:`pymotor.connectivity.bond_events` (break at 1.6x,
  form at 1.0x the sum of covalent radii) — one warning per bond, at most
  :data:`MAX_BOND_WARNINGS`, then one ``bond_events`` warning counting the rest. Changes the
  reference run itself shows are not warned about (a note says so).
* ``blow_up``: non-finite positions or energies (checked up to that frame only), a failure
  recorded in the file's ``/pymotor`` attributes (any of :data:`FAILURE_ATTRS`), or a run that
  stopped before the requested number of steps (``requested_steps``, or a file attribute of
  :data:`REQUESTED_STEPS_ATTRS`).
* ``short_run``: no requested length is known and the candidate ends earlier than the
  reference: a stopped run unless it was meant to be shorter.
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

__all__ = ["run_warnings", "check_runs", "CheckResult", "criteria", "K_SIGMA", "SIGMA_FLOOR", "KINDS",
           "MAX_BOND_WARNINGS", "FAILURE_ATTRS", "REQUESTED_STEPS_ATTRS"]

#: how many reference standard deviations beyond the reference's extremes count as "left"
K_SIGMA = 5.0
#: smallest standard deviation used (a constant reference series would flag any change)
SIGMA_FLOOR = {"potential_energy": 1e-3, "temperature": 0.1}  # eV, K
#: individual bond warnings before the rest are counted in one
MAX_BOND_WARNINGS = 5
#: ``/pymotor`` attributes of an H5MD file that, when set, record a failed run
FAILURE_ATTRS = ("failure", "failed", "error", "md_error")
#: ``/pymotor`` attributes that may hold the number of steps a run was asked for
REQUESTED_STEPS_ATTRS = ("requested_steps", "steps_requested", "target_steps")
KINDS = ("potential_energy_low", "potential_energy_high", "temperature_high", "temperature_low",
         "bond_broken", "bond_formed", "bond_events", "blow_up", "short_run")

_CHUNK = 2048


def criteria(k_sigma: float = K_SIGMA) -> dict:
    """The warning criteria in words and numbers (written to summary.json)."""
    from .. import connectivity as C

    return {
        "k_sigma": k_sigma,
        "potential_energy": f"a candidate frame more than {k_sigma:g} sigma below the reference's lowest "
                            f"or above its highest potential energy (sigma: the reference's standard "
                            f"deviation, at least {SIGMA_FLOOR['potential_energy']} eV)",
        "temperature": f"a candidate frame more than {k_sigma:g} sigma above the reference's highest or "
                       f"below its lowest kinetic temperature 2 E_kin / (n_dof k_B) (sigma at least "
                       f"{SIGMA_FLOOR['temperature']} K)",
        "bonds": (f"pymotor.connectivity.bond_events against the bonds of the reference's first frame "
                  f"(bonded below {C.BOND_FACTOR}x, broken above {C.BREAK_FACTOR}x, formed below "
                  f"{C.FORM_FACTOR}x the sum of covalent radii); changes also seen in the reference "
                  f"are not warned about"),
        "blow_up": ("non-finite positions or energies, a failure recorded in the file "
                    f"({', '.join(FAILURE_ATTRS)}), or fewer steps than requested; without a requested "
                    "length, a candidate that ends before the reference is a 'short_run'"),
    }


# ---- uniform access to one run ----------------------------------------------------------------
class _Series:
    def __init__(self, source, label):
        from ..units import kinetic_temperature_K

        self.label = label
        self.reader = None
        if isinstance(source, (str, os.PathLike)):
            from ..analysis.stream import H5MDReader

            self.reader = r = H5MDReader(source)
            self.n_frames = r.n_frames
            self.numbers = r.atomic_numbers
            self.time_fs = r.time_fs
            self.step = r.step
            self.potential_energy = r.observable("potential_energy")
            ekin = r.observable("kinetic_energy")
            self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in r.attrs.items()}
            temp = r.observable("temperature")
            n_dof = self.attrs.get("n_dof")
        else:
            pos = getattr(source, "positions", None)
            if pos is None:
                raise TypeError(f"`{label}`: expected an H5MD path or a Trajectory-like object, "
                                f"got {type(source).__name__}")
            self._pos = np.asarray(pos)
            self.n_frames = self._pos.shape[0]
            nums = getattr(source, "atomic_numbers", None)
            self.numbers = None if nums is None else np.asarray(nums)
            t = getattr(source, "time_fs", None)
            self.time_fs = np.arange(self.n_frames, dtype=float) if t is None else np.asarray(t, float)
            st = getattr(source, "step", None)
            self.step = np.arange(self.n_frames) if st is None else np.asarray(st)
            e = getattr(source, "potential_energy", None)
            self.potential_energy = None if e is None else np.asarray(e, float)
            k = getattr(source, "kinetic_energy", None)
            ekin = None if k is None else np.asarray(k, float)
            self.attrs = dict(getattr(source, "metadata", None) or {})
            temp = None
            n_dof = getattr(source, "n_dof", None)
        self.ekin = ekin
        if temp is None and ekin is not None:
            n = len(self.numbers) if self.numbers is not None else self._n_atoms()
            dof = float(n_dof) if n_dof is not None and float(n_dof) > 0 else max(3.0 * n - 6.0, 1.0)
            temp = kinetic_temperature_K(ekin, dof)
        self.temperature = temp

    def _n_atoms(self):
        return self.reader.n_atoms if self.reader is not None else self._pos.shape[1]

    def positions(self, start, stop):
        if self.reader is not None:
            return self.reader.read("positions", start, stop)
        return np.asarray(self._pos[start:stop], dtype=float)

    def first_positions(self):
        return self.positions(0, 1)[0]

    def t_ps(self, frame):
        return float(self.time_fs[frame]) / 1000.0

    def close(self):
        if self.reader is not None:
            self.reader.close()


# ---- the checks -------------------------------------------------------------------------------
def run_warnings(reference, candidate, *, labels=("xTB", "NN"), requested_steps=None,
                 k_sigma: float = K_SIGMA) -> list[dict]:
    """Warnings for a candidate run that left the reference's physics (see the module doc).

    ``reference``, ``candidate``: H5MD paths or Trajectory-like objects of the same molecule;
    ``labels``: their names in the messages; ``requested_steps``: the number of MD steps the
    candidate was asked for (else taken from the file when recorded there).

    Returns a list of dicts with ``kind``, ``message``, ``frame``, ``time_ps`` and numbers;
    an empty list when all is well. ``[w["message"] for w in run_warnings(a, b)]`` are
    the sentences the report shows.
    """
    return check_runs(reference, candidate, labels=labels, requested_steps=requested_steps,
                      k_sigma=k_sigma).warnings


class CheckResult(NamedTuple):
    warnings: list
    #: what could not be checked, and why
    notes: list
    #: (reference, candidate): first frame with a non-finite position or energy, or None
    first_nonfinite: tuple


def check_runs(reference, candidate, *, labels=("xTB", "NN"), requested_steps=None,
               k_sigma: float = K_SIGMA) -> CheckResult:
    """:func:`run_warnings` plus notes and where each run stops being finite."""
    if not (isinstance(k_sigma, (int, float)) and k_sigma > 0):
        raise ValueError(f"`k_sigma` must be a positive number, got {k_sigma!r}")
    ref = _Series(reference, labels[0])
    try:
        cand = _Series(candidate, labels[1])
    except BaseException:
        ref.close()
        raise
    try:
        warnings, notes = [], []
        numbers = ref.numbers if ref.numbers is not None else cand.numbers
        start = ref.first_positions()
        if numbers is None:
            notes.append("warnings: no atomic numbers in either run; bonds were not checked")
        elif not np.isfinite(start).all():
            notes.append(f"warnings: the {ref.label} first frame has non-finite positions; "
                         "bonds were not checked")
            numbers = None
        scans = [_scan(r, numbers, start) for r in (ref, cand)]
        _blow_up(ref, cand, scans, requested_steps, warnings, notes)
        for name, unit in (("potential_energy", "eV"), ("temperature", "K")):
            _excursion(ref, cand, name, unit, k_sigma, warnings, notes)
        if numbers is not None:
            _bonds(ref, cand, numbers, start, scans, warnings, notes)
        order = {k: i for i, k in enumerate(KINDS)}
        warnings.sort(key=lambda w: (w["time_ps"] is not None, w["time_ps"] or 0.0, order[w["kind"]]))
        return CheckResult(warnings, notes, (scans[0][0], scans[1][0]))
    finally:
        ref.close()
        cand.close()


def _scan(run, numbers, reference_positions):
    """One pass over a run's positions: the first frame with a non-finite position or energy,
    what was non-finite there, and the run's connectivity changes before that frame against
    ``reference_positions`` as {(kind, i, j): BondEvent} (None when ``numbers`` is None)."""
    from ..connectivity import BondEvent, bond_events

    first, what = None, []
    for name, v in (("potential energy", run.potential_energy), ("kinetic energy", run.ekin)):
        if v is not None:
            bad = np.flatnonzero(~np.isfinite(v))
            if bad.size and (first is None or bad[0] <= first):
                what = what + [name] if first == bad[0] else [name]
                first = int(bad[0])
    events = None if numbers is None else {}
    stop = run.n_frames if first is None else first + 1
    for start in range(0, stop, _CHUNK):
        blk = run.positions(start, min(start + _CHUNK, stop))
        bad = np.flatnonzero(~np.isfinite(blk).all(axis=(1, 2)))
        if bad.size:
            f = start + int(bad[0])
            what = ["positions"] + (what if f == first else [])
            first = f
        if events is not None:
            end = len(blk) if first is None else first - start  # frames before the blow-up only
            if end > 0:
                for e in bond_events(numbers, blk[:end], reference=reference_positions):
                    key = (e.kind, e.i, e.j)
                    if key not in events:
                        events[key] = BondEvent(e.kind, e.i, e.j, start + e.frame, e.distance_A)
        if bad.size:
            break
    return first, what, events


def _blow_up(ref, cand, scans, requested_steps, warnings, notes):
    c = cand.label
    bad, what, _ = scans[1]
    if bad is not None:
        warnings.append({
            "kind": "blow_up", "frame": bad, "time_ps": cand.t_ps(bad), "reason": "non-finite",
            "message": f"{c} run blew up: non-finite {' and '.join(what)} from {cand.t_ps(bad):.3f} ps "
                       f"(frame {bad} of {cand.n_frames}) on"})
    for key in FAILURE_ATTRS:
        v = cand.attrs.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, (bool, np.bool_, int, np.integer)) and not isinstance(v, str):
            if not bool(v):
                continue
            v = "failed"
        if isinstance(v, str) and not v.strip():
            continue
        warnings.append({"kind": "blow_up", "frame": None, "time_ps": None, "reason": "recorded failure",
                         "message": f"{c} run recorded a failure in its file ({key}): {v}"})
        break
    if requested_steps is None:
        for key in REQUESTED_STEPS_ATTRS:
            v = cand.attrs.get(key)
            if isinstance(v, (int, np.integer, float, np.floating)) and math.isfinite(float(v)) and v > 0:
                requested_steps = int(v)
                break
    last_step = int(cand.step[-1]) if cand.n_frames else 0
    t_end = cand.t_ps(-1) if cand.n_frames else 0.0
    if requested_steps is not None:
        if last_step < int(requested_steps):
            frac = last_step / int(requested_steps)
            warnings.append({
                "kind": "blow_up", "frame": cand.n_frames - 1, "time_ps": t_end, "reason": "stopped early",
                "last_step": last_step, "requested_steps": int(requested_steps),
                "message": f"{c} run stopped at step {last_step} ({t_end:.3f} ps) of {int(requested_steps)} "
                           f"requested ({100 * frac:.0f}%): a blow-up or a killed run"})
    elif ref.n_frames and cand.n_frames:
        r_end = ref.t_ps(-1)
        dt = (cand.time_fs[1] - cand.time_fs[0]) / 1000.0 if cand.n_frames > 1 else 0.0
        if t_end < r_end - 0.5 * abs(dt) - 1e-12:
            warnings.append({
                "kind": "short_run", "frame": cand.n_frames - 1, "time_ps": t_end,
                "duration_ps": t_end, "reference_duration_ps": r_end,
                "message": f"{c} run ends at {t_end:.3f} ps, the {ref.label} run at {r_end:.3f} ps "
                           f"({cand.n_frames} vs {ref.n_frames} frames): if both were meant to be equally "
                           f"long, the {c} run stopped early (a blow-up or a killed run)"})
    rbad, rwhat, _ = scans[0]
    if rbad is not None:
        notes.append(f"{ref.label} (reference) has non-finite {' and '.join(rwhat)} from frame {rbad}; "
                     "its statistics use the finite frames")


def _excursion(ref, cand, name, unit, k, warnings, notes):
    what = name.replace("_", " ")
    a, b = getattr(ref, name), getattr(cand, name)
    if a is None or b is None:
        missing = [r.label for r, v in ((ref, a), (cand, b)) if v is None]
        notes.append(f"warnings: no {what} in {', '.join(missing)}; its excursions were not checked")
        return
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not fa.any() or not fb.any():
        return
    av = a[fa]
    sigma = max(float(np.std(av)), SIGMA_FLOOR[name])
    lo, hi = float(av.min()), float(av.max())
    margin = k * sigma
    relative = ""
    fmt = (lambda x: f"{x:.2f} {unit}") if unit == "eV" else (lambda x: f"{x:.0f} {unit}")
    if name == "potential_energy" and np.isfinite(a[0]) and np.isfinite(b[0]) and abs(b[0] - a[0]) > margin:
        shift = float(b[0] - a[0])
        notes.append(f"warnings: the first frames' potential energies differ by {shift:.3f} eV "
                     f"(more than {k:g} sigma = {margin:.3f} eV): each run's potential energy is "
                     "measured from its own first frame")
        a = a - a[0]
        b = b - b[0]
        av = a[fa]
        lo, hi = float(av.min()), float(av.max())
        relative = " (each measured from its own first frame)"
    c, r = cand.label, ref.label
    with np.errstate(invalid="ignore"):
        low = fb & (b < lo - margin)
        high = fb & (b > hi + margin)
    for mask, side in ((low, "low"), (high, "high")):
        if not mask.any():
            continue
        frames = np.flatnonzero(mask)
        first = int(frames[0])
        peak = int(frames[np.argmin(b[frames])] if side == "low" else frames[np.argmax(b[frames])])
        bound = lo if side == "low" else hi
        beyond = float(abs(b[peak] - bound))
        kind = f"{name}_{side}"
        w = {"kind": kind, "frame": first, "time_ps": cand.t_ps(first),
             "peak_frame": peak, "peak_time_ps": cand.t_ps(peak), f"peak_value_{_u(unit)}": float(b[peak]),
             f"beyond_reference_{_u(unit)}": beyond, "beyond_reference_sigma": beyond / sigma,
             f"reference_{'min' if side == 'low' else 'max'}_{_u(unit)}": bound,
             f"sigma_{_u(unit)}": sigma, "k_sigma": k, "n_frames": int(mask.sum()),
             "n_frames_total": int(cand.n_frames)}
        share = f"{int(mask.sum())} of {cand.n_frames} frames"
        if name == "potential_energy":
            direction = "fell" if side == "low" else "rose"
            where = "below the lowest" if side == "low" else "above the highest"
            tail = " — a hole in the candidate's potential" if side == "low" else ""
            msg = (f"{c} potential energy{relative} {direction} {fmt(beyond)} {where} {r} frame "
                   f"({beyond / sigma:.1f} sigma; sigma = {fmt(sigma)}, the {r} standard deviation) at "
                   f"{cand.t_ps(peak):.3f} ps; first beyond the {k:g}-sigma limit at {cand.t_ps(first):.3f} ps, "
                   f"{share}{tail}")
        else:
            where = "above the hottest" if side == "high" else "below the coldest"
            verb = "reached" if side == "high" else "fell to"
            extra = ""
            if cand.ekin is not None and np.isfinite(cand.ekin[peak]):
                extra = f" (kinetic energy {cand.ekin[peak]:.2f} eV)"
                w["peak_kinetic_energy_eV"] = float(cand.ekin[peak])
            msg = (f"{c} temperature {verb} {fmt(b[peak])}{extra} at {cand.t_ps(peak):.3f} ps, {fmt(beyond)} "
                   f"{where} {r} frame ({fmt(bound)}; {beyond / sigma:.1f} sigma, sigma = {fmt(sigma)}); "
                   f"first beyond the {k:g}-sigma limit at {cand.t_ps(first):.3f} ps, {share}")
        w["message"] = msg
        warnings.append(w)


def _u(unit):
    return {"eV": "eV", "K": "K"}[unit]


def _bonds(ref, cand, numbers, start, scans, warnings, notes):
    from ase.data import chemical_symbols

    from .. import connectivity as C

    ref_events, cand_events = scans[0][2], scans[1][2]
    if ref_events:
        notes.append(f"the {ref.label} run itself changes {len(ref_events)} bond(s) against its first frame; "
                     "the same changes in the candidate are not warned about")
    new = sorted((e for key, e in cand_events.items() if key not in ref_events), key=lambda e: (e.frame, e.i, e.j))
    radii = C.covalent_radii(numbers)
    d0 = np.sqrt(((start[:, None] - start[None]) ** 2).sum(-1))
    sym = [chemical_symbols[int(z)] for z in numbers]
    for e in new[:MAX_BOND_WARNINGS]:
        pair = f"{sym[e.i]}{e.i}-{sym[e.j]}{e.j}"
        rsum = radii[e.i] + radii[e.j]
        t = cand.t_ps(e.frame)
        w = {"kind": f"bond_{e.kind}", "frame": e.frame, "time_ps": t, "atoms": [e.i, e.j],
             "elements": [sym[e.i], sym[e.j]], "distance_A": e.distance_A,
             "reference_distance_A": float(d0[e.i, e.j])}
        if e.kind == "broken":
            w["limit_A"] = float(C.BREAK_FACTOR * rsum)
            w["message"] = (f"{cand.label}: bond {pair} broke at {t:.3f} ps: {e.distance_A:.2f} Å apart "
                            f"({d0[e.i, e.j]:.2f} Å in the {ref.label} start frame; broken above "
                            f"{w['limit_A']:.2f} Å = {C.BREAK_FACTOR:g} x the sum of the covalent radii)")
        else:
            w["limit_A"] = float(C.FORM_FACTOR * rsum)
            w["message"] = (f"{cand.label}: new bond {pair} formed at {t:.3f} ps: {e.distance_A:.2f} Å apart "
                            f"({d0[e.i, e.j]:.2f} Å in the {ref.label} start frame; bonded below "
                            f"{w['limit_A']:.2f} Å = {C.FORM_FACTOR:g} x the sum of the covalent radii)")
        warnings.append(w)
    rest = new[MAX_BOND_WARNINGS:]
    if rest:
        n_b = sum(e.kind == "broken" for e in rest)
        t0, t1 = cand.t_ps(rest[0].frame), cand.t_ps(rest[-1].frame)
        warnings.append({
            "kind": "bond_events", "frame": rest[0].frame, "time_ps": t0, "n_broken": n_b,
            "n_formed": len(rest) - n_b,
            "message": f"{cand.label}: {len(rest)} more connectivity changes ({n_b} broken, {len(rest) - n_b} "
                       f"formed) between {t0:.3f} and {t1:.3f} ps"})
