// Optimizer: the C++ API (and, below the C ABI, adx_optimizer) over the registry. The handle owns
// each parameter's state buffers in the registry's schema and runs the shared step driver.
#include "adapprox/optimizer.hpp"
#include "adapprox/quantized_state.hpp"

#include <cmath>
#include <cstring>
#include <optional>

#include "adapprox/cuda.hpp"
#include "adapprox/owned_buffer.hpp"
#include "adapprox/registry.hpp"
#include "adapprox/tensor_ops.hpp"

namespace adapprox {

struct Optimizer::ParamState {
  std::vector<std::unique_ptr<OwnedBuffer>> buffers;  // schema order; null: an absent factor
};

namespace {

[[noreturn]] void bad_state(const std::string& what) { throw Error(ErrorKind::state, what); }

// Unknown names and keys are spec errors at this level (values out of range stay value errors).
template <class Fn>
auto as_spec_error(Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    const std::string what = e.what();
    if (e.kind() == ErrorKind::value && (what.rfind("unknown optimizer", 0) == 0 || what.rfind("unknown hyperparameter", 0) == 0))
      throw Error(ErrorKind::spec, what);
    throw;
  }
}

void fill_buffer(OwnedBuffer& b, double v) {
  if (v == 0) return;
  const size_t n = b.bytes.size() / dtype_size(b.dtype);
  for (size_t i = 0; i < n; ++i) {
    if (b.dtype == DType::f64) reinterpret_cast<double*>(b.bytes.data())[i] = v;
    else reinterpret_cast<float*>(b.bytes.data())[i] = static_cast<float>(v);
  }
}

// The step buffer of the handle: a float64 scalar (exact to 2^53 steps).
std::unique_ptr<OwnedBuffer> step_scalar(int64_t step) {
  auto b = std::make_unique<OwnedBuffer>(DType::f64, std::vector<int64_t>{});
  fill_buffer(*b, static_cast<double>(step));
  return b;
}

}  // namespace

Optimizer::Optimizer(const Algorithm& algo, Hyper h) : algo_(algo), h_(std::move(h)) {}
Optimizer::~Optimizer() = default;

std::unique_ptr<Optimizer> Optimizer::create(const std::string& text) {
  Spec spec = parse_spec(text);
  if (spec.name == "adafactor") {
    // eps1 given alone means that value (not the dtype's epsilon); paper mode without either
    // uses the paper's 1e-30 (as the Python front does).
    Hyper& v = spec.values;
    if (v.count("eps1") && !v.count("eps1_auto")) v["eps1_auto"] = 0;
    if (v.count("mode") && v.at("mode") == 1 && !v.count("eps1") && !v.count("eps1_auto")) {
      v["eps1"] = 1e-30;
      v["eps1_auto"] = 0;
    }
  }
  return as_spec_error([&] {
    const Algorithm& algo = find_algorithm(spec.name);
    return std::make_unique<Optimizer>(algo, complete_hyper(algo, spec.values));
  });
}

Hyper Optimizer::defaults(const std::string& name) {
  return as_spec_error([&] {
    Hyper h;
    for (const HyperParam& p : find_algorithm(name).hyper_params()) h[p.name] = p.default_value;
    return h;
  });
}

std::string Optimizer::name() const { return algo_.name(); }

Hyper Optimizer::hyper() const {
  std::lock_guard<std::mutex> hold(mu_);
  return h_;
}

void Optimizer::step(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr,
                     void* stream) {
  std::lock_guard<std::mutex> hold(mu_);
  std::vector<Slot> slots(params.size());
  for (size_t i = 0; i < params.size(); ++i) slots[i].shard.comm = comm_;
  if (comm_) {  // where each row shard sits (a collective), before the schemas that need it
    for (size_t i = 0; i < params.size(); ++i) slots[i].param = params[i];
    locate_row_shards(slots);
  }
  bool in_driver = false;  // from there on the driver's own vote covers a refusal
  try {
    step_locked(params, grads, lr, stream, slots, in_driver);
  } catch (...) {
    if (comm_ && !in_driver) refuse_row_shards(slots, std::current_exception());  // the other ranks learn it
    throw;
  }
}

