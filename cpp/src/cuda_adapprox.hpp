// Internal: the device primitives of Adapprox on CUDA (cpp/cuda/adapprox.cu), driven from the
// host by adapprox_cuda.cpp, which runs AS-RSI's small dense algebra (w x w Gram matrices,
// Cholesky, the eigenproblem of B B^T) on the host. Matrices are row-major float32 on the
// device; everything is queued on `stream` (cudaStream_t) unless it says it waits.
#pragma once
#include <cstdint>

#include "math/adapprox.hpp"

namespace adapprox::cuda::adapprox_ops {

// V = b2 Q U^T + (1 - b2) G∘G as an operator (q: m x k, u: n x k, g: m x n; k may be 0).
struct Ema {
  const float* q;
  const float* u;
  int k;
  const float* g;
  int64_t m, n;
  float b2;
};

float* alloc(int64_t count, void* stream);  // stream-ordered device memory
void release(float* p, void* stream);
void copy(float* dst, const float* src, int64_t count, void* stream);
void upload(float* dst, const float* host, int64_t count, void* stream);
void download(float* host, const float* src, int64_t count, void* stream);  // waits
void sync(void* stream);                                                   // waits for the stream

void sketch(float* omega, int64_t n, int w, uint64_t key, void* stream);  // n x w Gaussian, as the CPU's
void apply(const Ema& e, const float* x, int c, float* y, void* stream);    // y (m x c) = V x (x: n x c)
void apply_t(const Ema& e, const float* y, int c, float* z, void* stream);  // z (n x c) = V^T y
// sum V^2 and sum Mhat^2 (before clipping) over the matrix; waits.
void stats(const Ema& e, float eps, double* v_sq, double* mhat_sq, void* stream);
// host_out (c1 x c2, float64) = A^T B for A: rows x c1, B: rows x c2; waits.
void gram(const float* a, int c1, const float* b, int c2, int64_t rows, double* host_out, void* stream);
// out (rows x c2) = y (rows x c) r (c x c2, on the device).
void times(const float* y, int64_t rows, int c, const float* r, int c2, float* out, void* stream);
// The update pass with this step's denominator (old factors): the first moment (if m) and, with
// write_theta, theta; else (cosine guidance) adds {sum M Mhat, sum M^2, sum Mhat^2} to cos (waits).
void update(const Ema& e, const math::AdapproxUpdate& a, float* m, float* theta, bool write_theta, double* cos,
            void* stream);
// theta -= lr (s M + wd theta)
void guided_theta(float lr, float wd, float s, const float* m, float* theta, int64_t count, void* stream);
// Dense (0-D/1-D): v <- b2 v + (1 - b2) g^2 and sum Mhat^2 (waits); then the update with den = v.
double dense_second_moment(const float* g, float* v, int64_t count, float b2, float eps, void* stream);
void dense_update(const float* g, const float* v, int64_t count, const math::AdapproxUpdate& a, float* m, float* theta,
                  bool write_theta, double* cos, void* stream);

}  // namespace adapprox::cuda::adapprox_ops
