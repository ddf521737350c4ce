// Bindings of AdaGram: its per-parameter state object and the group step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "adapprox/adagram.hpp"
#include "binders.hpp"
#include "gram_bindings.hpp"
#include "numpy_buffers.hpp"

namespace py = pybind11;
using namespace adapprox;

namespace {

AdagramHyper hyper_from(const py::dict& d) {
  AdagramHyper h;
  bindings::read_gram_hyper(d, h);
  h.rank = d["rank"].cast<int>();
  return h;
}

py::list step_py(const py::list& states, const py::list& params, const py::list& grads, const py::dict& hyper) {
  return bindings::gram_group_step<AdagramState, AdagramSlot>(states, params, grads, hyper_from(hyper), adagram_step);
}

void bind_adagram(py::module_& m) {
  py::class_<AdagramState>(m, "AdagramState")
      .def(py::init<std::vector<int64_t>>(), py::arg("shape"))
      .def_property_readonly("shape", [](const AdagramState& s) { return py::tuple(py::cast(s.shape)); })
      .def_property_readonly("step", [](const AdagramState& s) { return s.step; })
      .def_property_readonly("rank", [](const AdagramState& s) { return s.rank; })
      .def_property_readonly("state_bytes", &AdagramState::state_bytes)
      .def("buffers",
           [](const AdagramState& s) {
             py::dict d;
             const py::ssize_t n = s.numel(), k = s.rank;
             d["factor_p"] = bindings::to_numpy(s.p, {n, k});
             d["factor_q"] = bindings::to_numpy(s.q, {n, k});
             return d;
           },
           "Copies of the factors P, Q (n, k) float64 of L^-1 = (I - P Q^T) / sqrt(eps).")
      .def("load",
           [](AdagramState& s, int64_t step, const py::dict& buffers) {
             AdagramState next(s.shape);  // build, check, then swap: a bad load changes nothing
             next.step = step;
             for (auto kv : buffers) {
               const std::string k = kv.first.cast<std::string>();
               if (k != "factor_p" && k != "factor_q") throw py::value_error("unknown AdaGram state buffer '" + k + "'");
             }
             if (buffers.contains("factor_p") != buffers.contains("factor_q"))
               throw py::value_error("factor_p and factor_q come together");
             if (buffers.contains("factor_p")) {
               const py::array p = py::array::ensure(buffers["factor_p"]);
               if (!p || p.ndim() != 2 || p.shape(0) != next.numel())
                 throw py::value_error("factor_p: expected an array of shape (" + std::to_string(next.numel()) + ", k)");
               next.rank = static_cast<int>(p.shape(1));
               if (next.rank > next.numel()) throw py::value_error("factor_p: more columns than the parameter has elements");
               next.p = bindings::from_numpy_as<double>(p, next.numel() * next.rank, "factor_p");
               next.q = bindings::from_numpy_as<double>(buffers["factor_q"], next.numel() * next.rank, "factor_q");
             }
             next.check();
             s = std::move(next);
           },
           py::arg("step"), py::arg("buffers"));

  m.def("check_adagram_hyper", [](const py::dict& d) { validate(hyper_from(d)); }, py::arg("hyper"),
        "Raise ValueError naming the first hyperparameter out of range.");
  m.def("adagram_step", &step_py, py::arg("states"), py::arg("params"), py::arg("grads"), py::arg("hyper"));
}

const bindings::RegisterBinder registered(bind_adagram);

}  // namespace
