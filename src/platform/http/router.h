// Maps (method, path) to a handler; route templates use "{name}" segments for path parameters.
#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "platform/http/message.h"

namespace aether::platform::http {

using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;

struct RouteMatch {
    enum class Outcome { Found, MethodNotAllowed, NotFound };
    Outcome outcome = Outcome::NotFound;
    const Handler* handler = nullptr;
    std::string_view route_template;
    std::vector<std::pair<std::string, std::string>> params;
    std::vector<Method> allowed;  // filled for MethodNotAllowed, for the Allow header
};

class Router {
  public:
    Router();
    ~Router();
    Router(Router&&) noexcept;
    Router& operator=(Router&&) noexcept;

    // Throws std::invalid_argument for a malformed template or a duplicate (method, template).
    void add(Method method, std::string_view path_template, Handler handler);
    RouteMatch match(Method method, std::string_view path) const;
    // Every registered (method, template), for the OpenAPI document and --list-routes.
    std::vector<std::pair<Method, std::string>> routes() const;

  private:
    struct Node;
    static const Node* walk(const Node* node, std::span<const std::string_view> segments,
                            std::size_t index,
                            std::vector<std::pair<std::string, std::string>>& params);
    std::unique_ptr<Node> root_;
    std::vector<std::pair<Method, std::string>> registered_;
};

std::string allow_header(const std::vector<Method>& methods);

}  // namespace aether::platform::http
