// The step driver shared by FullMatrixAdagrad and AdaGram (gram.hpp): validation of the whole
// group before any write, float64 copies of parameter and gradient, the Adagrad-style gradient
// (maximize, L2 weight decay), the learning-rate decay and the in-place update. Each optimizer
// supplies its direction: direction(state, g, d) reads the effective gradient g (n doubles),
// updates its state and writes d_t into d.
#pragma once
#include <cmath>
#include <string>
#include <unordered_set>
#include <vector>

#include "adapprox/gram.hpp"
#include "adapprox/thread_pool.hpp"

namespace adapprox::gram {

// p (any dtype) <- p - clr * d, computed in double and rounded once to float32/float64; bf16/fp16
// are stepped as their float32 copies would be, then rounded to the parameter dtype.
template <class Direction, class State>
void step_one(State& st, TensorRef& param, const TensorRef& grad, const GramHyper& h, Direction& direction) {
  const int64_t n = param.numel();
  const double t = static_cast<double>(st.step + 1);
  st.step += 1;
  if (n == 0) return;
  std::vector<double> theta(n), g(n), d(n);
  std::vector<float> f32;  // float32 copy of a bf16/fp16 parameter
  auto read = [&](const auto* ptr, std::vector<double>& dst) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<double>(ptr[i]);
  };
  if (param.dtype == DType::f64) {
    read(static_cast<const double*>(param.data), theta);
    read(static_cast<const double*>(grad.data), g);
  } else if (param.dtype == DType::f32) {
    read(static_cast<const float*>(param.data), theta);
    read(static_cast<const float*>(grad.data), g);
  } else {
    f32.resize(n);
    to_float32(grad, f32.data());
    read(f32.data(), g);
    to_float32(param, f32.data());
    read(f32.data(), theta);
  }
  const double sign = h.maximize ? -1.0 : 1.0;
  for (int64_t i = 0; i < n; ++i) g[i] = sign * g[i] + h.weight_decay * theta[i];
  direction(st, g.data(), d.data());
  const double clr = h.lr / (1.0 + (t - 1.0) * h.lr_decay);
  if (param.dtype == DType::f64) {
    double* p = static_cast<double*>(param.data);
    for (int64_t i = 0; i < n; ++i) p[i] = theta[i] - clr * d[i];
    return;
  }
  float* p = param.dtype == DType::f32 ? static_cast<float*>(param.data) : f32.data();
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(theta[i] - clr * d[i]);
  if (param.dtype != DType::f32) from_float32(f32.data(), param);
}

// Validates every slot (check(slot, index) throws Error naming params[index]), refuses shared
// states, then steps the parameters side by side on the pool (a direction may split its own work
// further, by shape only: results do not depend on the thread count).
template <class Slot, class Check, class Direction>
void run(std::vector<Slot>& slots, const GramHyper& h, Check check, Direction direction) {
  validate(h);
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!slots[i].state) throw Error(ErrorKind::value, "params[" + std::to_string(i) + "]: missing optimizer state");
    check_param_grad(slots[i].param, slots[i].grad, slots[i].state->shape, i);
    check(slots[i], i);
    slots[i].state->check();
  }
  std::unordered_set<const void*> seen;
  for (size_t i = 0; i < slots.size(); ++i)
    if (!seen.insert(slots[i].state).second)
      throw Error(ErrorKind::value, "params[" + std::to_string(i) + "]: shares its optimizer state with another parameter");
  parallel_chunks(static_cast<int64_t>(slots.size()), 1, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) step_one(*slots[i].state, slots[i].param, slots[i].grad, h, direction);
  });
}

}  // namespace adapprox::gram
