// What the bindings of FullMatrixAdagrad and AdaGram (gram.hpp) share: the hyperparameters from a
// Python dict, and the group step (import, validate, step with the GIL released).
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "adapprox/gram.hpp"
#include "group_import.hpp"

namespace adapprox::bindings {

inline void read_gram_hyper(const pybind11::dict& d, GramHyper& h) {
  h.lr = d["lr"].cast<double>();
  h.lr_decay = d["lr_decay"].cast<double>();
  h.weight_decay = d["weight_decay"].cast<double>();
  h.eps = d["eps"].cast<double>();
  h.maximize = d["maximize"].cast<bool>();
}

// One native call per parameter group; returns the states used (fresh ones where None was given).
template <class State, class Slot, class Hyper>
pybind11::list gram_group_step(const pybind11::list& states, const pybind11::list& params, const pybind11::list& grads,
                               const Hyper& h, void (*step)(std::vector<Slot>&, const Hyper&)) {
  validate(h);
  auto g = import_group<State>(states, params, grads, [](const TensorRef& p) { return State(p.shape); });
  std::vector<Slot> slots;
  for (size_t i = 0; i < g.states.size(); ++i) slots.push_back(Slot{g.states[i], g.params[i], g.grads[i]});
  {
    pybind11::gil_scoped_release nogil;
    step(slots, h);
  }
  return g.used;
}

}  // namespace adapprox::bindings
