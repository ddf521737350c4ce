// Low-precision storage of dense moments (adapprox/quantized_state.hpp has the contract).
//
// 8-bit blockwise codes. Each block of kQuantBlock consecutive elements keeps one float32
// absmax A; an element x is one byte c with x ~= A * value(c):
//   signed moments (first moments, momentum):  c = sign | code7(|x| / A)
//   nonnegative moments (second moments):      c = code8(sqrt(x / A)),  x = A * value(c)^2
//     (rounded between the two neighbouring codes without bias in x)
// codeN is a small float on [0, 1] with 4 exponent bits and N - 4 mantissa bits (subnormals
// included, all codes finite), scaled so that the largest code is exactly 1:
//   raw(i) = i * 2^(1 - B - M)                         for i < 2^M        (B = 15: the bias)
//   raw(i) = 2^((i >> M) - B) * (1 + (i & (2^M - 1)) / 2^M)   otherwise
//   value(i) = raw(i) / raw(max)
// so every code keeps the same relative spacing (2^-M) from 1 down to 2^-14 of the absmax, and
// the square root halves the log range a second moment needs: 8-bit second moments reach
// 2^-37 of their block's absmax.
//
// Rounding. Second moments round stochastically: x goes to one of its two neighbouring codes
// with the probabilities that make the stored value unbiased, because their per-step change is
// below half a code (v *= 0.999 each step, plus (1 - b2) g^2) and rounding to nearest would lose
// it: on a fixed gradient sequence of 2000 steps, 8-bit v's relative error against float32 was
// 10.8% stochastic and 17.4% to nearest. First moments move by (1 - b1)(g - m) per step, mostly
// more than half a code, and round to nearest (5.2% error against 7.8% stochastic there) -
// except where nearest would give back the code the element already had: then stochastically,
// so that a steady small change (b1 = 0.99, or an element far below its block's absmax) is not
// lost (tests/test_quantized_state.py has both settings). bf16 moments follow the same rules.
#pragma once
#include <cstdint>
#include <cstring>

#include "hd.hpp"

namespace adapprox::math {

constexpr int kCodeBias = 15;

ADX_HD uint32_t float_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}
ADX_HD float bits_float(uint32_t b) {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// 32-bit integer hash (a bijection with full avalanche): the per-element uniform bits of
// stochastic rounding, from a per-block key and the element's place in the block.
ADX_HD uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// raw(i) of a code with M mantissa bits (above), from its bits (no branches, no table: the
// loops over a block vectorise).
template <int M>
ADX_HD float code_raw(uint32_t i) {
  const float normal = bits_float((i << (23 - M)) + (uint32_t(127 - kCodeBias) << 23));
  const float sub = static_cast<float>(static_cast<int32_t>(i)) * bits_float(uint32_t(127 + 1 - kCodeBias - M) << 23);
  return i < (1u << M) ? sub : normal;
}

// The code of z in [0, raw(max)] with M mantissa bits; `noise` holds uniform bits whose low
// 23 - M decide the rounding (0: truncation; 1 << (22 - M): to nearest, ties up). z is finite
// (a block with a non-finite absmax is never encoded element by element).
template <int M, int Bits>
ADX_HD int code_of(float z, uint32_t noise) {
  constexpr int kMax = (1 << Bits) - 1;
  const float smallest_normal = bits_float(uint32_t(127 + 1 - kCodeBias) << 23);
  const bool sub = z < smallest_normal;
  // Below the smallest normal code the spacing is that of the first binade: adding the smallest
  // normal moves z there (exactly, to float32's precision), and the offset is taken off again.
  const float zz = sub ? z + smallest_normal : z;
  const uint32_t b = float_bits(zz) + (noise & ((1u << (23 - M)) - 1));
  const int i = static_cast<int>(b >> (23 - M)) - ((127 - kCodeBias) << M) - (sub ? (1 << M) : 0);
  return i < 0 ? 0 : (i > kMax ? kMax : i);
}

// Signed (7-bit magnitude, 3 mantissa bits) and nonnegative (8-bit, 4 mantissa bits) codes.
constexpr int kSignedMantissa = 3;
constexpr int kUnsignedMantissa = 4;

// y = |x| / A in [0, 1]; `scale` = raw(max) / A; `noise` as in code_of (to nearest: 1 << 19).
ADX_HD uint8_t encode_signed(float x, float scale, uint32_t noise) {
  const float z = (x < 0 ? -x : x) * scale;
  const int i = code_of<kSignedMantissa, 7>(z, noise);
  return static_cast<uint8_t>((x < 0 ? 0x80 : 0) | i);
}
// x >= 0; `scale` = raw(max) / sqrt(A). The code is the square root's, but the choice between
// its two neighbours is unbiased for x itself: up with probability
// (z^2 - raw(i)^2) / (raw(i + 1)^2 - raw(i)^2), so that E[decoded] = x (not E[sqrt] = sqrt x).
ADX_HD uint8_t encode_unsigned(float x, float scale, uint32_t noise) {
  constexpr int M = kUnsignedMantissa;
  const float xx = x > 0 ? x : 0.0f;
  const float z = sqrt_(xx) * scale;
  const int i = code_of<M, 8>(z, 0);  // the neighbour below (truncation)
  // raw(i) and raw(i + 1) from z's own bits: z truncated to M mantissa bits, and one step of
  // its binade above (the first binade's step below the smallest normal).
  const float smallest_normal = bits_float(uint32_t(127 + 1 - kCodeBias) << 23);
  const bool sub = z < smallest_normal;
  const float zz = sub ? z + smallest_normal : z;
  const uint32_t lo_bits = float_bits(zz) & ~((1u << (23 - M)) - 1);
  const float step = bits_float(lo_bits & 0x7f800000u) * (1.0f / (1 << M));
  const float lo = bits_float(lo_bits) - (sub ? smallest_normal : 0.0f);
  const float hi = lo + step;
  const float z2 = xx * (scale * scale);
  const float u = static_cast<float>(static_cast<int32_t>(noise >> 16)) * (1.0f / 65536.0f);  // uniform [0, 1)
  const bool up = i < 255 && u * (hi * hi - lo * lo) < z2 - lo * lo;
  return static_cast<uint8_t>(i + (up ? 1 : 0));
}
// The values of codes: A times the signed value, or A times the squared nonnegative one
// (`scale` = A / raw(max), or A / raw(max)^2).
ADX_HD float decode_signed(uint8_t c, float scale) {
  const float mag = code_raw<kSignedMantissa>(c & 127u);
  return bits_float(float_bits(mag) | (uint32_t(c & 128u) << 24)) * scale;
}
ADX_HD float decode_unsigned(uint8_t c, float scale) {
  const float r = code_raw<kUnsignedMantissa>(c);
  return r * r * scale;
}

// float32 -> bf16 to nearest even (NaN stays NaN, quiet).
ADX_HD uint16_t bf16_nearest(float x) {
  const uint32_t b = float_bits(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x0040u);
  return static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

// Stochastic rounding of float32 to bf16: the 16 bits dropped decide (uniformly) whether the
// value rounds up in magnitude, so E[bf16(x)] = x. Infinities and NaN round as usual.
ADX_HD uint16_t bf16_stochastic(float x, uint32_t noise) {
  const uint32_t b = float_bits(x);
  if ((b & 0x7f800000u) == 0x7f800000u) {  // inf / NaN: keep (NaN quiet)
    return static_cast<uint16_t>((b >> 16) | ((b & 0x007fffffu) ? 0x0040u : 0u));
  }
  return static_cast<uint16_t>((b + (noise & 0xffffu)) >> 16);
}

}  // namespace adapprox::math
