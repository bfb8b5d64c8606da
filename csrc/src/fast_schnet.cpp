#include "pymotor/fast_schnet.hpp"
#include "pymotor/cpu_features.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

namespace pymotor {

using namespace dense;  // gemm, activations, PackedDense, check_dense (pymotor/dense.hpp)

namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

// ---- the ZBL prior ---------------------------------------------------------------------------

void ZBLWeights::pair(int z_i, int z_j, double r, double& e, double& dedr) const {
  e = dedr = 0.0;
  if (!enabled || !(r > 0.0)) return;
  double f = 1.0, df = 0.0;
  if (switch_type == PairSwitch::Cosine) {
    if (r >= r_off) return;
    f = 0.5 * (std::cos(kPi * r / r_off) + 1.0);
    df = -0.5 * kPi / r_off * std::sin(kPi * r / r_off);
  } else if (switch_type == PairSwitch::Switch) {
    const double w = r_off - r_on, x = (r - r_on) / w;
    if (x >= 1.0) return;
    if (x > 0.0) {  // SchNetPack's SwitchFunction: f = fm / (fp + fm), fp = exp(-1/x), fm = exp(-1/(1-x))
      const double fp = std::exp(-1.0 / x), fm = std::exp(-1.0 / (1.0 - x)), s = fp + fm;
      f = fm / s;
      df = -fp * fm * (1.0 / (x * x) + 1.0 / ((1.0 - x) * (1.0 - x))) / (s * s) / w;
    }
  }
  const double a = (std::pow(static_cast<double>(z_i), a_pow) + std::pow(static_cast<double>(z_j), a_pow)) * a_div;
  double scr = 0.0, dscr = 0.0;
  for (int k = 0; k < 4; ++k) {
    const double t = coefficients[k] * std::exp(-exponents[k] * a * r);
    scr += t;
    dscr -= exponents[k] * a * t;
  }
  const double q = ke * z_i * z_j / r;  // Coulomb part
  e = q * scr * f;
  dedr = q * (-scr * f / r + dscr * f + scr * df);
}

// ---- dtype-specific parts of the model ---------------------------------------------------

template <typename T>
struct Packed {
  struct Interaction {
    PackedDense<T> in2f, f2out1, f2out2;
    std::vector<T> coef;  // n_intervals * 4 * n_filters: cubic c0..c3 per interval in t in [0,1)
  };
  int F = 0, Fi = 0, n_int = 0;
  double inv_h = 0.0, cutoff = 0.0;
  std::vector<T> embedding;  // max_z x F
  std::vector<T> h0;         // max_z x Fi: embedding @ in2f_0^T (the first in2f depends on Z only)
  std::vector<Interaction> inter;
  std::vector<PackedDense<T>> readout;
  double energy_scale = 1.0;
};

struct FastSchNetModel::Impl {
  std::unique_ptr<Packed<float>> f32;
  std::unique_ptr<Packed<double>> f64;
};

namespace {

template <typename T>
std::unique_ptr<Packed<T>> pack(const SchNetWeights& w, int n_int, const std::vector<double>& coef) {
  auto p = std::make_unique<Packed<T>>();
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
    typename Packed<T>::Interaction pi{PackedDense<T>(it.in2f), PackedDense<T>(it.f2out1), PackedDense<T>(it.f2out2), {}};
    pi.coef.assign(coef.begin() + t * per, coef.begin() + (t + 1) * per);
    p->inter.push_back(std::move(pi));
  }
  for (const auto& d : w.readout) p->readout.emplace_back(d);
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
    for (int k = 0; k < R; ++k) {
      const double coeff = -0.5 / (w.rbf_widths[k] * w.rbf_widths[k]);
      const double diff = r[p] - w.rbf_offsets[k];
      const double g = std::exp(coeff * diff * diff);
      rbf[static_cast<size_t>(p) * R + k] = g;
      drbf[static_cast<size_t>(p) * R + k] = g * 2.0 * coeff * diff;
    }
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
    if (x < w.cutoff) {
      fc = 0.5 * (std::cos(x * kPi / w.cutoff) + 1.0);
      dfc = -0.5 * kPi / w.cutoff * std::sin(x * kPi / w.cutoff);
    }
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

template <typename C>
inline void interval_of(double r, double inv_h, int n_int, int& k, C& t) {
  double s = r * inv_h;
  k = static_cast<int>(s);
  if (k >= n_int) k = n_int - 1;
  if (k < 0) k = 0;
  t = static_cast<C>(s - k);
}

}  // namespace

FastSchNetModel::FastSchNetModel(SchNetWeights w, const std::string& dtype, int n_intervals, double tolerance)
    : w_(std::move(w)), dtype_(dtype), impl_(std::make_unique<Impl>()) {
  if (dtype_ != "float32" && dtype_ != "float64")
    throw std::invalid_argument("FastSchNetModel: dtype must be 'float32' or 'float64', got '" + dtype_ + "'");
  const int F = w_.n_atom_basis, Fi = w_.n_filters, R = w_.n_rbf;
  if (F <= 0 || Fi <= 0 || R <= 0) throw std::invalid_argument("FastSchNetModel: feature sizes must be positive");
  if (!(w_.cutoff > 0.0)) throw std::invalid_argument("FastSchNetModel: cutoff must be positive");
  if (w_.interactions.empty()) throw std::invalid_argument("FastSchNetModel: the model has no interactions");
  if (w_.rbf_offsets.size() != static_cast<size_t>(R) || w_.rbf_widths.size() != static_cast<size_t>(R))
    throw std::invalid_argument("FastSchNetModel: rbf offsets/widths must have n_rbf values");
  for (double s : w_.rbf_widths)
    if (!(s > 0.0)) throw std::invalid_argument("FastSchNetModel: rbf widths must be positive");
  if (w_.max_z <= 0 || w_.embedding.size() != static_cast<size_t>(w_.max_z) * F)
    throw std::invalid_argument("FastSchNetModel: embedding must be (max_z, n_atom_basis)");
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
  if (w_.readout.empty()) throw std::invalid_argument("FastSchNetModel: the readout has no layers");
  int n_in = F;
  for (size_t l = 0; l < w_.readout.size(); ++l) {
    check_dense(w_.readout[l], n_in, w_.readout[l].n_out, "readout layer " + std::to_string(l));
    n_in = w_.readout[l].n_out;
  }
  if (n_in != 1) throw std::invalid_argument("FastSchNetModel: the readout must end in one output");

  std::vector<double> coef;
  if (n_intervals > 0) {
    double ew, ed;
    measure_error(n_intervals, ew, ed, coef);
    info_ = {n_intervals, w_.cutoff / n_intervals, ew, ed};
  } else {
    if (!(tolerance > 0.0)) throw std::invalid_argument("FastSchNetModel: tolerance must be positive");
    int n = 256;
    for (;; n *= 2) {
      double ew, ed;
      measure_error(n, ew, ed, coef);
      info_ = {n, w_.cutoff / n, ew, ed};
      if ((ew <= tolerance && ed <= 10.0 * tolerance) || n >= (1 << 16)) break;
    }
  }
  if (dtype_ == "float32")
    impl_->f32 = pack<float>(w_, info_.n_intervals, coef);
  else
    impl_->f64 = pack<double>(w_, info_.n_intervals, coef);
}

FastSchNetModel::~FastSchNetModel() = default;

void FastSchNetModel::measure_error(int n_int, double& err_w, double& err_dw, std::vector<double>& coef) const {
  hermite_coefficients(w_, n_int, coef);
  const int Fi = w_.n_filters, T = n_interactions();
  const double h = w_.cutoff / n_int;
  const double ts[3] = {0.25, 0.5, 0.8};
  std::vector<double> r(static_cast<size_t>(n_int) * 3);
  for (int k = 0; k < n_int; ++k)
    for (int q = 0; q < 3; ++q) r[static_cast<size_t>(k) * 3 + q] = (k + ts[q]) * h;
  const int n = static_cast<int>(r.size());
  std::vector<double> W(static_cast<size_t>(n) * Fi), dW(W.size());
  err_w = err_dw = 0.0;
  for (int t = 0; t < T; ++t) {
    exact_filters(w_, t, r.data(), n, W.data(), dW.data());
    const double* c = coef.data() + static_cast<size_t>(t) * n_int * 4 * Fi;
    double max_w = 0.0, max_dw = 0.0, e_w = 0.0, e_dw = 0.0;
    for (int p = 0; p < n; ++p) {
      const int k = p / 3;
      const double x = ts[p % 3];
      const double* ck = c + static_cast<size_t>(k) * 4 * Fi;
      for (int f = 0; f < Fi; ++f) {
        const double v = ((ck[3 * Fi + f] * x + ck[2 * Fi + f]) * x + ck[Fi + f]) * x + ck[f];
        const double d = ((3.0 * ck[3 * Fi + f] * x + 2.0 * ck[2 * Fi + f]) * x + ck[Fi + f]) / h;
        const size_t q = static_cast<size_t>(p) * Fi + f;
        max_w = std::max(max_w, std::abs(W[q]));
        max_dw = std::max(max_dw, std::abs(dW[q]));
        e_w = std::max(e_w, std::abs(v - W[q]));
        e_dw = std::max(e_dw, std::abs(d - dW[q]));
      }
    }
    err_w = std::max(err_w, max_w > 0 ? e_w / max_w : e_w);
    err_dw = std::max(err_dw, max_dw > 0 ? e_dw / max_dw : e_dw);
  }
}

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
  std::vector<T> x, m, a, v, gx, ga, gm, gh, ro_tmp, ro_g;
  std::vector<std::vector<T>> h, d1, ro_z, ro_d;  // per interaction / per readout layer
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
template <typename T>
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
    if (t > 0) gemm<T>(M, Fi, F, ws.x.data(), it.in2f.wt.data(), h, false);
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
    it.f2out1.forward(M, m, ws.a.data());
    activate_fast<T>(it.f2out1.act, ws.a.data(), ws.d1[t].data(), MF);
    it.f2out2.forward(M, ws.a.data(), ws.v.data());
    for (size_t k = 0; k < MF; ++k) ws.x[k] += ws.v[k];
  }
  // ---- readout: per-atom MLP, summed per replica ----
  const T* in = ws.x.data();
  const size_t L = p.readout.size();
  for (size_t l = 0; l < L; ++l) {
    const auto& d = p.readout[l];
    d.forward(M, in, ws.ro_z[l].data());
    activate_fast<T>(d.act, ws.ro_z[l].data(), ws.ro_d[l].data(), static_cast<size_t>(M) * d.n_out);
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
      gemm<T>(M, d.n_in, d.n_out, g, d.w.data(), out, false);
      if (l > 0) std::copy(out, out + static_cast<size_t>(M) * d.n_in, g);
    }
  }
  // ---- backward through the interactions ----
  std::fill(ws.dedr.begin(), ws.dedr.begin() + P, 0.0);
  for (int t = NT - 1; t >= 0; --t) {
    const auto& it = p.inter[t];
    // v = f2out2(act(f2out1(m))): g_m = ((g_x W2) * act') W1
    gemm<T>(M, F, F, ws.gx.data(), it.f2out2.w.data(), ws.ga.data(), false);
    if (it.f2out1.act != Activation::None)
      for (size_t k = 0; k < MF; ++k) ws.ga[k] *= ws.d1[t][k];
    gemm<T>(M, Fi, F, ws.ga.data(), it.f2out1.w.data(), ws.gm.data(), false);
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
    if (need_gh) gemm<T>(M, F, Fi, gh, it.in2f.w.data(), ws.gx.data(), true);  // residual: g_x += g_h W_in
  }
}

