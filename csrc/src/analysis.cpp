// Trajectory analysis kernels; see analysis.hpp for the contracts and units.
#include "pymotor/analysis.hpp"
#include "pymotor/cpu_features.hpp"

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

constexpr double kPi = 3.14159265358979323846;
constexpr double kRadToDeg = 180.0 / kPi;

int n_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

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

// ---- FFT machinery: decimation in frequency, output in bit-reversed order ----------------
using cplx = std::complex<double>;

// Twiddles tw[h + j] = exp(-2 pi i j / (2h)) for h = 1, 2, 4, ..., M/2 and j < h. The
// levels below M/2 are subsamples of the top one (the same angles, bit for bit).
std::vector<cplx> make_twiddles(std::size_t m) {
  std::vector<cplx> tw(std::max<std::size_t>(m, 2));
  const std::size_t top = m / 2;
  for (std::size_t j = 0; j < top; ++j) {
    const double ang = -kPi * static_cast<double>(j) / static_cast<double>(top);
    tw[top + j] = cplx(std::cos(ang), std::sin(ang));
  }
  for (std::size_t h = 1; h < top; h <<= 1)
    for (std::size_t j = 0; j < h; ++j) tw[h + j] = tw[top + j * (top / h)];
  return tw;
}

// Two DIF stages at once (radix 2^2) on a[0 .. 4q): the stages of half-sizes 2q and q,
// with the same output order as two radix-2 passes but one pass over memory.
// With t = exp(-2 pi i j / 4q):  a0' = (a0 + a2) + (a1 + a3),
// a1' = ((a0 + a2) - (a1 + a3)) t^2,  a2' = ((a0 - a2) - i (a1 - a3)) t,
// a3' = ((a0 - a2) + i (a1 - a3)) t^3.
inline void dif_stage4(cplx* a, std::size_t q, const cplx* tw) {
  double* d = reinterpret_cast<double*>(a);
  const double* w1 = reinterpret_cast<const double*>(tw + 2 * q);  // exp(-2 pi i j / 4q)
  const double* w2 = reinterpret_cast<const double*>(tw + q);      // exp(-2 pi i j / 2q)
  for (std::size_t j = 0; j < q; ++j) {
    double* p0 = d + 2 * j;
    double* p1 = d + 2 * (j + q);
    double* p2 = d + 2 * (j + 2 * q);
    double* p3 = d + 2 * (j + 3 * q);
    const double s02r = p0[0] + p2[0], s02i = p0[1] + p2[1];
    const double d02r = p0[0] - p2[0], d02i = p0[1] - p2[1];
    const double s13r = p1[0] + p3[0], s13i = p1[1] + p3[1];
    const double d13r = p1[0] - p3[0], d13i = p1[1] - p3[1];
    const double t1r = w1[2 * j], t1i = w1[2 * j + 1];
    const double t2r = w2[2 * j], t2i = w2[2 * j + 1];
    const double t3r = t1r * t2r - t1i * t2i, t3i = t1r * t2i + t1i * t2r;
    p0[0] = s02r + s13r;
    p0[1] = s02i + s13i;
    const double ur = s02r - s13r, ui = s02i - s13i;
    p1[0] = ur * t2r - ui * t2i;
    p1[1] = ur * t2i + ui * t2r;
    const double vr = d02r + d13i, vi = d02i - d13r;  // (a0 - a2) - i (a1 - a3)
    p2[0] = vr * t1r - vi * t1i;
    p2[1] = vr * t1i + vi * t1r;
    const double xr = d02r - d13i, xi = d02i + d13r;  // (a0 - a2) + i (a1 - a3)
    p3[0] = xr * t3r - xi * t3i;
    p3[1] = xr * t3i + xi * t3r;
  }
}

constexpr std::size_t kFftBlock = 1u << 13;  // 8192 complex = 128 KiB stays in cache

