// Registers the modules compiled into this binary.
#include "services/register.h"

#include "services/gateway/module.h"
#include "services/security/module.h"
#include "services/tasks/module.h"

namespace aether::services {

void register_all() {
    auto& registry = platform::runtime::ModuleRegistry::instance();
    registry.add("gateway", gateway::make_module);
    registry.add("security", security::make_module);
    registry.add("tasks", tasks::make_module);
}

boost::asio::awaitable<int> create_user_command(platform::runtime::ModuleContext& context,
                                                std::string email, std::string name,
                                                std::string role, std::string password) {
    co_return co_await security::create_user_command(context, std::move(email), std::move(name),
                                                     std::move(role), std::move(password));
}

}  // namespace aether::services
