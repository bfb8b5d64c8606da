"""Work as tasks on Dask's distributed scheduler (pymotor.parallel), on real clusters on loopback.

* a LocalCluster of 2 worker processes (one thread each), started by the module's fixture;
* a scheduler and 2 workers started as separate processes (``dask scheduler --host 127.0.0.1
  --port 0`` and ``dask worker tcp://127.0.0.1:PORT --nthreads 1``).

On both, ensembles of run_md give frames identical (bit for bit) to the serial runs with the
same seeds; a worker killed with SIGKILL mid-run leaves a run that completes with every frame
once (the task is run again on another worker and resumes from its file: the dead worker's
trajectory lock is an flock the kernel released); a task whose potential raises ends in a
TaskError naming it while the other runs finish and keep their files. GFN2-xTB reference
generation and labelling (tiny water runs) give the same numbers on the cluster as in this
process. Cheap potentials (Lennard-Jones Ar13, a tiny TorchScript SchNet) elsewhere.
"""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.cluster import Icosahedron

import pymotor
from pymotor import parallel
from pymotor.ensemble import run_ensemble
from pymotor.stability import stability

distributed = pytest.importorskip("distributed")

LJ = pymotor.LennardJonesPotential(epsilon_eV=0.0104, sigma_A=3.4, cutoff_A=8.5)
MD = dict(timestep_fs=4.0, temperature_K=40.0)
FIELDS = ("step", "positions", "velocities", "forces", "potential_energy", "kinetic_energy", "conserved_energy")


