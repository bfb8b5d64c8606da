// Trajectory analysis kernels; see analysis.hpp for the contracts and units.
#include "pymotor/analysis.hpp"
#include "pymotor/threads.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif


namespace pymotor::analysis {

namespace {

using cplx = std::complex<double>;

constexpr double kPi = 3.14159265358979323846;
constexpr double kRadToDeg = 180.0 / kPi;


double weight_sum(const double* w, std::size_t n) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) s += w[i];
  if (!(s > 0.0)) throw std::invalid_argument("analysis: weights must have a positive sum");
  return s;
}

// Weighted centre of one frame (n atoms, xyz interleaved).
void weighted_centre(const double* x, const double* w, std::size_t n, double inv_wsum,
                     double* c) {
  double cx = 0.0, cy = 0.0, cz = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    cx += w[i] * x[3 * i];
    cy += w[i] * x[3 * i + 1];
    cz += w[i] * x[3 * i + 2];
  }
  c[0] = cx * inv_wsum;
  c[1] = cy * inv_wsum;
  c[2] = cz * inv_wsum;
}

// Largest eigenpair of a symmetric 4x4 matrix by cyclic Jacobi rotations.
void largest_eigenvector_4x4(double a[4][4], double q[4]) {
  double v[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
  double scale = 0.0;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) scale = std::max(scale, std::abs(a[i][j]));
  if (scale > 0.0) {
    for (int sweep = 0; sweep < 60; ++sweep) {
      double off = 0.0;
      for (int p = 0; p < 4; ++p)
        for (int r = p + 1; r < 4; ++r) off += a[p][r] * a[p][r];
      if (off <= 1e-36 * scale * scale) break;
      for (int p = 0; p < 4; ++p) {
        for (int r = p + 1; r < 4; ++r) {
          const double apr = a[p][r];
          if (std::abs(apr) <= 1e-300) continue;
          const double theta = (a[r][r] - a[p][p]) / (2.0 * apr);
          const double t = (theta >= 0 ? 1.0 : -1.0) /
                           (std::abs(theta) + std::sqrt(theta * theta + 1.0));
          const double c = 1.0 / std::sqrt(t * t + 1.0);
          const double s = t * c;
          for (int k = 0; k < 4; ++k) {  // A <- A J (columns p, r)
            const double akp = a[k][p], akr = a[k][r];
            a[k][p] = c * akp - s * akr;
            a[k][r] = s * akp + c * akr;
          }
          for (int k = 0; k < 4; ++k) {  // A <- J^T A (rows p, r)
            const double apk = a[p][k], ark = a[r][k];
            a[p][k] = c * apk - s * ark;
            a[r][k] = s * apk + c * ark;
          }
          for (int k = 0; k < 4; ++k) {  // V <- V J
            const double vkp = v[k][p], vkr = v[k][r];
            v[k][p] = c * vkp - s * vkr;
            v[k][r] = s * vkp + c * vkr;
          }
        }
      }
    }
  }
  int best = 0;
  for (int i = 1; i < 4; ++i)
    if (a[i][i] > a[best][best]) best = i;
  double norm = 0.0;
  for (int k = 0; k < 4; ++k) norm += v[k][best] * v[k][best];
  norm = std::sqrt(norm);
  for (int k = 0; k < 4; ++k) q[k] = v[k][best] / norm;
}

double det3(double a, double b, double c, double d, double e, double f, double g, double h,
            double i) {
  return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
}

