#include "pymotor/simulation.hpp"

#include <stdexcept>
#include <string>

namespace pymotor {

namespace {
void check_size(const std::vector<double>& v, size_t n, const char* what) {
  if (v.size() != n)
    throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(n) + " values, got " +
                                std::to_string(v.size()));
}
}  // namespace

Simulation::Simulation(std::shared_ptr<Potential> potential, int R, int N, std::vector<double> positions,
                       std::vector<double> velocities, std::vector<double> masses, std::vector<int64_t> z,
                       double timestep_fs, std::optional<ThermostatSettings> th, std::optional<double> n_dof)
    : pot_(std::move(potential)) {
  if (!pot_) throw std::invalid_argument("potential is None");
  if (R < 1 || N < 1) throw std::invalid_argument("need at least one replica of at least one atom");
  const size_t n3 = static_cast<size_t>(R) * N * 3;
  check_size(masses, N, "masses");
  check_size(positions, n3, "positions");
  check_size(velocities, n3, "velocities");
  if (z.size() != static_cast<size_t>(N)) throw std::invalid_argument("atomic_numbers: expected N values");
  state_ = State(R, N, std::move(z), std::move(masses));
  state_.positions = std::move(positions);
  state_.velocities = std::move(velocities);
  n_dof_ = n_dof ? *n_dof : 3.0 * N - 3.0;
  if (th)
    nhc_ = std::make_unique<NoseHooverChain>(R, n_dof_, th->temperature_K, th->tdamp_fs, th->chain_length,
                                             th->n_substeps, th->suzuki_yoshida_order);
  integ_ = std::make_unique<Integrator>(*pot_, timestep_fs, nhc_.get());
}

ChunkResult Simulation::run(int64_t n_steps, int64_t interval, double max_force, FrameBuffer& frames) {
  if (n_steps < 0) throw std::invalid_argument("n_steps must be >= 0");
  if (interval < 1) throw std::invalid_argument("interval must be >= 1");
  return run_chunk(state_, *integ_, n_steps, interval, max_force, frames, guard_.get(), stop_on_bond_change_);
}

void Simulation::set_connectivity_guard(std::vector<double> radii, const std::vector<int64_t>& bonds,
                                        double break_factor, double form_factor, bool stop) {
  check_size(radii, state_.n_atoms, "radii");
  guard_ = std::make_unique<ConnectivityGuard>(state_.n_replicas, std::move(radii), bonds, break_factor,
                                               form_factor);
  stop_on_bond_change_ = stop;
}

}  // namespace pymotor
