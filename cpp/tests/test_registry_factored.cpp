// Registry tests of the factored and full-matrix optimizers (Adafactor, Adapprox,
// FullMatrixAdagrad, AdaGram) through adapprox::step over caller-owned buffers: each against an
// independent dense reference in double precision, other layouts against C-contiguous ones
// (bitwise), and refused steps (nothing written).
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adapprox/registry.hpp"
#include "check.hpp"
#include "adapprox/tensor_ops.hpp"

using namespace adapprox;

namespace {

using Vec = std::vector<double>;

// A tensor owning its storage, in any dense layout; values in and out in logical (C) order.
struct Tensor {
  std::vector<double> mem;  // 8-byte aligned storage
  TensorRef ref;
  Tensor(DType dt, std::vector<int64_t> shape, std::vector<int64_t> strides = {}) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    mem.assign(static_cast<size_t>((n * dtype_size(dt) + 7) / 8 + 1), 0.0);
    ref = TensorRef{mem.data(), dt, std::move(shape), std::move(strides)};
  }
  Tensor(const Tensor&) = delete;
};

Vec values(const TensorRef& t) {
  Vec v(static_cast<size_t>(t.numel()));
  if (t.data) gather(t, DType::f64, v.data());
  return v;
}
void set_values(const TensorRef& t, const Vec& v) { scatter(v.data(), DType::f64, t); }

// The front's side of resized buffers: zero-filled, owned until the end of the test.
class TestAllocator final : public Allocator {
 public:
  TensorRef allocate(size_t, size_t, DType dtype, const std::vector<int64_t>& shape) override {
    std::lock_guard<std::mutex> lock(mu_);
    owned_.push_back(std::make_unique<Tensor>(dtype, shape));
    ++calls;
    return owned_.back()->ref;
  }
  int calls = 0;

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Tensor>> owned_;
};

// One optimizer over a few parameters, with state created from the schema as a front would.
struct Run {
  const Algorithm& algo;
  Hyper hyper;
  std::deque<Tensor> store;
  std::vector<Slot> slots;
  std::vector<std::vector<std::string>> names;
  TestAllocator alloc;

  Run(const std::string& name, Hyper h) : algo(find_algorithm(name)), hyper(std::move(h)) {}

  Tensor& make(DType dt, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides = {}) {
    store.emplace_back(dt, shape, strides);
    return store.back();
  }
  // A parameter of this shape/dtype/layout holding `p` (logical order).
  size_t add(const std::vector<int64_t>& shape, DType dt, const Vec& p, const std::vector<int64_t>& strides = {}) {
    Slot s;
    s.param = make(dt, shape, strides).ref;
    s.grad = make(dt, shape, strides).ref;
    set_values(s.param, p);
    s.index = slots.size();
    s.fresh = true;
    const Hyper h = complete_hyper(algo, hyper);
    std::vector<std::string> n;
    for (const BufferSpec& b : state_schema(algo, h, shape, dt)) {
      n.push_back(b.name);
      if (b.resized) {
        s.state.push_back(TensorRef{nullptr, b.dtype, b.shape, {}});
        continue;
      }
      Tensor& t = b.like_param ? make(b.dtype, shape, strides) : make(b.dtype, b.shape);
      set_values(t.ref, Vec(static_cast<size_t>(t.ref.numel()), b.fill));
      s.state.push_back(t.ref);
    }
    slots.push_back(s);
    names.push_back(n);
    return slots.size() - 1;
  }
  const TensorRef& state(size_t i, const std::string& name) const {
    for (size_t k = 0; k < names[i].size(); ++k)
      if (names[i][k] == name) return slots[i].state[k];
    throw std::runtime_error("no state " + name);
  }
  void step(const std::vector<Vec>& grads) {
    for (size_t i = 0; i < slots.size(); ++i) set_values(slots[i].grad, grads[i]);
    adapprox::step(algo, hyper, slots, alloc);
    for (Slot& s : slots) s.fresh = false;
  }
};

// Deterministic test data.
Vec pattern(int64_t n, double scale, int seed) {
  Vec v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.7 * double(i + 1) * (seed + 1) + seed);
  return v;
}

bool near(const Vec& a, const Vec& b, double rtol, double atol = 0) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(a[i] - b[i]) <= atol + rtol * std::abs(b[i]))) {
      std::printf("    [%zu] %.17g vs %.17g\n", i, a[i], b[i]);
      return false;
    }
  return true;
}

