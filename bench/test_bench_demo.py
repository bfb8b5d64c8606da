"""Cost of each stage of ``pymotor demo`` against the route a user would otherwise take (issue 6).

One benchmark group per demo stage (pymotor/demo.py), each with pymotor's stage and its
competitor on the same input, in the same run, at a small scale (the whole file takes a few
minutes on 2 cores). Units: Angstrom, fs, K, eV (kcal/mol inside the SchNetPack databases and
models); times are seconds of CPU time of this process (``time.process_time``; every stage here
runs in-process and, with ``OMP_NUM_THREADS=1``, in one thread) unless ``PYMOTOR_BENCH_TIMER=wall``.

Groups and competitors (the stage's input in brackets):

* ``demo-1-reference`` (CPNX with 300 K Maxwell-Boltzmann velocities, seed 0):
  ``pymotor.data.generate_reference(steps=REF_STEPS, equilibrate_fs=0, trajectories=1,
  workers=1)`` (in-process: one job runs without a process pool): GFN2-xTB (tblite) NVT MD,
  Nose-Hoover chain 300 K / 0.5 fs / tdamp 100 fs / chain 3, H5MD raw file, isolated-atom
  energies, conformer labels, a SchNetPack database + time split, and the merged database;
  vs ASE ``NoseHooverChainNVT`` (same settings, ``tloop=1``) + ``tblite.ase.TBLite`` writing an
  ASE ``.traj`` and a SchNetPack ``ASEAtomsData`` database (energy, forces, velocities) of the
  same frames plus a time split (no atom energies, no conformer labels, no merged copy).
* ``demo-2-training`` (a DB_STEPS-step tblite database from ``generate_reference``):
  ``pymotor.train.train(epochs=E, batch_size=16)`` for E = 1 and 3 (the difference / 2 is the
  cost of one more epoch, without the set-up) vs the same training written directly with
  SchNetPack 2.2: ``AtomsDataModule`` (same split file, ``load_properties`` energy+forces,
  ``RemoveOffsets`` with the database atomrefs + mean, ``VesinNeighborList(5)``, ``CastTo32``)
  + ``AtomisticTask`` (same SchNet 128/3/20 RBF/5 A, MSE 0.01/0.99, AdamW 1e-3,
  ReduceLROnPlateau) + ``pytorch_lightning.Trainer`` (E epochs, SchNetPack ``ModelCheckpoint``,
  EarlyStopping, EMA 0.995, CSV logger, no sanity check).
* ``demo-3-export`` (the run directory of the training fixture): ``pymotor.train.export``
  (default: val/test metrics for the model card, scripted-vs-Python check, card) and the bare
  export (``metrics=False, check=False, card=False``) vs SchNetPack's ``spkdeploy`` script
  (its own ``save_jit_model``, run in-process: ``torch.load`` + ``torch.jit.script`` + save; the
  command line would add ~2-3 s of interpreter and torch start-up).
* ``demo-4-nn-md`` (the last test frame of the database, with its velocities):
  ``pymotor.run_md`` with the exported model, NN_STEPS steps of 1 fs, H5MD file, vs ASE
  ``NoseHooverChainNVT`` + ``schnetpack.interfaces.SpkCalculator`` (the run's
  ``best_model.pt``, ``VesinNeighborList(5)``) writing an ASE ``.traj``. Same 3N thermostat
  degrees of freedom, so the two trajectories must end at the same positions.
* ``demo-5-xtb-md`` (same start): ``run_md`` with pymotor's tblite calculator, XTB_STEPS
  steps, vs ASE NHC + ``tblite.ase.TBLite``; the calculators are built inside the round.
* ``demo-6-report`` (two REPORT_STEPS-step H5MD trajectories of CPNX in a harmonic well):
  ``pymotor.compare(reference, candidate)`` alone and with ``.write(dir)`` (7 PNG figures,
  HTML, JSON) vs the MDAnalysis route to the same numbers, without figures: positions,
  velocities and energies read with h5py into a ``Universe`` (xyz topology) with a float32
  ``MemoryReader`` (MDAnalysis' own ``H5MDReader`` reads pymotor's files too, but at ~6 ms per
  frame and pass, ~65 s per run for the five passes; not used), one loop over frames with
  ``self_distance_array`` (histogrammed on the same 0.01 A bins) and ``radius_of_gyration``,
  ``AverageStructure`` + ``AlignTraj`` + ``RMSF`` (mass weights), ``Dihedral`` for the two
  motor dihedrals, ``transport_analysis`` ``VelocityAutocorr`` (tidynamics FFT) of which the
  mass-weighted VACF is Hann-tapered and Fourier transformed with numpy (pymotor tapers the
  velocities instead: the spectra differ in windowing, not in cost), numpy sliding-window
  ``corrcoef`` for the four rolling-Pearson windows, scipy Jensen-Shannon/Wasserstein
  distances, a JSON summary. The numbers are checked against pymotor's report (RMSF, Rg,
  distance JS distance, energy correlation).

After pytest-benchmark's tables, the medians (per MD step, epoch, export or report) and the
ratios competitor / pymotor (> 1: pymotor faster) are printed and stored in every benchmark's
``extra_info`` and in the saved JSON under ``"pymotor_demo"``. With ``--benchmark-disable``
every body runs once (smoke mode).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest bench/test_bench_demo.py --benchmark-only -q -s``.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("schnetpack")
pytest.importorskip("tblite")
pytest.importorskip("pytest_benchmark")

from md_settings import TIMER, TIMER_NAME  # noqa: E402  (bench/ is on sys.path under pytest)

pytestmark = [
    pytest.mark.schnetpack,
    pytest.mark.xtb,
    pytest.mark.benchmark(timer=TIMER),
    pytest.mark.filterwarnings("ignore:`torch.jit.[a-z_]+` is deprecated:DeprecationWarning"),
]

TEMPERATURE_K = 300.0
REF_TIMESTEP_FS = 0.5   # reference generation (as the demo)
MD_TIMESTEP_FS = 1.0    # NN and xTB MD (as the demo)
TDAMP_FS = 100.0
CHAIN_LENGTH = 3
CUTOFF_A = 5.0
BATCH_SIZE = 16
LOSS_WEIGHTS = (0.01, 0.99)
REF_STEPS = 20          # steps per round of demo-1
DB_STEPS = 80           # steps of the training database (81 frames: 52 train, 13 val, 16 test)
NN_STEPS = 100
XTB_STEPS = 20
REPORT_STEPS = 2000     # frames - 1 of each report trajectory
ROUNDS = 5
EPOCHS = (1, 3)
#: end positions of the NN/xTB MD competitors must agree with pymotor's to this (Angstrom)
POS_TOL_A = 1e-3


@contextlib.contextmanager
def quiet():
    """Lightning/MDAnalysis/tblite chatter must not fail the run (pyproject: warnings are errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------------------
# results: medians per unit, ratios competitor / pymotor
# ---------------------------------------------------------------------------------------
#: group -> [(competitor key, pymotor key)]: ratios printed and stored
RATIOS = {
    "demo-1-reference": [("ase_nhc_tblite_db", "pymotor_generate_reference")],
    "demo-2-training": [("schnetpack_1_epoch", "pymotor_train_1_epoch"),
                        ("schnetpack_3_epochs", "pymotor_train_3_epochs"),
                        ("schnetpack_per_extra_epoch", "pymotor_train_per_extra_epoch")],
    "demo-3-export": [("spkdeploy", "pymotor_export"), ("spkdeploy", "pymotor_export_bare")],
    "demo-4-nn-md": [("ase_spkcalculator", "pymotor_run_md")],
    "demo-5-xtb-md": [("ase_tblite", "pymotor_run_md_tblite")],
    "demo-6-report": [("mdanalysis_route", "pymotor_compare_write"), ("mdanalysis_route", "pymotor_compare")],
}
_RESULTS: dict = {}
_EXTRA: dict = {}
_END: dict = {}     # group -> pymotor's final positions (A), which the competitor must reach
_REPORT: dict = {}  # pymotor.compare's summary, which the MDAnalysis route must reproduce


def _record(benchmark, key: str, units: int, unit: str, **extra) -> None:
    """Store the median time per ``unit`` of the benchmark that just ran (s) and update the
    ratios of its group in the ``extra_info`` of every benchmark of the group."""
    group = benchmark.group
    benchmark.extra_info.update({"unit": unit, "units_per_round": units, "timer": TIMER_NAME, **extra})
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is None:  # --benchmark-disable
        return
    med = float(stats.median) / units
    benchmark.extra_info[f"median_s_per_{unit}"] = med
    _RESULTS.setdefault(group, {})[key] = {"unit": unit, "median_s": med, "round_median_s": float(stats.median),
                                           "rounds": int(stats.rounds), "timer": TIMER_NAME}
    _EXTRA.setdefault(group, []).append(benchmark.extra_info)
    _derive()
    ratios = _group_ratios(group)
    for info in _EXTRA[group]:
        info["ratios_competitor_over_pymotor"] = ratios


#: derived entries: (group, key, long run, short run, extra units): (long - short) / extra
DERIVED = [("demo-2-training", f"{w}_per_extra_epoch", f"{w}_3_epochs", f"{w}_1_epoch", EPOCHS[1] - EPOCHS[0])
           for w in ("pymotor_train", "schnetpack")]


def _derive() -> None:
    for group, key, long, short, n in DERIVED:
        r = _RESULTS.get(group, {})
        if long in r and short in r:
            r[key] = {"unit": "epoch", "median_s": (r[long]["round_median_s"] - r[short]["round_median_s"]) / n,
                      "round_median_s": None, "rounds": min(r[long]["rounds"], r[short]["rounds"]),
                      "timer": TIMER_NAME, "derived": f"({long} - {short}) / {n}"}


def _group_ratios(group: str) -> dict:
    r = _RESULTS.get(group, {})
    return {f"{c} / {p}": r[c]["median_s"] / r[p]["median_s"] for c, p in RATIOS[group] if c in r and p in r}


class _Summary:
    """Prints the per-stage medians and ratios after pytest-benchmark's tables; saves them."""

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        if not _RESULTS:
            return
        tr = terminalreporter
        tr.section("pymotor demo stages: medians and ratios competitor / pymotor (same run)")
        load = os.getloadavg()
        tr.write_line(f"load average at the end (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
                      f"on {os.cpu_count()} CPUs; timer: {TIMER_NAME}")
        for group in RATIOS:
            if group not in _RESULTS:
                continue
            tr.write_line(group)
            for key, r in _RESULTS[group].items():
                how = r.get("derived") or f"round {r['round_median_s']:.3f} s, {r['rounds']} rounds"
                tr.write_line(f"  {key:30s} {r['median_s'] * 1e3:11.2f} ms per {r['unit']:7s} ({how})")
            for label, v in _group_ratios(group).items():
                tr.write_line(f"  {v:8.2f}x  {label}")

    def pytest_benchmark_update_json(self, config, benchmarks, output_json):
        if _RESULTS:
            output_json["pymotor_demo"] = {"per_unit": _RESULTS, "ratios": {g: _group_ratios(g) for g in RATIOS},
                                           "loadavg_at_save": list(os.getloadavg())}


@pytest.fixture(scope="module", autouse=True)
def _summary_plugin(request):
    pm = request.config.pluginmanager
    if not pm.has_plugin("pymotor_demo_bench"):
        pm.register(_Summary(), "pymotor_demo_bench")


def _bench(benchmark, group, fn, setup=None, rounds=ROUNDS):
    benchmark.group = group
    return benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)


