// Rate counters: window arithmetic shared by the local table and the Redis script.
#include "platform/cache/rate_counter.h"

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <functional>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "platform/prehashed.h"

namespace aether::platform::cache {

namespace asio = boost::asio;
using std::chrono::system_clock;
using TimePoint = system_clock::time_point;

namespace {

// What one window looked like to one hit, before the hit was counted.
struct Observed {
    std::int64_t count = 0;
    std::chrono::sys_seconds end;
};
using ObservedList = boost::container::small_vector<Observed, 6>;

std::chrono::seconds round_up(TimePoint end, TimePoint now) {
    return std::max(std::chrono::ceil<std::chrono::seconds>(end - now), std::chrono::seconds(0));
}

RateDecision unlimited() {
    RateDecision out;
    out.limit = std::numeric_limits<std::int64_t>::max();
    out.remaining = out.limit;
    return out;
}

bool admits(std::span<const WindowLimit> limits, const ObservedList& observed) {
    for (std::size_t i = 0; i < limits.size(); ++i) {
        if (observed[i].count >= limits[i].limit) return false;
    }
    return true;
}

RateDecision decide_from(std::span<const WindowLimit> limits, const ObservedList& observed,
                         bool allowed, TimePoint now) {
    if (limits.empty()) return unlimited();
    RateDecision out;
    out.allowed = allowed;
    std::size_t chosen = limits.size();
    if (allowed) {
        std::int64_t least = 0;
        for (std::size_t i = 0; i < limits.size(); ++i) {
            std::int64_t remaining =
                std::max<std::int64_t>(0, limits[i].limit - observed[i].count - 1);
            if (chosen == limits.size() || remaining < least ||
                (remaining == least && observed[i].end > observed[chosen].end)) {
                chosen = i;
                least = remaining;
            }
        }
        out.remaining = least;
    } else {
        for (std::size_t i = 0; i < limits.size(); ++i) {
            if (observed[i].count < limits[i].limit) continue;
            if (chosen == limits.size() || observed[i].end > observed[chosen].end) chosen = i;
        }
        out.remaining = 0;
    }
    out.limit = limits[chosen].limit;
    out.reset_after = round_up(observed[chosen].end, now);
    if (!allowed) out.retry_after = std::max(out.reset_after, std::chrono::seconds(1));
    return out;
}

constexpr std::chrono::seconds effective(std::chrono::seconds length) {
    return std::max(length, std::chrono::seconds(1));
}

}  // namespace

Window window_at(std::chrono::seconds length, TimePoint now) {
    using namespace std::chrono;
    length = effective(length);
    if (length == kMonth || length == kYear) {
        year_month_day date{floor<days>(now)};
        if (length == kMonth) {
            auto first = date.year() / date.month() / 1;
            auto next = first + months(1);
            return {sys_days(first), sys_days(next)};
        }
        return {sys_days(date.year() / January / 1),
                sys_days((date.year() + years(1)) / January / 1)};
    }
    auto seconds_now = floor<seconds>(now).time_since_epoch().count();
    auto span = length.count();
    auto offset = seconds_now % span;
    if (offset < 0) offset += span;  // before the epoch
    sys_seconds start{seconds(seconds_now - offset)};
    return {start, start + length};
}

// ---- LocalRateCounter

namespace {

struct Slot {
    std::chrono::seconds length;
    std::chrono::sys_seconds start;
    std::chrono::sys_seconds end;
    std::int64_t count = 0;
};

struct Entry {
    boost::container::small_vector<Slot, 3> slots;
    std::chrono::sys_seconds expiry;  // the latest window end: the entry is dead from then on
};

using KeyHash = PrehashedHash<std::hash<std::string_view>>;

}  // namespace

struct LocalRateCounter::Shard {
    std::mutex mutex;
    std::unordered_map<std::string, Entry, KeyHash, PrehashedEqual> entries;
    // No entry expires before this (a lower bound: entries' expiries only move later), so a full
    // shard with nothing expired is detected without a scan.
    std::chrono::sys_seconds earliest_expiry = std::chrono::sys_seconds::max();

