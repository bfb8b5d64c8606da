#include "pymotor/fast_painn.hpp"

#include "pymotor/cpu_features.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace pymotor {

using namespace dense;  // PackedLayer, gemm_packed, activations, check_dense (pymotor/dense.hpp)

using fast::interval_of;

namespace {

// Cubic Hermite basis at t in [0, 1): values h00, h10, h01, h11 (weights of y_k, h y'_k, y_k+1,
// h y'_k+1) and their t-derivatives.
inline void hermite_basis(double t, double* hb) {
  const double t2 = t * t, t3 = t2 * t;
  hb[0] = 2.0 * t3 - 3.0 * t2 + 1.0;
  hb[1] = t3 - 2.0 * t2 + t;
  hb[2] = -2.0 * t3 + 3.0 * t2;
  hb[3] = t3 - t2;
  hb[4] = 6.0 * t2 - 6.0 * t;
  hb[5] = 3.0 * t2 - 4.0 * t + 1.0;
  hb[6] = -6.0 * t2 + 6.0 * t;
  hb[7] = 3.0 * t2 - 2.0 * t;
}

// The exact filters of slot `slot` at n distances (double): W, dW are n x 3F.
void exact_filters(const PaiNNWeights& w, int slot, const double* r, int n, double* W, double* dW) {
  const int R = w.n_rbf, C = 3 * w.n_atom_basis, off = slot * C;
  std::vector<double> rbf(R), drbf(R);
  for (int p = 0; p < n; ++p) {
    const double x = r[p];
    fast::gaussian_rbf(x, w.rbf_offsets, w.rbf_widths, R, rbf.data(), drbf.data());
    double fc = 0.0, dfc = 0.0;
    if (x < w.cutoff) fast::cosine_cutoff(x, w.cutoff, fc, dfc);
    double* Wp = W + static_cast<size_t>(p) * C;
    double* dWp = dW + static_cast<size_t>(p) * C;
    for (int c = 0; c < C; ++c) {
      const double* a = w.filter.weight.data() + static_cast<size_t>(off + c) * R;
      double z = w.filter.bias.empty() ? 0.0 : w.filter.bias[off + c], dz = 0.0;
      for (int k = 0; k < R; ++k) z += a[k] * rbf[k], dz += a[k] * drbf[k];
      Wp[c] = z * fc;
      dWp[c] = dz * fc + z * dfc;
    }
  }
}

// Nodal Hermite tables of every slot: per slot (n_int + 1) nodes x [W (3F) | h dW/dr (3F)].
void hermite_nodes(const PaiNNWeights& w, int n_int, std::vector<std::vector<double>>& nodes) {
  const int C = 3 * w.n_atom_basis, S = w.n_slots();
  const double h = w.cutoff / n_int;
  std::vector<double> r(n_int + 1);
  for (int k = 0; k <= n_int; ++k) r[k] = std::min(k * h, w.cutoff);
  std::vector<double> W(static_cast<size_t>(n_int + 1) * C), dW(W.size());
  nodes.assign(S, {});
  for (int s = 0; s < S; ++s) {
    exact_filters(w, s, r.data(), n_int + 1, W.data(), dW.data());
    auto& nd = nodes[s];
    nd.resize(static_cast<size_t>(n_int + 1) * 2 * C);
    for (int k = 0; k <= n_int; ++k)
      for (int c = 0; c < C; ++c) {
        nd[static_cast<size_t>(k) * 2 * C + c] = W[static_cast<size_t>(k) * C + c];
        nd[static_cast<size_t>(k) * 2 * C + C + c] = h * dW[static_cast<size_t>(k) * C + c];
      }
  }
}

// Interpolated W, dW/dr of one slot at r from nodes (any precision); out: 3F each (double).
template <typename T>
void interpolate(const T* nd, int C, int n_int, double inv_h, double r, double* W, double* dW) {
  int k;
  double t;
  interval_of(r, inv_h, n_int, k, t);
  double hb[8];
  hermite_basis(t, hb);
  const T* n0 = nd + static_cast<size_t>(k) * 2 * C;
  const T* n1 = n0 + 2 * C;
  for (int c = 0; c < C; ++c) {
    const double y0 = n0[c], m0 = n0[C + c], y1 = n1[c], m1 = n1[C + c];
    W[c] = hb[0] * y0 + hb[1] * m0 + hb[2] * y1 + hb[3] * m1;
    dW[c] = (hb[4] * y0 + hb[5] * m0 + hb[6] * y1 + hb[7] * m1) * inv_h;
  }
}

// Max relative interpolation errors of W and dW/dr over all slots.
void measure_error(const PaiNNWeights& w, int n_int, const std::vector<std::vector<double>>& nodes, double& err_w,
                   double& err_dw) {
  const int C = 3 * w.n_atom_basis;
  const double inv_h = n_int / w.cutoff;
  auto exact = [&](int s, const double* r, int n, double* W, double* dW) { exact_filters(w, s, r, n, W, dW); };
  auto interpolated = [&](int s, int, double, double r, double* W, double* dW) {
    interpolate<double>(nodes[s].data(), C, n_int, inv_h, r, W, dW);
  };
  fast::table_errors(w.n_slots(), C, w.cutoff, n_int, exact, interpolated, err_w, err_dw);
}

// y = act(W x + b) of one row in double (tables at load).
std::vector<double> dense_row(const DenseLayer& d, const double* x) {
  std::vector<double> y(d.n_out), dy(d.n_out);
  for (int o = 0; o < d.n_out; ++o) {
    double s = d.bias.empty() ? 0.0 : d.bias[o];
    for (int i = 0; i < d.n_in; ++i) s += d.weight[static_cast<size_t>(o) * d.n_in + i] * x[i];
    y[o] = s;
  }
  activate<double>(d.activation, y.data(), dy.data(), y.size());
  return y;
}

}  // namespace

// ---- dtype-specific parts of the model ---------------------------------------------------

template <typename T>
struct PaiNNPacked {
  struct Block {
    PackedLayer<T> ctx1, ctx2, mix, intra1, intra2;
    // the last block's mu is not used by the energy: its intraatomic_context_net.1 is evaluated for
    // the q and q-mu outputs only (rows 0..F-1 and 2F..3F-1 of the layer)
    PackedLayer<T> intra2_q, intra2_qmu;
  };
  int F = 0, L = 0, n_int = 0, n_slots = 0;
  Isa isa = Isa::Generic;  // the kernels' instruction set; sets the vector width of L and of the GEMM panels
  double inv_h = 0.0, cutoff = 0.0;
  T eps = T(0);
  // per slot: (n_int + 1) nodes of 6F values: chunks of L features (L = the vector width for the
  // vectorised feature counts, else L = F), each [part s = scalar, r-direction, vector][W | h dW/dr][L]
  std::vector<avector<T>> nodes;
  std::vector<T> embedding;           // max_z x F
  std::vector<T> x0;                  // max_z x 3F: context_net of interaction 0 (a function of Z only)
  std::vector<Block> blocks;
  std::vector<PackedLayer<T>> readout;
  double energy_scale = 1.0;
  const T* slot(int t) const { return nodes[n_slots == 1 ? 0 : t].data(); }
  // offset of part s (0..2), value (ym = 0) or h dW/dr (ym = 1), feature f within a node
  size_t offset(int s, int ym, int f) const {
    return static_cast<size_t>(f / L) * 6 * L + static_cast<size_t>(s) * 2 * L + static_cast<size_t>(ym) * L + f % L;
  }
};

