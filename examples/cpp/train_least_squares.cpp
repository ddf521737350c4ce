// Least squares with Adapprox through the C++ API (adapprox/optimizer.hpp): min_W ||X W - Y||^2.
// Exits non-zero unless the loss falls by 100x.
#include <adapprox/optimizer.hpp>

#include <cstdio>
#include <random>
#include <vector>

int main() {
  const int n = 256, d = 32, k = 16;
  std::mt19937 gen(7);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * d), w_true(d * k), y(n * k, 0.0f), w(d * k, 0.0f), g(d * k);
  for (auto& v : x) v = normal(gen);
  for (auto& v : w_true) v = normal(gen);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < k; ++j)
      for (int t = 0; t < d; ++t) y[i * k + j] += x[i * d + t] * w_true[t * k + j];

  auto loss_and_grad = [&] {
    double loss = 0;
    std::fill(g.begin(), g.end(), 0.0f);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < k; ++j) {
        double r = -y[i * k + j];
        for (int t = 0; t < d; ++t) r += x[i * d + t] * w[t * k + j];
        loss += r * r / (n * k);
        for (int t = 0; t < d; ++t) g[t * k + j] += float(2 * r * x[i * d + t] / (n * k));
      }
    return loss;
  };

  try {
    auto opt = adapprox::Optimizer::create("adapprox:lr=5e-2,rank=2,max_rank=8");
    std::printf("%s\n", opt->spec().c_str());
    adapprox::TensorRef param{w.data(), adapprox::DType::f32, {d, k}}, grad{g.data(), adapprox::DType::f32, {d, k}};
    double first = 0, loss = 0;
    for (int step = 0; step <= 300; ++step) {
      const double lr = 5e-2 * (step < 200 ? 1.0 : 0.2);  // a step schedule through the lr override
      loss = loss_and_grad();
      if (step == 0) first = loss;
      if (step % 50 == 0) std::printf("step %3d  loss %.6f\n", step, loss);
      opt->step({param}, {grad}, lr);
    }
    const auto mem = opt->memory();
    std::printf("optimizer state %lld bytes (AdamW would hold %lld)\n", (long long)mem.state_bytes,
                (long long)mem.adamw_bytes);
    return loss < first / 100 ? 0 : 2;
  } catch (const adapprox::Error& e) {
    std::fprintf(stderr, "adapprox: %s\n", e.what());
    return 1;
  }
}