template <typename T>
void evaluate_block_generic(const Packed<T>& p, Ws<T>& ws, int M, const int64_t* z, int P, const int* pi,
                            const int* pj, const double* r, int n_rep, int n_atoms, double* energy) {
  evaluate_block_body<T>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
}

#ifdef PYMOTOR_HAVE_AVX2_KERNEL
// The same code compiled for AVX2+FMA: the per-pair filter loops run 8 floats (4 doubles) wide.
template <typename T>
__attribute__((target("avx2,fma"))) void evaluate_block_avx2(const Packed<T>& p, Ws<T>& ws, int M, const int64_t* z,
                                                             int P, const int* pi, const int* pj, const double* r,
                                                             int n_rep, int n_atoms, double* energy) {
  evaluate_block_body<T>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
}
#endif

template <typename T>
void evaluate_block(const Packed<T>& p, Ws<T>& ws, int M, const int64_t* z, int P, const int* pi, const int* pj,
                    const double* r, int n_rep, int n_atoms, double* energy) {
#ifdef PYMOTOR_HAVE_AVX2_KERNEL
  if (cpu_has_avx2_fma()) return evaluate_block_avx2<T>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
#endif
  evaluate_block_generic<T>(p, ws, M, z, P, pi, pj, r, n_rep, n_atoms, energy);
}

}  // namespace

