// Fixed-window rate-limit counters (Kong's model): in memory, in Redis, and Redis with a fallback.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "platform/cache/redis_client.h"
#include "platform/expected.h"

namespace aether::platform::cache {

// Kong's windows. kMonth and kYear are aligned to the UTC calendar month and year (so a month
// window lasts 28 to 31 days); every other length is aligned to the Unix epoch.
inline constexpr std::chrono::seconds kSecond{1};
inline constexpr std::chrono::seconds kMinute{60};
inline constexpr std::chrono::seconds kHour{3600};
inline constexpr std::chrono::seconds kDay{86400};
inline constexpr std::chrono::seconds kMonth =
    std::chrono::duration_cast<std::chrono::seconds>(std::chrono::months(1));
inline constexpr std::chrono::seconds kYear =
    std::chrono::duration_cast<std::chrono::seconds>(std::chrono::years(1));

// `window` >= 1 s (shorter counts as 1 s); `limit` >= 0 (0 rejects everything).
struct WindowLimit {
    std::chrono::seconds window;
    std::int64_t limit;
};

struct Window {
    std::chrono::sys_seconds start;
    std::chrono::sys_seconds end;  // exclusive
};

// The window of this length that contains `now`.
Window window_at(std::chrono::seconds length, std::chrono::system_clock::time_point now);

// With several windows, limit/remaining/reset_after describe the one that decides: when admitted
// the most constraining window (least remaining; on a tie the one that resets last), when
// rejected the rejecting window that resets last. Without any window: admitted, limit and
// remaining = INT64_MAX.
struct RateDecision {
    bool allowed = true;
    std::int64_t limit = 0;
    std::int64_t remaining = 0;           // after this request
    std::chrono::seconds reset_after{0};  // until the deciding window ends, rounded up
    std::chrono::seconds retry_after{0};  // 0 when allowed
    bool fell_back = false;               // decided by the local counter: Redis failed
};

class RateCounter {
  public:
    virtual ~RateCounter() = default;

    // Counts one request for `key` against every window: admitted only when each window has
    // budget left, and then counted in all of them; a rejected request is counted in none, so it
    // never spends another window's budget. `key` and `limits` must stay valid until the
    // returned awaitable completes.
    virtual boost::asio::awaitable<Expected<RateDecision, RedisError>> hit(
        std::string_view key, std::span<const WindowLimit> limits,
        std::chrono::system_clock::time_point now) = 0;
};

struct LocalRateCounterOptions {
    // Keys held at most (over all shards). When a shard is full of keys whose windows are still
    // open, a new key is admitted without being counted and overflows() goes up: under a flood of
    // distinct keys the process keeps its memory bound and fails open rather than rejecting
    // well-behaved clients it cannot track.
    std::size_t max_keys = 100000;
    std::size_t shards = 16;
};

// In memory, for one process. Thread-safe: one short mutex-held section per hit on the key's
// shard, no I/O under it. Keys whose windows have all ended are evicted when a shard needs room
// for a new key, so max_keys bounds the memory.
class LocalRateCounter final : public RateCounter {
  public:
    explicit LocalRateCounter(LocalRateCounterOptions options = {});
    ~LocalRateCounter() override;
    LocalRateCounter(const LocalRateCounter&) = delete;
    LocalRateCounter& operator=(const LocalRateCounter&) = delete;

    // Never fails.
    boost::asio::awaitable<Expected<RateDecision, RedisError>> hit(
        std::string_view key, std::span<const WindowLimit> limits,
        std::chrono::system_clock::time_point now) override;

    // hit() without the coroutine.
    RateDecision decide(std::string_view key, std::span<const WindowLimit> limits,
                        std::chrono::system_clock::time_point now);

    std::size_t size() const;  // keys held
    std::uint64_t overflows() const;

  private:
    struct Shard;
    Shard& shard_for(std::size_t hash);

    std::size_t per_shard_;
    std::vector<std::unique_ptr<Shard>> shards_;
    std::atomic<std::uint64_t> overflows_{0};
};

struct RedisRateCounterOptions {
    std::string prefix = "aether:rl:";
};

// Shared by every gateway replica: one Lua script per hit reads all windows' counters and, only
// if every one is under its limit, increments them all, so N replicas together admit exactly the
// limit. Counter keys carry the window start and expire shortly after the window ends.
class RedisRateCounter final : public RateCounter {
  public:
    // `client` must outlive the counter.
    explicit RedisRateCounter(RedisClient& client, RedisRateCounterOptions options = {});

    // Fails with the client's error (Unavailable, Timeout, QueueFull, ...), or Protocol when the
    // script's reply has an unexpected shape.
    boost::asio::awaitable<Expected<RateDecision, RedisError>> hit(
        std::string_view key, std::span<const WindowLimit> limits,
        std::chrono::system_clock::time_point now) override;

    // PREFIX{KEY}:LENGTH:START (seconds): the hash tag keeps one key's windows in one cluster
    // slot, as a script's keys must be.
    std::string counter_key(std::string_view key, std::chrono::seconds length,
                            std::chrono::system_clock::time_point now) const;

  private:
    RedisClient& client_;
    std::string prefix_;
    std::shared_ptr<const RedisScript> script_;
};

// The primary counter (Redis) while it answers; the local one for any hit it fails, with
// fell_back set in the decision. Never fails.
class FallbackRateCounter final : public RateCounter {
  public:
    // Called once when the primary starts failing (with its error) and once when it answers
    // again, so the gateway can log an outage once; from the thread of the hit that noticed, with
    // no lock held. Either may be empty.
    struct Observer {
        std::function<void(const RedisError&)> on_outage;
        std::function<void()> on_recovery;
    };

    // Both counters must outlive this one.
    FallbackRateCounter(RateCounter& primary, LocalRateCounter& local, Observer observer = {});

    boost::asio::awaitable<Expected<RateDecision, RedisError>> hit(
        std::string_view key, std::span<const WindowLimit> limits,
        std::chrono::system_clock::time_point now) override;

    bool degraded() const { return degraded_.load(std::memory_order_relaxed); }
    // Hits decided by the local counter so far.
    std::uint64_t fallbacks() const { return fallbacks_.load(std::memory_order_relaxed); }

  private:
    RateCounter& primary_;
    LocalRateCounter& local_;
    Observer observer_;
    std::atomic<bool> degraded_{false};
    std::atomic<std::uint64_t> fallbacks_{0};
};

}  // namespace aether::platform::cache