// The feature counts with vector message kernels (VectorFeatures, run_messages): their tables are
// chunked by the vector width of the model's instruction set (32 or 64 bytes).
constexpr bool vector_kernel_f(int F) { return F == 16 || F == 32 || F == 64 || F == 128; }

struct FastPaiNNModel::Impl {
  std::unique_ptr<PaiNNPacked<float>> f32;
  std::unique_ptr<PaiNNPacked<double>> f64;
};

namespace {

template <typename T>
std::unique_ptr<PaiNNPacked<T>> pack(const PaiNNWeights& w, int n_int, const std::vector<std::vector<double>>& nodes,
                                     Isa isa) {
  auto p = std::make_unique<PaiNNPacked<T>>();
  const int F = w.n_atom_basis;
  p->F = F;
  p->isa = isa;
  p->L = vector_kernel_f(F) ? isa_vector_bytes(isa) / static_cast<int>(sizeof(T)) : F;
  p->n_int = n_int;
  p->n_slots = w.n_slots();
  p->cutoff = w.cutoff;
  p->inv_h = n_int / w.cutoff;
  p->eps = static_cast<T>(w.epsilon);
  const int C = 3 * F;
  for (const auto& nd : nodes) {  // canonical [W (3F) | h dW/dr (3F)] per node -> chunked layout
    avector<T> t(nd.size());
    for (int k = 0; k <= n_int; ++k)
      for (int s = 0; s < 3; ++s)
        for (int ym = 0; ym < 2; ++ym)
          for (int f = 0; f < F; ++f)
            t[static_cast<size_t>(k) * 2 * C + p->offset(s, ym, f)] =
                static_cast<T>(nd[static_cast<size_t>(k) * 2 * C + ym * C + s * F + f]);
    p->nodes.push_back(std::move(t));
  }
  p->embedding.assign(w.embedding.begin(), w.embedding.end());
  p->energy_scale = w.energy_scale;
  for (const auto& b : w.blocks)
    p->blocks.push_back({PackedLayer<T>(b.context1, isa), PackedLayer<T>(b.context2, isa),
                         PackedLayer<T>(b.mu_mix, isa), PackedLayer<T>(b.intra1, isa), PackedLayer<T>(b.intra2, isa),
                         {}, {}});
  auto rows = [F](const DenseLayer& d, int r0) {  // output rows r0 .. r0 + F - 1 of a layer
    DenseLayer o = d;
    o.n_out = F;
    o.weight.assign(d.weight.begin() + static_cast<size_t>(r0) * d.n_in,
                    d.weight.begin() + static_cast<size_t>(r0 + F) * d.n_in);
    if (!d.bias.empty()) o.bias.assign(d.bias.begin() + r0, d.bias.begin() + r0 + F);
    return o;
  };
  p->blocks.back().intra2_q = PackedLayer<T>(rows(w.blocks.back().intra2, 0), isa);
  p->blocks.back().intra2_qmu = PackedLayer<T>(rows(w.blocks.back().intra2, 2 * F), isa);
  for (const auto& d : w.readout) p->readout.emplace_back(d, isa);
  // x0 in double, rounded once
  p->x0.resize(static_cast<size_t>(w.max_z) * 3 * F);
  for (int z = 0; z < w.max_z; ++z) {
    const std::vector<double> h = dense_row(w.blocks[0].context1, w.embedding.data() + static_cast<size_t>(z) * F);
    const std::vector<double> x = dense_row(w.blocks[0].context2, h.data());
    std::copy(x.begin(), x.end(), p->x0.begin() + static_cast<size_t>(z) * 3 * F);
  }
  return p;
}

}  // namespace

FastPaiNNModel::FastPaiNNModel(PaiNNWeights w, const std::string& dtype, int n_intervals, double tolerance,
                               const std::string& isa)
    : w_(std::move(w)), dtype_(dtype), impl_(std::make_unique<Impl>()) {
  const std::string who = "FastPaiNNModel";
  isa_ = isa_from_name(isa, who);
  fast::check_basis(who, dtype_, w_, w_.blocks.size());
  if (!(w_.epsilon >= 0.0)) throw std::invalid_argument(who + ": epsilon must be >= 0");
  const int F = w_.n_atom_basis, R = w_.n_rbf;
  check_dense(w_.filter, R, w_.n_slots() * 3 * F, "filter_net");
  if (w_.filter.activation != Activation::None) throw std::invalid_argument("filter_net must be linear");
  for (size_t t = 0; t < w_.blocks.size(); ++t) {
    const auto& b = w_.blocks[t];
    const std::string p = "block " + std::to_string(t) + " ";
    check_dense(b.context1, F, F, p + "interatomic_context_net.0");
    check_dense(b.context2, F, 3 * F, p + "interatomic_context_net.1");
    check_dense(b.mu_mix, F, 2 * F, p + "mu_channel_mix");
    check_dense(b.intra1, 2 * F, F, p + "intraatomic_context_net.0");
    check_dense(b.intra2, F, 3 * F, p + "intraatomic_context_net.1");
    if (b.context2.activation != Activation::None || b.intra2.activation != Activation::None ||
        b.mu_mix.activation != Activation::None)
      throw std::invalid_argument(p + "context_net.1, intraatomic_context_net.1 and mu_channel_mix must be linear");
    if (!b.mu_mix.bias.empty()) throw std::invalid_argument(p + "mu_channel_mix must have no bias");
  }
  fast::check_readout(who, w_.readout, F);

  std::vector<std::vector<double>> nodes;
  info_ = fast::choose_grid(who, w_.cutoff, n_intervals, tolerance, [&](int n, double& ew, double& ed) {
    hermite_nodes(w_, n, nodes);
    measure_error(w_, n, nodes, ew, ed);
  });
  if (dtype_ == "float32")
    impl_->f32 = pack<float>(w_, info_.n_intervals, nodes, isa_);
  else
    impl_->f64 = pack<double>(w_, info_.n_intervals, nodes, isa_);
}

FastPaiNNModel::~FastPaiNNModel() = default;

