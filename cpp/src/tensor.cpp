#include "adapprox/tensor.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <utility>
#include <sstream>

#include "isa_dispatch.hpp"
#include "adapprox/tensor_ops.hpp"

namespace adapprox {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::u8: return "uint8";
  }
  return "?";
}

int dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::u8: return 1;
  }
  return 0;
}

int64_t TensorRef::numel() const {
  for (int64_t s : shape)
    if (s == 0) return 0;  // however large the other extents
  int64_t n = 1;
  for (int64_t s : shape)
    if (s < 0 || !mul_size(n, s, &n))
      throw Error(ErrorKind::shape, "shape " + shape_str(shape) + ": element count is negative or overflows int64");
  return n;
}

std::string size_problem(const TensorRef& t) {
  for (int64_t s : t.shape)
    if (s < 0) return "negative extent in shape " + shape_str(t.shape);
  if (!t.strides.empty()) {
    if (t.strides.size() != t.shape.size()) return "strides and shape differ in length";
    for (int64_t st : t.strides)
      if (st < 0) return "negative stride";
  }
  for (int64_t s : t.shape)
    if (s == 0) return {};  // an empty tensor, however large its other extents: nothing is addressed
  int64_t n = 1;
  for (int64_t s : t.shape)
    if (!mul_size(n, s, &n)) return "shape " + shape_str(t.shape) + " has more elements than int64 can count";
  // Byte extent: (sum (extent - 1) * stride + 1) * element size, every step checked.
  int64_t last = 0;
  for (size_t i = 0; i < t.shape.size(); ++i) {
    int64_t span;
    if (!mul_size(t.shape[i] - 1, t.stride(i), &span) || !add_size(last, span, &last))
      return "shape " + shape_str(t.shape) + " with its strides spans more than int64 can count";
  }
  int64_t bytes;
  if (!add_size(last, 1, &bytes) || !mul_size(bytes, dtype_size(t.dtype), &bytes))
    return "shape " + shape_str(t.shape) + " spans more bytes than int64 can count";
  const uintptr_t lo = reinterpret_cast<uintptr_t>(t.data);
  if (t.data && lo + static_cast<uintptr_t>(bytes) < lo) return "buffer wraps around the address space";
  return {};
}

void check_size(const TensorRef& t, const std::string& who) {
  std::string why = size_problem(t);
  if (!why.empty()) throw Error(ErrorKind::shape, who + ": " + why);
}

std::string device_str(const Device& d) {
  return d.kind == Device::cpu ? std::string("cpu") : "cuda:" + std::to_string(d.index);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

int64_t TensorRef::stride(size_t dim) const {
  if (!strides.empty()) return strides[dim];
  int64_t st = 1;
  for (size_t i = dim + 1; i < shape.size(); ++i)
    if (!mul_size(st, shape[i], &st)) return 0;  // only for tensors with a zero extent (numel checks the rest)
  return st;
}

bool TensorRef::contiguous() const {
  if (strides.empty()) return true;
  if (numel() == 0) return true;
  int64_t expect = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != expect) return false;
    expect *= shape[i];  // <= numel: no overflow
  }
  return true;
}

bool TensorRef::dense() const {
  if (strides.empty() || numel() == 0) return true;
  // Sorted by stride, each dimension of extent > 1 must start where the previous ones end.
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, extent)
  for (size_t i = 0; i < shape.size(); ++i) {
    if (strides[i] < 0) return false;
    if (shape[i] != 1) dims.emplace_back(strides[i], shape[i]);
  }
  std::sort(dims.begin(), dims.end());
  int64_t expect = 1;
  for (const auto& [st, n] : dims) {
    if (st != expect) return false;
    expect *= n;  // <= numel: no overflow
  }
  return true;
}

bool TensorRef::same_layout(const TensorRef& o) const {
  if (shape != o.shape) return false;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1 && stride(i) != o.stride(i)) return false;
  return true;
}

