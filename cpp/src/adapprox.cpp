#include "adapprox/adapprox.hpp"

#include <cmath>
#include <limits>
#include <sstream>

#include "as_rsi_impl.hpp"

namespace adapprox {

using detail::Mat;
using detail::MapC;
using MatF = Mat<float>;

void validate(const AdapproxHyper& h) {
  auto bad = [](const std::string& what) { throw Error(ErrorKind::value, what); };
  auto num = [](double x) { std::ostringstream os; os << x; return os.str(); };
  if (!(h.lr >= 0)) bad("lr must be >= 0, got " + num(h.lr));
  if (!(h.beta1 >= 0 && h.beta1 < 1)) bad("betas[0] (beta1) must be in [0, 1), got " + num(h.beta1));
  if (!(h.beta2 >= 0 && h.beta2 < 1)) bad("betas[1] (beta2) must be in [0, 1), got " + num(h.beta2));
  if (!(h.eps >= 0)) bad("eps must be >= 0, got " + num(h.eps));
  if (!(h.clip_threshold > 0)) bad("clip_threshold must be > 0, got " + num(h.clip_threshold));
  if (!(h.weight_decay >= 0)) bad("weight_decay must be >= 0, got " + num(h.weight_decay));
  int lo, hi;
  resolve_rank_bounds(h.rsi, 4, 4, lo, hi);  // checks rank, min/max, tol, oversample, power_iters
}

AdapproxState::AdapproxState(std::vector<int64_t> s) : shape(std::move(s)) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  factored = shape.size() >= 2 && numel > 0;
  rows = factored ? shape[0] : 1;
  cols = factored ? numel / shape[0] : numel;
}

int64_t AdapproxState::state_bytes() const {
  return static_cast<int64_t>(sizeof(float) * (q.size() + u.size() + v.size() + m.size()));
}

void AdapproxState::check() const {
  auto bad = [&](const std::string& what) {
    throw Error(ErrorKind::state, "state for parameter of shape " + shape_str(shape) + ": " + what);
  };
  if (step < 0) bad("step must be >= 0");
  if (!m.empty() && static_cast<int64_t>(m.size()) != numel()) bad("exp_avg has the wrong number of elements");
  if (factored) {
    if (!v.empty()) bad("a factored parameter has no dense second moment");
    if (rank < 0 || rank > std::min(rows, cols)) bad("rank out of range");
    if (step > 0 && rank < 1) bad("rank must be >= 1 after the first step");
    if (static_cast<int64_t>(q.size()) != rows * rank) bad("factor_q must be rows x rank");
    if (static_cast<int64_t>(u.size()) != cols * rank) bad("factor_u must be cols x rank");
  } else {
    if (rank != 0 || !q.empty() || !u.empty()) bad("a 1-D parameter has no factors");
    if (step > 0 && static_cast<int64_t>(v.size()) != numel()) bad("exp_avg_sq has the wrong number of elements");
  }
}

namespace {

// V = b2 * Q U^T + (1 - b2) * G∘G as an operator, in row tiles: G∘G is squared tile by tile
// and never stored whole.
class EmaOperator final : public detail::Operator<float> {
 public:
  EmaOperator(const float* q, const float* u, int rank, const float* g, int64_t m, int64_t n, float b2)
      : q_(q, m, rank), u_(u, n, rank), g_(g, m, n), m_(m), n_(n), k_(rank), b2_(b2) {}
  int64_t rows() const override { return m_; }
  int64_t cols() const override { return n_; }

  void apply(const MatF& x, MatF& y) const override {
    y.resize(m_, x.cols());
    MatF ux;
    if (k_ > 0) ux = u_.transpose() * x;  // k x c
    const int64_t tile = detail::row_grain(n_);
    parallel_chunks(m_, tile, [&](int, int64_t r0, int64_t r1) {
      MatF sq;
      for (int64_t t0 = r0; t0 < r1; t0 += tile) {
        const int64_t len = std::min(tile, r1 - t0);
        sq = g_.middleRows(t0, len).array().square() * (1 - b2_);
        y.middleRows(t0, len).noalias() = sq * x;
        if (k_ > 0) y.middleRows(t0, len).noalias() += b2_ * (q_.middleRows(t0, len) * ux);
      }
    });
  }

