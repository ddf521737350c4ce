// Bindings of full-matrix AdaGrad: its per-parameter state object and the group step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "adapprox/full_matrix_adagrad.hpp"
#include "binders.hpp"
#include "gram_bindings.hpp"
#include "numpy_buffers.hpp"

namespace py = pybind11;
using namespace adapprox;

namespace {

GramHyper hyper_from(const py::dict& d) {
  GramHyper h;
  bindings::read_gram_hyper(d, h);
  return h;
}

py::list step_py(const py::list& states, const py::list& params, const py::list& grads, const py::dict& hyper) {
  return bindings::gram_group_step<FullMatrixAdagradState, FullMatrixAdagradSlot>(states, params, grads, hyper_from(hyper), full_matrix_adagrad_step);
}

void bind_full_matrix_adagrad(py::module_& m) {
  py::class_<FullMatrixAdagradState>(m, "FullMatrixAdagradState")
      .def(py::init<std::vector<int64_t>>(), py::arg("shape"))
      .def_property_readonly("shape", [](const FullMatrixAdagradState& s) { return py::tuple(py::cast(s.shape)); })
      .def_property_readonly("step", [](const FullMatrixAdagradState& s) { return s.step; })
      .def_property_readonly("state_bytes", &FullMatrixAdagradState::state_bytes)
      .def("buffers",
           [](const FullMatrixAdagradState& s) {
             py::dict d;
             const py::ssize_t n = s.numel();
             if (!s.sum.empty()) d["sum"] = bindings::to_numpy(s.sum, {n, n});
             return d;
           },
           "Copies of the state buffers: sum (n, n) float64, the sum of g g^T (absent before the first step).")
      .def("load",
           [](FullMatrixAdagradState& s, int64_t step, const py::dict& buffers) {
             FullMatrixAdagradState next(s.shape);  // build, check, then swap: a bad load changes nothing
             next.step = step;
             for (auto kv : buffers)
               if (kv.first.cast<std::string>() != "sum")
                 throw py::value_error("unknown FullMatrixAdagrad state buffer '" + kv.first.cast<std::string>() + "'");
             if (buffers.contains("sum"))
               next.sum = bindings::from_numpy_as<double>(buffers["sum"], next.numel() * next.numel(), "sum");
             next.check();
             s = std::move(next);
           },
           py::arg("step"), py::arg("buffers"));

  m.def("check_full_matrix_adagrad_hyper", [](const py::dict& d) { validate(hyper_from(d)); }, py::arg("hyper"),
        "Raise ValueError naming the first hyperparameter out of range.");
  m.def("full_matrix_adagrad_step", &step_py, py::arg("states"), py::arg("params"), py::arg("grads"), py::arg("hyper"));
  m.attr("FULL_MATRIX_MAX_NUMEL") = kFullMatrixMaxNumel;
}

const bindings::RegisterBinder registered(bind_full_matrix_adagrad);

}  // namespace
