"""Fast SchNet evaluator (issue 7) vs the TorchScript SchNetPack model with the same weights.

Model: the random-weight SchNet of bench/conftest.py (128 features, 3 interactions, 20 Gaussian
RBF, cosine cutoff 5 A, kcal/mol; spkdeploy-style TorchScript file), loaded twice:
``backend="torchscript"`` (libtorch, float32) and ``backend="fast"`` (pymotor's C++ SchNet
kernels, float32 unless stated). System: the 48-atom CPNX motor (564 pairs within 5 A), one
thread everywhere (OMP_NUM_THREADS=1, torch and pymotor thread counts 1).

Groups:

* ``fast-schnet-call``: energy+forces of CPNX through the C++ ``Potential.compute`` (neighbour
  list included): torchscript, fast float32, fast float64;
* ``fast-schnet-md``: ``STEPS`` NVT steps (Nose-Hoover chain, 0.5 fs) with pymotor.run_md;
* ``fast-schnet-32``: 32 rattled CPNX replicas: one batched energy+forces call, and
  ``STEPS_32`` batched MD steps;
* ``fast-schnet-paired``: the same calls interleaved (fast, torchscript, fast, ...) for paired
  ratios that drifting machine load cannot bias, plus a roofline-style estimate: the flops the
  fast evaluator must do per call (counted from the model's sizes and the pair count) against
  its measured time and against the single-thread GEMM rate of torch.mm measured in the same run.

Every competitor is first checked to compute the reference energy and forces (conftest's
``same_physics``). Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest
bench/test_bench_fast_schnet.py --benchmark-only -s``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("schnetpack")
pytest.importorskip("pytest_benchmark")

from md_settings import TIMER  # noqa: E402  (bench/ is on sys.path under pytest)

pytestmark = [
    pytest.mark.schnetpack,
    pytest.mark.benchmark(timer=TIMER),
    pytest.mark.filterwarnings("ignore:`torch.jit.[a-z_]+` is deprecated:DeprecationWarning"),
]

CALLS = 20          # model calls per round
ROUNDS = 7
STEPS = 100         # MD steps per round (1 replica)
STEPS_32 = 10       # MD steps per round (32 replicas)
N_REPLICAS = 32
CYCLES = 60         # paired cycles


@pytest.fixture(scope="module")
def models(spk_model_files, settings):
    import pymotor

    kw = dict(energy_unit=settings.energy_unit, length_unit=settings.length_unit)
    out = {
        "torchscript": pymotor.load_model(spk_model_files.script, backend="torchscript", **kw),
        "fast": pymotor.load_model(spk_model_files.script, backend="fast", **kw),
        "fast64": pymotor.load_model(spk_model_files.script, backend="fast", dtype="float64", **kw),
    }
    if out["fast"].isa == "avx512":  # the AVX2 build of the same kernels, for the paired ratios
        out["fast_avx2"] = pymotor.load_model(spk_model_files.script, backend="fast", isa="avx2", **kw)
    return out


@pytest.fixture(scope="module")
def replicas(cpnx):
    out = []
    for k in range(N_REPLICAS):
        a = cpnx.copy()
        a.rattle(0.05, seed=100 + k)
        out.append(a)
    return out


def _pot(models, name, numbers):
    return models[name].potential(numbers)


@pytest.mark.parametrize("name", ["torchscript", "fast", "fast64"])
def test_call_1_replica(benchmark, models, cpnx, reference, same_physics, name):
    pot = _pot(models, name, cpnx.numbers)
    x = cpnx.positions[None].copy()
    e, f = pot.compute(x)
    same_physics(e[0], f[0], reference, name)
    benchmark.group = "fast-schnet-call (CPNX energy+forces, 1 thread)"
    benchmark.extra_info.update(calls_per_round=CALLS, pairs=pot.last_n_pairs)

    def calls():
        for _ in range(CALLS):
            pot.compute(x)

    benchmark.pedantic(calls, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("name", ["torchscript", "fast"])
def test_md_1_replica(benchmark, models, start_state, settings, name):
    import pymotor

    benchmark.group = f"fast-schnet-md ({STEPS} NVT steps, CPNX, 1 thread)"
    kw = dict(steps=STEPS, timestep_fs=settings.timestep_fs, temperature_K=settings.temperature_K,
              thermostat="nose-hoover", tdamp_fs=settings.tdamp_fs, chunk_steps=STEPS, torch_threads=1)
    ends = {}

    def run():
        ends[name] = pymotor.run_md(models[name], start_state, **kw).positions[-1]

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    ref = pymotor.run_md(models["torchscript"], start_state, **kw).positions[-1] if name != "torchscript" else None
    if ref is not None:  # 100 steps of the same dynamics end at the same place
        assert np.abs(ends[name] - ref).max() < 1e-3


@pytest.mark.parametrize("name", ["torchscript", "fast"])
def test_call_32_replicas(benchmark, models, replicas, name):
    pot = _pot(models, name, replicas[0].numbers)
    x = np.stack([a.positions for a in replicas])
    e, f = pot.compute(x)
    e_ref, f_ref = _pot(models, "torchscript", replicas[0].numbers).compute(x)
    assert np.abs(e - e_ref).max() < 2e-4 and np.abs(f - f_ref).max() < 2e-4
    benchmark.group = f"fast-schnet-32 (one batched call, {N_REPLICAS} replicas, 1 thread)"
    benchmark.pedantic(lambda: pot.compute(x), rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("name", ["torchscript", "fast"])
def test_md_32_replicas(benchmark, models, replicas, settings, name):
    import pymotor

    benchmark.group = f"fast-schnet-32-md ({STEPS_32} batched NVT steps, {N_REPLICAS} replicas, 1 thread)"
    kw = dict(steps=STEPS_32, timestep_fs=settings.timestep_fs, temperature_K=settings.temperature_K,
              thermostat="nose-hoover", tdamp_fs=settings.tdamp_fs, chunk_steps=STEPS_32, torch_threads=1)
    benchmark.pedantic(lambda: pymotor.run_md(models[name], replicas, **kw), rounds=3, iterations=1,
                       warmup_rounds=1)


def flops_per_call(n_atoms: int, n_half_pairs: int, F: int, Fi: int, T: int, readout: list[int]) -> dict:
    """Floating-point operations of one energy+forces call of the fast evaluator (FMA = 2).

    Dense layers (GEMMs over atoms): forward in2f (not for t=0: a per-element table), f2out.0,
    f2out.1; backward the transposes (in2f not for t=0); readout MLP forward and backward.
    Pairs: forward W(r) by Horner (3 FMA per filter) + 2 FMA (scatter to both atoms); backward
    W and dW/dr (5 FMA), g_h to both atoms (2 FMA, not for t=0) and the dE/dr dot (~2.5 FMA).
    Activations (shifted softplus on f2out.0, SiLU in the readout) ~40 flops per element."""
    N, P = n_atoms, n_half_pairs
    dense = 0
    for t in range(T):
        dense += 2 * N * (F * Fi * (2 if t > 0 else 1) + Fi * F * 2 + F * F * 2)
    widths = [F] + readout
    dense += sum(2 * N * a * b * 2 for a, b in zip(widths, widths[1:]))
    pair = sum(2 * P * Fi * (5 + (5 + 2 + 2.5 if t > 0 else 5 + 2.5)) for t in range(T))
    act = 40 * N * (F * T + sum(readout))
    # What the TorchScript model computes per call for the same pairs: the filter network on
    # every directed pair and interaction, forward (rbf -> Fi -> Fi) and ~2x that backward.
    ts_filters = 3 * 2 * (2 * P) * (20 * Fi + Fi * Fi) * T
    return {"dense": dense, "pairs": pair, "activations": act, "total": dense + pair + act,
            "torchscript_filter_network": ts_filters}


def test_paired_ratios_and_roofline(benchmark, models, cpnx, replicas):
    import torch

    benchmark.group = "fast-schnet-paired"
    x1 = cpnx.positions[None].copy()
    x32 = np.stack([a.positions for a in replicas])
    pots = {k: _pot(models, k, cpnx.numbers) for k in ("torchscript", "fast", "fast64", "fast_avx2") if k in models}
    b32 = {k: _pot(models, k, cpnx.numbers) for k in ("torchscript", "fast")}
    for p in pots.values():
        p.compute(x1)
    for p in b32.values():
        p.compute(x32)
    times = {k: [] for k in list(pots) + ["torchscript_32", "fast_32", "mm"]}
    a = torch.randn(48, 128)
    w = torch.randn(128, 128)
    out = torch.empty(48, 128)

    def cycle():
        for k, p in pots.items():
            t0 = TIMER()
            for _ in range(5):
                p.compute(x1)
            times[k].append((TIMER() - t0) / 5)
        for k, p in b32.items():
            t0 = TIMER()
            p.compute(x32)
            times[f"{k}_32"].append(TIMER() - t0)
        t0 = TIMER()
        for _ in range(200):
            torch.mm(a, w, out=out)
        times["mm"].append((TIMER() - t0) / 200)

    benchmark.pedantic(lambda: [cycle() for _ in range(CYCLES)], rounds=1, iterations=1)
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratio = float(np.median(np.array(times["torchscript"]) / np.array(times["fast"])))
    ratio64 = float(np.median(np.array(times["torchscript"]) / np.array(times["fast64"])))
    ratio32 = float(np.median(np.array(times["torchscript_32"]) / np.array(times["fast_32"])))
    fast = models["fast"]
    wts = fast.weights
    P = pots["fast"].last_n_pairs // 2
    F = wts["embedding"].shape[1]
    Fi = wts["interactions"][0]["in2f"]["weight"].shape[0]
    readout = [layer["weight"].shape[0] for layer in wts["readout"]]
    fl = flops_per_call(len(cpnx), P, F, Fi, len(wts["interactions"]), readout)
    gemm_rate = 2 * 48 * 128 * 128 / med["mm"]
    rate = fl["total"] / med["fast"]
    summary = {
        "median_ms": {k: v * 1e3 for k, v in med.items()},
        "speedup_call_1": ratio, "speedup_call_1_float64": ratio64, "speedup_call_32": ratio32,
        "flops_per_call": fl, "half_pairs": P, "fast_gflops": rate / 1e9,
        "torch_mm_48x128x128_gflops": gemm_rate / 1e9,
        "fraction_of_gemm_rate": rate / gemm_rate,
        "table_info": fast.table_info, "loadavg": os.getloadavg(), "isa": fast.isa,
    }
    if "fast_avx2" in times:
        summary["speedup_call_1_avx2"] = float(np.median(np.array(times["torchscript"]) / np.array(times["fast_avx2"])))
        summary["avx2_over_fast"] = float(np.median(np.array(times["fast_avx2"]) / np.array(times["fast"])))
    benchmark.extra_info.update(summary)
    print("\nfast SchNet paired summary:")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    assert ratio >= 5.0, f"fast backend only {ratio:.2f}x faster than TorchScript for one CPNX call"
    assert ratio32 >= 5.0, f"fast backend only {ratio32:.2f}x faster for 32 batched replicas"
