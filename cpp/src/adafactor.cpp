#include "adapprox/adafactor.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <sstream>
#include <unordered_set>

#include "adapprox/thread_pool.hpp"

namespace adapprox {

void validate(const AdafactorHyper& h) {
  auto bad = [](const std::string& what) { throw Error(ErrorKind::value, what); };
  auto num = [](double x) {
    std::ostringstream os;
    os << x;
    return os.str();
  };
  const bool paper = h.mode == AdafactorMode::paper;
  if (!(h.lr >= 0)) bad("lr must be >= 0, got " + num(h.lr));
  if (!(h.beta2_decay <= 0)) bad("beta2_decay must be <= 0, got " + num(h.beta2_decay));
  if (!h.eps1_auto && !(h.eps1 >= 0)) bad("eps[0] (eps1) must be >= 0, got " + num(h.eps1));
  if (!(h.eps2 >= 0)) bad("eps[1] (eps2) must be >= 0, got " + num(h.eps2));
  if (paper ? !(h.d > 0) : !(h.d >= 1))
    bad(std::string("d (clipping threshold) must be ") + (paper ? "> 0" : ">= 1 in torch mode") + ", got " + num(h.d));
  if (!(h.weight_decay >= 0)) bad("weight_decay must be >= 0, got " + num(h.weight_decay));
  if (paper) {
    if (!(h.beta1 >= 0 && h.beta1 < 1)) bad("beta1 must be None or in [0, 1), got " + num(h.beta1));
  } else if (h.beta1 != 0) {
    bad("beta1 is only available in paper mode (torch.optim.Adafactor keeps no first moment)");
  }
}

AdafactorState::AdafactorState(std::vector<int64_t> s, DType param_dtype)
    : shape(std::move(s)), dtype(param_dtype == DType::f64 ? DType::f64 : DType::f32) {
  factored = shape.size() >= 2;
  if (factored) {
    batch = 1;
    for (size_t i = 0; i + 2 < shape.size(); ++i) batch *= shape[i];
    rows = shape[shape.size() - 2];
    cols = shape.back();
  } else {
    batch = 1;
    rows = 1;
    cols = shape.empty() ? 1 : shape[0];
  }
}

namespace {

template <class T>
int64_t bytes_of(const AdafactorBuffers<T>& b) {
  return static_cast<int64_t>(sizeof(T) * (b.row_var.size() + b.col_var.size() + b.variance.size() + b.exp_avg.size()));
}

template <class T>
bool buffers_empty(const AdafactorBuffers<T>& b) {
  return b.row_var.empty() && b.col_var.empty() && b.variance.empty() && b.exp_avg.empty();
}

template <class T>
void check_buffers(const AdafactorState& st, const AdafactorBuffers<T>& b) {
  auto bad = [&](const std::string& what) {
    throw Error(ErrorKind::state, "state for parameter of shape " + shape_str(st.shape) + ": " + what);
  };
  auto size_ok = [](const std::vector<T>& v, int64_t n) { return v.empty() || static_cast<int64_t>(v.size()) == n; };
  const int64_t n = st.numel();
  if (!size_ok(b.exp_avg, n)) bad("exp_avg has the wrong number of elements");
  if (st.factored) {
    if (!b.variance.empty()) bad("a factored (>= 2-D) parameter has no dense variance");
    if (!size_ok(b.row_var, st.batch * st.rows)) bad("row_var has the wrong number of elements");
    if (!size_ok(b.col_var, st.batch * st.cols)) bad("col_var has the wrong number of elements");
    const bool has_r = static_cast<int64_t>(b.row_var.size()) == st.batch * st.rows;
    const bool has_c = static_cast<int64_t>(b.col_var.size()) == st.batch * st.cols;
    if (st.step > 0 && !(has_r && has_c)) bad("row_var and col_var are required after the first step");
  } else {
    if (!b.row_var.empty() || !b.col_var.empty()) bad("a 0-D or 1-D parameter has no row_var/col_var");
    if (!size_ok(b.variance, n)) bad("variance has the wrong number of elements");
    if (st.step > 0 && static_cast<int64_t>(b.variance.size()) != n) bad("variance is required after the first step");
  }
}

}  // namespace

int64_t AdafactorState::state_bytes() const { return bytes_of(f32) + bytes_of(f64); }

void AdafactorState::check() const {
  if (step < 0) throw Error(ErrorKind::state, "state for parameter of shape " + shape_str(shape) + ": step must be >= 0");
  if (dtype == DType::f64) {
    if (!buffers_empty(f32)) throw Error(ErrorKind::state, "float64 state holds float32 buffers");
    check_buffers(*this, f64);
  } else {
    if (!buffers_empty(f64)) throw Error(ErrorKind::state, "float32 state holds float64 buffers");
    check_buffers(*this, f32);
  }
}

namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per chunk, at least
constexpr int64_t kBig = 1 << 16;    // parameters this large use every thread on their own

int64_t row_grain(int64_t n) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)); }

