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


def cpnx(diastereomer: str = "RP/SM"):
    """The CPNX motor (C27H20O, 48 atoms) as an :class:`ase.Atoms`.

    Parameters
    ----------
    diastereomer : {"RP/SM", "RM/SP"}
        Configuration of the methyl-bearing stereocentre C2 relative to the helix (see
        :mod:`pymotor.data.conformers`; a mirror image keeps it, so each name covers an
        enantiomer pair).

        ``"RP/SM"`` (default; the geometry shipped since the start, ``cpnx.xyz``, returned
        unchanged): built by ``scripts/make_cpnx.py`` from RDKit ETKDGv3 (seed 42,
        lowest-MMFF94 of 20 conformers), then optimised with GFN2-xTB (tblite) to
        fmax < 0.01 eV/Angstrom. It is **(2R) with a P helix** (beta = +35.7 deg,
        delta = -33.0 deg), the methyl group pseudo-axial: "syn-P (2R,P)". All pymotor
        reference data and shipped models were made from it.

        ``"RM/SP"`` (``cpnx_rm_sp.xyz``): the other diastereomer, **(2S) with a P helix**
        (beta = +28.4 deg, delta = -19.7 deg): "syn-P (2S,P)", the same as (2R,M) for a
        reflection-invariant model. Built by ``scripts/make_cpnx.py --other-diastereomer``
        from the default geometry by inverting C2 only, then optimised with GFN2-xTB to
        fmax < 0.01 eV/Angstrom; of two inversions tried (see the script) the lower
        minimum was kept: 3.79 kcal/mol above the default at GFN2-xTB. The methyl group is
        on the pseudo-equatorial side (the C2-CH3 bond makes 39 deg with the mean plane of
        the flattened five-membered ring; 78 deg, pseudo-axial, in the default). The other
        minimum found, with the pucker of the default (delta = -37.9 deg, methyl 18 deg
        from the plane), lies 7.68 kcal/mol above the default.

    Atom order O, then C, then H (the same in both); centre of mass at the origin;
    positions in Angstrom. No calculator is attached (the GFN2-xTB energy in eV is in
    ``atoms.info["energy_eV"]``). A fresh copy is returned on every call.

    Raises
    ------
    ValueError
        if ``diastereomer`` is not one of the accepted values.
    """
    from ase.io import read

    files = {"RP/SM": "cpnx.xyz", "RM/SP": "cpnx_rm_sp.xyz"}
    if not isinstance(diastereomer, str) or diastereomer not in files:
        raise ValueError(f"`diastereomer` must be one of {sorted(files)}, got {diastereomer!r}")
    atoms = read(DATA_DIR / files[diastereomer], format="extxyz")
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
