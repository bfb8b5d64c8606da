"""How often NN MD of a molecule blows up: seeded NVT runs from one geometry, as parallel tasks.

    pymotor stability MODEL.pt|cpnx-schnet [...] --runs 12 --timestep-fs 1.0 --time-fs 5000 \\
        [--temperature 300] [--out runs/stability] [--scheduler ...] [--workers N]

A model with unphysical low-energy regions ("holes", e.g. a C-H distance collapsing) that
the 300 K training data never sampled drives the molecule into them; :func:`pymotor.run_md`
stops such a run with :class:`~pymotor.MDError` (a force component above 50 eV/Å, or a
non-finite value) naming the step. :func:`stability` runs ``runs`` NVT runs from the GFN2-xTB
minimum of CPNX (or ``atoms``) with start velocities from seeds ``seed, seed + 1, ...``
(default 100, ...) and counts the runs that blew up within ``time_fs`` and the steps at which
they did. Each run is a task of :mod:`pymotor.parallel` (an ensemble member of
:mod:`pymotor.ensemble`); with ``out`` each writes its own resumable H5MD file there, without it
the runs are kept in memory (a run whose worker dies is repeated from its start). The result
is the same wherever the runs go: the same seeds give the same steps.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["stability", "blow_up_steps", "StabilityResult", "register", "main"]


@dataclass
class StabilityResult:
    model: str
    runs: list[dict]          # per run: name, seed, blew_up, step (of the blow-up), reason, steps run
    time_fs: float
    timestep_fs: float
    temperature_K: float

    @property
    def failed_steps(self) -> list[int]:
        """The steps at which runs blew up, sorted (one per blown-up run)."""
        return sorted(int(r["step"]) if r["step"] is not None else -1 for r in self.runs if r["blew_up"])

    @property
    def n_blew_up(self) -> int:
        return sum(bool(r["blew_up"]) for r in self.runs)


def stability_run(member) -> dict:
    """One run (a task): its summary, with ``blew_up`` and the failing ``step`` for an MDError."""
    from .ensemble import run_member
    from .md import MDError

    try:
        summary = run_member(member)
        summary.update(blew_up=False, step=None, reason="")
    except MDError as exc:
        summary = {"name": member.name, "path": member.path, "seed": int(member.seed), "blew_up": True,
                   "step": exc.step, "reason": exc.reason}
    return summary


def stability(model, runs: int = 12, *, timestep_fs: float = 1.0, time_fs: float = 5000.0,
              temperature_K: float = 300.0, seed: int = 100, atoms=None, out=None, backend: str = "auto",
              interval: int = 1, max_force_eV_per_A: float = 50.0, on_bond_change: str = "record",
              scheduler=None, workers: int | None = None, progress=False) -> StabilityResult:
    """``runs`` seeded NVT runs of ``time_fs`` from ``atoms`` (default: CPNX's GFN2-xTB minimum).

    ``model``: a deployed model's path or a shipped model's name (evaluated with ``backend``,
    default the fastest that supports it) or any potential :func:`pymotor.ensemble.run_ensemble`
    accepts. ``out``: a folder for the runs' resumable H5MD files (``run_000.h5``, ...); None
    keeps them in memory. ``max_force_eV_per_A``, ``on_bond_change``: the blow-up criterion and
    the connectivity guard of :func:`pymotor.run_md`. ``scheduler``, ``workers``: where the runs
    go (:mod:`pymotor.parallel`).
    Other failures than a blow-up (a potential that raises) end with
    :class:`pymotor.parallel.TaskError` naming the run, after the others have finished.
    """
    import os

    from . import parallel
    from .ensemble import Member, model_spec

    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"`runs` must be a positive integer, got {runs!r}")
    if not timestep_fs > 0 or not time_fs > 0:
        raise ValueError(f"`timestep_fs` and `time_fs` must be positive, got {timestep_fs!r}, {time_fs!r}")
    parallel._kind(scheduler)
    parallel._check_workers(workers)
    if atoms is None:
        from .data import cpnx

        atoms = cpnx()
    steps = int(round(time_fs / timestep_fs))
    spec = model_spec(model, backend)
    md = dict(timestep_fs=float(timestep_fs), temperature_K=float(temperature_K), interval=int(interval),
              max_force_eV_per_A=float(max_force_eV_per_A), on_bond_change=on_bond_change)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    members = [Member(name=f"run_{k:03d}", path=os.path.abspath(Path(out) / f"run_{k:03d}.h5") if out else None,
                      atoms=atoms, seed=int(seed) + k, steps=steps, model=spec, md=md) for k in range(runs)]
    done = parallel.run_tasks([parallel.Task(m.name, stability_run, (m,), steps=steps) for m in members],
                              scheduler=scheduler, workers=workers, progress=progress,
                              desc=f"stability {Path(str(model)).stem if isinstance(model, (str, os.PathLike)) else ''}"
                                   .strip(), what="runs")
    return StabilityResult(model=str(model), runs=list(done.values()), time_fs=float(time_fs),
                           timestep_fs=float(timestep_fs), temperature_K=float(temperature_K))


def blow_up_steps(model_path, runs: int, timestep_fs: float, time_fs: float, temperature_K: float = 300.0,
                  **kwargs) -> list[int]:
    """The sorted steps at which ``runs`` seeded runs blew up (``scripts/md_stability.py``'s
    function; ``kwargs`` go to :func:`stability`)."""
    return stability(model_path, runs, timestep_fs=timestep_fs, time_fs=time_fs, temperature_K=temperature_K,
                     **kwargs).failed_steps


# ---------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------
def register(subparsers) -> None:
    from .backends import REGISTRY

    from . import parallel

    p = subparsers.add_parser(
        "stability", help="how often NN MD blows up: seeded NVT runs from the GFN2-xTB minimum, in parallel",
        description=__doc__.split("\n\n")[0] + ". Prints a markdown table: runs that blew up and at which steps.")
    p.add_argument("models", nargs="+", help="deployed model files or shipped model names")
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--timestep-fs", type=float, default=1.0)
    p.add_argument("--time-fs", type=float, default=5000.0)
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--seed", type=int, default=100, help="seed of the first run (run k: seed + k)")
    p.add_argument("--xyz", default=None, help="start geometry (default: CPNX's GFN2-xTB minimum)")
    p.add_argument("--backend", default="auto", choices=["auto", *sorted(REGISTRY)])
    p.add_argument("--out", default=None,
                   help="folder for the runs' resumable H5MD files (one subfolder per model); default: in memory")
    parallel.add_arguments(p)
    p.add_argument("--progress", action="store_true", help="progress bars (on stderr)")
    p.set_defaults(func=_stability)


def _stability(args) -> int:
    from . import parallel

    atoms = None
    if args.xyz:
        from .data.inputs import atoms_from_xyz

        atoms = atoms_from_xyz(args.xyz)
    print(f"| model | blew up within {args.time_fs:g} fs ({args.timestep_fs:g} fs steps, {args.temperature:g} K) "
          "| at steps |")
    print("|---|---|---|")
    for m in args.models:
        out = Path(args.out) / Path(m).stem if args.out else None
        res = stability(m, args.runs, timestep_fs=args.timestep_fs, time_fs=args.time_fs,
                        temperature_K=args.temperature, seed=args.seed, atoms=atoms, out=out, backend=args.backend,
                        progress=args.progress, **parallel.options(args))
        f = res.failed_steps
        print(f"| `{m}` | {len(f)}/{args.runs} | {', '.join(map(str, f)) or '—'} |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import subsystem_main

    return subsystem_main("python -m pymotor.stability", register, argv)


if __name__ == "__main__":
    sys.exit(main())
