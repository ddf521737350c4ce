// Optimizer: the spec-string front of every algorithm (C++ API and C ABI), state records and
// the save/load of whole optimizers.
#include "adapprox/optimizer.hpp"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <initializer_list>
#include <sstream>
#include <type_traits>

#include "adapprox/adafactor.hpp"
#include "adapprox/adagram.hpp"
#include "adapprox/adapprox.hpp"
#include "adapprox/full_matrix_adagrad.hpp"
#include "adapprox/elementwise.hpp"
#include "adapprox/state_records.hpp"

namespace adapprox {
namespace {

// The optimizers that are not elementwise, appended to the "known" list of an unknown name.
const char* const kOtherNames = ", adapprox, adafactor, adagram, fullmatrixadagrad";

[[noreturn]] void bad_state(const std::string& what) { throw Error(ErrorKind::state, what); }

StateRecord::Buffer make_buffer(DType t, std::vector<int64_t> shape, const void* data, size_t bytes) {
  StateRecord::Buffer b;
  b.dtype = t;
  b.shape = std::move(shape);
  b.bytes.resize(bytes);
  if (bytes) std::memcpy(b.bytes.data(), data, bytes);
  return b;
}

// Copies buffer `name` (float32, `count` elements) out of a record, if present.
bool take_f32(const StateRecord& r, const std::string& name, int64_t count, std::vector<float>& dst) {
  auto it = r.buffers.find(name);
  if (it == r.buffers.end()) return false;
  if (it->second.dtype != DType::f32) bad_state("state buffer '" + name + "' must be float32");
  if (static_cast<int64_t>(it->second.bytes.size()) != count * 4)
    bad_state("state buffer '" + name + "' has " + std::to_string(it->second.bytes.size() / 4) +
              " elements, expected " + std::to_string(count));
  dst.resize(count);
  if (count) std::memcpy(dst.data(), it->second.bytes.data(), count * 4);
  return true;
}

// Copies buffer `name` (float32 or float64 as `t`, `count` elements) out of a record, if present.
template <class T>
bool take_typed(const StateRecord& r, const std::string& name, DType t, int64_t count, std::vector<T>& dst) {
  auto it = r.buffers.find(name);
  if (it == r.buffers.end()) return false;
  if (it->second.dtype != t) bad_state("state buffer '" + name + "' must be " + dtype_name(t));
  if (static_cast<int64_t>(it->second.bytes.size()) != count * static_cast<int64_t>(sizeof(T)))
    bad_state("state buffer '" + name + "' has " + std::to_string(it->second.bytes.size() / sizeof(T)) +
              " elements, expected " + std::to_string(count));
  dst.resize(count);
  if (count) std::memcpy(dst.data(), it->second.bytes.data(), count * sizeof(T));
  return true;
}

// A spec value used as an integer: it must be whole and in [lo, hi] (casting anything else to an
// integer type is undefined behaviour).
double whole(const Hyper& h, const char* key, double lo, double hi) {
  const double v = h.at(key);
  if (!(v >= lo && v <= hi) || v != std::floor(v)) {
    std::ostringstream os;
    os.precision(17);
    os << key << " must be a whole number in [" << lo << ", " << hi << "], got " << v;
    throw Error(ErrorKind::value, os.str());
  }
  return v;
}
int to_int(const Hyper& h, const char* key) {
  return static_cast<int>(whole(h, key, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
}

std::string keys_of(const Hyper& h) {
  std::string s;
  for (const auto& kv : h) s += (s.empty() ? "" : ", ") + kv.first;
  return s;
}

// `given` over `defaults`; a key `defaults` lacks is a spec error naming the optimizer.
Hyper over_defaults(Hyper h, const Hyper& given, const std::string& name) {
  for (const auto& [k, v] : given) {
    if (!h.count(k)) throw Error(ErrorKind::spec, "unknown key '" + k + "' for " + name + "; known: " + keys_of(h));
    h[k] = v;
  }
  return h;
}

// Shared plumbing: per-parameter states created at the first step, fixed parameter list.
template <class State>
class StatefulOptimizer : public Optimizer {
 protected:
  std::vector<std::unique_ptr<State>> states_;
  std::vector<int> param_bytes_;  // element size of each parameter (for adamw_bytes)
  std::vector<int64_t> param_numel_;

  // Checks the parameter list against earlier steps and returns states, new ones where absent
  // (kept in `fresh` until the step succeeds).
  std::vector<State*> states_for(const std::vector<TensorRef>& params, std::vector<std::unique_ptr<State>>& fresh,
                                 const std::function<State(const TensorRef&)>& make) {
    if (!param_numel_.empty() && params.size() != param_numel_.size())
      throw Error(ErrorKind::shape, "expected " + std::to_string(param_numel_.size()) +
                                        " parameters (as in earlier steps), got " + std::to_string(params.size()));
    std::vector<State*> out(params.size());
    fresh.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      if (i < states_.size() && states_[i]) {
        out[i] = states_[i].get();
      } else {
        fresh[i] = std::make_unique<State>(make(params[i]));
        out[i] = fresh[i].get();
      }
    }
    return out;
  }
  void commit(const std::vector<TensorRef>& params, std::vector<std::unique_ptr<State>>& fresh) {
    states_.resize(params.size());
    param_bytes_.resize(params.size());
    param_numel_.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      if (fresh[i]) states_[i] = std::move(fresh[i]);
      param_bytes_[i] = dtype_size(params[i].dtype);
      param_numel_[i] = params[i].numel();
    }
  }

  // States converted from loaded records by `from`, checked against the parameters seen so far.
  template <class From>
  std::vector<std::unique_ptr<State>> states_from(std::vector<std::unique_ptr<StateRecord>>& records,
                                                  From from) const {
    std::vector<std::unique_ptr<State>> next;
    for (auto& r : records) next.push_back(r ? std::make_unique<State>(from(*r)) : nullptr);
    if (!param_numel_.empty()) {
      if (next.size() != param_numel_.size()) bad_state("saved state has a different number of parameters");
      for (size_t i = 0; i < next.size(); ++i)
        if (next[i] && next[i]->numel() != param_numel_[i])
          bad_state("saved state of parameter " + std::to_string(i) + " has another size");
    }
    return next;
  }

 public:
  MemoryReport memory() const override {
    MemoryReport r;
    const size_t n = std::max(states_.size(), param_numel_.size());
    for (size_t i = 0; i < n; ++i) {
      if (i < states_.size() && states_[i]) r.state_bytes += states_[i]->state_bytes();
      if (i < param_numel_.size())
        r.adamw_bytes += 2 * param_numel_[i] * param_bytes_[i];
      else if (states_[i])  // loaded but not stepped yet: assume float32 parameters
        r.adamw_bytes += 2 * states_[i]->numel() * 4;
    }
    return r;
  }

 protected:
  std::vector<std::unique_ptr<StateRecord>> export_states() const override {
    std::vector<std::unique_ptr<StateRecord>> out;
    for (const auto& s : states_) out.push_back(s ? std::make_unique<StateRecord>(to_record(*s)) : nullptr);
    return out;
  }
};

class AdapproxOptimizer final : public StatefulOptimizer<AdapproxState> {
 public:
  explicit AdapproxOptimizer(const Hyper& given) : h_(complete(given)) { validate(to_native(h_, -1)); }

