// Internal to the CUDA backend: error checks, the device guard, and element loads and stores.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "adapprox/tensor.hpp"

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