void FastPaiNNModel::filter_exact(int t, double r, double* W, double* dW) const {
  if (t < 0 || t >= n_interactions()) throw std::out_of_range("FastPaiNNModel: no interaction " + std::to_string(t));
  exact_filters(w_, w_.shared_filters ? 0 : t, &r, 1, W, dW);
}

void FastPaiNNModel::filter_interpolated(int t, double r, double* W, double* dW) const {
  if (t < 0 || t >= n_interactions()) throw std::out_of_range("FastPaiNNModel: no interaction " + std::to_string(t));
  const int C = filter_width();
  if (!(r >= 0.0 && r < w_.cutoff)) {
    std::fill(W, W + C, 0.0);
    std::fill(dW, dW + C, 0.0);
    return;
  }
  auto eval = [&](const auto& p) {
    int k;
    double x, hb[8];
    interval_of(r, p.inv_h, p.n_int, k, x);
    hermite_basis(x, hb);
    const auto* n0 = p.slot(t) + static_cast<size_t>(k) * 2 * C;
    const auto* n1 = n0 + 2 * C;
    for (int s = 0; s < 3; ++s)
      for (int f = 0; f < p.F; ++f) {
        const size_t o = p.offset(s, 0, f), om = p.offset(s, 1, f);
        const double y0 = n0[o], m0 = n0[om], y1 = n1[o], m1 = n1[om];
        W[s * p.F + f] = hb[0] * y0 + hb[1] * m0 + hb[2] * y1 + hb[3] * m1;
        dW[s * p.F + f] = (hb[4] * y0 + hb[5] * m0 + hb[6] * y1 + hb[7] * m1) * p.inv_h;
      }
  };
  if (impl_->f32)
    eval(*impl_->f32);
  else
    eval(*impl_->f64);
}

// ---- the potential --------------------------------------------------------------------------

namespace {

// Scratch arrays of one thread for a block of M atoms and P half pairs.
template <typename T>
struct Ws {
  // forward, kept for the backward pass (per interaction t)
  // (64-byte aligned: rows of F floats are whole cache lines apart)
  std::vector<avector<T>> x, dctx, mu, Y, vn, s, a, dint;  // vn: 1 / |V|
  avector<T> q, mid, ctx, hbuf;
  // backward
  avector<T> gq, gmu, gmu2, gx, ga, gh, gctx, gY;
  std::vector<avector<T>> ro_z, ro_d;
  avector<T> ro_g, ro_tmp;
  // pairs
  std::vector<int> pk;
  std::vector<T> hb, u;
  std::vector<double> dedr, dedu;
  void resize(const PaiNNPacked<T>& p, int M, int P) {
    const size_t F = p.F, m = M;
    const size_t n_t = p.blocks.size();
    x.resize(n_t), dctx.resize(n_t), mu.resize(n_t), Y.resize(n_t), vn.resize(n_t), s.resize(n_t), a.resize(n_t);
    dint.resize(n_t);
    for (size_t t = 0; t < n_t; ++t) {
      x[t].resize(m * 3 * F);
      dctx[t].resize(t > 0 ? m * F : 0);
      mu[t].resize(t > 0 ? m * 3 * F : 0);
      Y[t].resize(m * 6 * F);
      vn[t].resize(m * F), s[t].resize(m * F), a[t].resize(m * 3 * F), dint[t].resize(m * F);
    }
    q.resize(m * F), mid.resize(m * 3 * F), ctx.resize(m * 2 * F), hbuf.resize(m * F);
    gq.resize(m * F), gmu.resize(m * 3 * F), gmu2.resize(m * 3 * F), gx.resize(m * 3 * F), ga.resize(m * 3 * F);
    gh.resize(m * F), gctx.resize(m * 2 * F), gY.resize(m * 6 * F);
    ro_z.resize(p.readout.size()), ro_d.resize(p.readout.size());
    size_t widest = F;
    for (size_t l = 0; l < p.readout.size(); ++l) {
      ro_z[l].resize(m * p.readout[l].n_out);
      ro_d[l].resize(m * p.readout[l].n_out);
      widest = std::max<size_t>(widest, p.readout[l].n_out);
    }
    ro_g.resize(m * widest), ro_tmp.resize(m * widest);
    pk.resize(P), hb.resize(static_cast<size_t>(P) * 8), u.resize(static_cast<size_t>(P) * 3);
    dedr.resize(P), dedu.resize(static_cast<size_t>(P) * 3);
  }
};

// ---- the message block, fused over half pairs ----
// One body per kernel, two ways to step through the F features of an atom row and of a table node:
// ScalarFeatures, one feature per step for any F (an auto-vectorised `omp simd` loop; table chunk
// L = F), and VectorFeatures, 32-byte vectors for the F of vector_kernel_f, known at compile time:
// every load is one base register per atom row (or table node) plus an immediate offset, so the many
// streams of the backward pass do not spill their addresses (table chunk L = W: a pair reads two
// sequential 3F streams, nodes k and k + 1, and the next pair's chunk is prefetched).
// at(p) is the step (a T, or a vector of W) at p; the part s (0..2), value (ym = 0) or h dW/dr
// (ym = 1) of the step at feature f of a node is at(node + table_step * f + (2 s + ym) L).
template <typename T>
struct ScalarFeatures {
  using V = T;
  static constexpr bool vector = false;
  static constexpr int W = 1, table_step = 1;
  int F, L;
  explicit ScalarFeatures(int n) : F(n), L(n) {}
  [[gnu::always_inline]] static const T& at(const T* p) { return *p; }
  [[gnu::always_inline]] static T& at(T* p) { return *p; }
  [[gnu::always_inline]] static T sum(const T& v) { return v; }
};

template <typename T, int F_, int VB>
struct VectorFeatures {
  typedef T V __attribute__((vector_size(VB)));
  typedef T VU __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));
  static constexpr bool vector = true;
  static constexpr int W = VB / static_cast<int>(sizeof(T)), table_step = 6, F = F_, L = W;
  static_assert(F % W == 0, "F must be a multiple of the vector width");
  [[gnu::always_inline]] static const VU& at(const T* p) { return *reinterpret_cast<const VU*>(p); }
  [[gnu::always_inline]] static VU& at(T* p) { return *reinterpret_cast<VU*>(p); }
  [[gnu::always_inline]] static T sum(const V& v) {  // the lanes added in order
    T s[W], t = 0;
    __builtin_memcpy(s, &v, sizeof(V));
    for (int k = 0; k < W; ++k) t += s[k];
    return t;
  }
};

// What the message kernels read of half pair e: its table node k (node k + 1 is 2C further), the
// Hermite weights of the value (h) and of its t-derivative (d), the unit vector u_ij and the atoms.
template <typename T>
struct HalfPair {
  const T* n0;
  T h00, h10, h01, h11, d00, d10, d01, d11, u0, u1, u2;
  int i, j;
};