  static Hyper defaults() {
    return {{"lr", 1e-3},          {"beta1", 0.9},      {"beta2", 0.999},     {"eps", 1e-8},
            {"clip_threshold", 1}, {"weight_decay", 0}, {"rank", 1},          {"min_rank", 1},
            {"max_rank", 0},       {"tol", 1e-2},       {"oversample", 5},    {"power_iters", 1},
            {"cosine_guidance", 0}, {"seed", 0},        {"maximize", 0}};
  }
  std::string name() const override { return "adapprox"; }
  Hyper hyper() const override { return h_; }

  void step(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr) override {
    if (grads.size() != params.size()) throw Error(ErrorKind::shape, "params and grads differ in count");
    const AdapproxHyper h = to_native(h_, lr);
    std::vector<std::unique_ptr<AdapproxState>> fresh;
    auto states = states_for(params, fresh, [](const TensorRef& p) { return AdapproxState(p.shape); });
    std::vector<AdapproxSlot> slots(params.size());
    for (size_t i = 0; i < params.size(); ++i) slots[i] = AdapproxSlot{states[i], params[i], grads[i], i};
    adapprox_step(slots, h);
    commit(params, fresh);
  }

 protected:
  void import_states(const Hyper& hyper, std::vector<std::unique_ptr<StateRecord>>& records) override {
    const Hyper h = complete(hyper);
    validate(to_native(h, -1));
    auto next = this->states_from(records, adapprox_state_from);
    h_ = h;
    states_ = std::move(next);
  }

