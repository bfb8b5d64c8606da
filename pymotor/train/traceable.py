"""SchNetPack models made traceable by ``make_fx`` (training graphs and pt2 export).

Two things in SchNetPack 2.2 stop a tracer, and are replaced while tracing by the same
arithmetic in traceable form:

* ``Atomwise`` and ``ZBLRepulsionEnergy`` read the number of molecules as
  ``int(idx_m[-1]) + 1``, a data-dependent value; the traced versions use
  ``n_atoms.shape[0]``, the same number.
* ``schnetpack.nn.scatter_add`` calls a ``torch.jit.script`` function, which turns symbolic
  sizes into constants (a symbolic trace would be specialised to the example's numbers of
  atoms and pairs); the traced version is the same ``zeros(...).index_add(...)`` in Python.

:func:`remove_detach` drops the ``aten.detach``/``alias`` nodes that ``make_fx`` records for
autograd's saved tensors, which would otherwise cut the parameters' path through a force
graph (the second-order part of a force loss's gradient).
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["traceable_schnetpack", "remove_detach"]


def _scatter_add(x: torch.Tensor, idx_i: torch.Tensor, dim_size: int, dim: int = 0) -> torch.Tensor:
    """``schnetpack.nn.scatter._scatter_add`` without TorchScript (symbolic sizes survive)."""
    shape = list(x.shape)
    shape[dim] = dim_size
    return torch.zeros(shape, dtype=x.dtype, device=x.device).index_add(dim, idx_i, x)


@contextlib.contextmanager
def traceable_schnetpack():
    """Atomwise / ZBLRepulsionEnergy with the molecule count from ``n_atoms.shape[0]`` and a
    Python ``scatter_add``, for the duration of a trace."""
    import schnetpack.nn as snn
    import schnetpack.properties as P
    import schnetpack.nn.scatter as scatter
    from schnetpack.atomistic import Atomwise, ZBLRepulsionEnergy

    def atomwise_forward(self, inputs):
        y = self.outnet(inputs["scalar_representation"])
        if self.per_atom_output_key is not None:
            inputs[self.per_atom_output_key] = y
        if self.aggregation_mode is not None:
            y = snn.scatter_add(y, inputs[P.idx_m], dim_size=inputs[P.n_atoms].shape[0])
            y = torch.squeeze(y, -1)
            if self.aggregation_mode == "avg":
                y = y / inputs[P.n_atoms]
        inputs[self.output_key] = y
        return inputs

    def zbl_forward(self, inputs):
        import torch.nn.functional as F

        z = inputs[P.Z]
        d_ij = torch.norm(inputs[P.Rij], dim=1)
        idx_i, idx_j = inputs[P.idx_i], inputs[P.idx_j]
        a = z ** F.softplus(self.a_pow)
        a_ij = (a[idx_i] + a[idx_j]) * F.softplus(self.a_div)
        exponents = a_ij[..., None] * F.softplus(self.exponents)[None, ...]
        coefficients = F.normalize(F.softplus(self.coefficients)[None, ...], p=1.0, dim=1)
        screening = torch.sum(coefficients * torch.exp(-exponents * d_ij[:, None]), dim=1)
        repulsion = (z[idx_i] * z[idx_j]) / d_ij
        if self.cutoff_fn is not None:
            repulsion = repulsion * self.cutoff_fn(d_ij)
        y = snn.scatter_add(repulsion * screening, idx_i, dim_size=z.shape[0])
        y = snn.scatter_add(y, inputs[P.idx_m], dim_size=inputs[P.n_atoms].shape[0])
        inputs[self.output_key] = 0.5 * self.ke * y
        return inputs

    saved = Atomwise.forward, ZBLRepulsionEnergy.forward, scatter._scatter_add
    Atomwise.forward, ZBLRepulsionEnergy.forward = atomwise_forward, zbl_forward
    scatter._scatter_add = _scatter_add
    try:
        yield
    finally:
        Atomwise.forward, ZBLRepulsionEnergy.forward, scatter._scatter_add = saved




def remove_detach(gm: "torch.fx.GraphModule") -> "torch.fx.GraphModule":
    """Remove ``aten.detach``/``aten.alias`` nodes from a traced graph (in place; returned)."""
    detach = (torch.ops.aten.detach.default, torch.ops.aten.alias.default)
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in detach:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm
