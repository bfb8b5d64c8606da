"""Unit conversions at the edges of pymotor.

The C++ core works in one unit system: Angstrom, fs, amu, eV (and K). Everything that
enters or leaves in another unit is converted here, and only here.
"""
from __future__ import annotations

import ase.units

#: Boltzmann constant in eV/K.
KB_EV_PER_K = 8.617333262e-5
#: 1 amu Angstrom^2 fs^-2 in eV.
AMU_A2_PER_FS2_IN_EV = 1.66053906660e-17 / 1.602176634e-19
#: One femtosecond in ASE's time unit (Angstrom sqrt(amu/eV)).
FS_IN_ASE_TIME = ase.units.fs
#: eV in kJ/mol (for H5MD force units that MDAnalysis understands).
EV_IN_KJ_PER_MOL = ase.units.eV / (ase.units.kJ / ase.units.mol)

#: Speed of light in cm/fs (wavenumbers: nu[cm^-1] = f[1/fs] / c).
SPEED_OF_LIGHT_CM_PER_FS = 2.99792458e-5

#: Energy units accepted in model metadata and as arguments, in eV.
ENERGY_UNITS_EV = {
    "eV": 1.0,
    "meV": 1e-3,
    "kcal/mol": ase.units.kcal / ase.units.mol,
    "kJ/mol": ase.units.kJ / ase.units.mol,
    "Hartree": ase.units.Hartree,
    "Ha": ase.units.Hartree,
}
#: Length units accepted in model metadata and as arguments, in Angstrom.
LENGTH_UNITS_A = {
    "Angstrom": 1.0,
    "Ang": 1.0,
    "A": 1.0,
    "Bohr": ase.units.Bohr,
    "nm": 10.0,
}


def energy_unit_in_eV(unit: str, argument: str = "energy_unit") -> float:
    """Size of the energy unit ``unit`` in eV; a clear error for unknown units."""
    try:
        return ENERGY_UNITS_EV[unit]
    except KeyError:
        raise ValueError(
            f"`{argument}` must be one of {sorted(ENERGY_UNITS_EV)}, got {unit!r}"
        ) from None


def length_unit_in_A(unit: str, argument: str = "length_unit") -> float:
    """Size of the length unit ``unit`` in Angstrom; a clear error for unknown units."""
    try:
        return LENGTH_UNITS_A[unit]
    except KeyError:
        raise ValueError(
            f"`{argument}` must be one of {sorted(LENGTH_UNITS_A)}, got {unit!r}"
        ) from None


def kinetic_temperature_K(kinetic_energy_eV, n_dof: float):
    """Instantaneous temperature 2 E_kin / (n_dof k_B) in K."""
    return 2.0 * kinetic_energy_eV / (n_dof * KB_EV_PER_K)


#: energy units a model can be trained in (canonical spellings)
TRAINING_ENERGY_UNITS = ("kcal/mol", "eV", "Hartree")
_SPELLINGS = {"kcal mol-1": "kcal/mol", "kcal/mol": "kcal/mol", "ev": "eV", "hartree": "Hartree", "ha": "Hartree",
              "kj/mol": "kJ/mol", "mev": "meV"}


def canonical_energy_unit(unit: str, allowed=tuple(ENERGY_UNITS_EV), argument: str = "energy_unit") -> str:
    """The canonical spelling of an energy unit (case-insensitive: ``"ev"`` -> ``"eV"``),
    checked against ``allowed``."""
    key = str(unit).strip()
    name = _SPELLINGS.get(key.lower(), key)
    if name not in allowed:
        raise ValueError(f"`{argument}` must be one of {', '.join(repr(a) for a in allowed)}, got {unit!r}")
    return name


def unit_conversion(from_unit: str, to_unit: str) -> float:
    """Factor converting a quantity from one unit expression to another (e.g. ``"eV"`` to
    ``"kcal/mol"``, ``"Hartree/Bohr"`` to ``"kcal/mol/Ang"``), with SchNetPack's unit parser and
    ASE's constants -- the parser that converts the databases, so models, data and metrics agree."""
    from schnetpack.units import convert_units

    return float(convert_units(from_unit, to_unit))
