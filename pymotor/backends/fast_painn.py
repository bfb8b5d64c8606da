"""A fast C++ evaluator for exported PaiNN models (``load_model(path, backend="fast-painn")``, or ``"fast"``).

The weights of a TorchScript file in SchNetPack's deployed format (``pymotor export`` or
``spkdeploy``) are read here (what the fast SchNet's reader shares: :mod:`pymotor.backends.spk_reader`),
the architecture is checked against SchNetPack 2.2's
``NeuralNetworkPotential(PaiNN, Atomwise[, ScaleProperty][, ZBLRepulsionEnergy, Aggregation], Forces)``
(shared or separate filters and interactions; the optional ZBL prior of ``pymotor train --prior zbl``
is evaluated per pair in double precision), and everything is handed to ``pymotor._core.FastPaiNNModel``, which

* tabulates the filters of all interactions, W(r) = filter_net(rbf(r)) * fcut(r) (the scalar,
  r-direction and vector parts, 3 x n_atom_basis per interaction) and dW/dr once, as cubic Hermite
  polynomials on a uniform grid over [0, cutoff] refined until the relative interpolation error is
  below ``tolerance`` (:attr:`FastPaiNNModel.table_info`);
* evaluates energy and forces with the message and update (mixing) blocks fused over a half
  Verlet list and a hand-written backward pass of the equivariant messages and of the mixing's
  vector norm, in float32 (default, as the TorchScript model) or float64, for one molecule or a
  batch of replicas (OpenMP threads over replicas, blocks of replicas sized for the caches).

AddOffsets postprocessors kept in a file by ``spkdeploy`` are applied as a float64 constant.
Anything else (SchNet, custom modules, electronic embeddings, other radial bases or cutoffs,
learnable activations, other postprocessors) raises :class:`UnsupportedModelError` naming what is
not supported; ``backend="auto"`` then falls back to TorchScript. At load time the fast evaluator
is compared with the TorchScript model on a small test molecule (``check=True``).
"""
from __future__ import annotations

import os

from .. import _core
from ..modelfile import ModelFile
from .base import UnsupportedModelError
from .spk_reader import children, dense, module_name, read_common, read_outputs
from .tabulated import TabulatedModel

__all__ = ["FastPaiNNModel", "UnsupportedModelError", "read_painn_weights"]


def _linear(d: dict, where: str) -> dict:
    if d["activation"] != "none":
        raise UnsupportedModelError(f"{where} has activation {d['activation']}; PaiNN's is linear")
    return d


def read_painn_weights(module) -> dict:
    """The weights of a scripted SchNetPack PaiNN energy model as numpy arrays (model units).

    ``module`` is a loaded TorchScript module (``torch.jit.load``). Raises
    :class:`UnsupportedModelError` naming the unsupported part for anything but
    NeuralNetworkPotential(PairwiseDistances -> PaiNN(nn.Embedding, GaussianRBF, CosineCutoff,
    shared or separate filters/interactions, no electronic embeddings) -> Atomwise(sum)
    [-> ScaleProperty] [-> ZBLRepulsionEnergy -> Aggregation] -> Forces).
    """
    rep, common = read_common(module, "PaiNN", FastPaiNNModel.backend_name)
    F = int(rep.n_atom_basis)
    n_int = int(rep.n_interactions)
    blocks, eps = [], []
    for k in range(n_int):  # shared interactions appear as repeated entries
        if not (hasattr(rep.interactions, str(k)) and hasattr(rep.mixing, str(k))):
            raise UnsupportedModelError(f"PaiNN with n_interactions={n_int} lacks interaction/mixing block {k}")
        it, mx = getattr(rep.interactions, str(k)), getattr(rep.mixing, str(k))
        where = f"representation.interactions.{k}"
        if module_name(it) != "PaiNNInteraction" or module_name(mx) != "PaiNNMixing":
            raise UnsupportedModelError(f"block {k} is {module_name(it)} + {module_name(mx)}, "
                                        "not PaiNNInteraction + PaiNNMixing")
        ctx, intra = children(it.interatomic_context_net), children(mx.intraatomic_context_net)
        if len(ctx) != 2 or len(intra) != 2:
            raise UnsupportedModelError(f"block {k}: the context networks must have two Dense layers each")
        mwhere = f"representation.mixing.{k}"
        blocks.append({
            "context1": dense(ctx[0], f"{where}.interatomic_context_net.0"),
            "context2": _linear(dense(ctx[1], f"{where}.interatomic_context_net.1"),
                                f"{where}.interatomic_context_net.1"),
            "mu_mix": _linear(dense(mx.mu_channel_mix, f"{mwhere}.mu_channel_mix"), f"{mwhere}.mu_channel_mix"),
            "intra1": dense(intra[0], f"{mwhere}.intraatomic_context_net.0"),
            "intra2": _linear(dense(intra[1], f"{mwhere}.intraatomic_context_net.1"),
                              f"{mwhere}.intraatomic_context_net.1"),
        })
        if blocks[-1]["mu_mix"]["bias"] is not None:
            raise UnsupportedModelError(f"{mwhere}.mu_channel_mix has a bias; PaiNN's has none (a bias would break "
                                        "the rotational equivariance)")
        eps.append(float(mx.epsilon))
    if not blocks:
        raise UnsupportedModelError("the PaiNN has no interaction blocks")
    if len(set(eps)) != 1:
        raise UnsupportedModelError(f"the mixing blocks use different norm epsilons {eps}; the fast PaiNN backend "
                                    "supports one")
    shared = bool(rep.share_filters)
    filt = _linear(dense(rep.filter_net, "representation.filter_net"), "representation.filter_net")
    width = (1 if shared else n_int) * 3 * F
    if filt["weight"].shape[0] != width:
        raise UnsupportedModelError(f"representation.filter_net has {filt['weight'].shape[0]} outputs, expected "
                                    f"{width} (share_filters={shared}, {n_int} interactions x 3 x {F})")
    return {**common, "epsilon": eps[0], "filter": filt, "shared_filters": shared, "blocks": blocks,
            **read_outputs(module)}


