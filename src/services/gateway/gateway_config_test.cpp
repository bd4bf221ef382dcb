// Tests for parsing and validating the gateway configuration: the original plan's file, the
// full example, one test per validation rule (message, key path and line), CIDRs and fuzzing.
#include "services/gateway/gateway_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace aether::services::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string testdata(const std::string& name) {
    return std::string(AETHER_GATEWAY_TESTDATA) + "/" + name;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::shared_ptr<const GatewayConfig> parse_ok(const std::string& yaml) {
    auto parsed = parse_gateway_config(yaml, "kong.yaml");
    if (!parsed) {
        std::string all;
        for (const auto& error : parsed.error()) all += error.to_string() + "\n";
        ADD_FAILURE() << "unexpected errors:\n" << all;
        return nullptr;
    }
    return *parsed;
}

std::vector<std::string> errors_of(const std::string& yaml) {
    auto parsed = parse_gateway_config(yaml, "kong.yaml");
    std::vector<std::string> out;
    if (parsed) return out;
    for (const auto& error : parsed.error()) out.push_back(error.to_string());
    return out;
}

// A valid file with `service` spliced in as the only service (indented by the caller).
std::string with_service(const std::string& service) {
    return "_format_version: \"3.0\"\nservices:\n" + service;
}

// A valid one-route service whose service-level plugin list is `plugin` (a "- name: ..." item
// indented by six spaces); the plugin's first line is line 8.
std::string with_plugin(const std::string& plugin) {
    return "_format_version: \"3.0\"\n"  // 1
           "services:\n"                 // 2
           "  - name: s\n"               // 3
           "    url: http://s:8000\n"    // 4
           "    routes:\n"               // 5
           "      - paths: [/s]\n"       // 6
           "    plugins:\n" +            // 7
           plugin;                       // 8...
}

// ---------------------------------------------------------------------------------------------
// The fixtures

TEST(OriginalFile, LoadsUnchangedAndSaysExactlyWhatItSays) {
    auto loaded = load_gateway_config(testdata("kong-original.yaml"));
    ASSERT_TRUE(loaded) << loaded.error().front().to_string();
    const GatewayConfig& config = **loaded;
    ASSERT_EQ(config.services.size(), 2u);
    EXPECT_TRUE(config.plugins.empty());
    EXPECT_TRUE(config.consumers.empty());
    EXPECT_TRUE(config.upstreams.empty());

    const Service& tasks = config.services[0];
    EXPECT_EQ(tasks.name, "task-manager");
    EXPECT_FALSE(tasks.in_process());
    EXPECT_EQ(tasks.endpoint.scheme, "http");
    EXPECT_EQ(tasks.endpoint.host, "task-manager");
    EXPECT_EQ(tasks.endpoint.port, 8000);
    EXPECT_EQ(tasks.endpoint.path, "");
    EXPECT_EQ(tasks.retries, 5);
    EXPECT_EQ(tasks.connect_timeout, std::chrono::milliseconds(60000));
    EXPECT_EQ(tasks.read_timeout, std::chrono::milliseconds(60000));
    ASSERT_EQ(tasks.routes.size(), 1u);
    EXPECT_EQ(tasks.routes[0].name, "task-routes");
    EXPECT_THAT(tasks.routes[0].paths, ElementsAre("/api/v1/tasks"));
    EXPECT_EQ(tasks.routes[0].methods, method_bit(HttpMethod::Get) | method_bit(HttpMethod::Post) |
                                           method_bit(HttpMethod::Put) |
                                           method_bit(HttpMethod::Delete));
    EXPECT_TRUE(tasks.routes[0].strip_path);
    EXPECT_FALSE(tasks.routes[0].preserve_host);
    ASSERT_EQ(tasks.plugins.size(), 2u);
    EXPECT_EQ(tasks.plugins[0].name, "rate-limiting");
    const auto* limits = tasks.plugins[0].get<RateLimitingPluginConfig>();
    ASSERT_NE(limits, nullptr);
    ASSERT_EQ(limits->limits.size(), 1u);
    EXPECT_EQ(limits->limits[0].period, RateLimitPeriod::Minute);
    EXPECT_EQ(limits->limits[0].limit, 60);
    EXPECT_EQ(limits->policy, RateLimitingPluginConfig::Policy::Local);
    EXPECT_EQ(limits->limit_by, RateLimitingPluginConfig::LimitBy::Consumer);
    EXPECT_EQ(tasks.plugins[1].name, "jwt");
    const auto* jwt = tasks.plugins[1].get<JwtPluginConfig>();
    ASSERT_NE(jwt, nullptr);
    EXPECT_EQ(jwt->key_claim_name, "iss");
    EXPECT_THAT(jwt->header_names, ElementsAre("authorization"));
    EXPECT_THAT(jwt->claims_to_verify, ElementsAre("exp"));
    EXPECT_EQ(jwt->token_type, "access");

    const Service& ai = config.services[1];
    EXPECT_EQ(ai.name, "ai-gateway");
    EXPECT_EQ(ai.endpoint.host, "ai-gateway");
    EXPECT_EQ(ai.endpoint.port, 8000);
    ASSERT_EQ(ai.routes.size(), 1u);
    EXPECT_THAT(ai.routes[0].paths, ElementsAre("/api/v1/ai"));
    EXPECT_EQ(ai.routes[0].methods, 0);  // every method
    ASSERT_EQ(ai.plugins.size(), 1u);
    const auto* ai_limits = ai.plugins[0].get<RateLimitingPluginConfig>();
    ASSERT_NE(ai_limits, nullptr);
    ASSERT_EQ(ai_limits->limits.size(), 1u);
    EXPECT_EQ(ai_limits->limits[0].limit, 30);
    EXPECT_EQ(ai_limits->limits[0].period, RateLimitPeriod::Minute);
    EXPECT_EQ(ai_limits->policy, RateLimitingPluginConfig::Policy::Local);
}

