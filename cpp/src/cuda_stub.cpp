// The CUDA backend's entry points in a build without it: each says how to get it.
#ifndef ADAPPROX_WITH_CUDA
#include "adapprox/cuda.hpp"
#include "adapprox/tensor.hpp"
#include "cuda_steps.hpp"

namespace adapprox::cuda {
namespace {
[[noreturn]] void unavailable() {
  throw Error(ErrorKind::device,
              "this build of adapprox has no CUDA backend (rebuild with CUDA: ADAPPROX_CUDA=ON and nvcc on the "
              "PATH or CMAKE_CUDA_COMPILER set); move the tensors to the CPU");
}
}  // namespace

bool built() { return false; }
void require_device(int) { unavailable(); }
void* alloc_zeroed(size_t, int, void*) { unavailable(); }
void release(void*, int) {}
void adam_step(const Hyper&, std::vector<Slot>&, const States&, size_t, bool, void*) { unavailable(); }
void nadam_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void rmsprop_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void adagrad_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void sgd_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void signsgd_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void adafactor_step(const AdafactorArgs&, Slot&, void*) { unavailable(); }

}  // namespace adapprox::cuda
#endif
