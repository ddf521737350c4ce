// Adapprox on CUDA: the device primitives of ../src/cuda_adapprox.hpp (the host driver is
// ../src/adapprox_cuda.cpp; the per-element math, shared with the CPU, ../src/math/adapprox.hpp).
// Products with V = b2 Q U^T + (1 - b2) G∘G never form V or G∘G: each kernel squares G as it
// reads it. Sums run in double over fixed trees, so a run repeats bit for bit.
#include <algorithm>
#include <vector>

#include "../src/cuda_adapprox.hpp"
#include "../src/math/random.hpp"
#include "runtime.cuh"

namespace adapprox::cuda::adapprox_ops {
namespace {

constexpr int kTpb = kThreadsPerBlock;
constexpr int kCols = 8;  // sketch columns per pass of a product kernel (registers per thread)

cudaStream_t st(void* s) { return as_stream(s); }

__global__ void sketch_kernel(float* omega, int64_t n, int w, uint64_t key) {
  const int64_t i = int64_t(blockIdx.x) * kTpb + threadIdx.x;
  if (i < n * w) omega[i] = static_cast<float>(math::gaussian(key, static_cast<uint64_t>(i)));
}

// out[c1 x c2] partial sums over one slab of rows of A^T B, in double.
__global__ void gram_partial(const float* a, int c1, const float* b, int c2, int64_t rows, int64_t per_slab,
                             double* part) {
  const int64_t r0 = int64_t(blockIdx.x) * per_slab, r1 = min(rows, r0 + per_slab);
  double* out = part + int64_t(blockIdx.x) * c1 * c2;
  for (int64_t o = threadIdx.x; o < int64_t(c1) * c2; o += kTpb) {
    const int i = static_cast<int>(o / c2), j = static_cast<int>(o % c2);
    double acc = 0;
    for (int64_t r = r0; r < r1; ++r) acc += double(a[r * c1 + i]) * double(b[r * c2 + j]);
    out[o] = acc;
  }
}

__global__ void sum_slabs(const double* part, int slabs, int64_t count, double* out) {
  const int64_t o = int64_t(blockIdx.x) * kTpb + threadIdx.x;
  if (o >= count) return;
  double s = 0;
  for (int i = 0; i < slabs; ++i) s += part[int64_t(i) * count + o];
  out[o] = s;
}

// small (c1 x c2, float) = scale * A^T B over all rows: the k x c products U^T X and Q^T Y.
__global__ void small_tn(const float* a, int c1, const float* b, int c2, int64_t rows, float scale, float* small) {
  const int o = blockIdx.x;
  const int i = o / c2, j = o % c2;
  double acc = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kTpb) acc += double(a[r * c1 + i]) * double(b[r * c2 + j]);
  acc = block_sum(acc);
  if (threadIdx.x == 0) small[o] = scale * static_cast<float>(acc);
}

// y (m x c) = (1 - b2) (G∘G) x + q ux, ux = b2 U^T x (k x c): one block per row, kCols columns
// of x per pass over the row.
__global__ void apply_rows(const float* g, int64_t n, const float* x, int c, const float* q, int k, const float* ux,
                           float b2, float* y) {
  const int64_t r = blockIdx.x;
  const float* gr = g + r * n;
  for (int c0 = 0; c0 < c; c0 += kCols) {
    const int cw = min(kCols, c - c0);
    float acc[kCols];
    for (int t = 0; t < kCols; ++t) acc[t] = 0;
    for (int64_t j = threadIdx.x; j < n; j += kTpb) {
      const float gj = gr[j];
      const float sq = gj * gj;
      for (int t = 0; t < cw; ++t) acc[t] += sq * x[j * c + c0 + t];
    }
    for (int t = 0; t < cw; ++t) {
      const double s = block_sum(static_cast<double>(acc[t]));
      if (threadIdx.x == 0) {
        float v = (1 - b2) * static_cast<float>(s);
        for (int l = 0; l < k; ++l) v += q[r * k + l] * ux[l * c + c0 + t];
        y[r * c + c0 + t] = v;
      }
    }
  }
}

// Partial z over one slab of rows: part[s] (n x c) = (1 - b2) sum_{i in slab} (G∘G)_i^T y_i;
// thread j owns column j of G, kCols columns of y at a time.
__global__ void apply_t_slab(const float* g, int64_t m, int64_t n, const float* y, int c, float b2, int slabs,
                             float* part) {
  const int64_t j = int64_t(blockIdx.x) * kTpb + threadIdx.x;
  const int s = blockIdx.y;
  if (j >= n) return;
  const int64_t i0 = m * s / slabs, i1 = m * (s + 1) / slabs;
  float* out = part + (int64_t(s) * n + j) * c;
  for (int c0 = 0; c0 < c; c0 += kCols) {
    const int cw = min(kCols, c - c0);
    float acc[kCols];
    for (int t = 0; t < kCols; ++t) acc[t] = 0;
    for (int64_t i = i0; i < i1; ++i) {
      const float gij = g[i * n + j];
      const float sq = gij * gij;
      for (int t = 0; t < cw; ++t) acc[t] += sq * ((1 - b2) * y[i * c + c0 + t]);
    }
    for (int t = 0; t < cw; ++t) out[c0 + t] = acc[t];
  }
}

// z (n x c) = the slabs in order + u qy, qy = b2 Q^T y (k x c).
__global__ void apply_t_finish(const float* part, int slabs, int64_t n, int c, const float* u, int k, const float* qy,
                               float* z) {
  const int64_t o = int64_t(blockIdx.x) * kTpb + threadIdx.x;
  if (o >= n * c) return;
  const int64_t j = o / c;
  const int col = static_cast<int>(o % c);
  float s = 0;
  for (int i = 0; i < slabs; ++i) s += part[int64_t(i) * n * c + o];
  for (int l = 0; l < k; ++l) s += u[j * k + l] * qy[l * c + col];
  z[o] = s;
}

// The reconstruction r = (Q U^T)_ij.
__device__ __forceinline__ float recon(const float* q, const float* u, int k, int64_t i, int64_t j) {
  float r = 0;
  for (int l = 0; l < k; ++l) r += q[i * k + l] * u[j * k + l];
  return r;
}

// One block per row: sum V^2 and sum Mhat^2 (Mhat with den = b2 |r| + (1 - b2) g^2).
__global__ void stats_rows(Ema e, float eps, double* rows_v, double* rows_mhat) {
  const int64_t i = blockIdx.x;
  double vs = 0, ms = 0;
  for (int64_t j = threadIdx.x; j < e.n; j += kTpb) {
    const float gij = e.g[i * e.n + j];
    const float sq = gij * gij;
    const float r = recon(e.q, e.u, e.k, i, j);
    const float v = math::ema_value(r, sq, e.b2);
    const float x = math::mhat_of(gij, math::ema_den(r, sq, e.b2), eps);
    vs += double(v) * v;
    ms += double(x) * x;
  }
  vs = block_sum(vs);
  ms = block_sum(ms);
  if (threadIdx.x == 0) {
    rows_v[i] = vs;
    rows_mhat[i] = ms;
  }
}

// One block: the totals of per-row (or per-block) sums, in order.
__global__ void total2(const double* a, const double* b, int64_t count, double* out) {
  double x = 0, y = 0;
  for (int64_t i = threadIdx.x; i < count; i += kTpb) {
    x += a[i];
    y += b ? b[i] : 0.0;
  }
  x = block_sum(x);
  y = block_sum(y);
  if (threadIdx.x == 0) {
    out[0] = x;
    out[1] = y;
  }
}

__global__ void times_kernel(const float* y, int64_t rows, int c, const float* r, int c2, float* out) {
  const int64_t o = int64_t(blockIdx.x) * kTpb + threadIdx.x;
  if (o >= rows * c2) return;
  const int64_t i = o / c2;
  const int b = static_cast<int>(o % c2);
  float s = 0;
  for (int a = 0; a < c; ++a) s += y[i * c + a] * r[a * c2 + b];
  out[o] = s;
}

// Per-block cosine sums (guided) over elements [blockIdx.x * per, ...).
template <bool Dense>
__global__ void update_kernel(Ema e, const float* v, math::AdapproxUpdate a, float* m, float* theta,
                              bool write_theta, int64_t count, double* cos_part) {
  double dot = 0, mm = 0, hh = 0;
  for (int64_t idx = int64_t(blockIdx.x) * kTpb + threadIdx.x; idx < count; idx += int64_t(gridDim.x) * kTpb) {
    const float gij = e.g[idx];
    float den;
    if (Dense) {
      den = v[idx];
    } else {
      const int64_t i = idx / e.n, j = idx - i * e.n;
      den = math::ema_den(recon(e.q, e.u, e.k, i, j), gij * gij, e.b2);
    }
    if (write_theta) {
      math::adapprox_element(a, gij, den, m ? m + idx : nullptr, theta[idx]);
    } else {  // cosine guidance: moments and sums only, theta later
      const float mh = (a.scale * a.sign) * math::mhat_of(gij, den, a.eps);
      const float mj = a.b1 * m[idx] + (1 - a.b1) * mh;
      m[idx] = mj;
      dot += double(mj) * mh;
      mm += double(mj) * mj;
      hh += double(mh) * mh;
    }
  }
  if (write_theta) return;
  dot = block_sum(dot);
  mm = block_sum(mm);
  hh = block_sum(hh);
  if (threadIdx.x == 0) {
    cos_part[3 * blockIdx.x] = dot;
    cos_part[3 * blockIdx.x + 1] = mm;
    cos_part[3 * blockIdx.x + 2] = hh;
  }
}

__global__ void guided_kernel(float lr, float wd, float s, const float* m, float* theta, int64_t count) {
  for (int64_t i = int64_t(blockIdx.x) * kTpb + threadIdx.x; i < count; i += int64_t(gridDim.x) * kTpb)
    theta[i] = theta[i] - lr * (s * m[i] + wd * theta[i]);
}

__global__ void dense_v_kernel(const float* g, float* v, int64_t count, float b2, float eps, double* part) {
  double s = 0;
  for (int64_t i = int64_t(blockIdx.x) * kTpb + threadIdx.x; i < count; i += int64_t(gridDim.x) * kTpb) {
    const float vi = b2 * v[i] + (1 - b2) * (g[i] * g[i]);
    v[i] = vi;
    const float x = math::mhat_of(g[i], vi, eps);
    s += double(x) * x;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

constexpr unsigned kGridCap = 4096;
unsigned grid_for(int64_t count) { return std::min(blocks_for(count), kGridCap); }

// Sums of per-block cosine partials, in order (waits).
void read_cos(const double* part, unsigned blocks, double* cos, void* stream) {
  std::vector<double> host(3 * blocks);
  check(cudaMemcpyAsync(host.data(), part, host.size() * sizeof(double), cudaMemcpyDeviceToHost, st(stream)),
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(st(stream)), "cudaStreamSynchronize");
  for (unsigned b = 0; b < blocks; ++b)
    for (int t = 0; t < 3; ++t) cos[t] += host[3 * b + t];
}

}  // namespace

float* alloc(int64_t count, void* stream) {
  void* p = nullptr;
  check(cudaMallocAsync(&p, std::max<int64_t>(count, 1) * sizeof(float), st(stream)), "cudaMallocAsync");
  return static_cast<float*>(p);
}
void release(float* p, void* stream) {
  if (p) cudaFreeAsync(p, st(stream));
}
void copy(float* dst, const float* src, int64_t count, void* stream) {
  if (count > 0)
    check(cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToDevice, st(stream)), "cudaMemcpyAsync");
}
void upload(float* dst, const float* host, int64_t count, void* stream) {
  if (count > 0)
    check(cudaMemcpyAsync(dst, host, count * sizeof(float), cudaMemcpyHostToDevice, st(stream)), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(st(stream)), "cudaStreamSynchronize");  // `host` may go away
}
void download(float* host, const float* src, int64_t count, void* stream) {
  if (count > 0)
    check(cudaMemcpyAsync(host, src, count * sizeof(float), cudaMemcpyDeviceToHost, st(stream)), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(st(stream)), "cudaStreamSynchronize");
}

void sync(void* stream) { check(cudaStreamSynchronize(st(stream)), "cudaStreamSynchronize"); }

void sketch(float* omega, int64_t n, int w, uint64_t key, void* stream) {
  sketch_kernel<<<blocks_for(n * w), kTpb, 0, st(stream)>>>(omega, n, w, key);
  check(cudaGetLastError(), "sketch");
}

void apply(const Ema& e, const float* x, int c, float* y, void* stream) {
  float* ux = nullptr;
  if (e.k > 0) {
    ux = alloc(int64_t(e.k) * c, stream);
    small_tn<<<e.k * c, kTpb, 0, st(stream)>>>(e.u, e.k, x, c, e.n, e.b2, ux);
  }
  apply_rows<<<static_cast<unsigned>(e.m), kTpb, 0, st(stream)>>>(e.g, e.n, x, c, e.q, e.k, ux, e.b2, y);
  check(cudaGetLastError(), "apply");
  release(ux, stream);
}

void apply_t(const Ema& e, const float* y, int c, float* z, void* stream) {
  // Row slabs give the GPU enough threads for tall G; partial sums stay under 2^24 floats.
  const int64_t by_rows = std::clamp<int64_t>(e.m / 64, 1, 64);
  const int slabs = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(by_rows, (int64_t(1) << 24) / (e.n * c))));
  float* part = alloc(int64_t(slabs) * e.n * c, stream);
  apply_t_slab<<<dim3(blocks_for(e.n), slabs), kTpb, 0, st(stream)>>>(e.g, e.m, e.n, y, c, e.b2, slabs, part);
  float* qy = nullptr;
  if (e.k > 0) {
    qy = alloc(int64_t(e.k) * c, stream);
    small_tn<<<e.k * c, kTpb, 0, st(stream)>>>(e.q, e.k, y, c, e.m, e.b2, qy);
  }
  apply_t_finish<<<blocks_for(e.n * c), kTpb, 0, st(stream)>>>(part, slabs, e.n, c, e.u, e.k, qy, z);
  check(cudaGetLastError(), "apply_t");
  release(qy, stream);
  release(part, stream);
}

