// Small dense kernels shared by the fast evaluators (fast_schnet.cpp, fast_painn.cpp): dense
// layers as in torch.nn.Linear, row-major GEMMs (a generic loop and a register-blocked AVX2+FMA
// kernel picked at run time through cpu_features.hpp), the activations (shifted softplus, SiLU)
// with their derivatives (library calls, and a vectorised inlined variant), and packed layers.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "pymotor/cpu_features.hpp"

namespace pymotor {

enum class Activation : int { None = 0, ShiftedSoftplus = 1, SiLU = 2 };

// A dense layer y = act(W x + b): W is (n_out x n_in) row-major as in torch.nn.Linear.
struct DenseLayer {
  int n_in = 0, n_out = 0;
  std::vector<double> weight;  // n_out * n_in
  std::vector<double> bias;    // n_out or empty (no bias)
  Activation activation = Activation::None;
};

namespace dense {

// std::allocator with 64-byte (cache-line, zmm) alignment: the kernels' rows and panels are multiples
// of 64 bytes apart, so with an aligned base no vector load or store straddles two cache lines.
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::size_t kAlign = 64;
  AlignedAllocator() noexcept = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kAlign))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(kAlign)); }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const noexcept { return false; }
};
template <typename T>
using avector = std::vector<T, AlignedAllocator<T>>;

constexpr double kLn2 = 0.69314718055994530942;

// ---- small dense kernels ------------------------------------------------------------------
// C[M x N] (+)= A[M x K] * B[K x N], all row-major and contiguous (lda = K, ldb = ldc = N).

template <typename T>
void gemm_generic(int M, int N, int K, const T* A, const T* B, T* C, bool acc) {
  for (int i = 0; i < M; ++i) {
    T* c = C + static_cast<size_t>(i) * N;
    if (!acc) std::fill(c, c + N, T(0));
    const T* a = A + static_cast<size_t>(i) * K;
    for (int k = 0; k < K; ++k) {
      const T av = a[k];
      const T* b = B + static_cast<size_t>(k) * N;
      for (int n = 0; n < N; ++n) c[n] += av * b[n];
    }
  }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define PYMOTOR_HAVE_AVX2_KERNEL 1
// A register-blocked kernel (6 rows x 2 vectors of C in 12 ymm registers, as BLIS' Haswell
// kernel), compiled for AVX2+FMA and chosen at run time when the CPU has them.
template <typename T>
__attribute__((target("avx2,fma"))) void gemm_avx2(int M, int N, int K, const T* A, const T* B, T* C, bool acc) {
  typedef T V __attribute__((vector_size(32)));
  constexpr int W = 32 / sizeof(T);
  constexpr int NB = 2 * W;
  constexpr int MR = 6;
  // unaligned vector loads/stores (no lambdas: they would not inherit the target attribute)
#define PYMOTOR_LOAD(p) (*reinterpret_cast<const VU*>(p))
#define PYMOTOR_STORE(p, v) (*reinterpret_cast<VU*>(p) = (v))
  typedef T VU __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));
  const int n_full = (N / NB) * NB;
  int i = 0;
  for (; i + MR <= M; i += MR) {
    for (int n = 0; n < n_full; n += NB) {
      V c[MR][2];
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < 2; ++h)
          c[r][h] = acc ? PYMOTOR_LOAD(C + static_cast<size_t>(i + r) * N + n + W * h) : V{};
      const T* a = A + static_cast<size_t>(i) * K;
      const T* b = B + n;
      for (int k = 0; k < K; ++k) {
        const V b0 = PYMOTOR_LOAD(b + static_cast<size_t>(k) * N), b1 = PYMOTOR_LOAD(b + static_cast<size_t>(k) * N + W);
        for (int r = 0; r < MR; ++r) {
          const V av = V{} + a[static_cast<size_t>(r) * K + k];
          c[r][0] += av * b0;
          c[r][1] += av * b1;
        }
      }
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < 2; ++h) PYMOTOR_STORE(C + static_cast<size_t>(i + r) * N + n + W * h, c[r][h]);
    }
  }
  // remaining rows (vectorised one row at a time) and columns (scalar)
  for (int ii = i; ii < M; ++ii)
    for (int n = 0; n < n_full; n += NB) {
      V c0 = acc ? PYMOTOR_LOAD(C + static_cast<size_t>(ii) * N + n) : V{};
      V c1 = acc ? PYMOTOR_LOAD(C + static_cast<size_t>(ii) * N + n + W) : V{};
      for (int k = 0; k < K; ++k) {
        const V av = V{} + A[static_cast<size_t>(ii) * K + k];
        c0 += av * PYMOTOR_LOAD(B + static_cast<size_t>(k) * N + n);
        c1 += av * PYMOTOR_LOAD(B + static_cast<size_t>(k) * N + n + W);
      }
      PYMOTOR_STORE(C + static_cast<size_t>(ii) * N + n, c0);
      PYMOTOR_STORE(C + static_cast<size_t>(ii) * N + n + W, c1);
    }
  if (n_full < N)
    for (int ii = 0; ii < M; ++ii)
      for (int n = n_full; n < N; ++n) {
        T s = acc ? C[static_cast<size_t>(ii) * N + n] : T(0);
        for (int k = 0; k < K; ++k) s += A[static_cast<size_t>(ii) * K + k] * B[static_cast<size_t>(k) * N + n];
        C[static_cast<size_t>(ii) * N + n] = s;
      }
