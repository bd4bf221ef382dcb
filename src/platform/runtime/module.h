// The unit a target is made of: a module declares its config, then, when started, registers its
// routes, readiness checks and background loops with the App (Loki/Mimir-style modules).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aether::platform {
namespace config {
class Config;
class Schema;
}  // namespace config
namespace http {
class Router;
class Filter;
class Request;
struct Response;
}  // namespace http
namespace auth {
class JwtCodec;
}  // namespace auth
namespace sql {
class Database;
}  // namespace sql
namespace bus {
class Bus;
struct Subscription;
}  // namespace bus
}  // namespace aether::platform

namespace aether::platform::runtime {

class BlockingPool;

struct ReadinessCheck {
    std::string name;
    // True when the dependency answers; must finish quickly (it runs on every /ready).
    std::function<boost::asio::awaitable<bool>()> probe;
};

// What a module receives when it starts. Everything here outlives the module.
class ModuleContext {
  public:
    virtual ~ModuleContext() = default;
    virtual const config::Config& config() const = 0;
    virtual boost::asio::any_io_executor executor() const = 0;
    virtual BlockingPool& blocking_pool() const = 0;
    // A pool of its own for password hashing: a queue of 300 ms hashes must never delay the
    // short blocking jobs (SQLite queries) of other requests.
    virtual BlockingPool& hashing_pool() const = 0;
    virtual const std::string& data_dir() const = 0;
    virtual http::Router& router() = 0;
    virtual const auth::JwtCodec& jwt() const = 0;
    // Opens (once) the module's own database from `services.<module>.database`, defaulting to
    // sqlite:<data_dir>/<module>.db, and runs nothing else: the module migrates it.
    virtual boost::asio::awaitable<std::shared_ptr<sql::Database>> database(
        std::string_view module) = 0;
    virtual void add_readiness_check(ReadinessCheck check) = 0;
    // A loop that runs until the process drains; it gets the executor to run on and must stop
    // promptly when its coroutine is cancelled.
    virtual void add_background_task(std::string name,
                                     std::function<boost::asio::awaitable<void>()> task) = 0;

    // The modules this process runs (the resolved target) as (name, base path), in start order.
    virtual const std::vector<std::pair<std::string, std::string>>& modules() const = 0;
    virtual std::size_t io_threads() const = 0;

    // The process's event bus (never null): RabbitMQ when `bus.url` is set, else the embedded
    // broker. Modules subscribe in start(); consumers run once every module has started.
    virtual boost::asio::awaitable<bus::Bus*> bus() = 0;
    // A subscription for `queue` with the configured attempts, retry delay and prefetch.
    virtual bus::Subscription subscription(std::string queue) const = 0;
    // Publishes `database`'s transactional outbox through the bus (call from start()). Returns
    // the function to call after a commit that appended: the relay then publishes at once.
    virtual boost::asio::awaitable<std::function<void()>> publish_outbox(
        std::shared_ptr<sql::Database> database) = 0;

    using Edge = std::function<boost::asio::awaitable<http::Response>(http::Request&)>;
    // Makes `edge` (the gateway) the entrance: every request except the process's own endpoints
    // (/health, /ready, /metrics, /openapi.json) goes to it instead of the router.
    virtual void set_edge(Edge edge) = 0;
    // Routes a request to the modules of this process, as if the edge were not there: the
    // gateway's in-process dispatch. No route gives 404, a wrong method 405 with Allow.
    virtual boost::asio::awaitable<http::Response> dispatch_local(http::Request& request) = 0;
};

class Module {
  public:
    virtual ~Module() = default;
    virtual std::string_view name() const = 0;
    // Base path the module serves, e.g. "/api/v1/auth".
    virtual std::string_view base_path() const = 0;
    // Declares the module's keys (`services.<name>.…`) before the configuration is loaded.
    virtual void declare_config(config::Schema& /*schema*/) const {}
    // Checks what the schema cannot (files the configuration names); one message per problem.
    // `aether config check` reports them; start() refuses the same problems.
    virtual std::vector<std::string> check_config(const config::Config& /*config*/) const {
        return {};
    }
    // Brings the module's database schema up to date; run before start() and by `aether migrate`.
    virtual boost::asio::awaitable<void> migrate(ModuleContext& /*context*/) { co_return; }
    // Registers routes, checks, background tasks. Throws to refuse to start.
    virtual boost::asio::awaitable<void> start(ModuleContext& context) = 0;
    // Called while draining, after the server stopped accepting.
    virtual boost::asio::awaitable<void> stop() { co_return; }
};

using ModuleFactory = std::function<std::unique_ptr<Module>()>;

// The modules compiled into this binary, by name, and the targets made of them.
class ModuleRegistry {
  public:
    static ModuleRegistry& instance();
    void add(std::string name, ModuleFactory factory);
    bool has(std::string_view name) const;
    std::unique_ptr<Module> create(std::string_view name) const;
    std::vector<std::string> names() const;

  private:
    std::map<std::string, ModuleFactory, std::less<>> factories_;
};

struct TargetInfo {
    std::string name;
    std::vector<std::string> modules;
    std::string description;
};

// Every target of ARCHITECTURE.md §1, including those whose modules are not built yet.
const std::vector<TargetInfo>& known_targets();

// Resolves "--target=a,b" into module names; the error explains unknown or unbuilt targets.
std::vector<std::string> resolve_targets(std::string_view spec, std::string& error);

}  // namespace aether::platform::runtime