std::vector<uint8_t> raw(const TensorRef& t) {
  const int64_t bytes = extent_bytes(t);
  if (!t.data || bytes <= 0) return {};
  const uint8_t* p = static_cast<const uint8_t*>(t.data);
  return std::vector<uint8_t>(p, p + bytes);
}

// Every byte of every buffer of a run.
std::vector<std::vector<uint8_t>> snapshot(const Run& r) {
  std::vector<std::vector<uint8_t>> out;
  for (const Slot& s : r.slots) {
    out.push_back(raw(s.param));
    for (const TensorRef& b : s.state) out.push_back(raw(b));
  }
  return out;
}

// ---------------------------------------------------------------- references (double)

// torch.optim.Adafactor's step on one parameter (shape >= 2-D: (B, m, n) factored; else dense).
struct AdafactorRef {
  std::vector<int64_t> shape;
  Vec R, C, V;
  double lr = 1e-2, wd = 0, d = 1, eps1, eps2 = 1e-3, decay = -0.8;
  void step(Vec& th, const Vec& g, int64_t t) {
    const int64_t N = static_cast<int64_t>(th.size());
    double ss = 0;
    for (double x : th) ss += x * x;
    const double rho = std::min(lr, 1 / std::sqrt(double(t)));
    const double alpha = std::max(eps2, std::sqrt(ss / N)) * rho;
    for (double& x : th) x *= 1 - lr * wd;
    const double w = std::pow(double(t), decay);
    Vec U(N);
    if (shape.size() >= 2) {
      const int64_t m = shape[shape.size() - 2], n = shape.back(), B = N / (m * n);
      R.resize(B * m, 0.0);
      C.resize(B * n, 0.0);
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < m; ++i) {
          double s = 0;
          for (int64_t j = 0; j < n; ++j) s += g[(b * m + i) * n + j] * g[(b * m + i) * n + j];
          R[b * m + i] = R[b * m + i] + w * (s / n - R[b * m + i]);
        }
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t i = 0; i < m; ++i) s += g[(b * m + i) * n + j] * g[(b * m + i) * n + j];
          C[b * n + j] = C[b * n + j] + w * (s / m - C[b * n + j]);
        }
        double rs = 0;
        for (int64_t i = 0; i < m; ++i) rs += R[b * m + i];
        const double den = std::max(rs / m, eps1);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            const int64_t k = (b * m + i) * n + j;
            U[k] = g[k] / std::sqrt(std::max(R[b * m + i] * C[b * n + j] / den, eps1 * eps1));
          }
      }
    } else {
      V.resize(N, 0.0);
      for (int64_t k = 0; k < N; ++k) {
        V[k] = V[k] + w * (g[k] * g[k] - V[k]);
        U[k] = g[k] / std::sqrt(std::max(V[k], eps1 * eps1));
      }
    }
    double us = 0;
    for (double u : U) us += u * u;
    const double scale = alpha / std::max(1.0, std::sqrt(us / N) / d);
    for (int64_t k = 0; k < N; ++k) th[k] -= scale * U[k];
  }
};

// Adapprox with an exact (full-rank) second moment: V dense.
struct AdapproxRef {
  Vec V, M;
  double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, d = 1, wd = 0;
  void step(Vec& th, const Vec& g) {
    const size_t N = th.size();
    V.resize(N, 0.0);
    M.resize(N, 0.0);
    Vec mh(N);
    double ss = 0;
    for (size_t k = 0; k < N; ++k) {
      mh[k] = g[k] / (std::sqrt(b2 * std::abs(V[k]) + (1 - b2) * g[k] * g[k]) + eps);
      ss += mh[k] * mh[k];
    }
    const double clip = 1 / std::max(1.0, std::sqrt(ss / N) / d);
    for (size_t k = 0; k < N; ++k) {
      M[k] = b1 * M[k] + (1 - b1) * clip * mh[k];
      th[k] -= lr * ((b1 > 0 ? M[k] : clip * mh[k]) + wd * th[k]);
      V[k] = b2 * V[k] + (1 - b2) * g[k] * g[k];
    }
  }
};