TEST(FullFile, LoadsEveryFeature) {
    auto loaded = load_gateway_config(testdata("full.yaml"));
    ASSERT_TRUE(loaded) << loaded.error().front().to_string();
    const GatewayConfig& config = **loaded;
    EXPECT_EQ(config.source, testdata("full.yaml"));

    ASSERT_EQ(config.plugins.size(), 4u);
    const auto* correlation = config.plugins[0].get<CorrelationIdPluginConfig>();
    ASSERT_NE(correlation, nullptr);
    EXPECT_EQ(correlation->generator, CorrelationIdPluginConfig::Generator::Uuid);
    EXPECT_TRUE(correlation->echo_downstream);
    const auto* prometheus = config.plugins[1].get<PrometheusPluginConfig>();
    ASSERT_NE(prometheus, nullptr);
    EXPECT_TRUE(prometheus->upstream_health_metrics);
    EXPECT_FALSE(prometheus->per_consumer);
    const auto* cors = config.plugins[2].get<CorsPluginConfig>();
    ASSERT_NE(cors, nullptr);
    EXPECT_THAT(cors->origins, ElementsAre("https://app.example.com", "http://localhost:3000"));
    EXPECT_FALSE(cors->any_origin());
    EXPECT_TRUE(cors->credentials);
    EXPECT_EQ(cors->max_age, 3600);
    EXPECT_THAT(cors->methods, ElementsAre("GET", "POST", "PUT", "DELETE", "OPTIONS"));
    const auto* size = config.plugins[3].get<RequestSizeLimitingPluginConfig>();
    ASSERT_NE(size, nullptr);
    EXPECT_EQ(size->limit_bytes, 10u << 20);

    const Service* security = config.find_service("security");
    ASSERT_NE(security, nullptr);
    EXPECT_TRUE(security->in_process());
    EXPECT_EQ(security->module, "security");
    ASSERT_EQ(security->routes.size(), 2u);
    EXPECT_FALSE(security->routes[0].strip_path);  // module services keep their base path
    EXPECT_EQ(security->routes[0].methods, method_bit(HttpMethod::Post));
    const auto* jwks = security->routes[1].plugins[0].get<JwtPluginConfig>();
    ASSERT_NE(jwks, nullptr);
    EXPECT_EQ(jwks->jwks_url, "http://security:8080/api/v1/auth/.well-known/jwks.json");
    EXPECT_THAT(jwks->claims_to_verify, ElementsAre("exp", "nbf"));
    EXPECT_EQ(jwks->maximum_expiration, 3600);

    const Service* tasks = config.find_service("task-manager");
    ASSERT_NE(tasks, nullptr);
    EXPECT_EQ(tasks->upstream, "tasks-upstream");
    EXPECT_EQ(tasks->endpoint.path, "/v1");
    EXPECT_EQ(tasks->retries, 3);
    EXPECT_EQ(tasks->connect_timeout, std::chrono::milliseconds(2000));
    EXPECT_EQ(tasks->write_timeout, std::chrono::milliseconds(10000));
    EXPECT_EQ(tasks->read_timeout, std::chrono::milliseconds(15000));
    ASSERT_TRUE(tasks->mirror.has_value());
    EXPECT_EQ(tasks->mirror->endpoint.host, "tasks-shadow");
    EXPECT_EQ(tasks->mirror->upstream, "");
    EXPECT_DOUBLE_EQ(tasks->mirror->percentage, 12.5);
    EXPECT_EQ(tasks->mirror->compare, Mirror::Compare::Body);
    EXPECT_EQ(tasks->mirror->timeout, std::chrono::milliseconds(3000));
    const auto* redis = tasks->routes[0].plugins[0].get<RateLimitingPluginConfig>();
    ASSERT_NE(redis, nullptr);
    EXPECT_EQ(redis->policy, RateLimitingPluginConfig::Policy::Redis);
    EXPECT_EQ(redis->redis_host, "redis");
    EXPECT_EQ(redis->redis_port, 6380);
    EXPECT_EQ(redis->redis_password, "s3cret-redis-password");
    EXPECT_EQ(redis->redis_database, 2);
    EXPECT_EQ(redis->redis_timeout, std::chrono::milliseconds(500));
    ASSERT_EQ(redis->limits.size(), 3u);
    EXPECT_EQ(redis->limits[2].period, RateLimitPeriod::Hour);
    EXPECT_FALSE(tasks->plugins[2].enabled);
    EXPECT_EQ(tasks->plugins[2].name, "ip-restriction");

    const Service* ai = config.find_service("ai-gateway");
    ASSERT_NE(ai, nullptr);
    EXPECT_EQ(ai->endpoint.scheme, "https");
    EXPECT_EQ(ai->endpoint.host, "ai.internal");
    EXPECT_EQ(ai->endpoint.port, 443);
    EXPECT_EQ(ai->endpoint.path, "/");
    EXPECT_EQ(ai->endpoint.authority(), "ai.internal");
    EXPECT_THAT(ai->routes[0].hosts, ElementsAre("api.example.com", "*.example.org", "internal.*",
                                                 "admin.example.com:8443"));
    EXPECT_FALSE(ai->routes[0].strip_path);
    EXPECT_TRUE(ai->routes[0].preserve_host);
    const auto* by_header = ai->plugins[0].get<RateLimitingPluginConfig>();
    ASSERT_NE(by_header, nullptr);
    EXPECT_EQ(by_header->limit_by, RateLimitingPluginConfig::LimitBy::Header);
    EXPECT_EQ(by_header->header_name, "X-Api-Key");
    const auto* ip = ai->plugins[1].get<IpRestrictionPluginConfig>();
    ASSERT_NE(ip, nullptr);
    EXPECT_TRUE(ip->allows(*IpAddress::parse("10.1.2.3")));
    EXPECT_FALSE(ip->allows(*IpAddress::parse("10.66.1.1")));
    EXPECT_TRUE(ip->allows(*IpAddress::parse("::ffff:192.168.1.7")));
    EXPECT_TRUE(ip->allows(*IpAddress::parse("2001:db8:1::9")));
    EXPECT_TRUE(ip->allows(*IpAddress::parse("::1")));
    EXPECT_FALSE(ip->allows(*IpAddress::parse("8.8.8.8")));
    EXPECT_EQ(ip->message, "Forbidden here");

    const Service* analytics = config.find_service("analytics");
    ASSERT_NE(analytics, nullptr);
    EXPECT_FALSE(analytics->enabled);
    EXPECT_EQ(analytics->endpoint.port, 9443);
    EXPECT_EQ(analytics->endpoint.authority(), "analytics.internal:9443");

    ASSERT_EQ(config.consumers.size(), 2u);
    auto monolith = config.find_jwt_secret("aether-monolith");
    ASSERT_TRUE(monolith.has_value());
    EXPECT_EQ(monolith->first->username, "legacy-monolith");
    EXPECT_EQ(monolith->first->custom_id, "monolith");
    EXPECT_EQ(monolith->second->algorithm, "HS256");
    auto partner = config.find_jwt_secret("partner-issuer");
    ASSERT_TRUE(partner.has_value());
    EXPECT_EQ(partner->second->algorithm, "RS256");
    EXPECT_THAT(partner->second->rsa_public_key, HasSubstr("-----BEGIN PUBLIC KEY-----"));
    EXPECT_FALSE(config.find_jwt_secret("nobody").has_value());

    const Upstream* upstream = config.find_upstream("tasks-upstream");
    ASSERT_NE(upstream, nullptr);
    EXPECT_EQ(upstream->algorithm, Upstream::Algorithm::RoundRobin);
    EXPECT_EQ(upstream->host_header, "tasks.internal");
    ASSERT_EQ(upstream->targets.size(), 3u);
    EXPECT_EQ(upstream->targets[0].host, "tasks-v1");
    EXPECT_EQ(upstream->targets[0].port, 8000);
    EXPECT_EQ(upstream->targets[0].weight, 90);
    EXPECT_EQ(upstream->targets[1].weight, 10);
    EXPECT_EQ(upstream->targets[2].host, "[2001:db8::5]");
    EXPECT_EQ(upstream->targets[2].port, 8001);
    EXPECT_EQ(upstream->targets[2].weight, 0);
    EXPECT_DOUBLE_EQ(upstream->threshold, 50);
    EXPECT_TRUE(upstream->active.enabled());
    EXPECT_EQ(upstream->active.http_path, "/health");
    EXPECT_EQ(upstream->active.timeout, std::chrono::milliseconds(2000));
    EXPECT_EQ(upstream->active.concurrency, 5);
    EXPECT_EQ(upstream->active.healthy.interval, std::chrono::milliseconds(5000));
    EXPECT_THAT(upstream->active.healthy.http_statuses, ElementsAre(200));
    EXPECT_EQ(upstream->active.healthy.successes, 2);
    EXPECT_EQ(upstream->active.unhealthy.interval, std::chrono::milliseconds(1500));
    EXPECT_EQ(upstream->active.unhealthy.http_failures, 3);
    EXPECT_THAT(upstream->active.unhealthy.http_statuses,
                ElementsAre(429, 404, 500, 501, 502, 503, 504, 505));
    EXPECT_TRUE(upstream->passive.enabled());
    EXPECT_EQ(upstream->passive.unhealthy.timeouts, 7);
    EXPECT_THAT(upstream->passive.unhealthy.http_statuses, ElementsAre(429, 500, 503));
}

