// Opt-in timing of the factored step's phases, for profiling (bench/profile.py, the README's
// time split). Off by default: a disabled PhaseTimer reads no clock. Totals are summed over
// threads, so where small parameters step side by side they can exceed the wall time.
#pragma once

#include <cstdint>

namespace adapprox {

enum class Phase : int {
  sketch,          // drawing the Gaussian sketch (and placing the warm start beside it)
  products,        // A X and A^T Y with A = b2 Q U^T + (1 - b2) G^2 (passes over G)
  orthonormalise,  // QR / CholeskyQR of the sketch bases
  eigen,           // B B^T and its eigendecomposition, the rank rule
  factors,         // the new Q and U from the basis and the eigenvectors
  update,          // the elementwise pass: first moment, denominator, parameter
  factored_step,   // a whole factored parameter's step (includes all of the above)
  count
};

const char* phase_name(Phase p);
void set_phase_timing(bool on);
bool phase_timing();
void reset_phase_times();

struct PhaseTimes {
  double seconds[static_cast<int>(Phase::count)];
  uint64_t calls[static_cast<int>(Phase::count)];
};
PhaseTimes phase_times();

// Adds the wall time of its scope to `phase` while timing is on.
class PhaseTimer {
 public:
  explicit PhaseTimer(Phase phase);
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  Phase phase_;
  int64_t start_ns_;  // -1: timing was off at the start
};

}  // namespace adapprox
