"""The one way pymotor runs independent work: named tasks on Dask's ``distributed`` scheduler.

Reference generation (:func:`pymotor.data.generate_reference`), GFN2-xTB labelling
(:func:`pymotor.data.label.label_frames`), MD ensembles (:func:`pymotor.ensemble.run_ensemble`)
and the stability check (:func:`pymotor.stability.stability`) all hand their work to
:func:`run_tasks`. Every task is a function call with a unique name; it writes its own
resumable file, so nothing finished is lost when a worker dies or the command is repeated.

Where the tasks run (``scheduler``, CLI ``--scheduler``):

``None`` or ``"local"`` (default)
    A ``distributed.LocalCluster`` on this machine, started for the call and closed after it:
    ``workers`` worker processes (CLI ``--workers N``; default one per core, at most one per
    task) with one thread each, on the loopback interface. With one worker the tasks run one
    after another in this process instead (there is nothing to gain from a second process).
``"serial"``
    In this process, one after another (debugging; the serial reference of the tests).
``"tcp://HOST:PORT"``
    The scheduler of an existing cluster (``dask scheduler`` + ``dask worker ADDRESS --nthreads 1``
    on the nodes, or a dask-jobqueue cluster); ``workers`` is ignored. Files are written by the
    workers: the output folder must be on a file system that every worker sees.
a path to a scheduler file (``dask scheduler --scheduler-file FILE``)
    The same, through the file.
a ``distributed.Client`` (Python API)
    Used as it is and left open (e.g. ``Client(SLURMCluster(...))``: README, "Running on a cluster").

What happens when things go wrong:

* A worker that dies in a task (SIGKILL, out of memory, a lost node): the scheduler runs the
  task again on another worker (up to Dask's ``distributed.scheduler.allowed-failures``, default
  3, then the task fails with ``KilledWorker``). pymotor's tasks resume from their file's last
  committed state; the dead worker's trajectory lock is an ``flock``, released by the kernel
  with the process.
* A task that raises: the other tasks run to the end and keep their results; then
  :class:`TaskError` names every failed task with its error (``errors`` and ``results``
  attributes hold both). Tasks are not retried on an exception: an SCF that does not converge
  fails again the same way.
* Ctrl-C: the tasks not yet finished are cancelled (a local cluster is closed, which ends its
  workers; files keep their last committed state; repeat the command to resume).

Progress: one bar over tasks and, for tasks that report steps (:func:`report`), one over the
steps of all tasks together, with the rate and the time left.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

__all__ = ["Task", "TaskError", "run_tasks", "report", "current_task", "open_client", "add_arguments",
           "options", "describe", "SCHEDULER_HELP"]

#: the CLI help of --scheduler
SCHEDULER_HELP = ("where tasks run: 'local' (default: a LocalCluster of --workers processes, one thread "
                  "each, on this machine), 'serial' (this process), tcp://HOST:PORT (an existing Dask "
                  "scheduler) or a scheduler file")


@dataclass
class Task:
    """One unit of work: ``fn(*args, **kwargs)`` run on a worker under ``name``.

    ``steps``: the number of steps the task reports with :func:`report` (0 if it reports
    none); they make the steps bar. ``fn`` and its arguments travel to the worker by
    (cloud)pickle: module-level functions, plain data, ``ase.Atoms`` and pymotor's analytic
    potentials do; open files, loaded TorchScript modules and C++ objects do not.
    """

    name: str
    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    steps: int = 0


class TaskError(RuntimeError):
    """Some tasks failed; the others ran to the end.

    ``errors``: task name -> exception (as raised in the task); ``results``: task name ->
    result of every task that finished. The message names each failed task and its error.
    """

    def __init__(self, errors: dict, results: dict, n_tasks: int, what: str = "tasks"):
        self.errors = dict(errors)
        self.results = dict(results)
        self.n_tasks = int(n_tasks)
        lines = [f"{name}: {error_line(exc, name)}" for name, exc in self.errors.items()]
        super().__init__(f"{len(self.errors)} of {n_tasks} {what} failed ({len(self.results)} finished, "
                         f"results kept): " + "; ".join(lines))

    def __reduce__(self):
        return (type(self), (self.errors, self.results, self.n_tasks))


def error_line(exc: BaseException, name: str = "") -> str:
    """One line for a task's exception: its message without a repeated task name, or the
    exception's type when the message is empty. An unexpected exception (not pymotor's
    GenerationError / MDError, whose messages name the step and file) also gets the place it
    was raised in pymotor, ``(in write_database, pymotor/data/generate.py:206)``, so a
    failure on a remote worker can be traced from the one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if name and text.startswith(name):
        text = text[len(name):].lstrip(" :")
    kind = type(exc).__name__
    if kind in ("GenerationError", "MDError"):
        return text or kind
    where = _raised_at(exc)
    return (f"{kind}: {text}" if text else kind) + (f" ({where})" if where else "")


