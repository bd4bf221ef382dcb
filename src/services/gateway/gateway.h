// The edge gateway: routes each request by the declarative configuration, runs the route's
// plugins, then dispatches in-process (`module:`) or proxies to the service's upstream with
// pooled connections, retries, circuit breaking, weighted targets and shadow traffic.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "platform/expected.h"
#include "platform/http/message.h"
#include "services/gateway/plugins.h"

namespace aether::services::gateway {

struct GatewayOptions {
    // The declarative file; empty means `builtin_yaml` (the all-in-one default).
    std::string config_path;
    std::string builtin_yaml;
    PluginOptions plugin_options;
    // The platform's Redis for `policy: redis` (redis://…); empty = none.
    std::string redis_url;
    // Modules of this process that `module:` services may name.
    std::vector<std::string> local_modules;
    // More than one thread runs the io_context: upstream clients then live on strands.
    bool multi_threaded = false;
    // The largest body an in-process module receives (http.max_body_bytes).
    std::size_t max_body_bytes = 1024 * 1024;
};

using LocalDispatch =
    std::function<boost::asio::awaitable<platform::http::Response>(platform::http::Request&)>;

class Gateway {
  public:
    // Loads and checks the configuration; the error lists every problem, one per line.
    static platform::Expected<std::shared_ptr<Gateway>, std::string> create(
        boost::asio::any_io_executor executor, GatewayOptions options,
        const platform::auth::JwtCodec& platform_jwt, LocalDispatch local_dispatch);
    ~Gateway();
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;

    boost::asio::awaitable<platform::http::Response> handle(platform::http::Request& request);

    // Reads the file again and swaps it in atomically; a file with errors is refused and the
    // running configuration keeps serving. Requests in flight finish on the configuration they
    // started with.
    platform::Expected<void, std::string> reload();
    // Reloads when the file's modification time or size changed since the last load.
    void reload_if_changed();
    // Closes pooled upstream connections and the Redis connection; for shutdown, while the
    // io_context still runs (sockets must not outlive it).
    void close();
    // Runs the active health checks of every upstream that configures them, until cancelled.
    boost::asio::awaitable<void> run_health_checks();

    struct Impl;

  private:
    explicit Gateway(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

// The all-in-one default: every module's base path routed to it in-process, with `jwt` on all
// but the public security endpoints. `modules` is (name, base path) of this process's modules.
// The process-wide CORS settings (http.cors.*), which the built-in configuration turns into a
// global cors plugin, so they keep applying behind the edge.
struct BuiltinCors {
    std::vector<std::string> origins;
    bool credentials = false;
};

std::string builtin_gateway_yaml(const std::vector<std::pair<std::string, std::string>>& modules,
                                 const BuiltinCors& cors = {});

}  // namespace aether::services::gateway
