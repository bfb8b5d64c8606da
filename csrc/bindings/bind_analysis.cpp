// pymotor._core.analysis: numpy in, numpy out, the GIL released around every kernel.
// The Python layer (pymotor/analysis) validates shapes, dtypes and values with messages
// that name the argument; here only cheap checks repeat (dtype float64 / int64,
// C-contiguity, dimensions), and each failing check throws.
#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <complex>
#include <string>
#include <vector>

#include "pymotor/analysis.hpp"

namespace py = pybind11;
namespace an = pymotor::analysis;

namespace {

using darray = py::array_t<double>;

template <typename T>
const T* require(const py::array& a, const char* name, py::ssize_t ndim) {
  const py::dtype want = py::dtype::of<T>();
  const char order = a.dtype().byteorder();
  if (a.dtype().kind() != want.kind() || a.dtype().itemsize() != want.itemsize() ||
      !(order == '=' || order == '|' || order == want.byteorder()))
    throw py::type_error(std::string("`") + name + "` must have dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string("`") + name + "` must be C-contiguous");
  if (a.ndim() != ndim)
    throw py::value_error(std::string("`") + name + "` must have " + std::to_string(ndim) +
                          " dimensions, got " + std::to_string(a.ndim()));
  return static_cast<const T*>(a.data());
}

const double* trajectory(const py::array& a, const char* name, std::size_t& t,
                         std::size_t& n) {
  const double* p = require<double>(a, name, 3);
  if (a.shape(2) != 3) throw py::value_error(std::string("`") + name + "` must be (T, N, 3)");
  t = static_cast<std::size_t>(a.shape(0));
  n = static_cast<std::size_t>(a.shape(1));
  return p;
}

const double* atom_vector(const py::object& o, const char* name, std::size_t n) {
  if (o.is_none()) return nullptr;
  const py::array a = py::reinterpret_borrow<py::array>(o);
  const double* p = require<double>(a, name, 1);
  if (static_cast<std::size_t>(a.shape(0)) != n)
    throw py::value_error(std::string("`") + name + "` must have one value per atom");
  return p;
}

}  // namespace

void bind_analysis(py::module_& m) {
  py::module_ a = m.def_submodule(
      "analysis",
      "Trajectory analysis kernels (Angstrom, fs, amu). Use pymotor.analysis, which validates.");

  a.def("next_pow2", &an::next_pow2, py::arg("n"));

  a.def(
      "pairwise_distances",
      [](const py::array& positions) {
        std::size_t t, n;
        const double* x = trajectory(positions, "positions", t, n);
        const std::size_t p = n * (n - 1) / 2;
        darray out({t, p});
        double* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          an::pairwise_distances(x, t, n, o);
        }
        return out;
      },
      py::arg("positions"), "Condensed pairwise distances (T, N(N-1)/2) in scipy pdist order.");

