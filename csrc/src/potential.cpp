#include "pymotor/potential.hpp"

#include <cmath>
#include <stdexcept>

namespace pymotor {

HarmonicPotential::HarmonicPotential(double k, std::vector<double> centers) : k_(k), centers_(std::move(centers)) {
  if (!(k > 0.0)) throw std::invalid_argument("HarmonicPotential: k_eV_per_A2 must be positive");
}

void HarmonicPotential::compute(const double* x, int R, int N, double* e, double* f) {
  if (centers_.size() != static_cast<size_t>(N) * 3)
    throw std::invalid_argument("HarmonicPotential: centers must have n_atoms*3 entries");
  for (int r = 0; r < R; ++r) {
    double en = 0.0;
    for (int k = 0; k < N * 3; ++k) {
      const size_t g = static_cast<size_t>(r) * N * 3 + k;
      const double d = x[g] - centers_[k];
      en += 0.5 * k_ * d * d;
      f[g] = -k_ * d;
    }
    e[r] = en;
  }
}

LennardJonesPotential::LennardJonesPotential(double eps, double sigma, double cutoff, double skin)
    : eps_(eps), sigma_(sigma), cutoff_(cutoff), nl_(cutoff, skin) {
  if (!(eps > 0.0) || !(sigma > 0.0)) throw std::invalid_argument("LennardJonesPotential: epsilon and sigma must be positive");
  const double sr6 = std::pow(sigma / cutoff, 6);
  shift_ = 4.0 * eps * (sr6 * sr6 - sr6);
}

void LennardJonesPotential::compute(const double* x, int R, int N, double* e, double* f) {
  nl_.update(x, R, N);
  const PairList& p = nl_.pairs(x);
  std::fill(f, f + static_cast<size_t>(R) * N * 3, 0.0);
  std::fill(e, e + R, 0.0);
  const double s2 = sigma_ * sigma_;
  for (size_t k = 0; k < p.size(); ++k) {
    const int64_t i = p.idx_i[k], j = p.idx_j[k];
    if (i > j) continue;  // the list holds both directions; count each pair once
    double d[3] = {x[3 * i] - x[3 * j], x[3 * i + 1] - x[3 * j + 1], x[3 * i + 2] - x[3 * j + 2]};
    const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    const double sr2 = s2 / r2, sr6 = sr2 * sr2 * sr2;
    e[i / N] += 4.0 * eps_ * (sr6 * sr6 - sr6) - shift_;
    const double fr = 24.0 * eps_ * (2.0 * sr6 * sr6 - sr6) / r2;  // -dE/dr / r
    for (int c = 0; c < 3; ++c) {
      f[3 * i + c] += fr * d[c];
      f[3 * j + c] -= fr * d[c];
    }
  }
}

}  // namespace pymotor
