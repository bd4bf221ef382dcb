// The embedded broker of the all-in-one mode: the RabbitMQ topology of bus.h (topic routing to
// durable queues, prefetch, retries with growing delay, dead letters) kept in a database, so it is
// durable across restarts without a broker process. Meant for one process per broker database.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "platform/bus/bus.h"

namespace aether::platform::sql {
class Database;
}

namespace aether::platform::bus {

struct EmbeddedBusOptions {
    // Consumers look for due messages this often when nothing wakes them (a publish in this
    // process wakes them at once; retries wake them when due).
    std::chrono::milliseconds poll_interval{1000};
};

// Creates or upgrades the broker's tables (migrations under the module name "embedded_bus").
asio::awaitable<void> migrate_embedded_bus(sql::Database& database);

// A bus over `broker_database` (migrated already). publish() commits one message per queue whose
// bindings match (an event no queue matches is dropped, as by a topic exchange); start() records
// each subscription's bindings (replacing that queue's earlier ones) and starts one consumer per
// queue on `executor`, then returns; stop() stops fetching and waits for handlers in flight.
// Messages in flight when the process died are delivered again by the next bus on the database.
std::unique_ptr<Bus> make_embedded_bus(std::shared_ptr<sql::Database> broker_database,
                                       asio::any_io_executor executor,
                                       EmbeddedBusOptions options = {});

// A message that used up its attempts, kept in the queue's dead letters ("<queue>.dead").
struct DeadLetter {
    std::string queue;  // "analytics.events.dead"
    std::string event;  // the envelope JSON as published
    int attempts = 0;
    std::string last_error;
    std::string dead_at;  // RFC 3339
};

// The oldest `limit` dead letters of the subscription queue `queue` ("analytics.events").
asio::awaitable<std::vector<DeadLetter>> dead_letters(sql::Database& broker_database,
                                                      std::string queue, std::int64_t limit = 100);

}  // namespace aether::platform::bus
