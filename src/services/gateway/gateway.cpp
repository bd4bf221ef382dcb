// The gateway's request path: route, plugins, then in-process dispatch or a proxied exchange
// (weighted targets, passive circuit breaking, retries before any byte was sent, streaming
// bodies, WebSocket relay, shadow traffic), and configuration reloads by atomic snapshot swap.
#include "services/gateway/gateway.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <unordered_map>

#include "platform/auth/jwt.h"
#include "platform/cache/rate_counter.h"
#include "platform/cache/redis_client.h"
#include "platform/http/client.h"
#include "platform/http/pipeline.h"
#include "platform/json/envelope.h"
#include "platform/shared_slot.h"
#include "platform/telemetry/log.h"
#include "platform/telemetry/metrics.h"
#include "services/gateway/jwks_cache.h"
#include "services/gateway/route_table.h"

namespace aether::services::gateway {

namespace asio = boost::asio;
namespace http = platform::http;
namespace json = platform::json;
namespace cache = platform::cache;
namespace telemetry = platform::telemetry;
using platform::unexpected;
using Response = http::Response;
using SteadyClock = std::chrono::steady_clock;
using namespace std::string_view_literals;

namespace {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               SteadyClock::now().time_since_epoch())
        .count();
}

// Hop-by-hop headers (RFC 9110 §7.6.1) and those the gateway sets itself. By length first:
// every header of every proxied request and response passes through here.
bool is_hop_by_hop(std::string_view name) {
    switch (name.size()) {
        case 2:
            return http::iequals(name, "te");
        case 4:
            return http::iequals(name, "host");
        case 7:
            return http::iequals(name, "trailer") || http::iequals(name, "upgrade");
        case 10:
            return http::iequals(name, "connection") || http::iequals(name, "keep-alive");
        case 11:
            return http::iequals(name, "traceparent");
        case 12:
            return http::iequals(name, "x-request-id");
        case 14:
            return http::iequals(name, "content-length");
        case 15:
            return http::iequals(name, "x-forwarded-for");
        case 16:
            return http::iequals(name, "proxy-connection") ||
                   http::iequals(name, "x-forwarded-host");
        case 17:
            return http::iequals(name, "transfer-encoding") ||
                   http::iequals(name, "x-forwarded-proto");
        case 18:
            return http::iequals(name, "proxy-authenticate");
        case 19:
            return http::iequals(name, "proxy-authorization");
        default:
            return false;
    }
}

// Whether the comma-separated header value lists `token` (case-insensitive).
bool lists_token(std::string_view value, std::string_view token) {
    if (value.empty()) return false;
    std::size_t at = 0;
    while (at <= value.size()) {
        auto end = value.find(',', at);
        auto item = value.substr(at, end == std::string_view::npos ? end : end - at);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (http::iequals(item, token)) return true;
        if (end == std::string_view::npos) break;
        at = end + 1;
    }
    return false;
}

// Whether a Connection value names headers beyond its usual options (keep-alive, close,
// upgrade), which are hop-by-hop anyway: only then must each header be looked up in it.
bool names_other_headers(std::string_view connection) {
    std::size_t at = 0;
    while (at < connection.size()) {
        auto end = connection.find(',', at);
        auto item = connection.substr(at, end == std::string_view::npos ? end : end - at);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty() && !http::iequals(item, "keep-alive") && !http::iequals(item, "close") &&
            !http::iequals(item, "upgrade")) {
            return true;
        }
        if (end == std::string_view::npos) break;
        at = end + 1;
    }
    return false;
}

bool is_idempotent(http::Method method, std::string_view text) {
    switch (method) {
        case http::Method::Get:
        case http::Method::Head:
        case http::Method::Put:
        case http::Method::Delete:
        case http::Method::Options:
            return true;
        case http::Method::Other:
            return text == "TRACE";
        default:
            return false;
    }
}

std::string_view method_text(const http::Request& request) {
    return request.method == http::Method::Other ? std::string_view(request.method_text)
                                                 : http::method_name(request.method);
}

Response gateway_error(json::ErrorCode code, int status, std::string_view message,
                       const http::Request& request, std::optional<int> retry_after = {}) {
    Response response =
        http::error_response(code, message, request.context.request_id, {}, retry_after);
    response.status = status;
    return response;
}

// The answer when the client's own streamed body fails: too large 413, too slow 408, else 400.
Response body_failure_response(std::string_view reason, const http::Request& request) {
    if (reason.find("too large") != std::string_view::npos ||
        reason.find("size limit") != std::string_view::npos) {
        return gateway_error(json::ErrorCode::PayloadTooLarge, 413, reason, request);
    }
    if (reason.find("in time") != std::string_view::npos) {
        return gateway_error(json::ErrorCode::RequestTimeout, 408, reason, request);
    }
    return gateway_error(json::ErrorCode::ValidationError, 400, reason, request);
}

std::string base_url(const std::string& scheme, const std::string& host, std::uint16_t port) {
    return scheme + "://" + host + ":" + std::to_string(port);
}

// ---------------------------------------------------------------------------------------------
// Targets, weights and the passive circuit breaker

class Balancer {
  public:
    struct Target {
        std::string base;  // scheme://host:port
        std::string authority;
        int weight = 100;
        std::atomic<int> failures{0};
        std::atomic<std::int64_t> open_until_ms{0};  // 0 = closed
        std::atomic<bool> probing{false};
        std::atomic<bool> healthy{true};  // active health checks
        int active_successes = 0;         // only the health-check loop touches these
        int active_failures = 0;
    };

    Balancer(std::vector<std::unique_ptr<Target>> targets, int failure_threshold,
             std::chrono::milliseconds open_for)
        : targets_(std::move(targets)),
          failure_threshold_(std::max(1, failure_threshold)),
          open_for_(open_for) {
        build_schedule();
    }

    // The next target by weight, skipping unhealthy ones and open circuits; a circuit whose
    // cool-down has passed lets one probe through (half-open). Null when none can take it.
    Target* pick() {
        const std::size_t n = schedule_.size();
        if (n == 0) return nullptr;
        const std::size_t start = next_.fetch_add(1, std::memory_order_relaxed);
        const std::int64_t now = now_ms();
        for (std::size_t i = 0; i < n; ++i) {
            Target* target = targets_[schedule_[(start + i) % n]].get();
            if (!target->healthy.load(std::memory_order_relaxed)) continue;
            const std::int64_t open_until = target->open_until_ms.load(std::memory_order_relaxed);
            if (open_until == 0) return target;
            if (now < open_until) continue;
            bool expected = false;
            if (target->probing.compare_exchange_strong(expected, true)) return target;
        }
        return nullptr;
    }

