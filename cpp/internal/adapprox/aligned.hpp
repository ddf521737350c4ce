// Byte storage aligned to a cache line. State buffers use it so that every vector load of the
// fused kernels starts on a 64-byte boundary, as torch's allocator guarantees for its tensors
// (an AVX-512 load from a buffer offset by malloc's 16-byte header touches two cache lines).
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace adapprox {

constexpr std::size_t kCacheLine = 64;

template <class T>
struct CacheAligned {
  using value_type = T;
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kCacheLine)));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(kCacheLine)); }
  template <class U>
  bool operator==(const CacheAligned<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const CacheAligned<U>&) const noexcept { return false; }
};

using AlignedBytes = std::vector<unsigned char, CacheAligned<unsigned char>>;

}  // namespace adapprox
