// Internal: one kernel launch steps many parameters (the elementwise family). The host cuts
// every parameter of one dtype into chunks of kChunk elements and packs up to kTensors
// parameters and kBlocks chunks into one kernel argument (Volta and later take arguments up to
// 32 KB); each thread block steps one chunk, each thread every blockDim-th element of it. A
// dense layout is walked in memory order, as on the CPU (gradient and state share the
// parameter's strides). Per-parameter coefficients (bias corrections of its own step count)
// travel in the argument.
#pragma once
#include <cstdint>
#include <vector>

#include "adapprox/registry.hpp"
#include "runtime.cuh"

namespace adapprox::cuda {

constexpr int kMaxBuffers = 3;    // like-parameter state buffers (AMSGrad, centered RMSprop + momentum)
constexpr int kTensors = 48;      // parameters per launch
constexpr int kBlocks = 768;      // chunks per launch
constexpr int64_t kChunk = 1 << 16;
constexpr int kThreads = 256;

template <class P, class Coef>
struct Batch {
  using T = typename MathOf<P>::type;
  P* p[kTensors];
  const P* g[kTensors];
  T* buf[kTensors][kMaxBuffers];
  int64_t numel[kTensors];
  Coef coef[kTensors];
  int16_t block_tensor[kBlocks];
  int32_t block_chunk[kBlocks];
  int tensors = 0, blocks = 0;
};

// op(coef, p, g, bufs, i): p (the widened parameter) updated in place; bufs[k][i] the state.
template <class P, class Coef, class Op>
__global__ void __launch_bounds__(kThreads) multi_tensor_kernel(const __grid_constant__ Batch<P, Coef> b, Op op) {
  using T = typename MathOf<P>::type;
  const int t = b.block_tensor[blockIdx.x];
  const int64_t begin = int64_t(b.block_chunk[blockIdx.x]) * kChunk;
  const int64_t end = begin + kChunk < b.numel[t] ? begin + kChunk : b.numel[t];
  P* p = b.p[t];
  const P* g = b.g[t];
  T* const* bufs = b.buf[t];
  const Coef& c = b.coef[t];
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    T pi = widen(p[i]);
    op(c, pi, T(widen(g[i])), bufs, i);
    p[i] = narrow<P>(pi);
  }
}

// Steps every slot whose parameter has storage type P: coef(i) gives slot i's coefficients.
template <class P, class Coef, class MakeCoef, class Op>
void launch_multi_tensor(std::vector<Slot>& slots, const std::vector<size_t>& which, size_t first_buffer,
                         const MakeCoef& coef, const Op& op, cudaStream_t stream) {
  using T = typename MathOf<P>::type;
  static_assert(sizeof(Batch<P, Coef>) <= 32764, "kernel arguments are limited to 32764 bytes");
  Batch<P, Coef> b;
  auto flush = [&] {
    if (b.blocks > 0) {
      multi_tensor_kernel<P, Coef, Op><<<b.blocks, kThreads, 0, stream>>>(b, op);
      check(cudaGetLastError(), "multi-tensor kernel launch");
    }
    b.tensors = 0;
    b.blocks = 0;
  };
  for (size_t i : which) {
    Slot& s = slots[i];
    const int64_t n = s.param.numel();
    if (n == 0) continue;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < chunks; ++c) {
      if (b.blocks == kBlocks || (c == 0 && b.tensors == kTensors)) flush();
      if (c == 0 || b.tensors == 0) {  // this parameter's entry (again, after a flush)
        const int t = b.tensors++;
        b.p[t] = static_cast<P*>(s.param.data);
        b.g[t] = static_cast<const P*>(s.grad.data);
        for (int k = 0; k < kMaxBuffers; ++k)
          b.buf[t][k] = first_buffer + k < s.state.size() ? static_cast<T*>(s.state[first_buffer + k].data) : nullptr;
        b.numel[t] = n;
        b.coef[t] = coef.template operator()<T>(i);
      }
      b.block_tensor[b.blocks] = static_cast<int16_t>(b.tensors - 1);
      b.block_chunk[b.blocks] = static_cast<int32_t>(c);
      ++b.blocks;
    }
  }
  flush();
}

// Runs launch_multi_tensor once per parameter dtype present. Coef<T> is the coefficient type.
template <template <class> class Coef, class MakeCoef, class Op>
void run_multi_tensor(std::vector<Slot>& slots, size_t first_buffer, const MakeCoef& coef, const Op& op,
                      void* stream) {
  if (slots.empty()) return;
  DeviceGuard on(slots[0].param.device.index);
  std::vector<size_t> by[5];  // one per DType (uint8 is never a parameter)
  for (size_t i = 0; i < slots.size(); ++i) by[static_cast<int>(slots[i].param.dtype)].push_back(i);
  const cudaStream_t st = as_stream(stream);
  if (!by[int(DType::f32)].empty())
    launch_multi_tensor<float, Coef<float>>(slots, by[int(DType::f32)], first_buffer, coef, op, st);
  if (!by[int(DType::f64)].empty())
    launch_multi_tensor<double, Coef<double>>(slots, by[int(DType::f64)], first_buffer, coef, op, st);
  if (!by[int(DType::bf16)].empty())
    launch_multi_tensor<__nv_bfloat16, Coef<float>>(slots, by[int(DType::bf16)], first_buffer, coef, op, st);
  if (!by[int(DType::f16)].empty())
    launch_multi_tensor<__half, Coef<float>>(slots, by[int(DType::f16)], first_buffer, coef, op, st);
}

}  // namespace adapprox::cuda