    void succeeded(Target* target) {
        target->failures.store(0, std::memory_order_relaxed);
        if (target->open_until_ms.exchange(0) != 0) {
            telemetry::log_info("upstream circuit closed", {{"target", target->authority}});
        }
        target->probing.store(false);
    }

    void failed(Target* target) {
        const int failures = target->failures.fetch_add(1) + 1;
        const bool was_probe = target->probing.exchange(false);
        if (was_probe || failures >= failure_threshold_) {
            if (target->open_until_ms.exchange(now_ms() + open_for_.count()) == 0) {
                telemetry::log_warn(
                    "upstream circuit opened",
                    {{"target", target->authority},
                     {"consecutive_failures", static_cast<std::int64_t>(failures)}});
            }
        }
    }

    std::vector<std::unique_ptr<Target>>& targets() { return targets_; }

  private:
    // Smooth weighted round-robin (nginx's), unrolled once: targets interleave instead of
    // arriving in runs, and 90/10 weights give exactly one in ten over every full cycle.
    void build_schedule() {
        int divisor = 0;
        for (const auto& target : targets_) divisor = std::gcd(divisor, target->weight);
        if (divisor == 0) return;
        std::vector<int> weights;
        int total = 0;
        for (const auto& target : targets_) {
            weights.push_back(target->weight / divisor);
            total += weights.back();
        }
        std::vector<int> current(weights.size(), 0);
        for (int step = 0; step < total; ++step) {
            std::size_t best = 0;
            for (std::size_t i = 0; i < weights.size(); ++i) {
                current[i] += weights[i];
                if (current[i] > current[best]) best = i;
            }
            current[best] -= total;
            schedule_.push_back(best);
        }
    }

    std::vector<std::unique_ptr<Target>> targets_;
    std::vector<std::size_t> schedule_;
    std::atomic<std::size_t> next_{0};
    int failure_threshold_;
    std::chrono::milliseconds open_for_;
};

// ---------------------------------------------------------------------------------------------
// Upstream clients: one pooled client per service settings, kept across reloads.

// co_spawn needs a default-constructible result, which Expected is not.
template <class T>
asio::awaitable<std::optional<T>> as_optional(asio::awaitable<T> inner) {
    co_return co_await std::move(inner);
}

// Runs `inner` on `strand` and resumes the caller on its own executor.
template <class T>
asio::awaitable<T> on_strand(const asio::any_io_executor& strand, asio::awaitable<T> inner) {
    auto result =
        co_await asio::co_spawn(strand, as_optional(std::move(inner)), asio::use_awaitable);
    co_return std::move(*result);
}

// Runs `inner` on the client's strand: HttpClient is not thread-safe, and with several IO
// threads the request's coroutine may resume anywhere.
class StrandBody final : public http::BodySource {
  public:
    StrandBody(std::shared_ptr<http::BodySource> inner, asio::any_io_executor strand)
        : inner_(std::move(inner)), strand_(std::move(strand)) {}
    ~StrandBody() override {
        // An abandoned body returns its connection to the pool: that must happen on the strand.
        asio::post(strand_, [inner = std::move(inner_)]() mutable { inner.reset(); });
    }
    asio::awaitable<platform::Expected<std::string_view, std::string>> next() override {
        co_return co_await on_strand(strand_, inner_->next());
    }

  private:
    std::shared_ptr<http::BodySource> inner_;
    asio::any_io_executor strand_;
};

// The upstream connection after a 101: its pool slot is returned when it is destroyed, which
// must happen on the client's strand.
class StrandTunnel final : public http::Tunnel {
  public:
    StrandTunnel(std::shared_ptr<http::Tunnel> inner, asio::any_io_executor strand)
        : inner_(std::move(inner)), strand_(std::move(strand)) {}
    ~StrandTunnel() override {
        asio::post(strand_, [inner = std::move(inner_)]() mutable { inner.reset(); });
    }
    std::string take_buffered() override { return inner_->take_buffered(); }
    asio::awaitable<platform::Expected<std::size_t, std::string>> read_some(
        std::span<char> into) override {
        return inner_->read_some(into);
    }
    asio::awaitable<platform::Expected<void, std::string>> write(std::string_view bytes) override {
        return inner_->write(bytes);
    }
    void shutdown_send() override { inner_->shutdown_send(); }

  private:
    std::shared_ptr<http::Tunnel> inner_;
    asio::any_io_executor strand_;
};

class UpstreamClient {
  public:
    UpstreamClient(asio::any_io_executor executor, http::ClientOptions options, bool stranded)
        : executor_(stranded ? asio::any_io_executor(asio::make_strand(executor)) : executor),
          stranded_(stranded),
          client_(std::make_shared<http::HttpClient>(executor_, std::move(options))) {}
    ~UpstreamClient() {
        // The pool's state belongs to the strand: the client is closed and destroyed there.
        if (stranded_)
            asio::post(executor_, [client = std::move(client_)]() mutable { client.reset(); });
    }
    UpstreamClient(const UpstreamClient&) = delete;
    UpstreamClient& operator=(const UpstreamClient&) = delete;

    // Not a coroutine on one thread: the client's own coroutine is all there is to await.
    asio::awaitable<platform::Expected<http::StreamedResponse, http::ClientError>> send_streamed(
        http::ClientRequest request) {
        if (!stranded_) return client_->send_streamed(std::move(request));
        return send_streamed_on_strand(std::move(request));
    }

    void close() {
        if (!stranded_) {
            client_->close();
            return;
        }
        asio::post(executor_, [client = client_] { client->close(); });
    }

    asio::awaitable<platform::Expected<http::ClientResponse, http::ClientError>> send(
        http::ClientRequest request) {
        if (!stranded_) co_return co_await client_->send(std::move(request));
        co_return co_await on_strand(executor_, client_->send(std::move(request)));
    }

  private:
    // HttpClient::send_streamed prepares the request, with the client's origin table and pools,
    // when it is called: it must be called on the strand, so from inside a coroutine spawned
    // there, not before.
    static asio::awaitable<platform::Expected<http::StreamedResponse, http::ClientError>>
    send_streamed_when_resumed(std::shared_ptr<http::HttpClient> client,
                               http::ClientRequest request) {
        co_return co_await client->send_streamed(std::move(request));
    }

    asio::awaitable<platform::Expected<http::StreamedResponse, http::ClientError>>
    send_streamed_on_strand(http::ClientRequest request) {
        auto result =
            co_await on_strand(executor_, send_streamed_when_resumed(client_, std::move(request)));
        if (result && result->body) {
            result->body = std::make_shared<StrandBody>(std::move(result->body), executor_);
        }
        if (result && result->upgraded) {
            result->upgraded =
                std::make_shared<StrandTunnel>(std::move(result->upgraded), executor_);
        }
        co_return result;
    }

