// The embedded broker on SQLite and PostgreSQL: routing, retries, dead letters, restarts, stop.
#include "platform/bus/embedded_bus.h"

#include <algorithm>
#include <boost/asio/detached.hpp>
#include <boost/json/serialize.hpp>
#include <map>
#include <mutex>
#include <stdexcept>

#include "platform/bus/outbox.h"
#include "platform/bus/test_support.h"

namespace aether::platform::bus {
namespace {

using std::chrono::milliseconds;
using testing::Backend;
using testing::Background;
namespace json = boost::json;

// What a handler saw, shared with the test thread.
class Recorder {
  public:
    void add(const std::string& queue, const Delivery& delivery) {
        std::lock_guard lock(mutex_);
        seen_[queue].push_back(delivery);
    }
    std::vector<Delivery> of(const std::string& queue) const {
        std::lock_guard lock(mutex_);
        auto found = seen_.find(queue);
        return found == seen_.end() ? std::vector<Delivery>{} : found->second;
    }
    std::size_t count(const std::string& queue) const { return of(queue).size(); }

  private:
    mutable std::mutex mutex_;
    std::map<std::string, std::vector<Delivery>> seen_;
};

// A gate handlers wait on until the test opens it.
class Gate {
  public:
    asio::awaitable<void> wait() {
        ++waiting_;
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (!open_.load()) {
            timer.expires_after(milliseconds(1));
            co_await timer.async_wait(asio::use_awaitable);
        }
        --waiting_;
    }
    void open() { open_.store(true); }
    int waiting() const { return waiting_.load(); }

  private:
    std::atomic<bool> open_{false};
    std::atomic<int> waiting_{0};
};

class EmbeddedBusTest : public ::testing::TestWithParam<Backend>, protected testing::BusTestBase {
  protected:
    void SetUp() override {
        db_ = open_clean(GetParam());
        ASSERT_TRUE(db_);
        run([&]() -> asio::awaitable<void> {
            co_await migrate_embedded_bus(*db_);
            co_await migrate_embedded_bus(*db_);  // idempotent
        }());
    }

    std::unique_ptr<Bus> make_bus(milliseconds poll = milliseconds(30000)) {
        EmbeddedBusOptions options;
        options.poll_interval = poll;
        return make_embedded_bus(db_, io_.get_executor(), options);
    }

    Subscription recording(std::string queue, std::vector<std::string> bindings) {
        Subscription subscription;
        subscription.queue = queue;
        subscription.bindings = std::move(bindings);
        subscription.retry_delay = milliseconds(10);
        subscription.max_retry_delay = milliseconds(40);
        subscription.handler = [this, queue](const Delivery& delivery) -> asio::awaitable<void> {
            recorder_.add(queue, delivery);
            co_return;
        };
        return subscription;
    }

    static Event event(std::string type, int n = 0) {
        json::object data;
        data["n"] = n;
        return make_event("test", std::move(type), data);
    }

    asio::awaitable<std::int64_t> count(std::string table) {
        auto rows = co_await db_->query("SELECT count(*) AS n FROM " + table);
        co_return rows[0].get_int("n");
    }

    // Polls the row count of `table` until it is `expected` (10 s at most).
    asio::awaitable<bool> rows_become(std::string table, std::int64_t expected) {
        for (int i = 0; i < 2000; ++i) {
            if (co_await count(table) == expected) co_return true;
            co_await sleep_for(milliseconds(5));
        }
        co_return false;
    }

    std::shared_ptr<sql::Database> db_;
    Recorder recorder_;
};

TEST_P(EmbeddedBusTest, PublishesABatchInOneTransactionInOrder) {
    auto bus = make_bus();
    bus->subscribe(recording("analytics.events", {"#"}));
    std::vector<std::string> sent;
    run([&]() -> asio::awaitable<void> {
        co_await bus->start();
        std::vector<Event> events;
        for (int i = 0; i < 50; ++i) {
            events.push_back(event(i % 2 == 0 ? "task.created" : "user.registered", i));
            sent.push_back(events.back().id);
        }
        auto outcomes = co_await bus->publish_batch(std::move(events));
        EXPECT_EQ(outcomes, std::vector<std::string>(50));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("analytics.events") == 50; }));
        co_await bus->stop();
    }());
    std::vector<std::string> received;
    for (const auto& delivery : recorder_.of("analytics.events")) {
        received.push_back(delivery.event.id);
    }
    // prefetch lets handlers overlap, but they start in queue order.
    EXPECT_EQ(received, sent);
}

