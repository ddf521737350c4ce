// Buffers a front owns on the C++ side: the C++ API's per-parameter state, and new factor
// buffers that a step hands back (Allocator) before the front takes them over.
#pragma once
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "adapprox/aligned.hpp"
#include "adapprox/registry.hpp"

namespace adapprox {

struct OwnedBuffer {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  AlignedBytes bytes;                 // host: zero-filled, cache-line aligned
  Device device{};                    // where the data is
  std::shared_ptr<void> device_data;  // CUDA: zero-filled device memory (cuda::alloc_zeroed)

  OwnedBuffer() = default;
  OwnedBuffer(DType t, std::vector<int64_t> s);
  // On a CUDA device, allocated (zero-filled) in the order of `stream`.
  OwnedBuffer(DType t, std::vector<int64_t> s, Device on, void* stream);
  void* data() { return device.kind == Device::cuda ? device_data.get() : (bytes.empty() ? nullptr : bytes.data()); }
  TensorRef ref() { return TensorRef{data(), dtype, shape, {}, device}; }
  size_t nbytes() const;
  // The bytes, copied to the host (waits for a device buffer).
  std::vector<unsigned char> host_bytes() const;
  // A copy of this buffer on `to` (the same buffer's contents, in stream order; waits).
  std::unique_ptr<OwnedBuffer> copy_to(const Device& to, void* stream) const;
};

// An Allocator that keeps what it hands out until the front takes it with take().
class CollectingAllocator final : public Allocator {
 public:
  TensorRef allocate(size_t slot, size_t buffer, DType dtype, const std::vector<int64_t>& shape) override;
  TensorRef allocate_on(const Device& device, void* stream, size_t slot, size_t buffer, DType dtype,
                        const std::vector<int64_t>& shape) override;
  struct Item {
    size_t slot, buffer;
    std::unique_ptr<OwnedBuffer> buf;
  };
  std::vector<Item> take();

 private:
  TensorRef keep(size_t slot, size_t buffer, std::unique_ptr<OwnedBuffer> buf);
  std::mutex mu_;
  std::vector<Item> items_;
};

}  // namespace adapprox