    asio::any_io_executor executor_;
    bool stranded_;
    std::shared_ptr<http::HttpClient> client_;
};

// ---------------------------------------------------------------------------------------------
// Shadow traffic

struct MirrorInstruments {
    telemetry::CounterFamily& requests = telemetry::default_registry().counter(
        "gateway_mirror_requests_total",
        "Requests copied to a shadow upstream, by route and outcome (match, status_mismatch, "
        "body_mismatch, error, dropped).",
        {"route", "result"});
};

MirrorInstruments& mirror_instruments() {
    static MirrorInstruments instruments;
    return instruments;
}

// The two sides of one mirrored request; whichever finishes last compares them.
struct MirrorComparison {
    std::mutex mutex;
    std::string route;
    Mirror::Compare compare = Mirror::Compare::Status;
    static constexpr std::size_t kBodyLimit = 1 << 20;
    bool primary_done = false, shadow_done = false;
    int primary_status = 0, shadow_status = 0;
    std::string primary_body, shadow_body;
    bool primary_body_complete = true;
    bool shadow_failed = false;

    void primary_finished(int status, std::string body, bool complete) {
        std::unique_lock lock(mutex);
        primary_done = true;
        primary_status = status;
        primary_body = std::move(body);
        primary_body_complete = complete;
        if (shadow_done) conclude();
    }
    void shadow_finished(int status, std::string body, bool failed) {
        std::unique_lock lock(mutex);
        shadow_done = true;
        shadow_status = status;
        shadow_body = std::move(body);
        shadow_failed = failed;
        if (primary_done) conclude();
    }

  private:
    void conclude() {
        std::string_view result = "match";
        if (shadow_failed) {
            result = "error";
        } else if (compare != Mirror::Compare::None && primary_status != shadow_status) {
            result = "status_mismatch";
        } else if (compare == Mirror::Compare::Body && primary_body_complete &&
                   primary_body != shadow_body) {
            result = "body_mismatch";
        }
        mirror_instruments().requests.with({route, result}).inc();
        if (result != "match") {
            telemetry::log_info("mirror mismatch",
                                {{"route", route},
                                 {"result", result},
                                 {"primary_status", static_cast<std::int64_t>(primary_status)},
                                 {"shadow_status", static_cast<std::int64_t>(shadow_status)}});
        }
    }
};

// Passes the primary body through unchanged while keeping a copy for the comparison.
class TeeBody final : public http::BodySource {
  public:
    TeeBody(std::shared_ptr<http::BodySource> inner, std::shared_ptr<MirrorComparison> comparison,
            int status, bool keep_copy)
        : inner_(std::move(inner)),
          comparison_(std::move(comparison)),
          status_(status),
          keep_copy_(keep_copy) {}
    ~TeeBody() override {
        if (!reported_) comparison_->primary_finished(status_, std::move(copy_), false);
    }
    asio::awaitable<platform::Expected<std::string_view, std::string>> next() override {
        auto piece = co_await inner_->next();
        if (!piece) {
            report(false);
        } else if (piece->empty()) {
            report(true);
        } else if (keep_copy_) {
            if (copy_.size() + piece->size() <= MirrorComparison::kBodyLimit) {
                copy_.append(piece->data(), piece->size());
            } else {
                complete_ = false;
            }
        }
        co_return piece;
    }

  private:
    void report(bool finished) {
        if (reported_) return;
        reported_ = true;
        comparison_->primary_finished(status_, std::move(copy_), finished && complete_);
    }
    std::shared_ptr<http::BodySource> inner_;
    std::shared_ptr<MirrorComparison> comparison_;
    int status_;
    bool keep_copy_;
    bool complete_ = true;
    bool reported_ = false;
    std::string copy_;
};

// The mirror's own path prefix (url: http://shadow/v2) in front of the forwarded path.
std::string mirror_path(std::string_view prefix, std::string_view path) {
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    return std::string(prefix) + std::string(path);
}

asio::awaitable<void> send_shadow(std::shared_ptr<UpstreamClient> client,
                                  http::ClientRequest request,
                                  std::shared_ptr<MirrorComparison> comparison,
                                  std::shared_ptr<std::atomic<int>> in_flight) {
    auto result = co_await client->send(std::move(request));
    in_flight->fetch_sub(1);
    if (!result) {
        comparison->shadow_finished(0, {}, true);
        co_return;
    }
    comparison->shadow_finished(result->status, std::move(result->body), false);
}

// ---------------------------------------------------------------------------------------------
// WebSocket (and any upgraded protocol) relay

asio::awaitable<void> pump(http::Tunnel& from, http::Tunnel& to) {
    std::array<char, 16 * 1024> buffer{};
    for (;;) {
        auto read = co_await from.read_some(buffer);
        if (!read || *read == 0) break;
        auto written = co_await to.write(std::string_view(buffer.data(), *read));
        if (!written) break;
    }
    to.shutdown_send();
}

