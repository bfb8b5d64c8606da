// The dynamical state of R replicas of the same molecule (N atoms each), double precision.
#pragma once
#include <cstdint>
#include <vector>

namespace pymotor {

struct State {
  int n_replicas = 0;
  int n_atoms = 0;                     // atoms per replica
  std::vector<int64_t> atomic_numbers; // (N)
  std::vector<double> masses;          // (N) amu
  std::vector<double> positions;       // (R*N*3) Angstrom
  std::vector<double> velocities;      // (R*N*3) Angstrom/fs
  std::vector<double> forces;          // (R*N*3) eV/Angstrom
  std::vector<double> potential_energy;// (R) eV
  int64_t step = 0;                    // MD steps taken since the start of the run
  double time_fs = 0.0;

  State() = default;
  State(int n_replicas, int n_atoms, std::vector<int64_t> atomic_numbers, std::vector<double> masses);

  int total_atoms() const { return n_replicas * n_atoms; }
  // Kinetic energy of replica r in eV.
  double kinetic_energy(int r) const;
  // Throws std::invalid_argument if array sizes do not match (cheap consistency check).
  void check() const;
};

}  // namespace pymotor
