// Bindings of Adapprox: its per-parameter state object and the group step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "adapprox/adapprox.hpp"
#include "binders.hpp"
#include "dlpack_import.hpp"
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

// One native call per parameter group: import everything, validate everything, then step.
// A None in `states` gets a fresh state shaped like its parameter; the states used are returned
// (the caller keeps new ones only if the step succeeded).
py::list adapprox_step_py(const py::list& states, const py::list& params, const py::list& grads,
                          const std::vector<uint64_t>& indices, const py::dict& hyper) {
  const size_t n = py::len(states);
  if (py::len(params) != n || py::len(grads) != n || indices.size() != n)
    throw py::value_error("states, params, grads and indices must have the same length");
  const AdapproxHyper h = hyper_from(hyper);
  validate(h);
  std::vector<py_dlpack::Imported> held;
  held.reserve(2 * n);
  std::vector<AdapproxSlot> slots(n);
  py::list used;
  for (size_t i = 0; i < n; ++i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    held.push_back(py_dlpack::import_tensor(params[i], "params" + idx, /*writable=*/true));
    held.push_back(py_dlpack::import_tensor(grads[i], "grads" + idx, /*writable=*/false));
    const TensorRef& p = held[2 * i].ref;
    if (p.data == held[2 * i + 1].ref.data && p.numel() > 0)
      throw py::value_error("params" + idx + ": the gradient aliases the parameter buffer");
    py::object st = states[i].is_none() ? py::cast(AdapproxState(p.shape)) : py::reinterpret_borrow<py::object>(states[i]);
    used.append(st);
    slots[i] = AdapproxSlot{st.cast<AdapproxState*>(), p, held[2 * i + 1].ref, indices[i]};
  }
  {
    py::gil_scoped_release nogil;
    adapprox_step(slots, h);
  }
  return used;
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
