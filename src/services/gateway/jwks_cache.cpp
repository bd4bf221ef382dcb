// Fetching and caching the JWKS behind the jwt plugin.
#include "services/gateway/jwks_cache.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "platform/auth/jwk.h"
#include "platform/auth/jwt.h"
#include "platform/telemetry/log.h"

namespace aether::services::gateway {

namespace auth = platform::auth;
using platform::unexpected;

JwksCache::JwksCache(std::string url, Fetch fetch, std::chrono::seconds refresh_interval,
                     std::chrono::seconds min_refetch)
    : url_(std::move(url)),
      fetch_(std::move(fetch)),
      refresh_interval_(refresh_interval),
      min_refetch_(min_refetch) {}

bool JwksCache::fetching() const {
    std::lock_guard lock(mutex_);
    return fetches_in_flight_ > 0;
}

std::shared_ptr<const auth::JwtCodec> JwksCache::lookup(const std::string& kid) const {
    std::lock_guard lock(mutex_);
    if (kid.empty() && keys_.size() == 1) return keys_.begin()->second;
    auto found = keys_.find(kid);
    return found == keys_.end() ? nullptr : found->second;
}

boost::asio::awaitable<std::shared_ptr<const auth::JwtCodec>> JwksCache::find(std::string kid,
                                                                              int leeway_seconds) {
    bool stale = false;
    bool may_refetch = false;
    {
        std::lock_guard lock(mutex_);
        const auto age = std::chrono::steady_clock::now() - fetched_at_;
        stale = !fetched_ || age >= refresh_interval_;
        may_refetch = !fetched_ || age >= min_refetch_;
    }
    auto codec = stale ? nullptr : lookup(kid);
    if (codec == nullptr && (stale || may_refetch)) {
        (void)co_await refresh(leeway_seconds);
        codec = lookup(kid);
    }
    if (codec == nullptr) {
        // Another request's fetch may be under way (a cold start, a rotation): wait for it
        // rather than refusing a token its result will accept.
        auto executor = co_await boost::asio::this_coro::executor;
        boost::asio::steady_timer timer(executor);
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (fetching() && std::chrono::steady_clock::now() < give_up) {
            timer.expires_after(std::chrono::milliseconds(10));
            co_await timer.async_wait(boost::asio::use_awaitable);
        }
        codec = lookup(kid);
    }
    co_return codec;
}

boost::asio::awaitable<platform::Expected<void, std::string>> JwksCache::refresh(
    int leeway_seconds) {
    {
        // Whatever happens, the next fetch waits min_refetch: a broken URL must not be fetched
        // once per request.
        std::lock_guard lock(mutex_);
        fetched_at_ = std::chrono::steady_clock::now();
        fetched_ = true;
        ++fetches_in_flight_;
    }
    struct InFlight {
        JwksCache& cache;
        ~InFlight() {
            std::lock_guard lock(cache.mutex_);
            --cache.fetches_in_flight_;
        }
    } in_flight{*this};
    auto document = co_await fetch_(url_);
    if (!document) {
        platform::telemetry::log_error("JWKS fetch failed; keeping the keys we have",
                                       {{"url", url_}, {"error", document.error()}});
        co_return unexpected(document.error());
    }
    auto parsed = auth::parse_jwks(*document);
    if (!parsed) {
        platform::telemetry::log_error("JWKS document rejected; keeping the keys we have",
                                       {{"url", url_}, {"error", parsed.error()}});
        co_return unexpected(parsed.error());
    }
    std::map<std::string, std::shared_ptr<const auth::JwtCodec>> keys;
    for (const auto& key : *parsed) {
        if (key.alg.empty()) continue;  // an RSA key without alg: RS256/384/512 is ambiguous
        auth::JwtSettings settings;
        settings.algorithm = key.alg;
        settings.public_key_pem = key.public_key_pem;
        settings.key_id = key.kid;
        settings.leeway_seconds = leeway_seconds;
        auto codec = auth::JwtCodec::create(settings);
        if (!codec) continue;
        keys.emplace(key.kid, std::make_shared<const auth::JwtCodec>(std::move(*codec)));
    }
    {
        std::lock_guard lock(mutex_);
        keys_ = std::move(keys);
    }
    co_return platform::Expected<void, std::string>{};
}

}  // namespace aether::services::gateway