    // Removes dead entries. Called only when the shard is full.
    void evict(std::chrono::sys_seconds now) {
        earliest_expiry = std::chrono::sys_seconds::max();
        for (auto it = entries.begin(); it != entries.end();) {
            if (it->second.expiry <= now) {
                it = entries.erase(it);
            } else {
                earliest_expiry = std::min(earliest_expiry, it->second.expiry);
                ++it;
            }
        }
    }
};

LocalRateCounter::LocalRateCounter(LocalRateCounterOptions options) {
    auto shards = std::max<std::size_t>(1, options.shards);
    per_shard_ = std::max<std::size_t>(1, options.max_keys / shards);
    shards_.reserve(shards);
    for (std::size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

LocalRateCounter::~LocalRateCounter() = default;

LocalRateCounter::Shard& LocalRateCounter::shard_for(std::size_t hash) {
    return *shards_[hash % shards_.size()];
}

RateDecision LocalRateCounter::decide(std::string_view key, std::span<const WindowLimit> limits,
                                      TimePoint now) {
    if (limits.empty()) return unlimited();
    ObservedList observed(limits.size());
    boost::container::small_vector<Window, 6> windows;
    for (const auto& limit : limits) windows.push_back(window_at(limit.window, now));

    // Window bounds are whole seconds, so comparing them with the floored `now` is exact, and
    // keeps the max()/min() sentinels from overflowing a conversion to nanoseconds.
    const auto now_seconds = std::chrono::floor<std::chrono::seconds>(now);
    const Prehashed hashed = KeyHash{}.prehash(key);
    auto& shard = shard_for(hashed.hash);
    bool allowed = false;
    {
        std::lock_guard lock(shard.mutex);
        auto it = shard.entries.find(hashed);
        if (it == shard.entries.end()) {
            if (shard.entries.size() >= per_shard_ && now_seconds >= shard.earliest_expiry) {
                shard.evict(now_seconds);
            }
            if (shard.entries.size() >= per_shard_) {
                // Full of live keys: judged as the first hit of its windows, not remembered.
                overflows_.fetch_add(1, std::memory_order_relaxed);
                for (std::size_t i = 0; i < limits.size(); ++i) observed[i].end = windows[i].end;
                return decide_from(limits, observed, admits(limits, observed), now);
            }
            it = shard.entries.emplace(std::string(key), Entry{}).first;
        }
        auto& entry = it->second;
        entry.slots.erase(std::remove_if(entry.slots.begin(), entry.slots.end(),
                                         [&](const Slot& slot) { return slot.end <= now_seconds; }),
                          entry.slots.end());
        for (std::size_t i = 0; i < limits.size(); ++i) {
            auto length = effective(limits[i].window);
            auto slot = std::find_if(entry.slots.begin(), entry.slots.end(),
                                     [&](const Slot& s) { return s.length == length; });
            if (slot == entry.slots.end()) {
                slot = entry.slots.insert(entry.slots.end(),
                                          Slot{length, windows[i].start, windows[i].end, 0});
            } else if (slot->start < windows[i].start) {
                *slot = Slot{length, windows[i].start, windows[i].end, 0};
            }
            // A `now` older than the stored window (another thread's clock read, a clock step
            // back) counts against the newer window rather than reopening an old one.
            observed[i] = Observed{slot->count, slot->end};
        }
        allowed = admits(limits, observed);
        if (allowed) {
            // Each window once, even if two limits share a length.
            for (auto& slot : entry.slots) {
                if (std::any_of(limits.begin(), limits.end(), [&](const WindowLimit& limit) {
                        return effective(limit.window) == slot.length;
                    })) {
                    ++slot.count;
                }
            }
        }
        entry.expiry = std::chrono::sys_seconds::min();
        for (const auto& slot : entry.slots) entry.expiry = std::max(entry.expiry, slot.end);
        shard.earliest_expiry = std::min(shard.earliest_expiry, entry.expiry);
    }
    return decide_from(limits, observed, allowed, now);
}

asio::awaitable<Expected<RateDecision, RedisError>> LocalRateCounter::hit(
    std::string_view key, std::span<const WindowLimit> limits, TimePoint now) {
    co_return decide(key, limits, now);
}

std::size_t LocalRateCounter::size() const {
    std::size_t total = 0;
    for (const auto& shard : shards_) {
        std::lock_guard lock(shard->mutex);
        total += shard->entries.size();
    }
    return total;
}

std::uint64_t LocalRateCounter::overflows() const {
    return overflows_.load(std::memory_order_relaxed);
}

// ---- RedisRateCounter

namespace {

// KEYS[i]: the counter of window i. ARGV[2i-1]: its limit, ARGV[2i]: its TTL in ms.
// Returns {1 if admitted else 0, count of window 1, ..., count of window n}: counts after the
// increment when admitted, as found when rejected. Nothing is written on a rejection; a key
// listed twice (two limits on one window) is incremented once.
constexpr std::string_view kHitScript = R"lua(
local counts = {}
local allowed = 1
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  counts[i] = count
  if count >= tonumber(ARGV[2 * i - 1]) then allowed = 0 end
end
if allowed == 1 then
  local after = {}
  for i = 1, #KEYS do
    local count = after[KEYS[i]]
    if count == nil then
      count = redis.call('INCR', KEYS[i])
      if count == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[2 * i]) end
      after[KEYS[i]] = count
    end
    counts[i] = count
  end
end
local out = {allowed}
for i = 1, #KEYS do out[i + 1] = counts[i] end
return out
)lua";

// Counters outlive their window by this much, for replicas whose clocks run a little behind.
constexpr std::chrono::milliseconds kExpirySlack{2000};

}  // namespace

RedisRateCounter::RedisRateCounter(RedisClient& client, RedisRateCounterOptions options)
    : client_(client),
      prefix_(std::move(options.prefix)),
      script_(std::make_shared<const RedisScript>(std::string(kHitScript))) {}

std::string RedisRateCounter::counter_key(std::string_view key, std::chrono::seconds length,
                                          TimePoint now) const {
    auto window = window_at(length, now);
    std::string out;
    out.reserve(prefix_.size() + key.size() + 32);
    out += prefix_;
    out += '{';
    out += key;
    out += "}:";
    out += std::to_string(effective(length).count());
    out += ':';
    out += std::to_string(window.start.time_since_epoch().count());
    return out;
}

asio::awaitable<Expected<RateDecision, RedisError>> RedisRateCounter::hit(
    std::string_view key, std::span<const WindowLimit> limits, TimePoint now) {
    if (limits.empty()) co_return unlimited();
    std::vector<std::string> keys;
    std::vector<std::string> args;
    ObservedList observed(limits.size());
    keys.reserve(limits.size());
    args.reserve(2 * limits.size());
    for (std::size_t i = 0; i < limits.size(); ++i) {
        auto window = window_at(limits[i].window, now);
        observed[i].end = window.end;
        keys.push_back(counter_key(key, limits[i].window, now));
        args.push_back(std::to_string(std::max<std::int64_t>(0, limits[i].limit)));
        auto ttl = std::chrono::ceil<std::chrono::milliseconds>(window.end - now) + kExpirySlack;
        args.push_back(std::to_string(ttl.count()));
    }
    // A local copy keeps the script alive however the awaitable is resumed.
    auto script = script_;
    auto reply = co_await client_.eval(*script, std::move(keys), std::move(args));
    if (!reply) co_return unexpected(std::move(reply).error());

    const auto& elements = reply->elements;
    bool well_formed =
        reply->type == RedisReply::Type::Array && elements.size() == limits.size() + 1 &&
        std::all_of(elements.begin(), elements.end(),
                    [](const RedisReply& e) { return e.type == RedisReply::Type::Integer; });
    if (!well_formed) {
        RedisError error{RedisError::Protocol, "unexpected reply from the rate-limit script"};
        co_return unexpected(std::move(error));
    }
    bool allowed = elements[0].integer == 1;
    for (std::size_t i = 0; i < limits.size(); ++i) {
        observed[i].count = elements[i + 1].integer - (allowed ? 1 : 0);
    }
    co_return decide_from(limits, observed, allowed, now);
}

// ---- FallbackRateCounter

FallbackRateCounter::FallbackRateCounter(RateCounter& primary, LocalRateCounter& local,
                                         Observer observer)
    : primary_(primary), local_(local), observer_(std::move(observer)) {}

asio::awaitable<Expected<RateDecision, RedisError>> FallbackRateCounter::hit(
    std::string_view key, std::span<const WindowLimit> limits, TimePoint now) {
    auto decision = co_await primary_.hit(key, limits, now);
    if (decision) {
        if (degraded_.load(std::memory_order_relaxed) && degraded_.exchange(false) &&
            observer_.on_recovery) {
            observer_.on_recovery();
        }
        co_return decision;
    }
    // Every kind of failure falls back: besides an unreachable or slow server, error replies such
    // as READONLY (after a failover) or OOM also mean Redis cannot count for us right now.
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    if (!degraded_.exchange(true) && observer_.on_outage) observer_.on_outage(decision.error());
    auto local = local_.decide(key, limits, now);
    local.fell_back = true;
    co_return local;
}

}  // namespace aether::platform::cache