class _Dirs:
    """Fresh numbered folders under ``root`` (one per round; made in the untimed setup)."""

    def __init__(self, root: Path):
        self.root, self.k = Path(root), 0

    def __call__(self) -> Path:
        self.k += 1
        d = self.root / f"r{self.k}"
        d.mkdir(parents=True)
        return d


def _nhc(atoms, calc, timestep_fs, trajectory=None):
    """ASE's Nose-Hoover chain with the demo's settings (tloop=1: one Suzuki-Yoshida sweep)."""
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    atoms.calc = calc
    return NoseHooverChainNVT(atoms, timestep=timestep_fs * units.fs, temperature_K=TEMPERATURE_K,
                              tdamp=TDAMP_FS * units.fs, tchain=CHAIN_LENGTH, tloop=1,
                              trajectory=None if trajectory is None else str(trajectory))


def _md_kwargs(n_atoms, steps):
    """run_md settings of the demo's MD stage, with ASE's 3N thermostat degrees of freedom."""
    return dict(timestep_fs=MD_TIMESTEP_FS, temperature_K=TEMPERATURE_K, thermostat="nose-hoover",
                tdamp_fs=TDAMP_FS, chain_length=CHAIN_LENGTH, n_substeps=1, suzuki_yoshida_order=3,
                n_dof=3.0 * n_atoms, chunk_steps=steps, torch_threads=1)


