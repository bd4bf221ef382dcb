// Busy polling for the IO thread (`http.busy_poll_us`), after HAProxy's `busy-polling`: an idle
// IO thread keeps asking for new work for a short while before it sleeps in the kernel.
//
// Sleeping costs the most on virtual machines. The thread that makes this one runnable again
// pays for the wake-up, often with an interrupt to this core, and an idle virtual core halts, so
// the hypervisor runs something else until the interrupt comes. Under steady traffic that is a
// wake-up every few requests. Polling keeps the thread awake through the short gaps. The price is
// CPU time while polling, which a CPU quota counts too, so it is off unless configured.
//
// The window adapts as KVM's halt polling does (virt/kvm/kvm_main.c): an idle spell that ended
// within the longest window grows it, since polling that long would have caught the work; one
// that lasted longer shrinks it. Sparse traffic thus costs no polling after a few spells.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>

namespace aether::platform::runtime {

namespace detail {

class PollWindow {
  public:
    // The window a growing one starts from (KVM's halt_poll_ns_grow_start), or the longest
    // window if shorter.
    static constexpr std::chrono::nanoseconds kGrowStart = std::chrono::microseconds(10);

    explicit PollWindow(std::chrono::nanoseconds longest) : longest_(longest) {}

    // How long an idle thread polls before it sleeps; zero at first.
    std::chrono::nanoseconds current() const { return current_; }

    // After an idle spell that ended with work: `idle` is its length, polling and sleep together.
    void idle_ended(std::chrono::nanoseconds idle);

  private:
    std::chrono::nanoseconds longest_;
    std::chrono::nanoseconds current_{0};
};

}  // namespace detail

// How the idle spells of a busy-polling thread ended: with work found while polling, or in a
// wait in the kernel (the polling window closed or too short). Read from any thread.
struct IdleSpellCounts {
    std::atomic<std::uint64_t> caught{0};
    std::atomic<std::uint64_t> waited{0};
};

// Runs `io` like io.run() on the calling thread, but polls for up to the window of a PollWindow
// with `longest` before it sleeps, counting in `counts` how each idle spell ended. A spell that
// ends in a wait is measured with the handler that ends it, so leave a handler's length of
// headroom in `longest`. Between polls it yields the core, so that anything else waiting for it
// there (an upstream on the same core) runs first. Returns when `io` stops or runs out of work.
// Only for an io_context run by this one thread: while a thread sleeps in the reactor, other
// threads' polls cannot see its sockets.
void run_busy_polling(boost::asio::io_context& io, std::chrono::microseconds longest,
                      IdleSpellCounts& counts);

}  // namespace aether::platform::runtime
