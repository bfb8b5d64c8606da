"""Ensembles of MD runs as tasks: N seeds, or N start frames, one resumable H5MD file per run.

:func:`run_ensemble` runs :func:`pymotor.run_md` once per member, each member a task on Dask's
distributed scheduler (:mod:`pymotor.parallel`: a local cluster of one worker process per core
by default, an existing cluster with ``scheduler="tcp://HOST:PORT"`` or a ``distributed.Client``).
Layout of ``out``::

    ensemble.json        parameters, seeds, start frames' hashes and every member's summary
    run_000.h5           member 0 (H5MD with pymotor's restart state)
    run_001.h5           ...

Each member writes only its own file, in segments of ``segment_steps`` steps (``run_md`` with
``restart=`` its file: the first segment starts it, each later one resumes it); so a member
whose worker dies resumes on another worker from its last committed state, a repeated command
continues every member where it stopped, and the frames equal those of one uninterrupted
``run_md(model, atoms, steps, seed=...)`` call bit for bit (the restart is exact). A member that
fails (a blow-up, a potential that raises) does not stop the others: :class:`~pymotor.parallel.TaskError`
names it once they have finished, and ``ensemble.json`` records it.

Command line::

    pymotor ensemble --runs 8 --steps 20000 --out runs/ens                # 8 seeds from CPNX
    pymotor ensemble --xyz starts.xyz --steps 20000 --out runs/ens        # one run per frame
    pymotor ensemble --start-db data/T300/T300.db --frames -1,-2,-3 --out runs/ens
    pymotor ensemble ... --scheduler tcp://HOST:8786                      # on a cluster
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["run_ensemble", "EnsembleResult", "register", "main"]

MANIFEST = "ensemble.json"
_FORMAT = "pymotor.ensemble/1"
#: MD steps per run_md call of a member (between two progress reports)
SEGMENT_STEPS = 1000
#: settings that make two ensembles different simulations (with the seeds and starts)
_PHYSICS = ("timestep_fs", "temperature_K", "thermostat", "tdamp_fs", "chain_length", "interval", "model")


@dataclass
class EnsembleResult:
    """What :func:`run_ensemble` returns: the folder, the members' files and summaries."""

    out: Path
    runs: list[dict]

    @property
    def paths(self) -> list[Path]:
        return [Path(r["path"]) for r in self.runs]

    def trajectories(self, **kwargs) -> list:
        """Read every member's trajectory (``kwargs`` go to :func:`pymotor.read_trajectory`)."""
        from .trajectory import read_trajectory

        return [read_trajectory(p, **kwargs) for p in self.paths]


# ---------------------------------------------------------------------------------------
# the model, as it travels to a worker
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFile:
    """A deployed model by file: loaded on the worker (once per process) with the same backend."""

    path: str
    backend: str = "auto"
    energy_unit: str | None = None
    length_unit: str | None = None


_LOADED: dict = {}


def model_spec(model, backend: str = "auto"):
    """What a task receives for ``model``: a :class:`ModelFile` for a model path, a shipped
    model's name or a loaded NN model (its file, units and backend); any other potential as
    it is (pymotor's analytic potentials, a picklable ASE calculator, or a callable that makes
    the potential on the worker, e.g. ``functools.partial(pymotor.data.make_calculator, "tblite")``)."""
    if isinstance(model, (str, os.PathLike)):
        from . import models

        p = models.resolve(model)
        if not p.is_file():
            raise FileNotFoundError(f"`model`: {str(model)!r} is neither a shipped model "
                                    f"({', '.join(models.available()) or 'none built'}) nor a file")
        return ModelFile(os.path.abspath(p), backend)
    if hasattr(model, "path") and hasattr(model, "potential") and hasattr(model, "energy_unit") \
            and hasattr(model, "length_unit"):  # a loaded deployed model: not picklable, its file is
        return ModelFile(os.path.abspath(model.path), getattr(model, "backend", "torchscript"),
                         model.energy_unit, model.length_unit)
    return model


def materialise(spec):
    """On the worker: the potential for ``run_md`` from a :func:`model_spec`."""
    if isinstance(spec, ModelFile):
        if spec not in _LOADED:
            from . import load_model

            _LOADED[spec] = load_model(spec.path, energy_unit=spec.energy_unit, length_unit=spec.length_unit,
                                       backend=spec.backend)
        return _LOADED[spec]
    if callable(spec) and not hasattr(spec, "potential") and not hasattr(spec, "get_potential_energy"):
        return spec()
    return spec


