#include "platform/http/draining_read.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

std::atomic<int> recv_calls{0};

}  // namespace

// Every recv and recvmsg in this test binary, Asio's and the draining read's, comes here: the
// binary links Asio without platform/socket_calls.cpp, so these definitions are the only ones
// ahead of libc's.
extern "C" ssize_t recv(int socket, void* buffer, std::size_t length, int flags) {
    recv_calls.fetch_add(1, std::memory_order_relaxed);
    return syscall(SYS_recvfrom, socket, buffer, length, flags, nullptr, nullptr);
}

extern "C" ssize_t recvmsg(int socket, struct msghdr* message, int flags) {
    recv_calls.fetch_add(1, std::memory_order_relaxed);
    return syscall(SYS_recvmsg, socket, message, flags);
}

namespace {

namespace asio = boost::asio;
using aether::platform::http::detail::async_read_some_draining;
using aether::platform::http::detail::enable_draining_reads;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

struct ReadResult {
    bool done = false;
    error_code ec;
    std::size_t bytes = 0;
};

// Connects `reader` to `peer` over loopback; `peer` without Nagle's delay, so that each write
// leaves at once.
void connect_over_loopback(asio::io_context& io, tcp::socket& reader, tcp::socket& peer) {
    tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
    peer.connect(acceptor.local_endpoint());
    acceptor.accept(reader);
    peer.set_option(tcp::no_delay(true));
}

// A reader socket (the one read with async_read_some_draining) connected to a peer socket the
// test writes to and closes.
class DrainingReadTest : public ::testing::Test {
  protected:
    void SetUp() override {
        connect_over_loopback(io_, reader_, peer_);
        enable_draining_reads(reader_);
    }

    std::shared_ptr<ReadResult> start_read(std::size_t room) {
        buffer_.assign(room, '\0');
        auto result = std::make_shared<ReadResult>();
        async_read_some_draining(reader_, asio::buffer(buffer_),
                                 [result](error_code ec, std::size_t bytes) {
                                     result->done = true;
                                     result->ec = ec;
                                     result->bytes = bytes;
                                 });
        return result;
    }

    // Runs the context until `result` is in, for at most two seconds.
    void run_until(const ReadResult& result) {
        const auto give_up = std::chrono::steady_clock::now() + 2s;
        while (!result.done && std::chrono::steady_clock::now() < give_up) {
            io_.run_one_for(50ms);
        }
        io_.restart();
    }

    // Runs what is ready now, without waiting.
    void run_ready() {
        io_.poll();
        io_.restart();
    }

    std::string read_text(const ReadResult& result) const {
        return std::string(buffer_.data(), result.bytes);
    }

    void peer_writes(std::string_view text) { asio::write(peer_, asio::buffer(text)); }

    // A read started while the peer has sent nothing: it must wait.
    std::shared_ptr<ReadResult> waiting_read(std::size_t room) {
        auto result = start_read(room);
        run_ready();
        EXPECT_FALSE(result->done) << "the read completed with nothing sent";
        return result;
    }

    // A read that had to wait for `text`, so the reactor's event for it is spent on the read:
    // the state a server or client is in after reading a request or an answer.
    std::shared_ptr<ReadResult> waited_read(std::size_t room, std::string_view text) {
        auto result = waiting_read(room);
        peer_writes(text);
        run_until(*result);
        EXPECT_TRUE(result->done);
        return result;
    }

