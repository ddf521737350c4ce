// Helpers of the C ABI tests: owning tensors with their adx_DLTensor views, handles, saved bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "adapprox/adapprox.h"

struct Tensor {  // an owning float32/float64 tensor with its adx_DLTensor view
  std::vector<double> f64;
  std::vector<float> f32;
  std::vector<int64_t> shape;
  adx_DLTensor t{};
  Tensor(std::vector<int64_t> s, float value, int bits = 32) : shape(std::move(s)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (bits == 64) f64.assign(n, value); else f32.assign(n, value);
    t.data = bits == 64 ? static_cast<void*>(f64.data()) : static_cast<void*>(f32.data());
    t.device = {1, 0};
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = {2, static_cast<uint8_t>(bits), 1};
    t.shape = shape.data();
  }
};

inline adx_optimizer* make(const char* spec) {
  adx_optimizer* o = nullptr;
  return adx_create(spec, &o) == ADX_OK ? o : nullptr;
}

inline bool message_has(const char* word) { return std::string(adx_last_error()).find(word) != std::string::npos; }

inline std::vector<unsigned char> saved(adx_optimizer* o) {
  size_t n = 0;
  adx_state_size(o, &n);
  std::vector<unsigned char> b(n);
  size_t w = 0;
  adx_state_save(o, b.data(), b.size(), &w);
  return b;
}
