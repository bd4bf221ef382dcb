// The edge gateway's declarative configuration (Kong 3.0 style), parsed and validated once into
// an immutable GatewayConfig; every problem is reported at once with its file, line and key path.
//
// The file (API.md §Gateway configuration):
//
//   _format_version: "3.0"          required, exactly "3.0"
//   services:
//     - name: tasks                 required, unique
//       url: http://tasks:8000/base  http/https; or protocol/host/port/path; or `module: tasks`
//       retries: 5                  connect_timeout/write_timeout/read_timeout: 60000 (ms)
//       enabled: true               a disabled service's routes are not routed
//       mirror:                     ours: shadow traffic (see Mirror)
//         url: http://shadow:8000
//         percentage: 100           0..100 (fractions allowed), default 100
//         compare: status           status | body | none, default status
//         timeout: 5000             ms, default 5000: a shadow call never waits longer
//       routes:
//         - name: tasks             optional, unique across the file
//           paths: [/api/v1/tasks]  required; prefixes, segment-bounded; no `~` regex paths
//           methods: [GET, POST]    upper-case; empty or absent = every method
//           hosts: [api.example.com, "*.example.com"]
//           strip_path: true        Kong's default, except false for `module:` services
//           preserve_host: false
//           plugins: [...]          a route plugin replaces the service's plugin of that name
//       plugins: [...]              a service plugin replaces the global plugin of that name
//   plugins: [...]                  global: `- name: cors  enabled: true  config: {...}`;
//                                   `enabled: false` skips a plugin (it replaces nothing)
//   consumers:
//     - username: mobile            (or custom_id; at least one)
//       jwt_secrets: [{key: issuer-a, algorithm: HS256, secret: ...}]
//   upstreams:
//     - name: tasks-upstream        a service whose url host is this name balances over it
//       algorithm: round-robin      or least-connections
//       targets: [{target: "tasks-v1:8000", weight: 90}, {target: "tasks-v2:8000", weight: 10}]
//       healthchecks: {active: {...}, passive: {...}}   Kong's names and defaults
//
// Keys that Kong exports but that carry no behaviour here (id, tags, created_at, updated_at,
// ws_id, protocols, https_redirect_status_code, regex_priority, path_handling,
// request_buffering, response_buffering; `_transform` and `_workspace` at the top) are accepted
// and ignored; every other unknown key is an error. A key set to null means "use the default".
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "platform/expected.h"

namespace aether::services::gateway {

using platform::Expected;

struct GatewayConfigError {
    std::string origin;   // "kong.yaml:12", or "kong.yaml" when no line applies
    std::string path;     // "services[1].routes[0].paths[0]", or "" for the whole file
    std::string message;  // "must start with /"; never contains a secret

    // "kong.yaml:12: services[1].routes[0].paths[0]: must start with /" (empty parts left out).
    std::string to_string() const;
};

// ---------------------------------------------------------------------------------------------
// HTTP methods and addresses

enum class HttpMethod : std::uint8_t {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Trace,
    Connect
};
inline constexpr std::size_t kHttpMethodCount = 9;

// A set of HttpMethod as bits (1 << method). 0 in a Route means "every method".
using MethodSet = std::uint16_t;
inline constexpr MethodSet method_bit(HttpMethod m) {
    return static_cast<MethodSet>(1u << static_cast<unsigned>(m));
}
inline constexpr MethodSet kEveryMethod = (1u << kHttpMethodCount) - 1;

// Exact, case-sensitive ("GET"), as HTTP methods are; nullopt for anything else.
std::optional<HttpMethod> parse_http_method(std::string_view text);
std::string_view http_method_name(HttpMethod method);
// "GET, POST" in HttpMethod order, for an Allow header.
std::string method_list(MethodSet methods);

// An IPv4 or IPv6 address. IPv4 is held as its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so
// "10.0.0.1" and "::ffff:10.0.0.1" are the same address.
class IpAddress {
  public:
    // Dotted-quad IPv4 or RFC 4291 IPv6 text (no brackets, no zone id); nullopt otherwise.
    static std::optional<IpAddress> parse(std::string_view text);
    static IpAddress v4(const std::array<std::uint8_t, 4>& bytes);
    static IpAddress v6(const std::array<std::uint8_t, 16>& bytes);

