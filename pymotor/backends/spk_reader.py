"""Reading SchNetPack 2.2 modules out of a TorchScript file (``pymotor export`` or ``spkdeploy``):
what the readers of the fast SchNet (:func:`pymotor.backends.fast_schnet.read_schnet_weights`) and
the fast PaiNN (:func:`pymotor.backends.fast_painn.read_painn_weights`) share. Every weight is
returned as a float64 numpy array; anything the fast evaluators cannot evaluate raises
:class:`UnsupportedModelError` naming the part."""
from __future__ import annotations

import numpy as np

from .base import UnsupportedModelError

__all__ = ["module_name", "children", "scalar", "array", "dense", "read_common", "read_outputs", "read_zbl"]


def module_name(mod) -> str:
    """The class name of a scripted module (``Dense``, ``PaiNN``, ...)."""
    return getattr(mod, "original_name", type(mod).__name__)


def children(mod) -> list:
    return [c for _, c in mod.named_children()]


def scalar(t) -> float:
    """The first entry of a tensor as a Python float."""
    return float(t.detach().double().numpy().ravel()[0])


def array(t) -> np.ndarray:
    """A tensor as a float64 numpy array (a copy)."""
    return t.detach().double().numpy().copy()


def _activation(dense, where: str) -> str:
    """'none', 'shifted_softplus' or 'silu' of a SchNetPack Dense layer (from its TorchScript code)."""
    code = dense.code
    if "schnetpack.nn.activations.shifted_softplus" in code:
        return "shifted_softplus"
    if "torch.nn.functional.silu" in code:
        return "silu"
    if "(activation).forward" in code and hasattr(dense, "activation"):
        act = module_name(dense.activation)
        if act == "Identity":
            return "none"
        raise UnsupportedModelError(f"{where}: activation module {act} is not supported by the fast backend "
                                    "(supported: shifted softplus, SiLU, none)")
    raise UnsupportedModelError(f"{where}: unrecognised activation in its TorchScript code; the fast backend "
                                "supports shifted softplus, SiLU and none")


def dense(mod, where: str) -> dict:
    """A SchNetPack Dense layer: ``{"weight", "bias" (or None), "activation"}``."""
    if module_name(mod) != "Dense":
        raise UnsupportedModelError(f"{where} is a {module_name(mod)}, expected a SchNetPack Dense layer")
    b = getattr(mod, "bias", None)
    return {"weight": array(mod.weight), "bias": None if b is None else array(b),
            "activation": _activation(mod, where)}


def read_common(module, representation: str, backend: str):
    """The checks and weights every fast evaluator shares: a NeuralNetworkPotential whose input
    is PairwiseDistances and whose ``representation`` (``"SchNet"``, ``"PaiNN"``) uses
    nn.Embedding, GaussianRBF and CosineCutoff without electronic embeddings; AddOffsets
    postprocessors on the energy (as spkdeploy keeps them) become constants. ``backend`` names
    the evaluator in messages (``"fast PaiNN backend"``).

    Returns the representation module and ``{"cutoff", "rbf_offsets", "rbf_widths",
    "embedding", "postprocessor_offsets"}``."""
    root = module_name(module)
    if root != "NeuralNetworkPotential":
        raise UnsupportedModelError(f"the model is a {root}, not a SchNetPack NeuralNetworkPotential; the "
                                    f"{backend} evaluates SchNetPack {representation} models only")
    rep = module.representation
    if module_name(rep) != representation:
        raise UnsupportedModelError(f"representation {module_name(rep)} is not supported by the {backend} "
                                    f"({representation} only); use backend='torchscript'")
    inputs = [module_name(c) for c in children(module.input_modules)]
    if inputs != ["PairwiseDistances"]:
        raise UnsupportedModelError(f"input modules {inputs} are not supported (expected ['PairwiseDistances'])")
    offsets = _postprocessor_offsets(module, backend)
    if module_name(rep.radial_basis) != "GaussianRBF":
        raise UnsupportedModelError(f"radial basis {module_name(rep.radial_basis)} is not supported "
                                    "(GaussianRBF only)")
    if module_name(rep.cutoff_fn) != "CosineCutoff":
        raise UnsupportedModelError(f"cutoff function {module_name(rep.cutoff_fn)} is not supported "
                                    "(CosineCutoff only)")
    if module_name(rep.embedding) != "Embedding":
        raise UnsupportedModelError(f"nuclear embedding {module_name(rep.embedding)} is not supported "
                                    "(nn.Embedding only)")
    if children(rep.electronic_embeddings):
        raise UnsupportedModelError(f"electronic (charge/spin) embeddings are not supported by the {backend}")
    return rep, {"cutoff": scalar(rep.cutoff_fn.cutoff), "rbf_offsets": array(rep.radial_basis.offsets),
                 "rbf_widths": array(rep.radial_basis.widths), "embedding": array(rep.embedding.weight),
                 "postprocessor_offsets": offsets}