# ---------------------------------------------------------------------------------------
# shared inputs
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("demo_bench")


@pytest.fixture(scope="module")
def reference_db(start_state, work):
    """A DB_STEPS-step GFN2-xTB reference database (pymotor's generate_reference): the input
    of the training, export and MD stages. Returns the generate_reference dict."""
    import pymotor

    return pymotor.data.generate_reference(start_state, work / "T300", steps=DB_STEPS, equilibrate_fs=0.0,
                                           trajectories=1, backend="tblite", progress=False, workers=1)


@pytest.fixture(scope="module")
def trained_run(reference_db, work):
    """pymotor's 1-epoch run directory on the reference database."""
    from pymotor.train import train

    run = work / "run"
    train(reference_db["databases"][0], run, epochs=1, batch_size=BATCH_SIZE, seed=0, progress=False,
          device="cpu", num_threads=1)
    return run


@pytest.fixture(scope="module")
def exported_model(trained_run, work):
    from pymotor.train import export

    return export(trained_run, work / "model.pt")


@pytest.fixture(scope="module")
def md_start(reference_db):
    """The demo's MD start: the last test frame of the database, with its velocities."""
    from pymotor.workflows import start_from_dataset

    return start_from_dataset(reference_db["databases"][0], split="test")


# ---------------------------------------------------------------------------------------
# 1. reference generation
# ---------------------------------------------------------------------------------------
def test_reference_pymotor(benchmark, start_state, work):
    import pymotor

    dirs = _Dirs(work / "ref_pymotor")
    out = {}

    def setup():
        return (dirs() / "T300",), {}

    def run(folder):
        out["res"] = pymotor.data.generate_reference(
            start_state, folder, steps=REF_STEPS, equilibrate_fs=0.0, trajectories=1, backend="tblite",
            progress=False, workers=1)

    _bench(benchmark, "demo-1-reference", run, setup)
    traj = pymotor.read_trajectory(Path(out["res"]["out"]) / "raw" / "T300_1.h5")
    assert len(traj.step) == REF_STEPS + 1
    _END["demo-1-reference"] = traj.positions[-1]
    _record(benchmark, "pymotor_generate_reference", REF_STEPS, "step", steps_per_round=REF_STEPS,
            timestep_fs=REF_TIMESTEP_FS, frames=REF_STEPS + 1)


