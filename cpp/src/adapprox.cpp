// Adapprox (the math: adapprox.hpp) as the registry entry "adapprox".
#include "adapprox/adapprox.hpp"
#include "adapprox/cuda.hpp"
#include "adapprox/interrupt.hpp"
#include "adapprox/phase_times.hpp"
#include "adapprox/tuning.hpp"

#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>

#include "adapprox_parts.hpp"
#include "algorithms.hpp"
#include "as_rsi_impl.hpp"
#include "row_kernels.hpp"
#include "staged.hpp"
#include "tile_products.hpp"
#include "adapprox/interrupt_points.hpp"

namespace adapprox {

using detail::Mat;
using detail::MapC;
using MatF = Mat<float>;

namespace {

using namespace adapprox_parts;

kernels::UpdateRow row_args(const AdapproxHyper& h, float scale) {
  const math::AdapproxUpdate a = update_args(h, scale);
  return kernels::UpdateRow{a.b1, a.eps, a.lr, a.wd, a.scale, a.sign};
}

struct Sums3 {
  double v[3] = {0, 0, 0};  // sum m*mhat, sum m*m, sum mhat*mhat (cosine guidance)
};

// Row-major k x n copy of an n x k matrix: each column contiguous, as the row kernels want.
MatF columns_of(const MapC<float>& x) { return x.transpose(); }
MatF columns_of(const MatF& x) { return x.transpose(); }

// V = b2 * Q U^T + (1 - b2) * G∘G as an operator, row by row: G∘G is squared one row at a time
// and never stored. The first product also gathers, in the same pass over G, the sums that
// ||V||_F and the RMS clip need, so a step reads G as few times as possible. For a row shard
// (communicator.hpp) it holds this rank's rows: those sums and A^T y are all-reduced.
class EmaOperator final : public detail::Operator<float> {
 public:
  EmaOperator(const float* q, const float* u, int rank, const float* g, int64_t m, int64_t n, float b2, float eps,
              RowShard shard = {})
      : q_(q, m, rank), u_(u, n, rank), g_(g), m_(m), n_(n), k_(rank), b2_(b2), eps_(eps), shard_(shard),
        keep_den_(m * n > 0 && m * n <= tuning::kKeptDenominatorElements) {
    if (k_ > 0) ut_ = columns_of(u_);
  }
  int64_t rows() const override { return m_; }
  int64_t cols() const override { return n_; }
  RowShard shard() const override { return shard_; }

