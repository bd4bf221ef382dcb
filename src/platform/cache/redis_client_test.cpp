// Tests for RedisClient without Redis: URL parsing, and replies, pipelining, timeouts, AUTH and
// reconnects against an in-process fake server that speaks RESP.
#include "platform/cache/redis_client.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <thread>

namespace aether::platform::cache {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using Result = RedisClient::Result;
using Argv = std::vector<std::string>;
using Clock = std::chrono::steady_clock;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

// Runs a coroutine on io until it finishes (other work, such as an open connection, stays).
void run(asio::io_context& io, asio::awaitable<void> task) {
    std::exception_ptr failure;
    bool finished = false;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr error) {
        failure = error;
        finished = true;
        io.stop();
    });
    io.restart();
    io.run();
    ASSERT_TRUE(finished);
    if (failure) std::rethrow_exception(failure);
}

asio::awaitable<void> sleep_for(Clock::duration duration) {
    asio::steady_timer timer(co_await asio::this_coro::executor, duration);
    co_await timer.async_wait(kUse);
}

// A RESP server: parses each command with hiredis and answers whatever `reply` returns for it
// (nothing = no answer).
class FakeRedis {
  public:
    using Reply = std::function<std::string(const Argv&)>;

    FakeRedis(asio::io_context& io, Reply reply)
        : io_(io),
          reply_(std::move(reply)),
          acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
        asio::co_spawn(io_, accept_loop(), asio::detached);
    }

    std::string url(std::string_view credentials = "", std::string_view path = "") const {
        return "redis://" + std::string(credentials) +
               "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + std::string(path);
    }
    int accepted() const { return accepted_; }
    const std::vector<Argv>& commands() const { return commands_; }
    void set_reply(Reply reply) { reply_ = std::move(reply); }
    // Writes each answer one byte at a time, so the client sees every possible split.
    bool byte_by_byte = false;
    // Closes a connection right after accepting it.
    bool close_on_accept = false;
    // Closes the connection after answering this many commands on it (0 = never).
    int close_after = 0;

  private:
    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(kUse);
            if (ec) co_return;
            ++accepted_;
            if (close_on_accept) continue;
            asio::co_spawn(io_, session(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> session(tcp::socket socket) {
        std::unique_ptr<redisReader, decltype(&redisReaderFree)> reader(redisReaderCreate(),
                                                                        &redisReaderFree);
        std::array<char, 4096> buffer;
        int answered = 0;
        for (;;) {
            auto [ec, n] = co_await socket.async_read_some(asio::buffer(buffer), kUse);
            if (ec) co_return;
            redisReaderFeed(reader.get(), buffer.data(), n);
            for (;;) {
                void* raw = nullptr;
                if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK) co_return;
                if (raw == nullptr) break;
                auto* command = static_cast<redisReply*>(raw);
                Argv argv;
                for (std::size_t i = 0; i < command->elements; ++i) {
                    argv.emplace_back(command->element[i]->str, command->element[i]->len);
                }
                freeReplyObject(raw);
                commands_.push_back(argv);
                auto answer = reply_(argv);
                if (answer.empty()) continue;
                if (byte_by_byte) {
                    for (char c : answer) {
                        auto [write_ec, written] =
                            co_await asio::async_write(socket, asio::buffer(&c, 1), kUse);
                        if (write_ec) co_return;
                    }
                } else {
                    auto [write_ec, written] =
                        co_await asio::async_write(socket, asio::buffer(answer), kUse);
                    if (write_ec) co_return;
                }
                if (close_after > 0 && ++answered >= close_after) co_return;
            }
        }
    }

    asio::io_context& io_;
    Reply reply_;
    tcp::acceptor acceptor_;
    int accepted_ = 0;
    std::vector<Argv> commands_;
};

std::string bulk(std::string_view text) {
    return "$" + std::to_string(text.size()) + "\r\n" + std::string(text) + "\r\n";
}

