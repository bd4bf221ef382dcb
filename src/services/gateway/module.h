// The gateway module: the edge of Aether (routing, JWT, rate limits, CORS, proxying).
#pragma once

#include <memory>

#include "platform/runtime/module.h"

namespace aether::services::gateway {

std::unique_ptr<platform::runtime::Module> make_module();

}  // namespace aether::services::gateway
