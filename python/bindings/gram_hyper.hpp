// The hyperparameters shared by FullMatrixAdagrad and AdaGram (gram.hpp) from a Python dict.
#pragma once
#include <pybind11/pybind11.h>

#include "adapprox/gram.hpp"

namespace adapprox::bindings {

inline void read_gram_hyper(const pybind11::dict& d, GramHyper& h) {
  h.lr = d["lr"].cast<double>();
  h.lr_decay = d["lr_decay"].cast<double>();
  h.weight_decay = d["weight_decay"].cast<double>();
  h.eps = d["eps"].cast<double>();
  h.maximize = d["maximize"].cast<bool>();
}

}  // namespace adapprox::bindings
