// Plain views of caller-owned buffers, and the error type of the core.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace adapprox {

enum class DType { f32, f64, f16, bf16 };

const char* dtype_name(DType t);
int dtype_size(DType t);

// Where a buffer lives: host memory, or the memory of CUDA device `index`.
struct Device {
  enum Kind { cpu, cuda } kind = cpu;
  int index = 0;
  bool operator==(const Device& o) const { return kind == o.kind && (kind == cpu || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
};
std::string device_str(const Device& d);  // "cpu", "cuda:0"

// A tensor that the caller owns. `strides` are in elements; empty means C-contiguous. The core
// steps dense layouts only (every element exactly once in a block of numel elements:
// C-contiguous, channels_last, any permutation of dimensions).
struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  Device device{};
  int64_t numel() const;                   // throws Error(shape) when the count overflows int64
  bool contiguous() const;                 // C-contiguous (strides of size-1 dimensions ignored)
  bool dense() const;                      // non-overlapping and dense, strides >= 0
  bool same_layout(const TensorRef& o) const;  // same shape and same strides where the extent is > 1
  int64_t stride(size_t dim) const;        // strides[dim], or the C-contiguous stride
};

// Kinds of rejected input, so bindings can map them to their own exception types.
// comm: a collective failed or another rank refused the step (distributed steps).
enum class ErrorKind { value, type, device, state, spec, shape, interrupted, comm };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

std::string shape_str(const std::vector<int64_t>& shape);

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
