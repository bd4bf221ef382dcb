// The module registry and the target table.
#include "platform/runtime/module.h"

#include <algorithm>

namespace aether::platform::runtime {

ModuleRegistry& ModuleRegistry::instance() {
    static ModuleRegistry registry;
    return registry;
}

void ModuleRegistry::add(std::string name, ModuleFactory factory) {
    factories_[std::move(name)] = std::move(factory);
}

bool ModuleRegistry::has(std::string_view name) const {
    return factories_.contains(name);
}

std::unique_ptr<Module> ModuleRegistry::create(std::string_view name) const {
    auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : it->second();
}

std::vector<std::string> ModuleRegistry::names() const {
    std::vector<std::string> names;
    for (const auto& [name, factory] : factories_) names.push_back(name);
    return names;
}

const std::vector<TargetInfo>& known_targets() {
    static const std::vector<TargetInfo> targets{
        {"gateway", {"gateway"}, "edge: routing, JWT check, rate limits, CORS, proxying"},
        {"security", {"security"}, "users, passwords, tokens, roles, API keys, audit log"},
        {"tasks", {"tasks"}, "tasks, comments, history, stats"},
        {"analytics", {"analytics"}, "event store, usage and error aggregates, dashboard"},
        {"ai", {"ai"}, "model registry, provider adapters, cache, usage, streaming"},
        {"code", {"code"}, "code review, complexity, refactoring and test generation"},
        {"integrations", {"integrations"}, "GitHub, Slack and Discord connections, webhooks"},
        {"all",
         {"gateway", "security", "tasks", "analytics", "ai", "code", "integrations"},
         "every module in one process (the embedded default)"},
    };
    return targets;
}

std::vector<std::string> resolve_targets(std::string_view spec, std::string& error) {
    std::vector<std::string> modules;
    const auto& registry = ModuleRegistry::instance();
    std::size_t start = 0;
    while (start <= spec.size()) {
        auto comma = spec.find(',', start);
        auto name = spec.substr(start, comma == std::string_view::npos ? spec.npos : comma - start);
        start = comma == std::string_view::npos ? spec.size() + 1 : comma + 1;
        if (name.empty()) continue;
        auto target = std::find_if(known_targets().begin(), known_targets().end(),
                                   [&](const TargetInfo& info) { return info.name == name; });
        if (target == known_targets().end()) {
            error = "unknown target \"" + std::string(name) +
                    "\" (aether serve --list-targets shows the choices)";
            return {};
        }
        bool all = target->name == "all";
        for (const auto& module : target->modules) {
            if (!registry.has(module)) {
                // `all` means "everything this build has"; a named target must exist.
                if (all) continue;
                error = "target \"" + std::string(name) + "\" needs module \"" + module +
                        "\", which this build of aether does not include yet";
                return {};
            }
            if (std::find(modules.begin(), modules.end(), module) == modules.end()) {
                modules.push_back(module);
            }
        }
    }
    if (modules.empty() && error.empty()) error = "no target given";
    return modules;
}

}  // namespace aether::platform::runtime
