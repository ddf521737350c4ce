// The state loader against damaged input: thousands of mutated, truncated and extended copies
// of valid state buffers must each load or be refused with Error(state), never crash. Meant to
// run under AddressSanitizer/UBSan (ADAPPROX_SANITIZE=ON), where an out-of-bounds read fails.
#include <random>
#include <vector>

#include "adapprox/optimizer.hpp"
#include "check.hpp"

using namespace adapprox;

namespace {

std::vector<unsigned char> valid_state(const char* spec) {
  auto opt = Optimizer::create(spec);
  std::vector<float> p(6 * 5, 1.0f), g(6 * 5), b(5, 0.0f), gb(5, 0.5f);
  for (size_t i = 0; i < g.size(); ++i) g[i] = float(i % 7) - 3;
  std::vector<TensorRef> ps = {{p.data(), DType::f32, {6, 5}}, {b.data(), DType::f32, {5}}};
  std::vector<TensorRef> gs = {{g.data(), DType::f32, {6, 5}}, {gb.data(), DType::f32, {5}}};
  opt->step(ps, gs);
  return opt->save();
}

}  // namespace

TEST(mutated_states_load_or_are_refused) {
  std::mt19937_64 gen(1234);
  int refused = 0, loaded = 0;
  for (const char* spec : {"adapprox:rank=2", "adam:amsgrad=1", "sgd:momentum=0.9", "adafactor:mode=1,beta1=0.9",
                           "adagram:rank=2", "fullmatrixadagrad"}) {
    const std::vector<unsigned char> good = valid_state(spec);
    for (int trial = 0; trial < 3000; ++trial) {
      std::vector<unsigned char> bad = good;
      switch (trial % 4) {
        case 0: bad[gen() % bad.size()] ^= static_cast<unsigned char>(1u << (gen() % 8)); break;
        case 1: bad.resize(gen() % bad.size()); break;
        case 2: bad.insert(bad.begin() + gen() % bad.size(), static_cast<unsigned char>(gen())); break;
        default:
          for (int k = 0; k < 8; ++k) bad[gen() % bad.size()] = static_cast<unsigned char>(gen());
      }
      auto opt = Optimizer::create(spec);
      try {
        opt->load(bad.data(), bad.size());
        ++loaded;
      } catch (const Error& e) {
        ++refused;
        CHECK(e.kind() == ErrorKind::state);
      }
    }
  }
  CHECK(refused > 11000);  // the checksum catches nearly everything
  (void)loaded;
}

TEST(spec_parser_survives_random_text) {
  std::mt19937_64 gen(99);
  const std::string alphabet = "adamsgpr:=,.e-+0123456789_ xyz";
  for (int trial = 0; trial < 20000; ++trial) {
    std::string s;
    for (size_t n = gen() % 40; n > 0; --n) s += alphabet[gen() % alphabet.size()];
    try {
      Optimizer::create(s);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::spec || e.kind() == ErrorKind::value);
    }
  }
}

int main() { return check::run_all(); }
