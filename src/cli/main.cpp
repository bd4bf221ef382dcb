// The `aether` command: serve, migrate, user create, config check/keys, events tail, version.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#if defined(AETHER_WITH_MIMALLOC)
#include <mimalloc.h>
#endif

#include "cli/events_tail.h"
#include "platform/config/config.h"
#include "platform/config/schema.h"
#include "platform/runtime/app.h"
#include "platform/runtime/module.h"
#include "services/register.h"

namespace {

using aether::platform::runtime::AppOptions;
namespace runtime = aether::platform::runtime;
namespace config = aether::platform::config;

void add_common_options(CLI::App& command, AppOptions& options) {
    command.add_option("--target", options.target, "Modules to run: a target name or a,b list")
        ->capture_default_str();
    command.add_option("--listen", options.listen, "HOST:PORT to listen on")->capture_default_str();
    command.add_option("--data-dir", options.data_dir, "Where embedded data is kept")
        ->capture_default_str();
    command.add_option("--config", options.config_file,
                       "YAML configuration file (default: ./aether.yaml if present)");
}

int print_errors(const std::vector<std::string>& errors) {
    for (const auto& error : errors) std::cerr << "aether: " << error << "\n";
    return 2;
}

// The allocator that serves malloc, checked rather than assumed: a link that loses mimalloc's
// place ahead of the C library (or an LD_PRELOAD) leaves it built in but unused.
std::string allocator_in_use() {
#if defined(AETHER_WITH_MIMALLOC)
    void* probe = std::malloc(64);
    const bool served_by_mimalloc = mi_is_in_heap_region(probe);
    std::free(probe);
    if (!served_by_mimalloc) return "another (mimalloc linked but not serving malloc)";
    const int version = mi_version();  // 209 for 2.0.9
    return "mimalloc " + std::to_string(version / 100) + "." + std::to_string(version / 10 % 10) +
           "." + std::to_string(version % 10);
#else
    return "system";
#endif
}

std::string read_password_from_stdin() {
    if (isatty(STDIN_FILENO)) std::cerr << "password: " << std::flush;
    std::string password;
    std::getline(std::cin, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    return password;
}

}  // namespace

int main(int argc, char** argv) {
    aether::services::register_all();

    CLI::App app{"Aether: the AETHER-AI platform in one binary"};
    app.require_subcommand(1);
    AppOptions options;
    options.environment = config::process_environment();

    auto* serve = app.add_subcommand("serve", "Run the modules of a target");
    add_common_options(*serve, options);
    bool list_targets = false;
    serve->add_flag("--list-targets", list_targets, "Print the targets and exit");

    auto* migrate = app.add_subcommand("migrate", "Bring every module's database up to date");
    add_common_options(*migrate, options);

    auto* user = app.add_subcommand("user", "Manage users");
    user->require_subcommand(1);
    auto* user_create =
        user->add_subcommand("create", "Create a user; the password is read from stdin");
    add_common_options(*user_create, options);
    std::string email, name, role = "user";
    user_create->add_option("--email", email, "Email address")->required();
    user_create->add_option("--name", name, "Display name")->required();
    user_create->add_option("--role", role, "admin, developer, user or guest")
        ->capture_default_str();

    auto* config_command = app.add_subcommand("config", "Inspect configuration");
    config_command->require_subcommand(1);
    auto* check = config_command->add_subcommand("check", "Load and validate the configuration");
    add_common_options(*check, options);
    bool dump = false;
    check->add_flag("--dump", dump, "Print the effective configuration (secrets redacted)");
    auto* keys =
        config_command->add_subcommand("keys", "Print every configuration key as Markdown");
    add_common_options(*keys, options);

    auto* events = app.add_subcommand("events", "Watch the event bus");
    events->require_subcommand(1);
    auto* tail = events->add_subcommand(
        "tail", "Print live events, one CloudEvents JSON per line, until interrupted");
    add_common_options(*tail, options);
    std::string event_pattern = "#";
    tail->add_option("--type", event_pattern, "Event types as a topic pattern: task.*, user.#")
        ->capture_default_str();

    app.add_subcommand("version", "Print the version");

    CLI11_PARSE(app, argc, argv);

    if (app.got_subcommand("version")) {
        std::cout << "aether " << AETHER_VERSION << "\n"
                  << "allocator: " << allocator_in_use() << "\n";
        return 0;
    }
    if (serve->parsed() && list_targets) {
        for (const auto& target : runtime::known_targets()) {
            std::string missing;
            for (const auto& module : target.modules) {
                if (!runtime::ModuleRegistry::instance().has(module)) {
                    missing += missing.empty() ? module : ", " + module;
                }
            }
            std::cout << target.name << "\t" << target.description;
            if (!missing.empty() && target.name != "all") std::cout << " (not built yet)";
            std::cout << "\n";
        }
        return 0;
    }
    if (check->parsed()) {
        auto loaded = runtime::load_config(options);
        if (!loaded) {
            print_errors(loaded.error());
            std::cerr << "aether: configuration has " << loaded.error().size() << " error(s)\n";
            return 2;
        }
        if (dump) std::cout << (*loaded)->dump();
        auto file = runtime::effective_config_file(options);
        std::cout << "aether: configuration OK (" << (file.empty() ? "no file" : file)
                  << ", target " << options.target << ")\n";
        return 0;
    }
    if (keys->parsed()) {
        auto markdown = runtime::config_keys_markdown(options);
        if (!markdown) return print_errors(markdown.error());
        std::cout << *markdown;
        return 0;
    }

    auto prepared = runtime::Runtime::prepare(options);
    if (!prepared) return print_errors(prepared.error());
    auto& process = **prepared;
    if (serve->parsed()) return process.serve();
    if (migrate->parsed()) return process.migrate();
    if (tail->parsed()) return aether::cli::tail_events(process, event_pattern);
    if (user_create->parsed()) {
        std::string password = read_password_from_stdin();
        int exit_code = 0;
        process.run([&](runtime::ModuleContext& context) -> boost::asio::awaitable<void> {
            exit_code = co_await aether::services::create_user_command(context, email, name, role,
                                                                       password);
        });
        return exit_code;
    }
    return 0;
}
