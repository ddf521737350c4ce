// Adapprox (Zhao et al. 2024): Adam whose second moment is stored as a low-rank factorization
// Q U^T, refreshed every step by AS-RSI. Per parameter (viewed as m x n):
//   V_t    = b2 * Q_{t-1} U_{t-1}^T + (1 - b2) * G_t^2          (never materialised whole)
//   Q_t U_t^T = AS-RSI(V_t)                                     (rank k adapted against tol)
//   Mhat   = G_t / (sqrt(b2 * |Q_{t-1} U_{t-1}^T| + (1 - b2) G_t^2) + eps)   (robust denominator)
//   Mhat  /= max(1, RMS(Mhat) / d)
//   M_t    = b1 M_{t-1} + (1 - b1) Mhat   (b1 > 0; with b1 = 0 no M is kept and M_t = Mhat)
//   theta -= lr * (s * M_t + wd * theta), s = 1 unless cosine guidance is on
// 1-D (and 0-D) parameters keep a dense V; N-D parameters are viewed as (shape[0], rest).
//
// The optimizer itself is the registry entry "adapprox" (registry.hpp); its state buffers are
// "step", factor_q (m x k) and factor_u (n x k) for factored parameters (absent before the first
// step, replaced through the Allocator when k changes) or exp_avg_sq (0-D/1-D, like the
// parameter), and exp_avg (like the parameter) when b1 > 0, all float32.
#pragma once
#include <cstdint>
#include <vector>

#include "adapprox/registry.hpp"

namespace adapprox {

// Bytes of transient memory one step on a parameter of this shape and dtype may allocate under
// the complete hyperparameters `h` (README bound); `contiguous`: the parameter is C-contiguous
// (other layouts add C-ordered copies of the parameter, gradient and like-parameter state).
int64_t adapprox_step_workspace_bytes(const std::vector<int64_t>& shape, DType param_dtype, const Hyper& h,
                                      bool contiguous = true);

// Where Adapprox's CUDA steps spend their time, in seconds, summed over the steps taken while
// profiling is on (each phase then ends by waiting for the GPU, which itself costs time):
// products with V (and the sketch), orthonormalisation, the small eigenproblem and rank choice
// (on the host, with the product B B^T), and the update pass.
struct AdapproxCudaPhases {
  double products = 0, orthonormalise = 0, eigen = 0, update = 0;
};
// Turns profiling on or off and returns the times gathered since the last call (then cleared).
AdapproxCudaPhases adapprox_cuda_profile(bool on);

}  // namespace adapprox
