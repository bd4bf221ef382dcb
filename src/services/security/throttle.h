// Brute-force protection for logins: failures are counted per account and per client address in a
// sliding window; repeated failures first slow the answers down, then block with 429.
#pragma once

#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace aether::services::security {

struct ThrottleSettings {
    int account_limit = 5;   // failures per account in the window before 429
    int address_limit = 20;  // failures per client address in the window before 429
    std::chrono::seconds window{900};
    int free_failures = 2;  // failures answered without delay
    std::chrono::milliseconds base_delay{250};
    std::chrono::milliseconds max_delay{4000};
    std::size_t max_tracked_keys = 100'000;  // memory bound
};

struct ThrottleDecision {
    bool blocked = false;
    bool first_block = false;  // this key was not blocked a moment ago (worth one audit entry)
    int retry_after_seconds = 0;
    std::chrono::milliseconds delay{0};  // wait before answering a login attempt
    // Enough attempts on this key are already in flight to reach the limit if they all fail:
    // wait for one to finish and ask again (parallel guesses cannot overshoot the limit, and
    // parallel genuine sign-ins are only queued, never refused).
    bool wait = false;
};

class LoginThrottle {
  public:
    using Clock = std::chrono::steady_clock;
    explicit LoginThrottle(ThrottleSettings settings) : settings_(settings) {}

    // What an attempt now would get, without counting it.
    ThrottleDecision check(const std::string& account, const std::string& address,
                           Clock::time_point now);
    // check() and, when the attempt may go ahead, registering it as in flight in the same step.
    // Every begun attempt (blocked and wait excepted) must be ended with end_attempt().
    ThrottleDecision begin_attempt(const std::string& account, const std::string& address,
                                   Clock::time_point now);
    void end_attempt(const std::string& account, const std::string& address, bool succeeded,
                     Clock::time_point now);
    void record_failure(const std::string& account, const std::string& address,
                        Clock::time_point now);
    // Forgets the account's failures.
    void record_success(const std::string& account);

  private:
    struct Failures {
        std::deque<Clock::time_point> times;
        bool block_reported = false;  // the block of this key has been reported once already
        int in_flight = 0;            // attempts begun and not yet ended
    };
    // The key's failures within the window, or null when it has none.
    Failures* recent(std::unordered_map<std::string, Failures>& table, const std::string& key,
                     Clock::time_point now);
    void record(std::unordered_map<std::string, Failures>& table, const std::string& key, int keep,
                Clock::time_point now);
    ThrottleDecision decide(const std::string& account, const std::string& address,
                            Clock::time_point now);

    ThrottleSettings settings_;
    std::mutex mutex_;
    std::unordered_map<std::string, Failures> accounts_;
    std::unordered_map<std::string, Failures> addresses_;
    Clock::time_point last_sweep_{};
};

}  // namespace aether::services::security