// Answers PING, ECHO, AUTH and SELECT like Redis; anything else with +OK.
std::string basic_reply(const Argv& argv) {
    if (argv[0] == "PING") return "+PONG\r\n";
    if (argv[0] == "ECHO") return bulk(argv[1]);
    return "+OK\r\n";
}

RedisOptions options_for(std::string url) {
    RedisOptions options;
    options.url = std::move(url);
    options.connect_timeout = 1000ms;
    options.command_timeout = 1000ms;
    options.reconnect_backoff_min = 50ms;
    options.reconnect_backoff_max = 200ms;
    return options;
}

Result command_now(asio::io_context& io, RedisClient& client, Argv argv) {
    std::optional<Result> out;
    run(io, [&]() -> asio::awaitable<void> { out.emplace(co_await client.command(argv)); }());
    if (!out) throw std::logic_error("command did not complete");
    return std::move(*out);
}

// ---- URLs

TEST(ParseRedisUrl, HostPortAndDefaults) {
    auto plain = parse_redis_url("redis://cache.internal");
    ASSERT_TRUE(plain) << plain.error();
    EXPECT_EQ(plain->host, "cache.internal");
    EXPECT_EQ(plain->port, 6379);
    EXPECT_EQ(plain->db, 0);
    EXPECT_TRUE(plain->password.empty());
    EXPECT_TRUE(plain->user.empty());

    auto full = parse_redis_url("REDIS://Cache:6380/3");
    ASSERT_TRUE(full) << full.error();
    EXPECT_EQ(full->host, "cache");
    EXPECT_EQ(full->port, 6380);
    EXPECT_EQ(full->db, 3);
    EXPECT_EQ(full->address(), "cache:6380");

    auto slash = parse_redis_url("redis://127.0.0.1:1/");
    ASSERT_TRUE(slash) << slash.error();
    EXPECT_EQ(slash->db, 0);

    auto ipv6 = parse_redis_url("redis://[::1]:7000/1");
    ASSERT_TRUE(ipv6) << ipv6.error();
    EXPECT_EQ(ipv6->host, "::1");
    EXPECT_EQ(ipv6->port, 7000);
    EXPECT_EQ(ipv6->address(), "[::1]:7000");
}

TEST(ParseRedisUrl, Credentials) {
    auto password_only = parse_redis_url("redis://:s3cret@host:1");
    ASSERT_TRUE(password_only) << password_only.error();
    EXPECT_EQ(password_only->user, "");
    EXPECT_EQ(password_only->password, "s3cret");
    EXPECT_EQ(password_only->address(), "host:1");

    auto with_user = parse_redis_url("redis://alice:pa%20ss%3A%40@host/2");
    ASSERT_TRUE(with_user) << with_user.error();
    EXPECT_EQ(with_user->user, "alice");
    EXPECT_EQ(with_user->password, "pa ss:@");
    EXPECT_EQ(with_user->db, 2);

    // An unencoded '@' in the password: the last '@' ends the credentials.
    // An empty password is no password.
    auto empty = parse_redis_url("redis://:@host");
    ASSERT_TRUE(empty) << empty.error();
    EXPECT_TRUE(empty->password.empty());

    auto raw_at = parse_redis_url("redis://:p@ss@host");
    ASSERT_TRUE(raw_at) << raw_at.error();
    EXPECT_EQ(raw_at->password, "p@ss");
    EXPECT_EQ(raw_at->host, "host");
}

TEST(ParseRedisUrl, RejectsWithoutEchoingThePassword) {
    const std::string secret = "Sup3rSecret";
    for (const auto& url : std::vector<std::string>{
             "http://:" + secret + "@host",
             "rediss://:" + secret + "@host",
             "redis://:" + secret + "@host:0",
             "redis://:" + secret + "@host:65536",
             "redis://:" + secret + "@host:12x",
             "redis://:" + secret + "@host:",
             "redis://:" + secret + "@",
             "redis://:" + secret + "@host/db",
             "redis://:" + secret + "@host/1?timeout=2",
             "redis://:" + secret + "@ho st",
             "redis://:" + secret + "@[::1",
             "redis://:" + secret + "%zz@host",
             "redis://" + secret + "@host",
             "redis://" + secret + ":@host",
             secret,
         }) {
        auto parsed = parse_redis_url(url);
        ASSERT_FALSE(parsed) << url;
        EXPECT_TRUE(parsed.error().starts_with("invalid Redis URL: ")) << parsed.error();
        EXPECT_EQ(parsed.error().find(secret), std::string::npos) << parsed.error();
    }
}

