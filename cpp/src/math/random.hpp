// Counter-based Gaussian numbers on host and device (adapprox/random.hpp has the contract): the
// CPU and the GPU draw the same sketch from (key, index), up to the last bits of log and cos
// (CUDA's are within 2 ulp of the host's, so a float32 sketch agrees to rounding).
#pragma once
#include <cstdint>

#include "hd.hpp"

namespace adapprox::math {

ADX_HD uint64_t mix64(uint64_t x) {  // SplitMix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// z = sqrt(-2 ln u1) cos(2 pi u2), u1 in (0, 1], u2 in [0, 1)
ADX_HD double gaussian(uint64_t key, uint64_t index) {
  const double scale = 1.0 / 9007199254740992.0;  // 2^-53
  const double u1 = (static_cast<double>(mix64(key + 2 * index) >> 11) + 1.0) * scale;
  const double u2 = static_cast<double>(mix64(key + 2 * index + 1) >> 11) * scale;
#ifdef __CUDA_ARCH__
  return ::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586 * u2);
#else
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
#endif
}

}  // namespace adapprox::math