asio::awaitable<void> relay(std::shared_ptr<http::Tunnel> upstream, http::Tunnel& client) {
    using namespace asio::experimental::awaitable_operators;
    // Bytes each side sent right behind its handshake go first.
    std::string early_client = client.take_buffered();
    if (!early_client.empty() && !co_await upstream->write(early_client)) co_return;
    std::string early_upstream = upstream->take_buffered();
    if (!early_upstream.empty() && !co_await client.write(early_upstream)) co_return;
    co_await (pump(client, *upstream) && pump(*upstream, client));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct ServiceRuntime {
    std::shared_ptr<Balancer> balancer;
    std::shared_ptr<UpstreamClient> client;
    std::shared_ptr<UpstreamClient> mirror_client;
    std::shared_ptr<Balancer> mirror_balancer;
    std::string upstream_host_header;  // the upstream's host_header, if any
    const Upstream* upstream = nullptr;
};

struct Snapshot {
    std::shared_ptr<const RouteTable> table;
    std::unordered_map<const PluginSpec*, std::shared_ptr<Plugin>> plugins;
    std::unordered_map<const Service*, ServiceRuntime> services;
};

struct Gateway::Impl : std::enable_shared_from_this<Gateway::Impl> {
    asio::any_io_executor executor;
    GatewayOptions options;
    const platform::auth::JwtCodec& platform_jwt;
    LocalDispatch local_dispatch;
    cache::LocalRateCounter local_counter;
    std::unique_ptr<cache::RedisClient> redis;
    std::unique_ptr<cache::RedisRateCounter> redis_counter;
    std::unique_ptr<cache::LocalRateCounter> fallback_local;
    std::unique_ptr<cache::FallbackRateCounter> fallback_counter;
    platform::SharedSlot<const Snapshot> snapshot;
    std::mutex reload_mutex;
    struct FileStamp {
        std::int64_t mtime_ns = 0;
        std::int64_t size = -1;
        bool operator==(const FileStamp&) const = default;
    } stamp;
    // Upstream clients by their settings, so a reload keeps warm connection pools.
    std::map<std::string, std::weak_ptr<UpstreamClient>> clients;
    std::map<std::string, std::shared_ptr<JwksCache>> jwks_caches;
    // By plugin scope, kept across reloads so counts survive them.
    std::map<std::string, std::unique_ptr<cache::LocalRateCounter>> local_counters;
    std::shared_ptr<std::atomic<int>> mirrors_in_flight = std::make_shared<std::atomic<int>>(0);
    static constexpr int kMaxMirrorsInFlight = 256;
    std::mt19937_64 random{std::random_device{}()};
    std::mutex random_mutex;
    telemetry::CounterFamily& reloads = telemetry::default_registry().counter(
        "gateway_config_reloads_total", "Configuration reloads by result (ok, rejected).",
        {"result"});

    Impl(asio::any_io_executor executor_, GatewayOptions options_,
         const platform::auth::JwtCodec& jwt, LocalDispatch dispatch)
        : executor(std::move(executor_)),
          options(std::move(options_)),
          platform_jwt(jwt),
          local_dispatch(std::move(dispatch)) {}

    static FileStamp stamp_of(const std::string& path) {
        struct stat info {};
        if (::stat(path.c_str(), &info) != 0) return {};
        return {
            static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec,
            static_cast<std::int64_t>(info.st_size)};
    }

    platform::Expected<std::shared_ptr<const GatewayConfig>, std::string> load() {
        auto parsed = options.config_path.empty()
                          ? parse_gateway_config(options.builtin_yaml, "built-in gateway config")
                          : load_gateway_config(options.config_path);
        if (!parsed) {
            std::string message;
            for (const auto& problem : parsed.error()) {
                if (!message.empty()) message += "\n";
                message += problem.to_string();
            }
            return unexpected(std::move(message));
        }
        for (const auto& service : (*parsed)->services) {
            if (!service.in_process()) continue;
            if (std::find(options.local_modules.begin(), options.local_modules.end(),
                          service.module) == options.local_modules.end()) {
                return unexpected(service.origin + ": service " + service.name + " names module " +
                                  service.module +
                                  ", which this process does not run (use url: to proxy)");
            }
        }
        return *parsed;
    }

    std::shared_ptr<UpstreamClient> client_for(const Service& service) {
        http::ClientOptions client_options;
        client_options.connect_timeout = service.connect_timeout;
        client_options.request_timeout = service.connect_timeout + service.write_timeout;
        client_options.max_connections_per_host = 1024;
        client_options.user_agent.clear();
        const std::string key = std::to_string(service.connect_timeout.count()) + "/" +
                                std::to_string(service.write_timeout.count());
        if (auto existing = clients[key].lock()) return existing;
        auto created =
            std::make_shared<UpstreamClient>(executor, client_options, options.multi_threaded);
        clients[key] = created;
        return created;
    }

    static std::shared_ptr<Balancer> balancer_for(const Endpoint& endpoint,
                                                  const Upstream* upstream) {
        std::vector<std::unique_ptr<Balancer::Target>> targets;
        int threshold = 5;
        if (upstream != nullptr) {
            for (const auto& target : upstream->targets) {
                if (target.weight == 0) continue;
                auto entry = std::make_unique<Balancer::Target>();
                entry->base = base_url(endpoint.scheme, target.host, target.port);
                entry->authority = target.host + ":" + std::to_string(target.port);
                entry->weight = target.weight;
                targets.push_back(std::move(entry));
            }
            const auto& passive = upstream->passive.unhealthy;
            const int configured = std::max({passive.tcp_failures, passive.timeouts});
            if (configured > 0) threshold = configured;
        } else {
            auto entry = std::make_unique<Balancer::Target>();
            entry->base = base_url(endpoint.scheme, endpoint.host, endpoint.port);
            entry->authority = endpoint.authority();
            targets.push_back(std::move(entry));
        }
        return std::make_shared<Balancer>(std::move(targets), threshold,
                                          std::chrono::milliseconds(2000));
    }

    std::shared_ptr<const Snapshot> build(std::shared_ptr<const GatewayConfig> config) {
        auto snapshot = std::make_shared<Snapshot>();
        snapshot->table = std::make_shared<const RouteTable>(config);
        PluginServices services;
        services.platform_jwt = &platform_jwt;
        services.local_counter = &local_counter;
        services.redis_counter = fallback_counter.get();
        services.jwks_cache_for = [this](const std::string& url) { return jwks_cache_for(url); };
        services.local_counter_for = [this](const std::string& scope) -> cache::RateCounter* {
            auto& counter = local_counters[scope];
            if (!counter) counter = std::make_unique<cache::LocalRateCounter>();
            return counter.get();
        };
        auto add_plugins = [&](const std::vector<PluginSpec>& specs, const std::string& scope) {
            for (const auto& spec : specs) {
                if (!spec.enabled) continue;
                snapshot->plugins.emplace(
                    &spec, make_plugin(spec, *config, scope, services, options.plugin_options));
            }
        };
        add_plugins(config->plugins, "global");
        for (const auto& service : config->services) {
            add_plugins(service.plugins, "service:" + service.name);
            for (std::size_t i = 0; i < service.routes.size(); ++i) {
                const auto& route = service.routes[i];
                add_plugins(route.plugins,
                            "route:" + service.name + "/" +
                                (route.name.empty() ? std::to_string(i) : route.name));
            }
            if (service.in_process()) continue;
            ServiceRuntime runtime;
            runtime.upstream =
                service.upstream.empty() ? nullptr : config->find_upstream(service.upstream);
            runtime.balancer = balancer_for(service.endpoint, runtime.upstream);
            if (runtime.upstream) runtime.upstream_host_header = runtime.upstream->host_header;
            runtime.client = client_for(service);
            if (service.mirror) {
                const auto* mirror_upstream = service.mirror->upstream.empty()
                                                  ? nullptr
                                                  : config->find_upstream(service.mirror->upstream);
                runtime.mirror_balancer = balancer_for(service.mirror->endpoint, mirror_upstream);
                Service mirror_settings;
                mirror_settings.connect_timeout = service.mirror->timeout;
                mirror_settings.write_timeout = service.mirror->timeout;
                runtime.mirror_client = client_for(mirror_settings);
            }
            snapshot->services.emplace(&service, std::move(runtime));
        }
        return snapshot;
    }

    void log_rejected(std::string_view errors) {
        reloads.with({"rejected"}).inc();
        if (snapshot.load() == nullptr) {
            telemetry::log_error("gateway configuration rejected",
                                 {{"file", options.config_path}, {"errors", errors}});
        } else {
            telemetry::log_error("gateway configuration rejected; the previous one keeps serving",
                                 {{"file", options.config_path}, {"errors", errors}});
        }
    }

    platform::Expected<void, std::string> reload() {
        std::lock_guard lock(reload_mutex);
        const auto stamp_before =
            options.config_path.empty() ? FileStamp{} : stamp_of(options.config_path);
        auto config = load();
        if (!config) {
            stamp = stamp_before;  // do not retry the same broken file every poll
            log_rejected(config.error());
            return unexpected(std::move(config).error());
        }
        std::shared_ptr<const Snapshot> next;
        try {
            next = build(*config);
        } catch (const std::exception& failure) {
            stamp = stamp_before;
            log_rejected(failure.what());
            return unexpected(std::string(failure.what()));
        }
        snapshot.store(std::move(next));
        stamp = stamp_before;
        reloads.with({"ok"}).inc();
        telemetry::log_info(
            "gateway configuration loaded",
            {{"file", options.config_path.empty() ? std::string("built-in") : options.config_path},
             {"services", static_cast<std::int64_t>((*config)->services.size())}});
        return {};
    }

    // One cache per JWKS URL for the process's life: reloads keep the keys already fetched.
    std::shared_ptr<JwksCache> jwks_cache_for(const std::string& url) {
        auto& cache = jwks_caches[url];
        if (!cache) {
            Service fetch_settings;
            fetch_settings.connect_timeout = std::chrono::milliseconds(2000);
            fetch_settings.write_timeout = std::chrono::milliseconds(2000);
            auto client = client_for(fetch_settings);
            cache = std::make_shared<JwksCache>(
                url,
                [client](const std::string& target)
                    -> asio::awaitable<platform::Expected<std::string, std::string>> {
                    http::ClientRequest request;
                    request.url = target;
                    request.timeout = std::chrono::milliseconds(3000);
                    auto response = co_await client->send(std::move(request));
                    if (!response) co_return unexpected(response.error().message);
                    if (response->status != 200) {
                        co_return unexpected("status " + std::to_string(response->status));
                    }
                    co_return std::move(response->body);
                });
        }
        return cache;
    }

    bool sample(double percentage) {
        if (percentage >= 100) return true;
        if (percentage <= 0) return false;
        std::lock_guard lock(random_mutex);
        return std::uniform_real_distribution<double>(0, 100)(random) < percentage;
    }

    // Reads a streamed request body into request.body; an answer when that fails (413, 400).
    static asio::awaitable<std::optional<Response>> gather_body(http::Request& request,
                                                                std::size_t limit) {
        auto source = std::move(request.body_stream);
        if (auto length = request.header("Content-Length"); !length.empty()) {
            std::uint64_t declared = 0;
            std::from_chars(length.data(), length.data() + length.size(), declared);
            if (declared > limit) {
                // Refused from the declaration alone: nothing of it is read.
                co_return gateway_error(json::ErrorCode::PayloadTooLarge, 413,
                                        "request body is too large", request);
            }
        }
        for (;;) {
            auto piece = co_await source->next();
            if (!piece) co_return body_failure_response(piece.error(), request);
            if (piece->empty()) co_return std::nullopt;
            if (request.body.size() + piece->size() > limit) {
                co_return gateway_error(json::ErrorCode::PayloadTooLarge, 413,
                                        "request body is too large", request);
            }
            request.body.append(piece->data(), piece->size());
        }
    }

    // Modules answer errors by throwing; the plugins must see those answers too.
    asio::awaitable<Response> dispatch_in_process(http::Request& request) {
        std::exception_ptr failure;
        try {
            co_return co_await local_dispatch(request);
        } catch (...) {
            failure = std::current_exception();
        }
        co_return http::response_for_exception(failure, request);
    }

    // Streamed bodies are gathered first: modules read whole bodies.
    asio::awaitable<Response> gather_and_dispatch(http::Request& request) {
        auto gathered = co_await gather_body(request, options.max_body_bytes);
        if (gathered) co_return std::move(*gathered);
        co_return co_await dispatch_in_process(request);
    }

    // Asio recycles coroutine frames of up to about 1 KiB; a larger one is a trip through malloc's
    // slow path on every request. So the per-request coroutines below keep in their frames only
    // what lives across a suspension; routing, the choice of destination, the mirror and the
    // building of answers are plain functions.
    asio::awaitable<Response> handle(http::Request& request);
    // `current` stays alive with the request's route_owner.
    asio::awaitable<Response> run_route(http::Request& request, const Snapshot& current,
                                        RouteMatch match);
    std::optional<Response> route(http::Request& request, const Snapshot& current,
                                  RouteMatch& match);
    asio::awaitable<Response> forward(http::Request& request, const RouteMatch& match,
                                      const Snapshot& current);
    // `match` by value: without plugins, proxy is called from handle, whose match is gone by
    // the time the exchange resumes.
    asio::awaitable<Response> proxy(http::Request& request, RouteMatch match,
                                    const ServiceRuntime& runtime);
    std::shared_ptr<MirrorComparison> start_mirror(const http::Request& request,
                                                   const RouteMatch& match,
                                                   const ServiceRuntime& runtime,
                                                   const std::string& path, bool upgrade);
    asio::awaitable<void> check_health(std::shared_ptr<const Snapshot> current);
};

// ---------------------------------------------------------------------------------------------

std::optional<Response> Gateway::Impl::route(http::Request& request, const Snapshot& current,
                                             RouteMatch& match) {
    auto normalized = normalize_path(request.target);
    if (!normalized) {
        return gateway_error(json::ErrorCode::ValidationError, 400, "malformed request path",
                             request);
    }
    match = current.table->match(method_text(request), request.header("Host"), *normalized);
    if (match.outcome == RouteMatch::Outcome::NotFound) {
        request.context.route = "unmatched";
        return gateway_error(json::ErrorCode::NotFound, 404, "no route matches this request",
                             request);
    }
    if (match.outcome == RouteMatch::Outcome::MethodNotAllowed) {
        request.context.route = "unmatched";
        Response response = gateway_error(json::ErrorCode::MethodNotAllowed, 405,
                                          "method not allowed on this route", request);
        response.set_header("Allow", method_list(match.allowed));
        return response;
    }
    request.context.route =
        match.route->name.empty() ? match.matched_prefix : std::string_view(match.route->name);
    request.target = std::move(*normalized);

    // Identity headers are the gateway's to set: whatever a client sent never reaches a
    // service, whichever plugins the route has.
    std::erase_if(request.headers, [](const auto& header) {
        return header.first.size() >= 7 && http::iequals(header.first.substr(0, 7), "X-User-");
    });
    return std::nullopt;
}

asio::awaitable<Response> Gateway::Impl::forward(http::Request& request, const RouteMatch& match,
                                                 const Snapshot& current) {
    if (!match.service->in_process()) {
        return proxy(request, match, current.services.at(match.service));
    }
    request.target = match.upstream_path(request.target);
    if (request.body_stream) return gather_and_dispatch(request);
    return dispatch_in_process(request);
}

asio::awaitable<Response> Gateway::Impl::handle(http::Request& request) {
    auto current = snapshot.load();
    // The route label points into this snapshot's configuration; the request keeps it alive
    // until the access log and metrics have used it.
    request.context.route_owner = current;
    RouteMatch match;
    if (auto early = route(request, *current, match))
        return http::ready_response(std::move(*early));
    // A route without plugins has nothing to run around the exchange: no coroutine of its own
    // (the request's route_owner keeps the snapshot alive).
    if (match.plugins.empty()) return forward(request, match, *current);
    return run_route(request, *current, match);
}

asio::awaitable<Response> Gateway::Impl::run_route(http::Request& request, const Snapshot& current,
                                                   RouteMatch match) {
    Exchange exchange{request, match, {}, {}, {}};
    std::optional<Response> answer;
    // Indexed loops: a range-for keeps its range and both iterators in the frame, which is at
    // the size past which a frame is neither recycled nor in glibc's per-thread cache.
    for (std::size_t i = 0; i < match.plugins.size() && !answer; ++i) {
        Plugin& plugin = *current.plugins.at(match.plugins[i]);
        if (!plugin.decide_now(exchange, answer)) co_await plugin.on_request(exchange, answer);
    }
    if (!answer) answer = co_await forward(request, match, current);
    // Every plugin of the route sees the response, also when an earlier one answered (Kong's
    // header and log phases): CORS headers on a 401, the 429 in the request counts.
    for (std::size_t i = 0; i < match.plugins.size(); ++i) {
        current.plugins.at(match.plugins[i])->on_response(exchange, *answer);
    }
    answer->set_headers(exchange.response_headers);
    co_return std::move(*answer);
}

namespace {

// The request to send upstream, without its URL and body. Built again for a retry rather than
// copied for every first attempt: most requests have no second one. The headers are written as
// lines into one buffer: a pair of strings per header cost several allocations per request.
// `host`: the Host to send instead of the route's (a mirror's own authority).
http::ClientRequest upstream_request(const http::Request& request, const RouteMatch& match,
                                     const ServiceRuntime& runtime, bool upgrade,
                                     std::optional<std::string_view> host = std::nullopt) {
    const Service& service = *match.service;
    http::ClientRequest upstream;
    upstream.method = std::string(method_text(request));
    upstream.timeout = service.connect_timeout + service.write_timeout + service.read_timeout;
    upstream.read_timeout = service.read_timeout;

    std::string& lines = upstream.header_lines;
    std::size_t size = 256 + request.context.request_id.size() +
                       request.context.traceparent.size() + request.header_lines.text().size();
    for (const auto& [name, value] : request.headers) size += name.size() + value.size() + 4;
    lines.reserve(size);
    // Headers named by Connection are hop-by-hop too (RFC 9110 §7.6.1).
    const auto connection_header = request.header("Connection");
    std::string_view forwarded_first;
    std::string forwarded_more;  // only when a client sent several X-Forwarded-For
    for (const auto& [name, value] : request.headers) {
        if (http::iequals(name, "X-Forwarded-For")) {
            if (forwarded_first.empty() && forwarded_more.empty()) {
                forwarded_first = value;
            } else {
                if (forwarded_more.empty()) forwarded_more = std::string(forwarded_first);
                forwarded_more += ", ";
                forwarded_more += value;
            }
            continue;
        }
        if (is_hop_by_hop(name) || lists_token(connection_header, name)) continue;
        http::append_header_line(lines, name, value);
    }
    // The lines plugins added (the verified identity) are the gateway's own: none hop-by-hop.
    lines.append(request.header_lines.text());
    const auto client_host = request.header("Host");
    std::string_view sent_host = match.upstream_host(client_host);
    if (!runtime.upstream_host_header.empty() && !(match.route && match.route->preserve_host)) {
        sent_host = runtime.upstream_host_header;
    }
    if (host) sent_host = *host;
    if (!sent_host.empty()) http::append_header_line(lines, "Host", sent_host);
    lines.append("X-Forwarded-For: "sv);
    if (!forwarded_more.empty()) {
        lines.append(forwarded_more);
        lines.append(", "sv);
    } else if (!forwarded_first.empty()) {
        lines.append(forwarded_first);
        lines.append(", "sv);
    }
    lines.append(request.remote_address);
    lines.append("\r\nX-Forwarded-Proto: http\r\n"sv);
    if (!client_host.empty()) http::append_header_line(lines, "X-Forwarded-Host", client_host);
    http::append_header_line(lines, "X-Request-ID", request.context.request_id);
    http::append_header_line(lines, "traceparent", request.context.traceparent);
    if (upgrade) {
        lines.append("Connection: Upgrade\r\n"sv);
        http::append_header_line(lines, "Upgrade", request.header("Upgrade"));
    } else if (request.body_stream) {
        // Forwarded as it arrives: with the client's length, else chunked.
        if (auto length = request.header("Content-Length"); !length.empty()) {
            http::append_header_line(lines, "Content-Length", length);
        }
    } else if (!request.body.empty() || request.method == http::Method::Post ||
               request.method == http::Method::Put || request.method == http::Method::Patch) {
        http::append_header_line(lines, "Content-Length", std::to_string(request.body.size()));
    }
    // The client must not replay a request whose bytes may have reached the upstream.
    upstream.replay_on_stale_connection = false;
    return upstream;
}

}  // namespace

std::shared_ptr<MirrorComparison> Gateway::Impl::start_mirror(const http::Request& request,
                                                              const RouteMatch& match,
                                                              const ServiceRuntime& runtime,
                                                              const std::string& path,
                                                              bool upgrade) {
    const Service& service = *match.service;
    if (!service.mirror || !runtime.mirror_client) return nullptr;
    if (request.body_stream) {
        // A body that is never held whole cannot be sent twice.
        mirror_instruments().requests.with({std::string(request.context.route), "dropped"}).inc();
        return nullptr;
    }
    if (upgrade || !sample(service.mirror->percentage)) return nullptr;
    auto comparison = std::make_shared<MirrorComparison>();
    comparison->route = std::string(request.context.route);
    comparison->compare = service.mirror->compare;
    auto* shadow_target = runtime.mirror_balancer->pick();
    if (shadow_target == nullptr || mirrors_in_flight->load() >= kMaxMirrorsInFlight) {
        mirror_instruments().requests.with({comparison->route, "dropped"}).inc();
        return nullptr;
    }
    mirrors_in_flight->fetch_add(1);
    const std::string shadow_host = service.mirror->endpoint.authority();
    http::ClientRequest shadow = upstream_request(request, match, runtime, upgrade, shadow_host);
    shadow.replay_on_stale_connection = true;
    shadow.url = shadow_target->base + mirror_path(service.mirror->endpoint.path, path);
    shadow.body = request.body;
    shadow.timeout = service.mirror->timeout;
    asio::co_spawn(
        executor,
        send_shadow(runtime.mirror_client, std::move(shadow), comparison, mirrors_in_flight),
        asio::detached);
    return comparison;
}

namespace {

// The answer to a failed upstream attempt that is not retried; logged either way.
std::optional<Response> failed_attempt(const http::ClientError& failure,
                                       const http::Request& request, const Service& service,
                                       const Balancer::Target& target, int attempt, bool retry_left,
                                       MirrorComparison* comparison) {
    telemetry::log_warn("upstream request failed",
                        {{"request_id", request.context.request_id},
                         {"service", service.name},
                         {"target", target.authority},
                         {"error", failure.message},
                         {"attempt", static_cast<std::int64_t>(attempt + 1)}});
    // Retry only when the upstream cannot have acted on the request.
    if (!failure.request_sent && retry_left) return std::nullopt;
    if (comparison) comparison->primary_finished(502, {}, false);
    if (failure.kind == http::ClientError::Timeout) {
        return gateway_error(json::ErrorCode::UpstreamUnavailable, 504,
                             "the upstream did not answer in time", request);
    }
    if (failure.kind == http::ClientError::PoolExhausted) {
        return gateway_error(json::ErrorCode::UpstreamUnavailable, 503, "the upstream is saturated",
                             request, 1);
    }
    return gateway_error(json::ErrorCode::UpstreamUnavailable, 502, "the upstream is unavailable",
                         request);
}

// The client's response from the upstream's: hop-by-hop headers dropped, the body passed on
// as it arrives (through the mirror's tee when one compares bodies), or the tunnel after a 101.
Response proxied_response(http::StreamedResponse&& result,
                          const std::shared_ptr<MirrorComparison>& comparison,
                          const Service& service) {
    Response response;
    response.status = result.status;
    response.verbatim_headers = true;
    response.content_type = {};
    // The upstream's lines pass on as text, less the hop-by-hop ones, filtered in place.
    response.header_lines = std::move(result.header_lines);
    // A copy: filtering moves the text the view would point into.
    const std::string upstream_connection(response.header_lines.find("Connection"));
    const bool named_by_connection = names_other_headers(upstream_connection);
    const bool upgraded = result.status == 101;
    response.header_lines.keep_if([&](std::string_view name, std::string_view) {
        if (upgraded && (http::iequals(name, "Connection") || http::iequals(name, "Upgrade"))) {
            return true;
        }
        if (named_by_connection && lists_token(upstream_connection, name)) return false;
        if (http::iequals(name, "Content-Length")) return true;
        return !is_hop_by_hop(name) || http::iequals(name, "x-request-id");
    });
    if (result.upgraded) {
        auto tunnel = std::move(result.upgraded);
        response.on_upgrade = [tunnel](http::Tunnel& client) { return relay(tunnel, client); };
        return response;
    }
    if (result.complete_body) {
        if (comparison) {
            comparison->primary_finished(response.status,
                                         service.mirror->compare == Mirror::Compare::Body
                                             ? *result.complete_body
                                             : std::string(),
                                         true);
        }
        response.body = std::move(*result.complete_body);
        return response;
    }
    response.body_source = std::move(result.body);
    if (comparison) {
        response.body_source =
            std::make_shared<TeeBody>(std::move(response.body_source), comparison, response.status,
                                      service.mirror->compare == Mirror::Compare::Body);
    }
    return response;
}

// The request of one attempt to the target's `base` URL and `path`. The last (often the only)
// attempt takes the body; earlier ones send a copy.
http::ClientRequest attempt_request(http::Request& request, const RouteMatch& match,
                                    const ServiceRuntime& runtime, bool upgrade,
                                    std::string_view base, std::string_view path, bool last) {
    http::ClientRequest attempt = upstream_request(request, match, runtime, upgrade);
    // One allocation: `base + path` copied the base, then grew it for the path.
    attempt.url.reserve(base.size() + path.size());
    attempt.url.append(base);
    attempt.url.append(path);
    if (last) {
        attempt.body = std::move(request.body);
    } else {
        attempt.body = request.body;
    }
    attempt.body_stream = request.body_stream;
    return attempt;
}

}  // namespace

asio::awaitable<Response> Gateway::Impl::proxy(http::Request& request, RouteMatch match,
                                               const ServiceRuntime& runtime) {
    const std::string path = match.upstream_path(request.target);
    const bool upgrade =
        !request.header("Upgrade").empty() && lists_token(request.header("Connection"), "upgrade");
    auto comparison = start_mirror(request, match, runtime, path, upgrade);
    const bool idempotent = is_idempotent(request.method, request.method_text);
    const int attempts = 1 + (idempotent ? std::max(0, match.service->retries) : 0);
    for (int attempt = 0; attempt < attempts; ++attempt) {
        Balancer::Target* target = runtime.balancer->pick();
        if (target == nullptr) {
            if (comparison) comparison->primary_finished(503, {}, false);
            co_return gateway_error(json::ErrorCode::UpstreamUnavailable, 503,
                                    "no healthy upstream for service " + match.service->name,
                                    request, 1);
        }
        // Started in its own statement, with the request built in it: a ClientRequest that
        // lived across the co_await would sit in this frame, and push it past what glibc's
        // per-thread cache takes.
        auto exchange = runtime.client->send_streamed(attempt_request(
            request, match, runtime, upgrade, target->base, path, attempt + 1 == attempts));
        auto result = co_await std::move(exchange);
        if (result) {
            runtime.balancer->succeeded(target);
            co_return proxied_response(std::move(*result), comparison, *match.service);
        }
        if (result.error().kind == http::ClientError::RequestBody) {
            // The client's body failed, not the upstream: no retry, no mark on the target.
            runtime.balancer->succeeded(target);
            if (comparison) comparison->primary_finished(400, {}, false);
            co_return body_failure_response(result.error().message, request);
        }
        runtime.balancer->failed(target);
        auto answer = failed_attempt(result.error(), request, *match.service, *target, attempt,
                                     attempt + 1 < attempts, comparison.get());
        if (answer) co_return std::move(*answer);
    }
    co_return gateway_error(json::ErrorCode::UpstreamUnavailable, 502,
                            "the upstream is unavailable", request);
}

asio::awaitable<void> Gateway::Impl::check_health(std::shared_ptr<const Snapshot> current) {
    for (const auto& [service, runtime] : current->services) {
        if (runtime.upstream == nullptr || !runtime.upstream->active.enabled()) continue;
        const auto& active = runtime.upstream->active;
        for (auto& target : runtime.balancer->targets()) {
            http::ClientRequest probe;
            probe.url = target->base + active.http_path;
            probe.timeout = active.timeout;
            auto result = co_await runtime.client->send(std::move(probe));
            const auto& statuses = active.healthy.http_statuses;
            const bool ok =
                result && (statuses.empty() ? result->status >= 200 && result->status < 400
                                            : std::find(statuses.begin(), statuses.end(),
                                                        result->status) != statuses.end());
            if (ok) {
                target->active_failures = 0;
                ++target->active_successes;
                const int needed = std::max(1, active.healthy.successes);
                if (!target->healthy.load() && target->active_successes >= needed) {
                    target->healthy.store(true);
                    runtime.balancer->succeeded(target.get());
                    telemetry::log_info("upstream target healthy", {{"target", target->authority}});
                }
            } else {
                target->active_successes = 0;
                ++target->active_failures;
                const int needed = std::max(
                    1, std::max({active.unhealthy.http_failures, active.unhealthy.tcp_failures,
                                 active.unhealthy.timeouts}));
                if (target->healthy.load() && target->active_failures >= needed) {
                    target->healthy.store(false);
                    telemetry::log_warn("upstream target unhealthy",
                                        {{"target", target->authority}});
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

Gateway::Gateway(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gateway::~Gateway() = default;

platform::Expected<std::shared_ptr<Gateway>, std::string> Gateway::create(
    asio::any_io_executor executor, GatewayOptions options,
    const platform::auth::JwtCodec& platform_jwt, LocalDispatch local_dispatch) {
    auto impl = std::make_shared<Impl>(std::move(executor), std::move(options), platform_jwt,
                                       std::move(local_dispatch));
    if (!impl->options.redis_url.empty()) {
        cache::RedisOptions redis_options;
        redis_options.url = impl->options.redis_url;
        try {
            impl->redis = std::make_unique<cache::RedisClient>(impl->executor, redis_options);
        } catch (const std::exception& failure) {
            return unexpected(std::string("cache.redis_url: ") + failure.what());
        }
        impl->redis_counter = std::make_unique<cache::RedisRateCounter>(*impl->redis);
        impl->fallback_local = std::make_unique<cache::LocalRateCounter>();
        auto& degraded = telemetry::default_registry().gauge(
            "gateway_rate_limit_redis_degraded",
            "1 while Redis is unreachable and rate limits are counted locally.");
        cache::FallbackRateCounter::Observer observer;
        observer.on_outage = [&degraded](const cache::RedisError& error) {
            degraded.with().set(1);
            telemetry::log_error("Redis unreachable: rate limits fall back to local counters",
                                 {{"error", error.message}});
        };
        observer.on_recovery = [&degraded] {
            degraded.with().set(0);
            telemetry::log_info("Redis reachable again: rate limits are shared again", {});
        };
        impl->fallback_counter = std::make_unique<cache::FallbackRateCounter>(
            *impl->redis_counter, *impl->fallback_local, std::move(observer));
    }
    auto loaded = impl->reload();
    if (!loaded) return unexpected(std::move(loaded).error());
    return std::shared_ptr<Gateway>(new Gateway(std::move(impl)));
}

asio::awaitable<Response> Gateway::handle(http::Request& request) {
    return impl_->handle(request);
}

platform::Expected<void, std::string> Gateway::reload() {
    return impl_->reload();
}

void Gateway::close() {
    std::lock_guard lock(impl_->reload_mutex);
    for (auto& [key, weak] : impl_->clients) {
        if (auto client = weak.lock()) client->close();
    }
    if (impl_->redis) impl_->redis->close();
}

void Gateway::reload_if_changed() {
    if (impl_->options.config_path.empty()) return;
    const auto current = Impl::stamp_of(impl_->options.config_path);
    {
        std::lock_guard lock(impl_->reload_mutex);
        if (current == impl_->stamp) return;
    }
    (void)impl_->reload();
}

asio::awaitable<void> Gateway::run_health_checks() {
    auto impl = impl_;
    asio::steady_timer timer(impl->executor);
    for (;;) {
        auto current = impl->snapshot.load();
        std::chrono::milliseconds interval{0};
        for (const auto& [service, runtime] : current->services) {
            if (runtime.upstream == nullptr || !runtime.upstream->active.enabled()) continue;
            for (auto candidate : {runtime.upstream->active.healthy.interval,
                                   runtime.upstream->active.unhealthy.interval}) {
                if (candidate.count() > 0 && (interval.count() == 0 || candidate < interval)) {
                    interval = candidate;
                }
            }
        }
        if (interval.count() > 0) co_await impl->check_health(current);
        timer.expires_after(interval.count() > 0 ? interval : std::chrono::milliseconds(1000));
        co_await timer.async_wait(asio::use_awaitable);
    }
}

std::string builtin_gateway_yaml(const std::vector<std::pair<std::string, std::string>>& modules,
                                 const BuiltinCors& cors) {
    std::string yaml = "_format_version: \"3.0\"\n";
    if (!cors.origins.empty()) {
        // The pipeline's defaults (platform/http/pipeline.h), as a global cors plugin.
        yaml += "plugins:\n  - name: cors\n    config:\n      origins:\n";
        for (const auto& origin : cors.origins) yaml += "        - \"" + origin + "\"\n";
        yaml += "      credentials: " + std::string(cors.credentials ? "true" : "false") + "\n";
        yaml +=
            "      methods: [GET, POST, PUT, PATCH, DELETE, OPTIONS]\n"
            "      headers: [Authorization, Content-Type, X-Request-ID, X-API-Key, If-Match, "
            "traceparent]\n"
            "      exposed_headers: [X-Request-ID, ETag, Retry-After, X-RateLimit-Limit, "
            "X-RateLimit-Remaining, X-RateLimit-Reset]\n"
            "      max_age: 600\n";
    }
    yaml += "services:\n";
    for (const auto& [name, base_path] : modules) {
        if (base_path.empty()) continue;
        yaml += "  - name: " + name + "\n    module: " + name + "\n    routes:\n";
        if (name == "security") {
            // Public: the endpoints that hand out or check credentials themselves.
            yaml += "      - name: security-public\n        paths:\n";
            for (auto endpoint : {"/login", "/register", "/refresh", "/validate", "/logout",
                                  "/.well-known/jwks.json"}) {
                yaml += "          - " + base_path + endpoint + "\n";
            }
        }
        yaml += "      - name: " + name + "\n        paths: [" + base_path +
                "]\n        plugins:\n          - name: jwt\n";
    }
    return yaml;
}

}  // namespace aether::services::gateway
