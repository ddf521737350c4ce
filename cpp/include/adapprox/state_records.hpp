// Conversions between each optimizer's native state and the shared StateRecord (used by the
// byte format of Optimizer::save/load, the C ABI, and Python's save/load_native_state).
#pragma once
#include "adapprox/adapprox.hpp"
#include "adapprox/elementwise.hpp"
#include "adapprox/optimizer.hpp"

namespace adapprox {

StateRecord to_record(const AdapproxState& s);
AdapproxState adapprox_state_from(const StateRecord& r);  // checked; throws Error(state)

StateRecord to_record(const ElementwiseState& s);
ElementwiseState elementwise_state_from(const StateRecord& r);  // checked; throws Error(state)

}  // namespace adapprox
