// Route selection and upstream path computation; see route_table.h.
#include "services/gateway/route_table.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <utility>

namespace aether::services::gateway {
namespace {

char lower_ascii(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower_ascii(a[i]) != b[i]) return false;  // b is lower-case already
    }
    return true;
}

// The path part of a request target ("/a/b" of "/a/b?x=1").
std::string_view path_of(std::string_view target) {
    const auto question = target.find('?');
    return question == std::string_view::npos ? target : target.substr(0, question);
}

// A prefix matches at a segment boundary only: "/api/v1/tasks" matches "/api/v1/tasks" and
// "/api/v1/tasks/1" but not "/api/v1/tasksX"; a prefix ending in "/" matches anything under it.
bool prefix_matches(std::string_view prefix, std::string_view path) {
    if (!path.starts_with(prefix)) return false;
    return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

// Host and port of a Host header value ("Api.Example.com:8080", "[::1]:8080"), the host
// without a trailing dot.
std::pair<std::string_view, std::string_view> split_host(std::string_view host) {
    std::string_view port;
    if (!host.empty() && host.front() == '[') {
        const auto close = host.find(']');
        if (close != std::string_view::npos && close + 1 < host.size() && host[close + 1] == ':') {
            port = host.substr(close + 2);
            host = host.substr(0, close + 1);
        }
    } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
        port = host.substr(colon + 1);
        host = host.substr(0, colon);
    }
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    return {host, port};
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_unreserved(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

}  // namespace

std::optional<std::string> normalize_path(std::string_view target) {
    if (target.empty() || target.front() != '/') return std::nullopt;
    const std::string_view path = path_of(target);
    const std::string_view query = target.substr(path.size());
    for (char c : target) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) return std::nullopt;
    }

    std::string decoded;
    decoded.reserve(path.size());
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] != '%') {
            decoded += path[i];
            continue;
        }
        if (i + 2 >= path.size()) return std::nullopt;
        const int high = hex_value(path[i + 1]);
        const int low = hex_value(path[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        const char c = static_cast<char>(high * 16 + low);
        if (is_unreserved(c)) {
            decoded += c;
        } else {
            constexpr std::string_view kHex = "0123456789ABCDEF";
            decoded += '%';
            decoded += kHex[static_cast<std::size_t>(high)];
            decoded += kHex[static_cast<std::size_t>(low)];
        }
        i += 2;
    }

    // RFC 3986 §5.2.4 over segments, merging empty segments (repeated slashes).
    std::vector<std::string_view> segments;
    bool trailing_slash = false;
    std::string_view rest = std::string_view(decoded).substr(1);
    while (true) {
        const auto slash = rest.find('/');
        const bool last = slash == std::string_view::npos;
        const std::string_view segment = last ? rest : rest.substr(0, slash);
        if (segment == "..") {
            if (!segments.empty()) segments.pop_back();
            trailing_slash = last;
        } else if (segment == "." || segment.empty()) {
            trailing_slash = last;
        } else {
            segments.push_back(segment);
            trailing_slash = false;
        }
        if (last) break;
        rest = rest.substr(slash + 1);
    }
    std::string out = "/";
    for (std::size_t i = 0; i < segments.size(); ++i) {
        if (i > 0) out += '/';
        out += segments[i];
    }
    if (trailing_slash && !segments.empty()) out += '/';
    out += query;
    return out;
}

std::string RouteMatch::upstream_path(std::string_view request_target) const {
    if (outcome != Outcome::Found) return std::string(request_target);
    const std::string_view req_uri = path_of(request_target);
    const std::string_view query = request_target.substr(req_uri.size());
    // Both arms are views: a std::string arm would make `base` view a destroyed temporary.
    const std::string_view base = service->in_process() || service->endpoint.path.empty()
                                      ? std::string_view("/")
                                      : std::string_view(service->endpoint.path);
    const bool strip = route->strip_path;
    const std::string_view postfix = strip && req_uri.size() >= matched_prefix.size()
                                         ? req_uri.substr(matched_prefix.size())
                                         : std::string_view();

    // Kong's path_handling v0 (kong/router/utils.lua get_upstream_uri), case by case.
    std::string out;
    out.reserve(base.size() + req_uri.size() + query.size() + 1);
    if (base.back() == '/') {
        if (strip) {
            if (postfix.empty()) {
                if (base == "/") {
                    out = "/";
                } else if (!req_uri.empty() && req_uri.back() == '/') {
                    out = base;
                } else {
                    out = base.substr(0, base.size() - 1);
                }
            } else if (postfix.front() == '/') {
                out = base.substr(0, base.size() - 1);
                out += postfix;
            } else {
                out = base;
                out += postfix;
            }
        } else {
            out = base;
            if (!req_uri.empty()) out += req_uri.substr(1);
        }
    } else if (strip) {
        out = base;
        if (postfix.empty()) {
            if (req_uri.size() > 1 && req_uri.back() == '/') out += '/';
        } else if (postfix.front() == '/') {
            out += postfix;
        } else {
            out += '/';
            out += postfix;
        }
    } else {
        out = base;
        if (req_uri != "/") out += req_uri;
    }
    out += query;
    return out;
}

std::string_view RouteMatch::upstream_host(std::string_view client_host) const {
    if (route != nullptr && route->preserve_host) return client_host;
    return service_host_;
}

