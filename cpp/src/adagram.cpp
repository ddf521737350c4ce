// AdaGram (Matveeva, Katrutsa and Frolov, arXiv 2508.21106): full-matrix AdaGrad through a
// factor L_t with L_t L_t^T = G_t = eps I + sum g g^T, whose inverse is kept as
//
//   L_t^(-1) = (I - P Q^T) / sqrt(eps)        (P, Q: n x k float64, k <= rank)
//
// Per step, for the parameter flattened to n elements (gradient conventions of gram_driver.hpp):
//
//   gbar = L_{t-1}^(-1) g = (g - P (Q^T g)) / sqrt(eps),   s = |gbar|^2,   r = sqrt(1 + s)
//   d_t  = L_t^(-1) g = gbar / r                (|d_t| = |G_t^(-1/2) g|, not the same direction)
//   p    = p - clr * d_t
//
// The factor update L_t = L_{t-1} (I + a gbar gbar^T), a = (r - 1) / s, inverts to
// L_t^(-1) = (I - b gbar gbar^T) L_{t-1}^(-1) with b = a / (1 + a s) = 1 / (r (1 + r)), so
//
//   I - P Q^T  ->  I - P Q^T - b gbar (gbar - Q P^T gbar)^T = I - [P p][Q q]^T,
//   p = sqrt(b) gbar,  q = sqrt(b) (gbar - Q (P^T gbar))                 (exact rank-one growth).
//
// Forgetting (`forget` = beta in [0, 1], default 1: none). Before each step the accumulated term
// is discounted, P Q^T <- beta P Q^T (P scaled in place), i.e.
//
//   L_{t-1}^(-1) <- beta L_{t-1}^(-1) + (1 - beta) I / sqrt(eps),
//
// the inverse root pulled back towards its start I / sqrt(eps) (G towards eps I) by 1 - beta per
// step, so past gradients weigh beta^age in the inverse factor and the step does not vanish as
// G grows. The rank-one growth and the KSL step then run unchanged from beta P Q^T: the
// truncation sees exactly the discounted term. beta = 0 keeps no history (gbar = g / sqrt(eps)).
//
// Once k would exceed min(rank, n), one projector-splitting step (Lubich and Oseledets 2014:
// K, then S backward, then L) from W_0 = P Q^T with the increment p q^T brings the term back to
// that rank; it is exact when the new term has rank <= min(rank, n), so rank >= n is exact.
// O(n rank^2) time and 2 n rank float64 numbers of state per parameter.
//
// The registry entry "adagram" (conventions of gram_driver.hpp). State: "step", factor_p and
// factor_q (n x k float64, C-contiguous; absent, k = 0, at the start), replaced through the
// Allocator while k grows by one per step up to min(rank, n). A state holding more than
// min(rank, n) columns (e.g. saved at a higher rank) is refused. Parameters run side by side on
// the thread pool, and the KSL step of one with >= 16384 elements by row blocks as well (a split
// by shape only: results do not depend on the thread count).
#include <Eigen/Dense>
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "algorithms.hpp"
#include "adapprox/tuning.hpp"
#include "gram_driver.hpp"

namespace adapprox {
namespace {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXd;

using CMat = Eigen::MatrixXd;  // column-major: what Eigen's Householder QR is fast on

// Thin QR of an n x k matrix (n >= k): A = Q R with Q n x k orthonormal, R k x k upper triangular.
void householder_qr(const CMat& A, CMat& Q, CMat& R) {
  Eigen::HouseholderQR<CMat> qr(A);
  const Eigen::Index n = A.rows(), k = A.cols();
  Q = qr.householderQ() * CMat::Identity(n, k);
  R = qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();
}

constexpr Eigen::Index kQrBlock = tuning::kQrBlockRows;

// The same factorization as a tall-skinny QR: row blocks of at least max(kQrBlock, 2k) rows are
// factored side by side on the pool (A_b = Q_b R_b), then the stacked R_b once more
// ([R_1; ...; R_B] = Qs R), and Q's block b is Q_b Qs_b. The blocks depend on n and k only,
// so the result does not depend on the thread count.
void thin_qr(const CMat& A, CMat& Q, CMat& R) {
  const Eigen::Index n = A.rows(), k = A.cols();
  const Eigen::Index block = std::max<Eigen::Index>(kQrBlock, 2 * k), blocks = n / block;
  if (blocks < 2) return householder_qr(A, Q, R);
  auto rows = [&](Eigen::Index b) { return b + 1 < blocks ? block : n - b * block; };  // the last takes the rest
  std::vector<CMat> Qb(blocks);
  CMat stacked(blocks * k, k), Qs, Rb;
  parallel_chunks(blocks, 1, [&](int, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      CMat Rlocal;
      householder_qr(A.middleRows(b * block, rows(b)), Qb[b], Rlocal);
      stacked.middleRows(b * k, k) = Rlocal;
    }
  });
  householder_qr(stacked, Qs, R);
  Q.resize(n, k);
  parallel_chunks(blocks, 1, [&](int, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) Q.middleRows(b * block, rows(b)).noalias() = Qb[b] * Qs.middleRows(b * k, k);
  });
}

