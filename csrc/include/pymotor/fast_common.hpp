// What the fast SchNet (fast_schnet.hpp) and the fast PaiNN (fast_painn.hpp) evaluators share
// outside their hot loops:
// - the model side: the ZBL prior, the table bookkeeping (FilterTableInfo, the grid refinement,
//   the error measurement between the grid points, the interval of a distance), the radial basis
//   and cosine cutoff of the exact filters, and the checks of the weights both models have;
// - the potential side (FastPotentialBase): the set-up checks, the neighbour list and thread count,
//   the half pairs split per replica, the replicas split over threads, and the pair geometry of a
//   block of whole replicas.
// Each evaluator keeps its own tables, packing and evaluation (forward, backward, force scatter).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pymotor/dense.hpp"  // DenseLayer
#include "pymotor/neighbors.hpp"
#include "pymotor/potential.hpp"

namespace pymotor {

// Ziegler-Biersack-Littmark screened nuclear repulsion (SchNetPack's ZBLRepulsionEnergy, parameters
// after its softplus/normalisation), per unordered pair within the switch:
//   E_ij = ke Z_i Z_j / r * sum_k c_k exp(-e_k a_ij r) * f(r),  a_ij = (Z_i^a_pow + Z_j^a_pow) a_div,
// f = 1 (None), the cosine cutoff (Cosine, r_off = cutoff) or SchNetPack's SwitchFunction
// (Switch: 1 below r_on, 0 above r_off, exp(-1/x) blend between). Model units throughout.
enum class PairSwitch : int { None = 0, Cosine = 1, Switch = 2 };

struct ZBLWeights {
  bool enabled = false;
  double ke = 0.0;             // energy * length
  double a_pow = 0.0, a_div = 0.0;
  double coefficients[4] = {0, 0, 0, 0};  // normalised to sum 1
  double exponents[4] = {0, 0, 0, 0};
  PairSwitch switch_type = PairSwitch::None;
  double r_on = 0.0, r_off = 0.0;  // model length unit (r_on for Switch only)
  // Energy of one pair and its r-derivative (model units).
  void pair(int z_i, int z_j, double r, double& e, double& dedr) const;
};

struct FilterTableInfo {
  int n_intervals = 0;
  double spacing = 0.0;        // model length unit
  double max_rel_error = 0.0;  // max |W_interp - W| / max |W| at sub-grid test points
  double max_rel_error_derivative = 0.0;
};

namespace fast {

constexpr double kPi = 3.14159265358979323846;

// SchNetPack's CosineCutoff below rc (the caller handles r >= rc): fc = (cos(pi r / rc) + 1) / 2
// and dfc/dr.
inline void cosine_cutoff(double r, double rc, double& fc, double& dfc) {
  fc = 0.5 * (std::cos(r * kPi / rc) + 1.0);
  dfc = -0.5 * kPi / rc * std::sin(r * kPi / rc);
}

// SchNetPack's GaussianRBF at r, g_k = exp(-0.5 (r - offset_k)^2 / width_k^2), and dg_k/dr (n each).
inline void gaussian_rbf(double r, const std::vector<double>& offsets, const std::vector<double>& widths, int n,
                         double* g, double* dg) {
  for (int k = 0; k < n; ++k) {
    const double coeff = -0.5 / (widths[k] * widths[k]);
    const double diff = r - offsets[k];
    const double e = std::exp(coeff * diff * diff);
    g[k] = e;
    dg[k] = e * 2.0 * coeff * diff;
  }
}

// The table interval k (0..n_int-1) of distance r and the position t = r / h - k in it (h = 1 / inv_h).
template <typename C>
inline void interval_of(double r, double inv_h, int n_int, int& k, C& t) {
  const double s = r * inv_h;
  k = static_cast<int>(s);
  if (k >= n_int) k = n_int - 1;
  if (k < 0) k = 0;
  t = static_cast<C>(s - k);
}

// The relative interpolation errors of tables of n_slots filters of C values each on n_int
// intervals over [0, cutoff]: per slot max |W_interp - W| / max |W| (and the same of dW/dr) at 3
// points inside every interval (t = 0.25, 0.5, 0.8), in double; the worst slot.
// exact(slot, r, n, W, dW): the exact filters at n distances (n x C each);
// interpolated(slot, k, t, r, W, dW): the tabulated ones at distance r, t of the way into interval k.
template <class Exact, class Interpolated>
void table_errors(int n_slots, int C, double cutoff, int n_int, const Exact& exact, const Interpolated& interpolated,
                  double& err_w, double& err_dw) {
  const double h = cutoff / n_int;
  const double ts[3] = {0.25, 0.5, 0.8};
  std::vector<double> r(static_cast<size_t>(n_int) * 3);
  for (int k = 0; k < n_int; ++k)
    for (int q = 0; q < 3; ++q) r[static_cast<size_t>(k) * 3 + q] = (k + ts[q]) * h;
  const int n = static_cast<int>(r.size());
  std::vector<double> W(static_cast<size_t>(n) * C), dW(W.size()), Wi(C), dWi(C);
  err_w = err_dw = 0.0;
  for (int s = 0; s < n_slots; ++s) {
    exact(s, r.data(), n, W.data(), dW.data());
    double max_w = 0.0, max_dw = 0.0, e_w = 0.0, e_dw = 0.0;
    for (int p = 0; p < n; ++p) {
      interpolated(s, p / 3, ts[p % 3], r[p], Wi.data(), dWi.data());
      for (int c = 0; c < C; ++c) {
        const size_t q = static_cast<size_t>(p) * C + c;
        max_w = std::max(max_w, std::abs(W[q]));
        max_dw = std::max(max_dw, std::abs(dW[q]));
        e_w = std::max(e_w, std::abs(Wi[c] - W[q]));
        e_dw = std::max(e_dw, std::abs(dWi[c] - dW[q]));
      }
    }
    err_w = std::max(err_w, max_w > 0 ? e_w / max_w : e_w);
    err_dw = std::max(err_dw, max_dw > 0 ? e_dw / max_dw : e_dw);
  }
}

// The table grid: n_intervals > 0 fixes it; 0 doubles it from 256 intervals until the relative
// error of W is below `tolerance` and that of dW/dr below 10 * tolerance (or 65536 intervals).
// build(n, err_w, err_dw) makes the tables of n intervals (the last call's are the model's) and
// measures their errors.
template <class Build>
FilterTableInfo choose_grid(const std::string& who, double cutoff, int n_intervals, double tolerance,
                            const Build& build) {
  double ew, ed;
  if (n_intervals > 0) {
    build(n_intervals, ew, ed);
    return {n_intervals, cutoff / n_intervals, ew, ed};
  }
  if (!(tolerance > 0.0)) throw std::invalid_argument(who + ": tolerance must be positive");
  for (int n = 256;; n *= 2) {
    build(n, ew, ed);
    if ((ew <= tolerance && ed <= 10.0 * tolerance) || n >= (1 << 16)) return {n, cutoff / n, ew, ed};
  }
}

// The checks of what both models' weights have (W: SchNetWeights or PaiNNWeights), in this order:
// dtype, feature sizes (n_atom_basis, n_rbf, and `other_size`, e.g. SchNet's n_filters), cutoff,
// at least one interaction, the radial basis, the embedding.
template <class W>
void check_basis(const std::string& who, const std::string& dtype, const W& w, size_t n_interactions,
                 int other_size = 1) {
  if (dtype != "float32" && dtype != "float64")
    throw std::invalid_argument(who + ": dtype must be 'float32' or 'float64', got '" + dtype + "'");
  const int F = w.n_atom_basis, R = w.n_rbf;
  if (F <= 0 || other_size <= 0 || R <= 0) throw std::invalid_argument(who + ": feature sizes must be positive");
  if (!(w.cutoff > 0.0)) throw std::invalid_argument(who + ": cutoff must be positive");
  if (n_interactions == 0) throw std::invalid_argument(who + ": the model has no interactions");
  if (w.rbf_offsets.size() != static_cast<size_t>(R) || w.rbf_widths.size() != static_cast<size_t>(R))
    throw std::invalid_argument(who + ": rbf offsets/widths must have n_rbf values");
  for (double s : w.rbf_widths)
    if (!(s > 0.0)) throw std::invalid_argument(who + ": rbf widths must be positive");
  if (w.max_z <= 0 || w.embedding.size() != static_cast<size_t>(w.max_z) * F)
    throw std::invalid_argument(who + ": embedding must be (max_z, n_atom_basis)");
}

// The readout: at least one layer, F inputs, chained sizes, one output.
void check_readout(const std::string& who, const std::vector<DenseLayer>& readout, int F);

// One block of whole replicas r0..r1-1 of N atoms: its M atoms (from atom a0 of the batch) and
// their atomic numbers, and its P half pairs in block-local atom indices with their distances
// (model units) and unit vectors from i to j (double, from the Angstrom positions).
struct ReplicaBlock {
  int M = 0, P = 0;
  int64_t a0 = 0;
  std::vector<int> pi, pj;
  std::vector<double> r, u;  // P, 3P
  std::vector<int64_t> zc;   // M
  // pl: the batch's half pairs ordered by replica, start[r] the first of replica r; z: N atomic numbers.
  void set(const PairList& pl, const std::vector<size_t>& start, const double* x, const std::vector<int64_t>& z,
           int r0, int r1, double inv_len);
};

// Runs chunk(c, r0, r1) for c = 0..n_chunks-1, the R replicas split into n_chunks contiguous
// ranges [r0, r1), one OpenMP thread each (a single chunk on the calling thread).
template <class Chunk>
void for_each_replica_chunk(int R, int n_chunks, const Chunk& chunk) {
  auto run = [&](int c) {
    chunk(c, static_cast<int>(static_cast<int64_t>(R) * c / n_chunks),
          static_cast<int>(static_cast<int64_t>(R) * (c + 1) / n_chunks));
  };
  if (n_chunks == 1) {
    run(0);
  } else {
#pragma omp parallel for num_threads(n_chunks) schedule(static, 1)
    for (int c = 0; c < n_chunks; ++c) run(c);
  }
}

}  // namespace fast

// What both fast potentials hold and do around their evaluation: the atomic numbers (the same for
// all replicas), the unit conversion (the model works in its own units: length_unit_A and
// energy_unit_eV convert; the energy offset is added in float64 as TorchPotential does), the
// half Verlet list and the thread count.
class FastPotentialBase : public Potential {
 public:
  const VerletList& neighbors() const { return nl_; }
  size_t last_n_pairs() const { return last_pairs_; }  // directed pairs, as TorchPotential
  int n_threads() const { return n_threads_; }
  void set_n_threads(int n);  // >= 0

