// Counter-based randomness: every number is a pure function of (key, index), so a sketch is
// the same whatever the thread split, and a run resumed from a checkpoint repeats it exactly.
#pragma once
#include <cstdint>

namespace adapprox {

uint64_t mix64(uint64_t x);  // SplitMix64 finaliser

// Key of the Gaussian stream for one sketch: (seed, step, parameter index, attempt).
uint64_t sketch_key(uint64_t seed, uint64_t step, uint64_t param_index, uint64_t attempt);

// Standard normal number `index` of stream `key` (Box-Muller on two hashed uniforms).
double gaussian(uint64_t key, uint64_t index);

}  // namespace adapprox
