"""``pymotor demo``: the whole loop on the embedded CPNX motor.

1. GFN2-xTB NVT reference MD (tblite) -> SchNetPack database with a time split;
2. the model: by default the shipped :data:`pymotor.models.DEFAULT` (the most accurate model
   pymotor ships that is stable in MD), scored on the fresh reference's test frames, which it never saw;
   with ``train=True`` (``--train``) a SchNet trained from scratch on that reference for a
   fixed number of epochs (a budget in epochs, not wall time: the same command gives the
   same model on any machine), exported and scored;
3. NN MD with the fast C++ evaluator (``backend="auto"``) and GFN2-xTB MD from the same start
   (the last test frame, with its velocities); the xTB MD runs in a second process meanwhile,
   since it does not need the model;
4. the comparison report (HTML, figures, summary.json with its warnings).

Every stage is resumable: rerunning the command continues where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .models import DEFAULT as DEFAULT_MODEL  # the shipped model the demo runs by default

#: measured cost of one training epoch per training frame: 44 CPU seconds of the single-threaded
#: training process per epoch on 1282 CPNX training frames + 320 validation frames (SchNet
#: 128x3, batch 16; 2-core VM, 2026-12-01); for the time estimates only
EPOCH_S_PER_TRAIN_FRAME = 0.035

#: --train budgets: ``default`` 5 epochs (405 optimizer steps on 1282 frames), about 4 min of
#: training on an idle 2-core machine (what the wall-time cap of earlier versions gave there);
#: ``full`` 12 epochs of 25601 frames (19,200 steps), about 3 h
EPOCHS_DEFAULT = 5
EPOCHS_FULL = 12


@dataclass(frozen=True)
class Scale:
    name: str
    reference_steps: int       # xTB production steps per trajectory (0.5 fs)
    equilibrate_fs: float
    trajectories: int
    epochs: int                # --train: the training budget (epochs; early stopping may end it sooner)
    md_steps: int              # NN and xTB MD steps (1 fs)

    @property
    def train_frames(self) -> int:
        """Training frames of the reference (time split: 64 % of each trajectory)."""
        return int(self.trajectories * (self.reference_steps + 1) * 0.64)

    def estimate_s(self, train: bool = False, xtb_s: float = 0.055, nn_s: float = 0.012,
                   cores: int = 2) -> float:
        """Expected wall time (s) on an idle machine: trajectories run in parallel processes,
        one per core, and the xTB MD runs beside the model stage and the NN MD."""
        waves = -(-self.trajectories // cores)
        gen = waves * (self.reference_steps + self.equilibrate_fs / 0.5) * xtb_s
        model = 30.0 + (self.epochs * self.train_frames * EPOCH_S_PER_TRAIN_FRAME if train else 0.0)
        nn_md = self.md_steps * nn_s
        # xTB MD (1 fs steps: ~2x the SCF work of a 0.5 fs step) overlaps the model and NN MD
        return gen + max(model + nn_md, self.md_steps * 2 * xtb_s) + 30.0


SCALES = {
    "tiny": Scale("tiny", 60, 10.0, 1, 2, 40),
    "default": Scale("default", 1000, 500.0, 2, EPOCHS_DEFAULT, 5000),
    "full": Scale("full", 20000, 2000.0, 2, EPOCHS_FULL, 5000),
}


class BackgroundXtbMD:
    """GFN2-xTB NVT MD (tblite, pymotor's Nose-Hoover chain) from the last test frame of a
    reference database, in a spawned process, written to ``md_dir/xtb.h5`` in segments of
    ``segment`` steps (restartable, the same frames as one uninterrupted run); the steps
    done are shared with the parent for its progress bar."""

    def __init__(self, db: Path, md_dir: Path, steps: int, timestep_fs: float, temperature_K: float,
                 segment: int = 250):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.steps = int(steps)
        self.done = ctx.Value("l", 0)
        self.seconds_per_step = ctx.Value("d", float("nan"))
        Path(md_dir).mkdir(parents=True, exist_ok=True)
        self.proc = ctx.Process(target=_xtb_md_worker, name="pymotor-demo-xtb-md", daemon=True,
                                args=(str(db), str(md_dir), self.steps, float(timestep_fs),
                                      float(temperature_K), int(segment), self.done, self.seconds_per_step))
        self.proc.start()

    def wait(self, progress: bool = True) -> float:
        """Block until the run ends (a progress bar of its steps); its seconds per step."""
        bar = None
        if progress and self.proc.is_alive():
            from tqdm.auto import tqdm

            bar = tqdm(total=self.steps, desc="XTB MD", unit="step", initial=self.done.value, smoothing=0.0)
        while self.proc.is_alive():
            self.proc.join(timeout=2.0)
            if bar is not None:
                bar.update(self.done.value - bar.n)
        if bar is not None:
            bar.close()
        if self.proc.exitcode != 0:
            raise RuntimeError(f"the xTB MD process failed (exit code {self.proc.exitcode}); its frames "
                               "are kept, rerun the demo to resume")
        return float(self.seconds_per_step.value)


def _xtb_md_worker(db, md_dir, steps, timestep_fs, temperature_K, segment, done, seconds_per_step):
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from . import run_md
    from .data import make_calculator
    from .workflows import _steps_in, start_from_dataset

    atoms = start_from_dataset(db, split="test")
    calc = make_calculator(backend="tblite", atoms=atoms)
    path = Path(md_dir) / "xtb.h5"
    timing = Path(md_dir) / "xtb_timing.json"
    current = _steps_in(path)
    if current >= steps and timing.is_file():  # finished by an earlier demo run
        done.value = current
        seconds_per_step.value = json.loads(timing.read_text())["seconds_per_step"]
        return
    first = current
    done.value = current
    t0 = time.perf_counter()
    while current < steps:
        target = min(steps, current + segment)
        run_md(calc, atoms, steps=target, timestep_fs=timestep_fs, temperature_K=temperature_K,
               thermostat="nose-hoover", tdamp_fs=100.0, interval=1, trajectory=path,
               restart=path if current > 0 else None)
        current = target
        done.value = current
    seconds_per_step.value = (time.perf_counter() - t0) / max(steps - first, 1)
    timing.write_text(json.dumps({"seconds_per_step": seconds_per_step.value, "steps": steps,
                                  "steps_timed": steps - first}))


def _stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _recorded_model_sha256(traj: Path) -> str | None:
    """sha256 of the model an existing NN trajectory was run with (None: none recorded)."""
    from . import read_trajectory

    try:
        return (read_trajectory(traj).metadata.get("potential") or {}).get("sha256")
    except Exception:  # noqa: BLE001  (unreadable: it is run again)
        return None


def _set_aside(path: Path, why: str) -> None:
    k = 1
    while path.with_name(f"{path.name}.old{k}").exists():
        k += 1
    dest = path.with_name(f"{path.name}.old{k}")
    path.rename(dest)
    print(f"  {path} {why}: moved to {dest.name}", flush=True)


def _train_model(dbs: list, out: Path, sc: Scale, progress: bool) -> tuple[Path, dict, dict]:
    """Train SchNet from scratch for ``sc.epochs`` epochs (seed 0, one thread: the same model
    on any machine), export it once, score it on the test frames."""
    from .train import evaluate, export, train

    run_dir, model_path = out / "run", out / "model.pt"
    cfg_path = run_dir / "run.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        capped = any(s.get("stop_reason") == "max_time" for s in cfg.get("sessions", []))
        beyond = int(cfg.get("epoch") or 0) > sc.epochs
        if capped or beyond:  # an older demo's wall-time-capped run, or a larger budget
            _set_aside(run_dir, "was trained " + ("under a wall-time cap" if capped else
                                                  f"for {cfg.get('epoch')} epochs, not {sc.epochs}"))
            if model_path.exists():
                _set_aside(model_path, "came from that run")
    res = train([Path(p) for p in dbs], run_dir, epochs=sc.epochs, seed=0, progress=progress,
                num_threads=1)
    best = run_dir / "best_model.pt"
    if not model_path.is_file() or model_path.stat().st_mtime < best.stat().st_mtime:
        export(run_dir, model_path)  # the export carries a time stamp: only when the model changed
    metrics = evaluate(run_dir, split="test")
    training = {"epochs_budget": sc.epochs, "epochs_done": res["epoch"], "optimizer_steps": res["global_step"],
                "stop_reason": res["stop_reason"], "seed": 0, "best_val_loss": res["best_val_loss"]}
    return model_path, metrics, training


def run_demo(out: str | Path = "demo", scale: str = "default", train: bool = False,
             progress: bool = True, model: str = DEFAULT_MODEL, backend: str = "auto") -> dict:
    """Run the demo pipeline in ``out``; returns the headline numbers (also in out/headline.json).

    By default the shipped ``model`` runs (with the evaluator ``backend``, see
    :func:`pymotor.load_model`); ``train=True`` trains a SchNet from scratch for the scale's
    epoch budget instead."""
    from . import data, models, read_trajectory
    from .compare import compare
    from .workflows import run_pair, start_from_dataset

    sc = SCALES[scale]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}

    t = _stage(f"1/4 GFN2-xTB reference: {sc.trajectories} x {sc.reference_steps} steps of 0.5 fs at 300 K")
    ref = data.generate_reference(data.cpnx(), out / "data", temperature_K=300.0, steps=sc.reference_steps,
                                  timestep_fs=0.5, equilibrate_fs=sc.equilibrate_fs,
                                  trajectories=sc.trajectories, backend="tblite", seed=0, progress=progress)
    timings["reference_s"] = time.perf_counter() - t
    db = Path(ref["databases"][0])

    # The xTB MD does not depend on the model: it runs in a second process (one core) while
    # the model stage and the NN MD use the other, from the same start as the NN MD below.
    md_dir = out / "md"
    xtb_job = BackgroundXtbMD(db, md_dir, steps=sc.md_steps, timestep_fs=1.0, temperature_K=300.0)

    what = (f"SchNet trained from scratch, {sc.epochs} epochs ({sc.name} scale)" if train else
            f"the shipped {model}, scored on the fresh reference's test frames")
    t = _stage(f"2/4 model: {what}; xTB MD ({sc.md_steps} steps of 1 fs) runs meanwhile in a second process")
    training = None
    if train:
        model_path, metrics, training = _train_model(ref["databases"], out, sc, progress)
        model_info = {"name": "SchNet trained by this demo", "source": "trained", "path": str(model_path.resolve())}
    else:
        from .train import evaluate_model, read_metadata

        model_path = models.path(model)
        # the shipped model never saw this reference: its test frames are independent data
        metrics = evaluate_model(model_path, ref["databases"], split="test")
        card = read_metadata(model_path).get("card") or {}
        model_info = {"name": model, "source": "shipped", "path": str(model_path),
                      "created": card.get("created")}
    model_info["sha256"] = _file_sha256(model_path)
    timings["model_s"] = time.perf_counter() - t

    t = _stage(f"3/4 NN MD ({backend} backend): {sc.md_steps} steps of 1 fs from the last test frame "
               "(the xTB MD's start)")
    start = start_from_dataset(db, split="test")
    nn_path = md_dir / "nn.h5"
    if nn_path.exists() and _recorded_model_sha256(nn_path) != model_info["sha256"]:
        _set_aside(nn_path, "was run with another model")
    pair = run_pair(model_path, start, md_dir, steps=sc.md_steps, timestep_fs=1.0, temperature_K=300.0,
                    xtb_backend=None, progress=progress, backend=backend)
    nn_meta = read_trajectory(pair.nn).metadata
    used_backend = (nn_meta.get("potential") or {}).get("kind", "unknown")
    xtb_s_per_step = xtb_job.wait(progress=progress)
    pair.seconds_per_step["xtb"] = xtb_s_per_step
    pair.xtb = md_dir / "xtb.h5"
    timings["md_s"] = time.perf_counter() - t

    t = _stage("4/4 comparison report")
    report = compare(reference=pair.xtb, candidate=pair.nn, test_metrics=metrics or None,
                     seconds_per_step={"reference": pair.seconds_per_step["xtb"],
                                       "candidate": pair.seconds_per_step["nn"]},
                     requested_steps=sc.md_steps)
    report_dir = out / "report"
    report.write(report_dir)
    timings["report_s"] = time.perf_counter() - t

    summary = json.loads((report_dir / "summary.json").read_text())
    headline = {
        "report": str((report_dir / "index.html").resolve()),
        "scale": sc.name,
        "model": model_info,
        "backend": used_backend,
        "backend_requested": backend,
        "training": training,
        "test_metrics_kcal": metrics,
        "nn_ms_per_step": 1e3 * pair.seconds_per_step["nn"],
        "xtb_ms_per_step": 1e3 * pair.seconds_per_step["xtb"],
        "speedup": pair.seconds_per_step["xtb"] / pair.seconds_per_step["nn"],
        "summary": {
            "rmsf_pearson_r": summary["rmsf"]["pearson_r"],
            "power_spectrum_pearson_r": summary["power_spectrum"]["pearson_r"],
            "distances_jensen_shannon": summary["distances"]["jensen_shannon_distance"],
            "potential_energy_pearson_r": summary["energies"]["potential_energy"]["difference"].get("pearson_r"),
        },
        "stage_seconds": timings,
        "warnings": [w["message"] if isinstance(w, dict) else str(w) for w in summary.get("warnings", [])],
    }
    (out / "headline.json").write_text(json.dumps(headline, indent=2, default=float))
    return headline


def _print_headline(h: dict) -> None:
    print("\n== pymotor demo finished")
    print(f"report: {h['report']}")
    m = h["model"]
    tr = h.get("training")
    if tr:
        model = (f"{m['name']}, {m['path']} ({tr['epochs_done']} of {tr['epochs_budget']} epochs, "
                 f"{tr['optimizer_steps']} optimizer steps, seed {tr['seed']}, stop: {tr['stop_reason']})")
    else:
        model = f"{m['name']} (shipped, created {m.get('created') or '?'})"
    print(f"  model: {model}; MD backend: {h['backend']}")
    for w in h.get("warnings", []):
        print(f"  WARNING: {w}")
    if not h.get("warnings"):
        print("  no warnings: the NN run stayed within the reference's energies, temperatures and bonds")
    mt = h.get("test_metrics_kcal") or {}
    if mt:
        e, f = mt["energy"], mt["forces"]
        print(f"  test MAE: energy {e['mae']:.3f} ± {e['mae_se']:.3f} kcal/mol, "
              f"forces {f['mae']:.3f} ± {f['mae_se']:.3f} kcal/mol/Å ({mt['n_frames']} frames)")
    for k, v in h["summary"].items():
        print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
    print(f"  NN MD {h['nn_ms_per_step']:.2f} ms/step, xTB MD {h['xtb_ms_per_step']:.1f} ms/step, "
          f"speed-up {h['speedup']:.1f}x")
    print("  stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in h["stage_seconds"].items()))


def main(args) -> int:
    scale = "full" if args.full else "tiny" if args.tiny else "default"
    train = bool(getattr(args, "train", False))
    sc = SCALES[scale]
    est = sc.estimate_s(train=train)
    what = (f"SchNet trained from scratch for {sc.epochs} epochs" if train else
            f"the shipped model {DEFAULT_MODEL}; --train trains one from scratch")
    minutes = max(round(est / 60), 1)
    print(f"pymotor demo ({scale} scale): {what}. Expected to take about {minutes} minute"
          f"{'s' if minutes > 1 else ''} on 2 idle CPU cores; work folder {args.out} (rerun to resume)")
    if scale == "full" and not args.yes:
        if input("continue? [y/N] ").strip().lower() not in ("y", "yes"):
            return 1
    h = run_demo(args.out, scale=scale, train=train)
    _print_headline(h)
    return 0
