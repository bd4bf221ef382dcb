// The process's bus: the driver chosen by configuration, the relays of the modules' outboxes, and
// their order at start and drain (relays flush before the connection closes).
#include "platform/runtime/process_bus.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <stdexcept>
#include <utility>

#include "platform/bus/bus.h"
#include "platform/bus/embedded_bus.h"
#include "platform/bus/outbox.h"
#include "platform/bus/rabbitmq_bus.h"
#include "platform/runtime/module.h"
#include "platform/sql/database.h"
#include "platform/telemetry/log.h"
#include "platform/telemetry/metrics.h"

namespace aether::platform::runtime {

namespace asio = boost::asio;

struct ProcessBus::State {
    ProcessBusSettings settings;
    asio::io_context& io;
    BlockingPool& pool;
    std::function<void(ReadinessCheck)> add_readiness_check;
    std::shared_ptr<sql::Database> broker_database;
    std::unique_ptr<bus::Bus> bus;
    struct Relay {
        std::shared_ptr<sql::Database> database;
        std::shared_ptr<bus::OutboxRelay> relay;
    };
    std::vector<Relay> relays;
    bool started = false;

    State(ProcessBusSettings settings_in, asio::io_context& io_in, BlockingPool& pool_in,
          std::function<void(ReadinessCheck)> add_check)
        : settings(std::move(settings_in)),
          io(io_in),
          pool(pool_in),
          add_readiness_check(std::move(add_check)) {}

    asio::awaitable<void> create() {
        if (!settings.url.empty()) {
            bus::RabbitMqOptions options;
            options.url = settings.url;
            auto made = bus::make_rabbitmq_bus(options, io.get_executor());
            // The driver's message never contains the password.
            if (!made) throw std::runtime_error("bus.url: " + made.error());
            bus = std::move(*made);
        } else {
            sql::PoolOptions options;
            options.max_connections = settings.database_connections;
            options.query_timeout = settings.query_timeout;
            auto opened = sql::open(settings.embedded_database, io.get_executor(), pool, options);
            if (!opened) throw std::runtime_error("bus.database: " + opened.error());
            broker_database = *opened;
            co_await bus::migrate_embedded_bus(*broker_database);
            bus = bus::make_embedded_bus(broker_database, io.get_executor());
        }
        auto* created = bus.get();
        add_readiness_check(
            {"bus", [created]() -> asio::awaitable<bool> { co_return created->healthy(); }});
        telemetry::log_info("event bus", {{"driver", std::string(bus->driver())}});
    }
};

ProcessBus::ProcessBus(ProcessBusSettings settings, asio::io_context& io, BlockingPool& pool,
                       std::function<void(ReadinessCheck)> add_readiness_check)
    : state_(
          std::make_shared<State>(std::move(settings), io, pool, std::move(add_readiness_check))) {}

ProcessBus::~ProcessBus() {
    if (state_->broker_database) state_->broker_database->close();
}

asio::awaitable<bus::Bus*> ProcessBus::bus() {
    // Modules start one after another on one coroutine, so creation is never concurrent.
    if (!state_->bus) co_await state_->create();
    co_return state_->bus.get();
}

bool ProcessBus::in_use() const {
    return state_->bus != nullptr;
}

bus::Subscription ProcessBus::subscription(std::string queue) const {
    bus::Subscription subscription;
    subscription.queue = std::move(queue);
    subscription.max_attempts = state_->settings.max_attempts;
    subscription.retry_delay = state_->settings.retry_delay;
    subscription.prefetch = state_->settings.prefetch;
    return subscription;
}

asio::awaitable<std::function<void()>> ProcessBus::publish_outbox(
    std::shared_ptr<sql::Database> database) {
    auto* bus = co_await this->bus();
    for (const auto& existing : state_->relays) {
        if (existing.database == database) {
            auto relay = existing.relay;
            co_return [relay] { relay->notify(); };
        }
    }
    auto relay = std::make_shared<bus::OutboxRelay>(database, *bus);
    state_->relays.push_back({database, relay});
    if (state_->started) asio::co_spawn(state_->io, relay->run(), asio::detached);
    co_return [relay] { relay->notify(); };
}

void ProcessBus::start() {
    auto& state = *state_;
    if (state.started || !state.bus) return;
    state.started = true;
    auto* bus = state.bus.get();
    asio::co_spawn(state.io, bus->start(), [](std::exception_ptr failure) {
        if (!failure) return;
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& error) {
            telemetry::log_error("event bus stopped", {{"error", error.what()}});
        }
    });
    for (auto& entry : state.relays) {
        asio::co_spawn(state.io, entry.relay->run(), asio::detached);
    }
}

asio::awaitable<void> ProcessBus::drain(std::chrono::steady_clock::time_point deadline) {
    auto state = state_;
    if (!state->bus) co_return;
    for (auto& entry : state->relays) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        auto pending = co_await entry.relay->flush(left);
        if (pending > 0) {
            telemetry::log_warn("outbox not empty at exit; the next start publishes it",
                                {{"pending", pending}});
        }
    }
    co_await state->bus->stop();
}

}  // namespace aether::platform::runtime
