"""Potentials for pymotor's C++ engine (compatibility names; the implementations live in
:mod:`pymotor.backends`, the file contract in :mod:`pymotor.modelfile`).

* :func:`load_model` reads a deployed model with the fastest backend that supports it;
* :class:`Model` is the TorchScript evaluator (``backend="torchscript"``);
* :class:`HarmonicPotential` and :class:`LennardJonesPotential` are analytic references;
* any ASE calculator (for example tblite's GFN2-xTB) is driven through a callback.

All energies are in eV and forces in eV/Angstrom at this interface.
"""
from __future__ import annotations

from .backends import DEFAULT_SKIN_A, ModelCalculator, NNModel, load_model, make_potential
from .backends.analytic import HarmonicPotential, LennardJonesPotential
from .backends.ase_callback import ase_callback_potential
from .backends.torchscript import TorchScriptModel as Model
from .modelfile import ModelFile, energy_offset

__all__ = ["load_model", "make_potential", "Model", "NNModel", "ModelFile", "ModelCalculator",
           "HarmonicPotential", "LennardJonesPotential", "ase_callback_potential", "energy_offset",
           "DEFAULT_SKIN_A"]