// out = A B for a tall A (n x k) and a small B, row block by row block on the pool, into `out`
// (any n x c matrix or map that does not alias A).
template <class Out, class A_, class B_>
void tall_times_into(Out&& out, const Eigen::MatrixBase<A_>& A, const Eigen::MatrixBase<B_>& B) {
  parallel_chunks(A.rows(), kQrBlock, [&](int, int64_t r0, int64_t r1) {
    out.middleRows(r0, r1 - r0).noalias() = A.middleRows(r0, r1 - r0) * B;
  });
}

// A^T A for a tall A: per-block partial sums, added in block order (the blocks depend on the
// shape only).
template <class A_>
CMat tall_gram(const Eigen::MatrixBase<A_>& A) {
  const Eigen::Index k = A.cols();
  std::vector<CMat> part(chunk_count(A.rows(), kQrBlock), CMat::Zero(k, k));
  parallel_chunks(A.rows(), kQrBlock, [&](int c, int64_t r0, int64_t r1) {
    part[c].noalias() = A.middleRows(r0, r1 - r0).transpose() * A.middleRows(r0, r1 - r0);
  });
  CMat sum = CMat::Zero(k, k);
  for (const CMat& p : part) sum += p;
  return sum;
}

// One projector-splitting (KSL) step of rank r from W_0 = P Q^T with the increment dA = p q^T:
//   Q = V0 R (QR),  Y0 = P R^T                  so W_0 = Y0 V0^T with V0 orthonormal
//   K-step: K = Y0 + dA V0 = U1 Shat (QR)
//   S-step: Stilde = Shat - U1^T dA V0          (backward in time)
//   L-step: L = V0 Stilde^T + dA^T U1 = V1 S1^T (QR)
//   W_1 = U1 S1 V1^T, stored as P = U1 S1, Q = V1.
// Q is orthonormal already after every KSL step (it is the last V1): the first QR is then skipped
// (V0 = Q, R = I), and only taken after the exact growth phase or a load. P and Q (the state's
// n x k buffers) are overwritten in place; the n x k temporaries are V0, K (reused for L), U1, V1
// and the QR's own, so the workspace stays a small multiple of the state.
template <class FactorMap>
void ksl(FactorMap& P, FactorMap& Q, const Vec& p, const Vec& q) {
  CMat V0, R, U1, Shat, V1, S1t;
  const Eigen::Index n = Q.rows(), k = Q.cols();
  const CMat gram = tall_gram(Q);
  if ((gram - CMat::Identity(k, k)).cwiseAbs().maxCoeff() <= 1e-13) {
    V0 = Q;
    R = CMat::Identity(k, k);
  } else {
    thin_qr(CMat(Q), V0, R);
  }
  const Vec c = V0.transpose() * q;  // dA V0 = p c^T
  CMat K(n, k);
  tall_times_into(K, P, R.transpose());
  K.noalias() += p * c.transpose();
  thin_qr(K, U1, Shat);
  const Vec u = U1.transpose() * p;  // U1^T dA = u q^T
  const CMat St = Shat - u * c.transpose();
  CMat& L = K;  // K is spent: its storage holds L
  tall_times_into(L, V0, St.transpose());
  L.noalias() += q * u.transpose();
  thin_qr(L, V1, S1t);
  tall_times_into(P, U1, S1t.transpose());
  Q = V1;
}

constexpr size_t kP = 1, kQ = 2;  // schema positions after "step"

// A new n x cols float64 factor buffer from the front (C-contiguous, checked).
TensorRef new_factor(Allocator& alloc, size_t slot, size_t buffer, int64_t n, int64_t cols) {
  const std::vector<int64_t> shape = {n, cols};
  TensorRef b = alloc.allocate(slot, buffer, DType::f64, shape);
  if ((!b.data && n * cols > 0) || b.dtype != DType::f64 || b.shape != shape || !b.contiguous())
    throw Error(ErrorKind::value, "the allocator returned no C-contiguous float64 buffer of shape " + shape_str(shape));
  return b;
}

