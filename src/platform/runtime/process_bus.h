// The event bus of one process and the outbox relays that feed it: RabbitMQ when `bus.url` is
// set, otherwise the embedded broker in its own database (all-in-one). Created on first use, so a
// process whose modules neither publish nor consume opens nothing.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace aether::platform {
namespace bus {
class Bus;
class OutboxRelay;
struct Subscription;
}  // namespace bus
namespace sql {
class Database;
}
}  // namespace aether::platform

namespace aether::platform::runtime {

class BlockingPool;
struct ReadinessCheck;

struct ProcessBusSettings {
    // amqp://user:password@host:port/vhost, or empty for the embedded broker.
    std::string url;
    // The embedded broker's database URL (sqlite:PATH or postgresql://…).
    std::string embedded_database;
    int database_connections = 8;
    std::chrono::milliseconds query_timeout{10000};
    // Defaults of every subscription made through subscription().
    int max_attempts = 5;
    std::chrono::milliseconds retry_delay{1000};
    int prefetch = 16;
};

class ProcessBus {
  public:
    ProcessBus(ProcessBusSettings settings, boost::asio::io_context& io, BlockingPool& pool,
               std::function<void(ReadinessCheck)> add_readiness_check);
    ~ProcessBus();
    ProcessBus(const ProcessBus&) = delete;
    ProcessBus& operator=(const ProcessBus&) = delete;

    // The bus, connected lazily on first use; throws when it cannot be created (bad URL, broker
    // database that cannot be opened).
    boost::asio::awaitable<bus::Bus*> bus();
    // A subscription for `queue` carrying the configured attempts, delay and prefetch.
    bus::Subscription subscription(std::string queue) const;
    // Relays `database`'s outbox to the bus (once per database). Returns the function to call
    // after a commit that appended, so the event goes out now rather than at the next poll.
    boost::asio::awaitable<std::function<void()>> publish_outbox(
        std::shared_ptr<sql::Database> database);

    // After the modules started: runs the consumers and the relays.
    void start();
    // While draining, after the modules stopped: publishes what is pending (up to `deadline`),
    // then stops the consumers (handlers in flight finish) and the connection.
    boost::asio::awaitable<void> drain(std::chrono::steady_clock::time_point deadline);
    // True once bus() was called.
    bool in_use() const;

  private:
    struct State;
    std::shared_ptr<State> state_;
};

}  // namespace aether::platform::runtime
