// FullMatrixAdagrad (the math: full_matrix_adagrad.hpp; shared conventions: gram_driver.hpp) as
// the registry entry "fullmatrixadagrad". State: "step", and "sum" (n x n float64, C-contiguous,
// zero at the start).
#include "adapprox/full_matrix_adagrad.hpp"

#include <Eigen/Dense>
#include <algorithm>

#include "algorithms.hpp"
#include "gram_driver.hpp"

namespace adapprox {
namespace {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXd;

// S += g g^T;  d = G^(-1/2) g with G = eps I + S = V diag(lambda) V^T (lambda >= eps exactly;
// clamped there against rounding).
void direction(double* sum, int64_t n, const double* g, double* d, double eps) {
  Eigen::Map<Mat> S(sum, n, n);
  Eigen::Map<const Vec> gv(g, n);
  S.noalias() += gv * gv.transpose();
  Mat G = S;
  G.diagonal().array() += eps;
  Eigen::SelfAdjointEigenSolver<Mat> es(G);
  const Vec inv_sqrt = es.eigenvalues().array().max(eps).rsqrt();
  Eigen::Map<Vec>(d, n) = es.eigenvectors() * (inv_sqrt.asDiagonal() * (es.eigenvectors().transpose() * gv));
}

class FullMatrixAdagrad final : public Algorithm {
 public:
  std::string name() const override { return "fullmatrixadagrad"; }
  std::string summary() const override {
    return "Full-matrix AdaGrad: exact G^(-1/2) g from the n x n Gram matrix of the gradients (n <= 4096)";
  }
  const std::vector<HyperParam>& hyper_params() const override {
    static const std::vector<HyperParam> params = gram::hyper_params(1e-10);
    return params;
  }
  std::vector<BufferSpec> schema(const Hyper&, const std::vector<int64_t>& shape, DType) const override {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    BufferSpec sum;
    sum.name = "sum";
    sum.dtype = DType::f64;
    // A parameter over the limit gets an empty matrix (no n x n allocation by the front), and
    // is refused by check_state.
    sum.shape = n > kFullMatrixMaxNumel ? std::vector<int64_t>{0, 0} : std::vector<int64_t>{n, n};
    return {algorithms::step_buffer(), sum};
  }
  void check_state(const Hyper&, const Slot& s, const std::string& who) const override {
    if (s.param.numel() > kFullMatrixMaxNumel)
      throw Error(ErrorKind::shape, who + ": FullMatrixAdagrad keeps an n x n matrix per parameter and is limited to "
                                          "n <= " + std::to_string(kFullMatrixMaxNumel) + " elements, got " +
                                          std::to_string(s.param.numel()) + " (shape " + shape_str(s.param.shape) +
                                          "); AdaGram is the low-rank alternative");
  }
  void step(const Hyper& hyper, std::vector<Slot>& slots, Allocator&) const override {
    const gram::GramHyper h = gram::native(hyper);
    gram::run(slots, h, [&](Slot& s, size_t, const double* g, double* d) {
      direction(static_cast<double*>(s.state[1].data), s.param.numel(), g, d, h.eps);
    });
  }
};

}  // namespace

namespace algorithms {
const Algorithm* full_matrix_adagrad() {
  static const FullMatrixAdagrad instance;
  return &instance;
}
}  // namespace algorithms

}  // namespace adapprox