  void apply(const MatF& x, MatF& y) const override {
    const int c = static_cast<int>(x.cols());
    y.resize(m_, c);
    const MatF xt = columns_of(x);
    MatF ux;
    if (k_ > 0) ux = b2_ * (u_.transpose() * x);  // k x c
    const bool gather = !gathered_;
    if (gather && keep_den_) den_all_.resize(m_ * n_);
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
          kernels::tile_times(sq.data(), n_, len, n_, x.data(), c, c, yb.data(), c);
        } else {
          for (int64_t i = 0; i < len; ++i) kernels::row_dots(sq.data() + i * n_, xt.data(), n_, c, yb.data() + i * c);
        }
        yb *= (1 - b2_);
        if (k_ > 0) yb.noalias() += q_.middleRows(t0, len) * ux;
        if (gather) {
          float* d = keep_den_ ? den_all_.data() + t0 * n_ : (den.resize(len, n_), den.data());
          st.v_sq += den_tile(t0, len, sq, d);
          st.mhat_sq += kernels::mhat_sq_row(g_ + t0 * n_, d, len * n_, eps_);
        }
      }
    });
    if (gather) {
      for (const Stats& p : part) stats_.v_sq += p.v_sq, stats_.mhat_sq += p.mhat_sq;
      if (shard_.sharded()) {
        double both[2] = {stats_.v_sq, stats_.mhat_sq};
        shard_.comm->allreduce_sum(both, 2);
        stats_.v_sq = both[0], stats_.mhat_sq = both[1];
      }
      gathered_ = true;
    }
  }

  void apply_t(const MatF& y, MatF& z) const override {
    transposed_product(y, z);
    if (k_ > 0) z.noalias() += b2_ * (u_ * (q_.transpose() * y));
    if (shard_.sharded()) shard_.comm->allreduce_sum(z.data(), z.size());
  }

  // ||V||_F^2, summed tile by tile from b2 Q U^T + (1 - b2) G^2 during the first product.
  double frob_sq() const override { return stats_.v_sq; }

  // Sum over the matrix of Mhat^2 = (g / (sqrt(b2 |Q U^T| + (1-b2) g^2) + eps))^2, before clipping.
  double mhat_sq() const { return stats_.mhat_sq; }

  // z = (1 - b2) (G^2)^T y over this operator's rows.
  void transposed_product(const MatF& y, MatF& z) const {
    const int c = static_cast<int>(y.cols());
    if (m_ == 0) {  // an empty row shard adds nothing
      z = MatF::Zero(n_, c);
      return;
    }
    const MatF ys = (1 - b2_) * y;
    const int64_t tile = detail::row_grain(n_);
    // Partial sums per chunk stay under 4M floats; the chunking depends on shapes only.
    const int64_t budget = std::max<int64_t>(1, (int64_t(1) << 22) / (int64_t(c) * n_));
    if (std::min<int64_t>(chunk_count(m_, tile), budget) >= std::min<int64_t>(4, chunk_count(m_, tile))) {
      // Tall or small G: split over rows, one n x c partial sum per chunk, added in chunk order;
      // at least kPartialMinRows rows a chunk, so partial sums are few against the work.
      const int64_t chunks =
          std::max<int64_t>(1, std::min<int64_t>(chunk_count(m_, std::max(tile, tuning::kPartialMinRows)), budget));
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
            kernels::tile_t_times_add(sq.data(), n_, len, n_, ys.data() + t0 * c, c, c, part[ch].data(), c);
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
  }

  // The update pass with a low-precision first moment: chunks own whole blocks of kQuantBlock
  // elements (those that start inside them), each decoded, updated and encoded again; the
  // denominator is computed a row tile at a time (as in update), plus the rows a block that
  // starts in the tile reaches into.
  void update_blocks(const kernels::UpdateRow& a, const Moment& mq, float* theta, bool guided,
                     std::vector<Sums3>& cos) const {
    const int64_t total = m_ * n_;
    const int64_t tile = detail::row_grain(n_);
    const int64_t grain = round_up(std::max(tile, int64_t(4)) * n_);
    // A block of the tile's last row may reach into the next rows: the tile's denominator
    // covers them too (at most ceil(kQuantBlock / n) + 1 rows more).
    const int64_t reach = (kQuantBlock + n_ - 1) / n_ + 1;
    cos.assign(std::max(1, chunk_count(total, grain)), Sums3{});
    parallel_chunks(total, grain, [&](int ch, int64_t e0, int64_t e1) {
      const int64_t lo = round_up(e0), hi = std::min(total, round_up(e1));
      if (lo >= hi) return;
      MatF sq, den;
      float mb[kQuantBlock];
      int64_t b = lo;
      // Row tiles of the chunk, one denominator tile at a time; each block starting in a tile
      // is stepped from that tile's rows.
      for (int64_t t0 = lo / n_; b < hi; t0 += tile) {
        const int64_t rows_end = std::min(m_, t0 + tile), starts_end = std::min(hi, rows_end * n_);
        const int64_t d_rows = std::min(m_, rows_end + reach) - t0;
        const float* d;
        if (!den_all_.empty()) {
          d = den_all_.data() + t0 * n_;
        } else {
          square_tile(t0, d_rows, sq);
          den.resize(d_rows, n_);
          den_tile(t0, d_rows, sq, den.data());
          d = den.data();
        }
        for (; b < starts_end; b += kQuantBlock) {
          const int64_t nb = std::min(kQuantBlock, hi - b);
          load_block(mq, b, nb, mb);
          kernels::update_row(a, g_ + b, d + (b - t0 * n_), nb, mb, theta + b, !guided, guided ? cos[ch].v : nullptr);
          store_block(mq, b, nb, mb);
        }
      }
    });
  }

  // The update pass: Mhat from this step's denominator, the first moment and theta, row by row.
  void update(const kernels::UpdateRow& a, float* m, float* theta, bool guided, std::vector<Sums3>& cos) const {
    const int64_t tile = detail::row_grain(n_);
    cos.assign(std::max(1, chunk_count(m_, tile)), Sums3{});
    parallel_chunks(m_, tile, [&](int ch, int64_t r0, int64_t r1) {
      MatF sq, den;
      for (int64_t t0 = r0; t0 < r1; t0 += tile) {
        const int64_t len = std::min(tile, r1 - t0);
        const int64_t off = t0 * n_;
        const float* d;
        if (!den_all_.empty()) {
          d = den_all_.data() + off;  // kept from the first product
        } else {
          square_tile(t0, len, sq);
          den.resize(len, n_);
          den_tile(t0, len, sq, den.data());
          d = den.data();
        }
        kernels::update_row(a, g_ + off, d, len * n_, m ? m + off : nullptr, theta + off, !guided,
                            guided ? cos[ch].v : nullptr);
      }
    });
  }

 private:
  struct Stats {
    double v_sq = 0, mhat_sq = 0;
  };
  static constexpr int kGemmCols = tuning::kGemmMinColumns;
  static int64_t round_up(int64_t e) { return (e + kQuantBlock - 1) / kQuantBlock * kQuantBlock; }

  // sq = G[t0 : t0 + len]^2 (a len x n tile).
  void square_tile(int64_t t0, int64_t len, MatF& sq) const {
    sq.resize(len, n_);
    kernels::square_row(g_ + t0 * n_, len * n_, sq.data());
  }

  // den = b2 |Q U^T| + (1 - b2) sq for the tile's rows (len x n, into `den`); returns the
  // tile's sum of V^2.
  double den_tile(int64_t t0, int64_t len, const MatF& sq, float* den) const {
    if (k_ >= kGemmCols) {
      kernels::tile_times(q_.data() + t0 * k_, k_, len, k_, ut_.data(), n_, n_, den, n_);
      return kernels::den_finish(den, sq.data(), len * n_, b2_);
    }
    double v_sq = 0;
    for (int64_t i = 0; i < len; ++i)
      v_sq += kernels::den_row(q_.data() + (t0 + i) * k_, ut_.data(), k_, sq.data() + i * n_, n_, b2_, den + i * n_);
    return v_sq;
  }
  MapC<float> q_, u_;
  MatF ut_;  // U's columns, contiguous
  const float* g_;
  int64_t m_, n_;
  int k_;
  float b2_, eps_;
  RowShard shard_;
  // The denominator of the whole matrix, kept from the first product for the update pass when
  // it is small (kKeptDenominatorElements): one m x n float32 buffer saves the update's Q U^T.
  bool keep_den_;
  mutable std::vector<float> den_all_;
  mutable bool gathered_ = false;
  mutable Stats stats_;
};

