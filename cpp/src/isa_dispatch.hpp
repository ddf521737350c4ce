// Internal: run a loop at the instruction set isa_active() names (the policy is in adapprox/isa.hpp).
#pragma once
#include <cmath>

#include "adapprox/isa.hpp"

namespace adapprox {

// Calls f() compiled whole (flatten inlines everything f calls) for isa_active(): x86-64-v4 or
// v3 on x86-64 Linux with GCC, plain f() elsewhere. Contraction stays off in each version.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define ADAPPROX_ISA_CLONES 1
#define ADAPPROX_ISA(arch) __attribute__((target("arch=" arch), optimize("fp-contract=off"), flatten))
template <class F>
ADAPPROX_ISA("x86-64-v4")
void run_v4_isa(const F& f) { f(); }
template <class F>
ADAPPROX_ISA("x86-64-v3")
void run_v3_isa(const F& f) { f(); }
#endif

template <class F>
inline void with_best_isa(const F& f) {
#ifdef ADAPPROX_ISA_CLONES
  switch (isa_active()) {
    case Isa::avx512: return run_v4_isa(f);
    case Isa::avx2: return run_v3_isa(f);
    case Isa::baseline: break;
  }
#endif
  f();
}

}  // namespace adapprox
