// Process composition and lifecycle: config → modules → server → drain.
#include "platform/runtime/app.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "platform/auth/jwt.h"
#include "platform/auth/tokens.h"
#include "platform/bus/bus.h"
#include "platform/config/config.h"
#include "platform/config/schema.h"
#include "platform/http/pipeline.h"
#include "platform/http/router.h"
#include "platform/http/server.h"
#include "platform/runtime/blocking_pool.h"
#include "platform/runtime/busy_poll.h"
#include "platform/runtime/module.h"
#include "platform/runtime/process_bus.h"
#include "platform/sql/database.h"
#include "platform/telemetry/log.h"
#include "platform/telemetry/metrics.h"

namespace aether::platform::runtime {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using config::Key;
using config::Kind;

namespace {

constexpr std::size_t kMinJwtSecretBytes = 32;
// How long the outbox relays may keep publishing after the server drained.
constexpr std::chrono::seconds kBusDrainTimeout{5};

std::size_t available_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int count = CPU_COUNT(&set);
        if (count > 0) return static_cast<std::size_t>(count);
    }
    auto hardware = std::thread::hardware_concurrency();
    return hardware == 0 ? 1 : hardware;
}

bool split_listen(const std::string& listen, std::string& host, std::uint16_t& port) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) return false;
    host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    try {
        int value = std::stoi(listen.substr(colon + 1));
        if (value < 0 || value > 65535) return false;
        port = static_cast<std::uint16_t>(value);
    } catch (const std::exception&) {
        return false;
    }
    return !host.empty();
}

class Modules {
  public:
    static Expected<Modules, std::string> create(const std::string& target) {
        std::string error;
        auto names = resolve_targets(target, error);
        if (!error.empty()) return unexpected(error);
        Modules modules;
        for (const auto& name : names) {
            modules.list.push_back(ModuleRegistry::instance().create(name));
        }
        return modules;
    }
    std::vector<std::unique_ptr<Module>> list;
};

ProcessBusSettings bus_settings(const config::Config& config, const std::string& data_dir) {
    ProcessBusSettings settings;
    settings.url = config.get_secret("bus.url");
    settings.embedded_database = config.get_string("bus.database");
    if (settings.embedded_database.empty()) {
        settings.embedded_database = "sqlite:" + (fs::path(data_dir) / "bus.db").string();
    }
    settings.database_connections = static_cast<int>(config.get_int("database.max_connections"));
    settings.query_timeout = config.get_duration("database.query_timeout");
    settings.max_attempts = static_cast<int>(config.get_int("bus.max_attempts"));
    settings.retry_delay = std::chrono::duration_cast<std::chrono::milliseconds>(
        config.get_duration("bus.retry_delay"));
    settings.prefetch = static_cast<int>(config.get_int("bus.prefetch"));
    return settings;
}

class AppContext final : public ModuleContext {
  public:
    AppContext(std::shared_ptr<const config::Config> config, asio::io_context& io,
               BlockingPool& pool, BlockingPool& hashing_pool, std::string data_dir,
               http::Router& router, std::shared_ptr<const auth::JwtCodec> jwt)
        : config_(std::move(config)),
          io_(io),
          pool_(pool),
          hashing_pool_(hashing_pool),
          data_dir_(std::move(data_dir)),
          router_(router),
          jwt_(std::move(jwt)),
          bus_(bus_settings(*config_, data_dir_), io, pool,
               [this](ReadinessCheck check) { add_readiness_check(std::move(check)); }) {}

    const config::Config& config() const override { return *config_; }
    asio::any_io_executor executor() const override { return io_.get_executor(); }
    BlockingPool& blocking_pool() const override { return pool_; }
    BlockingPool& hashing_pool() const override { return hashing_pool_; }
    const std::string& data_dir() const override { return data_dir_; }
    http::Router& router() override { return router_; }
    const auth::JwtCodec& jwt() const override { return *jwt_; }

