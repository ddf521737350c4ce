// Adafactor (Shazeer and Stern 2018) in two modes. Parameters with >= 2 dimensions are viewed as
// (batch, m, n) = (prod(shape[:-2]), shape[-2], shape[-1]) and keep a row factor R (batch x m,
// an EMA of mean_j g^2 over the last dimension) and a column factor C (batch x n, over the
// second-to-last); 0-D and 1-D parameters keep a dense second moment V. With t the step count:
//
//   mode paper (the paper's Algorithms 4-6, with relative step and update clipping):
//     rho_t   = relative_step ? min(lr, 1 / sqrt(t)) : lr      (lr = 1e-2: the paper's constant)
//     alpha_t = scale_parameter ? max(eps2, RMS(theta_{t-1})) * rho_t : rho_t
//     w_t     = t^beta2_decay                                  (1 - beta2hat_t, beta2hat_t = 1 - t^-0.8)
//     R = (1 - w_t) R + w_t mean_j(g^2 + eps1),  C = (1 - w_t) C + w_t mean_i(g^2 + eps1)
//     Vhat = R C^T / mean(R)   (per batch; the same as the paper's sums R C / 1^T R)
//     U = g / sqrt(Vhat),  Uhat = U / max(1, RMS(U) / d)
//     step = alpha_t Uhat;  with beta1 > 0: m = beta1 m + (1 - beta1) step, step = m
//     theta = theta - alpha_t * weight_decay * theta - step    (decoupled decay, scaled by alpha_t)
//
//   mode torch (torch.optim.Adafactor, _single_tensor_adafactor, step for step):
//     rho_t   = min(lr, 1 / sqrt(t)),  alpha_t = max(eps2, RMS(theta_{t-1})) * rho_t
//     theta  *= 1 - lr * weight_decay
//     R, C (or V) EMAs of plain g^2 (no eps1 inside),  Vhat = R C^T / max(mean(R), eps1)
//     U = g / sqrt(max(Vhat, eps1^2)),  theta -= alpha_t / max(1, RMS(U) / d) * U
//     (no first moment; eps1 "auto" = machine epsilon of the first parameter's dtype in the call,
//     which is what torch's eps=(None, .) resolves to).
//
// maximize negates the gradient. float64 parameters are stepped in double with float64 state;
// float32 in float; bf16/fp16 through float32 copies with float32 state.
#pragma once
#include <cstdint>
#include <vector>

#include "adapprox/tensor.hpp"

namespace adapprox {

enum class AdafactorMode { torch, paper };

struct AdafactorHyper {
  AdafactorMode mode = AdafactorMode::torch;
  double lr = 1e-2;
  double beta2_decay = -0.8;
  double eps1 = 0.0;
  bool eps1_auto = true;  // eps1 = machine epsilon of the first parameter's dtype
  double eps2 = 1e-3;
  double d = 1.0;
  double weight_decay = 0.0;
  double beta1 = 0.0;          // paper mode only; 0 keeps no first moment
  bool relative_step = true;   // paper mode only
  bool scale_parameter = true; // paper mode only
  bool maximize = false;
};

// Throws Error naming the hyperparameter that is out of range.
void validate(const AdafactorHyper& h);

template <class T>
struct AdafactorBuffers {
  std::vector<T> row_var;   // batch x m (factored)
  std::vector<T> col_var;   // batch x n (factored)
  std::vector<T> variance;  // numel (not factored)
  std::vector<T> exp_avg;   // numel (paper mode with beta1 > 0)
};

// Optimizer state of one parameter: float64 buffers for float64 parameters, float32 otherwise.
struct AdafactorState {
  std::vector<int64_t> shape;
  DType dtype = DType::f32;  // of the buffers: f32 or f64
  bool factored = false;     // shape has >= 2 dimensions
  int64_t batch = 1, rows = 1, cols = 0;
  int64_t step = 0;
  AdafactorBuffers<float> f32;
  AdafactorBuffers<double> f64;

  AdafactorState() = default;
  AdafactorState(std::vector<int64_t> shape, DType param_dtype);
  int64_t numel() const { return batch * rows * cols; }
  int64_t state_bytes() const;
  template <class T>
  AdafactorBuffers<T>& buffers();
  // Throws Error(state) if buffer sizes do not agree with the shape (used after loading).
  void check() const;
};

template <>
inline AdafactorBuffers<float>& AdafactorState::buffers<float>() { return f32; }
template <>
inline AdafactorBuffers<double>& AdafactorState::buffers<double>() { return f64; }

struct AdafactorSlot {
  AdafactorState* state;
  TensorRef param;  // updated in place
  TensorRef grad;
};

// One step over many parameters. Everything is validated before anything is written, so a
// rejected call leaves parameters and state untouched. Large parameters use all threads each;
// small ones run side by side. Results do not depend on the number of threads.
void adafactor_step(std::vector<AdafactorSlot>& slots, const AdafactorHyper& h);

}  // namespace adapprox
