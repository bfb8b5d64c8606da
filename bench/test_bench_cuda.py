"""MD step on a GPU (issue 20): pymotor's TorchScript backend on CUDA against the CPU fast
backend and schnetpack.md on the same GPU, for 1, 32, 256 and 1024 CPNX replicas.

Skipped without a CUDA device. ``PYMOTOR_BENCH_CUDA_DEVICE=cpu`` runs the same code with
``"cpu"`` in place of ``"cuda"`` (small sizes, to check the file's logic on a CPU machine;
its numbers mean nothing).

**Model.** The benchmarks' random-weight SchNetPack 2.2 SchNet (128 features, 3 interactions,
20 Gaussian RBF, cosine cutoff 5 Angstrom, kcal/mol; ``bench/conftest.py``), scripted as
``spkdeploy`` does. Without schnetpack, tests/torch_models.py's ``TinySchNet`` with the same
widths (128 features, 20 RBF, 3 interactions) stands in: then the fast backend and
schnetpack.md are skipped with a message and only pymotor CUDA vs pymotor CPU TorchScript
is measured.

**System and dynamics.** R copies of CPNX (48 atoms, isolated), each rattled by 0.05 Angstrom
(seed 100 + r), Maxwell-Boltzmann velocities at 300 K (seed 1000 + r, zero total and angular
momentum); NVT Nose-Hoover chain (300 K, 0.5 fs, 100 fs, chain of 3, 3N degrees of freedom
per replica, one Suzuki-Yoshida order-3 sweep), as bench/README.md's MD benchmarks.

**Competitors** (every one runs exactly ``WARMUP + STEPS[R]`` MD steps from the same start):

* ``cuda_torchscript``: ``pymotor.Model(path, device="cuda")`` (frozen module, optimising
  executor: the CUDA default) in ``pymotor._core.Simulation``: C++ Verlet list and float64
  integration on the host, one batched model call per step on the GPU. Before the MD, 4 force
  calls on other geometries let the optimising executor specialise (time of the first one
  recorded), then 5 bare force calls on the start geometry are timed (``force_call_ms``: the
  step minus the integrator);
* ``cuda_torchscript_interp``: the same with ``jit_optimize=False`` (plain interpreter, the CPU
  default): does TorchScript's fusion pay on the GPU?
* ``cpu_fast_1`` / ``cpu_fast_all``: ``load_model(path, backend="fast")`` (C++ SchNet) with
  ``n_threads=1`` and with ``n_threads=os.cpu_count()`` (OpenMP over replicas);
* ``cpu_torchscript`` (R <= 32 only; ~15 ms per replica-step): the same TorchScript file on the
  CPU, one thread;
* ``schnetpack_md_cuda``: ``schnetpack.md.Simulator`` (VelocityVerlet + NHCThermostat +
  SchNetPackCalculator, ``NeighborListMD(cutoff 5, shell 1)`` over ``TorchNeighborList``, which
  runs on the GPU; ``PYMOTOR_BENCH_SPK_NBL=vesin`` uses Vesin on the host) in float32 on CUDA,
  ``n_replicas=R``. ``simulate(n)`` computes forces once before its n steps; that extra call is
  timed separately and subtracted (``ms_per_step``), the raw time is kept too.

**Timer.** Wall clock (``time.perf_counter``) around ``Simulation.run(STEPS)`` /
``Simulator.simulate(STEPS)`` after ``WARMUP`` steps; the GPU is synchronised before the clock
stops (pymotor copies forces back every step, so its steps end synchronised anyway).

**Same work, checked.** The start energies of every competitor equal the CUDA run's (|dE| <
2e-4 eV for every replica), and the end positions after ``WARMUP + STEPS`` steps agree (max
|dr| < 1e-3 Angstrom; schnetpack.md integrates in float32).

**Roofline.** FLOPs and bytes per replica-step of the TorchScript SchNet (counted from the
model's widths and the measured pair count; see docs/gpu.md) against the GPU's FP32 GEMM rate
and copy bandwidth measured in the same run; printed and saved.

**Output.** A table per size (ms per step, ms per replica-step, ratios) printed at the end and
written, with everything else, to ``$PYMOTOR_BENCH_OUT`` (JSON) and the same name with ``.md``.

Run (GPU machine): ``python -m pytest bench/test_bench_cuda.py -s -v``; sizes and steps:
``PYMOTOR_BENCH_CUDA_SIZES=1,32,256,1024`` (default), ``PYMOTOR_BENCH_CUDA_STEPS=20,10,5,3``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

DEVICE = os.environ.get("PYMOTOR_BENCH_CUDA_DEVICE", "cuda")
if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    pytest.skip("needs a CUDA device (torch.cuda.is_available() is False); PYMOTOR_BENCH_CUDA_DEVICE=cpu "
                "runs this file's logic on the CPU", allow_module_level=True)

from md_settings import (  # noqa: E402  (bench/ is on sys.path under pytest)
    CHAIN_LENGTH,
    CUTOFF_A,
    SEED,
    TDAMP_FS,
    TEMPERATURE_K,
    TIMESTEP_FS,
)

pytestmark = [
    pytest.mark.cuda,
    # a benchmark on a borrowed GPU must not die of a library's deprecation notice
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

_DEFAULT_SIZES = "1,32,256,1024" if DEVICE.startswith("cuda") else "1,4"
SIZES = [int(s) for s in os.environ.get("PYMOTOR_BENCH_CUDA_SIZES", _DEFAULT_SIZES).split(",")]
_steps_env = os.environ.get("PYMOTOR_BENCH_CUDA_STEPS")
_DEFAULT_STEPS = {1: 20, 32: 10, 256: 5, 1024: 3}
STEPS = ({r: int(s) for r, s in zip(SIZES, _steps_env.split(","))} if _steps_env
         else {r: _DEFAULT_STEPS.get(r, 3 if r > 256 else 5) for r in SIZES})
WARMUP = int(os.environ.get("PYMOTOR_BENCH_CUDA_WARMUP", "2"))
CPU_TORCHSCRIPT_MAX_R = 32
SPK_NBL = os.environ.get("PYMOTOR_BENCH_SPK_NBL", "torch")
E_TOL_EV = 2e-4
DPOS_TOL_A = 1e-3
NO_FRAMES = 1 << 40  # Simulation.run interval: record no frames
MAX_FORCE = 1e3

_RES: dict = {"device": DEVICE, "sizes": SIZES, "steps": STEPS, "warmup_steps": WARMUP, "runs": {},
              "skipped": {}, "checks": {}}


def _sync():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------
# Model, start states
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bench_model(tmp_path_factory):
    """The model file: SchNetPack SchNet 128/3/20 (kcal/mol) or, without schnetpack, TinySchNet
    with the same widths (eV)."""
    folder = tmp_path_factory.mktemp("cuda_bench_model")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from torch_models import TinySchNet, pymotor_metadata, save_model, spk_schnet

    why = None
    if os.environ.get("PYMOTOR_BENCH_CUDA_MODEL", "schnetpack") == "tiny":
        why = "PYMOTOR_BENCH_CUDA_MODEL=tiny"
    else:
        try:
            import schnetpack  # noqa: F401
        except Exception as exc:  # missing, or broken against this image's lightning/torch
            why = f"schnetpack not importable ({exc})"
    if why:
        path = save_model(TinySchNet(cutoff=CUTOFF_A, n_features=128, n_rbf=20, n_interactions=3, seed=0),
                          folder / "tiny128.pt", metadata=pymotor_metadata(cutoff=CUTOFF_A, elements=(1, 6, 8)))
        _RES["model"] = f"TinySchNet 128 features / 3 interactions / 20 RBF ({why})"
        _RES["skipped"]["schnetpack"] = f"{why}: fast backend and schnetpack.md skipped"
        return dict(kind="tiny", script=path, pickle=None, units={}, widths=(128, 128, 20, 3, [8]))
    from pymotor.train.export import script_model

    model = spk_schnet(n_atom_basis=128, n_interactions=3, n_rbf=20, cutoff=CUTOFF_A, seed=SEED)
    pickled = folder / "schnet_random.pt"
    torch.save(model, pickled)
    scripted = folder / "schnet_random_deployed.pt"
    torch.jit.save(script_model(model), str(scripted), _extra_files={"cutoff": str(CUTOFF_A)})
    rep = model.representation
    linears = [m for m in model.output_modules[0].modules() if isinstance(m, torch.nn.Linear)]
    _RES["model"] = "SchNetPack 2.2 SchNet, 128 features, 3 interactions, 20 RBF, cutoff 5 A, random weights"
    return dict(kind="schnetpack", script=str(scripted), pickle=str(pickled),
                units=dict(energy_unit="kcal/mol", length_unit="Angstrom"),
                widths=(int(rep.n_atom_basis), int(rep.n_filters), int(rep.radial_basis.n_rbf), len(rep.interactions),
                        [m.out_features for m in linears[:-1]]))


@pytest.fixture(scope="module")
def starts():
    """{R: (atoms template, positions (R, N, 3) A, velocities (R, N, 3) A/fs)}"""
    import pymotor
    from pymotor.md import maxwell_boltzmann_velocities

    cpnx = pymotor.data.cpnx()
    out = {}
    for R in SIZES:
        pos, vel = [], []
        for r in range(R):
            a = cpnx.copy()
            a.rattle(0.05, seed=100 + r)
            pos.append(a.get_positions())
            vel.append(maxwell_boltzmann_velocities(a.get_masses(), TEMPERATURE_K, np.random.default_rng(1000 + r),
                                                    1, positions=a.get_positions())[0])
        out[R] = (cpnx, np.stack(pos), np.stack(vel))
    return out


# ---------------------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------------------

def _pymotor_sim(potential, template, pos, vel):
    from pymotor import _core

    n = len(template)
    sim = _core.Simulation(potential, pos, vel, template.get_masses(), template.numbers.astype(np.int64),
                           TIMESTEP_FS, temperature_K=TEMPERATURE_K, tdamp_fs=TDAMP_FS, chain_length=CHAIN_LENGTH,
                           n_substeps=1, suzuki_yoshida_order=3, n_dof=3.0 * n)
    sim.compute_forces()
    return sim


def _time_pymotor(key, R, potential, template, pos, vel, **extra):
    sim = _pymotor_sim(potential, template, pos, vel)
    e0 = sim.potential_energy.copy()
    res = sim.run(WARMUP, NO_FRAMES, MAX_FORCE)
    assert not res["failed"], res["error"]
    _sync()
    t0 = time.perf_counter()
    res = sim.run(STEPS[R], NO_FRAMES, MAX_FORCE)
    _sync()
    dt = time.perf_counter() - t0
    assert not res["failed"], res["error"]
    _store(key, R, dt / STEPS[R], e0, sim.positions.copy(), pairs=int(potential.last_n_pairs)
           if hasattr(potential, "last_n_pairs") else None, **extra)


def _store(key, R, sec_per_step, e0, end_pos, **extra):
    _RES["runs"].setdefault(key, {})[str(R)] = dict(
        ms_per_step=sec_per_step * 1e3, ms_per_replica_step=sec_per_step * 1e3 / R, steps=STEPS[R],
        warmup_steps=WARMUP, **{k: v for k, v in extra.items() if v is not None})
    _ENDS.setdefault(R, {})[key] = (np.asarray(e0, dtype=float), np.asarray(end_pos, dtype=float))
    print(f"\n  {key:20s} R={R:5d}: {sec_per_step * 1e3:10.3f} ms/step, "
          f"{sec_per_step * 1e3 / R:9.4f} ms/replica-step")


_ENDS: dict = {}


# ---------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("R", SIZES)
@pytest.mark.parametrize("executor", ["opt", "interp"])
def test_cuda_torchscript(executor, R, bench_model, starts):
    """``opt``: the CUDA default (frozen module, optimising executor); ``interp``: the plain
    interpreter (the CPU default), to see whether TorchScript's fusion pays on the GPU."""
    import pymotor

    key = "cuda_torchscript" if executor == "opt" else "cuda_torchscript_interp"
    template, pos, vel = starts[R]
    model = pymotor.Model(bench_model["script"], device=DEVICE, jit_optimize=executor == "opt",
                          **bench_model["units"])
    pot = model.potential(template.numbers)
    rng = np.random.default_rng(R)
    first = None
    for k in range(4):  # let the optimising executor specialise on a few pair counts
        _sync()
        t0 = time.perf_counter()
        pot.compute(pos + rng.normal(scale=0.02, size=pos.shape))
        _sync()
        first = first if first is not None else time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(5):  # the bare force call (neighbour list, copies, model) on the start geometry
        pot.compute(pos)
    _sync()
    call_ms = (time.perf_counter() - t0) / 5 * 1e3
    if DEVICE.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    _time_pymotor(key, R, model.potential(template.numbers), template, pos, vel, first_call_s=first,
                  force_call_ms=call_ms, jit_optimize=executor == "opt")
    if DEVICE.startswith("cuda"):
        _RES["runs"][key][str(R)]["peak_gpu_MiB"] = torch.cuda.max_memory_allocated() / 2**20


