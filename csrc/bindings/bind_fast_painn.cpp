// Bindings of the fast PaiNN evaluator: weights arrive as a dict of numpy arrays (read from the
// TorchScript file and checked in pymotor/backends/fast_painn.py); evaluation runs without the
// GIL through Potential.compute. What it shares with the fast SchNet: fast_weights.hpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fast_weights.hpp"
#include "pymotor/fast_painn.hpp"

namespace py = pybind11;
using namespace pymotor;
using namespace pymotor::bind;

namespace {

PaiNNWeights weights_from_dict(const py::dict& d) {
  PaiNNWeights w;
  basis_from_dict(d, w);
  w.epsilon = py::cast<double>(d["epsilon"]);
  w.filter = dense_layer(d["filter"], "filter_net");
  w.shared_filters = py::cast<bool>(d["shared_filters"]);
  py::list blocks = d["blocks"];
  for (size_t t = 0; t < blocks.size(); ++t) {
    py::dict b = blocks[t];
    const std::string p = "block " + std::to_string(t) + " ";
    w.blocks.push_back({dense_layer(b["context1"], p + "interatomic_context_net.0"),
                        dense_layer(b["context2"], p + "interatomic_context_net.1"),
                        dense_layer(b["mu_mix"], p + "mu_channel_mix"),
                        dense_layer(b["intra1"], p + "intraatomic_context_net.0"),
                        dense_layer(b["intra2"], p + "intraatomic_context_net.1")});
  }
  outputs_from_dict(d, w);
  return w;
}

}  // namespace

void bind_fast_painn(py::module_& m) {
  py::class_<FastPaiNNModel, std::shared_ptr<FastPaiNNModel>> model(m, "FastPaiNNModel");
  model
      .def(py::init([](const py::dict& weights, const std::string& dtype, int n_intervals, double tolerance,
                       const std::string& isa) {
             PaiNNWeights w = weights_from_dict(weights);
             py::gil_scoped_release release;
             return std::make_shared<FastPaiNNModel>(std::move(w), dtype, n_intervals, tolerance, isa);
           }),
           py::arg("weights"), py::arg("dtype") = "float32", py::arg("n_intervals") = 0, py::arg("tolerance") = 2e-7,
           py::arg("isa") = "auto",
           "PaiNN weights (model units) + cubic Hermite filter tables (value and derivative at the nodes). "
           "n_intervals=0 refines the grid until the relative interpolation error is below `tolerance`. "
           "isa: the kernels' instruction set, 'auto' (the widest this CPU has), 'avx512', 'avx2' or 'generic'.")
      .def_property_readonly("n_atom_basis", [](const FastPaiNNModel& s) { return s.weights().n_atom_basis; })
      .def_property_readonly("shared_filters", [](const FastPaiNNModel& s) { return s.weights().shared_filters; });
  def_model_common<FastPaiNNModel>(
      model, [](const FastPaiNNModel& s) { return s.filter_width(); },
      "Exact filter W (n, 3 n_atom_basis: Ws, WR, Wv) and dW/dr at distances r (model units).");

  py::class_<FastPaiNNPotential, Potential, std::shared_ptr<FastPaiNNPotential>> pot(m, "FastPaiNNPotential");
  pot.def(py::init([](std::shared_ptr<FastPaiNNModel> model, std::vector<int64_t> z, double cutoff_A, double skin_A,
                      double length_unit_A, double energy_unit_eV, double offset_eV, int n_threads, int block_atoms) {
            return std::make_shared<FastPaiNNPotential>(std::move(model), std::move(z), cutoff_A, skin_A,
                                                        length_unit_A, energy_unit_eV, offset_eV, n_threads,
                                                        block_atoms);
          }),
          py::arg("model"), py::arg("atomic_numbers"), py::arg("cutoff_A"), py::arg("skin_A"),
          py::arg("length_unit_A"), py::arg("energy_unit_eV"), py::arg("energy_offset_eV"), py::arg("n_threads") = 1,
          py::arg("block_atoms") = 64)
      .def_property("block_atoms", &FastPaiNNPotential::block_atoms, &FastPaiNNPotential::set_block_atoms,
                    "Replicas are evaluated in blocks of at most this many atoms (at least one replica).");
  def_potential_common<FastPaiNNPotential>(
      pot, "OpenMP threads over replicas (0: follow the OpenMP setting, e.g. torch.set_num_threads).");

  m.def(
      "best_isa", [] { return std::string(isa_name(best_isa())); },
      "The widest instruction set of this CPU that the fast kernels are built for ('avx512', 'avx2' or "
      "'generic'): what isa='auto' picks.");
  m.def(
      "dense_layer_loop",
      [](const py::dict& layer, int rows, int repeats, const std::string& isa_name_) {
        // pymotor's packed GEMM (+ bias) in float32, `repeats` times on `rows` rows: the rate the
        // benchmarks' roofline estimates compare with (bench/test_bench_fast_painn.py)
        if (rows <= 0 || repeats < 0) throw std::invalid_argument("dense_layer_loop: rows > 0, repeats >= 0");
        const DenseLayer d = dense_layer(layer, "layer");
        const Isa isa = isa_from_name(isa_name_, "dense_layer_loop");
        py::gil_scoped_release release;
        const dense::PackedLayer<float> p(d, isa);
        // aligned as the evaluators' rows are
        dense::avector<float> x(static_cast<size_t>(rows) * d.n_in), y(static_cast<size_t>(rows) * d.n_out);
        for (size_t k = 0; k < x.size(); ++k) x[k] = static_cast<float>((k * 7919) % 1000) * 1e-3f - 0.5f;
        for (int r = 0; r < repeats; ++r) p.forward(rows, x.data(), d.n_in, y.data(), d.n_out);
        return static_cast<double>(y[0]);
      },
      py::arg("layer"), py::arg("rows"), py::arg("repeats"), py::arg("isa") = "auto",
      "Run a float32 dense layer (packed GEMM for `isa`, as FastPaiNNModel) `repeats` times on `rows` rows "
      "(a benchmark kernel).");
}
