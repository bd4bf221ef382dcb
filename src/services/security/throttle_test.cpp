// Unit tests for the login throttle: growing delays, blocking, windows and the memory bound.
#include "services/security/throttle.h"

#include <gtest/gtest.h>

namespace aether::services::security {
namespace {

using namespace std::chrono_literals;
using Clock = LoginThrottle::Clock;

const Clock::time_point kStart = Clock::time_point{} + 10'000h;

void fail_times(LoginThrottle& throttle, const std::string& account, const std::string& address,
                int times, Clock::time_point at) {
    for (int i = 0; i < times; ++i) throttle.record_failure(account, address, at);
}

TEST(LoginThrottleTest, NoFailuresMeansNoDelay) {
    LoginThrottle throttle(ThrottleSettings{});
    auto decision = throttle.check("ada@example.com", "10.0.0.1", kStart);
    EXPECT_FALSE(decision.blocked);
    EXPECT_EQ(decision.retry_after_seconds, 0);
    EXPECT_EQ(decision.delay, 0ms);
}

TEST(LoginThrottleTest, DelaysDoubleAfterTheFreeFailuresAndStopAtTheCap) {
    ThrottleSettings settings;
    settings.account_limit = 100;
    settings.address_limit = 100;
    LoginThrottle throttle(settings);
    std::vector<std::chrono::milliseconds> delays;
    for (int failures = 0; failures <= 30; ++failures) {
        auto decision = throttle.check("acct", "addr", kStart + 1s);
        EXPECT_FALSE(decision.blocked);
        delays.push_back(decision.delay);
        throttle.record_failure("acct", "addr", kStart);
    }
    EXPECT_EQ(delays[0], 0ms);
    EXPECT_EQ(delays[1], 0ms);
    EXPECT_EQ(delays[2], 0ms);
    EXPECT_EQ(delays[3], 250ms);
    EXPECT_EQ(delays[4], 500ms);
    EXPECT_EQ(delays[5], 1000ms);
    EXPECT_EQ(delays[6], 2000ms);
    EXPECT_EQ(delays[7], 4000ms);
    EXPECT_EQ(delays[8], 4000ms);
    EXPECT_EQ(delays[30], 4000ms);
}

TEST(LoginThrottleTest, AccountLimitBlocksWithRetryAfterUntilTheOldestFailureExpires) {
    LoginThrottle throttle(ThrottleSettings{});  // 5 per account in 900 s
    fail_times(throttle, "acct", "addr", 4, kStart);
    EXPECT_FALSE(throttle.check("acct", "addr", kStart).blocked);
    throttle.record_failure("acct", "addr", kStart + 100s);

    auto blocked = throttle.check("acct", "addr", kStart + 100s);
    EXPECT_TRUE(blocked.blocked);
    EXPECT_EQ(blocked.retry_after_seconds, 800);
    EXPECT_EQ(blocked.delay, 0ms);
}

TEST(LoginThrottleTest, BlockedAccountStaysBlockedFromAnotherAddress) {
    LoginThrottle throttle(ThrottleSettings{});
    for (int i = 0; i < 5; ++i)
        throttle.record_failure("acct", "10.0.0." + std::to_string(i), kStart);
    auto decision = throttle.check("acct", "192.168.1.1", kStart + 1s);
    EXPECT_TRUE(decision.blocked);
    EXPECT_EQ(decision.retry_after_seconds, 899);
}

TEST(LoginThrottleTest, RetryAfterIsAtLeastOneSecond) {
    LoginThrottle throttle(ThrottleSettings{});
    fail_times(throttle, "acct", "addr", 5, kStart);
    auto almost = throttle.check("acct", "addr", kStart + 900s - 1ms);
    EXPECT_TRUE(almost.blocked);
    EXPECT_EQ(almost.retry_after_seconds, 1);
}

TEST(LoginThrottleTest, FailuresExpireAfterTheWindow) {
    LoginThrottle throttle(ThrottleSettings{});
    fail_times(throttle, "acct", "addr", 5, kStart);
    auto later = throttle.check("acct", "addr", kStart + 900s);
    EXPECT_FALSE(later.blocked);
    EXPECT_EQ(later.delay, 0ms);
}

TEST(LoginThrottleTest, TheWindowSlidesOneFailureAtATime) {
    LoginThrottle throttle(ThrottleSettings{});
    for (int i = 0; i < 5; ++i) throttle.record_failure("acct", "addr", kStart + i * 1s);
    EXPECT_TRUE(throttle.check("acct", "addr", kStart + 899s).blocked);
    // The first failure has left the window: four remain, two over the free allowance.
    auto decision = throttle.check("acct", "addr", kStart + 900s);
    EXPECT_FALSE(decision.blocked);
    EXPECT_EQ(decision.delay, 500ms);
}

TEST(LoginThrottleTest, AddressLimitIsIndependentOfAccounts) {
    ThrottleSettings settings;
    settings.address_limit = 3;
    LoginThrottle throttle(settings);
    throttle.record_failure("a", "198.51.100.7", kStart);
    throttle.record_failure("b", "198.51.100.7", kStart);
    throttle.record_failure("c", "198.51.100.7", kStart);

    auto fresh_account = throttle.check("never-failed", "198.51.100.7", kStart + 10s);
    EXPECT_TRUE(fresh_account.blocked);
    EXPECT_EQ(fresh_account.retry_after_seconds, 890);

    // The accounts themselves are fine from elsewhere.
    auto elsewhere = throttle.check("a", "203.0.113.9", kStart + 10s);
    EXPECT_FALSE(elsewhere.blocked);
    EXPECT_EQ(elsewhere.delay, 0ms);
}

TEST(LoginThrottleTest, RetryAfterIsTheLaterOfAccountAndAddress) {
    ThrottleSettings settings;
    settings.account_limit = 2;
    settings.address_limit = 2;
    LoginThrottle throttle(settings);
    throttle.record_failure("acct", "other", kStart);
    throttle.record_failure("acct", "other", kStart);
    throttle.record_failure("x", "addr", kStart + 300s);
    throttle.record_failure("y", "addr", kStart + 300s);
    auto decision = throttle.check("acct", "addr", kStart + 400s);
    EXPECT_TRUE(decision.blocked);
    EXPECT_EQ(decision.retry_after_seconds, 800);
}

TEST(LoginThrottleTest, SuccessResetsTheAccountButNotTheAddress) {
    LoginThrottle throttle(ThrottleSettings{});
    fail_times(throttle, "acct", "addr", 5, kStart);
    ASSERT_TRUE(throttle.check("acct", "addr", kStart).blocked);
    throttle.record_success("acct");

    auto from_elsewhere = throttle.check("acct", "other", kStart);
    EXPECT_FALSE(from_elsewhere.blocked);
    EXPECT_EQ(from_elsewhere.delay, 0ms);
    // The address keeps its five failures: not blocked (limit 20) but still slowed down.
    auto same_address = throttle.check("acct", "addr", kStart);
    EXPECT_FALSE(same_address.blocked);
    EXPECT_EQ(same_address.delay, 1000ms);
}

TEST(LoginThrottleTest, TrackedKeysAreBoundedWithoutEvictingLiveOnes) {
    ThrottleSettings settings;
    settings.account_limit = 1;
    settings.address_limit = 1000;
    settings.max_tracked_keys = 2;
    LoginThrottle throttle(settings);
    throttle.record_failure("a", "addr-a", kStart);
    throttle.record_failure("b", "addr-b", kStart + 1s);
    // The table is full of live keys: flooding it with new names must not wipe a victim's count,
    // so the newcomer goes uncounted instead.
    throttle.record_failure("c", "addr-c", kStart + 2s);
    EXPECT_TRUE(throttle.check("a", "x", kStart + 3s).blocked);
    EXPECT_TRUE(throttle.check("b", "x", kStart + 3s).blocked);
    EXPECT_FALSE(throttle.check("c", "x", kStart + 3s).blocked);
}

TEST(LoginThrottleTest, ExpiredKeysMakeRoomWithoutEvictingLiveOnes) {
    ThrottleSettings settings;
    settings.account_limit = 1;
    settings.address_limit = 1000;
    settings.max_tracked_keys = 3;
    settings.window = 60s;
    LoginThrottle throttle(settings);
    throttle.record_failure("old1", "a1", kStart);
    throttle.record_failure("old2", "a2", kStart);
    throttle.record_failure("live", "a3", kStart + 50s);
    // Both old keys are expired at +70 s; both go, so "live" and the two new keys all fit.
    throttle.record_failure("new1", "a4", kStart + 70s);
    throttle.record_failure("new2", "a5", kStart + 71s);
    EXPECT_TRUE(throttle.check("live", "x", kStart + 72s).blocked);
    EXPECT_TRUE(throttle.check("new1", "x", kStart + 72s).blocked);
    EXPECT_TRUE(throttle.check("new2", "x", kStart + 72s).blocked);
}

TEST(LoginThrottleTest, RepeatedFailuresOfOneKeyDoNotEvictOthers) {
    ThrottleSettings settings;
    settings.account_limit = 1;
    settings.address_limit = 1000;
    settings.max_tracked_keys = 2;
    LoginThrottle throttle(settings);
    throttle.record_failure("a", "addr", kStart);
    throttle.record_failure("b", "addr", kStart + 1s);
    for (int i = 0; i < 10; ++i) throttle.record_failure("b", "addr", kStart + 2s);
    EXPECT_TRUE(throttle.check("a", "x", kStart + 3s).blocked);
    EXPECT_TRUE(throttle.check("b", "x", kStart + 3s).blocked);
}

}  // namespace
}  // namespace aether::services::security