template <typename T>
[[gnu::always_inline]] inline HalfPair<T> half_pair(const T* tab, int C, const Ws<T>& ws, const int* pi,
                                                   const int* pj, int e) {
  const T* hb = ws.hb.data() + static_cast<size_t>(e) * 8;
  return {tab + static_cast<size_t>(ws.pk[e]) * 2 * C, hb[0], hb[1], hb[2], hb[3], hb[4], hb[5], hb[6], hb[7],
          ws.u[3 * e], ws.u[3 * e + 1], ws.u[3 * e + 2], pi[e], pj[e]};
}

// The next pair's table chunk of feature f (6 vectors of VB bytes per node: 3 cache lines with
// AVX2, 6 with AVX-512), fetched while this pair computes.
template <int VB, typename T>
[[gnu::always_inline]] inline void prefetch_chunk(const T* nn, int C, int f) {
  const char* pn = reinterpret_cast<const char*>(nn + 6 * f);
  const char* pn1 = reinterpret_cast<const char*>(nn + 2 * C + 6 * f);
  for (int b = 0; b < 6 * VB; b += 64) __builtin_prefetch(pn + b), __builtin_prefetch(pn1 + b);
}

// Forward, one step at feature f of half pair hp (n: its table node at f):
// mid_i += WR xR_j u_ij + Wv xv_j mu_j (mid holds mu on entry), q_i += Ws xs_j, and for j the same
// with u_ji = -u_ij. `first`: mu == 0 (interaction 0): no vector part.
template <bool first, class A, typename T>
[[gnu::always_inline]] inline void message_step(const A& a, int f, const T* __restrict n, const HalfPair<T>& hp,
                                                const T* __restrict xi, const T* __restrict xj, T* __restrict qi,
                                                T* __restrict qj, T* __restrict mi, T* __restrict mj,
                                                const T* __restrict ui, const T* __restrict uj) {
  using V = typename A::V;
  const int F = a.F, L = a.L, C2 = 6 * F;
  const V ws_ = hp.h00 * A::at(n) + hp.h10 * A::at(n + L) + hp.h01 * A::at(n + C2) + hp.h11 * A::at(n + C2 + L);
  const V wr = hp.h00 * A::at(n + 2 * L) + hp.h10 * A::at(n + 3 * L) + hp.h01 * A::at(n + C2 + 2 * L) +
               hp.h11 * A::at(n + C2 + 3 * L);
  A::at(qi + f) = A::at(qi + f) + ws_ * A::at(xj + f);
  A::at(qj + f) = A::at(qj + f) + ws_ * A::at(xi + f);
  const V rj = wr * A::at(xj + F + f), ri = wr * A::at(xi + F + f);
  if constexpr (first) {
    A::at(mi + f) = A::at(mi + f) + rj * hp.u0;
    A::at(mi + F + f) = A::at(mi + F + f) + rj * hp.u1;
    A::at(mi + 2 * F + f) = A::at(mi + 2 * F + f) + rj * hp.u2;
    A::at(mj + f) = A::at(mj + f) - ri * hp.u0;
    A::at(mj + F + f) = A::at(mj + F + f) - ri * hp.u1;
    A::at(mj + 2 * F + f) = A::at(mj + 2 * F + f) - ri * hp.u2;
  } else {
    const V wv = hp.h00 * A::at(n + 4 * L) + hp.h10 * A::at(n + 5 * L) + hp.h01 * A::at(n + C2 + 4 * L) +
                 hp.h11 * A::at(n + C2 + 5 * L);
    const V vj = wv * A::at(xj + 2 * F + f), vi = wv * A::at(xi + 2 * F + f);
    A::at(mi + f) = A::at(mi + f) + rj * hp.u0 + vj * A::at(uj + f);
    A::at(mi + F + f) = A::at(mi + F + f) + rj * hp.u1 + vj * A::at(uj + F + f);
    A::at(mi + 2 * F + f) = A::at(mi + 2 * F + f) + rj * hp.u2 + vj * A::at(uj + 2 * F + f);
    A::at(mj + f) = A::at(mj + f) + vi * A::at(ui + f) - ri * hp.u0;
    A::at(mj + F + f) = A::at(mj + F + f) + vi * A::at(ui + F + f) - ri * hp.u1;
    A::at(mj + 2 * F + f) = A::at(mj + 2 * F + f) + vi * A::at(ui + 2 * F + f) - ri * hp.u2;
  }
}