void Optimizer::step_locked(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr,
                            void* stream, std::vector<Slot>& slots, bool& in_driver) {
  if (grads.size() != params.size()) throw Error(ErrorKind::shape, "params and grads differ in count");
  if (!shapes_.empty() && params.size() != shapes_.size())
    throw Error(ErrorKind::shape, "expected " + std::to_string(shapes_.size()) +
                                      " parameters (as in earlier steps), got " + std::to_string(params.size()));
  if (!std::isfinite(lr))
    throw Error(ErrorKind::value, "lr must be a finite number (>= 0 to set this step's learning rate, < 0 to keep "
                                  "the spec's), got " + std::to_string(lr));
  Hyper h = h_;
  if (lr >= 0) h["lr"] = lr;
  h = complete_hyper(algo_, h);
  std::vector<std::unique_ptr<ParamState>> fresh(params.size());
  // State on another device than its parameter (loaded state, or parameters moved) is copied to
  // the parameter's device into `moved`, which replaces it only once the step succeeded.
  std::vector<std::vector<std::unique_ptr<OwnedBuffer>>> moved(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    ParamState* st = i < states_.size() ? states_[i].get() : nullptr;
    if (st && params[i].shape != shapes_[i])
      throw Error(ErrorKind::shape, "params[" + std::to_string(i) + "]: shape " + shape_str(params[i].shape) +
                                        " differs from its state's " + shape_str(shapes_[i]));
    const Device dev = params[i].device;
    slots[i].param = params[i];
    const auto schema = state_schema(algo_, h, schema_shape(slots[i]), params[i].dtype);
    // Scalar state (step, mu_product) stays on the host; the rest lives with the parameter.
    auto home = [&](const BufferSpec& b) { return b.shape.empty() && !b.like_param ? Device{} : dev; };
    if (!st) {  // created for this step, kept only if it succeeds
      fresh[i] = std::make_unique<ParamState>();
      for (const BufferSpec& b : schema) {
        if (b.name == kStepBuffer) {
          fresh[i]->buffers.push_back(step_scalar(0));
        } else if (b.resized) {
          fresh[i]->buffers.emplace_back();
        } else if (home(b).kind == Device::cuda) {
          const std::vector<int64_t> shape = buffer_shape(b, slots[i]);
          fresh[i]->buffers.push_back(std::make_unique<OwnedBuffer>(b.dtype, shape, dev, stream));
          OwnedBuffer& ob = *fresh[i]->buffers.back();
          int64_t count = 1;
          for (int64_t d : shape) count *= d;
          if (b.fill != 0) cuda::fill(ob.data(), count, dtype_size(b.dtype), b.fill, dev.index, stream);
        } else {
          fresh[i]->buffers.push_back(std::make_unique<OwnedBuffer>(b.dtype, buffer_shape(b, slots[i])));
          fill_buffer(*fresh[i]->buffers.back(), b.fill);
        }
      }
      st = fresh[i].get();
      slots[i].fresh = true;
    } else {
      moved[i].resize(st->buffers.size());
      for (size_t k = 0; k < st->buffers.size() && k < schema.size(); ++k)
        if (st->buffers[k] && st->buffers[k]->device != home(schema[k]))
          moved[i][k] = st->buffers[k]->copy_to(home(schema[k]), stream);
    }
    slots[i].param = params[i];
    slots[i].grad = grads[i];
    slots[i].index = i;
    for (size_t k = 0; k < st->buffers.size(); ++k) {
      OwnedBuffer* b = k < moved[i].size() && moved[i][k] ? moved[i][k].get() : st->buffers[k].get();
      slots[i].state.push_back(b ? b->ref() : absent_buffer());
    }
  }
  CollectingAllocator alloc;
  bool stopped = false;
  {
    std::optional<InterruptScope> scope;  // else a scope of the caller's, if any, applies
    if (interrupt_poll_) scope.emplace(interrupt_poll_, interrupt_ctx_);
    try {
      in_driver = true;
      adapprox::step(algo_, h, slots, alloc, stream);
    } catch (const Interrupted&) {
      stopped = true;  // keep what the parameters stepped in full made, then report
    }
  }
  states_.resize(params.size());
  shapes_.resize(params.size());
  param_bytes_.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    if (fresh[i] && slots[i].done) states_[i] = std::move(fresh[i]);
    for (size_t k = 0; k < moved[i].size(); ++k)
      if (moved[i][k] && slots[i].done) states_[i]->buffers[k] = std::move(moved[i][k]);
    shapes_[i] = params[i].shape;
    param_bytes_[i] = dtype_size(params[i].dtype);
  }
  for (auto& item : alloc.take())
    if (slots[item.slot].done) states_[item.slot]->buffers[item.buffer] = std::move(item.buf);
  if (stopped) throw Interrupted();
}

