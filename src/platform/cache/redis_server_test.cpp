// Tests against a real redis-server that each test starts (scripts/redis-test-server, a free port,
// a temp dir): commands, pipelining, AUTH/SELECT, timeouts, a killed and restarted server,
// NOSCRIPT, and the shared rate counter's exactness across replicas.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include "platform/cache/rate_counter.h"
#include "platform/cache/redis_client.h"

namespace aether::platform::cache {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Result = RedisClient::Result;
using Argv = std::vector<std::string>;
using Clock = std::chrono::steady_clock;
using TimePoint = std::chrono::system_clock::time_point;
using Outcome = Expected<RateDecision, RedisError>;

// A private redis-server driven through scripts/redis-test-server.
class RedisServer {
  public:
    RedisServer() {
        std::random_device random;
        dir_ = std::filesystem::temp_directory_path() /
               ("aether-redis-test-" + std::to_string(random()) + std::to_string(random()));
    }
    ~RedisServer() {
        script("stop");
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    // Starts the server (again, on the same port after kill()); false when it cannot.
    bool start() {
        auto output = script("start", port_ == 0 ? "0" : std::to_string(port_));
        if (!output) return false;
        port_ = static_cast<std::uint16_t>(std::stoi(*output));
        return port_ != 0;
    }

    // SIGKILL, then wait until the port refuses connections.
    void kill() {
        std::ifstream pidfile(dir_ / "redis.pid");
        pid_t pid = 0;
        pidfile >> pid;
        ASSERT_GT(pid, 0);
        ASSERT_EQ(::kill(pid, SIGKILL), 0);
        for (int i = 0; i < 200 && accepts_connections(); ++i) std::this_thread::sleep_for(10ms);
        ASSERT_FALSE(accepts_connections());
    }

    std::uint16_t port() const { return port_; }
    std::string url(std::string_view credentials = "", std::string_view path = "") const {
        return "redis://" + std::string(credentials) + "127.0.0.1:" + std::to_string(port_) +
               std::string(path);
    }

  private:
    std::optional<std::string> script(std::string_view verb, std::string_view port = "") {
        std::string command = std::string(AETHER_REDIS_TEST_SERVER) + " " + std::string(verb) +
                              " '" + dir_.string() + "' " + std::string(port);
        FILE* pipe = ::popen(command.c_str(), "r");
        if (pipe == nullptr) return std::nullopt;
        std::string output;
        char buffer[256];
        while (auto n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
        if (::pclose(pipe) != 0) return std::nullopt;
        while (!output.empty() && (output.back() == '\n' || output.back() == '\r'))
            output.pop_back();
        return output;
    }

    bool accepts_connections() const {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port_);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
        ::close(fd);
        return connected;
    }

    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
};

// Runs a coroutine on io (with `threads` threads) until it finishes; connections stay open.
void run(asio::io_context& io, asio::awaitable<void> task, int threads = 1) {
    std::exception_ptr failure;
    std::atomic<bool> finished = false;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr error) {
        failure = error;
        finished = true;
        io.stop();
    });
    io.restart();
    std::vector<std::thread> extra;
    for (int i = 1; i < threads; ++i) extra.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& thread : extra) thread.join();
    ASSERT_TRUE(finished);
    if (failure) std::rethrow_exception(failure);
}

// Runs make(0) ... make(count - 1) concurrently, each on its own strand, until all finished.
template <class Make>
void run_concurrently(asio::io_context& io, int count, Make make, int threads = 1) {
    std::atomic<int> left = count;
    std::atomic<int> failed = 0;
    for (int i = 0; i < count; ++i) {
        asio::co_spawn(asio::make_strand(io), make(i), [&](std::exception_ptr error) {
            if (error) ++failed;
            if (--left == 0) io.stop();
        });
    }
    io.restart();
    std::vector<std::thread> extra;
    for (int i = 1; i < threads; ++i) extra.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& thread : extra) thread.join();
    EXPECT_EQ(left.load(), 0);
    EXPECT_EQ(failed.load(), 0);
}

