#include "adapprox/random.hpp"

#include "math/random.hpp"

namespace adapprox {

uint64_t mix64(uint64_t x) { return math::mix64(x); }

uint64_t sketch_key(uint64_t seed, uint64_t step, uint64_t param_index, uint64_t attempt) {
  uint64_t k = mix64(seed);
  k = mix64(k ^ step);
  k = mix64(k ^ (param_index * 0xD1B54A32D192ED03ull));
  return mix64(k ^ (attempt * 0x8CB92BA72F3D8DD7ull));
}

double gaussian(uint64_t key, uint64_t index) { return math::gaussian(key, index); }

}  // namespace adapprox
