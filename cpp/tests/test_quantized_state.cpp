// Low-precision state through the C ABI: 8-bit and bf16 moments step, save and resume bit for
// bit; a float32 handle loads 8-bit state by decoding it; the refusals leave everything as it was.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "adapprox/adapprox.h"
#include "c_api_helpers.hpp"
#include "check.hpp"

namespace {

// Gradient k of a run: deterministic, varied magnitudes (elements 0..n).
void gradient(Tensor& g, int k) {
  for (size_t i = 0; i < g.f32.size(); ++i)
    g.f32[i] = std::sin(0.37f * float(i) + 1.3f * float(k)) * (1.0f + float(i % 7));
}

}  // namespace

TEST(eight_bit_state_resumes_bit_for_bit) {
  for (const char* spec : {"adamw:lr=0.01,state_precision=8bit", "adamw:lr=0.01,state_precision=bf16",
                           "adapprox:lr=0.01,rank=2,state_precision=8bit", "sgd:lr=0.01,momentum=0.9,state_precision=2",
                           "adafactor:mode=1,beta1=0.9,lr=0.01,relative_step=0,state_precision=8bit"}) {
    Tensor a({30, 40}, 0), b({30, 40}, 0), g({30, 40}, 0);
    adx_optimizer* first = make(spec);
    CHECK(first != nullptr);
    if (!first) continue;
    for (int k = 0; k < 4; ++k) {
      gradient(g, k);
      CHECK(adx_step(first, &a.t, &g.t, 1, -1.0) == ADX_OK);
    }
    const std::vector<unsigned char> bytes = saved(first);
    b.f32 = a.f32;
    adx_optimizer* second = make(spec);
    CHECK(adx_state_load(second, bytes.data(), bytes.size()) == ADX_OK);
    for (int k = 4; k < 8; ++k) {
      gradient(g, k);
      CHECK(adx_step(first, &a.t, &g.t, 1, -1.0) == ADX_OK);
      CHECK(adx_step(second, &b.t, &g.t, 1, -1.0) == ADX_OK);
    }
    CHECK(a.f32 == b.f32);
    CHECK(saved(first) == saved(second));
    adx_destroy(first);
    adx_destroy(second);
  }
}

TEST(eight_bit_state_is_smaller_and_a_float32_handle_decodes_it) {
  Tensor p({64, 64}, 0), g({64, 64}, 0);
  adx_optimizer* q8 = make("adamw:lr=0.01,state_precision=8bit");
  adx_optimizer* f32 = make("adamw:lr=0.01");
  gradient(g, 0);
  Tensor p2({64, 64}, 0);
  CHECK(adx_step(q8, &p.t, &g.t, 1, -1.0) == ADX_OK);
  CHECK(adx_step(f32, &p2.t, &g.t, 1, -1.0) == ADX_OK);
  size_t s8 = 0, s32 = 0, adamw = 0;
  CHECK(adx_memory_report(q8, &s8, &adamw) == ADX_OK);
  CHECK(adx_memory_report(f32, &s32, &adamw) == ADX_OK);
  CHECK(s32 == 2 * 4 * 64 * 64);
  CHECK(s8 == 2 * (64 * 64 + 4 * 16));  // codes + one float32 absmax per 256 elements
  const std::vector<unsigned char> bytes = saved(q8);
  CHECK(adx_state_load_ex(f32, bytes.data(), bytes.size(), ADX_LOAD_KEEP_HYPERPARAMETERS) == ADX_OK);
  CHECK(adx_memory_report(f32, &s32, &adamw) == ADX_OK);
  CHECK(s32 == 2 * 4 * 64 * 64);  // decoded into float32 moments
  gradient(g, 1);
  CHECK(adx_step(f32, &p.t, &g.t, 1, -1.0) == ADX_OK);
  for (float x : p.f32) CHECK(std::isfinite(x));
  adx_destroy(q8);
  adx_destroy(f32);
}

TEST(refusals_name_the_argument_and_change_nothing) {
  adx_optimizer* o = nullptr;
  CHECK(adx_create("rmsprop:centered=1,state_precision=8bit", &o) == ADX_ERR_VALUE);
  CHECK(std::string(adx_last_error()).find("centered") != std::string::npos);
  CHECK(adx_create("adamw:state_precision=4bit", &o) != ADX_OK);
  CHECK(adx_create("adamw:state_precision=3", &o) == ADX_ERR_VALUE);
  adx_optimizer* q8 = make("adamw:lr=0.01,state_precision=8bit");
  Tensor p({10}, 0, 64), g({10}, 0, 64);
  for (double& x : g.f64) x = 1.0;
  CHECK(adx_step(q8, &p.t, &g.t, 1, -1.0) == ADX_ERR_VALUE);
  CHECK(std::string(adx_last_error()).find("state_precision") != std::string::npos);
  for (double x : p.f64) CHECK(x == 0.0);
  size_t bytes = 0, adamw = 0;
  CHECK(adx_memory_report(q8, &bytes, &adamw) == ADX_OK && bytes == 0);
  adx_destroy(q8);
}

int main() { return check::run_all(); }
