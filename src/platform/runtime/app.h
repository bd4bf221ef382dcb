// The App composes the modules of a target into one process: configuration, IO threads, the
// blocking pool, the HTTP server and pipeline, probes, and a graceful drain on SIGTERM.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::config {
class Config;
class Schema;
struct ConfigError;
}  // namespace aether::platform::config

namespace aether::platform::runtime {

struct AppOptions {
    std::string target = "all";
    std::string listen = "127.0.0.1:8080";
    std::string data_dir = "./data";
    std::string config_file;                         // "" = aether.yaml when present
    std::map<std::string, std::string> environment;  // AETHER_* variables
};

// Declares the keys the platform itself reads (http.*, auth.*, log.*, …).
void declare_platform_config(config::Schema& schema);

// Loads the configuration of the modules named by `target`: what `config check` runs.
Expected<std::shared_ptr<const config::Config>, std::vector<std::string>> load_config(
    const AppOptions& options);

class ModuleContext;

// Rules that span several keys (each key alone was checked by the schema); the message or none.
std::optional<std::string> check_key_combinations(const config::Config& config);

// Every configuration key of the target's modules and the platform, as a Markdown table.
Expected<std::string, std::vector<std::string>> config_keys_markdown(const AppOptions& options);

// A prepared process: configuration loaded and checked, modules created, IO context, blocking
// pool and JWT codec built. `serve`, `migrate` and the admin commands all start from here.
class Runtime {
  public:
    static Expected<std::unique_ptr<Runtime>, std::vector<std::string>> prepare(
        const AppOptions& options);
    ~Runtime();

    // Runs the process until SIGTERM/SIGINT; returns the exit code.
    int serve();
    // Migrates every module's database; returns the exit code.
    int migrate();
    // Runs one coroutine to completion on the runtime's IO context (for admin commands).
    void run(std::function<boost::asio::awaitable<void>(ModuleContext&)> body);

  private:
    struct State;
    explicit Runtime(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

// The config file to read: the one named, else ./aether.yaml when it exists, else none.
std::string effective_config_file(const AppOptions& options);

// The JWT secret: configured, or (all-in-one only) generated once and kept under the data dir.
Expected<std::string, std::string> resolve_jwt_secret(const config::Config& config,
                                                      const AppOptions& options);

}  // namespace aether::platform::runtime
