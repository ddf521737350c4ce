// Internal: the pieces shared by the two full-matrix AdaGrad optimizers (full_matrix_adagrad.cpp,
// adagram.cpp). Both precondition a parameter, flattened to a vector of n elements, with the Gram
// matrix of its gradients G_t = eps I + sum_{s<=t} g_s g_s^T, and share torch.optim.Adagrad's
// conventions:
//
//   g   = -g if maximize;  g = g + weight_decay * p        (L2 decay added to the gradient)
//   clr = lr / (1 + (t - 1) lr_decay)
//   p   = p - clr * d_t                                     (d_t: each optimizer's direction)
//
// All math and all state are float64, for every parameter dtype (float32 parameters are read
// into double and rounded once on the way back; bf16/fp16 parameters are stepped exactly as their
// float32 copies would be, then rounded once more): G spans many orders of magnitude (eps is
// tiny next to sum g g^T), and AdaGram's factor I - P Q^T cancels nearly equal terms. Parameters
// are flattened in logical (C) order whatever their layout, so every dense layout gives the
// same result.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "adapprox/registry.hpp"
#include "adapprox/interrupt.hpp"
#include "adapprox/thread_pool.hpp"
#include "adapprox/tensor_ops.hpp"
#include "adapprox/interrupt_points.hpp"

namespace adapprox::gram {

struct GramHyper {
  double lr, lr_decay, weight_decay, eps;
  bool maximize;
};

// The shared hyperparameters: lr, lr_decay, weight_decay, eps (default `eps`), maximize.
std::vector<HyperParam> hyper_params(double eps);
GramHyper native(const Hyper& h);

// p (any dtype, any dense layout) <- p - clr * d, computed in double and rounded once to
// float32/float64; bf16/fp16 are stepped as their float32 copies would be, then rounded to the
// parameter dtype. direction(g, d) reads the effective gradient g (n doubles), updates the
// optimizer's state and writes d_t into d.
template <class Direction>
void step_one(Slot& s, const GramHyper& h, Direction&& direction) {
  const TensorRef& param = s.param;
  const int64_t n = param.numel();
  const double t = static_cast<double>(s.t);
  if (n == 0) return;
  std::vector<double> theta(n), g(n), d(n);
  // C-contiguous float32/float64: read and written in place; the rest through gather/scatter.
  const bool direct = param.contiguous() && (param.dtype == DType::f64 || param.dtype == DType::f32);
  auto read = [&](const auto* ptr, std::vector<double>& dst) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<double>(ptr[i]);
  };
  if (!direct) {
    gather(param, DType::f64, theta.data());
    gather(s.grad, DType::f64, g.data());
  } else if (param.dtype == DType::f64) {
    read(static_cast<const double*>(param.data), theta);
    read(static_cast<const double*>(s.grad.data), g);
  } else {
    read(static_cast<const float*>(param.data), theta);
    read(static_cast<const float*>(s.grad.data), g);
  }
  const double sign = h.maximize ? -1.0 : 1.0;
  for (int64_t i = 0; i < n; ++i) g[i] = sign * g[i] + h.weight_decay * theta[i];
  direction(g.data(), d.data());
  const double clr = h.lr / (1.0 + (t - 1.0) * h.lr_decay);
  if (!direct) {
    for (int64_t i = 0; i < n; ++i) theta[i] = theta[i] - clr * d[i];
    scatter(theta.data(), DType::f64, param);
  } else if (param.dtype == DType::f64) {
    double* p = static_cast<double*>(param.data);
    for (int64_t i = 0; i < n; ++i) p[i] = theta[i] - clr * d[i];
  } else {
    float* p = static_cast<float*>(param.data);
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(theta[i] - clr * d[i]);
  }
}

// Steps the parameters side by side on the pool (a direction may split its own work further, by
// shape only: results do not depend on the thread count). direction(slot, index, g, d).
template <class Direction>
void run(std::vector<Slot>& slots, const GramHyper& h, Direction direction) {
  parallel_chunks(static_cast<int64_t>(slots.size()), 1, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      check_interrupt();
      step_one(slots[i], h, [&](const double* g, double* d) { direction(slots[i], static_cast<size_t>(i), g, d); });
      slots[i].done = true;
    }
  });
}

}  // namespace adapprox::gram
