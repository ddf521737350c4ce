// Adafactor (Shazeer and Stern 2018) in two modes. Parameters with >= 2 dimensions are viewed as
// (batch, m, n) = (prod(shape[:-2]), shape[-2], shape[-1]) and keep a row factor R (batch x m,
// an EMA of mean_j g^2 over the last dimension) and a column factor C (batch x n, over the
// second-to-last); 0-D and 1-D parameters keep a dense second moment V. With t the step count:
//
//   mode paper (the paper's Algorithms 4-6, with relative step and update clipping):
//     rho_t   = relative_step ? min(lr, 1 / sqrt(t)) : lr      (lr = 1e-2: the paper's constant)
//     alpha_t = scale_parameter ? max(eps2, RMS(theta_{t-1})) * rho_t : rho_t
//     w_t     = t^beta2_decay                                  (1 - beta2hat_t, beta2hat_t = 1 - t^-0.8)
//     R = (1 - w_t) R + w_t mean_j(g^2 + eps1),  C = (1 - w_t) C + w_t mean_i(g^2 + eps1)
//     Vhat = R C^T / mean(R)   (per batch; the same as the paper's sums R C / 1^T R)
//     U = g / sqrt(Vhat),  Uhat = U / max(1, RMS(U) / d)
//     step = alpha_t Uhat;  with beta1 > 0: m = beta1 m + (1 - beta1) step, step = m
//     theta = theta - alpha_t * weight_decay * theta - step    (decoupled decay, scaled by alpha_t)
//
//   mode torch (torch.optim.Adafactor, _single_tensor_adafactor, step for step):
//     rho_t   = min(lr, 1 / sqrt(t)),  alpha_t = max(eps2, RMS(theta_{t-1})) * rho_t
//     theta  *= 1 - lr * weight_decay
//     R, C (or V) EMAs of plain g^2 (no eps1 inside),  Vhat = R C^T / max(mean(R), eps1)
//     U = g / sqrt(max(Vhat, eps1^2)),  theta -= alpha_t / max(1, RMS(U) / d) * U
//     (no first moment; eps1 "auto" = machine epsilon of the first parameter's dtype in the call,
//     which is what torch's eps=(None, .) resolves to).
//
// maximize negates the gradient. float64 parameters are stepped in double with float64 state;
// float32 in float; bf16/fp16 through float32 copies with float32 state. Any other dense layout
// (channels_last, ...) is stepped through C-ordered copies, with the same result bit for bit.
//
// State (torch.optim.Adafactor's names and shapes): "step"; for >= 2-D parameters row_var
// shape[:-1] + (1,) and col_var shape[:-2] + (1, n), C-contiguous; for 0-D/1-D variance, like the
// parameter; in paper mode with beta1 > 0 also exp_avg, like the parameter. float64 for float64
// parameters, float32 otherwise.
//
// Hyperparameters (numbers throughout): mode 0 = torch (the default), 1 = paper; eps1_auto 1 =
// eps1 is the machine epsilon of the first parameter's dtype in the call (torch's eps=(None, .)),
// whatever eps1 says. The spec-string conventions that depend on which keys were given (eps1
// given alone turns eps1_auto off; paper mode with neither uses the paper's eps1 = 1e-30) belong
// to the fronts, which see the given keys.
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>
#include <type_traits>

#include "adapprox/quantized_state.hpp"
#include "adapprox/interrupt.hpp"
#include "adapprox/thread_pool.hpp"
#include "adapprox/tuning.hpp"
#include "algorithms.hpp"
#include "cuda_steps.hpp"
#include "isa_dispatch.hpp"
#include "math/adafactor.hpp"
#include "staged.hpp"
#include "adapprox/interrupt_points.hpp"

