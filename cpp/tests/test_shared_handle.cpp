// The C ABI's thread-safety contract (adapprox.h, "Threads"): one handle stepped from several
// threads at once takes the steps one at a time (no crash, no lost update, the same state as
// the same steps taken by one thread); separate handles in separate threads run side by side.
// Built and run under ThreadSanitizer by tests/test_sanitizers.py, and plainly by ctest.
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "adapprox/adapprox.h"
#include "adapprox/optimizer.hpp"
#include "check.hpp"

namespace {

constexpr int kThreads = 4, kSteps = 40;

struct Matrix {
  std::vector<float> v;
  std::vector<int64_t> shape{24, 20};
  adx_DLTensor t{};
  explicit Matrix(float x) : v(24 * 20, x) {
    t.data = v.data();
    t.device = {1, 0};
    t.ndim = 2;
    t.dtype = {2, 32, 1};
    t.shape = shape.data();
  }
};

int64_t saved_step(adx_optimizer* o) {
  size_t n = 0;
  adx_state_size(o, &n);
  std::vector<unsigned char> b(n);
  size_t w = 0;
  adx_state_save(o, b.data(), b.size(), &w);
  const adapprox::DecodedState d = adapprox::decode_state(b.data(), w);
  return d.states.empty() || !d.states[0] ? 0 : d.states[0]->step;
}

// Every thread steps the same handle on the same (constant) gradient.
void shared(const char* spec) {
  adx_optimizer* o = nullptr;
  CHECK(adx_create(spec, &o) == ADX_OK);
  Matrix p(1.0f), g(0.5f);
  std::vector<std::thread> ts;
  std::vector<int> failures(kThreads, 0);
  for (int i = 0; i < kThreads; ++i)
    ts.emplace_back([&, i] {
      for (int s = 0; s < kSteps; ++s) failures[i] += adx_step(o, &p.t, &g.t, 1, -1.0) != ADX_OK;
    });
  for (auto& t : ts) t.join();
  for (int f : failures) CHECK(f == 0);
  if (std::string(spec).rfind("sgd", 0) != 0) CHECK(saved_step(o) == kThreads * kSteps);  // SGD counts no steps (as torch)
  // The same number of steps taken by one thread lands on the same parameters (a constant
  // gradient makes the order of the steps irrelevant).
  adx_optimizer* one = nullptr;
  CHECK(adx_create(spec, &one) == ADX_OK);
  Matrix q(1.0f), h(0.5f);
  for (int s = 0; s < kThreads * kSteps; ++s) CHECK(adx_step(one, &q.t, &h.t, 1, -1.0) == ADX_OK);
  CHECK(std::memcmp(p.v.data(), q.v.data(), p.v.size() * sizeof(float)) == 0);
  adx_destroy(one);
  adx_destroy(o);
}

TEST(one_handle_from_four_threads) {
  for (const char* spec : {"adapprox:rank=2,max_rank=4,beta1=0.9", "adamw", "adafactor", "sgd:momentum=0.9"})
    shared(spec);
}

TEST(separate_handles_side_by_side) {
  std::vector<std::thread> ts;
  std::vector<int> ok(kThreads, 0);
  for (int i = 0; i < kThreads; ++i)
    ts.emplace_back([&, i] {
      adx_optimizer* o = nullptr;
      if (adx_create("adapprox:rank=2,max_rank=4", &o) != ADX_OK) return;
      Matrix p(1.0f), g(0.25f);
      int good = 0;
      for (int s = 0; s < kSteps; ++s) good += adx_step(o, &p.t, &g.t, 1, -1.0) == ADX_OK;
      ok[i] = good == kSteps && saved_step(o) == kSteps;
      adx_destroy(o);
    });
  for (auto& t : ts) t.join();
  for (int v : ok) CHECK(v == 1);
}

}  // namespace

int main() { return check::run_all(); }
