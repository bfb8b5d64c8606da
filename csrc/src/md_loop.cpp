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

ChunkResult run_chunk(State& s, Integrator& integ, int64_t n_steps, int64_t interval, double max_force,
                      FrameBuffer& out) {
  ChunkResult res;
  for (int64_t k = 0; k < n_steps; ++k) {
    try {
      integ.step(s);
    } catch (const std::exception& e) {
      res.failed = true;
      res.failed_step = s.step + 1;
      std::ostringstream msg;
      msg << "force evaluation failed at step " << s.step + 1 << " (t = " << s.time_fs + integ.timestep_fs()
          << " fs): " << e.what();
      res.error = msg.str();
      return res;
    }
    res.steps_done = k + 1;
    bool bad = false;
    std::ostringstream why;
    for (int r = 0; r < s.n_replicas && !bad; ++r)
      if (!std::isfinite(s.potential_energy[r])) {
        bad = true;
        why << "non-finite potential energy in replica " << r;
      }
    if (!bad) {
      double fmax = 0.0;
      for (double v : s.forces) {
        if (!std::isfinite(v)) { fmax = INFINITY; break; }
        fmax = std::max(fmax, std::abs(v));
      }
      if (fmax > max_force) {
        bad = true;
        why << "force component " << fmax << " eV/Angstrom exceeds max_force_eV_per_A=" << max_force;
      }
    }
    if (bad) {
      res.failed = true;
      res.failed_step = s.step;
      std::ostringstream msg;
      msg << "MD blew up at step " << s.step << " (t = " << s.time_fs << " fs): " << why.str();
      res.error = msg.str();
      return res;
    }
    if (s.step % interval == 0) out.record(s, integ);
  }
  return res;
}

}  // namespace pymotor
