// The security service's public keys for the gateway's jwt plugin: fetched from its JWKS URL,
// refreshed periodically and when a token names a key id not seen yet (key rotation).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "platform/expected.h"

namespace aether::platform::auth {
class JwtCodec;
}

namespace aether::services::gateway {

class JwksCache {
  public:
    // Fetches the document at the URL; an error says why (never with credentials).
    using Fetch =
        std::function<boost::asio::awaitable<platform::Expected<std::string, std::string>>(
            const std::string& url)>;

    JwksCache(std::string url, Fetch fetch,
              std::chrono::seconds refresh_interval = std::chrono::seconds(300),
              std::chrono::seconds min_refetch = std::chrono::seconds(10));

    // The verifier for the token's key id ("" matches a document with a single key). An unknown
    // id triggers a fetch unless one happened within min_refetch; null when still unknown.
    boost::asio::awaitable<std::shared_ptr<const platform::auth::JwtCodec>> find(
        std::string kid, int leeway_seconds);

    // Fetches now; keeps the previous keys when the fetch or the document fails.
    boost::asio::awaitable<platform::Expected<void, std::string>> refresh(int leeway_seconds);

    const std::string& url() const { return url_; }

  private:
    std::shared_ptr<const platform::auth::JwtCodec> lookup(const std::string& kid) const;
    bool fetching() const;

    std::string url_;
    Fetch fetch_;
    std::chrono::seconds refresh_interval_;
    std::chrono::seconds min_refetch_;
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<const platform::auth::JwtCodec>> keys_;
    std::chrono::steady_clock::time_point fetched_at_{};
    bool fetched_ = false;
    int fetches_in_flight_ = 0;
};

}  // namespace aether::services::gateway