TEST_P(EmbeddedBusTest, ATransientQueueGoesWithItsSubscriberAndHasNoRetries) {
    auto service = make_bus();
    service->subscribe(recording("analytics.events", {"#"}));
    auto tail = make_bus(milliseconds(20));
    int failures = 0;
    auto subscription = recording("tail.1", {"task.*"});
    subscription.transient = true;
    subscription.handler = [&failures, this](const Delivery& delivery) -> asio::awaitable<void> {
        recorder_.add("tail.1", delivery);
        ++failures;
        throw std::runtime_error("a tail that fails drops the event");
    };
    tail->subscribe(std::move(subscription));
    run([&]() -> asio::awaitable<void> {
        co_await service->start();
        co_await tail->start();
        co_await service->publish(event("task.created"));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("tail.1") == 1; }));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("analytics.events") == 1; }));
        co_await tail->stop();
        EXPECT_EQ(co_await count("bus_bindings WHERE queue = 'tail.1'"), 0);
        co_await service->publish(event("task.updated"));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("analytics.events") == 2; }));
        // Nothing was copied for the departed tail, and nothing of it was dead-lettered.
        EXPECT_EQ(co_await count("bus_messages WHERE queue = 'tail.1'"), 0);
        EXPECT_EQ(co_await count("bus_dead_letters"), 0);
        co_await service->stop();
    }());
    EXPECT_EQ(failures, 1);
}

TEST_P(EmbeddedBusTest, DeliversToTheQueuesWhoseBindingsMatch) {
    auto bus = make_bus();
    EXPECT_EQ(bus->driver(), "embedded");
    bus->subscribe(recording("tasks.events", {"task.*"}));
    bus->subscribe(recording("security.events", {"user.registered", "auth.login.#"}));
    bus->subscribe(recording("analytics.events", {"#"}));
    EXPECT_FALSE(bus->healthy()) << "not started";
    run([&]() -> asio::awaitable<void> {
        co_await bus->start();
        EXPECT_TRUE(bus->healthy());
        auto created = event("task.created");
        co_await bus->publish(created);
        co_await bus->publish(event("user.registered"));
        co_await bus->publish(event("auth.login.failed"));
        co_await bus->publish(event("ai.request"));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("analytics.events") == 4; }));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("security.events") == 2; }));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("tasks.events") == 1; }));
        auto task = recorder_.of("tasks.events")[0];
        EXPECT_EQ(task.event.id, created.id);
        EXPECT_EQ(task.event.data, created.data);
        EXPECT_EQ(task.attempt, 0);
        std::vector<std::string> types;
        for (const auto& delivery : recorder_.of("security.events")) {
            types.push_back(delivery.event.type);
        }
        std::sort(types.begin(), types.end());
        EXPECT_EQ(types, (std::vector<std::string>{"auth.login.failed", "user.registered"}));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("analytics.events") == 4; }));
        co_await bus->stop();
        EXPECT_FALSE(bus->healthy());
        EXPECT_EQ(co_await count("bus_messages"), 0) << "every delivery is acknowledged";
    }());
    EXPECT_EQ(recorder_.count("tasks.events"), 1u);
    EXPECT_EQ(recorder_.count("security.events"), 2u);
}

TEST_P(EmbeddedBusTest, AnEventNoQueueMatchesIsDropped) {
    auto bus = make_bus();
    bus->subscribe(recording("tasks.events", {"task.*"}));
    run([&]() -> asio::awaitable<void> {
        co_await bus->start();
        co_await bus->publish(event("user.registered"));
        EXPECT_EQ(co_await count("bus_messages"), 0);
        co_await bus->stop();
    }());
    EXPECT_EQ(recorder_.count("tasks.events"), 0u);
}