namespace adapprox {
namespace {

enum class AdafactorMode { torch, paper };

struct AdafactorHyper {
  AdafactorMode mode = AdafactorMode::torch;
  double lr = 1e-2;
  double beta2_decay = -0.8;
  double eps1 = 0.0;
  bool eps1_auto = true;  // eps1 = machine epsilon of the first parameter's dtype
  double eps2 = 1e-3;
  double d = 1.0;
  double weight_decay = 0.0;
  double beta1 = 0.0;           // paper mode only; 0 keeps no first moment
  bool relative_step = true;    // paper mode only
  bool scale_parameter = true;  // paper mode only
  bool maximize = false;
  StatePrecision precision = StatePrecision::f32;  // of variance (unfactored) and exp_avg
  bool stochastic_rounding = false;                // of bf16 parameters
};

AdafactorHyper native(const Hyper& h) {
  AdafactorHyper a;
  a.mode = h.at("mode") == 1 ? AdafactorMode::paper : AdafactorMode::torch;
  a.lr = h.at("lr");
  a.beta2_decay = h.at("beta2_decay");
  a.eps1 = h.at("eps1");
  a.eps1_auto = h.at("eps1_auto") != 0;
  a.eps2 = h.at("eps2");
  a.d = h.at("d");
  a.weight_decay = h.at("weight_decay");
  a.beta1 = h.at("beta1");
  a.relative_step = h.at("relative_step") != 0;
  a.scale_parameter = h.at("scale_parameter") != 0;
  a.maximize = h.at("maximize") != 0;
  a.precision = state_precision(h);
  a.stochastic_rounding = adapprox::stochastic_rounding(h);
  return a;
}

// The shape seen as (batch, m, n): non-empty >= 2-D parameters factored, the rest as (1, 1, numel).
// A row shard (split over its first dimension: m for a matrix, the batch otherwise) is factored
// as the whole tensor is; `whole_numel` and `whole_rows` are the whole tensor's.
struct Dims {
  bool factored = false;
  int64_t batch = 1, rows = 1, cols = 0;
  int64_t whole_numel = 0, whole_rows = 1;
  size_t whole_dims = 0;
  explicit Dims(const std::vector<int64_t>& shape) : Dims(shape, shape) {}
  Dims(const std::vector<int64_t>& shape, const std::vector<int64_t>& whole) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    whole_numel = 1;
    for (int64_t d : whole) whole_numel *= d;
    whole_dims = whole.size();
    factored = whole.size() >= 2 && whole_numel > 0;  // an empty parameter keeps no factors (schema)
    if (factored) whole_rows = whole[whole.size() - 2];
    if (factored) {
      for (size_t i = 0; i + 2 < shape.size(); ++i) batch *= shape[i];
      rows = shape[shape.size() - 2];
      cols = shape.back();
    } else {
      cols = n;
    }
  }
  int64_t numel() const { return batch * rows * cols; }
};

// The state buffers of one parameter, C-ordered (null where the schema has none).
template <class T>
struct Buffers {
  T* row_var = nullptr;   // batch x m (factored)
  T* col_var = nullptr;   // batch x n (factored)
  T* variance = nullptr;  // numel (not factored)
  T* exp_avg = nullptr;   // numel (paper mode with beta1 > 0)
  // Low-precision state (state_precision; float math only): these replace variance / exp_avg,
  // stepped block by block.
  const Moment* variance_q = nullptr;
  const Moment* exp_avg_q = nullptr;
};

constexpr int64_t kGrain = tuning::kFactoredGrain;

int64_t row_grain(int64_t n) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, n)); }

double machine_eps(DType t) {
  switch (t) {
    case DType::f64: return DBL_EPSILON;
    case DType::f32: return FLT_EPSILON;
    case DType::f16: return 0.0009765625;  // 2^-10
    case DType::bf16: return 0.0078125;    // 2^-7
    case DType::u8: break;                  // (never a parameter)
  }
  return FLT_EPSILON;
}

// Sums run over kLanes independent double accumulators, combined in a fixed order at the end:
// the loops vectorise, and the result is the same for every instruction set (adapprox/isa.hpp).
constexpr int kLanes = tuning::kDoubleReductionLanes;
static_assert(kLanes == 8, "lanes_total adds eight lanes");
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

// The factored update of row i needs no square root per element (math/adafactor.hpp):
//   1 / sqrt(Vhat_ij) = a_i * b_j,   a_i = 1 / sqrt(R_i),   b_j = sqrt(mean(R) / C_j).
using math::ApplyMode;
using math::ApplyScalars;
using math::FactoredRule;
using math::UpdateRule;
using math::apply_one;

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

