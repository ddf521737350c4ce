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
  AlignedBytes bytes;  // zero-filled, cache-line aligned

  OwnedBuffer() = default;
  OwnedBuffer(DType t, std::vector<int64_t> s);
  TensorRef ref() { return TensorRef{bytes.empty() ? nullptr : bytes.data(), dtype, shape, {}}; }
};

// An Allocator that keeps what it hands out until the front takes it with take().
class CollectingAllocator final : public Allocator {
 public:
  TensorRef allocate(size_t slot, size_t buffer, DType dtype, const std::vector<int64_t>& shape) override;
  struct Item {
    size_t slot, buffer;
    std::unique_ptr<OwnedBuffer> buf;
  };
  std::vector<Item> take();

 private:
  std::mutex mu_;
  std::vector<Item> items_;
};

}  // namespace adapprox
