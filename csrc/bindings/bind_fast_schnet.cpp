// Bindings of the fast SchNet evaluator: weights arrive as a dict of numpy arrays (read from
// the TorchScript file and checked in pymotor/backends/fast_schnet.py); evaluation runs without
// the GIL through Potential.compute. What it shares with the fast PaiNN: fast_weights.hpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "fast_weights.hpp"
#include "pymotor/fast_schnet.hpp"

namespace py = pybind11;
using namespace pymotor;
using namespace pymotor::bind;

namespace {

SchNetWeights weights_from_dict(const py::dict& d) {
  SchNetWeights w;
  basis_from_dict(d, w);
  py::list inter = d["interactions"];
  for (size_t t = 0; t < inter.size(); ++t) {
    py::dict it = inter[t];
    const std::string p = "interaction " + std::to_string(t) + " ";
    SchNetInteractionWeights iw{dense_layer(it["in2f"], p + "in2f"), dense_layer(it["filter1"], p + "filter_network.0"),
                                dense_layer(it["filter2"], p + "filter_network.1"),
                                dense_layer(it["f2out1"], p + "f2out.0"), dense_layer(it["f2out2"], p + "f2out.1")};
    w.interactions.push_back(std::move(iw));
  }
  w.n_filters = w.interactions.empty() ? 0 : w.interactions[0].in2f.n_out;
  outputs_from_dict(d, w);
  return w;
}

}  // namespace

void bind_fast_schnet(py::module_& m) {
  py::class_<FastSchNetModel, std::shared_ptr<FastSchNetModel>> model(m, "FastSchNetModel");
  model
      .def(py::init([](const py::dict& weights, const std::string& dtype, int n_intervals, double tolerance,
                       const std::string& isa) {
             SchNetWeights w = weights_from_dict(weights);
             py::gil_scoped_release release;
             return std::make_shared<FastSchNetModel>(std::move(w), dtype, n_intervals, tolerance, isa);
           }),
           py::arg("weights"), py::arg("dtype") = "float32", py::arg("n_intervals") = 0, py::arg("tolerance") = 1e-7,
           py::arg("isa") = "auto",
           "SchNet weights (model units) + cubic Hermite filter tables. n_intervals=0 refines the grid until "
           "the relative interpolation error of the filters is below `tolerance`. isa: the kernels' instruction "
           "set, 'auto' (the widest this CPU has), 'avx512', 'avx2' or 'generic'.")
      .def_property_readonly("n_filters", [](const FastSchNetModel& s) { return s.weights().n_filters; });
  def_model_common<FastSchNetModel>(
      model, [](const FastSchNetModel& s) { return s.weights().n_filters; },
      "Exact filter W (n, n_filters) and dW/dr at distances r (model units).");

  py::class_<FastSchNetPotential, Potential, std::shared_ptr<FastSchNetPotential>> pot(m, "FastSchNetPotential");
  pot.def(py::init([](std::shared_ptr<FastSchNetModel> model, std::vector<int64_t> z, double cutoff_A, double skin_A,
                      double length_unit_A, double energy_unit_eV, double offset_eV, int n_threads) {
            return std::make_shared<FastSchNetPotential>(std::move(model), std::move(z), cutoff_A, skin_A,
                                                         length_unit_A, energy_unit_eV, offset_eV, n_threads);
          }),
          py::arg("model"), py::arg("atomic_numbers"), py::arg("cutoff_A"), py::arg("skin_A"),
          py::arg("length_unit_A"), py::arg("energy_unit_eV"), py::arg("energy_offset_eV"), py::arg("n_threads") = 1);
  def_potential_common<FastSchNetPotential>(pot, "OpenMP threads over replicas (0: follow torch.get_num_threads()).");
}