@pytest.mark.parametrize("threads", ["1", "all"])
@pytest.mark.parametrize("R", SIZES)
def test_cpu_fast(R, threads, bench_model, starts):
    if bench_model["kind"] != "schnetpack":
        pytest.skip("the fast backend reads SchNetPack SchNets only: " + _RES["skipped"]["schnetpack"])
    import pymotor

    n = 1 if threads == "1" else (os.cpu_count() or 1)
    template, pos, vel = starts[R]
    model = pymotor.load_model(bench_model["script"], backend="fast", n_threads=n, **bench_model["units"])
    _time_pymotor(f"cpu_fast_{threads}", R, model.potential(template.numbers), template, pos, vel, n_threads=n)


@pytest.mark.parametrize("R", [r for r in SIZES if r <= CPU_TORCHSCRIPT_MAX_R])
def test_cpu_torchscript(R, bench_model, starts):
    import pymotor

    template, pos, vel = starts[R]
    model = pymotor.Model(bench_model["script"], device="cpu", **bench_model["units"])
    _time_pymotor("cpu_torchscript", R, model.potential(template.numbers), template, pos, vel, n_threads=1)


def _spk_simulator(model_file, template, pos, vel):
    import schnetpack as spk
    from schnetpack import units as su
    from schnetpack.md import Simulator, System
    from schnetpack.md.calculators import SchNetPackCalculator
    from schnetpack.md.integrators import VelocityVerlet
    from schnetpack.md.neighborlist_md import NeighborListMD
    from schnetpack.md.simulation_hooks import NHCThermostat

    R = len(pos)
    system = System()
    system.load_molecules(template, n_replicas=R, position_unit_input="Angstrom")
    a2i = su.unit2internal("Angstrom")
    v2i = a2i / su.unit2internal("fs")
    system.positions = torch.from_numpy(pos * a2i).float().reshape(system.positions.shape)
    system.momenta = system.masses * torch.from_numpy(vel * v2i).float().reshape(system.positions.shape)
    nbl = {"torch": spk.transform.TorchNeighborList, "vesin": spk.transform.VesinNeighborList}[SPK_NBL]
    calculator = SchNetPackCalculator(model_file, force_key="forces", energy_unit="kcal/mol",
                                      position_unit="Angstrom", energy_key="energy",
                                      neighbor_list=NeighborListMD(cutoff=CUTOFF_A, cutoff_shell=1.0, base_nbl=nbl))
    thermostat = NHCThermostat(temperature_bath=TEMPERATURE_K, time_constant=TDAMP_FS, chain_length=CHAIN_LENGTH,
                               multi_step=1, integration_order=3)
    sim = Simulator(system, VelocityVerlet(time_step=TIMESTEP_FS), calculator, simulator_hooks=[thermostat],
                    progress=False)
    return sim.to(torch.float32).to(DEVICE)


