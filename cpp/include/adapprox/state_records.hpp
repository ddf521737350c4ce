// Conversions between each optimizer's native state and the shared StateRecord (used by the
// byte format of Optimizer::save/load, the C ABI, and Python's save/load_native_state).
#pragma once
#include "adapprox/adafactor.hpp"
#include "adapprox/adagram.hpp"
#include "adapprox/adapprox.hpp"
#include "adapprox/elementwise.hpp"
#include "adapprox/full_matrix_adagrad.hpp"
#include "adapprox/optimizer.hpp"

namespace adapprox {

StateRecord to_record(const AdapproxState& s);
AdapproxState adapprox_state_from(const StateRecord& r);  // checked; throws Error(state)

StateRecord to_record(const ElementwiseState& s);
ElementwiseState elementwise_state_from(const StateRecord& r);  // checked; throws Error(state)

// Scalar "float64" (0/1) and torch's buffer names and shapes: row_var (..., m, 1), col_var
// (..., 1, n), variance, exp_avg, in the state's dtype.
StateRecord to_record(const AdafactorState& s);
AdafactorState adafactor_state_from(const StateRecord& r);  // checked; throws Error(state)

// Float64 buffers: sum (n, n) for FullMatrixAdagrad; scalar "rank" k and factor_p, factor_q (n, k)
// for AdaGram.
StateRecord to_record(const FullMatrixAdagradState& s);
FullMatrixAdagradState full_matrix_adagrad_state_from(const StateRecord& r);  // checked; throws Error(state)
StateRecord to_record(const AdagramState& s);
AdagramState adagram_state_from(const StateRecord& r);  // checked; throws Error(state)

}  // namespace adapprox
