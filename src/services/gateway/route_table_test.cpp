// Tests for route selection (longest prefix, segment boundaries, methods, hosts), effective
// plugins, Kong's upstream path joining and request path normalisation.
#include "services/gateway/route_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace aether::services::gateway {
namespace {

using ::testing::ElementsAre;

RouteTable table_of(const std::string& yaml) {
    auto parsed = parse_gateway_config("_format_version: \"3.0\"\n" + yaml, "kong.yaml");
    if (!parsed) {
        std::string all;
        for (const auto& error : parsed.error()) all += error.to_string() + "\n";
        ADD_FAILURE() << all;
        return RouteTable(std::make_shared<const GatewayConfig>());
    }
    return RouteTable(*parsed);
}

std::string route_name(const RouteMatch& match) {
    if (match.outcome == RouteMatch::Outcome::NotFound) return "404";
    if (match.outcome == RouteMatch::Outcome::MethodNotAllowed) {
        return "405 " + method_list(match.allowed);
    }
    return match.route->name;
}

std::vector<std::string> plugin_names(const RouteMatch& match) {
    std::vector<std::string> out;
    for (const PluginSpec* plugin : match.plugins) out.push_back(plugin->name);
    return out;
}

const char* const kTable = R"(
services:
  - name: tasks
    url: http://tasks:8000
    routes:
      - name: tasks
        paths: [/api/v1/tasks]
      - name: task-stats-get
        paths: [/api/v1/tasks/stats]
        methods: [GET]
      - name: tasks-write
        paths: [/api/v1/tasks/admin]
        methods: [POST, DELETE]
  - name: fallback
    url: http://web:8000
    routes:
      - name: root
        paths: [/]
        methods: [GET, HEAD]
  - name: auth
    url: http://auth:8000
    routes:
      - name: auth-dir
        paths: [/api/v1/auth/]
      - name: login
        paths: [/api/v1/auth/login]
        methods: [POST]
)";

TEST(RouteTable, LongestPrefixWins) {
    const RouteTable table = table_of(kTable);
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasks")), "tasks");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasks/1")), "tasks");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasks/stats")), "task-stats-get");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasks/stats/daily")), "task-stats-get");
    EXPECT_EQ(route_name(table.match("GET", "h", "/anything")), "root");
    EXPECT_EQ(route_name(table.match("POST", "h", "/api/v1/auth/login")), "login");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/auth/me")), "auth-dir");
}

TEST(RouteTable, PrefixesMatchAtSegmentBoundariesOnly) {
    const RouteTable table = table_of(kTable);
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasks?x=1")), "tasks");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasks/?x=1")), "tasks");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasksX")), "root");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasks/statsX")), "tasks");
    // A prefix ending in "/" matches below it but not the bare directory.
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/auth/x")), "auth-dir");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/auth")), "root");
    EXPECT_EQ(route_name(table.match("DELETE", "h", "/api/v1/authz")), "405 GET, HEAD");
    // The query string never takes part in matching.
    EXPECT_EQ(route_name(table.match("GET", "h", "/x?/api/v1/tasks")), "root");
}

TEST(RouteTable, FallsBackToAShorterRouteThatAllowsTheMethod) {
    const RouteTable table = table_of(kTable);
    EXPECT_EQ(route_name(table.match("POST", "h", "/api/v1/tasks/stats")), "tasks");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/tasks/admin")), "tasks");
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/auth/login")), "auth-dir");
}

TEST(RouteTable, MethodNotAllowedIsDistinctFromNoRoute) {
    const RouteTable table = table_of(R"(
services:
  - name: s
    url: http://s
    routes:
      - {name: read, paths: [/items], methods: [GET]}
      - {name: write, paths: [/items/new], methods: [POST, PUT]}
)");
    const RouteMatch wrong = table.match("DELETE", "h", "/items/new");
    EXPECT_EQ(wrong.outcome, RouteMatch::Outcome::MethodNotAllowed);
    EXPECT_FALSE(wrong);
    EXPECT_EQ(method_list(wrong.allowed), "GET, POST, PUT");
    EXPECT_EQ(route_name(table.match("DELETE", "h", "/items")), "405 GET");
    EXPECT_EQ(route_name(table.match("GET", "h", "/other")), "404");
    EXPECT_EQ(route_name(table.match("get", "h", "/items")), "405 GET");  // methods are exact
    EXPECT_EQ(route_name(table.match("BREW", "h", "/items")), "405 GET");
    EXPECT_EQ(route_name(table.match("PUT", "h", "/items/new/1")), "write");
}

