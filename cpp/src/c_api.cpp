// The C ABI (adapprox.h) over the C++ Optimizer: status codes, a thread-local last error, and
// no exception ever crossing the boundary.
#include "adapprox/adapprox.h"

#include <cstring>
#include <new>
#include <string>

#include "adapprox/optimizer.hpp"
#include "adapprox/tensor_ops.hpp"
#include "adapprox/thread_pool.hpp"

// adx_communicator behind the core's Communicator interface.
class CCommunicator final : public adapprox::Communicator {
 public:
  explicit CCommunicator(const adx_communicator& c) : c_(c) {}
  int rank() const override { return c_.rank; }
  int size() const override { return c_.size; }
  void allreduce_sum(double* data, int64_t count) override { check(c_.allreduce_sum_f64(c_.ctx, data, count), "f64"); }
  void allreduce_sum(float* data, int64_t count) override { check(c_.allreduce_sum_f32(c_.ctx, data, count), "f32"); }

 private:
  static void check(int rc, const char* which) {
    if (rc != 0)
      throw adapprox::Error(adapprox::ErrorKind::comm, std::string("the communicator's allreduce_sum_") + which +
                                                           " returned " + std::to_string(rc));
  }
  adx_communicator c_;
};

struct adx_optimizer {
  std::unique_ptr<adapprox::Optimizer> impl;
  std::unique_ptr<CCommunicator> comm;  // adx_set_communicator's
  int (*poll)(void*) = nullptr;  // adx_set_interrupt's callback and its context
  void* poll_ctx = nullptr;
  static bool ask(void* self) {
    auto* o = static_cast<adx_optimizer*>(self);
    return o->poll && o->poll(o->poll_ctx) != 0;
  }
};

