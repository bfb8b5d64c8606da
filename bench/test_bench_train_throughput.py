"""Training throughput (frames per second) of one PaiNN, three ways, side by side in one run:

1. ``spktrain``: SchNetPack 2.2's own CLI, with the experiment config
   ``bench/train_throughput_spktrain.yaml`` (copied to ``<tmp>/configs/experiment/``);
2. ``pymotor train --model painn --prior none --compile off`` (eager SchNetPack training);
3. the same with ``--compile on`` (a traced, ``torch.compile``-d energy+force graph).

**Same work.** The same SchNetPack PaiNN (128 features, 3 interactions, 20 Gaussian RBF, cosine
cutoff 5 Angstrom, ``Atomwise`` energy + ``Forces``; 589,057 parameters in all three), the same
loss (MSE, weights 0.01 energy / 0.99 forces), AdamW lr 1e-3 with ReduceLROnPlateau, EMA 0.995,
batch size 16 (validation batches of 64, pymotor's ``val_batch_size``), the same transforms
(``SubtractCenterOfMass``, ``RemoveOffsets`` with the database's atomrefs and the training mean,
``VesinNeighborList(5.0)``, ``CastTo32``), the same training and validation frames: pymotor's split by
time (first 64% train, next 16% validation, last 20% test) is written as SchNetPack's split file
for ``spktrain`` and checked against the split pymotor records in its run directory.

**Data.** Every ``STRIDE``-th frame (``N_FRAMES`` of them) of ``data/T300/T300_1.db`` (GFN2-xTB
MD of the 48-atom CPNX motor at 300 K; kcal/mol, kcal/mol/Angstrom), written as a new SchNetPack
``ASEAtomsData`` database with the same units and atomrefs into pytest's ``tmp_path``. Without that
database the test is skipped (``pymotor generate`` makes it; see ``_SOURCE_HINT``).

**One thread.** Every run is a child process with ``OMP_NUM_THREADS=1`` (torch's intra-op pool
follows it; ``pymotor train --threads 1``), no data-loader workers (``num_workers: 0`` in the
spktrain config; pymotor loads in the main process), no GPU. The test checks it: the child's CPU
time per steady epoch is at most ~its wall time.

**Measurement.** Each method trains ``EPOCHS`` epochs in a fresh directory. Both codes save
Lightning's ``checkpoints/last.ckpt`` at the end of every epoch (after its validation pass); the
test polls that file's modification time, and the child's CPU time (``/proc/<pid>/stat``), every
50 ms. A steady-state epoch is ``(t[E] - t[1]) / (E - 1)`` over the epoch ends 1..E: it leaves out
start-up, SchNetPack's statistics pass, and the compilation (in the first epoch of the compiled
run: the training graph and the validation-batch graph, ~1-3 min, shorter with a warm Inductor
cache in /tmp/torchinductor_<user>), and includes the validation pass and the checkpoint of each
epoch. Frames/s = training frames / seconds per steady epoch. Timer: the
child's CPU time by default (robust on a shared machine, as the other benchmarks here), wall time
with ``PYMOTOR_BENCH_TIMER=wall``; both are printed and saved.

**Results.** A table on stdout and ``bench/results/train_throughput.json`` (settings, versions,
load averages, per-epoch times, s/epoch, frames/s, ratios to spktrain).

**Why not plain ``spktrain``.** The venv installs schnetpack with ``--no-deps`` (see Makefile), so
``petname`` (a schnetpack dependency used only by its ``${petname:}`` run-name resolver) may be
missing and ``spktrain`` dies on import; the test then runs the same entry point,
``schnetpack.cli.train()``, with a stand-in ``petname`` module. And ``spktrain`` 2.2.0 reloads its
best checkpoint for the test pass after training with ``torch.load``'s default ``weights_only=True``
(torch >= 2.6), which fails on a pickled model: ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` lets it
finish (it runs after the timed epochs either way).

Run (17 minutes on the shared 2-core development machine, ~20 on a quiet one; ``-m slow`` because pyproject's addopts
deselect slow tests; it uses no ``benchmark`` fixture, so it is not part of ``--benchmark-only``
runs)::

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest bench/test_bench_train_throughput.py -m slow -s

Sizes: ``PYMOTOR_BENCH_TRAIN_FRAMES`` (default 1200 frames: 768 train, 192 validation, 240 test)
and ``PYMOTOR_BENCH_TRAIN_EPOCHS`` (default 4, at least 2).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("schnetpack")

pytestmark = [pytest.mark.slow, pytest.mark.schnetpack]

REPO = Path(__file__).resolve().parents[1]
SOURCE_DB = REPO / "data" / "T300" / "T300_1.db"
_SOURCE_HINT = ("pymotor generate --out data/T300 --temperature 300 --steps 20000 --trajectories 2 "
                "--equilibrate-fs 2000")
SPK_CONFIG = Path(__file__).resolve().parent / "train_throughput_spktrain.yaml"
RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"

STRIDE = 10                                                    # every 10th frame of the source
N_FRAMES = int(os.environ.get("PYMOTOR_BENCH_TRAIN_FRAMES", "1200"))
EPOCHS = int(os.environ.get("PYMOTOR_BENCH_TRAIN_EPOCHS", "4"))
BATCH_SIZE = 16
TIMER = os.environ.get("PYMOTOR_BENCH_TIMER", "cpu")          # "cpu" (default) or "wall"
POLL_S = 0.05
SAME_SAVE_S = 2.0   # mtime changes closer than this are one checkpoint write (epochs take far longer)
TAIL = 4000         # characters of a failed child's log in the assertion message

# stands in for `petname` if it is missing, then runs spktrain's entry point (.venv/bin/spktrain
# is `import schnetpack.cli as cli; cli.train()`)
_SPKTRAIN = """\
import sys, types
try:
    import petname  # noqa: F401
