// The plugins of the gateway: correlation-id, cors, jwt, ip-restriction, request-size-limiting,
// rate-limiting and prometheus, with Kong's semantics and our error envelope.
#include "services/gateway/plugins.h"

#include <boost/json/parse.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "platform/auth/jwt.h"
#include "platform/auth/tokens.h"
#include "platform/cache/rate_counter.h"
#include "platform/http/bearer.h"
#include "platform/http/pipeline.h"
#include "platform/json/envelope.h"
#include "platform/telemetry/metrics.h"
#include "services/gateway/jwks_cache.h"

namespace aether::services::gateway {

namespace http = platform::http;
namespace json = platform::json;
namespace auth = platform::auth;
namespace cache = platform::cache;
using Response = http::Response;
using Early = std::optional<Response>;

namespace {

bool starts_with_ci(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && http::iequals(text.substr(0, prefix.size()), prefix);
}

std::string join(const std::vector<std::string>& values, std::string_view separator) {
    std::string out;
    for (const auto& value : values) {
        if (!out.empty()) out.append(separator);
        out.append(value);
    }
    return out;
}

Response error(json::ErrorCode code, int status, std::string_view message, const Exchange& exchange,
               std::optional<int> retry_after = std::nullopt) {
    Response response =
        http::error_response(code, message, exchange.request.context.request_id, {}, retry_after);
    response.status = status;
    return response;
}

// A plugin whose request phase never waits.
class ImmediatePlugin : public Plugin {
  public:
    bool decide_now(Exchange& exchange, Early& answer) final {
        answer = decide(exchange);
        return true;
    }
    boost::asio::awaitable<void> on_request(Exchange& exchange, Early& answer) final {
        answer = decide(exchange);
        co_return;
    }

  protected:
    virtual Early decide(Exchange& exchange) = 0;
};

// ---------------------------------------------------------------------------------------------

class CorrelationIdPlugin final : public ImmediatePlugin {
  public:
    explicit CorrelationIdPlugin(CorrelationIdPluginConfig config) : config_(std::move(config)) {}

    Early decide(Exchange& exchange) override {
        auto& request = exchange.request;
        // The pipeline already accepted or generated X-Request-ID; another header name gets the
        // same id so one value follows the request everywhere.
        if (request.header(config_.header_name).empty()) {
            request.headers.emplace_back(config_.header_name, request.context.request_id);
        }
        return std::nullopt;
    }

    void on_response(Exchange& exchange, Response& response) override {
        if (!config_.echo_downstream || http::iequals(config_.header_name, "X-Request-ID")) return;
        auto value = exchange.request.header(config_.header_name);
        if (!value.empty() && response.header(config_.header_name).empty()) {
            response.headers.emplace_back(config_.header_name, std::string(value));
        }
    }

  private:
    CorrelationIdPluginConfig config_;
};

// ---------------------------------------------------------------------------------------------

class CorsPlugin final : public ImmediatePlugin {
  public:
    explicit CorsPlugin(CorsPluginConfig config)
        : config_(std::move(config)),
          methods_(join(config_.methods, ",")),
          headers_(join(config_.headers, ",")),
          exposed_(join(config_.exposed_headers, ",")) {}

    Early decide(Exchange& exchange) override {
        const auto& request = exchange.request;
        auto origin = request.header("Origin");
        const bool preflight = request.method == http::Method::Options && !origin.empty() &&
                               !request.header("Access-Control-Request-Method").empty();
        if (!preflight || config_.preflight_continue) return std::nullopt;
        Response response = Response::text(204, "");
        response.content_type = {};
        if (auto allowed = allowed_origin(origin)) {
            response.headers.emplace_back("Access-Control-Allow-Origin", *allowed);
            if (*allowed != "*") response.headers.emplace_back("Vary", "Origin");
            if (config_.credentials) {
                response.headers.emplace_back("Access-Control-Allow-Credentials", "true");
            }
            response.headers.emplace_back("Access-Control-Allow-Methods", methods_);
            auto requested = request.header("Access-Control-Request-Headers");
            std::string headers = config_.headers.empty() ? std::string(requested) : headers_;
            if (!headers.empty()) {
                response.headers.emplace_back("Access-Control-Allow-Headers", headers);
            }
            if (config_.max_age) {
                response.headers.emplace_back("Access-Control-Max-Age",
                                              std::to_string(*config_.max_age));
            }
        }
        return response;
    }

