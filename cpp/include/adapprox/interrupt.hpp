// Stopping a long step: the host (Python's Ctrl-C, a C host's own flag) is asked between units
// of work whether to stop. A stopped step is atomic per parameter: each parameter is either
// stepped in full (its state, factors and step count advanced) or untouched, and the call ends
// with Interrupted.
#pragma once
#include <atomic>
#include <chrono>
#include <thread>

#include "adapprox/tensor.hpp"

namespace adapprox {

// Asks the host whether to stop; true stops the step. Called only on the thread that started
// the step, at most once every tuning::kInterruptPollMs.
using InterruptPoll = bool (*)(void* ctx);

class Interrupted : public Error {
 public:
  Interrupted() : Error(ErrorKind::interrupted, "step interrupted; parameters already stepped keep their update, "
                                                "the others are untouched") {}
};

// Installs `poll` for the steps started on this thread while the scope lives (scopes nest).
class InterruptScope {
 public:
  InterruptScope(InterruptPoll poll, void* ctx);
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  // Whether the host asked to stop (polls it when due and on the owner thread).
  bool requested();

 private:
  InterruptPoll poll_;
  void* ctx_;
  InterruptScope* outer_;
  std::thread::id owner_;
  std::atomic<bool> hit_{false};
  std::chrono::steady_clock::time_point next_poll_;
};

// Throws Interrupted when the step running on this thread (or the step whose parallel work this
// worker runs) was asked to stop. Cheap: a thread-local read, a clock read on the owner thread.
// Call it only where nothing of the current parameter has been written yet.
void check_interrupt();

namespace detail {
// The scope of the step this thread works for; the thread pool hands it to its workers.
InterruptScope* current_interrupt_scope();
void set_current_interrupt_scope(InterruptScope* scope);
}  // namespace detail

}  // namespace adapprox
