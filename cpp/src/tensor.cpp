#include "adapprox/tensor.hpp"

#include <Eigen/Core>
#include <cstring>
#include <sstream>

#include "isa.hpp"

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

// bfloat16 is the top half of a float32, so these are integer loops that vectorise (Eigen's
// scalar conversions are several times slower on large tensors).
inline void widen_bf16_loop(const uint16_t* __restrict__ s, float* __restrict__ d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(s[i]) << 16;
    std::memcpy(d + i, &bits, 4);
  }
}
// Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, keep the top 16 bits.
// NaN becomes the quiet NaN 0x7fc0, as in torch (the rounding add could turn a NaN into inf).
inline void narrow_bf16_loop(const float* __restrict__ s, uint16_t* __restrict__ d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, s + i, 4);
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
    d[i] = static_cast<uint16_t>(nan ? 0x7fc0u : rounded);
  }
}
void widen_bf16(const void* src, float* dst, int64_t n) {
  with_best_isa([&] { widen_bf16_loop(static_cast<const uint16_t*>(src), dst, n); });
}
void narrow_bf16(const float* src, void* dst, int64_t n) {
  with_best_isa([&] { narrow_bf16_loop(src, static_cast<uint16_t*>(dst), n); });
}
}  // namespace

void to_float32(const TensorRef& src, float* dst) {
  const int64_t n = src.numel();
  switch (src.dtype) {
    case DType::f32: widen<float>(src.data, dst, n); break;
    case DType::f64: widen<double>(src.data, dst, n); break;
    case DType::f16: widen<Eigen::half>(src.data, dst, n); break;
    case DType::bf16: widen_bf16(src.data, dst, n); break;
  }
}

void from_float32(const float* src, TensorRef& dst) {
  const int64_t n = dst.numel();
  switch (dst.dtype) {
    case DType::f32: narrow<float>(src, dst.data, n); break;
    case DType::f64: narrow<double>(src, dst.data, n); break;
    case DType::f16: narrow<Eigen::half>(src, dst.data, n); break;
    case DType::bf16: narrow_bf16(src, dst.data, n); break;
  }
}

}  // namespace adapprox
