// The C ABI's contract: every error path returns its documented status with a message and
// leaves parameters and state untouched; save/load round trips continue identically.
#include <cstring>
#include <string>
#include <vector>

#include "adapprox/adapprox.h"
#include "c_api_helpers.hpp"
#include "check.hpp"

TEST(version_is_reported) {
  CHECK(std::string(adx_version()) == "0.1.0");
  CHECK(std::string(adx_version()) == ADAPPROX_VERSION_STRING);
  CHECK(ADAPPROX_VERSION == ADAPPROX_MAKE_VERSION(0, 1, 0));
  CHECK(adx_abi_version() == 1 && adx_abi_version() == ADAPPROX_ABI_VERSION);
}

TEST(status_strings_name_every_code) {
  CHECK(std::string(adx_status_string(ADX_OK)) == "ADX_OK");
  CHECK(std::string(adx_status_string(ADX_ERR_NULL)) == "ADX_ERR_NULL");
  CHECK(std::string(adx_status_string(ADX_ERR_BUFFER_SIZE)) == "ADX_ERR_BUFFER_SIZE");
  CHECK(std::string(adx_status_string(ADX_ERR_COMM)) == "ADX_ERR_COMM");
  CHECK(std::string(adx_status_string(static_cast<adx_status>(12))) == "unknown status");
}

TEST(thread_count_is_settable_and_results_do_not_depend_on_it) {
  const int before = adx_num_threads();
  CHECK(adx_set_num_threads(0) == ADX_ERR_VALUE && message_has("1 to 1024"));
  CHECK(adx_set_num_threads(1025) == ADX_ERR_VALUE);
  CHECK(adx_num_threads() == before);
  std::vector<float> results[2];
  for (int k = 0; k < 2; ++k) {
    CHECK(adx_set_num_threads(k == 0 ? 1 : 3) == ADX_OK && adx_num_threads() == (k == 0 ? 1 : 3));
    adx_optimizer* o = make("adapprox:lr=0.05,rank=2");
    Tensor p({64, 48}, 0.5f), g({64, 48}, 0.0f);
    for (size_t i = 0; i < g.f32.size(); ++i) g.f32[i] = float((i * 7919) % 101) / 101 - 0.5f;
    for (int s = 0; s < 3; ++s) CHECK(adx_step(o, &p.t, &g.t, 1, -1) == ADX_OK);
    results[k] = p.f32;
    adx_destroy(o);
  }
  CHECK(results[0] == results[1]);
  CHECK(adx_set_num_threads(before) == ADX_OK);
}

TEST(null_data_is_err_null) {
  adx_optimizer* o = make("adam");
  Tensor p({3}, 1), g({3}, 1);
  p.t.data = nullptr;
  CHECK(adx_step(o, &p.t, &g.t, 1, -1) == ADX_ERR_NULL && message_has("params[0]") && message_has("data"));
  Tensor empty({0, 3}, 1), empty_g({0, 3}, 1);
  empty.t.data = nullptr;  // an empty tensor needs no data
  CHECK(adx_step(o, &empty.t, &empty_g.t, 1, -1) == ADX_OK);
  adx_destroy(o);
}

