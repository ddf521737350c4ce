#include "row_kernels.hpp"

#include <cmath>

#include "adapprox/tuning.hpp"
#include "isa_dispatch.hpp"
#include "math/adapprox.hpp"

// Each kernel is written once (namespace impl) and run through with_best_isa, which compiles it
// for every instruction set with contraction off: every level rounds alike (adapprox/isa.hpp).
namespace adapprox::kernels {
namespace impl {

constexpr int kLanes = tuning::kFloatReductionLanes;

// The per-element math (den, Mhat, the update) is math/adapprox.hpp, shared with the CUDA kernels;
// its selects instead of branches keep these loops vectorisable.
using math::ema_den;
using math::ema_value;
using math::mhat_of;
// Reductions keep kLanes independent partial sums: they vectorise without -ffast-math.

inline double square_row(const float* __restrict g, int64_t n, float* __restrict sq) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float s = g[j + l] * g[j + l];
      sq[j + l] = s;
      acc[l] += s * s;
    }
  double total = 0;
  for (; j < n; ++j) {
    sq[j] = g[j] * g[j];
    total += double(sq[j]) * sq[j];
  }
  for (float a : acc) total += a;
  return total;
}

inline void row_dots(const float* __restrict s, const float* __restrict xt, int64_t n, int cols, float* __restrict y) {
  for (int c = 0; c < cols; ++c) {
    const float* x = xt + c * n;
    float acc[kLanes] = {};
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += s[j + l] * x[j + l];
    float total = 0;
    for (; j < n; ++j) total += s[j] * x[j];
    for (float a : acc) total += a;
    y[c] = total;
  }
}

inline void row_axpys(const float* __restrict s, const float* __restrict y, int cols, int64_t n, float* __restrict zt) {
  for (int c = 0; c < cols; ++c) {
    float* z = zt + c * n;
    const float a = y[c];
    for (int64_t j = 0; j < n; ++j) z[j] += a * s[j];
  }
}

inline void row_axpys_sq(const float* __restrict g, const float* __restrict y, int cols, int64_t n,
                                  float* __restrict zt) {
  for (int c = 0; c < cols; ++c) {
    float* z = zt + c * n;
    const float a = y[c];
    for (int64_t j = 0; j < n; ++j) z[j] += a * (g[j] * g[j]);
  }
}

inline double den_finish(float* __restrict den, const float* __restrict sq, int64_t n, float b2);

inline double den_row(const float* __restrict q, const float* __restrict ut, int k,
                               const float* __restrict sq, int64_t n, float b2, float* __restrict den) {
  for (int64_t j = 0; j < n; ++j) den[j] = 0.0f;
  for (int r = 0; r < k; ++r) {
    const float qr = q[r];
    const float* u = ut + r * n;
    for (int64_t j = 0; j < n; ++j) den[j] += qr * u[j];
  }
  return den_finish(den, sq, n, b2);
}

// ||V||_F^2 in float64 lanes: the rank rule subtracts the captured energy from it, and at tol
// 1e-2 the difference is 1e-4 of the sum, so float32 lane sums would move the error estimate by
// tenths of a percent.
inline double den_finish(float* __restrict den, const float* __restrict sq, int64_t n, float b2) {
  double acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float r = den[j + l], v = ema_value(r, sq[j + l], b2);
      acc[l] += double(v) * v;
      den[j + l] = ema_den(r, sq[j + l], b2);
    }
  double total = 0;
  for (; j < n; ++j) {
    const float r = den[j], v = ema_value(r, sq[j], b2);
    total += double(v) * v;
    den[j] = ema_den(r, sq[j], b2);
  }
  for (double x : acc) total += x;
  return total;
}

inline double mhat_sq_row(const float* __restrict g, const float* __restrict den, int64_t n, float eps) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float x = mhat_of(g[j + l], den[j + l], eps);
      acc[l] += x * x;
    }
  double total = 0;
  for (; j < n; ++j) {
    const float x = mhat_of(g[j], den[j], eps);
    total += double(x) * x;
  }
  for (float a : acc) total += a;
  return total;
}

inline void update_row(const UpdateRow& a, const float* __restrict g, const float* __restrict den, int64_t n, float* __restrict m,
                                float* __restrict theta, bool write_theta, double* cos) {
  const float k = a.scale * a.sign, b1 = a.b1, c1 = 1 - a.b1, eps = a.eps, lr = a.lr, wd = a.wd;
  if (!m) {
    for (int64_t j = 0; j < n; ++j) {
      const float mh = k * mhat_of(g[j], den[j], eps);
      theta[j] = theta[j] - lr * (mh + wd * theta[j]);
    }
    return;
  }
  if (write_theta) {
    for (int64_t j = 0; j < n; ++j) {
      const float mh = k * mhat_of(g[j], den[j], eps);
      const float mj = b1 * m[j] + c1 * mh;
      m[j] = mj;
      theta[j] = theta[j] - lr * (mj + wd * theta[j]);
    }
    return;
  }
  for (int64_t j = 0; j < n; ++j) {  // cosine guidance: moments and sums only, theta later
    const float mh = k * mhat_of(g[j], den[j], eps);
    const float mj = b1 * m[j] + c1 * mh;
    m[j] = mj;
    cos[0] += double(mj) * mh;
    cos[1] += double(mj) * mj;
    cos[2] += double(mh) * mh;
  }
}

}  // namespace impl

double square_row(const float* __restrict g, int64_t n, float* __restrict sq) {
  double r = 0;
  with_best_isa([&] { r = impl::square_row(g, n, sq); });
  return r;
}
void row_dots(const float* __restrict s, const float* __restrict xt, int64_t n, int cols, float* __restrict y) {
  with_best_isa([&] { impl::row_dots(s, xt, n, cols, y); });
}
void row_axpys(const float* __restrict s, const float* __restrict y, int cols, int64_t n, float* __restrict zt) {
  with_best_isa([&] { impl::row_axpys(s, y, cols, n, zt); });
}
void row_axpys_sq(const float* __restrict g, const float* __restrict y, int cols, int64_t n, float* __restrict zt) {
  with_best_isa([&] { impl::row_axpys_sq(g, y, cols, n, zt); });
}
double den_row(const float* __restrict q, const float* __restrict ut, int k, const float* __restrict sq, int64_t n,
               float b2, float* __restrict den) {
  double r = 0;
  with_best_isa([&] { r = impl::den_row(q, ut, k, sq, n, b2, den); });
  return r;
}
double den_finish(float* __restrict den, const float* __restrict sq, int64_t n, float b2) {
  double r = 0;
  with_best_isa([&] { r = impl::den_finish(den, sq, n, b2); });
  return r;
}
double mhat_sq_row(const float* __restrict g, const float* __restrict den, int64_t n, float eps) {
  double r = 0;
  with_best_isa([&] { r = impl::mhat_sq_row(g, den, n, eps); });
  return r;
}
void update_row(const UpdateRow& a, const float* __restrict g, const float* __restrict den, int64_t n,
                float* __restrict m, float* __restrict theta, bool write_theta, double* cos) {
  with_best_isa([&] { impl::update_row(a, g, den, n, m, theta, write_theta, cos); });
}

}  // namespace adapprox::kernels
