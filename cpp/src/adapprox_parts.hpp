// Internal: what the CPU step (adapprox.cpp) and the CUDA step's host driver (adapprox_cuda.cpp)
// share: the hyperparameters, the 2-D view of a parameter, the clip and the guidance scale.
#pragma once
#include "adapprox/quantized_state.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "adapprox/adapprox.hpp"
#include "adapprox/as_rsi.hpp"
#include "adapprox/registry.hpp"
#include "math/adapprox.hpp"

namespace adapprox::adapprox_parts {

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
  bool warm_start = true;       // AS-RSI starts from the previous U (CPU; run_as_rsi)
  StatePrecision precision = StatePrecision::f32;  // of exp_avg and a dense exp_avg_sq
  bool stochastic_rounding = false;                // of bf16 parameters
};

inline AdapproxHyper native(const Hyper& h) {
  AdapproxHyper a;
  a.lr = h.at("lr");
  a.beta1 = h.at("beta1");
  a.beta2 = h.at("beta2");
  a.eps = h.at("eps");
  a.clip_threshold = h.at("clip_threshold");
  a.weight_decay = h.at("weight_decay");
  a.rsi.rank = static_cast<int>(h.at("rank"));
  a.rsi.min_rank = static_cast<int>(h.at("min_rank"));
  a.rsi.max_rank = static_cast<int>(h.at("max_rank"));
  a.rsi.tol = h.at("tol");
  a.rsi.oversample = static_cast<int>(h.at("oversample"));
  a.rsi.power_iters = static_cast<int>(h.at("power_iters"));
  a.rsi.seed = static_cast<uint64_t>(h.at("seed"));
  a.cosine_guidance = h.at("cosine_guidance") != 0;
  a.maximize = h.at("maximize") != 0;
  a.warm_start = h.at("warm_start") != 0;
  a.precision = state_precision(h);
  a.stochastic_rounding = adapprox::stochastic_rounding(h);
  return a;
}

// The 2-D view of a parameter: factored (shape[0], rest) for >= 2-D parameters with elements,
// else (1, numel) with a dense second moment. A row shard is viewed as the whole tensor (`whole`)
// is: factored or not alike on every rank, with its own rows (possibly none).
struct View {
  bool factored;
  int64_t rows, cols;
  explicit View(const std::vector<int64_t>& shape) : View(shape, shape) {}
  View(const std::vector<int64_t>& shape, const std::vector<int64_t>& whole) {
    int64_t numel = 1, whole_numel = 1;
    for (int64_t d : shape) numel *= d;
    for (int64_t d : whole) whole_numel *= d;
    factored = whole.size() >= 2 && whole_numel > 0;
    rows = factored ? shape[0] : 1;
    cols = factored ? whole_numel / whole[0] : numel;
  }
};

// Schema positions after "step".
constexpr size_t kQ = 1, kU = 2;  // factored parameters
constexpr size_t kV = 1;          // 0-D/1-D parameters

// 1 / max(1, RMS(Mhat) / d): the RMS clip of the normalised update.
inline float clip_scale(double sum_sq, int64_t count, double d) {
  const double rms = count > 0 ? std::sqrt(sum_sq / count) : 0.0;
  return static_cast<float>(1.0 / std::max(1.0, rms / d));
}

// s = (1 + cos(M_t, Mhat_t)) / 2 from sum M Mhat, sum M^2, sum Mhat^2 (1 where either is zero).
inline float guidance_from(double dot, double mm, double hh) {
  if (mm <= 0 || hh <= 0) return 1.0f;
  return static_cast<float>(0.5 * (1.0 + dot / std::sqrt(mm * hh)));
}

inline math::AdapproxUpdate update_args(const AdapproxHyper& h, float scale) {
  return math::AdapproxUpdate{static_cast<float>(h.beta1), static_cast<float>(h.eps), static_cast<float>(h.lr),
                              static_cast<float>(h.weight_decay), scale, h.maximize ? -1.0f : 1.0f};
}

using CudaPhases = AdapproxCudaPhases;

// The CUDA step of one parameter (float32, C-contiguous, on one device): adapprox_cuda.cpp.
void step_one_cuda(Slot& s, size_t slot, const AdapproxHyper& h, Allocator& alloc, void* stream);

}  // namespace adapprox::adapprox_parts
