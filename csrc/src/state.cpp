#include "pymotor/state.hpp"

#include <stdexcept>
#include <string>

#include "pymotor/units.hpp"

namespace pymotor {

State::State(int n_replicas_, int n_atoms_, std::vector<int64_t> z, std::vector<double> m)
    : n_replicas(n_replicas_), n_atoms(n_atoms_), atomic_numbers(std::move(z)), masses(std::move(m)) {
  const size_t n3 = static_cast<size_t>(n_replicas) * n_atoms * 3;
  positions.assign(n3, 0.0);
  velocities.assign(n3, 0.0);
  forces.assign(n3, 0.0);
  potential_energy.assign(n_replicas, 0.0);
  check();
}

double State::kinetic_energy(int r) const {
  double ke = 0.0;
  const double* v = velocities.data() + static_cast<size_t>(r) * n_atoms * 3;
  for (int i = 0; i < n_atoms; ++i) {
    const double v2 = v[3 * i] * v[3 * i] + v[3 * i + 1] * v[3 * i + 1] + v[3 * i + 2] * v[3 * i + 2];
    ke += masses[i] * v2;
  }
  return 0.5 * ke * units::amu_A2_per_fs2_in_eV;
}

void State::check() const {
  if (n_replicas < 1 || n_atoms < 1) throw std::invalid_argument("State: need at least one replica and one atom");
  const size_t n3 = static_cast<size_t>(n_replicas) * n_atoms * 3;
  if (atomic_numbers.size() != static_cast<size_t>(n_atoms))
    throw std::invalid_argument("State: atomic_numbers has " + std::to_string(atomic_numbers.size()) +
                                " entries, expected n_atoms=" + std::to_string(n_atoms));
  if (masses.size() != static_cast<size_t>(n_atoms))
    throw std::invalid_argument("State: masses has " + std::to_string(masses.size()) +
                                " entries, expected n_atoms=" + std::to_string(n_atoms));
  for (double m : masses)
    if (!(m > 0.0)) throw std::invalid_argument("State: masses must be positive");
  if (positions.size() != n3 || velocities.size() != n3 || forces.size() != n3)
    throw std::invalid_argument("State: positions/velocities/forces must have n_replicas*n_atoms*3 entries");
  if (potential_energy.size() != static_cast<size_t>(n_replicas))
    throw std::invalid_argument("State: potential_energy must have n_replicas entries");
}

}  // namespace pymotor