  void apply_t(const MatF& y, MatF& z) const override {
    const int64_t tile = detail::row_grain(n_);
    detail::blocked_transpose_product<float>(m_, n_, y, z, [&](int64_t r0, int64_t r1, MatF& acc) {
      MatF sq;
      for (int64_t t0 = r0; t0 < r1; t0 += tile) {
        const int64_t len = std::min(tile, r1 - t0);
        sq = g_.middleRows(t0, len).array().square() * (1 - b2_);
        acc.noalias() += sq.transpose() * y.middleRows(t0, len);
      }
    });
    if (k_ > 0) z.noalias() += b2_ * (u_ * (q_.transpose() * y));
  }

  // ||V||^2 = b2^2 tr(Q^T Q U^T U) + 2 b2 (1-b2) sum_i q_i^T G^2 u_i + (1-b2)^2 sum g^4
  double frob_sq() const override {
    const int64_t tile = detail::row_grain(n_);
    const int chunks = chunk_count(m_, tile);
    std::vector<double> g4(std::max(chunks, 1), 0.0), cross(std::max(chunks, 1), 0.0);
    parallel_chunks(m_, tile, [&](int ch, int64_t r0, int64_t r1) {
      MatF sq;
      for (int64_t t0 = r0; t0 < r1; t0 += tile) {
        const int64_t len = std::min(tile, r1 - t0);
        sq = g_.middleRows(t0, len).array().square();
        g4[ch] += sq.cast<double>().squaredNorm();
        if (k_ > 0) cross[ch] += (q_.middleRows(t0, len).cast<double>().array() *
                                  (sq * u_).cast<double>().array()).sum();
      }
    });
    double sum_g4 = 0, sum_cross = 0;
    for (int c = 0; c < static_cast<int>(g4.size()); ++c) sum_g4 += g4[c], sum_cross += cross[c];
    const double b2 = b2_, a = 1 - b2;
    double lowrank = 0;
    if (k_ > 0) {
      const Eigen::MatrixXd qd = q_.cast<double>(), ud = u_.cast<double>();
      lowrank = ((qd.transpose() * qd).cwiseProduct(ud.transpose() * ud)).sum();
    }
    return std::max(0.0, b2 * b2 * lowrank + 2 * b2 * a * sum_cross + a * a * sum_g4);
  }

 private:
  MapC<float> q_, u_, g_;
  int64_t m_, n_;
  int k_;
  float b2_;
};

struct Sums {
  double a = 0, b = 0, c = 0;
};

// The elementwise update of one parameter; den_sq is this step's b2 |R| + (1 - b2) g^2 for a tile.
struct UpdateArgs {
  float* theta;
  const float* g;
  float* m;  // nullptr when b1 == 0
  int64_t n;
  float b1, eps, lr, wd, scale, guidance;
  bool maximize;
};

inline float mhat_of(float g, float den_sq, float eps) {
  const float den = std::sqrt(den_sq) + eps;
  return den > 0 ? g / den : 0.0f;  // den == 0 only if g == 0 (b2 < 1)
}

// Pass A: sum of Mhat^2 over a tile (for the RMS clip).
inline double tile_sum_sq(const float* g, const float* den_sq, int64_t count, float eps) {
  double s = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double x = mhat_of(g[i], den_sq[i], eps);
    s += x * x;
  }
  return s;
}

// Pass B: first moment and (unless guidance is pending) the parameter update.
inline void tile_update(const UpdateArgs& a, int64_t offset, const float* den_sq, int64_t count, bool write_theta,
                        Sums* cos_sums) {
  const float sign = a.maximize ? -1.0f : 1.0f;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t e = offset + i;
    const float mh = a.scale * mhat_of(sign * a.g[e], den_sq[i], a.eps);
    float step = mh;
    if (a.m) {
      a.m[e] = a.b1 * a.m[e] + (1 - a.b1) * mh;
      step = a.m[e];
      if (cos_sums) {
        cos_sums->a += double(step) * mh;
        cos_sums->b += double(step) * step;
        cos_sums->c += double(mh) * mh;
      }
    }
    if (write_theta) a.theta[e] = a.theta[e] - a.lr * (step + a.wd * a.theta[e]);
  }
}

float clip_scale(double sum_sq, int64_t count, double d) {
  const double rms = count > 0 ? std::sqrt(sum_sq / count) : 0.0;
  return static_cast<float>(1.0 / std::max(1.0, rms / d));
}