// Small dense linear algebra for the Gram references.
using Mat = std::vector<Vec>;
Mat identity(size_t n, double s = 1) {
  Mat a(n, Vec(n, 0.0));
  for (size_t i = 0; i < n; ++i) a[i][i] = s;
  return a;
}
Mat mul(const Mat& a, const Mat& b) {
  Mat c(a.size(), Vec(b[0].size(), 0.0));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < b.size(); ++k)
      for (size_t j = 0; j < b[0].size(); ++j) c[i][j] += a[i][k] * b[k][j];
  return c;
}
Vec mulv(const Mat& a, const Vec& x) {
  Vec y(a.size(), 0.0);
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < x.size(); ++j) y[i] += a[i][j] * x[j];
  return y;
}
Mat inverse(Mat a) {  // Gauss-Jordan with partial pivoting
  const size_t n = a.size();
  Mat inv = identity(n);
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
    std::swap(a[c], a[p]);
    std::swap(inv[c], inv[p]);
    const double d = a[c][c];
    for (size_t j = 0; j < n; ++j) a[c][j] /= d, inv[c][j] /= d;
    for (size_t r = 0; r < n; ++r)
      if (r != c) {
        const double f = a[r][c];
        for (size_t j = 0; j < n; ++j) a[r][j] -= f * a[c][j], inv[r][j] -= f * inv[c][j];
      }
  }
  return inv;
}
// The principal square root of an SPD matrix (Denman-Beavers iteration).
Mat sqrtm(const Mat& a) {
  Mat y = a, z = identity(a.size());
  for (int it = 0; it < 60; ++it) {
    const Mat yi = inverse(y), zi = inverse(z);
    for (size_t i = 0; i < a.size(); ++i)
      for (size_t j = 0; j < a.size(); ++j) y[i][j] = 0.5 * (y[i][j] + zi[i][j]), z[i][j] = 0.5 * (z[i][j] + yi[i][j]);
  }
  return y;
}

const std::vector<int64_t> kShape4 = {2, 3, 2, 2};
const std::vector<int64_t> kChannelsLast = {12, 1, 6, 3};  // (N, C, H, W) stored as (N, H, W, C)

}  // namespace

// ---------------------------------------------------------------- Adafactor

TEST(adafactor_torch_mode_matches_dense_reference) {
  Run r("adafactor", {{"weight_decay", 0.05}, {"lr", 0.02}});
  const std::vector<std::vector<int64_t>> shapes = {{2, 3, 4}, {5}, {}};
  std::vector<AdafactorRef> ref(shapes.size());
  std::vector<Vec> th(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    int64_t n = 1;
    for (int64_t d : shapes[i]) n *= d;
    th[i] = pattern(n, 1.0, int(i));
    r.add(shapes[i], DType::f64, th[i]);
    ref[i].shape = shapes[i];
    ref[i].lr = 0.02;
    ref[i].wd = 0.05;
    ref[i].eps1 = 2.220446049250313e-16;  // eps1 auto: float64's machine epsilon
  }
  for (int t = 1; t <= 4; ++t) {
    std::vector<Vec> g;
    for (size_t i = 0; i < shapes.size(); ++i) g.push_back(pattern(int64_t(th[i].size()), 0.1 * t, 10 * t + int(i)));
    r.step(g);
    for (size_t i = 0; i < shapes.size(); ++i) {
      ref[i].step(th[i], g[i], t);
      CHECK(near(values(r.slots[i].param), th[i], 1e-12, 1e-15));
    }
  }
  CHECK(near(values(r.state(0, "row_var")), ref[0].R, 1e-12));
  CHECK(near(values(r.state(0, "col_var")), ref[0].C, 1e-12));
  CHECK(near(values(r.state(1, "variance")), ref[1].V, 1e-12));
  CHECK(r.state(0, "row_var").shape == (std::vector<int64_t>{2, 3, 1}));
  CHECK(r.state(0, "col_var").shape == (std::vector<int64_t>{2, 1, 4}));
  CHECK(values(r.state(0, "step"))[0] == 4);
}

TEST(adafactor_hyper_rules) {
  const Algorithm& a = find_algorithm("adafactor");
  auto refused = [&](const Hyper& h, const char* word) {
    try {
      complete_hyper(a, h);
    } catch (const Error& e) {
      return std::string(e.what()).find(word) != std::string::npos;
    }
    return false;
  };
  CHECK(refused({{"beta1", 0.9}}, "paper mode"));
  CHECK(refused({{"relative_step", 0}}, "mode=1"));
  CHECK(refused({{"d", 0.5}}, "torch mode"));
  CHECK(refused({{"mode", 2}}, "mode"));
  complete_hyper(a, {{"mode", 1}, {"beta1", 0.9}, {"d", 0.5}, {"relative_step", 0}});
  const auto s = state_schema(a, complete_hyper(a, {{"mode", 1}, {"beta1", 0.9}}), {3, 4}, DType::bf16);
  CHECK(s.size() == 4 && s[3].name == "exp_avg" && s[3].dtype == DType::f32 && s[3].like_param);
}