#undef PYMOTOR_LOAD
#undef PYMOTOR_STORE
}

#endif

template <typename T>
void gemm(int M, int N, int K, const T* A, const T* B, T* C, bool acc) {
  if (M <= 0 || N <= 0) return;
#ifdef PYMOTOR_HAVE_AVX2_KERNEL
  if (cpu_has_avx2_fma()) return gemm_avx2<T>(M, N, K, A, B, C, acc);
#endif
  gemm_generic<T>(M, N, K, A, B, C, acc);
}

// y = act(z) in place; d = dy/dz (unless act is None, then d is untouched).
template <typename T>
void activate(Activation act, T* z, T* d, size_t n) {
  if (act == Activation::ShiftedSoftplus) {
    for (size_t k = 0; k < n; ++k) {
      const T x = z[k];
      const T e = std::exp(-std::abs(x));
      const T inv = T(1) / (T(1) + e);
      d[k] = x >= T(0) ? inv : e * inv;  // sigmoid(x)
      z[k] = std::max(x, T(0)) + std::log1p(e) - T(kLn2);
    }
  } else if (act == Activation::SiLU) {
    for (size_t k = 0; k < n; ++k) {
      const T x = z[k];
      const T e = std::exp(-std::abs(x));
      const T inv = T(1) / (T(1) + e);
      const T s = x >= T(0) ? inv : e * inv;
      d[k] = s * (T(1) + x * (T(1) - s));
      z[k] = x * s;
    }
  }
}

// The same activations, VB bytes (32: AVX2, 64: AVX-512) at a time without library calls (inlined
// into the vector builds of the evaluators): exp(-|x|) by Cody-Waite reduction and a Taylor
// polynomial on |r| <= ln2/2, log1p(e) for e in (0, 1] by 2 atanh(e / (2 + e)). Relative errors
// ~1e-8 (float) and ~1e-16 (double), below the rounding of the dtype.
template <typename T, int VB = 32>
__attribute__((always_inline)) inline void activate_fast(Activation act, T* z, T* d, size_t n) {
  if (act == Activation::None) return;
  typedef T V __attribute__((vector_size(VB)));
  typedef T VU __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> I;
  typedef I VI __attribute__((vector_size(VB)));
  constexpr int L = VB / sizeof(T);
  constexpr bool single = sizeof(T) == 4;
  constexpr int n_exp = single ? 7 : 13;   // Taylor degree of exp(r)
  constexpr int n_log = single ? 7 : 16;   // terms of the atanh series
  constexpr int mant = single ? 23 : 52;
  constexpr I bias = single ? 127 : 1023;
  const T amax = single ? T(80) : T(700);
  size_t k = 0;
  for (; k + L <= n; k += L) {
    const V x = *reinterpret_cast<const VU*>(z + k);
    V a = x < V{} ? -x : x;
    a = a > amax ? V{} + amax : a;
    const VI ki = __builtin_convertvector(a * T(1.4426950408889634) + T(0.5), VI);
    const V kd = __builtin_convertvector(ki, V);
    const V r = kd * T(0.693145751953125) - a + kd * T(1.4286068203094173e-06);  // -a + k ln2 (hi + lo)
    V p = V{} + T(1);
    for (int q = n_exp; q >= 1; --q) p = p * r * (T(1) / T(q)) + T(1);  // Horner of sum r^q / q!
    const VI bits = (VI{} + bias - ki) << mant;
    V two_k;
    __builtin_memcpy(&two_k, &bits, sizeof(V));  // 2^-k
    const V e = p * two_k;  // exp(-|x|) in (0, 1]
    const V s = e / (T(2) + e);
    const V u = s * s;
    V g = V{} + T(1) / T(2 * n_log + 1);
    for (int q = n_log - 1; q >= 0; --q) g = g * u + T(1) / T(2 * q + 1);
    const V l1p = T(2) * s * g;  // log1p(e)
    const V inv = T(1) / (T(1) + e);
    const V sig = x >= V{} ? inv : e * inv;
    V y, dy;
    if (act == Activation::ShiftedSoftplus) {
      y = (x > V{} ? x : V{}) + l1p - T(kLn2);
      dy = sig;
    } else {
      y = x * sig;
      dy = sig * (T(1) + x * (T(1) - sig));
    }
    *reinterpret_cast<VU*>(z + k) = y;
    *reinterpret_cast<VU*>(d + k) = dy;
  }
  if (k < n) activate<T>(act, z + k, d + k, n - k);
}