TEST(RouteTable, UnknownMethodsMatchOnlyRoutesWithoutMethods) {
    const RouteTable table = table_of(kTable);
    EXPECT_EQ(route_name(table.match("PROPFIND", "h", "/api/v1/tasks/stats")), "tasks");
    EXPECT_EQ(route_name(table.match("PROPFIND", "h", "/")), "405 GET, HEAD");
}

TEST(RouteTable, HostsFilterRoutes) {
    const RouteTable table = table_of(R"(
services:
  - name: s
    url: http://s
    routes:
      - {name: api, paths: [/], hosts: [api.example.com]}
      - {name: wild, paths: [/], hosts: ["*.example.org"]}
      - {name: suffix, paths: [/], hosts: ["internal.*"]}
      - {name: admin, paths: [/], hosts: ["admin.example.com:8443"]}
      - {name: any, paths: [/x]}
)");
    EXPECT_EQ(route_name(table.match("GET", "api.example.com", "/a")), "api");
    EXPECT_EQ(route_name(table.match("GET", "API.Example.COM:8080", "/a")), "api");
    EXPECT_EQ(route_name(table.match("GET", "api.example.com.", "/a")), "api");
    EXPECT_EQ(route_name(table.match("GET", "x.api.example.com", "/a")), "404");
    EXPECT_EQ(route_name(table.match("GET", "a.example.org", "/a")), "wild");
    EXPECT_EQ(route_name(table.match("GET", "a.b.example.org:80", "/a")), "wild");
    EXPECT_EQ(route_name(table.match("GET", "example.org", "/a")), "404");
    EXPECT_EQ(route_name(table.match("GET", "internal.svc", "/a")), "suffix");
    EXPECT_EQ(route_name(table.match("GET", "internal", "/a")), "404");
    EXPECT_EQ(route_name(table.match("GET", "admin.example.com:8443", "/a")), "admin");
    EXPECT_EQ(route_name(table.match("GET", "admin.example.com", "/a")), "404");
    EXPECT_EQ(route_name(table.match("GET", "admin.example.com:9000", "/a")), "404");
    EXPECT_EQ(route_name(table.match("GET", "[::1]:8080", "/a")), "404");
    EXPECT_EQ(route_name(table.match("GET", "", "/a")), "404");
    // A longer host-less prefix still wins over a shorter host-bound one.
    EXPECT_EQ(route_name(table.match("GET", "api.example.com", "/x/1")), "any");
}

TEST(RouteTable, AmongEqualPrefixesHostBoundRoutesComeFirst) {
    const RouteTable table = table_of(R"(
services:
  - name: s
    url: http://s
    routes:
      - {name: generic, paths: [/a]}
      - {name: specific, paths: [/a], hosts: [h.example]}
)");
    EXPECT_EQ(route_name(table.match("GET", "h.example", "/a")), "specific");
    EXPECT_EQ(route_name(table.match("GET", "other", "/a")), "generic");
}

TEST(RouteTable, DisabledServicesAreNotRouted) {
    const RouteTable table = table_of(R"(
services:
  - name: off
    url: http://off
    enabled: false
    routes: [{name: off, paths: [/a/b]}]
  - name: on
    url: http://on
    routes: [{name: on, paths: [/a]}]
)");
    EXPECT_EQ(route_name(table.match("GET", "h", "/a/b")), "on");
}

TEST(RouteTable, EffectivePluginsAreGlobalThenServiceThenRouteInPriorityOrder) {
    const RouteTable table = table_of(R"(
plugins:
  - {name: prometheus}
  - {name: rate-limiting, config: {minute: 1000}}
  - {name: correlation-id}
services:
  - name: s
    url: http://s
    plugins:
      - {name: rate-limiting, config: {minute: 100}}
      - {name: jwt}
      - {name: cors, enabled: false, config: {origins: ["*"]}}
    routes:
      - name: plain
        paths: [/plain]
      - name: special
        paths: [/special]
        plugins:
          - {name: rate-limiting, config: {minute: 10}}
          - {name: jwt, enabled: false}
          - {name: ip-restriction, config: {allow: [10.0.0.0/8]}}
)");
    const RouteMatch plain = table.match("GET", "h", "/plain");
    ASSERT_TRUE(plain);
    EXPECT_THAT(plugin_names(plain),
                ElementsAre("correlation-id", "jwt", "rate-limiting", "prometheus"));
    EXPECT_EQ(plain.plugins[2]->get<RateLimitingPluginConfig>()->limits[0].limit, 100);

    const RouteMatch special = table.match("GET", "h", "/special");
    ASSERT_TRUE(special);
    // A disabled route plugin is skipped, as in Kong: the service's jwt still applies.
    EXPECT_THAT(plugin_names(special), ElementsAre("correlation-id", "jwt", "ip-restriction",
                                                   "rate-limiting", "prometheus"));
    EXPECT_EQ(special.plugins[3]->get<RateLimitingPluginConfig>()->limits[0].limit, 10);

    std::vector<std::string> global;
    for (const PluginSpec* plugin : table.global_plugins()) global.push_back(plugin->name);
    EXPECT_THAT(global, ElementsAre("correlation-id", "rate-limiting", "prometheus"));
}