    asio::io_context io_;
    tcp::socket reader_{io_};
    tcp::socket peer_{io_};
    std::vector<char> buffer_;
};

TEST_F(DrainingReadTest, AfterAReadThatEmptiedTheSocketTheNextWaitsWithoutTryingIt) {
    auto first = waited_read(4096, "GET / HTTP/1.1\r\n\r\n");
    ASSERT_FALSE(first->ec);
    EXPECT_EQ(read_text(*first), "GET / HTTP/1.1\r\n\r\n");

    const int before = recv_calls.load();
    auto second = waiting_read(4096);
    EXPECT_EQ(recv_calls.load(), before) << "the read tried the emptied socket";

    peer_writes("next");
    run_until(*second);
    ASSERT_TRUE(second->done);
    ASSERT_FALSE(second->ec);
    EXPECT_EQ(read_text(*second), "next");
    EXPECT_EQ(recv_calls.load(), before + 1);
}

TEST_F(DrainingReadTest, AfterAReadThatFilledItsBufferTheNextTriesTheSocketFirst) {
    auto first = waited_read(4, "abcdefgh");
    ASSERT_FALSE(first->ec);
    EXPECT_EQ(read_text(*first), "abcd");

    // The rest is already there: the next read takes it at once.
    int before = recv_calls.load();
    auto second = start_read(4);
    EXPECT_EQ(recv_calls.load(), before + 1);
    run_ready();
    ASSERT_TRUE(second->done);
    EXPECT_EQ(read_text(*second), "efgh");

    // A full buffer says nothing about what is left, so the next read tries (and waits).
    before = recv_calls.load();
    auto third = waiting_read(4);
    EXPECT_EQ(recv_calls.load(), before + 1);
    peer_writes("ij");
    run_until(*third);
    ASSERT_TRUE(third->done);
    EXPECT_EQ(read_text(*third), "ij");
}

TEST_F(DrainingReadTest, AnAsioReadAfterAnEmptyingReadStillGetsWhatComesLater) {
    auto first = waited_read(64, "one");
    ASSERT_EQ(read_text(*first), "one");

    buffer_.assign(64, '\0');
    ReadResult second;
    reader_.async_read_some(asio::buffer(buffer_), [&](error_code ec, std::size_t bytes) {
        second = {true, ec, bytes};
    });
    run_ready();
    EXPECT_FALSE(second.done);
    peer_writes("two");
    run_until(second);
    ASSERT_TRUE(second.done);
    EXPECT_EQ(read_text(second), "two");
}

TEST_F(DrainingReadTest, ThePeerClosingEndsAWaitingReadWithEndOfStream) {
    auto first = waited_read(64, "last words");
    ASSERT_EQ(read_text(*first), "last words");

    auto second = waiting_read(64);
    peer_.close();
    run_until(*second);
    ASSERT_TRUE(second->done);
    EXPECT_EQ(second->ec, asio::error::eof);
    EXPECT_EQ(second->bytes, 0u);
}

TEST_F(DrainingReadTest, AnEndOfStreamThatCameWithTheLastBytesEndsTheNextRead) {
    waited_read(64, "one");
    auto second = waiting_read(64);
    // One edge for both: the peer's bytes and its end of stream arrive before the reactor looks.
    peer_writes("two");
    peer_.shutdown(tcp::socket::shutdown_send);
    run_until(*second);
    ASSERT_TRUE(second->done);
    ASSERT_FALSE(second->ec);
    EXPECT_EQ(read_text(*second), "two");

    const int before = recv_calls.load();
    auto third = start_read(64);
    EXPECT_EQ(recv_calls.load(), before + 1) << "the read did not try the socket";
    run_until(*third);
    ASSERT_TRUE(third->done) << "the end of stream was never read";
    EXPECT_EQ(third->ec, asio::error::eof);
}

TEST_F(DrainingReadTest, OnASocketWithoutDrainingReadsEnabledEveryReadTriesTheSocket) {
    reader_.close();
    peer_.close();
    connect_over_loopback(io_, reader_, peer_);

    waited_read(64, "one");
    const int before = recv_calls.load();
    auto second = waiting_read(64);
    EXPECT_EQ(recv_calls.load(), before + 1);
    peer_writes("two");
    run_until(*second);
    ASSERT_TRUE(second->done);
    EXPECT_EQ(read_text(*second), "two");
}

TEST_F(DrainingReadTest, CancellingTheSocketAbortsAWaitingRead) {
    waited_read(64, "x");
    auto second = waiting_read(64);
    reader_.cancel();
    run_until(*second);
    ASSERT_TRUE(second->done);
    EXPECT_EQ(second->ec, asio::error::operation_aborted);

    // The socket goes on working.
    auto third = start_read(64);
    peer_writes("after");
    run_until(*third);
    ASSERT_FALSE(third->ec);
    EXPECT_EQ(read_text(*third), "after");
}

TEST_F(DrainingReadTest, AnOperationsOwnCancellationSlotAbortsIt) {
    waited_read(64, "x");
    buffer_.assign(64, '\0');
    asio::cancellation_signal signal;
    ReadResult second;
    async_read_some_draining(
        reader_, asio::buffer(buffer_),
        asio::bind_cancellation_slot(signal.slot(), [&](error_code ec, std::size_t bytes) {
            second = {true, ec, bytes};
        }));
    run_ready();
    ASSERT_FALSE(second.done);
    signal.emit(asio::cancellation_type::terminal);
    run_until(second);
    ASSERT_TRUE(second.done);
    EXPECT_EQ(second.ec, asio::error::operation_aborted);
}

TEST_F(DrainingReadTest, AnEmptyBufferCompletesAtOnceWithNothing) {
    const int before = recv_calls.load();
    ReadResult result;
    async_read_some_draining(reader_, asio::mutable_buffer(), [&](error_code ec, std::size_t n) {
        result = {true, ec, n};
    });
    run_ready();
    ASSERT_TRUE(result.done);
    EXPECT_FALSE(result.ec);
    EXPECT_EQ(result.bytes, 0u);
    EXPECT_EQ(recv_calls.load(), before);
}

TEST_F(DrainingReadTest, AClosedSocketFailsTheReadWithBadDescriptor) {
    reader_.close();
    ReadResult result;
    buffer_.assign(8, '\0');
    async_read_some_draining(reader_, asio::buffer(buffer_), [&](error_code ec, std::size_t n) {
        result = {true, ec, n};
    });
    run_ready();
    ASSERT_TRUE(result.done);
    EXPECT_EQ(result.ec, asio::error::bad_descriptor);
}

// A writer thread sends chunks of random sizes at random moments while two threads run the
// reader's context with reads of random room. A mark of "empty" that raced with an arrival
// would leave a read waiting for an event that already came: the stream would stall.
TEST(DrainingReadStressTest, EveryByteArrivesInOrderWithReadsOnTwoThreads) {
    asio::io_context io(2);
    tcp::socket peer(io);
    tcp::socket reader(io);
    connect_over_loopback(io, reader, peer);
    enable_draining_reads(reader);

    constexpr std::size_t kTotal = 4u << 20;
    std::vector<char> received;
    received.reserve(kTotal);
    std::vector<char> room(8192);
    std::mt19937 reader_random(7);
    std::atomic<bool> finished{false};
    error_code failure;

    std::function<void()> read_next = [&] {
        const std::size_t size = 1 + reader_random() % room.size();
        async_read_some_draining(
            reader, asio::buffer(room.data(), size), [&](error_code ec, std::size_t bytes) {
                if (ec) {
                    failure = ec;
                    finished = true;
                    return;
                }
                received.insert(received.end(), room.data(), room.data() + bytes);
                if (received.size() == kTotal) {
                    finished = true;
                    return;
                }
                read_next();
            });
    };
    read_next();

    std::thread writer([&] {
        std::mt19937 random(11);
        std::vector<char> chunk;
        std::size_t sent = 0;
        while (sent < kTotal) {
            const std::size_t size = std::min<std::size_t>(1 + random() % 3000, kTotal - sent);
            chunk.resize(size);
            for (std::size_t i = 0; i < size; ++i) {
                chunk[i] = static_cast<char>((sent + i) * 131 % 251);
            }
            asio::write(peer, asio::buffer(chunk));
            sent += size;
            if (random() % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    });

    auto run = [&] {
        const auto give_up = std::chrono::steady_clock::now() + 30s;
        while (!finished && std::chrono::steady_clock::now() < give_up) {
            io.run_one_for(20ms);
        }
    };
    std::thread second_runner(run);
    run();
    second_runner.join();
    writer.join();

    ASSERT_FALSE(failure) << failure.message();
    ASSERT_EQ(received.size(), kTotal) << "the stream stalled";
    for (std::size_t i = 0; i < kTotal; ++i) {
        ASSERT_EQ(received[i], static_cast<char>(i * 131 % 251)) << "at byte " << i;
    }
}

}  // namespace