TEST(Defaults, AreKongsUnlessMarkedOurs) {
    auto config = parse_ok(
        with_service("  - name: s\n    url: https://s\n    routes: [{paths: [/]}]\n    plugins:\n"
                     "      - {name: cors, config: {origins: ['*']}}\n"
                     "      - {name: correlation-id}\n"
                     "      - {name: ip-restriction, config: {deny: [192.0.2.1]}}\n"
                     "      - {name: request-size-limiting}\n"
                     "      - {name: prometheus}\n"
                     "      - {name: rate-limiting, config: {hour: 5, policy: redis}}\n"
                     "upstreams:\n  - name: u\n    targets: [{target: u1}]\n"));
    ASSERT_NE(config, nullptr);
    const Service& s = config->services[0];
    EXPECT_EQ(s.endpoint.port, 443);
    EXPECT_TRUE(s.routes[0].strip_path);
    const auto* cors = s.plugins[0].get<CorsPluginConfig>();
    EXPECT_TRUE(cors->any_origin());
    EXPECT_FALSE(cors->credentials);
    EXPECT_EQ(cors->methods.size(), 9u);
    EXPECT_FALSE(cors->max_age.has_value());
    const auto* correlation = s.plugins[1].get<CorrelationIdPluginConfig>();
    EXPECT_EQ(correlation->header_name, "X-Request-ID");
    EXPECT_EQ(correlation->generator, CorrelationIdPluginConfig::Generator::UuidCounter);
    EXPECT_FALSE(correlation->echo_downstream);
    const auto* ip = s.plugins[2].get<IpRestrictionPluginConfig>();
    EXPECT_EQ(ip->status, 403);
    EXPECT_TRUE(ip->allows(*IpAddress::parse("192.0.2.2")));
    EXPECT_FALSE(ip->allows(*IpAddress::parse("192.0.2.1")));
    const auto* size = s.plugins[3].get<RequestSizeLimitingPluginConfig>();
    EXPECT_EQ(size->allowed_payload_size, 128);
    EXPECT_EQ(size->limit_bytes, 128u << 20);
    EXPECT_FALSE(size->require_content_length);
    const auto* limits = s.plugins[5].get<RateLimitingPluginConfig>();
    EXPECT_EQ(limits->redis_host, "");  // the platform's Redis
    EXPECT_EQ(limits->redis_port, 6379);
    EXPECT_EQ(limits->redis_timeout, std::chrono::milliseconds(2000));
    EXPECT_TRUE(limits->fault_tolerant);
    EXPECT_EQ(limits->error_code, 429);
    const Upstream& u = config->upstreams[0];
    EXPECT_EQ(u.targets[0].port, 8000);
    EXPECT_EQ(u.targets[0].weight, 100);
    EXPECT_FALSE(u.active.enabled());
    EXPECT_FALSE(u.passive.enabled());
    EXPECT_EQ(u.active.http_path, "/");
    EXPECT_EQ(u.active.timeout, std::chrono::milliseconds(1000));
    EXPECT_THAT(u.active.healthy.http_statuses, ElementsAre(200, 302));
}

TEST(Sizes, ComputeTheByteLimitPerUnit) {
    auto limit = [](const std::string& config) {
        auto parsed = parse_ok(
            with_plugin("      - name: request-size-limiting\n        config: " + config + "\n"));
        return parsed ? parsed->services[0]
                            .plugins[0]
                            .get<RequestSizeLimitingPluginConfig>()
                            ->limit_bytes
                      : 0;
    };
    EXPECT_EQ(limit("{allowed_payload_size: 3, size_unit: kilobytes}"), 3072u);
    EXPECT_EQ(limit("{allowed_payload_size: 700, size_unit: bytes}"), 700u);
    EXPECT_EQ(limit("{allowed_payload_size: 2}"), 2u << 20);
}

// ---------------------------------------------------------------------------------------------
// File-level rules

TEST(Validation, ThePathOfTheBadKeyIsReportedWithItsLine) {
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\n"
                          "services:\n"
                          "  - name: a\n"
                          "    url: http://a:8000\n"
                          "  - name: b\n"
                          "    url: http://b:8000\n"
                          "    routes:\n"
                          "      - paths:\n"
                          "          - api/v1/b\n"),
                ElementsAre("kong.yaml:9: services[1].routes[0].paths[0]: must start with /"));
}

TEST(Validation, ReportsEveryProblemAtOnce) {
    const auto errors = errors_of(
        "_format_version: \"3.0\"\n"
        "services:\n"
        "  - name: a\n"
        "    url: ftp://a\n"
        "    routes: [{paths: [x], methods: [get]}]\n"
        "    plugins: [{name: jwt, config: {uri_param_names: [jwt]}}]\n");
    EXPECT_THAT(
        errors,
        ElementsAre("kong.yaml:4: services[0].url: must use http or https, not \"ftp\"",
                    "kong.yaml:5: services[0].routes[0].paths[0]: must start with /",
                    "kong.yaml:5: services[0].routes[0].methods[0]: must be upper case: GET",
                    HasSubstr("kong.yaml:6: services[0].plugins[0].config.uri_param_names: "
                              "must be empty: tokens in the query string are refused")));
}

TEST(Validation, FormatVersionIsRequiredAndMustBe30) {
    EXPECT_THAT(errors_of("services: []\n"),
                ElementsAre("kong.yaml:1: _format_version: is required: add _format_version: "
                            "\"3.0\" (a Kong 3.0 declarative file)"));
    EXPECT_THAT(errors_of("_format_version: \"2.1\"\n"),
                ElementsAre("kong.yaml:1: _format_version: must be \"3.0\" (this gateway reads "
                            "Kong 3.0 declarative files; got \"2.1\")"));
    EXPECT_TRUE(parse_ok("_format_version: 3.0\n"));  // unquoted is the same text
}

TEST(Validation, YamlSyntaxErrorsCarryTheirLine) {
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\nservices: [a, b\nplugins: []\n"),
                ElementsAre(HasSubstr("kong.yaml:3: invalid YAML: ")));
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\n  bad: indentation\n"),
                ElementsAre(HasSubstr("kong.yaml:2: invalid YAML: ")));
}

TEST(Validation, TheFileIsOneMapping) {
    EXPECT_THAT(errors_of(""),
                ElementsAre("kong.yaml: must be a mapping with _format_version: \"3.0\" and "
                            "services:, not empty"));
    EXPECT_THAT(errors_of("- a\n- b\n"),
                ElementsAre("kong.yaml:1: must be a mapping with _format_version: \"3.0\" and "
                            "services:, not a list"));
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\n---\n_format_version: \"3.0\"\n"),
                ElementsAre("kong.yaml: holds more than one YAML document (separated by ---); "
                            "the configuration is one document"));
    EXPECT_THAT(errors_of(","), ElementsAre(HasSubstr("kong.yaml:1: must be a mapping")));
}

TEST(Validation, UnknownKeysAreErrorsWithASuggestion) {
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n    retires: 3\n")),
                ElementsAre("kong.yaml:5: services[0].retires: unknown key (did you mean "
                            "retries?)"));
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\nservice: []\n"),
                ElementsAre("kong.yaml:2: service: unknown key (did you mean services?)"));
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n"
                                      "        config: {minutes: 5, minute: 5}\n")),
                ElementsAre("kong.yaml:9: services[0].plugins[0].config.minutes: unknown key "
                            "(did you mean minute?)"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n"
                                       "    tls_verify: true\n")),
                ElementsAre("kong.yaml:5: services[0].tls_verify: unknown key"));
}

TEST(Validation, KongExportMetadataIsAcceptedAndIgnored) {
    auto config = parse_ok(
        "_format_version: \"3.0\"\n_transform: true\n_workspace: default\n"
        "services:\n"
        "  - name: s\n    id: 0b6e\n    tags: [a]\n    created_at: 1\n    updated_at: 2\n"
        "    ws_id: w\n    host: s\n    port: 8000\n    protocol: http\n"
        "    routes:\n"
        "      - paths: [/s]\n        id: r\n        protocols: [http, https]\n"
        "        https_redirect_status_code: 426\n        regex_priority: 0\n"
        "        path_handling: v0\n        request_buffering: true\n"
        "        response_buffering: true\n        ws_id: w\n        tags: []\n"
        "        plugins: [{name: prometheus, id: p, protocols: [http], tags: [], "
        "created_at: 1, enabled: true}]\n"
        "consumers: [{username: u, id: c, created_at: 1, tags: [x]}]\n"
        "upstreams: [{name: up, id: x, slots: 10000, hash_on: none, hash_fallback: none, "
        "hash_on_cookie_path: /, targets: [{target: 'a:1', id: t, upstream: {id: x}}]}]\n");
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->services[0].endpoint.authority(), "s:8000");
}

TEST(Validation, DuplicateKeysAreReported) {
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n    url: http://t\n")),
                ElementsAre("kong.yaml:5: services[0].url: duplicate key (first on line 4)"));
}

