// Sliding-window login throttle.
#include "services/security/throttle.h"

#include <algorithm>

namespace aether::services::security {

LoginThrottle::Failures* LoginThrottle::recent(std::unordered_map<std::string, Failures>& table,
                                               const std::string& key, Clock::time_point now) {
    auto it = table.find(key);
    if (it == table.end()) return nullptr;
    auto& times = it->second.times;
    while (!times.empty() && times.front() + settings_.window <= now) times.pop_front();
    if (times.empty() && it->second.in_flight == 0) {
        table.erase(it);
        return nullptr;
    }
    return &it->second;
}

void LoginThrottle::record(std::unordered_map<std::string, Failures>& table, const std::string& key,
                           int keep, Clock::time_point now) {
    if (!table.contains(key) && table.size() >= settings_.max_tracked_keys) {
        // Full: drop expired keys, at most once a second so a flood of new keys cannot make
        // every attempt scan the table. Live keys are never evicted (that would let an attacker
        // wipe a victim's count by flooding); the new key just goes uncounted until room frees.
        if (now - last_sweep_ >= std::chrono::seconds(1)) {
            last_sweep_ = now;
            std::erase_if(table, [&](const auto& entry) {
                const auto& times = entry.second.times;
                return entry.second.in_flight == 0 &&
                       (times.empty() || times.back() + settings_.window <= now);
            });
        }
        if (table.size() >= settings_.max_tracked_keys) return;
    }
    auto& failures = table[key];
    failures.times.push_back(now);
    while (static_cast<int>(failures.times.size()) > keep) failures.times.pop_front();
}

ThrottleDecision LoginThrottle::decide(const std::string& account, const std::string& address,
                                       Clock::time_point now) {
    ThrottleDecision decision;
    auto* account_failures = recent(accounts_, account, now);
    auto* address_failures = recent(addresses_, address, now);
    auto count = [](const Failures* failures) {
        return failures ? static_cast<int>(failures->times.size()) : 0;
    };
    auto block = [&](Failures& failures) {
        auto remaining = std::chrono::ceil<std::chrono::seconds>(failures.times.front() +
                                                                 settings_.window - now);
        decision.blocked = true;
        decision.retry_after_seconds =
            std::max({decision.retry_after_seconds, 1, static_cast<int>(remaining.count())});
        decision.first_block = decision.first_block || !failures.block_reported;
        failures.block_reported = true;
    };
    auto judge = [&](Failures* failures, int limit) {
        if (!failures) return;
        if (count(failures) >= limit) {
            block(*failures);
        } else {
            failures->block_reported = false;
        }
    };
    judge(account_failures, settings_.account_limit);
    judge(address_failures, settings_.address_limit);
    int excess =
        std::max(count(account_failures), count(address_failures)) - settings_.free_failures;
    if (!decision.blocked && excess > 0) {
        auto delay = settings_.base_delay * (1LL << std::min(excess - 1, 16));
        decision.delay = std::min<std::chrono::milliseconds>(delay, settings_.max_delay);
    }
    return decision;
}

ThrottleDecision LoginThrottle::check(const std::string& account, const std::string& address,
                                      Clock::time_point now) {
    std::lock_guard lock(mutex_);
    return decide(account, address, now);
}

ThrottleDecision LoginThrottle::begin_attempt(const std::string& account,
                                              const std::string& address, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto decision = decide(account, address, now);
    if (decision.blocked) return decision;
    auto* account_state = recent(accounts_, account, now);
    auto* address_state = recent(addresses_, address, now);
    auto at_capacity = [](const Failures* state, int limit) {
        return state && static_cast<int>(state->times.size()) + state->in_flight >= limit;
    };
    if (at_capacity(account_state, settings_.account_limit) ||
        at_capacity(address_state, settings_.address_limit)) {
        decision.wait = true;
        return decision;
    }
    // operator[] creates the entries; their in_flight count keeps them from being swept.
    accounts_[account].in_flight += 1;
    addresses_[address].in_flight += 1;
    return decision;
}

void LoginThrottle::end_attempt(const std::string& account, const std::string& address,
                                bool succeeded, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    for (auto* table : {&accounts_, &addresses_}) {
        const auto& key = table == &accounts_ ? account : address;
        if (auto it = table->find(key); it != table->end() && it->second.in_flight > 0) {
            it->second.in_flight -= 1;
        }
    }
    if (succeeded) {
        if (auto it = accounts_.find(account); it != accounts_.end()) it->second.times.clear();
    } else {
        record(accounts_, account, settings_.account_limit, now);
        record(addresses_, address, settings_.address_limit, now);
    }
    for (auto* table : {&accounts_, &addresses_}) {
        const auto& key = table == &accounts_ ? account : address;
        if (auto it = table->find(key);
            it != table->end() && it->second.in_flight == 0 && it->second.times.empty()) {
            table->erase(it);
        }
    }
}

void LoginThrottle::record_failure(const std::string& account, const std::string& address,
                                   Clock::time_point now) {
    std::lock_guard lock(mutex_);
    record(accounts_, account, settings_.account_limit, now);
    record(addresses_, address, settings_.address_limit, now);
}

void LoginThrottle::record_success(const std::string& account) {
    std::lock_guard lock(mutex_);
    if (auto it = accounts_.find(account); it != accounts_.end()) {
        it->second.times.clear();
        if (it->second.in_flight == 0) accounts_.erase(it);
    }
}

}  // namespace aether::services::security
