"""SchNetPack models for pymotor: SchNet (default) or PaiNN energy model with forces as -dE/dR.

Optionally with a short-range repulsive prior (``prior="zbl"``): the universal screened nuclear
repulsion of Ziegler, Biersack and Littmark (The Stopping and Range of Ions in Solids, 1985;
SchNetPack's ``ZBLRepulsionEnergy`` with its universal parameters, not trained) switched on only
below the shortest interatomic distances MD samples (by default full below 0.4 Å, zero above
0.9 Å; SchNetPack's smooth ``SwitchFunction``). Reference data at 300-500 K never contain
such distances, so a network alone has no wall there and MD can fall into a hole where two atoms
merge; the prior supplies the wall and leaves the energy of sampled geometries unchanged.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

__all__ = ["DEFAULT_HYPERPARAMETERS", "LEGACY_HYPERPARAMETERS", "PRIORS", "build_model", "prior_modules",
           "preprocessing_transforms"]

PRIORS = (None, "zbl")

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
    # short-range repulsive prior (None or "zbl"), switched from full (below on) to zero (above off)
    "prior": None,
    "prior_switch_on": 0.4,  # Angstrom
    "prior_switch_off": 0.9,  # Angstrom; below the shortest C-H distance sampled at 300-500 K (~0.95)
}

# values of keys added after the first run format, for run directories written before them
LEGACY_HYPERPARAMETERS = {"prior": None, "prior_switch_on": 0.4, "prior_switch_off": 0.9}


def check_prior(hp: Dict) -> None:
    """Raise ValueError unless the prior settings in `hp` are valid."""
    if hp.get("prior") not in PRIORS:
        raise ValueError(f"hyperparameter `prior` must be one of {PRIORS}, got {hp.get('prior')!r}")
    on, off = float(hp["prior_switch_on"]), float(hp["prior_switch_off"])
    if not (0.0 <= on < off <= float(hp["cutoff"])):
        raise ValueError("hyperparameters `prior_switch_on` < `prior_switch_off` <= `cutoff` (Angstrom) are "
                         f"required, got {on}, {off}, {hp['cutoff']}")


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


def prior_modules(hp: Dict, energy_unit: str) -> list:
    """The output modules of the ZBL prior (``hp["prior"] == "zbl"``): SchNetPack's
    ZBLRepulsionEnergy (universal parameters, fixed) times its SwitchFunction, summed into
    ``energy``. They go after the network's energy (and its scale) and before ``Forces``."""
    import schnetpack as spk

    check_prior(hp)
    return [
        spk.atomistic.ZBLRepulsionEnergy(
            energy_unit=energy_unit, position_unit="Angstrom", output_key="zbl_energy", trainable=False,
            cutoff_fn=spk.nn.SwitchFunction(float(hp["prior_switch_on"]), float(hp["prior_switch_off"])),
        ),
        spk.atomistic.Aggregation(keys=["energy", "zbl_energy"], output_key="energy"),
    ]


def build_model(architecture: str, hp: Dict, atomrefs: Optional[torch.Tensor], mean_per_atom: float,
                energy_scale: float = 1.0, energy_unit: str = "kcal/mol"):
    """A ``NeuralNetworkPotential`` predicting ``energy`` and ``forces``.

    `energy_scale` multiplies the network's energy output (a fixed buffer, not trained): with
    the unit-invariant weighting it is the training set's force standard deviation, so the
    network itself works with unit-free numbers.  With ``hp["prior"] == "zbl"`` the ZBL repulsion
    (in `energy_unit`) is added to the scaled network energy before the forces are taken.  The
    postprocessors (CastTo64, AddOffsets)
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
    if hp.get("prior") == "zbl":
        outputs += prior_modules(hp, energy_unit)
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
