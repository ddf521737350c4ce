#include "adapprox/elementwise.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

#include "adapprox/thread_pool.hpp"
#include "adapprox/tuning.hpp"
#include "algorithms.hpp"
#include "adapprox/tensor_ops.hpp"

namespace adapprox {
namespace {

// Hyperparameter ranges shared by the family.
constexpr double kInf = std::numeric_limits<double>::infinity();

using tuning::kElementwiseGrain;
constexpr int64_t kBlock = tuning::kConvertBlock;

// Where slot s's buffers start, already typed (T is double for float64 states, else float).
template <class T>
struct Bound {
  T* p;  // nullptr for bf16/fp16 parameters (converted block by block)
  const T* g;
  std::vector<T*> bufs;
};

// Elements [b, e) of one bf16/fp16 parameter: each block is widened to float32 on the stack,
// stepped, and rounded once on the way back.
void run_converted(const ElementwiseAlgorithm& algo, const Hyper& h, const ElementwiseState& st,
                   const Slot& s, const std::vector<float*>& bufs_base, int64_t b, int64_t e) {
  const int64_t es = dtype_size(s.param.dtype);
  float p[kBlock], g[kBlock];
  std::vector<float*> bufs(bufs_base.size());
  for (int64_t lo = b; lo < e; lo += kBlock) {
    const int64_t n = std::min(kBlock, e - lo);
    TensorRef pc{static_cast<char*>(s.param.data) + lo * es, s.param.dtype, {n}, {}};
    TensorRef gc{static_cast<char*>(s.grad.data) + lo * es, s.grad.dtype, {n}, {}};
    to_float32(pc, p);
    to_float32(gc, g);
    for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = bufs_base[i] + lo;
    algo.run(h, st, n, p, g, bufs.data());
    from_float32(p, pc);
  }
}

// Elements [b, e) of a slot with low-precision moments or a stochastically rounded bf16
// parameter, kStage elements (whole blocks of kQuantBlock; b is a multiple of it) at a time:
// the parameter, gradient and moments are widened to float32 on the stack, stepped by one call
// of the kernel, and rounded back block by block.
constexpr size_t kMaxMoments = 4;
constexpr int64_t kStage = 8 * kQuantBlock;
void run_blocked(const ElementwiseAlgorithm& algo, const Hyper& h, const ElementwiseState& st, const Slot& s,
                 const std::vector<Moment>& moments, bool param_sr, int64_t b, int64_t e) {
  const int64_t es = dtype_size(s.param.dtype);
  const bool direct = s.param.dtype == DType::f32;
  const uint64_t param_key = rounding_key(s.index, s.t, kParamRoundingBuffer);
  alignas(64) float p_tmp[kStage], g_tmp[kStage], m_tmp[kMaxMoments][kStage];
  float* bufs[kMaxMoments];
  for (int64_t lo = b; lo < e; lo += kStage) {
    const int64_t n = std::min(kStage, e - lo);
    float *p = p_tmp, *g = g_tmp;
    TensorRef pc{static_cast<char*>(s.param.data) + lo * es, s.param.dtype, {n}, {}};
    if (direct) {
      p = static_cast<float*>(s.param.data) + lo;
      g = static_cast<float*>(s.grad.data) + lo;
    } else {
      to_float32(pc, p);
      to_float32(TensorRef{static_cast<char*>(s.grad.data) + lo * es, s.grad.dtype, {n}, {}}, g);
    }
    for (size_t k = 0; k < moments.size(); ++k) {
      if (moments[k].prec == StatePrecision::f32) {
        bufs[k] = static_cast<float*>(moments[k].data) + lo;
      } else {
        load_block(moments[k], lo, n, m_tmp[k]);
        bufs[k] = m_tmp[k];
      }
    }
    algo.run(h, st, n, p, g, bufs);
    if (!direct) {
      if (param_sr && s.param.dtype == DType::bf16) store_bf16_stochastic(p, pc.data, n, param_key, lo);
      else from_float32(p, pc);
    }
    for (size_t k = 0; k < moments.size(); ++k)
      if (moments[k].prec != StatePrecision::f32) store_block(moments[k], lo, n, m_tmp[k]);
  }
}

// Elements [b, e) of slot s.
template <class T>
void run_range(const ElementwiseAlgorithm& algo, const Hyper& h, const ElementwiseState& st, const Bound<T>& at,
               int64_t b, int64_t e) {
  std::vector<T*> bufs(at.bufs.size());
  for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = at.bufs[i] + b;
  algo.run(h, st, e - b, at.p + b, at.g + b, bufs.data());
}

// Every slot's update in one parallel job: the parameters are laid end to end and the
// concatenated range is cut into chunks, so small tensors share chunks and large ones are
// split; each element's update is independent of the cut, so results are too. A dense layout
// is walked in memory order: gradient and state share the parameter's strides.
void run_all(const ElementwiseAlgorithm& algo, const Hyper& h, std::vector<Slot>& slots,
             const std::vector<ElementwiseState>& states, size_t first_buffer) {
  std::vector<Bound<float>> f32(slots.size());
  std::vector<Bound<double>> f64(slots.size());
  std::vector<int64_t> offset(slots.size() + 1, 0);
  // Low-precision moments, or stochastic rounding of bf16 parameters: the blocked path.
  const StatePrecision prec = state_precision(h);
  const bool param_sr = stochastic_rounding(h);
  const std::vector<std::string> names = algo.buffer_names(h);
  std::vector<std::vector<Moment>> moments(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    Slot& s = slots[i];
    offset[i + 1] = offset[i] + s.param.numel();
    if (prec != StatePrecision::f32 || (param_sr && s.param.dtype == DType::bf16)) {
      size_t at = first_buffer;
      for (size_t k = 0; k < names.size(); ++k) {
        Moment m = moment_of(s, at, algo.moment_kind(names[k]), k);
        const std::string fill = algo.fill_from(names[k]);
        if (m.prec == StatePrecision::q8 && s.fresh && !fill.empty()) {
          m.start_fill = true;  // 8-bit codes cannot be pre-filled by the front
          m.fill = static_cast<float>(h.at(fill));
        }
        moments[i].push_back(m);
        at += moment_buffers(prec);
      }
      continue;
    }
    if (s.param.dtype == DType::f64) {
      f64[i] = {static_cast<double*>(s.param.data), static_cast<const double*>(s.grad.data), {}};
      for (size_t k = first_buffer; k < s.state.size(); ++k) f64[i].bufs.push_back(static_cast<double*>(s.state[k].data));
    } else {
      const bool direct = s.param.dtype == DType::f32;
      f32[i] = {direct ? static_cast<float*>(s.param.data) : nullptr,
                direct ? static_cast<const float*>(s.grad.data) : nullptr, {}};
      for (size_t k = first_buffer; k < s.state.size(); ++k) f32[i].bufs.push_back(static_cast<float*>(s.state[k].data));
    }
  }
  parallel_chunks(offset.back(), kElementwiseGrain, [&](int, int64_t b, int64_t e) {
    size_t i = std::upper_bound(offset.begin(), offset.end(), b) - offset.begin() - 1;
    for (; i < slots.size() && offset[i] < e; ++i) {
      // Cuts inside a tensor are moved down to a multiple of 16 elements (64 bytes in float32),
      // so that vector loads in the kernels start on cache lines; both neighbours move the same cut.
      const int64_t numel = offset[i + 1] - offset[i];
      // (Cuts fall on multiples of kQuantBlock, so that 8-bit blocks are never shared.)
      const int64_t lo = b <= offset[i] ? 0 : (b - offset[i]) & ~(kQuantBlock - 1);
      const int64_t hi = e >= offset[i + 1] ? numel : (e - offset[i]) & ~(kQuantBlock - 1);
      if (lo >= hi) continue;
      const Slot& s = slots[i];
      if (!moments[i].empty() || (param_sr && s.param.dtype == DType::bf16))
        run_blocked(algo, h, states[i], s, moments[i], param_sr, lo, hi);
      else if (s.param.dtype == DType::f64) run_range(algo, h, states[i], f64[i], lo, hi);
      else if (f32[i].p) run_range(algo, h, states[i], f32[i], lo, hi);
      else run_converted(algo, h, states[i], s, f32[i].bufs, lo, hi);
    }
  });
}

double read_scalar(const TensorRef& t) {
  if (t.dtype == DType::f64) return *static_cast<const double*>(t.data);
  return *static_cast<const float*>(t.data);
}

void write_scalar(const TensorRef& t, double v) {
  if (t.dtype == DType::f64) *static_cast<double*>(t.data) = v;
  else *static_cast<float*>(t.data) = static_cast<float>(v);
}

}  // namespace

std::vector<BufferSpec> ElementwiseAlgorithm::schema(const Hyper& h, const std::vector<int64_t>& shape,
                                                     DType dtype) const {
  std::vector<BufferSpec> out;
  if (counts_steps()) out.push_back(algorithms::step_buffer());
  for (const auto& [name, init] : scalar_names()) {
    BufferSpec b;
    b.name = name;
    b.dtype = DType::f32;
    b.fill = init;
    out.push_back(b);
  }
  const StatePrecision prec = state_precision(h);
  for (const auto& name : buffer_names(h)) {
    add_moment(out, name, moment_kind(name), algorithms::math_dtype(dtype), shape, prec);
    if (prec != StatePrecision::q8) out.back().fill_from = fill_from(name);  // 8-bit: the first step fills
  }
  return out;
}

MomentKind ElementwiseAlgorithm::moment_kind(const std::string& buffer) const {
  for (const char* n : {"exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum"})
    if (buffer == n) return MomentKind::nonnegative;
  return MomentKind::signed_value;
}

void ElementwiseAlgorithm::check_state(const Hyper& h, const Slot& s, const std::string& who) const {
  check_precision_supported(h, s, who);
}

template <class Pass>
void ElementwiseAlgorithm::with_states(const Hyper& h, std::vector<Slot>& slots, const Pass& pass) const {
  const size_t first_scalar = counts_steps() ? 1 : 0;
  const auto scalars = scalar_names();
  const size_t first_buffer = first_scalar + scalars.size();
  std::vector<ElementwiseState> states(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    ElementwiseState& st = states[i];
    st.step = slots[i].t;
    st.fresh = slots[i].fresh;
    std::map<std::string, DType> dtypes;
    for (size_t k = 0; k < scalars.size(); ++k) {
      st.scalars[scalars[k].first] = read_scalar(slots[i].state[first_scalar + k]);
      dtypes[scalars[k].first] = slots[i].state[first_scalar + k].dtype;
    }
    begin_step(st, h, dtypes);
  }
  pass(states, first_buffer);
  for (size_t i = 0; i < slots.size(); ++i)
    for (size_t k = 0; k < scalars.size(); ++k)
      write_scalar(slots[i].state[first_scalar + k], states[i].scalars.at(scalars[k].first));
}

void ElementwiseAlgorithm::step(const Hyper& h, std::vector<Slot>& slots, Allocator&) const {
  with_states(h, slots, [&](const std::vector<ElementwiseState>& states, size_t first_buffer) {
    run_all(*this, h, slots, states, first_buffer);
  });
}

void ElementwiseAlgorithm::step_cuda(const Hyper& h, std::vector<Slot>& slots, Allocator&, void* stream) const {
  with_states(h, slots, [&](const std::vector<ElementwiseState>& states, size_t first_buffer) {
    run_cuda(h, slots, states, first_buffer, stream);
  });
}

void ElementwiseAlgorithm::run_cuda(const Hyper&, std::vector<Slot>&, const std::vector<ElementwiseState>&, size_t,
                                    void*) const {
  throw Error(ErrorKind::device, name() + " has no CUDA step; move its parameters to the CPU");
}

HyperParam hp_real(const std::string& name, double def, const std::string& doc) {
  return HyperParam{name, def, 0, kInf, false, true, false, doc};  // finite
}
HyperParam hp_unit(const std::string& name, double def, const std::string& doc) {
  return HyperParam{name, def, 0, 1, false, true, false, doc};
}
HyperParam hp_flag(const std::string& name, bool def, const std::string& doc) {
  return HyperParam{name, def ? 1.0 : 0.0, 0, 1, false, false, true, doc};
}

}  // namespace adapprox