// s = (1 + cos(M_t, Mhat_t)) / 2: our reading of "cosine-similarity guidance" (see README),
// over the whole parameter (a row shard's sums are all-reduced).
float guidance_scale(const std::vector<Sums3>& parts, const RowShard& sh) {
  double v[3] = {0, 0, 0};
  for (const auto& p : parts) v[0] += p.v[0], v[1] += p.v[1], v[2] += p.v[2];
  if (sh.sharded()) sh.comm->allreduce_sum(v, 3);
  return guidance_from(v[0], v[1], v[2]);
}

// theta -= lr * (s * M + wd * theta), once s is known.
void apply_guided_theta(const kernels::UpdateRow& a, float* m, float* theta, int64_t count, float s) {
  parallel_chunks(count, tuning::kGuidedUpdateGrain, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) theta[i] = theta[i] - a.lr * (s * m[i] + a.wd * theta[i]);
  });
}

// The same with a low-precision first moment, decoded block by block (blocks whole per chunk).
void apply_guided_theta(const kernels::UpdateRow& a, const Moment& mq, float* theta, int64_t count, float s) {
  parallel_chunks(quant_blocks(count), std::max<int64_t>(1, tuning::kGuidedUpdateGrain / kQuantBlock),
                  [&](int, int64_t b0, int64_t b1) {
                    float mb[kQuantBlock];
                    for (int64_t blk = b0; blk < b1; ++blk) {
                      const int64_t lo = blk * kQuantBlock, n = std::min(kQuantBlock, count - lo);
                      load_block(mq, lo, n, mb);
                      for (int64_t i = 0; i < n; ++i)
                        theta[lo + i] = theta[lo + i] - a.lr * (s * mb[i] + a.wd * theta[lo + i]);
                    }
                  });
}

