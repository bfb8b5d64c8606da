// Internal unit system of the C++ core: length Angstrom, time fs, mass amu, energy eV,
// temperature K. Conversions to other units happen only at the edges (pymotor/units.py).
#pragma once

namespace pymotor::units {

// Boltzmann constant in eV/K (CODATA 2018, exact).
constexpr double kB_eV_per_K = 8.617333262e-5;

// 1 amu * Angstrom^2 / fs^2 expressed in eV:
// 1.66053906660e-27 kg * 1e-20 m^2 / 1e-30 s^2 / 1.602176634e-19 J/eV.
constexpr double amu_A2_per_fs2_in_eV = 1.66053906660e-17 / 1.602176634e-19;

// Acceleration [Angstrom/fs^2] = force [eV/Angstrom] / mass [amu] * force_to_accel.
constexpr double force_to_accel = 1.0 / amu_A2_per_fs2_in_eV;

}  // namespace pymotor::units
