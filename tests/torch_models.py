"""Small TorchScript potentials in SchNetPack's deployed input/output format, for tests.

`TinySchNet` is a real (small) SchNet: element embedding, Gaussian radial basis, filter
networks with a cosine cutoff, continuous-filter convolutions, atom-wise readout, forces
by autograd, exactly the interface of a model deployed with SchNetPack's ``spkdeploy``.
Weights are random (seeded): a smooth but non-trivial many-body potential.
"""
from __future__ import annotations

import json
import math
from typing import Dict, List, Optional

import torch
from torch import nn


def ssp(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.softplus(x) - math.log(2.0)


class TinySchNet(nn.Module):
    def __init__(self, cutoff: float = 5.0, n_features: int = 16, n_rbf: int = 12, n_interactions: int = 2,
                 seed: int = 0, energy_scale: float = 1.0):
        super().__init__()
        torch.manual_seed(seed)
        self.cutoff = cutoff
        self.energy_scale = energy_scale
        self.embedding = nn.Embedding(100, n_features)
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_rbf))
        self.width = float(cutoff / (n_rbf - 1))
        self.filters1 = nn.ModuleList([nn.Linear(n_rbf, n_features) for _ in range(n_interactions)])
        self.filters2 = nn.ModuleList([nn.Linear(n_features, n_features) for _ in range(n_interactions)])
        self.updates = nn.ModuleList([nn.Linear(n_features, n_features) for _ in range(n_interactions)])
        self.out1 = nn.Linear(n_features, 8)
        self.out2 = nn.Linear(8, 1)
        # a short-range repulsion keeps MD with random weights physical
        self.repulsion = 2.0

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        R = inputs["_positions"]
        R.requires_grad_(True)
        z = inputs["_atomic_numbers"]
        idx_i = inputs["_idx_i"]
        idx_j = inputs["_idx_j"]
        idx_m = inputs["_idx_m"]
        n_mol = inputs["_n_atoms"].shape[0]
        rij = R[idx_j] - R[idx_i] + inputs["_offsets"]
        d = torch.norm(rij, dim=1)
        fcut = 0.5 * (torch.cos(d * math.pi / self.cutoff) + 1.0) * (d < self.cutoff).to(d.dtype)
        rbf = torch.exp(-0.5 * ((d[:, None] - self.centers[None, :]) / self.width) ** 2)
        x = self.embedding(z)
        for f1, f2, up in zip(self.filters1, self.filters2, self.updates):
            w = f2(ssp(f1(rbf))) * fcut[:, None]
            m = torch.zeros_like(x).index_add(0, idx_i, x[idx_j] * w)
            x = x + up(ssp(m))
        e_atom = self.out2(ssp(self.out1(x))).squeeze(-1) * 0.1
        e_pair = self.repulsion * torch.exp(-2.0 * d) * fcut
        e_atom = e_atom + 0.5 * torch.zeros_like(e_atom).index_add(0, idx_i, e_pair)
        energy = torch.zeros(n_mol, dtype=R.dtype, device=R.device).index_add(0, idx_m, e_atom)
        energy = energy * self.energy_scale
        go: List[Optional[torch.Tensor]] = [torch.ones_like(energy)]
        grads = torch.autograd.grad([energy], [R], grad_outputs=go, create_graph=False)
        g = grads[0]
        assert g is not None
        return {"energy": energy, "forces": -g}


def save_model(module: nn.Module, path, *, cutoff: float | None = 5.0, metadata: dict | None = None) -> str:
    """Script ``module`` and save it with the `_extra_files` of a deployed model."""
    scripted = torch.jit.script(module)
    extra = {}
    if cutoff is not None:
        extra["cutoff"] = str(cutoff)
    if metadata is not None:
        extra["metadata"] = json.dumps(metadata)
    torch.jit.save(scripted, str(path), _extra_files=extra)
    return str(path)


def pymotor_metadata(cutoff=5.0, energy_unit="eV", length_unit="Angstrom", elements=(1, 6, 7, 8), offset=None):
    return {"format": "pymotor.model/1", "cutoff": cutoff, "energy_unit": energy_unit,
            "length_unit": length_unit, "elements": list(elements), "architecture": "schnet",
            "energy_offset": offset or {"atomrefs": {}, "mean_per_atom": 0.0}}


def reference_energy_forces(module: nn.Module, positions, numbers, cutoff: float):
    """Evaluate the (unscripted, float64) module on all pairs within the cutoff."""
    import numpy as np

    pos = torch.tensor(np.asarray(positions), dtype=torch.float64)
    n = len(pos)
    ii, jj = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    mask = (ii != jj) & (torch.cdist(pos, pos) < cutoff)
    module = module.double()
    inputs = {"_positions": pos.clone(), "_atomic_numbers": torch.tensor(numbers, dtype=torch.int64),
              "_idx_i": ii[mask], "_idx_j": jj[mask], "_idx_m": torch.zeros(n, dtype=torch.int64),
              "_n_atoms": torch.tensor([n]), "_offsets": torch.zeros(int(mask.sum()), 3, dtype=torch.float64)}
    out = module(inputs)
    module.float()
    return out["energy"].detach().numpy()[0], out["forces"].detach().numpy()


def spk_schnet(n_atom_basis: int = 128, n_interactions: int = 3, n_rbf: int = 20, cutoff: float = 5.0,
               seed: int = 0, postprocessors=None, **schnet_kwargs):
    """A random-weight (seeded) SchNetPack 2.2 SchNet ``NeuralNetworkPotential`` in eval mode:
    ``PairwiseDistances`` input, Gaussian RBF, cosine cutoff (Angstrom), ``Atomwise`` energy and
    ``Forces``; extra keyword arguments go to ``spk.representation.SchNet``."""
    import schnetpack as spk

    torch.manual_seed(seed)
    rep = spk.representation.SchNet(n_atom_basis=n_atom_basis, n_interactions=n_interactions,
                                    radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff),
                                    cutoff_fn=spk.nn.CosineCutoff(cutoff), **schnet_kwargs)
    model = spk.model.NeuralNetworkPotential(
        representation=rep, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=n_atom_basis, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")],
        postprocessors=postprocessors)
    return model.eval()