void dif_iterative(cplx* a, std::size_t n, const cplx* tw) {
  std::size_t h = n / 2;
  for (; h >= 2; h /= 4)
    for (std::size_t start = 0; start < n; start += 2 * h) dif_stage4(a + start, h / 2, tw);
  if (h == 1) {  // an odd number of stages: the last one, twiddle 1
    double* d = reinterpret_cast<double*>(a);
    for (std::size_t s = 0; s < n; s += 2) {
      const double ur = d[2 * s], ui = d[2 * s + 1];
      const double vr = d[2 * s + 2], vi = d[2 * s + 3];
      d[2 * s] = ur + vr;
      d[2 * s + 1] = ui + vi;
      d[2 * s + 2] = ur - vr;
      d[2 * s + 3] = ui - vi;
    }
  }
}

// Cache-friendly DIF: one streaming radix-4 pass, then the four quarters recursively.
void dif_recursive(cplx* a, std::size_t n, const cplx* tw) {
  if (n <= kFftBlock) {
    dif_iterative(a, n, tw);
    return;
  }
  dif_stage4(a, n / 4, tw);
  for (int k = 0; k < 4; ++k) dif_recursive(a + k * (n / 4), n / 4, tw);
}

// rev[k]: k with its log2(m) bits reversed (m a power of two).
std::vector<std::uint32_t> bit_reversal(std::size_t m) {
  std::vector<std::uint32_t> rev(m, 0);
  int bits = 0;
  while ((std::size_t(1) << bits) < m) ++bits;
  for (std::size_t k = 1; k < m; ++k)  // reverse k >> 1, shift, put k's low bit on top
    rev[k] = (rev[k >> 1] >> 1) | (static_cast<std::uint32_t>(k & 1) << (bits - 1));
  return rev;
}

// ---- Lane-parallel FFT (summed_power) ------------------------------------------------------
// summed_power transforms kLanes complex signals (each a pair of real signals, Z = X + iY)
// at once with the radix-2^2 DIF above. Split-lane layout: point j of a group occupies
// kStride = 2 kLanes doubles (64 bytes, one cache line), the real parts of lanes
// 0..kLanes-1, then their imaginary parts. Every butterfly works on whole vectors of
// lanes with broadcast twiddles: no shuffles, and the twiddles are shared by the lanes.
// Each lane does the arithmetic of the scalar FFT, and the AVX2 build enables no FMA, so
// the SSE2 and AVX2 builds give the same bits.
constexpr int kLanes = 4;
constexpr std::size_t kStride = 2 * kLanes;
static_assert(kLanes == 4, "lanes_pair_power sums four lanes");
// GCC/Clang generic vectors: 2 doubles (SSE2, NEON) and 4 (AVX2). A kernel instantiated
// for vector type V handles the kLanes lanes of a point as kLanes / kWidth<V> chunks.
typedef double vec2_t __attribute__((vector_size(16), may_alias));
typedef double vec4_t __attribute__((vector_size(32), may_alias));
template <class V>
constexpr int kWidth = sizeof(V) / sizeof(double);
#define PYMOTOR_VEC(p) (*reinterpret_cast<V*>(p))

// Leaf size (points) of the cache-blocked recursion: 4096 x 64 bytes = 256 KiB.
constexpr std::size_t kLaneBlock = 4096;

