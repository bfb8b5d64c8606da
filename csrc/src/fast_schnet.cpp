#include "pymotor/fast_schnet.hpp"
#include "pymotor/cpu_features.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

namespace pymotor {

using namespace dense;  // PackedLayer, gemm, activations, PackedDense, check_dense (pymotor/dense.hpp)
using fast::interval_of;

// ---- dtype-specific parts of the model ---------------------------------------------------

template <typename T>
struct Packed {
  struct Interaction {
    PackedLayer<T> in2f, f2out1, f2out2;
    avector<T> coef;  // n_intervals * 4 * n_filters: cubic c0..c3 per interval in t in [0,1)
  };
  int F = 0, Fi = 0, n_int = 0;
  Isa isa = Isa::Generic;  // the kernels' instruction set (and the GEMM panels' width)
  double inv_h = 0.0, cutoff = 0.0;
  std::vector<T> embedding;  // max_z x F
  std::vector<T> h0;         // max_z x Fi: embedding @ in2f_0^T (the first in2f depends on Z only)
  std::vector<Interaction> inter;
  std::vector<PackedLayer<T>> readout;
  double energy_scale = 1.0;
};

struct FastSchNetModel::Impl {
  std::unique_ptr<Packed<float>> f32;
  std::unique_ptr<Packed<double>> f64;
};

namespace {

template <typename T>
std::unique_ptr<Packed<T>> pack(const SchNetWeights& w, int n_int, const std::vector<double>& coef, Isa isa) {
  auto p = std::make_unique<Packed<T>>();
  p->isa = isa;
  p->F = w.n_atom_basis;
  p->Fi = w.n_filters;
  p->n_int = n_int;
  p->cutoff = w.cutoff;
  p->inv_h = n_int / w.cutoff;
  p->embedding.assign(w.embedding.begin(), w.embedding.end());
  p->energy_scale = w.energy_scale;
  const size_t per = static_cast<size_t>(n_int) * 4 * w.n_filters;
  for (size_t t = 0; t < w.interactions.size(); ++t) {
    const auto& it = w.interactions[t];
    typename Packed<T>::Interaction pi{PackedLayer<T>(it.in2f, isa), PackedLayer<T>(it.f2out1, isa),
                                       PackedLayer<T>(it.f2out2, isa), {}};
    pi.coef.assign(coef.begin() + t * per, coef.begin() + (t + 1) * per);
    p->inter.push_back(std::move(pi));
  }
  for (const auto& d : w.readout) p->readout.emplace_back(d, isa);
  // h0 in double, then rounded once
  std::vector<double> h0(static_cast<size_t>(w.max_z) * w.n_filters, 0.0);
  const auto& in2f = w.interactions[0].in2f;
  for (int z = 0; z < w.max_z; ++z)
    for (int o = 0; o < w.n_filters; ++o) {
      double s = 0.0;
      for (int i = 0; i < w.n_atom_basis; ++i)
        s += in2f.weight[static_cast<size_t>(o) * w.n_atom_basis + i] * w.embedding[static_cast<size_t>(z) * w.n_atom_basis + i];
      h0[static_cast<size_t>(z) * w.n_filters + o] = s;
    }
  p->h0.assign(h0.begin(), h0.end());
  return p;
}

// The exact filters of one interaction at n distances (double, batched through GEMMs).
void exact_filters(const SchNetWeights& w, int t, const double* r, int n, double* W, double* dW) {
  const int R = w.n_rbf, Fi = w.n_filters;
  const auto& it = w.interactions[t];
  std::vector<double> rbf(static_cast<size_t>(n) * R), drbf(rbf.size());
  for (int p = 0; p < n; ++p)
    fast::gaussian_rbf(r[p], w.rbf_offsets, w.rbf_widths, R, &rbf[static_cast<size_t>(p) * R],
                       &drbf[static_cast<size_t>(p) * R]);
  PackedDense<double> f1(it.filter1), f2(it.filter2);
  std::vector<double> z1(static_cast<size_t>(n) * Fi), dz1(z1.size()), d1(z1.size(), 1.0);
  f1.forward(n, rbf.data(), z1.data());
  gemm<double>(n, Fi, R, drbf.data(), f1.wt.data(), dz1.data(), false);
  activate<double>(f1.act, z1.data(), d1.data(), z1.size());
  for (size_t k = 0; k < dz1.size(); ++k) dz1[k] *= d1[k];
  std::vector<double> z2(z1.size()), dz2(z1.size()), d2(z1.size(), 1.0);
  f2.forward(n, z1.data(), z2.data());
  gemm<double>(n, Fi, Fi, dz1.data(), f2.wt.data(), dz2.data(), false);
  activate<double>(f2.act, z2.data(), d2.data(), z2.size());
  for (int p = 0; p < n; ++p) {
    const double x = r[p];
    double fc = 0.0, dfc = 0.0;
    if (x < w.cutoff) fast::cosine_cutoff(x, w.cutoff, fc, dfc);
    for (int f = 0; f < Fi; ++f) {
      const size_t k = static_cast<size_t>(p) * Fi + f;
      W[k] = z2[k] * fc;
      dW[k] = dz2[k] * d2[k] * fc + z2[k] * dfc;
    }
  }
}

// Cubic Hermite coefficients (c0, c1, c2, c3 in t = (r - r_k)/h) of every interval.
void hermite_coefficients(const SchNetWeights& w, int n_int, std::vector<double>& coef) {
  const int Fi = w.n_filters, T = static_cast<int>(w.interactions.size());
  const double h = w.cutoff / n_int;
  std::vector<double> r(n_int + 1);
  for (int k = 0; k <= n_int; ++k) r[k] = std::min(k * h, w.cutoff);
  std::vector<double> W(static_cast<size_t>(n_int + 1) * Fi), dW(W.size());
  coef.assign(static_cast<size_t>(T) * n_int * 4 * Fi, 0.0);
  for (int t = 0; t < T; ++t) {
    exact_filters(w, t, r.data(), n_int + 1, W.data(), dW.data());
    double* c = coef.data() + static_cast<size_t>(t) * n_int * 4 * Fi;
    for (int k = 0; k < n_int; ++k)
      for (int f = 0; f < Fi; ++f) {
        const double y0 = W[static_cast<size_t>(k) * Fi + f], y1 = W[static_cast<size_t>(k + 1) * Fi + f];
        const double m0 = h * dW[static_cast<size_t>(k) * Fi + f], m1 = h * dW[static_cast<size_t>(k + 1) * Fi + f];
        double* ck = c + static_cast<size_t>(k) * 4 * Fi;
        ck[f] = y0;
        ck[Fi + f] = m0;
        ck[2 * Fi + f] = 3.0 * (y1 - y0) - 2.0 * m0 - m1;
        ck[3 * Fi + f] = 2.0 * (y0 - y1) + m0 + m1;
      }
  }
}

// Max relative interpolation errors of W and dW/dr over all interactions (coefficients of n_int intervals).
void measure_error(const SchNetWeights& w, int n_int, const std::vector<double>& coef, double& err_w, double& err_dw) {
  const int Fi = w.n_filters;
  const double h = w.cutoff / n_int;
  auto exact = [&](int t, const double* r, int n, double* W, double* dW) { exact_filters(w, t, r, n, W, dW); };
  auto interpolated = [&](int t, int k, double x, double, double* W, double* dW) {
    const double* ck = coef.data() + static_cast<size_t>(t) * n_int * 4 * Fi + static_cast<size_t>(k) * 4 * Fi;
    for (int f = 0; f < Fi; ++f) {
      W[f] = ((ck[3 * Fi + f] * x + ck[2 * Fi + f]) * x + ck[Fi + f]) * x + ck[f];
      dW[f] = ((3.0 * ck[3 * Fi + f] * x + 2.0 * ck[2 * Fi + f]) * x + ck[Fi + f]) / h;
    }
  };
  fast::table_errors(static_cast<int>(w.interactions.size()), Fi, w.cutoff, n_int, exact, interpolated, err_w, err_dw);
}

}  // namespace

FastSchNetModel::FastSchNetModel(SchNetWeights w, const std::string& dtype, int n_intervals, double tolerance,
                                 const std::string& isa)
    : w_(std::move(w)), dtype_(dtype), impl_(std::make_unique<Impl>()) {
  const std::string who = "FastSchNetModel";
  isa_ = isa_from_name(isa, who);
  fast::check_basis(who, dtype_, w_, w_.interactions.size(), w_.n_filters);
  const int F = w_.n_atom_basis, Fi = w_.n_filters, R = w_.n_rbf;
  for (size_t t = 0; t < w_.interactions.size(); ++t) {
    const auto& it = w_.interactions[t];
    const std::string p = "interaction " + std::to_string(t) + " ";
    check_dense(it.in2f, F, Fi, p + "in2f");
    check_dense(it.filter1, R, Fi, p + "filter_network.0");
    check_dense(it.filter2, Fi, Fi, p + "filter_network.1");
    check_dense(it.f2out1, Fi, F, p + "f2out.0");
    check_dense(it.f2out2, F, F, p + "f2out.1");
    if (it.in2f.activation != Activation::None || !it.in2f.bias.empty())
      throw std::invalid_argument(p + "in2f must be linear without bias");
    if (it.f2out2.activation != Activation::None)
      throw std::invalid_argument(p + "f2out.1 must have no activation");
  }
  fast::check_readout(who, w_.readout, F);

  std::vector<double> coef;
  info_ = fast::choose_grid(who, w_.cutoff, n_intervals, tolerance, [&](int n, double& ew, double& ed) {
    hermite_coefficients(w_, n, coef);
    measure_error(w_, n, coef, ew, ed);
  });
  if (dtype_ == "float32")
    impl_->f32 = pack<float>(w_, info_.n_intervals, coef, isa_);
  else
    impl_->f64 = pack<double>(w_, info_.n_intervals, coef, isa_);
}

FastSchNetModel::~FastSchNetModel() = default;

void FastSchNetModel::filter_exact(int t, double r, double* W, double* dW) const {
  if (t < 0 || t >= n_interactions()) throw std::out_of_range("FastSchNetModel: no interaction " + std::to_string(t));
  exact_filters(w_, t, &r, 1, W, dW);
}

void FastSchNetModel::filter_interpolated(int t, double r, double* W, double* dW) const {
  if (t < 0 || t >= n_interactions()) throw std::out_of_range("FastSchNetModel: no interaction " + std::to_string(t));
  if (!(r >= 0.0 && r < w_.cutoff)) {
    std::fill(W, W + w_.n_filters, 0.0);
    std::fill(dW, dW + w_.n_filters, 0.0);
    return;
  }
  auto eval = [&](const auto& p) {
    const int Fi = p.Fi;
    int k;
    double x;
    interval_of(r, p.inv_h, p.n_int, k, x);
    const auto* ck = p.inter[t].coef.data() + static_cast<size_t>(k) * 4 * Fi;
    for (int f = 0; f < Fi; ++f) {
      W[f] = ((ck[3 * Fi + f] * x + ck[2 * Fi + f]) * x + ck[Fi + f]) * x + ck[f];
      dW[f] = ((3.0 * ck[3 * Fi + f] * x + 2.0 * ck[2 * Fi + f]) * x + ck[Fi + f]) * p.inv_h;
    }
  };
  if (impl_->f32)
    eval(*impl_->f32);
  else
    eval(*impl_->f64);
}

// ---- the potential --------------------------------------------------------------------------

namespace {

// Scratch arrays of one thread for M atoms and P half pairs.
template <typename T>
struct Ws {
  avector<T> x, m, a, v, gx, ga, gm, gh, ro_tmp, ro_g;  // 64-byte aligned rows
  std::vector<avector<T>> h, d1, ro_z, ro_d;  // per interaction / per readout layer
  std::vector<int> pk;
  std::vector<T> pt;
  std::vector<double> dedr;
  void resize(const Packed<T>& p, int M, int P) {
    const size_t MF = static_cast<size_t>(M) * p.F, MFi = static_cast<size_t>(M) * p.Fi;
    x.resize(MF), a.resize(MF), v.resize(MF), gx.resize(MF), ga.resize(MF);
    m.resize(MFi), gm.resize(MFi), gh.resize(MFi);
    const size_t n_t = p.inter.size();
    h.resize(n_t), d1.resize(n_t);
    for (size_t t = 0; t < n_t; ++t) h[t].resize(MFi), d1[t].resize(MF);
    ro_z.resize(p.readout.size()), ro_d.resize(p.readout.size());
    size_t widest = p.F;
    for (size_t l = 0; l < p.readout.size(); ++l) {
      ro_z[l].resize(static_cast<size_t>(M) * p.readout[l].n_out);
      ro_d[l].resize(static_cast<size_t>(M) * p.readout[l].n_out);
      widest = std::max<size_t>(widest, p.readout[l].n_out);
    }
    ro_tmp.resize(static_cast<size_t>(M) * widest), ro_g.resize(static_cast<size_t>(M) * widest);
    pk.resize(P), pt.resize(P), dedr.resize(P);
  }
};

// Energy (model units, per replica) and dE/dr (model units, per half pair) of one block of
// whole replicas: atoms 0..M-1 (local), half pairs (pi, pj) with distances r (model units).
// VB: the vector width (bytes) of the build (the activations' vectors; the pair loops are
// vectorised by the compiler for the build's instruction set).
template <typename T, int VB>
__attribute__((always_inline)) inline void evaluate_block_body(const Packed<T>& p, Ws<T>& ws, int M,
                                                               const int64_t* z, int P, const int* pi, const int* pj,
                                                               const double* r, int n_rep, int n_atoms,
                                                               double* energy) {
  const int F = p.F, Fi = p.Fi, NT = static_cast<int>(p.inter.size());
  const size_t MF = static_cast<size_t>(M) * F;
  for (int q = 0; q < P; ++q) interval_of(r[q], p.inv_h, p.n_int, ws.pk[q], ws.pt[q]);

  // embedding and the first in2f, both functions of Z only
  for (int i = 0; i < M; ++i) {
    std::memcpy(&ws.x[static_cast<size_t>(i) * F], &p.embedding[static_cast<size_t>(z[i]) * F], sizeof(T) * F);
    std::memcpy(&ws.h[0][static_cast<size_t>(i) * Fi], &p.h0[static_cast<size_t>(z[i]) * Fi], sizeof(T) * Fi);
  }
  // ---- forward through the interactions ----
  for (int t = 0; t < NT; ++t) {
    const auto& it = p.inter[t];
    T* h = ws.h[t].data();
    if (t > 0) it.in2f.forward(M, ws.x.data(), F, h, Fi);  // no bias (checked at load)
    T* m = ws.m.data();
    std::fill(m, m + static_cast<size_t>(M) * Fi, T(0));
    // fused continuous-filter convolution: m_i += h_j W(r_ij), m_j += h_i W(r_ij)
    for (int q = 0; q < P; ++q) {
      const T* __restrict ck = it.coef.data() + static_cast<size_t>(ws.pk[q]) * 4 * Fi;
      const T s = ws.pt[q];
      T* __restrict mi = m + static_cast<size_t>(pi[q]) * Fi;
      T* __restrict mj = m + static_cast<size_t>(pj[q]) * Fi;
      const T* __restrict hi = h + static_cast<size_t>(pi[q]) * Fi;
      const T* __restrict hj = h + static_cast<size_t>(pj[q]) * Fi;
#pragma omp simd
      for (int f = 0; f < Fi; ++f) {
        const T w = ((ck[3 * Fi + f] * s + ck[2 * Fi + f]) * s + ck[Fi + f]) * s + ck[f];
        mi[f] += hj[f] * w;
        mj[f] += hi[f] * w;
      }
    }
    it.f2out1.forward(M, m, Fi, ws.a.data(), F);
    activate_fast<T, VB>(it.f2out1.act, ws.a.data(), ws.d1[t].data(), MF);
    it.f2out2.forward(M, ws.a.data(), F, ws.v.data(), F);
    for (size_t k = 0; k < MF; ++k) ws.x[k] += ws.v[k];
  }
  // ---- readout: per-atom MLP, summed per replica ----
  const T* in = ws.x.data();
  const size_t L = p.readout.size();
  for (size_t l = 0; l < L; ++l) {
    const auto& d = p.readout[l];
    d.forward(M, in, d.n_in, ws.ro_z[l].data(), d.n_out);
    activate_fast<T, VB>(d.act, ws.ro_z[l].data(), ws.ro_d[l].data(), static_cast<size_t>(M) * d.n_out);
    in = ws.ro_z[l].data();
  }
  for (int r0 = 0; r0 < n_rep; ++r0) {
    double e = 0.0;
    for (int i = 0; i < n_atoms; ++i) e += static_cast<double>(in[r0 * n_atoms + i]);
    energy[r0] = e * p.energy_scale;
  }
  // ---- backward: dE/dx_T through the readout ----
  {
    T* g = ws.ro_g.data();
    std::fill(g, g + M, static_cast<T>(p.energy_scale));  // dE/dy_i, last layer has one output
    for (size_t l = L; l-- > 0;) {
      const auto& d = p.readout[l];
      const size_t n = static_cast<size_t>(M) * d.n_out;
      if (d.act != Activation::None)
        for (size_t k = 0; k < n; ++k) g[k] *= ws.ro_d[l][k];
      T* out = l == 0 ? ws.gx.data() : ws.ro_tmp.data();
      d.backward(M, g, d.n_out, out, d.n_in, false);
      if (l > 0) std::copy(out, out + static_cast<size_t>(M) * d.n_in, g);
    }
  }
  // ---- backward through the interactions ----
  std::fill(ws.dedr.begin(), ws.dedr.begin() + P, 0.0);
  for (int t = NT - 1; t >= 0; --t) {
    const auto& it = p.inter[t];
    // v = f2out2(act(f2out1(m))): g_m = ((g_x W2) * act') W1
    it.f2out2.backward(M, ws.gx.data(), F, ws.ga.data(), F, false);
    if (it.f2out1.act != Activation::None)
      for (size_t k = 0; k < MF; ++k) ws.ga[k] *= ws.d1[t][k];
    it.f2out1.backward(M, ws.ga.data(), F, ws.gm.data(), Fi, false);
    const bool need_gh = t > 0;  // x_0 is the embedding: nothing to propagate into
    T* gh = ws.gh.data();
    if (need_gh) std::fill(gh, gh + static_cast<size_t>(M) * Fi, T(0));
    const T* h = ws.h[t].data();
    const T* gm = ws.gm.data();
    const T inv_h = static_cast<T>(p.inv_h);
    for (int q = 0; q < P; ++q) {
      const T* __restrict ck = it.coef.data() + static_cast<size_t>(ws.pk[q]) * 4 * Fi;
      const T s = ws.pt[q];
      const T* __restrict gmi = gm + static_cast<size_t>(pi[q]) * Fi;
      const T* __restrict gmj = gm + static_cast<size_t>(pj[q]) * Fi;
      const T* __restrict hi = h + static_cast<size_t>(pi[q]) * Fi;
      const T* __restrict hj = h + static_cast<size_t>(pj[q]) * Fi;
      T acc = 0;
      if (need_gh) {
        T* __restrict ghi = gh + static_cast<size_t>(pi[q]) * Fi;
        T* __restrict ghj = gh + static_cast<size_t>(pj[q]) * Fi;
#pragma omp simd reduction(+ : acc)
        for (int f = 0; f < Fi; ++f) {
          const T c1 = ck[Fi + f], c2 = ck[2 * Fi + f], c3 = ck[3 * Fi + f];
          const T w = ((c3 * s + c2) * s + c1) * s + ck[f];
          const T dw = (T(3) * c3 * s + T(2) * c2) * s + c1;
          ghj[f] += gmi[f] * w;
          ghi[f] += gmj[f] * w;
          acc += dw * (gmi[f] * hj[f] + gmj[f] * hi[f]);
        }
      } else {
#pragma omp simd reduction(+ : acc)
        for (int f = 0; f < Fi; ++f) {
          const T c1 = ck[Fi + f], c2 = ck[2 * Fi + f], c3 = ck[3 * Fi + f];
          const T dw = (T(3) * c3 * s + T(2) * c2) * s + c1;
          acc += dw * (gmi[f] * hj[f] + gmj[f] * hi[f]);
        }
      }
      ws.dedr[q] += static_cast<double>(acc * inv_h);
    }
    if (need_gh) it.in2f.backward(M, gh, Fi, ws.gx.data(), F, true);  // residual: g_x += g_h W_in
  }
}

template <typename T>
void evaluate_block_generic(const Packed<T>& p, Ws<T>& ws, int M, const int64_t* z, int P, const int* pi,
                            const int* pj, const double* r, int n_rep, int n_atoms, double* energy) {
  evaluate_block_body<T, 32>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
}

#ifdef PYMOTOR_HAVE_AVX2_KERNEL
// The same code compiled for AVX2+FMA: the per-pair filter loops run 8 floats (4 doubles) wide.
template <typename T>
__attribute__((target("avx2,fma"))) void evaluate_block_avx2(const Packed<T>& p, Ws<T>& ws, int M, const int64_t* z,
                                                             int P, const int* pi, const int* pj, const double* r,
                                                             int n_rep, int n_atoms, double* energy) {
  evaluate_block_body<T, 32>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
}

// ... and for AVX-512: 16 floats (8 doubles) wide.
template <typename T>
PYMOTOR_TARGET_AVX512 void evaluate_block_avx512(const Packed<T>& p, Ws<T>& ws, int M, const int64_t* z, int P,
                                                 const int* pi, const int* pj, const double* r, int n_rep,
                                                 int n_atoms, double* energy) {
  evaluate_block_body<T, 64>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
}
#endif

template <typename T>
void evaluate_block(const Packed<T>& p, Ws<T>& ws, int M, const int64_t* z, int P, const int* pi, const int* pj,
                    const double* r, int n_rep, int n_atoms, double* energy) {
#ifdef PYMOTOR_HAVE_AVX2_KERNEL
  if (p.isa == Isa::AVX512) return evaluate_block_avx512<T>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
  if (p.isa == Isa::AVX2) return evaluate_block_avx2<T>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
#endif
  evaluate_block_generic<T>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
}

}  // namespace

struct FastSchNetPotential::Workspace : fast::ReplicaBlock {  // the block's pairs + scratch
  Ws<float> f32;
  Ws<double> f64;
};

FastSchNetPotential::FastSchNetPotential(std::shared_ptr<const FastSchNetModel> model, std::vector<int64_t> z,
                                         double cutoff_A, double skin_A, double length_unit_A, double energy_unit_eV,
                                         double offset_eV, int n_threads)
    : FastPotentialBase("FastSchNetPotential", model.get(), std::move(z), cutoff_A, skin_A, length_unit_A,
                        energy_unit_eV, offset_eV, n_threads),
      model_(std::move(model)) {}

FastSchNetPotential::~FastSchNetPotential() = default;

void FastSchNetPotential::compute(const double* x, int R, int N, double* e, double* f) {
  std::vector<size_t> start;
  const PairList* pairs = replica_pairs(x, R, N, start);
  if (!pairs) return;
  const PairList& pl = *pairs;
  const int n_chunks = this->n_chunks(R);
  for (int c = static_cast<int>(ws_.size()); c < n_chunks; ++c) ws_.push_back(std::make_unique<Workspace>());
  const double inv_len = 1.0 / length_unit_A_;
  const double fscale = energy_unit_eV_ / length_unit_A_;
  const FastSchNetModel::Impl& impl = model_->impl();

  fast::for_each_replica_chunk(R, n_chunks, [&](int c, int r0, int r1) {  // one block per chunk
    Workspace& w = *ws_[c];
    w.set(pl, start, x, z_, r0, r1, inv_len);
    const int M = w.M, P = w.P;
    const int64_t* zc = w.zc.data();
    std::vector<double> eblock(r1 - r0);
    std::vector<double>* dedr;
    if (impl.f32) {
      w.f32.resize(*impl.f32, M, P);
      evaluate_block<float>(*impl.f32, w.f32, M, zc, P, w.pi.data(), w.pj.data(), w.r.data(), r1 - r0, N,
                            eblock.data());
      dedr = &w.f32.dedr;
    } else {
      w.f64.resize(*impl.f64, M, P);
      evaluate_block<double>(*impl.f64, w.f64, M, zc, P, w.pi.data(), w.pj.data(), w.r.data(), r1 - r0, N,
                             eblock.data());
      dedr = &w.f64.dedr;
    }
    const ZBLWeights& zbl = model_->weights().zbl;
    if (zbl.enabled) {  // the repulsive prior, in double, on the same half pairs
      std::vector<double>& g = *dedr;
      for (int q = 0; q < P; ++q) {
        double ez, dz;  // zero beyond the switch
        zbl.pair(static_cast<int>(zc[w.pi[q]]), static_cast<int>(zc[w.pj[q]]), w.r[q], ez, dz);
        eblock[w.pi[q] / N] += ez;
        g[q] += dz;
      }
    }
    for (int r = r0; r < r1; ++r) e[r] = eblock[r - r0] * energy_unit_eV_ + offset_eV_;
    double* fc = f + 3 * w.a0;
    std::fill(fc, fc + 3 * static_cast<size_t>(M), 0.0);
    for (int q = 0; q < P; ++q) {
      // E(r_ij), r_ij = |x_j - x_i|: F_i = +dE/dr u_ij, F_j = -dE/dr u_ij
      const double g = (*dedr)[q] * fscale;
      for (int d = 0; d < 3; ++d) {
        fc[3 * w.pi[q] + d] += g * w.u[3 * q + d];
        fc[3 * w.pj[q] + d] -= g * w.u[3 * q + d];
      }
    }
  });
}

}  // namespace pymotor