asio::awaitable<void> sleep_for(Clock::duration duration) {
    asio::steady_timer timer(co_await asio::this_coro::executor, duration);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> send(RedisClient& client, Argv argv, std::optional<Result>& out) {
    out.emplace(co_await client.command(std::move(argv)));
}

asio::awaitable<void> hit(RateCounter& counter, std::string key,
                          std::span<const WindowLimit> limits, TimePoint now,
                          std::optional<Outcome>& out) {
    out.emplace(co_await counter.hit(key, limits, now));
}

RedisOptions options_for(std::string url) {
    RedisOptions options;
    options.url = std::move(url);
    options.connect_timeout = 2000ms;
    options.command_timeout = 3000ms;
    options.reconnect_backoff_min = 20ms;
    options.reconnect_backoff_max = 100ms;
    return options;
}

TimePoint fixed_time() {
    using namespace std::chrono;
    return sys_days(year(2024) / 2 / 15) + 12h + 34min + 10s;
}

class RedisServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(server_.start())
            << "cannot start redis-server through " << AETHER_REDIS_TEST_SERVER;
    }

    Result call(RedisClient& client, Argv argv) {
        std::optional<Result> out;
        run(io_, send(client, std::move(argv), out));
        if (!out) throw std::logic_error("command did not complete");
        return std::move(*out);
    }

    std::string text_of(RedisClient& client, Argv argv) {
        auto reply = call(client, std::move(argv));
        if (!reply) return "error: " + reply.error().message;
        return reply->text;
    }

    asio::io_context io_;
    RedisServer server_;
};

TEST_F(RedisServerTest, Commands) {
    RedisClient client(io_.get_executor(), options_for(server_.url()));
    EXPECT_EQ(text_of(client, {"PING"}), "PONG");
    EXPECT_EQ(text_of(client, {"SET", "greeting", std::string("hi\0there", 8)}), "OK");
    EXPECT_EQ(text_of(client, {"GET", "greeting"}), std::string("hi\0there", 8));
    auto missing = call(client, {"GET", "missing"});
    ASSERT_TRUE(missing);
    EXPECT_TRUE(missing->is_nil());
    auto incremented = call(client, {"INCRBY", "n", "41"});
    ASSERT_TRUE(incremented);
    EXPECT_EQ(incremented->integer, 41);
    ASSERT_TRUE(call(client, {"RPUSH", "list", "a", "b", "c"}));
    auto range = call(client, {"LRANGE", "list", "0", "-1"});
    ASSERT_TRUE(range);
    ASSERT_EQ(range->type, RedisReply::Type::Array);
    ASSERT_EQ(range->elements.size(), 3u);
    EXPECT_EQ(range->elements[2].text, "c");

    auto wrong = call(client, {"INCR", "greeting"});
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().kind, RedisError::ServerError);
    EXPECT_EQ(wrong.error().message, "ERR value is not an integer or out of range");
    EXPECT_EQ(text_of(client, {"PING"}), "PONG");
    EXPECT_EQ(client.stats().connections_opened, 1u);
}

asio::awaitable<void> increment(RedisClient& client, std::optional<Result>& out) {
    Argv argv{"INCR", "sequence"};
    out.emplace(co_await client.command(std::move(argv)));
}

TEST_F(RedisServerTest, ThousandConcurrentCommandsArePipelinedInOrder) {
    RedisClient client(io_.get_executor(), options_for(server_.url()));
    constexpr int kCount = 1000;
    std::vector<std::optional<Result>> results(kCount);
    std::atomic<int> left = kCount;
    for (int i = 0; i < kCount; ++i) {
        asio::co_spawn(io_, increment(client, results[i]), [&](std::exception_ptr) {
            if (--left == 0) io_.stop();
        });
    }
    io_.run();
    // One thread: the commands were issued in spawn order, so each reply is its own.
    for (int i = 0; i < kCount; ++i) {
        ASSERT_TRUE(results[i] && *results[i]) << i;
        EXPECT_EQ((*results[i])->integer, i + 1);
    }
    EXPECT_EQ(client.stats().connections_opened, 1u);
}

TEST_F(RedisServerTest, ConcurrentCommandsFromSeveralThreads) {
    RedisClient client(io_.get_executor(), options_for(server_.url()));
    constexpr int kCount = 1000;
    std::vector<std::optional<Result>> results(kCount);
    run_concurrently(
        io_, kCount, [&](int i) { return increment(client, results[i]); }, 2);
    std::vector<std::int64_t> values;
    for (auto& result : results) {
        ASSERT_TRUE(result && *result);
        values.push_back((*result)->integer);
    }
    std::sort(values.begin(), values.end());
    for (int i = 0; i < kCount; ++i) EXPECT_EQ(values[i], i + 1);
    EXPECT_EQ(client.stats().connections_opened, 1u);
}

