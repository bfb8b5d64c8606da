// Bindings of the fast PaiNN evaluator: weights arrive as a dict of numpy arrays (read from the
// TorchScript file and checked in pymotor/backends/fast_painn.py); evaluation runs without the
// GIL through Potential.compute.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <vector>
#include <stdexcept>
#include <string>

#include "pymotor/fast_painn.hpp"

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
DenseLayer dense_layer(const py::dict& d, const std::string& what) {
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

// The ZBL prior as pymotor/backends/fast_schnet.py's _zbl describes it (same dict as the fast SchNet).
void zbl_from_dict(const py::dict& z, double cutoff, ZBLWeights& b) {
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
  if (b.switch_type != PairSwitch::None && b.r_off > cutoff * (1.0 + 1e-12))
    throw std::invalid_argument("zbl: the prior's range exceeds the model cutoff (pairs beyond it are not listed)");
}

PaiNNWeights weights_from_dict(const py::dict& d) {
  PaiNNWeights w;
  w.cutoff = py::cast<double>(d["cutoff"]);
  w.epsilon = py::cast<double>(d["epsilon"]);
  w.rbf_offsets = vec(d["rbf_offsets"]);
  w.rbf_widths = vec(d["rbf_widths"]);
  w.n_rbf = static_cast<int>(w.rbf_offsets.size());
  darray emb = py::cast<darray>(d["embedding"]);
  if (emb.ndim() != 2) throw std::invalid_argument("embedding must be a 2-d array");
  w.max_z = static_cast<int>(emb.shape(0));
  w.n_atom_basis = static_cast<int>(emb.shape(1));
  w.embedding.assign(emb.data(), emb.data() + emb.size());
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
  py::list ro = d["readout"];
  for (size_t l = 0; l < ro.size(); ++l) w.readout.push_back(dense_layer(ro[l], "readout layer " + std::to_string(l)));
  w.energy_scale = py::cast<double>(d["energy_scale"]);
  if (d.contains("zbl") && !d["zbl"].is_none()) zbl_from_dict(d["zbl"], w.cutoff, w.zbl);
  return w;
}

py::tuple filter_pair(const FastPaiNNModel& m, int t, const darray& r, bool exact) {
  const int C = m.filter_width();
  const py::ssize_t n = r.size();
  py::array_t<double> W({n, static_cast<py::ssize_t>(C)}), dW({n, static_cast<py::ssize_t>(C)});
  double* pw = W.mutable_data();
  double* pd = dW.mutable_data();
  for (py::ssize_t k = 0; k < n; ++k) {
    if (exact)
      m.filter_exact(t, r.data()[k], pw + k * C, pd + k * C);
    else
      m.filter_interpolated(t, r.data()[k], pw + k * C, pd + k * C);
  }
  return py::make_tuple(W, dW);
}

}  // namespace

