// Copies between std::vector and NumPy arrays, for optimizer state export/import only
// (parameters and gradients never go through here: they arrive by DLPack, without copies).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <vector>

namespace adapprox::bindings {

namespace py = pybind11;

template <class T>
inline py::array_t<T> to_numpy(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

inline std::vector<float> from_numpy(const py::object& obj, int64_t expected, const char* name) {
  auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a) throw py::type_error(std::string(name) + ": expected an array of float32");
  if (a.size() != expected)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(expected) + " elements, got " +
                          std::to_string(a.size()));
  return std::vector<float>(a.data(), a.data() + a.size());
}

// A state buffer of `expected` elements as std::vector<T> (any float array; converted to T).
template <class T>
std::vector<T> from_numpy_as(const py::handle& obj, int64_t expected, const std::string& name) {
  auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a) throw py::type_error(name + ": expected a float array");
  if (a.size() != expected)
    throw py::value_error(name + ": expected " + std::to_string(expected) + " elements, got " + std::to_string(a.size()));
  return std::vector<T>(a.data(), a.data() + a.size());
}

}  // namespace adapprox::bindings
