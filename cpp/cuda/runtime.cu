// The CUDA backend's runtime entry points (adapprox/cuda.hpp).
#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

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
  // Scratch comes from the device's stream-ordered pool every step: keep what it holds instead of
  // returning it at each synchronisation (the default threshold is 0). Once per device.
  static std::mutex mu;
  static std::vector<bool> tuned;
  std::lock_guard<std::mutex> hold(mu);
  if (tuned.size() < static_cast<size_t>(count)) tuned.resize(count, false);
  if (!tuned[device]) {
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    tuned[device] = true;
  }
}

void run_on_device(int device, const std::function<void()>& body) {
  DeviceGuard on(device);
  body();
}

// Long-lived buffers (state, factors): plain cudaMalloc, zero-filled and complete before the
// caller's next step, whatever stream that step runs on.
void* alloc_zeroed(size_t bytes, int device, void* stream) {
  DeviceGuard on(device);
  void* p = nullptr;
  if (bytes == 0) return nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  const cudaError_t e = cudaMemsetAsync(p, 0, bytes, as_stream(stream));
  const cudaError_t w = e == cudaSuccess ? cudaStreamSynchronize(as_stream(stream)) : e;
  if (w != cudaSuccess) {
    cudaFree(p);
    check(w, "zero-filling a state buffer");
  }
  return p;
}

// Runs in deleters: never throws. Work still queued may read or write the buffer (a step's
// kernels on a non-blocking stream), and cudaFree does not wait for it: wait for the device.
void release(void* p, int device) noexcept {
  if (!p) return;
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  if (previous != device && cudaSetDevice(device) != cudaSuccess) return;
  cudaDeviceSynchronize();
  cudaFree(p);
  if (previous != device) cudaSetDevice(previous);
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
  check(cudaStreamSynchronize(as_stream(stream)), "fill");  // complete before any stream's next step
}

void to_host(void* dst, const void* src, size_t bytes, int device, void* stream) {
  if (bytes == 0) return;
  DeviceGuard on(device);
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");  // the last step may run on any stream
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
