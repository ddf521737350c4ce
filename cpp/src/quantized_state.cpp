// Low-precision state (adapprox/quantized_state.hpp): block decode / encode of dense moments,
// stochastic rounding of bf16 parameters, the schema pieces and whole-moment conversion.
#include "adapprox/quantized_state.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "adapprox/tensor_ops.hpp"
#include "algorithms.hpp"
#include "isa_dispatch.hpp"
#include "math/quantize.hpp"
#include "math/random.hpp"

namespace adapprox {
namespace {

using math::kSignedMantissa;
using math::kUnsignedMantissa;

// raw(max) of each code: the largest code stands for the block's absmax.
const float kSignedMax = math::code_raw<kSignedMantissa>(127);
const float kUnsignedMax = math::code_raw<kUnsignedMantissa>(255);

// The uniform bits of element `lane` of a block whose key is `block_key`.
inline uint32_t lane_noise(uint32_t block_key, int64_t lane) {
  return math::hash32(block_key + static_cast<uint32_t>(lane) * 0x9E3779B9u);
}
// 16 uniform bits of element `lane`: one hash serves two neighbouring elements (its halves;
// second moments, whose encoding is the costliest).
inline uint32_t lane_bits16(uint32_t block_key, int64_t lane) {
  const uint32_t r = lane_noise(block_key, lane >> 1);
  return (lane & 1) ? (r & 0xffffu) : (r >> 16);
}
inline uint32_t block_key(uint64_t key, int64_t block) {
  return static_cast<uint32_t>(math::mix64(key ^ (static_cast<uint64_t>(block) * 0xD1B54A32D192ED03ull)));
}

void encode_block(const Moment& m, int64_t lo, int64_t n, const float* in) {
  const int64_t blk = lo / kQuantBlock;
  uint8_t* codes = static_cast<uint8_t*>(m.data) + lo;
  // absmax over the bits of |x|: for floats >= 0 their order is the integers' order, and NaN's
  // bits exceed every other value's, so a NaN makes the block's absmax NaN (integer max: the
  // loop vectorises).
  uint32_t top = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = math::float_bits(in[i]) & 0x7fffffffu;
    top = b > top ? b : top;
  }
  const float a = top > 0x7f800000u ? std::numeric_limits<float>::quiet_NaN() : math::bits_float(top);
  m.absmax[blk] = a;
  if (!(a >= std::numeric_limits<float>::min()) || !std::isfinite(a)) {
    // zeros, a block whose largest magnitude is below the smallest normal float (flushed to
    // zero: its scale would overflow), or a non-finite block (decodes as NaN / inf)
    if (a < std::numeric_limits<float>::min()) m.absmax[blk] = 0;
    std::memset(codes, 0, static_cast<size_t>(n));
    return;
  }
  if (m.kind == MomentKind::nonnegative) {
    const uint32_t k = block_key(m.key, blk);
    const float scale = kUnsignedMax / std::sqrt(a);
    for (int64_t i = 0; i < n; ++i) codes[i] = math::encode_unsigned(in[i], scale, lane_bits16(k, i) << 16);
  } else {
    // First moments: to nearest, unless that is the code the element already has; then
    // stochastically, so that a change below half a code is kept on average (math/quantize.hpp).
    const uint32_t k = block_key(m.key, blk);
    const float scale = kSignedMax / a;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t nearest = math::encode_signed(in[i], scale, 1u << (22 - kSignedMantissa));
      const uint8_t random = math::encode_signed(in[i], scale, lane_noise(k, i));
      codes[i] = nearest == codes[i] ? random : nearest;
    }
  }
}

void decode_block(const Moment& m, int64_t lo, int64_t n, float* out) {
  const float a = m.absmax[lo / kQuantBlock];
  const uint8_t* codes = static_cast<const uint8_t*>(m.data) + lo;
  if (m.kind == MomentKind::nonnegative) {
    const float scale = a / (kUnsignedMax * kUnsignedMax);
    for (int64_t i = 0; i < n; ++i) out[i] = math::decode_unsigned(codes[i], scale);
  } else {
    const float scale = a / kSignedMax;
    for (int64_t i = 0; i < n; ++i) out[i] = math::decode_signed(codes[i], scale);
  }
}

// Calls round(i, noise) for elements [0, n) of a run that starts at element `first` of its
// tensor, with the random bits of (key, element): keys are per kQuantBlock of the tensor, so the
// bits do not depend on how the tensor is cut.
template <class Round>
void for_each_noise(int64_t n, uint64_t key, int64_t first, const Round& round) {
  int64_t i = 0;
  while (i < n) {
    const int64_t e = first + i;
    const int64_t blk = e / kQuantBlock;
    const int64_t stop = std::min(n, i + (blk + 1) * kQuantBlock - e);
    const uint32_t k = block_key(key, blk);
    for (; i < stop; ++i) round(i, lane_noise(k, (first + i) % kQuantBlock));
  }
}

