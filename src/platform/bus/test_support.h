// Test helpers shared by the bus tests: a database fixture on either driver with the bus tables
// reset, waiting for a condition, background coroutines, and a scriptable broker double.
#pragma once

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "platform/bus/bus.h"
#include "platform/sql/test_support.h"

namespace aether::platform::bus::testing {

using sql::testing::Backend;
using sql::testing::backend_name;

class BusTestBase : public sql::testing::SqlTestBase {
  protected:
    // A database without the bus tables: a fresh SQLite file, or the shared PostgreSQL test
    // database with what earlier cases created dropped.
    std::shared_ptr<sql::Database> open_clean(Backend backend, sql::PoolOptions options = {}) {
        auto database = open_database(backend, options);
        if (!database || backend != Backend::kPostgres) return database;
        run([&]() -> asio::awaitable<void> {
            co_await database->query(
                "DROP TABLE IF EXISTS outbox, processed_events, bus_bindings, bus_messages, "
                "bus_dead_letters, effects, schema_migrations");
        }());
        return database;
    }

    // Polls `condition` every 2 ms until it holds or `timeout` passes; returns the last value.
    static asio::awaitable<bool> eventually(
        std::function<bool()> condition,
        std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        auto until = std::chrono::steady_clock::now() + timeout;
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (!condition()) {
            if (std::chrono::steady_clock::now() >= until) co_return condition();
            timer.expires_after(std::chrono::milliseconds(2));
            co_await timer.async_wait(asio::use_awaitable);
        }
        co_return true;
    }
};

// A coroutine running beside a test on its own strand, cancelled like the runtime cancels a
// background task.
class Background {
  public:
    Background(const asio::any_io_executor& executor, asio::awaitable<void> task)
        : strand_(asio::make_strand(executor)) {
        asio::co_spawn(strand_, std::move(task),
                       asio::bind_cancellation_slot(signal_.slot(), [this](std::exception_ptr e) {
                           failure_ = e;
                           done_.store(true);
                       }));
    }
    Background(const Background&) = delete;
    Background& operator=(const Background&) = delete;

    void cancel() {
        asio::post(strand_, [this] { signal_.emit(asio::cancellation_type::terminal); });
    }
    bool done() const { return done_.load(); }
    // Set once done(): what the task ended with (null when it returned normally).
    std::exception_ptr failure() const { return failure_; }

  private:
    asio::strand<asio::any_io_executor> strand_;
    asio::cancellation_signal signal_;
    std::atomic<bool> done_{false};
    std::exception_ptr failure_;
};

// The broker boundary for relay tests: records what is published, and fails the first
// `failures` publishes with PublishError. Thread-safe.
class FakeBus final : public Bus {
  public:
    explicit FakeBus(int failures = 0, std::chrono::milliseconds delay = {})
        : failures_(failures), delay_(delay) {}

    std::string_view driver() const override { return "fake"; }
    asio::awaitable<void> publish(Event event) override {
        if (delay_.count() > 0) {
            asio::steady_timer timer(co_await asio::this_coro::executor, delay_);
            co_await timer.async_wait(asio::use_awaitable);
        }
        std::lock_guard lock(mutex_);
        ++attempts_;
        if (successes_before_failures_ > 0) {
            --successes_before_failures_;
        } else if (failures_ > 0) {
            --failures_;
            throw PublishError("broker unavailable");
        }
        events_.push_back(std::move(event));
    }
    asio::awaitable<std::vector<std::string>> publish_batch(std::vector<Event> events) override {
        {
            std::lock_guard lock(mutex_);
            ++batches_;
        }
        co_return co_await Bus::publish_batch(std::move(events));
    }
    void subscribe(Subscription) override {}
    asio::awaitable<void> start() override { co_return; }
    asio::awaitable<void> stop() override { co_return; }
    bool healthy() const override { return true; }

    std::vector<Event> events() const {
        std::lock_guard lock(mutex_);
        return events_;
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return events_.size();
    }
    int attempts() const {
        std::lock_guard lock(mutex_);
        return attempts_;
    }
    // Calls of publish_batch: a relay round's batches.
    int batches() const {
        std::lock_guard lock(mutex_);
        return batches_;
    }
    void fail_next(int failures) {
        std::lock_guard lock(mutex_);
        failures_ = failures;
    }
    // The next `successes` publishes succeed, then `failures` fail.
    void fail_after(int successes, int failures) {
        std::lock_guard lock(mutex_);
        successes_before_failures_ = successes;
        failures_ = failures;
    }

  private:
    mutable std::mutex mutex_;
    int failures_;
    int successes_before_failures_ = 0;
    std::chrono::milliseconds delay_;
    int attempts_ = 0;
    int batches_ = 0;
    std::vector<Event> events_;
};

}  // namespace aether::platform::bus::testing