    void on_response(Exchange& exchange, Response& response) override {
        auto origin = exchange.request.header("Origin");
        if (origin.empty()) return;
        if (!response.header("Access-Control-Allow-Origin").empty()) return;  // the preflight
        auto allowed = allowed_origin(origin);
        if (!allowed) return;
        response.headers.emplace_back("Access-Control-Allow-Origin", *allowed);
        if (*allowed != "*") response.headers.emplace_back("Vary", "Origin");
        if (config_.credentials) {
            response.headers.emplace_back("Access-Control-Allow-Credentials", "true");
        }
        if (!exposed_.empty()) {
            response.headers.emplace_back("Access-Control-Expose-Headers", exposed_);
        }
    }

  private:
    // The value of Access-Control-Allow-Origin for this origin, nullopt when not allowed. "*"
    // never comes with credentials: the configuration refuses that combination.
    std::optional<std::string> allowed_origin(std::string_view origin) const {
        for (const auto& allowed : config_.origins) {
            if (http::iequals(allowed, origin)) return std::string(origin);
        }
        if (config_.any_origin()) return std::string("*");
        return std::nullopt;
    }

    CorsPluginConfig config_;
    std::string methods_, headers_, exposed_;
};

// ---------------------------------------------------------------------------------------------

class JwtPlugin final : public Plugin {
  public:
    JwtPlugin(JwtPluginConfig config, const GatewayConfig& gateway, const auth::JwtCodec* platform,
              std::shared_ptr<JwksCache> jwks, PluginOptions options)
        : config_(std::move(config)),
          platform_(platform),
          jwks_(std::move(jwks)),
          options_(options) {
        for (const auto& consumer : gateway.consumers) {
            for (const auto& secret : consumer.jwt_secrets) {
                auth::JwtSettings settings;
                settings.algorithm = secret.algorithm;
                if (secret.algorithm.starts_with("HS")) {
                    settings.secret = secret.secret;
                    if (config_.secret_is_base64) {
                        auto decoded = decode_standard_base64(secret.secret);
                        if (!decoded) {
                            throw std::runtime_error("jwt secret of consumer " + consumer.username +
                                                     " is not base64");
                        }
                        settings.secret = std::move(*decoded);
                    }
                } else {
                    settings.public_key_pem = secret.rsa_public_key;
                }
                auto codec = auth::JwtCodec::create(settings);
                if (!codec) {
                    throw std::runtime_error("jwt secret \"" + secret.key + "\" of consumer " +
                                             consumer.username + ": " + codec.error());
                }
                const std::string name =
                    consumer.username.empty() ? consumer.custom_id : consumer.username;
                keys_.emplace(secret.key,
                              Key{std::make_shared<const auth::JwtCodec>(std::move(*codec)), name});
            }
        }
    }

    // Only a key set fetched from a JWKS makes the request phase wait.
    bool decide_now(Exchange& exchange, Early& answer) override {
        if (jwks_) return false;
        auto presented = present(exchange);
        answer = presented.answer ? std::move(*presented.answer)
                                  : verify(exchange, presented.token, nullptr);
        return true;
    }

    boost::asio::awaitable<void> on_request(Exchange& exchange, Early& answer) override {
        auto presented = present(exchange);
        if (presented.answer) {
            answer = std::move(*presented.answer);
            co_return;
        }
        std::shared_ptr<const auth::JwtCodec> fetched;
        if (jwks_) {
            fetched =
                co_await jwks_->find(unverified_header_kid(presented.token), kJwksLeewaySeconds);
            if (fetched == nullptr) {
                answer = error(json::ErrorCode::Unauthorized, 401,
                               "no key in the JWKS matches the token", exchange);
                co_return;
            }
        }
        answer = verify(exchange, presented.token, fetched.get());
    }

