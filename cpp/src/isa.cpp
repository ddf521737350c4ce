#include "adapprox/isa.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "adapprox/tensor.hpp"

namespace adapprox {
namespace {

Isa detect() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::baseline;
}

struct Setting {
  Isa cap = Isa::avx512;
  std::string error;  // non-empty: ADAPPROX_ISA holds something unknown
};

Setting read_setting() {
  Setting s;
  const char* env = std::getenv("ADAPPROX_ISA");
  if (!env || !*env) return s;
  const std::string v = env;
  if (v == "baseline") s.cap = Isa::baseline;
  else if (v == "avx2") s.cap = Isa::avx2;
  else if (v == "avx512") s.cap = Isa::avx512;
  else s.error = "ADAPPROX_ISA must be baseline, avx2 or avx512 (or unset), got '" + v + "'";
  return s;
}

const Setting& setting() {
  static const Setting s = read_setting();
  return s;
}

}  // namespace

const char* isa_name(Isa level) {
  switch (level) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::baseline: break;
  }
  return "baseline";
}

Isa isa_detected() {
  static const Isa level = detect();
  return level;
}

Isa isa_active() {
  static const Isa level = static_cast<Isa>(std::min(static_cast<int>(isa_detected()), static_cast<int>(setting().cap)));
  return level;
}

void check_isa_setting() {
  if (!setting().error.empty()) throw Error(ErrorKind::value, setting().error);
}

}  // namespace adapprox