// Backward, one step at feature f of half pair hp: given gq, gm (gradients of q and mu after the
// block), adds to ar the step's dE/dt (t: the table coordinate) and to a0..a2 its dE/du, and,
// unless `first`, to gx the gradient of x and to gu that of the incoming mu.
template <bool first, class A, typename T, typename V>
[[gnu::always_inline]] inline void message_gradient_step(
    const A& a, int f, const T* __restrict n, const HalfPair<T>& hp, const T* __restrict xi,
    const T* __restrict xj, const T* __restrict gqi, const T* __restrict gqj, const T* __restrict gmi,
    const T* __restrict gmj, const T* __restrict mui, const T* __restrict muj, T* __restrict gxi,
    T* __restrict gxj, T* __restrict gui, T* __restrict guj, V& ar, V& a0, V& a1, V& a2) {
  const int F = a.F, L = a.L, C2 = 6 * F;
  const V c0 = A::at(n), c1 = A::at(n + L), c2 = A::at(n + C2), c3 = A::at(n + C2 + L);
  const V dws = hp.d00 * c0 + hp.d10 * c1 + hp.d01 * c2 + hp.d11 * c3;
  const V r0 = A::at(n + 2 * L), r1 = A::at(n + 3 * L), r2 = A::at(n + C2 + 2 * L), r3 = A::at(n + C2 + 3 * L);
  const V wr = hp.h00 * r0 + hp.h10 * r1 + hp.h01 * r2 + hp.h11 * r3;
  const V dwr = hp.d00 * r0 + hp.d10 * r1 + hp.d01 * r2 + hp.d11 * r3;
  const V gi0 = A::at(gmi + f), gi1 = A::at(gmi + F + f), gi2 = A::at(gmi + 2 * F + f);
  const V gj0 = A::at(gmj + f), gj1 = A::at(gmj + F + f), gj2 = A::at(gmj + 2 * F + f);
  const V Ai = gi0 * hp.u0 + gi1 * hp.u1 + gi2 * hp.u2, Aj = gj0 * hp.u0 + gj1 * hp.u1 + gj2 * hp.u2;
  const V gqi_ = A::at(gqi + f), gqj_ = A::at(gqj + f);
  const V xsi = A::at(xi + f), xsj = A::at(xj + f), xri = A::at(xi + F + f), xrj = A::at(xj + F + f);
  V g = dws * (gqi_ * xsj + gqj_ * xsi) + dwr * (xrj * Ai - xri * Aj);
  if constexpr (!first) {
    const V ws_ = hp.h00 * c0 + hp.h10 * c1 + hp.h01 * c2 + hp.h11 * c3;
    const V v0 = A::at(n + 4 * L), v1 = A::at(n + 5 * L), v2 = A::at(n + C2 + 4 * L), v3 = A::at(n + C2 + 5 * L);
    const V wv = hp.h00 * v0 + hp.h10 * v1 + hp.h01 * v2 + hp.h11 * v3;
    const V dwv = hp.d00 * v0 + hp.d10 * v1 + hp.d01 * v2 + hp.d11 * v3;
    const V Bij = gi0 * A::at(muj + f) + gi1 * A::at(muj + F + f) + gi2 * A::at(muj + 2 * F + f);
    const V Bji = gj0 * A::at(mui + f) + gj1 * A::at(mui + F + f) + gj2 * A::at(mui + 2 * F + f);
    const V xvi = A::at(xi + 2 * F + f), xvj = A::at(xj + 2 * F + f);
    A::at(gxj + f) = A::at(gxj + f) + ws_ * gqi_;
    A::at(gxi + f) = A::at(gxi + f) + ws_ * gqj_;
    A::at(gxj + F + f) = A::at(gxj + F + f) + wr * Ai;
    A::at(gxi + F + f) = A::at(gxi + F + f) - wr * Aj;
    A::at(gxj + 2 * F + f) = A::at(gxj + 2 * F + f) + wv * Bij;
    A::at(gxi + 2 * F + f) = A::at(gxi + 2 * F + f) + wv * Bji;
    const V vj = wv * xvj, vi = wv * xvi;
    A::at(guj + f) = A::at(guj + f) + vj * gi0;
    A::at(guj + F + f) = A::at(guj + F + f) + vj * gi1;
    A::at(guj + 2 * F + f) = A::at(guj + 2 * F + f) + vj * gi2;
    A::at(gui + f) = A::at(gui + f) + vi * gj0;
    A::at(gui + F + f) = A::at(gui + F + f) + vi * gj1;
    A::at(gui + 2 * F + f) = A::at(gui + 2 * F + f) + vi * gj2;
    g = g + dwv * (xvj * Bij + xvi * Bji);
  }
  ar += g;
  const V cj = wr * xrj, ci = wr * xri;
  a0 += cj * gi0 - ci * gj0;
  a1 += cj * gi1 - ci * gj1;
  a2 += cj * gi2 - ci * gj2;
}

// The message block over all half pairs (forward), q and mid updated in place.
template <typename T, bool first>
struct MessagesForward {
  template <class A>
  [[gnu::always_inline]] static void run(const A a, const T* tab, int P, const int* pi, const int* pj,
                                         const Ws<T>& ws, const T* __restrict x, const T* __restrict mu,
                                         T* __restrict q, T* __restrict mid) {
    const int F = a.F, C = 3 * F;
    for (int e = 0; e < P; ++e) {
      const HalfPair<T> hp = half_pair(tab, C, ws, pi, pj, e);
      const T* __restrict xi = x + static_cast<size_t>(hp.i) * C;
      const T* __restrict xj = x + static_cast<size_t>(hp.j) * C;
      T* __restrict qi = q + static_cast<size_t>(hp.i) * F;
      T* __restrict qj = q + static_cast<size_t>(hp.j) * F;
      T* __restrict mi = mid + static_cast<size_t>(hp.i) * C;
      T* __restrict mj = mid + static_cast<size_t>(hp.j) * C;
      const T* __restrict ui = first ? nullptr : mu + static_cast<size_t>(hp.i) * C;
      const T* __restrict uj = first ? nullptr : mu + static_cast<size_t>(hp.j) * C;
      if constexpr (A::vector) {
        const T* nn = tab + static_cast<size_t>(ws.pk[e + 1 < P ? e + 1 : e]) * 2 * C;
        for (int f = 0; f < F; f += A::W) {
          prefetch_chunk<sizeof(typename A::V)>(nn, C, f);
          message_step<first>(a, f, hp.n0 + A::table_step * f, hp, xi, xj, qi, qj, mi, mj, ui, uj);
        }
      } else {
#pragma omp simd
        for (int f = 0; f < F; ++f)
          message_step<first>(a, f, hp.n0 + f, hp, xi, xj, qi, qj, mi, mj, ui, uj);
      }
    }
  }
};

// Backward of the message block: given gq, gm (gradients of q and mu after the block), adds
// dE/dr and dE/du of every half pair (dedr in model units; the t-derivative of the table times
// inv_h) and, unless `first`, the gradients of x (gx) and of the incoming mu (gmu_in).
template <typename T, bool first>
struct MessagesBackward {
  template <class A>
  [[gnu::always_inline]] static void run(const A a, const T* tab, int P, const int* pi, const int* pj, Ws<T>& ws,
                                         double inv_h, const T* __restrict x, const T* __restrict mu,
                                         const T* __restrict gq, const T* __restrict gm, T* __restrict gx,
                                         T* __restrict gmu_in) {
    using V = typename A::V;
    const int F = a.F, C = 3 * F;
    for (int e = 0; e < P; ++e) {
      const HalfPair<T> hp = half_pair(tab, C, ws, pi, pj, e);
      const int i = hp.i, j = hp.j;
      const T* __restrict xi = x + static_cast<size_t>(i) * C;
      const T* __restrict xj = x + static_cast<size_t>(j) * C;
      const T* __restrict gqi = gq + static_cast<size_t>(i) * F;
      const T* __restrict gqj = gq + static_cast<size_t>(j) * F;
      const T* __restrict gmi = gm + static_cast<size_t>(i) * C;
      const T* __restrict gmj = gm + static_cast<size_t>(j) * C;
      const T* __restrict mui = first ? nullptr : mu + static_cast<size_t>(i) * C;
      const T* __restrict muj = first ? nullptr : mu + static_cast<size_t>(j) * C;
      T* __restrict gxi = first ? nullptr : gx + static_cast<size_t>(i) * C;
      T* __restrict gxj = first ? nullptr : gx + static_cast<size_t>(j) * C;
      T* __restrict gui = first ? nullptr : gmu_in + static_cast<size_t>(i) * C;
      T* __restrict guj = first ? nullptr : gmu_in + static_cast<size_t>(j) * C;
      V ar = V{}, a0 = V{}, a1 = V{}, a2 = V{};
      if constexpr (A::vector) {
        const T* nn = tab + static_cast<size_t>(ws.pk[e + 1 < P ? e + 1 : e]) * 2 * C;
        for (int f = 0; f < F; f += A::W) {
          prefetch_chunk<sizeof(typename A::V)>(nn, C, f);
          message_gradient_step<first>(a, f, hp.n0 + A::table_step * f, hp, xi, xj, gqi, gqj, gmi, gmj, mui, muj,
                                       gxi, gxj, gui, guj, ar, a0, a1, a2);
        }
      } else {
#pragma omp simd reduction(+ : ar, a0, a1, a2)
        for (int f = 0; f < F; ++f)
          message_gradient_step<first>(a, f, hp.n0 + f, hp, xi, xj, gqi, gqj, gmi, gmj, mui, muj, gxi, gxj, gui,
                                       guj, ar, a0, a1, a2);
      }
      ws.dedr[e] += static_cast<double>(A::sum(ar)) * inv_h;
      ws.dedu[3 * e] += static_cast<double>(A::sum(a0));
      ws.dedu[3 * e + 1] += static_cast<double>(A::sum(a1));
      ws.dedu[3 * e + 2] += static_cast<double>(A::sum(a2));
    }
  }
};