// Largest eigenvector of Horn's traceless symmetric key matrix K, the QCP way (Theobald
// 2005): Newton on the characteristic polynomial from the upper bound (G_x + G_y)/2, then
// the eigenvector as the largest column of adj(K - lambda I). Returns false when the
// largest eigenvalue is (nearly) degenerate, where the adjugate is unreliable; the
// caller then uses Jacobi.
bool qcp_eigenvector(const double k[4][4], double g_sum, double q[4]) {
  const double e0 = 0.5 * g_sum;
  if (!(e0 > 0.0)) return false;
  double k2[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      double v = 0.0;
      for (int l = 0; l < 4; ++l) v += k[i][l] * k[l][j];
      k2[i][j] = v;
    }
  double tr2 = 0.0, tr3 = 0.0;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      tr2 += k[i][j] * k[i][j];
      tr3 += k2[i][j] * k[j][i];
    }
  const double det =
      k[0][0] * det3(k[1][1], k[1][2], k[1][3], k[2][1], k[2][2], k[2][3], k[3][1], k[3][2], k[3][3]) -
      k[0][1] * det3(k[1][0], k[1][2], k[1][3], k[2][0], k[2][2], k[2][3], k[3][0], k[3][2], k[3][3]) +
      k[0][2] * det3(k[1][0], k[1][1], k[1][3], k[2][0], k[2][1], k[2][3], k[3][0], k[3][1], k[3][3]) -
      k[0][3] * det3(k[1][0], k[1][1], k[1][2], k[2][0], k[2][1], k[2][2], k[3][0], k[3][1], k[3][2]);
  // det(lambda I - K) = lambda^4 + c2 lambda^2 + c1 lambda + c0 for traceless K
  const double c2 = -0.5 * tr2, c1 = -tr3 / 3.0, c0 = det;
  double lam = e0;
  for (int it = 0; it < 50; ++it) {
    const double l2 = lam * lam;
    const double p = (l2 + c2) * l2 + c1 * lam + c0;
    const double dp = 4.0 * l2 * lam + 2.0 * c2 * lam + c1;
    if (!(dp > 0.0)) break;
    const double step = p / dp;
    lam -= step;
    if (std::abs(step) <= 1e-14 * e0) break;
  }
  double m[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) m[i][j] = k[i][j] - (i == j ? lam : 0.0);
  // column c of adj(M): cofactors C_{c,r} (M symmetric, so rows and columns agree)
  double best[4] = {0, 0, 0, 0}, best_norm = 0.0;
  for (int c = 0; c < 4; ++c) {
    double col[4];
    for (int r = 0; r < 4; ++r) {
      double sub[9];
      int idx = 0;
      for (int i = 0; i < 4; ++i) {
        if (i == c) continue;
        for (int j = 0; j < 4; ++j) {
          if (j == r) continue;
          sub[idx++] = m[i][j];
        }
      }
      const double minor = det3(sub[0], sub[1], sub[2], sub[3], sub[4], sub[5], sub[6], sub[7], sub[8]);
      col[r] = ((r + c) % 2 == 0) ? minor : -minor;
    }
    const double nrm = col[0] * col[0] + col[1] * col[1] + col[2] * col[2] + col[3] * col[3];
    if (nrm > best_norm) {
      best_norm = nrm;
      for (int r = 0; r < 4; ++r) best[r] = col[r];
    }
  }
  const double scale3 = e0 * e0 * e0;
  if (!(best_norm > 1e-16 * scale3 * scale3)) return false;  // |col| < 1e-8 e0^3
  const double inv = 1.0 / std::sqrt(best_norm);
  for (int r = 0; r < 4; ++r) q[r] = best[r] * inv;
  return true;
}

struct CompSum {
  double s = 0.0, c = 0.0;
  void add(double x) {
    const double t = s + x;
    if (std::abs(s) >= std::abs(x))
      c += (s - t) + x;
    else
      c += (x - t) + s;
    s = t;
  }
};

inline double comp_diff(const CompSum& a, const CompSum& b) { return (a.s - b.s) + (a.c - b.c); }

}  // namespace

// ==========================================================================================

std::size_t next_pow2(std::size_t n) {
  std::size_t m = 1;
  while (m < n) m <<= 1;
  return m;
}

void pairwise_distances(const double* positions, std::size_t n_frames, std::size_t n_atoms,
                        double* out) {
  const std::size_t n_pairs = n_atoms * (n_atoms - 1) / 2;
  const std::ptrdiff_t T = static_cast<std::ptrdiff_t>(n_frames);
#pragma omp parallel
  {
    std::vector<double> xs(n_atoms), ys(n_atoms), zs(n_atoms);
#pragma omp for schedule(static)
    for (std::ptrdiff_t t = 0; t < T; ++t) {
      const double* x = positions + static_cast<std::size_t>(t) * n_atoms * 3;
      for (std::size_t i = 0; i < n_atoms; ++i) {
        xs[i] = x[3 * i];
        ys[i] = x[3 * i + 1];
        zs[i] = x[3 * i + 2];
      }
      double* o = out + static_cast<std::size_t>(t) * n_pairs;
      for (std::size_t i = 0; i + 1 < n_atoms; ++i) {
        const double xi = xs[i], yi = ys[i], zi = zs[i];
        const std::size_t len = n_atoms - i - 1;
        const double* xj = xs.data() + i + 1;
        const double* yj = ys.data() + i + 1;
        const double* zj = zs.data() + i + 1;
        std::size_t j = 0;
#if defined(__SSE2__)
        // Explicit 2-wide sqrt: without -fno-math-errno compilers keep sqrt scalar.
        const __m128d vxi = _mm_set1_pd(xi), vyi = _mm_set1_pd(yi), vzi = _mm_set1_pd(zi);
        for (; j + 2 <= len; j += 2) {
          const __m128d dx = _mm_sub_pd(_mm_loadu_pd(xj + j), vxi);
          const __m128d dy = _mm_sub_pd(_mm_loadu_pd(yj + j), vyi);
          const __m128d dz = _mm_sub_pd(_mm_loadu_pd(zj + j), vzi);
          const __m128d r2 =
              _mm_add_pd(_mm_add_pd(_mm_mul_pd(dx, dx), _mm_mul_pd(dy, dy)), _mm_mul_pd(dz, dz));
          _mm_storeu_pd(o + j, _mm_sqrt_pd(r2));
        }
#endif
        for (; j < len; ++j) {
          const double dx = xj[j] - xi, dy = yj[j] - yi, dz = zj[j] - zi;
          o[j] = std::sqrt(dx * dx + dy * dy + dz * dz);
        }
        o += len;
      }
    }
  }
}