  a.def(
      "radius_of_gyration",
      [](const py::array& positions, const py::array& weights) {
        std::size_t t, n;
        const double* x = trajectory(positions, "positions", t, n);
        const double* w = atom_vector(weights, "weights", n);
        darray out(t);
        double* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          an::radius_of_gyration(x, w, t, n, o);
        }
        return out;
      },
      py::arg("positions"), py::arg("weights"));

  a.def(
      "dihedrals",
      [](const py::array& positions, const py::array& quadruples) {
        std::size_t t, n;
        const double* x = trajectory(positions, "positions", t, n);
        const std::int64_t* q = require<std::int64_t>(quadruples, "quadruples", 2);
        if (quadruples.shape(1) != 4) throw py::value_error("`quadruples` must be (Q, 4)");
        const std::size_t nq = static_cast<std::size_t>(quadruples.shape(0));
        darray out({t, nq});
        double* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          an::dihedrals(x, t, n, q, nq, o);
        }
        return out;
      },
      py::arg("positions"), py::arg("quadruples"));

  a.def(
      "rmsf",
      [](const py::array& positions, const py::array& weights, int max_iter, double tol) {
        std::size_t t, n;
        const double* x = trajectory(positions, "positions", t, n);
        const double* w = atom_vector(weights, "weights", n);
        an::RmsfResult r;
        {
          py::gil_scoped_release nogil;
          r = an::rmsf(x, w, t, n, max_iter, tol);
        }
        darray f(n), avg({n, std::size_t(3)});
        std::copy(r.rmsf.begin(), r.rmsf.end(), f.mutable_data());
        std::copy(r.average.begin(), r.average.end(), avg.mutable_data());
        return py::make_tuple(f, avg, r.iterations, r.last_change);
      },
      py::arg("positions"), py::arg("weights"), py::arg("max_iter") = 1, py::arg("tol") = 0.0,
      "Returns (rmsf (N,), average (N,3), iterations, last_change).");

  a.def(
      "align_accumulate",
      [](const py::array& positions, const py::array& weights, const py::array& reference,
         py::array& sum_dev, py::array& sum_sq_dev) {
        std::size_t t, n;
        const double* x = trajectory(positions, "positions", t, n);
        const double* w = atom_vector(weights, "weights", n);
        const double* ref = require<double>(reference, "reference", 2);
        double* s = const_cast<double*>(require<double>(sum_dev, "sum_dev", 2));
        double* sq = const_cast<double*>(require<double>(sum_sq_dev, "sum_sq_dev", 2));
        const py::array* checked[] = {&reference, &sum_dev, &sum_sq_dev};
        for (const py::array* arr : checked)
          if (static_cast<std::size_t>(arr->shape(0)) != n || arr->shape(1) != 3)
            throw py::value_error("`reference`, `sum_dev` and `sum_sq_dev` must be (N, 3)");
        if (!sum_dev.writeable() || !sum_sq_dev.writeable())
          throw py::value_error("accumulators must be writeable");
        py::gil_scoped_release nogil;
        an::align_accumulate(x, w, t, n, ref, s, sq);
      },
      py::arg("positions"), py::arg("weights"), py::arg("reference"), py::arg("sum_dev"),
      py::arg("sum_sq_dev"),
      "Align frames onto the centred reference; add deviations to the (N,3) accumulators.");

  a.def(
      "summed_power",
      [](const py::array& signals, const py::object& weights, const py::object& taper,
         std::size_t fft_size) {
        std::size_t t, n;
        const double* x = trajectory(signals, "velocities", t, n);
        const double* w = atom_vector(weights, "weights", n);
        const double* h = nullptr;
        if (!taper.is_none()) {
          const py::array ta = py::reinterpret_borrow<py::array>(taper);
          h = require<double>(ta, "taper", 1);
          if (static_cast<std::size_t>(ta.shape(0)) != t)
            throw py::value_error("`taper` must have one value per frame");
        }
        std::vector<double> r;
        {
          py::gil_scoped_release nogil;
          r = an::summed_power(x, w, h, t, n, fft_size);
        }
        darray out(r.size());
        std::copy(r.begin(), r.end(), out.mutable_data());
        return out;
      },
      py::arg("velocities"), py::arg("weights"), py::arg("taper"), py::arg("fft_size"),
      "sum_s w_s |FFT_M(taper * v_s)|^2 for k = 0..M/2 (M = fft_size, zero-padded).");

  a.def(
      "vacf",
      [](const py::array& velocities, const py::object& weights) {
        std::size_t t, n;
        const double* v = trajectory(velocities, "velocities", t, n);
        const double* w = atom_vector(weights, "weights", n);
        std::vector<double> r;
        {
          py::gil_scoped_release nogil;
          r = an::vacf(v, w, t, n);
        }
        darray out(r.size());
        std::copy(r.begin(), r.end(), out.mutable_data());
        return out;
      },
      py::arg("velocities"), py::arg("weights"),
      "Unnormalised VACF (T,) in (Angstrom/fs)^2, averaged over atoms (weighted) and xyz.");

  a.def(
      "rolling_pearson",
      [](const py::array& x, const py::array& y, std::size_t window) {
        const double* px = require<double>(x, "x", 1);
        const double* py_ = require<double>(y, "y", 1);
        const std::size_t n = static_cast<std::size_t>(x.shape(0));
        if (static_cast<std::size_t>(y.shape(0)) != n)
          throw py::value_error("`x` and `y` must have the same length");
        if (window < 2 || window > n) throw py::value_error("`window` must be in [2, len(x)]");
        darray out(n - window + 1);
        double* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          an::rolling_pearson(px, py_, n, window, o);
        }
        return out;
      },
      py::arg("x"), py::arg("y"), py::arg("window"));

  a.def(
      "fft",
      [](const py::array_t<std::complex<double>, py::array::c_style>& data, bool inverse) {
        if (data.ndim() != 1) throw py::value_error("`data` must be 1-D");
        std::vector<std::complex<double>> v(data.data(), data.data() + data.shape(0));
        {
          py::gil_scoped_release nogil;
          an::fft(v, inverse);
        }
        py::array_t<std::complex<double>> out(v.size());
        std::copy(v.begin(), v.end(), out.mutable_data());
        return out;
      },
      py::arg("data"), py::arg("inverse") = false,
      "Complex FFT of a power-of-two length (numpy.fft.fft convention; inverse unnormalised).");
}
