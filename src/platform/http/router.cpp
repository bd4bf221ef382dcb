// A segment trie: static segments win over parameters, with backtracking; HEAD falls back to GET.
#include "platform/http/router.h"

#include <span>
#include <stdexcept>

namespace aether::platform::http {

constexpr std::size_t kMethodCount = static_cast<std::size_t>(Method::Other) + 1;

struct Router::Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> statics;
    std::unique_ptr<Node> param;
    std::string param_name;
    std::array<std::unique_ptr<Handler>, kMethodCount> handlers;
    std::string route_template;

    bool has_handlers() const {
        for (const auto& handler : handlers) {
            if (handler) return true;
        }
        return false;
    }
};

namespace {

// Splits "/a/b/" into {"a","b"}; the root path has no segments.
std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> segments;
    std::size_t start = 0;
    while (start < path.size()) {
        if (path[start] == '/') {
            ++start;
            continue;
        }
        auto end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        segments.push_back(path.substr(start, end - start));
        start = end;
    }
    return segments;
}

bool is_param(std::string_view segment) {
    return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

void Router::add(Method method, std::string_view path_template, Handler handler) {
    if (path_template.empty() || path_template.front() != '/') {
        throw std::invalid_argument("route template must start with /: " +
                                    std::string(path_template));
    }
    Node* node = root_.get();
    for (auto segment : split_path(path_template)) {
        if (is_param(segment)) {
            std::string name(segment.substr(1, segment.size() - 2));
            if (!node->param) {
                node->param = std::make_unique<Node>();
                node->param_name = name;
            } else if (node->param_name != name) {
                throw std::invalid_argument("conflicting parameter names at " +
                                            std::string(path_template));
            }
            node = node->param.get();
        } else {
            if (segment.find_first_of("{}") != std::string_view::npos) {
                throw std::invalid_argument("malformed route segment in " +
                                            std::string(path_template));
            }
            auto& child = node->statics[std::string(segment)];
            if (!child) child = std::make_unique<Node>();
            node = child.get();
        }
    }
    auto& slot = node->handlers[static_cast<std::size_t>(method)];
    if (slot) {
        throw std::invalid_argument("duplicate route " + std::string(method_name(method)) + " " +
                                    std::string(path_template));
    }
    slot = std::make_unique<Handler>(std::move(handler));
    std::string normalized = "/";
    for (auto segment : split_path(path_template)) {
        if (normalized.size() > 1) normalized += '/';
        normalized += segment;
    }
    node->route_template = normalized;
    registered_.emplace_back(method, normalized);
}

RouteMatch Router::match(Method method, std::string_view path) const {
    RouteMatch result;
    // Requests are matched without allocating: the segments go into a fixed array. No route has
    // this many segments, so a longer path is simply not found.
    constexpr std::size_t kMaxSegments = 32;
    std::array<std::string_view, kMaxSegments> storage;
    std::size_t count = 0;
    for (std::size_t start = 0; start < path.size();) {
        if (path[start] == '/') {
            ++start;
            continue;
        }
        auto end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        if (count == kMaxSegments) return result;
        storage[count++] = path.substr(start, end - start);
        start = end;
    }
    std::span<const std::string_view> segments(storage.data(), count);
    // Depth-first with backtracking: try the static child, then the parameter child.
    std::vector<std::pair<std::string, std::string>> params;
    const Node* node = walk(root_.get(), segments, 0, params);
    if (!node) return result;
    const auto* handler = node->handlers[static_cast<std::size_t>(method)].get();
    if (!handler && method == Method::Head) {
        handler = node->handlers[static_cast<std::size_t>(Method::Get)].get();
    }
    result.route_template = node->route_template;
    if (!handler) {
        result.outcome = RouteMatch::Outcome::MethodNotAllowed;
        for (std::size_t i = 0; i < kMethodCount; ++i) {
            if (node->handlers[i]) result.allowed.push_back(static_cast<Method>(i));
        }
        if (node->handlers[static_cast<std::size_t>(Method::Get)] &&
            !node->handlers[static_cast<std::size_t>(Method::Head)]) {
            result.allowed.push_back(Method::Head);
        }
        return result;
    }
    result.outcome = RouteMatch::Outcome::Found;
    result.handler = handler;
    result.params = std::move(params);
    return result;
}

const Router::Node* Router::walk(const Node* node, std::span<const std::string_view> segments,
                                 std::size_t index,
                                 std::vector<std::pair<std::string, std::string>>& params) {
    if (index == segments.size()) return node->has_handlers() ? node : nullptr;
    auto segment = segments[index];
    if (auto it = node->statics.find(segment); it != node->statics.end()) {
        if (const Node* found = walk(it->second.get(), segments, index + 1, params)) return found;
    }
    if (node->param) {
        auto decoded = url_decode(segment);
        if (!decoded) return nullptr;
        params.emplace_back(node->param_name, std::move(*decoded));
        if (const Node* found = walk(node->param.get(), segments, index + 1, params)) return found;
        params.pop_back();
    }
    return nullptr;
}

std::vector<std::pair<Method, std::string>> Router::routes() const {
    return registered_;
}

std::string allow_header(const std::vector<Method>& methods) {
    std::string value;
    for (auto method : methods) {
        if (!value.empty()) value += ", ";
        value += method_name(method);
    }
    return value;
}

}  // namespace aether::platform::http
