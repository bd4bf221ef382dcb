// Tests for window alignment, the decision rules, the local counter and the fallback (no Redis).
#include "platform/cache/rate_counter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <thread>

namespace aether::platform::cache {
namespace {

namespace asio = boost::asio;
using namespace std::chrono;
using namespace std::chrono_literals;
using TimePoint = system_clock::time_point;
using Outcome = Expected<RateDecision, RedisError>;

TimePoint at(int y, unsigned m, unsigned d, hours h = 0h, minutes min = 0min, seconds s = 0s,
             milliseconds ms = 0ms) {
    return sys_days(year(y) / month(m) / day(d)) + h + min + s + ms;
}

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

// ---- windows

TEST(WindowAt, AlignsFixedWindowsToTheEpoch) {
    auto now = at(2024, 2, 15, 12h, 34min, 56s, 300ms);
    auto second = window_at(kSecond, now);
    EXPECT_EQ(second.start, at(2024, 2, 15, 12h, 34min, 56s));
    EXPECT_EQ(second.end, at(2024, 2, 15, 12h, 34min, 57s));
    auto minute = window_at(kMinute, now);
    EXPECT_EQ(minute.start, at(2024, 2, 15, 12h, 34min));
    EXPECT_EQ(minute.end, at(2024, 2, 15, 12h, 35min));
    auto hour = window_at(kHour, now);
    EXPECT_EQ(hour.start, at(2024, 2, 15, 12h));
    EXPECT_EQ(hour.end, at(2024, 2, 15, 13h));
    auto day_window = window_at(kDay, now);
    EXPECT_EQ(day_window.start, at(2024, 2, 15));
    EXPECT_EQ(day_window.end, at(2024, 2, 16));
    auto ten = window_at(10s, now);
    EXPECT_EQ(ten.start, at(2024, 2, 15, 12h, 34min, 50s));
    EXPECT_EQ(ten.end, at(2024, 2, 15, 12h, 35min));
    // A window boundary belongs to the window it starts.
    EXPECT_EQ(window_at(kMinute, at(2024, 2, 15, 12h, 35min)).start, at(2024, 2, 15, 12h, 35min));
    // Shorter than a second counts as a second.
    EXPECT_EQ(window_at(0s, now).end, second.end);
    // Before the epoch the window still starts at or before `now`.
    auto early = window_at(kMinute, at(1969, 12, 31, 23h, 59min, 59s, 500ms));
    EXPECT_EQ(early.start, at(1969, 12, 31, 23h, 59min));
    EXPECT_EQ(early.end, at(1970, 1, 1));
}

TEST(WindowAt, MonthsAndYearsFollowTheCalendar) {
    auto leap = window_at(kMonth, at(2024, 2, 15, 12h));
    EXPECT_EQ(leap.start, at(2024, 2, 1));
    EXPECT_EQ(leap.end, at(2024, 3, 1));
    auto december = window_at(kMonth, at(2023, 12, 31, 23h, 59min, 59s));
    EXPECT_EQ(december.start, at(2023, 12, 1));
    EXPECT_EQ(december.end, at(2024, 1, 1));
    auto year_window = window_at(kYear, at(2024, 7, 4));
    EXPECT_EQ(year_window.start, at(2024, 1, 1));
    EXPECT_EQ(year_window.end, at(2025, 1, 1));
}

// ---- LocalRateCounter decisions

TEST(LocalRateCounter, OneWindow) {
    LocalRateCounter counter;
    const WindowLimit minute[] = {{kMinute, 3}};
    auto t = at(2024, 2, 15, 12h, 34min, 10s, 300ms);
    for (std::int64_t remaining : {2, 1, 0}) {
        auto d = counter.decide("k", minute, t);
        EXPECT_TRUE(d.allowed);
        EXPECT_EQ(d.limit, 3);
        EXPECT_EQ(d.remaining, remaining);
        EXPECT_EQ(d.reset_after, 50s);  // 49.7 s, rounded up
        EXPECT_EQ(d.retry_after, 0s);
        EXPECT_FALSE(d.fell_back);
    }
    auto rejected = counter.decide("k", minute, t);
    EXPECT_FALSE(rejected.allowed);
    EXPECT_EQ(rejected.limit, 3);
    EXPECT_EQ(rejected.remaining, 0);
    EXPECT_EQ(rejected.reset_after, 50s);
    EXPECT_EQ(rejected.retry_after, 50s);

    auto late = counter.decide("k", minute, at(2024, 2, 15, 12h, 34min, 59s, 300ms));
    EXPECT_FALSE(late.allowed);
    EXPECT_EQ(late.retry_after, 1s);

    auto other = counter.decide("other", minute, t);
    EXPECT_TRUE(other.allowed);
    EXPECT_EQ(other.remaining, 2);

    auto next = counter.decide("k", minute, at(2024, 2, 15, 12h, 35min));
    EXPECT_TRUE(next.allowed);
    EXPECT_EQ(next.remaining, 2);
    EXPECT_EQ(next.reset_after, 60s);
}

TEST(LocalRateCounter, ARejectedHitConsumesNoWindow) {
    LocalRateCounter counter;
    const WindowLimit both[] = {{kSecond, 2}, {kMinute, 3}};
    const WindowLimit second_only[] = {{kSecond, 2}};
    auto t = at(2024, 2, 15, 12h, 34min, 10s);

    auto first = counter.decide("k", both, t);
    EXPECT_TRUE(first.allowed);
    EXPECT_EQ(first.limit, 2);  // the second window has less left
    EXPECT_EQ(first.remaining, 1);
    EXPECT_EQ(first.reset_after, 1s);
    EXPECT_TRUE(counter.decide("k", both, t).allowed);

    auto by_second = counter.decide("k", both, t);
    EXPECT_FALSE(by_second.allowed);
    EXPECT_EQ(by_second.limit, 2);
    EXPECT_EQ(by_second.retry_after, 1s);

    // Had the rejection counted in the minute window, this would be its 4th hit.
    auto third = counter.decide("k", both, t + 1s);
    EXPECT_TRUE(third.allowed);
    EXPECT_EQ(third.limit, 3);
    EXPECT_EQ(third.remaining, 0);
    EXPECT_EQ(third.reset_after, 49s);

    auto by_minute = counter.decide("k", both, t + 1s);
    EXPECT_FALSE(by_minute.allowed);
    EXPECT_EQ(by_minute.limit, 3);
    EXPECT_EQ(by_minute.remaining, 0);
    EXPECT_EQ(by_minute.retry_after, 49s);

    // Nor did the minute's rejection spend the second window: one hit of two is left there.
    auto last = counter.decide("k", second_only, t + 1s);
    EXPECT_TRUE(last.allowed);
    EXPECT_EQ(last.remaining, 0);
}

TEST(LocalRateCounter, RejectedBySeveralWindowsRetriesWhenTheLastOneResets) {
    LocalRateCounter counter;
    const WindowLimit limits[] = {{kSecond, 1}, {kMinute, 1}};
    auto t = at(2024, 2, 15, 12h, 34min, 10s);
    EXPECT_TRUE(counter.decide("k", limits, t).allowed);
    auto rejected = counter.decide("k", limits, t);
    EXPECT_FALSE(rejected.allowed);
    EXPECT_EQ(rejected.limit, 1);
    EXPECT_EQ(rejected.reset_after, 50s);
    EXPECT_EQ(rejected.retry_after, 50s);
}

TEST(LocalRateCounter, TiesGoToTheWindowThatResetsLast) {
    LocalRateCounter counter;
    const WindowLimit limits[] = {{kMinute, 5}, {kHour, 5}};
    auto d = counter.decide("k", limits, at(2024, 2, 15, 12h, 34min, 10s));
    EXPECT_EQ(d.remaining, 4);
    EXPECT_EQ(d.reset_after, 25min + 50s);
}

TEST(LocalRateCounter, ZeroLimitAndNoLimits) {
    LocalRateCounter counter;
    const WindowLimit closed[] = {{kMinute, 0}};
    auto t = at(2024, 2, 15, 12h, 34min, 10s);
    auto rejected = counter.decide("k", closed, t);
    EXPECT_FALSE(rejected.allowed);
    EXPECT_EQ(rejected.retry_after, 50s);
    auto unlimited = counter.decide("k", {}, t);
    EXPECT_TRUE(unlimited.allowed);
    EXPECT_EQ(unlimited.limit, std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(unlimited.remaining, std::numeric_limits<std::int64_t>::max());
}

TEST(LocalRateCounter, TwoLimitsOnOneWindowCountOnce) {
    LocalRateCounter counter;
    const WindowLimit limits[] = {{kMinute, 3}, {kMinute, 2}};
    auto t = at(2024, 2, 15, 12h, 34min, 10s);
    EXPECT_EQ(counter.decide("k", limits, t).remaining, 1);
    auto second = counter.decide("k", limits, t);
    EXPECT_TRUE(second.allowed);
    EXPECT_EQ(second.limit, 2);
    EXPECT_EQ(second.remaining, 0);
    EXPECT_FALSE(counter.decide("k", limits, t).allowed);
}

TEST(LocalRateCounter, AnOlderNowCountsInTheNewerWindow) {
    LocalRateCounter counter;
    const WindowLimit limits[] = {{kSecond, 2}};
    auto t = at(2024, 2, 15, 12h, 34min, 10s, 999ms);
    EXPECT_EQ(counter.decide("k", limits, t + 1ms).remaining, 1);
    EXPECT_EQ(counter.decide("k", limits, t).remaining, 0);
    EXPECT_FALSE(counter.decide("k", limits, t + 1ms).allowed);
}

TEST(LocalRateCounter, MemoryIsBoundedAndAFullTableFailsOpen) {
    LocalRateCounter counter({.max_keys = 4, .shards = 1});
    const WindowLimit limits[] = {{kSecond, 1}};
    auto t = at(2024, 2, 15, 12h);
    for (int i = 0; i < 4; ++i)
        EXPECT_TRUE(counter.decide("k" + std::to_string(i), limits, t).allowed);
    EXPECT_EQ(counter.size(), 4u);

    // A fifth live key does not fit: admitted, not remembered, counted as an overflow.
    EXPECT_TRUE(counter.decide("k4", limits, t).allowed);
    EXPECT_TRUE(counter.decide("k4", limits, t).allowed);
    EXPECT_EQ(counter.overflows(), 2u);
    EXPECT_EQ(counter.size(), 4u);
    EXPECT_FALSE(counter.decide("k0", limits, t).allowed);  // tracked keys still limited

    // Once their windows ended the old keys make room.
    EXPECT_TRUE(counter.decide("k5", limits, t + 1s).allowed);
    EXPECT_EQ(counter.size(), 1u);
    EXPECT_EQ(counter.overflows(), 2u);
}

TEST(LocalRateCounter, ManyKeysOverTimeStayUnderTheCap) {
    LocalRateCounter counter({.max_keys = 256, .shards = 4});
    const WindowLimit limits[] = {{kSecond, 10}, {kMinute, 100}};
    auto t = at(2024, 2, 15, 12h);
    for (int i = 0; i < 20000; ++i) {
        (void)counter.decide("key-" + std::to_string(i), limits, t + seconds(i / 50));
        ASSERT_LE(counter.size(), 256u);
    }
    // 50 new keys a second for a minute-long window: older keys must have been evicted.
    EXPECT_GT(counter.overflows(), 0u);
    EXPECT_LT(counter.overflows(), 20000u);
}

TEST(LocalRateCounter, ConcurrentHitsAdmitExactlyTheLimit) {
    LocalRateCounter counter;
    const WindowLimit limits[] = {{kMinute, 1000}, {kHour, 5000}};
    auto t = at(2024, 2, 15, 12h, 0min, 30s);
    std::atomic<int> allowed{0};
    std::vector<std::thread> threads;
    for (int thread = 0; thread < 4; ++thread) {
        threads.emplace_back([&, thread] {
            for (int i = 0; i < 1000; ++i) {
                if (counter.decide("shared", limits, t).allowed) ++allowed;
                (void)counter.decide("own-" + std::to_string(thread), limits, t);
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(allowed.load(), 1000);
    EXPECT_FALSE(counter.decide("shared", limits, t).allowed);
    EXPECT_EQ(counter.decide("own-0", limits, t).allowed, false);
}

TEST(LocalRateCounter, HitIsTheCoroutineForm) {
    asio::io_context io;
    LocalRateCounter counter;
    const WindowLimit limits[] = {{kMinute, 1}};
    std::optional<Outcome> first, second;
    run(io, [&]() -> asio::awaitable<void> {
        auto t = at(2024, 2, 15, 12h);
        first.emplace(co_await counter.hit("k", limits, t));
        second.emplace(co_await counter.hit("k", limits, t));
    }());
    ASSERT_TRUE(first && *first && second && *second);
    EXPECT_TRUE((*first)->allowed);
    EXPECT_FALSE((*second)->allowed);
}

// ---- FallbackRateCounter

class ScriptedCounter final : public RateCounter {
  public:
    asio::awaitable<Outcome> hit(std::string_view, std::span<const WindowLimit>,
                                 TimePoint) override {
        ++calls;
        if (failure) co_return unexpected(*failure);
        RateDecision decision;
        decision.limit = 99;
        decision.remaining = 98;
        co_return decision;
    }
    std::optional<RedisError> failure;
    int calls = 0;
};

TEST(FallbackRateCounter, UsesTheLocalCounterWhileThePrimaryFails) {
    asio::io_context io;
    ScriptedCounter primary;
    LocalRateCounter local;
    int outages = 0;
    int recoveries = 0;
    RedisError seen;
    FallbackRateCounter::Observer observer;
    observer.on_outage = [&](const RedisError& error) {
        ++outages;
        seen = error;
    };
    observer.on_recovery = [&] { ++recoveries; };
    FallbackRateCounter counter(primary, local, observer);
    const WindowLimit limits[] = {{kMinute, 2}};
    auto t = at(2024, 2, 15, 12h);
    std::vector<Outcome> outcomes;
    auto hit = [&]() -> asio::awaitable<void> {
        outcomes.push_back(co_await counter.hit("k", limits, t));
    };

    run(io, hit());
    ASSERT_TRUE(outcomes.back());
    EXPECT_EQ(outcomes.back()->limit, 99);
    EXPECT_FALSE(outcomes.back()->fell_back);
    EXPECT_FALSE(counter.degraded());

    primary.failure = RedisError{RedisError::Timeout, "slow"};
    for (int i = 0; i < 3; ++i) run(io, hit());
    for (std::size_t i = 1; i < 4; ++i) {
        ASSERT_TRUE(outcomes[i]);
        EXPECT_TRUE(outcomes[i]->fell_back);
        EXPECT_EQ(outcomes[i]->limit, 2);
        EXPECT_EQ(outcomes[i]->allowed, i < 3) << i;  // the local counter enforces the limit
    }
    EXPECT_TRUE(counter.degraded());
    EXPECT_EQ(counter.fallbacks(), 3u);
    EXPECT_EQ(outages, 1);
    EXPECT_EQ(seen.kind, RedisError::Timeout);
    EXPECT_EQ(recoveries, 0);

    primary.failure.reset();
    run(io, hit());
    run(io, hit());
    EXPECT_FALSE(outcomes.back()->fell_back);
    EXPECT_FALSE(counter.degraded());
    EXPECT_EQ(recoveries, 1);

    primary.failure = RedisError{RedisError::ServerError, "READONLY You can't write"};
    run(io, hit());
    EXPECT_TRUE(outcomes.back()->fell_back);
    EXPECT_EQ(outages, 2);
    EXPECT_EQ(seen.kind, RedisError::ServerError);
    EXPECT_EQ(primary.calls, 7);
}

TEST(FallbackRateCounter, UnreachableRedisFallsBackFast) {
    asio::io_context io;
    std::uint16_t port = 0;
    {
        asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
        port = probe.local_endpoint().port();
    }
    RedisOptions options;
    options.url = "redis://127.0.0.1:" + std::to_string(port);
    options.command_timeout = 2000ms;
    options.connect_timeout = 2000ms;
    RedisClient client(io.get_executor(), options);
    RedisRateCounter redis(client);
    LocalRateCounter local;
    FallbackRateCounter counter(redis, local);
    const WindowLimit limits[] = {{kMinute, 10}};
    int fell_back = 0;
    int allowed = 0;
    auto started = steady_clock::now();
    run(io, [&]() -> asio::awaitable<void> {
        auto t = at(2024, 2, 15, 12h);
        for (int i = 0; i < 20; ++i) {
            auto outcome = co_await counter.hit("k", limits, t);
            if (outcome && outcome->fell_back) ++fell_back;
            if (outcome && outcome->allowed) ++allowed;
        }
    }());
    EXPECT_LT(steady_clock::now() - started, 1000ms);
    EXPECT_EQ(fell_back, 20);
    EXPECT_EQ(allowed, 10);
    EXPECT_EQ(counter.fallbacks(), 20u);
}

}  // namespace
}  // namespace aether::platform::cache
