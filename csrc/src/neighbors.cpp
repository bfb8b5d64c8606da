#include "pymotor/neighbors.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace pymotor {

namespace {

inline double dist2(const double* a, const double* b) {
  const double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  return dx * dx + dy * dy + dz * dz;
}

void direct_pairs(const double* x, int n, double cutoff, std::vector<int64_t>& oi, std::vector<int64_t>& oj) {
  const double c2 = cutoff * cutoff;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j)
      if (dist2(x + 3 * i, x + 3 * j) < c2) {
        oi.push_back(i);
        oj.push_back(j);
      }
}

// Binning into cubic cells of edge >= cutoff over the bounding box; each atom is compared
// with atoms in its own and the 26 neighbouring cells (each pair once).
void cell_pairs(const double* x, int n, double cutoff, std::vector<int64_t>& oi, std::vector<int64_t>& oj) {
  std::array<double, 3> lo{x[0], x[1], x[2]}, hi = lo;
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < 3; ++d) {
      lo[d] = std::min(lo[d], x[3 * i + d]);
      hi[d] = std::max(hi[d], x[3 * i + d]);
    }
  std::array<int64_t, 3> nc;
  for (int d = 0; d < 3; ++d) nc[d] = std::max<int64_t>(1, static_cast<int64_t>((hi[d] - lo[d]) / cutoff));
  // Keep the number of cells bounded for sparse systems.
  while (nc[0] * nc[1] * nc[2] > 8 * static_cast<int64_t>(n) + 64)
    for (int d = 0; d < 3; ++d) nc[d] = std::max<int64_t>(1, nc[d] / 2);
  std::array<double, 3> width;
  for (int d = 0; d < 3; ++d) width[d] = std::max((hi[d] - lo[d]) / nc[d], 1e-12);
  const int64_t ncell = nc[0] * nc[1] * nc[2];
  std::vector<int64_t> cell_of(n), head(ncell, -1), next(n, -1);
  std::vector<std::array<int64_t, 3>> coord(n);
  for (int i = 0; i < n; ++i) {
    for (int d = 0; d < 3; ++d)
      coord[i][d] = std::min<int64_t>(nc[d] - 1, static_cast<int64_t>((x[3 * i + d] - lo[d]) / width[d]));
    cell_of[i] = (coord[i][0] * nc[1] + coord[i][1]) * nc[2] + coord[i][2];
    next[i] = head[cell_of[i]];
    head[cell_of[i]] = i;
  }
  const double c2 = cutoff * cutoff;
  for (int i = 0; i < n; ++i) {
    for (int64_t a = std::max<int64_t>(0, coord[i][0] - 1); a <= std::min(nc[0] - 1, coord[i][0] + 1); ++a)
      for (int64_t b = std::max<int64_t>(0, coord[i][1] - 1); b <= std::min(nc[1] - 1, coord[i][1] + 1); ++b)
        for (int64_t c = std::max<int64_t>(0, coord[i][2] - 1); c <= std::min(nc[2] - 1, coord[i][2] + 1); ++c)
          for (int64_t j = head[(a * nc[1] + b) * nc[2] + c]; j >= 0; j = next[j])
            if (j > i && dist2(x + 3 * i, x + 3 * j) < c2) {
              oi.push_back(i);
              oj.push_back(j);
            }
  }
}

}  // namespace

void half_pairs_within(const double* positions, int n, double cutoff, bool use_cells,
                       std::vector<int64_t>& out_i, std::vector<int64_t>& out_j) {
  if (!(cutoff > 0.0)) throw std::invalid_argument("neighbour list: cutoff must be positive");
  if (use_cells)
    cell_pairs(positions, n, cutoff, out_i, out_j);
  else
    direct_pairs(positions, n, cutoff, out_i, out_j);
}

VerletList::VerletList(double cutoff, double skin, int cell_list_min_atoms)
    : cutoff_(cutoff), skin_(skin), cell_list_min_atoms_(cell_list_min_atoms) {
  if (!(cutoff > 0.0)) throw std::invalid_argument("VerletList: cutoff must be positive");
  if (!(skin >= 0.0)) throw std::invalid_argument("VerletList: skin must be >= 0");
}

void VerletList::build(const double* x) {
  cand_i_.clear();
  cand_j_.clear();
  std::vector<int64_t> li, lj;
  for (int r = 0; r < n_replicas_; ++r) {
    li.clear();
    lj.clear();
    const int64_t off = static_cast<int64_t>(r) * n_atoms_;
    half_pairs_within(x + off * 3, n_atoms_, cutoff_ + skin_, n_atoms_ >= cell_list_min_atoms_, li, lj);
    for (size_t p = 0; p < li.size(); ++p) {
      cand_i_.push_back(li[p] + off);
      cand_j_.push_back(lj[p] + off);
    }
  }
  reference_.assign(x, x + static_cast<size_t>(n_replicas_) * n_atoms_ * 3);
  valid_ = true;
  ++n_builds_;
}

bool VerletList::update(const double* x, int n_replicas, int n_atoms) {
  if (!valid_ || n_replicas != n_replicas_ || n_atoms != n_atoms_) {
    n_replicas_ = n_replicas;
    n_atoms_ = n_atoms;
    build(x);
    return true;
  }
  const double limit2 = 0.25 * skin_ * skin_;
  const size_t n = static_cast<size_t>(n_replicas_) * n_atoms_;
  for (size_t i = 0; i < n; ++i)
    if (dist2(x + 3 * i, reference_.data() + 3 * i) > limit2) {
      build(x);
      return true;
    }
  return false;
}

const PairList& VerletList::half_pairs(const double* x) {
  half_.idx_i.clear();
  half_.idx_j.clear();
  const double c2 = cutoff_ * cutoff_;
  for (size_t p = 0; p < cand_i_.size(); ++p) {
    const int64_t i = cand_i_[p], j = cand_j_[p];
    if (dist2(x + 3 * i, x + 3 * j) < c2) {
      half_.idx_i.push_back(i);
      half_.idx_j.push_back(j);
    }
  }
  return half_;
}

const PairList& VerletList::pairs(const double* x) {
  const PairList& h = half_pairs(x);
  within_.idx_i.resize(2 * h.size());
  within_.idx_j.resize(2 * h.size());
  for (size_t p = 0; p < h.size(); ++p) {  // (i, j) then (j, i)
    within_.idx_i[2 * p] = h.idx_i[p];
    within_.idx_j[2 * p] = h.idx_j[p];
    within_.idx_i[2 * p + 1] = h.idx_j[p];
    within_.idx_j[2 * p + 1] = h.idx_i[p];
  }
  return within_;
}

}  // namespace pymotor