[[noreturn]] void fail(const std::string& who, const std::string& what) {
  throw Error(ErrorKind::state, who + ": " + what);
}

// A factor buffer without elements is absent (the state before the first step).
bool absent(const TensorRef& b) { return b.numel() == 0; }

// The rank of a factored parameter's state: factor_u's columns (factor_q of an empty row shard
// has no elements but the same rank), 0 before the first step.
int rank_of(const Slot& s) { return absent(s.state[kU]) ? 0 : static_cast<int>(s.state[kU].shape[1]); }

// A slot's 2-D view: factored or not as the whole tensor is, with this shard's rows.
View view_of(const Slot& s) { return View(s.param.shape, schema_shape(s)); }

// A new m x k factor buffer from the front, filled with `src`.
TensorRef new_factor(Allocator& alloc, size_t slot, size_t buffer, int64_t rows, int k, const std::vector<float>& src) {
  TensorRef b = alloc.allocate(slot, buffer, DType::f32, {rows, int64_t(k)});
  if ((!b.data && rows * k > 0) || b.dtype != DType::f32 || b.shape != std::vector<int64_t>{rows, int64_t(k)} ||
      !b.contiguous())
    throw Error(ErrorKind::value, "the allocator returned no C-contiguous float32 buffer of shape " +
                                      shape_str({rows, int64_t(k)}));
  if (!src.empty()) std::memcpy(b.data, src.data(), src.size() * sizeof(float));
  return b;
}

void step_factored(Slot& s, size_t slot, const View& v, float* theta, const float* g, float* mom, const Moment* mq,
                   const AdapproxHyper& h, Allocator& alloc) {
  PhaseTimer step_timer(Phase::factored_step);
  const int64_t m = v.rows, n = v.cols;
  const TensorRef &qb = s.state[kQ], &ub = s.state[kU];
  const int k = rank_of(s);
  // 1. New factors of V_t from the old ones (computed first: nothing is written if it throws).
  //    The first product of AS-RSI also sums Mhat^2 for the clip, in the same pass over G.
  EmaOperator op(k ? static_cast<const float*>(qb.data) : nullptr, k ? static_cast<const float*>(ub.data) : nullptr,
                 k, g, m, n, static_cast<float>(h.beta2), static_cast<float>(h.eps), s.shard);
  RsiOptions ro = h.rsi;
  if (k > 0) ro.rank = k;
  ro.step = static_cast<uint64_t>(s.t);
  ro.stream = s.index;
  // Warm start: the previous U (whole on every rank) starts the sketch.
  const int warm_k = h.warm_start ? k : 0;
  RsiResult<float> fresh = detail::run_as_rsi<float>(op, ro, warm_k ? static_cast<const float*>(ub.data) : nullptr, warm_k);
  // Buffers of a new rank come from the front before anything is written.
  TensorRef nq, nu;
  if (fresh.rank != k) {
    nq = new_factor(alloc, slot, kQ, m, fresh.rank, fresh.q);
    nu = new_factor(alloc, slot, kU, n, fresh.rank, fresh.u);
  }

  // 2. Elementwise update with this step's V_t (old factors): one more pass over G.
  const kernels::UpdateRow a = row_args(h, clip_scale(op.mhat_sq(), op.global_rows() * n, h.clip_threshold));
  const bool guided = h.cosine_guidance && h.beta1 > 0;  // (mom is null for an empty row shard)
  {
    PhaseTimer timer(Phase::update);
    std::vector<Sums3> cos;
    if (mq) {
      op.update_blocks(a, *mq, theta, guided, cos);
      if (guided) apply_guided_theta(a, *mq, theta, m * n, guidance_scale(cos, s.shard));
    } else {
      op.update(a, mom, theta, guided, cos);
      if (guided) apply_guided_theta(a, mom, theta, m * n, guidance_scale(cos, s.shard));
    }
  }

  // 3. Commit the new factors: in place at the same rank, else the new buffers.
  if (fresh.rank == k) {
    if (!fresh.q.empty()) std::memcpy(qb.data, fresh.q.data(), fresh.q.size() * sizeof(float));
    std::memcpy(ub.data, fresh.u.data(), fresh.u.size() * sizeof(float));
  } else {
    s.state[kQ] = nq;
    s.state[kU] = nu;
  }
}