TEST(RedisClient, InvalidUrlThrowsWithoutThePassword) {
    asio::io_context io;
    try {
        RedisClient client(io.get_executor(), options_for("redis://:Sup3rSecret@host:99999"));
        FAIL() << "no exception";
    } catch (const std::invalid_argument& error) {
        EXPECT_EQ(std::string(error.what()).find("Sup3rSecret"), std::string::npos);
    }
}

TEST(RedisScript, Sha1IsWhatRedisComputes) {
    RedisScript script("return 1");
    EXPECT_EQ(script.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    EXPECT_EQ(script.source(), "return 1");
}

// ---- replies

struct ReplyCase {
    std::string raw;
    RedisReply expected;
};

RedisReply make(RedisReply::Type type, std::string text = {}, std::int64_t integer = 0,
                std::vector<RedisReply> elements = {}) {
    RedisReply reply;
    reply.type = type;
    reply.text = std::move(text);
    reply.integer = integer;
    reply.elements = std::move(elements);
    return reply;
}

std::vector<ReplyCase> reply_cases() {
    using T = RedisReply::Type;
    std::string binary("a\0b\r\nc", 6);
    return {
        {"+OK\r\n", make(T::Status, "OK")},
        {":42\r\n", make(T::Integer, {}, 42)},
        {":-9223372036854775808\r\n", make(T::Integer, {}, INT64_MIN)},
        {"$5\r\nhello\r\n", make(T::String, "hello")},
        {"$0\r\n\r\n", make(T::String, "")},
        {bulk(binary), make(T::String, binary)},
        {"$-1\r\n", make(T::Nil)},
        {"*-1\r\n", make(T::Nil)},
        {"*0\r\n", make(T::Array)},
        {"*4\r\n:1\r\n$1\r\na\r\n$-1\r\n*2\r\n-ERR inner\r\n+x\r\n",
         make(T::Array, {}, 0,
              {make(T::Integer, {}, 1), make(T::String, "a"), make(T::Nil),
               make(T::Array, {}, 0, {make(T::Error, "ERR inner"), make(T::Status, "x")})})},
    };
}

class Replies : public ::testing::TestWithParam<bool> {};

TEST_P(Replies, AreDecodedIntoOwnedValues) {
    asio::io_context io;
    auto cases = reply_cases();
    FakeRedis server(io, [&](const Argv& argv) { return cases.at(std::stoul(argv[1])).raw; });
    server.byte_by_byte = GetParam();
    RedisClient client(io.get_executor(), options_for(server.url()));
    for (std::size_t i = 0; i < cases.size(); ++i) {
        auto reply = command_now(io, client, {"GET", std::to_string(i)});
        ASSERT_TRUE(reply) << i << ": " << reply.error().message;
        EXPECT_EQ(*reply, cases[i].expected) << "case " << i << ": " << cases[i].raw;
    }
    EXPECT_EQ(server.accepted(), 1);
}

INSTANTIATE_TEST_SUITE_P(WholeOrByteByByte, Replies, ::testing::Bool());

TEST(RedisClient, ErrorReplyIsServerErrorAndKeepsTheConnection) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv& argv) -> std::string {
        if (argv[0] == "BAD") return "-ERR unknown command 'BAD'\r\n";
        return basic_reply(argv);
    });
    RedisClient client(io.get_executor(), options_for(server.url()));
    auto bad = command_now(io, client, {"BAD"});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().kind, RedisError::ServerError);
    EXPECT_EQ(bad.error().message, "ERR unknown command 'BAD'");
    auto good = command_now(io, client, {"PING"});
    ASSERT_TRUE(good) << good.error().message;
    EXPECT_EQ(good->text, "PONG");
    EXPECT_EQ(server.accepted(), 1);
}

