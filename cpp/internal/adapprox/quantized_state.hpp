// Low-precision state: dense moments kept in bf16 or as 8-bit blockwise codes, and stochastic
// rounding of bf16 parameters (the formats are in cpp/src/math/quantize.hpp).
//
// Hyperparameters (on every optimizer that keeps dense moments):
//   state_precision  0: the math dtype (float32; float64 for float64 parameters), 1: bf16,
//                    2: 8-bit codes with one float32 absmax per block of kQuantBlock elements
//   stochastic_rounding  1: bf16 parameters are written with stochastic rounding
// An 8-bit moment `name` is two buffers: `name` (uint8 codes, like the parameter) and
// `name_absmax` (float32, one per block of kQuantBlock elements in memory order). A step never
// holds more than one block of a moment in float32: each block is decoded, updated and encoded
// again in one pass. Second moments round stochastically, keyed by (parameter index, step,
// buffer, element): results are reproducible and do not depend on the thread count; first
// moments round to nearest (why: cpp/src/math/quantize.hpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "adapprox/optimizer.hpp"
#include "adapprox/registry.hpp"

namespace adapprox {

enum class StatePrecision { f32 = 0, bf16 = 1, q8 = 2 };
constexpr int64_t kQuantBlock = 256;

inline int64_t quant_blocks(int64_t numel) { return (numel + kQuantBlock - 1) / kQuantBlock; }
StatePrecision state_precision(const Hyper& h);  // "state_precision", f32 where absent
bool stochastic_rounding(const Hyper& h);        // "stochastic_rounding", off where absent
const char* precision_name(StatePrecision p);    // "fp32", "bf16", "8bit"

// The hyperparameter entries (appended to an optimizer's list).
HyperParam state_precision_param();
HyperParam stochastic_rounding_param();

// The buffers of one dense moment under `prec` (appended to `out`): like the parameter, math
// dtype `math` at full precision, then (8-bit) its absmax.
void add_moment(std::vector<BufferSpec>& out, const std::string& name, MomentKind kind, DType math,
                const std::vector<int64_t>& shape, StatePrecision prec);
// How many state buffers a moment occupies (2 for 8-bit codes and their absmax).
inline size_t moment_buffers(StatePrecision p) { return p == StatePrecision::q8 ? 2 : 1; }

// One dense moment as stored, for block-wise access.
struct Moment {
  StatePrecision prec = StatePrecision::f32;
  MomentKind kind = MomentKind::signed_value;
  void* data = nullptr;     // float (f32), bf16 bits, or uint8 codes; element 0 of the moment
  float* absmax = nullptr;  // 8-bit: one per block
  uint64_t key = 0;         // stochastic rounding key of this step and buffer
  bool start_fill = false;  // decode as `fill` everywhere (an 8-bit moment's first step)
  float fill = 0;
};
// The moment held in slot.state[at] (and its absmax at [at + 1] for 8-bit codes).
Moment moment_of(const Slot& s, size_t at, MomentKind kind, uint64_t buffer_id);

// Elements [lo, lo + n) of a moment into / out of float32; lo is a multiple of kQuantBlock and
// [lo, lo + n) is whole blocks (the last may end with the moment): each block's absmax is
// recomputed on store. f32 moments are copied.
void load_block(const Moment& m, int64_t lo, int64_t n, float* out);
void store_block(const Moment& m, int64_t lo, int64_t n, const float* in);

// The stochastic rounding key of (parameter index, step, buffer).
uint64_t rounding_key(uint64_t index, int64_t step, uint64_t buffer);
constexpr uint64_t kParamRoundingBuffer = 0xffff;  // the parameter's own key
// float32 -> bf16 with stochastic rounding; element i of dst is element first + i of its tensor.
void store_bf16_stochastic(const float* src, void* dst, int64_t n, uint64_t key, int64_t first);
// The same in place: each x[i] becomes the bf16 value it rounds to (exactly representable).
void round_bf16_stochastic(float* x, int64_t n, uint64_t key);

// A whole moment of `numel` elements converted between precisions (loading state saved at
// another precision): decoded from `src`, encoded into `dst` (both described by Moments;
// float64 moments are not converted here).
void convert_moment(const Moment& src, const Moment& dst, int64_t numel);

// The check every optimizer with low-precision state runs in check_state: float32, bf16 or
// fp16 parameters only (float64 parameters keep float64 moments), on the CPU, not row-sharded;
// an optimizer that walks its moments in C order (`c_order_user`: its name) needs C-contiguous
// parameters. Throws Error(value) (Error(device) on CUDA).
void check_precision_supported(const Hyper& h, const Slot& s, const std::string& who,
                               const char* c_order_user = nullptr);

// Saved state at another precision made to fit `schema`: every dense moment of the record
// whose dtype differs from the schema's (float32, bf16 or 8-bit codes with their absmax) is
// decoded and encoded again at the schema's precision, element by element in the order the
// buffer's bytes hold them. Other mismatches are left for the caller's check to report.
void conform_moments(const std::vector<BufferSpec>& schema, StateRecord& r);

}  // namespace adapprox