// s = (1 + cos(M_t, Mhat_t)) / 2: our reading of "cosine-similarity guidance" (see README).
float guidance_scale(const std::vector<Sums>& parts) {
  Sums s;
  for (const auto& p : parts) s.a += p.a, s.b += p.b, s.c += p.c;
  if (s.b <= 0 || s.c <= 0) return 1.0f;
  return static_cast<float>(0.5 * (1.0 + s.a / std::sqrt(s.b * s.c)));
}

void apply_guided_theta(const UpdateArgs& a, int64_t count, float s) {
  parallel_chunks(count, 1 << 14, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) a.theta[i] = a.theta[i] - a.lr * (s * a.m[i] + a.wd * a.theta[i]);
  });
}

void step_factored(AdapproxState& st, float* theta, const float* g, const AdapproxHyper& h, uint64_t index) {
  const int64_t m = st.rows, n = st.cols;
  const float b2 = static_cast<float>(h.beta2);
  const int64_t t = st.step + 1;
  // 1. New factors of V_t from the old ones (computed first: nothing is written if it throws).
  EmaOperator op(st.q.data(), st.u.data(), st.rank, g, m, n, b2);
  RsiOptions ro = h.rsi;
  if (st.rank > 0) ro.rank = st.rank;
  ro.step = static_cast<uint64_t>(t);
  ro.stream = index;
  RsiResult<float> fresh = detail::run_as_rsi<float>(op, ro);
  if (h.beta1 > 0 && st.m.empty()) st.m.assign(m * n, 0.0f);
  if (h.beta1 == 0) std::vector<float>().swap(st.m);

  // 2. Elementwise update with this step's V_t (old factors), in row tiles.
  const MapC<float> q(st.q.data(), m, st.rank), u(st.u.data(), n, st.rank), gm(g, m, n);
  const int64_t tile = detail::row_grain(n);
  auto den_sq_tile = [&](int64_t r0, int64_t len, MatF& den) {
    if (st.rank > 0) {
      den.noalias() = q.middleRows(r0, len) * u.transpose();
      den = b2 * den.array().abs() + (1 - b2) * gm.middleRows(r0, len).array().square();
    } else {
      den = (1 - b2) * gm.middleRows(r0, len).array().square();
    }
  };
  const int chunks = std::max(1, chunk_count(m, tile));
  std::vector<double> sums(chunks, 0.0);
  parallel_chunks(m, tile, [&](int ch, int64_t r0, int64_t r1) {
    MatF den;
    for (int64_t t0 = r0; t0 < r1; t0 += tile) {
      const int64_t len = std::min(tile, r1 - t0);
      den_sq_tile(t0, len, den);
      sums[ch] += tile_sum_sq(g + t0 * n, den.data(), len * n, static_cast<float>(h.eps));
    }
  });
  double total = 0;
  for (double s : sums) total += s;
  UpdateArgs a{theta, g, st.m.empty() ? nullptr : st.m.data(), n, static_cast<float>(h.beta1),
               static_cast<float>(h.eps), static_cast<float>(h.lr), static_cast<float>(h.weight_decay),
               clip_scale(total, m * n, h.clip_threshold), 1.0f, h.maximize};
  const bool guided = h.cosine_guidance && a.m;
  std::vector<Sums> cos_parts(chunks);
  parallel_chunks(m, tile, [&](int ch, int64_t r0, int64_t r1) {
    MatF den;
    for (int64_t t0 = r0; t0 < r1; t0 += tile) {
      const int64_t len = std::min(tile, r1 - t0);
      den_sq_tile(t0, len, den);
      tile_update(a, t0 * n, den.data(), len * n, !guided, guided ? &cos_parts[ch] : nullptr);
    }
  });
  if (guided) apply_guided_theta(a, m * n, guidance_scale(cos_parts));

  // 3. Commit the new factors.
  st.q.swap(fresh.q);
  st.u.swap(fresh.u);
  st.rank = fresh.rank;
  st.step = t;
}