 private:
  static Hyper complete(const Hyper& given) { return over_defaults(defaults(), given, "adapprox"); }
  static AdapproxHyper to_native(const Hyper& h, double lr) {
    AdapproxHyper a;
    a.lr = lr >= 0 ? lr : h.at("lr");
    a.beta1 = h.at("beta1");
    a.beta2 = h.at("beta2");
    a.eps = h.at("eps");
    a.clip_threshold = h.at("clip_threshold");
    a.weight_decay = h.at("weight_decay");
    a.rsi.rank = to_int(h, "rank");
    a.rsi.min_rank = to_int(h, "min_rank");
    a.rsi.max_rank = to_int(h, "max_rank");
    a.rsi.tol = h.at("tol");
    a.rsi.oversample = to_int(h, "oversample");
    a.rsi.power_iters = to_int(h, "power_iters");
    a.rsi.seed = static_cast<uint64_t>(whole(h, "seed", 0, 18446744073709549568.0));  // largest double < 2^64
    a.cosine_guidance = h.at("cosine_guidance") != 0;
    a.maximize = h.at("maximize") != 0;
    return a;
  }
  Hyper h_;
};

// Adafactor in both modes. Spec keys are AdafactorHyper's fields, numbers throughout: mode 0 =
// torch (torch.optim.Adafactor, the default), 1 = paper; eps1_auto 1 = the machine epsilon of
// the first parameter's dtype (torch's eps=(None, .)). Giving eps1 without eps1_auto sets
// eps1_auto=0; in paper mode an eps1 left unset is the paper's 1e-30, as in Python.
class AdafactorOptimizer final : public StatefulOptimizer<AdafactorState> {
 public:
  explicit AdafactorOptimizer(const Hyper& given) : h_(complete(given)) { to_native(h_, -1); }

  static Hyper defaults() {
    return {{"mode", 0},          {"lr", 1e-2},        {"beta2_decay", -0.8},   {"eps1", 0},
            {"eps1_auto", 1},     {"eps2", 1e-3},      {"d", 1},                {"weight_decay", 0},
            {"beta1", 0},         {"relative_step", 1}, {"scale_parameter", 1}, {"maximize", 0}};
  }
  std::string name() const override { return "adafactor"; }
  Hyper hyper() const override { return h_; }

  void step(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr) override {
    if (grads.size() != params.size()) throw Error(ErrorKind::shape, "params and grads differ in count");
    const AdafactorHyper h = to_native(h_, lr);
    std::vector<std::unique_ptr<AdafactorState>> fresh;
    auto states = states_for(params, fresh, [](const TensorRef& p) { return AdafactorState(p.shape, p.dtype); });
    std::vector<AdafactorSlot> slots(params.size());
    for (size_t i = 0; i < params.size(); ++i) slots[i] = AdafactorSlot{states[i], params[i], grads[i]};
    adafactor_step(slots, h);
    commit(params, fresh);
  }

 protected:
  void import_states(const Hyper& hyper, std::vector<std::unique_ptr<StateRecord>>& records) override {
    const Hyper h = complete(hyper);
    to_native(h, -1);
    auto next = this->states_from(records, adafactor_state_from);
    h_ = h;
    states_ = std::move(next);
  }

