"""On-the-fly learning MD: :func:`on_the_fly`.

NN MD with a committee (:class:`~pymotor.learn.committee.Committee`, mean forces) in which,
every ``check_every`` steps, the committee's max force standard deviation is compared with
``threshold``; above it, GFN2-xTB labels that geometry and the step goes on with the
GFN2-xTB energy and forces (so the trajectory does not follow a surface the committee has not
learnt). Every ``retrain_every`` new labels the members are fine-tuned on all labels so far
plus a replay of their original data, exported, and MD goes on with the new committee.

How it is built from pymotor's parts (no second MD loop):

* the force call is a Python :class:`OnTheFlyPotential` behind ``_core.CallbackPotential``;
  the C++ integrator calls it once per step (and once at the start of each call of
  :func:`pymotor.run_md`, for the committed state), so it knows the step it is called for;
* :func:`pymotor.run_md` drives it in segments of ``segment_steps`` steps with
  ``restart=OUT/md.h5`` (the same file: a fresh start, a continuation and a resume after a
  kill are the same call), committing the restart state atomically after every chunk;
* retraining happens only between segments (at committed states on segment boundaries), with
  :func:`pymotor.train.train` (``init_from=``) and :func:`pymotor.train.export`;
* the journal (:class:`~pymotor.learn.journal.Journal`) records every check and every label
  durably before the forces go back to the integrator.

Resuming is repeating the call (or ``resume=True`` with ``out`` alone): the MD resumes from the
trajectory's committed state, bit for bit; the steps after it are run again, and where the
journal holds the step its decision and label are reused (no xTB call is repeated); a round
of retraining that did not finish is started again from scratch (training is deterministic:
seeded, one thread), so a killed loop ends with the labels and the models of an uninterrupted
one.

Layout of ``out``::

    learn_state.json        settings, threshold (and its calibration), rounds, sessions
    journal.jsonl           every check: step, replica, round, max force std; labels with GFN2-xTB data
    labels.db, labels_split.npz   all labels as a SchNetPack database (committee units, atom references)
    md.h5 (md_0.h5, ...)    the trajectory (H5MD, restartable; records each change of committee)
    rounds/round_001/       labels.db of the round, member_<i>/ (training runs), member_<i>.pt (exported)
    learn.json, learn.png   the report (pymotor.learn.report)
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import validation
from .committee import DEFAULT_QUANTILE, Committee, calibrate_threshold, resolve_committee
from .journal import Journal

__all__ = ["on_the_fly", "OnTheFlyPotential", "XTBLabeller", "LearnResult", "DEFAULTS", "STATE_FORMAT",
           "JournalMismatchError"]

STATE_FORMAT = "pymotor.learn/1"
#: a labelled step met again on resume must be at the journal's positions within this (Angstrom)
POSITION_TOL_A = 1e-6
#: the options of :func:`on_the_fly` and their defaults (a resumed run takes the stored values)
DEFAULTS: dict[str, Any] = dict(
    temperature_K=500.0, steps=20000, timestep_fs=0.5, replicas=1, threshold="auto",
    threshold_quantile=DEFAULT_QUANTILE, check_every=10, retrain_every=50, retrain=True, segment_steps=200,
    interval=10, seed=0, tdamp_fs=100.0, retrain_epochs=10, retrain_lr=1e-4, replay=None, replay_frames=1000,
    test_dbs=None, test_split="test", test_stride=1, calibration_dbs=None, xtb_backend="tblite", charge=0,
    spin=None, backend="auto", max_force_eV_per_A=50.0, on_bond_change="record", train_threads=1,
)
#: options that may differ on resume: the total number of steps (a longer run continues)
_MAY_CHANGE = ("steps",)


class JournalMismatchError(RuntimeError):
    """A resumed run reached a labelled step at other positions than the journal's."""


