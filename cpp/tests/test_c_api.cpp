// The C ABI's contract: every error path returns its documented status with a message and
// leaves parameters and state untouched; save/load round trips continue identically.
#include <cstring>
#include <string>
#include <vector>

#include "adapprox/adapprox.h"
#include "check.hpp"

namespace {

struct Tensor {  // an owning float32/float64 tensor with its adx_DLTensor view
  std::vector<double> f64;
  std::vector<float> f32;
  std::vector<int64_t> shape;
  adx_DLTensor t{};
  Tensor(std::vector<int64_t> s, float value, int bits = 32) : shape(std::move(s)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (bits == 64) f64.assign(n, value); else f32.assign(n, value);
    t.data = bits == 64 ? static_cast<void*>(f64.data()) : static_cast<void*>(f32.data());
    t.device = {1, 0};
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = {2, static_cast<uint8_t>(bits), 1};
    t.shape = shape.data();
  }
};

adx_optimizer* make(const char* spec) {
  adx_optimizer* o = nullptr;
  return adx_create(spec, &o) == ADX_OK ? o : nullptr;
}

bool message_has(const char* word) { return std::string(adx_last_error()).find(word) != std::string::npos; }

std::vector<unsigned char> saved(adx_optimizer* o) {
  size_t n = 0;
  adx_state_size(o, &n);
  std::vector<unsigned char> b(n);
  size_t w = 0;
  adx_state_save(o, b.data(), b.size(), &w);
  return b;
}

}  // namespace

TEST(version_is_reported) {
  CHECK(std::string(adx_version()) == "0.1.0");
  CHECK(adx_abi_version() == 1);
}

TEST(null_pointers_are_refused) {
  adx_optimizer* o = nullptr;
  CHECK(adx_create(nullptr, &o) == ADX_ERR_NULL && message_has("spec"));
  CHECK(adx_create("adam", nullptr) == ADX_ERR_NULL && message_has("out"));
  Tensor p({3}, 1), g({3}, 1);
  CHECK(adx_step(nullptr, &p.t, &g.t, 1, -1) == ADX_ERR_NULL);
  o = make("adam");
  CHECK(adx_step(o, nullptr, &g.t, 1, -1) == ADX_ERR_NULL && message_has("params"));
  CHECK(adx_state_load(o, nullptr, 10) == ADX_ERR_NULL);
  CHECK(adx_state_size(o, nullptr) == ADX_ERR_NULL);
  CHECK(adx_memory_report(nullptr, nullptr, nullptr) == ADX_ERR_NULL);
  adx_destroy(o);
  adx_destroy(nullptr);
}

TEST(bad_specs_are_refused_with_a_useful_message) {
  adx_optimizer* o = nullptr;
  CHECK(adx_create("adam:foo=1", &o) == ADX_ERR_SPEC && message_has("foo") && message_has("beta1") && !o);
  CHECK(adx_create("nosuch", &o) == ADX_ERR_SPEC && message_has("known") && message_has("adapprox"));
  CHECK(adx_create("adam:lr", &o) == ADX_ERR_SPEC && message_has("KEY=VALUE"));
  CHECK(adx_create("adam:lr=abc", &o) == ADX_ERR_SPEC && message_has("lr"));
  CHECK(adx_create("adam:lr=1,lr=2", &o) == ADX_ERR_SPEC && message_has("twice"));
  CHECK(adx_create("", &o) == ADX_ERR_SPEC);
  CHECK(adx_create("adam:lr=1e-3,", &o) == ADX_ERR_SPEC);
  CHECK(adx_create("adapprox:rnak=2", &o) == ADX_ERR_SPEC && message_has("rnak"));
}

TEST(bad_values_name_the_key) {
  adx_optimizer* o = nullptr;
  CHECK(adx_create("adam:lr=-1", &o) == ADX_ERR_VALUE && message_has("lr"));
  CHECK(adx_create("adapprox:beta2=1.5", &o) == ADX_ERR_VALUE && message_has("beta2"));
  CHECK(adx_create("adapprox:min_rank=0", &o) == ADX_ERR_VALUE && message_has("min_rank"));
}

TEST(spec_round_trip_and_keys) {
  adx_optimizer* o = make("adapprox:lr=0.5,rank=3");
  char buf[1024];
  size_t need = 0;
  CHECK(adx_spec(o, buf, sizeof buf, &need) == ADX_OK && std::string(buf).find("rank=3") != std::string::npos);
  CHECK(adx_spec(o, buf, 4, &need) == ADX_ERR_BUFFER_SIZE && need > 4);
  adx_optimizer* again = make(buf);  // the canonical spec creates the same optimizer
  CHECK(again != nullptr);
  CHECK(adx_spec_keys("sgd", buf, sizeof buf, &need) == ADX_OK && std::string(buf).find("nesterov") != std::string::npos);
  adx_destroy(o);
  adx_destroy(again);
}

