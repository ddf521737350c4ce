// Adafactor on CUDA, both modes (the algorithm: ../src/adafactor.cpp; per-element rules shared
// with the CPU: ../src/math/adafactor.hpp). One parameter at a time, all in stream order with no
// host synchronisation: the step size, which needs the sums of theta^2 and U^2, is formed on the
// device. Sums are in double over a fixed tree (deterministic run to run); they are not summed
// in the CPU's order, so results agree with the CPU path to rounding, not bit for bit.
//   factored (batch B, rows m, columns n; FR = B m rows):
//     row_stats   one block per row: sum_j g^2 -> rowsum, sum_j theta^2 -> tsq
//     col_sums    slabs of rows per column, then the slabs in order -> colsum
//     factors     R, C EMAs; mean(R) per batch; a_i = 1/sqrt(R_i), b_j = sqrt(mean(R)/C_j)
//     row_u_sq    one block per row: sum_j U^2
//     scalars     one block: the totals -> alpha, denom -> ApplyScalars
//     apply       every element: theta (and the first moment in paper mode)
//   dense (0-D/1-D): the V EMA with the theta^2 sums, U^2 sums, scalars, apply.
#include <algorithm>
#include <cmath>

#include "../src/cuda_steps.hpp"
#include "../src/math/adafactor.hpp"
#include "runtime.cuh"

