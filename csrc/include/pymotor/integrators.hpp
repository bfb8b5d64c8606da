// Integrators: velocity Verlet (NVE) and the Nose-Hoover chain thermostat (NVT) of
// Martyna, Tuckerman and Klein, J. Chem. Phys. 97, 2635 (1992) with the Suzuki-Yoshida
// factorisation of Martyna, Tuckerman, Tobias, Klein, Mol. Phys. 87, 1117 (1996); the
// notation follows Tuckerman, Statistical Mechanics (2010), as ASE's NoseHooverChainNVT.
#pragma once
#include <vector>

#include "pymotor/potential.hpp"
#include "pymotor/state.hpp"

namespace pymotor {

// One chain per replica. Thermostat masses Q_1 = n_dof kT tau^2, Q_j = kT tau^2.
class NoseHooverChain {
 public:
  NoseHooverChain(int n_replicas, double n_dof, double temperature_K, double tdamp_fs,
                  int chain_length, int n_substeps, int suzuki_yoshida_order);
  // Propagate exp(iL_NHC delta) for every replica, scaling the velocities of the state.
  void propagate(State& s, double delta_fs);
  // Thermostat contribution to the conserved energy of replica r, in eV.
  double energy(int r) const;
  int chain_length() const { return M_; }
  double n_dof() const { return n_dof_; }
  double kT() const { return kT_; }
  std::vector<double>& eta() { return eta_; }      // (R*M), dimensionless
  std::vector<double>& p_eta() { return p_eta_; }  // (R*M), eV*fs
  const std::vector<double>& Q() const { return Q_; }  // (M), eV*fs^2

 private:
  int R_, M_, nsub_;
  double n_dof_, kT_;
  std::vector<double> Q_, weights_, eta_, p_eta_;
};

// Velocity Verlet, optionally wrapped by half-steps of a Nose-Hoover chain:
//   NHC(dt/2) ; v += a dt/2 ; x += v dt ; F(x) ; v += a dt/2 ; NHC(dt/2).
class Integrator {
 public:
  Integrator(Potential& potential, double timestep_fs, NoseHooverChain* thermostat);
  // Evaluate forces and energies for the current positions (needed before the first step).
  void compute_forces(State& s);
  void step(State& s);
  double timestep_fs() const { return dt_; }
  void set_timestep_fs(double dt) { dt_ = dt; }
  // Conserved energy of replica r (eV): E_kin + E_pot (+ thermostat energy).
  double conserved_energy(const State& s, int r) const;

 private:
  Potential& pot_;
  double dt_;
  NoseHooverChain* nhc_;
};

}  // namespace pymotor