TEST(bad_tensors_are_refused_and_nothing_changes) {
  for (const char* spec : {"adapprox:lr=0.1", "adam:lr=0.1", "sgd:lr=0.1,momentum=0.9"}) {
    adx_optimizer* o = make(spec);
    Tensor p({4, 3}, 1), g({4, 3}, 0.5f), p2({5}, 1), g2({5}, 0.5f);
    adx_DLTensor ps[2] = {p.t, p2.t}, gs[2] = {g.t, g2.t};
    CHECK(adx_step(o, ps, gs, 2, -1) == ADX_OK);
    const std::vector<float> before = p.f32;
    const std::vector<unsigned char> state = saved(o);

    Tensor wrong_shape({3, 4}, 0.5f);
    gs[1] = wrong_shape.t;
    CHECK(adx_step(o, ps, gs, 2, -1) == ADX_ERR_SHAPE && message_has("params[1]"));
    Tensor f64({5}, 0.5f, 64);
    gs[1] = f64.t;
    CHECK(adx_step(o, ps, gs, 2, -1) == ADX_ERR_DTYPE && message_has("dtype"));
    gs[1] = g2.t;
    adx_DLTensor gpu = g2.t;
    gpu.device.device_type = 2;
    gs[1] = gpu;
    CHECK(adx_step(o, ps, gs, 2, -1) == ADX_ERR_DEVICE && message_has("grads[1]"));
    adx_DLTensor strided = p.t;
    int64_t strides[2] = {1, 4};  // a transposed view
    strided.strides = strides;
    adx_DLTensor ps2[2] = {strided, p2.t}, gs2[2] = {g.t, g2.t};
    CHECK(adx_step(o, ps2, gs2, 2, -1) == ADX_ERR_SHAPE && message_has("contiguous"));
    adx_DLTensor ints = p.t;
    ints.dtype = {0, 32, 1};
    ps2[0] = ints;
    CHECK(adx_step(o, ps2, gs2, 2, -1) == ADX_ERR_DTYPE);
    CHECK(adx_step(o, ps, gs2, 1, -1) == ADX_ERR_SHAPE && message_has("expected 2 parameters"));

    CHECK(p.f32 == before);
    CHECK(saved(o) == state);
    adx_destroy(o);
  }
}

TEST(corrupt_or_truncated_state_is_refused_and_nothing_changes) {
  adx_optimizer* o = make("adapprox:lr=0.1,rank=2");
  Tensor p({6, 5}, 1), g({6, 5}, 0.25f);
  CHECK(adx_step(o, &p.t, &g.t, 1, -1) == ADX_OK);
  const std::vector<unsigned char> good = saved(o);
  std::vector<unsigned char> bad = good;
  bad[bad.size() / 2] ^= 0x40;
  CHECK(adx_state_load(o, bad.data(), bad.size()) == ADX_ERR_STATE && message_has("checksum"));
  CHECK(adx_state_load(o, good.data(), good.size() - 9) == ADX_ERR_STATE);
  CHECK(adx_state_load(o, good.data(), 3) == ADX_ERR_STATE && message_has("truncated"));
  const char junk[] = "definitely not a state buffer, but long enough";
  CHECK(adx_state_load(o, junk, sizeof junk) == ADX_ERR_STATE && message_has("magic"));
  adx_optimizer* adam = make("adam");
  CHECK(adx_state_load(adam, good.data(), good.size()) == ADX_ERR_STATE && message_has("adapprox"));
  CHECK(saved(o) == good);
  size_t written = 0;
  CHECK(adx_state_save(o, nullptr, 0, &written) == ADX_ERR_BUFFER_SIZE && written == good.size());
  adx_destroy(o);
  adx_destroy(adam);
}

TEST(save_load_continues_identically_and_lr_override) {
  for (const char* spec : {"adapprox:lr=0.05,rank=2,max_rank=4", "nadam:lr=0.01", "rmsprop:lr=0.01,centered=1"}) {
    adx_optimizer* a = make(spec);
    Tensor p({8, 6}, 0.5f), g({8, 6}, 0.0f);
    for (size_t i = 0; i < g.f32.size(); ++i) g.f32[i] = float((i * 7919) % 13) / 13 - 0.5f;
    for (int s = 0; s < 3; ++s) adx_step(a, &p.t, &g.t, 1, -1);
    const std::vector<unsigned char> st = saved(a);
    Tensor q = p;
    q.t.data = q.f32.data();
    q.t.shape = q.shape.data();
    adx_optimizer* b = make(spec);
    CHECK(adx_state_load(b, st.data(), st.size()) == ADX_OK);
    for (int s = 0; s < 3; ++s) {
      adx_step(a, &p.t, &g.t, 1, -1);
      adx_step(b, &q.t, &g.t, 1, -1);
    }
    CHECK(p.f32 == q.f32);
    const std::vector<float> before = p.f32;
    CHECK(adx_step(a, &p.t, &g.t, 1, 0.0) == ADX_OK);  // lr override 0: no movement
    CHECK(p.f32 == before);
    size_t state_bytes = 0, adamw_bytes = 0;
    CHECK(adx_memory_report(a, &state_bytes, &adamw_bytes) == ADX_OK && state_bytes > 0 && adamw_bytes == 2 * 4 * 48);
    adx_destroy(a);
    adx_destroy(b);
  }
}

TEST(every_optimizer_is_reachable_by_spec) {
  for (const char* spec : {"adapprox", "adam", "adamw", "nadam", "rmsprop", "adagrad", "sgd", "signsgd"}) {
    adx_optimizer* o = make(spec);
    CHECK(o != nullptr);
    Tensor p({3, 2}, 1), g({3, 2}, 1);
    CHECK(adx_step(o, &p.t, &g.t, 1, -1) == ADX_OK);
    CHECK(p.f32[0] < 1);
    adx_destroy(o);
  }
}

int main() { return check::run_all(); }
