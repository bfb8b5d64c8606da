"""Evaluators of potentials, one module each, and the registry that picks one.

=================  ==============================================  ======================
name               module                                          evaluates
=================  ==============================================  ======================
``fast``           :mod:`~pymotor.backends.fast`                   the fast evaluator of the file's architecture
``fast-schnet``    :mod:`~pymotor.backends.fast_schnet`            SchNetPack SchNet (C++ kernels)
``fast-painn``     :mod:`~pymotor.backends.fast_painn`             SchNetPack PaiNN (C++ kernels)
``torchscript``    :mod:`~pymotor.backends.torchscript`            any deployed TorchScript file
``pt2``            :mod:`~pymotor.backends.pt2`                    an AOTInductor package (pymotor.deploy)
(analytic)         :mod:`~pymotor.backends.analytic`               harmonic, Lennard-Jones
(callback)         :mod:`~pymotor.backends.ase_callback`           any ASE calculator
=================  ==============================================  ======================

Every model backend is built from the same :class:`~pymotor.modelfile.ModelFile`.
``load_model(path, backend="auto")`` tries :data:`AUTO_ORDER` (fastest first) and takes the
first backend that supports the file (each checks itself against the TorchScript reference
at load); an AOTInductor package (``.pt2``) is run by ``pt2``. A new backend is one module
plus one line in :data:`REGISTRY`.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from ..modelfile import ModelFile
from .base import DEFAULT_SKIN_A, ModelCalculator, NNModel, UnsupportedModelError

__all__ = ["REGISTRY", "AUTO_ORDER", "load_model", "make_potential", "describe", "NNModel",
           "ModelFile", "UnsupportedModelError", "ModelCalculator", "DEFAULT_SKIN_A"]

#: backend name -> "module:class" (imported on use)
REGISTRY = {
    "torchscript": "pymotor.backends.torchscript:TorchScriptModel",
    "fast": "pymotor.backends.fast:load_fast",
    "fast-schnet": "pymotor.backends.fast_schnet:FastSchNetModel",
    "fast-painn": "pymotor.backends.fast_painn:FastPaiNNModel",
    "pt2": "pymotor.backends.pt2:Pt2Model",
}
#: ``backend="auto"``: tried in this order; CPU-only backends are skipped on a GPU device
AUTO_ORDER = ("fast", "torchscript")
CPU_ONLY = {"fast", "fast-schnet", "fast-painn"}


def backend_class(name: str):
    if name not in REGISTRY:
        raise ValueError(f"`backend` must be 'auto' or one of {sorted(REGISTRY)}, got {name!r}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def load_model(path: str | os.PathLike, energy_unit: str | None = None, length_unit: str | None = None,
               device: str | None = None, backend: str = "auto", **options) -> NNModel:
    """Load a deployed potential with the chosen evaluator.

    ``backend="auto"`` (default) takes the fastest registered backend that supports the
    file's architecture and device, verified against the TorchScript reference at load (the
    fast SchNet), else TorchScript. ``"torchscript"`` runs the file through libtorch (CPU or
    CUDA); ``"fast"`` is pymotor's C++ evaluator of the file's architecture
    (``"fast-schnet"`` or ``"fast-painn"``: tabulated filters, analytic forces; CPU; options
    such as ``dtype="float64"``, ``n_threads``) and raises :class:`UnsupportedModelError`
    (a ValueError) naming each evaluator's reason for other architectures. ``options`` go to
    the chosen backend (with ``auto``, to the fast one). The model records the backend used
    in ``model.backend`` and ``model.describe()`` (written into every trajectory).
    """
    if backend != "auto":
        cls = backend_class(backend)
        if backend == "torchscript" and options.keys() - {"jit_optimize"}:
            raise TypeError(f"load_model: {sorted(options)} are not options of backend='torchscript'")
        return cls(path, energy_unit=energy_unit, length_unit=length_unit, device=device, **options)
    from .torchscript import default_device

    file = ModelFile(path, energy_unit, length_unit)  # parsed once for every candidate
    if file.format == "pt2":  # compiled code: no hand-written evaluator reads its weights
        return backend_class("pt2")(file, device=device, **options)
    on_cpu = (device or default_device()) == "cpu"
    for name in AUTO_ORDER:
        if name in CPU_ONLY and not on_cpu:
            continue
        cls = backend_class(name)
        try:
            if name == "torchscript":
                return cls(file, device=device, **{k: v for k, v in options.items() if k == "jit_optimize"})
            return cls(file, device=device, **{k: v for k, v in options.items() if k != "jit_optimize"})
        except UnsupportedModelError:
            continue
    raise AssertionError("unreachable: the TorchScript backend supports every deployed file")


def make_potential(model: Any, template):
    """A C++ potential from a path, a model, an analytic potential or an ASE calculator."""
    from .. import _core
    from .analytic import HarmonicPotential, LennardJonesPotential
    from .ase_callback import ase_callback_potential

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if isinstance(model, (NNModel, HarmonicPotential, LennardJonesPotential)):
        return model.potential(template.numbers)
    if isinstance(model, _core.Potential):
        return model
    from ase.calculators.calculator import Calculator

    if isinstance(model, Calculator) or hasattr(model, "get_potential_energy"):
        return ase_callback_potential(model, template)
    raise TypeError(
        "`model` must be a model path, a pymotor model (load_model), an analytic pymotor potential or an "
        f"ASE calculator, got {type(model).__name__}")


def describe(model) -> dict:
    """How a run records its potential (the backend actually used)."""
    if hasattr(model, "describe") and callable(model.describe):
        return model.describe()
    from .. import _core
    from .ase_callback import describe as describe_calc

    if isinstance(model, _core.Potential):
        return {"kind": model.name}
    return describe_calc(model)