 private:
  static Hyper complete(const Hyper& given) {
    Hyper h = over_defaults(defaults(), given, "adafactor");
    if (given.count("eps1") && !given.count("eps1_auto")) h["eps1_auto"] = 0;
    if (h["mode"] == 1 && !given.count("eps1") && !given.count("eps1_auto")) {
      h["eps1"] = 1e-30;  // the paper's eps1 (Python's mode="paper" with eps=(None, .))
      h["eps1_auto"] = 0;
    }
    return h;
  }
  static bool flag(const Hyper& h, const char* key) {
    const double v = h.at(key);
    if (v != 0 && v != 1) throw Error(ErrorKind::value, std::string(key) + " must be 0 or 1");
    return v == 1;
  }
  // The native hyperparameters, validated (Error(value) naming the key otherwise).
  static AdafactorHyper to_native(const Hyper& h, double lr) {
    AdafactorHyper a;
    const double mode = h.at("mode");
    if (mode != 0 && mode != 1) throw Error(ErrorKind::value, "mode must be 0 (torch) or 1 (paper)");
    a.mode = mode == 1 ? AdafactorMode::paper : AdafactorMode::torch;
    a.lr = lr >= 0 ? lr : h.at("lr");
    a.beta2_decay = h.at("beta2_decay");
    a.eps1 = h.at("eps1");
    a.eps1_auto = flag(h, "eps1_auto");
    a.eps2 = h.at("eps2");
    a.d = h.at("d");
    a.weight_decay = h.at("weight_decay");
    a.beta1 = h.at("beta1");
    a.relative_step = flag(h, "relative_step");
    a.scale_parameter = flag(h, "scale_parameter");
    a.maximize = flag(h, "maximize");
    if (a.mode == AdafactorMode::torch && (!a.relative_step || !a.scale_parameter))
      throw Error(ErrorKind::value, "relative_step and scale_parameter are options of mode=1 (paper) only");
    validate(a);
    return a;
  }
  Hyper h_;
};

// FullMatrixAdagrad ("fullmatrixadagrad") and AdaGram ("adagram"): the keys of gram.hpp's
// GramHyper, plus rank for AdaGram.
template <class State, class Native, class Slot, void (*Step)(std::vector<Slot>&, const Native&),
          State (*FromRecord)(const StateRecord&)>
class GramOptimizer final : public StatefulOptimizer<State> {
 public:
  GramOptimizer(std::string name, const Hyper& given) : name_(std::move(name)), h_(complete(name_, given)) {
    to_native(h_, -1);
  }

  static Hyper defaults() {
    const Native n;
    Hyper h{{"lr", n.lr}, {"lr_decay", n.lr_decay}, {"weight_decay", n.weight_decay}, {"eps", n.eps}, {"maximize", 0}};
    if constexpr (std::is_same_v<Native, AdagramHyper>) h["rank"] = n.rank;
    return h;
  }
  std::string name() const override { return name_; }
  Hyper hyper() const override { return h_; }

  void step(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr) override {
    if (grads.size() != params.size()) throw Error(ErrorKind::shape, "params and grads differ in count");
    const Native h = to_native(h_, lr);
    std::vector<std::unique_ptr<State>> fresh;
    auto states = this->states_for(params, fresh, [](const TensorRef& p) { return State(p.shape); });
    std::vector<Slot> slots(params.size());
    for (size_t i = 0; i < params.size(); ++i) slots[i] = Slot{states[i], params[i], grads[i]};
    Step(slots, h);
    this->commit(params, fresh);
  }

 protected:
  void import_states(const Hyper& hyper, std::vector<std::unique_ptr<StateRecord>>& records) override {
    const Hyper h = complete(name_, hyper);
    to_native(h, -1);
    auto next = this->states_from(records, FromRecord);
    h_ = h;
    this->states_ = std::move(next);
  }

 private:
  static Hyper complete(const std::string& name, const Hyper& given) { return over_defaults(defaults(), given, name); }
  static Native to_native(const Hyper& h, double lr) {
    Native a;
    a.lr = lr >= 0 ? lr : h.at("lr");
    a.lr_decay = h.at("lr_decay");
    a.weight_decay = h.at("weight_decay");
    a.eps = h.at("eps");
    const double maximize = h.at("maximize");
    if (maximize != 0 && maximize != 1) throw Error(ErrorKind::value, "maximize must be 0 or 1");
    a.maximize = maximize == 1;
    if constexpr (std::is_same_v<Native, AdagramHyper>)
      a.rank = static_cast<int>(whole(h, "rank", 1, std::numeric_limits<int>::max()));
    validate(a);
    return a;
  }
  std::string name_;
  Hyper h_;
};

using FullMatrixAdagradOptimizer =
    GramOptimizer<FullMatrixAdagradState, GramHyper, FullMatrixAdagradSlot, full_matrix_adagrad_step,
                  full_matrix_adagrad_state_from>;
using AdagramOptimizer = GramOptimizer<AdagramState, AdagramHyper, AdagramSlot, adagram_step, adagram_state_from>;

class ElementwiseOptimizerImpl final : public StatefulOptimizer<ElementwiseState> {
 public:
  ElementwiseOptimizerImpl(const ElementwiseAlgorithm& algo, const Hyper& given)
      : algo_(algo), h_(complete_spec(algo, given)) {
    algo_.validate(h_);
  }
  std::string name() const override { return algo_.name(); }
  Hyper hyper() const override { return h_; }

