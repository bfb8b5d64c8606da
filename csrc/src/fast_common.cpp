#include "pymotor/fast_common.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pymotor {

// ---- the ZBL prior ---------------------------------------------------------------------------

void ZBLWeights::pair(int z_i, int z_j, double r, double& e, double& dedr) const {
  e = dedr = 0.0;
  if (!enabled || !(r > 0.0)) return;
  double f = 1.0, df = 0.0;
  if (switch_type == PairSwitch::Cosine) {
    if (r >= r_off) return;
    fast::cosine_cutoff(r, r_off, f, df);
  } else if (switch_type == PairSwitch::Switch) {
    const double w = r_off - r_on, x = (r - r_on) / w;
    if (x >= 1.0) return;
    if (x > 0.0) {  // SchNetPack's SwitchFunction: f = fm / (fp + fm), fp = exp(-1/x), fm = exp(-1/(1-x))
      const double fp = std::exp(-1.0 / x), fm = std::exp(-1.0 / (1.0 - x)), s = fp + fm;
      f = fm / s;
      df = -fp * fm * (1.0 / (x * x) + 1.0 / ((1.0 - x) * (1.0 - x))) / (s * s) / w;
    }
  }
  const double a = (std::pow(static_cast<double>(z_i), a_pow) + std::pow(static_cast<double>(z_j), a_pow)) * a_div;
  double scr = 0.0, dscr = 0.0;
  for (int k = 0; k < 4; ++k) {
    const double t = coefficients[k] * std::exp(-exponents[k] * a * r);
    scr += t;
    dscr -= exponents[k] * a * t;
  }
  const double q = ke * z_i * z_j / r;  // Coulomb part
  e = q * scr * f;
  dedr = q * (-scr * f / r + dscr * f + scr * df);
}

namespace fast {

void check_readout(const std::string& who, const std::vector<DenseLayer>& readout, int F) {
  if (readout.empty()) throw std::invalid_argument(who + ": the readout has no layers");
  int n_in = F;
  for (size_t l = 0; l < readout.size(); ++l) {
    dense::check_dense(readout[l], n_in, readout[l].n_out, "readout layer " + std::to_string(l));
    n_in = readout[l].n_out;
  }
  if (n_in != 1) throw std::invalid_argument(who + ": the readout must end in one output");
}

void ReplicaBlock::set(const PairList& pl, const std::vector<size_t>& start, const double* x,
                       const std::vector<int64_t>& z, int r0, int r1, double inv_len) {
  const int N = static_cast<int>(z.size());
  M = (r1 - r0) * N;
  a0 = static_cast<int64_t>(r0) * N;
  const size_t q0 = start[r0], q1 = start[r1];
  P = static_cast<int>(q1 - q0);
  pi.resize(P), pj.resize(P), r.resize(P), u.resize(3 * static_cast<size_t>(P));
  for (int q = 0; q < P; ++q) {
    const int64_t i = pl.idx_i[q0 + q], j = pl.idx_j[q0 + q];
    pi[q] = static_cast<int>(i - a0);
    pj[q] = static_cast<int>(j - a0);
    const double dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1], dz = x[3 * j + 2] - x[3 * i + 2];
    const double d = std::sqrt(dx * dx + dy * dy + dz * dz);
    const double inv = d > 0 ? 1.0 / d : 0.0;
    r[q] = d * inv_len;
    u[3 * q] = dx * inv, u[3 * q + 1] = dy * inv, u[3 * q + 2] = dz * inv;
  }
  zc.resize(M);
  for (int i = 0; i < M; ++i) zc[i] = z[i % N];
}

}  // namespace fast

// ---- the potentials' common part -------------------------------------------------------------

void FastPotentialBase::check_setup(int max_z, double model_cutoff, double cutoff_A) const {
  const std::string who = who_;
  if (!(length_unit_A_ > 0.0) || !(energy_unit_eV_ > 0.0))
    throw std::invalid_argument(who + ": unit conversion factors must be positive");
  if (n_threads_ < 0) throw std::invalid_argument(who + ": n_threads must be >= 0");
  for (int64_t v : z_)
    if (v < 0 || v >= max_z)
      throw std::invalid_argument(who + ": atomic number " + std::to_string(v) +
                                  " is outside the model's embedding (0.." + std::to_string(max_z - 1) + ")");
  if (cutoff_A < model_cutoff * length_unit_A_ * (1.0 - 1e-6))
    throw std::invalid_argument(who + ": cutoff_A is below the model's cutoff");
}

void FastPotentialBase::set_n_threads(int n) {
  if (n < 0) throw std::invalid_argument(std::string(who_) + ": n_threads must be >= 0");
  n_threads_ = n;
}

const PairList* FastPotentialBase::replica_pairs(const double* x, int R, int N, std::vector<size_t>& start) {
  if (static_cast<size_t>(N) != z_.size())
    throw std::invalid_argument(std::string(who_) + ": the model was set up for " + std::to_string(z_.size()) +
                                " atoms, got " + std::to_string(N));
  if (R <= 0 || N <= 0) return nullptr;
  nl_.update(x, R, N);
  const PairList& pl = nl_.half_pairs(x);  // i < j, ordered by replica
  last_pairs_ = 2 * pl.size();             // as the full list a TorchScript model gets
  const size_t H = pl.size();
  start.assign(R + 1, H);  // first half pair of each replica
  start[0] = 0;
  int rep = 0;
  for (size_t q = 0; q < H; ++q) {
    const int rq = static_cast<int>(pl.idx_i[q] / N);
    while (rep < rq) start[++rep] = q;
  }
  while (rep < R) start[++rep] = H;
  return &pl;
}

int FastPotentialBase::n_chunks(int R) const {
#ifdef _OPENMP
  // 0: follow the process's OpenMP setting (torch.set_num_threads sets it for libtorch too)
  const int nt = n_threads_ > 0 ? n_threads_ : omp_get_max_threads();
#else
  const int nt = 1;
#endif
  return std::max(1, std::min(nt, R));
}

}  // namespace pymotor
