#include "pymotor/md_loop.hpp"

#include <cmath>
#include <algorithm>
#include <exception>
#include <sstream>

namespace pymotor {

void FrameBuffer::clear() {
  n_frames = 0;
  step.clear();
  time_fs.clear();
  positions.clear();
  velocities.clear();
  forces.clear();
  potential_energy.clear();
  kinetic_energy.clear();
  conserved_energy.clear();
}

void FrameBuffer::record(const State& s, const Integrator& integ) {
  ++n_frames;
  step.push_back(s.step);
  time_fs.push_back(s.time_fs);
  positions.insert(positions.end(), s.positions.begin(), s.positions.end());
  velocities.insert(velocities.end(), s.velocities.begin(), s.velocities.end());
  forces.insert(forces.end(), s.forces.begin(), s.forces.end());
  for (int r = 0; r < s.n_replicas; ++r) {
    potential_energy.push_back(s.potential_energy[r]);
    kinetic_energy.push_back(s.kinetic_energy(r));
    conserved_energy.push_back(integ.conserved_energy(s, r));
  }
}

bool all_finite(const State& s, int& replica, int& atom, const char*& what) {
  // forces first: a non-finite force spreads to the velocities (and, through the
  // thermostat's scaling, to every atom) within the same step; it is the cause to name
  const std::vector<double>* arrays[3] = {&s.forces, &s.positions, &s.velocities};
  const char* names[3] = {"force", "position", "velocity"};
  const size_t n = static_cast<size_t>(s.n_replicas) * s.n_atoms * 3;
  for (int a = 0; a < 3; ++a) {
    const double* v = arrays[a]->data();
    double sum = 0.0;  // fast path: a NaN or inf anywhere makes the sum non-finite
    for (size_t k = 0; k < n; ++k) sum += v[k] * 0.0;
    if (std::isfinite(sum)) continue;
    for (size_t k = 0; k < n; ++k)
      if (!std::isfinite(v[k])) {
        replica = static_cast<int>(k / (3 * static_cast<size_t>(s.n_atoms)));
        atom = static_cast<int>((k / 3) % s.n_atoms);
        what = names[a];
        return false;
      }
  }
  return true;
}

namespace {

std::string where(const State& s, double t_fs, int replica) {
  std::ostringstream o;
  o << "step " << s.step << " (t = " << t_fs << " fs";
  if (s.n_replicas > 1 && replica >= 0) o << ", replica " << replica;
  o << ")";
  return o.str();
}

}  // namespace

ChunkResult run_chunk(State& s, Integrator& integ, int64_t n_steps, int64_t interval, double max_force,
                      FrameBuffer& out, ConnectivityGuard* guard, bool stop_on_bond_change) {
  ChunkResult res;
  const int N = s.n_atoms;
  for (int64_t k = 0; k < n_steps; ++k) {
    try {
      integ.step(s);
    } catch (const std::exception& e) {
      res.failed = true;
      res.reason = Failure::potential;
      res.exception = std::current_exception();
      res.failed_step = s.step + 1;
      std::ostringstream msg;
      msg << "force evaluation failed at step " << s.step + 1 << " (t = " << s.time_fs + integ.timestep_fs()
          << " fs): " << e.what();
      res.error = msg.str();
      return res;
    }
    res.steps_done = k + 1;
    std::ostringstream why;
    int replica = -1, atom = -1;
    const char* what = nullptr;
    for (int r = 0; r < s.n_replicas && replica < 0; ++r)
      if (!std::isfinite(s.potential_energy[r])) {
        replica = r;
        res.reason = Failure::non_finite;
        why << "non-finite potential energy (" << s.potential_energy[r] << " eV)";
      }
    if (replica < 0 && !all_finite(s, replica, atom, what)) {
      res.reason = Failure::non_finite;
      why << "non-finite " << what << " of atom " << atom;
    }
    if (replica < 0) {
      double fmax = 0.0;
      size_t kmax = 0;
      for (size_t q = 0; q < s.forces.size(); ++q)
        if (std::abs(s.forces[q]) > fmax) { fmax = std::abs(s.forces[q]); kmax = q; }
      if (fmax > max_force) {
        replica = static_cast<int>(kmax / (3 * static_cast<size_t>(N)));
        atom = static_cast<int>((kmax / 3) % N);
        res.reason = Failure::force_limit;
        why << "a force component on atom " << atom << " is " << fmax
            << " eV/Angstrom, above max_force_eV_per_A=" << max_force;
      }
    }
    if (res.reason == Failure::none && guard) {
      const size_t before = res.bond_events.size();
      if (guard->check(s, res.bond_events) > 0 && stop_on_bond_change) {
        const BondEvent& ev = res.bond_events[before];
        replica = ev.replica;
        atom = ev.i;
        res.reason = Failure::bond_change;
        why << (ev.formed ? "a new bond formed between atoms " : "the bond between atoms ") << ev.i << " and "
            << ev.j << (ev.formed ? "" : " broke") << " (" << ev.distance_A << " Angstrom)";
      }
    }
    if (res.reason != Failure::none) {
      res.failed = true;
      res.failed_step = s.step;
      res.failed_replica = replica;
      res.failed_atom = atom;
      res.error = std::string(res.reason == Failure::bond_change ? "connectivity changed at " : "MD blew up at ") +
                  where(s, s.time_fs, replica) + ": " + why.str();
      return res;
    }
    if (s.step % interval == 0) out.record(s, integ);
  }
  return res;
}

}  // namespace pymotor