    bool is_v4() const;  // IPv4, or IPv4-mapped IPv6
    const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
    std::string to_string() const;
    bool operator==(const IpAddress&) const = default;

  private:
    std::array<std::uint8_t, 16> bytes_{};
};

// An address block: "10.0.0.0/8", "2001:db8::/32", or one address ("192.0.2.7" = /32, "::1" =
// /128). Bits past the prefix are ignored. IPv4 blocks match IPv4 and IPv4-mapped addresses; an
// IPv6 block matches IPv4 addresses only when it lies inside ::ffff:0:0/96, so "::/0" means
// every IPv6 address, not every address.
class Cidr {
  public:
    static std::optional<Cidr> parse(std::string_view text);

    bool contains(const IpAddress& address) const;
    // False for text that is not an address.
    bool contains(std::string_view address) const;
    bool is_v4() const { return v4_; }
    // Prefix length in the block's own family (8 for "10.0.0.0/8").
    unsigned prefix_length() const { return v4_ ? prefix_ - 96 : prefix_; }
    std::string to_string() const;

  private:
    IpAddress network_;
    unsigned prefix_ = 128;  // over the 128-bit form
    bool v4_ = false;
};

// ---------------------------------------------------------------------------------------------
// Plugins (Kong's names and defaults unless marked "ours")

struct JwtPluginConfig {
    // The claim whose value names the consumer's jwt_secret (`key`) that verifies the token.
    std::string key_claim_name = "iss";
    std::vector<std::string> claims_to_verify = {"exp"};  // ours: [exp] (Kong: none); of exp, nbf
    std::int64_t maximum_expiration = 0;  // seconds a token may live; 0 = no limit; needs exp
    std::vector<std::string> header_names = {"authorization"};
    std::vector<std::string> cookie_names;
    // uri_param_names must be empty: tokens in query strings are refused (they leak into logs).
    bool secret_is_base64 = false;
    bool run_on_preflight = true;
    // ours: verify with the security service's JWKS (RS*/ES*) instead of consumers' secrets.
    // With neither jwks_url nor consumers' jwt_secrets the gateway uses the platform's own key.
    std::string jwks_url;
    std::string token_type =
        "access";  // ours: "access" (the `type` claim must be "access") | "any"
};

enum class RateLimitPeriod : std::uint8_t { Second, Minute, Hour, Day, Month, Year };
std::string_view rate_limit_period_name(RateLimitPeriod period);  // "minute"

struct RateLimit {
    RateLimitPeriod period = RateLimitPeriod::Minute;
    std::int64_t limit = 0;  // > 0
};

struct RateLimitingPluginConfig {
    enum class LimitBy : std::uint8_t { Consumer, Credential, Ip, Service, Header, Path };
    enum class Policy : std::uint8_t { Local, Redis };

    std::vector<RateLimit> limits;  // at least one, ordered by period, never lower for longer ones
    LimitBy limit_by = LimitBy::Consumer;
    std::string header_name;  // set when limit_by is Header
    std::string path;         // set when limit_by is Path
    Policy policy = Policy::Local;
    bool fault_tolerant = true;  // a Redis failure lets the request through
    bool hide_client_headers = false;
    int error_code = 429;
    std::string error_message = "API rate limit exceeded";
    // Redis (policy redis). An empty host means the platform's Redis (config key cache.redis_url).
    std::string redis_host;
    std::uint16_t redis_port = 6379;
    std::string redis_username;
    std::string redis_password;  // secret: never printed
    int redis_database = 0;
    std::chrono::milliseconds redis_timeout{2000};
    bool redis_ssl = false;
    bool redis_ssl_verify = false;
    std::string redis_server_name;
};

struct CorsPluginConfig {
    std::vector<std::string> origins;  // at least one; "*" or "scheme://host[:port]", lower-case
    std::vector<std::string> methods = {"GET",    "HEAD",    "PUT",   "PATCH",  "POST",
                                        "DELETE", "OPTIONS", "TRACE", "CONNECT"};
    std::vector<std::string> headers;          // empty = echo Access-Control-Request-Headers
    std::vector<std::string> exposed_headers;  // empty = none
    bool credentials = false;                  // never together with origin "*" (ours)
    std::optional<std::int64_t> max_age;       // seconds
    bool preflight_continue = false;

