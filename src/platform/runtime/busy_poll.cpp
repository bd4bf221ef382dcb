#include "platform/runtime/busy_poll.h"

#include <sched.h>

#include <algorithm>

namespace aether::platform::runtime {

void PollWindow::idle_ended(std::chrono::nanoseconds idle) {
    if (idle <= current_) return;  // the polling caught it
    if (idle > longest_) {
        // KVM halves the window (halt_poll_ns_shrink = 2) and drops it below the start.
        current_ /= 2;
        if (current_ < std::min(kFirst, longest_)) current_ = std::chrono::nanoseconds(0);
        return;
    }
    current_ = std::clamp(current_ * 2, std::min(kFirst, longest_), longest_);
}

void run_busy_polling(boost::asio::io_context& io, std::chrono::microseconds longest,
                      IdleSpellCounts& counts) {
    using Clock = std::chrono::steady_clock;
    PollWindow window(longest);
    for (;;) {
        if (io.poll() > 0) continue;
        if (io.stopped()) return;
        // Work caught while polling leaves the window as it is: it was long enough.
        const auto idle_since = Clock::now();
        bool caught = false;
        while (!caught && Clock::now() - idle_since < window.current()) {
            ::sched_yield();
            caught = io.poll() > 0;
            if (io.stopped()) return;
        }
        if (caught) {
            counts.caught.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        counts.waited.fetch_add(1, std::memory_order_relaxed);
        // The length includes the one handler run_one runs: short, on an IO thread.
        if (io.run_one() == 0) return;
        window.idle_ended(Clock::now() - idle_since);
    }
}

}  // namespace aether::platform::runtime
