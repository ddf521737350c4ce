#include "adapprox/adagram.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gram_driver.hpp"

namespace adapprox {

void validate(const AdagramHyper& h) {
  validate(static_cast<const GramHyper&>(h));
  if (h.rank < 1) throw Error(ErrorKind::value, "rank must be >= 1, got " + std::to_string(h.rank));
}

void AdagramState::check() const {
  const std::string who = "state for parameter of shape " + shape_str(shape) + ": ";
  if (step < 0) throw Error(ErrorKind::state, who + "step must be >= 0");
  const int64_t n = numel();
  if (rank < 0 || rank > n) throw Error(ErrorKind::state, who + "rank must be in [0, " + std::to_string(n) + "]");
  if (static_cast<int64_t>(p.size()) != n * rank || static_cast<int64_t>(q.size()) != n * rank)
    throw Error(ErrorKind::state, who + "factor_p and factor_q must be n x rank = " + std::to_string(n) + " x " +
                                      std::to_string(rank));
}

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

constexpr Eigen::Index kQrBlock = 8192;  // rows per block of the tall-skinny QR

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

// A B for a tall A (n x k) and a small B, row block by row block on the pool.
CMat tall_times(const CMat& A, const CMat& B) {
  CMat out(A.rows(), B.cols());
  parallel_chunks(A.rows(), kQrBlock, [&](int, int64_t r0, int64_t r1) {
    out.middleRows(r0, r1 - r0).noalias() = A.middleRows(r0, r1 - r0) * B;
  });
  return out;
}

// A^T A for a tall A: per-block partial sums, added in block order (the blocks depend on the
// shape only).
CMat tall_gram(const CMat& A) {
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
// (V0 = Q, R = I), and only taken after the exact growth phase or a load.
void ksl(CMat& P, CMat& Q, const Vec& p, const Vec& q) {
  CMat V0, R, U1, Shat, V1, S1t;
  const Eigen::Index k = Q.cols();
  const CMat gram = tall_gram(Q);
  if ((gram - CMat::Identity(k, k)).cwiseAbs().maxCoeff() <= 1e-13) {
    V0 = Q;
    R = CMat::Identity(k, k);
  } else {
    thin_qr(Q, V0, R);
  }
  const Vec c = V0.transpose() * q;  // dA V0 = p c^T
  CMat K = tall_times(P, R.transpose());
  K.noalias() += p * c.transpose();
  thin_qr(K, U1, Shat);
  const Vec u = U1.transpose() * p;  // U1^T dA = u q^T
  const CMat St = Shat - u * c.transpose();
  CMat L = tall_times(V0, St.transpose());
  L.noalias() += q * u.transpose();
  thin_qr(L, V1, S1t);
  P = tall_times(U1, S1t.transpose());
  Q = V1;
}

void direction(AdagramState& st, const double* g, double* d, const AdagramHyper& h) {
  const int64_t n = st.numel();
  const int k = st.rank;
  const int target = static_cast<int>(std::min<int64_t>(h.rank, n));
  Eigen::Map<const Vec> gv(g, n);
  Eigen::Map<Mat> P(st.p.data(), n, k), Q(st.q.data(), n, k);
  const Vec gbar = (gv - P * (Q.transpose() * gv)) / std::sqrt(h.eps);
  const double s = gbar.squaredNorm();
  const double r = std::sqrt(1.0 + s);
  Eigen::Map<Vec>(d, n) = gbar / r;
  if (s == 0) return;  // I + a gbar gbar^T = I: the factor does not change
  const double sb = std::sqrt(1.0 / (r * (1.0 + r)));  // sqrt(b), b = (1 - 1/r) / s
  const Vec pn = sb * gbar;
  const Vec qn = sb * (gbar - Q * (P.transpose() * gbar));
  Mat Pm(n, std::min(k + 1, target)), Qm(n, std::min(k + 1, target));
  if (k < target) {  // exact growth: [P p], [Q q]
    Pm.leftCols(k) = P;
    Pm.col(k) = pn;
    Qm.leftCols(k) = Q;
    Qm.col(k) = qn;
  } else {
    CMat Pc = P, Qc = Q;
    ksl(Pc, Qc, pn, qn);
    Pm = Pc;
    Qm = Qc;
  }
  st.rank = static_cast<int>(Pm.cols());
  st.p.assign(Pm.data(), Pm.data() + Pm.size());
  st.q.assign(Qm.data(), Qm.data() + Qm.size());
}

}  // namespace

void adagram_step(std::vector<AdagramSlot>& slots, const AdagramHyper& h) {
  validate(h);
  auto check = [&](const AdagramSlot& s, size_t i) {
    const int64_t target = std::min<int64_t>(h.rank, s.param.numel());
    if (s.state->rank > target)
      throw Error(ErrorKind::value, "params[" + std::to_string(i) + "]: its AdaGram state holds rank " +
                                        std::to_string(s.state->rank) + ", more than rank=" + std::to_string(h.rank) +
                                        " allows (a state saved at a higher rank needs rank >= " +
                                        std::to_string(s.state->rank) + ")");
  };
  gram::run(slots, h, check, [&](AdagramState& st, const double* g, double* d) { direction(st, g, d, h); });
}

}  // namespace adapprox