// A dense layer in T: wt = W^T (n_in x n_out) for the forward GEMM, w = W (n_out x n_in) for
// the backward one.
template <typename T>
struct PackedDense {
  int n_in = 0, n_out = 0;
  std::vector<T> wt, w, b;
  Activation act = Activation::None;
  explicit PackedDense(const DenseLayer& d) : n_in(d.n_in), n_out(d.n_out), act(d.activation) {
    w.assign(d.weight.begin(), d.weight.end());
    wt.resize(w.size());
    for (int o = 0; o < n_out; ++o)
      for (int i = 0; i < n_in; ++i) wt[static_cast<size_t>(i) * n_out + o] = static_cast<T>(d.weight[static_cast<size_t>(o) * n_in + i]);
    b.assign(n_out, T(0));
    for (size_t k = 0; k < d.bias.size(); ++k) b[k] = static_cast<T>(d.bias[k]);
  }
  // Z = X W^T + b for M rows.
  void forward(int M, const T* X, T* Z) const {
    gemm<T>(M, n_out, n_in, X, wt.data(), Z, false);
    for (int m = 0; m < M; ++m) {
      T* z = Z + static_cast<size_t>(m) * n_out;
      for (int o = 0; o < n_out; ++o) z[o] += b[o];
    }
  }
};

// ---- GEMM with the B matrix packed once (weights) ----------------------------------------
// C[M x N] (+)= A[M x K] * B[K x N] with A rows lda apart and C rows ldc apart. B is packed at
// load into column panels of two SIMD vectors (AVX2: 2 x 32 bytes, 16 floats / 8 doubles;
// AVX-512: 2 x 64 bytes), each panel K x NB contiguous and zero-padded, so that the vector kernel
// streams it; the loop runs panel by panel (a panel stays in L1 while every row block of A passes
// it). The generic kernel uses the plain row-major copy. `isa` (cpu_features.hpp) picks the kernel
// and with it the panel width; AVX2 falls back to the generic kernel on a CPU without it.
template <typename T>
struct PackedMatrix {
  int K = 0, N = 0;
  Isa isa = Isa::Generic;
  std::vector<T> rows;    // K x N row-major
  avector<T> panels;      // ceil(N / NB) panels of K x NB, NB = two vectors of `isa`
  PackedMatrix() = default;
  // B given row-major (K x N) in double, or transposed (N x K) when `transposed`.
  PackedMatrix(int K_, int N_, const double* B, bool transposed, Isa isa_) : K(K_), N(N_), isa(isa_) {
    const int NB = 2 * isa_vector_bytes(isa) / static_cast<int>(sizeof(T));
    rows.resize(static_cast<size_t>(K) * N);
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n)
        rows[static_cast<size_t>(k) * N + n] =
            static_cast<T>(transposed ? B[static_cast<size_t>(n) * K + k] : B[static_cast<size_t>(k) * N + n]);
    const int n_panels = (N + NB - 1) / NB;
    panels.assign(static_cast<size_t>(n_panels) * K * NB, T(0));
    for (int p = 0; p < n_panels; ++p)
      for (int k = 0; k < K; ++k)
        for (int c = 0; c < NB && p * NB + c < N; ++c)
          panels[(static_cast<size_t>(p) * K + k) * NB + c] = rows[static_cast<size_t>(k) * N + p * NB + c];
  }
};

