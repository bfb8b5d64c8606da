// What the bindings of the fast SchNet and the fast PaiNN share: the weights dict that
// pymotor/backends/spk_reader.py (and each evaluator's reader) hands over, read into the C++
// structs, and the methods both model and potential classes expose.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "pymotor/dense.hpp"        // Activation, DenseLayer
#include "pymotor/fast_common.hpp"  // ZBLWeights, PairSwitch, FilterTableInfo

namespace pymotor::bind {

namespace py = pybind11;

using darray = py::array_t<double, py::array::c_style | py::array::forcecast>;

inline std::vector<double> vec(const py::handle& h) {
  darray a = py::cast<darray>(h);
  return std::vector<double>(a.data(), a.data() + a.size());
}

inline Activation activation_of(const std::string& s, const std::string& what) {
  if (s == "none") return Activation::None;
  if (s == "shifted_softplus") return Activation::ShiftedSoftplus;
  if (s == "silu") return Activation::SiLU;
  throw std::invalid_argument(what + ": unsupported activation '" + s + "'");
}

// {"weight": (n_out, n_in), "bias": (n_out,) or None, "activation": "none"|"shifted_softplus"|"silu"}
inline DenseLayer dense_layer(const py::dict& d, const std::string& what) {
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

// The ZBL prior as spk_reader.read_zbl describes it.
inline void zbl_from_dict(const py::dict& z, double cutoff, ZBLWeights& b) {
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

// The entries spk_reader.read_common reads for every evaluator: cutoff, Gaussian RBF and the
// embedding (W: SchNetWeights or PaiNNWeights).
template <class W>
void basis_from_dict(const py::dict& d, W& w) {
  w.cutoff = py::cast<double>(d["cutoff"]);
  w.rbf_offsets = vec(d["rbf_offsets"]);
  w.rbf_widths = vec(d["rbf_widths"]);
  w.n_rbf = static_cast<int>(w.rbf_offsets.size());
  darray emb = py::cast<darray>(d["embedding"]);
  if (emb.ndim() != 2) throw std::invalid_argument("embedding must be a 2-d array");
  w.max_z = static_cast<int>(emb.shape(0));
  w.n_atom_basis = static_cast<int>(emb.shape(1));
  w.embedding.assign(emb.data(), emb.data() + emb.size());
}

// The entries spk_reader.read_outputs reads: the readout network, the energy scale, the ZBL prior.
template <class W>
void outputs_from_dict(const py::dict& d, W& w) {
  py::list ro = d["readout"];
  for (size_t l = 0; l < ro.size(); ++l) w.readout.push_back(dense_layer(ro[l], "readout layer " + std::to_string(l)));
  w.energy_scale = py::cast<double>(d["energy_scale"]);
  if (d.contains("zbl") && !d["zbl"].is_none()) zbl_from_dict(d["zbl"], w.cutoff, w.zbl);
}

// filter_exact / filter_interpolated of a model (`width` values per distance) at distances r.
template <class Model>
py::tuple filter_pair(const Model& m, int width, int t, const darray& r, bool exact) {
  const py::ssize_t n = r.size();
  py::array_t<double> W({n, static_cast<py::ssize_t>(width)}), dW({n, static_cast<py::ssize_t>(width)});
  double* pw = W.mutable_data();
  double* pd = dW.mutable_data();
  for (py::ssize_t k = 0; k < n; ++k) {
    if (exact)
      m.filter_exact(t, r.data()[k], pw + k * width, pd + k * width);
    else
      m.filter_interpolated(t, r.data()[k], pw + k * width, pd + k * width);
  }
  return py::make_tuple(W, dW);
}

// The read-only properties and filter methods both model classes have; width(m): the filter
// values per distance; `filter_doc`: what filter_exact returns.
template <class Model, class Class, class Width>
void def_model_common(Class& cls, Width width, const char* filter_doc) {
  cls.def_property_readonly("dtype", &Model::dtype)
      .def_property_readonly(
          "isa", [](const Model& s) { return std::string(isa_name(s.isa())); },
          "The instruction set the kernels run with ('avx512', 'avx2' or 'generic').")
      .def_property_readonly("n_interactions", &Model::n_interactions)
      .def_property_readonly("cutoff", [](const Model& s) { return s.weights().cutoff; })
      .def_property_readonly("table_info",
                             [](const Model& s) {
                               const FilterTableInfo& i = s.table_info();
                               py::dict d;
                               d["n_intervals"] = i.n_intervals;
                               d["spacing"] = i.spacing;
                               d["max_rel_error"] = i.max_rel_error;
                               d["max_rel_error_derivative"] = i.max_rel_error_derivative;
                               return d;
                             })
      .def("filter_exact",
           [width](const Model& s, int t, const darray& r) { return filter_pair(s, width(s), t, r, true); },
           py::arg("interaction"), py::arg("r"), filter_doc)
      .def("filter_interpolated",
           [width](const Model& s, int t, const darray& r) { return filter_pair(s, width(s), t, r, false); },
           py::arg("interaction"), py::arg("r"), "Tabulated filter W and dW/dr at distances r (model units).");
}

// The thread count and neighbour-list statistics both potential classes expose.
template <class Pot, class Class>
void def_potential_common(Class& cls, const char* n_threads_doc) {
  cls.def_property("n_threads", &Pot::n_threads, &Pot::set_n_threads, n_threads_doc)
      .def_property_readonly("n_neighbor_builds", [](const Pot& p) { return p.neighbors().n_builds(); })
      .def_property_readonly("last_n_pairs", &Pot::last_n_pairs);
}

}  // namespace pymotor::bind
