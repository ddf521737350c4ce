// The byte format of optimizer state (the same as the C ABI's adx_state_save/adx_state_load),
// for Python's save_native_state()/load_native_state().
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "adapprox/state_records.hpp"
#include "binders.hpp"

namespace py = pybind11;
using namespace adapprox;

namespace {

py::bytes encode_state_py(const std::string& name, const py::dict& hyper, const py::list& states) {
  Hyper h;
  for (auto item : hyper) h[item.first.cast<std::string>()] = item.second.is_none() ? 0.0 : item.second.cast<double>();
  std::vector<std::unique_ptr<StateRecord>> records;
  for (auto s : states) {
    if (s.is_none())
      records.emplace_back();
    else if (py::isinstance<AdapproxState>(s))
      records.push_back(std::make_unique<StateRecord>(to_record(s.cast<const AdapproxState&>())));
    else if (py::isinstance<AdafactorState>(s))
      records.push_back(std::make_unique<StateRecord>(to_record(s.cast<const AdafactorState&>())));
    else if (py::isinstance<AdagramState>(s))
      records.push_back(std::make_unique<StateRecord>(to_record(s.cast<const AdagramState&>())));
    else if (py::isinstance<FullMatrixAdagradState>(s))
      records.push_back(std::make_unique<StateRecord>(to_record(s.cast<const FullMatrixAdagradState&>())));
    else
      records.push_back(std::make_unique<StateRecord>(to_record(s.cast<const ElementwiseState&>())));
  }
  std::vector<const StateRecord*> ptrs;
  for (const auto& r : records) ptrs.push_back(r.get());
  const std::vector<unsigned char> bytes = encode_state(name, h, ptrs);
  return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

py::tuple decode_state_py(const py::bytes& data) {
  const std::string raw = data;
  DecodedState d = decode_state(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  py::list states;
  for (const auto& r : d.states) {
    if (!r)
      states.append(py::none());
    else if (d.name == "adapprox")
      states.append(py::cast(adapprox_state_from(*r)));
    else if (d.name == "adafactor")
      states.append(py::cast(adafactor_state_from(*r)));
    else if (d.name == "adagram")
      states.append(py::cast(adagram_state_from(*r)));
    else if (d.name == "fullmatrixadagrad")
      states.append(py::cast(full_matrix_adagrad_state_from(*r)));
    else
      states.append(py::cast(elementwise_state_from(*r)));
  }
  return py::make_tuple(d.name, d.hyper, states);
}

void bind_state_io(py::module_& m) {
  m.def("encode_state", &encode_state_py, py::arg("name"), py::arg("hyper"), py::arg("states"),
        "Optimizer state as bytes in the C ABI's versioned format.");
  m.def("decode_state", &decode_state_py, py::arg("data"),
        "(name, hyper, states) from encode_state's bytes; raises ValueError on truncated or corrupt data.");
}

const bindings::RegisterBinder registered(bind_state_io);

}  // namespace