TEST_P(EmbeddedBusTest, SubscriptionsAreCheckedAndFixedAtStart) {
    auto bus = make_bus();
    auto no_handler = recording("q", {"#"});
    no_handler.handler = nullptr;
    EXPECT_THROW(bus->subscribe(no_handler), std::invalid_argument);
    auto no_prefetch = recording("q", {"#"});
    no_prefetch.prefetch = 0;
    EXPECT_THROW(bus->subscribe(no_prefetch), std::invalid_argument);
    bus->subscribe(recording("q", {"#"}));
    EXPECT_THROW(bus->subscribe(recording("q", {"x"})), std::logic_error);
    run([&]() -> asio::awaitable<void> {
        co_await bus->start();
        co_await bus->stop();
    }());
    EXPECT_THROW(bus->subscribe(recording("r", {"#"})), std::logic_error);
}

TEST_P(EmbeddedBusTest, PublishBeforeStartIsRoutedToLocalSubscriptions) {
    auto bus = make_bus();
    bus->subscribe(recording("tasks.events", {"task.*"}));
    run([&]() -> asio::awaitable<void> {
        co_await bus->publish(event("task.created"));
        EXPECT_EQ(co_await count("bus_messages"), 1);
        co_await bus->start();
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("tasks.events") == 1; }));
        co_await bus->stop();
    }());
}

TEST_P(EmbeddedBusTest, RetriesWithGrowingDelayAndCountsAttempts) {
    auto bus = make_bus();
    std::vector<std::chrono::steady_clock::time_point> times;
    std::vector<int> attempts;
    std::mutex mutex;
    auto subscription = recording("q", {"#"});
    subscription.handler = [&](const Delivery& delivery) -> asio::awaitable<void> {
        std::lock_guard lock(mutex);
        times.push_back(std::chrono::steady_clock::now());
        attempts.push_back(delivery.attempt);
        if (delivery.attempt < 2) throw std::runtime_error("not yet");
        co_return;
    };
    bus->subscribe(subscription);
    run([&]() -> asio::awaitable<void> {
        co_await bus->start();
        co_await bus->publish(event("x"));
        EXPECT_TRUE(co_await eventually([&] {
            std::lock_guard lock(mutex);
            return attempts.size() == 3;
        }));
        // The third attempt succeeded: the message is gone and was never dead-lettered.
        EXPECT_TRUE(co_await rows_become("bus_messages", 0));
        co_await bus->stop();
        EXPECT_EQ(co_await count("bus_dead_letters"), 0);
    }());
    ASSERT_EQ(attempts, (std::vector<int>{0, 1, 2}));
    // retry_delay 10 ms, then 20 ms (a little slack for the clock's millisecond rounding).
    EXPECT_GE(times[1] - times[0], milliseconds(9));
    EXPECT_GE(times[2] - times[1], milliseconds(19));
}

