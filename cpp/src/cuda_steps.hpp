// Internal: the CUDA steps of the optimizers that run on the GPU (cpp/cuda/<name>.cu), called by
// their registry entries for slots on a CUDA device. Every buffer of a call is on one device;
// scalar state ("step", "mu_product") stays on the host, as the ElementwiseState holds it.
// Kernels are queued on `stream` (cudaStream_t) and not waited for. Without the CUDA backend
// each throws Error(device) (cuda_stub.cpp).
#pragma once
#include <vector>

#include "adapprox/elementwise.hpp"
#include "adapprox/registry.hpp"

namespace adapprox::cuda {

using States = std::vector<ElementwiseState>;

// The elementwise family: one launch covers many parameters. `first_buffer` is the index of the
// first like-parameter buffer in each slot's state.
void adam_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first_buffer, bool always_decoupled,
               void* stream);
void nadam_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first_buffer, void* stream);
void rmsprop_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first_buffer, void* stream);
void adagrad_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first_buffer, void* stream);
void sgd_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first_buffer, void* stream);
void signsgd_step(const Hyper& h, std::vector<Slot>& slots, const States& st, size_t first_buffer, void* stream);

// Adafactor, one parameter (C-contiguous; the caller checked): everything the step needs from
// the hyperparameters and the step count, resolved on the host (../src/adafactor.cpp).
struct AdafactorArgs {
  bool factored, paper, use_m, scale_parameter, maximize;
  double w;    // t^beta2_decay
  double add;  // eps1 inside the averages (paper mode), else 0
  double eps1, rho, lr, weight_decay, eps2, d, beta1;
};
void adafactor_step(const AdafactorArgs& a, Slot& s, void* stream);

}  // namespace adapprox::cuda
