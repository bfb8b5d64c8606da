"""Any ASE calculator (e.g. tblite's GFN2-xTB) as a C++ potential through a Python callback."""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from .. import _core


def ase_callback_potential(calc: Calculator, template: Atoms):
    """A C++ potential that asks the ASE calculator ``calc`` for energies and forces.

    Each replica is evaluated on its own copy of ``template`` (so a calculator that reuses
    its previous wavefunction, such as tblite's, keeps doing so along a trajectory). An
    exception of the calculator reaches the caller of the MD run as itself."""
    copies: list[Atoms] = []

    def forces(positions: np.ndarray):
        while len(copies) < len(positions):
            a = template.copy()
            # one calculator per replica: a fresh instance with the same parameters
            a.calc = calc if not copies else type(calc)(**calc.parameters)
            copies.append(a)
        energies = np.empty(len(positions))
        forces_out = np.empty_like(positions)
        for r, a in enumerate(copies[: len(positions)]):
            a.set_positions(positions[r])
            energies[r] = a.get_potential_energy()
            forces_out[r] = a.get_forces()
        return energies, forces_out

    return _core.CallbackPotential(forces, type(calc).__name__)


def describe(calc) -> dict:
    """The calculator's class and its plain settings (recorded in the trajectory)."""
    d = {"kind": type(calc).__name__}
    params = getattr(calc, "parameters", None)
    if isinstance(params, dict):
        d["parameters"] = {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool))}
    return d
