"""A fast C++ evaluator for exported SchNet models (``load_model(path, backend="fast-schnet")``, or ``"fast"``).

The weights of a TorchScript file in SchNetPack's deployed format (``pymotor export`` or
``spkdeploy``) are read here (with :mod:`pymotor.backends.spk_reader`, shared with the fast
PaiNN), the architecture is checked against SchNetPack 2.2's
``NeuralNetworkPotential(SchNet, Atomwise[, ScaleProperty][, ZBLRepulsionEnergy, Aggregation], Forces)``
(the optional ZBL repulsive prior of ``pymotor train --prior zbl`` is evaluated per pair in
double precision), and everything is handed
to ``pymotor._core.FastSchNetModel``, which

* tabulates each interaction's continuous filter W_t(r) = Dense2(act(Dense1(rbf(r)))) * fcut(r)
  and dW_t/dr once on a uniform grid over [0, cutoff] (cubic Hermite; the grid is refined until
  the relative interpolation error is below ``tolerance``, see :attr:`FastSchNetModel.table_info`);
* evaluates energy and forces with a fused continuous-filter convolution over a half Verlet
  list and a hand-written backward pass, in float32 (default, as the TorchScript model) or
  float64, for one molecule or a batch of replicas (OpenMP threads over replicas).

AddOffsets postprocessors kept in a file by ``spkdeploy`` are applied as a float64 constant.
Anything else (PaiNN, custom modules, learnable activations, other postprocessors) raises :class:`UnsupportedModelError` naming what is not supported. At load time the fast
evaluator is compared with the TorchScript model on a small test molecule (``check=True``).
"""
from __future__ import annotations

import os

from .. import _core
from .base import UnsupportedModelError
from .spk_reader import children, dense, module_name, read_common, read_outputs
from .tabulated import TabulatedModel

__all__ = ["FastSchNetModel", "UnsupportedModelError", "read_schnet_weights"]


def read_schnet_weights(module) -> dict:
    """The weights of a scripted SchNetPack SchNet energy model as numpy arrays (model units).

    ``module`` is a loaded TorchScript module (``torch.jit.load``). Raises
    :class:`UnsupportedModelError` for anything but NeuralNetworkPotential(PairwiseDistances ->
    SchNet(nn.Embedding, GaussianRBF, CosineCutoff) -> Atomwise(sum) [-> ScaleProperty]
    [-> ZBLRepulsionEnergy -> Aggregation] -> Forces).
    """
    rep, common = read_common(module, "SchNet", FastSchNetModel.backend_name)
    inter = []
    k = 0
    while hasattr(rep.interactions, str(k)):  # shared interactions appear as repeated entries
        it = getattr(rep.interactions, str(k))
        where = f"representation.interactions.{k}"
        if module_name(it) != "SchNetInteraction":
            raise UnsupportedModelError(f"{where} is a {module_name(it)}, not a SchNetInteraction")
        fn, fo = it.filter_network, it.f2out
        if len(children(fn)) != 2 or len(children(fo)) != 2:
            raise UnsupportedModelError(f"{where}: filter_network and f2out must have two Dense layers each")
        in2f = dense(it.in2f, f"{where}.in2f")
        if in2f["bias"] is not None:
            raise UnsupportedModelError(f"{where}.in2f has a bias; SchNet's in2f has none")
        layer = {
            "in2f": in2f,
            "filter1": dense(getattr(fn, "0"), f"{where}.filter_network.0"),
            "filter2": dense(getattr(fn, "1"), f"{where}.filter_network.1"),
            "f2out1": dense(getattr(fo, "0"), f"{where}.f2out.0"),
            "f2out2": dense(getattr(fo, "1"), f"{where}.f2out.1"),
        }
        if layer["in2f"]["activation"] != "none" or layer["f2out2"]["activation"] != "none":
            raise UnsupportedModelError(f"{where}: in2f and f2out.1 must be linear")
        inter.append(layer)
        k += 1
    if not inter:
        raise UnsupportedModelError("the SchNet has no interaction blocks")
    return {**common, "interactions": inter, **read_outputs(module)}


class FastSchNetModel(TabulatedModel):
    """An exported SchNet evaluated by pymotor's C++ SchNet kernels (same interface as :class:`Model`).

    Parameters
    ----------
    path, energy_unit, length_unit
        As for :class:`pymotor.Model`.
    dtype
        ``"float32"`` (default; the precision of the TorchScript model) or ``"float64"``.
    n_intervals
        Filter-table intervals over [0, cutoff]; 0 (default) refines the grid until the relative
        interpolation error of the filters is below ``tolerance`` (and of dW/dr below 10x it).
    n_threads
        OpenMP threads over replicas; 1 (default) or 0 to follow ``torch.get_num_threads()``.
    check
        Compare with the TorchScript model on a small test molecule at load time.
    isa
        The kernels' instruction set (:data:`~pymotor.backends.tabulated.ISA_NAMES`): ``"auto"``
        (default: the widest this CPU has), ``"avx512"``, ``"avx2"`` or ``"generic"``; the
        attribute ``isa`` names the one in use.
    """

    backend = "fast-schnet"
    architecture = "schnet"
    name = "SchNet"
    backend_name = "fast backend"

    def __init__(self, path: str | os.PathLike, energy_unit: str | None = None, length_unit: str | None = None,
                 device: str | None = None, dtype: str = "float32", n_intervals: int = 0,
                 tolerance: float = 1e-7, n_threads: int = 1, check: bool = True, isa: str = "auto"):
        super().__init__(path, energy_unit, length_unit, device, dtype, n_intervals, tolerance, n_threads, check,
                         isa)
        self._finish_init()

    def _read_weights(self, module) -> dict:
        return read_schnet_weights(module)

    def _make_core(self, dtype: str, n_intervals: int, tolerance: float):
        return _core.FastSchNetModel(self.weights, dtype, n_intervals, tolerance, self.isa_requested)

    def _core_potential(self, z, skin_A: float, offset_eV: float):
        return _core.FastSchNetPotential(self._fast, z, self.cutoff_A, skin_A, self.length_unit_A,
                                         self.energy_unit_eV, offset_eV, self.n_threads)
