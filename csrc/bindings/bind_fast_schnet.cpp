// Bindings of the fast SchNet evaluator: weights arrive as a dict of numpy arrays (read from
// the TorchScript file and checked in pymotor/fast_schnet.py); evaluation runs without the GIL
// through Potential.compute.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "pymotor/fast_schnet.hpp"

namespace py = pybind11;
using namespace pymotor;

namespace {

using darray = py::array_t<double, py::array::c_style | py::array::forcecast>;

std::vector<double> vec(const py::handle& h) {
  darray a = py::cast<darray>(h);
  return std::vector<double>(a.data(), a.data() + a.size());
}

Activation activation_of(const std::string& s, const std::string& what) {
  if (s == "none") return Activation::None;
  if (s == "shifted_softplus") return Activation::ShiftedSoftplus;
  if (s == "silu") return Activation::SiLU;
  throw std::invalid_argument(what + ": unsupported activation '" + s + "'");
}

// {"weight": (n_out, n_in), "bias": (n_out,) or None, "activation": "none"|"shifted_softplus"|"silu"}
DenseLayer dense(const py::dict& d, const std::string& what) {
  DenseLayer l;
  darray w = py::cast<darray>(d["weight"]);
  if (w.ndim() != 2) throw std::invalid_argument(what + ": weight must be a 2-d array");
  l.n_out = static_cast<int>(w.shape(0));
  l.n_in = static_cast<int>(w.shape(1));
  l.weight.assign(w.data(), w.data() + w.size());
  if (d.contains("bias") && !d["bias"].is_none()) l.bias = vec(d["bias"]);
  l.activation = activation_of(py::cast<std::string>(d["activation"]), what);
  return l;
}

SchNetWeights weights_from_dict(const py::dict& d) {
  SchNetWeights w;
  w.cutoff = py::cast<double>(d["cutoff"]);
  w.rbf_offsets = vec(d["rbf_offsets"]);
  w.rbf_widths = vec(d["rbf_widths"]);
  w.n_rbf = static_cast<int>(w.rbf_offsets.size());
  darray emb = py::cast<darray>(d["embedding"]);
  if (emb.ndim() != 2) throw std::invalid_argument("embedding must be a 2-d array");
  w.max_z = static_cast<int>(emb.shape(0));
  w.n_atom_basis = static_cast<int>(emb.shape(1));
  w.embedding.assign(emb.data(), emb.data() + emb.size());
  py::list inter = d["interactions"];
  for (size_t t = 0; t < inter.size(); ++t) {
    py::dict it = inter[t];
    const std::string p = "interaction " + std::to_string(t) + " ";
    SchNetInteractionWeights iw{dense(it["in2f"], p + "in2f"), dense(it["filter1"], p + "filter_network.0"),
                                dense(it["filter2"], p + "filter_network.1"), dense(it["f2out1"], p + "f2out.0"),
                                dense(it["f2out2"], p + "f2out.1")};
    w.interactions.push_back(std::move(iw));
  }
  w.n_filters = w.interactions.empty() ? 0 : w.interactions[0].in2f.n_out;
  py::list ro = d["readout"];
  for (size_t l = 0; l < ro.size(); ++l) w.readout.push_back(dense(ro[l], "readout layer " + std::to_string(l)));
  w.energy_scale = py::cast<double>(d["energy_scale"]);
  if (d.contains("zbl") && !d["zbl"].is_none()) {
    py::dict z = d["zbl"];
    ZBLWeights& b = w.zbl;
    b.enabled = true;
    b.ke = py::cast<double>(z["ke"]);
    b.a_pow = py::cast<double>(z["a_pow"]);
    b.a_div = py::cast<double>(z["a_div"]);
    const std::vector<double> c = vec(z["coefficients"]), e = vec(z["exponents"]);
    if (c.size() != 4 || e.size() != 4) throw std::invalid_argument("zbl: coefficients and exponents need 4 values each");
    for (int k = 0; k < 4; ++k) b.coefficients[k] = c[k], b.exponents[k] = e[k];
    const std::string sw = py::cast<std::string>(z["switch"]);
    if (sw == "none") {
      b.switch_type = PairSwitch::None;
    } else if (sw == "cosine") {
      b.switch_type = PairSwitch::Cosine;
      b.r_off = py::cast<double>(z["r_off"]);
      if (!(b.r_off > 0.0)) throw std::invalid_argument("zbl: the cosine cutoff must be positive");
    } else if (sw == "switch") {
      b.switch_type = PairSwitch::Switch;
      b.r_on = py::cast<double>(z["r_on"]);
      b.r_off = py::cast<double>(z["r_off"]);
      if (!(b.r_off > b.r_on)) throw std::invalid_argument("zbl: switch_off must be above switch_on");
    } else {
      throw std::invalid_argument("zbl: switch must be 'none', 'cosine' or 'switch', got '" + sw + "'");
    }
    if (b.switch_type != PairSwitch::None && b.r_off > w.cutoff * (1.0 + 1e-12))
      throw std::invalid_argument("zbl: the prior's range exceeds the model cutoff (pairs beyond it are not listed)");
  }
  return w;
}

py::tuple filter_pair(const FastSchNetModel& m, int t, const darray& r, bool exact) {
  const int Fi = m.weights().n_filters;
  const py::ssize_t n = r.size();
  py::array_t<double> W({n, static_cast<py::ssize_t>(Fi)}), dW({n, static_cast<py::ssize_t>(Fi)});
  double* pw = W.mutable_data();
  double* pd = dW.mutable_data();
  for (py::ssize_t k = 0; k < n; ++k) {
    if (exact)
      m.filter_exact(t, r.data()[k], pw + k * Fi, pd + k * Fi);
    else
      m.filter_interpolated(t, r.data()[k], pw + k * Fi, pd + k * Fi);
  }
  return py::make_tuple(W, dW);
}

}  // namespace