@pytest.mark.parametrize("R", SIZES)
def test_schnetpack_md_cuda(R, bench_model, starts):
    if bench_model["kind"] != "schnetpack":
        pytest.skip("schnetpack.md competitor skipped: " + _RES["skipped"]["schnetpack"]
                    + " (carry schnetpack's wheels, docs/gpu.md)")
    from schnetpack import units as su

    template, pos, vel = starts[R]
    sim = _spk_simulator(bench_model["pickle"], template, pos, vel)
    sim.calculator.calculate(sim.system)
    e0 = sim.system.energy.detach().double().cpu().numpy().reshape(-1) / su.unit2internal("eV")
    sim.simulate(WARMUP)
    _sync()
    t0 = time.perf_counter()
    sim.calculator.calculate(sim.system)  # what simulate() does once before its steps
    _sync()
    t_call = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.simulate(STEPS[R])
    _sync()
    raw = time.perf_counter() - t0
    end = sim.system.positions.detach().double().cpu().numpy().reshape(R, -1, 3) / su.unit2internal("Angstrom")
    _store("schnetpack_md_cuda", R, max(raw - t_call, 1e-12) / STEPS[R], e0, end,
           raw_ms_per_step=raw * 1e3 / STEPS[R], force_call_ms=t_call * 1e3, neighbor_list=SPK_NBL,
           precision="float32")