namespace adapprox::cuda {
namespace {

constexpr int kTpb = kThreadsPerBlock;
constexpr int kMaxSlabs = 64;  // row slabs of the column sums
constexpr int kDenseBlocks = 1024;

template <class P, class T>
__global__ void row_stats(const P* g, const P* th, int64_t n, double* rowsum, double* tsq) {
  const int64_t r = blockIdx.x;
  double gs = 0, ts = 0;
  for (int64_t j = threadIdx.x; j < n; j += kTpb) {
    const double x = static_cast<double>(T(widen(g[r * n + j])));
    const double t = static_cast<double>(T(widen(th[r * n + j])));
    gs += x * x;
    ts += t * t;
  }
  gs = block_sum(gs);
  ts = block_sum(ts);
  if (threadIdx.x == 0) {
    rowsum[r] = gs;
    tsq[r] = ts;
  }
}

// grid (blocks over the B n columns, 1, slabs): partial column sums of g^2 over one slab of rows.
template <class P, class T>
__global__ void col_partial(const P* g, int64_t B, int64_t m, int64_t n, int slabs, double* part) {
  const int64_t k = int64_t(blockIdx.x) * kTpb + threadIdx.x;
  const int64_t s = blockIdx.z;
  if (k >= B * n) return;
  const int64_t b = k / n, j = k - b * n;
  const int64_t i0 = m * s / slabs, i1 = m * (s + 1) / slabs;
  double acc = 0;
  for (int64_t i = i0; i < i1; ++i) {
    const double x = static_cast<double>(T(widen(g[(b * m + i) * n + j])));
    acc += x * x;
  }
  part[s * B * n + k] = acc;
}

template <class T>
__global__ void factor_emas(T* R, T* C, const double* rowsum, const double* part, int slabs, int64_t B, int64_t m,
                            int64_t n, T w, double add) {
  const int64_t k = int64_t(blockIdx.x) * kTpb + threadIdx.x;
  if (k < B * m) R[k] = math::adafactor_lerp(R[k], static_cast<T>(rowsum[k] / n + add), w);
  if (k < B * n) {
    double s = 0;
    for (int i = 0; i < slabs; ++i) s += part[int64_t(i) * B * n + k];
    C[k] = math::adafactor_lerp(C[k], static_cast<T>(s / m + add), w);
  }
}

// One block per batch: mean(R) (clamped to eps1 in torch mode).
template <class T>
__global__ void row_means(const T* R, int64_t m, bool paper, double eps1, T* den) {
  const int64_t b = blockIdx.x;
  double s = 0;
  for (int64_t i = threadIdx.x; i < m; i += kTpb) s += static_cast<double>(R[b * m + i]);
  s = block_sum(s);
  if (threadIdx.x == 0) {
    const T mean = static_cast<T>(s / m);
    den[b] = paper ? mean : (mean < static_cast<T>(eps1) ? static_cast<T>(eps1) : mean);
  }
}

template <class T>
__global__ void factors(const T* R, const T* C, const T* den, int64_t B, int64_t m, int64_t n, bool paper, T* ra,
                        T* cb) {
  const int64_t k = int64_t(blockIdx.x) * kTpb + threadIdx.x;
  if (k < B * m) ra[k] = math::adafactor_row_factor<T>(static_cast<double>(R[k]), paper);
  if (k < B * n) cb[k] = math::adafactor_col_factor<T>(static_cast<double>(C[k]), static_cast<double>(den[k / n]), paper);
}

template <class P, class T>
__global__ void row_u_sq(const P* g, const T* ra, const T* cb, int64_t m, int64_t n, math::FactoredRule<T> rule,
                         double* usq) {
  const int64_t r = blockIdx.x;
  const T* b = cb + (r / m) * n;
  double s = 0;
  for (int64_t j = threadIdx.x; j < n; j += kTpb) {
    const double u = static_cast<double>(rule(T(widen(g[r * n + j])), ra[r], b[j]));
    s += u * u;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) usq[r] = s;
}

struct ScalarArgs {
  double n, rho, eps2, d, lr, weight_decay, beta1;
  bool paper, scale_parameter;
};

// One block: the totals of the per-row (or per-block) sums, in a fixed order, and the step size.
template <class T>
__global__ void step_scalars(const double* tsq, const double* usq, int64_t parts, ScalarArgs a,
                             math::ApplyScalars<T>* out) {
  double ts = 0, us = 0;
  for (int64_t k = threadIdx.x; k < parts; k += kTpb) {
    ts += tsq[k];
    us += usq[k];
  }
  ts = block_sum(ts);
  us = block_sum(us);
  if (threadIdx.x == 0)
    *out = math::adafactor_apply_scalars<T>(ts, us, a.n, a.rho, a.paper, a.scale_parameter, a.eps2, a.d, a.lr,
                                            a.weight_decay, a.beta1);
}

template <math::ApplyMode Mode, class P, class T>
__global__ void apply_factored(P* th, const P* g, T* mom, const T* ra, const T* cb, int64_t m, int64_t n, int64_t N,
                               math::FactoredRule<T> rule, const math::ApplyScalars<T>* ac) {
  const math::ApplyScalars<T> c = *ac;
  for (int64_t i = int64_t(blockIdx.x) * kTpb + threadIdx.x; i < N; i += int64_t(gridDim.x) * kTpb) {
    const int64_t r = i / n, j = i - r * n;
    T t = widen(th[i]);
    math::apply_one<Mode>(c, t, mom ? mom + i : nullptr, rule(T(widen(g[i])), ra[r], cb[(r / m) * n + j]));
    th[i] = narrow<P>(t);
  }
}

// Dense: V <- lerp(V, g^2 + add, w) and per-block sums of theta^2.
template <class P, class T>
__global__ void dense_stats(const P* g, const P* th, T* V, int64_t N, T w, T add, double* tsq) {
  double ts = 0;
  for (int64_t i = int64_t(blockIdx.x) * kTpb + threadIdx.x; i < N; i += int64_t(gridDim.x) * kTpb) {
    const T gi = widen(g[i]);
    V[i] = math::adafactor_lerp(V[i], gi * gi + add, w);
    const double t = static_cast<double>(T(widen(th[i])));
    ts += t * t;
  }
  ts = block_sum(ts);
  if (threadIdx.x == 0) tsq[blockIdx.x] = ts;
}

template <class P, class T>
__global__ void dense_u_sq(const P* g, const T* V, int64_t N, math::UpdateRule<T> rule, double* usq) {
  double s = 0;
  for (int64_t i = int64_t(blockIdx.x) * kTpb + threadIdx.x; i < N; i += int64_t(gridDim.x) * kTpb) {
    const double u = static_cast<double>(rule(V[i], T(widen(g[i]))));
    s += u * u;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) usq[blockIdx.x] = s;
}

template <math::ApplyMode Mode, class P, class T>
__global__ void apply_dense(P* th, const P* g, T* mom, const T* V, int64_t N, math::UpdateRule<T> rule,
                            const math::ApplyScalars<T>* ac) {
  const math::ApplyScalars<T> c = *ac;
  for (int64_t i = int64_t(blockIdx.x) * kTpb + threadIdx.x; i < N; i += int64_t(gridDim.x) * kTpb) {
    T t = widen(th[i]);
    math::apply_one<Mode>(c, t, mom ? mom + i : nullptr, rule(V[i], T(widen(g[i]))));
    th[i] = narrow<P>(t);
  }
}

template <math::ApplyMode Mode, class P, class T>
void step_typed(const AdafactorArgs& a, Slot& s, cudaStream_t st) {
  const std::vector<int64_t>& shape = s.param.shape;
  int64_t N = 1;
  for (int64_t d : shape) N *= d;
  if (N == 0) return;
  P* th = static_cast<P*>(s.param.data);
  const P* g = static_cast<const P*>(s.grad.data);
  const T sign = a.maximize ? T(-1) : T(1);
  const T w = static_cast<T>(a.w);
  const ScalarArgs sa{static_cast<double>(N), a.rho, a.eps2, a.d, a.lr, a.weight_decay, a.beta1, a.paper,
                      a.scale_parameter};
  if (a.factored) {
    int64_t B = 1;
    for (size_t i = 0; i + 2 < shape.size(); ++i) B *= shape[i];
    const int64_t m = shape[shape.size() - 2], n = shape.back(), FR = B * m;
    const int slabs = static_cast<int>(std::clamp<int64_t>(m / 256, 1, kMaxSlabs));
    T* R = static_cast<T*>(s.state[1].data);
    T* C = static_cast<T*>(s.state[2].data);
    T* mom = a.use_m ? static_cast<T*>(s.state[3].data) : nullptr;
    Scratch scratch(3 * Scratch::need<double>(FR) + Scratch::need<double>(int64_t(slabs) * B * n) +
                        Scratch::need<T>(B) + Scratch::need<T>(FR) + Scratch::need<T>(B * n) +
                        Scratch::need<math::ApplyScalars<T>>(1),
                    st);
    double* rowsum = scratch.take<double>(FR);
    double* tsq = scratch.take<double>(FR);
    double* usq = scratch.take<double>(FR);
    double* part = scratch.take<double>(int64_t(slabs) * B * n);
    T* den = scratch.take<T>(B);
    T* ra = scratch.take<T>(FR);
    T* cb = scratch.take<T>(B * n);
    auto* ac = scratch.take<math::ApplyScalars<T>>(1);
    const math::FactoredRule<T> rule{sign, a.paper || a.eps1 == 0 ? std::numeric_limits<T>::infinity()
                                                                  : static_cast<T>(1 / a.eps1)};
    row_stats<P, T><<<static_cast<unsigned>(FR), kTpb, 0, st>>>(g, th, n, rowsum, tsq);
    check(cudaGetLastError(), "Adafactor row_stats");
    col_partial<P, T><<<dim3(blocks_for(B * n), 1, slabs), kTpb, 0, st>>>(g, B, m, n, slabs, part);
    check(cudaGetLastError(), "Adafactor col_partial");
    factor_emas<T><<<blocks_for(std::max(FR, B * n)), kTpb, 0, st>>>(R, C, rowsum, part, slabs, B, m, n, w, a.add);
    check(cudaGetLastError(), "Adafactor factor_emas");
    row_means<T><<<static_cast<unsigned>(B), kTpb, 0, st>>>(R, m, a.paper, a.eps1, den);
    check(cudaGetLastError(), "Adafactor row_means");
    factors<T><<<blocks_for(std::max(FR, B * n)), kTpb, 0, st>>>(R, C, den, B, m, n, a.paper, ra, cb);
    check(cudaGetLastError(), "Adafactor factors");
    row_u_sq<P, T><<<static_cast<unsigned>(FR), kTpb, 0, st>>>(g, ra, cb, m, n, rule, usq);
    check(cudaGetLastError(), "Adafactor row_u_sq");
    step_scalars<T><<<1, kTpb, 0, st>>>(tsq, usq, FR, sa, ac);
    check(cudaGetLastError(), "Adafactor step_scalars");
    apply_factored<Mode, P, T><<<std::min<unsigned>(blocks_for(N), 65536), kTpb, 0, st>>>(th, g, mom, ra, cb, m, n, N,
                                                                                        rule, ac);
    check(cudaGetLastError(), "Adafactor apply_factored");
  } else {
    T* V = static_cast<T*>(s.state[1].data);
    T* mom = a.use_m ? static_cast<T*>(s.state[2].data) : nullptr;
    const unsigned blocks = std::min<unsigned>(blocks_for(N), kDenseBlocks);
    Scratch scratch(2 * Scratch::need<double>(blocks) + Scratch::need<math::ApplyScalars<T>>(1), st);
    double* tsq = scratch.take<double>(blocks);
    double* usq = scratch.take<double>(blocks);
    auto* ac = scratch.take<math::ApplyScalars<T>>(1);
    const math::UpdateRule<T> rule{a.paper, static_cast<T>(a.eps1 * a.eps1), sign};
    dense_stats<P, T><<<blocks, kTpb, 0, st>>>(g, th, V, N, w, static_cast<T>(a.add), tsq);
    check(cudaGetLastError(), "Adafactor dense_stats");
    dense_u_sq<P, T><<<blocks, kTpb, 0, st>>>(g, V, N, rule, usq);
    check(cudaGetLastError(), "Adafactor dense_u_sq");
    step_scalars<T><<<1, kTpb, 0, st>>>(tsq, usq, blocks, sa, ac);
    check(cudaGetLastError(), "Adafactor step_scalars");
    apply_dense<Mode, P, T><<<blocks, kTpb, 0, st>>>(th, g, mom, V, N, rule, ac);
    check(cudaGetLastError(), "Adafactor apply_dense");
  }
}

template <class P, class T>
void step_mode(const AdafactorArgs& a, Slot& s, cudaStream_t st) {
  if (!a.paper) step_typed<math::ApplyMode::torch, P, T>(a, s, st);
  else if (!a.use_m) step_typed<math::ApplyMode::paper, P, T>(a, s, st);
  else step_typed<math::ApplyMode::paper_momentum, P, T>(a, s, st);
}

}  // namespace

void adafactor_step(const AdafactorArgs& a, Slot& s, void* stream) {
  DeviceGuard on(s.param.device.index);
  const cudaStream_t st = as_stream(stream);
  switch (s.param.dtype) {
    case DType::f32: return step_mode<float, float>(a, s, st);
    case DType::f64: return step_mode<double, double>(a, s, st);
    case DType::bf16: return step_mode<__nv_bfloat16, float>(a, s, st);
    case DType::f16: return step_mode<__half, float>(a, s, st);
    case DType::u8: break;  // never a parameter (the driver refuses it)
  }
}

}  // namespace adapprox::cuda