namespace aether::services::security {
namespace {

using std::chrono_literals::operator""s;

TEST(LoginThrottleAttempts, ParallelAttemptsWaitRatherThanOvershootTheLimit) {
    ThrottleSettings settings;
    settings.account_limit = 3;
    settings.address_limit = 100;
    settings.free_failures = 100;
    LoginThrottle throttle(settings);
    auto now = LoginThrottle::Clock::time_point{} + 1000s;
    // Ten attempts begin before any has finished: three go ahead, the rest are told to wait.
    int admitted = 0, waiting = 0;
    for (int i = 0; i < 10; ++i) {
        auto decision = throttle.begin_attempt("acct", "addr", now);
        EXPECT_FALSE(decision.blocked);
        if (decision.wait) {
            ++waiting;
        } else {
            ++admitted;
        }
    }
    EXPECT_EQ(admitted, 3);
    EXPECT_EQ(waiting, 7);
    // All three fail: the account is now blocked, and no waiting guess ever ran.
    for (int i = 0; i < 3; ++i) throttle.end_attempt("acct", "addr", false, now);
    EXPECT_TRUE(throttle.begin_attempt("acct", "addr", now).blocked);
}

TEST(LoginThrottleAttempts, ParallelGenuineSignInsAreQueuedNeverRefused) {
    ThrottleSettings settings;
    settings.account_limit = 2;
    settings.free_failures = 100;
    LoginThrottle throttle(settings);
    auto now = LoginThrottle::Clock::time_point{} + 1000s;
    ASSERT_FALSE(throttle.begin_attempt("acct", "addr", now).wait);
    ASSERT_FALSE(throttle.begin_attempt("acct", "addr", now).wait);
    EXPECT_TRUE(throttle.begin_attempt("acct", "addr", now).wait);
    throttle.end_attempt("acct", "addr", true, now);
    auto next = throttle.begin_attempt("acct", "addr", now);
    EXPECT_FALSE(next.wait);
    EXPECT_FALSE(next.blocked);
}

TEST(LoginThrottleAttempts, OnlyTheFirstBlockedAttemptIsReported) {
    ThrottleSettings settings;
    settings.account_limit = 2;
    settings.free_failures = 100;
    LoginThrottle throttle(settings);
    auto now = LoginThrottle::Clock::time_point{} + 1000s;
    for (int i = 0; i < 2; ++i) {
        ASSERT_FALSE(throttle.begin_attempt("acct", "addr", now).wait);
        throttle.end_attempt("acct", "addr", false, now);
    }
    auto first = throttle.begin_attempt("acct", "addr", now);
    auto second = throttle.begin_attempt("acct", "addr", now);
    EXPECT_TRUE(first.blocked);
    EXPECT_TRUE(first.first_block);
    EXPECT_TRUE(second.blocked);
    EXPECT_FALSE(second.first_block);
}

TEST(LoginThrottleAttempts, SuccessfulSignInsNeverAddUpOnAnAddress) {
    ThrottleSettings settings;
    settings.account_limit = 100;
    settings.address_limit = 2;
    settings.free_failures = 100;
    LoginThrottle throttle(settings);
    auto now = LoginThrottle::Clock::time_point{} + 1000s;
    // Many sign-ins from one address (an office behind NAT) never add up to a block.
    for (int i = 0; i < 10; ++i) {
        auto account = "user" + std::to_string(i);
        auto decision = throttle.begin_attempt(account, "office", now);
        ASSERT_FALSE(decision.blocked || decision.wait) << i;
        throttle.end_attempt(account, "office", true, now);
    }
}

}  // namespace
}  // namespace aether::services::security