struct FastSchNetPotential::Workspace {
  Ws<float> f32;
  Ws<double> f64;
  std::vector<int> pi, pj;
  std::vector<double> r, u;
};

FastSchNetPotential::FastSchNetPotential(std::shared_ptr<const FastSchNetModel> model, std::vector<int64_t> z,
                                         double cutoff_A, double skin_A, double length_unit_A, double energy_unit_eV,
                                         double offset_eV, int n_threads)
    : model_(std::move(model)),
      z_(std::move(z)),
      length_unit_A_(length_unit_A),
      energy_unit_eV_(energy_unit_eV),
      offset_eV_(offset_eV),
      n_threads_(n_threads),
      nl_(cutoff_A, skin_A) {
  if (!model_) throw std::invalid_argument("FastSchNetPotential: model is null");
  if (!(length_unit_A > 0.0) || !(energy_unit_eV > 0.0))
    throw std::invalid_argument("FastSchNetPotential: unit conversion factors must be positive");
  if (n_threads < 0) throw std::invalid_argument("FastSchNetPotential: n_threads must be >= 0");
  const int max_z = model_->weights().max_z;
  for (int64_t v : z_)
    if (v < 0 || v >= max_z)
      throw std::invalid_argument("FastSchNetPotential: atomic number " + std::to_string(v) +
                                  " is outside the model's embedding (0.." + std::to_string(max_z - 1) + ")");
  // The model's filters vanish at its own cutoff; the list must not drop pairs inside it.
  if (cutoff_A < model_->weights().cutoff * length_unit_A * (1.0 - 1e-6))
    throw std::invalid_argument("FastSchNetPotential: cutoff_A is below the model's cutoff");
}