def _ase_reference(atoms, folder: Path, steps: int):
    """The ASE route to a reference database: NHC + tblite, an ASE trajectory and a
    SchNetPack database (kcal/mol, Angstrom, Angstrom/fs) of the same frames + a time split."""
    from ase import units
    from schnetpack.data import ASEAtomsData
    from tblite.ase import TBLite

    atoms = atoms.copy()
    dyn = _nhc(atoms, TBLite(method="GFN2-xTB", verbosity=0), REF_TIMESTEP_FS, folder / "md.traj")
    frames = []

    def collect():
        frames.append((atoms.copy(), atoms.get_potential_energy(), atoms.get_forces(), atoms.get_velocities()))

    dyn.attach(collect, interval=1)
    dyn.run(steps)
    kcal = units.kcal / units.mol
    db = ASEAtomsData.create(str(folder / "T300.db"), distance_unit="Ang",
                             property_unit_dict={"energy": "kcal/mol", "forces": "kcal/mol/Ang",
                                                 "velocities": "Ang/fs"})
    for a, _, _, _ in frames:
        a.calc = None
    db.add_systems([{"energy": np.array([e / kcal]), "forces": f / kcal, "velocities": v * units.fs}
                    for _, e, f, v in frames], [a for a, _, _, _ in frames])
    n = len(frames)
    n_test = int(round(0.2 * n))
    n_val = int(round(0.2 * (n - n_test)))
    idx = np.arange(n)
    np.savez(folder / "T300_split.npz", train_idx=idx[:n - n_test - n_val],
             val_idx=idx[n - n_test - n_val:n - n_test], test_idx=idx[n - n_test:])
    return atoms, n


def test_reference_ase(benchmark, start_state, work):
    dirs = _Dirs(work / "ref_ase")
    out = {}

    def setup():
        return (dirs(),), {}

    def run(folder):
        out["atoms"], out["n"] = _ase_reference(start_state, folder, REF_STEPS)

    with quiet():
        _bench(benchmark, "demo-1-reference", run, setup)
    assert out["n"] == REF_STEPS + 1
    extra = {}
    end = _END.get("demo-1-reference")
    if end is not None:  # pymotor's thermostat has 3N - 6 degrees of freedom here, ASE's 3N
        extra["max_dpos_vs_pymotor_A"] = d = float(np.abs(out["atoms"].positions - end).max())
        assert d < 0.05, f"ASE's reference run ends {d:.3g} A away from pymotor's: not the same dynamics"
    _record(benchmark, "ase_nhc_tblite_db", REF_STEPS, "step", steps_per_round=REF_STEPS,
            timestep_fs=REF_TIMESTEP_FS, frames=REF_STEPS + 1, **extra)


# ---------------------------------------------------------------------------------------
# 2. training (1 epoch)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("epochs", EPOCHS)
def test_training_pymotor(benchmark, reference_db, work, epochs):
    from pymotor.train import train

    dirs = _Dirs(work / f"train_pymotor_{epochs}")
    db = reference_db["databases"][0]
    out = {}

    def setup():
        return (dirs() / "run",), {}

    def run(folder):
        out["res"] = train(db, folder, epochs=epochs, batch_size=BATCH_SIZE, seed=0, loss_weights=LOSS_WEIGHTS,
                           progress=False, device="cpu", num_threads=1)

    _bench(benchmark, "demo-2-training", run, setup)
    assert out["res"]["epoch"] == epochs and out["res"]["best_val_loss"] is not None
    _record(benchmark, f"pymotor_train_{epochs}_epoch" + "s" * (epochs > 1), 1, "call", epochs=epochs,
            global_step=out["res"]["global_step"])


