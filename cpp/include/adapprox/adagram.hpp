// AdaGram (Matveeva, Katrutsa and Frolov, arXiv 2508.21106): full-matrix AdaGrad through a
// factor L_t with L_t L_t^T = G_t = eps I + sum g g^T, whose inverse is kept as
//
//   L_t^(-1) = (I - P Q^T) / sqrt(eps)        (P, Q: n x k float64, k <= rank)
//
// Per step, for the parameter flattened to n elements (gradient conventions of gram.hpp):
//
//   gbar = L_{t-1}^(-1) g = (g - P (Q^T g)) / sqrt(eps),   s = |gbar|^2,   r = sqrt(1 + s)
//   d_t  = L_t^(-1) g = gbar / r                (|d_t| = |G_t^(-1/2) g|, not the same direction)
//   p    = p - clr * d_t
//
// The factor update L_t = L_{t-1} (I + a gbar gbar^T), a = (r - 1) / s, inverts to
// L_t^(-1) = (I - b gbar gbar^T) L_{t-1}^(-1) with b = a / (1 + a s) = 1 / (r (1 + r)), so
//
//   I - P Q^T  ->  I - P Q^T - b gbar (gbar - Q P^T gbar)^T = I - [P p][Q q]^T,
//   p = sqrt(b) gbar,  q = sqrt(b) (gbar - Q (P^T gbar))                 (exact rank-one growth).
//
// Once k would exceed min(rank, n), one projector-splitting step (Lubich and Oseledets 2014:
// K, then S backward, then L) from W_0 = P Q^T with the increment p q^T brings the term back to
// that rank; it is exact when the new term has rank <= min(rank, n), so rank >= n is exact.
// O(n rank^2) time and 2 n rank float64 numbers of state per parameter.
#pragma once
#include <cstdint>
#include <vector>

#include "adapprox/gram.hpp"

namespace adapprox {

struct AdagramHyper : GramHyper {
  int rank = 1;
  AdagramHyper() { eps = 1e-2; }
};

void validate(const AdagramHyper& h);

struct AdagramState {
  std::vector<int64_t> shape;
  int64_t step = 0;
  int rank = 0;              // k, columns of P and Q
  std::vector<double> p, q;  // n x k each, row-major

  AdagramState() = default;
  explicit AdagramState(std::vector<int64_t> shape) : shape(std::move(shape)) {}
  int64_t numel() const { return flat_size(shape); }
  int64_t state_bytes() const { return static_cast<int64_t>((p.size() + q.size()) * sizeof(double)); }
  void check() const;  // throws Error(state)
};

struct AdagramSlot {
  AdagramState* state;
  TensorRef param;  // updated in place
  TensorRef grad;
};

// One step over many parameters, validated completely before anything is written (a state
// holding more than min(rank, n) columns, e.g. loaded from a higher-rank run, is refused);
// parameters run side by side on the thread pool, and the KSL step of one with >= 16384 elements
// by row blocks as well (a split by shape only: results do not depend on the thread count).
void adagram_step(std::vector<AdagramSlot>& slots, const AdagramHyper& h);

}  // namespace adapprox