void step_dense(AdapproxState& st, float* theta, const float* g, const AdapproxHyper& h) {
  const int64_t count = st.numel();
  const float b2 = static_cast<float>(h.beta2);
  if (st.v.empty()) st.v.assign(count, 0.0f);
  if (h.beta1 > 0 && st.m.empty()) st.m.assign(count, 0.0f);
  if (h.beta1 == 0) std::vector<float>().swap(st.m);
  // v_t = b2 v + (1 - b2) g^2 (kept dense; it is already nonnegative)
  for (int64_t i = 0; i < count; ++i) st.v[i] = b2 * st.v[i] + (1 - b2) * (g[i] * g[i]);
  const double total = tile_sum_sq(g, st.v.data(), count, static_cast<float>(h.eps));
  UpdateArgs a{theta, g, st.m.empty() ? nullptr : st.m.data(), count, static_cast<float>(h.beta1),
               static_cast<float>(h.eps), static_cast<float>(h.lr), static_cast<float>(h.weight_decay),
               clip_scale(total, count, h.clip_threshold), 1.0f, h.maximize};
  const bool guided = h.cosine_guidance && a.m;
  std::vector<Sums> cos_parts(1);
  tile_update(a, 0, st.v.data(), count, !guided, guided ? &cos_parts[0] : nullptr);
  if (guided) apply_guided_theta(a, count, guidance_scale(cos_parts));
  st.step += 1;
}

void step_one(AdapproxSlot& s, const AdapproxHyper& h) {
  AdapproxState& st = *s.state;
  if (st.numel() == 0) {
    st.step += 1;
    return;
  }
  // Parameters that are not float32 are updated through float32 copies (math in float32,
  // weight decay applied before the single rounding back to the parameter dtype).
  std::vector<float> theta_buf, grad_buf;
  float* theta = static_cast<float*>(s.param.data);
  const float* g = static_cast<const float*>(s.grad.data);
  if (s.param.dtype != DType::f32) {
    theta_buf.resize(st.numel());
    grad_buf.resize(st.numel());
    to_float32(s.param, theta_buf.data());
    to_float32(s.grad, grad_buf.data());
    theta = theta_buf.data();
    g = grad_buf.data();
  }
  if (st.factored)
    step_factored(st, theta, g, h, s.index);
  else
    step_dense(st, theta, g, h);
  if (s.param.dtype != DType::f32) from_float32(theta_buf.data(), s.param);
}

void check_slot(const AdapproxSlot& s, size_t i) {
  std::ostringstream who;
  who << "params[" << i << "]";
  auto bad = [&](ErrorKind k, const std::string& what) { throw Error(k, who.str() + ": " + what); };
  if (!s.state) bad(ErrorKind::value, "missing optimizer state");
  if (s.param.shape != s.grad.shape)
    bad(ErrorKind::value, "gradient shape " + shape_str(s.grad.shape) + " does not match parameter shape " +
                              shape_str(s.param.shape));
  if (s.param.dtype != s.grad.dtype)
    bad(ErrorKind::type, std::string("gradient dtype ") + dtype_name(s.grad.dtype) +
                             " does not match parameter dtype " + dtype_name(s.param.dtype));
  if (s.param.shape != s.state->shape)
    bad(ErrorKind::state, "optimizer state was created for shape " + shape_str(s.state->shape) +
                              ", parameter has shape " + shape_str(s.param.shape));
  if (s.param.numel() > 0 && (!s.param.data || !s.grad.data)) bad(ErrorKind::value, "null data pointer");
  s.state->check();
}

}  // namespace

void adapprox_step(std::vector<AdapproxSlot>& slots, const AdapproxHyper& h) {
  validate(h);
  for (size_t i = 0; i < slots.size(); ++i) check_slot(slots[i], i);
  // Big matrices one after another, each with every thread; the rest side by side.
  constexpr int64_t kBig = 1 << 16;
  std::vector<AdapproxSlot*> small;
  for (auto& s : slots) {
    if (s.param.numel() >= kBig)
      step_one(s, h);
    else
      small.push_back(&s);
  }
  parallel_chunks(static_cast<int64_t>(small.size()), 1, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) step_one(*small[i], h);
  });
}

int64_t adapprox_step_workspace_bytes(const AdapproxState& st, const AdapproxHyper& h, int param_dtype_bytes) {
  const int64_t conv = param_dtype_bytes == 4 ? 0 : 8 * st.numel();  // float32 copies of param and grad
  if (!st.factored) return conv;
  int lo, hi;
  resolve_rank_bounds(h.rsi, st.rows, st.cols, lo, hi);
  const int width = static_cast<int>(std::min<int64_t>(std::min(st.rows, st.cols), int64_t(hi) + h.rsi.oversample));
  const int64_t tiles = 4 * int64_t(num_threads()) * 4 * (1 << 15);  // den/square tiles, one per chunk
  const int64_t new_factors = 4 * (st.rows + st.cols) * hi;
  return conv + as_rsi_workspace_bytes(st.rows, st.cols, width, 4) + tiles + new_factors;
}

}  // namespace adapprox
