// The CUDA backend's runtime entry points (adapprox/cuda.hpp).
#include "adapprox/cuda.hpp"
#include "runtime.cuh"

namespace adapprox::cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(ErrorKind::device, std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

DeviceGuard::DeviceGuard(int device) {
  check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

bool built() { return true; }

void require_device(int device) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess)
    throw Error(ErrorKind::device, std::string("CUDA tensors given, but CUDA is not usable here: ") +
                                       cudaGetErrorString(e));
  if (device < 0 || device >= count)
    throw Error(ErrorKind::device, "cuda:" + std::to_string(device) + " does not exist (" + std::to_string(count) +
                                       " CUDA devices)");
}

void* alloc_zeroed(size_t bytes, int device, void* stream) {
  DeviceGuard on(device);
  void* p = nullptr;
  if (bytes == 0) return nullptr;
  check(cudaMallocAsync(&p, bytes, as_stream(stream)), "cudaMallocAsync");
  check(cudaMemsetAsync(p, 0, bytes, as_stream(stream)), "cudaMemsetAsync");
  return p;
}

void release(void* p, int device) {
  if (!p) return;
  DeviceGuard on(device);
  cudaFree(p);  // waits for the work queued on it
}

}  // namespace adapprox::cuda

namespace adapprox::cuda {

Scratch::Scratch(size_t bytes, cudaStream_t stream) : stream_(stream) {
  check(cudaMallocAsync(&base_, bytes > 0 ? bytes : 1, stream), "cudaMallocAsync (scratch)");
}

Scratch::~Scratch() { cudaFreeAsync(base_, stream_); }

}  // namespace adapprox::cuda
