// Internal: AS-RSI over an implicit operator. Uses Eigen; never included by public headers.
#pragma once
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "adapprox/as_rsi.hpp"
#include "adapprox/communicator.hpp"
#include "adapprox/interrupt.hpp"
#include "adapprox/phase_times.hpp"
#include "adapprox/random.hpp"
#include "adapprox/tensor.hpp"
#include "adapprox/thread_pool.hpp"
#include "adapprox/tuning.hpp"
#include "tile_products.hpp"
#include "adapprox/interrupt_points.hpp"

namespace adapprox::detail {

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MapC = Eigen::Map<const Mat<T>>;
template <class T>
using MapM = Eigen::Map<Mat<T>>;

// An m x n matrix known only through products: what AS-RSI needs to see of V. A row-sharded
// operator holds rows [row_offset, row_offset + m) of a global_rows x n matrix: apply gives this
// rank's rows of A x, apply_t the whole (all-reduced) A^T y, frob_sq the whole matrix's norm.
template <class T>
class Operator {
 public:
  virtual ~Operator() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t cols() const = 0;
  virtual void apply(const Mat<T>& x, Mat<T>& y) const = 0;    // y = A x   (x: n x c)
  virtual void apply_t(const Mat<T>& y, Mat<T>& z) const = 0;  // z = A^T y (y: m x c)
  virtual double frob_sq() const = 0;  // ||A||_F^2; asked after the first apply(), which may compute it
  virtual RowShard shard() const { return {}; }
  int64_t global_rows() const { return shard().sharded() ? shard().global_rows : rows(); }
};

// Rows per tile in row-blocked products: keeps a tile of a wide matrix in cache.
inline int64_t row_grain(int64_t n) { return std::max<int64_t>(1, tuning::kTileElements / std::max<int64_t>(1, n)); }

// Columns per chunk of a transposed product z = A^T y, which is split over A's columns: each
// chunk owns rows [c0, c1) of z, so nothing is reduced across threads and no chunk needs an
// n-sized accumulator.
inline int64_t col_grain(int64_t m) { return std::max<int64_t>(tuning::kMinColumnChunk, tuning::kTileElements / std::max<int64_t>(1, m)); }

template <class T>
void householder_orthonormalise(Mat<T>& y) {
  // Thin Q of a Householder QR: stable in float32, orthonormal even if y is rank-deficient.
  const int64_t m = y.rows(), w = y.cols();
  Eigen::HouseholderQR<Mat<T>> qr(y);
  Mat<T> q = qr.householderQ() * Mat<T>::Identity(m, w);
  y.swap(q);
}

// out = a b for `rows` rows of a (row-major, b.rows() columns, contiguous) and out (rows x
// b.cols(), row-major): the tile kernels for float, Eigen for double.
template <class T>
void times_into(const T* a, int64_t rows, const Mat<T>& b, T* out) {
  if constexpr (std::is_same_v<T, float>) {
    kernels::tile_times(a, b.rows(), rows, b.rows(), b.data(), b.cols(), b.cols(), out, b.cols());
  } else {
    Eigen::Map<Mat<T>>(out, rows, b.cols()).noalias() = MapC<T>(a, rows, b.rows()) * b;
  }
}

// a b for a tall a, its rows split over the threads.
template <class T>
Mat<T> tall_times(const Mat<T>& a, const Mat<T>& b) {
  Mat<T> out(a.rows(), b.cols());
  parallel_chunks(a.rows(), tuning::kGramMinRows, [&](int, int64_t r0, int64_t r1) {
    times_into(a.data() + r0 * a.cols(), r1 - r0, b, out.data() + r0 * b.cols());
  });
  return out;
}

// y^T y in float64 (y tall, w columns), its rows split over the threads; bitwise symmetric.
template <class T>
Eigen::MatrixXd gram_of(const Mat<T>& y) {
  const int64_t m = y.rows();
  const int w = static_cast<int>(y.cols());
  const int64_t grain = std::max<int64_t>(tuning::kGramMinRows, tuning::kGramElements / std::max(w, 1));
  const int chunks = std::max(1, chunk_count(m, grain));
  std::vector<Eigen::MatrixXd> part(chunks, Eigen::MatrixXd::Zero(w, w));
  parallel_chunks(m, grain, [&](int ch, int64_t r0, int64_t r1) {
    const Mat<double> yb = y.middleRows(r0, r1 - r0).template cast<double>();
    // (either storage order reads the symmetric result alike)
    kernels::tile_t_times_add(yb.data(), w, r1 - r0, w, yb.data(), w, w, part[ch].data(), w);
  });
  for (int ch = 1; ch < chunks; ++ch) part[0] += part[ch];
  return part[0];
}

// One CholeskyQR pass, y <- y R^-1 with R^T R = y^T y (Gram in float64, rows split across
// threads). Returns max |y_in^T y_in - I| (how far from orthonormal the input was), or -1 when
// the Gram matrix is not safely positive definite.
// With a communicator y is a row shard: the w x w Gram matrix is all-reduced (the pass's only
// communication), and every rank takes the same decision from it.
template <class T>
double cholesky_qr_pass(Mat<T>& y, Communicator* comm = nullptr) {
  const int64_t m = y.rows();
  const int w = static_cast<int>(y.cols());
  const int64_t grain = std::max<int64_t>(tuning::kGramMinRows, tuning::kGramElements / w);
  Eigen::MatrixXd gram = gram_of(y);
  if (comm) comm->allreduce_sum(gram.data(), int64_t(w) * w);
  Eigen::LLT<Eigen::MatrixXd> llt(gram);
  if (llt.info() != Eigen::Success) return -1;
  const Eigen::VectorXd d = llt.matrixL().toDenseMatrix().diagonal();
  if (!(d.minCoeff() > 1e-5 * d.maxCoeff())) return -1;  // (nearly) rank-deficient: not for Cholesky
  const Mat<T> rinv = llt.matrixU().solve(Eigen::MatrixXd::Identity(w, w)).template cast<T>();
  parallel_chunks(m, grain, [&](int, int64_t r0, int64_t r1) {
    const Mat<T> yb = y.middleRows(r0, r1 - r0);  // a copy: the product overwrites these rows
    times_into(yb.data(), r1 - r0, rinv, y.data() + r0 * w);
  });
  return (gram - Eigen::MatrixXd::Identity(w, w)).cwiseAbs().maxCoeff();
}

// An orthonormal basis of range(y), in place. Tall sketches use CholeskyQR2 (two passes; the
// second starts from a nearly orthonormal block, so its result is orthonormal to working
// precision): Gram products parallelise and run as GEMMs, where Householder QR is serial.
// Whenever Cholesky is not safe (ill-conditioned or rank-deficient y) it falls back to
// Householder QR on the original y.
template <class T>
void orthonormalise(Mat<T>& y) {
  if (y.rows() * y.cols() < tuning::kCholeskyQrMinElements || y.cols() > y.rows()) return householder_orthonormalise(y);
  const Mat<T> original = y;
  if (cholesky_qr_pass(y) >= 0) {
    const double second = cholesky_qr_pass(y);
    if (second >= 0 && second < 0.1) return;
  }
  y = original;
  householder_orthonormalise(y);
}

// The same for a row shard of y (rows [row_offset, row_offset + m) of global_rows), taking the
// single-process path's decisions from the whole matrix: CholeskyQR2 over all-reduced Gram
// matrices; where the whole y would be small or Cholesky unsafe, the shards are summed into the
// whole y (O(global_rows w) numbers, small or rare) and every rank runs the same Householder QR.
template <class T>
void orthonormalise_rows(Mat<T>& y, const RowShard& sh) {
  const int64_t big_m = sh.global_rows, w = y.cols();
  if (big_m * w >= tuning::kCholeskyQrMinElements && w <= big_m) {
    const Mat<T> original = y;
    if (cholesky_qr_pass(y, sh.comm) >= 0) {
      const double second = cholesky_qr_pass(y, sh.comm);
      if (second >= 0 && second < 0.1) return;
    }
    y = original;
  }
  Mat<T> whole = Mat<T>::Zero(big_m, w);
  whole.middleRows(sh.row_offset, y.rows()) = y;
  sh.comm->allreduce_sum(whole.data(), big_m * w);
  householder_orthonormalise(whole);
  y = whole.middleRows(sh.row_offset, y.rows());
}

template <class T>
void orthonormalise_rows_of(const Operator<T>& op, Mat<T>& y) {
  PhaseTimer timer(Phase::orthonormalise);
  const RowShard sh = op.shard();
  if (sh.sharded()) orthonormalise_rows(y, sh);
  else orthonormalise(y);
}

struct RankChoice {
  int rank;
  double rel_err;
};

// The smallest j in [min_rank, cap] with err_j <= tol ||A||, where
// err_j^2 = ||A||_F^2 - sum_{i<=j} sigma_i^2 (exact for an orthonormal sketch basis).
// That difference cancels two nearly equal sums, and sigma_i^2 come from products B = Y^T A
// rounded in the data's precision: the estimate of err_j^2 / ||A||^2 is off by up to some 30
// units of rounding (measured on the train bench: true errors up to 1.0091 tol for float32 at
// tol 1e-2). So a rank is accepted only when err_j^2 + margin ||A||^2 <= tol^2 ||A||^2, with
// margin = min(kRankRuleMargin u, tol^2 / 50) and u the data's unit roundoff: at most 1% of tol
// stricter, so a small tol (which float32 sums cannot resolve anyway) is not turned into the
// cap. The reported rel_err stays the estimate itself.
constexpr double kRankRuleMargin = 32;

template <class T>
constexpr double unit_roundoff() {
  return sizeof(T) == 4 ? 0x1p-24 : 0x1p-53;
}

inline RankChoice choose_rank(const Eigen::VectorXd& sigma_sq, double frob_sq, int min_rank, int cap, double tol,
                              bool* met, double roundoff = 0x1p-24) {
  const double margin = std::min(kRankRuleMargin * roundoff, tol * tol / 50);
  double captured = 0;
  RankChoice last{cap, 0};
  for (int j = 1; j <= cap; ++j) {
    captured += sigma_sq(j - 1);
    const double ratio = frob_sq > 0 ? std::max(0.0, frob_sq - captured) / frob_sq : 0.0;
    const double err = std::sqrt(ratio);
    if (j >= min_rank && err <= tol && ratio + margin <= tol * tol) {
      *met = true;
      return {j, err};
    }
    last = {j, err};
  }
  *met = false;
  return last;
}

// What one basis Y (orthonormal, m x w) captures of A: B^T = A^T Y, the eigenpairs of B B^T
// (descending) and the rank rule's choice among its first `cap` directions.
template <class T>
struct Assessment {
  Mat<T> bt;
  Eigen::VectorXd sigma_sq;
  Eigen::MatrixXd basis;
  RankChoice choice;
  bool met = false;
};

template <class T>
Assessment<T> assess(const Operator<T>& op, const Mat<T>& y, double frob_sq, int min_rank, int cap, double tol) {
  Assessment<T> a;
  {
    PhaseTimer timer(Phase::products);
    op.apply_t(y, a.bt);
  }
  PhaseTimer timer(Phase::eigen);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram_of(a.bt));
  // Eigen sorts ascending: reverse to descending singular values.
  a.sigma_sq = eig.eigenvalues().reverse().cwiseMax(0.0);
  a.basis = eig.eigenvectors().rowwise().reverse();
  a.choice = choose_rank(a.sigma_sq, frob_sq, min_rank, cap, tol, &a.met, unit_roundoff<T>());
  return a;
}

