"""Scale-out on Dask (pymotor.parallel): 2 workers against 1, and the scheduler's cost per task.

Groups (pytest-benchmark ``group``):

* ``parallel-generate``: :func:`pymotor.data.generate_reference` itself (the ``pymotor generate``
  workload): ``TRAJECTORIES`` GFN2-xTB (tblite) NVT trajectories of ethanol, ``EQUIL_FS`` fs of
  equilibration + ``STEPS`` production steps each, every trajectory a task writing its H5MD file
  and database, then the merged database. Each round runs it once on a LocalCluster of 1 worker
  process and once on one of 2 worker processes (one thread each; both clusters started and
  warmed up before the first round), each into a fresh folder, in turn: the speed-up is the
  median over rounds of the per-round ratio (paired, so a drifting machine load biases neither).
* ``parallel-overhead``: ``N_NOOP`` tasks that do nothing, through :func:`pymotor.parallel.run_tasks`
  on the 1-worker cluster: the scheduler's time per task (submit, schedule, run, send the result
  back, the client's bookkeeping), compared with the time of one ``generate`` trajectory task
  (the 1-worker round's time divided by the number of trajectories, an upper bound).

The timer is the wall clock (``time.perf_counter``): the point is the elapsed time of work done
in other processes. The ratios and the times are printed after pytest-benchmark's tables and
stored in the saved JSON (``extra_info``).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest bench/test_bench_parallel.py --benchmark-only -s``.
"""
from __future__ import annotations

import logging
import os
import shutil
import time

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")
distributed = pytest.importorskip("distributed")
pytest.importorskip("tblite")

pytestmark = [pytest.mark.benchmark(timer=time.perf_counter)]

TRAJECTORIES = 4
STEPS = 500
EQUIL_FS = 25.0
ROUNDS = 5
N_NOOP = 200
ROUNDS_NOOP = 5

_SUMMARY: dict = {}


def _noop(k):
    return k


def _warm():
    """Imports a task of either workload needs (a worker's first task would pay them)."""
    import pymotor.data.generate  # noqa: F401
    from pymotor.data.xtb import make_calculator

    make_calculator("tblite")
    return os.getpid()


@pytest.fixture(scope="module")
def clients():
    """LocalClusters of 1 and 2 worker processes (one thread each) on loopback, warmed up."""
    out = {}
    stack = []
    try:
        for n in (1, 2):
            t0 = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                               dashboard_address=None, silence_logs=logging.ERROR,
                                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
            client = distributed.Client(cluster, set_as_default=False)
            stack += [client, cluster]
            client.wait_for_workers(n)
            client.run(_warm)
            out[n] = client
            _SUMMARY[f"cluster_start_and_warm_up_s_{n}_workers"] = time.perf_counter() - t0
        yield out
    finally:
        for obj in stack:
            obj.close()


def _generate(client, folder):
    from ase.build import molecule

    from pymotor.data.generate import generate_reference

    shutil.rmtree(folder, ignore_errors=True)
    cpu0 = sum(client.run(time.process_time).values())
    t0 = time.perf_counter()
    generate_reference(molecule("CH3CH2OH"), folder, steps=STEPS, timestep_fs=0.5, equilibrate_fs=EQUIL_FS,
                       trajectories=TRAJECTORIES, seed=0, progress=False, scheduler=client)
    wall = time.perf_counter() - t0
    return wall, sum(client.run(time.process_time).values()) - cpu0


