// Deployed networks evaluated through libtorch: a TorchScript model in SchNetPack's deployed
// format, or an AOTInductor package (.pt2) of the same model with its forces compiled in.
//
// Inputs are built in float32 (positions) / int64 (indices) on the model's device; the
// integration stays in float64. The (large) energy offset is kept out of the float32 model
// and added here in float64. Units: the model works in its own length/energy units;
// length_unit_A and energy_unit_eV convert them to Angstrom and eV.
#pragma once
#include <torch/script.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pymotor/potential.hpp"

namespace torch::inductor {
class AOTIModelPackageLoader;
}

namespace pymotor {

// A deployed network: SchNetPack's inputs -> energy per molecule [R] (without the offset) and
// forces [R*N, 3], in the model's units.
class TorchEvaluator {
 public:
  virtual ~TorchEvaluator() = default;
  virtual void energy_forces(const c10::Dict<std::string, torch::Tensor>& inputs, torch::Tensor& energy,
                             torch::Tensor& forces) = 0;
  virtual const torch::Device& device() const = 0;
  // "torchscript" or "pt2": the backend name a trajectory records
  virtual std::string kind() const = 0;
};

// Loads a TorchScript file with its `_extra_files` (`cutoff`, `metadata`) in eval mode.
//
// jit_optimize = false (the default on CPU): the module is not frozen and forward() runs with
// the graph executor's optimisation off (plain interpreter, no profiling/specialisation). For
// SchNetPack SchNet on CPU this measured 12-20 % faster than freeze + the profiling executor,
// for one molecule and for 32 batched replicas alike. jit_optimize = true (the default on
// CUDA, where fusion pays): freeze (as openmm-torch does) and the optimising executor.
class TorchModel : public TorchEvaluator {
 public:
  TorchModel(const std::string& path, const std::string& device, bool jit_optimize = false);
  // forward() with the executor setting chosen at load (thread-local guard).
  c10::IValue forward(std::vector<c10::IValue> inputs);
  void energy_forces(const c10::Dict<std::string, torch::Tensor>& inputs, torch::Tensor& energy,
                     torch::Tensor& forces) override;
  std::string kind() const override { return "torchscript"; }
  bool jit_optimize() const { return jit_optimize_; }
  const std::map<std::string, std::string>& extra_files() const { return extra_; }
  torch::jit::Module& module() { return module_; }
  const torch::Device& device() const override { return device_; }
  bool frozen() const { return frozen_; }

 private:
  torch::jit::Module module_;
  torch::Device device_;
  std::map<std::string, std::string> extra_;
  bool frozen_ = false;
  bool jit_optimize_ = false;
};

// An AOTInductor package written by pymotor.deploy (format "pt2"): the SchNetPack model and
// its force graph compiled ahead of time for one device kind. Flat inputs in the order
// _atomic_numbers, _positions, _idx_m, _idx_i, _idx_j, _offsets, _n_atoms (pymotor/train/pt2.py);
// a pair list shorter than 2 is padded with self-pairs of atom 0 offset by `pad_offset` (in the
// model's length unit, far beyond the cutoff: exactly zero contribution; pymotor.train.pt2.PAD_OFFSET
// is the one value), as the package's shapes start at 2 pairs.
class AOTIModel : public TorchEvaluator {
 public:
  AOTIModel(const std::string& path, const std::string& device, double pad_offset);
  ~AOTIModel() override;
  void energy_forces(const c10::Dict<std::string, torch::Tensor>& inputs, torch::Tensor& energy,
                     torch::Tensor& forces) override;
  const torch::Device& device() const override { return device_; }
  std::string kind() const override { return "pt2"; }
  std::map<std::string, std::string> metadata() const { return metadata_; }

 private:
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  torch::Device device_;
  double pad_offset_;
  std::map<std::string, std::string> metadata_;
};

// Input adapter: SchNetPack's input dictionary (_positions float32 [R*N,3] in the model's
// length unit, _atomic_numbers, _idx_i/_idx_j full pair list, _idx_m, _n_atoms, _offsets
// zeros, _cell, _pbc) built on the model's device from float64 positions and a pair list.
// Other input layouts get an adapter of their own; the neighbour list stays outside.
class SchNetPackInputs {
 public:
  SchNetPackInputs(std::vector<int64_t> atomic_numbers, torch::Device device);
  c10::Dict<std::string, torch::Tensor> build(const double* positions_A, int n_replicas, int n_atoms,
                                             const PairList& full_pairs, double length_unit_A);

 private:
  std::vector<int64_t> z_;
  torch::Device device_;
  int cached_replicas_ = -1;
  torch::Tensor z_t_, idx_m_t_, n_atoms_t_, cell_t_, pbc_t_;
};

class TorchPotential : public Potential {
 public:
  // cutoff_A: model cutoff in Angstrom. atomic_numbers: N (same for all replicas).
  // energy_offset_eV: added to every replica's energy (float64).
  TorchPotential(std::shared_ptr<TorchEvaluator> model, std::vector<int64_t> atomic_numbers,
                 double cutoff_A, double skin_A, double length_unit_A, double energy_unit_eV,
                 double energy_offset_eV);
  void compute(const double*, int, int, double*, double*) override;
  std::string name() const override { return model_->kind(); }
  const VerletList& neighbors() const { return nl_; }
  size_t last_n_pairs() const { return last_pairs_; }

 private:
  std::shared_ptr<TorchEvaluator> model_;
  std::vector<int64_t> z_;
  double length_unit_A_, energy_unit_eV_, offset_eV_;
  VerletList nl_;
  SchNetPackInputs inputs_;
  size_t last_pairs_ = 0;
};

}  // namespace pymotor
