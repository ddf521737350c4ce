#include "adapprox/tensor.hpp"

#include <Eigen/Core>
#include <sstream>

namespace adapprox {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
  }
  return "?";
}

int dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::f16: return 2;
    case DType::bf16: return 2;
  }
  return 0;
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

void check_param_grad(const TensorRef& param, const TensorRef& grad, const std::vector<int64_t>& state_shape,
                      size_t index) {
  const std::string who = "params[" + std::to_string(index) + "]: ";
  if (param.shape != grad.shape)
    throw Error(ErrorKind::shape, who + "gradient shape " + shape_str(grad.shape) + " does not match parameter shape " +
                                      shape_str(param.shape));
  if (param.dtype != grad.dtype)
    throw Error(ErrorKind::type, who + "gradient dtype " + dtype_name(grad.dtype) + " does not match parameter dtype " +
                                     dtype_name(param.dtype));
  if (param.shape != state_shape)
    throw Error(ErrorKind::shape, who + "optimizer state was created for shape " + shape_str(state_shape) +
                                      ", parameter has shape " + shape_str(param.shape));
  if (param.numel() > 0 && (!param.data || !grad.data)) throw Error(ErrorKind::value, who + "null data pointer");
}

namespace {
template <class T>
void widen(const void* src, float* dst, int64_t n) {
  const T* s = static_cast<const T*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
}
template <class T>
void narrow(const float* src, void* dst, int64_t n) {
  T* d = static_cast<T*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<T>(src[i]);  // Eigen rounds to nearest even
}
}  // namespace

void to_float32(const TensorRef& src, float* dst) {
  const int64_t n = src.numel();
  switch (src.dtype) {
    case DType::f32: widen<float>(src.data, dst, n); break;
    case DType::f64: widen<double>(src.data, dst, n); break;
    case DType::f16: widen<Eigen::half>(src.data, dst, n); break;
    case DType::bf16: widen<Eigen::bfloat16>(src.data, dst, n); break;
  }
}

void from_float32(const float* src, TensorRef& dst) {
  const int64_t n = dst.numel();
  switch (dst.dtype) {
    case DType::f32: narrow<float>(src, dst.data, n); break;
    case DType::f64: narrow<double>(src, dst.data, n); break;
    case DType::f16: narrow<Eigen::half>(src, dst.data, n); break;
    case DType::bf16: narrow<Eigen::bfloat16>(src, dst.data, n); break;
  }
}

}  // namespace adapprox
