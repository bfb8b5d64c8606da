"""SchNetPack models as AOTInductor packages (``.pt2``): energy and forces in one compiled graph.

``torch.export`` cannot export SchNetPack's ``Forces`` module (``torch.autograd.grad``) nor
its data-dependent molecule count. Following NequIP's AOTInductor export, the model's
forward *and* its force computation are first traced into one graph of aten ops with
``make_fx`` in symbolic mode (autograd's backward ops for ``-dE/dR`` are recorded), with
SchNetPack made traceable (:mod:`pymotor.train.traceable`); that graph is exported with
dynamic numbers of atoms, pairs and molecules and compiled ahead of time by Inductor
(``torch._inductor.aoti_compile_and_package``) into a package that C++ loads with
``torch::inductor::AOTIModelPackageLoader`` (:mod:`pymotor.backends.pt2`).

The package's inputs are SchNetPack's, flat and in this order (:data:`INPUTS`):
atomic numbers (A,) int64, positions (A, 3) float32 in the model's length unit, molecule
index (A,), pair indices i and j (P,), pair offsets (P, 3) float32, atoms per molecule (M,);
its outputs are the energy per molecule (M,) without the energy offset and the forces
(A, 3), in the model's units. At least 2 pairs: callers pad with self-pairs of atom 0 whose
offset lies beyond the cutoff (their contribution is exactly zero).

A package is machine code for one device kind and CPU instruction set, made by one torch
version; its pymotor metadata records them and the loader refuses a mismatch by name.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["INPUTS", "export_pt2", "example_inputs", "model_inputs", "flat_model", "compare_with_eager",
           "PAD_OFFSET"]

#: the package's inputs (SchNetPack keys), in order
INPUTS = ("_atomic_numbers", "_positions", "_idx_m", "_idx_i", "_idx_j", "_offsets", "_n_atoms")
#: the offset (model length unit) of padding self-pairs: far beyond any cutoff
PAD_OFFSET = 1000.0


def model_inputs(molecules: Sequence, cutoff: float, device: str = "cpu") -> tuple:
    """The package's inputs for a list of ``(atomic_numbers, positions)`` molecules (positions
    in the model's length unit): all pairs within ``cutoff``, padded to at least 2."""
    import torch

    zs, rs, im, ii, jj, na = [], [], [], [], [], []
    start = 0
    for m, (z, r) in enumerate(molecules):
        r = np.asarray(r, dtype=float)
        n = len(z)
        d = np.linalg.norm(r[:, None] - r[None], axis=-1)
        i, j = np.nonzero((d < cutoff) & ~np.eye(n, dtype=bool))
        zs.append(np.asarray(z, dtype=np.int64))
        rs.append(r)
        im.append(np.full(n, m, dtype=np.int64))
        ii.append(i + start)
        jj.append(j + start)
        na.append(n)
        start += n
    idx_i, idx_j = np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)
    offsets = np.zeros((len(idx_i), 3))
    if len(idx_i) < 2:
        pad = 2 - len(idx_i)
        idx_i = np.concatenate([idx_i, np.zeros(pad, np.int64)])
        idx_j = np.concatenate([idx_j, np.zeros(pad, np.int64)])
        offsets = np.concatenate([offsets, np.tile([PAD_OFFSET, 0.0, 0.0], (pad, 1))])
    f32 = dict(dtype=torch.float32, device=device)
    i64 = dict(dtype=torch.int64, device=device)
    return (torch.tensor(np.concatenate(zs), **i64), torch.tensor(np.concatenate(rs), **f32),
            torch.tensor(np.concatenate(im), **i64), torch.tensor(idx_i, **i64), torch.tensor(idx_j, **i64),
            torch.tensor(offsets, **f32), torch.tensor(na, **i64))


def example_inputs(elements: Sequence[int], cutoff: float, sizes=(9, 6), seed: int = 0):
    """Synthetic molecules of the given sizes (atoms on a jittered 1.4-unit grid, elements in
    turn): shapes for tracing and frames for the check. Distances are those of bonded and
    non-bonded neighbours; no chemistry is implied."""
    rng = np.random.default_rng(seed)
    elements = [int(z) for z in elements]
    out = []
    for k, n in enumerate(sizes):
        side = int(np.ceil(n ** (1 / 3)))
        grid = np.array([(a, b, c) for a in range(side) for b in range(side) for c in range(side)][:n], float)
        pos = 1.4 * grid + rng.normal(scale=0.15, size=(n, 3))
        z = [elements[(i + k) % len(elements)] for i in range(n)]
        out.append((z, pos))
    return out