// Radix-2^2 DIF step on the group a[0 .. 4q) (points), as dif_stage4.
template <class V>
[[gnu::always_inline]] inline void lanes_stage4(double* a, std::size_t q, const cplx* tw) {
  const cplx* w1 = tw + 2 * q;  // exp(-2 pi i j / 4q)
  const cplx* w2 = tw + q;      // exp(-2 pi i j / 2q)
  for (std::size_t j = 0; j < q; ++j) {
    const double t1r = w1[j].real(), t1i = w1[j].imag();
    const double t2r = w2[j].real(), t2i = w2[j].imag();
    const double t3r = t1r * t2r - t1i * t2i, t3i = t1r * t2i + t1i * t2r;
    for (int c = 0; c < kLanes; c += kWidth<V>) {
      double* p0 = a + kStride * j + c;
      double* p1 = p0 + kStride * q;
      double* p2 = p1 + kStride * q;
      double* p3 = p2 + kStride * q;
      const V a0r = PYMOTOR_VEC(p0), a0i = PYMOTOR_VEC(p0 + kLanes);
      const V a1r = PYMOTOR_VEC(p1), a1i = PYMOTOR_VEC(p1 + kLanes);
      const V a2r = PYMOTOR_VEC(p2), a2i = PYMOTOR_VEC(p2 + kLanes);
      const V a3r = PYMOTOR_VEC(p3), a3i = PYMOTOR_VEC(p3 + kLanes);
      const V s02r = a0r + a2r, s02i = a0i + a2i;
      const V d02r = a0r - a2r, d02i = a0i - a2i;
      const V s13r = a1r + a3r, s13i = a1i + a3i;
      const V d13r = a1r - a3r, d13i = a1i - a3i;
      PYMOTOR_VEC(p0) = s02r + s13r;
      PYMOTOR_VEC(p0 + kLanes) = s02i + s13i;
      const V ur = s02r - s13r, ui = s02i - s13i;
      PYMOTOR_VEC(p1) = ur * t2r - ui * t2i;
      PYMOTOR_VEC(p1 + kLanes) = ur * t2i + ui * t2r;
      const V vr = d02r + d13i, vi = d02i - d13r;  // (a0 - a2) - i (a1 - a3)
      PYMOTOR_VEC(p2) = vr * t1r - vi * t1i;
      PYMOTOR_VEC(p2 + kLanes) = vr * t1i + vi * t1r;
      const V xr = d02r - d13i, xi = d02i + d13r;  // (a0 - a2) + i (a1 - a3)
      PYMOTOR_VEC(p3) = xr * t3r - xi * t3i;
      PYMOTOR_VEC(p3 + kLanes) = xr * t3i + xi * t3r;
    }
  }
}

// First DIF step of a group whose upper half is zero padding (a2 = a3 = 0).
template <class V>
[[gnu::always_inline]] inline void lanes_stage4_padded(double* a, std::size_t q,
                                                       const cplx* tw) {
  const cplx* w1 = tw + 2 * q;
  const cplx* w2 = tw + q;
  for (std::size_t j = 0; j < q; ++j) {
    const double t1r = w1[j].real(), t1i = w1[j].imag();
    const double t2r = w2[j].real(), t2i = w2[j].imag();
    const double t3r = t1r * t2r - t1i * t2i, t3i = t1r * t2i + t1i * t2r;
    for (int c = 0; c < kLanes; c += kWidth<V>) {
      double* p0 = a + kStride * j + c;
      double* p1 = p0 + kStride * q;
      double* p2 = p1 + kStride * q;
      double* p3 = p2 + kStride * q;
      const V a0r = PYMOTOR_VEC(p0), a0i = PYMOTOR_VEC(p0 + kLanes);
      const V a1r = PYMOTOR_VEC(p1), a1i = PYMOTOR_VEC(p1 + kLanes);
      PYMOTOR_VEC(p0) = a0r + a1r;
      PYMOTOR_VEC(p0 + kLanes) = a0i + a1i;
      const V ur = a0r - a1r, ui = a0i - a1i;
      PYMOTOR_VEC(p1) = ur * t2r - ui * t2i;
      PYMOTOR_VEC(p1 + kLanes) = ur * t2i + ui * t2r;
      const V vr = a0r + a1i, vi = a0i - a1r;  // a0 - i a1
      PYMOTOR_VEC(p2) = vr * t1r - vi * t1i;
      PYMOTOR_VEC(p2 + kLanes) = vr * t1i + vi * t1r;
      const V xr = a0r - a1i, xi = a0i + a1r;  // a0 + i a1
      PYMOTOR_VEC(p3) = xr * t3r - xi * t3i;
      PYMOTOR_VEC(p3 + kLanes) = xr * t3i + xi * t3r;
    }
  }
}

