#include "adapprox/adafactor.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <type_traits>
#include <sstream>
#include <unordered_set>

#include "adapprox/thread_pool.hpp"
#include "isa.hpp"

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

// Sums run over kLanes independent double accumulators, combined in a fixed order at the end:
// the loops vectorise, and the result is the same for every instruction set (isa.hpp).
constexpr int kLanes = 8;
inline double lanes_total(const double* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

struct RowStats {
  double g_sq, theta_sq;
};

// Pass 1 over one row of a factored parameter: sum_j g_j^2 and sum_j theta_j^2, and g_j^2 added
// into the column sums col[j].
template <class T>
inline RowStats row_stats(const T* __restrict__ g, const T* __restrict__ th, int64_t n, double* __restrict__ col) {
  double gs[kLanes] = {}, ts[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const double x = static_cast<double>(g[j + k]) * static_cast<double>(g[j + k]);
      const double t = static_cast<double>(th[j + k]);
      gs[k] += x;
      col[j + k] += x;
      ts[k] += t * t;
    }
  for (; j < n; ++j) {
    const double x = static_cast<double>(g[j]) * static_cast<double>(g[j]);
    const double t = static_cast<double>(th[j]);
    gs[0] += x;
    col[j] += x;
    ts[0] += t * t;
  }
  return {lanes_total(gs), lanes_total(ts)};
}

// The factored update of row i, U_ij = g_ij / sqrt(max(Vhat_ij, eps1^2)) (torch mode; paper mode
// has no clamp), needs no square root per element: with Vhat_ij = R_i C_j / mean(R),
//   1 / sqrt(Vhat_ij) = a_i * b_j,   a_i = 1 / sqrt(R_i),   b_j = sqrt(mean(R) / C_j),
// and the clamp becomes min(a_i b_j, 1 / eps1). a and b are formed in double and rounded once.
// (Paper mode: a_i = 0 where R_i = 0 and b_j = 0 where C_j = 0, so U = 0 where Vhat = 0.)
template <class T>
struct FactoredRule {
  T sign;   // -1 under maximize
  T limit;  // torch mode: 1 / eps1; paper mode: +inf
  inline T operator()(T g, T a, T b) const {
    T s = a * b;
    s = s > limit ? limit : s;  // NaN stays NaN, as torch's clamp
    return (sign * g) * s;
  }
};

// Pass 2 over one row: sum_j U_ij^2.
template <class T>
inline double row_update_sq(const FactoredRule<T>& rule, const T* __restrict__ g, T a, const T* __restrict__ b,
                            int64_t n) {
  double us[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const double u = static_cast<double>(rule(g[j + k], a, b[j + k]));
      us[k] += u * u;
    }
  for (; j < n; ++j) {
    const double u = static_cast<double>(rule(g[j], a, b[j]));
    us[0] += u * u;
  }
  return lanes_total(us);
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

// Final elementwise update of theta (and of the first moment in paper mode):
//   torch mode:  theta <- theta * (1 - lr wd) + (-alpha / denom) U    (wd = 0: the factor is 1, exact)
//   paper mode:  step = (alpha / denom) U;  with b1: m <- b1 m + (1 - b1) step, step = m
//                theta <- theta - alpha wd theta - step
enum class ApplyMode { torch, paper, paper_momentum };

template <class T>
struct ApplyScalars {
  T decay;  // torch: 1 - lr * wd; paper: alpha * wd
  T scale;  // torch: -alpha / denom; paper: alpha / denom
  T b1;
};

template <ApplyMode Mode, class T>
inline void apply_one(const ApplyScalars<T>& c, T& th, T* m, T u) {
  if constexpr (Mode == ApplyMode::torch) {
    th = th * c.decay + c.scale * u;
  } else {
    T step = c.scale * u;
    if constexpr (Mode == ApplyMode::paper_momentum) {
      *m = c.b1 * *m + (T(1) - c.b1) * step;
      step = *m;
    }
    th = th - c.decay * th - step;
  }
}

// Pass 3 over one row of a factored parameter (m: the row of the first moment, or null).
template <ApplyMode Mode, class T>
inline void row_apply(const FactoredRule<T>& rule, const ApplyScalars<T>& c, T* __restrict__ th,
                      const T* __restrict__ g, T a, const T* __restrict__ b, T* __restrict__ m, int64_t n) {
  for (int64_t j = 0; j < n; ++j) apply_one<Mode>(c, th[j], m ? m + j : nullptr, rule(g[j], a, b[j]));
}

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
        with_best_isa([&] {
          for (; r < end; ++r) {
            const RowStats rs = row_stats(g + r * n, theta + r * n, n, col);
            rowsum[r] = rs.g_sq;
            ts += rs.theta_sq;
          }
        });
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

  const T sign = h.maximize ? T(-1) : T(1);
  const T* V = bf.variance.data();
  const UpdateRule<T> rule{paper, static_cast<T>(eps1 * eps1), sign};
  // Factored: the row and column factors of 1 / sqrt(Vhat) (see FactoredRule).
  const FactoredRule<T> frule{sign, paper || eps1 == 0 ? std::numeric_limits<T>::infinity() : static_cast<T>(1 / eps1)};
  std::vector<T> ra, cb;
  if (st.factored) {
    const T* R = bf.row_var.data();
    const T* C = bf.col_var.data();
    ra.resize(B * m);
    cb.resize(B * n);
    for (int64_t r = 0; r < B * m; ++r) {
      const double x = static_cast<double>(R[r]);
      ra[r] = paper && x == 0 ? T(0) : static_cast<T>(1 / std::sqrt(x));
    }
    for (int64_t k = 0; k < B * n; ++k) {
      const double x = static_cast<double>(C[k]);
      cb[k] = paper && x == 0 ? T(0) : static_cast<T>(std::sqrt(static_cast<double>(den[k / n]) / x));
    }
  }
  const int64_t grain = st.factored ? row_grain(n) : kGrain;
  const int64_t units = st.factored ? B * m : N;  // rows, or elements

  // Pass 2: RMS(U) for the update clipping.
  std::vector<double> usq(chunk_count(units, grain), 0.0);
  parallel_chunks(units, grain, [&](int c, int64_t u0, int64_t u1) {
    with_best_isa([&] {
      double s = 0;
      if (st.factored) {
        for (int64_t r = u0; r < u1; ++r) s += row_update_sq(frule, g + r * n, ra[r], cb.data() + (r / m) * n, n);
      } else {
        for (int64_t i = u0; i < u1; ++i) {
          const double u = static_cast<double>(rule(V[i], g[i]));
          s += u * u;
        }
      }
      usq[c] = s;
    });
  });
  double u_sq = 0;
  for (double s : usq) u_sq += s;

  // Step size.
  const double sqrt_n = std::sqrt(static_cast<double>(N));
  const double rms_theta = std::sqrt(theta_sq) / sqrt_n;
  const double rho = (paper && !h.relative_step) ? h.lr : std::min(h.lr, 1.0 / std::pow(t, 0.5));
  const double alpha = (paper && !h.scale_parameter) ? rho : std::max(h.eps2, rms_theta) * rho;
  const double denom = std::max(1.0, std::sqrt(u_sq) / (sqrt_n * h.d));

  // Pass 3: the update.
  ApplyScalars<T> ac{};
  if (paper) {
    ac.decay = static_cast<T>(alpha * h.weight_decay);
    ac.scale = static_cast<T>(alpha / denom);
    ac.b1 = static_cast<T>(h.beta1);
  } else {
    ac.decay = static_cast<T>(1 - h.lr * h.weight_decay);
    ac.scale = static_cast<T>(-alpha / denom);
  }
  T* mom = use_m ? bf.exp_avg.data() : nullptr;
  auto pass3 = [&](auto mode) {
    constexpr ApplyMode M = decltype(mode)::value;
    parallel_chunks(units, grain, [&](int, int64_t u0, int64_t u1) {
      with_best_isa([&] {
        if (st.factored) {
          for (int64_t r = u0; r < u1; ++r)
            row_apply<M>(frule, ac, theta + r * n, g + r * n, ra[r], cb.data() + (r / m) * n,
                         mom ? mom + r * n : nullptr, n);
        } else {
          for (int64_t i = u0; i < u1; ++i) apply_one<M>(ac, theta[i], mom ? mom + i : nullptr, rule(V[i], g[i]));
        }
      });
    });
  };
  if (!paper) pass3(std::integral_constant<ApplyMode, ApplyMode::torch>{});
  else if (!use_m) pass3(std::integral_constant<ApplyMode, ApplyMode::paper>{});
  else pass3(std::integral_constant<ApplyMode, ApplyMode::paper_momentum>{});
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
