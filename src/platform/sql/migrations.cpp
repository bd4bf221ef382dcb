// Applies migrations once per (module, version), refusing a history that was rewritten.
#include "platform/sql/migrations.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <set>

namespace aether::platform::sql {

namespace {

// pg_advisory_xact_lock key shared by every module's migrations ("aether" in ASCII).
constexpr std::int64_t kMigrationLockKey = 0x616574686572;

constexpr std::string_view kCreateTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "module TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, "
    "applied_at TEXT NOT NULL, PRIMARY KEY (module, version))";

std::string utc_now() {
    auto now = std::chrono::system_clock::now();
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    std::tm parts{};
    gmtime_r(&seconds, &parts);
    char buffer[40];
    std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &parts);
    std::snprintf(buffer + length, sizeof buffer - length, ".%03dZ", static_cast<int>(millis));
    return std::string(buffer);
}

asio::awaitable<void> lock_if_postgres(Session& session) {
    if (session.dialect() == "postgres") {
        co_await session.query("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
    }
}

void validate(std::string_view module, const std::vector<Migration>& migrations) {
    if (module.empty()) throw MigrationError("migration module name is empty");
    std::set<int> versions;
    for (const auto& migration : migrations) {
        if (migration.version <= 0 || migration.name.empty()) {
            throw MigrationError(std::string(module) + ": migration needs a positive version " +
                                 "and a name");
        }
        if (!versions.insert(migration.version).second) {
            throw MigrationError(std::string(module) + ": migration version " +
                                 std::to_string(migration.version) + " appears twice");
        }
    }
}

}  // namespace

asio::awaitable<void> migrate(Database& database, std::string module,
                              std::vector<Migration> migrations) {
    validate(module, migrations);
    std::vector<const Migration*> ordered;
    for (const auto& migration : migrations) ordered.push_back(&migration);
    std::sort(ordered.begin(), ordered.end(),
              [](const Migration* a, const Migration* b) { return a->version < b->version; });

    co_await database.transaction([&](Session& session) -> asio::awaitable<void> {
        co_await lock_if_postgres(session);
        co_await session.execute_script(std::string(kCreateTable));
    });

    for (const Migration* migration : ordered) {
        co_await database.transaction([&](Session& session) -> asio::awaitable<void> {
            co_await lock_if_postgres(session);
            auto applied = co_await session.query(
                "SELECT name FROM schema_migrations WHERE module = $1 AND version = $2", module,
                std::int64_t{migration->version});
            if (!applied.empty()) {
                auto recorded = applied[0].get_string("name");
                if (recorded != migration->name) {
                    throw MigrationError(module + ": migration " +
                                         std::to_string(migration->version) + " was applied as '" +
                                         recorded + "' but is now named '" + migration->name +
                                         "'; applied migrations must not change");
                }
                co_return;
            }
            const std::string& script =
                session.dialect() == "postgres" ? migration->postgres_sql : migration->sqlite_sql;
            co_await session.execute_script(script);
            co_await session.query(
                "INSERT INTO schema_migrations (module, version, name, applied_at) "
                "VALUES ($1, $2, $3, $4)",
                module, std::int64_t{migration->version}, migration->name, utc_now());
        });
    }
}

}  // namespace aether::platform::sql