  private:
    struct Key {
        std::shared_ptr<const auth::JwtCodec> codec;
        std::string consumer;
    };

    // What the request brings before any key is needed: the token to verify, or an answer
    // already (refused, or let through unverified).
    struct Presented {
        std::optional<Early> answer;
        std::string_view token;
    };

    Presented present(Exchange& exchange) const {
        const auto& request = exchange.request;
        if (!config_.run_on_preflight && request.method == http::Method::Options) {
            return {Early(std::nullopt), {}};
        }
        // Client-sent X-User-* headers were already removed by the gateway.
        if (!request.raw_query().empty()) {
            for (auto name : {"jwt", "token", "access_token"}) {
                if (request.query(name)) {
                    return {error(json::ErrorCode::Unauthorized, 401,
                                  "credentials in the query string are refused; use the "
                                  "Authorization header",
                                  exchange),
                            {}};
                }
            }
        }
        std::string_view token = find_token(request);
        if (options_.pass_api_keys &&
            (token.starts_with("ak_") || (token.empty() && !request.header("X-API-Key").empty()))) {
            return {Early(std::nullopt), {}};
        }
        if (token.empty()) {
            return {error(json::ErrorCode::Unauthorized, 401, "missing bearer token", exchange),
                    {}};
        }
        return {std::nullopt, token};
    }

    // Verifies the token with the JWKS key found for it (`jwks_codec`), the key of the consumer
    // its key claim names, or the platform's key; forwards the identity when it is valid.
    Early verify(Exchange& exchange, std::string_view token, const auth::JwtCodec* jwks_codec) {
        auto& request = exchange.request;
        const auth::JwtCodec* codec = jwks_ ? jwks_codec : platform_;
        std::string_view consumer;
        if (!jwks_ && !keys_.empty()) {
            auto key = unverified_claim(token, config_.key_claim_name);
            auto found = key ? keys_.find(*key) : keys_.end();
            if (found == keys_.end()) {
                return error(json::ErrorCode::Unauthorized, 401,
                             "no credentials found for the token's " + config_.key_claim_name,
                             exchange);
            }
            codec = found->second.codec.get();
            consumer = found->second.consumer;
        }
        if (codec == nullptr) {
            return error(json::ErrorCode::Unauthorized, 401, "no key to verify tokens with",
                         exchange);
        }
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        const std::string_view expected_type =
            config_.token_type == "any" ? std::string_view() : std::string_view(config_.token_type);
        auto verified = codec->verify(token, expected_type, now);
        if (!verified) {
            return error(json::ErrorCode::Unauthorized, 401,
                         std::string("invalid token: ") +
                             std::string(auth::jwt_error_message(verified.error())),
                         exchange);
        }
        const std::shared_ptr<const auth::Claims>& shared_claims = *verified;
        const auth::Claims& claims = *shared_claims;
        if (config_.maximum_expiration > 0 && claims.exp - now > config_.maximum_expiration) {
            return error(json::ErrorCode::Unauthorized, 401,
                         "token lifetime exceeds the maximum expiration", exchange);
        }
        auto identity = identity_of(shared_claims);
        if (!identity->forwardable) {
            // A signed claim holding a line break: forwarded, it would split the header.
            return error(json::ErrorCode::Unauthorized, 401,
                         "invalid token: its identity cannot be forwarded as headers", exchange);
        }
        request.header_lines.append(identity->lines);
        request.context.user_id = claims.sub;
        if (consumer.empty()) {
            exchange.consumer = claims.sub;
            exchange.consumer_owner = shared_claims;
        } else {
            exchange.consumer = consumer;
        }
        return std::nullopt;
    }

