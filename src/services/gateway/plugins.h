// The gateway's plugins, Envoy-style: each is built once from its validated configuration (per
// configuration snapshot) and then runs cheaply for every request of the routes it applies to.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "platform/http/message.h"
#include "services/gateway/gateway_config.h"
#include "services/gateway/route_table.h"

namespace aether::platform::auth {
class JwtCodec;
}
namespace aether::platform::cache {
class RateCounter;
}

namespace aether::services::gateway {

class JwksCache;

// One request on its way through the gateway, as the plugins see and annotate it.
struct Exchange {
    platform::http::Request& request;
    const RouteMatch& match;
    // Who is calling, once a credential was verified: the consumer's username, else the token's
    // subject. Empty for anonymous requests. It points into the verified claims that
    // consumer_owner keeps, or into the plugin's configuration (alive for the whole exchange).
    std::string_view consumer;
    std::shared_ptr<const void> consumer_owner;
    // Headers the plugins set on whatever response goes back (rate-limit state), replacing any
    // of the same name.
    platform::http::HeaderLines response_headers;
};

class Plugin {
  public:
    virtual ~Plugin() = default;
    // The request phase, when it needs no wait (most plugins, and most requests): true once
    // decided, with `answer` set. An answer stops the request here (401, 429, a CORS preflight);
    // nullopt lets it continue. A coroutine per plugin and request cost more than most plugins'
    // own work. False when only on_request can decide (a key set to fetch, Redis to ask).
    virtual bool decide_now(Exchange& exchange,
                            std::optional<platform::http::Response>& answer) = 0;
    // The request phase when decide_now returned false; sets `answer` as decide_now does (an
    // answer written there, not returned: a returned Response would take room in the caller's
    // coroutine frame).
    virtual boost::asio::awaitable<void> on_request(
        Exchange& exchange, std::optional<platform::http::Response>& answer) = 0;
    // Adjusts the response on the way back (also for answers other plugins gave).
    virtual void on_response(Exchange& /*exchange*/, platform::http::Response& /*response*/) {}
};

// What plugins share across configuration reloads: counters must not reset when a file changes.
struct PluginServices {
    const platform::auth::JwtCodec* platform_jwt = nullptr;
    platform::cache::RateCounter* local_counter = nullptr;
    // Local counters per plugin scope, so one route's flood of keys cannot fill another's
    // table; when unset, local_counter serves every scope.
    std::function<platform::cache::RateCounter*(const std::string& scope)> local_counter_for;
    // The counter of policy redis (Redis with a local fallback); null when no Redis is set up.
    platform::cache::RateCounter* redis_counter = nullptr;
    // The cached key set behind a jwt plugin's jwks_url (one per URL, shared across reloads).
    std::function<std::shared_ptr<JwksCache>(const std::string& url)> jwks_cache_for;
};

// Options the built-in all-in-one configuration sets and a file cannot: requests carrying an API
// key ("ak_…" bearer or X-API-Key) pass the jwt plugin unverified, because only the security
// service can check a key against its store, and it does.
struct PluginOptions {
    bool pass_api_keys = false;
};

// Builds the plugin for `spec`; `scope` names where it is attached ("service:tasks",
// "route:tasks-read", "global") and keeps counters of different scopes apart. Throws
// std::runtime_error when a plugin cannot be built (an unusable key).
std::shared_ptr<Plugin> make_plugin(const PluginSpec& spec, const GatewayConfig& config,
                                    std::string scope, const PluginServices& services,
                                    const PluginOptions& options);

}  // namespace aether::services::gateway