  void step(const std::vector<TensorRef>& params, const std::vector<TensorRef>& grads, double lr) override {
    if (grads.size() != params.size()) throw Error(ErrorKind::shape, "params and grads differ in count");
    Hyper h = h_;
    if (lr >= 0) h["lr"] = lr;
    std::vector<std::unique_ptr<ElementwiseState>> fresh;
    auto states = states_for(params, fresh, [](const TensorRef& p) { return ElementwiseState(p.shape, p.dtype); });
    std::vector<ElementwiseSlot> slots(params.size());
    for (size_t i = 0; i < params.size(); ++i) slots[i] = ElementwiseSlot{states[i], params[i], grads[i]};
    elementwise_step(algo_, slots, h);
    commit(params, fresh);
  }

 protected:
  void import_states(const Hyper& hyper, std::vector<std::unique_ptr<StateRecord>>& records) override {
    const Hyper h = complete_spec(algo_, hyper);
    algo_.validate(h);
    auto next = this->states_from(records, elementwise_state_from);
    h_ = h;
    states_ = std::move(next);
  }

 private:
  static Hyper complete_spec(const ElementwiseAlgorithm& algo, const Hyper& given) {
    try {
      return complete_hyper(algo, given);
    } catch (const Error& e) {
      throw Error(ErrorKind::spec, e.what());
    }
  }
  const ElementwiseAlgorithm& algo_;
  Hyper h_;
};

}  // namespace

StateRecord to_record(const AdapproxState& s) {
  StateRecord r;
  r.shape = s.shape;
  r.step = s.step;
  r.scalars["rank"] = s.rank;
  if (s.factored && s.rank > 0) {
    r.buffers["factor_q"] = make_buffer(DType::f32, {s.rows, s.rank}, s.q.data(), s.q.size() * 4);
    r.buffers["factor_u"] = make_buffer(DType::f32, {s.cols, s.rank}, s.u.data(), s.u.size() * 4);
  }
  if (!s.v.empty()) r.buffers["exp_avg_sq"] = make_buffer(DType::f32, s.shape, s.v.data(), s.v.size() * 4);
  if (!s.m.empty()) r.buffers["exp_avg"] = make_buffer(DType::f32, s.shape, s.m.data(), s.m.size() * 4);
  return r;
}

AdapproxState adapprox_state_from(const StateRecord& r) {
  AdapproxState s(r.shape);
  s.step = r.step;
  auto rank = r.scalars.find("rank");
  s.rank = rank == r.scalars.end() ? 0 : static_cast<int>(rank->second);
  if (s.rank < 0 || s.rank > std::min(s.rows, s.cols)) bad_state("rank out of range");
  take_f32(r, "factor_q", s.rows * s.rank, s.q);
  take_f32(r, "factor_u", s.cols * s.rank, s.u);
  take_f32(r, "exp_avg_sq", s.numel(), s.v);
  take_f32(r, "exp_avg", s.numel(), s.m);
  for (const auto& kv : r.buffers)
    if (kv.first != "factor_q" && kv.first != "factor_u" && kv.first != "exp_avg_sq" && kv.first != "exp_avg")
      bad_state("unknown Adapprox state buffer '" + kv.first + "'");
  s.check();
  return s;
}

StateRecord to_record(const ElementwiseState& s) {
  StateRecord r;
  r.shape = s.shape;
  r.step = s.step;
  r.scalars = s.scalars;
  r.scalars["float64"] = s.dtype == DType::f64;
  for (const auto& [k, b] : s.buffers) r.buffers[k] = make_buffer(s.dtype, s.shape, b.data(), b.size());
  return r;
}

ElementwiseState elementwise_state_from(const StateRecord& r) {
  auto f64 = r.scalars.find("float64");
  ElementwiseState s(r.shape, f64 != r.scalars.end() && f64->second != 0 ? DType::f64 : DType::f32);
  s.step = r.step;
  for (const auto& [k, v] : r.scalars)
    if (k != "float64") s.scalars[k] = v;
  const size_t bytes = static_cast<size_t>(s.numel()) * dtype_size(s.dtype);
  for (const auto& [k, b] : r.buffers) {
    if (b.dtype != s.dtype) bad_state("state buffer '" + k + "' has the wrong dtype");
    if (b.bytes.size() != bytes) bad_state("state buffer '" + k + "' has the wrong size");
    s.buffers[k].assign(b.bytes.begin(), b.bytes.end());
  }
  return s;
}

namespace {

template <class T>
void add_adafactor_buffers(StateRecord& r, const AdafactorState& s, const AdafactorBuffers<T>& b) {
  // torch.optim.Adafactor's shapes: row_var shape[:-1] + (1,), col_var shape[:-2] + (1, n).
  std::vector<int64_t> rs = s.shape, cs = s.shape;
  if (s.factored) {
    rs.back() = 1;
    cs[cs.size() - 2] = 1;
  }
  auto put = [&](const char* name, const std::vector<T>& v, std::vector<int64_t> shape) {
    if (!v.empty()) r.buffers[name] = make_buffer(s.dtype, std::move(shape), v.data(), v.size() * sizeof(T));
  };
  put("row_var", b.row_var, rs);
  put("col_var", b.col_var, cs);
  put("variance", b.variance, s.shape);
  put("exp_avg", b.exp_avg, s.shape);
}

template <class T>
void take_adafactor_buffers(const StateRecord& r, AdafactorState& s, AdafactorBuffers<T>& b) {
  if (s.factored && r.buffers.count("variance")) bad_state("a factored (>= 2-D) parameter has no Adafactor 'variance'");
  if (!s.factored && (r.buffers.count("row_var") || r.buffers.count("col_var")))
    bad_state("a 0-D or 1-D parameter has no Adafactor 'row_var'/'col_var'");
  take_typed(r, "row_var", s.dtype, s.factored ? s.batch * s.rows : 0, b.row_var);
  take_typed(r, "col_var", s.dtype, s.factored ? s.batch * s.cols : 0, b.col_var);
  take_typed(r, "variance", s.dtype, s.factored ? 0 : s.numel(), b.variance);
  take_typed(r, "exp_avg", s.dtype, s.numel(), b.exp_avg);
}

}  // namespace

StateRecord to_record(const AdafactorState& s) {
  StateRecord r;
  r.shape = s.shape;
  r.step = s.step;
  r.scalars["float64"] = s.dtype == DType::f64;
  if (s.dtype == DType::f64)
    add_adafactor_buffers(r, s, s.f64);
  else
    add_adafactor_buffers(r, s, s.f32);
  return r;
}

AdafactorState adafactor_state_from(const StateRecord& r) {
  for (const auto& kv : r.scalars)
    if (kv.first != "float64") bad_state("unknown Adafactor state scalar '" + kv.first + "'");
  for (const auto& kv : r.buffers)
    if (kv.first != "row_var" && kv.first != "col_var" && kv.first != "variance" && kv.first != "exp_avg")
      bad_state("unknown Adafactor state buffer '" + kv.first + "'");
  auto f64 = r.scalars.find("float64");
  AdafactorState s(r.shape, f64 != r.scalars.end() && f64->second != 0 ? DType::f64 : DType::f32);
  s.step = r.step;
  if (s.dtype == DType::f64)
    take_adafactor_buffers(r, s, s.f64);
  else
    take_adafactor_buffers(r, s, s.f32);
  s.check();
  return s;
}

// Records of the two Gram optimizers: float64 buffers, nothing else but AdaGram's scalar "rank".
namespace {
void only_known(const StateRecord& r, const char* who, std::initializer_list<const char*> scalars,
                std::initializer_list<const char*> buffers) {
  auto known = [](const std::string& k, std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (k == n) return true;
    return false;
  };
  for (const auto& kv : r.scalars)
    if (!known(kv.first, scalars)) bad_state(std::string("unknown ") + who + " state scalar '" + kv.first + "'");
  for (const auto& kv : r.buffers)
    if (!known(kv.first, buffers)) bad_state(std::string("unknown ") + who + " state buffer '" + kv.first + "'");
}
}  // namespace

StateRecord to_record(const FullMatrixAdagradState& s) {
  StateRecord r;
  r.shape = s.shape;
  r.step = s.step;
  const int64_t n = s.numel();
  if (!s.sum.empty()) r.buffers["sum"] = make_buffer(DType::f64, {n, n}, s.sum.data(), s.sum.size() * 8);
  return r;
}

FullMatrixAdagradState full_matrix_adagrad_state_from(const StateRecord& r) {
  only_known(r, "FullMatrixAdagrad", {}, {"sum"});
  FullMatrixAdagradState s(r.shape);
  s.step = r.step;
  const int64_t n = s.numel();
  if (n > kFullMatrixMaxNumel) bad_state("FullMatrixAdagrad state of more than " + std::to_string(kFullMatrixMaxNumel) + " elements");
  take_typed(r, "sum", DType::f64, n * n, s.sum);
  s.check();
  return s;
}

StateRecord to_record(const AdagramState& s) {
  StateRecord r;
  r.shape = s.shape;
  r.step = s.step;
  r.scalars["rank"] = s.rank;
  const int64_t n = s.numel();
  r.buffers["factor_p"] = make_buffer(DType::f64, {n, s.rank}, s.p.data(), s.p.size() * 8);
  r.buffers["factor_q"] = make_buffer(DType::f64, {n, s.rank}, s.q.data(), s.q.size() * 8);
  return r;
}

AdagramState adagram_state_from(const StateRecord& r) {
  only_known(r, "AdaGram", {"rank"}, {"factor_p", "factor_q"});
  AdagramState s(r.shape);
  s.step = r.step;
  const int64_t n = s.numel();
  auto rank = r.scalars.find("rank");
  const double k = rank == r.scalars.end() ? 0.0 : rank->second;
  if (!(k >= 0 && k <= static_cast<double>(n)) || k != std::floor(k)) bad_state("AdaGram state rank out of range");
  s.rank = static_cast<int>(k);
  take_typed(r, "factor_p", DType::f64, n * s.rank, s.p);
  take_typed(r, "factor_q", DType::f64, n * s.rank, s.q);
  s.check();
  return s;
}

std::unique_ptr<Optimizer> Optimizer::create(const std::string& text) {
  const Spec spec = parse_spec(text);
  if (spec.name == "adapprox") return std::make_unique<AdapproxOptimizer>(spec.values);
  if (spec.name == "adafactor") return std::make_unique<AdafactorOptimizer>(spec.values);
  if (spec.name == "adagram") return std::make_unique<AdagramOptimizer>(spec.name, spec.values);
  if (spec.name == "fullmatrixadagrad") return std::make_unique<FullMatrixAdagradOptimizer>(spec.name, spec.values);
  try {
    return std::make_unique<ElementwiseOptimizerImpl>(elementwise_algorithm(spec.name), spec.values);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::value && std::string(e.what()).rfind("unknown optimizer", 0) == 0)
      throw Error(ErrorKind::spec, std::string(e.what()) + kOtherNames);
    throw;
  }
}

