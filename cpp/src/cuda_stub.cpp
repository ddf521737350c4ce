// The CUDA backend's entry points in a build without it: each says how to get it.
#ifndef ADAPPROX_WITH_CUDA
#include "adapprox/cuda.hpp"
#include "adapprox/tensor.hpp"
#include "cuda_adapprox.hpp"
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
void release(void*, int) noexcept {}
void run_on_device(int, const std::function<void()>&) { unavailable(); }
void fill(void*, int64_t, int, double, int, void*) { unavailable(); }
void to_host(void*, const void*, size_t, int, void*) { unavailable(); }
void to_device(void*, const void*, size_t, int, void*) { unavailable(); }
void adam_step(const Hyper&, std::vector<Slot>&, const States&, size_t, bool, void*) { unavailable(); }
void nadam_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void rmsprop_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void adagrad_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void sgd_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void signsgd_step(const Hyper&, std::vector<Slot>&, const States&, size_t, void*) { unavailable(); }
void adafactor_step(const AdafactorArgs&, Slot&, void*) { unavailable(); }


namespace adapprox_ops {
float* alloc(int64_t, void*) { unavailable(); }
void release(float*, void*) {}
void copy(float*, const float*, int64_t, void*) { unavailable(); }
void upload(float*, const float*, int64_t, void*) { unavailable(); }
void download(float*, const float*, int64_t, void*) { unavailable(); }
void sync(void*) { unavailable(); }
void sketch(float*, int64_t, int, uint64_t, void*) { unavailable(); }
void apply(const Ema&, const float*, int, float*, void*) { unavailable(); }
void apply_t(const Ema&, const float*, int, float*, void*) { unavailable(); }
void stats(const Ema&, float, double*, double*, void*) { unavailable(); }
void gram(const float*, int, const float*, int, int64_t, double*, void*) { unavailable(); }
void times(const float*, int64_t, int, const float*, int, float*, void*) { unavailable(); }
void update(const Ema&, const math::AdapproxUpdate&, float*, float*, bool, double*, void*) { unavailable(); }
void guided_theta(float, float, float, const float*, float*, int64_t, void*) { unavailable(); }
double dense_second_moment(const float*, float*, int64_t, float, float, void*) { unavailable(); }
void dense_update(const float*, const float*, int64_t, const math::AdapproxUpdate&, float*, float*, bool, double*,
                  void*) {
  unavailable();
}
}  // namespace adapprox_ops

}  // namespace adapprox::cuda
#endif
