// Connectivity guard: notices, every step, when a covalent bond of the reference structure
// breaks or a new one forms. The criterion (covalent radii, break and form factors) is
// defined once in pymotor/connectivity.py, which passes the radii and factors in.
#pragma once
#include <cstdint>
#include <vector>

#include "pymotor/state.hpp"

namespace pymotor {

struct BondEvent {
  int64_t step;
  int replica;
  int i, j;          // atoms, i < j
  bool formed;       // true: a new bond formed; false: a bond of the reference broke
  double distance_A;
};

class ConnectivityGuard {
 public:
  // radii (N) in Angstrom; bonds (B*2, i<j) present at the start (the same for every replica
  // unless set_bonds is called); a bond breaks above break_factor*(r_i+r_j), a new one forms
  // below form_factor*(r_i+r_j).
  ConnectivityGuard(int n_replicas, std::vector<double> radii, const std::vector<int64_t>& bonds,
                    double break_factor, double form_factor);
  // Replace replica r's current bonds (e.g. from a restart state).
  void set_bonds(int replica, const std::vector<int64_t>& bonds);
  // Current bonds of replica r as (i, j) pairs, flattened.
  std::vector<int64_t> bonds(int replica) const;
  // Compare the state with the current bonds; appends events (and updates the bonds).
  // Returns the number of events found. Cost: N(N-1)/2 distances per replica.
  int check(const State& s, std::vector<BondEvent>& events);
  int n_atoms() const { return N_; }

 private:
  int R_, N_;
  std::vector<double> radii_;
  double break2_, form2_;   // squared factors
  std::vector<char> bonded_;  // (R*N*N) upper triangle used
};

}  // namespace pymotor