void bf16_block(const float* src, uint16_t* dst, int64_t n, uint64_t key, int64_t first) {
  for_each_noise(n, key, first, [&](int64_t i, uint32_t noise) { dst[i] = math::bf16_stochastic(src[i], noise); });
}

// bf16 first moments: to nearest, or stochastically where nearest would keep the old value.
void bf16_sticky_block(const float* src, uint16_t* dst, int64_t n, uint64_t key, int64_t first) {
  for_each_noise(n, key, first, [&](int64_t i, uint32_t noise) {
    const uint16_t nearest = math::bf16_nearest(src[i]);
    dst[i] = nearest == dst[i] ? math::bf16_stochastic(src[i], noise) : nearest;
  });
}

}  // namespace

StatePrecision state_precision(const Hyper& h) {
  const auto it = h.find("state_precision");
  return it == h.end() ? StatePrecision::f32 : static_cast<StatePrecision>(static_cast<int>(it->second));
}

bool stochastic_rounding(const Hyper& h) {
  const auto it = h.find("stochastic_rounding");
  return it != h.end() && it->second != 0;
}

const char* precision_name(StatePrecision p) {
  switch (p) {
    case StatePrecision::f32: return "fp32";
    case StatePrecision::bf16: return "bf16";
    case StatePrecision::q8: return "8bit";
  }
  return "?";
}

HyperParam state_precision_param() {
  return HyperParam{"state_precision", 0, 0, 2, false, false, true,
                    "dense moments in 0: float32, 1: bf16, 2: 8-bit blockwise codes (stochastic rounding)"};
}
HyperParam stochastic_rounding_param() {
  return HyperParam{"stochastic_rounding", 0, 0, 1, false, false, true,
                    "write bf16 parameters with stochastic rounding (1) instead of to nearest (0)"};
}

void add_moment(std::vector<BufferSpec>& out, const std::string& name, MomentKind kind, DType math,
                const std::vector<int64_t>& shape, StatePrecision prec) {
  BufferSpec b = algorithms::like_param(
      name, prec == StatePrecision::f32 ? math : prec == StatePrecision::bf16 ? DType::bf16 : DType::u8, shape);
  b.moment = kind;
  out.push_back(b);
  if (prec != StatePrecision::q8) return;
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  BufferSpec a;
  a.name = name + "_absmax";
  a.dtype = DType::f32;
  a.shape = {quant_blocks(numel)};
  a.absmax_of = name;
  out.push_back(a);
}

Moment moment_of(const Slot& s, size_t at, MomentKind kind, uint64_t buffer_id) {
  Moment m;
  const TensorRef& b = s.state[at];
  m.kind = kind;
  m.data = b.data;
  m.prec = b.dtype == DType::u8 ? StatePrecision::q8 : b.dtype == DType::bf16 ? StatePrecision::bf16 : StatePrecision::f32;
  if (m.prec == StatePrecision::q8) m.absmax = static_cast<float*>(s.state[at + 1].data);
  m.key = rounding_key(s.index, s.t, buffer_id);
  return m;
}

void load_block(const Moment& m, int64_t lo, int64_t n, float* out) {
  if (m.start_fill) {
    std::fill(out, out + n, m.fill);
    return;
  }
  switch (m.prec) {
    case StatePrecision::f32: std::memcpy(out, static_cast<const float*>(m.data) + lo, n * sizeof(float)); break;
    case StatePrecision::bf16: {
      const uint16_t* b = static_cast<const uint16_t*>(m.data) + lo;
      for (int64_t i = 0; i < n; ++i) out[i] = math::bits_float(uint32_t(b[i]) << 16);
      break;
    }
    case StatePrecision::q8:
      with_best_isa([&] {
        for (int64_t q = 0; q < n; q += kQuantBlock) decode_block(m, lo + q, std::min(kQuantBlock, n - q), out + q);
      });
      break;
  }
}

void store_block(const Moment& m, int64_t lo, int64_t n, const float* in) {
  switch (m.prec) {
    case StatePrecision::f32: std::memcpy(static_cast<float*>(m.data) + lo, in, n * sizeof(float)); break;
    case StatePrecision::bf16:  // second moments stochastically, first moments to nearest (math/quantize.hpp)
      if (m.kind == MomentKind::nonnegative) {
        store_bf16_stochastic(in, static_cast<uint16_t*>(m.data) + lo, n, m.key, lo);
      } else {
        uint16_t* out = static_cast<uint16_t*>(m.data) + lo;
        with_best_isa([&] { bf16_sticky_block(in, out, n, m.key, lo); });
      }
      break;
    case StatePrecision::q8:
      with_best_isa([&] {
        for (int64_t q = 0; q < n; q += kQuantBlock) encode_block(m, lo + q, std::min(kQuantBlock, n - q), in + q);
      });
      break;
  }
}

uint64_t rounding_key(uint64_t index, int64_t step, uint64_t buffer) {
  return math::mix64(math::mix64(index * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step)) ^ (buffer << 32));
}

void store_bf16_stochastic(const float* src, void* dst, int64_t n, uint64_t key, int64_t first) {
  with_best_isa([&] { bf16_block(src, static_cast<uint16_t*>(dst), n, key, first); });
}