// ---------------------------------------------------------------- Adapprox

TEST(adapprox_full_rank_matches_dense_reference) {
  // At rank min(m, n) the factorization is exact, so Adapprox is Adam with the robust
  // denominator sqrt(b2 |V_{t-1}| + (1 - b2) g^2) and the RMS clip.
  Run r("adapprox", {{"lr", 0.01}, {"rank", 3}, {"min_rank", 3}, {"max_rank", 3}, {"weight_decay", 0.1}, {"tol", 0}});
  std::vector<Vec> th = {pattern(12, 1.0, 1), pattern(5, 1.0, 2)};
  for (Vec& v : th)
    for (double& x : v) x = static_cast<float>(x);
  r.add({4, 3}, DType::f32, th[0]);
  r.add({5}, DType::f32, th[1]);
  std::vector<AdapproxRef> ref(2);
  for (AdapproxRef& x : ref) x.lr = 0.01, x.wd = 0.1;
  for (int t = 1; t <= 4; ++t) {
    std::vector<Vec> g = {pattern(12, 0.3 * t, 3 + t), pattern(5, 0.2, 7 + t)};
    for (Vec& v : g)
      for (double& x : v) x = static_cast<float>(x);
    r.step(g);
    for (size_t i = 0; i < 2; ++i) {
      ref[i].step(th[i], g[i]);
      CHECK(near(values(r.slots[i].param), th[i], 2e-5, 1e-6));
    }
    CHECK(r.state(0, "factor_q").shape == (std::vector<int64_t>{4, 3}));
    CHECK(r.state(0, "factor_u").shape == (std::vector<int64_t>{3, 3}));
  }
  // Q U^T = V
  const Vec q = values(r.state(0, "factor_q")), u = values(r.state(0, "factor_u"));
  Vec v(12, 0.0);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) v[i * 3 + j] += q[i * 3 + k] * u[j * 3 + k];
  CHECK(near(v, ref[0].V, 1e-4, 1e-9));
  CHECK(near(values(r.state(1, "exp_avg_sq")), ref[1].V, 1e-4));  // float32 (1 - b2)
  CHECK(near(values(r.state(0, "exp_avg")), ref[0].M, 1e-4, 1e-7));
  CHECK(r.alloc.calls == 2);  // the first step's factors; the rank stays 3 (written in place)
}

TEST(adapprox_first_update_is_clipped_sign) {
  // Step 1: V = (1 - b2) g^2, Mhat = g / (sqrt(1 - b2)|g| + eps) ~ 31.6 sign(g); the RMS clip
  // brings it to ~sign(g); with b1 = 0.9, M = 0.1 sign(g); theta -= lr * M.
  Run r("adapprox", {{"lr", 1.0}});
  r.add({6, 4}, DType::f32, Vec(24, 0.0));
  Vec g(24);
  for (int i = 0; i < 24; ++i) g[i] = (i % 3 == 0 ? -1.0 : 1.0) * (1 + i);
  r.step({g});
  const Vec p = values(r.slots[0].param);
  bool ok = true;
  for (int i = 0; i < 24; ++i) ok = ok && std::abs(p[i] + 0.1 * (g[i] > 0 ? 1 : -1)) < 1e-5;
  CHECK(ok);
  const TensorRef& q = r.state(0, "factor_q");
  CHECK(q.data && q.shape.size() == 2 && q.shape[0] == 6 && q.shape[1] >= 1);
}

