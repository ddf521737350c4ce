#include "adapprox/adapprox.hpp"

#include <cmath>
#include <limits>
#include <sstream>

#include "as_rsi_impl.hpp"
#include "row_kernels.hpp"

namespace adapprox {

using detail::Mat;
using detail::MapC;
using MatF = Mat<float>;

struct Sums3 {
  double v[3] = {0, 0, 0};  // sum m*mhat, sum m*m, sum mhat*mhat (cosine guidance)
};

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

// Row-major k x n copy of an n x k matrix: each column contiguous, as the row kernels want.
MatF columns_of(const MapC<float>& x) { return x.transpose(); }
MatF columns_of(const MatF& x) { return x.transpose(); }

// V = b2 * Q U^T + (1 - b2) * G∘G as an operator, row by row: G∘G is squared one row at a time
// and never stored. The first product also gathers, in the same pass over G, the sums that
// ||V||_F and the RMS clip need, so a step reads G as few times as possible.
class EmaOperator final : public detail::Operator<float> {
 public:
  EmaOperator(const float* q, const float* u, int rank, const float* g, int64_t m, int64_t n, float b2, float eps)
      : q_(q, m, rank), u_(u, n, rank), g_(g), m_(m), n_(n), k_(rank), b2_(b2), eps_(eps) {
    if (k_ > 0) ut_ = columns_of(u_);
  }
  int64_t rows() const override { return m_; }
  int64_t cols() const override { return n_; }

  void apply(const MatF& x, MatF& y) const override {
    const int c = static_cast<int>(x.cols());
    y.resize(m_, c);
    const MatF xt = columns_of(x);
    MatF ux;
    if (k_ > 0) ux = b2_ * (u_.transpose() * x);  // k x c
    const bool gather = !gathered_;
    const int64_t tile = detail::row_grain(n_);
    std::vector<Stats> part(std::max(1, chunk_count(m_, tile)));
    parallel_chunks(m_, tile, [&](int ch, int64_t r0, int64_t r1) {
      MatF sq, den;
      Stats& st = part[ch];
      for (int64_t t0 = r0; t0 < r1; t0 += tile) {
        const int64_t len = std::min(tile, r1 - t0);
        square_tile(t0, len, sq);
        auto yb = y.middleRows(t0, len);
        if (c >= kGemmCols) {
          yb.noalias() = sq * x;
        } else {
          for (int64_t i = 0; i < len; ++i) kernels::row_dots(sq.data() + i * n_, xt.data(), n_, c, yb.data() + i * c);
        }
        yb *= (1 - b2_);
        if (k_ > 0) yb.noalias() += q_.middleRows(t0, len) * ux;
        if (gather) {
          st.v_sq += den_tile(t0, len, sq, den);
          st.mhat_sq += kernels::mhat_sq_row(g_ + t0 * n_, den.data(), len * n_, eps_);
        }
      }
    });
    if (gather) {
      for (const Stats& p : part) stats_.v_sq += p.v_sq, stats_.mhat_sq += p.mhat_sq;
      gathered_ = true;
    }
  }

