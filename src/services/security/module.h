// The security module: users, passwords, tokens, roles and permissions, API keys, audit log.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>

#include "platform/runtime/module.h"

namespace aether::services::security {

std::unique_ptr<platform::runtime::Module> make_module();

// `aether user create`: creates a user with the given role on the module's database; prints the
// outcome and returns the exit code.
boost::asio::awaitable<int> create_user_command(platform::runtime::ModuleContext& context,
                                                std::string email, std::string name,
                                                std::string role, std::string password);

}  // namespace aether::services::security