def _postprocessor_offsets(module, backend: str) -> list:
    """AddOffsets on the energy (float32 in the file, a constant per molecule added in float64)."""
    offsets = []
    if not bool(getattr(module, "do_postprocessing", True)):
        return offsets
    for pp in children(module.postprocessors):
        if module_name(pp) != "AddOffsets" or getattr(pp, "_property", None) != "energy":
            post = [module_name(c) for c in children(module.postprocessors)]
            raise UnsupportedModelError(f"postprocessors {post} inside the model file are not supported by the "
                                        f"{backend} (only AddOffsets on the energy)")
        offsets.append({"add_mean": bool(pp.add_mean), "add_atomrefs": bool(pp.add_atomrefs),
                        "is_extensive": bool(pp.is_extensive), "mean": scalar(pp.mean),
                        "atomref": pp.atomref.detach().double().numpy().ravel().copy()})
    return offsets


def read_outputs(module) -> dict:
    """Atomwise(sum) [-> ScaleProperty] [-> ZBLRepulsionEnergy -> Aggregation] -> Forces:
    ``{"readout": [Dense...], "energy_scale", "zbl" (None or :func:`read_zbl`)}``."""
    outs = children(module.output_modules)
    names = [module_name(c) for c in outs]
    zbl = None
    if names[-3:-1] == ["ZBLRepulsionEnergy", "Aggregation"]:
        zbl = read_zbl(outs[-3], outs[-2])
        outs, names = outs[:-3] + outs[-1:], names[:-3] + names[-1:]
    if names not in (["Atomwise", "Forces"], ["Atomwise", "ScaleProperty", "Forces"]):
        raise UnsupportedModelError(f"output modules {names} are not supported (expected Atomwise, optionally "
                                    "ScaleProperty, optionally ZBLRepulsionEnergy + Aggregation, then Forces)")
    aw = outs[0]
    if aw.output_key != "energy" or aw.aggregation_mode != "sum":
        raise UnsupportedModelError(f"Atomwise output {aw.output_key!r} with aggregation {aw.aggregation_mode!r} is "
                                    "not supported (energy, sum)")
    readout = [dense(c, f"output_modules.0.outnet.{i}") for i, c in enumerate(children(aw.outnet))]
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
    return {"readout": readout, "energy_scale": scale, "zbl": zbl}


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def read_zbl(zbl, agg) -> dict:
    """Parameters of SchNetPack's ZBLRepulsionEnergy (after softplus and normalisation) summed into the
    energy by an Aggregation; its cutoff function None, CosineCutoff or SwitchFunction."""
    if list(agg.keys) != ["energy", zbl.output_key] or agg.output_key != "energy":
        raise UnsupportedModelError(f"Aggregation of {list(agg.keys)} into {agg.output_key!r} is not supported "
                                    f"(expected ['energy', {zbl.output_key!r}] into 'energy')")
    sp = {k: _softplus(getattr(zbl, k).detach().double().numpy().ravel())
          for k in ("a_pow", "a_div", "coefficients", "exponents")}
    out = {"ke": scalar(zbl.ke), "a_pow": float(sp["a_pow"][0]),
           "a_div": float(sp["a_div"][0]), "coefficients": sp["coefficients"] / np.sum(np.abs(sp["coefficients"])),
           "exponents": sp["exponents"], "switch": "none"}
    fn = getattr(zbl, "cutoff_fn", None)
    if fn is not None:
        kind = module_name(fn)
        if kind == "CosineCutoff":
            out.update(switch="cosine", r_off=scalar(fn.cutoff))
        elif kind == "SwitchFunction":
            out.update(switch="switch", r_on=scalar(fn.switch_on), r_off=scalar(fn.switch_off))
        else:
            raise UnsupportedModelError(f"ZBL cutoff function {kind} is not supported (None, CosineCutoff or "
                                        "SwitchFunction)")
    return out