// In-cache DIF of n points: radix-2^2 steps, a final radix-2 one for an odd stage count.
template <class V>
[[gnu::always_inline]] inline void lanes_dif_iterative(double* a, std::size_t n,
                                                       const cplx* tw) {
  std::size_t h = n / 2;
  for (; h >= 2; h /= 4)
    for (std::size_t start = 0; start < n; start += 2 * h)
      lanes_stage4<V>(a + kStride * start, h / 2, tw);
  if (h == 1) {
    for (std::size_t s = 0; s < n; s += 2) {
      for (int c = 0; c < kLanes; c += kWidth<V>) {
        double* p0 = a + kStride * s + c;
        double* p1 = p0 + kStride;
        const V ur = PYMOTOR_VEC(p0), ui = PYMOTOR_VEC(p0 + kLanes);
        const V vr = PYMOTOR_VEC(p1), vi = PYMOTOR_VEC(p1 + kLanes);
        PYMOTOR_VEC(p0) = ur + vr;
        PYMOTOR_VEC(p0 + kLanes) = ui + vi;
        PYMOTOR_VEC(p1) = ur - vr;
        PYMOTOR_VEC(p1 + kLanes) = ui - vi;
      }
    }
  }
}

// Cache-blocked DIF of n points, the depth-first order of dif_recursive without recursion:
// before leaf i (of `leaf` points) is transformed in cache, the streaming radix-2^2 steps
// of every enclosing sub-array that starts at it are done, largest first.
template <class V>
[[gnu::always_inline]] inline void lanes_dif_blocked(double* a, std::size_t n, const cplx* tw) {
  std::size_t leaf = n;
  while (leaf > kLaneBlock) leaf /= 4;
  for (std::size_t start = 0; start < n; start += leaf) {
    for (std::size_t size = n; size > leaf; size /= 4)
      if (start % size == 0) lanes_stage4<V>(a + kStride * start, size / 4, tw);
    lanes_dif_iterative<V>(a + kStride * start, leaf, tw);
  }
}

// Lane-summed weighted power of the untangled pair (p, partner), times 4:
// 4 |X_p|^2 = |Z_p + conj Z_partner|^2, 4 |Y_p|^2 = |Z_p - conj Z_partner|^2.
template <class V>
[[gnu::always_inline]] inline double lanes_pair_power(double* buf, std::size_t p,
                                                      std::size_t partner, const V* w_re,
                                                      const V* w_im) {
  alignas(32) double pw[kLanes];
  for (int c = 0; c < kLanes; c += kWidth<V>) {
    double* z = buf + kStride * p + c;
    double* o = buf + kStride * partner + c;
    const V zr = PYMOTOR_VEC(z), zi = PYMOTOR_VEC(z + kLanes);
    const V cr = PYMOTOR_VEC(o), ci = PYMOTOR_VEC(o + kLanes);
    const V xr = zr + cr, xi = zi - ci;
    const V yr = zr - cr, yi = zi + ci;
    PYMOTOR_VEC(pw + c) =
        w_re[c / kWidth<V>] * (xr * xr + xi * xi) + w_im[c / kWidth<V>] * (yr * yr + yi * yi);
  }
  return (pw[0] + pw[2]) + (pw[1] + pw[3]);  // the same order for every vector width
}

