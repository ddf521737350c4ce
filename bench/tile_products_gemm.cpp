// The tile kernels (cpp/src/tile_products.cpp) against Eigen's GEMM on the shapes of an Adapprox
// step, one thread: c = a b (a 32-row tile of G^2 times the n x c sketch, and Q U^T) and
// c += a^T b (the transposed product). Prints GFLOP/s of each and the largest difference.
// Not part of the build; after `cmake --build build/cpp` (see the README's C and C++ section):
//
//   g++ -O2 -std=c++17 -DEIGEN_DONT_PARALLELIZE -Icpp/src -Icpp/include -isystem "$EIGEN_INCLUDE" \
//       bench/tile_products_gemm.cpp build/cpp/cpp/libadapprox_core.a -lpthread -o /tmp/tile_gemm
//   /tmp/tile_gemm; ADAPPROX_ISA=avx2 /tmp/tile_gemm; ADAPPROX_ISA=baseline /tmp/tile_gemm
//
// (EIGEN_INCLUDE: the eigen3 folder of the cmeel-eigen wheel, e.g.
// $(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/cmeel.prefix/include/eigen3)
#include <Eigen/Dense>
#include <chrono>
#include <cstdio>
#include <tuple>
#include <vector>

#include "tile_products.hpp"

using Rows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

static double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
static double per_call(int reps, F&& f) {
  const double t0 = seconds();
  for (int r = 0; r < reps; ++r) f();
  return (seconds() - t0) / reps;
}

int main() {
  const std::vector<std::tuple<int, int, int>> shapes = {
      {32, 1024, 9}, {32, 1024, 36}, {32, 1024, 41}, {32, 1024, 64}, {64, 512, 70}, {32, 36, 1024}};
  std::printf("rows x inner x cols    c = a b: Eigen, tiles (GFLOP/s)    c += a^T b: Eigen, tiles\n");
  for (const auto& [m, n, c] : shapes) {
    const Rows a = Rows::Random(m, n), x = Rows::Random(n, c), b = Rows::Random(m, c);
    Rows y(m, c), y2(m, c), z = Rows::Zero(n, c), z2 = Rows::Zero(n, c);
    const int reps = 2000;
    const double flops = 2.0 * m * n * c;
    const double te = per_call(reps, [&] { y.noalias() = a * x; });
    const double tk = per_call(reps, [&] {
      adapprox::kernels::tile_times(a.data(), n, m, n, x.data(), c, c, y2.data(), c);
    });
    const double tet = per_call(reps, [&] { z.noalias() += a.transpose() * b; });
    const double tkt = per_call(reps, [&] {
      adapprox::kernels::tile_t_times_add(a.data(), n, m, n, b.data(), c, c, z2.data(), c);
    });
    std::printf("%4d x %4d x %4d      %6.1f %6.1f  (max diff %.1e)        %6.1f %6.1f\n", m, n, c, flops / te / 1e9,
                flops / tk / 1e9, (y - y2).cwiseAbs().maxCoeff(), flops / tet / 1e9, flops / tkt / 1e9);
  }
  return 0;
}