# ---------------------------------------------------------------------------------------
# the force call
# ---------------------------------------------------------------------------------------
class XTBLabeller:
    """GFN2-xTB energy (eV) and forces (eV/Angstrom) of one geometry, each SCF from the same start
    guess (``reuse_wavefunction=False``): a label equals a direct single-point calculation."""

    def __init__(self, numbers, backend: str = "tblite", charge: int = 0, spin: int | None = None):
        from ase import Atoms

        from ..data.xtb import make_calculator

        self.numbers = np.asarray(numbers)
        self.calc = make_calculator(backend, charge=charge, spin=spin,
                                    atoms=Atoms(numbers=self.numbers, positions=np.zeros((len(self.numbers), 3))),
                                    reuse_wavefunction=False)
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, positions) -> tuple[float, np.ndarray]:
        from ase import Atoms

        t0 = time.perf_counter()
        self.calls += 1
        a = Atoms(numbers=self.numbers, positions=np.asarray(positions, dtype=float))
        a.calc = self.calc
        try:
            return float(a.get_potential_energy()), np.array(a.get_forces(), dtype=float)
        finally:
            self.seconds += time.perf_counter() - t0


class OnTheFlyPotential:
    """The force call of on-the-fly MD: the committee's mean, or GFN2-xTB where it is unsure.

    Called by the C++ integrator with positions (R, N, 3) once per step; ``start(step)`` tells
    it the step of the first call (the committed state :func:`pymotor.run_md` starts from).
    At steps that are multiples of ``check_every`` each replica whose max force std exceeds
    ``threshold`` (every replica for ``threshold == 0``) is labelled by ``labeller`` and goes on
    with the label; a step the journal already holds is not decided again.
    """

    def __init__(self, committee: Committee, numbers, journal: Journal, threshold: float, check_every: int,
                 round_index: int, labeller, bar=None, on_step=None):
        self.evaluator = committee.evaluator(numbers)
        self.committee = committee
        self.journal = journal
        self.threshold = float(threshold)
        self.check_every = int(check_every)
        self.round = int(round_index)
        self.labeller = labeller
        self.bar = bar
        self.next_step: int | None = None
        self.checks = 0
        self.xtb_calls = 0
        self.seconds_committee = 0.0
        self.steps_evaluated = 0
        self.name = (f"pymotor.learn on-the-fly: committee round {self.round} (sha256 {committee.sha256()[:16]}); "
                     f"GFN2-xTB when the max force std > {self.threshold!r} eV/A, "
                     f"checked every {self.check_every} steps")

    def start(self, step: int) -> None:
        self.next_step = int(step)

    def potential(self):
        from .. import _core

        return _core.CallbackPotential(self, self.name)

    def __call__(self, positions):
        if self.next_step is None:
            raise RuntimeError("OnTheFlyPotential.start(step) must be called before the MD run")
        step = self.next_step
        self.next_step += 1
        t0 = time.perf_counter()
        pred = self.evaluator.evaluate(positions)
        self.seconds_committee += time.perf_counter() - t0
        self.steps_evaluated += 1
        energy, forces = pred.energy.copy(), pred.forces.copy()
        if step % self.check_every == 0:
            std = pred.max_force_std
            for r in range(len(positions)):
                e = self.journal.get(step, r)
                if e is None:
                    e = self._check(step, r, positions[r], float(std[r]))
                elif "xtb" in e:
                    stored = np.asarray(e["xtb"]["positions_A"])
                    dev = float(np.abs(stored - positions[r]).max())
                    if dev > POSITION_TOL_A:
                        raise JournalMismatchError(
                            f"step {step}, replica {r}: the resumed trajectory is {dev:.3g} Angstrom away from the "
                            f"geometry the journal labelled ({self.journal.path}); it was written by another run "
                            "(other settings or start) -- use another `out`")
                if "xtb" in e:
                    energy[r] = e["xtb"]["energy_eV"]
                    forces[r] = np.asarray(e["xtb"]["forces_eV_A"])
        if self.bar is not None and step > self.bar.n:
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.update(step - self.bar.n)
        return energy, forces

    def _check(self, step: int, r: int, positions, std: float) -> dict:
        from ..data.xtb import XTBError

        e = {"step": int(step), "replica": int(r), "round": self.round, "std": std}
        self.checks += 1
        if self.threshold == 0.0 or std > self.threshold:
            self.xtb_calls += 1
            try:
                en, fo = self.labeller(positions)
                e["xtb"] = {"energy_eV": en, "forces_eV_A": np.asarray(fo).tolist(),
                            "positions_A": np.asarray(positions).tolist()}
            except XTBError as exc:  # no label: this step goes on with the committee
                e["xtb_error"] = str(exc).splitlines()[0]
            self.journal.append(e, durable=True)  # on disk before the state after it can be committed
        else:
            self.journal.append(e)
        return e

    def _postfix(self) -> str:
        calls = getattr(self.labeller, "calls", self.xtb_calls)
        return f"xTB calls {self.journal.n_labelled} (this session {calls}), round {self.round}"


