"""SchNetPack models for pymotor: SchNet (default) or PaiNN energy model with forces as -dE/dR."""

from __future__ import annotations

from typing import Dict, Optional

import torch

__all__ = ["DEFAULT_HYPERPARAMETERS", "build_model", "preprocessing_transforms"]

DEFAULT_HYPERPARAMETERS = {
    # representation (SchNet defaults of the issue; PaiNN uses the same sizes)
    "n_atom_basis": 128,
    "n_interactions": 3,
    "n_rbf": 20,
    "cutoff": 5.0,  # Angstrom, cosine cutoff
    # optimisation
    "lr": 1e-3,  # as SchNetPack's md17/rmd17 experiments
    "weight_decay": 0.0,  # AdamW, as SchNetPack's adamw config
    "lr_factor": 0.5,  # ReduceLROnPlateau on val_loss
    "lr_patience": 25,  # epochs
    "lr_min": 1e-6,
    "early_stopping_patience": 75,  # epochs
    "ema_decay": 0.995,
    "val_batch_size": 64,
}


def preprocessing_transforms(cutoff: float, atomrefs: Optional[torch.Tensor], mean_per_atom: float,
                             remove_offsets: bool = True):
    """Per-frame transforms: centre of mass -> energy offset removal -> neighbour list -> float32.

    The offset is removed in float64, before the cast, so that the float32 model only sees
    the small remainder of the energy.
    """
    from schnetpack import transform as T

    ts = [T.SubtractCenterOfMass()]
    if remove_offsets:
        ts.append(
            T.RemoveOffsets(
                "energy",
                remove_mean=True,
                remove_atomrefs=atomrefs is not None,
                atomrefs=atomrefs,
                property_mean=torch.tensor([mean_per_atom], dtype=torch.float64),
            )
        )
    ts += [T.VesinNeighborList(cutoff=cutoff), T.CastTo32()]
    return ts


def build_model(architecture: str, hp: Dict, atomrefs: Optional[torch.Tensor], mean_per_atom: float,
                energy_scale: float = 1.0):
    """A ``NeuralNetworkPotential`` predicting ``energy`` and ``forces``.

    `energy_scale` multiplies the network's energy output (a fixed buffer, not trained): with
    the unit-invariant weighting it is the training set's force standard deviation, so the
    network itself works with unit-free numbers.  The postprocessors (CastTo64, AddOffsets)
    add the energy offset in float64 for Python inference; `export` removes them and stores
    the offset in the metadata instead.
    """
    import schnetpack as spk
    from schnetpack import transform as T

    cutoff = float(hp["cutoff"])
    rbf = spk.nn.GaussianRBF(n_rbf=int(hp["n_rbf"]), cutoff=cutoff)
    cut = spk.nn.CosineCutoff(cutoff)
    if architecture == "schnet":
        rep = spk.representation.SchNet(
            n_atom_basis=int(hp["n_atom_basis"]), n_interactions=int(hp["n_interactions"]),
            radial_basis=rbf, cutoff_fn=cut,
        )
    elif architecture == "painn":
        rep = spk.representation.PaiNN(
            n_atom_basis=int(hp["n_atom_basis"]), n_interactions=int(hp["n_interactions"]),
            radial_basis=rbf, cutoff_fn=cut,
        )
    else:
        raise ValueError(f"`model` must be 'schnet' or 'painn', got {architecture!r}")
    outputs = [spk.atomistic.Atomwise(n_in=int(hp["n_atom_basis"]), output_key="energy")]
    if energy_scale != 1.0:
        outputs.append(
            T.ScaleProperty("energy", scale=torch.tensor([float(energy_scale)], dtype=torch.float32))
        )
    outputs.append(spk.atomistic.Forces(energy_key="energy", force_key="forces"))
    post = [
        T.CastTo64(),
        T.AddOffsets(
            "energy",
            add_mean=True,
            add_atomrefs=atomrefs is not None,
            atomrefs=atomrefs,
            property_mean=torch.tensor([mean_per_atom], dtype=torch.float64),
        ),
    ]
    return spk.model.NeuralNetworkPotential(
        representation=rep,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=outputs,
        postprocessors=post,
    )