TEST(RedisClient, ArgumentsAreBinarySafe) {
    asio::io_context io;
    FakeRedis server(io, basic_reply);
    RedisClient client(io.get_executor(), options_for(server.url()));
    std::string binary("x\0y\r\n$3\r\n", 9);
    auto reply = command_now(io, client, {"ECHO", binary});
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_EQ(reply->text, binary);
    ASSERT_EQ(server.commands().size(), 1u);
    EXPECT_EQ(server.commands()[0], (Argv{"ECHO", binary}));
}

TEST(RedisClient, EmptyCommandIsRejected) {
    asio::io_context io;
    FakeRedis server(io, basic_reply);
    RedisClient client(io.get_executor(), options_for(server.url()));
    auto reply = command_now(io, client, {});
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().kind, RedisError::Protocol);
    EXPECT_EQ(server.accepted(), 0);
}

TEST(RedisClient, GarbageFromTheServerIsAProtocolError) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv&) { return std::string("?what\r\n"); });
    RedisClient client(io.get_executor(), options_for(server.url()));
    auto reply = command_now(io, client, {"PING"});
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().kind, RedisError::Protocol);
    EXPECT_NE(reply.error().message.find("Protocol error"), std::string::npos)
        << reply.error().message;
}

// ---- pipelining

asio::awaitable<void> echo(RedisClient& client, std::string value, std::optional<Result>& out) {
    Argv argv{"ECHO", value};
    out.emplace(co_await client.command(std::move(argv)));
}

TEST(RedisClient, ConcurrentCommandsArePipelinedOnOneConnectionInOrder) {
    asio::io_context io;
    FakeRedis server(io, basic_reply);
    RedisClient client(io.get_executor(), options_for(server.url()));
    constexpr int kCount = 500;
    std::vector<std::optional<Result>> results(kCount);
    run(io, [&]() -> asio::awaitable<void> {
        int left = kCount;
        asio::steady_timer done(co_await asio::this_coro::executor, Clock::time_point::max());
        for (int i = 0; i < kCount; ++i) {
            asio::co_spawn(io, echo(client, "v" + std::to_string(i), results[i]),
                           [&](std::exception_ptr) {
                               if (--left == 0) done.cancel();
                           });
        }
        co_await done.async_wait(kUse);
    }());
    for (int i = 0; i < kCount; ++i) {
        ASSERT_TRUE(results[i] && *results[i]) << i;
        EXPECT_EQ((*results[i])->text, "v" + std::to_string(i));
    }
    EXPECT_EQ(server.accepted(), 1);
    ASSERT_EQ(server.commands().size(), static_cast<std::size_t>(kCount));
    for (int i = 0; i < kCount; ++i) EXPECT_EQ(server.commands()[i][1], "v" + std::to_string(i));
    EXPECT_EQ(client.stats().connections_opened, 1u);
    EXPECT_EQ(client.stats().pending, 0u);
}

TEST(RedisClient, UsableFromSeveralThreads) {
    asio::io_context io;
    FakeRedis server(io, basic_reply);
    RedisClient client(io.get_executor(), options_for(server.url()));
    constexpr int kCount = 400;
    std::vector<std::optional<Result>> results(kCount);
    std::atomic<int> left = kCount;
    for (int i = 0; i < kCount; ++i) {
        // Each caller on its own strand, as each HTTP connection is in the server.
        asio::co_spawn(asio::make_strand(io), echo(client, std::to_string(i), results[i]),
                       [&](std::exception_ptr) {
                           if (--left == 0) io.stop();
                       });
    }
    std::thread other([&] { io.run(); });
    io.run();
    other.join();
    for (int i = 0; i < kCount; ++i) {
        ASSERT_TRUE(results[i] && *results[i]) << i;
        EXPECT_EQ((*results[i])->text, std::to_string(i));
    }
    EXPECT_EQ(server.accepted(), 1);
}

