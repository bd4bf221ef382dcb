// Tests for PeerWatch on loopback sockets: what a look reports, when it looks, and that a report
// about a socket whose entry went reaches no other.
#include "platform/http/peer_watch.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

namespace aether::platform::http::detail {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

// A connected pair on loopback: `ours` is the watched end, `peer` the upstream's.
struct Pair {
    explicit Pair(asio::io_context& io) : ours(io), peer(io) {
        tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
        ours.connect(acceptor.local_endpoint());
        acceptor.accept(peer);
    }
    void peer_sends(std::string_view text) { asio::write(peer, asio::buffer(text)); }
    // Returns once the peer's end of stream has reached `ours` (which keeps reporting it).
    void await_end_of_stream() {
        char byte = 0;
        boost::system::error_code ec;
        ours.read_some(asio::buffer(&byte, 1), ec);
        EXPECT_EQ(ec, asio::error::eof);
    }

    tcp::socket ours;
    tcp::socket peer;
};

class PeerWatchTest : public ::testing::Test {
  protected:
    // Watches our end of `pair`; the watch must take it.
    PeerWatch::Entry watch(Pair& pair) {
        auto entry = watch_.watch(pair.ours.native_handle());
        EXPECT_TRUE(entry) << "the watch refused the socket";
        return entry;
    }

    // One look, a full interval after the previous one.
    void look() {
        now_ += PeerWatch::kDefaultInterval;
        ASSERT_TRUE(watch_.look(now_));
    }

    // Looks until `seen` holds, for at most two seconds: loopback usually delivers a segment
    // within the sender's system call, but a loaded machine may leave that to a kernel thread.
    bool look_until(const std::function<bool()>& seen) {
        const auto give_up = std::chrono::steady_clock::now() + 2s;
        for (;;) {
            look();
            if (seen()) return true;
            if (std::chrono::steady_clock::now() > give_up) return false;
            std::this_thread::sleep_for(1ms);
        }
    }