def model_identity(spec) -> dict:
    """How the manifest records the model (a file by path and sha256)."""
    if isinstance(spec, ModelFile):
        h = hashlib.sha256()
        with open(spec.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return {"path": spec.path, "sha256": h.hexdigest(), "backend": spec.backend}
    kind = getattr(spec, "func", spec)  # a functools.partial: its function
    d = {"kind": getattr(kind, "__qualname__", type(spec).__qualname__) if callable(spec) and
         not hasattr(spec, "potential") and not hasattr(spec, "get_potential_energy") else type(spec).__qualname__}
    if hasattr(spec, "args") and isinstance(spec.args, tuple) and not callable(spec):
        d["args"] = [float(a) for a in spec.args]
    if hasattr(spec, "k_eV_per_A2"):
        d["k_eV_per_A2"] = float(spec.k_eV_per_A2)
    return d


# ---------------------------------------------------------------------------------------
# one member (a task)
# ---------------------------------------------------------------------------------------
@dataclass
class Member:
    """One MD run of an ensemble: everything its task needs."""

    name: str
    path: str | None         # its H5MD file (absolute); None: in memory, not resumable
    atoms: Any               # ase.Atoms (with momenta for a start frame that has velocities)
    seed: int
    steps: int
    model: Any               # a model_spec
    md: dict = field(default_factory=dict)  # further run_md arguments
    segment_steps: int = SEGMENT_STEPS


def _state_step(path: Path) -> int | None:
    """The committed step of a member's file (None: none yet, or unreadable here: run_md says why)."""
    from .trajectory import committed_step

    return committed_step(path)


def run_member(m: Member) -> dict:
    """Run (or resume) one member in segments, reporting progress; returns its summary.
    Raises what run_md raises (MDError for a blow-up, the potential's own exception)."""
    from . import parallel, run_md

    model = materialise(m.model)
    if m.path is None:  # in memory: one call (a lost worker repeats it from the start)
        parallel.report(0, "MD")
        traj = run_md(model, m.atoms, steps=m.steps, seed=m.seed, progress=False, **m.md)
        parallel.report(m.steps, "done")
        return _summary(m, traj.temperature, int(traj.step[-1]), len(traj))
    path = Path(m.path)
    interval = int(m.md.get("interval", 1))
    segment = int(math.ceil(max(1, m.segment_steps) / interval)) * interval
    current = _state_step(path) or 0
    parallel.report(min(current, m.steps), "MD")
    while current < m.steps or not path.exists():
        target = min(m.steps, (current // segment + 1) * segment)
        run_md(model, m.atoms, steps=target, seed=m.seed, restart=str(path), progress=False, **m.md)
        current = target
        parallel.report(current, "MD")
    return summarise(m, path)


def summarise(m: Member, path: Path) -> dict:
    from .trajectory import open_h5, read_state

    st = read_state(path)
    with open_h5(path, "r") as f:
        temperature = f["observables/temperature/value"][()]
    return _summary(m, temperature, int(st["step"]), int(st["n_frames"]))


def _summary(m: Member, temperature, step: int, n_frames: int) -> dict:
    t = np.asarray(temperature, dtype=float)
    return {"name": m.name, "path": m.path, "seed": int(m.seed), "steps": int(step), "n_frames": int(n_frames),
            "mean_temperature_K": float(t.mean()) if len(t) else float("nan"),
            "std_temperature_K": float(t.std()) if len(t) else float("nan")}


# ---------------------------------------------------------------------------------------
# the ensemble
# ---------------------------------------------------------------------------------------
def _starts(atoms, runs, seeds, seed) -> tuple[list, list[int]]:
    from ase import Atoms

    if isinstance(atoms, Atoms):
        if seeds is not None:
            seeds = [int(s) for s in seeds]
            if runs is not None and runs != len(seeds):
                raise ValueError(f"`runs`={runs} but {len(seeds)} `seeds` were given")
        elif runs is None:
            raise ValueError("give `runs` (seeds seed, seed+1, ...) or `seeds` for one start geometry")
        else:
            seeds = [int(seed) + k for k in range(int(runs))]
        return [atoms] * len(seeds), seeds
    if isinstance(atoms, (list, tuple)) and atoms and all(isinstance(a, Atoms) for a in atoms):
        if runs is not None and runs != len(atoms):
            raise ValueError(f"`runs`={runs} but {len(atoms)} start frames were given (one run each)")
        seeds = [int(s) for s in seeds] if seeds is not None else [int(seed) + k for k in range(len(atoms))]
        if len(seeds) != len(atoms):
            raise ValueError(f"{len(seeds)} `seeds` for {len(atoms)} start frames")
        return list(atoms), seeds
    raise TypeError(f"`atoms` must be an ase.Atoms or a non-empty list of ase.Atoms, got {type(atoms).__name__}")


def _start_hash(a) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(a.numbers, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(a.get_positions(), dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(a.get_momenta(), dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def run_ensemble(model, atoms, out, runs: int | None = None, *, seeds: Sequence[int] | None = None,
                 seed: int = 0, steps: int = 5000, timestep_fs: float = 0.5, temperature_K: float = 300.0,
                 thermostat: str | None = "nose-hoover", tdamp_fs: float = 100.0, chain_length: int = 3,
                 interval: int = 1, backend: str = "auto", segment_steps: int = SEGMENT_STEPS,
                 on_bond_change: str = "record", max_force_eV_per_A: float = 50.0,
                 change_settings: bool = False, scheduler=None, workers: int | None = None,
                 progress=True) -> EnsembleResult:
    """Run an ensemble of MD runs, one task and one resumable H5MD file each.

    Parameters
    ----------
    model
        A deployed model's path or a shipped model's name (loaded on each worker with
        ``backend``), a loaded model (re-loaded from its file on the workers), an analytic
        potential (:class:`pymotor.LennardJonesPotential`, ...), a picklable ASE calculator, or a
        callable that returns the potential on the worker (e.g.
        ``functools.partial(pymotor.data.make_calculator, "tblite")`` for GFN2-xTB).
    atoms
        One ``ase.Atoms``: ``runs`` members with seeds ``seed, seed + 1, ...`` (or ``seeds``) for
        the Maxwell-Boltzmann start velocities. A list of ``ase.Atoms``: one member per start
        frame (its momenta where set, else velocities from its seed).
    out
        Folder of the members' files and ``ensemble.json``; on a remote cluster it must be on a
        file system that every worker sees. A repeated call resumes every member; a larger
        ``steps`` extends them. Other seeds or start frames are refused, other MD settings
        unless ``change_settings`` (then each file records the change, as in run_md).
    steps, timestep_fs, temperature_K, thermostat, tdamp_fs, chain_length, interval,
    on_bond_change, max_force_eV_per_A
        As in :func:`pymotor.run_md`; ``steps`` per member.
    segment_steps
        Steps per run_md call of a member: its progress report interval (the restart between
        segments is exact; the file is committed every 100 steps within one).
    scheduler, workers, progress
        Where the members run (:mod:`pymotor.parallel`) and the progress bars.

    Returns
    -------
    :class:`EnsembleResult` (``runs``: per member name, path, seed, steps, frames, mean and
    sd of the temperature). Raises :class:`pymotor.parallel.TaskError` naming the members that
    failed once the others have finished (their files keep the frames before the failure).
    """
    from . import parallel
    from .md import MDSettings

    starts, seeds = _starts(atoms, runs, seeds, seed)
    MDSettings(steps=steps, timestep_fs=timestep_fs, temperature_K=temperature_K, thermostat=thermostat,
               tdamp_fs=tdamp_fs, chain_length=chain_length, interval=interval, on_bond_change=on_bond_change,
               max_force_eV_per_A=max_force_eV_per_A)  # validates before anything is written
    if isinstance(segment_steps, bool) or not isinstance(segment_steps, int) or segment_steps < 1:
        raise ValueError(f"`segment_steps` must be a positive integer, got {segment_steps!r}")
    parallel._kind(scheduler)
    parallel._check_workers(workers)
    spec = model_spec(model, backend)
    out = Path(out)
    width = max(3, len(str(len(starts) - 1)))
    names = [f"run_{k:0{width}d}" for k in range(len(starts))]
    params = {"format": _FORMAT, "model": model_identity(spec), "timestep_fs": float(timestep_fs),
              "temperature_K": float(temperature_K), "thermostat": thermostat or "none",
              "tdamp_fs": float(tdamp_fs), "chain_length": int(chain_length), "interval": int(interval),
              "steps": int(steps), "seeds": seeds, "starts": [_start_hash(a) for a in starts],
              "n_atoms": len(starts[0]), "formula": starts[0].get_chemical_formula()}
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text()).get("parameters", {})
        if old.get("seeds") != params["seeds"] or old.get("starts") != params["starts"]:
            raise ValueError(f"`out`={str(out)!r} holds another ensemble (other seeds or start frames); "
                             "choose another `out` or remove it")
        diff = [k for k in _PHYSICS if old.get(k) != params[k]]
        if diff and not change_settings:
            raise ValueError(f"`out`={str(out)!r} holds an ensemble run with other settings ("
                             + ", ".join(f"{k}: {old.get(k)!r} -> {params[k]!r}" for k in diff)
                             + "); pass change_settings=True (CLI: --change-settings) to continue with the "
                               "new ones, or choose another `out`")
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"parameters": params, "runs": {}}
    manifest_path.write_text(json.dumps(manifest, indent=1))

    md = dict(timestep_fs=timestep_fs, temperature_K=temperature_K, thermostat=thermostat, tdamp_fs=tdamp_fs,
              chain_length=chain_length, interval=interval, on_bond_change=on_bond_change,
              max_force_eV_per_A=max_force_eV_per_A, change_settings=change_settings)
    members = [Member(name=n, path=os.path.abspath(out / f"{n}.h5"), atoms=a, seed=s, steps=int(steps),
                      model=spec, md=md, segment_steps=int(segment_steps))
               for n, a, s in zip(names, starts, seeds)]
    tasks = [parallel.Task(m.name, run_member, (m,), steps=m.steps) for m in members]
    try:
        done = parallel.run_tasks(tasks, scheduler=scheduler, workers=workers, progress=progress,
                                  desc=f"MD ensemble {out.name}", what="ensemble members")
    except parallel.TaskError as exc:
        manifest["runs"] = {n: exc.results[n] if n in exc.results else
                            {"name": n, "error": parallel.error_line(exc.errors[n])} for n in names}
        manifest_path.write_text(json.dumps(manifest, indent=1))
        raise
    manifest["runs"] = done
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return EnsembleResult(out=out, runs=[done[n] for n in names])


# ---------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"`--frames` must be comma-separated integers, got {text!r}") from None


def register(subparsers) -> None:
    from .backends import REGISTRY

    from . import parallel

    p = subparsers.add_parser(
        "ensemble", help="an ensemble of MD runs (N seeds or N start frames) as parallel tasks",
        description="Run pymotor.run_md once per seed or start frame, each run a task on Dask "
                    "(a local cluster by default, or --scheduler tcp://HOST:PORT) writing its own "
                    "resumable H5MD file in --out. Repeating the command resumes every run.")
    from . import models

    p.add_argument("--model", default=models.DEFAULT, help="deployed model file or shipped model name "
                                                            f"(default {models.DEFAULT})")
    p.add_argument("--backend", default="auto", choices=["auto", *sorted(REGISTRY)],
                   help="model evaluator (as pymotor md)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--xyz", help="start geometry; several frames: one run per frame (velocities drawn)")
    src.add_argument("--start-db", help="start frames (with velocities) from a reference database's split")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="with --start-db")
    p.add_argument("--frames", default="-1", help="with --start-db: comma-separated indices into the split "
                                                  "(default -1: the last frame)")
    p.add_argument("--runs", type=int, default=None,
                   help="number of runs from one start geometry (seeds --seed, --seed+1, ...)")
    p.add_argument("--seed", type=int, default=0, help="seed of run 0 (run k: seed + k)")
    p.add_argument("--steps", type=int, default=5000, help="MD steps per run")
    p.add_argument("--timestep-fs", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--thermostat", default="nose-hoover", choices=["nose-hoover", "none"])
    p.add_argument("--tdamp-fs", type=float, default=100.0)
    p.add_argument("--interval", type=int, default=1, help="save a frame every N steps")
    p.add_argument("--segment-steps", type=int, default=SEGMENT_STEPS,
                   help=f"steps per progress report of a run (default {SEGMENT_STEPS})")
    p.add_argument("--on-bond-change", default="record", choices=["record", "stop", "ignore"])
    p.add_argument("--change-settings", action="store_true",
                   help="continue the runs in --out with other MD settings (recorded in the files)")
    p.add_argument("--out", default="runs/ensemble", help="output folder (run_000.h5, ..., ensemble.json)")
    parallel.add_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_ensemble)


def _ensemble(args) -> int:
    from . import data, parallel

    if args.start_db:
        from .workflows import start_from_dataset

        atoms = [start_from_dataset(args.start_db, split=args.split, index=i) for i in _int_list(args.frames)]
    elif args.xyz:
        from .data.inputs import atoms_from_xyz

        frames = atoms_from_xyz(args.xyz, all_frames=True)
        atoms = frames[0] if len(frames) == 1 else frames
    else:
        atoms = data.cpnx()
    if isinstance(atoms, list) and len(atoms) == 1 and args.runs is not None:
        atoms = atoms[0]
    res = run_ensemble(args.model, atoms, args.out, runs=args.runs, seed=args.seed, steps=args.steps,
                       timestep_fs=args.timestep_fs, temperature_K=args.temperature,
                       thermostat=None if args.thermostat == "none" else args.thermostat, tdamp_fs=args.tdamp_fs,
                       interval=args.interval, backend=args.backend, segment_steps=args.segment_steps,
                       on_bond_change=args.on_bond_change, change_settings=args.change_settings,
                       progress=not args.no_progress, **parallel.options(args))
    for r in res.runs:
        print(f"{r['name']}: seed {r['seed']}, {r['steps']} steps, {r['n_frames']} frames, "
              f"T = {r['mean_temperature_K']:.1f} +- {r['std_temperature_K']:.1f} K")
    print(f"wrote {len(res.runs)} runs and {res.out / MANIFEST}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import subsystem_main

    return subsystem_main("python -m pymotor.ensemble", register, argv)


if __name__ == "__main__":
    sys.exit(main())
