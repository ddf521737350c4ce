// Where a running step asks whether to stop (interrupt.hpp): the core's side, not installed.
#pragma once
#include "adapprox/interrupt.hpp"

namespace adapprox {

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
