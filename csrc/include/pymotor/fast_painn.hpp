// A PaiNN (SchNetPack 2.2 layout) evaluated directly in C++ with tabulated filters and an
// analytic backward pass of the equivariant messages.
//
// PaiNN's filters are one linear layer of the radial basis times the cosine cutoff,
//   W(r) = (A rbf(r) + b) fcut(r),  A: n_rbf -> n_slots * 3F  (filter_net, all interactions at once),
// split per interaction t into the scalar, the r-direction and the vector part (Ws, WR, Wv).
// FastPaiNNModel tabulates every slot's W and dW/dr once on a uniform grid over [0, cutoff] as
// piecewise cubic Hermite polynomials stored at the nodes (value and h dW/dr at each node; a pair
// reads two adjacent nodes), refining the grid until the interpolation error, measured in double
// between the nodes, is below a relative tolerance.
//
// FastPaiNNPotential evaluates energy and forces of R replicas x N atoms on a half Verlet list.
// Per interaction t (x = context_net(q), split into xs, xR, xv; u = r_ij / |r_ij| from i to j):
//   q_i  += sum_j Ws(r) xs_j,   mu_i += sum_j WR(r) xR_j u_ij + Wv(r) xv_j mu_j
// fused over half pairs (each pair evaluates its filter once, from the table, and scatters into
// both atoms: u_ji = -u_ij); then the mixing block
//   [V | W] = mu M^T, |V| = sqrt(sum_d V_d^2 + eps), (aq, amu, aqmu) = intra_net([q, |V|]),
//   q += aq + aqmu (V . W),  mu += amu W.
// The first interaction's context_net depends on Z only (a per-element table) and its mu is zero.
// Forces: a hand-written backward pass through the readout, the mixing blocks (incl. the norm) and
// the messages gives dE/dr and dE/du per half pair; F_j = -(dE/dr u + (1 - u u^T) dE/du / r).
// Arithmetic in float or double (template); geometry and force accumulation in double; the ZBL
// prior (fast_common.hpp's ZBLWeights) per pair in double. Replicas are spread over OpenMP
// threads and processed in blocks of whole replicas that fit the caches.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pymotor/dense.hpp"        // Activation, DenseLayer
#include "pymotor/fast_common.hpp"  // ZBLWeights, FilterTableInfo, FastPotentialBase

namespace pymotor {

// One interaction + mixing pair of blocks (F = n_atom_basis).
struct PaiNNBlockWeights {
  DenseLayer context1, context2;  // interatomic_context_net: F -> F (act), F -> 3F (linear)
  DenseLayer mu_mix;              // mu_channel_mix: F -> 2F, linear, no bias
  DenseLayer intra1, intra2;      // intraatomic_context_net: 2F -> F (act), F -> 3F (linear)
};

// All weights of a PaiNN energy model in the model's own units.
struct PaiNNWeights {
  int n_atom_basis = 0, n_rbf = 0, max_z = 0;
  double cutoff = 0.0;              // model length unit; cosine cutoff
  double epsilon = 1e-8;            // the mixing's norm: sqrt(|V|^2 + epsilon)
  std::vector<double> rbf_offsets;  // n_rbf, Gaussian centres
  std::vector<double> rbf_widths;   // n_rbf, exp(-0.5 (r - mu)^2 / width^2)
  std::vector<double> embedding;    // max_z * n_atom_basis
  DenseLayer filter;                // n_rbf -> n_slots * 3F, no activation
  bool shared_filters = false;      // one slot (3F) for all interactions
  std::vector<PaiNNBlockWeights> blocks;  // one per interaction (shared ones repeated)
  std::vector<DenseLayer> readout;  // atom-wise MLP on q, last layer n_out == 1, summed over atoms
  double energy_scale = 1.0;        // multiplies the summed energy (ScaleProperty)
  ZBLWeights zbl;                   // optional repulsive prior, added after the scale
  int n_slots() const { return shared_filters ? 1 : static_cast<int>(blocks.size()); }
};

// Weights + filter tables, shared by any number of potentials. dtype "float32" or "float64".
class FastPaiNNModel {
 public:
  // n_intervals > 0 fixes the grid; 0 chooses it: doubled from 256 intervals until the relative
  // interpolation error of W is below `tolerance` (and of dW/dr below 10 * tolerance), measured
  // in double at 3 points inside every interval, relative to each slot's max |W| (|dW/dr|).
  // isa: the kernels' instruction set, "auto" (the widest this CPU has), "avx512", "avx2" or
  // "generic" (cpu_features.hpp); the weights and tables are laid out for its vector width.
  FastPaiNNModel(PaiNNWeights weights, const std::string& dtype, int n_intervals = 0, double tolerance = 2e-7,
                 const std::string& isa = "auto");
  ~FastPaiNNModel();
  const PaiNNWeights& weights() const { return w_; }
  const std::string& dtype() const { return dtype_; }
  const FilterTableInfo& table_info() const { return info_; }
  Isa isa() const { return isa_; }
  int n_interactions() const { return static_cast<int>(w_.blocks.size()); }
  int filter_width() const { return 3 * w_.n_atom_basis; }
  // The exact filter of interaction t (3F values: Ws, WR, Wv) and its r-derivative (double),
  // and the tabulated one (in the model's dtype).
  void filter_exact(int t, double r, double* W, double* dW) const;
  void filter_interpolated(int t, double r, double* W, double* dW) const;

  struct Impl;  // dtype-specific tables and packed weights (fast_painn.cpp)
  const Impl& impl() const { return *impl_; }

 private:
  PaiNNWeights w_;
  std::string dtype_;
  FilterTableInfo info_;
  Isa isa_ = Isa::Generic;
  std::unique_ptr<Impl> impl_;
};

class FastPaiNNPotential : public FastPotentialBase {
 public:
  // cutoff_A: model cutoff in Angstrom. atomic_numbers: N (same for all replicas).
  // n_threads: OpenMP threads over replicas; 0 = omp_get_max_threads() at each call.
  // block_atoms: replicas are evaluated in blocks of at most this many atoms (at least one replica).
  FastPaiNNPotential(std::shared_ptr<const FastPaiNNModel> model, std::vector<int64_t> atomic_numbers,
                     double cutoff_A, double skin_A, double length_unit_A, double energy_unit_eV,
                     double energy_offset_eV, int n_threads = 1, int block_atoms = 64);
  ~FastPaiNNPotential() override;
  void compute(const double*, int, int, double*, double*) override;
  std::string name() const override { return "fast-painn"; }
  int block_atoms() const { return block_atoms_; }
  void set_block_atoms(int n);

  struct Workspace;

 private:
  std::shared_ptr<const FastPaiNNModel> model_;
  int block_atoms_;
  std::vector<std::unique_ptr<Workspace>> ws_;  // one per thread
};

}  // namespace pymotor
