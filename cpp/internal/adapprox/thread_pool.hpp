// A small persistent thread pool (no OpenMP): work is split into chunks that the calling
// thread and the workers take in turn. A parallel_for issued from inside a worker, or while
// another one runs, executes serially, so nesting is always safe.
#pragma once
#include <cstdint>
#include <functional>

#include "adapprox/tuning.hpp"

namespace adapprox {

// Threads used by the core: ADAPPROX_NUM_THREADS if set (a whole number from 1 to
// tuning::kMaxThreads), else std::thread::hardware_concurrency() (at most kMaxThreads).
int num_threads();
// Throws Error(value) for n outside [1, tuning::kMaxThreads].
void set_num_threads(int n);
// Called by the step driver before anything is written: throws Error(value) for a malformed
// ADAPPROX_NUM_THREADS, or when the pool's threads cannot be started.
void prepare_threads();

// Calls fn(chunk, begin, end) for `chunks` contiguous ranges covering [0, n), each at least
// `grain` long (fewer chunks if n is small). Exceptions from fn are rethrown in the caller.
void parallel_chunks(int64_t n, int64_t grain,
                     const std::function<void(int chunk, int64_t begin, int64_t end)>& fn);

// The number of chunks parallel_chunks(n, grain, ...) will use: min(n / grain, tuning::kMaxChunks),
// at least 1 for n > 0. It does not depend on the number of threads, so results do not either.
using tuning::kMaxChunks;
int chunk_count(int64_t n, int64_t grain);

}  // namespace adapprox