template <typename T>
void gemm_packed_generic(int M, const T* A, int lda, const PackedMatrix<T>& B, T* C, int ldc, bool acc) {
  const int N = B.N, K = B.K;
  for (int i = 0; i < M; ++i) {
    T* c = C + static_cast<size_t>(i) * ldc;
    if (!acc) std::fill(c, c + N, T(0));
    const T* a = A + static_cast<size_t>(i) * lda;
    for (int k = 0; k < K; ++k) {
      const T av = a[k];
      const T* b = B.rows.data() + static_cast<size_t>(k) * N;
      for (int n = 0; n < N; ++n) c[n] += av * b[n];
    }
  }
}

#ifdef PYMOTOR_HAVE_AVX2_KERNEL
// The attributes of the 64-byte builds (GCC may otherwise prefer 256-bit vectors for loops it
// vectorises itself).
#define PYMOTOR_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,prefer-vector-width=512")))

// MR rows x one panel (2 vectors of VB bytes) of C in 2*MR vector registers. Inlined into the
// AVX2 and AVX-512 drivers below, which give it their instruction set.
template <typename T, int MR, int VB>
[[gnu::always_inline]] inline void gemm_packed_tile(int K, const T* A, int lda, const T* Bp, T* C, int ldc, bool acc,
                                                    int n_valid) {
  typedef T V __attribute__((vector_size(VB)));
  typedef T VU __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));
  constexpr int W = VB / static_cast<int>(sizeof(T));
  V c[MR][2];
  if (acc && n_valid == 2 * W) {
    for (int r = 0; r < MR; ++r)
      for (int h = 0; h < 2; ++h) c[r][h] = *reinterpret_cast<const VU*>(C + static_cast<size_t>(r) * ldc + W * h);
  } else {
    for (int r = 0; r < MR; ++r) c[r][0] = c[r][1] = V{};
  }
  for (int k = 0; k < K; ++k) {
    const V b0 = *reinterpret_cast<const VU*>(Bp + static_cast<size_t>(k) * 2 * W);
    const V b1 = *reinterpret_cast<const VU*>(Bp + static_cast<size_t>(k) * 2 * W + W);
    for (int r = 0; r < MR; ++r) {
      const T a = A[static_cast<size_t>(r) * lda + k];  // scalar * vector: one broadcast load (V{} + a adds 0)
      c[r][0] += a * b0;
      c[r][1] += a * b1;
    }
  }
  if (n_valid == 2 * W) {
    for (int r = 0; r < MR; ++r)
      for (int h = 0; h < 2; ++h) *reinterpret_cast<VU*>(C + static_cast<size_t>(r) * ldc + W * h) = c[r][h];
  } else {
    for (int r = 0; r < MR; ++r) {
      T tmp[2 * W];
      __builtin_memcpy(tmp, &c[r][0], sizeof(V));
      __builtin_memcpy(tmp + W, &c[r][1], sizeof(V));
      T* cr = C + static_cast<size_t>(r) * ldc;
      for (int n = 0; n < n_valid; ++n) cr[n] = acc ? cr[n] + tmp[n] : tmp[n];
    }
  }
}

// Panel by panel: blocks of MR rows, then the remaining rows in one smaller tile.
template <typename T, int VB, int MR>
[[gnu::always_inline]] inline void gemm_packed_panels(int M, const T* A, int lda, const PackedMatrix<T>& B, T* C,
                                                      int ldc, bool acc) {
  constexpr int NB = 2 * VB / static_cast<int>(sizeof(T));
  const int K = B.K, N = B.N, n_panels = (N + NB - 1) / NB;
  for (int p = 0; p < n_panels; ++p) {
    const T* Bp = B.panels.data() + static_cast<size_t>(p) * K * NB;
    const int nv = std::min(NB, N - p * NB);
    T* Cp = C + p * NB;
    int i = 0;
    for (; i + MR <= M; i += MR)
      gemm_packed_tile<T, MR, VB>(K, A + static_cast<size_t>(i) * lda, lda, Bp, Cp + static_cast<size_t>(i) * ldc,
                                  ldc, acc, nv);
    const T* Ai = A + static_cast<size_t>(i) * lda;
    T* Ci = Cp + static_cast<size_t>(i) * ldc;
    switch (M - i) {
      case 7: gemm_packed_tile<T, 7, VB>(K, Ai, lda, Bp, Ci, ldc, acc, nv); break;
      case 6: gemm_packed_tile<T, 6, VB>(K, Ai, lda, Bp, Ci, ldc, acc, nv); break;
      case 5: gemm_packed_tile<T, 5, VB>(K, Ai, lda, Bp, Ci, ldc, acc, nv); break;
      case 4: gemm_packed_tile<T, 4, VB>(K, Ai, lda, Bp, Ci, ldc, acc, nv); break;
      case 3: gemm_packed_tile<T, 3, VB>(K, Ai, lda, Bp, Ci, ldc, acc, nv); break;
      case 2: gemm_packed_tile<T, 2, VB>(K, Ai, lda, Bp, Ci, ldc, acc, nv); break;
      case 1: gemm_packed_tile<T, 1, VB>(K, Ai, lda, Bp, Ci, ldc, acc, nv); break;
      default: break;
    }
  }
}

