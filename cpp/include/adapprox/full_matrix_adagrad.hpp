// Full-matrix AdaGrad (Duchi, Hazan and Singer 2011): per parameter, flattened to n elements,
//
//   S_t = S_{t-1} + g g^T                     (S_0 = 0; the state, n x n float64)
//   G_t = eps I + S_t = V diag(lambda) V^T    (symmetric eigendecomposition, lambda clamped at eps)
//   d_t = G_t^(-1/2) g = V diag(lambda^(-1/2)) V^T g
//   p   = p - clr * d_t
//
// with the gradient, lr, lr_decay, weight decay and maximize of gram.hpp. Exact, and O(n^2)
// memory and O(n^3) time per step: parameters above kFullMatrixMaxNumel elements are refused.
#pragma once
#include <cstdint>
#include <vector>

#include "adapprox/gram.hpp"

namespace adapprox {

// 4096 elements: a 128 MiB float64 matrix and an eigendecomposition of 4096 x 4096 per step.
constexpr int64_t kFullMatrixMaxNumel = 4096;

struct FullMatrixAdagradState {
  std::vector<int64_t> shape;
  int64_t step = 0;
  std::vector<double> sum;  // n x n, sum of g g^T (empty before the first step)

  FullMatrixAdagradState() = default;
  explicit FullMatrixAdagradState(std::vector<int64_t> shape) : shape(std::move(shape)) {}
  int64_t numel() const { return flat_size(shape); }
  int64_t state_bytes() const { return static_cast<int64_t>(sum.size() * sizeof(double)); }
  // Throws Error(state) if the buffer does not fit the shape (used after loading).
  void check() const;
};

struct FullMatrixAdagradSlot {
  FullMatrixAdagradState* state;
  TensorRef param;  // updated in place
  TensorRef grad;
};

// One step over many parameters, validated completely before anything is written; parameters
// run side by side on the thread pool (results do not depend on the thread count).
void full_matrix_adagrad_step(std::vector<FullMatrixAdagradSlot>& slots, const GramHyper& h);

}  // namespace adapprox