// A dense second moment; a row shard's clip and guidance sums are all-reduced (the clip's sum
// before anything is written).
void step_dense(float* theta, const float* g, float* v, float* mom, int64_t count, const AdapproxHyper& h,
                const RowShard& sh, int64_t whole_count) {
  const float b2 = static_cast<float>(h.beta2);
  const float eps = static_cast<float>(h.eps);
  std::vector<float> vt(count);  // v_t = b2 v + (1 - b2) g^2 (dense, already nonnegative)
  for (int64_t i = 0; i < count; ++i) vt[i] = b2 * v[i] + (1 - b2) * (g[i] * g[i]);
  double total = count > 0 ? kernels::mhat_sq_row(g, vt.data(), count, eps) : 0.0;
  if (sh.sharded()) sh.comm->allreduce_sum(&total, 1);
  std::copy(vt.begin(), vt.end(), v);
  const kernels::UpdateRow a = row_args(h, clip_scale(total, whole_count, h.clip_threshold));
  const bool guided = h.cosine_guidance && h.beta1 > 0;  // (mom is null for an empty row shard)
  std::vector<Sums3> cos(1);
  if (count > 0) kernels::update_row(a, g, v, count, mom, theta, !guided, guided ? cos[0].v : nullptr);
  if (guided) apply_guided_theta(a, mom, theta, count, guidance_scale(cos, sh));
}

// A dense second moment and first moment of which one at least is held in low precision
// (state_precision): two passes over blocks of kQuantBlock, the first summing Mhat^2 for the
// clip from v_t recomputed block by block (nothing stored), the second storing v_t and m_t and
// updating theta. Never more than one block of either moment in float32.
void step_dense_blocks(float* theta, const float* g, const Moment& v, const Moment* mq, float* mom, int64_t count,
                       const AdapproxHyper& h) {
  const float b2 = static_cast<float>(h.beta2);
  const float eps = static_cast<float>(h.eps);
  float vb[kQuantBlock], mb[kQuantBlock];
  auto v_t = [&](int64_t lo, int64_t n) {
    load_block(v, lo, n, vb);
    for (int64_t i = 0; i < n; ++i) vb[i] = b2 * vb[i] + (1 - b2) * (g[lo + i] * g[lo + i]);
  };
  double total = 0;
  for (int64_t lo = 0; lo < count; lo += kQuantBlock) {
    const int64_t n = std::min(kQuantBlock, count - lo);
    v_t(lo, n);
    total += kernels::mhat_sq_row(g + lo, vb, n, eps);
  }
  const kernels::UpdateRow a = row_args(h, clip_scale(total, count, h.clip_threshold));
  const bool guided = h.cosine_guidance && h.beta1 > 0;
  std::vector<Sums3> cos(1);
  for (int64_t lo = 0; lo < count; lo += kQuantBlock) {
    const int64_t n = std::min(kQuantBlock, count - lo);
    v_t(lo, n);
    store_block(v, lo, n, vb);
    float* m = mom ? mom + lo : nullptr;
    if (mq) {
      load_block(*mq, lo, n, mb);
      m = mb;
    }
    kernels::update_row(a, g + lo, vb, n, m, theta + lo, !guided, guided ? cos[0].v : nullptr);
    if (mq) store_block(*mq, lo, n, mb);
  }
  if (guided) {
    const float s = guidance_scale(cos, RowShard{});
    if (mq) apply_guided_theta(a, *mq, theta, count, s);
    else apply_guided_theta(a, mom, theta, count, s);
  }
}

