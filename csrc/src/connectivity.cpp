#include "pymotor/connectivity.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace pymotor {

ConnectivityGuard::ConnectivityGuard(int n_replicas, std::vector<double> radii, const std::vector<int64_t>& bonds,
                                     double break_factor, double form_factor)
    : R_(n_replicas), N_(static_cast<int>(radii.size())), radii_(std::move(radii)),
      break2_(break_factor * break_factor), form2_(form_factor * form_factor) {
  if (R_ < 1) throw std::invalid_argument("connectivity guard: n_replicas must be >= 1");
  if (!(break_factor > form_factor) || !(form_factor > 0))
    throw std::invalid_argument("connectivity guard: need break_factor > form_factor > 0");
  bonded_.assign(static_cast<size_t>(R_) * N_ * N_, 0);
  for (int r = 0; r < R_; ++r) set_bonds(r, bonds);
}

void ConnectivityGuard::set_bonds(int r, const std::vector<int64_t>& bonds) {
  if (r < 0 || r >= R_) throw std::invalid_argument("connectivity guard: replica out of range");
  if (bonds.size() % 2) throw std::invalid_argument("connectivity guard: bonds must be (B, 2)");
  char* b = bonded_.data() + static_cast<size_t>(r) * N_ * N_;
  std::fill(b, b + static_cast<size_t>(N_) * N_, 0);
  for (size_t k = 0; k < bonds.size(); k += 2) {
    int64_t i = bonds[k], j = bonds[k + 1];
    if (i < 0 || j < 0 || i >= N_ || j >= N_ || i == j)
      throw std::invalid_argument("connectivity guard: bond (" + std::to_string(i) + ", " + std::to_string(j) +
                                  ") out of range for " + std::to_string(N_) + " atoms");
    if (i > j) std::swap(i, j);
    b[i * N_ + j] = 1;
  }
}

std::vector<int64_t> ConnectivityGuard::bonds(int r) const {
  std::vector<int64_t> out;
  const char* b = bonded_.data() + static_cast<size_t>(r) * N_ * N_;
  for (int i = 0; i < N_; ++i)
    for (int j = i + 1; j < N_; ++j)
      if (b[i * N_ + j]) { out.push_back(i); out.push_back(j); }
  return out;
}

int ConnectivityGuard::check(const State& s, std::vector<BondEvent>& events) {
  if (s.n_atoms != N_ || s.n_replicas != R_) throw std::invalid_argument("connectivity guard: state size mismatch");
  int found = 0;
  for (int r = 0; r < R_; ++r) {
    const double* x = s.positions.data() + static_cast<size_t>(r) * N_ * 3;
    char* b = bonded_.data() + static_cast<size_t>(r) * N_ * N_;
    for (int i = 0; i < N_; ++i) {
      const double xi = x[3 * i], yi = x[3 * i + 1], zi = x[3 * i + 2], ri = radii_[i];
      for (int j = i + 1; j < N_; ++j) {
        const double dx = x[3 * j] - xi, dy = x[3 * j + 1] - yi, dz = x[3 * j + 2] - zi;
        const double d2 = dx * dx + dy * dy + dz * dz, rs = ri + radii_[j], rs2 = rs * rs;
        char& bond = b[i * N_ + j];
        // written so that a NaN distance counts as broken, never as formed
        if (bond ? !(d2 <= break2_ * rs2) : (d2 < form2_ * rs2)) {
          bond = !bond;
          events.push_back(BondEvent{s.step, r, i, j, static_cast<bool>(bond), std::sqrt(d2)});
          ++found;
        }
      }
    }
  }
  return found;
}

}  // namespace pymotor
