// AS-RSI: adaptive streamlined randomized subspace iteration, a randomized low-rank
// approximation A ~ Q U^T whose rank is chosen against a relative Frobenius error tolerance.
#pragma once
#include <cstdint>
#include <vector>

namespace adapprox {

struct RsiOptions {
  int rank = 1;         // starting rank (the optimizer passes the rank of the previous step)
  int min_rank = 1;     // the result never has fewer columns than this (capped at min(m, n))
  int max_rank = 0;     // cap; <= 0 means floor(min(m, n) / 4), at least 1; capped at min(m, n)
  double tol = 1e-2;    // target ||A - Q U^T||_F / ||A||_F
  int oversample = 5;   // extra sketch columns p (not stored)
  int power_iters = 1;  // subspace iterations l, each re-orthonormalised by Householder QR
  uint64_t seed = 0;
  uint64_t step = 0;         // with seed and stream: the Gaussian sketch's key
  uint64_t stream = 0;
};

// The resolved rank bounds for an m x n matrix.
int default_max_rank(int64_t m, int64_t n);
void resolve_rank_bounds(const RsiOptions& opt, int64_t m, int64_t n, int& min_rank, int& max_rank);

template <class T>
struct RsiResult {
  std::vector<T> q;  // m x rank, row-major, orthonormal columns
  std::vector<T> u;  // n x rank, row-major; A ~ Q U^T
  int rank = 0;
  double rel_err = 0;  // exact ||A - Q U^T||_F / ||A||_F (0 for A = 0), up to rounding
};

// Factor a dense row-major m x n matrix. Throws adapprox::Error on bad options.
RsiResult<float> as_rsi(const float* a, int64_t m, int64_t n, const RsiOptions& opt);
RsiResult<double> as_rsi(const double* a, int64_t m, int64_t n, const RsiOptions& opt);

// Peak transient bytes of one AS-RSI call on an m x n matrix at sketch width w = rank + p
// (documented bound; see the README): sketch blocks Y, Z, B^T and the small Gram matrix.
int64_t as_rsi_workspace_bytes(int64_t m, int64_t n, int width, int scalar_bytes);

}  // namespace adapprox