// A message kernel with the feature count known at compile time for the common sizes (all offsets
// into the per-atom rows and the table become immediates: fewer live pointers), else stepping
// through the features one by one.
template <typename T, int VB, class Kernel, typename... Args>
[[gnu::always_inline]] inline void run_messages(int F, Args&&... args) {
  switch (F) {
    case 16: return Kernel::run(VectorFeatures<T, 16, VB>{}, std::forward<Args>(args)...);
    case 32: return Kernel::run(VectorFeatures<T, 32, VB>{}, std::forward<Args>(args)...);
    case 64: return Kernel::run(VectorFeatures<T, 64, VB>{}, std::forward<Args>(args)...);
    case 128: return Kernel::run(VectorFeatures<T, 128, VB>{}, std::forward<Args>(args)...);
    default: return Kernel::run(ScalarFeatures<T>(F), std::forward<Args>(args)...);
  }
}

// Energy (model units, per replica) and dE/dr, dE/du (model units, per half pair) of one block
// of whole replicas: atoms 0..M-1 (local), half pairs (pi, pj) with distances r (model units)
// and unit vectors u from i to j. VB: the vector width (bytes) of the build, as the tables were laid
// out (PaiNNPacked::L).
template <typename T, int VB>
__attribute__((always_inline)) inline void evaluate_block_body(const PaiNNPacked<T>& p, Ws<T>& ws, int M,
                                                               const int64_t* z, int P, const int* pi, const int* pj,
                                                               const double* r, const double* u, int n_rep,
                                                               int n_atoms, double* energy) {
  const int F = p.F, C = 3 * F, NT = static_cast<int>(p.blocks.size());
  const size_t MF = static_cast<size_t>(M) * F, MC = static_cast<size_t>(M) * C;
  for (int e = 0; e < P; ++e) {
    double t, hb[8];
    interval_of(r[e], p.inv_h, p.n_int, ws.pk[e], t);
    hermite_basis(t, hb);
    for (int c = 0; c < 8; ++c) ws.hb[static_cast<size_t>(e) * 8 + c] = static_cast<T>(hb[c]);
    for (int d = 0; d < 3; ++d) ws.u[3 * e + d] = static_cast<T>(u[3 * e + d]);
  }
  T* q = ws.q.data();
  for (int i = 0; i < M; ++i) {
    std::memcpy(q + static_cast<size_t>(i) * F, &p.embedding[static_cast<size_t>(z[i]) * F], sizeof(T) * F);
    std::memcpy(&ws.x[0][static_cast<size_t>(i) * C], &p.x0[static_cast<size_t>(z[i]) * C], sizeof(T) * C);
  }
  // ---- forward ----
  for (int t = 0; t < NT; ++t) {
    const auto& b = p.blocks[t];
    T* x = ws.x[t].data();
    if (t > 0) {
      b.ctx1.forward(M, q, F, ws.hbuf.data(), F);
      activate_fast<T, VB>(b.ctx1.act, ws.hbuf.data(), ws.dctx[t].data(), MF);
      b.ctx2.forward(M, ws.hbuf.data(), F, x, C);
    }
    T* mid = ws.mid.data();
    if (t == 0) {
      std::fill(mid, mid + MC, T(0));
      run_messages<T, VB, MessagesForward<T, true>>(F, p.slot(t), P, pi, pj, ws, x, nullptr, q, mid);
    } else {
      std::copy(ws.mu[t].begin(), ws.mu[t].end(), mid);
      run_messages<T, VB, MessagesForward<T, false>>(F, p.slot(t), P, pi, pj, ws, x, ws.mu[t].data(), q, mid);
    }
    // mixing: [V | W] = mid M^T per component, ctx = [q, |V|]
    T* Y = ws.Y[t].data();
    b.mix.forward(3 * M, mid, F, Y, 2 * F);
    T* vinv = ws.vn[t].data();  // 1 / |V| for the backward pass
    T* sv = ws.s[t].data();
    T* ctx = ws.ctx.data();
    for (int i = 0; i < M; ++i) {
      const T* y0 = Y + static_cast<size_t>(3 * i) * 2 * F;
      const T* y1 = y0 + 2 * F;
      const T* y2 = y1 + 2 * F;
      T* c = ctx + static_cast<size_t>(i) * 2 * F;
      std::memcpy(c, q + static_cast<size_t>(i) * F, sizeof(T) * F);
#pragma omp simd
      for (int f = 0; f < F; ++f) {
        const T n = std::sqrt(y0[f] * y0[f] + y1[f] * y1[f] + y2[f] * y2[f] + p.eps);
        vinv[static_cast<size_t>(i) * F + f] = T(1) / n;
        c[F + f] = n;
        sv[static_cast<size_t>(i) * F + f] = y0[f] * y0[F + f] + y1[f] * y1[F + f] + y2[f] * y2[F + f];
      }
    }
    b.intra1.forward(M, ctx, 2 * F, ws.hbuf.data(), F);
    activate_fast<T, VB>(b.intra1.act, ws.hbuf.data(), ws.dint[t].data(), MF);
    T* a = ws.a[t].data();
    if (t + 1 < NT) {
      b.intra2.forward(M, ws.hbuf.data(), F, a, C);
    } else {  // (aq, -, aqmu): the mu output of the last block is not needed
      b.intra2_q.forward(M, ws.hbuf.data(), F, a, C);
      b.intra2_qmu.forward(M, ws.hbuf.data(), F, a + 2 * F, C);
    }
    for (int i = 0; i < M; ++i) {
      T* qi = q + static_cast<size_t>(i) * F;
      const T* ai = a + static_cast<size_t>(i) * C;
      const T* si = sv + static_cast<size_t>(i) * F;
#pragma omp simd
      for (int f = 0; f < F; ++f) qi[f] += ai[f] + ai[2 * F + f] * si[f];
    }
    if (t + 1 < NT) {  // the last block's mu is not used by the energy
      T* mu = ws.mu[t + 1].data();
      for (int i = 0; i < M; ++i) {
        const T* ai = a + static_cast<size_t>(i) * C + F;
        for (int d = 0; d < 3; ++d) {
          const T* wd = Y + static_cast<size_t>(3 * i + d) * 2 * F + F;
          const T* md = mid + static_cast<size_t>(i) * C + static_cast<size_t>(d) * F;
          T* o = mu + static_cast<size_t>(i) * C + static_cast<size_t>(d) * F;
#pragma omp simd
          for (int f = 0; f < F; ++f) o[f] = md[f] + ai[f] * wd[f];
        }
      }
    }
  }
  // ---- readout ----
  const T* in = q;
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
  // ---- backward: dE/dq through the readout ----
  T* gq = ws.gq.data();
  {
    T* g = ws.ro_g.data();
    std::fill(g, g + M, static_cast<T>(p.energy_scale));
    for (size_t l = L; l-- > 0;) {
      const auto& d = p.readout[l];
      const size_t n = static_cast<size_t>(M) * d.n_out;
      if (d.act != Activation::None)
        for (size_t k = 0; k < n; ++k) g[k] *= ws.ro_d[l][k];
      T* out = l == 0 ? gq : ws.ro_tmp.data();
      d.backward(M, g, d.n_out, out, d.n_in, false);
      if (l > 0) std::copy(out, out + static_cast<size_t>(M) * d.n_in, g);
    }
  }
  // ---- backward through the blocks ----
  std::fill(ws.dedr.begin(), ws.dedr.begin() + P, 0.0);
  std::fill(ws.dedu.begin(), ws.dedu.begin() + 3 * static_cast<size_t>(P), 0.0);
  T* gmu = ws.gmu.data();
  std::fill(gmu, gmu + MC, T(0));
  for (int t = NT - 1; t >= 0; --t) {
    const auto& b = p.blocks[t];
    const T* Y = ws.Y[t].data();
    const T* vinv = ws.vn[t].data();
    const T* sv = ws.s[t].data();
    const T* a = ws.a[t].data();
    const bool last = t == NT - 1;  // gmu == 0
    // mixing: ga = (gq, sum_d gmu_d W_d, gq s)
    T* ga = ws.ga.data();
    for (int i = 0; i < M; ++i) {
      const T* gqi = gq + static_cast<size_t>(i) * F;
      const T* gmi = gmu + static_cast<size_t>(i) * C;
      const T* si = sv + static_cast<size_t>(i) * F;
      T* g = ga + static_cast<size_t>(i) * C;
      const T* w0 = Y + static_cast<size_t>(3 * i) * 2 * F + F;
      const T* w1 = w0 + 2 * F;
      const T* w2 = w1 + 2 * F;
#pragma omp simd
      for (int f = 0; f < F; ++f) {
        g[f] = gqi[f];
        g[F + f] = last ? T(0) : gmi[f] * w0[f] + gmi[F + f] * w1[f] + gmi[2 * F + f] * w2[f];
        g[2 * F + f] = gqi[f] * si[f];
      }
    }
    T* gh = ws.gh.data();
    if (!last) {
      b.intra2.backward(M, ga, C, gh, F, false);
    } else {
      b.intra2_q.backward(M, ga, C, gh, F, false);
      b.intra2_qmu.backward(M, ga + 2 * F, C, gh, F, true);
    }
    if (b.intra1.act != Activation::None) {
      const T* d = ws.dint[t].data();
      for (size_t k = 0; k < MF; ++k) gh[k] *= d[k];
    }
    T* gctx = ws.gctx.data();
    b.intra1.backward(M, gh, F, gctx, 2 * F, false);
    // gY = (gV, gW) per component; then gq += gctx_q (residual kept)
    T* gY = ws.gY.data();
    for (int i = 0; i < M; ++i) {
      T* gqi = gq + static_cast<size_t>(i) * F;
      const T* ai = a + static_cast<size_t>(i) * C;
      const T* gci = gctx + static_cast<size_t>(i) * 2 * F;
      const T* vni = vinv + static_cast<size_t>(i) * F;
      for (int d = 0; d < 3; ++d) {
        const T* y = Y + static_cast<size_t>(3 * i + d) * 2 * F;
        const T* gmd = gmu + static_cast<size_t>(i) * C + static_cast<size_t>(d) * F;
        T* gy = gY + static_cast<size_t>(3 * i + d) * 2 * F;
#pragma omp simd
        for (int f = 0; f < F; ++f) {
          const T gs = gqi[f] * ai[2 * F + f];
          gy[f] = gs * y[F + f] + gci[F + f] * y[f] * vni[f];
          gy[F + f] = (last ? T(0) : gmd[f] * ai[F + f]) + gs * y[f];
        }
      }
#pragma omp simd
      for (int f = 0; f < F; ++f) gqi[f] += gci[f];
    }
    b.mix.backward(3 * M, gY, 2 * F, gmu, F, true);  // gmu: now the gradient of mid (residual + mixing)
    // messages
    if (t == 0) {
      run_messages<T, VB, MessagesBackward<T, true>>(F, p.slot(t), P, pi, pj, ws, p.inv_h, ws.x[t].data(), nullptr, gq,
                                                   gmu, nullptr, nullptr);
    } else {
      T* gx = ws.gx.data();
      T* gmu2 = ws.gmu2.data();
      std::fill(gx, gx + MC, T(0));
      std::copy(gmu, gmu + MC, gmu2);  // residual mu -> mid
      run_messages<T, VB, MessagesBackward<T, false>>(F, p.slot(t), P, pi, pj, ws, p.inv_h, ws.x[t].data(),
                                                    ws.mu[t].data(), gq, gmu, gx, gmu2);
      b.ctx2.backward(M, gx, C, gh, F, false);
      if (b.ctx1.act != Activation::None) {
        const T* d = ws.dctx[t].data();
        for (size_t k = 0; k < MF; ++k) gh[k] *= d[k];
      }
      b.ctx1.backward(M, gh, F, gq, F, true);  // residual q -> q + dq: gq += context_net backward
      std::swap(ws.gmu, ws.gmu2);
      gmu = ws.gmu.data();
    }
  }
}

