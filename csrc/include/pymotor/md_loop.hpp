// The MD loop: runs a chunk of steps in C++ (no Python, GIL released by the binding) and
// records frames every `interval` steps into flat buffers that Python writes to disk.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pymotor/integrators.hpp"

namespace pymotor {

struct FrameBuffer {
  int n_frames = 0;
  std::vector<int64_t> step;               // (F)
  std::vector<double> time_fs;             // (F)
  std::vector<double> positions, velocities, forces;  // (F*R*N*3)
  std::vector<double> potential_energy, kinetic_energy, conserved_energy;  // (F*R)
  void clear();
  void record(const State& s, const Integrator& integ);
};

struct ChunkResult {
  int64_t steps_done = 0;
  bool failed = false;
  int64_t failed_step = -1;  // the MD step that failed (when failed)
  std::string error;  // names the step at which the run blew up
};

// Runs up to n_steps steps; records a frame after every step whose index is a multiple of
// interval. Stops early (failed=true) when an energy is non-finite or a force component
// exceeds max_force_eV_per_A; the offending step is not recorded.
ChunkResult run_chunk(State& s, Integrator& integ, int64_t n_steps, int64_t interval,
                      double max_force_eV_per_A, FrameBuffer& out);

}  // namespace pymotor
