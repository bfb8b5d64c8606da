"""Interim databases from reference trajectories that are still running.

    python scripts/interim_data.py --data data/T300 --out runs/interim_data

`pymotor.data.generate_reference` writes its databases only when a trajectory is complete. To
start training earlier, this copies each production trajectory ``raw/<name>_<k>.h5`` (a plain
file copy: the running writer is never opened or locked), reads the copy, and writes the frames
saved so far as ``<out>/<name>_<k>.db`` with ``pymotor.data.generate.write_database`` (same
units, atomrefs and layout as the final databases). No split file is written: training splits
these by time. Fine-tune on the final databases later with ``--init-from``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path


def snapshot(data_dir, out_dir, min_frames: int = 500) -> list:
    import pymotor
    from pymotor.data.generate import isolated_atom_energies, write_database

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = json.loads((data_dir / "manifest.json").read_text())["parameters"]
    written = []
    atomrefs = None
    for h5 in sorted((data_dir / "raw").glob("*.h5")):
        if h5.name.endswith(".equil.h5"):
            continue
        name = h5.stem
        traj = None
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(3):  # a copy taken mid-flush may be unreadable: retry
                cp = Path(tmp) / h5.name
                shutil.copyfile(h5, cp)
                try:
                    traj = pymotor.read_trajectory(cp)
                    break
                except Exception as exc:  # noqa: BLE001
                    print(f"{h5}: copy not readable yet ({exc}); retrying", file=sys.stderr)
            if traj is None or len(traj.step) < min_frames:
                print(f"{h5}: {0 if traj is None else len(traj.step)} frames, skipped")
                continue
            if atomrefs is None:
                atomrefs = isolated_atom_energies(traj.atomic_numbers, params.get("backend", "tblite"))
            db = out_dir / f"{name}.db"
            if db.exists():
                db.unlink()
            md = {"interim": True, "source_h5": str(h5), "parameters": params}
            n = write_database(db, traj, params.get("energy_unit", "kcal/mol"), atomrefs, md, name=name)
            print(f"{db}: {n} frames (steps {int(traj.step[0])}..{int(traj.step[-1])})")
            written.append(str(db))
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/interim_data.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/T300")
    ap.add_argument("--out", default="runs/interim_data")
    ap.add_argument("--min-frames", type=int, default=500)
    args = ap.parse_args(argv)
    return 0 if snapshot(args.data, args.out, args.min_frames) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
