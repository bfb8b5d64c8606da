// Neighbour lists for isolated molecules (no periodic boundaries).
//
// VerletList keeps all pairs within cutoff + skin and is rebuilt only when some atom has
// moved more than skin/2 since the last build (then no pair can have entered the cutoff
// sphere unseen). Builds use a cell list (binning with cells >= cutoff+skin) for large
// systems and the direct O(N^2) loop for small ones. Each step, pairs() returns the pairs
// actually within the cutoff, in both directions (i->j and j->i) as SchNetPack expects.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pymotor {

struct PairList {
  std::vector<int64_t> idx_i;  // global atom index (replica offset included)
  std::vector<int64_t> idx_j;
  size_t size() const { return idx_i.size(); }
};

// All pairs i<j with |r_i - r_j| < cutoff among n atoms (positions n*3), by cell list
// when use_cells is true, else by the direct loop. Indices are local (0..n-1).
void half_pairs_within(const double* positions, int n, double cutoff, bool use_cells,
                       std::vector<int64_t>& out_i, std::vector<int64_t>& out_j);

class VerletList {
 public:
  VerletList(double cutoff, double skin, int cell_list_min_atoms = 256);
  // Update for positions of R replicas x N atoms; rebuilds if needed. Returns true on rebuild.
  bool update(const double* positions, int n_replicas, int n_atoms);
  // Pairs within the cutoff for the current positions, both directions, global indices
  // (the full list SchNetPack's models take).
  const PairList& pairs(const double* positions);
  // Pairs i < j within the cutoff for the current positions, global indices, ordered by
  // replica (the half list of evaluators that use Newton's third law).
  const PairList& half_pairs(const double* positions);
  double cutoff() const { return cutoff_; }
  double skin() const { return skin_; }
  int64_t n_builds() const { return n_builds_; }
  void invalidate() { valid_ = false; }

 private:
  void build(const double* positions);
  double cutoff_, skin_;
  int cell_list_min_atoms_;
  int n_replicas_ = 0, n_atoms_ = 0;
  bool valid_ = false;
  int64_t n_builds_ = 0;
  std::vector<double> reference_;      // positions at the last build
  std::vector<int64_t> cand_i_, cand_j_;  // half list within cutoff+skin, global indices
  PairList within_, half_;
};

}  // namespace pymotor