void round_bf16_stochastic(float* x, int64_t n, uint64_t key) {
  uint16_t b[kQuantBlock];
  for (int64_t lo = 0; lo < n; lo += kQuantBlock) {
    const int64_t len = std::min(kQuantBlock, n - lo);
    store_bf16_stochastic(x + lo, b, len, key, lo);
    for (int64_t i = 0; i < len; ++i) x[lo + i] = math::bits_float(uint32_t(b[i]) << 16);
  }
}

void convert_moment(const Moment& src, const Moment& dst, int64_t numel) {
  float buf[kQuantBlock];
  for (int64_t lo = 0; lo < numel; lo += kQuantBlock) {
    const int64_t n = std::min(kQuantBlock, numel - lo);
    load_block(src, lo, n, buf);
    store_block(dst, lo, n, buf);
  }
}

void check_precision_supported(const Hyper& h, const Slot& s, const std::string& who, const char* c_order_user) {
  const StatePrecision p = state_precision(h);
  if (s.param.device.kind == Device::cuda && (p != StatePrecision::f32 || stochastic_rounding(h)))
    throw Error(ErrorKind::device, who + ": state_precision " + precision_name(p) + " and stochastic_rounding are "
                                         "CPU-only in this release; on CUDA use state_precision fp32 and "
                                         "stochastic_rounding off");
  if (p == StatePrecision::f32) return;
  if (c_order_user && !s.param.contiguous())
    throw Error(ErrorKind::value, who + ": " + c_order_user + " keeps low-precision moments (state_precision " +
                                      precision_name(p) + ") for C-contiguous parameters only; use .contiguous() or "
                                      "state_precision fp32");
  if (p == StatePrecision::q8 && !s.param.contiguous())
    throw Error(ErrorKind::value, who + ": state_precision 8bit needs a C-contiguous parameter (its blocks follow "
                                      "the C order the state is saved in); this one is not C-contiguous" +
                                      "; use .contiguous() or state_precision bf16");
  if (s.param.dtype == DType::f64)
    throw Error(ErrorKind::value, who + ": state_precision " + precision_name(p) +
                                      " needs float32, bfloat16 or float16 parameters (float64 parameters keep "
                                      "float64 moments); use state_precision fp32");
  if (s.shard.comm)
    throw Error(ErrorKind::value, who + ": state_precision " + precision_name(p) +
                                      " is not offered for row-sharded parameters in this release; use fp32");
}

}  // namespace adapprox

namespace adapprox {

namespace {
StatePrecision precision_of(DType t) {
  return t == DType::u8 ? StatePrecision::q8 : t == DType::bf16 ? StatePrecision::bf16 : StatePrecision::f32;
}
}  // namespace

void conform_moments(const std::vector<BufferSpec>& schema, StateRecord& r) {
  for (const BufferSpec& spec : schema) {
    if (spec.moment == MomentKind::none) continue;
    auto it = r.buffers.find(spec.name);
    if (it == r.buffers.end() || it->second.dtype == spec.dtype) continue;
    StateRecord::Buffer& b = it->second;
    const bool known = b.dtype == DType::f32 || b.dtype == DType::bf16 || b.dtype == DType::u8;
    if (!known || spec.dtype == DType::f64) continue;
    int64_t numel = 1;
    for (int64_t d : b.shape) numel *= d;
    if (static_cast<int64_t>(b.bytes.size()) != numel * dtype_size(b.dtype)) continue;
    Moment src;
    src.prec = precision_of(b.dtype);
    src.kind = spec.moment;
    src.data = b.bytes.data();
    const std::string absmax_name = spec.name + "_absmax";
    if (src.prec == StatePrecision::q8) {
      auto a = r.buffers.find(absmax_name);
      if (a == r.buffers.end() || a->second.dtype != DType::f32 ||
          static_cast<int64_t>(a->second.bytes.size()) != quant_blocks(numel) * 4)
        continue;
      src.absmax = reinterpret_cast<float*>(a->second.bytes.data());
    }
    StateRecord::Buffer out{spec.dtype, b.shape, std::vector<unsigned char>(static_cast<size_t>(numel * dtype_size(spec.dtype)))};
    StateRecord::Buffer absmax{DType::f32, {quant_blocks(numel)}, {}};
    Moment dst;
    dst.prec = precision_of(spec.dtype);
    dst.kind = spec.moment;
    dst.data = out.bytes.data();
    dst.key = rounding_key(0, r.step, 0xfffe);
    if (dst.prec == StatePrecision::q8) {
      absmax.bytes.resize(static_cast<size_t>(quant_blocks(numel)) * 4);
      dst.absmax = reinterpret_cast<float*>(absmax.bytes.data());
    }
    convert_moment(src, dst, numel);
    b = std::move(out);
    if (src.prec == StatePrecision::q8) r.buffers.erase(absmax_name);
    if (dst.prec == StatePrecision::q8) r.buffers[absmax_name] = std::move(absmax);
  }
}

}  // namespace adapprox
