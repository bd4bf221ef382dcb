#include "platform/http/peer_watch.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <string_view>

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

    tcp::socket ours;
    tcp::socket peer;
};

class PeerWatchTest : public ::testing::Test {
  protected:
    // Each look a full interval after the previous one, so that it looks.
    void look() {
        now_ += PeerWatch::kDefaultInterval;
        watch_.look(now_);
    }

    asio::io_context io_;
    PeerWatch watch_;
    PeerWatch::Clock::time_point now_ = PeerWatch::Clock::now();
};

TEST_F(PeerWatchTest, AQuietConnectionIsNeitherClosedNorSpokenOn) {
    Pair pair(io_);
    PeerWatch::Mark mark;
    ASSERT_TRUE(watch_.watch(pair.ours.native_handle(), mark));
    look();
    EXPECT_FALSE(mark.closed);
    EXPECT_EQ(mark.input_look, 0u);
    EXPECT_EQ(watch_.looks(), 1u);
}

TEST_F(PeerWatchTest, ThePeersEndOfStreamMarksTheConnectionClosed) {
    Pair pair(io_);
    PeerWatch::Mark mark;
    ASSERT_TRUE(watch_.watch(pair.ours.native_handle(), mark));
    look();
    pair.peer.shutdown(tcp::socket::shutdown_send);
    look();
    EXPECT_TRUE(mark.closed);
}

TEST_F(PeerWatchTest, AResetMarksTheConnectionClosed) {
    Pair pair(io_);
    PeerWatch::Mark mark;
    ASSERT_TRUE(watch_.watch(pair.ours.native_handle(), mark));
    pair.peer.set_option(asio::socket_base::linger(true, 0));  // close sends a reset
    pair.peer.close();
    look();
    EXPECT_TRUE(mark.closed);
}

TEST_F(PeerWatchTest, BytesWaitingAtALookAreMarkedWithThatLook) {
    Pair pair(io_);
    PeerWatch::Mark mark;
    ASSERT_TRUE(watch_.watch(pair.ours.native_handle(), mark));
    look();
    pair.peer_sends("HTTP/1.1 408 Request Timeout\r\n\r\n");
    look();
    EXPECT_EQ(mark.input_look, 2u);
    EXPECT_FALSE(mark.closed);
    // Reported once: nothing new arrived since.
    look();
    EXPECT_EQ(mark.input_look, 2u);
}

TEST_F(PeerWatchTest, BytesReadBeforeTheLookAreNotReported) {
    Pair pair(io_);
    PeerWatch::Mark mark;
    ASSERT_TRUE(watch_.watch(pair.ours.native_handle(), mark));
    pair.peer_sends("answer");
    std::array<char, 6> answer{};
    asio::read(pair.ours, asio::buffer(answer));
    look();
    EXPECT_EQ(mark.input_look, 0u);
    EXPECT_FALSE(mark.closed);
}

TEST_F(PeerWatchTest, ALookSoonerThanTheIntervalAfterThePreviousOneDoesNotLook) {
    PeerWatch watch(1s);
    Pair pair(io_);
    PeerWatch::Mark mark;
    ASSERT_TRUE(watch.watch(pair.ours.native_handle(), mark));
    const auto start = PeerWatch::Clock::now();
    watch.look(start);
    pair.peer.shutdown(tcp::socket::shutdown_send);
    watch.look(start + 999ms);
    EXPECT_FALSE(mark.closed);
    EXPECT_EQ(watch.looks(), 1u);
    watch.look(start + 1s);
    EXPECT_TRUE(mark.closed);
    EXPECT_EQ(watch.looks(), 2u);
}

TEST_F(PeerWatchTest, EachConnectionGetsItsOwnMark) {
    Pair closing(io_);
    Pair speaking(io_);
    Pair quiet(io_);
    PeerWatch::Mark closing_mark, speaking_mark, quiet_mark;
    ASSERT_TRUE(watch_.watch(closing.ours.native_handle(), closing_mark));
    ASSERT_TRUE(watch_.watch(speaking.ours.native_handle(), speaking_mark));
    ASSERT_TRUE(watch_.watch(quiet.ours.native_handle(), quiet_mark));
    closing.peer.close();
    speaking.peer_sends("x");
    look();
    EXPECT_TRUE(closing_mark.closed);
    EXPECT_FALSE(speaking_mark.closed);
    EXPECT_EQ(speaking_mark.input_look, 1u);
    EXPECT_FALSE(quiet_mark.closed);
    EXPECT_EQ(quiet_mark.input_look, 0u);
}

// More ready sockets than one epoll_wait takes: every one is marked in the same look.
TEST_F(PeerWatchTest, ALookMarksEveryClosedConnectionHoweverMany) {
    constexpr int kCount = 150;
    std::vector<std::unique_ptr<Pair>> pairs;
    std::vector<PeerWatch::Mark> marks(kCount);
    for (int i = 0; i < kCount; ++i) {
        pairs.push_back(std::make_unique<Pair>(io_));
        ASSERT_TRUE(watch_.watch(pairs.back()->ours.native_handle(), marks[i]));
        pairs.back()->peer.close();
    }
    look();
    for (int i = 0; i < kCount; ++i) EXPECT_TRUE(marks[i].closed) << i;
}

// The watch ends with the descriptor: a mark freed after its socket closed is never written,
// even when the peer closed first and its event was waiting (AddressSanitizer would report the
// write).
TEST_F(PeerWatchTest, ClosingTheSocketEndsItsWatch) {
    Pair gone(io_);
    Pair kept(io_);
    auto gone_mark = std::make_unique<PeerWatch::Mark>();
    PeerWatch::Mark kept_mark;
    ASSERT_TRUE(watch_.watch(gone.ours.native_handle(), *gone_mark));
    ASSERT_TRUE(watch_.watch(kept.ours.native_handle(), kept_mark));
    gone.peer.close();
    gone.ours.close();
    gone_mark.reset();
    kept.peer.close();
    look();
    EXPECT_TRUE(kept_mark.closed);
}

}  // namespace
}  // namespace aether::platform::http::detail
