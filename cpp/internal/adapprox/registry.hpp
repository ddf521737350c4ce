// The registry: one entry per optimizer, the only list of them. Each entry declares its name,
// its hyperparameters (defaults and ranges) and its state schema, and steps caller-owned
// buffers. The C ABI, the C++ API, the Python bindings, the fuzzers and the README tables all
// read it. The core owns no per-parameter state: every state buffer is passed in by the front
// (torch tensors, NumPy arrays, or the C ABI handle's own buffers) and written in place.
#pragma once
#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "adapprox/communicator.hpp"
#include "adapprox/tensor.hpp"
#include "adapprox/tensor_ops.hpp"

namespace adapprox {

using Hyper = std::map<std::string, double>;

// One hyperparameter: numbers throughout (booleans 0/1, choices small integers), checked
// against [lo, hi] (bounds open where said) and, for `whole`, to be an integer.
struct HyperParam {
  std::string name;
  double default_value;
  double lo, hi;
  bool lo_open = false, hi_open = false;
  bool whole = false;  // an integer (flags and choices too)
  std::string doc;     // one line, for the README table and errors
};

// A dense moment's sign, which its low-precision code depends on (quantized_state.hpp).
enum class MomentKind { none, signed_value, nonnegative };

// One state buffer of one parameter, resolved for its shape and dtype.
struct BufferSpec {
  std::string name;             // torch's name wherever torch has the optimizer
  DType dtype;                  // what the step requires
  std::vector<int64_t> shape;   // fixed buffers; for `resized` ones the shape of an empty start
  bool like_param = false;      // the parameter's shape and layout (strides) as well
  bool resized = false;         // shape chosen by the step (low-rank factors): may be absent
                                // (data == nullptr) and is replaced through the Allocator
  double fill = 0;              // initial value of a fixed buffer
  std::string fill_from;        // or the hyperparameter that gives it (Adagrad's sum)
  bool follows_rows = false;    // split over ranks with the parameter's rows (like_param ones
                                // always are): a row-sharded parameter's buffer holds its rows
  MomentKind moment = MomentKind::none;  // a dense moment (any precision): what it holds
  std::string absmax_of;        // an 8-bit moment's block absmax: the moment's name
};

// The step counter, where an optimizer keeps one (all but SGD, as in torch), is the first buffer
// of its schema: a 0-d buffer named "step" holding the number of steps taken, float32 (torch's
// choice) or float64; the driver reads it, the step uses t = step + 1, and the driver writes t
// back once the step succeeded.
constexpr const char* kStepBuffer = "step";

// An absent `resized` buffer (before the first step): no data, zero elements.
inline TensorRef absent_buffer() { return TensorRef{nullptr, DType::f32, {0}, {}}; }

// One parameter in one step.
struct Slot {
  TensorRef param;               // written in place
  TensorRef grad;                // read only
  std::vector<TensorRef> state;  // schema order, "step" first where there is one
  uint64_t index = 0;            // stable parameter index (part of random keys)
  bool fresh = false;            // the front created every state buffer for this step (first step)
  int64_t t = 0;                 // this step's count (stored step + 1; 0 without a counter), set by the driver
  bool done = false;             // stepped in full (set by algorithms that can stop between parameters)
  RowShard shard;                // the front sets shard.comm for one row shard of a larger
                                 // tensor (communicator.hpp); the driver fills in the rest
};

// New buffers for `resized` state. The front owns what it hands out; a buffer it returns is
// zero-filled, C-contiguous, cache-line aligned, and replaces slot.state[buffer] in the front's
// state once the whole step succeeded. May be called from worker threads (one caller per
// (slot, buffer)).
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual TensorRef allocate(size_t slot, size_t buffer, DType dtype, const std::vector<int64_t>& shape) = 0;
  // The same on `device` (CUDA: allocated in the order of `stream`); the default gives host
  // memory only and refuses a device with Error(device).
  virtual TensorRef allocate_on(const Device& device, void* stream, size_t slot, size_t buffer, DType dtype,
                                const std::vector<int64_t>& shape);
};

