// Sliding-window login throttle.
#include "services/security/throttle.h"

#include <algorithm>

namespace aether::services::security {

int LoginThrottle::recent(std::unordered_map<std::string, Failures>& table, const std::string& key,
                          Clock::time_point now, Clock::time_point& oldest) {
    auto it = table.find(key);
    if (it == table.end()) return 0;
    auto& failures = it->second;
    while (!failures.empty() && failures.front() + settings_.window <= now) failures.pop_front();
    if (failures.empty()) {
        table.erase(it);
        return 0;
    }
    oldest = failures.front();
    return static_cast<int>(failures.size());
}

void LoginThrottle::record(std::unordered_map<std::string, Failures>& table, const std::string& key,
                           int keep, Clock::time_point now) {
    if (!table.contains(key) && table.size() >= settings_.max_tracked_keys) {
        // Drop expired entries first; if the table is still full, forget the stalest key.
        std::erase_if(table, [&](const auto& entry) {
            return entry.second.empty() || entry.second.back() + settings_.window <= now;
        });
        if (table.size() >= settings_.max_tracked_keys) {
            auto stalest = std::min_element(
                table.begin(), table.end(),
                [](const auto& a, const auto& b) { return a.second.back() < b.second.back(); });
            table.erase(stalest);
        }
    }
    auto& failures = table[key];
    failures.push_back(now);
    while (static_cast<int>(failures.size()) > keep) failures.pop_front();
}

ThrottleDecision LoginThrottle::check(const std::string& account, const std::string& address,
                                      Clock::time_point now) {
    std::lock_guard lock(mutex_);
    ThrottleDecision decision;
    Clock::time_point account_oldest{}, address_oldest{};
    int account_failures = recent(accounts_, account, now, account_oldest);
    int address_failures = recent(addresses_, address, now, address_oldest);
    auto retry_after = [&](Clock::time_point oldest) {
        auto remaining = std::chrono::ceil<std::chrono::seconds>(oldest + settings_.window - now);
        return std::max<int>(1, static_cast<int>(remaining.count()));
    };
    if (account_failures >= settings_.account_limit) {
        decision.blocked = true;
        decision.retry_after_seconds = retry_after(account_oldest);
    }
    if (address_failures >= settings_.address_limit) {
        decision.blocked = true;
        decision.retry_after_seconds =
            std::max(decision.retry_after_seconds, retry_after(address_oldest));
    }
    int excess = std::max(account_failures, address_failures) - settings_.free_failures;
    if (!decision.blocked && excess > 0) {
        auto delay = settings_.base_delay * (1LL << std::min(excess - 1, 16));
        decision.delay = std::min<std::chrono::milliseconds>(delay, settings_.max_delay);
    }
    return decision;
}

void LoginThrottle::record_failure(const std::string& account, const std::string& address,
                                   Clock::time_point now) {
    std::lock_guard lock(mutex_);
    record(accounts_, account, settings_.account_limit, now);
    record(addresses_, address, settings_.address_limit, now);
}

void LoginThrottle::record_success(const std::string& account) {
    std::lock_guard lock(mutex_);
    accounts_.erase(account);
}

}  // namespace aether::services::security
