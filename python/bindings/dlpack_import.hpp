// Consuming DLPack capsules from any producer (NumPy, PyTorch, CuPy, JAX): no copies, no casts.
#pragma once
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "adapprox/dlpack.h"
#include "adapprox/tensor.hpp"

namespace adapprox::py_dlpack {

// Owns one consumed capsule's managed tensor and calls its deleter exactly once.
class Imported {
 public:
  Imported() = default;
  Imported(const Imported&) = delete;
  Imported& operator=(const Imported&) = delete;
  Imported(Imported&& o) noexcept { *this = std::move(o); }
  Imported& operator=(Imported&& o) noexcept;
  ~Imported() { release(); }

  TensorRef ref;         // the host buffer as the core sees it
  bool read_only = false;

 private:
  friend Imported import_tensor(pybind11::handle, const std::string&, bool, bool);
  void release();
  dlpack::ManagedTensor* legacy_ = nullptr;
  dlpack::ManagedTensorVersioned* versioned_ = nullptr;
};

// Imports `obj` through __dlpack__. `name` is used in errors ("params[2]", "A"). With
// `writable`, a read-only buffer is an error. Only CPU float16/bfloat16/float32/float64 tensors
// are accepted, C-contiguous unless `strided` (the step driver then checks the layout);
// anything else raises TypeError/ValueError.
Imported import_tensor(pybind11::handle obj, const std::string& name, bool writable, bool strided = false);

}  // namespace adapprox::py_dlpack
