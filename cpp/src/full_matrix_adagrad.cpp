#include "adapprox/full_matrix_adagrad.hpp"

#include <Eigen/Dense>
#include <algorithm>

#include "gram_driver.hpp"

namespace adapprox {

void FullMatrixAdagradState::check() const {
  const std::string who = "state for parameter of shape " + shape_str(shape) + ": ";
  if (step < 0) throw Error(ErrorKind::state, who + "step must be >= 0");
  const int64_t n = numel();
  if (!sum.empty() && static_cast<int64_t>(sum.size()) != n * n)
    throw Error(ErrorKind::state, who + "sum must hold n x n = " + std::to_string(n * n) + " elements");
  if (step > 0 && n > 0 && sum.empty()) throw Error(ErrorKind::state, who + "sum is required after the first step");
}

namespace {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXd;

// S += g g^T;  d = G^(-1/2) g with G = eps I + S = V diag(lambda) V^T (lambda >= eps exactly;
// clamped there against rounding).
void direction(FullMatrixAdagradState& st, const double* g, double* d, double eps) {
  const int64_t n = st.numel();
  if (st.sum.empty()) st.sum.assign(n * n, 0.0);
  Eigen::Map<Mat> S(st.sum.data(), n, n);
  Eigen::Map<const Vec> gv(g, n);
  S.noalias() += gv * gv.transpose();
  Mat G = S;
  G.diagonal().array() += eps;
  Eigen::SelfAdjointEigenSolver<Mat> es(G);
  const Vec inv_sqrt = es.eigenvalues().array().max(eps).rsqrt();
  Eigen::Map<Vec>(d, n) = es.eigenvectors() * (inv_sqrt.asDiagonal() * (es.eigenvectors().transpose() * gv));
}

}  // namespace

void full_matrix_adagrad_step(std::vector<FullMatrixAdagradSlot>& slots, const GramHyper& h) {
  auto check = [](const FullMatrixAdagradSlot& s, size_t i) {
    if (s.param.numel() > kFullMatrixMaxNumel)
      throw Error(ErrorKind::shape, "params[" + std::to_string(i) + "]: FullMatrixAdagrad keeps an n x n matrix per "
                                    "parameter and is limited to n <= " + std::to_string(kFullMatrixMaxNumel) +
                                    " elements, got " + std::to_string(s.param.numel()) + " (shape " +
                                    shape_str(s.param.shape) + "); AdaGram is the low-rank alternative");
  };
  gram::run(slots, h, check, [&](FullMatrixAdagradState& st, const double* g, double* d) { direction(st, g, d, h.eps); });
}

}  // namespace adapprox
