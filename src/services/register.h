// The composition root of the modules: which services this binary includes.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "platform/runtime/module.h"

namespace aether::services {

// Adds every built module to the module registry.
void register_all();

// `aether user create`, provided by the security module.
boost::asio::awaitable<int> create_user_command(platform::runtime::ModuleContext& context,
                                                std::string email, std::string name,
                                                std::string role, std::string password);

}  // namespace aether::services