// Pass 3 over one row of a factored parameter (m: the row of the first moment, or null).
template <ApplyMode Mode, class T>
inline void row_apply(const FactoredRule<T>& rule, const ApplyScalars<T>& c, T* __restrict__ th,
                      const T* __restrict__ g, T a, const T* __restrict__ b, T* __restrict__ m, int64_t n) {
  for (int64_t j = 0; j < n; ++j) apply_one<Mode>(c, th[j], m ? m + j : nullptr, rule(g[j], a, b[j]));
}

// A row shard's sums over the whole tensor (no-ops for a whole parameter).
struct ShardSums {
  const RowShard& shard;
  void operator()(double* v, int64_t count) const {
    if (shard.sharded()) shard.comm->allreduce_sum(v, count);
  }
};

// Passes 2 and 3 with a low-precision variance (unfactored) or exp_avg, block by block.
template <class AllRanks>
void step_blocks(const Dims& dims, const Buffers<float>& bf, float* theta, const float* g, const AdafactorHyper& h,
                 const UpdateRule<float>& rule, const FactoredRule<float>& frule, const std::vector<float>& ra,
                 const std::vector<float>& cb, double theta_sq, double t, const AllRanks& all_ranks, bool use_m) {
  const bool paper = h.mode == AdafactorMode::paper;
  const int64_t N = dims.numel(), m = dims.rows, n = dims.cols;
  const int64_t blocks = quant_blocks(N), bgrain = std::max<int64_t>(1, kGrain / kQuantBlock);
  // v of block elements [lo, lo + len): the decoded variance (unfactored) or null (factored).
  auto v_block = [&](int64_t lo, int64_t len, float* vb) -> const float* {
    if (dims.factored) return nullptr;
    if (bf.variance_q) {
      load_block(*bf.variance_q, lo, len, vb);
      return vb;
    }
    return bf.variance + lo;
  };
  // Pass 2: RMS(U).
  double u_sq = 0;
  if (dims.factored) {
    std::vector<double> usq(chunk_count(dims.batch * m, row_grain(n)), 0.0);
    parallel_chunks(dims.batch * m, row_grain(n), [&](int c, int64_t r0, int64_t r1) {
      double s = 0;
      for (int64_t r = r0; r < r1; ++r) s += row_update_sq(frule, g + r * n, ra[r], cb.data() + (r / m) * n, n);
      usq[c] = s;
    });
    for (double s : usq) u_sq += s;
  } else {
    std::vector<double> usq(chunk_count(blocks, bgrain), 0.0);
    parallel_chunks(blocks, bgrain, [&](int c, int64_t b0, int64_t b1) {
      float vb[kQuantBlock];
      double s = 0;
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t lo = blk * kQuantBlock, len = std::min(kQuantBlock, N - lo);
        const float* V = v_block(lo, len, vb);
        for (int64_t i = 0; i < len; ++i) {
          const double u = static_cast<double>(rule(V[i], g[lo + i]));
          s += u * u;
        }
      }
      usq[c] = s;
    });
    for (double s : usq) u_sq += s;
  }
  all_ranks(&u_sq, 1);
  const double rho = (paper && !h.relative_step) ? h.lr : std::min(h.lr, 1.0 / std::pow(t, 0.5));
  const ApplyScalars<float> ac = math::adafactor_apply_scalars<float>(
      theta_sq, u_sq, static_cast<double>(dims.whole_numel), rho, paper, h.scale_parameter, h.eps2, h.d, h.lr,
      h.weight_decay, h.beta1);
  // Pass 3: the update, each block of the first moment decoded, updated and encoded once.
  auto pass3 = [&](auto mode) {
    constexpr ApplyMode M = decltype(mode)::value;
    parallel_chunks(blocks, bgrain, [&](int, int64_t b0, int64_t b1) {
      float vb[kQuantBlock], mb[kQuantBlock];
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t lo = blk * kQuantBlock, len = std::min(kQuantBlock, N - lo);
        float* mom = nullptr;
        if (use_m && bf.exp_avg_q) {
          load_block(*bf.exp_avg_q, lo, len, mb);
          mom = mb;
        } else if (use_m) {
          mom = bf.exp_avg + lo;
        }
        if (dims.factored) {
          for (int64_t e = lo; e < lo + len;) {  // the rows this block crosses, piece by piece
            const int64_t r = e / n, j = e - r * n, seg = std::min(lo + len, (r + 1) * n) - e;
            row_apply<M>(frule, ac, theta + e, g + e, ra[r], cb.data() + (r / m) * n + j,
                         mom ? mom + (e - lo) : nullptr, seg);
            e += seg;
          }
        } else {
          const float* V = v_block(lo, len, vb);
          for (int64_t i = 0; i < len; ++i)
            apply_one<M>(ac, theta[lo + i], mom ? mom + i : nullptr, rule(V[i], g[lo + i]));
        }
        if (use_m && bf.exp_avg_q) store_block(*bf.exp_avg_q, lo, len, mb);
      }
    });
  };
  if (!paper) pass3(std::integral_constant<ApplyMode, ApplyMode::torch>{});
  else if (!use_m) pass3(std::integral_constant<ApplyMode, ApplyMode::paper>{});
  else pass3(std::integral_constant<ApplyMode, ApplyMode::paper_momentum>{});
}