TEST_F(RedisServerTest, AuthWithRequirepassAndAclUsers) {
    RedisClient admin(io_.get_executor(), options_for(server_.url()));
    ASSERT_EQ(text_of(admin, {"CONFIG", "SET", "requirepass", "pa ss@w/rd"}), "OK");
    ASSERT_EQ(text_of(admin, {"ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "&*", "+@all"}),
              "OK");

    RedisClient anonymous(io_.get_executor(), options_for(server_.url()));
    auto refused = call(anonymous, {"PING"});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind, RedisError::ServerError);
    EXPECT_TRUE(refused.error().message.starts_with("NOAUTH")) << refused.error().message;

    RedisClient with_password(io_.get_executor(), options_for(server_.url(":pa%20ss%40w%2Frd@")));
    EXPECT_EQ(text_of(with_password, {"PING"}), "PONG");

    RedisClient alice(io_.get_executor(), options_for(server_.url("alice:alice-pw@")));
    EXPECT_EQ(text_of(alice, {"ACL", "WHOAMI"}), "alice");

    RedisClient wrong(io_.get_executor(), options_for(server_.url(":Wr0ngSecret@")));
    auto denied = call(wrong, {"PING"});
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.error().kind, RedisError::Unavailable);
    EXPECT_NE(denied.error().message.find("WRONGPASS"), std::string::npos)
        << denied.error().message;
    EXPECT_EQ(denied.error().message.find("Wr0ngSecret"), std::string::npos);
}

TEST_F(RedisServerTest, SelectsTheDatabaseOfTheUrl) {
    RedisClient db3(io_.get_executor(), options_for(server_.url("", "/3")));
    RedisClient db0(io_.get_executor(), options_for(server_.url()));
    RedisClient db3_again(io_.get_executor(), options_for(server_.url("", "/3")));
    ASSERT_EQ(text_of(db3, {"SET", "where", "three"}), "OK");
    auto in_db0 = call(db0, {"GET", "where"});
    ASSERT_TRUE(in_db0);
    EXPECT_TRUE(in_db0->is_nil());
    EXPECT_EQ(text_of(db3_again, {"GET", "where"}), "three");
}

TEST_F(RedisServerTest, StalledServerTimesOutAndTheNextCommandReconnects) {
    auto fast_options = options_for(server_.url());
    fast_options.command_timeout = 200ms;
    RedisClient fast(io_.get_executor(), fast_options);
    RedisClient slow(io_.get_executor(), options_for(server_.url()));
    ASSERT_EQ(text_of(fast, {"PING"}), "PONG");
    ASSERT_EQ(text_of(slow, {"PING"}), "PONG");

    std::optional<Result> sleep_reply, timed_out, after;
    Clock::duration took{};
    const Argv ping{"PING"};
    const Argv debug_sleep{"DEBUG", "SLEEP", "0.8"};
    run(io_, [&]() -> asio::awaitable<void> {
        asio::steady_timer slept(co_await asio::this_coro::executor, Clock::time_point::max());
        asio::co_spawn(io_, send(slow, debug_sleep, sleep_reply),
                       [&](std::exception_ptr) { slept.cancel(); });
        co_await sleep_for(50ms);  // the server is asleep now
        auto started = Clock::now();
        co_await send(fast, ping, timed_out);
        took = Clock::now() - started;
        if (!sleep_reply) co_await slept.async_wait(asio::as_tuple(asio::use_awaitable));
        co_await sleep_for(30ms);  // past the 20 ms backoff
        co_await send(fast, ping, after);
    }());
    ASSERT_TRUE(timed_out);
    ASSERT_FALSE(*timed_out);
    EXPECT_EQ(timed_out->error().kind, RedisError::Timeout);
    EXPECT_GE(took, 190ms);
    EXPECT_LT(took, 600ms);
    ASSERT_TRUE(sleep_reply && *sleep_reply) << (*sleep_reply).error().message;
    ASSERT_TRUE(after && *after) << (*after).error().message;
    EXPECT_EQ((*after)->text, "PONG");
    EXPECT_EQ(fast.stats().connections_opened, 2u);
}