    // The identity lines forwarded for a verified token (X-User-ID, X-User-Roles and
    // X-User-Permissions), checked once. Deriving permissions from roles, joining them and
    // checking the lines cost more than the (cached) verification itself; a token's claims never
    // change, so the lines are remembered per verified claims, the token still verified each time.
    struct Identity {
        http::HeaderLines lines;
        bool forwardable = false;
    };
    static constexpr std::size_t kIdentityCacheEntries = 8192;

    // Looked up by the address of the claims the codec's cache shares for the token, which
    // stands for the token without hashing or comparing its text again. An entry holds its
    // claims, so that address cannot be taken by other claims while the entry lives. A token the
    // codec's cache dropped comes back with new claims and a new entry; the old one stays until
    // the table starts over, which bounds both.
    std::shared_ptr<const Identity> identity_of(const std::shared_ptr<const auth::Claims>& claims) {
        {
            std::lock_guard lock(identities_mutex_);
            if (auto found = identities_.find(claims.get()); found != identities_.end()) {
                return found->second.identity;
            }
        }
        auto identity = std::make_shared<Identity>();
        identity->forwardable =
            identity->lines.append("X-User-ID", claims->sub) &&
            identity->lines.append("X-User-Roles", join(claims->roles, ",")) &&
            identity->lines.append("X-User-Permissions",
                                   join(http::effective_permissions(*claims), ","));
        std::lock_guard lock(identities_mutex_);
        // Bounded: a full table starts over rather than growing with every token seen.
        if (identities_.size() >= kIdentityCacheEntries) identities_.clear();
        identities_.emplace(claims.get(), IdentityEntry{claims, identity});
        return identity;
    }

    std::string_view find_token(const http::Request& request) const {
        for (const auto& name : config_.header_names) {
            auto value = request.header(name);
            if (value.empty()) continue;
            if (starts_with_ci(value, "Bearer ")) value.remove_prefix(7);
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            if (!value.empty()) return value;
        }
        auto cookies = request.header("Cookie");
        for (const auto& name : config_.cookie_names) {
            std::size_t at = 0;
            while (at < cookies.size()) {
                auto end = cookies.find(';', at);
                auto pair = cookies.substr(at, end == std::string_view::npos ? end : end - at);
                while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
                if (pair.size() > name.size() && pair.substr(0, name.size()) == name &&
                    pair[name.size()] == '=') {
                    return pair.substr(name.size() + 1);
                }
                if (end == std::string_view::npos) break;
                at = end + 1;
            }
        }
        return {};
    }

    // The string value of `claim` in the token's payload, before verification: it only picks
    // the key, and the signature check with that key follows.
    static std::optional<std::string> unverified_claim(std::string_view token,
                                                       std::string_view claim) {
        auto first = token.find('.');
        auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
        if (second == std::string_view::npos) return std::nullopt;
        auto payload = auth::base64url_decode(token.substr(first + 1, second - first - 1));
        if (!payload) return std::nullopt;
        boost::system::error_code ec;
        auto value = boost::json::parse(*payload, ec);
        if (ec || !value.is_object()) return std::nullopt;
        const auto* field = value.get_object().if_contains(claim);
        if (field == nullptr || !field->is_string()) return std::nullopt;
        return std::string(field->get_string());
    }

    // The "kid" of the token's header ("" when absent or unreadable): it only picks the key.
    static std::string unverified_header_kid(std::string_view token) {
        auto dot = token.find('.');
        if (dot == std::string_view::npos) return {};
        auto header = auth::base64url_decode(token.substr(0, dot));
        if (!header) return {};
        boost::system::error_code ec;
        auto value = boost::json::parse(*header, ec);
        if (ec || !value.is_object()) return {};
        const auto* kid = value.get_object().if_contains("kid");
        return kid != nullptr && kid->is_string() ? std::string(kid->get_string()) : std::string();
    }

