// Bindings of Adafactor (torch and paper modes): its per-parameter state object and the group step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "adapprox/adafactor.hpp"
#include "binders.hpp"
#include "dlpack_import.hpp"
#include "group_import.hpp"
#include "numpy_buffers.hpp"

namespace py = pybind11;
using namespace adapprox;
using bindings::from_numpy_as;
using bindings::to_numpy;

namespace {

AdafactorHyper hyper_from(const py::dict& d) {
  AdafactorHyper h;
  const std::string mode = d["mode"].cast<std::string>();
  if (mode == "torch")
    h.mode = AdafactorMode::torch;
  else if (mode == "paper")
    h.mode = AdafactorMode::paper;
  else
    throw py::value_error("mode must be 'torch' or 'paper', got '" + mode + "'");
  h.lr = d["lr"].cast<double>();
  h.beta2_decay = d["beta2_decay"].cast<double>();
  h.eps1_auto = d["eps1"].is_none();
  if (!h.eps1_auto) h.eps1 = d["eps1"].cast<double>();
  h.eps2 = d["eps2"].cast<double>();
  h.d = d["d"].cast<double>();
  h.weight_decay = d["weight_decay"].cast<double>();
  h.beta1 = d["beta1"].cast<double>();
  h.relative_step = d["relative_step"].cast<bool>();
  h.scale_parameter = d["scale_parameter"].cast<bool>();
  h.maximize = d["maximize"].cast<bool>();
  return h;
}

template <class T>
py::dict buffers_of(const AdafactorState& s, const AdafactorBuffers<T>& b) {
  py::dict d;
  std::vector<py::ssize_t> full(s.shape.begin(), s.shape.end());
  if (s.factored) {
    std::vector<py::ssize_t> rs = full, cs = full;
    rs.back() = 1;
    cs[cs.size() - 2] = 1;
    if (s.step > 0 || !b.row_var.empty()) d["row_var"] = to_numpy(b.row_var, rs);
    if (s.step > 0 || !b.col_var.empty()) d["col_var"] = to_numpy(b.col_var, cs);
  } else if (s.step > 0 || !b.variance.empty()) {
    d["variance"] = to_numpy(b.variance, full);
  }
  if (!b.exp_avg.empty()) d["exp_avg"] = to_numpy(b.exp_avg, full);
  return d;
}

template <class T>
void load_into(AdafactorBuffers<T>& dst, const AdafactorState& s, const py::dict& buffers) {
  auto get = [&](const char* key, bool wanted, int64_t count, std::vector<T>& out) {
    if (!buffers.contains(key)) return;
    if (!wanted)
      throw py::value_error(std::string(key) + ": not a state buffer of a parameter of shape " + shape_str(s.shape));
    out = from_numpy_as<T>(buffers[key], count, key);
  };
  get("row_var", s.factored, s.batch * s.rows, dst.row_var);
  get("col_var", s.factored, s.batch * s.cols, dst.col_var);
  get("variance", !s.factored, s.numel(), dst.variance);
  get("exp_avg", true, s.numel(), dst.exp_avg);
}

// One native call per parameter group: import everything (group_import.hpp), validate, step.
py::list adafactor_step_py(const py::list& states, const py::list& params, const py::list& grads,
                           const py::dict& hyper) {
  const AdafactorHyper h = hyper_from(hyper);
  validate(h);
  auto g = bindings::import_group<AdafactorState>(states, params, grads,
                                                  [](const TensorRef& p) { return AdafactorState(p.shape, p.dtype); });
  std::vector<AdafactorSlot> slots;
  for (size_t i = 0; i < g.states.size(); ++i) slots.push_back(AdafactorSlot{g.states[i], g.params[i], g.grads[i]});
  {
    py::gil_scoped_release nogil;
    adafactor_step(slots, h);
  }
  return g.used;
}

void bind_adafactor(py::module_& m) {
  py::class_<AdafactorState>(m, "AdafactorState")
      .def(py::init([](std::vector<int64_t> shape, bool float64) {
             return AdafactorState(std::move(shape), float64 ? DType::f64 : DType::f32);
           }),
           py::arg("shape"), py::arg("float64") = false)
      .def_property_readonly("shape", [](const AdafactorState& s) { return py::tuple(py::cast(s.shape)); })
      .def_property_readonly("float64", [](const AdafactorState& s) { return s.dtype == DType::f64; })
      .def_property_readonly("factored", [](const AdafactorState& s) { return s.factored; })
      .def_property_readonly("step", [](const AdafactorState& s) { return s.step; })
      .def_property_readonly("state_bytes", &AdafactorState::state_bytes)
      .def("buffers",
           [](const AdafactorState& s) {
             return s.dtype == DType::f64 ? buffers_of(s, s.f64) : buffers_of(s, s.f32);
           },
           "Copies of the state buffers (float32, or float64 for float64 parameters) in torch's shapes: "
           "row_var (..., m, 1), col_var (..., 1, n), variance, exp_avg.")
      .def("load",
           [](AdafactorState& s, int64_t step, const py::dict& buffers) {
             AdafactorState next(s.shape, s.dtype);  // build, check, then swap: a bad load changes nothing
             next.step = step;
             if (s.dtype == DType::f64)
               load_into(next.f64, next, buffers);
             else
               load_into(next.f32, next, buffers);
             next.check();
             s = std::move(next);
           },
           py::arg("step"), py::arg("buffers"));

  m.def("check_adafactor_hyper", [](const py::dict& d) { validate(hyper_from(d)); }, py::arg("hyper"),
        "Raise ValueError naming the first hyperparameter out of range.");
  m.def("adafactor_step", &adafactor_step_py, py::arg("states"), py::arg("params"), py::arg("grads"),
        py::arg("hyper"));
}

const bindings::RegisterBinder registered(bind_adafactor);

}  // namespace