    asio::awaitable<std::shared_ptr<sql::Database>> database(std::string_view module) override {
        std::string name(module);
        if (auto it = databases_.find(name); it != databases_.end()) co_return it->second;
        std::string key = "services." + name + ".database";
        std::string url = config_->get_string(key);
        if (url.empty()) url = "sqlite:" + (fs::path(data_dir_) / (name + ".db")).string();
        sql::PoolOptions options;
        options.max_connections = static_cast<int>(config_->get_int("database.max_connections"));
        options.query_timeout = config_->get_duration("database.query_timeout");
        auto opened = sql::open(url, io_.get_executor(), pool_, options);
        if (!opened) throw std::runtime_error(key + ": " + opened.error());
        auto database = *opened;
        databases_.emplace(name, database);
        add_readiness_check({name + " database", [database]() { return database->ping(); }});
        co_return database;
    }

    void add_readiness_check(ReadinessCheck check) override { checks_.push_back(std::move(check)); }

    asio::awaitable<bus::Bus*> bus() override { co_return co_await bus_.bus(); }
    bus::Subscription subscription(std::string queue) const override {
        return bus_.subscription(std::move(queue));
    }
    asio::awaitable<std::function<void()>> publish_outbox(
        std::shared_ptr<sql::Database> database) override {
        co_return co_await bus_.publish_outbox(std::move(database));
    }
    ProcessBus& process_bus() { return bus_; }

    const std::vector<std::pair<std::string, std::string>>& modules() const override {
        return modules_;
    }
    std::size_t io_threads() const override { return io_threads_; }
    void set_edge(Edge edge) override { edge_ = std::move(edge); }
    asio::awaitable<http::Response> dispatch_local(http::Request& request) override {
        return http::dispatch_route(router_, request);
    }
    const Edge& edge() const { return edge_; }
    void set_process(std::vector<std::pair<std::string, std::string>> modules,
                     std::size_t io_threads) {
        modules_ = std::move(modules);
        io_threads_ = io_threads;
    }

    void add_background_task(std::string name,
                             std::function<asio::awaitable<void>()> task) override {
        tasks_.emplace_back(std::move(name), std::move(task));
    }

    const std::vector<ReadinessCheck>& checks() const { return checks_; }
    const std::vector<std::pair<std::string, std::function<asio::awaitable<void>()>>>& tasks()
        const {
        return tasks_;
    }
    void close_databases() {
        for (auto& [name, database] : databases_) database->close();
    }

  private:
    std::shared_ptr<const config::Config> config_;
    std::vector<std::pair<std::string, std::string>> modules_;
    std::size_t io_threads_ = 1;
    Edge edge_;
    asio::io_context& io_;
    BlockingPool& pool_;
    BlockingPool& hashing_pool_;
    std::string data_dir_;
    http::Router& router_;
    std::shared_ptr<const auth::JwtCodec> jwt_;
    std::map<std::string, std::shared_ptr<sql::Database>> databases_;
    ProcessBus bus_;
    std::vector<ReadinessCheck> checks_;
    std::vector<std::pair<std::string, std::function<asio::awaitable<void>()>>> tasks_;
};

std::string read_file(const std::string& path, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read " + path;
        return {};
    }
    std::ostringstream contents;
    contents << in.rdbuf();
    return contents.str();
}

void add_probe_routes(http::Router& router, const std::string& service, const AppContext& context,
                      const std::atomic<bool>& ready) {
    router.add(http::Method::Get, "/health",
               [body = boost::json::serialize(
                    boost::json::object{{"status", "healthy"}, {"service", service}})](
                   http::Request&) -> asio::awaitable<http::Response> {
                   co_return http::Response::json(200, body);
               });
    router.add(http::Method::Get, "/ready",
               [&context, &ready](http::Request& request) -> asio::awaitable<http::Response> {
                   if (!ready.load()) {
                       auto response = http::error_response(json::ErrorCode::UpstreamUnavailable,
                                                            "not ready: starting or draining",
                                                            request.context.request_id);
                       response.status = 503;
                       co_return response;
                   }
                   for (const auto& check : context.checks()) {
                       bool ok = false;
                       try {
                           ok = co_await check.probe();
                       } catch (const std::exception&) {
                           ok = false;
                       }
                       if (!ok) {
                           auto response = http::error_response(
                               json::ErrorCode::UpstreamUnavailable,
                               "dependency unavailable: " + check.name, request.context.request_id);
                           response.status = 503;
                           co_return response;
                       }
                   }
                   co_return http::Response::json(200, R"({"status":"ready"})");
               });
    router.add(http::Method::Get, "/metrics",
               [](http::Request&) -> asio::awaitable<http::Response> {
                   co_return http::Response::text(200, telemetry::default_registry().expose(),
                                                  "text/plain; version=0.0.4; charset=utf-8");
               });
}