TEST_P(EmbeddedBusTest, APoisonedMessageIsDeadLetteredWhileLaterOnesFlow) {
    auto bus = make_bus();
    std::atomic<int> poison_attempts{0};
    auto subscription = recording("analytics.events", {"#"});
    subscription.prefetch = 1;  // the worst case: one delivery at a time
    subscription.max_attempts = 3;
    subscription.handler = [&](const Delivery& delivery) -> asio::awaitable<void> {
        if (delivery.event.type == "poison") {
            ++poison_attempts;
            throw std::runtime_error("cannot handle attempt " + std::to_string(delivery.attempt));
        }
        recorder_.add("analytics.events", delivery);
        co_return;
    };
    bus->subscribe(subscription);
    auto poison = event("poison");
    run([&]() -> asio::awaitable<void> {
        co_await bus->start();
        co_await bus->publish(poison);
        for (int i = 0; i < 5; ++i) co_await bus->publish(event("good", i));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("analytics.events") == 5; }));
        EXPECT_TRUE(co_await rows_become("bus_dead_letters", 1));
        EXPECT_TRUE(co_await rows_become("bus_messages", 0));
        // Later messages still flow after the dead-lettering.
        co_await bus->publish(event("good", 5));
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("analytics.events") == 6; }));
        co_await bus->stop();
        auto dead = co_await dead_letters(*db_, "analytics.events");
        CO_ASSERT_EQ(dead.size(), 1u);
        EXPECT_EQ(dead[0].queue, "analytics.events.dead");
        EXPECT_EQ(dead[0].event, to_json(poison));
        EXPECT_EQ(dead[0].attempts, 3);
        EXPECT_EQ(dead[0].last_error, "cannot handle attempt 2");
        EXPECT_EQ(dead[0].dead_at.size(), 24u);
        EXPECT_TRUE((co_await dead_letters(*db_, "other.events")).empty());
    }());
    EXPECT_EQ(poison_attempts.load(), 3);
    std::vector<int> order;
    for (const auto& delivery : recorder_.of("analytics.events")) {
        order.push_back(static_cast<int>(delivery.event.data.at("n").as_int64()));
    }
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5})) << "prefetch 1 keeps the queue order";
}

TEST_P(EmbeddedBusTest, HandlersRunConcurrentlyUpToThePrefetch) {
    auto bus = make_bus();
    Gate gate;
    std::atomic<int> running{0};
    std::atomic<int> most{0};
    std::atomic<int> done{0};
    auto subscription = recording("q", {"#"});
    subscription.prefetch = 3;
    subscription.handler = [&](const Delivery&) -> asio::awaitable<void> {
        int now = ++running;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        co_await gate.wait();
        --running;
        ++done;
    };
    bus->subscribe(subscription);
    run(
        [&]() -> asio::awaitable<void> {
            co_await bus->start();
            for (int i = 0; i < 7; ++i) co_await bus->publish(event("x", i));
            EXPECT_TRUE(co_await eventually([&] { return gate.waiting() == 3; }));
            co_await sleep_for(milliseconds(30));
            EXPECT_EQ(running.load(), 3) << "no fourth delivery while three are in flight";
            gate.open();
            EXPECT_TRUE(co_await eventually([&] { return done.load() == 7; }));
            co_await bus->stop();
        }(),
        2);
    EXPECT_EQ(most.load(), 3);
}

TEST_P(EmbeddedBusTest, APublishWakesTheConsumerBeforeThePoll) {
    auto bus = make_bus(milliseconds(60000));
    bus->subscribe(recording("q", {"#"}));
    run(
        [&]() -> asio::awaitable<void> {
            co_await bus->start();
            co_await sleep_for(milliseconds(20));  // the consumer is asleep by now
            for (int i = 1; i <= 3; ++i) {
                co_await bus->publish(event("x", i));
                EXPECT_TRUE(co_await eventually(
                    [&] { return recorder_.count("q") == std::size_t(i); }, milliseconds(5000)));
            }
            co_await bus->stop();
        }(),
        2);
}

TEST_P(EmbeddedBusTest, MessagesInFlightAtACrashAreRedeliveredByTheNextBus) {
    // The first bus takes the message and never finishes it, as if the process died.
    auto crashed = make_bus();
    Gate stuck;
    auto first = recording("q", {"#"});
    first.prefetch = 1;
    first.handler = [&](const Delivery&) -> asio::awaitable<void> { co_await stuck.wait(); };
    crashed->subscribe(first);
    auto pending = event("task.created");
    run([&]() -> asio::awaitable<void> {
        co_await crashed->start();
        co_await crashed->publish(pending);
        co_await crashed->publish(event("task.created", 2));
        EXPECT_TRUE(co_await eventually([&] { return stuck.waiting() == 1; }));

        // The restarted process: a new bus on the same database.
        auto restarted = make_bus();
        restarted->subscribe(recording("q", {"#"}));
        co_await restarted->start();
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("q") == 2; }));
        EXPECT_TRUE(co_await rows_become("bus_messages", 0));
        co_await restarted->stop();

        stuck.open();
        co_await crashed->stop();
    }());
    auto delivered = recorder_.of("q");
    ASSERT_EQ(delivered.size(), 2u);
    EXPECT_EQ(delivered[0].event.id, pending.id);
    EXPECT_EQ(delivered[0].attempt, 0) << "a crash is not a failed attempt";
}