  void apply_t(const MatF& y, MatF& z) const override {
    const int c = static_cast<int>(y.cols());
    const MatF ys = (1 - b2_) * y;
    const int64_t tile = detail::row_grain(n_);
    // Partial sums per chunk stay under 4M floats; the chunking depends on shapes only.
    const int64_t budget = std::max<int64_t>(1, (int64_t(1) << 22) / (int64_t(c) * n_));
    const int64_t chunks = std::min<int64_t>(chunk_count(m_, tile), budget);
    if (chunks >= std::min<int64_t>(4, chunk_count(m_, tile))) {
      // Tall or small G: split over rows, one n x c partial sum per chunk, added in chunk order.
      // Few columns: row kernels into a c x n partial (squares on the fly); else Eigen's GEMM.
      const int64_t rows_per = (m_ + chunks - 1) / chunks;
      const bool rows_kernel = c < kGemmCols;
      std::vector<MatF> part(chunks, rows_kernel ? MatF::Zero(c, n_) : MatF::Zero(n_, c));
      parallel_chunks(chunks, 1, [&](int, int64_t b, int64_t e) {
        MatF sq;
        for (int64_t ch = b; ch < e; ++ch) {
          const int64_t r1 = std::min(m_, (ch + 1) * rows_per);
          if (rows_kernel) {
            for (int64_t i = ch * rows_per; i < r1; ++i)
              kernels::row_axpys_sq(g_ + i * n_, ys.data() + i * c, c, n_, part[ch].data());
            continue;
          }
          for (int64_t t0 = ch * rows_per; t0 < r1; t0 += tile) {
            const int64_t len = std::min(tile, r1 - t0);
            square_tile(t0, len, sq);
            part[ch].noalias() += sq.transpose() * ys.middleRows(t0, len);
          }
        }
      });
      for (int64_t ch = 1; ch < chunks; ++ch) part[0] += part[ch];
      if (rows_kernel) z = part[0].transpose();
      else z = std::move(part[0]);
    } else {
      // Wide G: split over columns; chunk [c0, c1) owns its slice of z, accumulated over all rows.
      MatF zt = MatF::Zero(c, n_);
      parallel_chunks(n_, detail::col_grain(m_), [&](int, int64_t c0, int64_t c1) {
        const int64_t w = c1 - c0;
        std::vector<float> sq(w), slice(static_cast<size_t>(c) * w, 0.0f);
        for (int64_t i = 0; i < m_; ++i) {
          kernels::square_row(g_ + i * n_ + c0, w, sq.data());
          kernels::row_axpys(sq.data(), ys.data() + i * c, c, w, slice.data());
        }
        for (int j = 0; j < c; ++j)
          std::copy(slice.begin() + j * w, slice.begin() + (j + 1) * w, zt.data() + j * n_ + c0);
      });
      z = zt.transpose();
    }
    if (k_ > 0) z.noalias() += b2_ * (u_ * (q_.transpose() * y));
  }

  // ||V||_F^2, summed tile by tile from b2 Q U^T + (1 - b2) G^2 during the first product.
  double frob_sq() const override { return stats_.v_sq; }

  // Sum over the matrix of Mhat^2 = (g / (sqrt(b2 |Q U^T| + (1-b2) g^2) + eps))^2, before clipping.
  double mhat_sq() const { return stats_.mhat_sq; }

  // The update pass: Mhat from this step's denominator, the first moment and theta, row by row.
  void update(const kernels::UpdateRow& a, float* m, float* theta, bool guided, std::vector<Sums3>& cos) const {
    const int64_t tile = detail::row_grain(n_);
    cos.assign(std::max(1, chunk_count(m_, tile)), Sums3{});
    parallel_chunks(m_, tile, [&](int ch, int64_t r0, int64_t r1) {
      MatF sq, den;
      for (int64_t t0 = r0; t0 < r1; t0 += tile) {
        const int64_t len = std::min(tile, r1 - t0);
        square_tile(t0, len, sq);
        den_tile(t0, len, sq, den);
        const int64_t off = t0 * n_;
        kernels::update_row(a, g_ + off, den.data(), len * n_, m ? m + off : nullptr, theta + off, !guided,
                            guided ? cos[ch].v : nullptr);
      }
    });
  }

 private:
  struct Stats {
    double v_sq = 0, mhat_sq = 0;
  };
  // From this many columns on, products use Eigen's blocked GEMM instead of row kernels.
  static constexpr int kGemmCols = 12;

  // sq = G[t0 : t0 + len]^2 (a len x n tile).
  void square_tile(int64_t t0, int64_t len, MatF& sq) const {
    sq.resize(len, n_);
    kernels::square_row(g_ + t0 * n_, len * n_, sq.data());
  }

  // den = b2 |Q U^T| + (1 - b2) sq for the tile's rows; returns the tile's sum of V^2.
  double den_tile(int64_t t0, int64_t len, const MatF& sq, MatF& den) const {
    den.resize(len, n_);
    if (k_ >= kGemmCols) {
      den.noalias() = q_.middleRows(t0, len) * u_.transpose();
      return kernels::den_finish(den.data(), sq.data(), len * n_, b2_);
    }
    double v_sq = 0;
    for (int64_t i = 0; i < len; ++i)
      v_sq += kernels::den_row(q_.data() + (t0 + i) * k_, ut_.data(), k_, sq.data() + i * n_, n_, b2_,
                               den.data() + i * n_);
    return v_sq;
  }
  MapC<float> q_, u_;
  MatF ut_;  // U's columns, contiguous
  const float* g_;
  int64_t m_, n_;
  int k_;
  float b2_, eps_;
  mutable bool gathered_ = false;
  mutable Stats stats_;
};

float clip_scale(double sum_sq, int64_t count, double d) {
  const double rms = count > 0 ? std::sqrt(sum_sq / count) : 0.0;
  return static_cast<float>(1.0 / std::max(1.0, rms / d));
}

// s = (1 + cos(M_t, Mhat_t)) / 2: our reading of "cosine-similarity guidance" (see README).
float guidance_scale(const std::vector<Sums3>& parts) {
  double dot = 0, mm = 0, hh = 0;
  for (const auto& p : parts) dot += p.v[0], mm += p.v[1], hh += p.v[2];
  if (mm <= 0 || hh <= 0) return 1.0f;
  return static_cast<float>(0.5 * (1.0 + dot / std::sqrt(mm * hh)));
}

// theta -= lr * (s * M + wd * theta), once s is known.
void apply_guided_theta(const kernels::UpdateRow& a, float* m, float* theta, int64_t count, float s) {
  parallel_chunks(count, 1 << 14, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) theta[i] = theta[i] - a.lr * (s * m[i] + a.wd * theta[i]);
  });
}

