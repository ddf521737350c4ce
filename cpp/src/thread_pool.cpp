#include "adapprox/thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace adapprox {
namespace {

thread_local bool t_inside_pool_task = false;

struct Job {
  const std::function<void(int, int64_t, int64_t)>* fn = nullptr;
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
      try {
        (*fn)(c, begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu);
        if (!error) error = std::current_exception();
      }
      t_inside_pool_task = was_inside;
      if (done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lk(done_mu);
        done_cv.notify_all();
      }
    }
  }
};

class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 0; i + 1 < threads; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

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

int default_threads() {
  if (const char* env = std::getenv("ADAPPROX_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex g_pool_mu;  // one parallel_for at a time owns the pool
std::unique_ptr<Pool> g_pool;
std::atomic<int> g_threads{0};  // read without the lock: workers ask for it while the pool is held

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
  std::lock_guard<std::mutex> lk(g_pool_mu);
  g_threads = std::max(1, n);
  g_pool.reset();  // rebuilt at the next parallel call with the new size
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
  if (!g_pool) g_pool = std::make_unique<Pool>(threads);
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->chunks = chunks;
  g_pool->run(job);
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace adapprox