TEST(RedisClient, QueueFullFailsAtOnce) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv&) { return std::string(); });  // never answers
    auto options = options_for(server.url());
    options.max_pending = 2;
    RedisClient client(io.get_executor(), options);
    std::optional<Result> first, second, third;
    run(io, [&]() -> asio::awaitable<void> {
        asio::co_spawn(io, echo(client, "1", first), asio::detached);
        asio::co_spawn(io, echo(client, "2", second), asio::detached);
        co_await sleep_for(20ms);  // both are queued by now
        EXPECT_EQ(client.stats().pending, 2u);
        auto started = Clock::now();
        co_await echo(client, "3", third);
        EXPECT_LT(Clock::now() - started, 50ms);
        client.close();
        co_await sleep_for(10ms);
    }());
    ASSERT_TRUE(third);
    ASSERT_FALSE(*third);
    EXPECT_EQ(third->error().kind, RedisError::QueueFull);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->error().kind, RedisError::Unavailable);
    EXPECT_EQ(first->error().message, "client closed");
}

// ---- timeouts, failures, reconnects

TEST(RedisClient, TimeoutFailsEveryPendingCommandAndTheNextReconnects) {
    asio::io_context io;
    bool answer = false;
    FakeRedis server(io,
                     [&](const Argv& argv) { return answer ? basic_reply(argv) : std::string(); });
    auto options = options_for(server.url());
    options.command_timeout = 200ms;
    options.reconnect_backoff_min = 30ms;
    RedisClient client(io.get_executor(), options);

    std::optional<Result> first, second, during_backoff, after;
    Clock::duration took{};
    run(io, [&]() -> asio::awaitable<void> {
        auto started = Clock::now();
        asio::co_spawn(io, echo(client, "a", first), asio::detached);
        co_await echo(client, "b", second);
        took = Clock::now() - started;
        co_await echo(client, "c", during_backoff);
        answer = true;
        co_await sleep_for(40ms);
        co_await echo(client, "d", after);
    }());
    // Whichever was queued first timed out; the other failed with the connection.
    ASSERT_TRUE(first && second && during_backoff && after);
    ASSERT_FALSE(*first);
    ASSERT_FALSE(*second);
    auto& timed_out = first->error().kind == RedisError::Timeout ? *first : *second;
    auto& dropped = first->error().kind == RedisError::Timeout ? *second : *first;
    EXPECT_EQ(timed_out.error().kind, RedisError::Timeout);
    EXPECT_NE(timed_out.error().message.find("timed out after 200 ms"), std::string::npos);
    EXPECT_EQ(dropped.error().kind, RedisError::Unavailable);
    EXPECT_NE(dropped.error().message.find("an earlier command timed out"), std::string::npos);
    EXPECT_GE(took, 190ms);
    EXPECT_LT(took, 1000ms);
    ASSERT_FALSE(*during_backoff);
    EXPECT_EQ(during_backoff->error().kind, RedisError::Unavailable);
    EXPECT_NE(during_backoff->error().message.find("next connection attempt"), std::string::npos)
        << during_backoff->error().message;
    ASSERT_TRUE(*after) << after->error().message;
    EXPECT_EQ((*after)->text, "d");
    EXPECT_EQ(server.accepted(), 2);
    EXPECT_EQ(client.stats().connections_opened, 2u);
}

TEST(RedisClient, ConnectionLostFailsFastThenBacksOff) {
    asio::io_context io;
    FakeRedis server(io, basic_reply);
    server.close_on_accept = true;
    auto options = options_for(server.url());
    options.command_timeout = 5000ms;
    options.reconnect_backoff_min = 10000ms;
    RedisClient client(io.get_executor(), options);

    auto started = Clock::now();
    auto lost = command_now(io, client, {"PING"});
    ASSERT_FALSE(lost);
    EXPECT_EQ(lost.error().kind, RedisError::Unavailable);
    EXPECT_NE(lost.error().message.find("lost connection"), std::string::npos)
        << lost.error().message;
    auto backing_off = command_now(io, client, {"PING"});
    ASSERT_FALSE(backing_off);
    EXPECT_EQ(backing_off.error().kind, RedisError::Unavailable);
    EXPECT_LT(Clock::now() - started, 1000ms);
    EXPECT_EQ(server.accepted(), 1);  // no new connection while backing off
    EXPECT_EQ(client.stats().connection_failures, 1u);
}