    bool any_origin() const;
};

struct CorrelationIdPluginConfig {
    enum class Generator : std::uint8_t { Uuid, UuidCounter, Tracker };
    std::string header_name = "X-Request-ID";  // ours (Kong: Kong-Request-ID)
    Generator generator = Generator::UuidCounter;
    bool echo_downstream = false;
};

struct PrometheusPluginConfig {
    bool per_consumer = false;
    bool status_code_metrics = false;
    bool latency_metrics = false;
    bool bandwidth_metrics = false;
    bool upstream_health_metrics = false;
};

struct IpRestrictionPluginConfig {
    std::vector<Cidr> allow;
    std::vector<Cidr> deny;  // at least one of allow/deny is non-empty
    int status = 403;
    std::string message = "Your IP address is not allowed";

    // As Kong: a denied address is refused; with an allow list, only listed addresses pass.
    bool allows(const IpAddress& address) const;
};

struct RequestSizeLimitingPluginConfig {
    enum class SizeUnit : std::uint8_t { Megabytes, Kilobytes, Bytes };
    std::int64_t allowed_payload_size = 128;
    SizeUnit size_unit = SizeUnit::Megabytes;
    bool require_content_length = false;
    std::uint64_t limit_bytes = 128ull << 20;  // allowed_payload_size in bytes (1 MB = 2^20)
};

using PluginConfig = std::variant<JwtPluginConfig, RateLimitingPluginConfig, CorsPluginConfig,
                                  CorrelationIdPluginConfig, PrometheusPluginConfig,
                                  IpRestrictionPluginConfig, RequestSizeLimitingPluginConfig>;

struct PluginSpec {
    std::string name;  // "jwt", "rate-limiting", "cors", "correlation-id", "prometheus",
                       // "ip-restriction", "request-size-limiting"
    bool enabled = true;
    PluginConfig config;
    std::string origin;  // "kong.yaml:14"

    template <class T>
    const T* get() const {
        return std::get_if<T>(&config);
    }
};

// The plugin names this gateway knows, in Kong's execution order (highest priority first):
// correlation-id, cors, jwt, ip-restriction, request-size-limiting, rate-limiting, prometheus.
const std::vector<std::string_view>& known_plugins();
// Kong's priority (higher runs first); 0 for an unknown name.
int plugin_priority(std::string_view name);

// ---------------------------------------------------------------------------------------------
// Entities

// Where a proxied service (or a mirror) sends requests.
struct Endpoint {
    std::string scheme = "http";  // "http" | "https"
    std::string host;             // lower-case; IPv6 literals keep their brackets
    std::uint16_t port = 80;      // defaults 80 / 443 by scheme
    std::string path;             // "" when none (Kong's null, upstream base "/"), else "/..."

    // "host" on the scheme's default port, else "host:port": the Host header to send.
    std::string authority() const;
};

struct Mirror {
    Endpoint endpoint;
    std::string upstream;  // the upstreams: entry named by endpoint.host, or ""
    double percentage = 100;
    enum class Compare : std::uint8_t { Status, Body, None } compare = Compare::Status;
    std::chrono::milliseconds timeout{5000};
};

struct Route {
    std::string name;  // may be empty
    std::vector<std::string> paths;
    MethodSet methods = 0;           // 0 = every method
    std::vector<std::string> hosts;  // lower-case; "*.example.com", "example.*", "host:port"
    bool strip_path = true;
    bool preserve_host = false;
    std::vector<PluginSpec> plugins;
    std::string origin;
};

struct Service {
    std::string name;
    std::string module;    // in-process dispatch in all-in-one mode; empty for a proxied service
    Endpoint endpoint;     // proxied services only
    std::string upstream;  // the upstreams: entry this service balances over, or ""
    int retries = 5;
    std::chrono::milliseconds connect_timeout{60000};
    std::chrono::milliseconds write_timeout{60000};
    std::chrono::milliseconds read_timeout{60000};
    bool enabled = true;
    std::vector<Route> routes;
    std::vector<PluginSpec> plugins;
    std::optional<Mirror> mirror;
    std::string origin;