void Optimizer::set_communicator(Communicator* comm) {
  std::lock_guard<std::mutex> hold(mu_);
  comm_ = comm;
}

void Optimizer::set_interrupt(InterruptPoll poll, void* ctx) {
  std::lock_guard<std::mutex> hold(mu_);
  interrupt_poll_ = poll;
  interrupt_ctx_ = ctx;
}

MemoryReport Optimizer::memory() const {
  std::lock_guard<std::mutex> hold(mu_);
  MemoryReport r;
  auto overflow = [] { throw Error(ErrorKind::value, "memory report: byte count overflows int64"); };
  for (size_t i = 0; i < states_.size(); ++i) {
    TensorRef shape_only;
    shape_only.shape = shapes_[i];
    int64_t bytes;  // AdamW: exp_avg + exp_avg_sq in the parameter's dtype
    if (!mul_size(shape_only.numel(), 2 * int64_t(param_bytes_[i]), &bytes) || !add_size(r.adamw_bytes, bytes, &r.adamw_bytes))
      overflow();
    if (!states_[i]) continue;
    const auto schema = algo_.schema(h_, shapes_[i], DType::f32);
    for (size_t k = 0; k < states_[i]->buffers.size(); ++k)
      if (states_[i]->buffers[k] && !(k < schema.size() && schema[k].name == kStepBuffer))
        if (!add_size(r.state_bytes, static_cast<int64_t>(states_[i]->buffers[k]->nbytes()), &r.state_bytes))
          overflow();
  }
  return r;
}

std::vector<unsigned char> Optimizer::save() const {
  std::lock_guard<std::mutex> hold(mu_);
  std::vector<std::unique_ptr<StateRecord>> records;
  for (size_t i = 0; i < states_.size(); ++i) {
    if (!states_[i]) {
      records.emplace_back();
      continue;
    }
    auto r = std::make_unique<StateRecord>();
    r->shape = shapes_[i];
    const DType dt = param_bytes_[i] == 8 ? DType::f64 : DType::f32;
    const auto schema = state_schema(algo_, h_, shapes_[i], dt);
    for (size_t k = 0; k < schema.size(); ++k) {
      const OwnedBuffer* b = states_[i]->buffers[k].get();
      if (!b) continue;
      if (schema[k].name == kStepBuffer) {
        r->step = static_cast<int64_t>(*reinterpret_cast<const double*>(b->bytes.data()));
      } else {
        StateRecord::Buffer& out = r->buffers[schema[k].name];
        out.dtype = b->dtype;
        out.shape = b->shape;
        const std::vector<unsigned char> bytes = b->host_bytes();  // device state: copied back
        out.bytes.assign(bytes.begin(), bytes.end());
      }
    }
    records.push_back(std::move(r));
  }
  std::vector<const StateRecord*> ptrs;
  for (const auto& r : records) ptrs.push_back(r.get());
  return encode_state(name(), h_, ptrs);
}

namespace {

// The buffers of a saved record in schema order, for a parameter of dtype `dt`; empty if the
// record does not fit that schema (names, dtypes, fixed shapes).
bool record_fits(const std::vector<BufferSpec>& schema, const StateRecord& r) {
  size_t matched = 0;
  for (const BufferSpec& b : schema) {
    if (b.name == kStepBuffer) continue;
    auto it = r.buffers.find(b.name);
    if (it == r.buffers.end()) {
      if (b.resized) continue;
      return false;
    }
    ++matched;
    if (it->second.dtype != b.dtype) return false;
    if (!b.resized && it->second.shape != b.shape) return false;
  }
  return matched == r.buffers.size();
}

std::string names_of(const std::vector<BufferSpec>& schema) {
  std::string s;
  for (const BufferSpec& b : schema)
    if (b.name != kStepBuffer) s += (s.empty() ? "" : ", ") + b.name;
  return s.empty() ? "none" : s;
}

}  // namespace

