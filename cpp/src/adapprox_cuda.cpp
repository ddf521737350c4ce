// Adapprox's CUDA step, driven from the host: the same algorithm as step_factored/step_dense in
// adapprox.cpp (AS-RSI with the rank rule of as_rsi_impl.hpp, the clip, cosine guidance), with
// every pass over G on the GPU (cuda_adapprox.hpp) and the w x w algebra here: Cholesky of the
// Gram matrices (CholeskyQR2, Householder QR of a downloaded sketch when Cholesky is unsafe) and
// the eigenproblem of B B^T. Each orthonormalisation and the rank choice read a w x w matrix
// back, so a step waits for the GPU a few times per matrix.
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>

#include "adapprox/interrupt.hpp"
#include "adapprox/random.hpp"
#include "adapprox/tuning.hpp"
#include "adapprox_parts.hpp"
#include "as_rsi_impl.hpp"
#include "cuda_adapprox.hpp"
#include "adapprox/interrupt_points.hpp"

namespace adapprox::adapprox_parts {
namespace {

namespace ops = cuda::adapprox_ops;
using Eigen::MatrixXd;

std::atomic<bool> g_profiling{false};
std::mutex g_profile_mu;
CudaPhases g_phases;

// Adds the time since the last mark to one phase (when profiling: after waiting for the GPU).
class PhaseClock {
 public:
  explicit PhaseClock(void* stream) : stream_(stream), on_(g_profiling.load()), last_(now()) {}
  void mark(double CudaPhases::*phase) {
    if (!on_) return;
    ops::sync(stream_);
    const auto t = now();
    std::lock_guard<std::mutex> hold(g_profile_mu);
    g_phases.*phase += std::chrono::duration<double>(t - last_).count();
    last_ = t;
  }

 private:
  static std::chrono::steady_clock::time_point now() { return std::chrono::steady_clock::now(); }
  void* stream_;
  bool on_;
  std::chrono::steady_clock::time_point last_;
};

// A rows x cols float32 matrix in device memory, freed in stream order.
class DevMat {
 public:
  DevMat(int64_t rows, int cols, void* stream)
      : rows_(rows), cols_(cols), stream_(stream), p_(ops::alloc(rows * cols, stream)) {}
  ~DevMat() { ops::release(p_, stream_); }
  DevMat(const DevMat&) = delete;
  DevMat& operator=(const DevMat&) = delete;
  void swap(DevMat& o) {
    std::swap(rows_, o.rows_);
    std::swap(cols_, o.cols_);
    std::swap(p_, o.p_);
  }
  float* data() const { return p_; }
  int64_t rows() const { return rows_; }
  int cols() const { return cols_; }

