// Plain views of caller-owned buffers, and the error type of the core.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "adapprox/export.h"

namespace adapprox {

enum class DType { f32, f64, f16, bf16, u8 };  // u8: 8-bit moment codes (state only)

ADAPPROX_API const char* dtype_name(DType t);
ADAPPROX_API int dtype_size(DType t);

// Where a buffer lives: host memory, or the memory of CUDA device `index`.
struct Device {
  enum Kind { cpu, cuda } kind = cpu;
  int index = 0;
  bool operator==(const Device& o) const { return kind == o.kind && (kind == cpu || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
};
ADAPPROX_API std::string device_str(const Device& d);  // "cpu", "cuda:0"

// A tensor that the caller owns. `strides` are in elements; empty means C-contiguous. The core
// steps dense layouts only (every element exactly once in a block of numel elements:
// C-contiguous, channels_last, any permutation of dimensions).
struct ADAPPROX_API TensorRef {
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

class ADAPPROX_API Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

ADAPPROX_API std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace adapprox
