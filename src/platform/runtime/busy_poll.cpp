// The busy-polling run loop of an IO thread and the window it polls for (busy_poll.h).
#include "platform/runtime/busy_poll.h"

#include <sched.h>

#include <algorithm>

namespace aether::platform::runtime {

namespace detail {

void PollWindow::idle_ended(std::chrono::nanoseconds idle) {
    if (idle <= current_) return;  // the polling caught it
    if (idle > longest_) {
        // KVM halves the window (halt_poll_ns_shrink = 2) and drops it below the start.
        current_ /= 2;
        if (current_ < std::min(kGrowStart, longest_)) current_ = std::chrono::nanoseconds(0);
        return;
    }
    current_ = std::clamp(current_ * 2, std::min(kGrowStart, longest_), longest_);
}

}  // namespace detail

void run_busy_polling(boost::asio::io_context& io, std::chrono::microseconds longest,
                      IdleSpellCounts& counts) {
    using Clock = std::chrono::steady_clock;
    detail::PollWindow window(longest);
    for (;;) {
        if (io.poll() > 0) continue;
        if (io.stopped()) return;
        const auto idle_since = Clock::now();
        bool caught = false;
        while (!caught && Clock::now() - idle_since < window.current()) {
            ::sched_yield();
            caught = io.poll() > 0;
            if (io.stopped()) return;
        }
        if (caught) {
            // The window was long enough: it stays as it is.
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