void radius_of_gyration(const double* positions, const double* weights, std::size_t n_frames,
                        std::size_t n_atoms, double* out) {
  const double inv_wsum = 1.0 / weight_sum(weights, n_atoms);
  const std::ptrdiff_t T = static_cast<std::ptrdiff_t>(n_frames);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t t = 0; t < T; ++t) {
    const double* x = positions + static_cast<std::size_t>(t) * n_atoms * 3;
    double c[3];
    weighted_centre(x, weights, n_atoms, inv_wsum, c);
    double s = 0.0;
    for (std::size_t i = 0; i < n_atoms; ++i) {
      const double dx = x[3 * i] - c[0], dy = x[3 * i + 1] - c[1], dz = x[3 * i + 2] - c[2];
      s += weights[i] * (dx * dx + dy * dy + dz * dz);
    }
    out[t] = std::sqrt(std::max(0.0, s * inv_wsum));
  }
}

void dihedrals(const double* positions, std::size_t n_frames, std::size_t n_atoms,
               const std::int64_t* quadruples, std::size_t n_quadruples, double* out) {
  for (std::size_t q = 0; q < 4 * n_quadruples; ++q)
    if (quadruples[q] < 0 || static_cast<std::size_t>(quadruples[q]) >= n_atoms)
      throw std::out_of_range("analysis: dihedral atom index out of range");
  const std::ptrdiff_t T = static_cast<std::ptrdiff_t>(n_frames);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t t = 0; t < T; ++t) {
    const double* x = positions + static_cast<std::size_t>(t) * n_atoms * 3;
    double* o = out + static_cast<std::size_t>(t) * n_quadruples;
    for (std::size_t q = 0; q < n_quadruples; ++q) {
      const double* p0 = x + 3 * quadruples[4 * q];
      const double* p1 = x + 3 * quadruples[4 * q + 1];
      const double* p2 = x + 3 * quadruples[4 * q + 2];
      const double* p3 = x + 3 * quadruples[4 * q + 3];
      double b1[3], b2[3], b3[3];
      for (int k = 0; k < 3; ++k) {
        b1[k] = p1[k] - p0[k];
        b2[k] = p2[k] - p1[k];
        b3[k] = p3[k] - p2[k];
      }
      const double n1[3] = {b1[1] * b2[2] - b1[2] * b2[1], b1[2] * b2[0] - b1[0] * b2[2],
                            b1[0] * b2[1] - b1[1] * b2[0]};
      const double n2[3] = {b2[1] * b3[2] - b2[2] * b3[1], b2[2] * b3[0] - b2[0] * b3[2],
                            b2[0] * b3[1] - b2[1] * b3[0]};
      const double b2norm = std::sqrt(b2[0] * b2[0] + b2[1] * b2[1] + b2[2] * b2[2]);
      const double y = b2norm * (b1[0] * n2[0] + b1[1] * n2[1] + b1[2] * n2[2]);
      const double xx = n1[0] * n2[0] + n1[1] * n2[1] + n1[2] * n2[2];
      o[q] = std::atan2(y, xx) * kRadToDeg;
    }
  }
}

