// Shared pieces of the two full-matrix AdaGrad optimizers (full_matrix_adagrad.hpp, adagram.hpp):
// both precondition a parameter, flattened to a vector of n elements, with the Gram matrix of
// its gradients G_t = eps I + sum_{s<=t} g_s g_s^T, and share torch.optim.Adagrad's conventions:
//
//   g   = -g if maximize;  g = g + weight_decay * p        (L2 decay added to the gradient)
//   clr = lr / (1 + (t - 1) lr_decay)
//   p   = p - clr * d_t                                     (d_t: each optimizer's direction)
//
// All math and all state are float64, for every parameter dtype (float32 parameters are read
// into double and rounded once on the way back; bf16/fp16 parameters are stepped exactly as their
// float32 copies would be, then rounded once more): G spans many orders of magnitude (eps is
// tiny next to sum g g^T), and AdaGram's factor I - P Q^T cancels nearly equal terms.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "adapprox/tensor.hpp"

namespace adapprox {

struct GramHyper {
  double lr = 1e-1;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double eps = 1e-10;
  bool maximize = false;
};

// Throws Error(value) naming the hyperparameter out of range.
void validate(const GramHyper& h);

// n, the number of elements of a parameter of this shape (1 for a scalar).
int64_t flat_size(const std::vector<int64_t>& shape);

}  // namespace adapprox
