#include "adapprox/phase_times.hpp"

#include <atomic>
#include <chrono>

namespace adapprox {
namespace {
constexpr int kPhases = static_cast<int>(Phase::count);
std::atomic<bool> g_on{false};
std::atomic<int64_t> g_ns[kPhases];
std::atomic<uint64_t> g_calls[kPhases];

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::sketch: return "sketch";
    case Phase::products: return "products";
    case Phase::orthonormalise: return "orthonormalise";
    case Phase::eigen: return "eigen";
    case Phase::factors: return "factors";
    case Phase::update: return "update";
    case Phase::factored_step: return "factored_step";
    case Phase::count: break;
  }
  return "?";
}

void set_phase_timing(bool on) { g_on.store(on, std::memory_order_relaxed); }
bool phase_timing() { return g_on.load(std::memory_order_relaxed); }

void reset_phase_times() {
  for (int i = 0; i < kPhases; ++i) g_ns[i].store(0), g_calls[i].store(0);
}

PhaseTimes phase_times() {
  PhaseTimes t{};
  for (int i = 0; i < kPhases; ++i) t.seconds[i] = g_ns[i].load() * 1e-9, t.calls[i] = g_calls[i].load();
  return t;
}

PhaseTimer::PhaseTimer(Phase phase) : phase_(phase), start_ns_(phase_timing() ? now_ns() : -1) {}

PhaseTimer::~PhaseTimer() {
  if (start_ns_ < 0) return;
  const int i = static_cast<int>(phase_);
  g_ns[i].fetch_add(now_ns() - start_ns_, std::memory_order_relaxed);
  g_calls[i].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace adapprox