    static std::optional<std::string> decode_standard_base64(std::string_view text) {
        std::string url(text);
        for (auto& c : url) {
            if (c == '+') c = '-';
            if (c == '/') c = '_';
        }
        while (!url.empty() && url.back() == '=') url.pop_back();
        return auth::base64url_decode(url);
    }

    static constexpr int kJwksLeewaySeconds = 30;

    JwtPluginConfig config_;
    const auth::JwtCodec* platform_;
    std::shared_ptr<JwksCache> jwks_;
    PluginOptions options_;
    std::map<std::string, Key, std::less<>> keys_;
    std::mutex identities_mutex_;
    struct IdentityEntry {
        std::shared_ptr<const auth::Claims> claims;
        std::shared_ptr<const Identity> identity;
    };
    std::unordered_map<const auth::Claims*, IdentityEntry> identities_;
};

// ---------------------------------------------------------------------------------------------

class IpRestrictionPlugin final : public ImmediatePlugin {
  public:
    explicit IpRestrictionPlugin(IpRestrictionPluginConfig config) : config_(std::move(config)) {}

    Early decide(Exchange& exchange) override {
        auto address = IpAddress::parse(exchange.request.remote_address);
        if (address && config_.allows(*address)) return std::nullopt;
        return error(json::ErrorCode::Forbidden, config_.status, config_.message, exchange);
    }

  private:
    IpRestrictionPluginConfig config_;
};

// ---------------------------------------------------------------------------------------------

// Fails a chunked upload that grows past the limit (the upstream sees a broken body).
class LimitedBody final : public http::BodySource {
  public:
    LimitedBody(std::shared_ptr<http::BodySource> inner, std::uint64_t limit)
        : inner_(std::move(inner)), limit_(limit) {}
    boost::asio::awaitable<platform::Expected<std::string_view, std::string>> next() override {
        auto piece = co_await inner_->next();
        if (piece) {
            seen_ += piece->size();
            if (seen_ > limit_)
                co_return platform::unexpected(std::string("request size limit exceeded"));
        }
        co_return piece;
    }

  private:
    std::shared_ptr<http::BodySource> inner_;
    std::uint64_t limit_;
    std::uint64_t seen_ = 0;
};

class RequestSizeLimitingPlugin final : public ImmediatePlugin {
  public:
    explicit RequestSizeLimitingPlugin(RequestSizeLimitingPluginConfig config)
        : config_(std::move(config)) {}

    Early decide(Exchange& exchange) override {
        auto& request = exchange.request;
        if (config_.require_content_length && request.header("Content-Length").empty() &&
            request.method != http::Method::Get && request.method != http::Method::Head) {
            return error(json::ErrorCode::ValidationError, 411,
                         "a valid Content-Length header is required", exchange);
        }
        std::uint64_t size = request.body.size();
        if (request.body_stream) {
            // A streamed body is known by its Content-Length; a chunked one is limited as it
            // streams.
            if (auto length = request.header("Content-Length"); !length.empty()) {
                size = std::strtoull(std::string(length).c_str(), nullptr, 10);
            } else {
                request.body_stream = std::make_shared<LimitedBody>(std::move(request.body_stream),
                                                                    config_.limit_bytes);
            }
        }
        if (size > config_.limit_bytes) {
            return error(json::ErrorCode::PayloadTooLarge, 413,
                         "request size limit exceeded: at most " +
                             std::to_string(config_.limit_bytes) + " bytes",
                         exchange);
        }
        return std::nullopt;
    }

  private:
    RequestSizeLimitingPluginConfig config_;
};

// ---------------------------------------------------------------------------------------------

std::chrono::seconds period_length(RateLimitPeriod period) {
    switch (period) {
        case RateLimitPeriod::Second:
            return cache::kSecond;
        case RateLimitPeriod::Minute:
            return cache::kMinute;
        case RateLimitPeriod::Hour:
            return cache::kHour;
        case RateLimitPeriod::Day:
            return cache::kDay;
        case RateLimitPeriod::Month:
            return cache::kMonth;
        case RateLimitPeriod::Year:
            return cache::kYear;
    }
    return cache::kMinute;
}

// A number as decimal text on the stack: std::to_string costs three times what to_chars does,
// and a string, on every rate-limited request.
class Decimal {
  public:
    explicit Decimal(std::int64_t value)
        : size_(static_cast<std::size_t>(
              std::to_chars(std::begin(digits_), std::end(digits_), value).ptr - digits_)) {}
    std::string_view text() const { return {digits_, size_}; }

