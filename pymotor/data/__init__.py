"""Reference data for pymotor: the CPNX motor geometry, GFN2-xTB calculators,
reference MD generation (SchNetPack databases) and the motor's conformer labels.

Everything heavy (ase, rdkit, tblite, schnetpack) is imported lazily, so that
``import pymotor`` stays fast.

>>> import pymotor
>>> atoms = pymotor.data.cpnx()           # ase.Atoms, C27H20O, 48 atoms (O, C..., H...)
"""

from __future__ import annotations

import importlib
from pathlib import Path

__all__ = [
    "cpnx",
    "CPNX_SMILES",
    "DATA_DIR",
    # lazily resolved
    "motor_dihedrals",
    "classify",
    "plot_dihedrals",
    "make_calculator",
    "generate_reference",
    "atoms_from_smiles",
    "atoms_from_xyz",
]

#: SMILES of the CPNX motor (the stereocentre is left open; the shipped geometry fixes it)
CPNX_SMILES = "CC1Cc2ccc3ccccc3c2C1=C1c2ccccc2Oc2ccccc21"

#: folder with the shipped data files
DATA_DIR = Path(__file__).resolve().parent

_LAZY = {
    "motor_dihedrals": "conformers",
    "classify": "conformers",
    "plot_dihedrals": "conformers",
    "make_calculator": "xtb",
    "generate_reference": "generate",
    "atoms_from_smiles": "inputs",
    "atoms_from_xyz": "inputs",
}


def cpnx():
    """The CPNX motor (C27H20O, 48 atoms) as an :class:`ase.Atoms`.

    Built by ``scripts/make_cpnx.py``: RDKit ETKDGv3 (seed 42, lowest-MMFF94 of 20
    conformers), then optimised with GFN2-xTB (tblite) to fmax < 0.01 eV/Angstrom.
    Atom order O, then C, then H; centre of mass at the origin; positions in Angstrom.
    The stereocentre is (2R), the helix P (beta = +35.7 deg) and the methyl group
    pseudo-axial: conformer "syn-P" in :mod:`pymotor.data.conformers`' convention.
    No calculator is attached (the GFN2-xTB energy in eV is in ``atoms.info["energy_eV"]``).
    A fresh copy is returned on every call.
    """
    from ase.io import read

    atoms = read(DATA_DIR / "cpnx.xyz", format="extxyz")
    energy = atoms.get_potential_energy() if atoms.calc is not None else None
    atoms.calc = None
    if energy is not None:
        atoms.info["energy_eV"] = float(energy)
    return atoms


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    if name in ("conformers", "xtb", "generate", "inputs", "cli"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