class Algorithm {
 public:
  virtual ~Algorithm() = default;
  virtual std::string name() const = 0;
  virtual std::string summary() const = 0;  // one line for tables
  virtual const std::vector<HyperParam>& hyper_params() const = 0;
  // Rules across hyperparameters, beyond each one's range (nesterov needs momentum > 0, ...).
  // `h` is complete and in range. Throws Error(value).
  virtual void validate(const Hyper& h) const {}
  // The state buffers of a parameter of this shape and dtype under `h`, "step" first where kept.
  virtual std::vector<BufferSpec> schema(const Hyper& h, const std::vector<int64_t>& shape, DType dtype) const = 0;
  // Complex parameters stepped as their real views (torch's view_as_real semantics).
  virtual bool supports_complex() const { return false; }
  // Checks what the driver cannot: the shapes of `resized` buffers (against each other and the
  // parameter), values that must hold (a rank in range). Throws Error(state) naming the buffer;
  // `who` is "params[i]".
  virtual void check_state(const Hyper& h, const Slot& s, const std::string& who) const {}
  // Steps every slot: everything was validated, nothing may be refused now. Slots may share no
  // memory (the driver checked).
  virtual void step(const Hyper& h, std::vector<Slot>& slots, Allocator& alloc) const = 0;
  // The same step for slots whose buffers live on one CUDA device (scalar state on the host),
  // queued on `stream` (cudaStream_t). Optimizers without a CUDA step keep this default, which
  // refuses with Error(device).
  virtual void step_cuda(const Hyper& h, std::vector<Slot>& slots, Allocator& alloc, void* stream) const;
};

// The shape a parameter's schema is resolved for: its own, or for a row shard the whole tensor's.
std::vector<int64_t> schema_shape(const Slot& s);
// The shape of a fixed state buffer of `s` (`spec` from its schema): a row shard's own rows.
std::vector<int64_t> buffer_shape(const BufferSpec& spec, const Slot& s);
// Row shards: fills shard.global_rows and row_offset of the slots with a communicator (a
// collective: every rank calls it for its shards of the same parameters; step_groups does it for
// slots not yet located). Error(comm) when the ranks' parameter counts differ.
void locate_row_shards(std::vector<Slot>& slots);
// A front that refuses a call before reaching the driver: the other ranks learn it (the same
// collectives as step_groups' check: locating, then the vote), then `refused` is rethrown.
[[noreturn]] void refuse_row_shards(std::vector<Slot>& slots, std::exception_ptr refused);

// Every registered optimizer, in a fixed order.
const std::vector<const Algorithm*>& all_algorithms();
// The one registered under `name`; Error(value) listing the known names otherwise.
const Algorithm& find_algorithm(const std::string& name);
// `given` completed with the defaults and checked: unknown keys, ranges, whole numbers, then
// algo.validate. Throws Error(value) naming the hyperparameter.
Hyper complete_hyper(const Algorithm& algo, const Hyper& given);
// The resolved schema of one parameter (after complete_hyper).
std::vector<BufferSpec> state_schema(const Algorithm& algo, const Hyper& h, const std::vector<int64_t>& shape,
                                     DType dtype);

// The step driver, used by every front: completes and checks `given`, validates every slot
// (parameter and gradient, each state buffer against the schema, the algorithm's own checks,
// no two buffers sharing memory) before anything is written, then steps and advances each
// "step" buffer. A refused call leaves every buffer untouched. Errors name "params[i]" and the
// buffer.
void step(const Algorithm& algo, const Hyper& given, std::vector<Slot>& slots, Allocator& alloc, void* stream = nullptr);

// Several parameter groups, each with its own hyperparameters, checked all together before any
// is stepped (a refused call leaves every group untouched). Slots are numbered across groups
// in order ("params[i]", and the Allocator's slot).
struct Group {
  Hyper hyper;
  std::vector<Slot> slots;
};
// Every buffer of a call is on one device, the parameters' (scalar state such as "step" on the
// host); CUDA steps are queued on `stream` (a cudaStream_t; nullptr: the legacy default stream).
void step_groups(const Algorithm& algo, std::vector<Group>& groups, Allocator& alloc, void* stream = nullptr);

}  // namespace adapprox
