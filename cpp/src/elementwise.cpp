#include "adapprox/elementwise.hpp"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "adapprox/thread_pool.hpp"
#include "elementwise_registry.hpp"

namespace adapprox {
namespace {

using Registry = std::vector<std::unique_ptr<ElementwiseAlgorithm>>;

const Registry& registry() {
  static const Registry all = [] {
    Registry r;
    // One line per algorithm (factories declared in elementwise_registry.hpp).
    r.push_back(algorithms::make_signsgd());
    r.push_back(algorithms::make_adam());
    r.push_back(algorithms::make_adamw());
    r.push_back(algorithms::make_nadam());
    r.push_back(algorithms::make_sgd());
    r.push_back(algorithms::make_rmsprop());
    r.push_back(algorithms::make_adagrad());
    return r;
  }();
  return all;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

constexpr int64_t kGrain = 1 << 14;  // elements per chunk of the whole call
constexpr int64_t kBlock = 1024;     // bf16/fp16: elements converted to float32 at a time

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
                   const ElementwiseSlot& s, const std::vector<float*>& bufs_base, int64_t b, int64_t e) {
  const int64_t es = dtype_size(s.param.dtype);
  float p[kBlock], g[kBlock];
  std::vector<float*> bufs(bufs_base.size());
  for (int64_t lo = b; lo < e; lo += kBlock) {
    const int64_t n = std::min(kBlock, e - lo);
    TensorRef pc{static_cast<char*>(s.param.data) + lo * es, s.param.dtype, {n}};
    TensorRef gc{static_cast<char*>(s.grad.data) + lo * es, s.grad.dtype, {n}};
    to_float32(pc, p);
    to_float32(gc, g);
    for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = bufs_base[i] + lo;
    algo.run(h, st, n, p, g, bufs.data());
    from_float32(p, pc);
  }
}

// Elements [b, e) of slot s.
template <class T>
void run_range(const ElementwiseAlgorithm& algo, const Hyper& h, const ElementwiseSlot& s, const Bound<T>& at,
               int64_t b, int64_t e) {
  std::vector<T*> bufs(at.bufs.size());
  for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = at.bufs[i] + b;
  algo.run(h, *s.state, e - b, at.p + b, at.g + b, bufs.data());
}

// Every slot's update in one parallel job: the parameters are laid end to end and the
// concatenated range is cut into chunks, so small tensors share chunks and large ones are
// split; each element's update is independent of the cut, so results are too.
void run_all(const ElementwiseAlgorithm& algo, const Hyper& h, std::vector<ElementwiseSlot>& slots,
             const std::vector<std::string>& names) {
  std::vector<Bound<float>> f32(slots.size());
  std::vector<Bound<double>> f64(slots.size());
  std::vector<int64_t> offset(slots.size() + 1, 0);
  for (size_t i = 0; i < slots.size(); ++i) {
    ElementwiseSlot& s = slots[i];
    ElementwiseState& st = *s.state;
    offset[i + 1] = offset[i] + st.numel();
    if (st.dtype == DType::f64) {
      f64[i] = {static_cast<double*>(s.param.data), static_cast<const double*>(s.grad.data), {}};
      for (const auto& name : names) f64[i].bufs.push_back(st.buffer<double>(name));
    } else {
      const bool direct = s.param.dtype == DType::f32;
      f32[i] = {direct ? static_cast<float*>(s.param.data) : nullptr,
                direct ? static_cast<const float*>(s.grad.data) : nullptr, {}};
      for (const auto& name : names) f32[i].bufs.push_back(st.buffer<float>(name));
    }
  }
  parallel_chunks(offset.back(), kGrain, [&](int, int64_t b, int64_t e) {
    size_t i = std::upper_bound(offset.begin(), offset.end(), b) - offset.begin() - 1;
    for (; i < slots.size() && offset[i] < e; ++i) {
      // Cuts inside a tensor are moved down to a multiple of 16 elements (64 bytes in float32),
      // so that vector loads in the kernels start on cache lines; both neighbours move the same cut.
      const int64_t numel = offset[i + 1] - offset[i];
      const int64_t lo = b <= offset[i] ? 0 : (b - offset[i]) & ~int64_t(15);
      const int64_t hi = e >= offset[i + 1] ? numel : (e - offset[i]) & ~int64_t(15);
      if (lo >= hi) continue;
      const ElementwiseSlot& s = slots[i];
      if (s.state->dtype == DType::f64) run_range(algo, h, s, f64[i], lo, hi);
      else if (f32[i].p) run_range(algo, h, s, f32[i], lo, hi);
      else run_converted(algo, h, *s.state, s, f32[i].bufs, lo, hi);
    }
  });
}

void check_slot(const ElementwiseSlot& s, size_t i) {
  std::ostringstream who;
  who << "params[" << i << "]";
  auto bad = [&](ErrorKind k, const std::string& what) { throw Error(k, who.str() + ": " + what); };
  if (!s.state) bad(ErrorKind::value, "missing optimizer state");
  check_param_grad(s.param, s.grad, s.state->shape, i);
  const DType want = s.param.dtype == DType::f64 ? DType::f64 : DType::f32;
  if (s.state->dtype != want)
    bad(ErrorKind::state, std::string("optimizer state is ") + dtype_name(s.state->dtype) + ", parameter needs " +
                              dtype_name(want));
  const size_t bytes = static_cast<size_t>(s.state->numel()) * dtype_size(s.state->dtype);
  for (const auto& [name, buf] : s.state->buffers)
    if (buf.size() != bytes) bad(ErrorKind::state, "state buffer '" + name + "' has the wrong size");
}

}  // namespace

ElementwiseState::ElementwiseState(std::vector<int64_t> s, DType param_dtype)
    : shape(std::move(s)), dtype(param_dtype == DType::f64 ? DType::f64 : DType::f32) {}

int64_t ElementwiseState::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t ElementwiseState::state_bytes() const {
  int64_t total = 0;
  for (const auto& [name, buf] : buffers) total += static_cast<int64_t>(buf.size());
  return total;
}

const ElementwiseAlgorithm& elementwise_algorithm(const std::string& name) {
  for (const auto& a : registry())
    if (a->name() == name) return *a;
  throw Error(ErrorKind::value,
              "unknown optimizer '" + name + "'; known: " + join(elementwise_algorithm_names()));
}

std::vector<std::string> elementwise_algorithm_names() {
  std::vector<std::string> names;
  for (const auto& a : registry()) names.push_back(a->name());
  return names;
}

Hyper complete_hyper(const ElementwiseAlgorithm& algo, const Hyper& given) {
  Hyper h = algo.defaults();
  for (const auto& [key, value] : given) {
    if (!h.count(key)) {
      std::vector<std::string> keys;
      for (const auto& kv : h) keys.push_back(kv.first);
      throw Error(ErrorKind::value,
                  "unknown hyperparameter '" + key + "' for " + algo.name() + "; known: " + join(keys));
    }
    h[key] = value;
  }
  return h;
}

void elementwise_step(const ElementwiseAlgorithm& algo, std::vector<ElementwiseSlot>& slots, const Hyper& given) {
  const Hyper h = complete_hyper(algo, given);
  algo.validate(h);
  for (size_t i = 0; i < slots.size(); ++i) check_slot(slots[i], i);
  const std::vector<std::string> names = algo.buffer_names(h);
  for (auto& s : slots) {
    ElementwiseState& st = *s.state;
    const size_t bytes = static_cast<size_t>(st.numel()) * dtype_size(st.dtype);
    for (const auto& name : names)
      if (!st.buffers.count(name)) st.buffers[name].assign(bytes, 0);  // zero-filled on first use
    st.step += 1;
    algo.begin_step(st, h);
  }
  run_all(algo, h, slots, names);
}

}  // namespace adapprox
