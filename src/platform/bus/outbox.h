// The transactional outbox: a module writes its state change and the event about it in one
// transaction of its own database; the relay publishes pending rows in order, with confirms, and
// marks them sent. A broker outage delays events; it never loses them, and an event exists only
// if its transaction committed.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "platform/bus/bus.h"

namespace aether::platform::sql {
class Database;
class Session;
}  // namespace aether::platform::sql

namespace aether::platform::bus {

// Creates or upgrades the outbox table in a module's database (migrations recorded under the
// module name "outbox", so they never collide with the module's own). Run from Module::migrate.
asio::awaitable<void> migrate_outbox(sql::Database& database);

// Appends `event` to the outbox inside the caller's transaction (deferred: the insert goes with
// the transaction's next query or its commit, in the same round trip).
asio::awaitable<void> append_to_outbox(sql::Session& session, const Event& event);

struct RelayOptions {
    // Rows read and published per batch, all in flight together (a PostgreSQL round publishes
    // up to four batches, reading the next while the broker confirms one): 500 publish with
    // confirms at 0.8-0.9x amqplib's rate with everything in flight (bench/bus), 100 at two
    // thirds of that.
    std::size_t batch = 500;
    // How often the table is polled when nobody calls notify() (another process may append).
    std::chrono::milliseconds poll_interval{500};
    // After a round that did not fill a batch, the next starts this long after it started at
    // the earliest: events committed meanwhile go out together, in one round instead of a
    // round each (a round costs its reads, marks and commit whatever it publishes).
    std::chrono::milliseconds linger{20};
    // Delay after a failed publish, doubled per consecutive failure up to max_backoff.
    std::chrono::milliseconds backoff{200};
    std::chrono::milliseconds max_backoff{10000};
    // Sent rows older than this are deleted.
    std::chrono::hours keep_sent{24};
    // PostgreSQL: rounds read the rows above the highest seq up to which every row is sent (or
    // was never committed), instead of walking the pending index past every row sent since the
    // last VACUUM. A seq missing below a claimed one (its transaction still running, or rolled
    // back) holds that point back for at most gap_timeout; every full_claim_interval a round
    // reads from the start, which also finds the rows of transactions slower than that.
    std::chrono::milliseconds gap_timeout{2000};
    std::chrono::milliseconds full_claim_interval{10000};
};

// Publishes a database's pending outbox rows, oldest first, in batches with confirms; a row is
// marked sent only after the broker confirmed it, so a crash between the two re-publishes it
// (consumers are idempotent). Of several relays (replicas) on one PostgreSQL database, one
// publishes at a time (a round holds a transaction-scoped advisory lock on the outbox).
class OutboxRelay {
  public:
    OutboxRelay(std::shared_ptr<sql::Database> database, Bus& bus, RelayOptions options = {});
    ~OutboxRelay();
    OutboxRelay(const OutboxRelay&) = delete;
    OutboxRelay& operator=(const OutboxRelay&) = delete;

    // The background loop; returns when cancelled.
    asio::awaitable<void> run();
    // Wakes the loop (after a commit that appended) instead of leaving it to the next poll; the
    // round starts at once, or when the linger after the previous round has passed.
    void notify();
    // Publishes what is pending now; used while draining. Returns the rows still pending.
    asio::awaitable<std::int64_t> flush(std::chrono::milliseconds deadline);

    struct Stats {
        std::uint64_t published = 0;
        std::uint64_t publish_failures = 0;
    };
    Stats stats() const;

  private:
    struct State;
    std::shared_ptr<State> state_;
};

}  // namespace aether::platform::bus
