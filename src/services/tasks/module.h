// The task manager module: tasks, comments, history and stats under /api/v1/tasks; every change
// commits its task.* event to the module's transactional outbox in the same transaction.
#pragma once

#include <memory>

#include "platform/runtime/module.h"

namespace aether::services::tasks {

std::unique_ptr<platform::runtime::Module> make_module();

}  // namespace aether::services::tasks
