// The CUDA backend's runtime entry points (adapprox/cuda.hpp).
#include <algorithm>

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

namespace {
template <class T>
__global__ void fill_kernel(T* p, int64_t count, T value) {
  for (int64_t i = int64_t(blockIdx.x) * 256 + threadIdx.x; i < count; i += int64_t(gridDim.x) * 256) p[i] = value;
}
}  // namespace

void fill(void* p, int64_t count, int dtype_bytes, double value, int device, void* stream) {
  if (count == 0) return;
  DeviceGuard on(device);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((count + 255) / 256, 4096));
  if (dtype_bytes == 8) fill_kernel<double><<<blocks, 256, 0, as_stream(stream)>>>(static_cast<double*>(p), count, value);
  else fill_kernel<float><<<blocks, 256, 0, as_stream(stream)>>>(static_cast<float*>(p), count, static_cast<float>(value));
  check(cudaGetLastError(), "fill");
}

void to_host(void* dst, const void* src, size_t bytes, int device, void* stream) {
  if (bytes == 0) return;
  DeviceGuard on(device);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream)), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

void to_device(void* dst, const void* src, size_t bytes, int device, void* stream) {
  if (bytes == 0) return;
  DeviceGuard on(device);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, as_stream(stream)), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
}

}  // namespace adapprox::cuda

namespace adapprox::cuda {

Scratch::Scratch(size_t bytes, cudaStream_t stream) : stream_(stream) {
  check(cudaMallocAsync(&base_, bytes > 0 ? bytes : 1, stream), "cudaMallocAsync (scratch)");
}

Scratch::~Scratch() { cudaFreeAsync(base_, stream_); }

}  // namespace adapprox::cuda