# ---------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------
@dataclass
class LearnResult:
    """What :func:`on_the_fly` did. ``report`` is the content of ``out/learn.json``."""

    out: Path
    steps: int
    n_labels: int
    xtb_calls: int                     # GFN2-xTB calls made by this call (not counting earlier sessions)
    threshold_eV_per_A: float          # the threshold of the committee at the end (recalibrated per round with "auto")
    models: list[str]                  # the committee at the end (the last round's member files)
    labels_db: Path | None
    report: dict = field(default_factory=dict)

    @property
    def rounds(self) -> list[dict]:
        return self.report.get("rounds", [])


# ---------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------
def _check_settings(s: dict) -> dict:
    """Validate the options; messages name the option as the API spells it."""
    from ..backends import REGISTRY
    from ..data.xtb import BACKENDS

    validation.number("temperature_K", s["temperature_K"])
    validation.number("steps", s["steps"], integer=True)
    validation.number("timestep_fs", s["timestep_fs"])
    validation.number("replicas", s["replicas"], integer=True)
    thr = s["threshold"]
    if isinstance(thr, str):
        if thr != "auto":
            raise ValueError(f"`threshold` must be 'auto' or a number >= 0 (eV/Angstrom), got {thr!r}")
    else:
        validation.number("threshold", thr, strict=False)
    q = s["threshold_quantile"]
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not (0 < q < 1):
        raise ValueError(f"`threshold_quantile` must lie in (0, 1), got {q!r}")
    validation.number("check_every", s["check_every"], integer=True)
    validation.number("retrain_every", s["retrain_every"], integer=True, minimum=1)
    validation.number("segment_steps", s["segment_steps"], integer=True)
    validation.number("interval", s["interval"], integer=True)
    validation.number("seed", s["seed"], integer=True, strict=False)
    validation.number("tdamp_fs", s["tdamp_fs"])
    validation.number("retrain_epochs", s["retrain_epochs"], integer=True)
    validation.number("retrain_lr", s["retrain_lr"], allow_none=True)
    validation.number("replay_frames", s["replay_frames"], integer=True)
    validation.number("test_stride", s["test_stride"], integer=True)
    validation.number("max_force_eV_per_A", s["max_force_eV_per_A"])
    validation.number("train_threads", s["train_threads"], integer=True, allow_none=True)
    if not isinstance(s["retrain"], bool):
        raise ValueError(f"`retrain` must be True or False, got {s['retrain']!r}")
    if s["test_split"] not in ("train", "val", "test"):
        raise ValueError(f"`test_split` must be 'train', 'val' or 'test', got {s['test_split']!r}")
    if s["xtb_backend"] not in BACKENDS:
        raise ValueError(f"`xtb_backend` must be one of {BACKENDS}, got {s['xtb_backend']!r}")
    if s["backend"] != "auto" and s["backend"] not in REGISTRY:
        raise ValueError(f"`backend` must be 'auto' or one of {sorted(REGISTRY)}, got {s['backend']!r}")
    if s["on_bond_change"] not in ("record", "stop", "ignore"):
        raise ValueError(f"`on_bond_change` must be 'record', 'stop' or 'ignore', got {s['on_bond_change']!r}")
    for key in ("replay", "test_dbs", "calibration_dbs"):
        v = s[key]
        if v is None:
            continue
        if isinstance(v, (str, os.PathLike)):
            v = [v]
        v = [os.path.abspath(str(p)) for p in v]
        missing = [p for p in v if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"`{key}`: database(s) {missing} do not exist")
        s[key] = v
    return s


def _atoms_record(atoms) -> dict:
    return {"numbers": [int(z) for z in atoms.numbers], "positions": np.asarray(atoms.positions).tolist(),
            "masses": np.asarray(atoms.get_masses()).tolist()}