TEST(Validation, NullMeansTheDefault) {
    auto config =
        parse_ok(with_plugin("      - name: rate-limiting\n        config:\n"
                             "          second: null\n          minute: 5\n"
                             "          hour: ~\n          redis_host:\n"));
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->services[0].plugins[0].get<RateLimitingPluginConfig>()->limits.size(), 1u);
}

TEST(Validation, TopLevelRoutesAreRefused) {
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\nroutes: [{paths: [/]}]\n"),
                ElementsAre("kong.yaml:2: routes: top-level routes are not supported: nest each "
                            "route under its service"));
}

TEST(Validation, WrongFormsAreNamed) {
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\nservices: {name: s}\n"),
                ElementsAre("kong.yaml:2: services: must be a list (each item starting with -), "
                            "not a mapping"));
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\nservices: [s]\n"),
                ElementsAre("kong.yaml:2: services[0]: must be a mapping of keys, not a single "
                            "value"));
    EXPECT_THAT(errors_of(with_service("  - name: [s]\n    url: http://s\n")),
                ElementsAre("kong.yaml:3: services[0].name: must be a single value, not a list"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n    retries: many\n")),
                ElementsAre("kong.yaml:5: services[0].retries: must be an integer between 0 and "
                            "32767 (got \"many\")"));
    EXPECT_THAT(
        errors_of(with_service("  - name: s\n    url: http://s\n    routes: [{paths: /s}]\n")),
        ElementsAre("kong.yaml:5: services[0].routes[0].paths: must be a list such as [a, b], "
                    "not a single value"));
}

// ---------------------------------------------------------------------------------------------
// Services

TEST(Services, NameIsRequiredAndUnique) {
    EXPECT_THAT(errors_of(with_service("  - url: http://s\n")),
                ElementsAre("kong.yaml:3: services[0].name: is required"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n"
                                       "  - name: s\n    url: http://t\n")),
                ElementsAre("kong.yaml:5: services[1].name: duplicate service name \"s\" (first "
                            "on line 3)"));
    EXPECT_THAT(errors_of(with_service("  - name: a b\n    url: http://s\n")),
                ElementsAre("kong.yaml:3: services[0].name: must contain only letters, digits, "
                            "and . - _ ~"));
}

TEST(Services, UrlMustBeHttpWithAHost) {
    auto url_error = [](const std::string& url) {
        auto errors = errors_of(with_service("  - name: s\n    url: \"" + url + "\"\n"));
        return errors.size() == 1 ? errors[0] : "(" + std::to_string(errors.size()) + " errors)";
    };
    const std::string prefix = "kong.yaml:4: services[0].url: ";
    EXPECT_EQ(url_error("tasks:8000"),
              prefix + "must be an http:// or https:// URL such as http://tasks:8000");
    EXPECT_EQ(url_error("grpc://tasks"), prefix + "must use http or https, not \"grpc\"");
    EXPECT_EQ(url_error("http://user:pw@tasks"),
              prefix + "must not contain credentials (user:password@)");
    EXPECT_EQ(url_error("http://tasks/a?b=1"), prefix + "must not have a query string or fragment");
    EXPECT_EQ(url_error("http://tasks:0"),
              prefix + "has an invalid port: must be between 1 and 65535");
    EXPECT_EQ(url_error("http://tasks:99999"),
              prefix + "has an invalid port: must be between 1 and 65535");
    EXPECT_EQ(url_error("http://:80"), prefix + "has no host");
    EXPECT_EQ(url_error("http://ta sks"), prefix + "must not contain spaces or control characters");
    EXPECT_EQ(url_error("http://::1:80"),
              prefix + "must put an IPv6 address in brackets, as [::1]:8000");
    EXPECT_EQ(url_error("http://tas!ks"),
              prefix +
                  "has an invalid host name \"tas!ks\" (letters, digits, - and _ in "
                  "dot-separated labels)");

    auto config = parse_ok(with_service("  - name: s\n    url: HTTPS://[::1]:8443/x/\n"));
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->services[0].endpoint.scheme, "https");
    EXPECT_EQ(config->services[0].endpoint.host, "[::1]");
    EXPECT_EQ(config->services[0].endpoint.port, 8443);
    EXPECT_EQ(config->services[0].endpoint.path, "/x/");
}