// AVX2: 6 rows x 2 ymm (12 of the 16 registers, as BLIS' Haswell kernel).
template <typename T>
__attribute__((target("avx2,fma"))) void gemm_packed_avx2(int M, const T* A, int lda, const PackedMatrix<T>& B, T* C,
                                                           int ldc, bool acc) {
  gemm_packed_panels<T, 32, 6>(M, A, lda, B, C, ldc, acc);
}

// AVX-512: 8 rows x 2 zmm (16 of the 32 registers).
template <typename T>
PYMOTOR_TARGET_AVX512 void gemm_packed_avx512(int M, const T* A, int lda, const PackedMatrix<T>& B, T* C, int ldc,
                                              bool acc) {
  gemm_packed_panels<T, 64, 8>(M, A, lda, B, C, ldc, acc);
}
#endif

template <typename T>
void gemm_packed(int M, const T* A, int lda, const PackedMatrix<T>& B, T* C, int ldc, bool acc) {
  if (M <= 0 || B.N <= 0) return;
#ifdef PYMOTOR_HAVE_AVX2_KERNEL
  if (B.isa == Isa::AVX512) return gemm_packed_avx512<T>(M, A, lda, B, C, ldc, acc);
  if (B.isa == Isa::AVX2 && cpu_has_avx2_fma()) return gemm_packed_avx2<T>(M, A, lda, B, C, ldc, acc);
#endif
  gemm_packed_generic<T>(M, A, lda, B, C, ldc, acc);
}

// A dense layer with both products packed: forward Z = X W^T + b, backward G_in = G_out W.
template <typename T>
struct PackedLayer {
  int n_in = 0, n_out = 0;
  PackedMatrix<T> fwd, bwd;  // W^T (n_in x n_out), W (n_out x n_in)
  std::vector<T> b;          // n_out (zeros without bias)
  Activation act = Activation::None;
  PackedLayer() = default;
  explicit PackedLayer(const DenseLayer& d, Isa isa)
      : n_in(d.n_in), n_out(d.n_out), fwd(d.n_in, d.n_out, d.weight.data(), true, isa),
        bwd(d.n_out, d.n_in, d.weight.data(), false, isa), b(d.n_out, T(0)), act(d.activation) {
    for (size_t k = 0; k < d.bias.size(); ++k) b[k] = static_cast<T>(d.bias[k]);
  }
  // Z (ldz) = X (ldx) W^T + b for M rows.
  void forward(int M, const T* X, int ldx, T* Z, int ldz) const {
    for (int m = 0; m < M; ++m) std::copy(b.begin(), b.end(), Z + static_cast<size_t>(m) * ldz);
    gemm_packed<T>(M, X, ldx, fwd, Z, ldz, true);
  }
  // G_in (ldi) (+)= G_out (ldo) W for M rows.
  void backward(int M, const T* G, int ldg, T* Gin, int ldi, bool acc) const {
    gemm_packed<T>(M, G, ldg, bwd, Gin, ldi, acc);
  }
};

inline void check_dense(const DenseLayer& d, int n_in, int n_out, const std::string& what) {
  if (d.n_in != n_in || d.n_out != n_out)
    throw std::invalid_argument(what + ": expected a " + std::to_string(n_in) + " -> " + std::to_string(n_out) +
                                " layer, got " + std::to_string(d.n_in) + " -> " + std::to_string(d.n_out));
  if (d.weight.size() != static_cast<size_t>(n_in) * n_out)
    throw std::invalid_argument(what + ": weight has " + std::to_string(d.weight.size()) + " values, expected " +
                                std::to_string(static_cast<size_t>(n_in) * n_out));
  if (!d.bias.empty() && d.bias.size() != static_cast<size_t>(n_out))
    throw std::invalid_argument(what + ": bias has " + std::to_string(d.bias.size()) + " values, expected " +
                                std::to_string(n_out));
}


}  // namespace dense
}  // namespace pymotor