void stats(const Ema& e, float eps, double* v_sq, double* mhat_sq, void* stream) {
  Scratch scratch(2 * Scratch::need<double>(e.m) + Scratch::need<double>(2), st(stream));
  double* rv = scratch.take<double>(e.m);
  double* rm = scratch.take<double>(e.m);
  double* tot = scratch.take<double>(2);
  stats_rows<<<static_cast<unsigned>(e.m), kTpb, 0, st(stream)>>>(e, eps, rv, rm);
  total2<<<1, kTpb, 0, st(stream)>>>(rv, rm, e.m, tot);
  check(cudaGetLastError(), "stats");
  double host[2];
  check(cudaMemcpyAsync(host, tot, sizeof(host), cudaMemcpyDeviceToHost, st(stream)), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(st(stream)), "cudaStreamSynchronize");
  *v_sq = host[0];
  *mhat_sq = host[1];
}

void gram(const float* a, int c1, const float* b, int c2, int64_t rows, double* host_out, void* stream) {
  const int slabs = static_cast<int>(std::clamp<int64_t>(rows / 256, 1, 256));
  const int64_t per = (rows + slabs - 1) / slabs;
  const int64_t count = int64_t(c1) * c2;
  Scratch scratch(Scratch::need<double>(slabs * count) + Scratch::need<double>(count), st(stream));
  double* part = scratch.take<double>(slabs * count);
  double* out = scratch.take<double>(count);
  gram_partial<<<slabs, kTpb, 0, st(stream)>>>(a, c1, b, c2, rows, per, part);
  sum_slabs<<<blocks_for(count), kTpb, 0, st(stream)>>>(part, slabs, count, out);
  check(cudaGetLastError(), "gram");
  check(cudaMemcpyAsync(host_out, out, count * sizeof(double), cudaMemcpyDeviceToHost, st(stream)), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(st(stream)), "cudaStreamSynchronize");
}

