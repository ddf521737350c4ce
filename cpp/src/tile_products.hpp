// Internal: the matrix products of an Adapprox step over row tiles (Y = S X, Z += S^T Y,
// R = Q U^T), register-blocked and run at the instruction set adapprox/isa.hpp picks.
//
// Every output element is one sum taken in a fixed order, c_ij = (((c0 + a_i0 b_0j) + a_i1 b_1j)
// + ...), multiplies and adds rounded separately (no FMA): the blocking and the vector width
// change which elements are computed together, never how one is, so every instruction set and
// every tile shape gives bitwise the same result.
#pragma once
#include <cstdint>

namespace adapprox::kernels {

// c = a b: a is rows x inner (row stride lda), b is inner x cols (row stride ldb), c is
// rows x cols (row stride ldc); all row-major.
void tile_times(const float* a, int64_t lda, int64_t rows, int64_t inner, const float* b, int64_t ldb, int64_t cols,
                float* c, int64_t ldc);

// c += a^T b: a is rows x inner (row stride lda), b is rows x cols (row stride ldb), c is
// inner x cols (row stride ldc); the sum over rows runs in row order.
void tile_t_times_add(const float* a, int64_t lda, int64_t rows, int64_t inner, const float* b, int64_t ldb,
                      int64_t cols, float* c, int64_t ldc);
void tile_t_times_add(const double* a, int64_t lda, int64_t rows, int64_t inner, const double* b, int64_t ldb,
                      int64_t cols, double* c, int64_t ldc);

}  // namespace adapprox::kernels
