// The MD loop: runs a chunk of steps in C++ (no Python, GIL released by the binding) and
// records frames every `interval` steps into flat buffers that Python writes to disk.
#pragma once
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "pymotor/connectivity.hpp"
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

// What stopped a chunk early.
enum class Failure { none = 0, potential = 1, non_finite = 2, force_limit = 3, bond_change = 4 };

struct ChunkResult {
  int64_t steps_done = 0;
  bool failed = false;
  Failure reason = Failure::none;
  int64_t failed_step = -1;  // the MD step that failed (when failed)
  int failed_replica = -1;   // replica and atom that failed (-1 when not one atom's fault)
  int failed_atom = -1;
  std::string error;         // names the step (and replica/atom) at which the run stopped
  std::exception_ptr exception;  // the potential's own exception (reason == potential)
  std::vector<BondEvent> bond_events;  // connectivity changes seen in this chunk
};

// First non-finite value among positions, velocities and forces of a state: returns false
// and sets replica/atom/what when one is found (cost: 9N comparisons per replica).
bool all_finite(const State& s, int& replica, int& atom, const char*& what);

// Runs up to n_steps steps; records a frame after every step whose index is a multiple of
// interval. Stops early (failed=true) when the potential throws, a position, velocity,
// force or energy is non-finite, a force component exceeds max_force_eV_per_A, or (with a
// guard and stop_on_bond_change) a covalent bond breaks or forms; the offending step is not
// recorded. Bond events are collected in the result either way.
ChunkResult run_chunk(State& s, Integrator& integ, int64_t n_steps, int64_t interval,
                      double max_force_eV_per_A, FrameBuffer& out, ConnectivityGuard* guard = nullptr,
                      bool stop_on_bond_change = false);

}  // namespace pymotor