kernels::UpdateRow update_args(const AdapproxHyper& h, float scale) {
  return kernels::UpdateRow{static_cast<float>(h.beta1), static_cast<float>(h.eps), static_cast<float>(h.lr),
                            static_cast<float>(h.weight_decay), scale, h.maximize ? -1.0f : 1.0f};
}

void prepare_first_moment(AdapproxState& st, const AdapproxHyper& h) {
  if (h.beta1 > 0 && st.m.empty()) st.m.assign(st.numel(), 0.0f);
  if (h.beta1 == 0) std::vector<float>().swap(st.m);  // b1 = 0 keeps no first moment at all
}

void step_factored(AdapproxState& st, float* theta, const float* g, const AdapproxHyper& h, uint64_t index) {
  const int64_t m = st.rows, n = st.cols;
  const int64_t t = st.step + 1;
  // 1. New factors of V_t from the old ones (computed first: nothing is written if it throws).
  //    The first product of AS-RSI also sums Mhat^2 for the clip, in the same pass over G.
  EmaOperator op(st.q.data(), st.u.data(), st.rank, g, m, n, static_cast<float>(h.beta2),
                 static_cast<float>(h.eps));
  RsiOptions ro = h.rsi;
  if (st.rank > 0) ro.rank = st.rank;
  ro.step = static_cast<uint64_t>(t);
  ro.stream = index;
  RsiResult<float> fresh = detail::run_as_rsi<float>(op, ro);
  prepare_first_moment(st, h);

  // 2. Elementwise update with this step's V_t (old factors): one more pass over G.
  const kernels::UpdateRow a = update_args(h, clip_scale(op.mhat_sq(), m * n, h.clip_threshold));
  float* mom = st.m.empty() ? nullptr : st.m.data();
  const bool guided = h.cosine_guidance && mom;
  std::vector<Sums3> cos;
  op.update(a, mom, theta, guided, cos);
  if (guided) apply_guided_theta(a, mom, theta, m * n, guidance_scale(cos));

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
  prepare_first_moment(st, h);
  // v_t = b2 v + (1 - b2) g^2 (dense, already nonnegative)
  for (int64_t i = 0; i < count; ++i) st.v[i] = b2 * st.v[i] + (1 - b2) * (g[i] * g[i]);
  const double total = kernels::mhat_sq_row(g, st.v.data(), count, static_cast<float>(h.eps));
  const kernels::UpdateRow a = update_args(h, clip_scale(total, count, h.clip_threshold));
  float* mom = st.m.empty() ? nullptr : st.m.data();
  const bool guided = h.cosine_guidance && mom;
  std::vector<Sums3> cos(1);
  kernels::update_row(a, g, st.v.data(), count, mom, theta, !guided, guided ? cos[0].v : nullptr);
  if (guided) apply_guided_theta(a, mom, theta, count, guidance_scale(cos));
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
  if (!s.state) throw Error(ErrorKind::value, "params[" + std::to_string(i) + "]: missing optimizer state");
  check_param_grad(s.param, s.grad, s.state->shape, i);
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
  // rows of squares and denominators per thread, and the transposed product's partial sums
  // (at most 4M floats in all, or one col_grain x width slice per thread for wide matrices)
  const int64_t tiles = int64_t(num_threads()) * 4 * (2 * st.cols + int64_t(detail::col_grain(st.rows)) * width) +
                        4 * std::min<int64_t>(int64_t(1) << 22, int64_t(kMaxChunks) * width * st.cols);
  const int64_t new_factors = 4 * (st.rows + st.cols) * hi;
  return conv + as_rsi_workspace_bytes(st.rows, st.cols, width, 4) + tiles + new_factors;
}

}  // namespace adapprox
