/* Least squares with Adapprox through the C ABI: min_W ||X W - Y||^2 / N, W of shape 32 x 16.
 * Build and run: see README ("C and C++"). Exits non-zero unless the loss falls by 100x. */
#include <adapprox/adapprox.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 256, D = 32, K = 16 };

static float frand(unsigned* s) { /* uniform in [-1, 1) from a small LCG: no libc rand state */
  *s = *s * 1664525u + 1013904223u;
  return (float)((*s >> 8) * (1.0 / 8388608.0)) - 1.0f;
}

static double loss_and_grad(const float* x, const float* y, const float* w, float* g) {
  double loss = 0;
  for (int i = 0; i < D * K; ++i) g[i] = 0;
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      double r = -y[n * K + k];
      for (int d = 0; d < D; ++d) r += x[n * D + d] * w[d * K + k];
      loss += r * r / (N * K);
      for (int d = 0; d < D; ++d) g[d * K + k] += (float)(2.0 * r * x[n * D + d] / (N * K));
    }
  return loss;
}

int main(void) {
  static float x[N * D], y[N * K], w[D * K], g[D * K], w_true[D * K];
  unsigned seed = 42;
  for (int i = 0; i < N * D; ++i) x[i] = frand(&seed);
  for (int i = 0; i < D * K; ++i) w_true[i] = frand(&seed);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      double s = 0;
      for (int d = 0; d < D; ++d) s += x[n * D + d] * w_true[d * K + k];
      y[n * K + k] = (float)s;
    }

  adx_optimizer* opt = NULL;
  if (adx_create("adapprox:lr=2e-2,rank=4,tol=1e-2,beta1=0.9", &opt) != ADX_OK) {
    fprintf(stderr, "adx_create: %s\n", adx_last_error());
    return 1;
  }
  int64_t shape[2] = {D, K};
  adx_DLTensor param = {w, {1, 0}, 2, {2, 32, 1}, shape, NULL, 0};
  adx_DLTensor grad = {g, {1, 0}, 2, {2, 32, 1}, shape, NULL, 0};

  double first = 0, loss = 0;
  for (int step = 0; step <= 300; ++step) {
    loss = loss_and_grad(x, y, w, g);
    if (step == 0) first = loss;
    if (step % 50 == 0) printf("step %3d  loss %.6f\n", step, loss);
    if (adx_step(opt, &param, &grad, 1, -1.0) != ADX_OK) {
      fprintf(stderr, "adx_step: %s\n", adx_last_error());
      adx_destroy(opt);
      return 1;
    }
  }
  size_t state_bytes = 0, adamw_bytes = 0;
  adx_memory_report(opt, &state_bytes, &adamw_bytes);
  printf("optimizer state %zu bytes (AdamW would hold %zu)\n", state_bytes, adamw_bytes);
  adx_destroy(opt);
  return loss < first / 100 ? 0 : 2;
}