def _raised_at(exc: BaseException) -> str:
    """``in FUNCTION, pymotor/FILE:LINE`` of the innermost pymotor frame of ``exc``'s
    traceback, outside this module (and the innermost frame overall when that is elsewhere);
    "" without a traceback."""
    import traceback

    tb = getattr(exc, "__traceback__", None)
    if tb is None:
        return ""
    frames = traceback.extract_tb(tb)
    if not frames:
        return ""
    pkg = os.path.dirname(os.path.abspath(__file__))
    here = os.path.abspath(__file__)  # the task runner's own frames say nothing
    ours = [f for f in frames if os.path.abspath(f.filename).startswith(pkg + os.sep)
            and os.path.abspath(f.filename) != here]

    def fmt(f):
        path = os.path.abspath(f.filename)
        shown = "pymotor/" + os.path.relpath(path, pkg) if path.startswith(pkg + os.sep) else os.path.basename(path)
        return f"in {f.name}, {shown}:{f.lineno}"

    parts = [fmt(ours[-1])] if ours else []
    if os.path.abspath(frames[-1].filename) != here and (not ours or frames[-1] is not ours[-1]):
        parts.append(fmt(frames[-1]))
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------
# inside a task
# ---------------------------------------------------------------------------------------
_CONTEXT = threading.local()


def current_task() -> str | None:
    """The name of the task running in this thread (None outside a task)."""
    return getattr(_CONTEXT, "name", None)


def report(done: int, stage: str = "") -> None:
    """Report progress from inside a task: ``done`` steps of the task's ``steps`` (an absolute
    count, so a task resumed from its file reports where it stands), and the current stage.
    Does nothing outside a task."""
    sink = getattr(_CONTEXT, "sink", None)
    if sink is not None:
        sink(_CONTEXT.name, int(done), str(stage))


def _execute(fn: Callable, name: str, topic: str | None, args: tuple, kwargs: dict):
    """Runs on the worker: the task with its name and progress channel in the thread's context."""
    sink = None
    if topic is not None:
        from distributed import get_worker

        worker = get_worker()
        sink = lambda task, done, stage: worker.log_event(  # noqa: E731
            topic, {"task": task, "done": done, "stage": stage})
    _CONTEXT.name, _CONTEXT.sink = name, sink
    try:
        return fn(*args, **kwargs)
    finally:
        _CONTEXT.name = _CONTEXT.sink = None


# ---------------------------------------------------------------------------------------
# the client side
# ---------------------------------------------------------------------------------------
def _n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _kind(scheduler) -> str:
    if scheduler is None or scheduler == "local":
        return "local"
    if scheduler == "serial":
        return "serial"
    if isinstance(scheduler, (str, os.PathLike)):
        s = str(scheduler)
        if re.match(r"^[a-z0-9+]+://", s):
            return "address"
        if Path(s).is_file():
            return "file"
        raise ValueError(f"`scheduler` must be 'local', 'serial', a scheduler address (tcp://HOST:PORT), a "
                         f"scheduler file or a distributed.Client, got {s!r} (no such file)")
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        Client = ()
    if Client and isinstance(scheduler, Client):
        return "client"
    raise TypeError(f"`scheduler` must be a str, a path or a distributed.Client, got {type(scheduler).__name__}")


def _check_workers(workers) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"`workers` must be a positive integer, got {workers!r}")


@contextlib.contextmanager
def open_client(scheduler=None, workers: int | None = None, n_tasks: int | None = None) -> Iterator:
    """A ``distributed.Client`` for ``scheduler`` (see the module's docstring), or None where
    the tasks run in this process (``"serial"``, or a local cluster of one worker). A cluster
    or connection made here is closed on exit; a Client passed in is left open."""
    kind = _kind(scheduler)
    _check_workers(workers)
    if kind == "serial":
        yield None
        return
    if kind == "client":
        yield scheduler
        return
    from distributed import Client

    if kind == "address":
        with Client(str(scheduler), set_as_default=False) as client:
            yield client
        return
    if kind == "file":
        with Client(scheduler_file=str(scheduler), set_as_default=False) as client:
            yield client
        return
    n = int(workers) if workers else _n_cores()
    if n_tasks is not None:
        n = max(1, min(n, int(n_tasks)))
    if n <= 1:
        yield None
        return
    from distributed import LocalCluster

    # loopback only; no dashboard; the scheduler's HTTP server (metrics) on a free port, not 8787
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.ERROR) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def describe(client) -> str:
    """A short description of where tasks run ("this process", "4 workers, 4 threads at tcp://...")."""
    if client is None:
        return "this process"
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
    return f"{len(workers)} workers, {threads} threads at {info.get('address', client.scheduler.address)}"


