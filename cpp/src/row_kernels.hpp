// Internal: the hot loops of an Adapprox step, one matrix row at a time. Written as plain loops
// the compiler vectorises, each run at the instruction set adapprox/isa.hpp picks (all round alike).
#pragma once
#include <cstdint>

namespace adapprox::kernels {

// sq[j] = g[j]^2; returns sum_j sq[j]^2 (= sum g^4)
double square_row(const float* __restrict g, int64_t n, float* __restrict sq);
// y[c] = sum_j s[j] * xt[c * n + j], c < cols  (xt: the columns of X, each contiguous)
void row_dots(const float* __restrict s, const float* __restrict xt, int64_t n, int cols, float* __restrict y);
// zt[c * n + j] += y[c] * s[j], c < cols
void row_axpys(const float* __restrict s, const float* __restrict y, int cols, int64_t n, float* __restrict zt);
// zt[c * n + j] += y[c] * g[j]^2, c < cols (row_axpys with the squaring done on the fly)
void row_axpys_sq(const float* __restrict g, const float* __restrict y, int cols, int64_t n, float* __restrict zt);
// r[j] = sum_k q[k] ut[k * n + j] (k may be 0); den[j] = b2 * |r[j]| + (1 - b2) * sq[j].
// Returns sum_j (b2 r[j] + (1 - b2) sq[j])^2: this row's share of ||V||_F^2.
double den_row(const float* __restrict q, const float* __restrict ut, int k, const float* __restrict sq, int64_t n,
               float b2, float* __restrict den);
// den holds the reconstruction r on entry: den[j] = b2 * |r[j]| + (1 - b2) * sq[j]; returns
// sum_j (b2 r[j] + (1 - b2) sq[j])^2.
double den_finish(float* __restrict den, const float* __restrict sq, int64_t n, float b2);
// sum_j (g[j] / (sqrt(den[j]) + eps))^2, a zero denominator counting as 0
double mhat_sq_row(const float* __restrict g, const float* __restrict den, int64_t n, float eps);

struct UpdateRow {
  float b1, eps, lr, wd, scale, sign;
};
// mhat = scale * sign * g / (sqrt(den) + eps); m = b1 m + (1 - b1) mhat (if m); step = m or mhat;
// theta -= lr * (step + wd * theta) if write_theta, else (cosine guidance, m required) adds
// {sum m*mhat, sum m*m, sum mhat*mhat} to cos and leaves theta alone.
void update_row(const UpdateRow& a, const float* __restrict g, const float* __restrict den, int64_t n, float* __restrict m, float* __restrict theta,
                bool write_theta, double* cos);

}  // namespace adapprox::kernels