TEST(Services, AreEitherInProcessOrProxied) {
    EXPECT_THAT(errors_of(with_service("  - name: s\n    module: tasks\n    url: http://s\n")),
                ElementsAre("kong.yaml:4: services[0].module: a service is either in-process "
                            "(module) or proxied (url, or protocol/host/port/path), not both"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n    host: t\n")),
                ElementsAre("kong.yaml:4: services[0].url: give either url or "
                            "protocol/host/port/path, not both"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    retries: 1\n")),
                ElementsAre("kong.yaml:3: services[0]: needs url (or host) for a proxied "
                            "service, or module for in-process dispatch"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    port: 8000\n")),
                ElementsAre("kong.yaml:3: services[0].host: is required when protocol, port or "
                            "path is given"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    module: Tasks\n")),
                ElementsAre("kong.yaml:4: services[0].module: must be a module name such as "
                            "tasks (lower-case letters, digits, - and _)"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    host: s\n    protocol: grpc\n")),
                ElementsAre("kong.yaml:5: services[0].protocol: grpc services are not supported"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    host: s:80\n")),
                ElementsAre("kong.yaml:4: services[0].host: must not contain a port (see port)"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    host: s\n    path: v1\n")),
                ElementsAre("kong.yaml:5: services[0].path: must start with / and contain no "
                            "spaces, control characters, ? or #"));
}

TEST(Services, TimeoutsAndRetriesHaveKongsBounds) {
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n    read_timeout: 0\n")),
                ElementsAre("kong.yaml:5: services[0].read_timeout: must be an integer between 1 "
                            "and 2147483646 (got \"0\")"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n    retries: -1\n")),
                ElementsAre("kong.yaml:5: services[0].retries: must be an integer between 0 and "
                            "32767 (got \"-1\")"));
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n    enabled: yes\n")),
                ElementsAre("kong.yaml:5: services[0].enabled: must be true or false (got "
                            "\"yes\")"));
}

TEST(Services, AUrlHostNamingAnUpstreamIsBalancedOverIt) {
    auto config =
        parse_ok(with_service("  - name: s\n    url: http://Pool/api\n"
                              "    mirror: {url: 'http://pool:9000'}\n"
                              "  - name: t\n    url: http://pool.example\n"
                              "upstreams: [{name: pool, targets: [{target: 'a:1'}]}]\n"));
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->services[0].upstream, "pool");
    EXPECT_EQ(config->services[0].mirror->upstream, "pool");
    EXPECT_EQ(config->services[1].upstream, "");
}

TEST(Services, MirrorIsValidated) {
    EXPECT_THAT(errors_of(with_service("  - name: s\n    url: http://s\n    mirror:\n"
                                       "      percentage: 150\n      compare: headers\n")),
                ElementsAre("kong.yaml:5: services[0].mirror.url: is required",  // at mirror:
                            "kong.yaml:6: services[0].mirror.percentage: must be a number between "
                            "0 and 100 (got \"150\")",
                            "kong.yaml:7: services[0].mirror.compare: must be one of status, "
                            "body, none (got \"headers\")"));
    auto config = parse_ok(
        with_service("  - name: s\n    url: http://s\n    mirror: {url: 'http://shadow:8000'}\n"));
    ASSERT_NE(config, nullptr);
    EXPECT_DOUBLE_EQ(config->services[0].mirror->percentage, 100);
    EXPECT_EQ(config->services[0].mirror->compare, Mirror::Compare::Status);
    EXPECT_EQ(config->services[0].mirror->timeout, std::chrono::milliseconds(5000));
}

// ---------------------------------------------------------------------------------------------
// Routes

std::string with_route(const std::string& route) {
    return with_service("  - name: s\n    url: http://s\n    routes:\n" + route);  // route: line 6
}

TEST(Routes, PathsAreRequiredPrefixesWithoutRegex) {
    EXPECT_THAT(errors_of(with_route("      - name: r\n")),
                ElementsAre("kong.yaml:6: services[0].routes[0].paths: is required: a route needs "
                            "at least one path prefix such as /api/v1/tasks"));
    EXPECT_THAT(errors_of(with_route("      - paths: []\n")),
                ElementsAre("kong.yaml:6: services[0].routes[0].paths: must list at least one "
                            "path, such as /api/v1/tasks"));
    EXPECT_THAT(errors_of(with_route("      - paths: [\"~/api/v1/tasks/\\\\d+$\"]\n")),
                ElementsAre("kong.yaml:6: services[0].routes[0].paths[0]: regex paths are not "
                            "supported: use a path prefix"));
    EXPECT_THAT(errors_of(with_route("      - paths: [\"/a?b\"]\n")),
                ElementsAre("kong.yaml:6: services[0].routes[0].paths[0]: must not contain "
                            "spaces, control characters, ? or #"));
    EXPECT_THAT(errors_of(with_route("      - paths:\n          - /a\n          - /a\n")),
                ElementsAre("kong.yaml:8: services[0].routes[0].paths[1]: duplicate path \"/a\" "
                            "in this route"));
}

TEST(Routes, MethodsAreUpperCaseHttpMethods) {
    EXPECT_THAT(errors_of(with_route("      - paths: [/a]\n        methods: [GET, post, BREW]\n")),
                ElementsAre("kong.yaml:7: services[0].routes[0].methods[1]: must be upper case: "
                            "POST",
                            "kong.yaml:7: services[0].routes[0].methods[2]: must be an HTTP "
                            "method (GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, "
                            "CONNECT), not \"BREW\""));
}

TEST(Routes, HostsAreHostNamesWithEdgeWildcards) {
    EXPECT_THAT(errors_of(with_route("      - paths: [/a]\n        hosts:\n          - a.*.com\n"
                                     "          - '*.*'\n          - 'a.com:0'\n"
                                     "          - 'A.Example.COM'\n")),
                ElementsAre(HasSubstr("kong.yaml:8: services[0].routes[0].hosts[0]: must be a "
                                      "host name such as api.example.com"),
                            HasSubstr("kong.yaml:9: services[0].routes[0].hosts[1]: "),
                            HasSubstr("kong.yaml:10: services[0].routes[0].hosts[2]: ")));
}

TEST(Routes, NamesAreUniqueAcrossTheFile) {
    EXPECT_THAT(errors_of(with_service("  - name: a\n    url: http://a\n"
                                       "    routes: [{name: r, paths: [/a]}]\n"
                                       "  - name: b\n    url: http://b\n"
                                       "    routes:\n      - name: r\n        paths: [/b]\n")),
                ElementsAre("kong.yaml:9: services[1].routes[0].name: duplicate route name \"r\" "
                            "(first on line 5)"));
}

TEST(Routes, StripPathDefaultsToTrueForProxiedAndFalseForModules) {
    auto config =
        parse_ok(with_service("  - name: a\n    url: http://a\n"
                              "    routes: [{paths: [/a]}]\n"
                              "  - name: b\n    module: tasks\n"
                              "    routes: [{paths: [/b]}, {paths: [/c], "
                              "strip_path: true}]\n"));
    ASSERT_NE(config, nullptr);
    EXPECT_TRUE(config->services[0].routes[0].strip_path);
    EXPECT_FALSE(config->services[1].routes[0].strip_path);
    EXPECT_TRUE(config->services[1].routes[1].strip_path);
}

// ---------------------------------------------------------------------------------------------
// Plugins

TEST(Plugins, UnknownAndDuplicateNamesAreErrors) {
    EXPECT_THAT(errors_of(with_plugin("      - name: key-auth\n")),
                ElementsAre("kong.yaml:8: services[0].plugins[0].name: unknown plugin "
                            "\"key-auth\" (known: correlation-id, cors, jwt, ip-restriction, "
                            "request-size-limiting, rate-limiting, prometheus)"));
    EXPECT_THAT(errors_of(with_plugin("      - name: prometheus\n      - name: prometheus\n")),
                ElementsAre("kong.yaml:9: services[0].plugins[1].name: duplicate plugin "
                            "\"prometheus\" in this list (first on line 8)"));
    EXPECT_THAT(errors_of(with_plugin("      - config: {}\n")),
                ElementsAre("kong.yaml:8: services[0].plugins[0].name: is required"));
    EXPECT_THAT(errors_of(with_plugin("      - {name: prometheus, service: s}\n")),
                ElementsAre("kong.yaml:8: services[0].plugins[0].service: plugins are not "
                            "attached by reference here: nest the plugin under its service"));
    EXPECT_THAT(errors_of(with_plugin("      - {name: prometheus, consumer: c}\n")),
                ElementsAre("kong.yaml:8: services[0].plugins[0].consumer: per-consumer plugins "
                            "are not supported"));
    EXPECT_THAT(errors_of(with_plugin("      - {name: prometheus, config: [a]}\n")),
                ElementsAre("kong.yaml:8: services[0].plugins[0].config: must be a mapping of "
                            "keys, not a list"));
}

TEST(Plugins, DisabledPluginsAreStillValidated) {
    EXPECT_THAT(errors_of(with_plugin("      - {name: ip-restriction, enabled: false}\n")),
                ElementsAre("kong.yaml:8: services[0].plugins[0].config: needs allow or deny: a "
                            "list of addresses or CIDR blocks"));
}

TEST(Plugins, JwtRefusesTokensInTheQueryString) {
    EXPECT_THAT(errors_of(with_plugin("      - name: jwt\n        config:\n"
                                      "          uri_param_names: [jwt]\n")),
                ElementsAre("kong.yaml:10: services[0].plugins[0].config.uri_param_names: must be "
                            "empty: tokens in the query string are refused (they end up in access "
                            "logs, browser history and Referer headers); send them in the "
                            "Authorization header"));
    EXPECT_TRUE(parse_ok(with_plugin("      - {name: jwt, config: {uri_param_names: []}}\n")));
}

TEST(Plugins, JwtClaimsAndLimits) {
    EXPECT_THAT(errors_of(with_plugin("      - name: jwt\n        config:\n"
                                      "          claims_to_verify: [exp, iat]\n")),
                ElementsAre("kong.yaml:10: services[0].plugins[0].config.claims_to_verify[1]: "
                            "must be exp or nbf (got \"iat\")"));
    EXPECT_THAT(errors_of(with_plugin("      - name: jwt\n        config:\n"
                                      "          claims_to_verify: [nbf]\n"
                                      "          maximum_expiration: 60\n")),
                ElementsAre("kong.yaml:11: services[0].plugins[0].config.maximum_expiration: "
                            "requires exp in claims_to_verify"));
    EXPECT_THAT(errors_of(with_plugin("      - name: jwt\n        config:\n"
                                      "          header_names: []\n")),
                ElementsAre("kong.yaml:10: services[0].plugins[0].config.header_names: must not "
                            "be empty when cookie_names is: the token could not be read from "
                            "anywhere"));
    EXPECT_THAT(errors_of(with_plugin("      - name: jwt\n        config:\n"
                                      "          jwks_url: security/jwks\n"
                                      "          token_type: refresh\n"
                                      "          anonymous: guest\n")),
                ElementsAre("kong.yaml:12: services[0].plugins[0].config.anonymous: anonymous "
                            "consumers are not supported: leave it unset",
                            "kong.yaml:10: services[0].plugins[0].config.jwks_url: must be an "
                            "http:// or https:// URL such as http://tasks:8000",
                            "kong.yaml:11: services[0].plugins[0].config.token_type: must be one "
                            "of access, any (got \"refresh\")"));
}

TEST(Plugins, RateLimitingNeedsALimit) {
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                      "          policy: local\n")),
                ElementsAre("kong.yaml:9: services[0].plugins[0].config: needs at least one "
                            "limit: second, minute, hour, day, month or year"));
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n")),
                ElementsAre("kong.yaml:8: services[0].plugins[0].config: needs at least one "
                            "limit: second, minute, hour, day, month or year"));
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                      "          minute: 0\n")),
                ElementsAre("kong.yaml:10: services[0].plugins[0].config.minute: must be an "
                            "integer between 1 and 2147483647 (got \"0\")"));
}

