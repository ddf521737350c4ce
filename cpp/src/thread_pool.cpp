#include "adapprox/thread_pool.hpp"

#include "adapprox/interrupt.hpp"
#include "adapprox/tensor.hpp"
#include "adapprox/tuning.hpp"

#include <algorithm>
#include <charconv>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include "adapprox/interrupt_points.hpp"

namespace adapprox {
namespace {

thread_local bool t_inside_pool_task = false;

struct Job {
  const std::function<void(int, int64_t, int64_t)>* fn = nullptr;
  InterruptScope* scope = nullptr;  // the caller's: workers stop when the caller's step does
  int64_t n = 0;
  int chunks = 0;
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  std::mutex error_mu;
  std::exception_ptr error;
  std::mutex done_mu;
  std::condition_variable done_cv;

  // Takes chunks until none are left. Returns after the last chunk this thread ran.
  void work() {
    for (;;) {
      const int c = next.fetch_add(1);
      if (c >= chunks) return;
      const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
      const bool was_inside = t_inside_pool_task;
      t_inside_pool_task = true;
      InterruptScope* const outer_scope = detail::current_interrupt_scope();
      detail::set_current_interrupt_scope(scope);
      try {
        (*fn)(c, begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu);
        if (!error) error = std::current_exception();
      }
      t_inside_pool_task = was_inside;
      detail::set_current_interrupt_scope(outer_scope);
      if (done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lk(done_mu);
        done_cv.notify_all();
      }
    }
  }
};

class Pool {
 public:
  // Starts threads - 1 workers; if the system refuses a thread, the ones started are stopped and
  // the error is rethrown (a half-built pool would wait for workers that do not exist).
  explicit Pool(int threads) {
    try {
      for (int i = 0; i + 1 < threads; ++i) workers_.emplace_back([this] { loop(); });
    } catch (...) {
      stop_all();
      throw;
    }
  }
  ~Pool() { stop_all(); }
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void stop_all() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void run(const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = job;
      ++generation_;
    }
    cv_.notify_all();
    job->work();
    std::unique_lock<std::mutex> lk(job->done_mu);
    job->done_cv.wait(lk, [&] { return job->done.load() == job->chunks; });
  }

 private:
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      job->work();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

int hardware_threads() {
  return static_cast<int>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1u, unsigned(tuning::kMaxThreads)));
}

// ADAPPROX_NUM_THREADS: unset or empty, or a whole number in [1, kMaxThreads] and nothing else.
struct EnvThreads {
  int n = 0;          // 0: not set
  std::string error;  // set and not such a number
};

const EnvThreads& env_threads() {
  static const EnvThreads e = [] {
    EnvThreads r;
    const char* env = std::getenv("ADAPPROX_NUM_THREADS");
    if (!env || !*env) return r;
    const std::string text = env;
    int n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || n < 1 || n > tuning::kMaxThreads)
      r.error = "ADAPPROX_NUM_THREADS must be a whole number from 1 to " + std::to_string(tuning::kMaxThreads) +
                ", got '" + text + "'";
    else
      r.n = n;
    return r;
  }();
  return e;
}

int default_threads() { return env_threads().n > 0 ? env_threads().n : hardware_threads(); }

std::string g_pool_error;  // why the pool could not be started (guarded by g_pool_mu)

std::mutex g_pool_mu;  // one parallel_for at a time owns the pool
std::unique_ptr<Pool> g_pool;
std::atomic<int> g_threads{0};  // read without the lock: workers ask for it while the pool is held
std::atomic<bool> g_threads_set{false};  // set_num_threads was called: ADAPPROX_NUM_THREADS no longer matters

}  // namespace

int num_threads() {
  int n = g_threads.load();
  if (n == 0) {
    int expected = 0;
    g_threads.compare_exchange_strong(expected, default_threads());
    n = g_threads.load();
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1 || n > tuning::kMaxThreads)
    throw Error(ErrorKind::value, "number of threads must be from 1 to " + std::to_string(tuning::kMaxThreads) +
                                      ", got " + std::to_string(n));
  std::lock_guard<std::mutex> lk(g_pool_mu);
  g_threads = n;
  g_threads_set = true;
  g_pool.reset();  // rebuilt at the next parallel call with the new size
  g_pool_error.clear();
}

void prepare_threads() {
  if (!g_threads_set && !env_threads().error.empty()) throw Error(ErrorKind::value, env_threads().error);
  const int threads = num_threads();
  if (threads == 1) return;
  std::lock_guard<std::mutex> lk(g_pool_mu);
  if (!g_pool && g_pool_error.empty()) {
    try {
      g_pool = std::make_unique<Pool>(threads);
    } catch (const std::exception& e) {
      g_pool_error = e.what();
    }
  }
  if (!g_pool)
    throw Error(ErrorKind::value, "could not start " + std::to_string(threads) + " threads (" + g_pool_error +
                                      "); set fewer with ADAPPROX_NUM_THREADS or set_num_threads");
}

int chunk_count(int64_t n, int64_t grain) {
  if (n <= 0) return 0;
  const int64_t by_grain = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  // The split never depends on the thread count, so per-chunk partial sums (and every result)
  // are bitwise the same with 1 thread or 64; 64 chunks balance load for any pool size.
  return static_cast<int>(std::min<int64_t>(by_grain, kMaxChunks));
}

void parallel_chunks(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn) {
  const int chunks = chunk_count(n, grain);
  if (chunks == 0) return;
  std::unique_lock<std::mutex> lk(g_pool_mu, std::defer_lock);
  if (chunks == 1 || t_inside_pool_task || !lk.try_lock()) {
    for (int c = 0; c < chunks; ++c) fn(c, n * c / chunks, n * (c + 1) / chunks);
    return;
  }
  const int threads = num_threads();
  if (threads == 1) {
    lk.unlock();
    for (int c = 0; c < chunks; ++c) fn(c, n * c / chunks, n * (c + 1) / chunks);
    return;
  }
  if (!g_pool) {  // normally started by prepare_threads(); never throw in the middle of a step
    try {
      g_pool = std::make_unique<Pool>(threads);
    } catch (const std::exception& e) {
      g_pool_error = e.what();
      lk.unlock();
      for (int c = 0; c < chunks; ++c) fn(c, n * c / chunks, n * (c + 1) / chunks);  // same result, one thread
      return;
    }
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->scope = detail::current_interrupt_scope();
  job->n = n;
  job->chunks = chunks;
  g_pool->run(job);
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace adapprox
