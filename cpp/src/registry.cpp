// The registry (registry.hpp): the list of optimizers and the checks of their hyperparameters.
#include "adapprox/registry.hpp"

#include <cmath>
#include <sstream>

#include "algorithms.hpp"

namespace adapprox {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string num(double x) {
  std::ostringstream os;
  os.precision(17);
  os << x;
  return os.str();
}

std::string range_text(const HyperParam& p) {
  std::ostringstream os;
  os.precision(17);
  if (p.whole && p.lo == 0 && p.hi == 1) return "0 or 1";
  if (std::isinf(p.hi)) {
    os << (p.lo_open ? "> " : ">= ") << p.lo;
  } else if (std::isinf(p.lo)) {
    os << (p.hi_open ? "< " : "<= ") << p.hi;
  } else {
    os << "in " << (p.lo_open ? "(" : "[") << p.lo << ", " << p.hi << (p.hi_open ? ")" : "]");
  }
  if (p.whole) return "a whole number " + os.str();
  return os.str();
}

}  // namespace

const std::vector<const Algorithm*>& all_algorithms() {
  // One line per optimizer; each factory lives in the optimizer's own file (algorithms.hpp).
  static const std::vector<const Algorithm*> all = {
      algorithms::adapprox(), algorithms::adam(),    algorithms::adamw(),
      algorithms::nadam(),    algorithms::rmsprop(), algorithms::adagrad(),
      algorithms::sgd(),      algorithms::signsgd(), algorithms::adafactor(),
      algorithms::full_matrix_adagrad(), algorithms::adagram(),
  };
  return all;
}

TensorRef Allocator::allocate_on(const Device& device, void*, size_t slot, size_t buffer, DType dtype,
                                 const std::vector<int64_t>& shape) {
  if (device.kind == Device::cpu) return allocate(slot, buffer, dtype, shape);
  throw Error(ErrorKind::device, "this allocator gives host memory only; a step on " + device_str(device) + " needs one "
                                 "that allocates there");
}

void Algorithm::step_cuda(const Hyper&, std::vector<Slot>&, Allocator&, void*) const {
  throw Error(ErrorKind::device, name() + " runs on the CPU only (it has no CUDA step); move its parameters and "
                                          "gradients to the CPU");
}

const Algorithm& find_algorithm(const std::string& name) {
  std::vector<std::string> names;
  for (const Algorithm* a : all_algorithms()) {
    if (a->name() == name) return *a;
    names.push_back(a->name());
  }
  throw Error(ErrorKind::value, "unknown optimizer '" + name + "'; known: " + join(names));
}

Hyper complete_hyper(const Algorithm& algo, const Hyper& given) {
  Hyper h;
  std::vector<std::string> keys;
  for (const HyperParam& p : algo.hyper_params()) {
    h[p.name] = p.default_value;
    keys.push_back(p.name);
  }
  for (const auto& [key, value] : given) {
    if (!h.count(key))
      throw Error(ErrorKind::value, "unknown hyperparameter '" + key + "' for " + algo.name() + "; known: " + join(keys));
    h[key] = value;
  }
  for (const HyperParam& p : algo.hyper_params()) {
    const double v = h[p.name];
    const bool ok = !std::isnan(v) && (p.lo_open ? v > p.lo : v >= p.lo) && (p.hi_open ? v < p.hi : v <= p.hi) &&
                    (!p.whole || v == std::floor(v));
    if (!ok) throw Error(ErrorKind::value, p.name + " must be " + range_text(p) + ", got " + num(v));
  }
  algo.validate(h);
  return h;
}

std::vector<BufferSpec> state_schema(const Algorithm& algo, const Hyper& h, const std::vector<int64_t>& shape,
                                     DType dtype) {
  std::vector<BufferSpec> s = algo.schema(h, shape, dtype);
  for (BufferSpec& b : s)
    if (!b.fill_from.empty()) b.fill = h.at(b.fill_from);
  return s;
}

namespace algorithms {

BufferSpec step_buffer() {
  BufferSpec b;
  b.name = kStepBuffer;
  b.dtype = DType::f32;
  return b;
}

BufferSpec like_param(const std::string& name, DType dtype, const std::vector<int64_t>& shape, double fill) {
  BufferSpec b;
  b.name = name;
  b.dtype = dtype;
  b.shape = shape;
  b.like_param = true;
  b.follows_rows = true;
  b.fill = fill;
  return b;
}

DType math_dtype(DType param) { return param == DType::f64 ? DType::f64 : DType::f32; }

}  // namespace algorithms
}  // namespace adapprox

#include "adapprox/cuda.hpp"
#include "adapprox/owned_buffer.hpp"

namespace adapprox {

OwnedBuffer::OwnedBuffer(DType t, std::vector<int64_t> s) : dtype(t), shape(std::move(s)) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  bytes.assign(static_cast<size_t>(n) * dtype_size(t), 0);
}

OwnedBuffer::OwnedBuffer(DType t, std::vector<int64_t> s, Device on, void* stream)
    : dtype(t), shape(std::move(s)), device(on) {
  if (on.kind == Device::cpu) {
    *this = OwnedBuffer(t, shape);
    return;
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const int index = on.index;
  void* p = cuda::alloc_zeroed(static_cast<size_t>(n) * dtype_size(t), index, stream);
  device_data = std::shared_ptr<void>(p, [index](void* q) { cuda::release(q, index); });
}

size_t OwnedBuffer::nbytes() const {
  size_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

std::vector<unsigned char> OwnedBuffer::host_bytes() const {
  if (device.kind == Device::cpu) return std::vector<unsigned char>(bytes.begin(), bytes.end());
  std::vector<unsigned char> out(nbytes());
  cuda::to_host(out.data(), device_data.get(), out.size(), device.index, nullptr);
  return out;
}

std::unique_ptr<OwnedBuffer> OwnedBuffer::copy_to(const Device& to, void* stream) const {
  auto out = std::make_unique<OwnedBuffer>(dtype, shape, to, stream);
  const std::vector<unsigned char> host = host_bytes();
  if (to.kind == Device::cpu) std::copy(host.begin(), host.end(), out->bytes.begin());
  else cuda::to_device(out->data(), host.data(), host.size(), to.index, stream);
  return out;
}

TensorRef CollectingAllocator::allocate(size_t slot, size_t buffer, DType dtype, const std::vector<int64_t>& shape) {
  return keep(slot, buffer, std::make_unique<OwnedBuffer>(dtype, shape));
}

TensorRef CollectingAllocator::allocate_on(const Device& device, void* stream, size_t slot, size_t buffer, DType dtype,
                                           const std::vector<int64_t>& shape) {
  return keep(slot, buffer, std::make_unique<OwnedBuffer>(dtype, shape, device, stream));
}

TensorRef CollectingAllocator::keep(size_t slot, size_t buffer, std::unique_ptr<OwnedBuffer> buf) {
  const TensorRef r = buf->ref();
  std::lock_guard<std::mutex> lock(mu_);
  for (Item& it : items_)
    if (it.slot == slot && it.buffer == buffer) {  // allocated twice: the later one wins
      it.buf = std::move(buf);
      return r;
    }
  items_.push_back(Item{slot, buffer, std::move(buf)});
  return r;
}

std::vector<CollectingAllocator::Item> CollectingAllocator::take() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::move(items_);
}

}  // namespace adapprox