def _atoms_from_record(rec: dict):
    from ase import Atoms

    return Atoms(numbers=rec["numbers"], positions=rec["positions"], masses=rec["masses"])


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(state, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


# ---------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------
def on_the_fly(committee=None, atoms=None, out: str | os.PathLike = "learn", *, resume: bool | None = None,
               progress: bool = True, temperature_K: float | None = None, steps: int | None = None,
               timestep_fs: float | None = None, replicas: int | None = None, threshold: float | str | None = None,
               threshold_quantile: float | None = None, check_every: int | None = None,
               retrain_every: int | None = None, retrain: bool | None = None, segment_steps: int | None = None,
               interval: int | None = None, seed: int | None = None, tdamp_fs: float | None = None,
               retrain_epochs: int | None = None, retrain_lr: float | None = None, replay: Sequence | None = None,
               replay_frames: int | None = None, test_dbs: Sequence | None = None, test_split: str | None = None,
               test_stride: int | None = None, calibration_dbs: Sequence | None = None,
               xtb_backend: str | None = None, charge: int | None = None, spin: int | None = None,
               backend: str | None = None, max_force_eV_per_A: float | None = None,
               on_bond_change: str | None = None, train_threads: int | None = None) -> LearnResult:
    """On-the-fly learning MD: the committee asks GFN2-xTB when it is unsure.

    Parameters
    ----------
    committee
        The committee: model files (a list, ``"a.pt,b.pt"``, a folder of ``*.pt`` or a shipped
        committee name, see :func:`~pymotor.learn.committee.resolve_committee`) or a
        :class:`~pymotor.learn.committee.Committee` (its files define it: the members are loaded
        from them with ``backend``, also on resume). Not needed to resume.
    atoms
        Start geometry (``ase.Atoms``); default CPNX (:func:`pymotor.data.cpnx`). Start velocities
        are drawn at ``temperature_K`` with ``seed`` (one draw per replica).
    out
        Folder of the run (layout in the module docstring). Repeating the call resumes it.
    resume
        None (default): start, or resume what ``out`` holds. True: resume (an error if there is
        nothing to resume); options not given take the stored values. False: refuse an ``out``
        that holds a run.
    temperature_K, timestep_fs, tdamp_fs, seed
        NVT (Nose-Hoover chain) at ``temperature_K`` with ``timestep_fs`` steps (default 500 K, 0.5 fs).
    steps
        Total MD steps (may grow on resume: the run continues).
    replicas
        Independent replicas (one batched committee call per step for all of them).
    threshold
        eV/Angstrom: a checked replica whose committee max force std exceeds it is labelled.
        ``0`` labels every checked frame. ``"auto"`` (default): the ``threshold_quantile``
        (default 0.99) of the committee's max force std on the validation frames of its own
        training databases (``calibration_dbs`` to name others), computed once and stored.
    check_every
        Check every this many steps (default 10); the steps in between use the committee.
    retrain_every, retrain
        Fine-tune the members once ``retrain_every`` new labels exist (checked at segment ends,
        every ``segment_steps`` steps); ``retrain=False`` only labels.
    retrain_epochs, retrain_lr, replay, replay_frames, train_threads
        Fine-tuning: epochs per round (default 10), learning rate (default 1e-4: on CPNX at
        600 K, 3e-4 on a round's few hundred frames pushed the members apart, their spread up
        3.3x and the test error up; docs/learning.md), the replay databases (default: those named in the members' model cards),
        strided to about ``replay_frames`` training frames, torch threads.
    test_dbs, test_split, test_stride
        A fixed independent test set: the errors of the committee (and of each member) on the
        ``test_split`` frames of these databases are measured for every round.
    interval
        Trajectory frames every this many steps (default 10).
    xtb_backend, charge, spin
        GFN2-xTB (:func:`pymotor.data.xtb.make_calculator`).
    backend, max_force_eV_per_A, on_bond_change
        Model evaluator and the guards of :func:`pymotor.run_md`.
    progress
        A progress bar with the xTB calls so far.

    Returns
    -------
    :class:`LearnResult`; the report is also written to ``out/learn.json`` and ``out/learn.png``.
    """
    given = dict(temperature_K=temperature_K, steps=steps, timestep_fs=timestep_fs, replicas=replicas,
                 threshold=threshold, threshold_quantile=threshold_quantile, check_every=check_every,
                 retrain_every=retrain_every, retrain=retrain, segment_steps=segment_steps, interval=interval,
                 seed=seed, tdamp_fs=tdamp_fs, retrain_epochs=retrain_epochs, retrain_lr=retrain_lr, replay=replay,
                 replay_frames=replay_frames, test_dbs=test_dbs, test_split=test_split, test_stride=test_stride,
                 calibration_dbs=calibration_dbs, xtb_backend=xtb_backend, charge=charge, spin=spin,
                 backend=backend, max_force_eV_per_A=max_force_eV_per_A, on_bond_change=on_bond_change,
                 train_threads=train_threads)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"`out`: {out} is a file; name a folder")
    state_path = out / "learn_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if state is not None and state.get("format") != STATE_FORMAT:
        raise ValueError(f"`out`: {state_path} is not a pymotor.learn state (format {state.get('format')!r})")
    if resume is True and state is None:
        raise FileNotFoundError(f"`resume`: {out} holds no on-the-fly run to resume (no learn_state.json)")
    if resume is False and state is not None:
        raise FileExistsError(f"`out`: {out} already holds an on-the-fly run; resume it (repeat the command) or "
                              "choose another folder")
    user = {k: v for k, v in given.items() if v is not None}
    if state is None:
        settings = _check_settings(dict(DEFAULTS, **user))
    else:
        settings = dict(DEFAULTS, **state["settings"])
        theirs = _check_settings(dict(settings, **user))
        diff = {k: (settings[k], theirs[k]) for k in user if k not in _MAY_CHANGE and not _same(settings[k], theirs[k])}
        if diff:
            listing = "; ".join(f"`{k}`: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"`out`: {out} holds a run with other settings ({listing}); repeat it with its own "
                             "options (or only `resume`), or choose another folder")
        settings = theirs

    # the committee of the run (round 0) and the current one ------------------------------
    if state is None:
        if committee is None:
            raise ValueError("`committee` is required to start a run (model files, a folder or a shipped name)")
        com0 = committee if isinstance(committee, Committee) else Committee(
            resolve_committee(committee), backend=settings["backend"])
        if atoms is None:
            from ..data import cpnx

            atoms = cpnx()
        from ..md.start import validate_atoms

        validate_atoms(atoms)
        for m in com0.models:
            m.check_elements(atoms.numbers)
        shas = [m.file.sha256() for m in com0.models]
        if len(set(shas)) < len(shas):
            raise ValueError(f"`committee` lists the same model file more than once "
                             f"({', '.join(str(p) for p in com0.paths)}): its force spread would be zero")
        state = {"format": STATE_FORMAT, "created": _now(), "settings": settings,
                 "committee": {"paths": [str(p.resolve()) for p in com0.paths],
                               "sha256": [m.file.sha256() for m in com0.models]},
                 "atoms": _atoms_record(atoms), "threshold": None, "rounds": [], "sessions": []}
    else:
        com0 = None
        if committee is not None:
            have = state["committee"]["sha256"]
            paths = committee.paths if isinstance(committee, Committee) else resolve_committee(committee)
            from ..modelfile import ModelFile

            if [ModelFile(p).sha256() for p in paths] != have:
                raise ValueError(f"`committee`: {out} was started with another committee "
                                 f"({', '.join(state['committee']['paths'])})")
        if atoms is not None:
            rec = state["atoms"]
            if list(map(int, atoms.numbers)) != rec["numbers"] or not np.array_equal(np.asarray(atoms.positions),
                                                                                   np.asarray(rec["positions"])):
                raise ValueError(f"`atoms`: {out} was started from another geometry")
    s = settings
    state["settings"] = s
    template = _atoms_from_record(state["atoms"])
    numbers = template.numbers
    labeller = XTBLabeller(numbers, s["xtb_backend"], s["charge"], s["spin"])  # checks charge and spin
    out.mkdir(parents=True, exist_ok=True)

    # round 0 is the given committee; the current one is the last finished round's ----------
    if not state["rounds"]:
        state["rounds"].append({"round": 0, "step": 0, "n_labels": 0, "status": "done",
                                "models": list(state["committee"]["paths"]), "runs": None})
    if state["rounds"][-1]["status"] != "done":  # killed while training: that round starts again
        state["rounds"].pop()
    current = Committee(state["rounds"][-1]["models"], backend=s["backend"])
    replay_dbs = None
    if s["retrain"]:
        replay_dbs = state.get("replay") or s["replay"] or (
            com0 or Committee(state["committee"]["paths"], backend=s["backend"])).training_databases()
        missing = [d for d in replay_dbs if not Path(d).is_file()]
        if not replay_dbs or missing:
            raise FileNotFoundError(
                "`replay`: fine-tuning replays the committee's original data, but "
                + (f"its training databases {missing} do not exist here" if missing else "its model cards name none")
                + "; give `replay` (CLI --replay DB ...) or retrain=False (CLI --no-retrain)")
        if state.get("replay_stride") is None:
            from .retrain import replay_stride

            state["replay_stride"] = replay_stride(replay_dbs, s["replay_frames"])
            state["replay"] = replay_dbs

    # the threshold, once --------------------------------------------------------------------
    if state["threshold"] is None:
        if s["threshold"] == "auto":
            state["threshold"] = calibrate_threshold(current, s["calibration_dbs"], quantile=s["threshold_quantile"])
        else:
            state["threshold"] = {"threshold_eV_per_A": float(s["threshold"]), "method": "given"}

    test = _load_test_set(s) if s["test_dbs"] else None
    if test is not None and "test_errors" not in state["rounds"][0]:
        state["rounds"][0]["test_errors"] = _errors(Committee(state["rounds"][0]["models"], backend=s["backend"]), test)
    _write_state(state_path, state)

    # the MD, in segments ------------------------------------------------------------------
    from ..md import run_md
    from ..trajectory import TrajectoryFileError, read_state

    md_path = out / "md.h5"
    first = md_path if s["replicas"] == 1 else md_path.with_name("md_0.h5")

    def committed_step() -> int:
        if not first.exists():
            return 0
        try:
            return int(read_state(first)["step"])
        except TrajectoryFileError:
            return 0  # killed before its first frame: run_md starts it again

    journal = Journal(out / "journal.jsonl")
    replicas_atoms = [template.copy() for _ in range(int(s["replicas"]))]
    total, seg = int(s["steps"]), int(s["segment_steps"])
    session = {"start": _now(), "end": None, "steps_from": committed_step(), "steps_to": None, "xtb_calls": 0,
               "xtb_seconds": 0.0, "committee_seconds": 0.0, "committee_calls": 0, "train_seconds": 0.0,
               "wall_seconds": 0.0}
    state["sessions"].append(session)
    _write_state(state_path, state)  # every session is on record, also one killed in its first segment
    t_session = time.perf_counter()
    folded = {"seconds": 0.0, "calls": 0}  # counters of force calls replaced after a round
    bar = _bar(total, session["steps_from"], progress)
    pot = None

    def account():
        session.update(end=_now(), steps_to=committed_step(), xtb_calls=labeller.calls,
                       xtb_seconds=labeller.seconds, wall_seconds=time.perf_counter() - t_session,
                       committee_seconds=folded["seconds"] + (pot.seconds_committee if pot else 0.0),
                       committee_calls=folded["calls"] + (pot.steps_evaluated if pot else 0))

    try:
        while True:
            c = committed_step()
            rnd = state["rounds"][-1]
            new = journal.n_labels(max_step=c) - int(rnd["n_labels"])
            if s["retrain"] and (c % seg == 0 or c >= total) and new >= int(s["retrain_every"]):
                t0 = time.perf_counter()
                if bar is not None:
                    bar.set_description_str(f"retraining (round {len(state['rounds'])})")
                current = _retrain(state, state_path, s, journal, c, current, template, test, replay_dbs)
                session["train_seconds"] += time.perf_counter() - t0
                if bar is not None:
                    bar.set_description_str("on-the-fly MD")
                _refresh_labels_db(out, journal, current, template, s)
                continue
            if c >= total:
                break
            end = min(total, (c // seg + 1) * seg)
            if pot is None or pot.committee is not current:
                if pot is not None:
                    folded["seconds"] += pot.seconds_committee
                    folded["calls"] += pot.steps_evaluated
                pot = OnTheFlyPotential(current, numbers, journal, _round_threshold(state), s["check_every"],
                                        len(state["rounds"]) - 1, labeller, bar)
            pot.start(c)
            calls_before = pot.steps_evaluated
            run_md(pot.potential(), replicas_atoms, steps=end, timestep_fs=float(s["timestep_fs"]),
                   temperature_K=float(s["temperature_K"]), thermostat="nose-hoover", tdamp_fs=float(s["tdamp_fs"]),
                   seed=int(s["seed"]), restart=str(md_path), interval=int(s["interval"]),
                   max_force_eV_per_A=float(s["max_force_eV_per_A"]), on_bond_change=s["on_bond_change"],
                   change_settings=True, progress=False, torch_threads=1)
            if pot.steps_evaluated - calls_before != end - c + 1:
                raise RuntimeError(f"internal: {pot.steps_evaluated - calls_before} force calls for steps {c}..{end}")
            account()
            _write_state(state_path, state)
    finally:
        if bar is not None:
            bar.close()
        journal.close()
        account()
        _write_state(state_path, state)

    labels_db = _refresh_labels_db(out, journal, current, template, s)
    from .report import write_report

    report = write_report(out)
    return LearnResult(out=out, steps=committed_step(), n_labels=journal.n_labels(), xtb_calls=labeller.calls,
                       threshold_eV_per_A=_round_threshold(state), models=list(state["rounds"][-1]["models"]),
                       labels_db=labels_db,
                       report=report)


def _round_threshold(state: dict) -> float:
    """The threshold (eV/Angstrom) the current committee is checked against: with ``"auto"``
    the one calibrated for the last finished round's committee (every retrained committee gets
    its own, on the same calibration frames), else the given number."""
    for r in reversed(state["rounds"]):
        if r.get("status") == "done" and r.get("threshold"):
            return float(r["threshold"]["threshold_eV_per_A"])
    return float(state["threshold"]["threshold_eV_per_A"])


def _bar(total: int, initial: int, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="on-the-fly MD", unit="step", dynamic_ncols=True, smoothing=0.1)


# ---------------------------------------------------------------------------------------
# labels database, test errors, retraining
# ---------------------------------------------------------------------------------------
def _convention(committee: Committee) -> tuple[str, dict | None]:
    """The committee's energy unit and atom reference energies (eV, by Z) for its labels."""
    f = committee.models[0].file
    ev = f.energy_unit_eV
    atomrefs = {int(z): float(v) * ev for z, v in f.atomrefs.items()} or None
    return f.energy_unit, atomrefs


def _refresh_labels_db(out: Path, journal: Journal, committee: Committee, template, s: dict) -> Path | None:
    """``out/labels.db`` rewritten from the journal when it holds another number of labels."""
    from .retrain import write_labels_db

    labels = journal.labels()
    db = out / "labels.db"
    if not labels:
        return None
    marker = out / ".labels_db.json"
    if db.is_file() and marker.is_file() and json.loads(marker.read_text()).get("n") == len(labels):
        return db
    unit, atomrefs = _convention(committee)
    write_labels_db(labels, db, energy_unit=unit, atomrefs_eV=atomrefs, numbers=template.numbers,
                    masses=template.get_masses(), name="learn", timestep_fs=float(s["timestep_fs"]),
                    split=len(labels) >= 2)
    marker.write_text(json.dumps({"n": len(labels)}))
    return db


def _load_test_set(s: dict) -> dict:
    from ..train.evaluate import reference_frames

    atoms, e, f = reference_frames(s["test_dbs"], split=s["test_split"], stride=int(s["test_stride"]))
    return {"positions": np.array([a.positions for a in atoms]), "numbers": atoms[0].numbers,
            "energy_kcal": e, "forces_kcal": f}


def _error_stats(pred_e_eV, pred_f_eV, ref_e_kcal, ref_f_kcal) -> dict:
    from ..train.data import energy_conversion

    k = energy_conversion("eV", "kcal/mol")
    de = np.asarray(pred_e_eV) * k - ref_e_kcal
    df = np.asarray(pred_f_eV) * k - ref_f_kcal
    n = len(de)
    fa = np.abs(df).reshape(n, -1).mean(axis=1)
    return {"n_frames": int(n), "energy_mae": float(np.abs(de).mean()),
            "energy_mae_se": float(np.abs(de).std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
            # a constant energy offset moves no atom: the mean error and the MAE without it
            "energy_mean_error": float(de.mean()), "energy_mae_offset_free": float(np.abs(de - de.mean()).mean()),
            "forces_mae": float(fa.mean()),
            "forces_mae_se": float(fa.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
            "units": {"energy": "kcal/mol", "forces": "kcal/mol/Angstrom"}}


def _errors(committee: Committee, test: dict) -> dict:
    pred = committee.evaluate_frames(test["positions"], test["numbers"])
    return {"committee": _error_stats(pred.energy, pred.forces, test["energy_kcal"], test["forces_kcal"]),
            "members": [_error_stats(pred.energies[m], pred.member_forces[m], test["energy_kcal"],
                                     test["forces_kcal"]) for m in range(len(committee))]}


def _label_errors(committee: Committee, labels: list[dict], numbers) -> dict:
    from ..train.data import energy_conversion

    pos, en, fo = Journal.label_arrays(labels)
    k = energy_conversion("eV", "kcal/mol")
    pred = committee.evaluate_frames(pos, numbers)
    return _error_stats(pred.energy, pred.forces, en * k, fo * k)


def _retrain(state: dict, state_path: Path, s: dict, journal: Journal, c: int, current: Committee, template,
             test, replay_dbs) -> Committee:
    """One round: fine-tune every member on all labels up to step ``c`` plus the replay."""
    from ..train.core import read_run
    from .retrain import fine_tune, run_dir_from_model, write_labels_db

    k = len(state["rounds"])
    prev = state["rounds"][-1]
    labels = journal.labels(max_step=c)
    new = labels[int(prev["n_labels"]):]  # (step, replica) order: those after the previous round
    numbers = template.numbers
    rec = {"round": k, "step": int(c), "n_labels": len(labels), "n_new_labels": len(new), "status": "training",
           "started": _now()}
    state["rounds"].append(rec)
    _write_state(state_path, state)
    t0 = time.perf_counter()
    rd = state_path.parent / "rounds" / f"round_{k:03d}"
    shutil.rmtree(rd, ignore_errors=True)
    rd.mkdir(parents=True)
    unit, atomrefs = _convention(current)
    db = write_labels_db(labels, rd / "labels.db", energy_unit=unit, atomrefs_eV=atomrefs, numbers=template.numbers,
                         masses=template.get_masses(), name=f"learn round {k}", timestep_fs=float(s["timestep_fs"]))
    models, runs = [], []
    for i, model_path in enumerate(prev["models"]):
        init = prev["runs"][i] if prev.get("runs") else str(run_dir_from_model(model_path, rd / f"init_{i}"))
        seed = int(read_run(init)["config"].get("seed", 0)) + 1
        run = rd / f"member_{i}"
        pt = rd / f"member_{i}.pt"
        fine_tune(init, replay_dbs, db, run, pt, epochs=int(s["retrain_epochs"]), lr=s["retrain_lr"], seed=seed,
                  stride=int(state["replay_stride"]), num_threads=s["train_threads"],
                  name=f"learn round {k} member {i}")
        models.append(str(pt.resolve()))
        runs.append(str(run.resolve()))
    new_committee = Committee(models, backend=s["backend"])
    rec.update(models=models, runs=runs, train_seconds=time.perf_counter() - t0, finished=_now(),
               new_label_errors={"before": _label_errors(current, new, numbers),
                                 "after": _label_errors(new_committee, new, numbers)} if new else None)
    if s["threshold"] == "auto":
        # fine-tuning changes how far the members spread everywhere (on a CPNX run the spread on
        # the unchanged 300 K calibration frames grew 2.6x in one round), so a threshold fixed in
        # eV/Angstrom would label ever more frames; the new committee is calibrated again on the
        # first calibration's frames: "above threshold" keeps meaning "more spread than on the
        # frames it knows" (docs/learning.md)
        cal = state["threshold"]
        rec["threshold"] = calibrate_threshold(new_committee, cal["databases"], split=cal.get("split", "val"),
                                               quantile=float(cal["quantile"]))
    if test is not None:
        rec["test_errors"] = _errors(new_committee, test)
    rec["status"] = "done"
    _write_state(state_path, state)
    return new_committee