# ---------------------------------------------------------------------------------------
# Peak rates, roofline, checks, summary
# ---------------------------------------------------------------------------------------

def schnet_cost(n_atoms: int, n_pairs: int, F: int, Fi: int, n_rbf: int, T: int, readout: list[int]) -> dict:
    """FLOPs and bytes of one energy+forces evaluation of a SchNetPack SchNet by autograd, per
    molecule (``n_pairs`` directed pairs; see docs/gpu.md).

    FLOPs (FMA = 2): forward GEMMs of the filter network on every directed pair and interaction
    (n_rbf -> Fi -> Fi), the atom-wise layers (in2f F -> Fi, f2out Fi -> F -> F) and the readout;
    the continuous-filter convolution (gather x_j, multiply by W, scatter-add: 3 P Fi); the
    backward pass for forces computes input gradients only, about the forward's GEMM FLOPs again.
    Bytes: per pair, interaction and filter channel, ~20 float32 values cross HBM (filter hidden
    pre/post activation, W, gathered x_j and the product: written forward, read backward, their
    gradients written and read), i.e. 80 B; the atom-wise tensors are ~100x smaller and left out.
    A lower bound on traffic only if kernels are not fused; an estimate either way."""
    P, N = n_pairs, n_atoms
    pair_gemm = T * 2 * P * (n_rbf * Fi + Fi * Fi)
    atom_gemm = T * 2 * N * (F * Fi + Fi * F + F * F)
    widths = [F] + list(readout) + [1]
    atom_gemm += sum(2 * N * a * b for a, b in zip(widths, widths[1:]))
    conv = T * 3 * P * Fi
    flops = 2 * (pair_gemm + atom_gemm) + 2 * conv
    bytes_ = T * P * Fi * 20 * 4 + P * n_rbf * 4 * 4
    return {"flops": float(flops), "bytes": float(bytes_), "pair_gemm_flops_fwd": float(pair_gemm),
            "atom_gemm_flops_fwd": float(atom_gemm)}