void kabsch_rotation(const double* x, const double* y, const double* w, std::size_t n,
                     double* r) {
  double s[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  double g_sum = 0.0;  // sum_i w_i (|x_i|^2 + |y_i|^2): twice an upper bound of the eigenvalue
  for (std::size_t i = 0; i < n; ++i) {
    const double wi = w ? w[i] : 1.0;
    for (int a = 0; a < 3; ++a) {
      const double wx = wi * x[3 * i + a];
      g_sum += wx * x[3 * i + a] + wi * y[3 * i + a] * y[3 * i + a];
      for (int b = 0; b < 3; ++b) s[a][b] += wx * y[3 * i + b];
    }
  }
  const double sxx = s[0][0], sxy = s[0][1], sxz = s[0][2];
  const double syx = s[1][0], syy = s[1][1], syz = s[1][2];
  const double szx = s[2][0], szy = s[2][1], szz = s[2][2];
  double k[4][4] = {
      {sxx + syy + szz, syz - szy, szx - sxz, sxy - syx},
      {syz - szy, sxx - syy - szz, sxy + syx, szx + sxz},
      {szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy},
      {sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz},
  };
  double q[4];
  if (!qcp_eigenvector(k, g_sum, q)) largest_eigenvector_4x4(k, q);
  const double q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3];
  r[0] = q0 * q0 + q1 * q1 - q2 * q2 - q3 * q3;
  r[1] = 2.0 * (q1 * q2 - q0 * q3);
  r[2] = 2.0 * (q1 * q3 + q0 * q2);
  r[3] = 2.0 * (q1 * q2 + q0 * q3);
  r[4] = q0 * q0 - q1 * q1 + q2 * q2 - q3 * q3;
  r[5] = 2.0 * (q2 * q3 - q0 * q1);
  r[6] = 2.0 * (q1 * q3 - q0 * q2);
  r[7] = 2.0 * (q2 * q3 + q0 * q1);
  r[8] = q0 * q0 - q1 * q1 - q2 * q2 + q3 * q3;
}

void align_accumulate(const double* positions, const double* weights, std::size_t n_frames,
                      std::size_t n_atoms, const double* reference, double* sum_dev,
                      double* sum_sq_dev) {
  const double inv_wsum = 1.0 / weight_sum(weights, n_atoms);
  const std::size_t n3 = 3 * n_atoms;
  const int nt = n_threads();
  std::vector<double> partial(static_cast<std::size_t>(nt) * 2 * n3, 0.0);
  const std::ptrdiff_t T = static_cast<std::ptrdiff_t>(n_frames);
#pragma omp parallel
  {
    double* my_sum = partial.data() + static_cast<std::size_t>(thread_id()) * 2 * n3;
    double* my_sq = my_sum + n3;
    std::vector<double> xc(n3);
#pragma omp for schedule(static)
    for (std::ptrdiff_t t = 0; t < T; ++t) {
      const double* x = positions + static_cast<std::size_t>(t) * n3;
      double c[3];
      weighted_centre(x, weights, n_atoms, inv_wsum, c);
      for (std::size_t i = 0; i < n_atoms; ++i)
        for (int a = 0; a < 3; ++a) xc[3 * i + a] = x[3 * i + a] - c[a];
      double r[9];
      kabsch_rotation(xc.data(), reference, weights, n_atoms, r);
      for (std::size_t i = 0; i < n_atoms; ++i) {
        const double px = xc[3 * i], py = xc[3 * i + 1], pz = xc[3 * i + 2];
        const double d0 = r[0] * px + r[1] * py + r[2] * pz - reference[3 * i];
        const double d1 = r[3] * px + r[4] * py + r[5] * pz - reference[3 * i + 1];
        const double d2 = r[6] * px + r[7] * py + r[8] * pz - reference[3 * i + 2];
        my_sum[3 * i] += d0;
        my_sum[3 * i + 1] += d1;
        my_sum[3 * i + 2] += d2;
        my_sq[3 * i] += d0 * d0;
        my_sq[3 * i + 1] += d1 * d1;
        my_sq[3 * i + 2] += d2 * d2;
      }
    }
  }
  for (int k = 0; k < nt; ++k) {  // fixed order: deterministic for a given thread count
    const double* ps = partial.data() + static_cast<std::size_t>(k) * 2 * n3;
    for (std::size_t j = 0; j < n3; ++j) {
      sum_dev[j] += ps[j];
      sum_sq_dev[j] += ps[n3 + j];
    }
  }
}

