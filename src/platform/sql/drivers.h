// Constructors of the two drivers, called by open() (internal).
#pragma once

#include <memory>
#include <string>

#include "platform/sql/database.h"

namespace aether::platform::sql::detail {

Expected<std::shared_ptr<Database>, std::string> open_sqlite(const std::string& path,
                                                             runtime::BlockingPool& pool,
                                                             const PoolOptions& options);

Expected<std::shared_ptr<Database>, std::string> open_postgres(
    const std::string& url, const asio::any_io_executor& executor, const PoolOptions& options);

}  // namespace aether::platform::sql::detail
