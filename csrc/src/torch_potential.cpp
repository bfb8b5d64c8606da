#include "pymotor/torch_potential.hpp"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <cmath>
#include <stdexcept>

namespace pymotor {

TorchModel::TorchModel(const std::string& path, const std::string& device, bool jit_optimize)
    : device_(device), jit_optimize_(jit_optimize) {
  torch::jit::ExtraFilesMap extra{{"cutoff", ""}, {"metadata", ""}};
  try {
    module_ = torch::jit::load(path, device_, extra);
  } catch (const c10::Error& e) {
    throw std::runtime_error("could not load TorchScript model '" + path + "': " + e.what_without_backtrace());
  }
  for (auto& kv : extra) extra_[kv.first] = kv.second;
  module_.eval();
  if (!jit_optimize_) return;  // a frozen module needs the optimising executor
  // Freezing inlines the weights (as openmm-torch does); keep the plain module if a model
  // cannot be frozen.
  try {
    module_ = torch::jit::freeze(module_);
    frozen_ = true;
  } catch (const std::exception&) {
    frozen_ = false;
  }
}

c10::IValue TorchModel::forward(std::vector<c10::IValue> inputs) {
  torch::jit::GraphOptimizerEnabledGuard guard(jit_optimize_);
  return module_.forward(std::move(inputs));
}

void TorchModel::energy_forces(const c10::Dict<std::string, torch::Tensor>& in, torch::Tensor& energy,
                               torch::Tensor& forces) {
  c10::IValue out_iv;
  try {
    out_iv = forward({in});
  } catch (const c10::Error& err) {
    throw std::runtime_error(std::string("TorchScript model failed: ") + err.what_without_backtrace());
  }
  auto out = out_iv.toGenericDict();
  if (!out.contains("energy") || !out.contains("forces"))
    throw std::runtime_error("TorchScript model output lacks 'energy' or 'forces'");
  energy = out.at("energy").toTensor().detach();
  forces = out.at("forces").toTensor().detach();
}

AOTIModel::AOTIModel(const std::string& path, const std::string& device, double pad_offset)
    : device_(device), pad_offset_(pad_offset) {
  const c10::DeviceIndex index = device_.has_index() ? device_.index() : -1;
  try {
    loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", false, 1, index);
  } catch (const std::exception& e) {
    throw std::runtime_error("could not load AOTInductor package '" + path + "': " + e.what());
  }
  for (auto& kv : loader_->get_metadata()) metadata_[kv.first] = kv.second;
}

AOTIModel::~AOTIModel() = default;

void AOTIModel::energy_forces(const c10::Dict<std::string, torch::Tensor>& in, torch::Tensor& energy,
                              torch::Tensor& forces) {
  torch::Tensor idx_i = in.at("_idx_i"), idx_j = in.at("_idx_j"), offsets = in.at("_offsets");
  const int64_t pad = 2 - idx_i.size(0);
  if (pad > 0) {  // far-away self-pairs of atom 0: the package's shapes start at 2 pairs
    idx_i = torch::cat({idx_i, torch::zeros({pad}, idx_i.options())});
    idx_j = torch::cat({idx_j, torch::zeros({pad}, idx_j.options())});
    torch::Tensor far = torch::zeros({pad, 3}, offsets.options());
    far.select(1, 0).fill_(pad_offset_);
    offsets = torch::cat({offsets, far});
  }
  std::vector<torch::Tensor> args{in.at("_atomic_numbers"), in.at("_positions"), in.at("_idx_m"), idx_i,
                                  idx_j, offsets, in.at("_n_atoms")};
  std::vector<torch::Tensor> out;
  try {
    out = loader_->run(args);
  } catch (const std::exception& err) {
    throw std::runtime_error(std::string("AOTInductor package failed: ") + err.what());
  }
  if (out.size() != 2) throw std::runtime_error("AOTInductor package returned " + std::to_string(out.size()) +
                                                " outputs, expected 2 (energy, forces)");
  energy = out[0];
  forces = out[1];
}

SchNetPackInputs::SchNetPackInputs(std::vector<int64_t> z, torch::Device device)
    : z_(std::move(z)), device_(device) {}

c10::Dict<std::string, torch::Tensor> SchNetPackInputs::build(const double* x, int R, int N, const PairList& pl,
                                                               double length_unit_A) {
  const torch::Device dev = device_;
  const int64_t n_tot = static_cast<int64_t>(R) * N;
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  if (cached_replicas_ != R) {
    torch::Tensor z1 = torch::from_blob(z_.data(), {N}, i64);
    z_t_ = z1.repeat({R}).to(dev);
    idx_m_t_ = torch::arange(R, i64).repeat_interleave(N).to(dev);
    n_atoms_t_ = torch::full({R}, static_cast<int64_t>(N), i64).to(dev);
    cell_t_ = torch::zeros({R, 3, 3}, torch::kFloat32).to(dev);
    pbc_t_ = torch::zeros({R, 3}, torch::kBool).to(dev);
    cached_replicas_ = R;
  }
  const int64_t P = static_cast<int64_t>(pl.size());
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor pos = (torch::from_blob(const_cast<double*>(x), {n_tot, 3}, f64) / length_unit_A)
                          .to(dev, torch::kFloat32);
  torch::Tensor idx_i = torch::from_blob(const_cast<int64_t*>(pl.idx_i.data()), {P}, i64).to(dev, /*non_blocking=*/false, /*copy=*/true);
  torch::Tensor idx_j = torch::from_blob(const_cast<int64_t*>(pl.idx_j.data()), {P}, i64).to(dev, false, true);
  torch::Tensor offsets = torch::zeros({P, 3}, torch::TensorOptions().dtype(torch::kFloat32).device(dev));
  c10::Dict<std::string, torch::Tensor> in;
  in.insert("_positions", pos);
  in.insert("_atomic_numbers", z_t_);
  in.insert("_idx_i", idx_i);
  in.insert("_idx_j", idx_j);
  in.insert("_idx_m", idx_m_t_);
  in.insert("_n_atoms", n_atoms_t_);
  in.insert("_offsets", offsets);
  in.insert("_cell", cell_t_);
  in.insert("_pbc", pbc_t_);
  return in;
}

TorchPotential::TorchPotential(std::shared_ptr<TorchEvaluator> model, std::vector<int64_t> z, double cutoff_A,
                               double skin_A, double length_unit_A, double energy_unit_eV, double offset_eV)
    : model_(std::move(model)),
      z_(z),
      length_unit_A_(length_unit_A),
      energy_unit_eV_(energy_unit_eV),
      offset_eV_(offset_eV),
      nl_(cutoff_A, skin_A),
      inputs_(std::move(z), model_ ? model_->device() : torch::Device(torch::kCPU)) {
  if (!model_) throw std::invalid_argument("TorchPotential: model is null");
  if (!(length_unit_A > 0.0) || !(energy_unit_eV > 0.0))
    throw std::invalid_argument("TorchPotential: unit conversion factors must be positive");
}

void TorchPotential::compute(const double* x, int R, int N, double* e, double* f) {
  if (static_cast<size_t>(N) != z_.size())
    throw std::invalid_argument("TorchPotential: the model was set up for " + std::to_string(z_.size()) +
                                " atoms, got " + std::to_string(N));
  const int64_t n_tot = static_cast<int64_t>(R) * N;
  nl_.update(x, R, N);
  const PairList& pl = nl_.pairs(x);
  last_pairs_ = pl.size();
  c10::Dict<std::string, torch::Tensor> in = inputs_.build(x, R, N, pl, length_unit_A_);

  torch::Tensor energy, forces;
  model_->energy_forces(in, energy, forces);
  torch::Tensor en = energy.to(torch::kCPU, torch::kFloat64).contiguous().reshape({-1});
  torch::Tensor fo = forces.to(torch::kCPU, torch::kFloat64).contiguous();
  if (en.numel() != R) throw std::runtime_error(model_->kind() + " model returned " + std::to_string(en.numel()) +
                                                " energies for " + std::to_string(R) + " replicas");
  if (fo.numel() != n_tot * 3) throw std::runtime_error(model_->kind() + " model returned forces of the wrong size");
  const double* ep = en.data_ptr<double>();
  const double* fp = fo.data_ptr<double>();
  for (int r = 0; r < R; ++r) e[r] = ep[r] * energy_unit_eV_ + offset_eV_;
  const double fscale = energy_unit_eV_ / length_unit_A_;
  for (int64_t k = 0; k < n_tot * 3; ++k) f[k] = fp[k] * fscale;
}

}  // namespace pymotor
