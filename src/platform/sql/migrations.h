// Versioned schema migrations per module, recorded in schema_migrations and applied at startup.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "platform/sql/database.h"

namespace aether::platform::sql {

struct Migration {
    int version = 0;
    std::string name;
    std::string sqlite_sql;
    // Same text as sqlite_sql when the migration is portable.
    std::string postgres_sql;
};

// The migration history in the database disagrees with the code (an applied migration was
// renamed or edited), or the list itself is malformed.
class MigrationError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Applies the migrations of `module` not applied yet, in version order, each in its own
// transaction. On PostgreSQL an advisory lock keeps two processes starting together from racing.
// Throws MigrationError or DatabaseError.
// Takes its arguments by value: the coroutine may outlive the caller's temporaries.
asio::awaitable<void> migrate(Database& database, std::string module,
                              std::vector<Migration> migrations);

}  // namespace aether::platform::sql
