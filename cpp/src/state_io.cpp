// The state byte format (version 2; version 1 is read too), little-endian throughout:
//   "ADXSTATE" u32 version u32 0 | str name | u32 n, n x (str key, f64 value)
//   | u64 params, each: u8 present [u32 ndim, ndim x i64, i64 step, u32 n x (str, f64 scalar),
//     u32 n x (str name, u8 dtype, u32 ndim, ndim x i64, u64 nbytes, bytes)]
//   | u64 FNV-1a hash of everything before it.     str = u32 length + bytes.
// Version 2 writes no scalars: every piece of state but the step is a buffer (NAdam's mu_product
// is a 0-d float32 buffer). Version 1 records are converted on reading: mu_product becomes that
// buffer; rank (the factors' width) and float64 (the buffers' dtype) are implied and dropped.
#include <cctype>
#include <cstring>
#include <limits>

#include "adapprox/optimizer.hpp"
#include "adapprox/tensor_ops.hpp"

namespace adapprox {
namespace {

constexpr char kMagic[8] = {'A', 'D', 'X', 'S', 'T', 'A', 'T', 'E'};
constexpr uint32_t kVersion = 2;
constexpr uint32_t kMaxCount = 1u << 24, kMaxDims = 32, kMaxString = 4096;
constexpr int64_t kMaxStep = (int64_t(1) << 53) - 2;

uint64_t fnv1a(const unsigned char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

uint8_t dtype_code(DType t) { return static_cast<uint8_t>(t); }

class Writer {
 public:
  std::vector<unsigned char> out;
  void raw(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    out.insert(out.end(), b, b + n);
  }
  template <class T>
  void num(T v) {  // little-endian
    unsigned char b[sizeof(T)];
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    for (size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<unsigned char>(bits >> (8 * i));
    raw(b, sizeof(T));
  }
  void str(const std::string& s) {
    num<uint32_t>(static_cast<uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  void shape(const std::vector<int64_t>& s) {
    num<uint32_t>(static_cast<uint32_t>(s.size()));
    for (int64_t d : s) num<int64_t>(d);
  }
};

class Reader {
 public:
  Reader(const unsigned char* p, size_t n) : p_(p), n_(n) {}
  [[noreturn]] static void bad(const std::string& what) { throw Error(ErrorKind::state, "state buffer: " + what); }
  const unsigned char* take(size_t n) {
    if (n > n_ - pos_) bad("truncated");
    const unsigned char* at = p_ + pos_;
    pos_ += n;
    return at;
  }
  template <class T>
  T num() {
    const unsigned char* b = take(sizeof(T));
    uint64_t bits = 0;
    for (size_t i = 0; i < sizeof(T); ++i) bits |= uint64_t(b[i]) << (8 * i);
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    return v;
  }
  uint32_t count(uint32_t limit, const char* what) {
    const uint32_t c = num<uint32_t>();
    if (c > limit) bad(std::string("implausible ") + what + " count");
    return c;
  }
  std::string str() {
    const uint32_t len = count(kMaxString, "string length");
    const unsigned char* b = take(len);
    return std::string(reinterpret_cast<const char*>(b), len);
  }
  // A name (optimizer, hyperparameter, buffer): ASCII letters, digits and '_' only, so it is
  // valid UTF-8 and a valid spec key wherever it travels.
  std::string name(const char* what) {
    std::string s = str();
    bool ok = !s.empty();
    for (unsigned char c : s) ok = ok && (std::isalnum(c) || c == '_') && c < 128;
    if (!ok) bad(std::string(what) + " name is not a word of ASCII letters, digits and '_'");
    return s;
  }
  // A shape whose element count, times 16 bytes, fits int64 (every product checked).
  std::vector<int64_t> shape(int64_t* numel) {
    const uint32_t nd = count(kMaxDims, "dimension");
    std::vector<int64_t> s(nd);
    for (auto& d : s) {
      d = num<int64_t>();
      if (d < 0) bad("negative extent in a shape");
    }
    // The product of the non-zero extents must fit too: a saved shape such as (0, 2^62, 4) holds
    // nothing, but no front could make a parameter of it.
    int64_t total = 1;
    bool empty = false;
    for (int64_t d : s) {
      empty = empty || d == 0;
      if (d != 0 && !mul_size(total, d, &total)) bad("shape " + shape_str(s) + " has more elements than int64 can count");
    }
    int64_t bytes;
    if (!mul_size(total, 16, &bytes)) bad("shape " + shape_str(s) + " is too large");
    *numel = empty ? 0 : total;
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  const unsigned char* p_;
  size_t n_, pos_ = 0;
};

// Version 1 kept some state as scalars (see the top of this file).
void upgrade_v1(StateRecord& rec) {
  for (auto it = rec.scalars.begin(); it != rec.scalars.end();) {
    if (it->first == "mu_product") {
      StateRecord::Buffer b;
      b.dtype = DType::f32;
      const float v = static_cast<float>(it->second);
      b.bytes.resize(4);
      std::memcpy(b.bytes.data(), &v, 4);
      rec.buffers["mu_product"] = std::move(b);
      it = rec.scalars.erase(it);
    } else if (it->first == "rank" || it->first == "float64") {
      it = rec.scalars.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

std::vector<unsigned char> encode_state(const std::string& name, const Hyper& hyper,
                                        const std::vector<const StateRecord*>& states) {
  Writer w;
  w.raw(kMagic, sizeof kMagic);
  w.num<uint32_t>(kVersion);
  w.num<uint32_t>(0);
  w.str(name);
  w.num<uint32_t>(static_cast<uint32_t>(hyper.size()));
  for (const auto& [k, v] : hyper) w.str(k), w.num<double>(v);
  w.num<uint64_t>(states.size());
  for (const StateRecord* r : states) {
    w.num<uint8_t>(r ? 1 : 0);
    if (!r) continue;
    w.shape(r->shape);
    w.num<int64_t>(r->step);
    w.num<uint32_t>(static_cast<uint32_t>(r->scalars.size()));
    for (const auto& [k, v] : r->scalars) w.str(k), w.num<double>(v);
    w.num<uint32_t>(static_cast<uint32_t>(r->buffers.size()));
    for (const auto& [k, b] : r->buffers) {
      w.str(k);
      w.num<uint8_t>(dtype_code(b.dtype));
      w.shape(b.shape);
      w.num<uint64_t>(b.bytes.size());
      w.raw(b.bytes.data(), b.bytes.size());  // host order: little-endian on every supported platform
    }
  }
  w.num<uint64_t>(fnv1a(w.out.data(), w.out.size()));
  return std::move(w.out);
}

DecodedState decode_state(const unsigned char* data, size_t size, int64_t expected_params) {
  if (!data) Reader::bad("null pointer");
  if (size < sizeof kMagic + 8 + 8) Reader::bad("truncated (" + std::to_string(size) + " bytes)");
  Reader r(data, size - 8);
  if (std::memcmp(r.take(sizeof kMagic), kMagic, sizeof kMagic) != 0) Reader::bad("not an adapprox state (bad magic)");
  const uint32_t version = r.num<uint32_t>();
  if (version != 1 && version != kVersion) Reader::bad("format version " + std::to_string(version) + " is not supported");
  r.num<uint32_t>();
  Reader tail(data + size - 8, 8);
  if (tail.num<uint64_t>() != fnv1a(data, size - 8)) Reader::bad("checksum mismatch (corrupt or truncated)");
  DecodedState out;
  out.name = r.name("optimizer");
  for (uint32_t i = 0, n = r.count(kMaxCount, "hyperparameter"); i < n; ++i) {
    std::string k = r.name("hyperparameter");
    if (out.hyper.count(k)) Reader::bad("hyperparameter '" + k + "' appears twice");
    out.hyper[k] = r.num<double>();
  }
  const uint64_t params = r.num<uint64_t>();
  if (params > kMaxCount) Reader::bad("implausible parameter count");
  // Checked before anything is allocated for them.
  if (expected_params >= 0 && params != uint64_t(expected_params))
    Reader::bad("it holds " + std::to_string(params) + " parameters, " + std::to_string(expected_params) +
                " were expected");
  for (uint64_t i = 0; i < params; ++i) {
    if (!r.num<uint8_t>()) {
      out.states.emplace_back();
      continue;
    }
    auto rec = std::make_unique<StateRecord>();
    int64_t numel = 0;
    rec->shape = r.shape(&numel);
    rec->step = r.num<int64_t>();
    // Steps are counted in float64 at most (exact to 2^53): the next one must still be exact.
    if (rec->step < 0 || rec->step > kMaxStep) Reader::bad("step " + std::to_string(rec->step) + " is out of range");
    for (uint32_t j = 0, n = r.count(kMaxCount, "scalar"); j < n; ++j) {
      std::string k = r.name("scalar");
      if (rec->scalars.count(k)) Reader::bad("scalar '" + k + "' appears twice");
      rec->scalars[k] = r.num<double>();
    }
    for (uint32_t j = 0, n = r.count(kMaxCount, "buffer"); j < n; ++j) {
      std::string k = r.name("buffer");
      if (rec->buffers.count(k)) Reader::bad("buffer '" + k + "' appears twice");
      StateRecord::Buffer b;
      const uint8_t code = r.num<uint8_t>();
      if (code > dtype_code(DType::u8)) Reader::bad("unknown dtype code");
      b.dtype = static_cast<DType>(code);
      int64_t count = 0;
      b.shape = r.shape(&count);
      const uint64_t nbytes = r.num<uint64_t>();
      if (nbytes != uint64_t(count) * dtype_size(b.dtype)) Reader::bad("buffer '" + k + "' size does not match its shape");
      const unsigned char* bytes = r.take(nbytes);
      b.bytes.assign(bytes, bytes + nbytes);
      rec->buffers[k] = std::move(b);
    }
    if (version == 1) upgrade_v1(*rec);
    if (!rec->scalars.empty()) Reader::bad("unknown scalar '" + rec->scalars.begin()->first + "' in a version 2 record");
    out.states.push_back(std::move(rec));
  }
  if (r.pos() != size - 8) Reader::bad("trailing bytes");
  return out;
}

}  // namespace adapprox
