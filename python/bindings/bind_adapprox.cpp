// Bindings of Adapprox: its per-parameter state object and the group step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "adapprox/adapprox.hpp"
#include "binders.hpp"
#include "dlpack_import.hpp"
#include "group_import.hpp"
#include "numpy_buffers.hpp"

namespace py = pybind11;
using namespace adapprox;
using bindings::from_numpy;
using bindings::to_numpy;

namespace {

AdapproxHyper hyper_from(const py::dict& d) {
  AdapproxHyper h;
  h.lr = d["lr"].cast<double>();
  h.beta1 = d["beta1"].cast<double>();
  h.beta2 = d["beta2"].cast<double>();
  h.eps = d["eps"].cast<double>();
  h.clip_threshold = d["clip_threshold"].cast<double>();
  h.weight_decay = d["weight_decay"].cast<double>();
  h.rsi.rank = d["rank"].cast<int>();
  h.rsi.min_rank = d["min_rank"].cast<int>();
  h.rsi.max_rank = d["max_rank"].is_none() ? 0 : d["max_rank"].cast<int>();
  h.rsi.tol = d["tol"].cast<double>();
  h.rsi.oversample = d["oversample"].cast<int>();
  h.rsi.power_iters = d["power_iters"].cast<int>();
  h.rsi.seed = d["seed"].cast<uint64_t>();
  h.cosine_guidance = d["cosine_guidance"].cast<bool>();
  h.maximize = d["maximize"].cast<bool>();
  return h;
}

// One native call per parameter group: import everything (group_import.hpp), validate, step.
py::list adapprox_step_py(const py::list& states, const py::list& params, const py::list& grads,
                          const std::vector<uint64_t>& indices, const py::dict& hyper) {
  if (indices.size() != py::len(params)) throw py::value_error("indices and params must have the same length");
  const AdapproxHyper h = hyper_from(hyper);
  validate(h);
  auto g = bindings::import_group<AdapproxState>(states, params, grads,
                                                 [](const TensorRef& p) { return AdapproxState(p.shape); });
  std::vector<AdapproxSlot> slots;
  for (size_t i = 0; i < g.states.size(); ++i)
    slots.push_back(AdapproxSlot{g.states[i], g.params[i], g.grads[i], indices[i]});
  {
    py::gil_scoped_release nogil;
    adapprox_step(slots, h);
  }
  return g.used;
}

void bind_adapprox(py::module_& m) {
  py::class_<AdapproxState>(m, "AdapproxState")
      .def(py::init<std::vector<int64_t>>(), py::arg("shape"))
      .def_property_readonly("shape", [](const AdapproxState& s) { return py::tuple(py::cast(s.shape)); })
      .def_property_readonly("factored", [](const AdapproxState& s) { return s.factored; })
      .def_property_readonly("rows", [](const AdapproxState& s) { return s.rows; })
      .def_property_readonly("cols", [](const AdapproxState& s) { return s.cols; })
      .def_property_readonly("step", [](const AdapproxState& s) { return s.step; })
      .def_property_readonly("rank", [](const AdapproxState& s) { return s.rank; })
      .def_property_readonly("state_bytes", &AdapproxState::state_bytes)
      .def_property_readonly("has_exp_avg", [](const AdapproxState& s) { return !s.m.empty(); })
      .def("workspace_bytes",
           [](const AdapproxState& s, const py::dict& hyper, int dtype_bytes) {
             return adapprox_step_workspace_bytes(s, hyper_from(hyper), dtype_bytes);
           })
      .def("buffers",
           [](const AdapproxState& s) {
             py::dict d;
             std::vector<py::ssize_t> full(s.shape.begin(), s.shape.end());
             if (s.factored) {
               d["factor_q"] = to_numpy(s.q, {s.rows, s.rank});
               d["factor_u"] = to_numpy(s.u, {s.cols, s.rank});
             } else if (!s.v.empty()) {
               d["exp_avg_sq"] = to_numpy(s.v, full);
             }
             if (!s.m.empty()) d["exp_avg"] = to_numpy(s.m, full);
             return d;
           },
           "Copies of the state buffers as float32 NumPy arrays.")
      .def("load",
           [](AdapproxState& s, int64_t step, int rank, const py::dict& buffers) {
             AdapproxState next(s.shape);  // build, check, then swap: a bad load changes nothing
             next.step = step;
             next.rank = rank;
             auto get = [&](const char* key, int64_t count, std::vector<float>& dst) {
               if (buffers.contains(key)) dst = from_numpy(buffers[key], count, key);
             };
             get("factor_q", next.rows * rank, next.q);
             get("factor_u", next.cols * rank, next.u);
             get("exp_avg_sq", next.numel(), next.v);
             get("exp_avg", next.numel(), next.m);
             if (s.factored && step > 0 && (!buffers.contains("factor_q") || !buffers.contains("factor_u")))
               throw py::value_error("state of shape " + shape_str(s.shape) + ": factor_q and factor_u are required");
             next.check();
             s = std::move(next);
           },
           py::arg("step"), py::arg("rank"), py::arg("buffers"));

  m.def("check_adapprox_hyper", [](const py::dict& d) { validate(hyper_from(d)); }, py::arg("hyper"),
        "Raise ValueError naming the first hyperparameter out of range.");
  m.def("adapprox_step", &adapprox_step_py, py::arg("states"), py::arg("params"), py::arg("grads"),
        py::arg("indices"), py::arg("hyper"));
}

const bindings::RegisterBinder registered(bind_adapprox);

}  // namespace