TEST(Plugins, RateLimitsMayNotShrinkForLongerPeriods) {
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                      "          second: 10\n          minute: 60\n"
                                      "          hour: 30\n          day: 1000\n")),
                ElementsAre("kong.yaml:12: services[0].plugins[0].config.hour: must not be lower "
                            "than the limit for minute (30 < 60)"));
}

TEST(Plugins, RateLimitingPolicyAndKeys) {
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                      "          minute: 5\n          policy: cluster\n")),
                ElementsAre("kong.yaml:11: services[0].plugins[0].config.policy: cluster is not "
                            "supported, use redis (counters shared through Redis) or local"));
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                      "          minute: 5\n          limit_by: header\n")),
                ElementsAre("kong.yaml:9: services[0].plugins[0].config.header_name: is required "
                            "when limit_by is header"));
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                      "          minute: 5\n          limit_by: path\n"
                                      "          path: api\n")),
                ElementsAre("kong.yaml:12: services[0].plugins[0].config.path: must start with /"));
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                      "          minute: 5\n          limit_by: user\n")),
                ElementsAre("kong.yaml:11: services[0].plugins[0].config.limit_by: must be one of "
                            "consumer, credential, ip, service, header, path (got \"user\")"));
    EXPECT_THAT(errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                      "          minute: 5\n          sync_rate: 10\n")),
                ElementsAre("kong.yaml:11: services[0].plugins[0].config.sync_rate: only "
                            "synchronous counters are supported: leave it unset or -1"));
}

TEST(Plugins, SecretsAreNeverPrinted) {
    const std::string secret = "hunter2-very-secret-value";
    const auto errors = errors_of(with_plugin("      - name: rate-limiting\n        config:\n"
                                              "          minute: 5\n          policy: redis\n"
                                              "          redis_password: [" +
                                              secret + "]\n") +
                                  "consumers:\n  - username: u\n    jwt_secrets:\n"
                                  "      - {key: k, secret: " +
                                  secret +
                                  "}\n"
                                  "      - {key: k2, algorithm: RS256, secret: " +
                                  secret + ", rsa_public_key: " + secret + "}\n");
    ASSERT_EQ(errors.size(), 3u);
    for (const std::string& error : errors) EXPECT_THAT(error, Not(HasSubstr("hunter2"))) << error;
    EXPECT_EQ(errors[0],
              "kong.yaml:12: services[0].plugins[0].config.redis_password: must be a single value");
    EXPECT_EQ(errors[1],
              "kong.yaml:16: consumers[0].jwt_secrets[0].secret: must be at least 32 "
              "bytes for HS256 (the size of its hash output)");
    EXPECT_EQ(errors[2],
              "kong.yaml:17: consumers[0].jwt_secrets[1].rsa_public_key: must be a PEM "
              "public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)");
}

TEST(Plugins, CorsRefusesAnyOriginWithCredentials) {
    EXPECT_THAT(errors_of(with_plugin("      - name: cors\n        config:\n"
                                      "          origins: [\"https://a.example\", \"*\"]\n"
                                      "          credentials: true\n")),
                ElementsAre("kong.yaml:11: services[0].plugins[0].config.credentials: must not "
                            "be true while origins contains \"*\" (origins[1]): browsers reject "
                            "the pair, and it would let any site make credentialed calls; list "
                            "the allowed origins instead"));
}

TEST(Plugins, CorsOriginsAreListedOrigins) {
    EXPECT_THAT(errors_of(with_plugin("      - name: cors\n")),
                ElementsAre("kong.yaml:8: services[0].plugins[0].config.origins: must list at "
                            "least one origin (\"*\" allows any, without credentials)"));
    EXPECT_THAT(errors_of(with_plugin("      - name: cors\n        config:\n"
                                      "          origins:\n"
                                      "            - https://a.example/\n"
                                      "            - https://.*\\.example\\.com\n"
                                      "            - a.example\n"
                                      "            - HTTPS://B.example:8443\n"
                                      "          methods: [GET, FETCH]\n"
                                      "          headers: [\"bad header\"]\n")),
                ElementsAre(HasSubstr("kong.yaml:11: services[0].plugins[0].config.origins[0]: "
                                      "must be \"*\" or an origin such as "
                                      "https://app.example.com"),
                            HasSubstr("kong.yaml:12: services[0].plugins[0].config.origins[1]: "),
                            HasSubstr("kong.yaml:13: services[0].plugins[0].config.origins[2]: "),
                            HasSubstr("kong.yaml:15: services[0].plugins[0].config.methods[1]: "
                                      "must be an HTTP method"),
                            "kong.yaml:16: services[0].plugins[0].config.headers[0]: must be a "
                            "header name (letters, digits, -)"));
}

TEST(Plugins, CorrelationIdGeneratorAndHeader) {
    EXPECT_THAT(errors_of(with_plugin("      - name: correlation-id\n        config:\n"
                                      "          generator: uuid4\n"
                                      "          header_name: \"X Request\"\n")),
                ElementsAre("kong.yaml:11: services[0].plugins[0].config.header_name: must be a "
                            "header name (letters, digits, -)",
                            "kong.yaml:10: services[0].plugins[0].config.generator: must be one "
                            "of uuid, uuid#counter, tracker (got \"uuid4\")"));
}

TEST(Plugins, IpRestrictionListsAreParsedNow) {
    EXPECT_THAT(errors_of(with_plugin("      - name: ip-restriction\n        config:\n"
                                      "          allow: [10.0.0.0/33, \"fe80::1%eth0\", 10.0.0.1]\n"
                                      "          status: 99\n")),
                ElementsAre("kong.yaml:10: services[0].plugins[0].config.allow[0]: must be an IPv4 "
                            "or IPv6 address or CIDR block such as 10.0.0.0/8 or 2001:db8::/32 "
                            "(got \"10.0.0.0/33\")",
                            HasSubstr("config.allow[1]: must be an IPv4 or IPv6 address"),
                            "kong.yaml:11: services[0].plugins[0].config.status: must be an "
                            "integer between 100 and 599 (got \"99\")"));
    EXPECT_THAT(errors_of(with_plugin("      - name: ip-restriction\n        config:\n"
                                      "          allow: []\n          deny: []\n")),
                ElementsAre("kong.yaml:9: services[0].plugins[0].config: needs allow or deny: a "
                            "list of addresses or CIDR blocks"));
}

TEST(Plugins, RequestSizeLimitingUnits) {
    EXPECT_THAT(errors_of(with_plugin("      - name: request-size-limiting\n        config:\n"
                                      "          size_unit: gigabytes\n")),
                ElementsAre("kong.yaml:10: services[0].plugins[0].config.size_unit: must be one "
                            "of megabytes, kilobytes, bytes (got \"gigabytes\")"));
}

TEST(Plugins, BooleansArePlainTrueOrFalse) {
    EXPECT_THAT(errors_of(with_plugin("      - name: prometheus\n        config:\n"
                                      "          per_consumer: 1\n")),
                ElementsAre("kong.yaml:10: services[0].plugins[0].config.per_consumer: must be "
                            "true or false (got \"1\")"));
}

// ---------------------------------------------------------------------------------------------
// Consumers and upstreams

TEST(Consumers, NeedANameAndUniqueKeys) {
    const std::string hs = "0123456789abcdef0123456789abcdef";
    EXPECT_THAT(errors_of("_format_version: \"3.0\"\nconsumers:\n  - tags: [a]\n"),
                ElementsAre("kong.yaml:3: consumers[0]: needs username or custom_id"));
    EXPECT_THAT(
        errors_of("_format_version: \"3.0\"\nconsumers:\n"
                  "  - username: a\n    jwt_secrets: [{key: k, secret: " +
                  hs +
                  "}]\n"
                  "  - username: a\n    jwt_secrets: [{key: k, secret: " +
                  hs + "}]\n"),
        ElementsAre("kong.yaml:5: consumers[1].username: duplicate consumer username \"a\" "
                    "(first on line 3)",
                    "kong.yaml:6: consumers[1].jwt_secrets[0].key: duplicate jwt_secrets key "
                    "\"k\" (first on line 4)"));
}