// One parameter. Parameters that are not C-contiguous float32 (other dtypes: math in float32,
// weight decay applied before the single rounding back; other layouts) are updated through
// C-ordered float32 copies, as is like-parameter state in another layout.
void step_one(Slot& s, size_t slot, const AdapproxHyper& h, Allocator& alloc) {
  const View v = view_of(s);
  const int64_t count = v.rows * v.cols;
  if (count == 0 && !s.shard.sharded()) return;  // an empty shard still takes part in the sums
  Staged<float> theta(s.param), grad(s.grad);
  const bool low = h.precision != StatePrecision::f32;
  const size_t m_at = v.factored ? kU + 1 : kV + moment_buffers(h.precision);  // exp_avg, when b1 > 0
  std::unique_ptr<Staged<float>> dense, mom;
  std::unique_ptr<Moment> mq;  // a low-precision exp_avg, stepped block by block
  if (h.beta1 > 0 && low) mq = std::make_unique<Moment>(moment_of(s, m_at, MomentKind::signed_value, 1));
  else if (h.beta1 > 0) mom = std::make_unique<Staged<float>>(s.state[m_at]);
  float* m = mom ? mom->data() : nullptr;
  if (v.factored) {
    step_factored(s, slot, v, theta.data(), grad.data(), m, mq.get(), h, alloc);
  } else if (low) {
    step_dense_blocks(theta.data(), grad.data(), moment_of(s, kV, MomentKind::nonnegative, 0), mq.get(), m, count, h);
  } else {
    dense = std::make_unique<Staged<float>>(s.state[kV]);
    int64_t whole = 1;
    for (int64_t d : schema_shape(s)) whole *= d;
    step_dense(theta.data(), grad.data(), dense->data(), m, count, h, s.shard, whole);
    dense->store();
  }
  if (mom) mom->store();
  theta.store(h.stochastic_rounding, rounding_key(s.index, s.t, kParamRoundingBuffer));
}