    bool in_process() const { return !module.empty(); }
};

struct JwtSecret {
    std::string key;        // matched against the jwt plugin's key_claim_name claim
    std::string algorithm;  // HS256/384/512 (secret), RS256/384/512 or ES256/384/512 (public key)
    std::string secret;     // HS*: at least as many bytes as the hash output; never printed
    std::string rsa_public_key;  // RS*/ES*: PEM (Kong's name, also for EC keys)
};

struct Consumer {
    std::string username;
    std::string custom_id;
    std::vector<JwtSecret> jwt_secrets;
};

struct HealthcheckCounters {
    std::chrono::milliseconds interval{0};  // active only; 0 = this probe is off
    std::vector<int> http_statuses;
    int successes = 0;  // healthy
    int http_failures = 0;
    int tcp_failures = 0;
    int timeouts = 0;
};

struct ActiveHealthcheck {
    enum class Type : std::uint8_t { Http, Https, Tcp } type = Type::Http;
    std::string http_path = "/";
    std::chrono::milliseconds timeout{1000};
    int concurrency = 10;
    bool https_verify_certificate = true;
    std::string https_sni;
    HealthcheckCounters healthy;    // interval 0, statuses [200, 302], successes 0
    HealthcheckCounters unhealthy;  // interval 0, statuses [429, 404, 500..505], failures 0

    bool enabled() const { return healthy.interval.count() > 0 || unhealthy.interval.count() > 0; }
};

struct PassiveHealthcheck {
    ActiveHealthcheck::Type type = ActiveHealthcheck::Type::Http;
    HealthcheckCounters healthy;    // statuses 2xx/3xx as Kong, successes 0
    HealthcheckCounters unhealthy;  // statuses [429, 500, 503], failures 0 (= off)

    bool enabled() const {
        return healthy.successes > 0 || unhealthy.http_failures > 0 || unhealthy.tcp_failures > 0 ||
               unhealthy.timeouts > 0;
    }
};

struct Target {
    std::string host;           // lower-case; IPv6 literals keep their brackets
    std::uint16_t port = 8000;  // Kong's default when the target names none
    int weight = 100;           // 0..65535 (Kong 3); 0 = receives no traffic (drained)
};

struct Upstream {
    enum class Algorithm : std::uint8_t { RoundRobin, LeastConnections };
    std::string name;  // lower-case
    Algorithm algorithm = Algorithm::RoundRobin;
    std::string host_header;  // sent as Host instead of the service's when set
    std::vector<Target> targets;
    ActiveHealthcheck active;
    PassiveHealthcheck passive;
    double threshold = 0;  // % of healthy weight below which the upstream counts as unhealthy
    std::string origin;
};

struct GatewayConfig {
    std::string source;  // the file name given to the parser
    std::vector<Service> services;
    std::vector<PluginSpec> plugins;  // global
    std::vector<Consumer> consumers;
    std::vector<Upstream> upstreams;

    const Service* find_service(std::string_view name) const;
    const Upstream* find_upstream(std::string_view name) const;
    // The jwt_secret whose key is `key` (keys are unique across consumers), with its consumer.
    std::optional<std::pair<const Consumer*, const JwtSecret*>> find_jwt_secret(
        std::string_view key) const;
};

// Parses and validates `yaml_text`; `source_name` is what messages call the file.
Expected<std::shared_ptr<const GatewayConfig>, std::vector<GatewayConfigError>>
parse_gateway_config(std::string_view yaml_text, const std::string& source_name);

// Reads `path` (at most 4 MiB) and parses it, naming it by `path` in messages.
Expected<std::shared_ptr<const GatewayConfig>, std::vector<GatewayConfigError>> load_gateway_config(
    const std::string& path);

}  // namespace aether::services::gateway