 protected:
  // who: the class name in messages. Checks, in this order: the model is not null, positive unit
  // factors, n_threads >= 0, atomic numbers within the model's embedding, cutoff_A not below the
  // model's cutoff (the model's filters vanish at its own cutoff; the list must not drop pairs
  // inside it).
  template <class Model>
  FastPotentialBase(const char* who, const Model* model, std::vector<int64_t> z, double cutoff_A, double skin_A,
                    double length_unit_A, double energy_unit_eV, double offset_eV, int n_threads)
      : who_(who),
        z_(std::move(z)),
        length_unit_A_(length_unit_A),
        energy_unit_eV_(energy_unit_eV),
        offset_eV_(offset_eV),
        n_threads_(n_threads),
        nl_(cutoff_A, skin_A) {
    if (!model) throw std::invalid_argument(std::string(who_) + ": model is null");
    check_setup(model->weights().max_z, model->weights().cutoff, cutoff_A);
  }
  // Checks N against the atomic numbers; nullptr if there is nothing to evaluate (R or N <= 0),
  // else the half pairs of x (i < j, ordered by replica; the list updated) and in start the
  // first pair of each replica (R + 1 values).
  const PairList* replica_pairs(const double* x, int R, int N, std::vector<size_t>& start);
  // How many chunks of replicas run on threads: n_threads (0: omp_get_max_threads() at each call),
  // at most R.
  int n_chunks(int R) const;

  const char* who_;
  std::vector<int64_t> z_;
  double length_unit_A_, energy_unit_eV_, offset_eV_;
  int n_threads_;
  VerletList nl_;
  size_t last_pairs_ = 0;

 private:
  void check_setup(int max_z, double model_cutoff, double cutoff_A) const;
};

}  // namespace pymotor
