"""``pymotor demo``: the whole loop on the embedded CPNX motor.

1. GFN2-xTB NVT reference MD (tblite) -> SchNetPack database with a time split;
2. SchNet training (or ``--pretrained``: the shipped ``cpnx-schnet`` model) and export;
3. NN and xTB MD from the same start (the last test frame, with its velocities); the xTB
   MD runs in a second process while the model trains, since it does not need the model;
4. the comparison report (HTML, figures, summary.json).

Every stage is resumable: rerunning the command continues where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Scale:
    name: str
    reference_steps: int       # xTB production steps per trajectory (0.5 fs)
    equilibrate_fs: float
    trajectories: int
    epochs: int
    train_time_s: float | None  # wall-time cap of the training stage
    md_steps: int              # NN and xTB MD steps (1 fs)

    def estimate_s(self, xtb_s: float = 0.055, nn_s: float = 0.01, epoch_s_per_frame: float = 0.02,
                   cores: int = 2) -> float:
        """Expected wall time (s): trajectories run in parallel processes, one per core, and
        the xTB MD runs beside the training."""
        waves = -(-self.trajectories // cores)
        gen = waves * (self.reference_steps + self.equilibrate_fs / 0.5) * xtb_s
        frames = self.trajectories * self.reference_steps * 0.64
        train = self.train_time_s or self.epochs * frames * epoch_s_per_frame
        # xTB MD (1 fs steps: ~2x the SCF work of a 0.5 fs step) overlaps the training
        return gen + max(train + 60.0, self.md_steps * 2 * xtb_s) + self.md_steps * nn_s + 45.0


SCALES = {
    "tiny": Scale("tiny", 60, 10.0, 1, 2, 120.0, 40),
    "default": Scale("default", 1000, 500.0, 2, 200, 240.0, 5000),
    "full": Scale("full", 20000, 2000.0, 2, 1000, 3 * 3600.0, 5000),
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
    from .workflows import _has_state, _steps_in, start_from_dataset

    atoms = start_from_dataset(db, split="test")
    calc = make_calculator(backend="tblite", atoms=atoms)
    path = Path(md_dir) / "xtb.h5"
    timing = Path(md_dir) / "xtb_timing.json"
    current = _steps_in(path) if path.is_file() and _has_state(path) else 0
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


def run_demo(out: str | Path = "demo", scale: str = "default", pretrained: bool = False,
             progress: bool = True) -> dict:
    """Run the demo pipeline in ``out``; returns the headline numbers (also in out/headline.json)."""
    from . import data, models
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
    # the model is trained on the other, from the same start as the NN MD below.
    md_dir = out / "md"
    xtb_job = BackgroundXtbMD(db, md_dir, steps=sc.md_steps, timestep_fs=1.0, temperature_K=300.0)

    t = _stage("2/4 model: " + ("shipped cpnx-schnet" if pretrained else f"SchNet training ({sc.name} scale)")
               + f"; xTB MD ({sc.md_steps} steps of 1 fs) runs meanwhile in a second process")
    metrics = {}
    if pretrained:
        from .train import evaluate_model

        model_path = models.path("cpnx-schnet")
        # the shipped model never saw this reference: its test frames are independent data
        metrics = evaluate_model(model_path, ref["databases"], split="test")
    else:
        from .train import evaluate, export, train

        run_dir = out / "run"
        train([Path(p) for p in ref["databases"]], run_dir, epochs=sc.epochs, seed=0, progress=progress,
              max_time_s=sc.train_time_s)
        model_path = export(run_dir, out / "model.pt")
        metrics = evaluate(run_dir, split="test")
    timings["model_s"] = time.perf_counter() - t

    t = _stage(f"3/4 NN MD: {sc.md_steps} steps of 1 fs from the last test frame (the xTB MD's start)")
    start = start_from_dataset(db, split="test")
    pair = run_pair(model_path, start, md_dir, steps=sc.md_steps, timestep_fs=1.0, temperature_K=300.0,
                    xtb_backend=None, progress=progress)
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
    for w in h.get("warnings", []):
        print(f"  WARNING: {w}")
    if not h.get("warnings"):
        print("  no warnings: the NN run stayed within the reference's energies, temperatures and bonds")
    m = h.get("test_metrics_kcal") or {}
    if m:
        e, f = m["energy"], m["forces"]
        print(f"  test MAE: energy {e['mae']:.3f} ± {e['mae_se']:.3f} kcal/mol, "
              f"forces {f['mae']:.3f} ± {f['mae_se']:.3f} kcal/mol/Å ({m['n_frames']} frames)")
    for k, v in h["summary"].items():
        print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
    print(f"  NN MD {h['nn_ms_per_step']:.2f} ms/step, xTB MD {h['xtb_ms_per_step']:.1f} ms/step, "
          f"speed-up {h['speedup']:.1f}x")
    print("  stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in h["stage_seconds"].items()))


def main(args) -> int:
    scale = "full" if args.full else "tiny" if args.tiny else "default"
    est = SCALES[scale].estimate_s()
    print(f"pymotor demo ({scale} scale): expected to take about {est / 60:.0f} minutes on 2 CPU cores; "
          f"work folder {args.out} (rerun to resume)")
    if scale == "full" and not args.yes:
        if input("continue? [y/N] ").strip().lower() not in ("y", "yes"):
            return 1
    h = run_demo(args.out, scale=scale, pretrained=args.pretrained)
    _print_headline(h)
    return 0
