// The CUDA backend as the core sees it: no CUDA types, streams as void* (cudaStream_t). In a
// build without CUDA (ADAPPROX_CUDA=OFF, or AUTO without nvcc) every function but built() throws
// Error(device) saying so; a CPU-only build never links CUDA libraries.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

namespace adapprox::cuda {

// Whether this build has the CUDA backend.
bool built();
// Throws Error(device) unless the backend is built, a driver is present and `device` exists.
void require_device(int device);
// Device memory for buffers a step creates (Adapprox's factors), zero-filled in stream order.
void* alloc_zeroed(size_t bytes, int device, void* stream);
// Frees device memory once the device has finished every queued use of it; never throws.
void release(void* p, int device) noexcept;
// Runs body with `device` current, restoring the caller's current device after.
void run_on_device(int device, const std::function<void()>& body);
// count elements of dtype (float32 or float64) set to value, in stream order.
void fill(void* p, int64_t count, int dtype_bytes, double value, int device, void* stream);
// Copies between host and device memory; both wait until the copy is done.
void to_host(void* dst, const void* src, size_t bytes, int device, void* stream);
void to_device(void* dst, const void* src, size_t bytes, int device, void* stream);

}  // namespace adapprox::cuda