TEST_P(EmbeddedBusTest, MessagesSurviveARestartOfTheBus) {
    run([&]() -> asio::awaitable<void> {
        auto before = make_bus();
        before->subscribe(recording("q", {"task.*"}));
        co_await before->start();
        co_await before->stop();
        // Published while nobody consumes: the binding is durable, so the queue keeps it.
        auto stopped_event = event("task.updated");
        co_await before->publish(stopped_event);
        before.reset();
        EXPECT_EQ(co_await count("bus_messages"), 1);

        auto after = make_bus();
        after->subscribe(recording("q", {"task.*"}));
        co_await after->start();
        EXPECT_TRUE(co_await eventually([&] { return recorder_.count("q") == 1; }));
        co_await after->stop();
        EXPECT_EQ(recorder_.of("q")[0].event.id, stopped_event.id);
    }());
}

TEST_P(EmbeddedBusTest, StopWaitsForHandlersInFlightAndAcknowledgesThem) {
    auto bus = make_bus();
    Gate gate;
    std::atomic<int> finished{0};
    auto subscription = recording("q", {"#"});
    subscription.prefetch = 2;
    subscription.handler = [&](const Delivery&) -> asio::awaitable<void> {
        co_await gate.wait();
        ++finished;
    };
    bus->subscribe(subscription);
    run(
        [&]() -> asio::awaitable<void> {
            co_await bus->start();
            co_await bus->publish(event("x", 1));
            co_await bus->publish(event("x", 2));
            co_await bus->publish(event("x", 3));
            EXPECT_TRUE(co_await eventually([&] { return gate.waiting() == 2; }));
            std::atomic<bool> stopped{false};
            auto executor = co_await asio::this_coro::executor;
            asio::co_spawn(
                executor,
                [&]() -> asio::awaitable<void> {
                    co_await bus->stop();
                    stopped.store(true);
                },
                asio::detached);
            co_await sleep_for(milliseconds(50));
            EXPECT_FALSE(stopped.load()) << "stop() returned with handlers in flight";
            gate.open();
            EXPECT_TRUE(co_await eventually([&] { return stopped.load(); }));
            EXPECT_EQ(finished.load(), 2) << "the third message is not fetched after stop()";
            EXPECT_EQ(co_await count("bus_messages"), 1);
        }(),
        2);
}

TEST_P(EmbeddedBusTest, TheOutboxRelayFeedsTheEmbeddedBus) {
    auto bus = make_bus();
    auto subscription = recording("analytics.events", {"task.*"});
    subscription.prefetch = 1;  // so the deliveries' order is the publishing order
    bus->subscribe(subscription);
    RelayOptions options;
    options.poll_interval = milliseconds(30000);
    OutboxRelay relay(db_, *bus, options);
    run(
        [&]() -> asio::awaitable<void> {
            co_await migrate_outbox(*db_);
            co_await bus->start();
            Background loop(co_await asio::this_coro::executor, relay.run());
            std::vector<std::string> ids;
            for (int i = 0; i < 5; ++i) {
                auto created = event("task.created", i);
                ids.push_back(created.id);
                co_await db_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
                    co_await append_to_outbox(session, created);
                });
                relay.notify();
            }
            EXPECT_TRUE(
                co_await eventually([&] { return recorder_.count("analytics.events") == 5; }));
            loop.cancel();
            EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
            co_await bus->stop();
            std::vector<std::string> delivered;
            for (const auto& delivery : recorder_.of("analytics.events")) {
                delivered.push_back(delivery.event.id);
            }
            EXPECT_EQ(delivered, ids);
        }(),
        2);
}

INSTANTIATE_TEST_SUITE_P(Drivers, EmbeddedBusTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::backend_name);

}  // namespace
}  // namespace aether::platform::bus