def _schnetpack_training(db: str, split_file: str, folder: Path, epochs: int):
    """The same training written directly with SchNetPack 2.2 + Lightning."""
    import pytorch_lightning as pl
    import schnetpack as spk
    import schnetpack.transform as trn
    import torch
    import torchmetrics
    from pytorch_lightning.callbacks import EarlyStopping
    from pytorch_lightning.loggers import CSVLogger

    pl.seed_everything(0, verbose=False)
    dm = spk.data.AtomsDataModule(
        db, batch_size=BATCH_SIZE, val_batch_size=64, split_file=split_file,
        load_properties=["energy", "forces"], num_workers=0, pin_memory=False,
        property_units={"energy": "kcal/mol", "forces": "kcal/mol/Ang"}, distance_unit="Ang",
        transforms=[trn.SubtractCenterOfMass(), trn.RemoveOffsets("energy", remove_mean=True, remove_atomrefs=True),
                    trn.VesinNeighborList(cutoff=CUTOFF_A), trn.CastTo32()])
    model = spk.model.NeuralNetworkPotential(
        representation=spk.representation.SchNet(
            n_atom_basis=128, n_interactions=3, radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=CUTOFF_A),
            cutoff_fn=spk.nn.CosineCutoff(CUTOFF_A)),
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=128, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")],
        postprocessors=[trn.CastTo64(), trn.AddOffsets("energy", add_mean=True, add_atomrefs=True)])

    def metrics():
        return {"mae": torchmetrics.regression.MeanAbsoluteError(),
                "rmse": torchmetrics.regression.MeanSquaredError(squared=False)}

    task = spk.task.AtomisticTask(
        model=model,
        outputs=[spk.task.ModelOutput(name=n, loss_fn=torch.nn.MSELoss(), loss_weight=w, metrics=metrics())
                 for n, w in zip(("energy", "forces"), LOSS_WEIGHTS)],
        optimizer_cls=torch.optim.AdamW, optimizer_args={"lr": 1e-3},
        scheduler_cls=spk.train.ReduceLROnPlateau,
        scheduler_args={"mode": "min", "factor": 0.5, "patience": 25, "min_lr": 1e-6},
        scheduler_monitor="val_loss")
    callbacks = [spk.train.ModelCheckpoint(model_path=str(folder / "best_model.pt"), dirpath=str(folder / "ckpt"),
                                           monitor="val_loss", mode="min", save_top_k=1, save_last=True),
                 EarlyStopping(monitor="val_loss", patience=75, mode="min"),
                 spk.train.ExponentialMovingAverage(decay=0.995)]
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks,
                         logger=CSVLogger(save_dir=str(folder), name="logs"), default_root_dir=str(folder),
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         inference_mode=False)
    # SchNetPack takes an inter-process lock "splitting.lock" in the working directory
    with contextlib.chdir(folder):
        trainer.fit(task, datamodule=dm)
    return trainer


@pytest.mark.parametrize("epochs", EPOCHS)
def test_training_schnetpack(benchmark, reference_db, work, epochs):
    dirs = _Dirs(work / f"train_spk_{epochs}")
    out = {}
    db, split = reference_db["databases"][0], reference_db["splits"][0]

    def setup():
        return (dirs(),), {}

    def run(folder):
        out["trainer"] = _schnetpack_training(db, split, folder, epochs)
        out["folder"] = folder

    with quiet():
        _bench(benchmark, "demo-2-training", run, setup)
    assert out["trainer"].current_epoch == epochs and (out["folder"] / "best_model.pt").is_file()
    _record(benchmark, f"schnetpack_{epochs}_epoch" + "s" * (epochs > 1), 1, "call", epochs=epochs,
            global_step=int(out["trainer"].global_step))


# ---------------------------------------------------------------------------------------
# 3. export
# ---------------------------------------------------------------------------------------
def _fresh_run_copy(trained_run, dirs):
    """A copy of the run directory without cached metrics (export evaluates them anew)."""
    dst = dirs() / "run"
    shutil.copytree(trained_run, dst, ignore=shutil.ignore_patterns("metrics_*.json"))
    return dst


@pytest.mark.parametrize("variant", ["default", "bare"])
def test_export_pymotor(benchmark, trained_run, work, variant):
    from pymotor.train import export

    dirs = _Dirs(work / f"export_pymotor_{variant}")
    kw = {} if variant == "default" else dict(metrics=False, check=False, card=False)
    out = {}

    def setup():
        return (_fresh_run_copy(trained_run, dirs),), {}

    def run(run_dir):
        out["path"] = export(run_dir, run_dir.parent / "model.pt", **kw)

    _bench(benchmark, "demo-3-export", run, setup)
    assert out["path"].is_file()
    _record(benchmark, "pymotor_export" if variant == "default" else "pymotor_export_bare", 1, "export",
            options=kw or "defaults (metrics, check, card)")


def test_export_spkdeploy(benchmark, trained_run, exported_model, md_start, work):
    import runpy
    import sys

    import torch

    script = shutil.which("spkdeploy") or str(Path(sys.executable).parent / "spkdeploy")
    deploy = runpy.run_path(script, run_name="spkdeploy")  # its functions, not its __main__
    dirs = _Dirs(work / "export_spk")
    out = {}

    def setup():
        return (dirs() / "deployed.pt",), {}

    def run(path):
        model = torch.load(trained_run / "best_model.pt", map_location="cpu", weights_only=False)
        deploy["save_jit_model"](model, str(path))
        out["path"] = path

    _bench(benchmark, "demo-3-export", run, setup)
    # same model: spkdeploy's file (offsets inside, float32) vs pymotor's (+ float64 offset)
    import pymotor

    e_spk = _spk_energy_eV(torch.jit.load(str(out["path"])), md_start)
    atoms = md_start.copy()
    atoms.calc = pymotor.ModelCalculator(pymotor.load_model(exported_model, backend="torchscript"))
    e_pm = atoms.get_potential_energy()
    d = abs(e_spk - e_pm)  # spkdeploy adds the ~1e5 kcal/mol offset in float32
    assert d < 5e-2, f"spkdeploy's model gives {e_spk} eV, pymotor's export {e_pm} eV"
    _record(benchmark, "spkdeploy", 1, "export", abs_dE_vs_pymotor_eV=d)


