// The instruction set the CPU backend's hot loops run at, chosen once at run time.
//
// Every loop is compiled three times on x86-64 Linux with GCC: baseline x86-64, x86-64-v3
// (AVX2 + FMA) and x86-64-v4 (AVX-512). All three round identically, so results do not depend on
// the CPU: the compiler never contracts a * b + c into a fused multiply-add (-ffp-contract=off,
// in every version), and the multiply-adds that are fused on purpose (those torch's vectorised
// CPU kernels fuse, so float32 matches torch.optim bit for bit) are fused in every version,
// with std::fma (one instruction on v3/v4, a libm call on the baseline path).
//
// ADAPPROX_ISA=baseline|avx2|avx512 caps the level (for tests and comparisons); a level above
// what the CPU has runs at the CPU's best. Any other value makes every step fail with an error
// naming the variable.
#pragma once

namespace adapprox {

enum class Isa : int { baseline = 0, avx2 = 3, avx512 = 4 };

const char* isa_name(Isa level);  // "baseline", "avx2", "avx512"
Isa isa_detected();               // the best level this CPU (and this build) supports
Isa isa_active();                 // what hot loops run at: isa_detected() capped by ADAPPROX_ISA
// Throws Error(value) naming ADAPPROX_ISA when it is set to something else than the three names.
void check_isa_setting();

}  // namespace adapprox