// torch's lerp: exact at weight 1 (the first step copies the new statistic).
template <class T>
inline T lerp(T a, T b, T w) {
  return w < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

double machine_eps(DType t) {
  switch (t) {
    case DType::f64: return DBL_EPSILON;
    case DType::f32: return FLT_EPSILON;
    case DType::f16: return 0.0009765625;  // 2^-10
    case DType::bf16: return 0.0078125;    // 2^-7
  }
  return FLT_EPSILON;
}

// U = sign * g / sqrt(Vhat) as each mode defines it.
template <class T>
struct UpdateRule {
  bool paper;
  T e1sq;  // torch mode: Vhat is clamped to eps1^2
  T sign;
  inline T operator()(T v, T g) const {
    if (paper) return v == T(0) ? T(0) : sign * g / std::sqrt(v);
    v = v < e1sq ? e1sq : v;  // NaN stays NaN, as torch's clamp
    return sign * g * (T(1) / std::sqrt(v));
  }
};

// Final elementwise update of theta (and of the first moment in paper mode).
template <class T>
struct Apply {
  bool paper;
  T decay;  // torch: 1 - lr * wd (applied first); paper: alpha * wd (subtracted)
  bool has_decay;
  T scale;  // torch: -alpha / denom; paper: alpha / denom
  T b1;
  T* m;  // paper mode first moment (or null)
  inline void operator()(int64_t i, T& th, T u) const {
    if (!paper) {
      if (has_decay) th = th * decay;
      th = th + scale * u;
      return;
    }
    T step = scale * u;
    if (m) {
      m[i] = b1 * m[i] + (T(1) - b1) * step;
      step = m[i];
    }
    th = th - decay * th - step;
  }
};

template <class T>
void step_typed(AdafactorState& st, T* theta, const T* g, const AdafactorHyper& h, double eps1) {
  AdafactorBuffers<T>& bf = st.buffers<T>();
  const bool paper = h.mode == AdafactorMode::paper;
  const int64_t N = st.numel();
  const int64_t B = st.batch, m = st.rows, n = st.cols;
  if (st.factored) {
    if (bf.row_var.empty()) bf.row_var.assign(B * m, T(0));
    if (bf.col_var.empty()) bf.col_var.assign(B * n, T(0));
  } else if (bf.variance.empty()) {
    bf.variance.assign(N, T(0));
  }
  const bool use_m = paper && h.beta1 > 0;
  if (use_m && bf.exp_avg.empty()) bf.exp_avg.assign(N, T(0));
  const double t = static_cast<double>(st.step + 1);
  if (N == 0) {
    st.step += 1;
    return;
  }
  const T w = static_cast<T>(std::pow(t, h.beta2_decay));
  const double add = paper ? eps1 : 0.0;  // paper: eps1 inside the averages

  // Pass 1: statistics of g^2 (and the EMAs), sum of theta^2.
  double theta_sq = 0;
  std::vector<T> den;  // per batch: mean(R) (torch: clamped to eps1)
  if (st.factored) {
    const int64_t FR = B * m;
    // Partial column sums per chunk stay under 2M doubles.
    const int64_t max_chunks = std::max<int64_t>(1, (int64_t(1) << 21) / std::max<int64_t>(1, n));
    const int64_t grain = std::max(row_grain(n), (FR + max_chunks - 1) / max_chunks);
    const int chunks = chunk_count(FR, grain);
    std::vector<double> rowsum(FR), colsum(B * n, 0.0), tsq(chunks, 0.0);
    struct Part {
      int64_t b;
      std::vector<double> v;
    };
    std::vector<std::vector<Part>> parts(chunks);
    parallel_chunks(FR, grain, [&](int c, int64_t r0, int64_t r1) {
      double ts = 0;
      int64_t r = r0;
      while (r < r1) {
        const int64_t b = r / m, end = std::min(r1, (b + 1) * m);
        double* col;
        if (r == b * m && end == (b + 1) * m) {
          col = colsum.data() + b * n;  // this chunk owns the whole batch
        } else {
          parts[c].push_back(Part{b, std::vector<double>(n, 0.0)});
          col = parts[c].back().v.data();
        }
        for (; r < end; ++r) {
          const T* gr = g + r * n;
          const T* tr = theta + r * n;
          double rs = 0;
          for (int64_t j = 0; j < n; ++j) {
            const double x = static_cast<double>(gr[j]) * static_cast<double>(gr[j]);
            rs += x;
            col[j] += x;
            ts += static_cast<double>(tr[j]) * static_cast<double>(tr[j]);
          }
          rowsum[r] = rs;
        }
      }
      tsq[c] = ts;
    });
    for (int c = 0; c < chunks; ++c) {
      theta_sq += tsq[c];
      for (const Part& p : parts[c])
        for (int64_t j = 0; j < n; ++j) colsum[p.b * n + j] += p.v[j];
    }
    T* R = bf.row_var.data();
    T* C = bf.col_var.data();
    for (int64_t r = 0; r < FR; ++r) R[r] = lerp(R[r], static_cast<T>(rowsum[r] / n + add), w);
    for (int64_t k = 0; k < B * n; ++k) C[k] = lerp(C[k], static_cast<T>(colsum[k] / m + add), w);
    den.resize(B);
    for (int64_t b = 0; b < B; ++b) {
      double s = 0;
      for (int64_t i = 0; i < m; ++i) s += static_cast<double>(R[b * m + i]);
      const T mean = static_cast<T>(s / m);
      den[b] = paper ? mean : (mean < static_cast<T>(eps1) ? static_cast<T>(eps1) : mean);
    }
  } else {
    const int chunks = chunk_count(N, kGrain);
    std::vector<double> tsq(chunks, 0.0);
    T* V = bf.variance.data();
    const T addT = static_cast<T>(add);
    parallel_chunks(N, kGrain, [&](int c, int64_t i0, int64_t i1) {
      double ts = 0;
      for (int64_t i = i0; i < i1; ++i) {
        V[i] = lerp(V[i], g[i] * g[i] + addT, w);
        ts += static_cast<double>(theta[i]) * static_cast<double>(theta[i]);
      }
      tsq[c] = ts;
    });
    for (double s : tsq) theta_sq += s;
  }

  const UpdateRule<T> rule{paper, static_cast<T>(eps1 * eps1), h.maximize ? T(-1) : T(1)};
  const T* R = bf.row_var.data();
  const T* C = bf.col_var.data();
  const T* V = bf.variance.data();
  // Runs fn(i, u_i) over all elements, chunk by chunk (each chunk's elements in order).
  auto for_updates = [&](auto&& fn) {
    if (st.factored) {
      parallel_chunks(B * m, row_grain(n), [&](int c, int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t b = r / m;
          const T Rr = R[r], db = den[b];
          const T* Cb = C + b * n;
          const T* gr = g + r * n;
          for (int64_t j = 0; j < n; ++j) fn(c, r * n + j, rule(Rr * Cb[j] / db, gr[j]));
        }
      });
    } else {
      parallel_chunks(N, kGrain, [&](int c, int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) fn(c, i, rule(V[i], g[i]));
      });
    }
  };

  // Pass 2: RMS(U) for the update clipping.
  const int chunks = st.factored ? chunk_count(B * m, row_grain(n)) : chunk_count(N, kGrain);
  std::vector<double> usq(chunks, 0.0);
  for_updates([&](int c, int64_t, T u) { usq[c] += static_cast<double>(u) * static_cast<double>(u); });
  double u_sq = 0;
  for (double s : usq) u_sq += s;

  // Step size.
  const double sqrt_n = std::sqrt(static_cast<double>(N));
  const double rms_theta = std::sqrt(theta_sq) / sqrt_n;
  const double rho = (paper && !h.relative_step) ? h.lr : std::min(h.lr, 1.0 / std::pow(t, 0.5));
  const double alpha = (paper && !h.scale_parameter) ? rho : std::max(h.eps2, rms_theta) * rho;
  const double denom = std::max(1.0, std::sqrt(u_sq) / (sqrt_n * h.d));

  // Pass 3: the update.
  Apply<T> ap{};
  ap.paper = paper;
  if (paper) {
    ap.decay = static_cast<T>(alpha * h.weight_decay);
    ap.scale = static_cast<T>(alpha / denom);
    ap.b1 = static_cast<T>(h.beta1);
    ap.m = use_m ? bf.exp_avg.data() : nullptr;
  } else {
    ap.has_decay = h.weight_decay != 0;
    ap.decay = static_cast<T>(1 - h.lr * h.weight_decay);
    ap.scale = static_cast<T>(-alpha / denom);
  }
  for_updates([&](int, int64_t i, T u) { ap(i, theta[i], u); });
  st.step += 1;
}

