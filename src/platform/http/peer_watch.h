// What the peers of the HTTP client's pooled connections did while the client was not reading:
// closed their side, or sent bytes. Internal to platform/http (the client's pool); used from the
// client's executor only, as the rest of the client.
//
// Before an idle connection takes a request the client must know that the upstream has not
// closed it: a request written into a closed connection fails after its bytes left, and the
// gateway does not replay such a request. A recv(MSG_PEEK) on each reuse told, at one system
// call a request; where a system call costs a microsecond (a virtual machine with page-table
// isolation) that was a tenth of the gateway's CPU time per proxied request.
//
// The watch keeps all of a client's connections in one epoll instance of its own, edge-triggered
// for input and for the peer's end of stream, and looks at all of them with one epoll_wait at
// most once per interval. A look reports the sockets that something reached since the previous
// look, each with its state at the look (epoll polls a socket as it reports it), so a connection
// whose answer the client read in between is not reported. What arrived after the last look is
// not known: the interval (100 µs by default) bounds that, of the order of a request's own way to
// the upstream, during which a check made at once is as blind.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace aether::platform::http::detail {

class PeerWatch {
  public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::microseconds kDefaultInterval{100};

    // One watched socket, as long as it lives; empty when the socket could not be watched (then
    // its owner checks the socket itself). It must not outlive its PeerWatch.
    class Entry {
      public:
        Entry() = default;
        Entry(Entry&& other) noexcept;
        Entry& operator=(Entry&& other) noexcept;
        ~Entry();

        explicit operator bool() const { return watch_ != nullptr; }
        // The peer ended its side or reset the connection (seen at a look; it stays so).
        bool peer_closed() const;
        // For the owner to say after each read of the socket: bytes the looks so far found
        // are read.
        void read_done();
        // A look since the last read_done found bytes waiting to be read.
        bool unread_input() const;

      private:
        friend class PeerWatch;
        Entry(PeerWatch* watch, std::uint32_t slot) : watch_(watch), slot_(slot) {}

        PeerWatch* watch_ = nullptr;
        std::uint32_t slot_ = 0;
    };

    explicit PeerWatch(std::chrono::microseconds interval = kDefaultInterval)
        : interval_(interval) {}
    ~PeerWatch();
    PeerWatch(const PeerWatch&) = delete;
    PeerWatch& operator=(const PeerWatch&) = delete;

    // Watches the connected socket `fd`. The returned handle ends the watch when it goes; epoll
    // may still report the descriptor until it is closed, and such reports are ignored.
    Entry watch(int fd);

    // Takes the reports of the sockets something reached since the previous look, unless that
    // look was less than the interval before `now`. False when the look failed: what the
    // handles say may then be older than the interval.
    bool look(Clock::time_point now);

    // How many looks there have been.
    std::uint64_t looks() const { return looks_; }

  private:
    // A watched socket's state; epoll's data carries the slot's index and generation, and
    // forgetting a slot moves its generation on, so a report about a socket whose entry went
    // (free slot or taken again) names a generation that no longer matches.
    struct Slot {
        std::uint32_t generation = 0;
        bool peer_closed = false;
        std::uint64_t input_look = 0;    // the last look that found bytes waiting
        std::uint64_t read_at_look = 0;  // the looks there had been at the last read_done
    };

    void forget(std::uint32_t slot);

    std::chrono::microseconds interval_;
    int epoll_ = -1;
    Clock::time_point looked_{};
    std::uint64_t looks_ = 0;
    std::vector<Slot> slots_;
    std::vector<std::uint32_t> free_slots_;
};

}  // namespace aether::platform::http::detail
