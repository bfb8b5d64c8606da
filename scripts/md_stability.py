"""How often NN MD of CPNX blows up: NVT runs from the GFN2-xTB minimum with seeded 300 K velocities.

    python scripts/md_stability.py MODEL.pt|cpnx-schnet [...] --runs 12 --timestep-fs 1.0 --time-fs 5000 \
        [--temperature 300]

A model with unphysical low-energy regions ("holes", e.g. a C-H distance collapsing) that
the 300 K training data never sampled drives the molecule into them; `run_md` stops such a
run with MDError (a force component above 50 eV/Å) naming the step. Counts the runs that
blew up within `--time-fs` and the steps at which they did. Uses the fast SchNet backend
(the same weights; about 1 ms per step).
"""

from __future__ import annotations

import argparse
import sys


def blow_up_steps(model_path: str, runs: int, timestep_fs: float, time_fs: float, temperature_K: float = 300.0):
    import pymotor
    from pymotor import models

    model = pymotor.load_model(models.resolve(model_path), backend="auto")
    steps = int(round(time_fs / timestep_fs))
    failed = []
    for k in range(runs):
        try:
            pymotor.run_md(model, pymotor.data.cpnx(), steps=steps, timestep_fs=timestep_fs,
                           temperature_K=temperature_K, seed=100 + k)
        except pymotor.MDError as exc:
            failed.append(exc.step)
    return sorted(failed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--timestep-fs", type=float, default=1.0)
    ap.add_argument("--time-fs", type=float, default=5000.0)
    ap.add_argument("--temperature", type=float, default=300.0, help="K")
    args = ap.parse_args(argv)
    print(f"| model | blew up within {args.time_fs:g} fs ({args.timestep_fs:g} fs steps, {args.temperature:g} K) "
          "| at steps |")
    print("|---|---|---|")
    for m in args.models:
        f = blow_up_steps(m, args.runs, args.timestep_fs, args.time_fs, args.temperature)
        print(f"| `{m}` | {len(f)}/{args.runs} | {', '.join(map(str, f)) or '—'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