  private:
    char digits_[24];
    std::size_t size_;  // a length, not an end pointer, so that a copy stays valid
};

class RateLimitingPlugin final : public Plugin {
  public:
    RateLimitingPlugin(RateLimitingPluginConfig config, std::string scope,
                       cache::RateCounter& counter)
        : config_(std::move(config)), scope_(std::move(scope)), counter_(counter) {
        for (const auto& limit : config_.limits) {
            windows_.push_back(cache::WindowLimit{period_length(limit.period), limit.limit});
        }
    }

    // An in-memory counter decides at once; Redis is asked in on_request.
    bool decide_now(Exchange& exchange, Early& answer) override {
        if (local_ == nullptr) return false;
        const auto now = std::chrono::system_clock::now();
        // The local counter copies a key it keeps: built in a reused buffer, it costs no
        // allocation per request.
        thread_local std::string key;
        key.clear();
        write_key(key, exchange);
        answer = conclude(exchange, local_->decide(key, windows_, now), now);
        return true;
    }

    boost::asio::awaitable<void> on_request(Exchange& exchange, Early& answer) override {
        const std::string key = key_of(exchange);
        const auto now = std::chrono::system_clock::now();
        auto decision = co_await counter_.hit(key, windows_, now);
        if (!decision) {
            // Only reachable without a fallback counter; Kong's fault_tolerant semantics.
            if (!config_.fault_tolerant) {
                answer =
                    error(json::ErrorCode::Internal, 500, "rate limiting is unavailable", exchange);
            }
            co_return;
        }
        answer = conclude(exchange, *decision, now);
    }

  private:
    std::string key_of(const Exchange& exchange) const {
        std::string key;
        key.reserve(scope_.size() + 80);  // one allocation for a consumer id or an address
        write_key(key, exchange);
        return key;
    }

    void write_key(std::string& key, const Exchange& exchange) const {
        key.append(scope_);
        key.push_back('|');
        append_identifier(key, exchange);
    }

    // The rate-limit headers, and the 429 when the request is over the limit.
    Early conclude(Exchange& exchange, const cache::RateDecision& decision,
                   std::chrono::system_clock::time_point now) const {
        if (!config_.hide_client_headers) {
            const auto reset = std::chrono::duration_cast<std::chrono::seconds>(
                                   now.time_since_epoch() + decision.reset_after)
                                   .count();
            // Known names and decimal digits: nothing for append() to refuse, so its checks
            // (five scans per line) are skipped.
            auto& lines = exchange.response_headers;
            lines.append_parsed("X-RateLimit-Limit", Decimal(decision.limit).text());
            lines.append_parsed("X-RateLimit-Remaining", Decimal(decision.remaining).text());
            lines.append_parsed("X-RateLimit-Reset", Decimal(reset).text());
        }
        if (decision.allowed) return std::nullopt;
        const int retry_after = std::max<int>(1, static_cast<int>(decision.retry_after.count()));
        return error(json::ErrorCode::RateLimitExceeded, config_.error_code, config_.error_message,
                     exchange, retry_after);
    }

