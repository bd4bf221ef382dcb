// Wires the gateway into a process: its config keys, the edge hook, reload on SIGHUP and on file
// change, and the active health checks.
#include "services/gateway/module.h"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <stdexcept>

#include "platform/config/config.h"
#include "platform/config/schema.h"
#include "platform/http/message.h"
#include "platform/telemetry/log.h"
#include "services/gateway/gateway.h"

namespace aether::services::gateway {

namespace asio = boost::asio;
namespace config = platform::config;
namespace runtime = platform::runtime;

namespace {

class GatewayModule final : public runtime::Module {
  public:
    std::string_view name() const override { return "gateway"; }
    // The gateway takes every path through the edge hook, not through routes of its own.
    std::string_view base_path() const override { return ""; }

    void declare_config(config::Schema& schema) const override {
        using config::Kind;
        schema.add({"gateway.config",
                    Kind::String,
                    "",
                    "Declarative gateway file (Kong 3.0 style); empty in all-in-one mode = every "
                    "module's base path routed in-process with jwt",
                    {}});
        schema.add({"gateway.watch_interval",
                    Kind::Duration,
                    "2s",
                    "How often the gateway file is checked for changes (SIGHUP reloads at once)",
                    {}});
        schema.add({"cache.redis_url",
                    Kind::Secret,
                    "",
                    "redis://[:password@]host:port[/db] shared by gateway replicas for "
                    "rate-limit counters; empty = none",
                    {}});
    }

    std::vector<std::string> check_config(const config::Config& settings) const override {
        const auto path = settings.get_string("gateway.config");
        if (path.empty()) return {};
        auto loaded = load_gateway_config(path);
        if (loaded) return {};
        std::vector<std::string> problems;
        for (const auto& problem : loaded.error()) problems.push_back(problem.to_string());
        return problems;
    }

    asio::awaitable<void> start(runtime::ModuleContext& context) override {
        const auto& settings = context.config();
        GatewayOptions options;
        options.config_path = settings.get_string("gateway.config");
        options.redis_url = settings.get_secret("cache.redis_url");
        options.multi_threaded = context.io_threads() > 1;
        options.max_body_bytes = static_cast<std::size_t>(settings.get_int("http.max_body_bytes"));
        std::vector<std::pair<std::string, std::string>> local;
        for (const auto& [module, base_path] : context.modules()) {
            if (module == "gateway") continue;
            options.local_modules.push_back(module);
            local.emplace_back(module, base_path);
        }
        if (options.config_path.empty()) {
            if (local.empty()) {
                throw std::runtime_error(
                    "gateway.config (AETHER_GATEWAY_CONFIG) must name the gateway file when the "
                    "gateway runs without other modules");
            }
            BuiltinCors cors;
            cors.origins = settings.get_list("http.cors.allowed_origins");
            cors.credentials = settings.get_bool("http.cors.allow_credentials");
            options.builtin_yaml = builtin_gateway_yaml(local, cors);
            options.plugin_options.pass_api_keys = true;
        }
        auto* module_context = &context;
        auto created = Gateway::create(context.executor(), std::move(options), context.jwt(),
                                       [module_context](platform::http::Request& request) {
                                           return module_context->dispatch_local(request);
                                       });
        if (!created) throw std::runtime_error("gateway configuration:\n" + created.error());
        gateway_ = std::move(*created);
        auto gateway = gateway_;
        context.set_edge(
            [gateway](platform::http::Request& request) { return gateway->handle(request); });

        const auto interval = settings.get_duration("gateway.watch_interval");
        auto executor = context.executor();
        context.add_background_task("gateway reload on SIGHUP",
                                    [gateway, executor]() -> asio::awaitable<void> {
                                        asio::signal_set signals(executor, SIGHUP);
                                        for (;;) {
                                            co_await signals.async_wait(asio::use_awaitable);
                                            (void)gateway->reload();
                                        }
                                    });
        if (!settings.get_string("gateway.config").empty() && interval.count() > 0) {
            context.add_background_task("gateway file watch",
                                        [gateway, executor, interval]() -> asio::awaitable<void> {
                                            asio::steady_timer timer(executor);
                                            for (;;) {
                                                timer.expires_after(interval);
                                                co_await timer.async_wait(asio::use_awaitable);
                                                gateway->reload_if_changed();
                                            }
                                        });
        }
        context.add_background_task("gateway health checks",
                                    [gateway]() { return gateway->run_health_checks(); });
        co_return;
    }

    asio::awaitable<void> stop() override {
        if (gateway_) gateway_->close();
        co_return;
    }

  private:
    std::shared_ptr<Gateway> gateway_;
};

}  // namespace

std::unique_ptr<runtime::Module> make_module() {
    return std::make_unique<GatewayModule>();
}

}  // namespace aether::services::gateway