def _spk_energy_eV(model, atoms) -> float:
    import schnetpack as spk
    import torch
    from schnetpack.interfaces import AtomsConverter
    from schnetpack.units import convert_units

    conv = AtomsConverter(neighbor_list=spk.transform.VesinNeighborList(cutoff=CUTOFF_A), dtype=torch.float32)
    return float(model(conv(atoms))["energy"].double().item()) * convert_units("kcal/mol", "eV")


# ---------------------------------------------------------------------------------------
# 4./5. NN and xTB MD
# ---------------------------------------------------------------------------------------
def _pymotor_md(benchmark, group, key, make_model, md_start, work, steps):
    import pymotor

    dirs = _Dirs(work / key)
    out = {}

    def setup():
        return (make_model(), dirs() / "md.h5"), {}

    def run(model, path):
        out["traj"] = pymotor.run_md(model, md_start, steps, trajectory=path, **_md_kwargs(len(md_start), steps))

    _bench(benchmark, group, run, setup)
    assert out["traj"].step[-1] == steps
    _END[group] = out["traj"].positions[-1]
    _record(benchmark, key, steps, "step", steps_per_round=steps, timestep_fs=MD_TIMESTEP_FS)


def _ase_md(benchmark, group, key, make_calc, md_start, work, steps):
    dirs = _Dirs(work / key)
    out = {}

    def setup():
        atoms = md_start.copy()
        return (atoms, _nhc(atoms, make_calc(), MD_TIMESTEP_FS, dirs() / "md.traj")), {}

    def run(atoms, dyn):
        dyn.run(steps)
        out["atoms"], out["dyn"] = atoms, dyn

    with quiet():
        _bench(benchmark, group, run, setup)
    assert out["dyn"].nsteps == steps
    extra = {}
    if group in _END:
        extra["max_dpos_vs_pymotor_A"] = d = float(np.abs(out["atoms"].positions - _END[group]).max())
        assert d < POS_TOL_A, f"{key}: ends {d:.3g} A away from pymotor's run: not the same dynamics"
    _record(benchmark, key, steps, "step", steps_per_round=steps, timestep_fs=MD_TIMESTEP_FS, **extra)


def test_nn_md_pymotor(benchmark, exported_model, md_start, work):
    import pymotor

    model = pymotor.load_model(exported_model, backend="torchscript")  # the route measured in BENCHMARKS.md
    _pymotor_md(benchmark, "demo-4-nn-md", "pymotor_run_md", lambda: model, md_start, work, NN_STEPS)


def test_nn_md_ase_spkcalculator(benchmark, trained_run, md_start, work):
    import schnetpack as spk
    from schnetpack.interfaces import SpkCalculator

    with quiet():
        calc = SpkCalculator(str(trained_run / "best_model.pt"),
                             neighbor_list=spk.transform.VesinNeighborList(cutoff=CUTOFF_A),
                             energy_unit="kcal/mol", position_unit="Angstrom")
    _ase_md(benchmark, "demo-4-nn-md", "ase_spkcalculator", lambda: calc, md_start, work, NN_STEPS)


def test_xtb_md_pymotor(benchmark, md_start, work):
    from pymotor.data import make_calculator

    _pymotor_md(benchmark, "demo-5-xtb-md", "pymotor_run_md_tblite",
                lambda: make_calculator(backend="tblite", atoms=md_start), md_start, work, XTB_STEPS)


def test_xtb_md_ase_tblite(benchmark, md_start, work):
    from tblite.ase import TBLite

    _ase_md(benchmark, "demo-5-xtb-md", "ase_tblite", lambda: TBLite(method="GFN2-xTB", verbosity=0),
            md_start, work, XTB_STEPS)


