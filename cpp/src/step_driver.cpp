// The step driver (registry.hpp: step): everything is checked before anything is written.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <sstream>

#include "adapprox/cuda.hpp"
#include "adapprox/interrupt.hpp"
#include "adapprox/isa.hpp"
#include "adapprox/registry.hpp"
#include "adapprox/thread_pool.hpp"
#include "adapprox/tensor_ops.hpp"
#include "adapprox/interrupt_points.hpp"

namespace adapprox {
namespace {

[[noreturn]] void fail(ErrorKind kind, const std::string& who, const std::string& what) {
  throw Error(kind, who + ": " + what);
}

std::string strides_str(const TensorRef& t) {
  std::vector<int64_t> s;
  for (size_t i = 0; i < t.shape.size(); ++i) s.push_back(t.stride(i));
  return shape_str(s);
}

void check_param_and_grad(const Slot& s, const std::string& who) {
  const TensorRef &p = s.param, &g = s.grad;
  if (std::string why = size_problem(p); !why.empty()) fail(ErrorKind::shape, who + " (parameter)", why);
  if (std::string why = size_problem(g); !why.empty()) fail(ErrorKind::shape, who + " (gradient)", why);
  if (p.numel() > 0 && (!p.data || !g.data)) fail(ErrorKind::value, who, "null data pointer");
  if (p.shape != g.shape)
    fail(ErrorKind::shape, who,
         "gradient shape " + shape_str(g.shape) + " does not match parameter shape " + shape_str(p.shape));
  if (p.device != g.device)
    fail(ErrorKind::device, who, "the gradient is on " + device_str(g.device) + ", the parameter on " +
                                     device_str(p.device) + "; they must be on the same device");
  if (p.dtype == DType::u8)
    fail(ErrorKind::type, who, "parameter dtype uint8; expected float32, float64, float16 or bfloat16");
  if (p.dtype != g.dtype)
    fail(ErrorKind::type, who,
         std::string("gradient dtype ") + dtype_name(g.dtype) + " does not match parameter dtype " + dtype_name(p.dtype));
  if (!p.dense())
    fail(ErrorKind::value, who, "the parameter's layout (strides " + strides_str(p) + ") is not dense; adapprox steps "
                                "dense layouts in place (contiguous, channels_last, any permutation)");
  if (!g.same_layout(p))
    fail(ErrorKind::value, who, "the gradient's strides " + strides_str(g) + " differ from the parameter's " +
                                    strides_str(p) + "; adapprox steps them in place together and never copies");
}

// Reads the "step" buffer: a whole number >= 0 whose successor the dtype still represents.
int64_t read_step(const TensorRef& b, const std::string& who) {
  if (!b.shape.empty() && !(b.shape.size() == 1 && b.shape[0] == 1))
    fail(ErrorKind::state, who, "state 'step' must be a scalar (0-d), got shape " + shape_str(b.shape));
  if (!b.data) fail(ErrorKind::state, who, "state 'step' is missing (null data)");
  if (b.device.kind != Device::cpu)
    fail(ErrorKind::device, who, "state 'step' is on " + device_str(b.device) + "; it must be on the host (cpu)");
  double v;
  double limit;
  if (b.dtype == DType::f32) {
    float f;
    std::memcpy(&f, b.data, 4);
    v = f;
    limit = 16777215.0;  // 2^24 - 1: float32 counts exactly up to 2^24
  } else if (b.dtype == DType::f64) {
    std::memcpy(&v, b.data, 8);
    limit = 9007199254740991.0;  // 2^53 - 1
  } else {
    fail(ErrorKind::state, who, std::string("state 'step' must be float32 or float64, got ") + dtype_name(b.dtype));
  }
  if (!(v >= 0 && v == std::floor(v)))
    fail(ErrorKind::state, who, "state 'step' must be a whole number >= 0, got " + std::to_string(v));
  if (v >= limit)
    fail(ErrorKind::state, who, "state 'step' = " + std::to_string(v) + " cannot be advanced exactly in " +
                                    dtype_name(b.dtype));
  return static_cast<int64_t>(v);
}

void write_step(const TensorRef& b, int64_t t) {
  if (b.dtype == DType::f32) {
    const float f = static_cast<float>(t);
    std::memcpy(b.data, &f, 4);
  } else {
    const double d = static_cast<double>(t);
    std::memcpy(b.data, &d, 8);
  }
}

void check_buffer(const BufferSpec& spec, const TensorRef& b, const Slot& s, const std::string& who) {
  const TensorRef& param = s.param;
  if (std::string why = size_problem(b); !why.empty()) fail(ErrorKind::shape, who + " state '" + spec.name + "'", why);
  const auto name_of = [&] { return "state '" + spec.name + "'"; };  // built only for a message
  if (spec.resized && (!b.data || b.numel() == 0)) return;  // absent (or empty): the step creates it
  const bool host_scalar = spec.shape.empty() && !spec.like_param;  // read and written by the host
  const Device want = host_scalar ? Device{} : param.device;
  if (b.device != want)
    fail(ErrorKind::device, who, name_of() + " is on " + device_str(b.device) + "; it must be on " + device_str(want) +
                                     (host_scalar ? " (scalar state stays on the host)" : " (with its parameter)"));
  const bool scalar_ok = spec.shape.empty() && !spec.like_param && (b.dtype == DType::f32 || b.dtype == DType::f64);
  if (b.dtype != spec.dtype && !scalar_ok)
    fail(ErrorKind::state, who, name_of() + " must be " + dtype_name(spec.dtype) + ", got " + dtype_name(b.dtype));
  if (spec.resized) {
    if (!b.contiguous()) fail(ErrorKind::state, who, name_of() + " must be C-contiguous");
  } else if (const auto want_shape = buffer_shape(spec, s); b.shape != want_shape) {
    fail(ErrorKind::state, who, name_of() + " must have shape " + shape_str(want_shape) + ", got " + shape_str(b.shape) +
                                    (s.shard.sharded() && spec.follows_rows ? " (this rank's rows)" : ""));
  } else if (spec.like_param ? !b.same_layout(param) : !b.contiguous()) {
    fail(ErrorKind::state, who, name_of() + " has strides " + strides_str(b) +
                                    (spec.like_param ? ", the parameter has " + strides_str(param) +
                                                           " (state must share the parameter's layout)"
                                                     : "; it must be C-contiguous"));
  }
  if (b.numel() > 0 && !b.data) fail(ErrorKind::state, who, name_of() + " has a null data pointer");
}

// No buffer that is written may share memory with any other buffer of the call.
void check_no_overlap(const std::vector<const Slot*>& slots, const std::vector<const std::vector<BufferSpec>*>& schemas) {
  struct Range {
    uintptr_t lo, hi;
    bool written;
    size_t slot;
    int buffer;  // -2 the parameter, -1 the gradient, k >= 0 state buffer k
  };
  const auto what = [&](const Range& x) -> std::string {
    if (x.buffer == -2) return "the parameter";
    if (x.buffer == -1) return "the gradient";
    return "state '" + (*schemas[x.slot])[x.buffer].name + "'";
  };
  std::vector<Range> r;
  auto add = [&](const TensorRef& t, bool written, size_t i, int buffer) {
    const int64_t bytes = extent_bytes(t);
    if (bytes > 0 && t.data) {
      const auto lo = reinterpret_cast<uintptr_t>(t.data);
      r.push_back({lo, lo + static_cast<uintptr_t>(bytes), written, i, buffer});
    }
  };
  for (size_t i = 0; i < slots.size(); ++i) {
    add(slots[i]->param, true, i, -2);
    add(slots[i]->grad, false, i, -1);
    for (size_t k = 0; k < slots[i]->state.size(); ++k) add(slots[i]->state[k], true, i, static_cast<int>(k));
  }
  std::sort(r.begin(), r.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  const Range* any = nullptr;      // the range reaching furthest so far
  const Range* written = nullptr;  // the written range reaching furthest so far
  for (const Range& x : r) {
    const Range* hit = nullptr;
    if (x.written && any && any->hi > x.lo) hit = any;
    if (!x.written && written && written->hi > x.lo) hit = written;
    if (hit)
      throw Error(ErrorKind::value, "params[" + std::to_string(x.slot) + "]: " + what(x) + " shares memory with " +
                                        what(*hit) + " of params[" + std::to_string(hit->slot) +
                                        "] (aliased buffers: every tensor of a step must be distinct)");
    if (!any || x.hi > any->hi) any = &x;
    if (x.written && (!written || x.hi > written->hi)) written = &x;
  }
}

// Numbers a group's slots after those of the groups before it.
class OffsetAllocator final : public Allocator {
 public:
  OffsetAllocator(Allocator& inner, size_t base) : inner_(inner), base_(base) {}
  TensorRef allocate(size_t slot, size_t buffer, DType dtype, const std::vector<int64_t>& shape) override {
    return inner_.allocate(base_ + slot, buffer, dtype, shape);
  }
  TensorRef allocate_on(const Device& device, void* stream, size_t slot, size_t buffer, DType dtype,
                        const std::vector<int64_t>& shape) override {
    return inner_.allocate_on(device, stream, base_ + slot, buffer, dtype, shape);
  }

 private:
  Allocator& inner_;
  size_t base_;
};

// The distinct communicators of a call, in order of first use, each with its row-sharded slots
// (0-D parameters have no rows to split: they are stepped whole, their communicator ignored).
struct CommSlots {
  Communicator* comm;
  std::vector<Slot*> slots;
};

std::vector<CommSlots> sharded_slots(std::vector<Group>& groups) {
  std::vector<CommSlots> out;
  for (Group& g : groups)
    for (Slot& s : g.slots) {
      // 0-D parameters have no rows to split; on one rank a shard is the whole tensor.
      if (s.shard.comm && (s.param.shape.empty() || s.shard.comm->size() == 1)) s.shard = RowShard{};
      if (!s.shard.comm) continue;
      auto it = std::find_if(out.begin(), out.end(), [&](const CommSlots& c) { return c.comm == s.shard.comm; });
      if (it == out.end()) out.push_back({s.shard.comm, {}}), it = out.end() - 1;
      it->slots.push_back(&s);
    }
  return out;
}

[[noreturn]] void comm_fail(const std::string& what) { throw Error(ErrorKind::comm, what); }

// Where each shard sits: every rank's row count of every sharded slot, summed over ranks (a
// vector with one entry per (slot, rank), each rank filling its own). First the slot counts,
// so that ranks which disagree fail together instead of mismatching collectives.
void locate_shards(const CommSlots& c) {
  const int size = c.comm->size(), me = c.comm->rank();
  if (size < 1 || me < 0 || me >= size)
    comm_fail("the communicator reports rank " + std::to_string(me) + " of size " + std::to_string(size));
  std::vector<double> counts(size, 0.0);
  counts[me] = static_cast<double>(c.slots.size());
  c.comm->allreduce_sum(counts.data(), size);
  for (int r = 0; r < size; ++r)
    if (counts[r] != counts[me]) {
      std::ostringstream os;
      os << "ranks disagree on the number of row-sharded parameters in this step (rank " << me << ": "
         << c.slots.size() << ", rank " << r << ": " << counts[r] << "); every rank must step the same parameters";
      comm_fail(os.str());
    }
  std::vector<double> rows(c.slots.size() * size, 0.0);
  for (size_t i = 0; i < c.slots.size(); ++i) rows[i * size + me] = static_cast<double>(c.slots[i]->param.shape[0]);
  c.comm->allreduce_sum(rows.data(), static_cast<int64_t>(rows.size()));
  for (size_t i = 0; i < c.slots.size(); ++i) {
    RowShard& sh = c.slots[i]->shard;
    sh.global_rows = sh.row_offset = 0;
    sh.located = true;
    for (int r = 0; r < size; ++r) {
      const auto n = static_cast<int64_t>(rows[i * size + r]);
      sh.global_rows += n;
      if (r < me) sh.row_offset += n;
    }
  }
}

// Every rank says whether it refused the call; if any did, every rank throws before anything is
// written (the refusing rank its own error), so no rank is left waiting in a collective.
void vote(const std::vector<CommSlots>& comms, const std::exception_ptr& refused) {
  std::string other;  // the first refusal seen elsewhere; every communicator votes first
  for (const CommSlots& c : comms) {
    const int size = c.comm->size(), me = c.comm->rank();
    std::vector<double> no(size, 0.0);
    no[me] = refused ? 1.0 : 0.0;
    c.comm->allreduce_sum(no.data(), size);
    for (int r = 0; r < size && other.empty(); ++r)
      if (no[r] != 0 && r != me)
        other = "rank " + std::to_string(r) + " of " + std::to_string(size) +
                " refused this step (its error is raised there); no rank stepped, nothing was written";
  }
  if (refused) std::rethrow_exception(refused);
  if (!other.empty()) comm_fail(other);
}

}  // namespace

void step_groups(const Algorithm& algo, std::vector<Group>& groups, Allocator& alloc, void* stream) {
  // 1. Check everything: the environment, hyperparameters, every slot of every group, memory
  //    shared anywhere.
  //    Row-sharded parameters first learn where their shard sits; then each rank checks its own
  //    slots and all vote, so that a call refused on one rank is refused on all.
  const std::vector<CommSlots> comms = sharded_slots(groups);
  for (const CommSlots& c : comms)
    if (!c.slots[0]->shard.located) locate_shards(c);
  std::vector<Hyper> hs;
  std::vector<const Slot*> all;  // every slot of every group, for the overlap check
  // Each slot's schema; slots of one group with the same shape and dtype share one.
  std::deque<std::vector<BufferSpec>> unique;
  std::vector<const std::vector<BufferSpec>*> schemas;
  std::exception_ptr refused;
  Device device{};
  try {
    check_isa_setting();
    prepare_threads();
    size_t i = 0;
    for (Group& g : groups) {
      hs.push_back(complete_hyper(algo, g.hyper));
      std::map<std::pair<std::vector<int64_t>, DType>, const std::vector<BufferSpec>*> seen;
      for (Slot& s : g.slots) {
        const std::string who = "params[" + std::to_string(i++) + "]";
        check_param_and_grad(s, who);
        const std::vector<int64_t> shape = schema_shape(s);
        const std::vector<BufferSpec>*& cached = seen[{shape, s.param.dtype}];
        if (!cached) {
          unique.push_back(state_schema(algo, hs.back(), shape, s.param.dtype));
          cached = &unique.back();
        }
        schemas.push_back(cached);
        const auto& schema = *cached;
        if (s.state.size() != schema.size()) {
          std::string names;
          for (const auto& b : schema) names += (names.empty() ? "" : ", ") + b.name;
          fail(ErrorKind::state, who, algo.name() + " needs " + std::to_string(schema.size()) + " state buffers (" +
                                          names + "), got " + std::to_string(s.state.size()));
        }
        const bool counted = !schema.empty() && schema[0].name == kStepBuffer;
        s.t = counted ? read_step(s.state[0], who) + 1 : 0;
        for (size_t k = counted ? 1 : 0; k < schema.size(); ++k) check_buffer(schema[k], s.state[k], s, who);
        algo.check_state(hs.back(), s, who);
        all.push_back(&s);
      }
    }
    check_no_overlap(all, schemas);
    // One device per call: the first parameter's.
    device = all.empty() ? Device{} : all[0]->param.device;
    for (size_t k = 0; k < all.size(); ++k)
      if (all[k]->param.device != device)
        fail(ErrorKind::device, "params[" + std::to_string(k) + "]", "is on " + device_str(all[k]->param.device) +
                                    ", params[0] on " + device_str(device) + "; one step call takes one device");
    if (device.kind == Device::cuda && !comms.empty())
      fail(ErrorKind::device, "params[0]", "row-sharded parameters (a communicator) are stepped on the CPU only in "
                                           "this release; the CUDA backend steps whole parameters");
    if (device.kind == Device::cuda) {
      try {
        cuda::require_device(device.index);
      } catch (const Error& e) {
        fail(ErrorKind::device, "params[0]", "on " + device_str(device) + ": " + e.what());
      }
    }
  } catch (...) {
    refused = std::current_exception();
  }
  vote(comms, refused);
  // 2. Step, group by group; allocations are numbered by the slot's position over all groups.
  //    An interrupt (interrupt.hpp) stops between parameters: the step counters of the slots
  //    stepped in full advance, the rest stay as they were.
  size_t base = 0;
  for (Group& g : groups)
    for (Slot& s : g.slots) s.done = false;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    OffsetAllocator shifted(alloc, base);
    bool stopped = false;
    try {
      check_interrupt();
      if (device.kind == Device::cuda) algo.step_cuda(hs[gi], groups[gi].slots, shifted, stream);
      else algo.step(hs[gi], groups[gi].slots, shifted);
      for (Slot& s : groups[gi].slots) s.done = true;
    } catch (const Interrupted&) {
      stopped = true;
    }
    for (size_t k = 0; k < groups[gi].slots.size(); ++k) {
      Slot& s = groups[gi].slots[k];
      if (s.done && !schemas[base + k]->empty() && (*schemas[base + k])[0].name == kStepBuffer)
        write_step(s.state[0], s.t);
    }
    if (stopped) throw Interrupted();
    base += groups[gi].slots.size();
  }
}

std::vector<int64_t> buffer_shape(const BufferSpec& spec, const Slot& s) {
  if (spec.like_param) return s.param.shape;
  std::vector<int64_t> shape = spec.shape;
  if (s.shard.sharded() && spec.follows_rows && !shape.empty() && !s.param.shape.empty()) shape[0] = s.param.shape[0];
  return shape;
}

namespace {
std::vector<Group> as_group(std::vector<Slot>& slots) {
  std::vector<Group> groups(1);
  groups[0].slots = std::move(slots);
  return groups;
}
}  // namespace

void locate_row_shards(std::vector<Slot>& slots) {
  std::vector<Group> groups = as_group(slots);
  try {
    for (const CommSlots& c : sharded_slots(groups)) locate_shards(c);
  } catch (...) {
    slots = std::move(groups[0].slots);
    throw;
  }
  slots = std::move(groups[0].slots);
}

void refuse_row_shards(std::vector<Slot>& slots, std::exception_ptr refused) {
  std::vector<Group> groups = as_group(slots);  // the call is refused: the slots are not handed back
  const std::vector<CommSlots> comms = sharded_slots(groups);
  for (const CommSlots& c : comms)
    if (!c.slots[0]->shard.located) locate_shards(c);
  vote(comms, refused);
  std::rethrow_exception(refused);  // (vote has rethrown it already)
}

std::vector<int64_t> schema_shape(const Slot& s) {
  std::vector<int64_t> shape = s.param.shape;
  if (s.shard.sharded() && !shape.empty()) shape[0] = s.shard.global_rows;
  return shape;
}

void step(const Algorithm& algo, const Hyper& given, std::vector<Slot>& slots, Allocator& alloc, void* stream) {
  std::vector<Group> groups(1);
  groups[0].hyper = given;
  groups[0].slots = std::move(slots);
  try {
    step_groups(algo, groups, alloc, stream);
  } catch (...) {
    slots = std::move(groups[0].slots);
    throw;
  }
  slots = std::move(groups[0].slots);
}

}  // namespace adapprox