void bind_fast_schnet(py::module_& m) {
  py::class_<FastSchNetModel, std::shared_ptr<FastSchNetModel>>(m, "FastSchNetModel")
      .def(py::init([](const py::dict& weights, const std::string& dtype, int n_intervals, double tolerance) {
             SchNetWeights w = weights_from_dict(weights);
             py::gil_scoped_release release;
             return std::make_shared<FastSchNetModel>(std::move(w), dtype, n_intervals, tolerance);
           }),
           py::arg("weights"), py::arg("dtype") = "float32", py::arg("n_intervals") = 0, py::arg("tolerance") = 1e-7,
           "SchNet weights (model units) + cubic Hermite filter tables. n_intervals=0 refines the grid until "
           "the relative interpolation error of the filters is below `tolerance`.")
      .def_property_readonly("dtype", &FastSchNetModel::dtype)
      .def_property_readonly("n_interactions", &FastSchNetModel::n_interactions)
      .def_property_readonly("n_filters", [](const FastSchNetModel& s) { return s.weights().n_filters; })
      .def_property_readonly("cutoff", [](const FastSchNetModel& s) { return s.weights().cutoff; })
      .def_property_readonly("table_info",
                             [](const FastSchNetModel& s) {
                               const auto& i = s.table_info();
                               py::dict d;
                               d["n_intervals"] = i.n_intervals;
                               d["spacing"] = i.spacing;
                               d["max_rel_error"] = i.max_rel_error;
                               d["max_rel_error_derivative"] = i.max_rel_error_derivative;
                               return d;
                             })
      .def("filter_exact", [](const FastSchNetModel& s, int t, const darray& r) { return filter_pair(s, t, r, true); },
           py::arg("interaction"), py::arg("r"), "Exact filter W (n, n_filters) and dW/dr at distances r (model units).")
      .def("filter_interpolated",
           [](const FastSchNetModel& s, int t, const darray& r) { return filter_pair(s, t, r, false); },
           py::arg("interaction"), py::arg("r"), "Tabulated filter W and dW/dr at distances r (model units).");

  py::class_<FastSchNetPotential, Potential, std::shared_ptr<FastSchNetPotential>>(m, "FastSchNetPotential")
      .def(py::init([](std::shared_ptr<FastSchNetModel> model, std::vector<int64_t> z, double cutoff_A, double skin_A,
                       double length_unit_A, double energy_unit_eV, double offset_eV, int n_threads) {
             return std::make_shared<FastSchNetPotential>(std::move(model), std::move(z), cutoff_A, skin_A,
                                                          length_unit_A, energy_unit_eV, offset_eV, n_threads);
           }),
           py::arg("model"), py::arg("atomic_numbers"), py::arg("cutoff_A"), py::arg("skin_A"),
           py::arg("length_unit_A"), py::arg("energy_unit_eV"), py::arg("energy_offset_eV"), py::arg("n_threads") = 1)
      .def_property("n_threads", &FastSchNetPotential::n_threads, &FastSchNetPotential::set_n_threads,
                    "OpenMP threads over replicas (0: follow torch.get_num_threads()).")
      .def_property_readonly("n_neighbor_builds", [](const FastSchNetPotential& p) { return p.neighbors().n_builds(); })
      .def_property_readonly("last_n_pairs", &FastSchNetPotential::last_n_pairs);
}
