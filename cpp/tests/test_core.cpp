// Unit tests of the C++ core: thread pool, randomness, and AS-RSI.
#include <atomic>
#include <cmath>
#include <random>

#include "adapprox/as_rsi.hpp"
#include "adapprox/tensor.hpp"
#include "adapprox/random.hpp"
#include "adapprox/thread_pool.hpp"
#include "check.hpp"

using namespace adapprox;

TEST(parallel_chunks_cover_range_once) {
  std::vector<std::atomic<int>> hits(10007);
  parallel_chunks(10007, 100, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  bool once = true;
  for (auto& h : hits) once = once && h.load() == 1;
  CHECK(once);
}

TEST(nested_parallel_runs_serially_and_completes) {
  std::atomic<int64_t> total{0};
  parallel_chunks(64, 1, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      parallel_chunks(100, 1, [&](int, int64_t b2, int64_t e2) { total += e2 - b2; });
  });
  CHECK(total.load() == 6400);
}

TEST(parallel_exception_reaches_caller) {
  bool caught = false;
  try {
    parallel_chunks(1000, 1, [&](int c, int64_t, int64_t) {
      if (c == 2) throw std::runtime_error("boom");
    });
  } catch (const std::runtime_error&) {
    caught = true;
  }
  CHECK(caught);
}

TEST(gaussian_stream_is_deterministic_and_standard) {
  const uint64_t key = sketch_key(1, 2, 3, 0);
  CHECK(gaussian(key, 17) == gaussian(key, 17));
  CHECK(gaussian(key, 17) != gaussian(sketch_key(1, 2, 4, 0), 17));
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = gaussian(key, i);
    s += z, s2 += z * z;
  }
  CHECK(std::abs(s / n) < 0.01);
  CHECK(std::abs(s2 / n - 1) < 0.02);
}

TEST(as_rsi_recovers_low_rank_exactly) {
  const int m = 40, n = 30, r = 3;
  std::mt19937 gen(0);
  std::normal_distribution<double> nd;
  std::vector<double> a(m * n, 0.0), x(m * r), y(n * r);
  for (auto& v : x) v = nd(gen);
  for (auto& v : y) v = nd(gen);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      for (int k = 0; k < r; ++k) a[i * n + j] += x[i * r + k] * y[j * r + k];
  RsiOptions opt;
  opt.max_rank = 10;
  opt.tol = 1e-6;
  auto res = as_rsi(a.data(), m, n, opt);
  CHECK(res.rank == r);
  double err = 0, norm = 0;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double rec = 0;
      for (int k = 0; k < res.rank; ++k) rec += res.q[i * res.rank + k] * res.u[j * res.rank + k];
      err += (a[i * n + j] - rec) * (a[i * n + j] - rec);
      norm += a[i * n + j] * a[i * n + j];
    }
  CHECK(std::sqrt(err / norm) < 1e-10);
  CHECK(res.rel_err < 1e-6);
}

TEST(as_rsi_rejects_bad_options) {
  std::vector<float> a(12, 1.0f);
  RsiOptions opt;
  opt.min_rank = 0;
  bool threw = false;
  try {
    as_rsi(a.data(), 3, 4, opt);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("min_rank") != std::string::npos;
  }
  CHECK(threw);
}

// The Adapprox step itself is tested through the registry (test_registry_factored.cpp).

int main() { return check::run_all(); }
