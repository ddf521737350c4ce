// Elementwise optimizers (Adam, AdamW, NAdam, RMSprop, Adagrad, SGD, SignSGD, ...): each is an
// ElementwiseAlgorithm registered by name, and every step is one fused pass over parameter,
// gradient and state, split across the thread pool. Hyperparameters travel as a name -> number
// map (booleans as 0/1), the same for Python, C and the spec strings of the C ABI.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "adapprox/aligned.hpp"
#include "adapprox/tensor.hpp"

namespace adapprox {

using Hyper = std::map<std::string, double>;

// State of one parameter. Buffers have the parameter's element count and are float64 for
// float64 parameters, float32 otherwise (bf16/fp16 parameters are stepped in float32).
struct ElementwiseState {
  std::vector<int64_t> shape;
  DType dtype = DType::f32;                         // buffers' dtype: f32 or f64
  int64_t step = 0;                                 // steps taken, including the current one in run()
  std::map<std::string, AlignedBytes> buffers;  // raw storage, dtype elements each
  std::map<std::string, double> scalars;            // per-parameter scalars (e.g. NAdam's mu_product)

  ElementwiseState() = default;
  ElementwiseState(std::vector<int64_t> shape, DType param_dtype);
  int64_t numel() const;
  int64_t state_bytes() const;
  template <class T>
  T* buffer(const std::string& name) {
    return reinterpret_cast<T*>(buffers.at(name).data());
  }
};

class ElementwiseAlgorithm {
 public:
  virtual ~ElementwiseAlgorithm() = default;
  virtual std::string name() const = 0;
  // Every accepted hyperparameter with its default. Unknown keys are rejected by validate().
  virtual Hyper defaults() const = 0;
  // Throws Error(value) naming the first hyperparameter out of range. `h` has all keys.
  virtual void validate(const Hyper& h) const = 0;
  // State buffers this configuration needs (created zero-filled before the first step).
  virtual std::vector<std::string> buffer_names(const Hyper& h) const = 0;
  // Per-parameter scalar bookkeeping before the elementwise pass (st.step already counts this step).
  virtual void begin_step(ElementwiseState& st, const Hyper& h) const {}
  // The fused update of elements [0, n): p, g and each buffer offset to the chunk's start.
  virtual void run(const Hyper& h, const ElementwiseState& st, int64_t n, float* p, const float* g,
                   float* const* bufs) const = 0;
  virtual void run(const Hyper& h, const ElementwiseState& st, int64_t n, double* p, const double* g,
                   double* const* bufs) const = 0;
};

// The algorithm registered under `name` ("adam", "sgd", ...); throws Error listing the known names.
const ElementwiseAlgorithm& elementwise_algorithm(const std::string& name);
std::vector<std::string> elementwise_algorithm_names();

// `given` completed with the defaults; an unknown key is an Error naming it and the known keys.
Hyper complete_hyper(const ElementwiseAlgorithm& algo, const Hyper& given);

struct ElementwiseSlot {
  ElementwiseState* state;
  TensorRef param;  // updated in place
  TensorRef grad;
};

// One step of `algo` over many parameters: everything is validated first (shapes, dtypes,
// hyperparameters, state), then each parameter is updated in one pass. A rejected call
// changes nothing.
void elementwise_step(const ElementwiseAlgorithm& algo, std::vector<ElementwiseSlot>& slots, const Hyper& h);

}  // namespace adapprox
