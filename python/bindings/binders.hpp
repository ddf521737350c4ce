// Each optimizer's bindings live in their own bind_<name>.cpp and register a function here;
// module.cpp runs them all when adapprox._core is imported.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

namespace adapprox::bindings {

using Binder = void (*)(pybind11::module_&);

inline std::vector<Binder>& binders() {
  static std::vector<Binder> all;
  return all;
}

struct RegisterBinder {
  explicit RegisterBinder(Binder b) { binders().push_back(b); }
};

}  // namespace adapprox::bindings