// A minimal OpenAPI 3.1 document listing every route the process serves.
void add_openapi_route(http::Router& router, const std::string& service) {
    auto routes = router.routes();
    router.add(http::Method::Get, "/openapi.json",
               [routes, service](http::Request&) -> asio::awaitable<http::Response> {
                   boost::json::object paths;
                   for (const auto& [method, path] : routes) {
                       auto& item = paths[path];
                       if (!item.is_object()) item = boost::json::object{};
                       std::string verb(http::method_name(method));
                       for (auto& c : verb) c = static_cast<char>(std::tolower(c));
                       item.as_object()[verb] = boost::json::object{
                           {"responses", {{"default", {{"description", "see API.md"}}}}}};
                   }
                   boost::json::object document{
                       {"openapi", "3.1.0"},
                       {"info", {{"title", "Aether " + service}, {"version", "0.1.0"}}},
                       {"paths", std::move(paths)}};
                   co_return http::Response::json(200, boost::json::serialize(document));
               });
}

}  // namespace

void declare_platform_config(config::Schema& schema) {
    schema.add({"http.io_threads", Kind::Int, "0", "IO threads; 0 = the cores available",
                config::int_range(0, 256)});
    schema.add(
        {"http.busy_poll_us", Kind::Int, "0",
         "Longest an idle IO thread polls for work before it sleeps, in microseconds "
         "(adapted to the traffic; the length of an idle spell includes the handler that ends "
         "it); saves wake-ups on virtual machines for CPU time; 0 = off; needs "
         "http.io_threads=1",
         config::int_range(0, 10'000)});
    schema.add({"http.max_body_bytes", Kind::Int, "1048576", "Largest request body accepted",
                config::int_range(1024, 1 << 30)});
    schema.add({"http.max_header_bytes", Kind::Int, "16384", "Largest request header block",
                config::int_range(1024, 1 << 20)});
    schema.add({"http.max_connections", Kind::Int, "10000", "Open connections accepted at once",
                config::int_range(1, 1'000'000)});
    schema.add({"http.header_timeout",
                Kind::Duration,
                "10s",
                "Time allowed from a connection's first byte to the end of the headers",
                {}});
    schema.add(
        {"http.body_timeout", Kind::Duration, "30s", "Time allowed to receive a request body", {}});
    schema.add({"http.idle_timeout",
                Kind::Duration,
                "60s",
                "How long an idle keep-alive connection is kept open",
                {}});
    schema.add({"http.cors.allowed_origins",
                Kind::StringList,
                "",
                "Origins allowed by CORS; \"*\" only without credentials",
                {}});
    schema.add({"http.cors.allow_credentials",
                Kind::Bool,
                "false",
                "Send Access-Control-Allow-Credentials",
                {}});
    schema.add({"blocking.threads", Kind::Int, "0",
                "Threads for blocking work (SQLite, blocking clients); 0 = the cores available",
                config::int_range(0, 1024)});
    schema.add({"blocking.queue", Kind::Int, "256",
                "Jobs that may wait for a blocking thread before requests get 503",
                config::int_range(1, 1'000'000)});
    schema.add({"blocking.hashing_threads", Kind::Int, "0",
                "Threads for password hashing; 0 = the cores available",
                config::int_range(0, 1024)});
    schema.add({"blocking.hashing_queue", Kind::Int, "64",
                "Password hashes that may wait for a thread before logins get 503",
                config::int_range(1, 100000)});
    schema.add(
        {"blocking.nice", Kind::Int, "10",
         "Nice increment of the blocking threads, so IO threads win the CPU when both want it",
         config::int_range(0, 19)});
    schema.add({"log.level", Kind::String, "info", "debug, info, warn or error",
                config::one_of({"debug", "info", "warn", "error"})});
    schema.add({"log.access", Kind::Bool, "true", "One JSON line per request", {}});
    schema.add({"shutdown.drain_timeout",
                Kind::Duration,
                "25s",
                "How long in-flight requests may finish after SIGTERM",
                {}});
    schema.add({"database.max_connections", Kind::Int, "8", "Connections per PostgreSQL pool",
                config::int_range(1, 1000)});
    schema.add({"database.query_timeout", Kind::Duration, "10s", "Longest a query may run", {}});
    schema.add({"auth.jwt_secret",
                Kind::Secret,
                "",
                "HS256 signing secret (at least 32 bytes); generated under the data dir in "
                "all-in-one mode when unset",
                {}});
    schema.add({"auth.jwt_algorithm", Kind::String, "HS256", "HS256, RS256 or ES256",
                config::one_of({"HS256", "RS256", "ES256"})});
    schema.add({"auth.jwt_private_key_file",
                Kind::String,
                "",
                "PEM private key for RS256/ES256 signing",
                {}});
    schema.add({"auth.jwt_public_key_file",
                Kind::String,
                "",
                "PEM public key for RS256/ES256 verification and the JWKS document",
                {}});
    schema.add({"auth.jwt_key_id", Kind::String, "aether-1", "The kid of the signing key", {}});
    schema.add({"auth.issuer", Kind::String, "", "iss claim issued and required when set", {}});
    schema.add({"auth.audience", Kind::String, "", "aud claim issued and required when set", {}});
    schema.add({"auth.leeway", Kind::Duration, "30s", "Clock skew allowed on exp/nbf/iat", {}});
    schema.add({"bus.url",
                Kind::Secret,
                "",
                "RabbitMQ URL (amqp://user:password@host:port/vhost); empty = the embedded broker",
                {}});
    schema.add({"bus.database",
                Kind::String,
                "",
                "The embedded broker's database (sqlite:PATH or postgresql://…); default "
                "sqlite:<data dir>/bus.db",
                {}});
    schema.add({"bus.max_attempts", Kind::Int, "5",
                "Deliveries of an event before it goes to the queue's dead letters",
                config::int_range(1, 100)});
    schema.add({"bus.retry_delay",
                Kind::Duration,
                "1s",
                "Delay before the first redelivery; doubled per attempt",
                {}});
    schema.add({"bus.prefetch", Kind::Int, "16", "Deliveries in flight per consumer queue",
                config::int_range(1, 1000)});
}

std::string effective_config_file(const AppOptions& options) {
    if (!options.config_file.empty()) return options.config_file;
    return fs::exists("aether.yaml") ? "aether.yaml" : "";
}

namespace {

// The keys the platform and the given modules read.
config::Schema schema_of(const Modules& modules) {
    config::Schema schema;
    declare_platform_config(schema);
    for (const auto& module : modules.list) module->declare_config(schema);
    return schema;
}

Expected<std::pair<std::shared_ptr<const config::Config>, Modules>, std::vector<std::string>>
load_with_modules(const AppOptions& options) {
    auto modules = Modules::create(options.target);
    if (!modules) return unexpected(std::vector<std::string>{modules.error()});
    auto schema = schema_of(*modules);
    auto loaded = config::load(schema, effective_config_file(options), options.environment);
    if (!loaded) {
        std::vector<std::string> messages;
        for (const auto& error : loaded.error()) messages.push_back(error.to_string());
        return unexpected(std::move(messages));
    }
    auto config = std::make_shared<const config::Config>(std::move(*loaded));
    return std::pair{config, std::move(*modules)};
}

}  // namespace

std::optional<std::string> check_key_combinations(const config::Config& config) {
    auto origins = config.get_list("http.cors.allowed_origins");
    if (config.get_bool("http.cors.allow_credentials") &&
        std::find(origins.begin(), origins.end(), "*") != origins.end()) {
        return "http.cors.allowed_origins: \"*\" cannot be combined with "
               "http.cors.allow_credentials=true; list the origins that may send credentials";
    }
    // While one thread sleeps in the reactor, the others' polls cannot see its sockets.
    if (config.get_int("http.busy_poll_us") > 0 && config.get_int("http.io_threads") != 1) {
        return "http.busy_poll_us: busy polling needs http.io_threads=1 (it is " +
               std::to_string(config.get_int("http.io_threads")) + "; 0 means one per core)";
    }
    return std::nullopt;
}

Expected<std::string, std::vector<std::string>> config_keys_markdown(const AppOptions& options) {
    auto modules = Modules::create(options.target);
    if (!modules) return unexpected(std::vector<std::string>{modules.error()});
    auto schema = schema_of(*modules);
    return schema.markdown_table();
}

Expected<std::shared_ptr<const config::Config>, std::vector<std::string>> load_config(
    const AppOptions& options) {
    auto loaded = load_with_modules(options);
    if (!loaded) return unexpected(std::move(loaded).error());
    std::vector<std::string> problems;
    auto secret = resolve_jwt_secret(*loaded->first, options);
    if (!secret) problems.push_back(secret.error());
    if (auto problem = check_key_combinations(*loaded->first)) problems.push_back(*problem);
    for (const auto& module : loaded->second.list) {
        for (auto& problem : module->check_config(*loaded->first)) {
            problems.push_back(std::move(problem));
        }
    }
    if (!problems.empty()) return unexpected(std::move(problems));
    return loaded->first;
}

Expected<std::string, std::string> resolve_jwt_secret(const config::Config& config,
                                                      const AppOptions& options) {
    if (config.get_string("auth.jwt_algorithm") != "HS256") return std::string{};
    std::string secret = config.get_secret("auth.jwt_secret");
    if (!secret.empty()) {
        if (secret.size() < kMinJwtSecretBytes) {
            return unexpected("auth.jwt_secret (AETHER_AUTH_JWT_SECRET) is " +
                              std::to_string(secret.size()) + " bytes; at least " +
                              std::to_string(kMinJwtSecretBytes) + " are required");
        }
        return secret;
    }
    if (options.target != "all") {
        return unexpected(
            "auth.jwt_secret is not set: every target except the all-in-one default needs a "
            "shared secret of at least 32 bytes (set AETHER_AUTH_JWT_SECRET)");
    }
    fs::path file = fs::path(options.data_dir) / "jwt_secret";
    std::error_code ec;
    if (fs::exists(file, ec)) {
        std::string error;
        std::string stored = read_file(file.string(), error);
        while (!stored.empty() && (stored.back() == '\n' || stored.back() == '\r'))
            stored.pop_back();
        if (!error.empty()) return unexpected(error);
        if (stored.size() < kMinJwtSecretBytes) {
            return unexpected(file.string() + " holds a secret shorter than 32 bytes");
        }
        return stored;
    }
    fs::create_directories(options.data_dir, ec);
    std::string generated = auth::random_token(48);
    fs::path temporary = file;
    temporary += ".tmp";
    // Created 0600 from the start: the secret is never readable by others, not even briefly.
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return unexpected("cannot write " + temporary.string());
    std::string contents = generated + "\n";
    bool written =
        ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size());
    written = ::fsync(fd) == 0 && written;
    ::close(fd);
    if (!written) return unexpected("cannot write " + temporary.string());
    fs::rename(temporary, file, ec);
    if (ec) return unexpected("cannot write " + file.string() + ": " + ec.message());
    return generated;
}

struct Runtime::State {
    AppOptions options;
    std::shared_ptr<const config::Config> config;
    Modules modules;
    std::string service;
    std::size_t io_threads = 1;
    std::chrono::microseconds longest_busy_poll{0};
    IdleSpellCounts idle_spells;  // of the busy-polling IO thread
    std::unique_ptr<BlockingPool> pool;
    std::unique_ptr<BlockingPool> hashing_pool;
    std::unique_ptr<asio::io_context> io;
    std::shared_ptr<http::Router> router;
    std::unique_ptr<AppContext> context;
    std::string host;
    std::uint16_t port = 0;

    ~State() {
        telemetry::default_registry().remove_callback("blocking_pool_queued_jobs");
        telemetry::default_registry().remove_callback("hashing_pool_queued_jobs");
        telemetry::default_registry().remove_callback("http_io_idle_spells_caught_total");
        telemetry::default_registry().remove_callback("http_io_idle_spells_waited_total");
        if (context) context->close_databases();
        if (pool) pool->stop();
        if (hashing_pool) hashing_pool->stop();
        BlockingPool::set_default_pool(nullptr);
        // Modules own sockets and timers (upstream pools, the Redis connection): they must go
        // while the io_context still exists; whatever its pending coroutines still hold goes
        // when it is destroyed.
        context.reset();
        modules.list.clear();
        io.reset();
        telemetry::Logger::instance().flush();
    }

    // Runs a coroutine to completion on the IO context (before or after serving).
    void run_to_completion(std::function<asio::awaitable<void>()> body) {
        auto done = asio::co_spawn(*io, std::move(body), asio::use_future);
        io->run();
        io->restart();
        done.get();
    }
};

Runtime::Runtime(std::unique_ptr<State> state) : state_(std::move(state)) {}
Runtime::~Runtime() = default;

Expected<std::unique_ptr<Runtime>, std::vector<std::string>> Runtime::prepare(
    const AppOptions& options) {
    auto fail = [](std::string message) {
        return unexpected(std::vector<std::string>{std::move(message)});
    };
    auto loaded = load_with_modules(options);
    if (!loaded) return unexpected(std::move(loaded).error());
    auto state = std::make_unique<State>();
    state->options = options;
    state->config = loaded->first;
    state->modules = std::move(loaded->second);
    state->service = options.target == "all" ? "aether" : options.target;
    const auto& config = *state->config;

    auto& logger = telemetry::Logger::instance();
    logger.set_service(state->service);
    auto level = config.get_string("log.level");
    logger.set_level(level == "debug"   ? telemetry::Level::Debug
                     : level == "warn"  ? telemetry::Level::Warn
                     : level == "error" ? telemetry::Level::Error
                                        : telemetry::Level::Info);

    if (auto problem = check_key_combinations(config)) return fail(*problem);
    std::error_code ec;
    fs::create_directories(options.data_dir, ec);
    if (ec) return fail("cannot create data dir " + options.data_dir + ": " + ec.message());
    auto secret = resolve_jwt_secret(config, options);
    if (!secret) return fail(secret.error());
    auth::JwtSettings jwt_settings;
    jwt_settings.algorithm = config.get_string("auth.jwt_algorithm");
    jwt_settings.secret = *secret;
    jwt_settings.key_id = config.get_string("auth.jwt_key_id");
    jwt_settings.issuer = config.get_string("auth.issuer");
    jwt_settings.audience = config.get_string("auth.audience");
    jwt_settings.leeway_seconds = static_cast<int>(
        std::chrono::duration_cast<std::chrono::seconds>(config.get_duration("auth.leeway"))
            .count());
    for (auto [key, target] :
         {std::pair{"auth.jwt_private_key_file", &jwt_settings.private_key_pem},
          std::pair{"auth.jwt_public_key_file", &jwt_settings.public_key_pem}}) {
        auto path = config.get_string(key);
        if (path.empty()) continue;
        std::string error;
        *target = read_file(path, error);
        if (!error.empty()) return fail(std::string(key) + ": " + error);
    }
    auto codec = auth::JwtCodec::create(jwt_settings);
    if (!codec) return fail("JWT settings: " + codec.error());
    auto jwt = std::make_shared<const auth::JwtCodec>(std::move(*codec));

    if (!split_listen(options.listen, state->host, state->port)) {
        return fail("--listen must be HOST:PORT (got \"" + options.listen + "\")");
    }
    std::size_t cores = available_cores();
    state->io_threads = static_cast<std::size_t>(config.get_int("http.io_threads"));
    if (state->io_threads == 0) state->io_threads = cores;
    // check_key_combinations refuses it with more than one IO thread.
    state->longest_busy_poll = std::chrono::microseconds(config.get_int("http.busy_poll_us"));
    auto blocking_threads = static_cast<std::size_t>(config.get_int("blocking.threads"));
    if (blocking_threads == 0) blocking_threads = cores;
    state->pool = std::make_unique<BlockingPool>(
        blocking_threads, static_cast<std::size_t>(config.get_int("blocking.queue")), "blocking",
        static_cast<int>(config.get_int("blocking.nice")));
    BlockingPool::set_default_pool(state->pool.get());
    auto* pool = state->pool.get();
    telemetry::default_registry().gauge_callback(
        "blocking_pool_queued_jobs", "Jobs waiting for a blocking thread.",
        [pool] { return static_cast<double>(pool->queued()); });

    state->io = std::make_unique<asio::io_context>(static_cast<int>(state->io_threads));
    state->router = std::make_shared<http::Router>();
    auto hashing_threads = static_cast<std::size_t>(config.get_int("blocking.hashing_threads"));
    if (hashing_threads == 0) hashing_threads = cores;
    state->hashing_pool = std::make_unique<BlockingPool>(
        hashing_threads, static_cast<std::size_t>(config.get_int("blocking.hashing_queue")),
        "hashing", static_cast<int>(config.get_int("blocking.nice")));
    state->context =
        std::make_unique<AppContext>(state->config, *state->io, *state->pool, *state->hashing_pool,
                                     options.data_dir, *state->router, jwt);
    std::vector<std::pair<std::string, std::string>> module_list;
    for (const auto& module : state->modules.list) {
        module_list.emplace_back(module->name(), module->base_path());
    }
    state->context->set_process(std::move(module_list), state->io_threads);
    return std::unique_ptr<Runtime>(new Runtime(std::move(state)));
}

void Runtime::run(std::function<asio::awaitable<void>(ModuleContext&)> body) {
    auto& context = *state_->context;
    state_->run_to_completion([&]() -> asio::awaitable<void> { co_await body(context); });
}

int Runtime::migrate() {
    try {
        state_->run_to_completion([this]() -> asio::awaitable<void> {
            for (auto& module : state_->modules.list) {
                co_await module->migrate(*state_->context);
                std::cout << "aether: " << module->name() << " migrated" << std::endl;
            }
        });
    } catch (const std::exception& failure) {
        std::cerr << "aether: migration failed: " << failure.what() << "\n";
        return 1;
    }
    return 0;
}

int Runtime::serve() {
    auto& state = *state_;
    auto& io = *state.io;
    auto& context = *state.context;
    auto& modules = state.modules;
    const auto& config = *state.config;
    std::atomic<bool> ready{false};

    // Modules migrate and start before the server accepts anything.
    try {
        state.run_to_completion([&]() -> asio::awaitable<void> {
            for (auto& module : modules.list) {
                co_await module->migrate(context);
                co_await module->start(context);
            }
        });
    } catch (const std::exception& failure) {
        std::cerr << "aether: a module failed to start: " << failure.what() << "\n";
        return 1;
    }

    add_probe_routes(*state.router, state.service, context, ready);
    add_openapi_route(*state.router, state.service);

    http::PipelineOptions pipeline_options;
    pipeline_options.service = state.service;
    pipeline_options.access_log = config.get_bool("log.access");
    pipeline_options.cors.allowed_origins = config.get_list("http.cors.allowed_origins");
    pipeline_options.cors.allow_credentials = config.get_bool("http.cors.allow_credentials");
    auto pipeline = std::make_shared<http::Pipeline>(pipeline_options, state.router);
    if (context.edge()) pipeline->set_edge(context.edge());

    http::ServerOptions server_options;
    server_options.max_body_bytes = static_cast<std::size_t>(config.get_int("http.max_body_bytes"));
    server_options.max_header_bytes =
        static_cast<std::size_t>(config.get_int("http.max_header_bytes"));
    server_options.max_connections =
        static_cast<std::size_t>(config.get_int("http.max_connections"));
    server_options.header_timeout = config.get_duration("http.header_timeout");
    server_options.body_timeout = config.get_duration("http.body_timeout");
    server_options.idle_timeout = config.get_duration("http.idle_timeout");
    server_options.strand_per_connection = state.io_threads > 1;
    // Behind the edge, large uploads go through to the upstream as they arrive instead of
    // being held whole in memory.
    if (context.edge()) server_options.stream_body_threshold = 64 * 1024;
    http::Server server(io, server_options, pipeline,
                        [pipeline](int status, std::string_view message) {
                            return pipeline->protocol_error(status, message);
                        });
    auto bound = server.listen(state.host, state.port);
    if (!bound) {
        std::cerr << "aether: " << bound.error() << "\n";
        return 1;
    }
    server.start();
    context.process_bus().start();
    ready.store(true);

    for (const auto& [name, task] : context.tasks()) {
        asio::co_spawn(io, task(), [name](std::exception_ptr failure) {
            if (!failure) return;
            try {
                std::rethrow_exception(failure);
            } catch (const std::exception& error) {
                telemetry::log_error("background task stopped",
                                     {{"task", name}, {"error", error.what()}});
            }
        });
    }

    auto drain_timeout = config.get_duration("shutdown.drain_timeout");
    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
        if (error) return;
        telemetry::log_info("draining", {{"signal", static_cast<std::int64_t>(signal_number)}});
        ready.store(false);
        server.begin_drain();
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                auto deadline = std::chrono::steady_clock::now() + drain_timeout;
                asio::steady_timer timer(io);
                while (server.open_connections() > 0 &&
                       std::chrono::steady_clock::now() < deadline) {
                    timer.expires_after(std::chrono::milliseconds(20));
                    co_await timer.async_wait(asio::use_awaitable);
                }
                for (auto& module : modules.list) co_await module->stop();
                // Events of the last requests go out before the connection closes.
                co_await context.process_bus().drain(std::chrono::steady_clock::now() +
                                                     kBusDrainTimeout);
                io.stop();
            },
            asio::detached);
    });

    const auto& host = state.host;
    std::string url = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                      ":" + std::to_string(*bound);
    std::cout << "aether: serving target " << state.options.target << " on " << url << std::endl;
    telemetry::log_info(
        "listening", {{"url", url},
                      {"target", state.options.target},
                      {"io_threads", static_cast<std::int64_t>(state.io_threads)},
                      {"busy_poll_us", static_cast<std::int64_t>(state.longest_busy_poll.count())},
                      {"blocking_threads", static_cast<std::int64_t>(state.pool->threads())}});

    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < state.io_threads; ++i) threads.emplace_back([&io] { io.run(); });
    if (state.longest_busy_poll.count() > 0) {
        // Whether polling pays: the share of idle spells it ends without a wake-up.
        auto& registry = telemetry::default_registry();
        auto& spells = state.idle_spells;
        registry.counter_callback(
            "http_io_idle_spells_caught_total",
            "Idle spells of the busy-polling IO thread that ended with work found while polling.",
            [&spells] { return static_cast<double>(spells.caught.load()); });
        registry.counter_callback(
            "http_io_idle_spells_waited_total",
            "Idle spells of the busy-polling IO thread that ended in a wait in the kernel.",
            [&spells] { return static_cast<double>(spells.waited.load()); });
        run_busy_polling(io, state.longest_busy_poll, spells);
    } else {
        io.run();
    }
    for (auto& thread : threads) thread.join();
    telemetry::log_info("stopped", {});
    return 0;
}

}  // namespace aether::platform::runtime