void bind_fast_painn(py::module_& m) {
  py::class_<FastPaiNNModel, std::shared_ptr<FastPaiNNModel>>(m, "FastPaiNNModel")
      .def(py::init([](const py::dict& weights, const std::string& dtype, int n_intervals, double tolerance) {
             PaiNNWeights w = weights_from_dict(weights);
             py::gil_scoped_release release;
             return std::make_shared<FastPaiNNModel>(std::move(w), dtype, n_intervals, tolerance);
           }),
           py::arg("weights"), py::arg("dtype") = "float32", py::arg("n_intervals") = 0, py::arg("tolerance") = 2e-7,
           "PaiNN weights (model units) + cubic Hermite filter tables (value and derivative at the nodes). "
           "n_intervals=0 refines the grid until the relative interpolation error is below `tolerance`.")
      .def_property_readonly("dtype", &FastPaiNNModel::dtype)
      .def_property_readonly("n_interactions", &FastPaiNNModel::n_interactions)
      .def_property_readonly("n_atom_basis", [](const FastPaiNNModel& s) { return s.weights().n_atom_basis; })
      .def_property_readonly("cutoff", [](const FastPaiNNModel& s) { return s.weights().cutoff; })
      .def_property_readonly("shared_filters", [](const FastPaiNNModel& s) { return s.weights().shared_filters; })
      .def_property_readonly("table_info",
                             [](const FastPaiNNModel& s) {
                               const auto& i = s.table_info();
                               py::dict d;
                               d["n_intervals"] = i.n_intervals;
                               d["spacing"] = i.spacing;
                               d["max_rel_error"] = i.max_rel_error;
                               d["max_rel_error_derivative"] = i.max_rel_error_derivative;
                               return d;
                             })
      .def("filter_exact", [](const FastPaiNNModel& s, int t, const darray& r) { return filter_pair(s, t, r, true); },
           py::arg("interaction"), py::arg("r"),
           "Exact filter W (n, 3 n_atom_basis: Ws, WR, Wv) and dW/dr at distances r (model units).")
      .def("filter_interpolated",
           [](const FastPaiNNModel& s, int t, const darray& r) { return filter_pair(s, t, r, false); },
           py::arg("interaction"), py::arg("r"), "Tabulated filter W and dW/dr at distances r (model units).");

  py::class_<FastPaiNNPotential, Potential, std::shared_ptr<FastPaiNNPotential>>(m, "FastPaiNNPotential")
      .def(py::init([](std::shared_ptr<FastPaiNNModel> model, std::vector<int64_t> z, double cutoff_A, double skin_A,
                       double length_unit_A, double energy_unit_eV, double offset_eV, int n_threads, int block_atoms) {
             return std::make_shared<FastPaiNNPotential>(std::move(model), std::move(z), cutoff_A, skin_A,
                                                         length_unit_A, energy_unit_eV, offset_eV, n_threads,
                                                         block_atoms);
           }),
           py::arg("model"), py::arg("atomic_numbers"), py::arg("cutoff_A"), py::arg("skin_A"),
           py::arg("length_unit_A"), py::arg("energy_unit_eV"), py::arg("energy_offset_eV"), py::arg("n_threads") = 1,
           py::arg("block_atoms") = 256)
      .def_property("n_threads", &FastPaiNNPotential::n_threads, &FastPaiNNPotential::set_n_threads,
                    "OpenMP threads over replicas (0: follow the OpenMP setting, e.g. torch.set_num_threads).")
      .def_property("block_atoms", &FastPaiNNPotential::block_atoms, &FastPaiNNPotential::set_block_atoms,
                    "Replicas are evaluated in blocks of at most this many atoms (at least one replica).")
      .def_property_readonly("n_neighbor_builds", [](const FastPaiNNPotential& p) { return p.neighbors().n_builds(); })
      .def_property_readonly("last_n_pairs", &FastPaiNNPotential::last_n_pairs);

  m.def(
      "dense_layer_loop",
      [](const py::dict& layer, int rows, int repeats) {
        // pymotor's packed GEMM (+ bias) in float32, `repeats` times on `rows` rows: the rate the
        // benchmarks' roofline estimates compare with (bench/test_bench_fast_painn.py)
        if (rows <= 0 || repeats < 0) throw std::invalid_argument("dense_layer_loop: rows > 0, repeats >= 0");
        const DenseLayer d = dense_layer(layer, "layer");
        py::gil_scoped_release release;
        const dense::PackedLayer<float> p(d);
        std::vector<float> x(static_cast<size_t>(rows) * d.n_in), y(static_cast<size_t>(rows) * d.n_out);
        for (size_t k = 0; k < x.size(); ++k) x[k] = static_cast<float>((k * 7919) % 1000) * 1e-3f - 0.5f;
        for (int r = 0; r < repeats; ++r) p.forward(rows, x.data(), d.n_in, y.data(), d.n_out);
        return static_cast<double>(y[0]);
      },
      py::arg("layer"), py::arg("rows"), py::arg("repeats"),
      "Run a float32 dense layer (packed GEMM) `repeats` times on `rows` rows (a benchmark kernel).");
}