def flat_model(model, device: str = "cpu"):
    """A float32 eval-mode copy of ``model`` without postprocessors (no offsets: the loader adds
    them), as a module of the package's flat inputs returning ``(energy, forces)``."""
    import torch

    class Flat(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z, r, idx_m, idx_i, idx_j, offsets, n_atoms):
            out = self.net(dict(zip(INPUTS, (z, r, idx_m, idx_i, idx_j, offsets, n_atoms))))
            return out["energy"], out["forces"]

    net = copy.deepcopy(model).to(device).float().eval()
    net.postprocessors = type(net.postprocessors)()
    net.do_postprocessing = False
    return Flat(net)


def _trace(flat, x):
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx

    from .traceable import remove_detach, traceable_schnetpack

    import torch.fx.experimental._config as fx_config

    # no duck shaping: a dynamic size equal to a weight's size must not be merged with it
    saved = fx_config.use_duck_shape
    fx_config.use_duck_shape = False
    try:
        with traceable_schnetpack(), torch.enable_grad():
            gm = make_fx(flat, tracing_mode="symbolic", _allow_non_fake_inputs=True,
                         _error_on_data_dependent_ops=True)(*[t.clone() for t in x])
    finally:
        fx_config.use_duck_shape = saved
    return remove_detach(gm)


def compare_with_eager(flat, run, batches) -> dict:
    """Max |dE| and |dF| (model units) between ``run(*inputs)`` and the eager model."""
    import torch

    worst_e = worst_f = 0.0
    for x in batches:
        with torch.enable_grad():
            e0, f0 = flat(*x)
        e, f = run(*x)
        worst_e = max(worst_e, float((e.double().cpu() - e0.detach().double().cpu()).abs().max()))
        worst_f = max(worst_f, float((f.double().cpu() - f0.detach().double().cpu()).abs().max()))
    return {"max_abs_dE": worst_e, "max_abs_dF": worst_f}


def export_pt2(model, path: str | os.PathLike, *, cutoff: float, metadata: dict, elements: Sequence[int],
               energy_tol: float, force_tol: float, check_molecules: Optional[Sequence] = None,
               device: str = "cpu", num_threads: int = 1) -> dict:
    """Trace, export, compile and check ``model`` into the package ``path``.

    ``cutoff`` and the molecules are in the model's length unit; ``energy_tol`` and
    ``force_tol`` (model units) bound the package's deviation from the eager model on the
    synthetic examples, a single molecule and ``check_molecules``; a package outside them is
    deleted and RuntimeError raised. ``metadata`` is stored as JSON under ``pymotor`` in the
    package's metadata (with the torch version, device and CPU instruction set added).
    Inductor's CPU kernels use ``num_threads`` threads (fixed at compile time).
    Returns the check's worst deviations.
    """
    import torch
    from torch.export import Dim

    path = Path(path)
    flat = flat_model(model, device)
    examples = example_inputs(elements, cutoff)
    x = model_inputs(examples, cutoff, device)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        torch._dynamo.reset()
        gm = _trace(flat, x)
        atoms, pairs, mols = Dim("atoms", min=2), Dim("pairs", min=2), Dim("molecules", min=1)
        dynamic = ({0: atoms}, {0: atoms}, {0: atoms}, {0: pairs}, {0: pairs}, {0: pairs}, {0: mols})
        exported = torch.export.export(gm, x, dynamic_shapes=dynamic)
        md = dict(metadata, pt2={"torch": torch.__version__, "device": torch.device(device).type,
                                 "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                 "num_threads": int(num_threads), "inputs": list(INPUTS)})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.pt2")
        with warnings.catch_warnings():  # torch's own pytree deprecation inside the packager
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            out = torch._inductor.aoti_compile_and_package(
                exported, package_path=str(tmp),
                inductor_configs={"aot_inductor.metadata": {"pymotor": json.dumps(md)}})
        runner = torch._inductor.aoti_load_package(str(out))
        batches = [x, model_inputs(examples[:1], cutoff, device),
                   model_inputs([examples[1], examples[0], examples[1]], cutoff, device)]
        if check_molecules:
            batches.append(model_inputs(list(check_molecules), cutoff, device))
        worst = compare_with_eager(flat, lambda *a: runner(*a), batches)
    finally:
        torch.set_num_threads(threads)
    if worst["max_abs_dE"] > energy_tol or worst["max_abs_dF"] > force_tol:
        Path(out).unlink(missing_ok=True)
        raise RuntimeError(
            f"the compiled package disagrees with the eager model: max |dE| = {worst['max_abs_dE']:.3g} "
            f"(limit {energy_tol:.3g}), max |dF| = {worst['max_abs_dF']:.3g} (limit {force_tol:.3g}), model units")
    os.replace(out, path)
    return dict(worst, batches=len(batches), pt2=md["pt2"])
