// Bindings of the MD engine: potentials, neighbour lists and the Simulation (state +
// integrator). numpy arrays in and out; the MD loop and model calls run without the GIL.
#include <ATen/Parallel.h>
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>

#include "pymotor/connectivity.hpp"
#include "pymotor/md_loop.hpp"
#include "pymotor/neighbors.hpp"
#include "pymotor/potential.hpp"
#include "pymotor/simulation.hpp"
#include "pymotor/torch_potential.hpp"
#include "pymotor/units.hpp"

namespace py = pybind11;
using namespace pymotor;

namespace {

using darray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using iarray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

std::vector<double> to_vector(const darray& a, size_t expected, const char* what) {
  if (static_cast<size_t>(a.size()) != expected)
    throw std::invalid_argument(std::string(what) + ": expected " + std::to_string(expected) + " values, got " +
                                std::to_string(a.size()));
  return std::vector<double>(a.data(), a.data() + a.size());
}

// The Python exception raised inside a force callback, kept (with its traceback) until the
// binding that started the C++ call holds the GIL again and re-raises it as itself. The
// callback runs on the thread that called into C++, so one slot per thread suffices.
thread_local std::shared_ptr<py::object> pending_exception;

// Re-raise a pending callback exception (GIL held).
void raise_pending() {
  if (!pending_exception) return;
  py::object exc = std::move(*pending_exception);
  pending_exception.reset();
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

// The pending exception as a Python object (None if there is none); clears it (GIL held).
py::object take_pending() {
  if (!pending_exception) return py::none();
  py::object exc = std::move(*pending_exception);
  pending_exception.reset();
  return exc;
}

// Energies and forces of (R, N, 3) positions through any potential, without the GIL.
py::tuple compute(Potential& p, const darray& positions) {
  if (positions.ndim() != 3 || positions.shape(2) != 3)
    throw std::invalid_argument("positions must be an (n_replicas, n_atoms, 3) array");
  const int R = static_cast<int>(positions.shape(0)), N = static_cast<int>(positions.shape(1));
  std::vector<double> x(positions.data(), positions.data() + positions.size()), e(R), f(x.size());
  try {
    py::gil_scoped_release release;
    p.compute(x.data(), R, N, e.data(), f.data());
  } catch (const std::exception&) {
    raise_pending();
    throw;
  }
  return py::make_tuple(to_numpy(e, {R}), to_numpy(f, {R, N, 3}));
}

// A Python function f(positions (R,N,3) Angstrom) -> (energy (R,) eV, forces (R,N,3) eV/Angstrom).
CallbackPotential::Function wrap_callback(py::function fn) {
  auto holder = std::make_shared<py::function>(std::move(fn));
  return [holder](const double* x, int R, int N, double* e, double* f) {
    py::gil_scoped_acquire gil;
    try {
      py::array_t<double> pos({R, N, 3});
      std::memcpy(pos.mutable_data(), x, sizeof(double) * R * N * 3);
      py::object res = (*holder)(pos);
      py::sequence seq = res.cast<py::sequence>();
      if (seq.size() != 2) throw std::runtime_error("the force callback must return (energy, forces)");
      darray en(seq[0]), fo(seq[1]);
      if (en.size() != R) throw std::runtime_error("the force callback returned " + std::to_string(en.size()) +
                                                   " energies for " + std::to_string(R) + " replicas");
      if (fo.size() != static_cast<py::ssize_t>(R) * N * 3)
        throw std::runtime_error("the force callback returned forces of the wrong size");
      std::memcpy(e, en.data(), sizeof(double) * R);
      std::memcpy(f, fo.data(), sizeof(double) * R * N * 3);
    } catch (py::error_already_set& err) {
      // keep the exception object for the caller; C++ sees "ExceptionType: message"
      std::string type = py::str(err.type().attr("__name__"));
      std::string value = py::str(err.value());
      py::object value_obj = err.value();
      if (err.trace() && !err.trace().is_none())  // keep the callback's frames in the traceback
        PyException_SetTraceback(value_obj.ptr(), err.trace().ptr());
      pending_exception = std::make_shared<py::object>(value_obj);
      throw std::runtime_error(type + ": " + value);
    }
  };
}

// Python face of pymotor::Simulation (csrc/include/pymotor/simulation.hpp): numpy in and
// out, the GIL released around the C++ work, a callback's Python exception handed back.
class PySimulation {
 public:
  PySimulation(std::shared_ptr<Potential> pot, const darray& positions, const darray& velocities, const darray& masses,
               const iarray& atomic_numbers, double timestep_fs, std::optional<double> temperature_K, double tdamp_fs,
               int chain_length, int n_substeps, int suzuki_yoshida_order, std::optional<double> n_dof) {
    if (positions.ndim() != 3 || positions.shape(2) != 3)
      throw std::invalid_argument("positions must be an (n_replicas, n_atoms, 3) array");
    const int R = static_cast<int>(positions.shape(0)), N = static_cast<int>(positions.shape(1));
    std::optional<ThermostatSettings> th;
    if (temperature_K) th = ThermostatSettings{*temperature_K, tdamp_fs, chain_length, n_substeps, suzuki_yoshida_order};
    sim_ = std::make_unique<Simulation>(
        std::move(pot), R, N, to_vector(positions, static_cast<size_t>(R) * N * 3, "positions"),
        to_vector(velocities, static_cast<size_t>(R) * N * 3, "velocities"), to_vector(masses, N, "masses"),
        std::vector<int64_t>(atomic_numbers.data(), atomic_numbers.data() + atomic_numbers.size()), timestep_fs, th,
        n_dof);
  }

  void compute_forces() {
    try {
      py::gil_scoped_release release;
      sim_->compute_forces();
    } catch (const std::exception&) {
      raise_pending();
      throw;
    }
  }

  void set_connectivity_guard(const darray& radii, const iarray& bonds, double break_factor, double form_factor,
                              bool stop) {
    sim_->set_connectivity_guard(to_vector(radii, state().n_atoms, "radii"),
                                 std::vector<int64_t>(bonds.data(), bonds.data() + bonds.size()), break_factor,
                                 form_factor, stop);
  }
  void set_bonds(int replica, const iarray& bonds) {
    if (!sim_->guard()) throw std::invalid_argument("no connectivity guard is set");
    sim_->guard()->set_bonds(replica, std::vector<int64_t>(bonds.data(), bonds.data() + bonds.size()));
  }
  py::object bonds(int replica) const {
    if (!sim_->guard()) return py::none();
    if (replica < 0 || replica >= state().n_replicas) throw std::invalid_argument("replica out of range");
    auto b = sim_->guard()->bonds(replica);
    return to_numpy(b, {static_cast<py::ssize_t>(b.size() / 2), 2});
  }

  py::dict run(int64_t n_steps, int64_t interval, double max_force) {
    FrameBuffer buf;
    ChunkResult res;
    {
      py::gil_scoped_release release;
      res = sim_->run(n_steps, interval, max_force, buf);
    }
    const int R = state().n_replicas, N = state().n_atoms, F = buf.n_frames;
    static const char* reasons[] = {"", "potential", "non-finite", "force-limit", "bond-change"};
    py::dict d;
    d["steps_done"] = res.steps_done;
    d["failed"] = res.failed;
    d["failed_step"] = res.failed_step;
    d["failed_replica"] = res.failed_replica;
    d["failed_atom"] = res.failed_atom;
    d["reason"] = reasons[static_cast<int>(res.reason)];
    d["error"] = res.error;
    d["exception"] = res.reason == Failure::potential ? take_pending() : py::none();
    const py::ssize_t E = static_cast<py::ssize_t>(res.bond_events.size());
    py::array_t<int64_t> ev({E, static_cast<py::ssize_t>(5)});
    py::array_t<double> evd({E});
    for (py::ssize_t k = 0; k < E; ++k) {
      const BondEvent& b = res.bond_events[k];
      int64_t* row = ev.mutable_data(k, 0);
      row[0] = b.step; row[1] = b.replica; row[2] = b.i; row[3] = b.j; row[4] = b.formed ? 1 : 0;
      evd.mutable_data()[k] = b.distance_A;
    }
    d["bond_events"] = ev;            // (E, 5): step, replica, i, j, formed
    d["bond_event_distance_A"] = evd;  // (E,)
    d["step"] = to_numpy(buf.step, {F});
    d["time_fs"] = to_numpy(buf.time_fs, {F});
    d["positions"] = to_numpy(buf.positions, {F, R, N, 3});
    d["velocities"] = to_numpy(buf.velocities, {F, R, N, 3});
    d["forces"] = to_numpy(buf.forces, {F, R, N, 3});
    d["potential_energy"] = to_numpy(buf.potential_energy, {F, R});
    d["kinetic_energy"] = to_numpy(buf.kinetic_energy, {F, R});
    d["conserved_energy"] = to_numpy(buf.conserved_energy, {F, R});
    return d;
  }

  const State& state() const { return sim_->state(); }
  State& state() { return sim_->state(); }
  py::array_t<double> vec3(const std::vector<double>& v) const {
    return to_numpy(v, {state().n_replicas, state().n_atoms, 3});
  }
  py::array_t<double> conserved_energy() const {
    std::vector<double> e(state().n_replicas);
    for (int r = 0; r < state().n_replicas; ++r) e[r] = sim_->conserved_energy(r);
    return to_numpy(e, {state().n_replicas});
  }
  py::array_t<double> kinetic_energy() const {
    std::vector<double> e(state().n_replicas);
    for (int r = 0; r < state().n_replicas; ++r) e[r] = state().kinetic_energy(r);
    return to_numpy(e, {state().n_replicas});
  }
  py::tuple thermostat_state() const {
    const NoseHooverChain* nhc = sim_->thermostat();
    if (!nhc) return py::make_tuple(py::none(), py::none());
    const int R = state().n_replicas, M = nhc->chain_length();
    auto* n = const_cast<NoseHooverChain*>(nhc);
    return py::make_tuple(to_numpy(n->eta(), {R, M}), to_numpy(n->p_eta(), {R, M}));
  }
  void set_thermostat_state(const darray& eta, const darray& p_eta) {
    NoseHooverChain* nhc = sim_->thermostat();
    if (!nhc) throw std::invalid_argument("this simulation has no thermostat");
    const size_t n = static_cast<size_t>(state().n_replicas) * nhc->chain_length();
    nhc->eta() = to_vector(eta, n, "eta");
    nhc->p_eta() = to_vector(p_eta, n, "p_eta");
  }

  std::unique_ptr<Simulation> sim_;
};

}  // namespace

void bind_md(py::module_& m) {
  m.attr("KB_EV_PER_K") = units::kB_eV_per_K;
  m.attr("AMU_A2_PER_FS2_IN_EV") = units::amu_A2_per_fs2_in_eV;
  m.def("set_num_threads", [](int n) { at::set_num_threads(n); }, py::arg("n"),
        "Set libtorch's intra-op thread count (1 is fastest for one small molecule).");
  m.def("get_num_threads", []() { return at::get_num_threads(); });

  m.def(
      "neighbor_pairs",
      [](const darray& positions, double cutoff, bool use_cells) {
        if (positions.ndim() != 2 || positions.shape(1) != 3)
          throw std::invalid_argument("positions must be an (n_atoms, 3) array");
        std::vector<int64_t> i, j;
        {
          py::gil_scoped_release release;
          half_pairs_within(positions.data(), static_cast<int>(positions.shape(0)), cutoff, use_cells, i, j);
        }
        const py::ssize_t P = static_cast<py::ssize_t>(i.size());
        return py::make_tuple(to_numpy(i, {P}), to_numpy(j, {P}));
      },
      py::arg("positions"), py::arg("cutoff"), py::arg("use_cells") = false,
      "Pairs i<j within cutoff (Angstrom) of an isolated system, by cell list or direct loop.");

  py::class_<Potential, std::shared_ptr<Potential>>(m, "Potential")
      .def("compute", &compute, py::arg("positions"),
           "Energies (R,) in eV and forces (R, N, 3) in eV/Angstrom for positions (R, N, 3) in Angstrom.")
      .def_property_readonly("name", &Potential::name);

  py::class_<HarmonicPotential, Potential, std::shared_ptr<HarmonicPotential>>(m, "HarmonicPotential")
      .def(py::init([](double k, const darray& c) {
             return std::make_shared<HarmonicPotential>(k, std::vector<double>(c.data(), c.data() + c.size()));
           }),
           py::arg("k_eV_per_A2"), py::arg("centers_A"));

  py::class_<LennardJonesPotential, Potential, std::shared_ptr<LennardJonesPotential>>(m, "LennardJonesPotential")
      .def(py::init<double, double, double, double>(), py::arg("epsilon_eV"), py::arg("sigma_A"),
           py::arg("cutoff_A"), py::arg("skin_A") = 0.5)
      .def_property_readonly("n_neighbor_builds", [](const LennardJonesPotential& p) { return p.neighbors().n_builds(); });

  py::class_<CallbackPotential, Potential, std::shared_ptr<CallbackPotential>>(m, "CallbackPotential")
      .def(py::init([](py::function fn, std::string name) {
             return std::make_shared<CallbackPotential>(wrap_callback(std::move(fn)), std::move(name));
           }),
           py::arg("function"), py::arg("name") = "callback");

  py::class_<TorchEvaluator, std::shared_ptr<TorchEvaluator>>(m, "TorchEvaluator")
      .def_property_readonly("kind", &TorchEvaluator::kind)
      .def_property_readonly("device", [](const TorchEvaluator& t) { return t.device().str(); });

  py::class_<TorchModel, TorchEvaluator, std::shared_ptr<TorchModel>>(m, "TorchModel")
      .def(py::init<const std::string&, const std::string&, bool>(), py::arg("path"), py::arg("device") = "cpu",
           py::arg("jit_optimize") = false, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("extra_files", [](const TorchModel& t) {
        py::dict d;
        for (auto& kv : t.extra_files()) d[py::str(kv.first)] = py::bytes(kv.second);
        return d;
      })
      .def_property_readonly("frozen", &TorchModel::frozen)
      .def_property_readonly("jit_optimize", &TorchModel::jit_optimize);

  py::class_<AOTIModel, TorchEvaluator, std::shared_ptr<AOTIModel>>(m, "AOTIModel")
      .def(py::init<const std::string&, const std::string&, double>(), py::arg("path"), py::arg("device"),
           py::arg("pad_offset"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("metadata", [](const AOTIModel& t) {
        py::dict d;
        for (auto& kv : t.metadata()) d[py::str(kv.first)] = py::str(kv.second);
        return d;
      });

  py::class_<TorchPotential, Potential, std::shared_ptr<TorchPotential>>(m, "TorchPotential")
      .def(py::init<std::shared_ptr<TorchEvaluator>, std::vector<int64_t>, double, double, double, double, double>(),
           py::arg("model"), py::arg("atomic_numbers"), py::arg("cutoff_A"), py::arg("skin_A"),
           py::arg("length_unit_A"), py::arg("energy_unit_eV"), py::arg("energy_offset_eV"))
      .def_property_readonly("n_neighbor_builds", [](const TorchPotential& p) { return p.neighbors().n_builds(); })
      .def_property_readonly("last_n_pairs", &TorchPotential::last_n_pairs);

  py::class_<PySimulation>(m, "Simulation")
      .def(py::init<std::shared_ptr<Potential>, const darray&, const darray&, const darray&, const iarray&, double,
                    std::optional<double>, double, int, int, int, std::optional<double>>(),
           py::arg("potential"), py::arg("positions"), py::arg("velocities"), py::arg("masses"),
           py::arg("atomic_numbers"), py::arg("timestep_fs"), py::arg("temperature_K") = py::none(),
           py::arg("tdamp_fs") = 100.0, py::arg("chain_length") = 3, py::arg("n_substeps") = 1,
           py::arg("suzuki_yoshida_order") = 3, py::arg("n_dof") = py::none())
      .def("compute_forces", &PySimulation::compute_forces)
      .def("set_connectivity_guard", &PySimulation::set_connectivity_guard, py::arg("radii_A"), py::arg("bonds"),
           py::arg("break_factor"), py::arg("form_factor"), py::arg("stop"),
           "Check covalent bonds every step: radii (N) Angstrom, bonds (B, 2) of the start structure.")
      .def("set_bonds", &PySimulation::set_bonds, py::arg("replica"), py::arg("bonds"))
      .def("bonds", &PySimulation::bonds, py::arg("replica"), "Current bonds (B, 2) of a replica (None without guard).")
      .def("run", &PySimulation::run, py::arg("n_steps"), py::arg("interval") = 1,
           py::arg("max_force_eV_per_A") = 1e3)
      .def_property("positions", [](const PySimulation& s) { return s.vec3(s.state().positions); },
                    [](PySimulation& s, const darray& a) { s.state().positions = to_vector(a, s.state().positions.size(), "positions"); })
      .def_property("velocities", [](const PySimulation& s) { return s.vec3(s.state().velocities); },
                    [](PySimulation& s, const darray& a) { s.state().velocities = to_vector(a, s.state().velocities.size(), "velocities"); })
      .def_property_readonly("forces", [](const PySimulation& s) { return s.vec3(s.state().forces); })
      .def_property_readonly("potential_energy", [](const PySimulation& s) { return to_numpy(s.state().potential_energy, {s.state().n_replicas}); })
      .def_property_readonly("kinetic_energy", &PySimulation::kinetic_energy)
      .def_property_readonly("conserved_energy", &PySimulation::conserved_energy)
      .def_property("step", [](const PySimulation& s) { return s.state().step; }, [](PySimulation& s, int64_t v) { s.state().step = v; })
      .def_property("time_fs", [](const PySimulation& s) { return s.state().time_fs; }, [](PySimulation& s, double v) { s.state().time_fs = v; })
      .def_property("timestep_fs", [](const PySimulation& s) { return s.sim_->integrator().timestep_fs(); },
                    [](PySimulation& s, double v) { s.sim_->integrator().set_timestep_fs(v); })
      .def_property_readonly("n_dof", [](const PySimulation& s) { return s.sim_->n_dof(); })
      .def("thermostat_state", &PySimulation::thermostat_state)
      .def("set_thermostat_state", &PySimulation::set_thermostat_state, py::arg("eta"), py::arg("p_eta"));
}
