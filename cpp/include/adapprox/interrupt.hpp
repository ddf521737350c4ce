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

class ADAPPROX_API Interrupted : public Error {
 public:
  Interrupted() : Error(ErrorKind::interrupted, "step interrupted; parameters already stepped keep their update, "
                                                "the others are untouched") {}
};

// Installs `poll` for the steps started on this thread while the scope lives (scopes nest).
class ADAPPROX_API InterruptScope {
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

}  // namespace adapprox
