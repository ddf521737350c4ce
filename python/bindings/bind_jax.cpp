// adapprox.jax: every optimizer's step as one XLA FFI custom call (CPU), registered by the
// Python package through jax.ffi. The call steps all parameters of a pytree at once, on the
// buffers XLA hands over (outputs aliased to inputs: no copy), with the same kernels as every
// other front.
//
// Operands: lr (f32 or f64 scalar), count (i32 scalar: steps taken; 0 = the state is fresh), then per
// parameter: param, grad, and its state in schema order, where a `resized` buffer (Adapprox's
// and AdaGram's factors, k columns) is held at a fixed capacity, rows x cap, beside an i32
// scalar with its current k. Results: per parameter, param and the same state operands, each
// result aliased to its operand. Attributes: `algorithm` (string) and every hyperparameter
// (scalars, as the C++ API's spec keys); `lr` among them when it is constant (then the lr
// operand is not read).
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "adapprox/as_rsi.hpp"
#include "adapprox/owned_buffer.hpp"
#include "adapprox/registry.hpp"
#include "binders.hpp"
#include "xla_ffi.hpp"

namespace py = pybind11;

namespace adapprox {
namespace {

namespace ffi = xla_ffi;

ffi::Error* make_error(const ffi::CallFrame* frame, int32_t code, const std::string& message) {
  ffi::ErrorCreateArgs args{};
  args.struct_size = ffi::kErrorCreateArgsSize;
  args.message = message.c_str();  // copied by XLA
  args.errc = code;
  return frame->api->error_create(&args);
}

// The metadata query: which API version this handler speaks, and no traits.
ffi::Error* answer_metadata(ffi::CallFrame* frame) {
  auto* ext = reinterpret_cast<ffi::MetadataExtension*>(frame->extension_start);
  ffi::Metadata* md = ext->metadata;
  if (md->struct_size < ffi::kMetadataSizeV1)
    return make_error(frame, ffi::kInternal, "adapprox: XLA's FFI metadata struct is older than API 0.1");
  md->api_version = ffi::ApiVersion{ffi::kApiVersionSize, nullptr, ffi::kApiMajor, ffi::kApiMinor};
  md->traits = 0;
  if (md->struct_size >= ffi::kMetadataSizeV3) md->state_type_id = ffi::TypeId{0};
  return nullptr;
}

bool dtype_of(int32_t xla, DType* out) {
  switch (xla) {
    case ffi::kF32: return *out = DType::f32, true;
    case ffi::kF64: return *out = DType::f64, true;
    case ffi::kF16: return *out = DType::f16, true;
    case ffi::kBF16: return *out = DType::bf16, true;
    case ffi::kU8: return *out = DType::u8, true;  // 8-bit moment codes
    default: return false;
  }
}

std::vector<int64_t> dims_of(const ffi::Buffer* b) { return std::vector<int64_t>(b->dims, b->dims + b->rank); }

// A result must be its operand's twin (same dtype and dims) before anything is copied into it.
void check_twin(const ffi::Buffer* in, const ffi::Buffer* out, const std::string& who) {
  if (in->dtype != out->dtype || in->rank != out->rank || !std::equal(in->dims, in->dims + in->rank, out->dims))
    throw Error(ErrorKind::shape, who + ": its result must have the operand's dtype and shape");
}

// The most columns the step may give a factor of a parameter of `shape` (Adapprox: its rank
// bounds for the (shape[0], rest) view); -1 where the algorithm sets no bound here.
int64_t column_bound(const std::string& algorithm, const Hyper& h, const std::vector<int64_t>& shape) {
  if (algorithm != "adapprox" || shape.size() < 2) return -1;
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  RsiOptions opt;
  opt.rank = static_cast<int>(h.at("rank"));
  opt.min_rank = static_cast<int>(h.at("min_rank"));
  opt.max_rank = static_cast<int>(h.at("max_rank"));
  int lo = 0, hi = 0;
  resolve_rank_bounds(opt, shape[0], n, lo, hi);
  return hi;
}

int64_t bytes_of(const ffi::Buffer* b, int elem) {
  int64_t n = elem;
  for (int64_t i = 0; i < b->rank; ++i) n *= b->dims[i];
  return n;
}

int element_bytes(int32_t xla) {
  switch (xla) {
    case ffi::kF64: case ffi::kS64: return 8;
    case ffi::kF32: case ffi::kS32: return 4;
    case ffi::kF16: case ffi::kBF16: return 2;
    default: return 1;
  }
}

double scalar_value(const ffi::Scalar* s, const std::string& name) {
  switch (s->dtype) {
    case ffi::kF64: return *static_cast<const double*>(s->value);
    case ffi::kF32: return *static_cast<const float*>(s->value);
    case ffi::kS64: return static_cast<double>(*static_cast<const int64_t*>(s->value));
    case ffi::kS32: return *static_cast<const int32_t*>(s->value);
    case ffi::kPred: return *static_cast<const bool*>(s->value) ? 1.0 : 0.0;
    default: throw Error(ErrorKind::value, "attribute '" + name + "' is not a number");
  }
}

// One state operand of a parameter as the step sees it: the buffer itself, or, for a resized
// one, a contiguous copy of its first k columns (absent when k = 0).
struct ResizedView {
  size_t buffer;               // schema position
  ffi::Buffer* capacity;       // rows x cap
  int32_t* cols;               // k
  std::unique_ptr<OwnedBuffer> copy;
};

ffi::Error* step_call(ffi::CallFrame* frame) {
  const ffi::Args& args = frame->args;
  const ffi::Rets& rets = frame->rets;
  try {
    std::string name;
    Hyper given;
    for (int64_t i = 0; i < frame->attrs.size; ++i) {
      const ffi::ByteSpan* key = frame->attrs.names[i];
      const std::string k(key->ptr, key->len);
      if (frame->attrs.types[i] == ffi::kAttrString && k == "algorithm") {
        const auto* v = static_cast<const ffi::ByteSpan*>(frame->attrs.attrs[i]);
        name.assign(v->ptr, v->len);
      } else if (frame->attrs.types[i] == ffi::kAttrScalar) {
        given[k] = scalar_value(static_cast<const ffi::Scalar*>(frame->attrs.attrs[i]), k);
      } else {
        throw Error(ErrorKind::value, "attribute '" + k + "' must be a number (or `algorithm`, a string)");
      }
    }
    if (name.empty()) throw Error(ErrorKind::value, "the `algorithm` attribute is missing");
    const Algorithm& algo = find_algorithm(name);
    auto buffer_arg = [&](int64_t i) {
      if (i >= args.size || args.types[i] != 1) throw Error(ErrorKind::shape, "operand " + std::to_string(i) + " is missing");
      return static_cast<ffi::Buffer*>(args.args[i]);
    };
    auto buffer_ret = [&](int64_t i) {
      if (i >= rets.size || rets.types[i] != 1) throw Error(ErrorKind::shape, "result " + std::to_string(i) + " is missing");
      return static_cast<ffi::Buffer*>(rets.rets[i]);
    };
    const ffi::Buffer* lr = buffer_arg(0);
    const ffi::Buffer* count = buffer_arg(1);
    if ((lr->dtype != ffi::kF32 && lr->dtype != ffi::kF64) || lr->rank != 0 || count->dtype != ffi::kS32 ||
        count->rank != 0)
      throw Error(ErrorKind::type, "operands 0 and 1 must be lr (a float32 or float64 scalar) and count (int32 scalar)");
    // A constant learning rate comes as the `lr` attribute (a float64: as every other front has
    // it); a schedule's value, computed by JAX each step, as the operand.
    if (!given.count("lr"))
      given["lr"] = lr->dtype == ffi::kF64 ? *static_cast<const double*>(lr->data) : *static_cast<const float*>(lr->data);
    const Hyper h = complete_hyper(algo, given);
    const bool fresh = *static_cast<const int32_t*>(count->data) == 0;

    // Every result starts as its operand (XLA aliases them; a copy only if it could not).
    Group group;
    group.hyper = h;
    std::vector<ResizedView> resized;
    std::vector<std::vector<size_t>> slot_views;  // per slot, its resized views (indices into `resized`)
    int64_t a = 2, r = 0;
    for (size_t slot = 0; a < args.size; ++slot) {
      const std::string who = "params[" + std::to_string(slot) + "]";
      ffi::Buffer* p_in = buffer_arg(a);
      ffi::Buffer* g = buffer_arg(a + 1);
      ffi::Buffer* p = buffer_ret(r);
      Slot s;
      DType pt, gt;
      if (!dtype_of(p_in->dtype, &pt) || !dtype_of(g->dtype, &gt))
        throw Error(ErrorKind::type, who + ": parameters and gradients must be float32, float64, float16 or bfloat16");
      check_twin(p_in, p, who);
      s.param = TensorRef{p->data, pt, dims_of(p), {}};
      s.grad = TensorRef{g->data, gt, dims_of(g), {}};
      s.index = slot;
      s.fresh = fresh;
      if (p->data != p_in->data) std::memcpy(p->data, p_in->data, bytes_of(p_in, element_bytes(p_in->dtype)));
      a += 2;
      r += 1;
      const std::vector<BufferSpec> schema = state_schema(algo, h, s.param.shape, pt);
      slot_views.emplace_back();
      for (size_t b = 0; b < schema.size(); ++b) {
        const BufferSpec& spec = schema[b];
        ffi::Buffer* in = buffer_arg(a);
        ffi::Buffer* out = buffer_ret(r);
        DType bt;
        if (!dtype_of(in->dtype, &bt) || bt != spec.dtype)
          throw Error(ErrorKind::type, who + ": state '" + spec.name + "' must be " + dtype_name(spec.dtype));
        check_twin(in, out, who + " state '" + spec.name + "'");
        if (out->data != in->data) std::memcpy(out->data, in->data, bytes_of(in, element_bytes(in->dtype)));
        if (!spec.resized) {
          s.state.push_back(TensorRef{out->data, bt, dims_of(out), {}});
          a += 1;
          r += 1;
          continue;
        }
        const ffi::Buffer* k_in = buffer_arg(a + 1);
        ffi::Buffer* k_out = buffer_ret(r + 1);
        if (k_in->dtype != ffi::kS32 || k_in->rank != 0)
          throw Error(ErrorKind::type, who + ": the column count of '" + spec.name + "' must be an int32 scalar");
        check_twin(k_in, k_out, who + " column count of '" + spec.name + "'");
        *static_cast<int32_t*>(k_out->data) = *static_cast<const int32_t*>(k_in->data);
        const int64_t k = *static_cast<int32_t*>(k_out->data);
        if (out->rank != 2 || spec.shape.size() != 2 || out->dims[0] != spec.shape[0] || k < 0 || k > out->dims[1])
          throw Error(ErrorKind::shape, who + ": state '" + spec.name + "' must be (" + std::to_string(spec.shape[0]) +
                                           ", capacity) with its column count in [0, capacity]");
        // Checked before the step: a factor that could outgrow its capacity is refused now.
        const int64_t bound = column_bound(name, h, s.param.shape);
        if (bound > out->dims[1])
          throw Error(ErrorKind::shape, who + ": state '" + spec.name + "' holds " + std::to_string(out->dims[1]) +
                                           " columns, but the step may choose up to " + std::to_string(bound) +
                                           " (init the state with the same max_rank and min_rank)");
        ResizedView v{b, out, static_cast<int32_t*>(k_out->data), nullptr};
        if (k > 0) {  // the first k columns, contiguous
          v.copy = std::make_unique<OwnedBuffer>(bt, std::vector<int64_t>{out->dims[0], k});
          const int elem = dtype_size(bt);
          const auto* src = static_cast<const unsigned char*>(out->data);
          auto* dst = static_cast<unsigned char*>(v.copy->data());
          for (int64_t row = 0; row < out->dims[0]; ++row)
            std::memcpy(dst + row * k * elem, src + row * out->dims[1] * elem, k * elem);
          s.state.push_back(v.copy->ref());
        } else {
          s.state.push_back(absent_buffer());
        }
        slot_views.back().push_back(resized.size());
        resized.push_back(std::move(v));
        a += 2;
        r += 2;
      }
      group.slots.push_back(std::move(s));
    }
    if (r != rets.size) throw Error(ErrorKind::shape, "the results do not match the operands");

    std::vector<Group> groups;
    groups.push_back(std::move(group));
    CollectingAllocator alloc;
    step_groups(algo, groups, alloc, nullptr);

    // Write the factors back at capacity: replaced ones (new k), then those stepped in place.
    std::vector<std::vector<ResizedView*>> per_slot(slot_views.size());
    for (size_t slot = 0; slot < slot_views.size(); ++slot)
      for (size_t i : slot_views[slot]) per_slot[slot].push_back(&resized[i]);
    auto put_back = [](ResizedView& v, const TensorRef& t) {
      const int64_t rows = v.capacity->dims[0], cap = v.capacity->dims[1];
      const int64_t k = t.shape.size() == 2 ? t.shape[1] : 0;
      if (k > cap) throw Error(ErrorKind::shape, "a factor grew past its capacity");
      const int elem = dtype_size(t.dtype);
      auto* dst = static_cast<unsigned char*>(v.capacity->data);
      const auto* src = static_cast<const unsigned char*>(t.data);
      for (int64_t row = 0; row < rows; ++row) {
        if (k > 0) std::memcpy(dst + row * cap * elem, src + row * k * elem, k * elem);
        std::memset(dst + (row * cap + k) * elem, 0, (cap - k) * elem);
      }
      *v.cols = static_cast<int32_t>(k);
    };
    std::vector<std::vector<bool>> replaced(per_slot.size());
    for (size_t slot = 0; slot < per_slot.size(); ++slot) replaced[slot].assign(per_slot[slot].size(), false);
    for (auto& item : alloc.take()) {
      std::vector<ResizedView*>& views = per_slot[item.slot];
      for (size_t i = 0; i < views.size(); ++i)
        if (views[i]->buffer == item.buffer) {
          put_back(*views[i], item.buf->ref());
          replaced[item.slot][i] = true;
        }
    }
    for (size_t slot = 0; slot < per_slot.size(); ++slot)
      for (size_t i = 0; i < per_slot[slot].size(); ++i)
        if (!replaced[slot][i] && per_slot[slot][i]->copy) put_back(*per_slot[slot][i], per_slot[slot][i]->copy->ref());
    return nullptr;
  } catch (const Error& e) {
    return make_error(frame, ffi::kInvalidArgument, std::string("adapprox: ") + e.what());
  } catch (const std::exception& e) {
    return make_error(frame, ffi::kInternal, std::string("adapprox: ") + e.what());
  } catch (...) {
    return make_error(frame, ffi::kInternal, "adapprox: an unexpected failure in the step");
  }
}

ffi::Error* xla_step(ffi::CallFrame* frame) {
  if (frame->extension_start != nullptr && frame->extension_start->type == ffi::kExtensionMetadata)
    return answer_metadata(frame);
  if (frame->stage != ffi::kExecute) return nullptr;  // nothing to prepare
  return step_call(frame);
}

void bind_jax(py::module_& m) {
  m.def(
      "xla_ffi_step_handler", [] { return py::capsule(reinterpret_cast<void*>(&xla_step)); },
      "The XLA FFI handler of adapprox.jax's step (a PyCapsule for jax.ffi.register_ffi_target, platform cpu).");
}

const bindings::RegisterBinder registered(&bind_jax);

}  // namespace
}  // namespace adapprox
