#include "adapprox/interrupt.hpp"

#include "adapprox/tuning.hpp"
#include "adapprox/interrupt_points.hpp"

namespace adapprox {
namespace {
thread_local InterruptScope* t_scope = nullptr;
}  // namespace

InterruptScope::InterruptScope(InterruptPoll poll, void* ctx)
    : poll_(poll),
      ctx_(ctx),
      outer_(t_scope),
      owner_(std::this_thread::get_id()),
      next_poll_(std::chrono::steady_clock::now() + std::chrono::milliseconds(tuning::kInterruptPollMs)) {
  t_scope = this;
}

InterruptScope::~InterruptScope() { t_scope = outer_; }

bool InterruptScope::requested() {
  if (hit_.load(std::memory_order_relaxed)) return true;
  if (!poll_ || std::this_thread::get_id() != owner_) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_poll_) return false;
  next_poll_ = now + std::chrono::milliseconds(tuning::kInterruptPollMs);
  if (poll_(ctx_)) hit_.store(true, std::memory_order_relaxed);
  return hit_.load(std::memory_order_relaxed);
}

void check_interrupt() {
  if (t_scope && t_scope->requested()) throw Interrupted();
}

namespace detail {
InterruptScope* current_interrupt_scope() { return t_scope; }
void set_current_interrupt_scope(InterruptScope* scope) { t_scope = scope; }
}  // namespace detail

}  // namespace adapprox
