// Internal: the factory of each elementwise algorithm, one per source file.
#pragma once
#include <memory>

#include "adapprox/elementwise.hpp"

namespace adapprox::algorithms {

// Each optimizer file defines its factory; elementwise.cpp lists them all (add yours there).
std::unique_ptr<ElementwiseAlgorithm> make_signsgd();
std::unique_ptr<ElementwiseAlgorithm> make_adam();
std::unique_ptr<ElementwiseAlgorithm> make_adamw();
std::unique_ptr<ElementwiseAlgorithm> make_nadam();
std::unique_ptr<ElementwiseAlgorithm> make_sgd();
std::unique_ptr<ElementwiseAlgorithm> make_rmsprop();
std::unique_ptr<ElementwiseAlgorithm> make_adagrad();

}  // namespace adapprox::algorithms