def _peak_rates() -> dict:
    """FP32 GEMM (TF32 off) and TF32 GEMM rates and device copy bandwidth, measured now."""
    if not DEVICE.startswith("cuda"):
        return {}
    out = {}
    n = 8192
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        for name, tf32 in (("fp32_gemm_TFLOPs", False), ("tf32_gemm_TFLOPs", True)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            for _ in range(2):
                a @ b
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(5):
                a @ b
            torch.cuda.synchronize()
            out[name] = 5 * 2 * n**3 / (time.perf_counter() - t0) / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    del a, b
    x = torch.empty(2**29, device="cuda")  # 2 GiB
    y = torch.empty_like(x)
    y.copy_(x)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    out["copy_TB_per_s"] = 10 * 2 * x.numel() * 4 / (time.perf_counter() - t0) / 1e12  # read + write
    del x, y
    torch.cuda.empty_cache()
    out["device_name"] = torch.cuda.get_device_name(0)
    return out


def test_zz_checks_roofline_and_summary(bench_model, starts):
    """Runs last: same-work checks, roofline estimate, the table; writes $PYMOTOR_BENCH_OUT."""
    runs = _RES["runs"]
    if "cuda_torchscript" not in runs:
        pytest.skip("no CUDA TorchScript run to summarise")
    # same work: start energies and end positions against the CUDA run
    failures = []
    for R, ends in _ENDS.items():
        if "cuda_torchscript" not in ends:
            continue
        e_ref, x_ref = ends["cuda_torchscript"]
        for key, (e, x) in ends.items():
            de = float(np.abs(e - e_ref).max())
            dx = float(np.abs(x - x_ref).max())
            _RES["checks"][f"{key}_R{R}"] = {"max_dE0_eV": de, "max_dpos_end_A": dx}
            if de > E_TOL_EV or dx > DPOS_TOL_A:
                failures.append(f"{key} R={R}: |dE0| = {de:.2e} eV, |dr_end| = {dx:.2e} A")
    rates = _peak_rates()
    _RES["peak_rates"] = rates
    F, Fi, n_rbf, T, readout = bench_model["widths"]
    roof = {}
    for R_s, r in runs["cuda_torchscript"].items():
        R = int(R_s)
        pairs = r.get("pairs")
        if not pairs:
            continue
        cost = schnet_cost(48, pairs / R, F, Fi, n_rbf, T, readout)
        row = {"pairs_per_replica": pairs / R, **{k: v * R for k, v in cost.items()}}
        if rates:
            t_flop = row["flops"] / (rates["fp32_gemm_TFLOPs"] * 1e12)
            t_mem = row["bytes"] / (rates["copy_TB_per_s"] * 1e12)
            t_bound = max(t_flop, t_mem)
            row.update(t_flop_ms=t_flop * 1e3, t_mem_ms=t_mem * 1e3, bound=("compute" if t_flop > t_mem else "memory"),
                       fraction_of_roofline=t_bound * 1e3 / r["ms_per_step"],
                       achieved_TFLOPs=row["flops"] / (r["ms_per_step"] * 1e-3) / 1e12)
        roof[R_s] = row
    _RES["roofline"] = roof
    _write_summary()
    assert not failures, "competitors did different work: " + "; ".join(failures)


def _table() -> list[str]:
    runs = _RES["runs"]
    keys = [k for k in ("cuda_torchscript", "cuda_torchscript_interp", "cpu_fast_1", "cpu_fast_all", "cpu_torchscript",
                        "schnetpack_md_cuda") if k in runs]
    lines = ["| R | " + " | ".join(f"{k} ms/step (ms/replica-step)" for k in keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for R in SIZES:
        cells = []
        for k in keys:
            r = runs[k].get(str(R))
            cells.append(f"{r['ms_per_step']:.3f} ({r['ms_per_replica_step']:.4f})" if r else "-")
        lines.append(f"| {R} | " + " | ".join(cells) + " |")
    lines += ["", "| R | " + " | ".join(f"{k} / cuda_torchscript" for k in keys[1:]) +
              " | cuda per replica-step vs R=1 | vs previous R | fraction of roofline |",
              "|---" * (len(keys) + 3) + "|"]
    cuda = runs["cuda_torchscript"]
    prev = None
    for R in SIZES:
        c = cuda.get(str(R))
        if not c:
            continue
        ratios = [f"{runs[k][str(R)]['ms_per_replica_step'] / c['ms_per_replica_step']:.2f}"
                  if str(R) in runs[k] else "-" for k in keys[1:]]
        first = cuda.get(str(SIZES[0]))
        vs1 = f"{first['ms_per_replica_step'] / c['ms_per_replica_step']:.1f}x" if first else "-"
        vsp = f"{prev / c['ms_per_replica_step']:.2f}x" if prev else "-"
        roof = _RES.get("roofline", {}).get(str(R), {})
        frac = f"{roof['fraction_of_roofline']:.3f} ({roof['bound']})" if "fraction_of_roofline" in roof else "-"
        lines.append(f"| {R} | " + " | ".join(ratios) + f" | {vs1} | {vsp} | {frac} |")
        prev = c["ms_per_replica_step"]
    return lines


def _write_summary():
    lines = [f"# pymotor CUDA MD benchmark ({_RES['device']})", "", f"model: {_RES.get('model')}",
             f"peak rates measured in this run: {json.dumps(_RES.get('peak_rates', {}))}", "",
             "ratios > 1: that competitor is slower per replica-step than pymotor on CUDA", ""]
    lines += _table()
    if _RES["skipped"]:
        lines += ["", "skipped: " + "; ".join(f"{k}: {v}" for k, v in _RES["skipped"].items())]
    text = "\n".join(lines)
    print("\n" + text)
    out = os.environ.get("PYMOTOR_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(_RES, indent=1, default=float))
        Path(out).with_suffix(".md").write_text(text + "\n")
