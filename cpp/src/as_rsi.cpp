#include "adapprox/as_rsi.hpp"

#include <sstream>

#include "as_rsi_impl.hpp"

namespace adapprox {

int default_max_rank(int64_t m, int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min(m, n) / 4));
}

void resolve_rank_bounds(const RsiOptions& opt, int64_t m, int64_t n, int& min_rank, int& max_rank) {
  auto bad = [](const std::string& what) { throw Error(ErrorKind::value, what); };
  if (opt.min_rank < 1) bad("min_rank must be >= 1, got " + std::to_string(opt.min_rank));
  if (opt.rank < 1) bad("rank must be >= 1, got " + std::to_string(opt.rank));
  if (opt.max_rank > 0 && opt.max_rank < opt.min_rank)
    bad("max_rank (" + std::to_string(opt.max_rank) + ") must be >= min_rank (" + std::to_string(opt.min_rank) + ")");
  if (opt.oversample < 0) bad("oversample must be >= 0, got " + std::to_string(opt.oversample));
  if (opt.power_iters < 0) bad("power_iters must be >= 0, got " + std::to_string(opt.power_iters));
  if (!(opt.tol >= 0)) bad("tol must be >= 0");
  const int full = static_cast<int>(std::min(m, n));
  max_rank = std::min(full, opt.max_rank > 0 ? opt.max_rank : default_max_rank(m, n));
  min_rank = std::min(opt.min_rank, full);
  max_rank = std::max(max_rank, min_rank);
}

int64_t as_rsi_workspace_bytes(int64_t m, int64_t n, int width, int scalar_bytes) {
  // omega and z (n x w), y and its QR copy (m x w), bt (n x w) and its float64 copy, the
  // w x w Gram matrix and its eigenvectors.
  const int64_t w = width;
  return scalar_bytes * (3 * n * w + 2 * m * w) + 8 * (n * w + 3 * w * w);
}

namespace {

// A plain dense matrix, products parallel over row blocks.
template <class T>
class DenseOperator final : public detail::Operator<T> {
 public:
  DenseOperator(const T* a, int64_t m, int64_t n) : a_(a, m, n), m_(m), n_(n) {}
  int64_t rows() const override { return m_; }
  int64_t cols() const override { return n_; }
  void apply(const detail::Mat<T>& x, detail::Mat<T>& y) const override {
    y.resize(m_, x.cols());
    parallel_chunks(m_, detail::row_grain(n_), [&](int, int64_t r0, int64_t r1) {
      y.middleRows(r0, r1 - r0).noalias() = a_.middleRows(r0, r1 - r0) * x;
    });
  }
  void apply_t(const detail::Mat<T>& y, detail::Mat<T>& z) const override {
    z.resize(n_, y.cols());
    parallel_chunks(n_, detail::col_grain(m_), [&](int, int64_t c0, int64_t c1) {
      z.middleRows(c0, c1 - c0).noalias() = a_.middleCols(c0, c1 - c0).transpose() * y;
    });
  }
  double frob_sq() const override { return a_.template cast<double>().squaredNorm(); }

 private:
  detail::MapC<T> a_;
  int64_t m_, n_;
};

template <class T>
RsiResult<T> dense_as_rsi(const T* a, int64_t m, int64_t n, const RsiOptions& opt) {
  if (m < 1 || n < 1) {
    std::ostringstream os;
    os << "A must be a non-empty 2-D matrix, got shape (" << m << ", " << n << ")";
    throw Error(ErrorKind::value, os.str());
  }
  DenseOperator<T> op(a, m, n);
  return detail::run_as_rsi<T>(op, opt);
}

}  // namespace

RsiResult<float> as_rsi(const float* a, int64_t m, int64_t n, const RsiOptions& opt) {
  return dense_as_rsi(a, m, n, opt);
}
RsiResult<double> as_rsi(const double* a, int64_t m, int64_t n, const RsiOptions& opt) {
  return dense_as_rsi(a, m, n, opt);
}

}  // namespace adapprox
