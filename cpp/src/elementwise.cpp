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

constexpr int64_t kGrain = 1 << 14;  // elements per chunk

// Runs the algorithm over [0, n) in chunks; T is float or double.
template <class T>
void run_chunks(const ElementwiseAlgorithm& algo, const Hyper& h, ElementwiseState& st, T* p, const T* g,
                std::vector<T*>& bufs_base) {
  parallel_chunks(st.numel(), kGrain, [&](int, int64_t b, int64_t e) {
    std::vector<T*> bufs(bufs_base.size());
    for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = bufs_base[i] + b;
    algo.run(h, st, e - b, p + b, g + b, bufs.data());
  });
}

// bf16/fp16 parameters: stepped through float32 copies of each chunk, rounded once on the way back.
void run_converted(const ElementwiseAlgorithm& algo, const Hyper& h, ElementwiseState& st, ElementwiseSlot& s,
                   std::vector<float*>& bufs_base) {
  const int64_t es = dtype_size(s.param.dtype);
  parallel_chunks(st.numel(), kGrain, [&](int, int64_t b, int64_t e) {
    const int64_t n = e - b;
    std::vector<float> p(n), g(n);
    TensorRef pc{static_cast<char*>(s.param.data) + b * es, s.param.dtype, {n}};
    TensorRef gc{static_cast<char*>(s.grad.data) + b * es, s.grad.dtype, {n}};
    to_float32(pc, p.data());
    to_float32(gc, g.data());
    std::vector<float*> bufs(bufs_base.size());
    for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = bufs_base[i] + b;
    algo.run(h, st, n, p.data(), g.data(), bufs.data());
    from_float32(p.data(), pc);
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
    if (st.numel() == 0) continue;
    if (st.dtype == DType::f64) {
      std::vector<double*> bufs;
      for (const auto& name : names) bufs.push_back(st.buffer<double>(name));
      run_chunks<double>(algo, h, st, static_cast<double*>(s.param.data), static_cast<const double*>(s.grad.data),
                         bufs);
    } else {
      std::vector<float*> bufs;
      for (const auto& name : names) bufs.push_back(st.buffer<float>(name));
      if (s.param.dtype == DType::f32)
        run_chunks<float>(algo, h, st, static_cast<float*>(s.param.data), static_cast<const float*>(s.grad.data),
                          bufs);
      else
        run_converted(algo, h, st, s, bufs);
    }
  }
}

}  // namespace adapprox