namespace {

using adapprox::DType;
using adapprox::Error;
using adapprox::ErrorKind;

thread_local std::string t_last_error;

// A required pointer inside an argument (a tensor's data) is NULL: ADX_ERR_NULL.
struct NullArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

adx_status fail(adx_status code, const std::string& msg) {
  t_last_error = msg;
  return code;
}

adx_status status_of(ErrorKind k) {
  switch (k) {
    case ErrorKind::value: return ADX_ERR_VALUE;
    case ErrorKind::type: return ADX_ERR_DTYPE;
    case ErrorKind::device: return ADX_ERR_DEVICE;
    case ErrorKind::state: return ADX_ERR_STATE;
    case ErrorKind::spec: return ADX_ERR_SPEC;
    case ErrorKind::shape: return ADX_ERR_SHAPE;
    case ErrorKind::interrupted: return ADX_ERR_INTERRUPTED;
    case ErrorKind::comm: return ADX_ERR_COMM;
  }
  return ADX_ERR_INTERNAL;
}

// Runs fn, turning every exception into a status and a message.
template <class Fn>
adx_status guarded(Fn&& fn) {
  try {
    t_last_error.clear();
    fn();
    return ADX_OK;
  } catch (const NullArgument& e) {
    return fail(ADX_ERR_NULL, e.what());
  } catch (const Error& e) {
    return fail(status_of(e.kind()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(ADX_ERR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return fail(ADX_ERR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(ADX_ERR_INTERNAL, "internal error");
  }
}

// A caller's DLTensor as the core's view, or an Error naming it.
adapprox::TensorRef view_of(const adx_DLTensor& t, const std::string& who) {
  if (t.device.device_type != 1 && t.device.device_type != 2)
    throw Error(ErrorKind::device, who + ": device_type " + std::to_string(t.device.device_type) +
                                       " is neither the CPU (1) nor CUDA (2)");
  if (t.ndim < 0 || t.ndim > 32) throw Error(ErrorKind::shape, who + ": ndim out of range");
  if (t.ndim > 0 && !t.shape) throw Error(ErrorKind::shape, who + ": shape is NULL");
  DType dt;
  if (t.dtype.lanes == 1 && t.dtype.code == 2 && t.dtype.bits == 32) dt = DType::f32;
  else if (t.dtype.lanes == 1 && t.dtype.code == 2 && t.dtype.bits == 64) dt = DType::f64;
  else if (t.dtype.lanes == 1 && t.dtype.code == 2 && t.dtype.bits == 16) dt = DType::f16;
  else if (t.dtype.lanes == 1 && t.dtype.code == 4 && t.dtype.bits == 16) dt = DType::bf16;
  else if (t.dtype.lanes == 1 && t.dtype.code == 1 && t.dtype.bits == 8) dt = DType::u8;  // 8-bit moment codes
  else throw Error(ErrorKind::type, who + ": unsupported dtype (code " + std::to_string(t.dtype.code) + ", bits " +
                                        std::to_string(t.dtype.bits) + "); expected float32/float64/float16/bfloat16 "
                                        "(uint8 for 8-bit state)");
  adapprox::TensorRef r;
  r.dtype = dt;
  r.shape.assign(t.shape, t.shape + t.ndim);
  r.data = static_cast<char*>(t.data) + t.byte_offset;
  if (t.device.device_type == 2) r.device = adapprox::Device{adapprox::Device::cuda, t.device.device_id};
  check_size(r, who);  // before any arithmetic on the shape
  if (r.numel() > 0) {
    if (!t.data) throw NullArgument(who + ": data is NULL");
    int64_t expect = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      if (t.strides && r.shape[i] != 1 && t.strides[i] != expect)
        throw Error(ErrorKind::shape, who + ": must be C-contiguous (strides NULL or compact)");
      expect *= r.shape[i];  // <= numel: no overflow
    }
  }
  return r;
}

adx_status copy_out(const std::string& s, char* buf, size_t capacity, size_t* needed) {
  if (needed) *needed = s.size() + 1;
  if (!buf || capacity < s.size() + 1) return fail(ADX_ERR_BUFFER_SIZE, "buffer too small: need " + std::to_string(s.size() + 1) + " bytes");
  std::memcpy(buf, s.c_str(), s.size() + 1);
  return ADX_OK;
}

}  // namespace

extern "C" {

const char* adx_version(void) { return ADAPPROX_VERSION_STRING; }  // pyproject.toml's, through CMake
int adx_abi_version(void) { return ADAPPROX_ABI_VERSION; }
const char* adx_last_error(void) { return t_last_error.c_str(); }

const char* adx_status_string(adx_status status) {
  switch (status) {
    case ADX_OK: return "ADX_OK";
    case ADX_ERR_NULL: return "ADX_ERR_NULL";
    case ADX_ERR_SPEC: return "ADX_ERR_SPEC";
    case ADX_ERR_VALUE: return "ADX_ERR_VALUE";
    case ADX_ERR_DTYPE: return "ADX_ERR_DTYPE";
    case ADX_ERR_SHAPE: return "ADX_ERR_SHAPE";
    case ADX_ERR_DEVICE: return "ADX_ERR_DEVICE";
    case ADX_ERR_STATE: return "ADX_ERR_STATE";
    case ADX_ERR_BUFFER_SIZE: return "ADX_ERR_BUFFER_SIZE";
    case ADX_ERR_INTERNAL: return "ADX_ERR_INTERNAL";
    case ADX_ERR_INTERRUPTED: return "ADX_ERR_INTERRUPTED";
    case ADX_ERR_COMM: return "ADX_ERR_COMM";
  }
  return "unknown status";
}

adx_status adx_set_num_threads(int n) {
  return guarded([&] { adapprox::set_num_threads(n); });  // Error(value) outside [1, kMaxThreads]
}

int adx_num_threads(void) { return adapprox::num_threads(); }

adx_status adx_create(const char* spec, adx_optimizer** out) {
  if (!spec || !out) return fail(ADX_ERR_NULL, std::string(!spec ? "spec" : "out") + " is NULL");
  *out = nullptr;
  return guarded([&] {
    auto opt = std::make_unique<adx_optimizer>();
    opt->impl = adapprox::Optimizer::create(spec);
    *out = opt.release();
  });
}

void adx_destroy(adx_optimizer* opt) { delete opt; }

adx_status adx_spec(const adx_optimizer* opt, char* buf, size_t capacity, size_t* needed) {
  if (!opt) return fail(ADX_ERR_NULL, "opt is NULL");
  std::string s;
  const adx_status st = guarded([&] { s = opt->impl->spec(); });
  return st != ADX_OK ? st : copy_out(s, buf, capacity, needed);
}

adx_status adx_spec_keys(const char* name, char* buf, size_t capacity, size_t* needed) {
  if (!name) return fail(ADX_ERR_NULL, "name is NULL");
  std::string s;
  const adx_status st = guarded([&] { s = adapprox::format_spec(name, adapprox::Optimizer::defaults(name)); });
  return st != ADX_OK ? st : copy_out(s, buf, capacity, needed);
}

adx_status adx_step(adx_optimizer* opt, const adx_DLTensor* params, const adx_DLTensor* grads, size_t count,
                    double lr) {
  return adx_step_on_stream(opt, params, grads, count, lr, nullptr);
}

adx_status adx_step_on_stream(adx_optimizer* opt, const adx_DLTensor* params, const adx_DLTensor* grads, size_t count,
                              double lr, void* stream) {
  if (!opt) return fail(ADX_ERR_NULL, "opt is NULL");
  if (count > 0 && (!params || !grads)) return fail(ADX_ERR_NULL, std::string(!params ? "params" : "grads") + " is NULL");
  return guarded([&] {
    std::vector<adapprox::TensorRef> p(count), g(count);
    for (size_t i = 0; i < count; ++i) {
      p[i] = view_of(params[i], "params[" + std::to_string(i) + "]");
      g[i] = view_of(grads[i], "grads[" + std::to_string(i) + "]");
    }
    opt->impl->step(p, g, lr, stream);
  });
}

adx_status adx_set_interrupt(adx_optimizer* opt, int (*poll)(void* ctx), void* ctx) {
  if (!opt) return fail(ADX_ERR_NULL, "opt is NULL");
  return guarded([&] {
    opt->poll = poll;
    opt->poll_ctx = ctx;
    opt->impl->set_interrupt(poll ? &adx_optimizer::ask : nullptr, opt);
  });
}

adx_status adx_set_communicator(adx_optimizer* opt, const adx_communicator* comm) {
  if (!opt) return fail(ADX_ERR_NULL, "opt is NULL");
  if (comm && (!comm->allreduce_sum_f64 || !comm->allreduce_sum_f32))
    return fail(ADX_ERR_NULL, "comm->allreduce_sum_f64 and comm->allreduce_sum_f32 must both be set");
  if (comm && (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size))
    return fail(ADX_ERR_VALUE, "comm: rank must be in [0, size) and size >= 1, got rank " +
                                   std::to_string(comm->rank) + ", size " + std::to_string(comm->size));
  return guarded([&] {
    auto next = comm ? std::make_unique<CCommunicator>(*comm) : nullptr;
    opt->impl->set_communicator(next.get());
    opt->comm = std::move(next);
  });
}

adx_status adx_state_size(const adx_optimizer* opt, size_t* bytes) {
  if (!opt || !bytes) return fail(ADX_ERR_NULL, std::string(!opt ? "opt" : "bytes") + " is NULL");
  return guarded([&] { *bytes = opt->impl->save().size(); });
}

adx_status adx_state_save(const adx_optimizer* opt, void* buf, size_t capacity, size_t* written) {
  if (!opt || !written) return fail(ADX_ERR_NULL, std::string(!opt ? "opt" : "written") + " is NULL");
  std::vector<unsigned char> bytes;
  const adx_status st = guarded([&] { bytes = opt->impl->save(); });
  if (st != ADX_OK) return st;
  *written = bytes.size();
  if (!buf || capacity < bytes.size())
    return fail(ADX_ERR_BUFFER_SIZE, "buffer too small: need " + std::to_string(bytes.size()) + " bytes");
  std::memcpy(buf, bytes.data(), bytes.size());
  return ADX_OK;
}

adx_status adx_state_load(adx_optimizer* opt, const void* buf, size_t size) {
  return adx_state_load_ex(opt, buf, size, 0);
}

adx_status adx_state_load_ex(adx_optimizer* opt, const void* buf, size_t size, unsigned flags) {
  if (!opt || !buf) return fail(ADX_ERR_NULL, std::string(!opt ? "opt" : "buf") + " is NULL");
  if (flags & ~ADX_LOAD_KEEP_HYPERPARAMETERS)
    return fail(ADX_ERR_VALUE, "flags: unknown bits " + std::to_string(flags & ~ADX_LOAD_KEEP_HYPERPARAMETERS) +
                                   "; expected 0 or ADX_LOAD_KEEP_HYPERPARAMETERS");
  const auto hyper = (flags & ADX_LOAD_KEEP_HYPERPARAMETERS) ? adapprox::Optimizer::LoadHyper::keep
                                                             : adapprox::Optimizer::LoadHyper::saved;
  return guarded([&] { opt->impl->load(static_cast<const unsigned char*>(buf), size, hyper); });
}

adx_status adx_memory_report(const adx_optimizer* opt, size_t* state_bytes, size_t* adamw_bytes) {
  if (!opt) return fail(ADX_ERR_NULL, "opt is NULL");
  return guarded([&] {
    const adapprox::MemoryReport r = opt->impl->memory();
    if (state_bytes) *state_bytes = static_cast<size_t>(r.state_bytes);
    if (adamw_bytes) *adamw_bytes = static_cast<size_t>(r.adamw_bytes);
  });
}

}  // extern "C"

static_assert(sizeof(adx_DLTensor) == 48 || sizeof(void*) != 8, "adx_DLTensor must match DLTensor's layout");
