// The FFT of pymotor's analysis kernels: a radix-2^2 decimation-in-frequency transform for
// fft(), and the lane-parallel SIMD transform behind summed_power() (and so vacf and the
// power spectrum): four signal pairs per transform, vector butterflies, an AVX2 build chosen
// at run time (cpu_features) and a portable SSE2/NEON default that give the same bits.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "pymotor/analysis.hpp"
#include "pymotor/threads.hpp"
#include "pymotor/cpu_features.hpp"

namespace pymotor::analysis {

namespace {

constexpr double kPi = 3.14159265358979323846;

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

// Radix-2^2 DIF step on the group a[0 .. 4q) (points), as dif_stage4. `upper_zero`: the upper
// half is zero padding (a2 = a3 = 0; the first step of a padded transform): it is not read.
template <class V, bool upper_zero = false>
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
      V s02r = a0r, s02i = a0i, d02r = a0r, d02i = a0i;  // a0 +- a2
      V s13r = a1r, s13i = a1i, d13r = a1r, d13i = a1i;  // a1 +- a3
      if constexpr (!upper_zero) {
        const V a2r = PYMOTOR_VEC(p2), a2i = PYMOTOR_VEC(p2 + kLanes);
        const V a3r = PYMOTOR_VEC(p3), a3i = PYMOTOR_VEC(p3 + kLanes);
        s02r = a0r + a2r, s02i = a0i + a2i;
        d02r = a0r - a2r, d02i = a0i - a2i;
        s13r = a1r + a3r, s13i = a1i + a3i;
        d13r = a1r - a3r, d13i = a1i - a3i;
      }
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
    lanes_stage4<V, true>(buf, q, tw);
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
}  // namespace

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

}  // namespace pymotor::analysis