TEST_F(RedisServerTest, KilledServerFailsFastAndARestartedOneIsUsedAgain) {
    auto options = options_for(server_.url());
    options.command_timeout = 5000ms;
    options.reconnect_backoff_min = 50ms;
    options.reconnect_backoff_max = 200ms;
    RedisClient client(io_.get_executor(), options);
    ASSERT_EQ(text_of(client, {"PING"}), "PONG");

    std::optional<Result> in_flight, down;
    Clock::duration in_flight_took{}, down_took{};
    const Argv ping{"PING"};
    const Argv debug_sleep{"DEBUG", "SLEEP", "3"};
    run(io_, [&]() -> asio::awaitable<void> {
        asio::steady_timer done(co_await asio::this_coro::executor, Clock::time_point::max());
        asio::co_spawn(io_, send(client, debug_sleep, in_flight),
                       [&](std::exception_ptr) { done.cancel(); });
        co_await sleep_for(50ms);
        server_.kill();
        auto killed = Clock::now();
        if (!in_flight) co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
        in_flight_took = Clock::now() - killed;
        auto started = Clock::now();
        co_await send(client, ping, down);
        down_took = Clock::now() - started;
    }());
    ASSERT_TRUE(in_flight);
    ASSERT_FALSE(*in_flight);
    EXPECT_EQ(in_flight->error().kind, RedisError::Unavailable) << in_flight->error().message;
    EXPECT_LT(in_flight_took, 500ms);
    ASSERT_TRUE(down);
    ASSERT_FALSE(*down);
    EXPECT_EQ(down->error().kind, RedisError::Unavailable);
    EXPECT_LT(down_took, 100ms);

    ASSERT_TRUE(server_.start());
    std::optional<Result> back;
    run(io_, [&]() -> asio::awaitable<void> {
        for (auto deadline = Clock::now() + 3s; Clock::now() < deadline;) {
            co_await send(client, ping, back);
            if (*back) break;
            co_await sleep_for(20ms);
        }
    }());
    ASSERT_TRUE(back && *back) << (*back).error().message;
    EXPECT_EQ((*back)->text, "PONG");
}

std::int64_t command_calls(const std::string& info, const std::string& command) {
    auto at = info.find("cmdstat_" + command + ":calls=");
    if (at == std::string::npos) return 0;
    return std::stoll(info.substr(at + command.size() + 15));
}

TEST_F(RedisServerTest, EvalLoadsTheScriptAgainAfterScriptFlush) {
    RedisClient client(io_.get_executor(), options_for(server_.url()));
    RedisScript script("return ARGV[1] .. ':' .. KEYS[1]");
    auto eval = [&]() {
        std::optional<Result> out;
        run(io_, [&]() -> asio::awaitable<void> {
            Argv keys{"key"};
            Argv args{"arg"};
            out.emplace(co_await client.eval(script, keys, args));
        }());
        return out ? (*out ? (*out)->text : "error: " + out->error().message) : "none";
    };
    EXPECT_EQ(eval(), "arg:key");  // NOSCRIPT, then EVAL
    EXPECT_EQ(eval(), "arg:key");  // EVALSHA
    ASSERT_EQ(text_of(client, {"SCRIPT", "FLUSH"}), "OK");
    EXPECT_EQ(eval(), "arg:key");  // NOSCRIPT, then EVAL
    auto exists = call(client, {"SCRIPT", "EXISTS", script.sha1()});
    ASSERT_TRUE(exists);
    ASSERT_EQ(exists->elements.size(), 1u);
    EXPECT_EQ(exists->elements[0].integer, 1);
    auto info = text_of(client, {"INFO", "commandstats"});
    EXPECT_EQ(command_calls(info, "evalsha"), 3) << info;
    EXPECT_EQ(command_calls(info, "eval"), 2) << info;
}

// ---- RedisRateCounter

TEST_F(RedisServerTest, TwoReplicasTogetherAdmitExactlyTheLimit) {
    RedisClient client_a(io_.get_executor(), options_for(server_.url()));
    RedisClient client_b(io_.get_executor(), options_for(server_.url()));
    RedisRateCounter replica_a(client_a);
    RedisRateCounter replica_b(client_b);
    const WindowLimit limits[] = {{kMinute, 100}};
    auto now = fixed_time();
    constexpr int kHits = 500;
    std::vector<std::optional<Outcome>> outcomes(kHits);
    run_concurrently(
        io_, kHits,
        [&](int i) {
            RateCounter& replica = i % 2 == 0 ? static_cast<RateCounter&>(replica_a) : replica_b;
            return hit(replica, "client-1", limits, now, outcomes[i]);
        },
        2);
    int allowed = 0;
    for (auto& outcome : outcomes) {
        ASSERT_TRUE(outcome && *outcome) << (*outcome).error().message;
        const auto& decision = **outcome;
        EXPECT_EQ(decision.limit, 100);
        EXPECT_FALSE(decision.fell_back);
        if (decision.allowed) {
            ++allowed;
        } else {
            EXPECT_EQ(decision.remaining, 0);
            EXPECT_EQ(decision.retry_after, std::chrono::seconds(50));
        }
    }
    EXPECT_EQ(allowed, 100);
    EXPECT_EQ(text_of(client_a, {"GET", replica_a.counter_key("client-1", kMinute, now)}), "100");
}