TEST(adapprox_refused_steps_write_nothing) {
  Run r("adapprox", {{"rank", 2}, {"max_rank", 3}});
  r.add({4, 5}, DType::f32, pattern(20, 1, 1));
  r.add({6}, DType::f32, pattern(6, 1, 2));
  r.step({pattern(20, 0.1, 3), pattern(6, 0.1, 4)});
  // A factor_u of the wrong shape in params[0].
  Tensor& bad = r.make(DType::f32, {6, r.state(0, "factor_q").shape[1]});
  const TensorRef good_u = r.slots[0].state[2];
  r.slots[0].state[2] = bad.ref;
  const auto before = snapshot(r);
  bool threw = false;
  try {
    r.step({pattern(20, 0.1, 5), pattern(6, 0.1, 6)});
  } catch (const Error& e) {
    threw = e.kind() == ErrorKind::state && std::string(e.what()).find("params[0]") != std::string::npos &&
            std::string(e.what()).find("factor_u") != std::string::npos;
  }
  CHECK(threw);
  CHECK(snapshot(r) == before);
  // Factors missing after the first step.
  r.slots[0].state[2] = good_u;
  const auto intact = snapshot(r);
  const TensorRef q = r.slots[0].state[1];
  r.slots[0].state[1] = TensorRef{nullptr, DType::f32, {4, 0}, {}};
  r.slots[0].state[2] = TensorRef{nullptr, DType::f32, {5, 0}, {}};
  threw = false;
  try {
    r.step({pattern(20, 0.1, 5), pattern(6, 0.1, 6)});
  } catch (const Error& e) {
    threw = e.kind() == ErrorKind::state && std::string(e.what()).find("factor_q") != std::string::npos;
  }
  CHECK(threw);
  r.slots[0].state[1] = q;
  r.slots[0].state[2] = good_u;
  CHECK(snapshot(r) == intact);
  r.step({pattern(20, 0.1, 5), pattern(6, 0.1, 6)});  // and the intact state steps on
  CHECK(values(r.state(0, "step"))[0] == 2);
}

// ---------------------------------------------------------------- FullMatrixAdagrad / AdaGram

TEST(full_matrix_adagrad_is_inverse_root) {
  // d_t = G_t^(-1/2) g with G_t = eps I + sum g g^T: G_t^(1/2) d_t = g, d_t from the update.
  const double lr = 0.5, eps = 0.1, wd = 0.01;
  Run r("fullmatrixadagrad", {{"lr", lr}, {"eps", eps}, {"weight_decay", wd}, {"lr_decay", 0.2}});
  Vec th = pattern(6, 1.0, 1);
  r.add({2, 3}, DType::f64, th);
  Mat S(6, Vec(6, 0.0));
  for (int t = 1; t <= 3; ++t) {
    const Vec g0 = pattern(6, 1.0, 5 + t);
    r.step({g0});
    Vec g(6);
    for (int i = 0; i < 6; ++i) g[i] = g0[i] + wd * th[i];
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 6; ++j) S[i][j] += g[i] * g[j];
    Mat G = S;
    for (int i = 0; i < 6; ++i) G[i][i] += eps;
    const Vec p = values(r.slots[0].param);
    const double clr = lr / (1 + (t - 1) * 0.2);
    Vec d(6);
    for (int i = 0; i < 6; ++i) d[i] = (th[i] - p[i]) / clr;
    CHECK(near(mulv(sqrtm(G), d), g, 1e-9, 1e-12));
    th = p;
  }
  Vec flat;
  for (const Vec& row : S) flat.insert(flat.end(), row.begin(), row.end());
  CHECK(near(values(r.state(0, "sum")), flat, 1e-13));
}

TEST(full_matrix_adagrad_refuses_large_parameters) {
  Run r("fullmatrixadagrad", {});
  r.add({3}, DType::f32, Vec(3, 1.0));
  r.add({4097}, DType::f32, Vec(4097, 1.0));
  CHECK(r.state(1, "sum").numel() == 0);  // the front allocates no 4097^2 matrix
  const auto before = snapshot(r);
  bool threw = false;
  try {
    r.step({Vec(3, 1.0), Vec(4097, 1.0)});
  } catch (const Error& e) {
    threw = std::string(e.what()).find("params[1]") != std::string::npos &&
            std::string(e.what()).find("4096") != std::string::npos;
  }
  CHECK(threw);
  CHECK(snapshot(r) == before);
}