void Optimizer::load(const unsigned char* data, size_t size, LoadHyper hyper) {
  std::lock_guard<std::mutex> hold(mu_);
  DecodedState d = decode_state(data, size, shapes_.empty() ? -1 : static_cast<int64_t>(shapes_.size()));
  if (d.name != name()) bad_state("state was saved by optimizer '" + d.name + "', this is '" + name() + "'");
  for (const auto& [k, v] : d.hyper)  // a spec can hold nothing else: spec() must stay parseable
    if (!std::isfinite(v)) bad_state("state holds a hyperparameter '" + k + "' that is not a finite number");
  // The saved hyperparameters travel with the state (as torch's load_state_dict restores
  // param_groups), unless the caller keeps the live ones; the state must fit whichever applies.
  const Hyper h = hyper == LoadHyper::keep ? h_ : complete_hyper(algo_, d.hyper);
  if (!shapes_.empty() && d.states.size() != shapes_.size())
    bad_state("saved state has " + std::to_string(d.states.size()) + " parameters, this optimizer has " +
              std::to_string(shapes_.size()));
  std::vector<std::unique_ptr<ParamState>> next(d.states.size());
  std::vector<std::vector<int64_t>> shapes(d.states.size());
  std::vector<int> bytes(d.states.size(), 4);
  for (size_t i = 0; i < d.states.size(); ++i) {
    const std::string who = "saved state of params[" + std::to_string(i) + "]";
    if (i < shapes_.size()) {
      shapes[i] = shapes_[i];
      bytes[i] = param_bytes_[i];
    }
    if (!d.states[i]) continue;
    // Moments saved at another precision are converted to this optimizer's (state_precision).
    StateRecord conformed = *d.states[i];
    conform_moments(state_schema(algo_, h, conformed.shape, DType::f32), conformed);
    const StateRecord* r = &conformed;
    if (i < shapes_.size() && r->shape != shapes_[i])
      bad_state(who + ": shape " + shape_str(r->shape) + " does not fit the parameter's " + shape_str(shapes_[i]));
    shapes[i] = r->shape;
    // The parameter dtype the record was saved for: float64 state means float64 parameters.
    std::vector<BufferSpec> schema = state_schema(algo_, h, r->shape, DType::f32);
    if (!record_fits(schema, *r)) {
      schema = state_schema(algo_, h, r->shape, DType::f64);
      if (!record_fits(schema, *r))
        bad_state(who + ": its buffers do not match " + name() + "'s state (" + names_of(schema) + ")");
      bytes[i] = 8;
    }
    auto ps = std::make_unique<ParamState>();
    Slot probe;
    probe.param = TensorRef{nullptr, bytes[i] == 8 ? DType::f64 : DType::f32, r->shape, {}};
    for (const BufferSpec& b : schema) {
      if (b.name == kStepBuffer) {
        ps->buffers.push_back(step_scalar(r->step));
      } else if (auto it = r->buffers.find(b.name); it != r->buffers.end()) {
        auto ob = std::make_unique<OwnedBuffer>(it->second.dtype, it->second.shape);
        if (!ob->bytes.empty()) std::memcpy(ob->bytes.data(), it->second.bytes.data(), ob->bytes.size());
        ps->buffers.push_back(std::move(ob));
      } else {
        ps->buffers.emplace_back();
      }
      probe.state.push_back(ps->buffers.back() ? ps->buffers.back()->ref() : absent_buffer());
    }
    probe.t = r->step + 1;
    algo_.check_state(h, probe, who);
    next[i] = std::move(ps);
  }
  h_ = h;
  states_ = std::move(next);
  shapes_ = std::move(shapes);
  param_bytes_ = std::move(bytes);
}

}  // namespace adapprox