TEST(RouteTable, OriginalFileRoutesAsThePlanSaid) {
    auto loaded = load_gateway_config(std::string(AETHER_GATEWAY_TESTDATA) + "/kong-original.yaml");
    ASSERT_TRUE(loaded);
    const RouteTable table(*loaded);
    const RouteMatch tasks = table.match("PUT", "localhost:8080", "/api/v1/tasks/42?notify=1");
    ASSERT_TRUE(tasks);
    EXPECT_EQ(tasks.service->name, "task-manager");
    EXPECT_EQ(tasks.upstream_path("/api/v1/tasks/42?notify=1"), "/42?notify=1");
    EXPECT_EQ(tasks.upstream_host("localhost:8080"), "task-manager:8000");
    EXPECT_THAT(plugin_names(tasks), ElementsAre("jwt", "rate-limiting"));
    EXPECT_EQ(route_name(table.match("PATCH", "h", "/api/v1/tasks/42")),
              "405 GET, POST, PUT, DELETE");
    const RouteMatch ai = table.match("PATCH", "h", "/api/v1/ai/chat");
    ASSERT_TRUE(ai);
    EXPECT_THAT(plugin_names(ai), ElementsAre("rate-limiting"));
    EXPECT_EQ(route_name(table.match("GET", "h", "/api/v1/analytics")), "404");
}

// ---------------------------------------------------------------------------------------------
// Upstream paths: Kong's path_handling v0

struct PathCase {
    const char* service_path;  // "" = none
    const char* route_path;
    bool strip;
    const char* request;
    const char* upstream;
};

TEST(UpstreamPath, JoinsAsKongV0) {
    const std::vector<PathCase> cases = {
        // Kong's documented v0 table.
        {"/s", "/fv0", false, "/fv0/req", "/s/fv0/req"},
        {"/s", "/fv0", false, "/fv0", "/s/fv0"},
        {"/s", "/tv0", true, "/tv0/req", "/s/req"},
        {"/s", "/tv0", true, "/tv0", "/s"},
        {"/s", "/fv0/", false, "/fv0/req", "/s/fv0/req"},
        {"/s", "/fv0/", false, "/fv0/", "/s/fv0/"},
        {"/s", "/tv0/", true, "/tv0/req", "/s/req"},
        {"/s", "/tv0/", true, "/tv0/", "/s/"},
        // Trailing slashes: kept as the client sent them, never doubled.
        {"/s", "/tv0", true, "/tv0/", "/s/"},
        {"/s/", "/tv0", true, "/tv0/req", "/s/req"},
        {"/s/", "/tv0", true, "/tv0", "/s"},
        {"/s/", "/tv0", true, "/tv0/", "/s/"},
        {"/s/", "/tv0/", true, "/tv0/req", "/s/req"},
        {"/s/", "/fv0", false, "/fv0/req", "/s/fv0/req"},
        {"/s/", "/fv0", false, "/fv0/", "/s/fv0/"},
        // No service path (Kong's null, upstream base "/").
        {"", "/tv0", true, "/tv0", "/"},
        {"", "/tv0", true, "/tv0/", "/"},
        {"", "/tv0", true, "/tv0/a/b/", "/a/b/"},
        {"", "/tv0", false, "/tv0/a", "/tv0/a"},
        {"/", "/tv0", true, "/tv0/a", "/a"},
        {"", "/", true, "/", "/"},
        {"", "/", true, "/a", "/a"},
        {"", "/", false, "/a", "/a"},
        {"/s", "/", true, "/a", "/s/a"},
        {"/s", "/", true, "/", "/s"},
        {"/s", "/", false, "/", "/s"},
        // The query string is kept untouched.
        {"/s", "/tv0", true, "/tv0/req?a=1&b=/x/../y", "/s/req?a=1&b=/x/../y"},
        {"/s", "/tv0", true, "/tv0?a=1", "/s?a=1"},
        {"", "/tv0", true, "/tv0?", "/?"},
        {"/s", "/fv0", false, "/fv0?q", "/s/fv0?q"},
    };
    for (const PathCase& c : cases) {
        std::string yaml = "services:\n  - name: s\n    url: http://u" +
                           std::string(c.service_path) + "\n    routes:\n      - paths: ['" +
                           c.route_path +
                           "']\n        strip_path: " + (c.strip ? "true" : "false") + "\n";
        const RouteTable table = table_of(yaml);
        const RouteMatch match = table.match("GET", "h", c.request);
        ASSERT_TRUE(match) << c.request;
        EXPECT_EQ(match.upstream_path(c.request), c.upstream)
            << "service " << c.service_path << " route " << c.route_path << " strip " << c.strip
            << " request " << c.request;
    }
}

