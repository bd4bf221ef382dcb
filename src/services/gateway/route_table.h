// The gateway's route table: picks the service and route for a request (longest segment-bounded
// path prefix, then host and method filters) and computes the upstream path as Kong does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "services/gateway/gateway_config.h"

namespace aether::services::gateway {

class RouteTable;

// The outcome of RouteTable::match. Pointers and views point into the RouteTable (and its
// GatewayConfig) and stay valid while the table lives.
struct RouteMatch {
    enum class Outcome { Found, MethodNotAllowed, NotFound };
    Outcome outcome = Outcome::NotFound;
    const Service* service = nullptr;  // Found only
    const Route* route = nullptr;      // Found only
    std::string_view matched_prefix;   // the route path that matched ("/api/v1/tasks")
    // Effective enabled plugins (global < service < route, same name replaced), in Kong's
    // priority order (plugin_priority); Found only.
    std::span<const PluginSpec* const> plugins;
    // MethodNotAllowed: every method the routes on this path and host accept (the Allow header).
    MethodSet allowed = 0;

    explicit operator bool() const { return outcome == Outcome::Found; }

    // The request target to send upstream (or to the in-process module): Kong's path_handling
    // v0 joining of the service path and the request path, minus the matched prefix when the
    // route strips it; the query string is kept as it came.
    //   service /s, route /tasks, strip: /tasks/1?x=2 -> /s/1?x=2; /tasks -> /s; /tasks/ -> /s/
    //   service none, route /tasks, no strip: /tasks/1 -> /tasks/1
    std::string upstream_path(std::string_view request_target) const;
    // The Host header for the upstream request: the client's with preserve_host, else the
    // upstream's host_header or the service's host[:port].
    std::string_view upstream_host(std::string_view client_host) const;

  private:
    friend class RouteTable;
    std::string_view service_host_;
};

// The path of an origin-form request target made canonical before routing, as Kong does:
// percent-encoded unreserved characters decoded, other escapes upper-cased, "." and ".."
// segments resolved, repeated slashes merged; the query string is kept as it came. nullopt for
// a target that does not start with "/", holds a malformed escape, or raw control characters.
// The gateway must route the normalised form, or "/public/../admin" would match "/public".
std::optional<std::string> normalize_path(std::string_view request_target);

// Built once from a validated configuration; match() is const, thread-safe and allocation-free.
class RouteTable {
  public:
    explicit RouteTable(std::shared_ptr<const GatewayConfig> config);

    // `method` as received ("GET"; case-sensitive), `host` the Host header (port allowed,
    // case-insensitive), `target` the normalised request target (path, optional ?query).
    // Routes of disabled services never match.
    RouteMatch match(std::string_view method, std::string_view host, std::string_view target) const;

    const GatewayConfig& config() const { return *config_; }
    const std::shared_ptr<const GatewayConfig>& shared_config() const { return config_; }
    // The enabled global plugins, in priority order (for requests that match no route).
    std::span<const PluginSpec* const> global_plugins() const { return global_plugins_; }

  private:
    struct HostPattern {
        enum class Kind : std::uint8_t { Exact, AnyPrefix, AnySuffix } kind = Kind::Exact;
        std::string name;  // lower-case; ".example.com" for "*.example.com", "example." for
                           // "example.*"
        std::string port;  // "" = any port
    };
    struct Slot {
        const Service* service = nullptr;
        const Route* route = nullptr;
        std::vector<HostPattern> hosts;
        std::vector<const PluginSpec*> plugins;
        std::string service_host;
    };
    struct Entry {
        std::string_view prefix;  // into the config
        std::size_t slot = 0;
    };

    static bool host_matches(const Slot& slot, std::string_view host);

    std::shared_ptr<const GatewayConfig> config_;
    std::vector<Slot> slots_;
    std::vector<Entry> entries_;  // longest prefix first
    std::vector<const PluginSpec*> global_plugins_;
};

}  // namespace aether::services::gateway
