"""One offline round of active learning: NN MD runs, then GFN2-xTB labels for frames they visited.

    python scripts/active_learning.py MODEL.pt --like data/T300/T300_1.db --out data/AL1/AL1.db \\
        --runs 12 --temperature 300 --time-fs 5000 --every-fs 50 --before-fs 300

:func:`sample_frames` runs ``runs`` NVT trajectories with the model (:func:`pymotor.run_md`, 1 fs
steps, seeds 1000, 1001, ...: not the seeds of ``pymotor stability``, which stays an independent
test). From each run it takes a frame every ``every_fs``; from a run that blew up
(:class:`~pymotor.MDError`) also every 10 fs of the last ``before_fs`` before the failure, where
the model left the region its data covered. :func:`label_round` gives the frames GFN2-xTB
energies and forces (:func:`pymotor.data.label.label_frames`, in the units and with the atom
references of ``like``) and writes them as a database to train on together with the reference:
``pymotor train data/T300/*.db data/AL1/AL1.db --init-from RUN ...``.

The on-the-fly loop (:func:`pymotor.learn.on_the_fly`) does the same while the MD runs, asking
a committee instead of waiting for blow-ups.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["sample_frames", "label_round", "main"]


def sample_frames(model_path: str, runs: int, temperature_K: float, time_fs: float, every_fs: float,
                  before_fs: float, timestep_fs: float = 1.0, seed0: int = 1000, atoms=None):
    """Positions (F, N, 3), velocities (F, N, 3) of the picked frames and the blow-up steps."""
    import pymotor
    from pymotor import models
    from pymotor.trajectory import read_trajectory

    model = pymotor.load_model(models.resolve(model_path), backend="auto")
    if atoms is None:
        atoms = pymotor.data.cpnx()
    steps = int(round(time_fs / timestep_fs))
    interval = max(1, int(round(10.0 / timestep_fs)))
    pos, vel, failed = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(runs):
            path = Path(tmp) / f"run{k}.h5"
            fail = None
            try:
                pymotor.run_md(model, atoms, steps=steps, timestep_fs=timestep_fs,
                               temperature_K=temperature_K, seed=seed0 + k, trajectory=str(path),
                               interval=interval)
            except pymotor.MDError as exc:
                fail = exc.step
                failed.append(exc.step)
            t = read_trajectory(path)
            time = t.time_fs
            pick = np.zeros(len(t), dtype=bool)
            pick[np.round(time / every_fs, 6) % 1 == 0] = True
            if fail is not None:
                pick[time >= fail * timestep_fs - before_fs] = True
            pick[0] = False  # the start geometry itself is no new information
            pos.append(t.positions[pick])
            vel.append(t.velocities[pick])
            print(f"run {k}: {len(t)} frames saved, {int(pick.sum())} picked"
                  + (f", blew up at step {fail}" if fail is not None else ""), flush=True)
    return np.concatenate(pos), np.concatenate(vel), failed


def label_round(model_path: str, like: str, out: str, runs: int = 12, temperature_K: float = 300.0,
                time_fs: float = 5000.0, every_fs: float = 50.0, before_fs: float = 300.0,
                max_energy_above_eV: float = 5.0, seed0: int = 1000, atoms=None) -> dict:
    """Sample frames (:func:`sample_frames`) and label them into the database ``out``; returns
    :func:`~pymotor.data.label.label_frames`' summary with the blow-up steps."""
    from ase import Atoms

    import pymotor
    from pymotor.data.label import label_frames
    from pymotor.units import FS_IN_ASE_TIME

    pos, vel, failed = sample_frames(model_path, runs, temperature_K, time_fs, every_fs, before_fs, seed0=seed0,
                                     atoms=atoms)
    z = (atoms if atoms is not None else pymotor.data.cpnx()).numbers
    frames = []
    for p, v in zip(pos, vel):
        a = Atoms(numbers=z, positions=p)
        a.set_velocities(v / FS_IN_ASE_TIME)
        frames.append(a)
    res = label_frames(frames, out, like, max_energy_above_eV=max_energy_above_eV)
    res["blew_up_at_steps"] = failed
    return res


def main(argv=None, prog: str = "scripts/active_learning.py") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--like", required=True, help="reference database whose units and atom references to use")
    ap.add_argument("--out", required=True, help="database to write (.db)")
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--temperature", type=float, default=300.0, help="K")
    ap.add_argument("--time-fs", type=float, default=5000.0)
    ap.add_argument("--every-fs", type=float, default=50.0)
    ap.add_argument("--before-fs", type=float, default=300.0)
    ap.add_argument("--max-energy-above-eV", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1000, help="seed of the first run")
    args = ap.parse_args(argv)

    res = label_round(args.model, args.like, args.out, runs=args.runs, temperature_K=args.temperature,
                      time_fs=args.time_fs, every_fs=args.every_fs, before_fs=args.before_fs,
                      max_energy_above_eV=args.max_energy_above_eV, seed0=args.seed)
    failed = res.pop("blew_up_at_steps")
    e = res.pop("energy_above_mean_eV")
    summary = dict(res, model=args.model, runs=args.runs, temperature_K=args.temperature, time_fs=args.time_fs,
                   blew_up_at_steps=failed, energy_above_mean_eV={"min": float(e.min()), "max": float(e.max()),
                                                                "mean": float(e.mean())},
                   command=" ".join(["python", prog] + list(sys.argv[1:] if argv is None else argv)))
    Path(args.out).with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
