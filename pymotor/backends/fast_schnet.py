"""A fast C++ evaluator for exported SchNet models (``load_model(path, backend="fast-schnet")``, or ``"fast"``).

The weights of a TorchScript file in SchNetPack's deployed format (``pymotor export`` or
``spkdeploy``) are read here, the architecture is checked against SchNetPack 2.2's
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

import numpy as np

from .. import _core
from .base import UnsupportedModelError
from .tabulated import TabulatedModel

__all__ = ["FastSchNetModel", "UnsupportedModelError", "read_schnet_weights"]


def _name(mod) -> str:
    return getattr(mod, "original_name", type(mod).__name__)


def _children(mod) -> list:
    return [c for _, c in mod.named_children()]


def _activation(dense, where: str) -> str:
    """'none', 'shifted_softplus' or 'silu' of a SchNetPack Dense layer (from its TorchScript code)."""
    code = dense.code
    if "schnetpack.nn.activations.shifted_softplus" in code:
        return "shifted_softplus"
    if "torch.nn.functional.silu" in code:
        return "silu"
    if "(activation).forward" in code and hasattr(dense, "activation"):
        act = _name(dense.activation)
        if act == "Identity":
            return "none"
        raise UnsupportedModelError(f"{where}: activation module {act} is not supported by the fast backend "
                                    "(supported: shifted softplus, SiLU, none)")
    raise UnsupportedModelError(f"{where}: unrecognised activation in its TorchScript code; the fast backend "
                                "supports shifted softplus, SiLU and none")


def _dense(mod, where: str, bias: bool | None = None) -> dict:
    if _name(mod) != "Dense":
        raise UnsupportedModelError(f"{where} is a {_name(mod)}, expected a SchNetPack Dense layer")
    w = mod.weight.detach().double().numpy().copy()
    b = getattr(mod, "bias", None)
    b = None if b is None else b.detach().double().numpy().copy()
    if bias is False and b is not None:
        raise UnsupportedModelError(f"{where} has a bias; SchNet's in2f has none")
    return {"weight": w, "bias": b, "activation": _activation(mod, where)}


def read_schnet_weights(module) -> dict:
    """The weights of a scripted SchNetPack SchNet energy model as numpy arrays (model units).

    ``module`` is a loaded TorchScript module (``torch.jit.load``). Raises
    :class:`UnsupportedModelError` for anything but NeuralNetworkPotential(PairwiseDistances ->
    SchNet(nn.Embedding, GaussianRBF, CosineCutoff) -> Atomwise(sum) [-> ScaleProperty]
    [-> ZBLRepulsionEnergy -> Aggregation] -> Forces).
    """
    root = _name(module)
    if root != "NeuralNetworkPotential":
        raise UnsupportedModelError(f"the model is a {root}, not a SchNetPack NeuralNetworkPotential; the fast "
                                    "backend evaluates SchNetPack SchNet models only")
    rep = module.representation
    if _name(rep) != "SchNet":
        raise UnsupportedModelError(f"representation {_name(rep)} is not supported by the fast backend "
                                    "(SchNet only); use backend='torchscript'")
    inputs = [_name(c) for c in _children(module.input_modules)]
    if inputs != ["PairwiseDistances"]:
        raise UnsupportedModelError(f"input modules {inputs} are not supported (expected ['PairwiseDistances'])")
    offsets = []
    if bool(getattr(module, "do_postprocessing", True)):
        for pp in _children(module.postprocessors):
            # spkdeploy keeps AddOffsets (float32) in the file: a constant per molecule, added here in float64
            if _name(pp) != "AddOffsets" or getattr(pp, "_property", None) != "energy":
                post = [_name(c) for c in _children(module.postprocessors)]
                raise UnsupportedModelError(f"postprocessors {post} inside the model file are not supported by the "
                                            "fast backend (only AddOffsets on the energy)")
            offsets.append({"add_mean": bool(pp.add_mean), "add_atomrefs": bool(pp.add_atomrefs),
                            "is_extensive": bool(pp.is_extensive),
                            "mean": float(pp.mean.detach().double().numpy().ravel()[0]),
                            "atomref": pp.atomref.detach().double().numpy().ravel().copy()})
    if _name(rep.radial_basis) != "GaussianRBF":
        raise UnsupportedModelError(f"radial basis {_name(rep.radial_basis)} is not supported (GaussianRBF only)")
    if _name(rep.cutoff_fn) != "CosineCutoff":
        raise UnsupportedModelError(f"cutoff function {_name(rep.cutoff_fn)} is not supported (CosineCutoff only)")
    if _name(rep.embedding) != "Embedding":
        raise UnsupportedModelError(f"nuclear embedding {_name(rep.embedding)} is not supported (nn.Embedding only)")
    if _children(rep.electronic_embeddings):
        raise UnsupportedModelError("electronic (charge/spin) embeddings are not supported by the fast backend")

    inter = []
    k = 0
    while hasattr(rep.interactions, str(k)):  # shared interactions appear as repeated entries
        it = getattr(rep.interactions, str(k))
        where = f"representation.interactions.{k}"
        if _name(it) != "SchNetInteraction":
            raise UnsupportedModelError(f"{where} is a {_name(it)}, not a SchNetInteraction")
        fn, fo = it.filter_network, it.f2out
        if len(_children(fn)) != 2 or len(_children(fo)) != 2:
            raise UnsupportedModelError(f"{where}: filter_network and f2out must have two Dense layers each")
        layer = {
            "in2f": _dense(it.in2f, f"{where}.in2f", bias=False),
            "filter1": _dense(getattr(fn, "0"), f"{where}.filter_network.0"),
            "filter2": _dense(getattr(fn, "1"), f"{where}.filter_network.1"),
            "f2out1": _dense(getattr(fo, "0"), f"{where}.f2out.0"),
            "f2out2": _dense(getattr(fo, "1"), f"{where}.f2out.1"),
        }
        if layer["in2f"]["activation"] != "none" or layer["f2out2"]["activation"] != "none":
            raise UnsupportedModelError(f"{where}: in2f and f2out.1 must be linear")
        inter.append(layer)
        k += 1
    if not inter:
        raise UnsupportedModelError("the SchNet has no interaction blocks")

    outs = _children(module.output_modules)
    names = [_name(c) for c in outs]
    zbl = None
    if names[-3:-1] == ["ZBLRepulsionEnergy", "Aggregation"]:
        zbl = _zbl(outs[-3], outs[-2])
        outs, names = outs[:-3] + outs[-1:], names[:-3] + names[-1:]
    if names not in (["Atomwise", "Forces"], ["Atomwise", "ScaleProperty", "Forces"]):
        raise UnsupportedModelError(f"output modules {names} are not supported (expected Atomwise, optionally "
                                    "ScaleProperty, optionally ZBLRepulsionEnergy + Aggregation, then Forces)")
    aw = outs[0]
    if aw.output_key != "energy" or aw.aggregation_mode != "sum":
        raise UnsupportedModelError(f"Atomwise output {aw.output_key!r} with aggregation {aw.aggregation_mode!r} is "
                                    "not supported (energy, sum)")
    readout = [_dense(c, f"output_modules.0.outnet.{i}") for i, c in enumerate(_children(aw.outnet))]
    if not readout or readout[-1]["weight"].shape[0] != 1:
        raise UnsupportedModelError("the Atomwise network must end in one output per atom")
    scale = 1.0
    if names[1] == "ScaleProperty":
        sp = outs[1]
        if sp.input_key != "energy" or sp.output_key != "energy":
            raise UnsupportedModelError("ScaleProperty must scale 'energy' in place")
        s = sp.scale.detach().double().numpy().ravel()
        if s.size != 1:
            raise UnsupportedModelError("ScaleProperty must hold one scale factor")
        scale = float(s[0])
    forces = outs[-1]
    if (getattr(forces, "energy_key", None) != "energy" or getattr(forces, "force_key", None) != "forces"
            or bool(getattr(forces, "calc_stress", False))):
        raise UnsupportedModelError("the Forces module must compute 'forces' from 'energy' without stress")

    return {
        "cutoff": float(rep.cutoff_fn.cutoff.detach().double().numpy().ravel()[0]),
        "rbf_offsets": rep.radial_basis.offsets.detach().double().numpy().copy(),
        "rbf_widths": rep.radial_basis.widths.detach().double().numpy().copy(),
        "embedding": rep.embedding.weight.detach().double().numpy().copy(),
        "interactions": inter,
        "readout": readout,
        "energy_scale": scale,
        "postprocessor_offsets": offsets,
        "zbl": zbl,
    }


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _zbl(zbl, agg) -> dict:
    """Parameters of SchNetPack's ZBLRepulsionEnergy (after softplus and normalisation) summed into the
    energy by an Aggregation; its cutoff function None, CosineCutoff or SwitchFunction."""
    if list(agg.keys) != ["energy", zbl.output_key] or agg.output_key != "energy":
        raise UnsupportedModelError(f"Aggregation of {list(agg.keys)} into {agg.output_key!r} is not supported "
                                    f"(expected ['energy', {zbl.output_key!r}] into 'energy')")
    sp = {k: _softplus(getattr(zbl, k).detach().double().numpy().ravel())
          for k in ("a_pow", "a_div", "coefficients", "exponents")}
    out = {"ke": float(zbl.ke.detach().double().numpy().ravel()[0]), "a_pow": float(sp["a_pow"][0]),
           "a_div": float(sp["a_div"][0]), "coefficients": sp["coefficients"] / np.sum(np.abs(sp["coefficients"])),
           "exponents": sp["exponents"], "switch": "none"}
    fn = getattr(zbl, "cutoff_fn", None)
    if fn is not None:
        kind = _name(fn)
        if kind == "CosineCutoff":
            out.update(switch="cosine", r_off=float(fn.cutoff.detach().double().numpy().ravel()[0]))
        elif kind == "SwitchFunction":
            out.update(switch="switch", r_on=float(fn.switch_on.detach().double().numpy().ravel()[0]),
                       r_off=float(fn.switch_off.detach().double().numpy().ravel()[0]))
        else:
            raise UnsupportedModelError(f"ZBL cutoff function {kind} is not supported (None, CosineCutoff or "
                                        "SwitchFunction)")
    return out


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
    """

    backend = "fast-schnet"
    architecture = "schnet"
    name = "SchNet"
    backend_name = "fast backend"

    def __init__(self, path: str | os.PathLike, energy_unit: str | None = None, length_unit: str | None = None,
                 device: str | None = None, dtype: str = "float32", n_intervals: int = 0,
                 tolerance: float = 1e-7, n_threads: int = 1, check: bool = True):
        super().__init__(path, energy_unit, length_unit, device, dtype, n_intervals, tolerance, n_threads, check)
        self._finish_init()

    def _read_weights(self, module) -> dict:
        return read_schnet_weights(module)

    def _make_core(self, dtype: str, n_intervals: int, tolerance: float):
        return _core.FastSchNetModel(self.weights, dtype, n_intervals, tolerance)

    def _core_potential(self, z, skin_A: float, offset_eV: float):
        return _core.FastSchNetPotential(self._fast, z, self.cutoff_A, skin_A, self.length_unit_A,
                                         self.energy_unit_eV, offset_eV, self.n_threads)
