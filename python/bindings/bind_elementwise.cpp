// Bindings of the elementwise optimizer family: one state class and one group step for all of
// them, selected by algorithm name ("adam", "sgd", ...).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "adapprox/elementwise.hpp"
#include "binders.hpp"
#include "dlpack_import.hpp"
#include "group_import.hpp"

namespace py = pybind11;
using namespace adapprox;

namespace {

Hyper hyper_from(const py::dict& d) {
  Hyper h;
  for (auto item : d) h[item.first.cast<std::string>()] = item.second.cast<double>();
  return h;
}

py::dict buffers_of(const ElementwiseState& s) {
  py::dict d;
  std::vector<py::ssize_t> shape(s.shape.begin(), s.shape.end());
  for (const auto& [name, buf] : s.buffers) {
    py::array a = s.dtype == DType::f64 ? py::array(py::dtype::of<double>(), shape)
                                        : py::array(py::dtype::of<float>(), shape);
    if (!buf.empty()) std::memcpy(a.mutable_data(), buf.data(), buf.size());
    d[py::str(name)] = a;
  }
  return d;
}

// Build, check, then swap: a bad load changes nothing.
void load_state(ElementwiseState& s, int64_t step, const py::dict& buffers, const py::dict& scalars) {
  if (step < 0) throw py::value_error("step must be >= 0");
  ElementwiseState next(s.shape, s.dtype);
  next.step = step;
  const size_t elem = dtype_size(s.dtype);
  for (auto item : buffers) {
    const std::string name = item.first.cast<std::string>();
    py::array a = s.dtype == DType::f64
                      ? py::array(py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(item.second))
                      : py::array(py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(item.second));
    if (!a) throw py::type_error("state buffer '" + name + "': expected a float array");
    if (a.size() != next.numel())
      throw py::value_error("state buffer '" + name + "': expected " + std::to_string(next.numel()) +
                            " elements, got " + std::to_string(a.size()));
    auto& dst = next.buffers[name];
    dst.resize(static_cast<size_t>(a.size()) * elem);
    if (!dst.empty()) std::memcpy(dst.data(), a.data(), dst.size());
  }
  for (auto item : scalars) next.scalars[item.first.cast<std::string>()] = item.second.cast<double>();
  s = std::move(next);
}

py::list elementwise_step_py(const std::string& algorithm, const py::list& states, const py::list& params,
                             const py::list& grads, const py::dict& hyper) {
  const ElementwiseAlgorithm& algo = elementwise_algorithm(algorithm);
  const Hyper h = complete_hyper(algo, hyper_from(hyper));
  algo.validate(h);
  auto g = bindings::import_group<ElementwiseState>(
      states, params, grads, [](const TensorRef& p) { return ElementwiseState(p.shape, p.dtype); });
  std::vector<ElementwiseSlot> slots;
  for (size_t i = 0; i < g.states.size(); ++i) slots.push_back(ElementwiseSlot{g.states[i], g.params[i], g.grads[i]});
  {
    py::gil_scoped_release nogil;
    elementwise_step(algo, slots, h);
  }
  return g.used;
}

void bind_elementwise(py::module_& m) {
  py::class_<ElementwiseState>(m, "ElementwiseState")
      .def(py::init([](std::vector<int64_t> shape, bool float64) {
             return ElementwiseState(std::move(shape), float64 ? DType::f64 : DType::f32);
           }),
           py::arg("shape"), py::arg("float64") = false)
      .def_property_readonly("shape", [](const ElementwiseState& s) { return py::tuple(py::cast(s.shape)); })
      .def_property_readonly("float64", [](const ElementwiseState& s) { return s.dtype == DType::f64; })
      .def_property_readonly("step", [](const ElementwiseState& s) { return s.step; })
      .def_property_readonly("state_bytes", &ElementwiseState::state_bytes)
      .def_property_readonly("scalars", [](const ElementwiseState& s) { return s.scalars; })
      .def("buffers", &buffers_of, "Copies of the state buffers as NumPy arrays (float32 or float64).")
      .def("load", &load_state, py::arg("step"), py::arg("buffers"), py::arg("scalars"));

  m.def("elementwise_step", &elementwise_step_py, py::arg("algorithm"), py::arg("states"), py::arg("params"),
        py::arg("grads"), py::arg("hyper"));
  m.def("elementwise_defaults", [](const std::string& name) { return elementwise_algorithm(name).defaults(); },
        py::arg("algorithm"));
  m.def("elementwise_validate",
        [](const std::string& name, const py::dict& hyper) {
          const ElementwiseAlgorithm& algo = elementwise_algorithm(name);
          algo.validate(complete_hyper(algo, hyper_from(hyper)));
        },
        py::arg("algorithm"), py::arg("hyper"));
  m.def("elementwise_algorithms", &elementwise_algorithm_names);
}

const bindings::RegisterBinder registered(bind_elementwise);

}  // namespace
