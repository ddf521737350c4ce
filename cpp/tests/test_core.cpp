// Unit tests of the C++ core: thread pool, randomness, AS-RSI, and the Adapprox step's guards.
#include <atomic>
#include <cmath>
#include <random>

#include "adapprox/adapprox.hpp"
#include "adapprox/as_rsi.hpp"
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

TEST(adapprox_step_rejects_mismatch_without_writing) {
  AdapproxState s1({4, 3}), s2({5});
  std::vector<float> p1(12, 1.0f), g1(12, 0.5f), p2(5, 1.0f), g2(4, 0.5f);
  std::vector<AdapproxSlot> slots = {
      {&s1, TensorRef{p1.data(), DType::f32, {4, 3}}, TensorRef{g1.data(), DType::f32, {4, 3}}, 0},
      {&s2, TensorRef{p2.data(), DType::f32, {5}}, TensorRef{g2.data(), DType::f32, {4}}, 1}};
  AdapproxHyper h;
  bool threw = false;
  try {
    adapprox_step(slots, h);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("params[1]") != std::string::npos;
  }
  CHECK(threw);
  CHECK(p1 == std::vector<float>(12, 1.0f));
  CHECK(s1.step == 0 && s1.q.empty() && s1.m.empty());
}

TEST(adapprox_step_first_update_is_clipped_sign) {
  // Step 1: V = (1 - b2) g^2, Mhat = g / (sqrt(1 - b2)|g| + eps) ~ 31.6 sign(g); the RMS clip
  // brings it to ~sign(g); with b1 = 0.9, M = 0.1 sign(g); theta -= lr * M.
  AdapproxState st({6, 4});
  std::vector<float> p(24, 0.0f), g(24);
  for (int i = 0; i < 24; ++i) g[i] = (i % 3 == 0 ? -1.0f : 1.0f) * (1 + i);
  std::vector<AdapproxSlot> slots = {
      {&st, TensorRef{p.data(), DType::f32, {6, 4}}, TensorRef{g.data(), DType::f32, {6, 4}}, 0}};
  AdapproxHyper h;
  h.lr = 1.0;
  adapprox_step(slots, h);
  bool ok = true;
  for (int i = 0; i < 24; ++i) ok = ok && std::abs(p[i] + 0.1f * (g[i] > 0 ? 1 : -1)) < 1e-5f;
  CHECK(ok);
  CHECK(st.step == 1 && st.rank >= 1 && static_cast<int>(st.q.size()) == 6 * st.rank);
}

int main() { return check::run_all(); }