RmsfResult rmsf(const double* positions, const double* weights, std::size_t n_frames,
                std::size_t n_atoms, int max_iter, double tol) {
  if (n_frames == 0 || n_atoms == 0) throw std::invalid_argument("analysis: empty trajectory");
  if (max_iter < 1) throw std::invalid_argument("analysis: max_iter must be >= 1");
  const std::size_t n3 = 3 * n_atoms;
  const double wsum = weight_sum(weights, n_atoms);
  const double inv_t = 1.0 / static_cast<double>(n_frames);

  auto centred = [&](const double* x) {
    std::vector<double> out(x, x + n3);
    double c[3];
    weighted_centre(x, weights, n_atoms, 1.0 / wsum, c);
    for (std::size_t i = 0; i < n_atoms; ++i)
      for (int a = 0; a < 3; ++a) out[3 * i + a] -= c[a];
    return out;
  };

  RmsfResult res;
  std::vector<double> ref = centred(positions);  // frame 0, as AverageStructure(ref_frame=0)
  std::vector<double> sum(n3), sq(n3), avg(n3);
  auto pass = [&]() {
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(sq.begin(), sq.end(), 0.0);
    align_accumulate(positions, weights, n_frames, n_atoms, ref.data(), sum.data(), sq.data());
    for (std::size_t j = 0; j < n3; ++j) avg[j] = ref[j] + sum[j] * inv_t;
  };
  pass();  // the average structure after alignment to frame 0
  for (int it = 1; it <= max_iter; ++it) {
    ref = centred(avg.data());
    pass();
    double change = 0.0;
    for (std::size_t i = 0; i < n_atoms; ++i) {
      double d2 = 0.0;
      for (int a = 0; a < 3; ++a) {
        const double m = sum[3 * i + a] * inv_t;
        d2 += m * m;
      }
      change += weights[i] * d2;
    }
    res.iterations = it;
    res.last_change = std::sqrt(change / wsum);
    if (res.last_change < tol) break;
  }
  res.rmsf.assign(n_atoms, 0.0);
  for (std::size_t i = 0; i < n_atoms; ++i) {
    double v = 0.0;
    for (int a = 0; a < 3; ++a) {
      const double m = sum[3 * i + a] * inv_t;
      v += sq[3 * i + a] * inv_t - m * m;
    }
    res.rmsf[i] = std::sqrt(std::max(0.0, v));
  }
  res.average = avg;
  return res;
}

std::vector<double> vacf(const double* velocities, const double* atom_weights,
                         std::size_t n_frames, std::size_t n_atoms) {
  if (n_frames == 0 || n_atoms == 0) throw std::invalid_argument("analysis: empty trajectory");
  const std::size_t m = next_pow2(2 * n_frames);
  const std::vector<double> half =
      summed_power(velocities, atom_weights, nullptr, n_frames, n_atoms, m);
  std::vector<cplx> full(m);
  for (std::size_t k = 0; k <= m / 2; ++k) full[k] = cplx(half[k], 0.0);
  for (std::size_t k = m / 2 + 1; k < m; ++k) full[k] = cplx(half[m - k], 0.0);
  fft(full, /*inverse=*/true);
  const double wsum = atom_weights ? weight_sum(atom_weights, n_atoms)
                                   : static_cast<double>(n_atoms);
  std::vector<double> out(n_frames);
  for (std::size_t tau = 0; tau < n_frames; ++tau)
    out[tau] = full[tau].real() /
               (static_cast<double>(m) * static_cast<double>(n_frames - tau) * 3.0 * wsum);
  return out;
}

void rolling_pearson(const double* x, const double* y, std::size_t n, std::size_t window,
                     double* out) {
  if (window < 2 || window > n)
    throw std::invalid_argument("analysis: window must be in [2, len(x)]");
  const double x0 = x[0], y0 = y[0];
  CompSum lead[5], trail[5];
  auto add = [&](CompSum* s, std::size_t t) {
    const double a = x[t] - x0, b = y[t] - y0;
    s[0].add(a);
    s[1].add(b);
    s[2].add(a * a);
    s[3].add(b * b);
    s[4].add(a * b);
  };
  for (std::size_t t = 0; t < window; ++t) add(lead, t);
  const double inv_w = 1.0 / static_cast<double>(window);
  const double tiny = 64.0 * std::numeric_limits<double>::epsilon();
  for (std::size_t k = 0;; ++k) {
    const double sx = comp_diff(lead[0], trail[0]) * inv_w;
    const double sy = comp_diff(lead[1], trail[1]) * inv_w;
    const double sxx = comp_diff(lead[2], trail[2]) * inv_w;
    const double syy = comp_diff(lead[3], trail[3]) * inv_w;
    const double sxy = comp_diff(lead[4], trail[4]) * inv_w;
    const double vx = sxx - sx * sx, vy = syy - sy * sy, cxy = sxy - sx * sy;
    if (vx <= tiny * sxx || vy <= tiny * syy) {
      out[k] = std::numeric_limits<double>::quiet_NaN();
    } else {
      out[k] = std::clamp(cxy / std::sqrt(vx * vy), -1.0, 1.0);
    }
    if (k + window >= n) break;
    add(lead, k + window);
    add(trail, k);
  }
}

}  // namespace pymotor::analysis