Hyper Optimizer::defaults(const std::string& name) {
  if (name == "adapprox") return AdapproxOptimizer::defaults();
  if (name == "adafactor") return AdafactorOptimizer::defaults();
  if (name == "adagram") return AdagramOptimizer::defaults();
  if (name == "fullmatrixadagrad") return FullMatrixAdagradOptimizer::defaults();
  try {
    return elementwise_algorithm(name).defaults();
  } catch (const Error& e) {
    throw Error(ErrorKind::spec, std::string(e.what()) + kOtherNames);
  }
}

std::vector<unsigned char> Optimizer::save() const {
  const auto records = export_states();
  std::vector<const StateRecord*> ptrs;
  for (const auto& r : records) ptrs.push_back(r.get());
  return encode_state(name(), hyper(), ptrs);
}

void Optimizer::load(const unsigned char* data, size_t size) {
  DecodedState d = decode_state(data, size);
  if (d.name != name()) bad_state("state was saved by optimizer '" + d.name + "', this is '" + name() + "'");
  for (const auto& [k, v] : d.hyper)  // a spec can hold nothing else: spec() must stay parseable
    if (!std::isfinite(v)) bad_state("state holds a hyperparameter '" + k + "' that is not a finite number");
  import_states(d.hyper, d.states);
}

}  // namespace adapprox