// Loading restores the saved hyperparameters (torch's rule); ADX_LOAD_KEEP_HYPERPARAMETERS keeps
// the live ones, and then the state must fit them.
TEST(state_load_restores_hyperparameters_unless_asked_to_keep_them) {
  adx_optimizer* a = make("adam:lr=0.01,beta2=0.99");
  Tensor p({4, 3}, 1), g({4, 3}, 0.25f);
  CHECK(adx_step(a, &p.t, &g.t, 1, -1) == ADX_OK);
  const std::vector<unsigned char> st = saved(a);
  char spec_a[512], spec_b[512];
  size_t need = 0;
  CHECK(adx_spec(a, spec_a, sizeof spec_a, &need) == ADX_OK);

  adx_optimizer* b = make("adam:lr=0.5,beta2=0.9");
  CHECK(adx_state_load(b, st.data(), st.size()) == ADX_OK);
  CHECK(adx_spec(b, spec_b, sizeof spec_b, &need) == ADX_OK && std::string(spec_a) == spec_b);

  adx_optimizer* c = make("adam:lr=0.5,beta2=0.9");
  char spec_c[512], spec_c2[512];
  CHECK(adx_spec(c, spec_c, sizeof spec_c, &need) == ADX_OK);
  CHECK(adx_state_load_ex(c, st.data(), st.size(), ADX_LOAD_KEEP_HYPERPARAMETERS) == ADX_OK);
  CHECK(adx_spec(c, spec_c2, sizeof spec_c2, &need) == ADX_OK && std::string(spec_c) == spec_c2);
  CHECK(saved(c) != st);  // the state is a's, the hyperparameters c's own
  CHECK(adx_state_load_ex(c, st.data(), st.size(), 6u) == ADX_ERR_VALUE && message_has("flags"));

  // amsgrad needs a buffer that a's state lacks: keeping amsgrad=1 refuses the state, whole.
  adx_optimizer* d = make("adam:amsgrad=1");
  const std::vector<unsigned char> d_before = saved(d);
  CHECK(adx_state_load_ex(d, st.data(), st.size(), ADX_LOAD_KEEP_HYPERPARAMETERS) == ADX_ERR_STATE);
  CHECK(saved(d) == d_before);
  CHECK(adx_state_load(d, st.data(), st.size()) == ADX_OK);  // restoring takes amsgrad=0 with it
  for (adx_optimizer* o : {a, b, c, d}) adx_destroy(o);
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
  CHECK(adx_create("adam:lr=1e400", &o) == ADX_ERR_SPEC && message_has("finite"));
  CHECK(adx_create("adam:lr=nan", &o) == ADX_ERR_SPEC && message_has("finite"));
  CHECK(adx_create("adam:lr=1e-400,eps=4e-320", &o) == ADX_OK);  // underflow is a number (0, subnormal)
  adx_destroy(o);
  o = nullptr;
  CHECK(adx_create("adapprox:rnak=2", &o) == ADX_ERR_SPEC && message_has("rnak"));
}