TEST(Consumers, JwtSecretsMatchTheirAlgorithm) {
    const std::string head =
        "_format_version: \"3.0\"\nconsumers:\n  - username: a\n"
        "    jwt_secrets:\n      - ";
    EXPECT_THAT(errors_of(head + "{key: k, algorithm: none}\n"),
                ElementsAre("kong.yaml:5: consumers[0].jwt_secrets[0].algorithm: must be one of "
                            "HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, ES512 (got "
                            "\"none\")"));
    EXPECT_THAT(errors_of(head + "{key: k}\n"),
                ElementsAre("kong.yaml:5: consumers[0].jwt_secrets[0].secret: is required for "
                            "HS256"));
    EXPECT_THAT(
        errors_of(head + "{key: k, algorithm: HS512, secret: " + std::string(63, 'x') + "}\n"),
        ElementsAre("kong.yaml:5: consumers[0].jwt_secrets[0].secret: must be at least 64 "
                    "bytes for HS512 (the size of its hash output)"));
    EXPECT_THAT(errors_of(head + "{key: k, algorithm: ES256}\n"),
                ElementsAre("kong.yaml:5: consumers[0].jwt_secrets[0].rsa_public_key: is required "
                            "for ES256 (a PEM public key)"));
    EXPECT_THAT(errors_of(head + "{secret: " + std::string(32, 'x') + "}\n"),
                ElementsAre("kong.yaml:5: consumers[0].jwt_secrets[0].key: is required"));
}

std::string with_upstream(const std::string& upstream) {
    return "_format_version: \"3.0\"\nupstreams:\n" + upstream;  // upstream: line 3
}

TEST(Upstreams, TargetsAreWeightedHostPorts) {
    EXPECT_THAT(errors_of(with_upstream("  - name: u\n")),
                ElementsAre("kong.yaml:3: upstreams[0].targets: is required: list at least one "
                            "target such as {target: \"tasks:8000\"}"));
    EXPECT_THAT(errors_of(with_upstream("  - name: u\n    targets: []\n")),
                ElementsAre("kong.yaml:4: upstreams[0].targets: must list at least one target "
                            "such as {target: \"tasks:8000\"}"));
    EXPECT_THAT(errors_of(with_upstream("  - name: u\n    targets:\n"
                                        "      - {target: 'a:1', weight: 0}\n"
                                        "      - {target: 'b:1', weight: 0}\n")),
                ElementsAre("kong.yaml:4: upstreams[0].targets: every target has weight 0: the "
                            "upstream could receive no traffic"));
    EXPECT_THAT(errors_of(with_upstream("  - name: u\n    targets:\n"
                                        "      - {target: 'a:1'}\n"
                                        "      - {target: 'A:1', weight: 65536}\n"
                                        "      - {target: 'a:x'}\n")),
                ElementsAre("kong.yaml:6: upstreams[0].targets[1].target: duplicate target a:1 "
                            "(first on line 5)",
                            "kong.yaml:6: upstreams[0].targets[1].weight: must be an integer "
                            "between 0 and 65535 (got \"65536\")",
                            "kong.yaml:7: upstreams[0].targets[2].target: must be host:port such "
                            "as tasks-v2:8000; it has an invalid port: must be between 1 and "
                            "65535"));
}

TEST(Upstreams, NamesAlgorithmsAndUniqueness) {
    EXPECT_THAT(errors_of(with_upstream("  - name: u\n    algorithm: consistent-hashing\n"
                                        "    targets: [{target: a}]\n"
                                        "  - name: U\n    targets: [{target: a}]\n"
                                        "  - name: 'a b'\n    targets: [{target: a}]\n")),
                ElementsAre("kong.yaml:4: upstreams[0].algorithm: consistent-hashing is not "
                            "supported: use round-robin or least-connections",
                            "kong.yaml:6: upstreams[1].name: duplicate upstream name \"u\" (first "
                            "on line 3)",
                            "kong.yaml:8: upstreams[2].name: must be a host name (services reach "
                            "the upstream as http://NAME)"));
}

TEST(Upstreams, HealthchecksUseKongsNames) {
    EXPECT_THAT(
        errors_of(with_upstream("  - name: u\n    targets: [{target: a}]\n    healthchecks:\n"
                                "      active:\n        type: grpc\n        http_path: health\n"
                                "        healthy: {interval: -1, successes: 256}\n"
                                "        unhealthy: {http_statuses: [42], successes: 1}\n"
                                "      passive:\n        unhealthy: {interval: 5}\n")),
        ElementsAre("kong.yaml:7: upstreams[0].healthchecks.active.type: grpc health checks are "
                    "not supported",
                    "kong.yaml:8: upstreams[0].healthchecks.active.http_path: must start with /",
                    "kong.yaml:9: upstreams[0].healthchecks.active.healthy.interval: must be a "
                    "number between 0 and 65535 (got \"-1\")",
                    "kong.yaml:9: upstreams[0].healthchecks.active.healthy.successes: must be an "
                    "integer between 0 and 255 (got \"256\")",
                    "kong.yaml:10: upstreams[0].healthchecks.active.unhealthy.http_statuses[0]: "
                    "must be an HTTP status between 100 and 999",
                    "kong.yaml:10: upstreams[0].healthchecks.active.unhealthy.successes: unknown "
                    "key",
                    "kong.yaml:12: upstreams[0].healthchecks.passive.unhealthy.interval: unknown "
                    "key"));
}

// ---------------------------------------------------------------------------------------------
// Loading files

TEST(Load, MissingFilesAndDirectoriesAreNamed) {
    auto missing = load_gateway_config("/nonexistent/kong.yaml");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().front().to_string(),
              "/nonexistent/kong.yaml: cannot read the gateway configuration: it does not exist");
    auto directory = load_gateway_config(AETHER_GATEWAY_TESTDATA);
    ASSERT_FALSE(directory);
    EXPECT_THAT(directory.error().front().to_string(), HasSubstr("it is a directory"));
}

TEST(Load, NamesTheFileInMessages) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("gateway-config-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto file = dir / "kong.yaml";
    std::ofstream(file) << "_format_version: \"3.0\"\nservices:\n  - name: s\n";
    auto loaded = load_gateway_config(file.string());
    std::filesystem::remove_all(dir);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().front().to_string(),
              file.string() +
                  ":3: services[0]: needs url (or host) for a proxied service, or "
                  "module for in-process dispatch");
}

TEST(Load, RefusesFilesOverFourMebibytes) {
    std::string yaml = "_format_version: \"3.0\"\n";
    yaml += "# " + std::string((4u << 20) - yaml.size(), 'x');
    EXPECT_THAT(errors_of(yaml), ElementsAre("kong.yaml: the file is too large: at most 4 MiB"));
}

TEST(Load, AliasBombsAreCutShort) {
    // 100 services, each aliasing one with 100 routes, each aliasing one with 100 paths: a few
    // kilobytes that would be a million nodes to check.
    std::string yaml = "_format_version: \"3.0\"\nservices:\n";
    std::string paths = "[";
    for (int i = 0; i < 100; ++i) paths += (i ? ", /p" : "/p") + std::to_string(i);
    std::string routes = "[";
    for (int i = 0; i < 100; ++i) routes += i ? ", *r" : "&r {paths: " + paths + "]}";
    yaml += "  - &s {name: s, url: 'http://s', routes: " + routes + "]}\n";
    for (int i = 1; i < 100; ++i) yaml += "  - *s\n";
    const auto errors = errors_of(yaml);
    ASSERT_FALSE(errors.empty());
    EXPECT_THAT(errors, testing::Contains("kong.yaml:3: the file is too large: more than 200000 "
                                          "YAML nodes (counting every use of an alias)"));
    EXPECT_LE(errors.size(), 101u);
}

TEST(Load, ErrorsAreCappedAtAHundred) {
    std::string yaml = "_format_version: \"3.0\"\nservices:\n";
    for (int i = 0; i < 300; ++i) yaml += "  - {name: s" + std::to_string(i) + "}\n";
    const auto errors = errors_of(yaml);
    ASSERT_EQ(errors.size(), 101u);
    EXPECT_EQ(errors.back(), "kong.yaml: more problems follow; fix these first");
}