template <typename T>
void evaluate_block_generic(const PaiNNPacked<T>& p, Ws<T>& ws, int M, const int64_t* z, int P, const int* pi,
                            const int* pj, const double* r, const double* u, int n_rep, int n_atoms, double* energy) {
  evaluate_block_body<T, 32>(p, ws, M, z, P, pi, pj, r, u, n_rep, n_atoms, energy);
}

#ifdef PYMOTOR_HAVE_AVX2_KERNEL
// The same code compiled for AVX2+FMA: the per-pair loops run 8 floats (4 doubles) wide.
template <typename T>
__attribute__((target("avx2,fma"))) void evaluate_block_avx2(const PaiNNPacked<T>& p, Ws<T>& ws, int M,
                                                             const int64_t* z, int P, const int* pi, const int* pj,
                                                             const double* r, const double* u, int n_rep, int n_atoms,
                                                             double* energy) {
  evaluate_block_body<T, 32>(p, ws, M, z, P, pi, pj, r, u, n_rep, n_atoms, energy);
}

// ... and for AVX-512: 16 floats (8 doubles) wide, tables chunked by 64 bytes.
template <typename T>
PYMOTOR_TARGET_AVX512 void evaluate_block_avx512(const PaiNNPacked<T>& p, Ws<T>& ws, int M, const int64_t* z, int P,
                                                 const int* pi, const int* pj, const double* r, const double* u,
                                                 int n_rep, int n_atoms, double* energy) {
  evaluate_block_body<T, 64>(p, ws, M, z, P, pi, pj, r, u, n_rep, n_atoms, energy);
}
#endif

