// Consuming DLPack capsules from any producer (NumPy, PyTorch, CuPy, JAX): no copies, no casts.
#pragma once
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "adapprox/dlpack.h"
#include "adapprox/tensor.hpp"

namespace adapprox::py_dlpack {

// The CUDA stream a step runs on, as DLPack's __dlpack__(stream=...) takes it: 1 the legacy
// default stream, 2 the per-thread default stream, else a cudaStream_t.
struct CudaStream {
  intptr_t value = 1;
};

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
  friend Imported import_tensor(pybind11::handle, const std::string&, bool, bool, const CudaStream*);
  void release();
  dlpack::ManagedTensor* legacy_ = nullptr;
  dlpack::ManagedTensorVersioned* versioned_ = nullptr;
};

// Imports `obj` through __dlpack__. `name` is used in errors ("params[2]", "A"). With
// `writable`, a read-only buffer is an error. float16/bfloat16/float32/float64 tensors are
// accepted, C-contiguous unless `strided` (the step driver then checks the layout); on the CPU,
// or on a CUDA device when `stream` is given and this build has the CUDA backend (the producer
// is asked to make `stream` wait for its work); anything else raises TypeError/ValueError.
Imported import_tensor(pybind11::handle obj, const std::string& name, bool writable, bool strided = false,
                       const CudaStream* stream = nullptr);

}  // namespace adapprox::py_dlpack