TEST(bad_values_name_the_key) {
  adx_optimizer* o = nullptr;
  CHECK(adx_create("adam:lr=-1", &o) == ADX_ERR_VALUE && message_has("lr"));
  CHECK(adx_create("adapprox:beta2=1.5", &o) == ADX_ERR_VALUE && message_has("beta2"));
  CHECK(adx_create("adapprox:min_rank=0", &o) == ADX_ERR_VALUE && message_has("min_rank"));
  // Integer keys must be whole numbers in range (a cast of anything else would be undefined).
  CHECK(adx_create("adapprox:rank=1e300", &o) == ADX_ERR_VALUE && message_has("rank"));
  CHECK(adx_create("adapprox:rank=2.5", &o) == ADX_ERR_VALUE && message_has("whole"));
  CHECK(adx_create("adapprox:seed=-1", &o) == ADX_ERR_VALUE && message_has("seed"));
  CHECK(adx_create("adapprox:seed=1e20", &o) == ADX_ERR_VALUE && message_has("seed"));
  CHECK(adx_create("adapprox:power_iters=-3e9", &o) == ADX_ERR_VALUE && message_has("power_iters"));
  CHECK(!o);
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
    // A gradient on cuda:0 beside a CPU parameter: refused, naming the parameter and the devices.
    CHECK(adx_step(o, ps, gs, 2, -1) == ADX_ERR_DEVICE && message_has("params[1]") && message_has("cuda:0"));
    adx_DLTensor metal = g2.t;
    metal.device.device_type = 8;  // kDLMetal
    gs[1] = metal;
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
  for (const char* spec : {"adapprox:lr=0.05,rank=2,max_rank=4", "nadam:lr=0.01", "rmsprop:lr=0.01,centered=1",
                           "adafactor:lr=0.05", "adafactor:mode=1,lr=0.05,weight_decay=0.01",
                           "adagram:lr=0.05,rank=2,weight_decay=0.01", "fullmatrixadagrad:lr=0.05,lr_decay=0.1"}) {
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
  for (const char* spec : {"adapprox", "adafactor", "adam", "adamw", "nadam", "rmsprop", "adagrad", "sgd", "signsgd",
                           "adagram", "fullmatrixadagrad"}) {
    adx_optimizer* o = make(spec);
    CHECK(o != nullptr);
    Tensor p({3, 2}, 1), g({3, 2}, 1);
    CHECK(adx_step(o, &p.t, &g.t, 1, -1) == ADX_OK);
    CHECK(p.f32[0] < 1);
    adx_destroy(o);
  }
}

std::string spec_of(adx_optimizer* o) {
  char buf[1024];
  size_t need = 0;
  return adx_spec(o, buf, sizeof buf, &need) == ADX_OK ? std::string(buf) : std::string();
}

TEST(adafactor_spec_keys_cover_both_modes) {
  adx_optimizer* o = make("adafactor");
  const std::string torch_mode = spec_of(o);
  for (const char* key : {"mode=0", "lr=0.01", "beta2_decay=-0.8", "eps1_auto=1", "eps2=0.001", "d=1", "beta1=0",
                          "relative_step=1", "scale_parameter=1", "maximize=0", "weight_decay=0"})
    CHECK(torch_mode.find(key) != std::string::npos);
  adx_destroy(o);
  o = make("adafactor:eps1=1e-20");  // an explicit eps1 turns eps1_auto off
  CHECK(spec_of(o).find("eps1_auto=0") != std::string::npos);
  adx_destroy(o);
  o = make("adafactor:mode=1");  // paper mode: eps1 is the paper's 1e-30 unless given
  CHECK(spec_of(o).find("eps1=1") != std::string::npos && spec_of(o).find("e-30") != std::string::npos && spec_of(o).find("eps1_auto=0") != std::string::npos);
  adx_optimizer* again = make(spec_of(o).c_str());
  CHECK(again != nullptr && spec_of(again) == spec_of(o));
  adx_destroy(again);
  adx_destroy(o);
  o = nullptr;
  CHECK(adx_create("adafactor:mode=2", &o) == ADX_ERR_VALUE && message_has("mode"));
  CHECK(adx_create("adafactor:beta1=0.9", &o) == ADX_ERR_VALUE && message_has("beta1"));
  CHECK(adx_create("adafactor:relative_step=0", &o) == ADX_ERR_VALUE && message_has("relative_step"));
  CHECK(adx_create("adafactor:mode=1,d=0", &o) == ADX_ERR_VALUE && message_has("d "));
  CHECK(adx_create("adafactor:eps=1", &o) == ADX_ERR_SPEC && message_has("eps1"));
  CHECK(adx_create("adafactor:maximize=2", &o) == ADX_ERR_VALUE && message_has("maximize"));
  CHECK(!o);
}

TEST(adafactor_save_load_continues_in_both_modes_and_dtypes) {
  for (const char* spec : {"adafactor:lr=0.05", "adafactor:mode=1,beta1=0.9,lr=0.05", "adafactor:mode=1,relative_step=0,scale_parameter=0,lr=0.01"}) {
    for (int bits : {32, 64}) {
      adx_optimizer* a = make(spec);
      CHECK(a != nullptr);
      Tensor p1({2, 4, 3}, 0.5f, bits), g1({2, 4, 3}, 0.0f, bits), p2({5}, -0.25f, bits), g2({5}, 0.0f, bits);
      for (size_t i = 0; i < 24; ++i) {
        const float v = float((i * 7919) % 13) / 13 - 0.5f;
        if (bits == 64) g1.f64[i] = v; else g1.f32[i] = v;
      }
      for (size_t i = 0; i < 5; ++i) {
        const float v = float(i) / 5 - 0.3f;
        if (bits == 64) g2.f64[i] = v; else g2.f32[i] = v;
      }
      adx_DLTensor ps[2] = {p1.t, p2.t}, gs[2] = {g1.t, g2.t};
      for (int s = 0; s < 3; ++s) CHECK(adx_step(a, ps, gs, 2, -1) == ADX_OK);
      const std::vector<unsigned char> st = saved(a);
      Tensor q1 = p1, q2 = p2;
      q1.t.data = bits == 64 ? static_cast<void*>(q1.f64.data()) : static_cast<void*>(q1.f32.data());
      q2.t.data = bits == 64 ? static_cast<void*>(q2.f64.data()) : static_cast<void*>(q2.f32.data());
      q1.t.shape = q1.shape.data();
      q2.t.shape = q2.shape.data();
      adx_DLTensor qs[2] = {q1.t, q2.t};
      adx_optimizer* b = make(spec);
      CHECK(adx_state_load(b, st.data(), st.size()) == ADX_OK);
      CHECK(saved(b) == st);
      for (int s = 0; s < 3; ++s) {
        CHECK(adx_step(a, ps, gs, 2, -1) == ADX_OK);
        CHECK(adx_step(b, qs, gs, 2, -1) == ADX_OK);
      }
      CHECK(p1.f32 == q1.f32 && p1.f64 == q1.f64 && p2.f32 == q2.f32 && p2.f64 == q2.f64);
      CHECK((bits == 64 ? p1.f64[0] : p1.f32[0]) != 0.5f);
      size_t state_bytes = 0, adamw_bytes = 0;
      CHECK(adx_memory_report(a, &state_bytes, &adamw_bytes) == ADX_OK);
      const size_t factored = 2 * (4 + 3) + 5 + (std::string(spec).find("beta1") != std::string::npos ? 29 : 0);
      CHECK(state_bytes == factored * (bits / 8) && adamw_bytes == 2 * (bits / 8) * 29);
      adx_destroy(a);
      adx_destroy(b);
    }
  }
  // Another optimizer's state is refused, and Adafactor state does not load into Adam.
  adx_optimizer* ada = make("adafactor");
  Tensor p({3, 2}, 1), g({3, 2}, 1);
  CHECK(adx_step(ada, &p.t, &g.t, 1, -1) == ADX_OK);
  const std::vector<unsigned char> st = saved(ada);
  adx_optimizer* adam = make("adam");
  CHECK(adx_state_load(adam, st.data(), st.size()) == ADX_ERR_STATE && message_has("adafactor"));
  CHECK(adx_step(adam, &p.t, &g.t, 1, -1) == ADX_OK);
  const std::vector<unsigned char> adam_state = saved(adam);
  CHECK(adx_state_load(ada, adam_state.data(), adam_state.size()) == ADX_ERR_STATE && message_has("adam"));
  CHECK(saved(ada) == st);
  adx_destroy(ada);
  adx_destroy(adam);
}

TEST(gram_optimizers_spec_keys_limits_and_float64_state) {
  adx_optimizer* o = make("adagram");
  const std::string spec = spec_of(o);
  for (const char* key : {"eps=0.01", "lr=0.1", "lr_decay=0", "maximize=0", "rank=1", "weight_decay=0"})
    CHECK(spec.find(key) != std::string::npos);
  adx_destroy(o);
  o = make("fullmatrixadagrad");
  CHECK(spec_of(o).find("eps=1e-10") != std::string::npos && spec_of(o).find("rank") == std::string::npos);
  adx_destroy(o);
  o = nullptr;
  CHECK(adx_create("adagram:rank=0", &o) == ADX_ERR_VALUE && message_has("rank"));
  CHECK(adx_create("adagram:rank=1.5", &o) == ADX_ERR_VALUE && message_has("rank"));
  CHECK(adx_create("adagram:eps=0", &o) == ADX_ERR_VALUE && message_has("eps"));
  CHECK(adx_create("fullmatrixadagrad:rank=2", &o) == ADX_ERR_SPEC && message_has("rank"));
  CHECK(!o);

  // FullMatrixAdagrad refuses a parameter above 4096 elements, writing nothing.
  o = make("fullmatrixadagrad");
  Tensor small({3}, 1), gs({3}, 1), big({4097}, 1), gb({4097}, 1);
  adx_DLTensor ps[2] = {small.t, big.t}, gr[2] = {gs.t, gb.t};
  CHECK(adx_step(o, ps, gr, 2, -1) == ADX_ERR_SHAPE && message_has("params[1]") && message_has("4096"));
  CHECK(small.f32[0] == 1 && big.f32[0] == 1);
  adx_destroy(o);

  // State is float64 (n x n, and 2 x n x k) for float32 parameters; save/load continues bitwise.
  for (const char* s : {"fullmatrixadagrad:lr=0.1", "adagram:rank=2"}) {
    adx_optimizer* a = make(s);
    Tensor p({2, 3}, 0.5f), g({2, 3}, 0.0f);
    for (size_t i = 0; i < 6; ++i) g.f32[i] = float((i * 7919) % 13) / 13 - 0.5f;
    for (int k = 0; k < 3; ++k) CHECK(adx_step(a, &p.t, &g.t, 1, -1) == ADX_OK);
    size_t state_bytes = 0, adamw_bytes = 0;
    CHECK(adx_memory_report(a, &state_bytes, &adamw_bytes) == ADX_OK);
    CHECK(state_bytes == (s[0] == 'f' ? 36 * 8 : 2 * 6 * 2 * 8));
    adx_destroy(a);
  }
}

int main() { return check::run_all(); }
