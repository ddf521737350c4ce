// Internal: the registry entry of each optimizer, defined in the optimizer's own file.
// A new optimizer adds its factory here and one line to algorithms() in registry.cpp.
#pragma once
#include <vector>

#include "adapprox/registry.hpp"

namespace adapprox::algorithms {

const Algorithm* adapprox();             // adapprox.cpp
const Algorithm* adam();                 // adam.cpp
const Algorithm* adamw();                // adam.cpp
const Algorithm* nadam();                // nadam.cpp
const Algorithm* rmsprop();              // rmsprop.cpp
const Algorithm* adagrad();              // adagrad.cpp
const Algorithm* sgd();                  // sgd.cpp
const Algorithm* signsgd();              // signsgd.cpp
const Algorithm* adafactor();            // adafactor.cpp
const Algorithm* full_matrix_adagrad();  // full_matrix_adagrad.cpp
const Algorithm* adagram();              // adagram.cpp

// Shared schema pieces.
BufferSpec step_buffer();                                            // "step", 0-d float32
BufferSpec like_param(const std::string& name, DType dtype, const std::vector<int64_t>& shape, double fill = 0);
// float64 state for float64 parameters, float32 for the rest (bf16/fp16 are stepped in float32).
DType math_dtype(DType param);

}  // namespace adapprox::algorithms
