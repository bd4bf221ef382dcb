// What the peers of the HTTP client's pooled connections did while the client was not reading:
// closed their side, or sent bytes. Internal to platform/http (the client's pool).
//
// Before an idle connection takes a request the client must know that the upstream has not
// closed it: a request written into a closed connection fails after its bytes left, and the
// gateway does not replay such a request. A recv(MSG_PEEK) on each reuse told, at one system
// call a request; where a system call costs a microsecond (a virtual machine with page-table
// isolation) that was a tenth of the gateway's CPU time per proxied request.
//
// The watch keeps each connection in an epoll instance of its own, edge-triggered for input and
// for the peer's end of stream, and looks at all of them with one epoll_wait at most once per
// interval. A look reports the sockets that something reached since the previous look, each with
// its state at the look (epoll polls a socket as it reports it), so a connection whose answer
// the client read in between is not reported. What arrived after the last look is not known:
// the interval (100 µs by default) bounds that, of the order of a request's own way to the
// upstream, during which a check made at once is as blind.
#pragma once

#include <chrono>
#include <cstdint>

namespace aether::platform::http::detail {

class PeerWatch {
  public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::microseconds kDefaultInterval{100};

    // What the looks found on one socket.
    struct Mark {
        bool closed = false;           // the peer ended its side, or reset the connection
        std::uint64_t input_look = 0;  // the last look that found bytes waiting to be read
    };

    explicit PeerWatch(std::chrono::microseconds interval = kDefaultInterval)
        : interval_(interval) {}
    ~PeerWatch();
    PeerWatch(const PeerWatch&) = delete;
    PeerWatch& operator=(const PeerWatch&) = delete;

    // Watches the connected socket `fd` until it is closed: closing it ends the watch, so `mark`
    // must live as long as the descriptor stays open. False when it cannot watch (no epoll
    // instance to be had); the caller checks the socket itself.
    bool watch(int fd, Mark& mark);

    // Updates the marks of the sockets something reached since the previous look, unless that
    // look was less than the interval before `now`.
    void look(Clock::time_point now);

    // How many looks there have been: a mark's input_look above the count taken at some moment
    // means bytes were waiting at a look after it.
    std::uint64_t looks() const { return looks_; }

  private:
    std::chrono::microseconds interval_;
    int epoll_ = -1;
    bool unavailable_ = false;
    Clock::time_point looked_{};
    std::uint64_t looks_ = 0;
};

}  // namespace aether::platform::http::detail
