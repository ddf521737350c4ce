// Internal to the CUDA backend: error checks, the device guard, and element loads and stores.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "adapprox/tensor.hpp"
#include "adapprox/tensor_ops.hpp"

namespace adapprox::cuda {

// Throws Error(device) naming `what` and CUDA's message.
void check(cudaError_t e, const char* what);

// Makes `device` current for the scope and restores the caller's (torch's) current device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// The math type of a storage type: float for bf16/fp16 (their state is float32, as on the CPU).
template <class P>
struct MathOf {
  using type = P;
};
template <>
struct MathOf<__nv_bfloat16> {
  using type = float;
};
template <>
struct MathOf<__half> {
  using type = float;
};

__device__ __forceinline__ float widen(float x) { return x; }
__device__ __forceinline__ double widen(double x) { return x; }
__device__ __forceinline__ float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float widen(__half x) { return __half2float(x); }

// Rounded to nearest even, as the CPU's from_float32.
template <class P>
__device__ __forceinline__ P narrow(typename MathOf<P>::type x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half narrow<__half>(float x) {
  return __float2half_rn(x);
}

}  // namespace adapprox::cuda

namespace adapprox::cuda {

// The sum of `v` over a block of kThreadsPerBlock threads, in a fixed order (a tree over
// shared memory): the same inputs give the same bits on every run. Valid in thread 0.
constexpr int kThreadsPerBlock = 256;

// Blocks of kThreadsPerBlock threads covering `count` items (at least one).
inline unsigned blocks_for(int64_t count) {
  return static_cast<unsigned>((count + kThreadsPerBlock - 1) / kThreadsPerBlock > 1
                                   ? (count + kThreadsPerBlock - 1) / kThreadsPerBlock : 1);
}
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double part[kThreadsPerBlock];
  part[threadIdx.x] = v;
  __syncthreads();
  for (int half = kThreadsPerBlock / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  const double total = part[0];
  __syncthreads();  // part may be reused by the next call
  return total;
}

// Scratch memory in stream order (cudaMallocAsync / cudaFreeAsync), released by the destructor.
class Scratch {
 public:
  Scratch(size_t bytes, cudaStream_t stream);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  // The next `count` elements of type U (aligned to 256 bytes).
  template <class U>
  U* take(int64_t count) {
    const size_t at = (used_ + 255) / 256 * 256;
    used_ = at + static_cast<size_t>(count) * sizeof(U);
    return reinterpret_cast<U*>(static_cast<char*>(base_) + at);
  }
  // Bytes to ask for `count` elements of U (with the alignment take() adds).
  template <class U>
  static size_t need(int64_t count) {
    return static_cast<size_t>(count) * sizeof(U) + 256;
  }

 private:
  void* base_ = nullptr;
  size_t used_ = 0;
  cudaStream_t stream_;
};

}  // namespace adapprox::cuda