class FastPaiNNModel(TabulatedModel):
    """An exported PaiNN evaluated by pymotor's C++ PaiNN kernels.

    Parameters
    ----------
    path, energy_unit, length_unit
        As for :func:`pymotor.load_model` (or a :class:`~pymotor.modelfile.ModelFile`).
    dtype
        ``"float32"`` (default; the precision of the TorchScript model) or ``"float64"``.
    n_intervals
        Filter-table intervals over [0, cutoff]; 0 (default) refines the grid until the relative
        interpolation error of the filters is below ``tolerance`` (and of dW/dr below 10x it).
    tolerance
        2e-7 (default): for the 128-feature PaiNN this picks 512 intervals (0.01 A), whose force
        error (1.5e-6 eV/A against a 4096-interval table, float64) is below the float32
        evaluation's own rounding (5e-6 eV/A) and four orders below a trained model's error; each
        halving of the table saves 3.5 % (AVX-512, Zen 5) to 13 % (AVX2, Zen 4) of a call (the
        tables are read from L3).
    n_threads
        OpenMP threads over replicas; 1 (default) or 0 to follow the OpenMP setting.
    block_atoms
        Replicas are evaluated in blocks of at most this many atoms (at least one replica), so that
        the intermediate arrays of a block (~30 KB per atom for 128 features) stay in the caches.
        64 (default): one CPNX per block, 6 % faster per replica than blocks of 256 atoms.
    check
        Compare with the TorchScript model on a small test molecule at load time.
    isa
        The kernels' instruction set (:data:`~pymotor.backends.tabulated.ISA_NAMES`): ``"auto"``
        (default: the widest this CPU has), ``"avx512"``, ``"avx2"`` or ``"generic"``; the
        attribute ``isa`` names the one in use.
    """

    backend = "fast-painn"
    architecture = "painn"
    name = "PaiNN"
    backend_name = "fast PaiNN backend"

    def __init__(self, path: str | os.PathLike | ModelFile, energy_unit: str | None = None,
                 length_unit: str | None = None, device: str | None = None, dtype: str = "float32",
                 n_intervals: int = 0, tolerance: float = 2e-7, n_threads: int = 1, block_atoms: int = 64,
                 check: bool = True, isa: str = "auto"):
        if int(block_atoms) < 1:
            raise ValueError(f"`block_atoms` must be >= 1, got {block_atoms}")
        self.block_atoms = int(block_atoms)
        super().__init__(path, energy_unit, length_unit, device, dtype, n_intervals, tolerance, n_threads, check,
                         isa)
        self._finish_init()

    def _read_weights(self, module) -> dict:
        return read_painn_weights(module)

    def _make_core(self, dtype: str, n_intervals: int, tolerance: float):
        return _core.FastPaiNNModel(self.weights, dtype, n_intervals, tolerance, self.isa_requested)

    def _core_potential(self, z, skin_A: float, offset_eV: float):
        return _core.FastPaiNNPotential(self._fast, z, self.cutoff_A, skin_A, self.length_unit_A,
                                        self.energy_unit_eV, offset_eV, self.n_threads, self.block_atoms)
