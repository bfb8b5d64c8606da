// The pybind11 module pymotor._core: numpy in, numpy out; C++ exceptions become Python errors.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_md(py::module_& m);        // bind_md.cpp: state, potentials, integrators, MD loop
void bind_analysis(py::module_& m);  // bind_analysis.cpp: trajectory analysis kernels
void bind_fast_schnet(py::module_& m);  // bind_fast_schnet.cpp: SchNet with tabulated filters
void bind_fast_painn(py::module_& m);   // bind_fast_painn.cpp: PaiNN with tabulated filters

PYBIND11_MODULE(_core, m) {
  m.doc() = "pymotor C++ core (internal units: Angstrom, fs, amu, eV)";
#ifdef PYMOTOR_TORCH_VERSION
  m.attr("TORCH_VERSION") = PYMOTOR_TORCH_VERSION;
#endif
  bind_md(m);
  bind_analysis(m);
  bind_fast_schnet(m);
  bind_fast_painn(m);
}
