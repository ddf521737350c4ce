// The byte format of optimizer state (the same as the C ABI's adx_state_save/adx_state_load),
// for Python's save_native_state()/load_native_state(): each parameter's state travels as
// (shape, step, {buffer name: NumPy array}), every buffer of the registry's schema but "step".
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "adapprox/optimizer.hpp"
#include "adapprox/quantized_state.hpp"
#include "adapprox/registry.hpp"
#include "binders.hpp"

namespace py = pybind11;
using namespace adapprox;

namespace {

// NumPy has no bf16: bf16 buffers travel as uint16 arrays of their bits; 8-bit codes as uint8.
StateRecord::Buffer buffer_from(const std::string& name, const py::handle& obj) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::type_error("state buffer '" + name + "': expected an array");
  StateRecord::Buffer b;
  if (a.dtype().is(py::dtype::of<float>())) b.dtype = DType::f32;
  else if (a.dtype().is(py::dtype::of<double>())) b.dtype = DType::f64;
  else if (a.dtype().is(py::dtype::of<uint16_t>())) b.dtype = DType::bf16;
  else if (a.dtype().is(py::dtype::of<uint8_t>())) b.dtype = DType::u8;
  else throw py::type_error("state buffer '" + name + "': expected float32, float64, uint16 (bf16 bits) or uint8, got " +
                            std::string(py::str(a.dtype())));
  a = py::array::ensure(a, py::array::c_style);
  for (py::ssize_t i = 0; i < a.ndim(); ++i) b.shape.push_back(a.shape(i));
  b.bytes.resize(static_cast<size_t>(a.nbytes()));
  if (!b.bytes.empty()) std::memcpy(b.bytes.data(), a.data(), b.bytes.size());
  return b;
}

py::array array_from(const StateRecord::Buffer& b) {
  std::vector<py::ssize_t> shape(b.shape.begin(), b.shape.end());
  py::dtype dt = py::dtype::of<float>();
  switch (b.dtype) {
    case DType::f32: break;
    case DType::f64: dt = py::dtype::of<double>(); break;
    case DType::bf16: dt = py::dtype::of<uint16_t>(); break;
    case DType::u8: dt = py::dtype::of<uint8_t>(); break;
    default: throw py::value_error("state holds a float16 buffer, which no optimizer keeps");
  }
  py::array a(dt, shape);
  if (!b.bytes.empty()) std::memcpy(a.mutable_data(), b.bytes.data(), b.bytes.size());
  return a;
}

StateRecord record_from(const py::dict& bufs) {
  StateRecord r;
  for (auto item : bufs) {
    const std::string k = item.first.cast<std::string>();
    r.buffers[k] = buffer_from(k, item.second);
  }
  return r;
}

// {name: array} of one parameter's state with every dense moment at the precision `hyper` asks
// for (conform_moments); arrays are read in their C order.
py::dict conform_state_py(const std::string& name, const py::dict& hyper, const std::vector<int64_t>& shape,
                          const std::string& dtype, const py::dict& bufs, int64_t step) {
  const Algorithm& algo = find_algorithm(name);
  Hyper h;
  for (auto item : hyper) h[item.first.cast<std::string>()] = item.second.cast<double>();
  h = complete_hyper(algo, h);
  StateRecord r = record_from(bufs);
  r.step = step;
  DType dt = DType::f32;
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16})
    if (dtype == dtype_name(t)) dt = t;
  conform_moments(state_schema(algo, h, shape, dt), r);
  py::dict out;
  for (const auto& [k, b] : r.buffers) out[py::str(k)] = array_from(b);
  return out;
}

}  // namespace

namespace {

py::bytes encode_state_py(const std::string& name, const py::dict& hyper, const py::list& states) {
  Hyper h;
  for (auto item : hyper) h[item.first.cast<std::string>()] = item.second.cast<double>();
  std::vector<std::unique_ptr<StateRecord>> records;
  for (auto s : states) {
    if (s.is_none()) {
      records.emplace_back();
      continue;
    }
    auto t = s.cast<py::tuple>();
    auto r = std::make_unique<StateRecord>();
    r->shape = t[0].cast<std::vector<int64_t>>();
    r->step = t[1].cast<int64_t>();
    for (auto item : t[2].cast<py::dict>()) {
      const std::string k = item.first.cast<std::string>();
      r->buffers[k] = buffer_from(k, item.second);
    }
    records.push_back(std::move(r));
  }
  std::vector<const StateRecord*> ptrs;
  for (const auto& r : records) ptrs.push_back(r.get());
  const std::vector<unsigned char> bytes = encode_state(name, h, ptrs);
  return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

py::tuple decode_state_py(const py::bytes& data, int64_t expected_params) {
  const std::string raw = data;
  DecodedState d = decode_state(reinterpret_cast<const unsigned char*>(raw.data()), raw.size(), expected_params);
  py::list states;
  for (const auto& r : d.states) {
    if (!r) {
      states.append(py::none());
      continue;
    }
    py::dict bufs;
    for (const auto& [k, b] : r->buffers) bufs[py::str(k)] = array_from(b);
    states.append(py::make_tuple(py::tuple(py::cast(r->shape)), r->step, bufs));
  }
  return py::make_tuple(d.name, d.hyper, states);
}

void bind_state_io(py::module_& m) {
  m.def("encode_state", &encode_state_py, py::arg("name"), py::arg("hyper"), py::arg("states"),
        "Bytes in the C ABI's versioned format from [None | (shape, step, {name: array})].");
  m.def("decode_state", &decode_state_py, py::arg("data"), py::arg("expected_params") = -1,
        "(name, hyper, [None | (shape, step, {name: array})]) from state bytes (version 1 converted); "
        "ValueError on truncated or corrupt data, or (expected_params >= 0) another parameter count.");
  m.def("conform_state", &conform_state_py, py::arg("name"), py::arg("hyper"), py::arg("shape"), py::arg("dtype"),
        py::arg("buffers"), py::arg("step") = 0,
        "{name: array} with every dense moment converted to the state_precision of `hyper` (float32 <-> bf16 "
        "(uint16 bits) <-> 8-bit codes (uint8) with their '_absmax'), read in C order; other buffers as given.");
}

const bindings::RegisterBinder registered(bind_state_io);

}  // namespace