# ---------------------------------------------------------------------------------------
# 6. comparison report
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report_inputs(cpnx, make_start, work):
    """Two REPORT_STEPS-step NVT runs (1 fs, every step saved) of CPNX tethered to its minimum
    (pymotor.HarmonicPotential, k = 5 eV/A^2; different start velocities), an xyz topology for
    MDAnalysis and the motor dihedral quadruples."""
    import ase.io

    import pymotor
    from pymotor.data.conformers import find_motor_atoms

    folder = work / "report_inputs"
    folder.mkdir()
    pot = pymotor.HarmonicPotential(5.0, cpnx.get_positions())
    paths = []
    for seed, name in ((1, "xtb"), (2, "nn")):
        p = folder / f"{name}.h5"
        pymotor.run_md(pot, make_start(cpnx, seed), REPORT_STEPS, timestep_fs=MD_TIMESTEP_FS,
                       temperature_K=TEMPERATURE_K, trajectory=p)
        paths.append(p)
    top = folder / "cpnx.xyz"
    ase.io.write(top, cpnx, format="xyz")
    motor = find_motor_atoms(cpnx)
    return {"paths": paths, "topology": top, "quads": [list(motor.beta), list(motor.delta)]}


@pytest.mark.parametrize("write", [True, False], ids=["compare+write", "compare"])
def test_report_pymotor(benchmark, report_inputs, work, write):
    import pymotor

    dirs = _Dirs(work / f"report_pymotor_{int(write)}")
    out = {}

    def setup():
        return (dirs(),), {}

    def run(folder):
        out["report"] = rep = pymotor.compare(reference=report_inputs["paths"][0], candidate=report_inputs["paths"][1])
        if write:
            rep.write(folder)

    _bench(benchmark, "demo-6-report", run, setup)
    _REPORT["summary"] = out["report"].summary
    _record(benchmark, "pymotor_compare_write" if write else "pymotor_compare", 1, "report",
            frames=REPORT_STEPS + 1, figures=len(out["report"].figures) if write else 0)


DISTANCE_BINS_A = np.linspace(0.0, 30.0, 3001)  # as pymotor.compare
WINDOWS_STEPS = (100, 250, 500, 1000)


def _mdanalysis_run(path, topology, quads):
    """Per-run quantities with MDAnalysis (+ transport_analysis for the VACF)."""
    import h5py
    import MDAnalysis as mda
    from MDAnalysis.analysis import align, rms
    from MDAnalysis.analysis.dihedrals import Dihedral
    from MDAnalysis.coordinates.memory import MemoryReader
    from MDAnalysis.lib.distances import self_distance_array
    from transport_analysis.velocityautocorr import VelocityAutocorr

    with h5py.File(path, "r") as f:  # MDAnalysis' own H5MD reader costs ~6 ms per frame and pass
        energies = {k: f[f"observables/{k}/value"][:] for k in ("potential_energy", "kinetic_energy")}
        pos, vel = (f[f"particles/trajectory/{k}/value"][:] for k in ("position", "velocity"))
        t_fs = f["particles/trajectory/position/time"][:2]
    u = mda.Universe(str(topology))
    u.load_new(pos, format=MemoryReader, velocities=vel, dt=float(t_fs[1] - t_fs[0]))
    ag = u.atoms
    n, n_pairs = len(u.trajectory), len(ag) * (len(ag) - 1) // 2
    dist, rg = np.empty((n, n_pairs)), np.empty(n)
    for k, _ in enumerate(u.trajectory):
        dist[k] = self_distance_array(ag.positions)
        rg[k] = ag.radius_of_gyration()
    hist = np.histogram(dist, bins=DISTANCE_BINS_A)[0]
    angles = Dihedral([ag[q] for q in quads]).run().results.angles
    vacf = VelocityAutocorr(ag, fft=True).run().results.vacf_by_particle  # (frames, atoms), (A/fs)^2
    c = vacf @ ag.masses / ag.masses.sum()
    m = 1 << (2 * n - 1).bit_length()
    dt_fs = float(t_fs[1] - t_fs[0])
    power = np.abs(np.fft.rfft(c * np.hanning(2 * n)[n:], n=m))
    nu_cm = np.fft.rfftfreq(m, d=dt_fs * 1e-15) / 2.99792458e10
    avg = align.AverageStructure(u, u, select="all", weights="mass", ref_frame=0).run()
    align.AlignTraj(u, avg.results.universe, select="all", weights="mass", in_memory=True).run()
    rmsf = rms.RMSF(ag).run().results.rmsf
    return {"energies": energies, "hist": hist, "dist_mean": float(dist.mean()), "rg": rg, "angles": angles,
            "nu": nu_cm, "power": power, "rmsf": rmsf}