except ImportError:  # only the ${petname:} run-name resolver uses it
    sys.modules["petname"] = types.SimpleNamespace(generate=lambda *a, **k: "bench")
import schnetpack.cli as cli
sys.argv[0] = "spktrain"
cli.train()
"""


def _make_db(src: Path, dst: Path, n: int, stride: int) -> None:
    """Every `stride`-th frame of `src` (n frames) as a new ASEAtomsData database, energy and
    forces only, with the source's units and atomrefs."""
    import ase.db
    from schnetpack.data import ASEAtomsData

    conn = ase.db.connect(str(src))
    md = conn.metadata
    units = {k: md["_property_unit_dict"][k] for k in ("energy", "forces")}
    atomrefs = {"energy": list(md["atomrefs"]["energy"])} if "energy" in md.get("atomrefs", {}) else None
    have = conn.count()
    if (n - 1) * stride + 1 > have:
        pytest.skip(f"{src} has {have} frames; {n} frames at stride {stride} need {(n - 1) * stride + 1}")
    atoms, props = [], []
    for i in range(n):
        row = conn.get(id=stride * i + 1)
        atoms.append(row.toatoms())
        props.append({"energy": np.asarray(row.data["energy"], dtype=np.float64).reshape(1),
                      "forces": np.asarray(row.data["forces"], dtype=np.float64).reshape(-1, 3)})
    out = ASEAtomsData.create(str(dst), distance_unit=md["_distance_unit"], property_unit_dict=units,
                              atomrefs=atomrefs)
    out.add_systems(props, atoms)
    if "pymotor" in md:  # provenance (pymotor's reader ignores it)
        c = ase.db.connect(str(dst))
        c.metadata = dict(c.metadata, pymotor={"source": str(src), "stride": stride, "n_frames": n,
                                               "source_format": md["pymotor"].get("format")})


@pytest.fixture(scope="module")
def train_db(tmp_path_factory):
    if not SOURCE_DB.is_file():
        pytest.skip(f"{SOURCE_DB} is missing; make it with `{_SOURCE_HINT}` (docs/training.md)")
    from pymotor.splits import make_split

    folder = tmp_path_factory.mktemp("train_throughput")
    db = folder / "T300_1_every10.db"
    _make_db(SOURCE_DB, db, N_FRAMES, STRIDE)
    # pymotor's split by time (pymotor.train.data.time_split), as SchNetPack's split file; not
    # named <stem>_split.npz, so pymotor finds no split file and splits by time itself
    split = make_split(N_FRAMES, "time", test_fraction=0.2, val_fraction=0.2)
    spk_split = folder / "spktrain_split.npz"
    np.savez(spk_split, train_idx=split["train"], val_idx=split["val"], test_idx=split["test"])
    return {"db": db, "folder": folder, "split": split, "spk_split": spk_split}