class Adapprox final : public Algorithm {
 public:
  std::string name() const override { return "adapprox"; }
  std::string summary() const override {
    return "Adapprox: Adam with a low-rank second moment refreshed by adaptive randomized subspace iteration";
  }
  const std::vector<HyperParam>& hyper_params() const override {
    const double inf = std::numeric_limits<double>::infinity();
    static const std::vector<HyperParam> params = {
        {"lr", 1e-3, 0, inf, false, true, false, "learning rate"},
        {"beta1", 0.9, 0, 1, false, true, false, "betas[0]: first-moment decay (0 keeps no first moment)"},
        {"beta2", 0.999, 0, 1, false, true, false, "betas[1]: second-moment decay"},
        {"eps", 1e-8, 0, inf, false, true, false, "added to the denominator"},
        {"clip_threshold", 1, 0, inf, true, false, false, "d: RMS clip of the normalised update (inf: off)"},
        {"weight_decay", 0, 0, inf, false, true, false, "decoupled weight decay, scaled by lr"},
        {"rank", 1, 1, INT_MAX, false, false, true, "starting rank of the factorization"},
        {"min_rank", 1, 1, INT_MAX, false, false, true, "smallest rank kept"},
        {"max_rank", 0, 0, INT_MAX, false, false, true, "largest rank (0: min(m, n) / 4, at least 1)"},
        {"tol", 1e-2, 0, inf, false, false, false, "relative Frobenius error the rank is chosen against"},
        {"oversample", 5, 0, tuning::kMaxOversample, false, false, true, "extra sketch columns"},
        {"power_iters", 1, 0, tuning::kMaxPowerIters, false, false, true, "subspace iterations"},
        {"cosine_guidance", 0, 0, 1, false, false, true, "scale the step by (1 + cos(M, Mhat)) / 2"},
        {"seed", 0, 0, 18446744073709549568.0, false, false, true, "key of the Gaussian sketches"},
        {"maximize", 0, 0, 1, false, false, true, "maximize the objective"},
        {"warm_start", 1, 0, 1, false, false, true,
         "start AS-RSI from the previous U plus fresh columns (0: the paper's fresh sketch)"},
        state_precision_param(),
        stochastic_rounding_param(),
    };
    return params;
  }
  void validate(const Hyper& h) const override {
    int lo, hi;
    resolve_rank_bounds(native(h).rsi, 4, 4, lo, hi);  // max_rank against min_rank
  }
  std::vector<BufferSpec> schema(const Hyper& h, const std::vector<int64_t>& shape, DType) const override {
    const View v(shape);
    std::vector<BufferSpec> s = {algorithms::step_buffer()};
    if (v.factored) {
      for (const auto& [name, len] : {std::pair<const char*, int64_t>{"factor_q", v.rows}, {"factor_u", v.cols}}) {
        BufferSpec b;
        b.name = name;
        b.dtype = DType::f32;
        b.shape = {len, 0};
        b.resized = true;
        b.follows_rows = b.name == "factor_q";  // U is n x k: whole on every rank
        s.push_back(b);
      }
    } else {
      add_moment(s, "exp_avg_sq", MomentKind::nonnegative, DType::f32, shape, state_precision(h));
    }
    if (h.at("beta1") > 0) add_moment(s, "exp_avg", MomentKind::signed_value, DType::f32, shape, state_precision(h));
    return s;
  }
  void check_state(const Hyper& hyper, const Slot& s, const std::string& who) const override {
    check_precision_supported(hyper, s, who, "Adapprox");
    if (s.param.device.kind == Device::cuda && !s.param.shape.empty() && s.param.shape[0] > INT32_MAX)
      throw Error(ErrorKind::value, who + ": Adapprox on CUDA takes at most 2^31 - 1 rows (the first dimension)");
    if (s.param.device.kind == Device::cuda && (s.param.dtype != DType::f32 || !s.param.contiguous()))
      throw Error(ErrorKind::value, who + ": Adapprox on CUDA steps C-contiguous float32 parameters (got " +
                                        dtype_name(s.param.dtype) + (s.param.contiguous() ? "" : ", strided") +
                                        "); adapprox never converts or copies behind your back");
    const View v = view_of(s);
    if (!v.factored) return;
    const TensorRef &q = s.state[kQ], &u = s.state[kU];
    // (factor_q of an empty row shard has no elements at any rank)
    if (absent(u) ? !absent(q) : (absent(q) && v.rows > 0))
      fail(who, std::string("state '") + (absent(q) ? "factor_q" : "factor_u") +
                    "' is empty while the other factor is not: factor_q and factor_u come together");
    if (absent(u)) {
      if (s.t > 1)
        fail(who, "state 'factor_q' is missing: a factored parameter has factor_q and factor_u after its first step "
                  "(state 'step' = " + std::to_string(s.t - 1) + ")");
      return;
    }
    if (u.shape.size() != 2 || u.shape[0] != v.cols)
      fail(who, "state 'factor_u' must have shape (" + std::to_string(v.cols) + ", k), got " + shape_str(u.shape));
    const int64_t k = u.shape[1];
    if (q.shape != std::vector<int64_t>{v.rows, k})
      fail(who, "state 'factor_q' must have shape " + shape_str({v.rows, k}) + " (factor_u has rank " +
                    std::to_string(k) + "), got " + shape_str(q.shape) +
                    (s.shard.sharded() ? " (this rank's rows of the parameter)" : ""));
    const int64_t whole_rows = schema_shape(s)[0];
    if (k > std::min(whole_rows, v.cols))
      fail(who, "state 'factor_q' has rank " + std::to_string(k) + ", more than min(m, n) = " +
                    std::to_string(std::min(whole_rows, v.cols)) + " for the " + std::to_string(whole_rows) + " x " +
                    std::to_string(v.cols) + " view of the parameter");
  }
  void step_cuda(const Hyper& hyper, std::vector<Slot>& slots, Allocator& alloc, void* stream) const override {
    const AdapproxHyper h = native(hyper);
    if (slots.empty()) return;
    cuda::run_on_device(slots[0].param.device.index, [&] {  // the driver checked: one device per call
      for (size_t i = 0; i < slots.size(); ++i) {
        check_interrupt();
        step_one_cuda(slots[i], i, h, alloc, stream);
        slots[i].done = true;
      }
    });
  }
  void step(const Hyper& hyper, std::vector<Slot>& slots, Allocator& alloc) const override {
    const AdapproxHyper h = native(hyper);
    // Big matrices and row shards (whose collectives run in order on this thread) one after
    // another, each with every thread; the rest side by side.
    std::vector<size_t> small;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].param.numel() >= tuning::kBigParamNumel || slots[i].shard.sharded()) {
        check_interrupt();
        step_one(slots[i], i, h, alloc);
        slots[i].done = true;
      } else {
        small.push_back(i);
      }
    }
    parallel_chunks(static_cast<int64_t>(small.size()), 1, [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        check_interrupt();
        step_one(slots[small[i]], small[i], h, alloc);
        slots[small[i]].done = true;
      }
    });
  }
};

}  // namespace