namespace {

// The enabled plugins of `lists` (later lists replace earlier ones of the same name), in
// Kong's priority order.
std::vector<const PluginSpec*> effective_plugins(
    std::initializer_list<const std::vector<PluginSpec>*> lists) {
    std::map<std::string_view, const PluginSpec*> by_name;
    for (const auto* list : lists) {
        for (const PluginSpec& plugin : *list) {
            if (plugin.enabled) by_name[plugin.name] = &plugin;
        }
    }
    std::vector<const PluginSpec*> out;
    for (const auto& [name, plugin] : by_name) out.push_back(plugin);
    std::stable_sort(out.begin(), out.end(), [](const PluginSpec* a, const PluginSpec* b) {
        return plugin_priority(a->name) > plugin_priority(b->name);
    });
    return out;
}

}  // namespace

RouteTable::RouteTable(std::shared_ptr<const GatewayConfig> config) : config_(std::move(config)) {
    global_plugins_ = effective_plugins({&config_->plugins});
    for (const Service& service : config_->services) {
        if (!service.enabled) continue;
        std::string service_host;
        if (!service.in_process()) {
            const Upstream* upstream =
                service.upstream.empty() ? nullptr : config_->find_upstream(service.upstream);
            service_host = upstream != nullptr && !upstream->host_header.empty()
                               ? upstream->host_header
                               : service.endpoint.authority();
        }
        for (const Route& route : service.routes) {
            Slot slot;
            slot.service = &service;
            slot.route = &route;
            slot.service_host = service_host;
            slot.plugins = effective_plugins({&config_->plugins, &service.plugins, &route.plugins});
            for (const std::string& host : route.hosts) {
                HostPattern pattern;
                std::string_view name = host;
                if (name.front() != '[') {
                    if (const auto colon = name.rfind(':'); colon != std::string_view::npos) {
                        pattern.port = std::string(name.substr(colon + 1));
                        name = name.substr(0, colon);
                    }
                }
                if (name.starts_with("*.")) {
                    pattern.kind = HostPattern::Kind::AnyPrefix;
                    name.remove_prefix(1);  // keep the dot: ".example.com"
                } else if (name.ends_with(".*")) {
                    pattern.kind = HostPattern::Kind::AnySuffix;
                    name.remove_suffix(1);  // "example."
                }
                pattern.name = std::string(name);
                slot.hosts.push_back(std::move(pattern));
            }
            slots_.push_back(std::move(slot));
        }
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        for (const std::string& path : slots_[i].route->paths) entries_.push_back({path, i});
    }
    // Longest prefix first; among equal prefixes, routes with hosts, then with methods, are
    // more specific; then the order of the file.
    std::stable_sort(entries_.begin(), entries_.end(), [this](const Entry& a, const Entry& b) {
        if (a.prefix.size() != b.prefix.size()) return a.prefix.size() > b.prefix.size();
        const Slot& x = slots_[a.slot];
        const Slot& y = slots_[b.slot];
        if (x.hosts.empty() != y.hosts.empty()) return !x.hosts.empty();
        const bool x_methods = x.route->methods != 0;
        const bool y_methods = y.route->methods != 0;
        if (x_methods != y_methods) return x_methods;
        return false;
    });
}

bool RouteTable::host_matches(const Slot& slot, std::string_view header) {
    const auto [host, port] = split_host(header);
    for (const HostPattern& pattern : slot.hosts) {
        if (!pattern.port.empty() && pattern.port != port) continue;
        switch (pattern.kind) {
            case HostPattern::Kind::Exact:
                if (iequals(host, pattern.name)) return true;
                break;
            case HostPattern::Kind::AnyPrefix:
                if (host.size() > pattern.name.size() &&
                    iequals(host.substr(host.size() - pattern.name.size()), pattern.name)) {
                    return true;
                }
                break;
            case HostPattern::Kind::AnySuffix:
                if (host.size() > pattern.name.size() &&
                    iequals(host.substr(0, pattern.name.size()), pattern.name)) {
                    return true;
                }
                break;
        }
    }
    return false;
}

RouteMatch RouteTable::match(std::string_view method, std::string_view host,
                             std::string_view target) const {
    const auto parsed = parse_http_method(method);
    const MethodSet bit = parsed ? method_bit(*parsed) : 0;
    const std::string_view path = path_of(target);
    RouteMatch out;
    bool path_matched = false;
    for (const Entry& entry : entries_) {
        if (!prefix_matches(entry.prefix, path)) continue;
        const Slot& slot = slots_[entry.slot];
        if (!slot.hosts.empty() && !host_matches(slot, host)) continue;
        const MethodSet methods = slot.route->methods;
        if (methods != 0 && (methods & bit) == 0) {
            path_matched = true;
            out.allowed |= methods;
            continue;
        }
        out.outcome = RouteMatch::Outcome::Found;
        out.service = slot.service;
        out.route = slot.route;
        out.matched_prefix = entry.prefix;
        out.plugins = slot.plugins;
        out.allowed = 0;
        out.service_host_ = slot.service_host;
        return out;
    }
    out.outcome =
        path_matched ? RouteMatch::Outcome::MethodNotAllowed : RouteMatch::Outcome::NotFound;
    return out;
}

}  // namespace aether::services::gateway
