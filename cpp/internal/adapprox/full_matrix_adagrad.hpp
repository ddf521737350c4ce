// Full-matrix AdaGrad (Duchi, Hazan and Singer 2011): per parameter, flattened to n elements,
//
//   S_t = S_{t-1} + g g^T                     (S_0 = 0; the state "sum", n x n float64)
//   G_t = eps I + S_t = V diag(lambda) V^T    (symmetric eigendecomposition, lambda clamped at eps)
//   d_t = G_t^(-1/2) g = V diag(lambda^(-1/2)) V^T g
//   p   = p - clr * d_t
//
// with the gradient, lr, lr_decay, weight decay and maximize of torch.optim.Adagrad. The
// optimizer is the registry entry "fullmatrixadagrad" (registry.hpp). Exact, and O(n^2) memory
// and O(n^3) time per step: parameters above kFullMatrixMaxNumel elements are refused.
#pragma once
#include <cstdint>

namespace adapprox {

// 4096 elements: a 128 MiB float64 matrix and an eigendecomposition of 4096 x 4096 per step.
constexpr int64_t kFullMatrixMaxNumel = 4096;

}  // namespace adapprox
