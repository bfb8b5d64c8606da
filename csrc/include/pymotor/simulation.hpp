// A simulation: the state of R replicas, a potential, the integrator with its optional
// Nose-Hoover chain, and the optional connectivity guard -- what run_md drives chunk by chunk.
// No Python here: the bindings convert arrays and release the GIL around run().
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "pymotor/connectivity.hpp"
#include "pymotor/integrators.hpp"
#include "pymotor/md_loop.hpp"
#include "pymotor/potential.hpp"
#include "pymotor/state.hpp"

namespace pymotor {

struct ThermostatSettings {
  double temperature_K;
  double tdamp_fs = 100.0;
  int chain_length = 3;
  int n_substeps = 1;
  int suzuki_yoshida_order = 3;
};

class Simulation {
 public:
  // positions/velocities: R*N*3 (Angstrom, Angstrom/fs); masses N (amu); n_dof: degrees of
  // freedom per replica (default 3N - 3). Without thermostat settings: NVE velocity Verlet.
  Simulation(std::shared_ptr<Potential> potential, int n_replicas, int n_atoms, std::vector<double> positions,
             std::vector<double> velocities, std::vector<double> masses, std::vector<int64_t> atomic_numbers,
             double timestep_fs, std::optional<ThermostatSettings> thermostat, std::optional<double> n_dof);

  void compute_forces() { integ_->compute_forces(state_); }
  // Runs up to n_steps steps (see run_chunk), appending frames to `frames`.
  ChunkResult run(int64_t n_steps, int64_t interval, double max_force_eV_per_A, FrameBuffer& frames);

  void set_connectivity_guard(std::vector<double> radii_A, const std::vector<int64_t>& bonds, double break_factor,
                              double form_factor, bool stop);
  ConnectivityGuard* guard() { return guard_.get(); }
  const ConnectivityGuard* guard() const { return guard_.get(); }

  State& state() { return state_; }
  const State& state() const { return state_; }
  Integrator& integrator() { return *integ_; }
  const Integrator& integrator() const { return *integ_; }
  NoseHooverChain* thermostat() { return nhc_.get(); }
  const NoseHooverChain* thermostat() const { return nhc_.get(); }
  double n_dof() const { return nhc_ ? nhc_->n_dof() : n_dof_; }
  double conserved_energy(int r) const { return integ_->conserved_energy(state_, r); }

 private:
  State state_;
  std::shared_ptr<Potential> pot_;
  std::unique_ptr<NoseHooverChain> nhc_;
  std::unique_ptr<Integrator> integ_;
  std::unique_ptr<ConnectivityGuard> guard_;
  bool stop_on_bond_change_ = false;
  double n_dof_;
};

}  // namespace pymotor