template <class T>
void step_typed(const Dims& dims, Buffers<T> bf, T* theta, const T* g, const AdafactorHyper& h, double eps1,
                int64_t step, const RowShard& shard) {
  const bool paper = h.mode == AdafactorMode::paper;
  const int64_t N = dims.numel();
  const int64_t B = dims.batch, m = dims.rows, n = dims.cols;
  // A matrix split over its rows shares its column statistics and mean(R) across ranks; a
  // batch of matrices split over the batch keeps each matrix whole on one rank.
  const bool split_rows = shard.sharded() && dims.factored && dims.whole_dims == 2;
  const ShardSums all_ranks{shard};
  const bool use_m = paper && h.beta1 > 0;
  const double t = static_cast<double>(step);
  if (N == 0 && !shard.sharded()) return;  // an empty shard still takes part in the sums
  const T w = static_cast<T>(std::pow(t, h.beta2_decay));
  const double add = paper ? eps1 : 0.0;  // paper: eps1 inside the averages

  // Pass 1: statistics of g^2 (and the EMAs), sum of theta^2.
  double theta_sq = 0;
  std::vector<T> den;  // per batch: mean(R) (torch: clamped to eps1)
  if (dims.factored) {
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
    if (split_rows) {  // one all-reduce: the column sums and sum theta^2
      colsum.push_back(theta_sq);
      all_ranks(colsum.data(), n + 1);
      theta_sq = colsum.back();
    } else {
      all_ranks(&theta_sq, 1);
    }
    const int64_t whole_m = dims.whole_rows;
    T* R = bf.row_var;
    T* C = bf.col_var;
    for (int64_t r = 0; r < FR; ++r) R[r] = math::adafactor_lerp(R[r], static_cast<T>(rowsum[r] / n + add), w);
    for (int64_t k = 0; k < B * n; ++k) C[k] = math::adafactor_lerp(C[k], static_cast<T>(colsum[k] / whole_m + add), w);
    den.resize(B);
    for (int64_t b = 0; b < B; ++b) {
      double s = 0;
      for (int64_t i = 0; i < m; ++i) s += static_cast<double>(R[b * m + i]);
      if (split_rows) all_ranks(&s, 1);
      const T mean = static_cast<T>(s / whole_m);
      den[b] = paper ? mean : (mean < static_cast<T>(eps1) ? static_cast<T>(eps1) : mean);
    }
  } else if (bf.variance_q) {
    if constexpr (std::is_same_v<T, float>) {  // v block by block: decoded, updated, encoded
      const int64_t blocks = quant_blocks(N), bgrain = kGrain / kQuantBlock;
      std::vector<double> tsq(chunk_count(blocks, bgrain), 0.0);
      const float addT = static_cast<float>(add);
      parallel_chunks(blocks, bgrain, [&](int c, int64_t b0, int64_t b1) {
        float vb[kQuantBlock];
        double ts = 0;
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t lo = blk * kQuantBlock, len = std::min(kQuantBlock, N - lo);
          load_block(*bf.variance_q, lo, len, vb);
          for (int64_t i = 0; i < len; ++i) {
            vb[i] = math::adafactor_lerp(vb[i], g[lo + i] * g[lo + i] + addT, w);
            ts += static_cast<double>(theta[lo + i]) * static_cast<double>(theta[lo + i]);
          }
          store_block(*bf.variance_q, lo, len, vb);
        }
        tsq[c] = ts;
      });
      for (double s : tsq) theta_sq += s;
      all_ranks(&theta_sq, 1);
    }
  } else {
    const int chunks = chunk_count(N, kGrain);
    std::vector<double> tsq(chunks, 0.0);
    T* V = bf.variance;
    const T addT = static_cast<T>(add);
    parallel_chunks(N, kGrain, [&](int c, int64_t i0, int64_t i1) {
      double ts = 0;
      for (int64_t i = i0; i < i1; ++i) {
        V[i] = math::adafactor_lerp(V[i], g[i] * g[i] + addT, w);
        ts += static_cast<double>(theta[i]) * static_cast<double>(theta[i]);
      }
      tsq[c] = ts;
    });
    for (double s : tsq) theta_sq += s;
    all_ranks(&theta_sq, 1);
  }

  const T sign = h.maximize ? T(-1) : T(1);
  const T* V = bf.variance;
  const UpdateRule<T> rule{paper, static_cast<T>(eps1 * eps1), sign};
  // Factored: the row and column factors of 1 / sqrt(Vhat) (see FactoredRule).
  const FactoredRule<T> frule{sign, paper || eps1 == 0 ? std::numeric_limits<T>::infinity() : static_cast<T>(1 / eps1)};
  std::vector<T> ra, cb;
  if (dims.factored) {
    const T* R = bf.row_var;
    const T* C = bf.col_var;
    ra.resize(B * m);
    cb.resize(B * n);
    for (int64_t r = 0; r < B * m; ++r) ra[r] = math::adafactor_row_factor<T>(static_cast<double>(R[r]), paper);
    for (int64_t k = 0; k < B * n; ++k)
      cb[k] = math::adafactor_col_factor<T>(static_cast<double>(C[k]), static_cast<double>(den[k / n]), paper);
  }
  const int64_t grain = dims.factored ? row_grain(n) : kGrain;
  const int64_t units = dims.factored ? B * m : N;  // rows, or elements

  // Low-precision state: passes 2 and 3 walk blocks of kQuantBlock elements (each chunk owns
  // whole blocks), decoding v and m on the stack.
  if constexpr (std::is_same_v<T, float>) {
    if (bf.variance_q || bf.exp_avg_q) {
      step_blocks(dims, bf, theta, g, h, rule, frule, ra, cb, theta_sq, t, all_ranks, use_m);
      return;
    }
  }

  // Pass 2: RMS(U) for the update clipping.
  std::vector<double> usq(chunk_count(units, grain), 0.0);
  parallel_chunks(units, grain, [&](int c, int64_t u0, int64_t u1) {
    with_best_isa([&] {
      double s = 0;
      if (dims.factored) {
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
  all_ranks(&u_sq, 1);

  // Step size.
  const double rho = (paper && !h.relative_step) ? h.lr : std::min(h.lr, 1.0 / std::pow(t, 0.5));
  const ApplyScalars<T> ac = math::adafactor_apply_scalars<T>(theta_sq, u_sq, static_cast<double>(dims.whole_numel), rho, paper,
                                                               h.scale_parameter, h.eps2, h.d, h.lr, h.weight_decay,
                                                               h.beta1);

  // Pass 3: the update.
  T* mom = use_m ? bf.exp_avg : nullptr;
  auto pass3 = [&](auto mode) {
    constexpr ApplyMode M = decltype(mode)::value;
    parallel_chunks(units, grain, [&](int, int64_t u0, int64_t u1) {
      with_best_isa([&] {
        if (dims.factored) {
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
}

// One parameter in the math dtype T: parameter, gradient and like-parameter state are used in
// place when C-contiguous (and, for the parameter and gradient, of dtype T), else through
// C-ordered copies written back once; row_var/col_var are C-contiguous (the driver checked).
template <class T>
void step_slot(Slot& s, const AdafactorHyper& h, double eps1) {
  const Dims dims(s.param.shape, schema_shape(s));
  if (dims.numel() == 0 && !s.shard.sharded()) return;
  const bool use_m = h.mode == AdafactorMode::paper && h.beta1 > 0;
  Staged<T> theta(s.param), grad(s.grad);
  Buffers<T> bf;
  std::vector<std::unique_ptr<Staged<T>>> like;  // like-parameter state
  auto stage = [&](const TensorRef& b) {
    like.push_back(std::make_unique<Staged<T>>(b));
    return like.back()->data();
  };
  size_t k = 1;  // after "step"
  std::unique_ptr<Moment> vq, mq;  // low-precision moments (state_precision), float math only
  const bool low = std::is_same_v<T, float> && h.precision != StatePrecision::f32;
  if (dims.factored) {
    bf.row_var = static_cast<T*>(s.state[k++].data);
    bf.col_var = static_cast<T*>(s.state[k++].data);
  } else if (low) {
    vq = std::make_unique<Moment>(moment_of(s, k, MomentKind::nonnegative, 0));
    bf.variance_q = vq.get();
    k += moment_buffers(h.precision);
  } else {
    bf.variance = stage(s.state[k++]);
  }
  if (use_m && low) {
    mq = std::make_unique<Moment>(moment_of(s, k, MomentKind::signed_value, 1));
    bf.exp_avg_q = mq.get();
  } else if (use_m) {
    bf.exp_avg = stage(s.state[k++]);
  }
  step_typed<T>(dims, bf, theta.data(), grad.data(), h, eps1, s.t, s.shard);
  theta.store(h.stochastic_rounding, rounding_key(s.index, s.t, kParamRoundingBuffer));
  for (const auto& b : like) b->store();
}

void step_one(Slot& s, const AdafactorHyper& h, double eps1) {
  if (s.param.dtype == DType::f64)
    step_slot<double>(s, h, eps1);
  else
    step_slot<float>(s, h, eps1);  // float32, and bf16/fp16 through float32 copies
}

class Adafactor final : public Algorithm {
 public:
  std::string name() const override { return "adafactor"; }
  std::string summary() const override {
    return "Adafactor: factored second moment (row/column EMAs), torch.optim.Adafactor or the paper's mode";
  }
  const std::vector<HyperParam>& hyper_params() const override {
    const double inf = std::numeric_limits<double>::infinity();
    static const std::vector<HyperParam> params = {
        {"mode", 0, 0, 1, false, false, true, "0: torch.optim.Adafactor, 1: the paper (relative step, eps1 inside)"},
        {"lr", 1e-2, 0, inf, false, true, false, "learning rate (the cap of the relative step)"},
        {"beta2_decay", -0.8, -inf, 0, false, false, false, "second-moment weight t^beta2_decay"},
        {"eps1", 0, 0, inf, false, true, false, "eps[0]: regularises the second moment (unless eps1_auto)"},
        {"eps1_auto", 1, 0, 1, false, false, true, "1: eps1 = machine epsilon of the first parameter's dtype"},
        {"eps2", 1e-3, 0, inf, false, true, false, "eps[1]: floor of RMS(theta) in the step size"},
        {"d", 1, 0, inf, true, false, false, "update clipping threshold (>= 1 in torch mode)"},
        {"weight_decay", 0, 0, inf, false, true, false, "decoupled weight decay"},
        {"beta1", 0, 0, 1, false, true, false, "paper mode: first-moment decay (0 keeps none)"},
        {"relative_step", 1, 0, 1, false, false, true, "paper mode: rho_t = min(lr, 1/sqrt(t)) (0: lr)"},
        {"scale_parameter", 1, 0, 1, false, false, true, "paper mode: scale the step by max(eps2, RMS(theta))"},
        {"maximize", 0, 0, 1, false, false, true, "maximize the objective"},
        state_precision_param(),
        stochastic_rounding_param(),
    };
    return params;
  }
  void validate(const Hyper& h) const override {
    if (h.at("mode") == 1) return;
    auto bad = [](const std::string& what) { throw Error(ErrorKind::value, what); };
    if (h.at("relative_step") != 1 || h.at("scale_parameter") != 1)
      bad("relative_step and scale_parameter are options of mode=1 (paper) only");
    if (!(h.at("d") >= 1)) {
      std::ostringstream os;
      os << "d (clipping threshold) must be >= 1 in torch mode, got " << h.at("d");
      bad(os.str());
    }
    if (h.at("beta1") != 0) bad("beta1 is only available in paper mode (torch.optim.Adafactor keeps no first moment)");
  }
  std::vector<BufferSpec> schema(const Hyper& h, const std::vector<int64_t>& shape, DType dtype) const override {
    const DType sd = algorithms::math_dtype(dtype);
    std::vector<BufferSpec> s = {algorithms::step_buffer()};
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    // An empty parameter keeps no factors: they would be sized by its other dimensions
    // (a (10^15, 0, 4) parameter would need 4 * 10^15 column statistics for nothing).
    if (shape.size() >= 2 && numel > 0) {
      BufferSpec row, col;
      row.name = "row_var";
      row.dtype = sd;
      row.shape.assign(shape.begin(), shape.end() - 1);
      row.shape.push_back(1);
      col.name = "col_var";
      col.dtype = sd;
      col.shape.assign(shape.begin(), shape.end() - 2);
      col.shape.push_back(1);
      col.shape.push_back(shape.back());
      row.follows_rows = true;                // shape[:-1]: the parameter's first dimension
      col.follows_rows = shape.size() >= 3;   // a matrix's column statistics are whole on every rank
      s.push_back(row);
      s.push_back(col);
    } else {
      add_moment(s, "variance", MomentKind::nonnegative, sd, shape, state_precision(h));
    }
    if (h.at("mode") == 1 && h.at("beta1") > 0)
      add_moment(s, "exp_avg", MomentKind::signed_value, sd, shape, state_precision(h));
    return s;
  }
  void check_state(const Hyper& hyper, const Slot& s, const std::string& who) const override {
    check_precision_supported(hyper, s, who, "Adafactor");
    if (s.param.device.kind == Device::cuda && Dims(s.param.shape).batch * Dims(s.param.shape).rows > INT32_MAX)
      throw Error(ErrorKind::value, who + ": Adafactor on CUDA takes at most 2^31 - 1 rows (the product of all "
                                          "dimensions but the last)");
    if (s.param.device.kind == Device::cuda && !s.param.contiguous())
      throw Error(ErrorKind::value, who + ": Adafactor on CUDA steps C-contiguous parameters (this one is laid out "
                                          "otherwise, e.g. channels_last); adapprox never copies behind your back");
  }
  void step_cuda(const Hyper& hyper, std::vector<Slot>& slots, Allocator&, void* stream) const override {
    if (slots.empty()) return;
    const AdafactorHyper h = native(hyper);
    const double eps1 = h.eps1_auto ? machine_eps(slots[0].param.dtype) : h.eps1;
    const bool paper = h.mode == AdafactorMode::paper;
    for (Slot& s : slots) {
      check_interrupt();
      const double t = static_cast<double>(s.t);
      cuda::AdafactorArgs a{};
      a.factored = Dims(s.param.shape).factored;
      a.paper = paper;
      a.use_m = paper && h.beta1 > 0;
      a.scale_parameter = h.scale_parameter;
      a.maximize = h.maximize;
      a.w = std::pow(t, h.beta2_decay);
      a.add = paper ? eps1 : 0.0;
      a.eps1 = eps1;
      a.rho = (paper && !h.relative_step) ? h.lr : std::min(h.lr, 1.0 / std::pow(t, 0.5));
      a.lr = h.lr;
      a.weight_decay = h.weight_decay;
      a.eps2 = h.eps2;
      a.d = h.d;
      a.beta1 = h.beta1;
      cuda::adafactor_step(a, s, stream);
      s.done = true;
    }
  }
  void step(const Hyper& hyper, std::vector<Slot>& slots, Allocator&) const override {
    if (slots.empty()) return;
    const AdafactorHyper h = native(hyper);
    // torch resolves eps=(None, .) once per group, from the first parameter with a gradient.
    const double eps1 = h.eps1_auto ? machine_eps(slots[0].param.dtype) : h.eps1;
    // Large parameters and row shards (whose collectives run in order on this thread) one after
    // another, each with every thread; the rest side by side.
    std::vector<Slot*> small;
    for (Slot& s : slots) {
      if (s.param.numel() >= tuning::kBigParamNumel || s.shard.sharded()) {
        check_interrupt();
        step_one(s, h, eps1);
        s.done = true;
      } else {
        small.push_back(&s);
      }
    }
    parallel_chunks(static_cast<int64_t>(small.size()), 1, [&](int, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        check_interrupt();
        step_one(*small[i], h, eps1);
        small[i]->done = true;
      }
    });
  }
};

}  // namespace

namespace algorithms {
const Algorithm* adafactor() {
  static const Adafactor instance;
  return &instance;
}
}  // namespace algorithms

}  // namespace adapprox