 private:
  int64_t rows_;
  int cols_;
  void* stream_;
  float* p_;
};

// y <- y R^-1 with R^T R = y^T y; returns max |y^T y - I|, or -1 when Cholesky is unsafe
// (as cholesky_qr_pass on the CPU).
double cholesky_qr_pass(DevMat& y, void* stream) {
  const int w = y.cols();
  MatrixXd gram(w, w);
  std::vector<double> g(static_cast<size_t>(w) * w);
  ops::gram(y.data(), w, y.data(), w, y.rows(), g.data(), stream);
  for (int i = 0; i < w; ++i)
    for (int j = 0; j < w; ++j) gram(i, j) = g[static_cast<size_t>(i) * w + j];
  Eigen::LLT<MatrixXd> llt(gram);
  if (llt.info() != Eigen::Success) return -1;
  const Eigen::VectorXd d = llt.matrixL().toDenseMatrix().diagonal();
  if (!(d.minCoeff() > 1e-5 * d.maxCoeff())) return -1;
  const detail::Mat<float> rinv = llt.matrixU().solve(MatrixXd::Identity(w, w)).cast<float>();
  DevMat r(w, w, stream), out(y.rows(), w, stream);
  ops::upload(r.data(), rinv.data(), int64_t(w) * w, stream);
  ops::times(y.data(), y.rows(), w, r.data(), w, out.data(), stream);
  y.swap(out);
  return (gram - MatrixXd::Identity(w, w)).cwiseAbs().maxCoeff();
}

void householder(DevMat& y, void* stream) {
  detail::Mat<float> host(y.rows(), y.cols());
  ops::download(host.data(), y.data(), y.rows() * y.cols(), stream);
  detail::householder_orthonormalise(host);
  ops::upload(y.data(), host.data(), y.rows() * y.cols(), stream);
}

// An orthonormal basis of range(y), in place (the CPU's orthonormalise).
void orthonormalise(DevMat& y, void* stream) {
  if (y.rows() * y.cols() < tuning::kCholeskyQrMinElements || y.cols() > y.rows()) return householder(y, stream);
  DevMat original(y.rows(), y.cols(), stream);
  ops::copy(original.data(), y.data(), y.rows() * y.cols(), stream);
  if (cholesky_qr_pass(y, stream) >= 0) {
    const double second = cholesky_qr_pass(y, stream);
    if (second >= 0 && second < 0.1) return;
  }
  ops::copy(y.data(), original.data(), y.rows() * y.cols(), stream);
  householder(y, stream);
}

struct Factors {
  std::unique_ptr<DevMat> q, u;  // m x r, n x r
  int rank = 0;
};

// AS-RSI on the device (run_as_rsi in as_rsi_impl.hpp, step for step). Also returns sum Mhat^2
// with the old factors (for the clip), from the statistics pass.
Factors run_as_rsi(const ops::Ema& e, const RsiOptions& opt, float eps, double* mhat_sq, void* stream,
                   PhaseClock& clock) {
  const int64_t m = e.m, n = e.n, full = std::min(m, n);
  int min_rank, max_rank;
  resolve_rank_bounds(opt, m, n, min_rank, max_rank);
  int k = std::clamp(opt.rank, min_rank, max_rank);
  double frob_sq = -1;
  for (uint64_t attempt = 0;; ++attempt) {
    check_interrupt();
    const int w = static_cast<int>(std::min<int64_t>(full, int64_t(k) + opt.oversample));
    DevMat omega(n, w, stream), y(m, w, stream), z(n, w, stream), bt(n, w, stream);
    ops::sketch(omega.data(), n, w, sketch_key(opt.seed, opt.step, opt.stream, attempt), stream);
    ops::apply(e, omega.data(), w, y.data(), stream);
    if (frob_sq < 0) ops::stats(e, eps, &frob_sq, mhat_sq, stream);
    clock.mark(&CudaPhases::products);
    orthonormalise(y, stream);
    clock.mark(&CudaPhases::orthonormalise);
    for (int it = 0; it < opt.power_iters; ++it) {
      check_interrupt();
      ops::apply_t(e, y.data(), w, z.data(), stream);
      clock.mark(&CudaPhases::products);
      orthonormalise(z, stream);
      clock.mark(&CudaPhases::orthonormalise);
      ops::apply(e, z.data(), w, y.data(), stream);
      clock.mark(&CudaPhases::products);
      orthonormalise(y, stream);
      clock.mark(&CudaPhases::orthonormalise);
    }
    ops::apply_t(e, y.data(), w, bt.data(), stream);  // B^T = A^T Q
    clock.mark(&CudaPhases::products);
    std::vector<double> g(static_cast<size_t>(w) * w);
    ops::gram(bt.data(), w, bt.data(), w, n, g.data(), stream);
    MatrixXd btb(w, w);
    for (int i = 0; i < w; ++i)
      for (int j = 0; j < w; ++j) btb(i, j) = g[static_cast<size_t>(i) * w + j];
    Eigen::SelfAdjointEigenSolver<MatrixXd> eig(btb);
    Eigen::VectorXd sigma_sq = eig.eigenvalues().reverse().cwiseMax(0.0);
    MatrixXd basis = eig.eigenvectors().rowwise().reverse();
    const int cap = std::min(w, max_rank);
    bool met = false;
    const detail::RankChoice choice = detail::choose_rank(sigma_sq, frob_sq, min_rank, cap, opt.tol, &met);
    if (!met && cap < max_rank && w < full) {
      k = std::min(2 * k, max_rank);
      continue;
    }
    const int r = choice.rank;
    const detail::Mat<float> wk = basis.leftCols(r).cast<float>();
    DevMat wd(w, r, stream);
    ops::upload(wd.data(), wk.data(), int64_t(w) * r, stream);
    Factors f;
    f.rank = r;
    f.q = std::make_unique<DevMat>(m, r, stream);
    f.u = std::make_unique<DevMat>(n, r, stream);
    ops::times(y.data(), m, w, wd.data(), r, f.q->data(), stream);   // Q_r = Y W_r
    ops::times(bt.data(), n, w, wd.data(), r, f.u->data(), stream);  // U = A^T Q_r
    clock.mark(&CudaPhases::eigen);
    return f;
  }
}

}  // namespace

}  // namespace adapprox::adapprox_parts