// d = L_t^-1 g (see the top of the file), and the factors updated: in place at full rank, into
// new buffers (one column more) while k grows. Workspace besides the state: pn and qn (n each),
// and for the KSL step the n x k temporaries listed at ksl().
void direction(Slot& st, size_t slot, const double* g, double* d, int rank, double eps, double forget,
               Allocator& alloc) {
  const int64_t n = st.param.numel();
  TensorRef &pb = st.state[kP], &qb = st.state[kQ];
  const int k = pb.numel() == 0 ? 0 : static_cast<int>(pb.shape[1]);
  const int target = static_cast<int>(std::min<int64_t>(rank, n));
  Eigen::Map<const Vec> gv(g, n);
  if (k > 0 && forget != 1.0) {  // P Q^T <- forget P Q^T (see the top of the file)
    double* p = static_cast<double*>(pb.data);
    for (int64_t i = 0; i < n * k; ++i) p[i] *= forget;
  }
  Eigen::Map<Mat> P(k ? static_cast<double*>(pb.data) : nullptr, n, k), Q(k ? static_cast<double*>(qb.data) : nullptr, n, k);
  Eigen::Map<Vec> gbar(d, n);  // gbar first, scaled to d = gbar / r below
  gbar = (gv - P * (Q.transpose() * gv)) / std::sqrt(eps);
  const double s = gbar.squaredNorm();
  const double r = std::sqrt(1.0 + s);
  if (s == 0) return;  // gbar = d = 0, and I + a gbar gbar^T = I: the factor does not change
  const double sb = std::sqrt(1.0 / (r * (1.0 + r)));  // sqrt(b), b = (1 - 1/r) / s
  const Vec qn = sb * (gbar - Q * (P.transpose() * gbar));
  const Vec pn = sb * gbar;
  gbar /= r;  // d
  if (k < target) {  // exact growth: [P p], [Q q] in new buffers
    TensorRef np = new_factor(alloc, slot, kP, n, k + 1), nq = new_factor(alloc, slot, kQ, n, k + 1);
    Eigen::Map<Mat> Pn(static_cast<double*>(np.data), n, k + 1), Qn(static_cast<double*>(nq.data), n, k + 1);
    Pn.leftCols(k) = P;
    Pn.col(k) = pn;
    Qn.leftCols(k) = Q;
    Qn.col(k) = qn;
    pb = np;
    qb = nq;
  } else {
    ksl(P, Q, pn, qn);
  }
}

class Adagram final : public Algorithm {
 public:
  std::string name() const override { return "adagram"; }
  std::string summary() const override {
    return "AdaGram: full-matrix AdaGrad through a low-rank factor of the inverse root (rank k per parameter)";
  }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> params = [] {
      std::vector<HyperParam> p = gram::hyper_params(1e-2);
      p.push_back({"rank", 1, 1, INT_MAX, false, false, true, "columns of the factors P and Q"});
      p.push_back({"forget", 1, 0, 1, false, false, false,
                   "discount of the accumulated term per step, P Q^T <- forget P Q^T (1: none)"});
      return p;
    }();
    return params;
  }
  std::vector<BufferSpec> schema(const Hyper&, const std::vector<int64_t>& shape, DType) const override {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<BufferSpec> s = {algorithms::step_buffer()};
    for (const char* name : {"factor_p", "factor_q"}) {
      BufferSpec b;
      b.name = name;
      b.dtype = DType::f64;
      b.shape = {n, 0};
      b.resized = true;
      s.push_back(b);
    }
    return s;
  }
  void check_state(const Hyper& h, const Slot& s, const std::string& who) const override {
    const int64_t n = s.param.numel();
    const TensorRef &p = s.state[kP], &q = s.state[kQ];
    if ((p.numel() == 0) != (q.numel() == 0))
      throw Error(ErrorKind::state, who + ": state '" + (p.numel() == 0 ? "factor_p" : "factor_q") +
                                        "' is empty while the other factor is not: factor_p and factor_q come together");
    if (p.numel() == 0) return;  // k = 0: no factor yet (or only zero gradients so far)
    if (p.shape.size() != 2 || p.shape[0] != n)
      throw Error(ErrorKind::state, who + ": state 'factor_p' must have shape (" + std::to_string(n) + ", k), got " +
                                        shape_str(p.shape));
    const int64_t k = p.shape[1];
    if (q.shape != p.shape)
      throw Error(ErrorKind::state, who + ": state 'factor_q' must have the shape of factor_p " + shape_str(p.shape) +
                                        ", got " + shape_str(q.shape));
    const int64_t rank = static_cast<int64_t>(h.at("rank"));
    if (k > std::min(rank, n))
      throw Error(ErrorKind::value, who + ": its AdaGram state holds rank " + std::to_string(k) + ", more than rank=" +
                                        std::to_string(rank) + " allows (a state saved at a higher rank needs rank >= " +
                                        std::to_string(k) + ")");
  }
  void step(const Hyper& hyper, std::vector<Slot>& slots, Allocator& alloc) const override {
    const gram::GramHyper h = gram::native(hyper);
    const int rank = static_cast<int>(hyper.at("rank"));
    const double forget = hyper.at("forget");
    gram::run(slots, h, [&](Slot& s, size_t i, const double* g, double* d) {
      direction(s, i, g, d, rank, h.eps, forget, alloc);
    });
  }
};

}  // namespace

namespace algorithms {
const Algorithm* adagram() {
  static const Adagram instance;
  return &instance;
}
}  // namespace algorithms

}  // namespace adapprox