// One group of kLanes signal pairs, starting at real signal s0 of n_sig: gathers (taper
// applied, missing signals zero) into `buf` (m points, split-lane layout, 64-byte
// aligned), transforms, and adds 4 x its lane-summed weighted power to `acc` (see
// summed_power for the indexing).
template <class V>
[[gnu::always_inline]] inline void lanes_power_group_impl(
    const double* signals, const double* atom_weights, const double* taper,
    std::size_t n_frames, std::size_t n_sig, std::size_t s0, std::size_t m, const cplx* tw,
    double* buf, double* acc) {
  const std::size_t n_valid = std::min(kStride, n_sig - s0);
  // weights of the real (X) and imaginary (Y) signal of every lane, zero if missing
  constexpr int W = kWidth<V>;
  V w_re[kLanes / W], w_im[kLanes / W];
  for (int l = 0; l < kLanes; ++l) {
    const std::size_t c0 = 2 * l, c1 = 2 * l + 1;
    w_re[l / W][l % W] = c0 < n_valid ? (atom_weights ? atom_weights[(s0 + c0) / 3] : 1.0) : 0.0;
    w_im[l / W][l % W] = c1 < n_valid ? (atom_weights ? atom_weights[(s0 + c1) / 3] : 1.0) : 0.0;
  }
  for (std::size_t t = 0; t < n_frames; ++t) {
    const double h = taper ? taper[t] : 1.0;
    const double* row = signals + t * n_sig + s0;
    double* dst = buf + kStride * t;
    for (std::size_t c = 0; c < kStride; ++c)
      dst[(c & 1) * kLanes + c / 2] = c < n_valid ? h * row[c] : 0.0;
  }
  const bool padded_half = 2 * n_frames <= m && m >= 4;  // fuse the first step
  std::fill(buf + kStride * n_frames, buf + kStride * (padded_half ? m / 2 : m), 0.0);
  if (padded_half) {
    const std::size_t q = m / 4;
    lanes_stage4_padded<V>(buf, q, tw);
    for (int k = 0; k < 4; ++k) lanes_dif_blocked<V>(buf + kStride * k * q, q, tw);
  } else if (m >= 2) {
    lanes_dif_blocked<V>(buf, m, tw);
  }
  // Untangle Z = X + iY: X_k = (Z_k + conj Z_-k)/2, Y_k = (Z_k - conj Z_-k)/(2i). In
  // bit-reversed order the partner of position p in [2^b, 2^(b+1)) is 3*2^b - 1 - p; the
  // pair has the same power (real signals), kept once, at the even position.
  acc[0] += lanes_pair_power<V>(buf, 0, 0, w_re, w_im);
  if (m >= 2) acc[m / 2] += lanes_pair_power<V>(buf, 1, 1, w_re, w_im);
  for (std::size_t b = 2; b < m; b <<= 1)
    for (std::size_t p = b; p < 2 * b; p += 2)
      acc[p / 2] += lanes_pair_power<V>(buf, p, 3 * b - 1 - p, w_re, w_im);
}

#undef PYMOTOR_VEC