int64_t extent_bytes(const TensorRef& t) {
  const int64_t n = t.numel();
  if (n == 0) return 0;
  int64_t last = 0;
  for (size_t i = 0; i < t.shape.size(); ++i) last += (t.shape[i] - 1) * t.stride(i);
  return (last + 1) * dtype_size(t.dtype);
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
    case DType::u8: throw Error(ErrorKind::type, "uint8 is not a floating dtype");
  }
}

void from_float32(const float* src, TensorRef& dst) {
  const int64_t n = dst.numel();
  switch (dst.dtype) {
    case DType::f32: narrow<float>(src, dst.data, n); break;
    case DType::f64: narrow<double>(src, dst.data, n); break;
    case DType::f16: narrow<Eigen::half>(src, dst.data, n); break;
    case DType::bf16: narrow_bf16(src, dst.data, n); break;
    case DType::u8: throw Error(ErrorKind::type, "uint8 is not a floating dtype");
  }
}

namespace {

double read_elem(const char* p, DType t) {
  switch (t) {
    case DType::f32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::f64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::f16: { Eigen::half v; std::memcpy(&v, p, 2); return static_cast<float>(v); }
    case DType::bf16: { uint32_t bits = uint32_t(*reinterpret_cast<const uint16_t*>(p)) << 16; float v; std::memcpy(&v, &bits, 4); return v; }
    case DType::u8: return *reinterpret_cast<const uint8_t*>(p);
  }
  return 0;
}

// The values of float and double arrays go out rounded once to the target dtype (bf16/fp16 through
// float32, which is exact for values that came from float32 staging).
void write_elem(char* p, DType t, double v) {
  switch (t) {
    case DType::f32: { const float f = static_cast<float>(v); std::memcpy(p, &f, 4); break; }
    case DType::f64: std::memcpy(p, &v, 8); break;
    case DType::f16: { const Eigen::half h(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
    case DType::bf16: { const float f = static_cast<float>(v); TensorRef one{p, DType::bf16, {1}, {}}; from_float32(&f, one); break; }
    case DType::u8: throw Error(ErrorKind::type, "uint8 is not a floating dtype");
  }
}

// Calls fn(logical index, byte offset) for every element of t in logical (C) order.
template <class Fn>
void for_each_offset(const TensorRef& t, Fn fn) {
  const int64_t n = t.numel();
  if (n == 0) return;
  const size_t nd = t.shape.size();
  std::vector<int64_t> idx(nd, 0);
  const int64_t es = dtype_size(t.dtype);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    fn(i, off * es);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < t.shape[d]) { off += t.stride(d); break; }
      off -= (t.shape[d] - 1) * t.stride(d);
      idx[d] = 0;
    }
  }
}

}  // namespace

void gather(const TensorRef& src, DType dtype, void* dst) {
  if (src.contiguous() && dtype == DType::f32) return to_float32(src, static_cast<float*>(dst));
  if (src.numel() == 0) return;
  if (src.contiguous() && src.dtype == dtype) {
    std::memcpy(dst, src.data, static_cast<size_t>(src.numel()) * dtype_size(dtype));
    return;
  }
  const char* base = static_cast<const char*>(src.data);
  char* out = static_cast<char*>(dst);
  const int64_t es = dtype_size(dtype);
  for_each_offset(src, [&](int64_t i, int64_t off) { write_elem(out + i * es, dtype, read_elem(base + off, src.dtype)); });
}

void scatter(const void* src, DType dtype, const TensorRef& dst) {
  if (dst.contiguous() && dtype == DType::f32) {
    TensorRef d = dst;
    return from_float32(static_cast<const float*>(src), d);
  }
  if (dst.numel() == 0) return;
  if (dst.contiguous() && dst.dtype == dtype) {
    std::memcpy(dst.data, src, static_cast<size_t>(dst.numel()) * dtype_size(dtype));
    return;
  }
  const char* in = static_cast<const char*>(src);
  char* base = static_cast<char*>(dst.data);
  const int64_t es = dtype_size(dtype);
  for_each_offset(dst, [&](int64_t i, int64_t off) { write_elem(base + off, dst.dtype, read_elem(in + i * es, dtype)); });
}

}  // namespace adapprox