def _mdanalysis_report(paths, topology, quads, folder: Path) -> dict:
    """The numbers of pymotor.compare's summary by the MDAnalysis route, written as JSON."""
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import pearsonr, wasserstein_distance

    a, b = (_mdanalysis_run(p, topology, quads) for p in paths)
    s = {"energies": {}, "rolling_pearson": {}}
    for name in ("potential_energy", "kinetic_energy"):
        x, y = a["energies"][name], b["energies"][name]
        s["energies"][name] = {"rmse_eV": float(np.sqrt(np.mean((y - x) ** 2))),
                               "pearson_r": float(pearsonr(x, y)[0]),
                               "xTB": {"mean": float(x.mean()), "std": float(x.std())},
                               "NN": {"mean": float(y.mean()), "std": float(y.std())}}
        for w in WINDOWS_STEPS:
            xw, yw = (sliding_window_view(v, w) for v in (x, y))
            xc, yc = xw - xw.mean(1, keepdims=True), yw - yw.mean(1, keepdims=True)
            r = (xc * yc).sum(1) / np.sqrt((xc * xc).sum(1) * (yc * yc).sum(1))
            s["rolling_pearson"].setdefault(name, {})[f"window_{w}_steps"] = {"mean": float(np.mean(r)),
                                                                             "min": float(r.min())}
    s["rmsf"] = {"pearson_r": float(pearsonr(a["rmsf"], b["rmsf"])[0]),
                 "xTB": a["rmsf"].tolist(), "NN": b["rmsf"].tolist()}
    centres = 0.5 * (DISTANCE_BINS_A[1:] + DISTANCE_BINS_A[:-1])
    s["distances"] = {"jensen_shannon_distance": float(jensenshannon(a["hist"], b["hist"], base=2)),
                      "wasserstein_distance_A": float(wasserstein_distance(centres, centres, a["hist"], b["hist"])),
                      "xTB_mean_A": a["dist_mean"], "NN_mean_A": b["dist_mean"]}
    edges = np.linspace(min(a["rg"].min(), b["rg"].min()), max(a["rg"].max(), b["rg"].max()), 61)
    s["radius_of_gyration"] = {"wasserstein_distance_A": float(wasserstein_distance(a["rg"], b["rg"])),
                               "jensen_shannon_distance": float(jensenshannon(np.histogram(a["rg"], edges)[0],
                                                                              np.histogram(b["rg"], edges)[0], base=2)),
                               "xTB_mean_A": float(a["rg"].mean()), "NN_mean_A": float(b["rg"].mean())}
    grid = a["nu"][a["nu"] <= 4000.0]
    s["power_spectrum"] = {"pearson_r": float(pearsonr(np.interp(grid, a["nu"], a["power"]),
                                                        np.interp(grid, b["nu"], b["power"]))[0]),
                           "xTB_peak_cm-1": float(a["nu"][np.argmax(a["power"])]),
                           "NN_peak_cm-1": float(b["nu"][np.argmax(b["power"])])}
    s["conformers"] = {}
    for lab, r in (("xTB", a), ("NN", b)):  # M: beta < 0, P: beta > 0; syn: delta < 0, anti: delta > 0
        helix = np.where(r["angles"][:, 0] < 0, "M", "P")
        side = np.where(r["angles"][:, 1] < 0, "syn", "anti")
        labels = np.char.add(np.char.add(side, "-"), helix)
        s["conformers"][lab] = {k: float(np.mean(labels == k)) for k in ("syn-M", "anti-M", "syn-P", "anti-P")}
    (folder / "summary.json").write_text(json.dumps(s, indent=2))
    return s


def test_report_mdanalysis(benchmark, report_inputs, work):
    dirs = _Dirs(work / "report_mda")
    out = {}

    def setup():
        return (dirs(),), {}

    def run(folder):
        out["s"] = _mdanalysis_report(report_inputs["paths"], report_inputs["topology"], report_inputs["quads"], folder)

    with quiet():
        _bench(benchmark, "demo-6-report", run, setup)
    s, ref = out["s"], _REPORT.get("summary")
    extra = {}
    if ref is not None:  # same numbers as pymotor's report (MDAnalysis works in float32)
        d_rmsf = max(float(np.abs(np.asarray(s["rmsf"][k]) - np.asarray(ref["rmsf"][k]["per_atom_A"])).max())
                     for k in ("xTB", "NN"))
        d_rg = abs(s["radius_of_gyration"]["NN_mean_A"] - ref["radius_of_gyration"]["NN"]["mean_A"])
        d_js = abs(s["distances"]["jensen_shannon_distance"] - ref["distances"]["jensen_shannon_distance"])
        d_pe = abs(s["energies"]["potential_energy"]["pearson_r"]
                   - ref["energies"]["potential_energy"]["difference"]["pearson_r"])
        d_conf = max(abs(s["conformers"][k][c] - ref["conformers"][k]["populations"][c])
                     for k in ("xTB", "NN") for c in s["conformers"][k])
        extra = {"max_abs_d_rmsf_A": d_rmsf, "abs_d_rg_mean_A": d_rg, "abs_d_js_distances": d_js,
                 "abs_d_pe_pearson": d_pe, "max_abs_d_conformer_population": d_conf,
                 "spectrum_peak_cm-1": [s["power_spectrum"]["NN_peak_cm-1"], ref["power_spectrum"]["NN"]["peak_cm-1"]]}
        assert d_rmsf < 1e-3 and d_rg < 1e-4 and d_js < 1e-3 and d_pe < 1e-9 and d_conf < 1e-3, extra
    _record(benchmark, "mdanalysis_route", 1, "report", frames=REPORT_STEPS + 1, **extra)