TEST(UpstreamPath, InProcessModulesSeeTheFullPath) {
    const RouteTable table = table_of(R"(
services:
  - name: tasks
    module: tasks
    routes: [{paths: [/api/v1/tasks]}]
)");
    const RouteMatch match = table.match("GET", "h", "/api/v1/tasks/1?x=y");
    ASSERT_TRUE(match);
    EXPECT_TRUE(match.service->in_process());
    EXPECT_EQ(match.upstream_path("/api/v1/tasks/1?x=y"), "/api/v1/tasks/1?x=y");
    EXPECT_EQ(match.upstream_path("/api/v1/tasks"), "/api/v1/tasks");
}

TEST(UpstreamHost, PreserveHostOrTheServiceAuthority) {
    const RouteTable table = table_of(R"(
services:
  - name: a
    url: https://a.internal/x
    routes: [{paths: [/a]}, {paths: [/keep], preserve_host: true}]
  - name: b
    url: http://b.internal:8080
    routes: [{paths: [/b]}]
  - name: c
    url: http://pool
    routes: [{paths: [/c]}]
upstreams:
  - {name: pool, host_header: c.example, targets: [{target: "c1:80"}]}
)");
    EXPECT_EQ(table.match("GET", "edge.example", "/a").upstream_host("edge.example"), "a.internal");
    EXPECT_EQ(table.match("GET", "edge.example:8443", "/keep").upstream_host("edge.example:8443"),
              "edge.example:8443");
    EXPECT_EQ(table.match("GET", "edge", "/b").upstream_host("edge"), "b.internal:8080");
    EXPECT_EQ(table.match("GET", "edge", "/c").upstream_host("edge"), "c.example");
}

// ---------------------------------------------------------------------------------------------
// Normalising request paths before routing

TEST(NormalizePath, ResolvesDotSegmentsAndUnreservedEscapes) {
    EXPECT_EQ(normalize_path("/"), "/");
    EXPECT_EQ(normalize_path("/api/v1/tasks"), "/api/v1/tasks");
    EXPECT_EQ(normalize_path("/api/v1/tasks/"), "/api/v1/tasks/");
    EXPECT_EQ(normalize_path("/public/../admin"), "/admin");
    EXPECT_EQ(normalize_path("/a/./b/../c/"), "/a/c/");
    EXPECT_EQ(normalize_path("/a/b/.."), "/a/");
    EXPECT_EQ(normalize_path("/a/b/."), "/a/b/");
    EXPECT_EQ(normalize_path("/../../etc"), "/etc");
    EXPECT_EQ(normalize_path("/.."), "/");
    EXPECT_EQ(normalize_path("//a///b"), "/a/b");
    EXPECT_EQ(normalize_path("/%61pi/%2e%2E/tasks"), "/tasks");
    EXPECT_EQ(normalize_path("/a%2fb"), "/a%2Fb");  // an escaped slash stays escaped
    EXPECT_EQ(normalize_path("/a%20b"), "/a%20b");
    EXPECT_EQ(normalize_path("/a/../b?x=/../y&z=%zz"), "/b?x=/../y&z=%zz");
    EXPECT_EQ(normalize_path("/a..b/c.d"), "/a..b/c.d");
}

TEST(NormalizePath, RejectsWhatIsNotAnOriginFormPath) {
    for (const char* bad :
         {"", "api", "*", "http://x/a", "/a%", "/a%2", "/a%zz", "/a b", "/a\tb", "/a\x7f"}) {
        EXPECT_FALSE(normalize_path(bad).has_value()) << bad;
    }
    EXPECT_FALSE(normalize_path(std::string("/a\0b", 4)).has_value());
}

TEST(NormalizePath, TheNormalisedPathCannotReachAnotherRoute) {
    const RouteTable table = table_of(kTable);
    const auto path = normalize_path("/api/v1/auth/login/../../tasks/1");
    ASSERT_TRUE(path.has_value());
    EXPECT_EQ(route_name(table.match("GET", "h", *path)), "tasks");
}

}  // namespace
}  // namespace aether::services::gateway
