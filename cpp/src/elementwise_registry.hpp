// Internal: the factory of each elementwise algorithm, one per source file.
#pragma once
#include <memory>

#include "adapprox/elementwise.hpp"

namespace adapprox::algorithms {

// Each optimizer file defines its factory; elementwise.cpp lists them all (add yours there).
std::unique_ptr<ElementwiseAlgorithm> make_signsgd();

}  // namespace adapprox::algorithms
