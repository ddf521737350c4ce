// Size checks and dtype-converting copies over TensorRef: the core's own helpers, not installed.
#pragma once
#include <cstdint>
#include <string>

#include "adapprox/tensor.hpp"

namespace adapprox {

// Bytes from the lowest to one past the highest element of a dense tensor (0 when empty).
int64_t extent_bytes(const TensorRef& t);

// Everything about a tensor's size that arithmetic could get wrong, checked before use: extents
// >= 0, strides (if any) one per dimension and >= 0, the element count, the byte extent and the
// address range all representable (no int64 or pointer wrap-around). Throws Error(shape) naming
// `who` and the shape.
void check_size(const TensorRef& t, const std::string& who);
// The same checks without throwing: what is wrong, or "" (no allocation when all is well).
std::string size_problem(const TensorRef& t);

// a * b and a + b for sizes >= 0; false when the result overflows int64.
inline bool mul_size(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
inline bool add_size(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

// Copies between a tensor of any supported dtype and float32 (round to nearest even on the way back).
// `src`/`dst` must be contiguous (staging.hpp handles other dense layouts).
void to_float32(const TensorRef& src, float* dst);
void from_float32(const float* src, TensorRef& dst);

// Converting copies between a tensor in any dense layout and a C-ordered array of `dtype`
// (f32 or f64): gather reads src in logical order, scatter writes dst (rounding to nearest even).
void gather(const TensorRef& src, DType dtype, void* dst);
void scatter(const void* src, DType dtype, const TensorRef& dst);

}  // namespace adapprox
