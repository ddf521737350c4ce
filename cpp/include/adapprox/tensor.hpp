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

// A dense, C-contiguous tensor in host memory that the caller owns.
struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  int64_t numel() const;
};

// Kinds of rejected input, so bindings can map them to their own exception types.
enum class ErrorKind { value, type, device, state, spec, shape };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

std::string shape_str(const std::vector<int64_t>& shape);

// The checks every optimizer makes on params[index] before a step: gradient of the same shape
// and dtype, non-null data, and the shape its optimizer state was created for. Throws Error
// naming "params[index]".
void check_param_grad(const TensorRef& param, const TensorRef& grad, const std::vector<int64_t>& state_shape,
                      size_t index);

// Copies between a tensor of any supported dtype and float32 (round to nearest even on the way back).
void to_float32(const TensorRef& src, float* dst);
void from_float32(const float* src, TensorRef& dst);

}  // namespace adapprox
