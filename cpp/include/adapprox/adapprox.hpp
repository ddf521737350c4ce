// Adapprox (Zhao et al. 2024): Adam whose second moment is stored as a low-rank factorization
// Q U^T, refreshed every step by AS-RSI. Per parameter (viewed as m x n):
//   V_t    = b2 * Q_{t-1} U_{t-1}^T + (1 - b2) * G_t^2          (never materialised whole)
//   Q_t U_t^T = AS-RSI(V_t)                                     (rank k adapted against tol)
//   Mhat   = G_t / (sqrt(b2 * |Q_{t-1} U_{t-1}^T| + (1 - b2) G_t^2) + eps)   (robust denominator)
//   Mhat  /= max(1, RMS(Mhat) / d)
//   M_t    = b1 M_{t-1} + (1 - b1) Mhat   (b1 > 0; with b1 = 0 no M is kept and M_t = Mhat)
//   theta -= lr * (s * M_t + wd * theta), s = 1 unless cosine guidance is on
// 1-D (and 0-D) parameters keep a dense V; N-D parameters are viewed as (shape[0], rest).
#pragma once
#include <cstdint>
#include <vector>

#include "adapprox/as_rsi.hpp"
#include "adapprox/tensor.hpp"

namespace adapprox {

struct AdapproxHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double clip_threshold = 1.0;  // d; +inf disables the RMS clip
  double weight_decay = 0.0;    // decoupled, scaled by lr (as AdamW)
  RsiOptions rsi;               // rank, min_rank, max_rank, tol, oversample, power_iters, seed
  bool cosine_guidance = false;
  bool maximize = false;
};

// Throws Error naming the hyperparameter that is out of range.
void validate(const AdapproxHyper& h);

// Optimizer state of one parameter. Factors are float32 whatever the parameter dtype.
struct AdapproxState {
  std::vector<int64_t> shape;
  int64_t rows = 0, cols = 0;  // the 2-D view (factored) or (1, numel) for dense V
  bool factored = false;
  int64_t step = 0;
  int rank = 0;              // columns of q and u (0 before the first step)
  std::vector<float> q;      // rows x rank, row-major
  std::vector<float> u;      // cols x rank, row-major
  std::vector<float> v;      // dense second moment (1-D parameters only)
  std::vector<float> m;      // first moment (empty when b1 == 0)

  AdapproxState() = default;
  explicit AdapproxState(std::vector<int64_t> shape);
  int64_t numel() const { return rows * cols; }
  int64_t state_bytes() const;  // bytes of all state buffers
  // Throws Error(state) if buffer sizes do not agree with shape/rank (used after loading).
  void check() const;
};

struct AdapproxSlot {
  AdapproxState* state;
  TensorRef param;  // updated in place
  TensorRef grad;
  uint64_t index;   // stable parameter index: part of the sketch's random key
};

// One step over many parameters. Everything is validated before anything is written, so a
// rejected call leaves parameters and state untouched. Large parameters use all threads each;
// small ones run side by side.
void adapprox_step(std::vector<AdapproxSlot>& slots, const AdapproxHyper& h);

// Bytes of transient memory one step on a parameter of this shape may allocate (README bound).
int64_t adapprox_step_workspace_bytes(const AdapproxState& st, const AdapproxHyper& h, int param_dtype_bytes);

}  // namespace adapprox
