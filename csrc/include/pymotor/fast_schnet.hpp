// A SchNet (SchNetPack 2.2 layout) evaluated directly in C++ with tabulated filters and an
// analytic backward pass.
//
// In SchNet each interaction t builds a continuous filter W_t(r) = Dense2(act(Dense1(rbf(r))))
// * fcut(r) that depends on the pair distance only. FastSchNetModel tabulates W_t and dW_t/dr
// once, on a uniform grid over [0, cutoff], as piecewise cubic Hermite polynomials (value and
// derivative matched at the grid points: error O(h^4) in W, O(h^3) in dW/dr). The grid is
// refined until the interpolation error, measured against the exact filter between grid
// points, is below a relative tolerance. Per pair and step only the cubic is evaluated.
//
// FastSchNetPotential evaluates energy and forces of R replicas x N atoms on a half Verlet
// list: the continuous-filter convolution is fused (each unordered pair evaluates its filter
// once and scatters into both atoms, no pairs x features intermediate), the dense layers are
// small GEMMs, and the forces come from a hand-written backward pass. Arithmetic in float
// or double (template); geometry (distances, unit vectors, force accumulation) in double.
// The model works in its own units (length_unit_A, energy_unit_eV convert); the energy
// offset is added in float64 as TorchPotential does. Replicas are spread over OpenMP threads.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pymotor/dense.hpp"        // Activation, DenseLayer
#include "pymotor/fast_common.hpp"  // ZBLWeights, FilterTableInfo, FastPotentialBase

namespace pymotor {

struct SchNetInteractionWeights {
  DenseLayer in2f;                  // n_atom_basis -> n_filters, no bias, no activation
  DenseLayer filter1, filter2;      // n_rbf -> n_filters (act), n_filters -> n_filters
  DenseLayer f2out1, f2out2;        // n_filters -> n_atom_basis (act), n_atom_basis -> n_atom_basis
};

// All weights of a SchNet energy model in the model's own units.
struct SchNetWeights {
  int n_atom_basis = 0, n_filters = 0, n_rbf = 0, max_z = 0;
  double cutoff = 0.0;               // model length unit; cosine cutoff
  std::vector<double> rbf_offsets;   // n_rbf, Gaussian centres
  std::vector<double> rbf_widths;    // n_rbf, exp(-0.5 (r - mu)^2 / width^2)
  std::vector<double> embedding;     // max_z * n_atom_basis (row Z is element Z)
  std::vector<SchNetInteractionWeights> interactions;
  std::vector<DenseLayer> readout;   // atom-wise MLP, last layer n_out == 1, summed over atoms
  double energy_scale = 1.0;         // multiplies the summed energy (ScaleProperty)
  ZBLWeights zbl;                    // optional repulsive prior, added after the scale
};

// Weights + filter tables, shared by any number of potentials. dtype "float32" or "float64".
class FastSchNetModel {
 public:
  // n_intervals > 0 fixes the grid; 0 chooses it: the grid is doubled from 256 intervals until
  // the relative interpolation error of W is below `tolerance` (and of dW/dr below
  // 10 * tolerance). The error is measured in double at 3 points inside every interval.
  // isa: the kernels' instruction set, "auto" (the widest this CPU has), "avx512", "avx2" or
  // "generic" (cpu_features.hpp).
  FastSchNetModel(SchNetWeights weights, const std::string& dtype, int n_intervals = 0,
                  double tolerance = 1e-7, const std::string& isa = "auto");
  ~FastSchNetModel();
  const SchNetWeights& weights() const { return w_; }
  const std::string& dtype() const { return dtype_; }
  const FilterTableInfo& table_info() const { return info_; }
  Isa isa() const { return isa_; }
  int n_interactions() const { return static_cast<int>(w_.interactions.size()); }
  // The exact filter of interaction t and its r-derivative (double), and the interpolated one
  // (from the tables in the model's dtype). W, dW: n_filters values each.
  void filter_exact(int t, double r, double* W, double* dW) const;
  void filter_interpolated(int t, double r, double* W, double* dW) const;

  struct Impl;  // dtype-specific tables and packed weights (fast_schnet.cpp)
  const Impl& impl() const { return *impl_; }

 private:
  SchNetWeights w_;
  std::string dtype_;
  FilterTableInfo info_;
  Isa isa_ = Isa::Generic;
  std::unique_ptr<Impl> impl_;
};

class FastSchNetPotential : public FastPotentialBase {
 public:
  // cutoff_A: model cutoff in Angstrom. atomic_numbers: N (same for all replicas).
  // n_threads: OpenMP threads over replicas; 0 = omp_get_max_threads() at each call.
  FastSchNetPotential(std::shared_ptr<const FastSchNetModel> model, std::vector<int64_t> atomic_numbers,
                      double cutoff_A, double skin_A, double length_unit_A, double energy_unit_eV,
                      double energy_offset_eV, int n_threads = 0);
  ~FastSchNetPotential() override;
  void compute(const double*, int, int, double*, double*) override;
  std::string name() const override { return "fast-schnet"; }

  struct Workspace;

 private:
  std::shared_ptr<const FastSchNetModel> model_;
  std::vector<std::unique_ptr<Workspace>> ws_;  // one per thread
};

}  // namespace pymotor