def _proc_cpu_s(pid: int):
    """User + system CPU seconds of process `pid` (all its threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_timed(cmd, cwd: Path, ckpt: Path, log: Path, env: dict) -> dict:
    """Run `cmd`; the times (wall, and the child's CPU) at which each epoch's last.ckpt was written."""
    events = []  # [mtime (s since epoch), child cpu s at detection]
    last_mtime = None
    load0 = os.getloadavg()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=out, stderr=subprocess.STDOUT)
        while True:
            done = proc.poll() is not None
            cpu = _proc_cpu_s(proc.pid) if not done else None
            try:
                m = ckpt.stat().st_mtime_ns
            except FileNotFoundError:
                m = None
            if m is not None and m != last_mtime:
                last_mtime = m
                ts = m / 1e9
                if events and ts - events[-1][0] < SAME_SAVE_S:
                    events[-1] = [ts, cpu if cpu is not None else events[-1][1]]  # the same save, later
                else:
                    events.append([ts, cpu])
            if done:
                break
            time.sleep(POLL_S)
    wall = time.time() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"rc": proc.returncode, "wall_total_s": wall,
            "cpu_total_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
            "epoch_end_wall_s": [e[0] - t0 for e in events],
            "epoch_end_cpu_s": [e[1] for e in events],
            "loadavg_before": list(load0), "loadavg_after": list(os.getloadavg()),
            "log": log.read_text(errors="replace")}


def _steady(res: dict, key: str):
    t = res[key]
    if len(t) < 2 or any(x is None for x in t):
        return None, []
    per = [b - a for a, b in zip(t[:-1], t[1:])]
    return (t[-1] - t[0]) / (len(t) - 1), per


def _csv_val_losses(path: Path) -> list:
    import csv

    with open(path) as f:
        return [float(r["val_loss"]) for r in csv.DictReader(f) if r.get("val_loss") not in (None, "")]


def _child_env(**extra) -> dict:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}, **extra)
    return env


def _versions() -> dict:
    import pytorch_lightning
    import schnetpack
    import torch

    import pymotor

    return {"python": platform.python_version(), "torch": torch.__version__,
            "schnetpack": getattr(schnetpack, "__version__", "?"),
            "pytorch_lightning": pytorch_lightning.__version__,
            "pymotor": getattr(pymotor, "__version__", "?")}


def test_train_throughput(train_db):
    assert EPOCHS >= 2, "PYMOTOR_BENCH_TRAIN_EPOCHS must be >= 2 (the first epoch is not steady)"
    assert TIMER in ("cpu", "wall"), f"PYMOTOR_BENCH_TIMER must be 'cpu' or 'wall', got {TIMER!r}"
    folder: Path = train_db["folder"]
    db: Path = train_db["db"]
    n_train, n_val = len(train_db["split"]["train"]), len(train_db["split"]["val"])
    n_test = len(train_db["split"]["test"])

    # ---- the three runs ------------------------------------------------------------------
    cfg_dir = folder / "configs"
    (cfg_dir / "experiment").mkdir(parents=True)
    shutil.copy(SPK_CONFIG, cfg_dir / "experiment" / "train_throughput.yaml")
    spk_dir = folder / "spktrain" / "run"
    spk_cmd = [sys.executable, "-c", _SPKTRAIN, f"--config-dir={cfg_dir}", "experiment=train_throughput",
               f"run.path={spk_dir.parent}", f"run.id={spk_dir.name}", f"data.datapath={db}",
               f"data.split_file={train_db['spk_split']}", f"data.num_train={n_train}",
               f"data.num_val={n_val}", f"trainer.max_epochs={EPOCHS}"]
    pymotor_bin = str(Path(sys.executable).parent / "pymotor")

    def pymotor_cmd(out: Path, compile_: str):
        return [pymotor_bin, "train", str(db), "--model", "painn", "--prior", "none", "--energy-unit", "kcal/mol",
                "--batch-size", str(BATCH_SIZE), "--threads", "1", "--compile", compile_, "--out", str(out),
                "--epochs", str(EPOCHS), "--no-progress"]

    methods = [
        # key, label, command, cwd, run directory, env
        ("spktrain", "spktrain (SchNetPack 2.2 CLI)", spk_cmd, folder, spk_dir,
         _child_env(PWD=str(folder), TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")),
        ("pymotor_eager", "pymotor train --compile off", pymotor_cmd(folder / "pymotor_eager", "off"), folder,
         folder / "pymotor_eager", _child_env(PWD=str(folder))),
        ("pymotor_compiled", "pymotor train --compile on", pymotor_cmd(folder / "pymotor_compiled", "on"), folder,
         folder / "pymotor_compiled", _child_env(PWD=str(folder))),
    ]
    runs = {}
    for key, label, cmd, cwd, run_dir, env in methods:
        res = _run_timed(cmd, cwd, run_dir / "checkpoints" / "last.ckpt", folder / f"{key}.log", env)
        log = res.pop("log")
        assert res["rc"] == 0, f"{label} failed (exit {res['rc']}); its log ends:\n{log[-TAIL:]}"
        res.update(key=key, label=label, command=cmd, run_dir=str(run_dir))
        runs[key] = res
        print(f"\n{label}: exit 0, {res['wall_total_s']:.1f} s wall, epoch ends (wall s): "
              + ", ".join(f"{t:.1f}" for t in res["epoch_end_wall_s"]), flush=True)

    # ---- what each run did: epochs, finite losses, the same frames, compiled or not -----------
    spk_losses = _csv_val_losses(next((spk_dir / "csv").rglob("metrics.csv")))
    runs["spktrain"]["val_losses"] = spk_losses
    for key, compiled in (("pymotor_eager", False), ("pymotor_compiled", True)):
        run_dir = Path(runs[key]["run_dir"])
        rj = json.loads((run_dir / "run.json").read_text())
        sess = rj["sessions"][-1]
        assert sess["compiled"] is compiled, f"{key}: run.json says compiled={sess['compiled']}"
        assert rj["epoch"] == EPOCHS and sess["stop_reason"] == "max_epochs", (key, rj["epoch"], sess)
        s = np.load(run_dir / "splits" / f"0_{db.stem}.npz")
        for part in ("train", "val", "test"):
            assert np.array_equal(s[f"{part}_idx"], train_db["split"][part]), f"{key}: {part} split differs"
        runs[key]["val_losses"] = _csv_val_losses(run_dir / "logs" / "session_0" / "metrics.csv")
    spk_cfg = (spk_dir / "config.yaml").read_text()
    assert "batch_size: 16" in spk_cfg and "n_atom_basis: 128" in spk_cfg and "PaiNN" in spk_cfg

    rows = []
    for key, r in runs.items():
        assert len(r["val_losses"]) == EPOCHS and all(math.isfinite(v) for v in r["val_losses"]), (
            f"{r['label']}: validation losses {r['val_losses']} (expected {EPOCHS} finite values)")
        assert len(r["epoch_end_wall_s"]) == EPOCHS, (
            f"{r['label']}: saw {len(r['epoch_end_wall_s'])} checkpoint writes, expected {EPOCHS}")
        wall, wall_per = _steady(r, "epoch_end_wall_s")
        cpu, cpu_per = _steady(r, "epoch_end_cpu_s")
        assert wall is not None and cpu is not None and wall > 0 and cpu > 0, (r["label"], wall, cpu)
        assert math.isfinite(wall) and math.isfinite(cpu)
        # one thread: a steady epoch cannot use more CPU time than wall time (polling slack 10%)
        assert cpu <= 1.10 * wall + 0.5, f"{r['label']}: {cpu:.1f} s CPU per {wall:.1f} s wall epoch: >1 thread?"
        r.update(s_per_epoch_wall=wall, s_per_epoch_cpu=cpu, epoch_wall_s=wall_per, epoch_cpu_s=cpu_per,
                 first_epoch_end_wall_s=r["epoch_end_wall_s"][0],
                 frames_per_s_wall=n_train / wall, frames_per_s_cpu=n_train / cpu,
                 train_frames=n_train, val_frames=n_val)
        rows.append(r)
    base = runs["spktrain"]
    for r in rows:
        r["ratio_to_spktrain_wall"] = r["frames_per_s_wall"] / base["frames_per_s_wall"]
        r["ratio_to_spktrain_cpu"] = r["frames_per_s_cpu"] / base["frames_per_s_cpu"]

    # ---- report ---------------------------------------------------------------------------
    lines = [f"training throughput, PaiNN 128/3/20/5 A, batch {BATCH_SIZE}, 1 thread; {N_FRAMES} frames "
             f"(every {STRIDE}th of {SOURCE_DB.name}): {n_train} train / {n_val} val / {n_test} test; "
             f"{EPOCHS} epochs, steady epoch = (t[{EPOCHS}] - t[1]) / {EPOCHS - 1}; timer for the ratio "
             f"and the assert: {TIMER}",
             f"{'method':32s} {'train':>6s} {'val':>5s} {'s/epoch':>9s} {'frames/s':>9s} {'ratio':>6s}   "
             f"{'s/epoch':>9s} {'frames/s':>9s} {'ratio':>6s}   {'1st epoch':>9s}",
             f"{'':32s} {'':6s} {'':5s} {'(cpu)':>9s} {'(cpu)':>9s} {'(cpu)':>6s}   {'(wall)':>9s} {'(wall)':>9s} "
             f"{'(wall)':>6s}   {'ends (s)':>9s}"]
    for r in rows:
        lines.append(f"{r['label']:32s} {r['train_frames']:6d} {r['val_frames']:5d} {r['s_per_epoch_cpu']:9.1f} "
                     f"{r['frames_per_s_cpu']:9.2f} {r['ratio_to_spktrain_cpu']:6.2f}   "
                     f"{r['s_per_epoch_wall']:9.1f} {r['frames_per_s_wall']:9.2f} {r['ratio_to_spktrain_wall']:6.2f}"
                     f"   {r['first_epoch_end_wall_s']:9.1f}")
    lines.append("load average (1 min) before/after each run: " + "; ".join(
        f"{r['key']} {r['loadavg_before'][0]:.2f}/{r['loadavg_after'][0]:.2f}" for r in rows)
        + f" on {os.cpu_count()} CPUs")
    table = "\n".join(lines)
    print("\n" + table, flush=True)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "train_throughput",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "versions": _versions(),
        "settings": {"source_db": str(SOURCE_DB), "stride": STRIDE, "frames": N_FRAMES, "train_frames": n_train,
                     "val_frames": n_val, "test_frames": n_test, "batch_size": BATCH_SIZE, "val_batch_size": 64,
                     "epochs": EPOCHS, "threads": 1, "timer": TIMER,
                     "model": "SchNetPack PaiNN n_atom_basis=128 n_interactions=3 n_rbf=20 (Gaussian) cosine "
                              "cutoff 5.0 A; Atomwise energy + Forces; MSE 0.01/0.99; AdamW lr 1e-3",
                     "steady_epoch": "(t[E] - t[1]) / (E - 1) over the end times of epochs 1..E (last.ckpt "
                                     "writes); an epoch includes its validation pass and checkpoint",
                     "frames_per_s": "training frames / seconds per steady epoch",
                     "spktrain_config": SPK_CONFIG.name},
        "runs": {r["key"]: {k: v for k, v in r.items()} for r in rows},
        "table": table,
    }, indent=1))

    fast, slow = runs["pymotor_compiled"], runs["spktrain"]
    assert fast[f"frames_per_s_{TIMER}"] > slow[f"frames_per_s_{TIMER}"], (
        f"pymotor train --compile on is not faster than spktrain: {fast[f'frames_per_s_{TIMER}']:.2f} vs "
        f"{slow[f'frames_per_s_{TIMER}']:.2f} frames/s ({TIMER} time)\n{table}")
