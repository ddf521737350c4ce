// Tuning constants of the CPU backend, in one place. They fix how work is split into chunks,
// tiles and blocks. Where a sum is split that way they also fix the order of its additions, so
// changing one may change results in the last bits; results never depend on the thread count or
// the instruction set, because none of these does.
#pragma once
#include <cstdint>

namespace adapprox::tuning {

// --- Scheduling over the thread pool (thread_pool.hpp) ---
// At most this many chunks per parallel loop, whatever the thread count.
constexpr int kMaxChunks = 64;
// Elementwise optimizers: elements per chunk, at least, of one call over all parameters.
constexpr int64_t kElementwiseGrain = int64_t(1) << 14;
// Parameters with at least this many elements are stepped one after another, each with every
// thread; smaller ones are stepped side by side, one per thread (Adafactor, Adapprox).
constexpr int64_t kBigParamNumel = int64_t(1) << 16;
// Adafactor: elements per chunk, at least (rows of a factored matrix: kFactoredGrain / columns).
constexpr int64_t kFactoredGrain = int64_t(1) << 14;
// Adapprox's guided parameter update: elements per chunk.
constexpr int64_t kGuidedUpdateGrain = int64_t(1) << 14;

// --- Blocking ---
// bf16/fp16 parameters: elements converted to float32 at a time (on the stack).
constexpr int64_t kConvertBlock = 1024;
// AS-RSI row-blocked products: a tile holds about this many elements (rows = it / columns),
// so one tile of a wide matrix stays in cache.
constexpr int64_t kTileElements = int64_t(1) << 15;
// AS-RSI transposed products: at least this many columns per chunk.
constexpr int64_t kMinColumnChunk = 16;
// CholeskyQR Gram products: rows per chunk are max(kGramMinRows, kGramElements / width).
constexpr int64_t kGramMinRows = 256;
constexpr int64_t kGramElements = int64_t(1) << 16;
// Sketches smaller than this many elements (or wider than tall) use Householder QR directly.
constexpr int64_t kCholeskyQrMinElements = int64_t(1) << 12;
// Adapprox: from this many sketch columns on, products use Eigen's blocked GEMM instead of the
// row kernels.
constexpr int kGemmMinColumns = 12;
// Adapprox: matrices up to this many elements keep the step's denominator (one m x n float32
// buffer, 16 MiB at most) from the first product for the update pass instead of recomputing Q U^T.
constexpr int64_t kKeptDenominatorElements = int64_t(1) << 22;
// Adapprox: the transposed product's row chunks hold at least this many rows (each adds an
// n x c partial sum), and its partial sums take at most kPartialSumFloats floats.
constexpr int64_t kPartialMinRows = 128;
// Adapprox: the transposed product's per-chunk partial sums take at most this many floats.
constexpr int64_t kPartialSumFloats = int64_t(1) << 22;
// AdaGram: rows per block of the tall-skinny QR (blocks have at least max(this, 2k) rows).
constexpr int64_t kQrBlockRows = 8192;

// --- Bounds on work set by hyperparameters ---
// Adapprox: at most this many subspace iterations (two passes over the matrix each) and extra
// sketch columns per refresh, so a step's time is bounded by the shapes.
constexpr int kMaxPowerIters = 32;
constexpr int kMaxOversample = 1024;
// A long step asks its host whether to stop (Ctrl-C) at most this often, in milliseconds.
constexpr int kInterruptPollMs = 20;
// Threads of the pool (ADAPPROX_NUM_THREADS, set_num_threads).
constexpr int kMaxThreads = 1024;

// --- Reductions ---
// Row reductions run over this many independent accumulators (one 64-byte vector: float32 in
// Adapprox's row kernels, float64 in Adafactor's), combined in a fixed order: the loops vectorise
// at every instruction set and every one rounds alike. Fewer float lanes than a 512-bit register
// holds made the AVX-512 reductions 2-4x slower than AVX2 (lane shuffles on every iteration).
constexpr int kFloatReductionLanes = 16;
constexpr int kDoubleReductionLanes = 8;

}  // namespace adapprox::tuning