TEST(RedisClient, RefusedConnectIsUnavailable) {
    asio::io_context io;
    std::uint16_t port = 0;
    {
        tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
        port = probe.local_endpoint().port();
    }
    RedisClient client(io.get_executor(),
                       options_for("redis://:Sup3rSecret@127.0.0.1:" + std::to_string(port)));
    auto reply = command_now(io, client, {"PING"});
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().kind, RedisError::Unavailable);
    EXPECT_NE(reply.error().message.find("cannot connect"), std::string::npos)
        << reply.error().message;
    EXPECT_EQ(reply.error().message.find("Sup3rSecret"), std::string::npos);
}

TEST(RedisClient, ConnectTimeoutAgainstASilentHandshake) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv&) { return std::string(); });  // AUTH never answered
    auto options = options_for(server.url(":pw@"));
    options.connect_timeout = 150ms;
    options.command_timeout = 5000ms;
    RedisClient client(io.get_executor(), options);
    auto started = Clock::now();
    auto reply = command_now(io, client, {"PING"});
    auto took = Clock::now() - started;
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().kind, RedisError::Unavailable);
    EXPECT_NE(reply.error().message.find("timed out after 150 ms"), std::string::npos)
        << reply.error().message;
    EXPECT_GE(took, 140ms);
    EXPECT_LT(took, 1000ms);
}

TEST(RedisClient, DuringAnOutageOnlyOneCommandWaitsForTheReconnect) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv&) { return std::string(); });  // AUTH never answered
    auto options = options_for(server.url(":pw@"));
    options.connect_timeout = 200ms;
    options.reconnect_backoff_min = 20ms;
    RedisClient client(io.get_executor(), options);
    std::optional<Result> first, probe, bystander;
    Clock::duration bystander_took{};
    run(io, [&]() -> asio::awaitable<void> {
        co_await echo(client, "1", first);  // the first connect is awaited
        co_await sleep_for(30ms);           // past the backoff
        asio::steady_timer done(co_await asio::this_coro::executor, Clock::time_point::max());
        asio::co_spawn(io, echo(client, "2", probe), [&](std::exception_ptr) { done.cancel(); });
        co_await sleep_for(10ms);
        auto started = Clock::now();
        co_await echo(client, "3", bystander);
        bystander_took = Clock::now() - started;
        if (!probe) co_await done.async_wait(kUse);
    }());
    ASSERT_TRUE(first && probe && bystander);
    EXPECT_EQ(first->error().kind, RedisError::Unavailable);
    EXPECT_EQ(probe->error().kind, RedisError::Unavailable);
    EXPECT_NE(probe->error().message.find("timed out after 200 ms"), std::string::npos);
    ASSERT_FALSE(*bystander);
    EXPECT_EQ(bystander->error().kind, RedisError::Unavailable);
    EXPECT_NE(bystander->error().message.find("reconnecting"), std::string::npos)
        << bystander->error().message;
    EXPECT_LT(bystander_took, 50ms);
    EXPECT_EQ(server.accepted(), 2);
}

TEST(RedisClient, IdleConnectionClosedByTheServerReconnectsWithoutBackoff) {
    asio::io_context io;
    FakeRedis server(io, basic_reply);
    server.close_after = 1;
    auto options = options_for(server.url());
    options.reconnect_backoff_min = 10000ms;
    RedisClient client(io.get_executor(), options);
    ASSERT_TRUE(command_now(io, client, {"PING"}));
    run(io, sleep_for(50ms));  // the client notices the close while idle
    auto again = command_now(io, client, {"PING"});
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(server.accepted(), 2);
    EXPECT_EQ(client.stats().connection_failures, 0u);
}

