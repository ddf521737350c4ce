// The first half of every group step: import each params[i] (writable) and grads[i] through
// DLPack, refuse a gradient that aliases its parameter, and pair each with its state object —
// a fresh one, made from the parameter's view, where states[i] is None. Nothing is written yet;
// the caller validates, steps with the GIL released, and returns `used` (new states are kept
// by Python only if the step succeeded).
#pragma once
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "dlpack_import.hpp"

namespace adapprox::bindings {

namespace py = pybind11;

template <class State>
struct GroupImport {
  std::vector<py_dlpack::Imported> held;  // keeps every buffer alive until the step is done
  std::vector<State*> states;
  std::vector<TensorRef> params, grads;
  py::list used;
};

template <class State, class MakeState>
GroupImport<State> import_group(const py::list& states, const py::list& params, const py::list& grads,
                                MakeState make_state) {
  const size_t n = py::len(states);
  if (py::len(params) != n || py::len(grads) != n)
    throw py::value_error("states, params and grads must have the same length");
  GroupImport<State> g;
  g.held.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    g.held.push_back(py_dlpack::import_tensor(params[i], "params" + idx, /*writable=*/true));
    g.held.push_back(py_dlpack::import_tensor(grads[i], "grads" + idx, /*writable=*/false));
    const TensorRef& p = g.held[2 * i].ref;
    const TensorRef& gr = g.held[2 * i + 1].ref;
    if (p.data == gr.data && p.numel() > 0)
      throw py::value_error("params" + idx + ": the gradient aliases the parameter buffer");
    py::object st = states[i].is_none() ? py::cast(make_state(p)) : py::reinterpret_borrow<py::object>(states[i]);
    g.used.append(st);
    g.states.push_back(st.cast<State*>());
    g.params.push_back(p);
    g.grads.push_back(gr);
  }
  return g;
}

}  // namespace adapprox::bindings