namespace algorithms {
const Algorithm* adapprox() {
  static const Adapprox instance;
  return &instance;
}
}  // namespace algorithms

int64_t adapprox_step_workspace_bytes(const std::vector<int64_t>& shape, DType param_dtype, const Hyper& hyper,
                                      bool contiguous) {
  const AdapproxHyper h = native(hyper);
  const View v(shape);
  const int64_t numel = v.rows * v.cols;
  // float32 copies of parameter and gradient, and of like-parameter state in another layout
  int64_t conv = param_dtype == DType::f32 && contiguous ? 0 : 8 * numel;
  if (!contiguous) conv += 4 * numel * ((v.factored ? 0 : 1) + (h.beta1 > 0 ? 1 : 0));
  if (!v.factored) return conv;
  int lo, hi;
  resolve_rank_bounds(h.rsi, v.rows, v.cols, lo, hi);
  const int width = static_cast<int>(std::min<int64_t>(std::min(v.rows, v.cols), int64_t(hi) + h.rsi.oversample));
  // rows of squares and denominators per thread, and the transposed product's partial sums
  // (at most 4M floats in all, or one col_grain x width slice per thread for wide matrices)
  const int64_t tiles = int64_t(num_threads()) * 4 * (2 * v.cols + int64_t(detail::col_grain(v.rows)) * width) +
                        4 * std::min<int64_t>(tuning::kPartialSumFloats, int64_t(kMaxChunks) * width * v.cols);
  const int64_t new_factors = 4 * (v.rows + v.cols) * hi;
  const int64_t kept_den = numel <= tuning::kKeptDenominatorElements ? 4 * numel : 0;
  return conv + as_rsi_workspace_bytes(v.rows, v.cols, width, 4) + tiles + new_factors + kept_den;
}

}  // namespace adapprox