class SlowLJ(Calculator):
    """pymotor's Lennard-Jones for Ar as an ASE calculator (the same numbers wherever and
    whenever it runs), sleeping ``delay_s`` per call (a run that lasts long enough to be
    killed, at no CPU cost) and, with ``fail_after``, raising like a failed SCF after that
    many calls for a molecule far from the origin."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, delay_s: float = 0.0, fail_after: int | None = None):
        super().__init__()
        self.delay_s, self.fail_after, self.calls, self._lj = delay_s, fail_after, 0, None

    def __getstate__(self):  # the C++ potential is made again where the calculator arrives
        return {**self.__dict__, "_lj": None}

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after and self.atoms.positions.mean() > 50.0:
            raise RuntimeError("SCF did not converge (test potential)")
        if self.delay_s:
            time.sleep(self.delay_s)
        if self._lj is None:
            self._lj = LJ.potential(self.atoms.numbers)
        e, f = self._lj.compute(self.atoms.get_positions()[None])
        self.results = {"energy": float(e[0]), "free_energy": float(e[0]), "forces": f[0]}


@pytest.fixture(scope="module")
def ar13():
    return Icosahedron("Ar", 2)


@pytest.fixture(scope="module")
def local_client():
    """A LocalCluster of 2 worker processes with one thread each, on loopback."""
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                  silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=120)
        yield client


def _same(a, b, what=""):
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{what}: {f}")


def _serial(potential, atoms, seeds, steps, folder: Path, **kw):
    """Plain run_md runs, one per seed, read back from their files (forces are stored in
    kJ/mol/A: compare file with file)."""
    return [_ref(potential, atoms, folder / f"ref_{s}.h5", steps=steps, seed=s, **MD, **kw) for s in seeds]


def _ref(potential, atoms, path: Path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    pymotor.run_md(potential, atoms, trajectory=path, **kw)
    return pymotor.read_trajectory(path)


# ---------------------------------------------------------------------------------------
# run_tasks itself
# ---------------------------------------------------------------------------------------
def _square(x):
    parallel.report(1, "half")
    parallel.report(2, "done")
    return x * x


def _fails_for_three(x):
    if x == 3:
        raise ValueError("three is not allowed (test)")
    return x


def test_run_tasks_results_errors_and_progress(local_client, capsys):
    tasks = [parallel.Task(f"sq {k}", _square, (k,), steps=2) for k in range(5)]
    assert parallel.run_tasks(tasks, scheduler=local_client, progress=True, desc="test") == \
        {f"sq {k}": k * k for k in range(5)}
    err = capsys.readouterr().err
    assert "test: tasks: 100%" in err and "5/5" in err and "10/10" in err  # bars over tasks and steps
    for where in (local_client, "serial"):
        with pytest.raises(parallel.TaskError, match=r"1 of 5 tasks failed \(4 finished, results kept\): "
                                                     r"x3: ValueError: three is not allowed") as e:
            parallel.run_tasks([parallel.Task(f"x{k}", _fails_for_three, (k,)) for k in range(5)],
                               scheduler=where, progress=False)
        assert e.value.results == {"x0": 0, "x1": 1, "x2": 2, "x4": 4}
        assert isinstance(e.value.errors["x3"], ValueError)
        # the one line says where it was raised, also from a remote worker
        assert re.search(r"x3: ValueError: three is not allowed \(test\) \(in _fails_for_three, "
                         r"test_parallel\.py:\d+\)", str(e.value)), str(e.value)
    with pytest.raises(ValueError, match="task names must be unique; repeated: a"):
        parallel.run_tasks([parallel.Task("a", _square, (1,)), parallel.Task("a", _square, (2,))])
    with pytest.raises(ValueError, match="`scheduler` must be 'local', 'serial', a scheduler address"):
        parallel.run_tasks([parallel.Task("a", _square, (1,))], scheduler="nowhere")
    with pytest.raises(ValueError, match="`workers` must be a positive integer"):
        parallel.run_tasks([parallel.Task("a", _square, (1,))], workers=0)


# ---------------------------------------------------------------------------------------
# ensembles on a LocalCluster
# ---------------------------------------------------------------------------------------
def test_ensemble_on_local_cluster_equals_serial_runs(local_client, ar13, tmp_path):
    seeds, steps = (0, 1, 2), 300
    ref = _serial(LJ, ar13, seeds, steps, tmp_path / "ref")
    res = run_ensemble(LJ, ar13, tmp_path / "ens", runs=3, steps=steps, segment_steps=70, scheduler=local_client,
                       progress=False, **MD)
    assert [r["seed"] for r in res.runs] == list(seeds)
    assert [p.name for p in res.paths] == ["run_000.h5", "run_001.h5", "run_002.h5"]
    for k, (a, b) in enumerate(zip(ref, res.trajectories())):
        _same(a, b, f"run {k}")
    # the same in this process; a repeated call finds every run done and changes nothing
    again = run_ensemble(LJ, ar13, tmp_path / "ens", runs=3, steps=steps, scheduler="serial", progress=False, **MD)
    for a, b in zip(ref, again.trajectories()):
        _same(a, b, "repeated")
    serial = run_ensemble(LJ, ar13, tmp_path / "ser", runs=3, steps=steps, scheduler="serial", progress=False, **MD)
    for a, b in zip(ref, serial.trajectories()):
        _same(a, b, "serial")
    man = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert man["parameters"]["seeds"] == [0, 1, 2] and sorted(man["runs"]) == ["run_000", "run_001", "run_002"]
    # another ensemble or other settings in the same folder are refused
    with pytest.raises(ValueError, match="holds another ensemble"):
        run_ensemble(LJ, ar13, tmp_path / "ens", runs=3, seed=5, steps=steps, progress=False, **MD)
    with pytest.raises(ValueError, match=r"other settings \(temperature_K: 40.0 -> 60.0"):
        run_ensemble(LJ, ar13, tmp_path / "ens", runs=3, steps=steps, progress=False, timestep_fs=4.0,
                     temperature_K=60.0)


def test_ensemble_of_start_frames_and_a_deployed_model(local_client, tiny_model_path, ethanol, tmp_path):
    """N start frames with their own velocities; the model travels as its file and is loaded
    on each worker with the same backend."""
    model = pymotor.load_model(tiny_model_path)
    kw = dict(timestep_fs=0.5, on_bond_change="ignore")  # a random-weight model: bonds break
    starts = pymotor.run_md(model, ethanol, steps=20, seed=7, **kw).to_ase()[::10]  # 3 frames
    ref = [_ref(model, a, tmp_path / f"ref_{k}.h5", steps=60, seed=k, **kw) for k, a in enumerate(starts)]
    res = run_ensemble(model, starts, tmp_path / "frames", steps=60, segment_steps=25, scheduler=local_client,
                       progress=False, **kw)
    for k, (a, b) in enumerate(zip(ref, res.trajectories())):
        _same(a, b, f"start frame {k}")


def _frames_in(path: Path) -> int:
    try:
        return len(pymotor.read_trajectory(path, allow_running=True).step)
    except Exception:  # noqa: BLE001 - not there yet, or caught mid-write: look again
        return 0


def _kill_worker_running(client, name: str, path: Path, min_frames: int, thread, box,
                         timeout: float = 180.0) -> int:
    """SIGKILL the worker process that runs task ``name`` once its file holds ``min_frames``."""
    pids = client.run(os.getpid)
    t0 = time.monotonic()
    while (n := _frames_in(path)) < min_frames:
        if not thread.is_alive():
            raise AssertionError(f"the run ended before the kill: {box}")
        assert time.monotonic() - t0 < timeout, f"{path} never reached {min_frames} frames"
        time.sleep(0.05)
    running = {addr: keys for addr, keys in client.processing().items()
               if any(str(k).startswith(f"{name}-") for k in keys)}
    assert len(running) == 1, f"{name} runs on {list(running)}"
    os.kill(pids[next(iter(running))], signal.SIGKILL)
    return n


def _run_in_thread(fn, **kw):
    import threading

    box = {}

    def target():
        try:
            box["result"] = fn(**kw)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            box["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, box


STEPS_KILLED = 1200


def _killed_run_completes(client, ar13, out: Path) -> None:
    """Two slow members; the worker of run_000 is killed mid-run; both complete with every
    frame once and equal the serial runs."""
    th, box = _run_in_thread(run_ensemble, model=SlowLJ(delay_s=0.003), atoms=ar13, out=out, runs=2,
                             steps=STEPS_KILLED, segment_steps=200, scheduler=client, progress=False, **MD)
    n_at_kill = _kill_worker_running(client, "run_000", out / "run_000.h5", 250, th, box)
    th.join(300)
    assert not th.is_alive(), "the ensemble did not finish after the kill"
    if "error" in box:
        raise box["error"]
    assert 250 <= n_at_kill < STEPS_KILLED + 1, n_at_kill  # killed mid-run
    ref = _serial(SlowLJ(), ar13, (0, 1), STEPS_KILLED, out.parent / "ref")
    for k, (a, b) in enumerate(zip(ref, box["result"].trajectories())):
        np.testing.assert_array_equal(b.step, np.arange(STEPS_KILLED + 1))  # every frame once
        _same(a, b, f"run {k}")


def test_worker_killed_mid_run_local_cluster(local_client, ar13, tmp_path):
    _killed_run_completes(local_client, ar13, tmp_path / "killed")
    local_client.wait_for_workers(2, timeout=120)  # the nanny restarted the dead worker


def test_failing_task_is_named_and_the_others_are_kept(local_client, ar13, tmp_path):
    far = ar13.copy()
    far.translate([100.0, 100.0, 100.0])
    starts = [ar13, ar13, far]
    out = tmp_path / "fail"
    with pytest.raises(parallel.TaskError, match=r"1 of 3 ensemble members failed \(2 finished, results kept\): "
                                                 r"run_002: RuntimeError: SCF did not converge") as e:
        run_ensemble(SlowLJ(fail_after=20), starts, out, steps=200, scheduler=local_client, progress=False, **MD)
    assert sorted(e.value.results) == ["run_000", "run_001"]
    ref = _serial(SlowLJ(), ar13, (0, 1), 200, tmp_path / "ref")
    for k in (0, 1):
        _same(ref[k], pymotor.read_trajectory(out / f"run_00{k}.h5"), f"run {k}")
    kept = pymotor.read_trajectory(out / "run_002.h5")  # the frames before the failure are on disk
    assert 10 <= kept.step[-1] < 20
    man = json.loads((out / "ensemble.json").read_text())
    assert "SCF did not converge" in man["runs"]["run_002"]["error"]
    assert man["runs"]["run_000"]["n_frames"] == 201


def test_stability_counts_the_same_blow_ups_anywhere(local_client, ar13, tmp_path):
    """Ar13 with 80 fs steps at 200 K: 4 of 6 seeded runs blow up (non-finite values), at the same
    steps on the cluster (with resumable files) as in this process (in memory)."""
    kw = dict(timestep_fs=80.0, time_fs=8000.0, temperature_K=200.0, seed=0, atoms=ar13, on_bond_change="ignore")
    here = stability(LJ, 6, scheduler="serial", **kw)
    there = stability(LJ, 6, scheduler=local_client, out=tmp_path / "stab", **kw)
    assert here.failed_steps == there.failed_steps == [4, 29, 95, 95]
    assert here.n_blew_up == 4 and [r["blew_up"] for r in there.runs] == [True, True, False, True, True, False]
    assert (tmp_path / "stab" / "run_002.h5").is_file()


def test_stability_command_and_script(tiny_model_path, ethanol, tmp_path):
    """``pymotor stability`` (here through scripts/md_stability.py, the thin wrapper kept for
    older commands) on a local cluster of 2 workers prints the table of the Python function."""
    import warnings

    from ase.io import write

    write(tmp_path / "start.xyz", ethanol)
    kw = dict(timestep_fs=1.0, time_fs=30.0, temperature_K=300.0, atoms=ethanol, seed=100)
    with warnings.catch_warnings():  # a random-weight model: bonds break (recorded and warned about)
        warnings.simplefilter("ignore", RuntimeWarning)
        want = stability(str(tiny_model_path), 3, scheduler="serial", **kw)
    script = Path(__file__).parents[1] / "scripts" / "md_stability.py"
    r = subprocess.run([sys.executable, str(script), str(tiny_model_path), "--runs", "3", "--time-fs", "30",
                        "--xyz", str(tmp_path / "start.xyz"), "--workers", "2"],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stderr
    row = f"| `{tiny_model_path}` | {want.n_blew_up}/3 | {', '.join(map(str, want.failed_steps)) or '—'} |"
    assert row in r.stdout.splitlines(), (row, r.stdout)


# ---------------------------------------------------------------------------------------
# GFN2-xTB: reference generation and labelling (tiny water runs)
# ---------------------------------------------------------------------------------------
@pytest.mark.xtb
def test_generate_and_label_on_the_cluster_equal_this_process(local_client, tmp_path):
    from ase.build import molecule
    from ase.db import connect

    from pymotor.data.generate import generate_reference
    from pymotor.data.label import label_frames

    kw = dict(steps=14, timestep_fs=0.5, equilibrate_fs=2.5, trajectories=2, seed=3, progress=False)
    here = generate_reference(molecule("H2O"), tmp_path / "a" / "W", scheduler="serial", **kw)
    there = generate_reference(molecule("H2O"), tmp_path / "b" / "W", scheduler=local_client, **kw)
    assert [t["n_frames"] for t in there["trajectories"]] == [15, 15]
    for k in (1, 2):
        _same(pymotor.read_trajectory(tmp_path / "a" / "W" / "raw" / f"W_{k}.h5"),
              pymotor.read_trajectory(tmp_path / "b" / "W" / "raw" / f"W_{k}.h5"), f"W_{k}")
    with connect(here["merged"]) as a, connect(there["merged"]) as b:
        ea = [r.data["energy"][0] for r in a.select(sort="id")]
        eb = [r.data["energy"][0] for r in b.select(sort="id")]
    assert len(ea) == 30 and ea == eb

    # labels: 4-frame chunks on the cluster == one chunk here, bit for bit
    frames = pymotor.read_trajectory(tmp_path / "a" / "W" / "raw" / "W_2.h5")
    la = label_frames(frames, tmp_path / "la.db", here["merged"], chunk_frames=100, scheduler="serial",
                      progress=False)
    lb = label_frames(frames, tmp_path / "lb.db", here["merged"], chunk_frames=4, scheduler=local_client,
                      progress=False)
    assert la["n_frames"] == lb["n_frames"] == 15
    with connect(la["db"]) as a, connect(lb["db"]) as b:
        for ra, rb in zip(a.select(sort="id"), b.select(sort="id")):
            assert ra.data["energy"][0] == rb.data["energy"][0]
            np.testing.assert_array_equal(ra.data["forces"], rb.data["forces"])
    assert not (tmp_path / ".lb.labels").exists()  # the chunk files go once the database holds them
    # frames relabelled with a fresh SCF guess reproduce the MD's own labels (reused guess) closely
    raw_e = frames.potential_energy * (1.0 / pymotor.units.energy_unit_in_eV("kcal/mol", "unit"))
    with connect(la["db"]) as a:
        e = np.array([r.data["energy"][0] for r in a.select(sort="id")])
    assert np.abs(e - raw_e).max() < 1e-3


# ---------------------------------------------------------------------------------------
# a scheduler and workers started as separate processes
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def process_cluster(tmp_path_factory):
    """``dask scheduler --host 127.0.0.1 --port 0`` and two ``dask worker ADDRESS --nthreads 1``
    (without nannies: a killed worker stays dead), each its own process."""
    folder = tmp_path_factory.mktemp("dask")
    dask = str(Path(sys.executable).with_name("dask"))
    # the workers unpickle this module's test potential: they import it from tests/
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    sched_file = folder / "scheduler.json"
    loopback = ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]  # HTTP too
    procs = [subprocess.Popen([dask, "scheduler", "--port", "0", *loopback, "--scheduler-file", str(sched_file)],
                              cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        t0 = time.monotonic()
        while not sched_file.is_file() or not sched_file.read_text().strip():
            assert procs[0].poll() is None, "dask scheduler ended"
            assert time.monotonic() - t0 < 120, "dask scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", *loopback,
                                           "--name", f"w{i}"],
                                          cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            yield address, client
    finally:
        # workers first, while their scheduler still answers (a worker whose scheduler is gone
        # retries its goodbye and once outlived a 30 s wait on a busy CI machine), then the
        # scheduler; every process is reaped, killed ones too (an unreaped Popen warns at GC)
        for group in (procs[1:], procs[:1]):
            for p in group:
                p.terminate()
            for p in group:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_separate_processes_give_the_serial_frames(process_cluster, ar13, tiny_model_path, ethanol, tmp_path):
    address, _ = process_cluster
    ref = _serial(LJ, ar13, (4, 5, 6), 200, tmp_path / "ref")
    res = run_ensemble(LJ, ar13, tmp_path / "ens", seeds=[4, 5, 6], steps=200, segment_steps=64,
                       scheduler=address, progress=False, **MD)
    for a, b in zip(ref, res.trajectories()):
        _same(a, b, "tcp cluster")
    # the command line, with a deployed model and start frames from an xyz file
    from ase.io import write

    starts = [ethanol.copy(), ethanol.copy()]
    starts[1].positions[0] += [0.05, 0.0, 0.0]
    write(tmp_path / "starts.xyz", starts)
    r = subprocess.run([sys.executable, "-m", "pymotor.cli", "ensemble", "--model", str(tiny_model_path),
                        "--xyz", str(tmp_path / "starts.xyz"), "--steps", "40", "--seed", "11",
                        "--on-bond-change", "ignore", "--out", str(tmp_path / "cli"), "--scheduler", address,
                        "--no-progress"],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "run_001: seed 12, 40 steps, 41 frames" in r.stdout
    model = pymotor.load_model(tiny_model_path)
    for k, a in enumerate(starts):
        want = _ref(model, a, tmp_path / f"ref_{k}.h5", steps=40, timestep_fs=1.0, seed=11 + k,
                    on_bond_change="ignore")
        _same(want, pymotor.read_trajectory(tmp_path / "cli" / f"run_00{k}.h5"), f"cli run {k}")


def test_separate_processes_worker_killed_mid_run(process_cluster, ar13, tmp_path):
    """The killed worker (no nanny) does not come back: the other one runs its task again,
    resuming from the file."""
    address, client = process_cluster
    _killed_run_completes(client, ar13, tmp_path / "killed")
    assert len(client.scheduler_info()["workers"]) == 1


# ---------------------------------------------------------------------------------------
# committee training: one SchNetPack run per seed, as tasks
# ---------------------------------------------------------------------------------------
@pytest.mark.schnetpack
def test_committee_members_train_as_tasks_like_serial_runs(local_client, tmp_path):
    """Each member on a worker is the run `train` makes here with its seed (same weights bit
    for bit); seeds give different members; OUT is a committee folder; a repeated call
    neither trains nor exports again; bad arguments are named."""
    pytest.importorskip("schnetpack")
    import torch

    from pymotor.learn.committee import Committee, resolve_committee
    from pymotor.train import train
    from pymotor.train.committee import train_committee
    from pymotor.train.toydata import make_toy_database

    db = make_toy_database(tmp_path / "eth.db", 100, "eV", seed=5)
    kw = dict(model="schnet", energy_unit="kcal/mol", epochs=2, compile=False,
              hyperparameters={"n_atom_basis": 16, "n_interactions": 1, "n_rbf": 8, "val_batch_size": 64})
    out = tmp_path / "committee"
    res = train_committee(db, out, seeds=(3, 4), scheduler=local_client, progress=False, eval_stride=2, **kw)
    assert list(res["members"]) == ["member-3", "member-4"]
    assert all(m["epoch"] == 2 for m in res["members"].values())
    models = [out / "member-3.pt", out / "member-4.pt"]
    assert res["models"] == [str(m) for m in models] and resolve_committee(out) == models
    assert json.loads((out / "committee.json").read_text())["seeds"] == [3, 4]

    ref = train(db, tmp_path / "serial-3", seed=3, progress=False, **kw)
    assert ref["epoch"] == 2

    def weights(run):
        return torch.load(run / "best_model.pt", weights_only=False).state_dict()

    here, there, other = (weights(tmp_path / "serial-3"), weights(out / "runs" / "member-3"),
                          weights(out / "runs" / "member-4"))
    assert here.keys() == there.keys()
    for k in here:
        torch.testing.assert_close(there[k], here[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(here[k], other[k]) for k in here if here[k].is_floating_point())

    from pymotor.train.toydata import _ethanol

    atoms = _ethanol()
    pred = Committee(resolve_committee(out), backend="torchscript").evaluate(
        atoms.positions, atoms.get_atomic_numbers())
    assert pred.energies.shape == (2, 1) and abs(pred.energies[0, 0] - pred.energies[1, 0]) > 1e-6
    assert pred.force_std.max() > 1e-4  # eV/A: two seeds disagree

    stamps = [m.stat().st_mtime_ns for m in models]
    again = train_committee(db, out, seeds=(3, 4), scheduler="serial", progress=False, eval_stride=2, **kw)
    assert [m["epoch"] for m in again["members"].values()] == [2, 2]
    assert [m.stat().st_mtime_ns for m in models] == stamps  # nothing newer to export
    # the command line resumes the same committee (nothing left to do) and names its members
    r = subprocess.run([sys.executable, "-m", "pymotor.cli", "train-committee", str(db), "--out", str(out),
                        "--seeds", "3,4", "--epochs", "2", "--compile", "off", "--hp", "n_atom_basis=16",
                        "--hp", "n_interactions=1", "--hp", "n_rbf=8", "--hp", "val_batch_size=64",
                        "--eval-stride", "2", "--scheduler", "serial", "--no-progress"],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "member-4: epoch 2" in r.stdout and "(2 exported members)" in r.stdout, r.stdout

    with pytest.raises(ValueError, match="`seeds` must hold at least 2"):
        train_committee(db, out, seeds=(1,), **kw)
    with pytest.raises(ValueError, match="`seeds` repeats a seed"):
        train_committee(db, out, seeds=(1, 1), **kw)
    with pytest.raises(ValueError, match="`seeds` must be an integer >= 0"):
        train_committee(db, out, seeds=(1, -2), **kw)
    with pytest.raises(TypeError, match="sets seed per member"):
        train_committee(db, out, seeds=(1, 2), seed=0, **kw)
    with pytest.raises(FileNotFoundError, match="no such database"):
        train_committee(tmp_path / "none.db", out, **kw)


# ---------------------------------------------------------------------------------------
# the SLURM recipe of the README
# ---------------------------------------------------------------------------------------
def test_slurm_recipe_job_script():
    """The README's dask-jobqueue recipe asks SLURM for worker processes with one thread each
    (the job script of its SLURMCluster arguments; nothing is started or submitted)."""
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue.slurm import SLURMJob

    recipe = dict(cores=8, processes=8, memory="16GiB", walltime="04:00:00", account="my-account", queue="compute",
                  job_script_prologue=["source /path/to/pymotor/.venv/bin/activate", "export OMP_NUM_THREADS=1"])
    script = SLURMJob(scheduler="tcp://127.0.0.1:8786", name="pymotor", **recipe).job_script()
    assert "--nworkers 8" in script and "--nthreads 1" in script and "#SBATCH -t 04:00:00" in script
    assert "export OMP_NUM_THREADS=1" in script and "#SBATCH -A my-account" in script and "#SBATCH -p compute" in script
