// Internal: C-ordered views of caller-owned tensors for the optimizers that reshape or flatten
// a parameter (Adafactor, Adapprox, FullMatrixAdagrad, AdaGram). A tensor that is already
// C-contiguous and of the math dtype is used in place (the zero-copy fast path); any other dense
// layout or dtype goes through one gathered copy, written back once by store().
#pragma once
#include <vector>

#include "adapprox/tensor.hpp"
#include "adapprox/quantized_state.hpp"
#include "adapprox/tensor_ops.hpp"

namespace adapprox {

template <class T>
constexpr DType dtype_of() {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float or double");
  return sizeof(T) == 8 ? DType::f64 : DType::f32;
}

template <class T>
class Staged {
 public:
  explicit Staged(const TensorRef& t) : t_(t) {
    if (t.numel() == 0) return;
    if (t.contiguous() && t.dtype == dtype_of<T>()) {
      p_ = static_cast<T*>(t.data);
    } else {
      copy_.resize(static_cast<size_t>(t.numel()));
      gather(t, dtype_of<T>(), copy_.data());
      p_ = copy_.data();
    }
  }
  Staged(const Staged&) = delete;
  Staged& operator=(const Staged&) = delete;

  T* data() const { return p_; }
  bool copied() const { return !copy_.empty(); }
  // Writes a copy back to the tensor (rounding once to its dtype); nothing for an in-place view.
  // With `stochastic`, a bf16 tensor is rounded stochastically (keyed by `key` and each
  // element's logical index; quantized_state.hpp), the copy first and then stored exactly.
  void store(bool stochastic = false, uint64_t key = 0) {
    if (copy_.empty()) return;
    if constexpr (sizeof(T) == 4) {
      if (stochastic && t_.dtype == DType::bf16) round_bf16_stochastic(copy_.data(), static_cast<int64_t>(copy_.size()), key);
    }
    scatter(copy_.data(), dtype_of<T>(), t_);
  }

 private:
  TensorRef t_;
  T* p_ = nullptr;
  std::vector<T> copy_;
};

}  // namespace adapprox