    // Whom the limit counts, as Kong: a missing consumer or header falls back to the address.
    void append_identifier(std::string& key, const Exchange& exchange) const {
        const auto& request = exchange.request;
        using LimitBy = RateLimitingPluginConfig::LimitBy;
        switch (config_.limit_by) {
            case LimitBy::Consumer:
            case LimitBy::Credential:
                if (!exchange.consumer.empty()) {
                    key.append("c:").append(exchange.consumer);
                    return;
                }
                break;
            case LimitBy::Header:
                if (auto value = request.header(config_.header_name); !value.empty()) {
                    key.append("h:").append(value);
                    return;
                }
                break;
            case LimitBy::Service:
                key.append("s:");
                if (exchange.match.service) key.append(exchange.match.service->name);
                return;
            case LimitBy::Path:
                key.append("p:").append(request.path());
                return;
            case LimitBy::Ip:
                break;
        }
        key.append("ip:").append(request.remote_address);
    }

    RateLimitingPluginConfig config_;
    std::string scope_;
    cache::RateCounter& counter_;
    cache::LocalRateCounter* local_ = dynamic_cast<cache::LocalRateCounter*>(&counter_);
    std::vector<cache::WindowLimit> windows_;
};

// ---------------------------------------------------------------------------------------------

class PrometheusPlugin final : public ImmediatePlugin {
  public:
    explicit PrometheusPlugin(PrometheusPluginConfig config)
        : config_(config),
          requests_(platform::telemetry::default_registry().counter(
              "gateway_requests_total", "Requests through the gateway by service, route, status.",
              {"service", "route", "status"})) {}

    Early decide(Exchange& /*exchange*/) override { return std::nullopt; }

    void on_response(Exchange& exchange, Response& response) override {
        const auto& match = exchange.match;
        std::string_view service = match.service ? std::string_view(match.service->name) : "";
        std::string_view route = match.route && !match.route->name.empty()
                                     ? std::string_view(match.route->name)
                                     : match.matched_prefix;
        const std::string status = std::to_string(response.status);
        requests_.with({service, route, status}).inc();
    }

  private:
    PrometheusPluginConfig config_;
    platform::telemetry::CounterFamily& requests_;
};

}  // namespace

std::shared_ptr<Plugin> make_plugin(const PluginSpec& spec, const GatewayConfig& config,
                                    std::string scope, const PluginServices& services,
                                    const PluginOptions& options) {
    if (const auto* jwt = spec.get<JwtPluginConfig>()) {
        std::shared_ptr<JwksCache> jwks;
        if (!jwt->jwks_url.empty()) {
            if (!services.jwks_cache_for) throw std::runtime_error("jwks_url needs a fetcher");
            jwks = services.jwks_cache_for(jwt->jwks_url);
        }
        return std::make_shared<JwtPlugin>(*jwt, config, services.platform_jwt, std::move(jwks),
                                           options);
    }
    if (const auto* limits = spec.get<RateLimitingPluginConfig>()) {
        cache::RateCounter* counter =
            services.local_counter_for ? services.local_counter_for(scope) : services.local_counter;
        if (limits->policy == RateLimitingPluginConfig::Policy::Redis) {
            if (services.redis_counter == nullptr) {
                throw std::runtime_error(
                    "rate-limiting with policy redis needs a Redis (cache.redis_url or "
                    "redis_host)");
            }
            counter = services.redis_counter;
        }
        return std::make_shared<RateLimitingPlugin>(*limits, std::move(scope), *counter);
    }
    if (const auto* cors = spec.get<CorsPluginConfig>()) return std::make_shared<CorsPlugin>(*cors);
    if (const auto* correlation = spec.get<CorrelationIdPluginConfig>()) {
        return std::make_shared<CorrelationIdPlugin>(*correlation);
    }
    if (const auto* prometheus = spec.get<PrometheusPluginConfig>()) {
        return std::make_shared<PrometheusPlugin>(*prometheus);
    }
    if (const auto* restriction = spec.get<IpRestrictionPluginConfig>()) {
        return std::make_shared<IpRestrictionPlugin>(*restriction);
    }
    if (const auto* size = spec.get<RequestSizeLimitingPluginConfig>()) {
        return std::make_shared<RequestSizeLimitingPlugin>(*size);
    }
    throw std::runtime_error("unknown plugin " + spec.name);
}

}  // namespace aether::services::gateway