FastSchNetPotential::~FastSchNetPotential() = default;

void FastSchNetPotential::compute(const double* x, int R, int N, double* e, double* f) {
  if (static_cast<size_t>(N) != z_.size())
    throw std::invalid_argument("FastSchNetPotential: the model was set up for " + std::to_string(z_.size()) +
                                " atoms, got " + std::to_string(N));
  if (R <= 0 || N <= 0) return;
  nl_.update(x, R, N);
  const PairList& pl = nl_.half_pairs(x);  // i < j, ordered by replica
  last_pairs_ = 2 * pl.size();             // as the full list a TorchScript model gets
  const size_t H = pl.size();
  std::vector<size_t> start(R + 1, H);  // first half pair of each replica
  start[0] = 0;
  {
    int rep = 0;
    for (size_t q = 0; q < H; ++q) {
      const int rq = static_cast<int>(pl.idx_i[q] / N);
      while (rep < rq) start[++rep] = q;
    }
    while (rep < R) start[++rep] = H;
  }
#ifdef _OPENMP
  // 0: follow the process's OpenMP setting (torch.set_num_threads sets it for libtorch too)
  int nt = n_threads_ > 0 ? n_threads_ : omp_get_max_threads();
#else
  int nt = 1;
#endif
  const int n_chunks = std::max(1, std::min(nt, R));
  if (static_cast<int>(ws_.size()) < n_chunks)
    for (int c = static_cast<int>(ws_.size()); c < n_chunks; ++c) ws_.push_back(std::make_unique<Workspace>());
  const double inv_len = 1.0 / length_unit_A_;
  const double fscale = energy_unit_eV_ / length_unit_A_;
  const FastSchNetModel::Impl& impl = model_->impl();

  auto run_chunk = [&](int c) {
    const int r0 = static_cast<int>(static_cast<int64_t>(R) * c / n_chunks);
    const int r1 = static_cast<int>(static_cast<int64_t>(R) * (c + 1) / n_chunks);
    const int M = (r1 - r0) * N;
    const int64_t a0 = static_cast<int64_t>(r0) * N;
    const size_t q0 = start[r0], q1 = start[r1];
    const int P = static_cast<int>(q1 - q0);
    Workspace& w = *ws_[c];
    w.pi.resize(P), w.pj.resize(P), w.r.resize(P), w.u.resize(3 * static_cast<size_t>(P));
    for (int q = 0; q < P; ++q) {
      const int64_t i = pl.idx_i[q0 + q], j = pl.idx_j[q0 + q];
      w.pi[q] = static_cast<int>(i - a0);
      w.pj[q] = static_cast<int>(j - a0);
      const double dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1], dz = x[3 * j + 2] - x[3 * i + 2];
      const double d = std::sqrt(dx * dx + dy * dy + dz * dz);
      const double inv = d > 0 ? 1.0 / d : 0.0;
      w.r[q] = d * inv_len;
      w.u[3 * q] = dx * inv, w.u[3 * q + 1] = dy * inv, w.u[3 * q + 2] = dz * inv;
    }
    std::vector<int64_t> zc(M);
    for (int i = 0; i < M; ++i) zc[i] = z_[i % N];
    std::vector<double> eblock(r1 - r0);
    std::vector<double>* dedr;
    if (impl.f32) {
      w.f32.resize(*impl.f32, M, P);
      evaluate_block<float>(*impl.f32, w.f32, M, zc.data(), P, w.pi.data(), w.pj.data(), w.r.data(), r1 - r0, N,
                            eblock.data());
      dedr = &w.f32.dedr;
    } else {
      w.f64.resize(*impl.f64, M, P);
      evaluate_block<double>(*impl.f64, w.f64, M, zc.data(), P, w.pi.data(), w.pj.data(), w.r.data(), r1 - r0, N,
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
    double* fc = f + 3 * a0;
    std::fill(fc, fc + 3 * static_cast<size_t>(M), 0.0);
    for (int q = 0; q < P; ++q) {
      // E(r_ij), r_ij = |x_j - x_i|: F_i = +dE/dr u_ij, F_j = -dE/dr u_ij
      const double g = (*dedr)[q] * fscale;
      for (int d = 0; d < 3; ++d) {
        fc[3 * w.pi[q] + d] += g * w.u[3 * q + d];
        fc[3 * w.pj[q] + d] -= g * w.u[3 * q + d];
      }
    }
  };
  if (n_chunks == 1) {
    run_chunk(0);
  } else {
#pragma omp parallel for num_threads(n_chunks) schedule(static, 1)
    for (int c = 0; c < n_chunks; ++c) run_chunk(c);
  }
}

}  // namespace pymotor