TEST_F(RedisServerTest, RedisCounterDecidesLikeTheLocalOne) {
    RedisClient client(io_.get_executor(), options_for(server_.url()));
    RedisRateCounterOptions options;
    options.prefix = "test:rl:";
    RedisRateCounter redis(client, options);
    LocalRateCounter local;
    const WindowLimit limits[] = {{kSecond, 2}, {kMinute, 3}, {kHour, 5}, {kHour, 4}};
    auto t = fixed_time();
    const TimePoint times[] = {t,       t,       t,       t + 1s,  t + 1s,  t + 2s,
                               t + 60s, t + 60s, t + 61s, t + 61s, t + 62s, t + 3600s};
    for (auto now : times) {
        std::optional<Outcome> shared;
        run(io_, hit(redis, "k", limits, now, shared));
        ASSERT_TRUE(shared && *shared) << (*shared).error().message;
        auto expected = local.decide("k", limits, now);
        auto offset = std::chrono::duration_cast<std::chrono::seconds>(now - t).count();
        EXPECT_EQ((*shared)->allowed, expected.allowed) << "at +" << offset << " s";
        EXPECT_EQ((*shared)->limit, expected.limit) << "at +" << offset << " s";
        EXPECT_EQ((*shared)->remaining, expected.remaining) << "at +" << offset << " s";
        EXPECT_EQ((*shared)->reset_after, expected.reset_after) << "at +" << offset << " s";
        EXPECT_EQ((*shared)->retry_after, expected.retry_after) << "at +" << offset << " s";
    }
    // Rejected hits wrote nothing: the minute window holds the 3 admitted hits of its first minute.
    auto minute_key = redis.counter_key("k", kMinute, t);
    EXPECT_TRUE(minute_key.starts_with("test:rl:{k}:60:"));
    EXPECT_EQ(text_of(client, {"GET", minute_key}), "3");
    auto ttl = call(client, {"PTTL", redis.counter_key("k", kHour, t + 3600s)});
    ASSERT_TRUE(ttl);
    EXPECT_GT(ttl->integer, 0);
    EXPECT_LE(ttl->integer, (25min + 50s + 2s) / 1ms);
}

TEST_F(RedisServerTest, FallbackDuringAnOutageAndBack) {
    auto options = options_for(server_.url());
    options.reconnect_backoff_min = 50ms;
    options.reconnect_backoff_max = 100ms;
    RedisClient client(io_.get_executor(), options);
    RedisRateCounter redis(client);
    LocalRateCounter local;
    int outages = 0;
    int recoveries = 0;
    FallbackRateCounter::Observer observer;
    observer.on_outage = [&](const RedisError&) { ++outages; };
    observer.on_recovery = [&] { ++recoveries; };
    FallbackRateCounter counter(redis, local, observer);
    const WindowLimit limits[] = {{kMinute, 1000}};
    auto now = fixed_time();

    auto one = [&]() {
        std::optional<Outcome> out;
        run(io_, hit(counter, "k", limits, now, out));
        EXPECT_TRUE(out && *out);
        return **out;
    };
    EXPECT_FALSE(one().fell_back);
    server_.kill();
    auto started = Clock::now();
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(one().fell_back);
    EXPECT_LT(Clock::now() - started, 500ms);
    EXPECT_EQ(outages, 1);
    EXPECT_TRUE(counter.degraded());

    ASSERT_TRUE(server_.start());
    bool recovered = false;
    for (auto deadline = Clock::now() + 3s; !recovered && Clock::now() < deadline;) {
        recovered = !one().fell_back;
        if (!recovered) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(recovered);
    EXPECT_EQ(recoveries, 1);
    EXPECT_EQ(outages, 1);
    EXPECT_FALSE(counter.degraded());
}

}  // namespace
}  // namespace aether::platform::cache
