#include "tile_products.hpp"

#include <vector>

#include "isa_dispatch.hpp"

namespace adapprox::kernels {
namespace impl {

// W numbers as one value, a register of the instruction set: for float W = 16 (zmm,
// x86-64-v4), 8 (ymm, v3) or 4 (xmm, baseline); for double half as many.
template <class T, int W>
struct Lanes {
  typedef T Vec __attribute__((vector_size(sizeof(T) * W)));
  static Vec load(const T* p) {
    Vec v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, const Vec& v) { __builtin_memcpy(p, &v, sizeof v); }
};

// Columns go in segments of V vectors (W V floats). The last, partial segment, cols % (W V)
// columns, is computed as whole vectors on a copy padded with zeros (the padding's lanes are
// dropped), so no column is ever summed another way.
template <class T>
struct Tail {
  int64_t start = 0;        // the first column of the partial segment
  int64_t width = 0;        // its columns (0: none)
  int vectors = 0;          // ceil(width / W)
  std::vector<T> copy;  // rows x (W vectors) of the operand, zero beyond width (empty if whole)
};

template <class T, int W>
inline Tail<T> tail_of(const T* b, int64_t rows, int64_t ld, int64_t cols, int v) {
  Tail<T> t;
  t.start = cols - cols % (int64_t(v) * W);
  t.width = cols - t.start;
  t.vectors = static_cast<int>((t.width + W - 1) / W);
  if (t.width % W == 0) return t;  // whole vectors: read in place
  const int64_t lt = int64_t(t.vectors) * W;
  t.copy.assign(rows * lt, T(0));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < t.width; ++j) t.copy[i * lt + j] = b[i * ld + t.start + j];
  return t;
}

// ---------------------------------------------------------------- c = a b
// R rows x V vectors of c, summed over the whole inner dimension in registers.
template <class T, int W, int R, int V>
inline void times_block(const T* a, int64_t lda, int64_t inner, const T* b, int64_t ldb, T* c,
                        int64_t ldc) {
  using Vec = typename Lanes<T, W>::Vec;
  Vec acc[R][V] = {};
  for (int64_t l = 0; l < inner; ++l) {
    Vec bl[V];
    for (int v = 0; v < V; ++v) bl[v] = Lanes<T, W>::load(b + l * ldb + v * W);
    for (int r = 0; r < R; ++r) {
      const T s = a[r * lda + l];
      for (int v = 0; v < V; ++v) acc[r][v] = acc[r][v] + s * bl[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) Lanes<T, W>::store(c + r * ldc + v * W, acc[r][v]);
}

template <class T, int W, int R, int V>
inline void times_vectors(int n, const T* a, int64_t lda, int64_t inner, const T* b, int64_t ldb, T* c,
                          int64_t ldc) {
  if constexpr (V >= 3) if (n == 3) return times_block<T, W, R, 3>(a, lda, inner, b, ldb, c, ldc);
  if constexpr (V >= 2) if (n == 2) return times_block<T, W, R, 2>(a, lda, inner, b, ldb, c, ldc);
  times_block<T, W, R, 1>(a, lda, inner, b, ldb, c, ldc);
}

template <class T, int W, int R, int V>
inline void times_rows(const T* a, int64_t lda, int64_t inner, const T* b, int64_t ldb, const Tail<T>& t,
                       T* c, int64_t ldc) {
  for (int64_t j = 0; j < t.start; j += V * W) times_block<T, W, R, V>(a, lda, inner, b + j, ldb, c + j, ldc);
  if (t.width == 0) return;
  if (t.copy.empty()) return times_vectors<T, W, R, V>(t.vectors, a, lda, inner, b + t.start, ldb, c + t.start, ldc);
  T part[R * V * W];
  const int64_t lt = int64_t(t.vectors) * W;
  times_vectors<T, W, R, V>(t.vectors, a, lda, inner, t.copy.data(), lt, part, lt);
  for (int r = 0; r < R; ++r)
    for (int64_t j = 0; j < t.width; ++j) c[r * ldc + t.start + j] = part[r * lt + j];
}

template <class T, int W, int R, int V>
inline void tile_times(const T* a, int64_t lda, int64_t rows, int64_t inner, const T* b, int64_t ldb,
                       int64_t cols, T* c, int64_t ldc) {
  const Tail<T> t = tail_of<T, W>(b, inner, ldb, cols, V);
  int64_t i = 0;
  for (; i + R <= rows; i += R) times_rows<T, W, R, V>(a + i * lda, lda, inner, b, ldb, t, c + i * ldc, ldc);
  for (; i < rows; ++i) times_rows<T, W, 1, V>(a + i * lda, lda, inner, b, ldb, t, c + i * ldc, ldc);
}

// ---------------------------------------------------------------- c += a^T b
// L columns of a (L rows of c) x V vectors of c, summed over all rows of a in order.
template <class T, int W, int L, int V>
inline void t_times_block(const T* a, int64_t lda, int64_t rows, const T* b, int64_t ldb, T* c,
                          int64_t ldc) {
  using Vec = typename Lanes<T, W>::Vec;
  Vec acc[L][V];
  for (int l = 0; l < L; ++l)
    for (int v = 0; v < V; ++v) acc[l][v] = Lanes<T, W>::load(c + l * ldc + v * W);
  for (int64_t i = 0; i < rows; ++i) {
    Vec bi[V];
    for (int v = 0; v < V; ++v) bi[v] = Lanes<T, W>::load(b + i * ldb + v * W);
    for (int l = 0; l < L; ++l) {
      const T s = a[i * lda + l];
      for (int v = 0; v < V; ++v) acc[l][v] = acc[l][v] + s * bi[v];
    }
  }
  for (int l = 0; l < L; ++l)
    for (int v = 0; v < V; ++v) Lanes<T, W>::store(c + l * ldc + v * W, acc[l][v]);
}

template <class T, int W, int L, int V>
inline void t_times_vectors(int n, const T* a, int64_t lda, int64_t rows, const T* b, int64_t ldb, T* c,
                            int64_t ldc) {
  if constexpr (V >= 3) if (n == 3) return t_times_block<T, W, L, 3>(a, lda, rows, b, ldb, c, ldc);
  if constexpr (V >= 2) if (n == 2) return t_times_block<T, W, L, 2>(a, lda, rows, b, ldb, c, ldc);
  t_times_block<T, W, L, 1>(a, lda, rows, b, ldb, c, ldc);
}

template <class T, int W, int L, int V>
inline void t_times_cols(const T* a, int64_t lda, int64_t rows, const T* b, int64_t ldb, const Tail<T>& t,
                         T* c, int64_t ldc) {
  for (int64_t j = 0; j < t.start; j += V * W) t_times_block<T, W, L, V>(a, lda, rows, b + j, ldb, c + j, ldc);
  if (t.width == 0) return;
  if (t.copy.empty()) return t_times_vectors<T, W, L, V>(t.vectors, a, lda, rows, b + t.start, ldb, c + t.start, ldc);
  T part[L * V * W] = {};
  const int64_t lt = int64_t(t.vectors) * W;
  for (int l = 0; l < L; ++l)
    for (int64_t j = 0; j < t.width; ++j) part[l * lt + j] = c[l * ldc + t.start + j];
  t_times_vectors<T, W, L, V>(t.vectors, a, lda, rows, t.copy.data(), lt, part, lt);
  for (int l = 0; l < L; ++l)
    for (int64_t j = 0; j < t.width; ++j) c[l * ldc + t.start + j] = part[l * lt + j];
}

template <class T, int W, int L, int V>
inline void tile_t_times_add(const T* a, int64_t lda, int64_t rows, int64_t inner, const T* b, int64_t ldb,
                             int64_t cols, T* c, int64_t ldc) {
  const Tail<T> t = tail_of<T, W>(b, rows, ldb, cols, V);
  int64_t l = 0;
  for (; l + L <= inner; l += L) t_times_cols<T, W, L, V>(a + l, lda, rows, b, ldb, t, c + l * ldc, ldc);
  for (; l < inner; ++l) t_times_cols<T, W, 1, V>(a + l, lda, rows, b, ldb, t, c + l * ldc, ldc);
}

}  // namespace impl

// Register blocks per instruction set: 4 x 3 accumulators of 16 floats (12 of the 32 zmm) at
// v4; 4 x 2 of 8 (8 of the 16 ymm) at v3; 4 x 2 of 4 (8 of the 16 xmm) at baseline.
void tile_times(const float* a, int64_t lda, int64_t rows, int64_t inner, const float* b, int64_t ldb, int64_t cols,
                float* c, int64_t ldc) {
  const Isa isa = isa_active();
  with_best_isa([&] {
    if (isa == Isa::avx512) impl::tile_times<float, 16, 4, 3>(a, lda, rows, inner, b, ldb, cols, c, ldc);
    else if (isa == Isa::avx2) impl::tile_times<float, 8, 4, 2>(a, lda, rows, inner, b, ldb, cols, c, ldc);
    else impl::tile_times<float, 4, 4, 2>(a, lda, rows, inner, b, ldb, cols, c, ldc);
  });
}

void tile_t_times_add(const float* a, int64_t lda, int64_t rows, int64_t inner, const float* b, int64_t ldb,
                      int64_t cols, float* c, int64_t ldc) {
  const Isa isa = isa_active();
  with_best_isa([&] {
    if (isa == Isa::avx512) impl::tile_t_times_add<float, 16, 4, 3>(a, lda, rows, inner, b, ldb, cols, c, ldc);
    else if (isa == Isa::avx2) impl::tile_t_times_add<float, 8, 4, 2>(a, lda, rows, inner, b, ldb, cols, c, ldc);
    else impl::tile_t_times_add<float, 4, 4, 2>(a, lda, rows, inner, b, ldb, cols, c, ldc);
  });
}

void tile_t_times_add(const double* a, int64_t lda, int64_t rows, int64_t inner, const double* b, int64_t ldb,
                      int64_t cols, double* c, int64_t ldc) {
  const Isa isa = isa_active();
  with_best_isa([&] {
    if (isa == Isa::avx512) impl::tile_t_times_add<double, 8, 4, 3>(a, lda, rows, inner, b, ldb, cols, c, ldc);
    else if (isa == Isa::avx2) impl::tile_t_times_add<double, 4, 4, 2>(a, lda, rows, inner, b, ldb, cols, c, ldc);
    else impl::tile_t_times_add<double, 2, 4, 2>(a, lda, rows, inner, b, ldb, cols, c, ldc);
  });
}

}  // namespace adapprox::kernels