void step_one(AdafactorSlot& s, const AdafactorHyper& h, double eps1) {
  AdafactorState& st = *s.state;
  if (s.param.dtype == DType::f64) {
    step_typed<double>(st, static_cast<double*>(s.param.data), static_cast<const double*>(s.grad.data), h, eps1);
    return;
  }
  if (s.param.dtype == DType::f32) {
    step_typed<float>(st, static_cast<float*>(s.param.data), static_cast<const float*>(s.grad.data), h, eps1);
    return;
  }
  // bf16/fp16: float32 copies, one rounding back to the parameter dtype.
  std::vector<float> theta(st.numel()), grad(st.numel());
  to_float32(s.param, theta.data());
  to_float32(s.grad, grad.data());
  step_typed<float>(st, theta.data(), grad.data(), h, eps1);
  from_float32(theta.data(), s.param);
}

void check_slot(const AdafactorSlot& s, size_t i) {
  std::ostringstream who;
  who << "params[" << i << "]";
  auto bad = [&](ErrorKind k, const std::string& what) { throw Error(k, who.str() + ": " + what); };
  if (!s.state) bad(ErrorKind::value, "missing optimizer state");
  check_param_grad(s.param, s.grad, s.state->shape, i);
  const DType want = s.param.dtype == DType::f64 ? DType::f64 : DType::f32;
  if (s.state->dtype != want)
    bad(ErrorKind::state, std::string("optimizer state holds ") + dtype_name(s.state->dtype) +
                              " buffers, a " + dtype_name(s.param.dtype) + " parameter needs " + dtype_name(want));
  s.state->check();
}

}  // namespace

void adafactor_step(std::vector<AdafactorSlot>& slots, const AdafactorHyper& h) {
  validate(h);
  for (size_t i = 0; i < slots.size(); ++i) check_slot(slots[i], i);
  std::unordered_set<const AdafactorState*> seen;
  for (size_t i = 0; i < slots.size(); ++i)
    if (!seen.insert(slots[i].state).second)
      throw Error(ErrorKind::value, "params[" + std::to_string(i) + "]: shares its optimizer state with another parameter");
  if (slots.empty()) return;
  // torch resolves eps=(None, .) once per group, from the first parameter with a gradient.
  const double eps1 = h.eps1_auto ? machine_eps(slots[0].param.dtype) : h.eps1;
  std::vector<AdafactorSlot*> small;
  for (auto& s : slots) {
    if (s.param.numel() >= kBig)
      step_one(s, h, eps1);
    else
      small.push_back(&s);
  }
  parallel_chunks(static_cast<int64_t>(small.size()), 1, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) step_one(*small[i], h, eps1);
  });
}

}  // namespace adapprox