@pytest.mark.benchmark(group="parallel-generate")
def test_generate_2_workers_vs_1(benchmark, clients, tmp_path):
    times = {1: [], 2: []}
    cpu = {1: [], 2: []}

    def cycle():
        for n in (1, 2):
            wall, worker_cpu = _generate(clients[n], tmp_path / f"w{n}" / "E")
            times[n].append(wall)
            cpu[n].append(worker_cpu)

    benchmark.pedantic(cycle, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    t1, t2 = np.array(times[1]), np.array(times[2])
    ratio = t1 / t2
    load = os.getloadavg()
    info = {"trajectories": TRAJECTORIES, "steps": STEPS, "equilibrate_fs": EQUIL_FS, "molecule": "ethanol",
            "backend": "tblite", "seconds_1_worker": t1.tolist(), "seconds_2_workers": t2.tolist(),
            "speedup_per_round": ratio.tolist(), "speedup_median": float(np.median(ratio)),
            "worker_cpu_seconds_1_worker": cpu[1], "worker_cpu_seconds_2_workers": cpu[2],
            "cores_used_1_worker": float(np.median(np.array(cpu[1]) / t1)),
            "cores_used_2_workers": float(np.median(np.array(cpu[2]) / t2)),
            "task_seconds_upper_bound": float(np.median(t1) / TRAJECTORIES), "loadavg_at_end": list(load)}
    benchmark.extra_info.update(info)
    _SUMMARY["generate"] = info


@pytest.mark.benchmark(group="parallel-overhead")
def test_scheduler_overhead_per_task(benchmark, clients):
    from pymotor import parallel

    tasks = [parallel.Task(f"noop {k}", _noop, (k,)) for k in range(N_NOOP)]
    res = benchmark.pedantic(parallel.run_tasks, args=(tasks,), kwargs=dict(scheduler=clients[1], progress=False),
                             rounds=ROUNDS_NOOP, iterations=1, warmup_rounds=1)
    assert res == {f"noop {k}": k for k in range(N_NOOP)}
    stats = getattr(benchmark, "stats", None)
    if stats is None or getattr(stats, "stats", None) is None:  # --benchmark-disable
        return
    per_task = float(stats.stats.median) / N_NOOP
    info = {"n_tasks": N_NOOP, "overhead_ms_per_task": per_task * 1e3}
    task_s = _SUMMARY.get("generate", {}).get("task_seconds_upper_bound")
    if task_s:
        info["overhead_over_generate_task"] = per_task / task_s
    benchmark.extra_info.update(info)
    _SUMMARY["overhead"] = info


@pytest.fixture(scope="module", autouse=True)
def _print_summary(request):
    yield
    tr = request.config.pluginmanager.getplugin("terminalreporter")
    if tr is None or not _SUMMARY:
        return
    tr.write_line("")
    tr.write_line(f"pymotor.parallel (load average 1/5/15 min: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
                  f"on {os.cpu_count()} CPUs)")
    for n in (1, 2):
        k = f"cluster_start_and_warm_up_s_{n}_workers"
        if k in _SUMMARY:
            tr.write_line(f"  LocalCluster of {n} worker(s): started and warmed up in {_SUMMARY[k]:.2f} s")
    g = _SUMMARY.get("generate")
    if g:
        tr.write_line(f"  generate ({g['trajectories']} x ({g['equilibrate_fs']:g} fs + {g['steps']} steps) of "
                      f"ethanol, tblite): 1 worker {', '.join(f'{t:.2f}' for t in g['seconds_1_worker'])} s; 2 workers "
                      f"{', '.join(f'{t:.2f}' for t in g['seconds_2_workers'])} s")
        tr.write_line(f"  speed-up 2 workers / 1: median {g['speedup_median']:.3f} "
                      f"[{min(g['speedup_per_round']):.3f}, {max(g['speedup_per_round']):.3f}] over rounds")
        cpu1 = ", ".join(f"{t:.2f}" for t in g["worker_cpu_seconds_1_worker"])
        cpu2 = ", ".join(f"{t:.2f}" for t in g["worker_cpu_seconds_2_workers"])
        tr.write_line(f"  worker CPU s: 1 worker {cpu1}; 2 workers {cpu2}; cores used (worker CPU / wall, median): "
                      f"{g['cores_used_1_worker']:.2f} and {g['cores_used_2_workers']:.2f}")
    o = _SUMMARY.get("overhead")
    if o:
        line = (f"  scheduler overhead: {o['overhead_ms_per_task']:.2f} ms per task ({o['n_tasks']} no-op tasks, "
                "1 worker)")
        if "overhead_over_generate_task" in o:
            line += f" = {o['overhead_over_generate_task']:.2e} of one generate trajectory task"
        tr.write_line(line)