template <typename T>
void evaluate_block(const PaiNNPacked<T>& p, Ws<T>& ws, int M, const int64_t* z, int P, const int* pi, const int* pj,
                    const double* r, const double* u, int n_rep, int n_atoms, double* energy) {
#ifdef PYMOTOR_HAVE_AVX2_KERNEL
  if (p.isa == Isa::AVX512) return evaluate_block_avx512<T>(p, ws, M, z, P, pi, pj, r, u, n_rep, n_atoms, energy);
  if (p.isa == Isa::AVX2) return evaluate_block_avx2<T>(p, ws, M, z, P, pi, pj, r, u, n_rep, n_atoms, energy);
#endif
  evaluate_block_generic<T>(p, ws, M, z, P, pi, pj, r, u, n_rep, n_atoms, energy);
}

}  // namespace

struct FastPaiNNPotential::Workspace : fast::ReplicaBlock {  // the block's pairs + scratch
  Ws<float> f32;
  Ws<double> f64;
  std::vector<double> eblock;
};

FastPaiNNPotential::FastPaiNNPotential(std::shared_ptr<const FastPaiNNModel> model, std::vector<int64_t> z,
                                       double cutoff_A, double skin_A, double length_unit_A, double energy_unit_eV,
                                       double offset_eV, int n_threads, int block_atoms)
    : FastPotentialBase("FastPaiNNPotential", model.get(), std::move(z), cutoff_A, skin_A, length_unit_A,
                        energy_unit_eV, offset_eV, n_threads),
      model_(std::move(model)),
      block_atoms_(block_atoms) {
  set_block_atoms(block_atoms);
}

FastPaiNNPotential::~FastPaiNNPotential() = default;

void FastPaiNNPotential::set_block_atoms(int n) {
  if (n < 1) throw std::invalid_argument("FastPaiNNPotential: block_atoms must be >= 1");
  block_atoms_ = n;
}

void FastPaiNNPotential::compute(const double* x, int R, int N, double* e, double* f) {
  std::vector<size_t> start;
  const PairList* pairs = replica_pairs(x, R, N, start);
  if (!pairs) return;
  const PairList& pl = *pairs;
  const int n_chunks = this->n_chunks(R);
  for (int c = static_cast<int>(ws_.size()); c < n_chunks; ++c) ws_.push_back(std::make_unique<Workspace>());
  const double inv_len = 1.0 / length_unit_A_;
  const double fscale = energy_unit_eV_ / length_unit_A_;
  const FastPaiNNModel::Impl& impl = model_->impl();
  const ZBLWeights& zbl = model_->weights().zbl;
  const int per_block = std::max(1, block_atoms_ / N);  // replicas per block

  auto run_block = [&](Workspace& w, int r0, int r1) {
    w.set(pl, start, x, z_, r0, r1, inv_len);
    const int M = w.M, P = w.P;
    w.eblock.assign(r1 - r0, 0.0);
    const double* dedr;
    const double* dedu;
    if (impl.f32) {
      w.f32.resize(*impl.f32, M, P);
      evaluate_block<float>(*impl.f32, w.f32, M, w.zc.data(), P, w.pi.data(), w.pj.data(), w.r.data(), w.u.data(),
                            r1 - r0, N, w.eblock.data());
      dedr = w.f32.dedr.data(), dedu = w.f32.dedu.data();
    } else {
      w.f64.resize(*impl.f64, M, P);
      evaluate_block<double>(*impl.f64, w.f64, M, w.zc.data(), P, w.pi.data(), w.pj.data(), w.r.data(), w.u.data(),
                             r1 - r0, N, w.eblock.data());
      dedr = w.f64.dedr.data(), dedu = w.f64.dedu.data();
    }
    for (int r = r0; r < r1; ++r) e[r] = w.eblock[r - r0] * energy_unit_eV_ + offset_eV_;
    double* fc = f + 3 * w.a0;
    std::fill(fc, fc + 3 * static_cast<size_t>(M), 0.0);
    for (int q = 0; q < P; ++q) {
      double gr = dedr[q];
      if (zbl.enabled) {  // the repulsive prior, in double, on the same half pairs
        double ez, dz;
        zbl.pair(static_cast<int>(w.zc[w.pi[q]]), static_cast<int>(w.zc[w.pj[q]]), w.r[q], ez, dz);
        e[r0 + w.pi[q] / N] += ez * energy_unit_eV_;
        gr += dz;
      }
      // E(r, u), r = |x_j - x_i|, u = (x_j - x_i) / r: dE/dx_j = dE/dr u + (1 - u u^T) dE/du / r = -dE/dx_i
      const double* uq = &w.u[3 * q];
      const double* gu = dedu + 3 * static_cast<size_t>(q);
      const double proj = gu[0] * uq[0] + gu[1] * uq[1] + gu[2] * uq[2];
      const double inv_r = w.r[q] > 0 ? 1.0 / w.r[q] : 0.0;
      for (int d = 0; d < 3; ++d) {
        const double g = fscale * (gr * uq[d] + (gu[d] - proj * uq[d]) * inv_r);
        fc[3 * w.pi[q] + d] += g;
        fc[3 * w.pj[q] + d] -= g;
      }
    }
  };
  fast::for_each_replica_chunk(R, n_chunks, [&](int c, int r0, int r1) {
    for (int b = r0; b < r1; b += per_block) run_block(*ws_[c], b, std::min(r1, b + per_block));
  });
}

}  // namespace pymotor
