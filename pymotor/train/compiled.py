"""Training-time energy and forces as one traced, compiled graph (CPU or GPU).

SchNetPack trains a force field through a double backward: the forces are
``-dE/dR`` with ``create_graph=True`` and the loss is differentiated through them.
``torch.compile`` cannot compile a double backward, and PaiNN's eager double backward is
dominated by element-wise products over (pairs x 3 x features) tensors (the profile of a
CPNX batch: ~55% of the time in ``aten::mul``).  Following NequIP's training compile, the
force computation is traced into an ordinary forward graph of aten ops
(``torch.fx.experimental.proxy_tensor.make_fx``: autograd's backward ops for ``dE/dR`` are
recorded), which ``torch.compile`` (Inductor) then fuses and differentiates once.

Three details make the traced graph exact and reusable:

* ``aten.detach`` nodes that the tracer records for autograd's saved tensors would cut the
  parameters' path through the force graph (the loss gradient would lose its
  second-order part); they are removed.  The SchNetPack models pymotor trains (SchNet,
  PaiNN, the ZBL prior) contain no detach of their own.
* Shapes are static: the pair list is padded to a capacity (~15% above the first batch)
  with self-pairs of atom 0 displaced by more than the cutoff, whose filters, cosine cutoff
  and ZBL switch are exactly zero (energy and forces are unchanged, tested).  One graph is
  kept per (atoms, molecules) batch shape, at most ``max_shapes``; other batches (e.g. a
  short last batch) run eagerly.
* SchNetPack's ``Atomwise`` and ``ZBLRepulsionEnergy`` read the number of molecules as
  ``int(idx_m[-1]) + 1`` (a data-dependent value a tracer cannot read); while tracing they
  use ``n_atoms.shape[0]``, the same number (:mod:`pymotor.train.traceable`).

The module parameters are arguments of the graph, so optimiser steps and the EMA swap at
validation act on the graph without re-tracing, and checkpoints keep SchNetPack's keys.
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, Optional

import torch

from .traceable import remove_detach, traceable_schnetpack

__all__ = ["CompiledForceField", "trace_energy_forces"]

#: inputs the traced graph reads (SchNetPack property keys)
_KEYS = ("_atomic_numbers", "_positions", "_idx_m", "_idx_i", "_idx_j", "_offsets", "_n_atoms")


def _pad_pairs(inputs: Dict[str, torch.Tensor], capacity: int, far_A: float) -> list:
    """The graph's inputs, pair list padded to `capacity` with far-away self-pairs of atom 0."""
    n = inputs["_idx_i"].shape[0]
    extra = capacity - n
    args = []
    for k in _KEYS:
        x = inputs[k]
        if k in ("_idx_i", "_idx_j"):
            x = torch.cat([x, x.new_zeros(extra)])
        elif k == "_offsets":
            pad = x.new_zeros((extra, 3))
            pad[:, 0] = far_A
            x = torch.cat([x, pad])
        args.append(x)
    return args


def trace_energy_forces(net, inputs: Dict[str, torch.Tensor], capacity: int, far_A: float):
    """``(params, buffers, *inputs) -> (energy, forces)`` of `net` (training mode, no
    postprocessing) as an ``fx.GraphModule`` with the force graph unrolled (see module doc)."""
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.func import functional_call, functionalize

    def energy_forces(params, buffers, *args):
        x = dict(zip(_KEYS, args))
        out = functional_call(net, (params, buffers), (x,))
        return out["energy"], out["forces"]

    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = dict(net.named_buffers())
    args = _pad_pairs(inputs, capacity, far_A)
    pp = net.do_postprocessing
    net.do_postprocessing = False
    try:
        with traceable_schnetpack():
            gm = make_fx(energy_forces, tracing_mode="real")(params, buffers, *args)
    finally:
        net.do_postprocessing = pp
    remove_detach(gm)
    # the backward formulas recorded in-place ops (fill_, sub_, index_put_, ...) on
    # intermediates; a second trace through functionalize leaves a graph without mutations
    return make_fx(functionalize(gm, remove="mutations_and_views"), tracing_mode="real")(params, buffers, *args)


class CompiledForceField:
    """Energy and forces of a SchNetPack ``NeuralNetworkPotential`` for training batches,
    from traced and compiled graphs (one per batch shape); ``None`` where the eager model
    must be used.

    Parameters
    ----------
    net : schnetpack.model.NeuralNetworkPotential
        The model; its parameters are read at every call (optimiser steps, EMA swaps).
    cutoff_A : float
        The model's cutoff in Angstrom (padding pairs are placed at ``2 * cutoff_A + 1``).
    compile : bool
        ``torch.compile`` the traced graphs (Inductor); ``False`` runs the traced graphs
        as they are (for tests).
    max_shapes : int
        Most batch shapes that get a graph of their own.
    """

    def __init__(self, net, cutoff_A: float, compile: bool = True, max_shapes: int = 3):
        self.net = net
        self.far_A = 2.0 * float(cutoff_A) + 1.0
        self.compile = bool(compile)
        self.max_shapes = int(max_shapes)
        self._graphs: Dict[tuple, tuple] = {}  # shape -> (capacity, callable)
        self._failed = False
        self.traces = 0

    def _graph(self, inputs, key):
        n_pairs = int(inputs["_idx_i"].shape[0])
        entry = self._graphs.get(key)
        if entry is not None and n_pairs <= entry[0]:
            return entry
        if entry is None and len(self._graphs) >= self.max_shapes:
            return None
        capacity = int(math.ceil(1.15 * n_pairs / 256.0) * 256)
        gm = trace_energy_forces(self.net, inputs, capacity, self.far_A)
        self.traces += 1
        fn = torch.compile(gm, dynamic=False) if self.compile else gm
        self._graphs[key] = (capacity, fn)
        return self._graphs[key]

    def __call__(self, inputs: Dict[str, torch.Tensor]) -> Optional[Dict[str, torch.Tensor]]:
        if self._failed or any(k not in inputs for k in _KEYS):
            return None
        key = (int(inputs["_positions"].shape[0]), int(inputs["_n_atoms"].shape[0]),
               inputs["_positions"].dtype, inputs["_positions"].device)
        try:
            entry = self._graph(inputs, key)
        except Exception as err:  # an architecture the tracer cannot handle: eager from now on
            self._failed = True
            warnings.warn(f"compiled training disabled, the model runs eagerly: {type(err).__name__}: {err}",
                          RuntimeWarning, stacklevel=2)
            return None
        if entry is None:
            return None
        capacity, fn = entry
        params = dict(self.net.named_parameters())
        buffers = dict(self.net.named_buffers())
        args = _pad_pairs(inputs, capacity, self.far_A)
        with torch.set_grad_enabled(self.net.training):  # evaluation needs no autograd graph
            energy, forces = fn(params, buffers, *args)
        return {"energy": energy, "forces": forces}