TEST(adagram_full_rank_is_a_root_of_g) {
  // With rank >= n the factor is exact: L_t^(-1) = (I - P Q^T) / sqrt(eps) with L L^T = G_t, so
  // L^(-T) L^(-1) = G_t^(-1): (I - P Q^T)^T (I - P Q^T) G_t = eps I, and |d_t|^2 = g^T G_t^(-1) g.
  const double lr = 0.3, eps = 0.05;
  Run r("adagram", {{"lr", lr}, {"eps", eps}, {"rank", 8}});
  Vec th = pattern(5, 1.0, 2);
  r.add({5}, DType::f64, th);
  Mat G = identity(5, eps);
  for (int t = 1; t <= 3; ++t) {
    const Vec g = pattern(5, 1.0, 20 + t);
    r.step({g});
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 5; ++j) G[i][j] += g[i] * g[j];
    const Vec p = values(r.slots[0].param);
    double dd = 0;
    for (int i = 0; i < 5; ++i) dd += ((th[i] - p[i]) / lr) * ((th[i] - p[i]) / lr);
    const Vec x = mulv(inverse(G), g);
    double gx = 0;
    for (int i = 0; i < 5; ++i) gx += g[i] * x[i];
    CHECK(std::abs(dd - gx) <= 1e-10 * gx);
    th = p;
    const TensorRef& P = r.state(0, "factor_p");
    CHECK(P.shape == (std::vector<int64_t>{5, t}));
  }
  const Vec P = values(r.state(0, "factor_p")), Q = values(r.state(0, "factor_q"));
  Mat A = identity(5);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j)
      for (int k = 0; k < 3; ++k) A[i][j] -= P[i * 3 + k] * Q[j * 3 + k];
  Mat At(5, Vec(5));
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) At[i][j] = A[j][i];
  const Mat E = mul(mul(At, A), G);
  Vec e, want;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) e.push_back(E[i][j]), want.push_back(i == j ? eps : 0);
  CHECK(near(e, want, 0, 1e-11));
}

TEST(adagram_refuses_a_state_above_its_rank) {
  Run r("adagram", {{"rank", 3}});
  r.add({4}, DType::f32, Vec(4, 1.0));
  r.step({pattern(4, 1, 1)});
  r.step({pattern(4, 1, 2)});
  CHECK(r.state(0, "factor_p").shape == (std::vector<int64_t>{4, 2}));
  r.hyper["rank"] = 1;
  const auto before = snapshot(r);
  bool threw = false;
  try {
    r.step({pattern(4, 1, 3)});
  } catch (const Error& e) {
    threw = std::string(e.what()).find("rank") != std::string::npos;
  }
  CHECK(threw);
  CHECK(snapshot(r) == before);
}

// ---------------------------------------------------------------- layouts

// The same steps on a C-contiguous and a channels_last parameter: bitwise the same parameter
// and state (like-parameter state shares the parameter's layout).
void check_layouts(const std::string& name, const Hyper& h, DType dt) {
  Run a(name, h), b(name, h);
  const Vec p = pattern(24, 1.0, 3);
  a.add(kShape4, dt, p);
  b.add(kShape4, dt, p, kChannelsLast);
  for (int t = 1; t <= 3; ++t) {
    const Vec g = pattern(24, 0.5, 4 + t);
    a.step({g});
    b.step({g});
  }
  bool same = values(a.slots[0].param) == values(b.slots[0].param);
  for (size_t k = 0; k < a.slots[0].state.size(); ++k) same = same && values(a.slots[0].state[k]) == values(b.slots[0].state[k]);
  if (!same) std::printf("    %s (%s) differs between layouts\n", name.c_str(), dtype_name(dt));
  CHECK(same);
  CHECK(values(a.slots[0].param) != p);
}

TEST(channels_last_equals_contiguous_bitwise) {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    check_layouts("adafactor", {}, dt);
    check_layouts("adafactor", {{"mode", 1}, {"beta1", 0.9}, {"weight_decay", 0.1}}, dt);
    check_layouts("adapprox", {{"weight_decay", 0.1}}, dt);
    check_layouts("adapprox", {{"cosine_guidance", 1}}, dt);
    check_layouts("fullmatrixadagrad", {{"weight_decay", 0.1}}, dt);
    check_layouts("adagram", {{"rank", 2}}, dt);
  }
  // 1-D parameters with a stride (a dense layout of one dimension is contiguous; a 2-D
  // transposed one is not): Adafactor's and Adapprox's factored paths in a column-major layout.
  for (const char* name : {"adafactor", "adapprox", "fullmatrixadagrad", "adagram"}) {
    Run a(name, {}), b(name, {});
    const Vec p = pattern(12, 1.0, 9);
    a.add({3, 4}, DType::f32, p);
    b.add({3, 4}, DType::f32, p, {1, 3});
    for (int t = 1; t <= 2; ++t) {
      a.step({pattern(12, 0.5, t)});
      b.step({pattern(12, 0.5, t)});
    }
    CHECK(values(a.slots[0].param) == values(b.slots[0].param));
  }
}

int main() { return check::run_all(); }