// Portable build (SSE2 on x86-64, NEON on arm64) and, on x86-64 with GCC/Clang, an AVX2
// build (target attribute) chosen at run time by select_lanes_power_group.
void lanes_power_group_default(const double* signals, const double* atom_weights,
                               const double* taper, std::size_t n_frames, std::size_t n_sig,
                               std::size_t s0, std::size_t m, const cplx* tw, double* buf,
                               double* acc) {
  lanes_power_group_impl<vec2_t>(signals, atom_weights, taper, n_frames, n_sig, s0, m, tw, buf,
                                 acc);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PYMOTOR_HAVE_AVX2_KERNEL 1
__attribute__((target("avx2"))) void lanes_power_group_avx2(
    const double* signals, const double* atom_weights, const double* taper,
    std::size_t n_frames, std::size_t n_sig, std::size_t s0, std::size_t m, const cplx* tw,
    double* buf, double* acc) {
  lanes_power_group_impl<vec4_t>(signals, atom_weights, taper, n_frames, n_sig, s0, m, tw, buf,
                                 acc);
}
#endif

using lanes_power_group_fn = void (*)(const double*, const double*, const double*, std::size_t,
                                      std::size_t, std::size_t, std::size_t, const cplx*,
                                      double*, double*);

lanes_power_group_fn select_lanes_power_group() {
#ifdef PYMOTOR_HAVE_AVX2_KERNEL
  if (cpu_has_avx2()) return lanes_power_group_avx2;
#endif
  return lanes_power_group_default;
}

void check_pow2(std::size_t m, const char* what) {
  if (m == 0 || (m & (m - 1)) != 0)
    throw std::invalid_argument(std::string("analysis: ") + what + " must be a power of two");
}

// Neumaier-compensated running sum.
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

void fft(std::vector<std::complex<double>>& data, bool inverse) {
  const std::size_t m = data.size();
  check_pow2(m, "FFT length");
  if (m == 1) return;
  if (inverse)
    for (auto& z : data) z = std::conj(z);
  const std::vector<cplx> tw = make_twiddles(m);
  dif_recursive(data.data(), m, tw.data());
  const std::vector<std::uint32_t> rev = bit_reversal(m);
  for (std::size_t k = 0; k < m; ++k)
    if (rev[k] > k) std::swap(data[k], data[rev[k]]);
  if (inverse)
    for (auto& z : data) z = std::conj(z);
}

std::vector<double> summed_power(const double* signals, const double* atom_weights,
                                 const double* taper, std::size_t n_frames, std::size_t n_atoms,
                                 std::size_t fft_size) {
  const std::size_t m = fft_size;
  check_pow2(m, "fft_size");
  if (n_frames > m) throw std::invalid_argument("analysis: fft_size must be >= n_frames");
  const std::size_t n_sig = 3 * n_atoms;
  const std::size_t group = 2 * kLanes;  // real signals per lane group
  const std::ptrdiff_t n_groups = static_cast<std::ptrdiff_t>((n_sig + group - 1) / group);
  const std::vector<cplx> tw = make_twiddles(m);
  const lanes_power_group_fn power_group = select_lanes_power_group();
  const int nt = n_threads();
  // Groups of kLanes signal pairs (see lanes_power_group_impl). Per thread: acc[i] = 4 x
  // summed power at the even bit-reversed position p = 2i, i.e. the frequency k < M/2
  // whose (log2 M - 1)-bit reversal is i; acc[M/2] at p = 1, frequency M/2.
  const std::size_t n_acc = m / 2 + 1;
  std::vector<double> partial(static_cast<std::size_t>(nt) * n_acc, 0.0);
#pragma omp parallel
  {
    double* acc = partial.data() + static_cast<std::size_t>(thread_id()) * n_acc;
    // m points of kStride doubles, aligned to 64 bytes (one cache line per point)
    std::vector<double> storage(kStride * m + 8);
    double* buf = storage.data();
    buf += (64 - reinterpret_cast<std::uintptr_t>(buf) % 64) % 64 / sizeof(double);
#pragma omp for schedule(static)  // equal work per group; fixed thread -> group map
    for (std::ptrdiff_t g = 0; g < n_groups; ++g)
      power_group(signals, atom_weights, taper, n_frames, n_sig,
                  group * static_cast<std::size_t>(g), m, tw.data(), buf, acc);
  }
  for (int k = 1; k < nt; ++k) {
    const double* ps = partial.data() + static_cast<std::size_t>(k) * n_acc;
    for (std::size_t i = 0; i < n_acc; ++i) partial[i] += ps[i];
  }
  std::vector<double> out(m / 2 + 1);
  const std::vector<std::uint32_t> rev = bit_reversal(m / 2);
  for (std::size_t k = 0; k < m / 2; ++k) out[k] = 0.25 * partial[rev[k]];
  out[m / 2] = 0.25 * partial[m / 2];  // for M = 1 this is frequency 0, p = 0
  return out;
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
