// Elementwise optimizers (Adam, AdamW, NAdam, RMSprop, Adagrad, SGD, SignSGD): registry entries
// whose state is buffers shaped and laid out like the parameter (plus 0-d scalars such as
// NAdam's mu_product), and whose step is one fused pass over parameter, gradient and state,
// split across the thread pool. Any dense layout is stepped in place in memory order (the
// driver has checked that gradient and state share the parameter's strides); complex
// parameters arrive as their real views.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "adapprox/quantized_state.hpp"
#include "adapprox/registry.hpp"

namespace adapprox {

// What a kernel sees of one parameter's step besides its buffers.
struct ElementwiseState {
  int64_t step = 0;                      // t, counting this step (0 for optimizers without a counter)
  bool fresh = false;                    // first step: the buffers were just created
  std::map<std::string, double> scalars; // 0-d state (NAdam's mu_product), after begin_step
};

class ElementwiseAlgorithm : public Algorithm {
 public:
  // Buffers with the parameter's shape and layout, in the order run() receives them.
  virtual std::vector<std::string> buffer_names(const Hyper& h) const = 0;
  // 0-d float32 state other than "step", with initial values.
  virtual std::vector<std::pair<std::string, double>> scalar_names() const { return {}; }
  virtual bool counts_steps() const { return true; }
  // The hyperparameter whose value a buffer starts from ("" for zero).
  virtual std::string fill_from(const std::string& buffer) const { return ""; }
  // What a buffer holds: second moments (and Adagrad's sum) are nonnegative, the rest signed.
  virtual MomentKind moment_kind(const std::string& buffer) const;
  // Per-parameter scalar bookkeeping before the elementwise pass. `dtypes` gives each scalar's
  // storage dtype (its value is rounded to it, as torch's scalar tensors are).
  virtual void begin_step(ElementwiseState& st, const Hyper& h, const std::map<std::string, DType>& dtypes) const {}
  // The fused update of elements [0, n): p, g and each buffer offset to the chunk's start.
  virtual void run(const Hyper& h, const ElementwiseState& st, int64_t n, float* p, const float* g,
                   float* const* bufs) const = 0;
  virtual void run(const Hyper& h, const ElementwiseState& st, int64_t n, double* p, const double* g,
                   double* const* bufs) const = 0;

  std::vector<BufferSpec> schema(const Hyper& h, const std::vector<int64_t>& shape, DType dtype) const final;
  bool supports_complex() const final { return true; }
  void check_state(const Hyper& h, const Slot& s, const std::string& who) const final;
  void step(const Hyper& h, std::vector<Slot>& slots, Allocator& alloc) const final;
  void step_cuda(const Hyper& h, std::vector<Slot>& slots, Allocator& alloc, void* stream) const final;

 protected:
  // The CUDA pass over every slot (cuda_steps.hpp); the default refuses.
  virtual void run_cuda(const Hyper& h, std::vector<Slot>& slots, const std::vector<ElementwiseState>& states,
                        size_t first_buffer, void* stream) const;

 private:
  // Reads each slot's scalars and runs begin_step; `pass` steps the buffers; the scalars are
  // written back after it.
  template <class Pass>
  void with_states(const Hyper& h, std::vector<Slot>& slots, const Pass& pass) const;
};

// Hyperparameter entries for the registry tables.
HyperParam hp_real(const std::string& name, double def, const std::string& doc);   // >= 0
HyperParam hp_unit(const std::string& name, double def, const std::string& doc);   // [0, 1)
HyperParam hp_flag(const std::string& name, bool def, const std::string& doc);     // 0 or 1

}  // namespace adapprox
