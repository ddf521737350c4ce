// The C++ API's spec strings and whole-optimizer state loading, for Python (and its fuzz targets):
// the same parser and loader the C ABI runs behind adx_create and adx_state_load.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "adapprox/optimizer.hpp"
#include "binders.hpp"

namespace py = pybind11;
using namespace adapprox;

namespace {

void bind_spec(py::module_& m) {
  m.def(
      "parse_spec",
      [](const std::string& text) {
        Spec s = parse_spec(text);
        return py::make_tuple(s.name, s.values);
      },
      py::arg("text"), "(name, {key: value}) of a spec string; ValueError if malformed. Names and keys unchecked.");
  m.def(
      "canonical_spec", [](const std::string& text) { return Optimizer::create(text)->spec(); }, py::arg("text"),
      "Create the optimizer a spec names (as adx_create does) and return its canonical spec, every key "
      "included; ValueError for a malformed spec, an unknown optimizer or key, or a value out of range.");
  m.def(
      "spec_defaults", [](const std::string& name) { return Optimizer::defaults(name); }, py::arg("name"),
      "The keys optimizer `name` accepts in a spec, with their defaults.");
  m.def(
      "load_state_check",
      [](const py::bytes& data) {
        const std::string raw = data;
        const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
        std::string spec;
        {
          py::gil_scoped_release nogil;
          const std::string name = decode_state(p, raw.size()).name;
          auto opt = Optimizer::create(name);
          opt->load(p, raw.size());
          spec = opt->spec();
        }
        return spec;
      },
      py::arg("data"),
      "Load state bytes into a fresh optimizer of the name they carry, as adx_state_load does (hyperparameters "
      "and every parameter's state checked), and return its canonical spec; ValueError if refused.");
}

const bindings::RegisterBinder registered(bind_spec);

}  // namespace