namespace adapprox {

AdapproxCudaPhases adapprox_cuda_profile(bool on) {
  using namespace adapprox_parts;
  std::lock_guard<std::mutex> hold(g_profile_mu);
  const CudaPhases out = g_phases;
  g_phases = CudaPhases{};
  g_profiling = on;
  return out;
}

}  // namespace adapprox

namespace adapprox::adapprox_parts {

void step_one_cuda(Slot& s, size_t slot, const AdapproxHyper& h, Allocator& alloc, void* stream) {
  const View v(s.param.shape);
  const int64_t count = v.rows * v.cols;
  if (count == 0) return;
  float* theta = static_cast<float*>(s.param.data);
  const float* g = static_cast<const float*>(s.grad.data);
  const size_t m_at = v.factored ? kU + 1 : kV + 1;
  float* mom = h.beta1 > 0 ? static_cast<float*>(s.state[m_at].data) : nullptr;
  const bool guided = h.cosine_guidance && mom;
  double cos[3] = {0, 0, 0};
  if (!v.factored) {
    float* vb = static_cast<float*>(s.state[kV].data);
    const double total = ops::dense_second_moment(g, vb, count, static_cast<float>(h.beta2), static_cast<float>(h.eps),
                                                  stream);
    const math::AdapproxUpdate a = update_args(h, clip_scale(total, count, h.clip_threshold));
    ops::dense_update(g, vb, count, a, mom, theta, !guided, cos, stream);
    if (guided) ops::guided_theta(a.lr, a.wd, guidance_from(cos[0], cos[1], cos[2]), mom, theta, count, stream);
    return;
  }
  const int64_t m = v.rows, n = v.cols;
  const TensorRef &qb = s.state[kQ], &ub = s.state[kU];
  const int k = qb.numel() == 0 ? 0 : static_cast<int>(qb.shape[1]);
  const ops::Ema e{k ? static_cast<const float*>(qb.data) : nullptr, k ? static_cast<const float*>(ub.data) : nullptr, k,
                   g, m, n, static_cast<float>(h.beta2)};
  // 1. New factors of V_t from the old ones (nothing of the state is written yet).
  RsiOptions ro = h.rsi;
  if (k > 0) ro.rank = k;
  ro.step = static_cast<uint64_t>(s.t);
  ro.stream = s.index;
  double mhat_sq = 0;
  PhaseClock clock(stream);
  Factors f = run_as_rsi(e, ro, static_cast<float>(h.eps), &mhat_sq, stream, clock);
  TensorRef nq, nu;
  if (f.rank != k) {  // buffers of the new rank, from the front, before anything is written
    nq = alloc.allocate_on(s.param.device, stream, slot, kQ, DType::f32, {m, int64_t(f.rank)});
    nu = alloc.allocate_on(s.param.device, stream, slot, kU, DType::f32, {n, int64_t(f.rank)});
  }
  // 2. The update with this step's V_t (old factors).
  const math::AdapproxUpdate a = update_args(h, clip_scale(mhat_sq, count, h.clip_threshold));
  ops::update(e, a, mom, theta, !guided, cos, stream);
  if (guided) ops::guided_theta(a.lr, a.wd, guidance_from(cos[0], cos[1], cos[2]), mom, theta, count, stream);
  // 3. Commit the new factors: in place at the same rank, else into the new buffers.
  float* q_dst = static_cast<float*>(f.rank == k ? qb.data : nq.data);
  float* u_dst = static_cast<float*>(f.rank == k ? ub.data : nu.data);
  ops::copy(q_dst, f.q->data(), m * f.rank, stream);
  ops::copy(u_dst, f.u->data(), n * f.rank, stream);
  clock.mark(&CudaPhases::update);
  if (f.rank != k) {
    s.state[kQ] = nq;
    s.state[kU] = nu;
  }
}

}  // namespace adapprox::adapprox_parts