// ---------------------------------------------------------------------------------------------
// Addresses

TEST(Cidr, Ipv4BlocksAndSingleAddresses) {
    auto block = Cidr::parse("10.0.0.0/8");
    ASSERT_TRUE(block);
    EXPECT_TRUE(block->is_v4());
    EXPECT_EQ(block->prefix_length(), 8u);
    EXPECT_TRUE(block->contains("10.255.1.2"));
    EXPECT_FALSE(block->contains("11.0.0.1"));
    EXPECT_FALSE(block->contains("not an address"));
    EXPECT_EQ(block->to_string(), "10.0.0.0/8");

    auto single = Cidr::parse("192.0.2.7");
    ASSERT_TRUE(single);
    EXPECT_EQ(single->prefix_length(), 32u);
    EXPECT_TRUE(single->contains("192.0.2.7"));
    EXPECT_FALSE(single->contains("192.0.2.8"));

    auto host_bits = Cidr::parse("192.168.1.77/24");  // bits past the prefix are ignored
    ASSERT_TRUE(host_bits);
    EXPECT_EQ(host_bits->to_string(), "192.168.1.0/24");
    EXPECT_TRUE(host_bits->contains("192.168.1.1"));

    auto odd = Cidr::parse("172.16.0.0/12");
    ASSERT_TRUE(odd);
    EXPECT_TRUE(odd->contains("172.31.255.255"));
    EXPECT_FALSE(odd->contains("172.32.0.0"));

    auto everything = Cidr::parse("0.0.0.0/0");
    ASSERT_TRUE(everything);
    EXPECT_TRUE(everything->contains("203.0.113.9"));
    EXPECT_FALSE(everything->contains("2001:db8::1"));
}

TEST(Cidr, Ipv6Blocks) {
    auto block = Cidr::parse("2001:db8::/32");
    ASSERT_TRUE(block);
    EXPECT_FALSE(block->is_v4());
    EXPECT_TRUE(block->contains("2001:db8:ffff::1"));
    EXPECT_TRUE(block->contains("2001:DB8::"));
    EXPECT_FALSE(block->contains("2001:db9::1"));
    EXPECT_EQ(block->to_string(), "2001:db8::/32");

    auto loopback = Cidr::parse("::1");
    ASSERT_TRUE(loopback);
    EXPECT_EQ(loopback->prefix_length(), 128u);
    EXPECT_TRUE(loopback->contains("::1"));
    EXPECT_TRUE(loopback->contains("0:0:0:0:0:0:0:1"));
    EXPECT_FALSE(loopback->contains("::2"));
    EXPECT_FALSE(loopback->contains("127.0.0.1"));

    auto odd = Cidr::parse("fe80::/10");
    ASSERT_TRUE(odd);
    EXPECT_TRUE(odd->contains("febf::1"));
    EXPECT_FALSE(odd->contains("fec0::1"));

    // "::/0" is every IPv6 address, not every address.
    auto all_v6 = Cidr::parse("::/0");
    ASSERT_TRUE(all_v6);
    EXPECT_TRUE(all_v6->contains("2001:db8::1"));
    EXPECT_FALSE(all_v6->contains("10.0.0.1"));
}

TEST(Cidr, Ipv4MappedAddressesAreIpv4) {
    auto block = Cidr::parse("10.0.0.0/8");
    ASSERT_TRUE(block);
    EXPECT_TRUE(block->contains("::ffff:10.1.2.3"));
    EXPECT_TRUE(block->contains("::ffff:a01:203"));
    EXPECT_FALSE(block->contains("::ffff:11.1.2.3"));
    EXPECT_FALSE(block->contains("::10.1.2.3"));  // IPv4-compatible (deprecated), not mapped

    auto mapped = Cidr::parse("::ffff:192.168.0.0/112");
    ASSERT_TRUE(mapped);
    EXPECT_TRUE(mapped->is_v4());
    EXPECT_EQ(mapped->prefix_length(), 16u);
    EXPECT_TRUE(mapped->contains("192.168.4.5"));
    EXPECT_FALSE(mapped->contains("192.169.0.1"));

    EXPECT_EQ(*IpAddress::parse("::ffff:10.0.0.1"), *IpAddress::parse("10.0.0.1"));
    EXPECT_EQ(IpAddress::parse("::ffff:10.0.0.1")->to_string(), "10.0.0.1");
    EXPECT_EQ(IpAddress::v4({127, 0, 0, 1}).to_string(), "127.0.0.1");
    EXPECT_TRUE(IpAddress::v4({127, 0, 0, 1}).is_v4());
}

TEST(Cidr, RejectsMalformedText) {
    for (const char* bad :
         {"", "10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4",
          "::1/129", "fe80::1%eth0", "[::1]", "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/+8", "abc",
          "::g", " 10.0.0.1", "10.0.0.1/08x"}) {
        EXPECT_FALSE(Cidr::parse(bad).has_value()) << bad;
    }
}

TEST(Methods, ParseAndList) {
    EXPECT_EQ(parse_http_method("GET"), HttpMethod::Get);
    EXPECT_EQ(parse_http_method("CONNECT"), HttpMethod::Connect);
    EXPECT_FALSE(parse_http_method("get").has_value());
    EXPECT_FALSE(parse_http_method("").has_value());
    EXPECT_EQ(method_list(method_bit(HttpMethod::Post) | method_bit(HttpMethod::Get)), "GET, POST");
    EXPECT_EQ(method_list(0), "");
    EXPECT_EQ(http_method_name(HttpMethod::Patch), "PATCH");
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: the libFuzzer target over the fixtures and deterministic mutations of them

int feed(const std::string& input) {
    return LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()),
                                  input.size());
}

std::vector<std::string> seeds() {
    using namespace std::string_literals;
    return {
        "",
        "_format_version: \"3.0\"\n",
        read_file(testdata("kong-original.yaml")),
        read_file(testdata("full.yaml")),
        "_format_version: \"3.0\"\nservices: [{name: s, url: 'http://s', routes: [{paths: "
        "['/'], hosts: ['*.a.b:80']}]}]\n",
        "a: &x [*x]\n",
        "{[a]: b}\n",
        "_format_version: \"3.0\"\nservices:\n  - name: \"a\0b\"\n"s,
        "_format_version: \"3.0\"\nservices: !!binary aGVsbG8=\n",
        "/api/v1/tasks/../%2e%2E/x?y=%zz",
    };
}

TEST(GatewayConfigFuzzTarget, AcceptsEverySeed) {
    for (const std::string& seed : seeds()) EXPECT_EQ(feed(seed), 0);
}

TEST(GatewayConfigFuzzTarget, SurvivesDeterministicMutations) {
    std::mt19937 random(20240611);
    using namespace std::string_literals;
    const std::string alphabet = ":-[]{}&*!|>'\"#?,/%~ \n\t0123456789.aeiouxyz~\x00\xff\xc3"s;
    const auto corpus = seeds();
    for (int round = 0; round < 1500; ++round) {
        std::string input = corpus[random() % corpus.size()];
        const int edits = 1 + static_cast<int>(random() % 6);
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = input.empty() ? 0 : random() % (input.size() + 1);
            switch (random() % 4) {
                case 0:
                    input.insert(at, 1, alphabet[random() % alphabet.size()]);
                    break;
                case 1:
                    if (at < input.size()) input.erase(at, 1 + random() % 8);
                    break;
                case 2:
                    if (at < input.size()) input[at] = alphabet[random() % alphabet.size()];
                    break;
                default: {
                    // Copy a slice elsewhere: repeats keys, lines and structures.
                    if (input.empty()) break;
                    const std::size_t from = random() % input.size();
                    const std::size_t length = 1 + random() % 40;
                    input.insert(at, input.substr(from, length));
                    break;
                }
            }
        }
        ASSERT_EQ(feed(input), 0);
    }
}

}  // namespace
}  // namespace aether::services::gateway