    asio::io_context io_;
    PeerWatch watch_;
    PeerWatch::Clock::time_point now_ = PeerWatch::Clock::now();
};

TEST_F(PeerWatchTest, AQuietConnectionIsNeitherClosedNorSpokenOn) {
    Pair pair(io_);
    auto entry = watch(pair);
    look();
    EXPECT_FALSE(entry.peer_closed());
    EXPECT_FALSE(entry.unread_input());
    EXPECT_EQ(watch_.looks(), 1u);
}

TEST_F(PeerWatchTest, ThePeersEndOfStreamMarksTheConnectionClosed) {
    Pair pair(io_);
    auto entry = watch(pair);
    look();
    pair.peer.shutdown(tcp::socket::shutdown_send);
    EXPECT_TRUE(look_until([&] { return entry.peer_closed(); }));
}

TEST_F(PeerWatchTest, AResetMarksTheConnectionClosed) {
    Pair pair(io_);
    auto entry = watch(pair);
    pair.peer.set_option(asio::socket_base::linger(true, 0));  // close sends a reset
    pair.peer.close();
    EXPECT_TRUE(look_until([&] { return entry.peer_closed(); }));
}

TEST_F(PeerWatchTest, BytesNobodyReadAreUnreadInput) {
    Pair pair(io_);
    auto entry = watch(pair);
    entry.read_done();
    constexpr std::string_view kUnasked = "HTTP/1.1 408 Request Timeout\r\n\r\n";
    pair.peer_sends(kUnasked);
    EXPECT_TRUE(look_until([&] { return entry.unread_input(); }));
    EXPECT_FALSE(entry.peer_closed());
    // Reported once (nothing new arrived), but unread until the owner reads.
    look();
    EXPECT_TRUE(entry.unread_input());
    std::array<char, kUnasked.size()> text{};
    asio::read(pair.ours, asio::buffer(text));
    entry.read_done();
    EXPECT_FALSE(entry.unread_input());
    look();
    EXPECT_FALSE(entry.unread_input());
}

TEST_F(PeerWatchTest, BytesReadBeforeTheLookAreNotReported) {
    Pair pair(io_);
    auto entry = watch(pair);
    pair.peer_sends("answer");
    std::array<char, 6> answer{};
    asio::read(pair.ours, asio::buffer(answer));
    entry.read_done();
    look();
    EXPECT_FALSE(entry.unread_input());
    EXPECT_FALSE(entry.peer_closed());
}

// The client reads an answer that a look had already found, and then the socket is quiet: what
// the look found is read.
TEST_F(PeerWatchTest, BytesALookFoundAndTheOwnerThenReadAreNotUnread) {
    Pair pair(io_);
    auto entry = watch(pair);
    pair.peer_sends("answer");
    ASSERT_TRUE(look_until([&] { return entry.unread_input(); }));
    std::array<char, 6> answer{};
    asio::read(pair.ours, asio::buffer(answer));
    entry.read_done();
    EXPECT_FALSE(entry.unread_input());
}

TEST_F(PeerWatchTest, ALookSoonerThanTheIntervalAfterThePreviousOneDoesNotLook) {
    PeerWatch watch(1s);
    Pair pair(io_);
    auto entry = watch.watch(pair.ours.native_handle());
    ASSERT_TRUE(entry);
    const auto start = PeerWatch::Clock::now();
    ASSERT_TRUE(watch.look(start));
    pair.peer.shutdown(tcp::socket::shutdown_send);
    pair.await_end_of_stream();
    ASSERT_TRUE(watch.look(start + 999ms));
    EXPECT_FALSE(entry.peer_closed());
    EXPECT_EQ(watch.looks(), 1u);
    ASSERT_TRUE(watch.look(start + 1s));
    EXPECT_TRUE(entry.peer_closed());
    EXPECT_EQ(watch.looks(), 2u);
}

TEST_F(PeerWatchTest, EachConnectionHasItsOwnEntry) {
    Pair closing(io_);
    Pair speaking(io_);
    Pair quiet(io_);
    auto closing_entry = watch(closing);
    auto speaking_entry = watch(speaking);
    auto quiet_entry = watch(quiet);
    closing.peer.close();
    speaking.peer_sends("x");
    EXPECT_TRUE(
        look_until([&] { return closing_entry.peer_closed() && speaking_entry.unread_input(); }));
    EXPECT_FALSE(speaking_entry.peer_closed());
    EXPECT_FALSE(quiet_entry.peer_closed());
    EXPECT_FALSE(quiet_entry.unread_input());
}

// More ready sockets than one epoll_wait takes: every one is marked in the same look.
TEST_F(PeerWatchTest, ALookMarksEveryClosedConnectionHoweverMany) {
    constexpr int kCount = 150;
    std::vector<std::unique_ptr<Pair>> pairs;
    std::vector<PeerWatch::Entry> entries;
    for (int i = 0; i < kCount; ++i) {
        pairs.push_back(std::make_unique<Pair>(io_));
        entries.push_back(watch(*pairs.back()));
        pairs.back()->peer.close();
    }
    for (auto& pair : pairs) pair->await_end_of_stream();
    look();
    for (int i = 0; i < kCount; ++i) EXPECT_TRUE(entries[i].peer_closed()) << i;
}

// An entry that went while its socket stays open leaves epoll reporting the socket; the report
// must not reach the entry that took over its place in the watch.
TEST_F(PeerWatchTest, AReportAboutASocketWhoseEntryWentIsIgnored) {
    Pair gone(io_);
    Pair kept(io_);
    auto gone_entry = watch(gone);
    gone_entry = PeerWatch::Entry();
    auto kept_entry = watch(kept);  // takes the freed place
    gone.peer.close();
    gone.await_end_of_stream();
    look();
    look();
    EXPECT_FALSE(kept_entry.peer_closed());
    EXPECT_FALSE(kept_entry.unread_input());
}

TEST_F(PeerWatchTest, AnEntryMovedKeepsItsSocket) {
    Pair pair(io_);
    auto first = watch(pair);
    PeerWatch::Entry moved = std::move(first);
    EXPECT_FALSE(first);  // NOLINT(bugprone-use-after-move): a moved-from entry is empty
    ASSERT_TRUE(moved);
    pair.peer.close();
    EXPECT_TRUE(look_until([&] { return moved.peer_closed(); }));
}

}  // namespace
}  // namespace aether::platform::http::detail