// `power_iters` QR-stabilised subspace iterations on Y: Y <- orth(A orth(A^T Y)).
template <class T>
void subspace_iterations(const Operator<T>& op, Mat<T>& y, int iters) {
  Mat<T> z;
  for (int it = 0; it < iters; ++it) {
    check_interrupt();  // AS-RSI writes nothing but its own result
    {
      PhaseTimer timer(Phase::products);
      op.apply_t(y, z);  // whole (all-reduced) for a row shard: every rank orthonormalises the same z
    }
    {
      PhaseTimer timer(Phase::orthonormalise);
      orthonormalise(z);
    }
    {
      PhaseTimer timer(Phase::products);
      op.apply(z, y);
    }
    orthonormalise_rows_of(op, y);
  }
}

// The n x c Gaussian sketch of an attempt (the same on every rank: it depends on the key only).
template <class T>
Mat<T> gaussian_sketch(int64_t n, int c, uint64_t key) {
  PhaseTimer timer(Phase::sketch);
  Mat<T> omega(n, c);
  parallel_chunks(n, 256, [&](int, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      for (int j = 0; j < c; ++j) omega(i, j) = static_cast<T>(gaussian(key, uint64_t(i) * c + j));
  });
  return omega;
}

// AS-RSI: sketch width w = k + p, `power_iters` QR-stabilised subspace iterations, a small
// eigendecomposition of B B^T (B = Q^T A) for singular values, rank by choose_rank, and the
// starting rank doubled (a fresh sketch) while the tolerance is out of the sketch's reach.
//
// Warm start (warm_k > 0; `warm`: the previous step's U, n x warm_k, whose columns span the
// previous factorization's row space): the first attempt sketches A with [U_prev | Omega]
// instead of a Gaussian Omega alone, U_prev's columns normalised and w - k' fresh Gaussian
// columns beside them (k' = min(warm_k, w - 1): at least one new direction is looked for). So
// each step's basis is one subspace iteration on from the last step's, and no further iteration
// runs when it meets the tolerance, or when the rank cannot grow anyway (w at its cap); otherwise
// `power_iters` iterations run and the basis is assessed again before the rank doubles. The rank
// rule and the reported error are exact for whichever basis is used (err^2 = ||A||_F^2 -
// sum sigma_i^2 for an orthonormal basis). U_prev is whole on every rank of a row shard.
template <class T>
RsiResult<T> run_as_rsi(const Operator<T>& op, const RsiOptions& opt, const T* warm = nullptr, int warm_k = 0) {
  const int64_t m = op.global_rows(), n = op.cols();  // the whole matrix, also for a row shard
  const int64_t full = std::min(m, n);
  int min_rank, max_rank;
  resolve_rank_bounds(opt, m, n, min_rank, max_rank);
  int k = std::clamp(opt.rank, min_rank, max_rank);
  double frob_sq = -1;
  RsiResult<T> out;
  for (uint64_t attempt = 0;; ++attempt) {
    check_interrupt();
    const int w = static_cast<int>(std::min<int64_t>(full, int64_t(k) + opt.oversample));
    const uint64_t key = sketch_key(opt.seed, opt.step, opt.stream, attempt);
    const int kept = attempt == 0 && warm && warm_k > 0 ? std::min(warm_k, w - 1) : 0;  // previous directions
    Mat<T> x = gaussian_sketch<T>(n, w - kept, key);
    if (kept > 0) {
      Mat<T> both(n, w);
      both.leftCols(kept) = MapC<T>(warm, n, warm_k).leftCols(kept);
      for (int j = 0; j < kept; ++j) {
        const T norm = both.col(j).norm();
        if (norm > 0) both.col(j) /= norm;
      }
      both.rightCols(w - kept) = x;
      x.swap(both);
    }
    Mat<T> y;
    {
      PhaseTimer timer(Phase::products);
      op.apply(x, y);
    }
    if (frob_sq < 0) frob_sq = op.frob_sq();
    orthonormalise_rows_of(op, y);
    const int cap = std::min(w, max_rank);
    const bool can_grow = cap < max_rank && w < full;
    Assessment<T> a;
    if (kept > 0) {
      a = assess(op, y, frob_sq, min_rank, cap, opt.tol);
      if (!a.met && can_grow && opt.power_iters > 0) {
        subspace_iterations(op, y, opt.power_iters);
        a = assess(op, y, frob_sq, min_rank, cap, opt.tol);
      }
    } else {
      subspace_iterations(op, y, opt.power_iters);
      a = assess(op, y, frob_sq, min_rank, cap, opt.tol);
    }
    if (!a.met && can_grow) {
      k = std::min(2 * k, max_rank);
      continue;
    }
    PhaseTimer timer(Phase::factors);
    const int r = a.choice.rank;
    const Mat<T> wk = a.basis.leftCols(r).template cast<T>();
    Mat<T> q = tall_times(y, wk);     // m x r
    Mat<T> u = tall_times(a.bt, wk);  // n x r: U = A^T Q_r, so Q_r U^T = Q_r Q_r^T A
    out.q.assign(q.data(), q.data() + q.size());
    out.u.assign(u.data(), u.data() + u.size());
    out.rank = r;
    out.rel_err = a.choice.rel_err;
    return out;
  }
}

}  // namespace adapprox::detail