void times(const float* y, int64_t rows, int c, const float* r, int c2, float* out, void* stream) {
  times_kernel<<<blocks_for(rows * c2), kTpb, 0, st(stream)>>>(y, rows, c, r, c2, out);
  check(cudaGetLastError(), "times");
}

void update(const Ema& e, const math::AdapproxUpdate& a, float* m, float* theta, bool write_theta, double* cos,
            void* stream) {
  const int64_t count = e.m * e.n;
  const unsigned blocks = grid_for(count);
  Scratch scratch(Scratch::need<double>(3 * blocks), st(stream));
  double* part = scratch.take<double>(3 * blocks);
  update_kernel<false><<<blocks, kTpb, 0, st(stream)>>>(e, nullptr, a, m, theta, write_theta, count, part);
  check(cudaGetLastError(), "update");
  if (!write_theta) read_cos(part, blocks, cos, stream);
}

void guided_theta(float lr, float wd, float s, const float* m, float* theta, int64_t count, void* stream) {
  guided_kernel<<<grid_for(count), kTpb, 0, st(stream)>>>(lr, wd, s, m, theta, count);
  check(cudaGetLastError(), "guided update");
}

double dense_second_moment(const float* g, float* v, int64_t count, float b2, float eps, void* stream) {
  const unsigned blocks = grid_for(count);
  Scratch scratch(Scratch::need<double>(blocks) + Scratch::need<double>(2), st(stream));
  double* part = scratch.take<double>(blocks);
  double* tot = scratch.take<double>(2);
  dense_v_kernel<<<blocks, kTpb, 0, st(stream)>>>(g, v, count, b2, eps, part);
  total2<<<1, kTpb, 0, st(stream)>>>(part, nullptr, blocks, tot);
  check(cudaGetLastError(), "dense second moment");
  double host[2];
  check(cudaMemcpyAsync(host, tot, sizeof(host), cudaMemcpyDeviceToHost, st(stream)), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(st(stream)), "cudaStreamSynchronize");
  return host[0];
}

void dense_update(const float* g, const float* v, int64_t count, const math::AdapproxUpdate& a, float* m,
                  float* theta, bool write_theta, double* cos, void* stream) {
  const unsigned blocks = grid_for(count);
  Scratch scratch(Scratch::need<double>(3 * blocks), st(stream));
  double* part = scratch.take<double>(3 * blocks);
  const Ema e{nullptr, nullptr, 0, g, 1, count, 0.0f};
  update_kernel<true><<<blocks, kTpb, 0, st(stream)>>>(e, v, a, m, theta, write_theta, count, part);
  check(cudaGetLastError(), "dense update");
  if (!write_theta) read_cos(part, blocks, cos, stream);
}

}  // namespace adapprox::cuda::adapprox_ops