class _Bars:
    """A tqdm bar over tasks and, when the tasks report steps, one over all their steps."""

    def __init__(self, tasks: Sequence[Task], enabled, desc: str, unit: str):
        self.tasks = self.steps = None
        self.done: dict[str, int] = {}
        if not enabled:
            return
        from tqdm.auto import tqdm

        opts = dict(enabled) if isinstance(enabled, dict) else {}
        pos = int(opts.pop("position", 0))
        self.tasks = tqdm(total=len(tasks), desc=f"{desc}: tasks", unit="task", position=pos, leave=True,
                          dynamic_ncols=True, smoothing=0.0, **opts)
        total = sum(int(t.steps) for t in tasks)
        if total > 0:
            self.steps = tqdm(total=total, desc=f"{desc}: {unit}s", unit=unit, position=pos + 1, leave=True,
                              dynamic_ncols=True, smoothing=0.0,
                              bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                         "[{elapsed}<{remaining}, {rate_fmt}]{postfix}", **opts)

    def step(self, name: str, done: int, stage: str) -> None:
        first = name not in self.done
        self.done[name] = done
        if self.steps is None:
            return
        if first:  # steps a task found on disk (a resumed run) are not part of the rate
            self.steps.initial += done
        self.steps.n = sum(self.done.values())
        self.steps.set_postfix_str(f"{name} {stage}".strip(), refresh=True)

    def task_done(self, failed: bool = False) -> None:
        if self.tasks is not None:
            self.tasks.update(1)
            if failed:
                self.tasks.set_postfix_str("failed: see the end", refresh=True)

    def close(self) -> None:
        for bar in (self.steps, self.tasks):
            if bar is not None:
                bar.close()


def run_tasks(tasks: Sequence[Task], *, scheduler=None, workers: int | None = None, progress=True,
              desc: str = "pymotor", unit: str = "step", what: str = "tasks") -> dict[str, Any]:
    """Run ``tasks`` where ``scheduler`` says and return ``{name: result}`` in the tasks' order.

    ``progress``: tqdm bars over tasks and steps (a dict gives tqdm options such as
    ``position``). Raises :class:`TaskError` (naming each failed task; the finished tasks'
    results in ``.results``) once every task has finished or failed.
    """
    tasks = list(tasks)
    names = [t.name for t in tasks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"task names must be unique; repeated: {', '.join(dup)}")
    if not tasks:
        return {}
    with open_client(scheduler, workers, n_tasks=len(tasks)) as client:
        bars = _Bars(tasks, progress, desc, unit)
        try:
            if client is None:
                results, errors = _run_here(tasks, bars)
            else:
                results, errors = _run_on(client, tasks, bars)
        finally:
            bars.close()
    ordered = {n: results[n] for n in names if n in results}
    if errors:
        raise TaskError({n: errors[n] for n in names if n in errors}, ordered, len(tasks), what)
    return ordered


def _run_here(tasks, bars):
    results, errors = {}, {}
    for t in tasks:
        _CONTEXT.name, _CONTEXT.sink = t.name, bars.step
        try:
            results[t.name] = t.fn(*t.args, **t.kwargs)
        except Exception as exc:  # noqa: BLE001 - reported with the task's name; the others go on
            errors[t.name] = exc
        finally:
            _CONTEXT.name = _CONTEXT.sink = None
        bars.task_done(t.name in errors)
    return results, errors


def _run_on(client, tasks, bars):
    from distributed import as_completed

    topic = f"pymotor-progress-{uuid.uuid4().hex}"
    lock = threading.Lock()

    def on_event(event):  # runs in the client's event-loop thread
        msg = event[1]
        with lock:
            bars.step(msg["task"], msg["done"], msg["stage"])

    client.subscribe_topic(topic, on_event)
    token = uuid.uuid4().hex[:8]
    futures = {}
    for t in tasks:
        key = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', t.name)}-{token}"
        f = client.submit(_execute, t.fn, t.name, topic, t.args, t.kwargs, key=key, pure=False, retries=0)
        futures[f] = t.name
    pending = set(futures)
    results, errors = {}, {}
    try:
        for f in as_completed(list(futures), loop=client.loop):
            pending.discard(f)
            name = futures[f]
            if f.status == "finished":
                try:
                    results[name] = f.result()
                except Exception as exc:  # noqa: BLE001 - lost between the worker and here
                    errors[name] = exc
            elif f.status == "cancelled":
                errors[name] = RuntimeError("cancelled by the scheduler (the cluster shut down or another "
                                            "client cancelled it)")
            else:
                exc = f.exception()
                with contextlib.suppress(Exception):  # keep where it was raised (error_line)
                    tb = f.traceback()
                    if tb is not None and exc.__traceback__ is None:
                        exc = exc.with_traceback(tb)
                errors[name] = exc
            with lock:
                bars.task_done(name in errors)
        time.sleep(0.05)  # the last progress events travel behind the results
    finally:
        if pending:  # interrupted: do not leave work running on a shared cluster
            with contextlib.suppress(Exception):
                client.cancel(list(pending), force=True)
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(topic)
    return results, errors


# ---------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------
def add_arguments(parser, workers_help: str | None = None) -> None:
    """Add ``--scheduler`` and ``--workers`` to an argparse (sub)parser."""
    parser.add_argument("--scheduler", default="local", metavar="local|serial|tcp://HOST:PORT|FILE",
                        help=SCHEDULER_HELP)
    parser.add_argument("--workers", type=int, default=None,
                        help=workers_help or "worker processes of --scheduler local (default: one per core, "
                                             "at most one per task; 1 runs the tasks in this process)")


def options(args) -> dict:
    """``scheduler=`` and ``workers=`` from parsed arguments (for the Python functions)."""
    return {"scheduler": args.scheduler, "workers": args.workers}