// ---- AUTH, SELECT, scripts

TEST(RedisClient, AuthAndSelectComeFirst) {
    asio::io_context io;
    FakeRedis server(io, basic_reply);
    RedisClient client(io.get_executor(), options_for(server.url("alice:pw%21@", "/5")));
    ASSERT_TRUE(command_now(io, client, {"PING"}));
    ASSERT_EQ(server.commands().size(), 3u);
    EXPECT_EQ(server.commands()[0], (Argv{"AUTH", "alice", "pw!"}));
    EXPECT_EQ(server.commands()[1], (Argv{"SELECT", "5"}));
    EXPECT_EQ(server.commands()[2], (Argv{"PING"}));
}

TEST(RedisClient, RefusedAuthIsUnavailableWithoutThePassword) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv& argv) -> std::string {
        if (argv[0] == "AUTH") return "-WRONGPASS invalid username-password pair\r\n";
        return basic_reply(argv);
    });
    RedisClient client(io.get_executor(), options_for(server.url(":Sup3rSecret@")));
    auto reply = command_now(io, client, {"PING"});
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().kind, RedisError::Unavailable);
    EXPECT_NE(reply.error().message.find("WRONGPASS"), std::string::npos) << reply.error().message;
    EXPECT_EQ(reply.error().message.find("Sup3rSecret"), std::string::npos);
    ASSERT_EQ(server.commands().size(), 1u);  // PING was never sent
}

TEST(RedisClient, EvalFallsBackToEvalOnNoscript) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv& argv) -> std::string {
        if (argv[0] == "EVALSHA") return "-NOSCRIPT No matching script. Please use EVAL.\r\n";
        if (argv[0] == "EVAL") return ":7\r\n";
        return basic_reply(argv);
    });
    RedisClient client(io.get_executor(), options_for(server.url()));
    RedisScript script("return 7");
    std::optional<Result> out;
    Argv keys{"k1"};
    Argv args{"a1", "a2"};
    run(io, [&]() -> asio::awaitable<void> {
        out.emplace(co_await client.eval(script, keys, args));
    }());
    ASSERT_TRUE(out && *out) << (*out).error().message;
    EXPECT_EQ((*out)->integer, 7);
    ASSERT_EQ(server.commands().size(), 2u);
    EXPECT_EQ(server.commands()[0], (Argv{"EVALSHA", script.sha1(), "1", "k1", "a1", "a2"}));
    EXPECT_EQ(server.commands()[1], (Argv{"EVAL", "return 7", "1", "k1", "a1", "a2"}));
}

TEST(RedisClient, CloseFailsPendingAndLaterCommands) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv&) { return std::string(); });
    RedisClient client(io.get_executor(), options_for(server.url()));
    std::optional<Result> pending;
    run(io, [&]() -> asio::awaitable<void> {
        asio::co_spawn(io, echo(client, "x", pending), asio::detached);
        co_await sleep_for(20ms);
        client.close();
        co_await sleep_for(5ms);
    }());
    ASSERT_TRUE(pending);
    ASSERT_FALSE(*pending);
    EXPECT_EQ(pending->error().message, "client closed");
    auto later = command_now(io, client, {"PING"});
    ASSERT_FALSE(later);
    EXPECT_EQ(later.error().kind, RedisError::Unavailable);
}

TEST(RedisClient, DestroyedWithCommandsInFlight) {
    asio::io_context io;
    FakeRedis server(io, [](const Argv&) { return std::string(); });
    std::optional<Result> pending;
    {
        RedisClient client(io.get_executor(), options_for(server.url()));
        run(io, [&]() -> asio::awaitable<void> {
            asio::co_spawn(io, echo(client, "x", pending), asio::detached);
            co_await sleep_for(20ms);
        }());
    }
    run(io, sleep_for(5ms));
    ASSERT_TRUE(pending);
    ASSERT_FALSE(*pending);
    EXPECT_EQ(pending->error().kind, RedisError::Unavailable);
}

}  // namespace
}  // namespace aether::platform::cache
