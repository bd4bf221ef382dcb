// Idempotent consumers: the processed-event record and the handler's effect commit together.
#include "platform/bus/idempotency.h"

#include <chrono>
#include <utility>
#include <vector>

#include "platform/sql/database.h"
#include "platform/sql/migrations.h"
#include "platform/telemetry/clock.h"
#include "processed_events_migrations.h"

namespace aether::platform::bus {

asio::awaitable<void> migrate_processed_events(sql::Database& database) {
    auto migrations = processed_events_migrations();
    co_await sql::migrate(database, "processed_events", std::move(migrations));
}

asio::awaitable<bool> process_once(sql::Database& database, std::string consumer,
                                   std::string event_id,
                                   std::function<asio::awaitable<void>(sql::Session&)> effect) {
    bool first = false;
    auto processed_at = telemetry::format_rfc3339_ms(std::chrono::system_clock::now());
    co_await database.transaction([&](sql::Session& session) -> asio::awaitable<void> {
        // The record goes first: on PostgreSQL a concurrent redelivery's INSERT waits on this
        // row's lock and, once we commit, inserts nothing, so its effect never runs; if we roll
        // back, it proceeds. SQLite serialises writers, with the same outcome.
        auto inserted = co_await session.query(
            "INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (consumer, event_id) DO NOTHING",
            consumer, event_id, processed_at);
        if (inserted.affected_rows() == 0) co_return;
        first = true;
        co_await effect(session);
    });
    co_return first;
}

}  // namespace aether::platform::bus
