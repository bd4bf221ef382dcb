// Idempotent consumers: a handler's effect and the record "event X processed by consumer C" are
// written in one transaction of the consumer's database, so a redelivered event has no second
// effect.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string>

#include "platform/bus/bus.h"

namespace aether::platform::sql {
class Database;
class Session;
}  // namespace aether::platform::sql

namespace aether::platform::bus {

// Creates the processed-events table in a consumer's database (migrations under the module name
// "processed_events").
asio::awaitable<void> migrate_processed_events(sql::Database& database);

// Runs `effect` inside a transaction unless `consumer` already processed `event_id`; records the
// id in the same transaction. Returns false (and runs nothing) for a duplicate. An exception from
// `effect` rolls both back and propagates (the bus retries the delivery).
asio::awaitable<bool> process_once(sql::Database& database, std::string consumer,
                                   std::string event_id,
                                   std::function<asio::awaitable<void>(sql::Session&)> effect);

}  // namespace aether::platform::bus
