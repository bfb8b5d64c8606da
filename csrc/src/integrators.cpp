#include "pymotor/integrators.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "pymotor/units.hpp"

namespace pymotor {

namespace {
// Suzuki-Yoshida weights of order 1, 3 (fourth-order scheme), 5 and 7 (sixth-order).
std::vector<double> suzuki_yoshida_weights(int order) {
  switch (order) {
    case 1: return {1.0};
    case 3: {
      const double w1 = 1.0 / (2.0 - std::cbrt(2.0));
      return {w1, 1.0 - 2.0 * w1, w1};
    }
    case 5: {
      const double w1 = 1.0 / (4.0 - std::pow(4.0, 1.0 / 3.0));
      return {w1, w1, 1.0 - 4.0 * w1, w1, w1};
    }
    case 7:
      return {0.784513610477560, 0.235573213359357, -1.17767998417887, 1.0 - 2.0 * (0.784513610477560 + 0.235573213359357 - 1.17767998417887),
              -1.17767998417887, 0.235573213359357, 0.784513610477560};
    default:
      throw std::invalid_argument("suzuki_yoshida_order must be 1, 3, 5 or 7, got " + std::to_string(order));
  }
}
}  // namespace

NoseHooverChain::NoseHooverChain(int R, double n_dof, double T, double tdamp, int M, int nsub, int sy_order)
    : R_(R), M_(M), nsub_(nsub), n_dof_(n_dof), kT_(units::kB_eV_per_K * T) {
  if (R < 1) throw std::invalid_argument("NoseHooverChain: n_replicas must be >= 1");
  if (M < 1) throw std::invalid_argument("NoseHooverChain: chain_length must be >= 1, got " + std::to_string(M));
  if (nsub < 1) throw std::invalid_argument("NoseHooverChain: n_substeps must be >= 1, got " + std::to_string(nsub));
  if (!(T > 0.0)) throw std::invalid_argument("NoseHooverChain: temperature_K must be positive");
  if (!(tdamp > 0.0)) throw std::invalid_argument("NoseHooverChain: tdamp_fs must be positive");
  if (!(n_dof > 0.0)) throw std::invalid_argument("NoseHooverChain: n_dof must be positive");
  weights_ = suzuki_yoshida_weights(sy_order);
  Q_.assign(M, kT_ * tdamp * tdamp);
  Q_[0] = n_dof * kT_ * tdamp * tdamp;
  eta_.assign(static_cast<size_t>(R) * M, 0.0);
  p_eta_.assign(static_cast<size_t>(R) * M, 0.0);
}

double NoseHooverChain::energy(int r) const {
  const double* eta = eta_.data() + static_cast<size_t>(r) * M_;
  const double* p = p_eta_.data() + static_cast<size_t>(r) * M_;
  double e = n_dof_ * kT_ * eta[0];
  for (int j = 1; j < M_; ++j) e += kT_ * eta[j];
  for (int j = 0; j < M_; ++j) e += 0.5 * p[j] * p[j] / Q_[j];
  return e;
}

void NoseHooverChain::propagate(State& s, double delta) {
  const int N = s.n_atoms;
  for (int r = 0; r < R_; ++r) {
    double* eta = eta_.data() + static_cast<size_t>(r) * M_;
    double* p = p_eta_.data() + static_cast<size_t>(r) * M_;
    double two_ke = 2.0 * s.kinetic_energy(r);  // sum p^2/m in eV
    double scale = 1.0;                          // accumulated velocity scaling
    auto update_p = [&](int j, double d2, double d4) {
      if (j < M_ - 1) p[j] *= std::exp(-d4 * p[j + 1] / Q_[j + 1]);
      const double g = (j == 0) ? two_ke - n_dof_ * kT_ : p[j - 1] * p[j - 1] / Q_[j - 1] - kT_;
      p[j] += d2 * g;
      if (j < M_ - 1) p[j] *= std::exp(-d4 * p[j + 1] / Q_[j + 1]);
    };
    for (int l = 0; l < nsub_; ++l)
      for (double w : weights_) {
        const double d = w * delta / nsub_, d2 = d / 2, d4 = d / 4;
        for (int j = M_ - 1; j >= 0; --j) update_p(j, d2, d4);
        for (int j = 0; j < M_; ++j) eta[j] += d * p[j] / Q_[j];
        const double a = std::exp(-d * p[0] / Q_[0]);
        scale *= a;
        two_ke *= a * a;
        for (int j = 0; j < M_; ++j) update_p(j, d2, d4);
      }
    double* v = s.velocities.data() + static_cast<size_t>(r) * N * 3;
    for (int k = 0; k < N * 3; ++k) v[k] *= scale;
  }
}

Integrator::Integrator(Potential& potential, double dt, NoseHooverChain* nhc) : pot_(potential), dt_(dt), nhc_(nhc) {
  if (!(std::abs(dt) > 0.0) || !std::isfinite(dt)) throw std::invalid_argument("timestep_fs must be non-zero and finite");
}

void Integrator::compute_forces(State& s) {
  pot_.compute(s.positions.data(), s.n_replicas, s.n_atoms, s.potential_energy.data(), s.forces.data());
}

void Integrator::step(State& s) {
  const int N = s.n_atoms, R = s.n_replicas;
  const size_t n = static_cast<size_t>(R) * N;
  if (nhc_) nhc_->propagate(s, 0.5 * dt_);
  const double h = 0.5 * dt_ * units::force_to_accel;
  for (size_t a = 0; a < n; ++a) {
    const double c = h / s.masses[a % N];
    for (int d = 0; d < 3; ++d) s.velocities[3 * a + d] += c * s.forces[3 * a + d];
  }
  for (size_t k = 0; k < 3 * n; ++k) s.positions[k] += dt_ * s.velocities[k];
  compute_forces(s);
  for (size_t a = 0; a < n; ++a) {
    const double c = h / s.masses[a % N];
    for (int d = 0; d < 3; ++d) s.velocities[3 * a + d] += c * s.forces[3 * a + d];
  }
  if (nhc_) nhc_->propagate(s, 0.5 * dt_);
  s.step += 1;
  s.time_fs += dt_;
}

double Integrator::conserved_energy(const State& s, int r) const {
  double e = s.kinetic_energy(r) + s.potential_energy[r];
  if (nhc_) e += nhc_->energy(r);
  return e;
}

}  // namespace pymotor
