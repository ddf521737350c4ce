#include "adapprox/random.hpp"

#include <cmath>

namespace adapprox {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t sketch_key(uint64_t seed, uint64_t step, uint64_t param_index, uint64_t attempt) {
  uint64_t k = mix64(seed);
  k = mix64(k ^ step);
  k = mix64(k ^ (param_index * 0xD1B54A32D192ED03ull));
  return mix64(k ^ (attempt * 0x8CB92BA72F3D8DD7ull));
}

double gaussian(uint64_t key, uint64_t index) {
  // z = sqrt(-2 ln u1) cos(2 pi u2), u1 in (0, 1], u2 in [0, 1)
  const double scale = 1.0 / 9007199254740992.0;  // 2^-53
  const double u1 = (static_cast<double>(mix64(key + 2 * index) >> 11) + 1.0) * scale;
  const double u2 = static_cast<double>(mix64(key + 2 * index + 1) >> 11) * scale;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace adapprox
