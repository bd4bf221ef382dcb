// The RabbitMQ bus against a real broker that the suite starts (scripts/rabbitmq-test-server, a
// free port, a temp dir): the envelope on the wire, routing, retries with growing delay, dead
// letters, a broker stopped and started again, and configuration errors.
#include "platform/bus/rabbitmq_bus.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "platform/bus/rabbitmq_connection.h"

namespace aether::platform::bus {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string random_hex() {
    static std::mt19937_64 generator{std::random_device{}()};
    char buffer[17];
    std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(generator()));
    return buffer;
}

// The suite's broker, started at first use and removed when the program ends.
class Broker {
  public:
    static Broker& get() {
        static Broker broker;
        return broker;
    }

    // Empty when no broker could be started.
    const std::string& url() {
        if (!tried_) {
            tried_ = true;
            auto started = Clock::now();
            if (start()) {
                std::cerr
                    << "[broker] started in "
                    << std::chrono::duration_cast<milliseconds>(Clock::now() - started).count()
                    << " ms at " << url_ << "\n";
            }
        }
        return url_;
    }

    // Stops the broker gracefully, keeping its queues and persistent messages.
    bool stop_keep() { return script("stop-keep").has_value(); }
    // Starts it again on the same port.
    bool start() {
        if (!script("start")) return false;
        auto url = script("url");
        if (!url) return false;
        url_ = *url;
        return true;
    }
    void remove() {
        if (tried_) script("stop");
    }
    // The broker's Erlang VM; 0 when unknown.
    pid_t pid() const {
        std::ifstream file(dir_ / "rabbitmq.pid");
        pid_t pid = 0;
        file >> pid;
        return pid;
    }

  private:
    Broker()
        : dir_(std::filesystem::temp_directory_path() / ("aether-rabbitmq-test-" + random_hex())) {}

    std::optional<std::string> script(std::string_view verb) {
        std::string command = std::string(AETHER_RABBITMQ_TEST_SERVER) + " " + std::string(verb) +
                              " '" + dir_.string() + "'";
        FILE* pipe = ::popen(command.c_str(), "r");
        if (pipe == nullptr) return std::nullopt;
        std::string output;
        char buffer[256];
        while (auto n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
        if (::pclose(pipe) != 0) return std::nullopt;
        while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) {
            output.pop_back();
        }
        return output;
    }

    std::filesystem::path dir_;
    bool tried_ = false;
    std::string url_;
};

class BrokerCleanup : public ::testing::Environment {
  public:
    void TearDown() override { Broker::get().remove(); }
};
const auto* const kBrokerCleanup = ::testing::AddGlobalTestEnvironment(new BrokerCleanup);

// Runs a coroutine on io until it finishes (or fails the test after `limit`).
void run(asio::io_context& io, asio::awaitable<void> task, std::chrono::seconds limit = 60s) {
    std::exception_ptr failure;
    bool finished = false;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr error) {
        failure = error;
        finished = true;
    });
    auto deadline = Clock::now() + limit;
    while (!finished && Clock::now() < deadline) {
        io.restart();
        io.run_for(20ms);
    }
    ASSERT_TRUE(finished) << "the test coroutine did not finish in " << limit.count() << " s";
    if (failure) std::rethrow_exception(failure);
}

// Polls `predicate` on the coroutine's executor until it holds or `limit` passes.
template <class Predicate>
asio::awaitable<bool> eventually(Predicate predicate, milliseconds limit = 20s) {
    auto deadline = Clock::now() + limit;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!predicate()) {
        if (Clock::now() > deadline) co_return false;
        timer.expires_after(5ms);
        co_await timer.async_wait(asio::use_awaitable);
    }
    co_return true;
}

// A plain rabbitmq-c client, blocking, to see what is on the broker independently of the bus.
class Observer {
  public:
    explicit Observer(const std::string& url) {
        auto endpoint = parse_amqp_url(url);
        if (!endpoint) throw std::runtime_error(endpoint.error());
        auto opened = connection_.open(*endpoint, AmqpConnectOptions{});
        if (!opened) throw std::runtime_error(opened.error());
        check(connection_.open_channel(1));
        check(connection_.select_confirms(1));
    }
    ~Observer() { connection_.close(); }

    // A durable queue bound to the events exchange, declared as the bus declares it.
    void bind(const std::string& queue, const std::string& routing_key) {
        check(connection_.declare_exchange(1, "aether.events", "topic"));
        check(connection_.declare_queue(1, queue));
        check(connection_.bind_queue(1, queue, "aether.events", routing_key));
    }

    // Publishes raw bytes and waits for the broker's confirm.
    void publish(const std::string& routing_key, const std::string& body) {
        AmqpMessage message;
        message.exchange = "aether.events";
        message.routing_key = routing_key;
        message.body = body;
        message.content_type = "application/json";
        check(connection_.publish(1, message));
        for (auto deadline = Clock::now() + 10s; Clock::now() < deadline;) {
            auto event = next(deadline);
            if (event && std::holds_alternative<AmqpConfirm>(*event)) {
                if (!std::get<AmqpConfirm>(*event).ack) throw std::runtime_error("nack");
                return;
            }
        }
        throw std::runtime_error("no confirm");
    }

    // Consumes one message from `queue` (and acknowledges it); nullopt after `limit`.
    std::optional<AmqpMessage> take(const std::string& queue, milliseconds limit = 15s) {
        auto channel = next_channel_++;
        check(connection_.open_channel(channel));
        check(connection_.set_prefetch(channel, 1));
        check(connection_.consume(channel, queue, "observer-" + std::to_string(channel)));
        auto deadline = Clock::now() + limit;
        while (Clock::now() < deadline) {
            auto event = next(deadline);
            if (!event) continue;
            if (auto* delivery = std::get_if<AmqpDelivery>(&*event);
                delivery && delivery->channel == channel) {
                check(connection_.ack(channel, delivery->delivery_tag));
                check(connection_.cancel(channel, "observer-" + std::to_string(channel)));
                return std::move(delivery->message);
            }
        }
        return std::nullopt;
    }

  private:
    static void check(const AmqpConnection::Result& result) {
        if (!result) throw std::runtime_error(result.error());
    }

    std::optional<AmqpEvent> next(Clock::time_point deadline) {
        auto event = connection_.next_event();
        if (!event) throw std::runtime_error(event.error());
        if (!std::holds_alternative<std::monostate>(*event)) return std::move(*event);
        auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
        pollfd fd{connection_.fd(), POLLIN, 0};
        ::poll(&fd, 1, static_cast<int>(std::clamp(left, 0ms, 100ms).count()));
        return std::nullopt;
    }

    AmqpConnection connection_;
    std::uint16_t next_channel_ = 2;
};

boost::json::object data_of(std::string_view key, std::string_view value) {
    boost::json::object data;
    data[key] = value;
    return data;
}

class RabbitMqBusTest : public ::testing::Test {
  protected:
    void SetUp() override {
        url_ = Broker::get().url();
        ASSERT_FALSE(url_.empty())
            << "could not start a RabbitMQ broker with " << AETHER_RABBITMQ_TEST_SERVER;
    }

    std::unique_ptr<Bus> make_bus(RabbitMqOptions options = {}) {
        options.url = url_;
        options.reconnect_backoff_max = 300ms;
        auto bus = make_rabbitmq_bus(std::move(options), io_.get_executor());
        if (!bus) throw std::runtime_error(bus.error());
        return std::move(bus).value();
    }

    asio::io_context io_;
    std::string url_;
};

TEST_F(RabbitMqBusTest, PublishesWithConfirmAndDeliversTheEnvelope) {
    auto prefix = "rt" + random_hex();
    auto type = prefix + ".created";
    auto queue = prefix + ".events";
    Observer observer(url_);
    observer.bind(prefix + ".wire", type);

    std::vector<Delivery> received;
    auto bus = make_bus();
    EXPECT_EQ(bus->driver(), "rabbitmq");
    Subscription subscription;
    subscription.queue = queue;
    subscription.bindings = {prefix + ".*"};
    subscription.handler = [&](const Delivery& delivery) -> asio::awaitable<void> {
        received.push_back(delivery);
        co_return;
    };
    bus->subscribe(std::move(subscription));

    auto event = make_event("tests", type, data_of("title", "write the driver"),
                            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    run(io_, [&]() -> asio::awaitable<void> {
        EXPECT_FALSE(bus->healthy());
        co_await bus->start();
        EXPECT_TRUE(bus->healthy());
        co_await bus->publish(event);
        EXPECT_TRUE(co_await eventually([&] { return received.size() == 1; }));
        co_await bus->stop();
        EXPECT_FALSE(bus->healthy());
    }());

    ASSERT_EQ(received.size(), 1u);
    const Event& got = received[0].event;
    EXPECT_EQ(received[0].attempt, 0);
    EXPECT_EQ(got.id, event.id);
    EXPECT_EQ(got.source, "/aether/tests");
    EXPECT_EQ(got.type, type);
    EXPECT_EQ(got.time, event.time);
    EXPECT_EQ(got.traceparent, event.traceparent);
    EXPECT_EQ(boost::json::serialize(got.data), boost::json::serialize(event.data));

    // What another client sees: a persistent JSON message carrying the CloudEvents envelope.
    auto wire = observer.take(prefix + ".wire");
    ASSERT_TRUE(wire);
    EXPECT_EQ(wire->routing_key, type);
    EXPECT_EQ(wire->content_type, "application/json");
    EXPECT_EQ(wire->message_id, event.id);
    EXPECT_EQ(wire->type, type);
    EXPECT_TRUE(wire->persistent);
    EXPECT_EQ(wire->body, to_json(event));
    auto parsed = parse_event(wire->body);
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_EQ(parsed->id, event.id);
}

TEST_F(RabbitMqBusTest, PublishesStoredEnvelopesByteForByte) {
    auto prefix = "stored" + random_hex();
    auto type = prefix + ".created";
    Observer observer(url_);
    observer.bind(prefix + ".wire", prefix + ".#");
    // Another producer's envelope, with an extension attribute an Event does not hold: sent as
    // stored, it reaches consumers whole.
    const std::string id = "evt_" + random_hex();
    const std::string text =
        R"({"specversion":"1.0","id":")" + id + R"(","source":"/aether/tests","type":")" + type +
        R"(","time":"2026-11-29T05:00:00.000Z","subject":"kept","data":{"n":1}})";
    auto stored = parse_stored_event(text);
    ASSERT_TRUE(stored) << stored.error();
    EXPECT_EQ(stored->id, id);
    EXPECT_EQ(stored->type, type);
    auto too_long = *stored;
    too_long.type = prefix + std::string(300, 'x');
    auto bus = make_bus();
    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        std::vector<StoredEvent> events{too_long, *stored};
        auto outcomes = co_await bus->publish_stored(std::move(events));
        EXPECT_EQ(outcomes.size(), 2u);
        if (outcomes.size() == 2) {
            EXPECT_NE(outcomes[0], "");  // refused alone: a routing key holds 255 bytes
            EXPECT_EQ(outcomes[1], "");
        }
        co_await bus->stop();
    }());
    auto wire = observer.take(prefix + ".wire");
    ASSERT_TRUE(wire);
    EXPECT_EQ(wire->body, text);
    EXPECT_EQ(wire->routing_key, type);
    EXPECT_EQ(wire->message_id, id);
    EXPECT_EQ(wire->type, type);
    EXPECT_EQ(wire->content_type, "application/json");
    EXPECT_TRUE(wire->persistent);
}

TEST_F(RabbitMqBusTest, RoutesOnlyToMatchingBindings) {
    auto p = "route" + random_hex();
    std::vector<std::string> tasks, users, all;
    auto recorder = [](std::vector<std::string>& into) {
        return [&into](const Delivery& delivery) -> asio::awaitable<void> {
            into.push_back(delivery.event.type);
            co_return;
        };
    };
    auto bus = make_bus();
    Subscription a;
    a.queue = p + ".tasks";
    a.bindings = {p + ".task.*", p + ".marker"};
    a.handler = recorder(tasks);
    Subscription b;
    b.queue = p + ".users";
    b.bindings = {p + ".user.registered", p + ".marker"};
    b.handler = recorder(users);
    Subscription c;
    c.queue = p + ".all";
    c.bindings = {p + ".#"};
    c.handler = recorder(all);
    bus->subscribe(std::move(a));
    bus->subscribe(std::move(b));
    bus->subscribe(std::move(c));

    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        for (const char* type : {".task.created", ".user.registered", ".order.placed", ".marker"}) {
            auto event = make_event("tests", p + type, {});
            co_await bus->publish(event);
        }
        // Each queue is FIFO: once the marker arrived, everything routed before it has too.
        EXPECT_TRUE(co_await eventually([&] {
            return !tasks.empty() && tasks.back() == p + ".marker" && !users.empty() &&
                   users.back() == p + ".marker" && all.size() == 4;
        }));
        co_await bus->stop();
    }());

    EXPECT_EQ(tasks, (std::vector<std::string>{p + ".task.created", p + ".marker"}));
    EXPECT_EQ(users, (std::vector<std::string>{p + ".user.registered", p + ".marker"}));
    EXPECT_EQ(all, (std::vector<std::string>{p + ".task.created", p + ".user.registered",
                                             p + ".order.placed", p + ".marker"}));
}

TEST_F(RabbitMqBusTest, PublishesABatchInOrderWithOneOutcomePerEvent) {
    auto p = "batch" + random_hex();
    std::vector<std::string> received;
    auto bus = make_bus();
    Subscription subscription;
    subscription.queue = p + ".all";
    subscription.bindings = {p + ".#"};
    subscription.handler = [&received](const Delivery& delivery) -> asio::awaitable<void> {
        received.push_back(delivery.event.id);
        co_return;
    };
    bus->subscribe(std::move(subscription));
    std::vector<std::string> sent;
    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        std::vector<Event> events;
        for (int i = 0; i < 300; ++i) {
            events.push_back(make_event("tests", p + ".n" + std::to_string(i % 7), {}));
            sent.push_back(events.back().id);
        }
        // A type longer than a routing key may be is refused alone; the rest still go.
        events.insert(events.begin() + 150, make_event("tests", p + std::string(300, 'x'), {}));
        auto outcomes = co_await bus->publish_batch(std::move(events));
        EXPECT_EQ(outcomes.size(), 301u);
        for (std::size_t i = 0; i < outcomes.size(); ++i) {
            if (i == 150) {
                EXPECT_NE(outcomes[i], "");
            } else {
                EXPECT_EQ(outcomes[i], "") << i;
            }
        }
        EXPECT_TRUE(co_await eventually([&] { return received.size() == 300; }));
        co_await bus->stop();
    }());
    EXPECT_EQ(received, sent);
}

TEST_F(RabbitMqBusTest, ATransientQueueGoesWithItsSubscriber) {
    auto p = "transient" + random_hex();
    std::vector<std::string> received;
    Subscription subscription;
    subscription.queue = p + ".tail";
    subscription.bindings = {p + ".#"};
    subscription.transient = true;
    subscription.handler = [&received, &p](const Delivery& delivery) -> asio::awaitable<void> {
        received.push_back(delivery.event.type);
        // No retries for a tail: a failure drops the event.
        if (delivery.event.type == p + ".fails") throw std::runtime_error("handler failed");
        co_return;
    };
    auto tail = make_bus();
    tail->subscribe(std::move(subscription));
    auto publisher = make_bus();
    run(io_, [&]() -> asio::awaitable<void> {
        co_await tail->start();
        co_await publisher->start();
        auto failing = make_event("tests", p + ".fails", {});
        co_await publisher->publish(failing);
        auto passing = make_event("tests", p + ".passes", {});
        co_await publisher->publish(passing);
        EXPECT_TRUE(co_await eventually([&] { return received.size() == 2; }));
        co_await tail->stop();
        co_await publisher->stop();
    }());
    EXPECT_EQ(received, (std::vector<std::string>{p + ".fails", p + ".passes"}));
    // The exclusive queue was deleted with the tail's connection.
    Observer observer(url_);
    try {
        observer.take(p + ".tail", 1s);
        ADD_FAILURE() << "the transient queue still exists";
    } catch (const std::runtime_error& error) {
        EXPECT_NE(std::string(error.what()).find("no queue"), std::string::npos) << error.what();
    }
}

TEST_F(RabbitMqBusTest, RetriesWithGrowingDelay) {
    auto p = "retry" + random_hex();
    std::vector<int> attempts;
    std::vector<Clock::time_point> times;
    auto bus = make_bus();
    Subscription subscription;
    subscription.queue = p + ".events";
    subscription.bindings = {p + ".#"};
    subscription.retry_delay = 50ms;
    subscription.max_retry_delay = 1000ms;
    subscription.max_attempts = 5;
    subscription.handler = [&](const Delivery& delivery) -> asio::awaitable<void> {
        attempts.push_back(delivery.attempt);
        times.push_back(Clock::now());
        if (delivery.attempt < 2) throw std::runtime_error("not yet");
        co_return;
    };
    bus->subscribe(std::move(subscription));

    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        auto event = make_event("tests", p + ".flaky", {});
        co_await bus->publish(event);
        EXPECT_TRUE(co_await eventually([&] { return attempts.size() >= 3; }));
        co_await bus->stop();
    }());

    ASSERT_EQ(attempts, (std::vector<int>{0, 1, 2}));
    // Retry 1 waits retry_delay, retry 2 twice that (the TTL is a lower bound).
    EXPECT_GE(times[1] - times[0], 50ms);
    EXPECT_GE(times[2] - times[1], 100ms);
}

TEST_F(RabbitMqBusTest, DeadLettersAfterMaxAttemptsWhileTheQueueKeepsFlowing) {
    auto p = "dead" + random_hex();
    auto queue = p + ".events";
    std::vector<int> poison_attempts;
    std::vector<std::string> delivered;
    auto bus = make_bus();
    Subscription subscription;
    subscription.queue = queue;
    subscription.bindings = {p + ".#"};
    subscription.prefetch = 1;
    subscription.retry_delay = 50ms;
    subscription.max_attempts = 3;
    subscription.handler = [&](const Delivery& delivery) -> asio::awaitable<void> {
        if (delivery.event.type == p + ".poison") {
            poison_attempts.push_back(delivery.attempt);
            throw std::runtime_error("boom on attempt " + std::to_string(delivery.attempt));
        }
        delivered.push_back(delivery.event.type);
        co_return;
    };
    bus->subscribe(std::move(subscription));

    auto poison = make_event("tests", p + ".poison", {});
    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        co_await bus->publish(poison);
        auto fine = make_event("tests", p + ".fine", {});
        co_await bus->publish(fine);
        EXPECT_TRUE(co_await eventually([&] { return delivered.size() == 1; }));
        EXPECT_TRUE(co_await eventually([&] { return poison_attempts.size() == 3; }));
    }());
    EXPECT_EQ(delivered, (std::vector<std::string>{p + ".fine"}));
    EXPECT_EQ(poison_attempts, (std::vector<int>{0, 1, 2}));

    Observer observer(url_);
    auto dead = observer.take(queue + ".dead");
    ASSERT_TRUE(dead) << "nothing in " << queue << ".dead";
    EXPECT_EQ(dead->message_id, poison.id);
    EXPECT_EQ(dead->body, to_json(poison));
    EXPECT_TRUE(dead->persistent);
    ASSERT_NE(dead->header("x-aether-attempt"), nullptr);
    EXPECT_EQ(std::get<std::int64_t>(dead->header("x-aether-attempt")->value), 3);
    ASSERT_NE(dead->header("x-aether-error"), nullptr);
    EXPECT_EQ(std::get<std::string>(dead->header("x-aether-error")->value), "boom on attempt 2");

    // Bytes that are not an envelope go straight to the dead letters; the handler never sees them.
    observer.publish(p + ".garbage", "{not json");
    auto malformed = observer.take(queue + ".dead");
    ASSERT_TRUE(malformed);
    EXPECT_EQ(malformed->body, "{not json");
    ASSERT_NE(malformed->header("x-aether-error"), nullptr);
    EXPECT_EQ(
        std::get<std::string>(malformed->header("x-aether-error")->value).rfind("malformed", 0),
        0u);

    run(io_, [&]() -> asio::awaitable<void> {
        auto later = make_event("tests", p + ".after", {});
        co_await bus->publish(later);
        EXPECT_TRUE(co_await eventually([&] { return delivered.size() == 2; }));
        co_await bus->stop();
    }());
    EXPECT_EQ(delivered, (std::vector<std::string>{p + ".fine", p + ".after"}));
    EXPECT_EQ(poison_attempts.size(), 3u);
}

asio::awaitable<void> publish_copy(Bus& bus, Event event) {
    co_await bus.publish(std::move(event));
}

// Publishes `count` events at once; returns how many were confirmed and the refusals' messages.
asio::awaitable<std::pair<int, std::vector<std::string>>> publish_concurrently(
    Bus& bus, const std::vector<Event>& events) {
    int confirmed = 0;
    std::vector<std::string> refused;
    std::size_t finished = 0;
    auto executor = co_await asio::this_coro::executor;
    for (const auto& event : events) {
        asio::co_spawn(executor, publish_copy(bus, event), [&](std::exception_ptr error) {
            ++finished;
            if (!error) {
                ++confirmed;
                return;
            }
            try {
                std::rethrow_exception(error);
            } catch (const PublishError& failure) {
                refused.push_back(failure.what());
            } catch (...) {
                refused.push_back("not a PublishError");
            }
        });
    }
    EXPECT_TRUE(co_await eventually([&] { return finished == events.size(); }));
    co_return std::pair(confirmed, refused);
}

TEST_F(RabbitMqBusTest, PipelinesConcurrentPublishesAndBoundsThem) {
    auto p = "burst" + random_hex();
    std::set<std::string> received;
    std::size_t deliveries = 0;
    auto handler = [&](const Delivery& delivery) -> asio::awaitable<void> {
        received.insert(delivery.event.id);
        ++deliveries;
        co_return;
    };
    auto bus = make_bus();
    Subscription subscription;
    subscription.queue = p + ".events";
    subscription.bindings = {p + ".#"};
    subscription.prefetch = 64;
    subscription.handler = handler;
    bus->subscribe(std::move(subscription));
    RabbitMqOptions small;
    small.max_pending_publishes = 1;
    auto bounded = make_bus(small);

    std::vector<Event> events;
    for (int i = 0; i < 500; ++i) events.push_back(make_event("tests", p + ".burst", {}));
    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        co_await bounded->start();
        auto started = Clock::now();
        auto [confirmed, refused] = co_await publish_concurrently(*bus, events);
        auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
        std::cerr << "[burst] 500 concurrent publishes confirmed in " << elapsed.count() << " ms\n";
        EXPECT_EQ(confirmed, 500);
        EXPECT_TRUE(refused.empty());
        EXPECT_TRUE(co_await eventually([&] { return received.size() == events.size(); }));

        // The relay's pattern: each publish awaits its confirm before the next.
        std::vector<Event> sequential;
        for (int i = 0; i < 200; ++i) sequential.push_back(make_event("tests", p + ".one", {}));
        started = Clock::now();
        for (const auto& event : sequential) co_await bus->publish(event);
        elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
        std::cerr << "[burst] 200 sequential publishes confirmed in " << elapsed.count() << " ms\n";
        EXPECT_TRUE(co_await eventually([&] { return received.size() == 700; }));

        // One publish may wait for its confirm; the others are refused at once.
        std::vector<Event> few(events.begin(), events.begin() + 20);
        auto [accepted, rejected] = co_await publish_concurrently(*bounded, few);
        EXPECT_GE(accepted, 1);
        EXPECT_GE(rejected.size(), 1u);
        EXPECT_EQ(accepted + static_cast<int>(rejected.size()), 20);
        for (const auto& message : rejected) {
            EXPECT_NE(message.find("max_pending_publishes"), std::string::npos) << message;
        }
        co_await bounded->stop();
        co_await bus->stop();
    }());
    EXPECT_EQ(received.size(), 700u);
}

TEST_F(RabbitMqBusTest, StopWaitsForHandlersInFlight) {
    auto p = "stop" + random_hex();
    bool handler_started = false;
    bool handler_finished = false;
    auto bus = make_bus();
    Subscription subscription;
    subscription.queue = p + ".events";
    subscription.bindings = {p + ".#"};
    subscription.handler = [&](const Delivery&) -> asio::awaitable<void> {
        handler_started = true;
        asio::steady_timer timer(co_await asio::this_coro::executor, 200ms);
        co_await timer.async_wait(asio::use_awaitable);
        handler_finished = true;
    };
    bus->subscribe(std::move(subscription));

    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        auto slow = make_event("tests", p + ".slow", {});
        co_await bus->publish(slow);
        EXPECT_TRUE(co_await eventually([&] { return handler_started; }));
        co_await bus->stop();
        EXPECT_TRUE(handler_finished);
        // Stopped: publishing is refused at once.
        bool refused = false;
        auto late = make_event("tests", p + ".late", {});
        try {
            co_await bus->publish(late);
        } catch (const PublishError&) {
            refused = true;
        }
        EXPECT_TRUE(refused);
    }());
}

TEST_F(RabbitMqBusTest, SurvivesABrokerRestart) {
    auto p = "outage" + random_hex();
    std::vector<std::string> received;
    auto bus = make_bus();
    Subscription subscription;
    subscription.queue = p + ".events";
    subscription.bindings = {p + ".live.#"};
    subscription.handler = [&](const Delivery& delivery) -> asio::awaitable<void> {
        received.push_back(delivery.event.id);
        co_return;
    };
    bus->subscribe(std::move(subscription));
    {
        Observer observer(url_);
        observer.bind(p + ".parked", p + ".parked");
    }

    auto before = make_event("tests", p + ".live.before", {});
    auto parked = make_event("tests", p + ".parked", {});
    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        co_await bus->publish(before);
        co_await bus->publish(parked);  // to a queue nobody consumes: it must survive the restart
        EXPECT_TRUE(co_await eventually([&] { return received.size() == 1; }));
    }());

    auto stopping = Clock::now();
    ASSERT_TRUE(Broker::get().stop_keep());
    std::cerr << "[broker] stopped in "
              << std::chrono::duration_cast<milliseconds>(Clock::now() - stopping).count()
              << " ms\n";

    auto during = make_event("tests", p + ".live.during", {});
    run(io_, [&]() -> asio::awaitable<void> {
        EXPECT_TRUE(co_await eventually([&] { return !bus->healthy(); }, 5s));
        auto publishing = Clock::now();
        bool refused = false;
        try {
            co_await bus->publish(during);
        } catch (const PublishError&) {
            refused = true;
        }
        EXPECT_TRUE(refused);
        EXPECT_LT(Clock::now() - publishing, 1s) << "a publish during the outage must fail fast";
    }());

    auto starting = Clock::now();
    ASSERT_TRUE(Broker::get().start());
    std::cerr << "[broker] restarted in "
              << std::chrono::duration_cast<milliseconds>(Clock::now() - starting).count()
              << " ms\n";

    auto after = make_event("tests", p + ".live.after", {});
    run(io_, [&]() -> asio::awaitable<void> {
        EXPECT_TRUE(co_await eventually([&] { return bus->healthy(); }, 10s));
        co_await bus->publish(after);
        EXPECT_TRUE(co_await eventually([&] {
            return std::find(received.begin(), received.end(), after.id) != received.end();
        }));
        co_await bus->stop();
    }());
    EXPECT_EQ(std::find(received.begin(), received.end(), during.id), received.end());

    Observer observer(url_);
    auto survived = observer.take(p + ".parked");
    ASSERT_TRUE(survived) << "the persistent event did not survive the restart";
    EXPECT_EQ(survived->message_id, parked.id);
}

// SIGSTOP: the broker's sockets stay open but nothing answers, as in a network partition.
class FrozenBroker {
  public:
    explicit FrozenBroker(pid_t pid) : pid_(pid) {
        stopped_ = pid_ > 0 && ::kill(pid_, SIGSTOP) == 0;
    }
    ~FrozenBroker() {
        if (stopped_) ::kill(pid_, SIGCONT);
    }
    bool stopped() const { return stopped_; }

  private:
    pid_t pid_;
    bool stopped_ = false;
};

TEST_F(RabbitMqBusTest, NoticesASilentBrokerThroughHeartbeats) {
    auto p = "frozen" + random_hex();
    std::vector<std::string> received;
    RabbitMqOptions options;
    options.heartbeat = 1s;
    options.confirm_timeout = 30s;  // so that only the heartbeat can notice
    options.connect_timeout = 1s;
    auto bus = make_bus(options);
    Subscription subscription;
    subscription.queue = p + ".events";
    subscription.bindings = {p + ".#"};
    subscription.handler = [&](const Delivery& delivery) -> asio::awaitable<void> {
        received.push_back(delivery.event.id);
        co_return;
    };
    bus->subscribe(std::move(subscription));
    run(io_, [&]() -> asio::awaitable<void> { co_await bus->start(); }());
    ASSERT_TRUE(bus->healthy());

    auto unanswered = make_event("tests", p + ".unanswered", {});
    {
        FrozenBroker frozen(Broker::get().pid());
        ASSERT_TRUE(frozen.stopped());
        run(io_, [&]() -> asio::awaitable<void> {
            auto publishing = Clock::now();
            std::string failure;
            try {
                co_await bus->publish(unanswered);
            } catch (const PublishError& error) {
                failure = error.what();
            }
            auto waited = Clock::now() - publishing;
            EXPECT_NE(failure.find("heartbeat"), std::string::npos) << failure;
            EXPECT_GE(waited, 1s);
            EXPECT_LT(waited, 4s);
            EXPECT_FALSE(bus->healthy());
        }());
    }

    auto after = make_event("tests", p + ".after", {});
    run(io_, [&]() -> asio::awaitable<void> {
        EXPECT_TRUE(co_await eventually([&] { return bus->healthy(); }, 20s));
        co_await bus->publish(after);
        EXPECT_TRUE(co_await eventually([&] {
            return std::find(received.begin(), received.end(), after.id) != received.end();
        }));
        co_await bus->stop();
    }());
}

TEST_F(RabbitMqBusTest, RefusedLoginIsReportedWithoutThePassword) {
    auto endpoint = parse_amqp_url(url_);
    ASSERT_TRUE(endpoint);
    RabbitMqOptions options;
    options.url = "amqp://guest:wr0ngpass@127.0.0.1:" + std::to_string(endpoint->port) + "/";
    auto made = make_rabbitmq_bus(options, io_.get_executor());
    ASSERT_TRUE(made) << made.error();
    auto bus = std::move(made).value();
    auto event = make_event("tests", "t.created", {});
    std::string refusal;
    run(io_, [&]() -> asio::awaitable<void> {
        co_await bus->start();
        EXPECT_FALSE(bus->healthy());
        try {
            co_await bus->publish(event);
        } catch (const PublishError& error) {
            refusal = error.what();
        }
        co_await bus->stop();
    }());
    EXPECT_NE(refusal.find("ACCESS_REFUSED"), std::string::npos) << refusal;
    EXPECT_EQ(refusal.find("wr0ngpass"), std::string::npos) << refusal;
}

// No broker needed: configuration errors and a broker that is not there.
TEST(RabbitMqBusConfig, MalformedUrlIsAnErrorThatHidesThePassword) {
    asio::io_context io;
    for (const char* url : {"amqp://user:s3cret@host:notaport/", "redis://user:s3cret@host/",
                            "amqp://user:s3cret@/vhost"}) {
        RabbitMqOptions options;
        options.url = url;
        auto bus = make_rabbitmq_bus(options, io.get_executor());
        ASSERT_FALSE(bus) << url;
        EXPECT_NE(bus.error().find("URL"), std::string::npos) << bus.error();
        EXPECT_EQ(bus.error().find("s3cret"), std::string::npos) << bus.error();
    }
    RabbitMqOptions options;
    options.max_pending_publishes = 0;
    EXPECT_FALSE(make_rabbitmq_bus(options, io.get_executor()));
}

TEST(RabbitMqBusConfig, UnreachableBrokerFailsPublishesFastAndRejectsBadSubscriptions) {
    asio::io_context io;
    RabbitMqOptions options;
    options.url = "amqp://user:s3cret@127.0.0.1:1/";  // nothing listens on port 1
    auto made = make_rabbitmq_bus(options, io.get_executor());
    ASSERT_TRUE(made) << made.error();
    auto bus = std::move(made).value();

    auto handler = [](const Delivery&) -> asio::awaitable<void> { co_return; };
    Subscription no_bindings;
    no_bindings.queue = "q";
    no_bindings.handler = handler;
    EXPECT_THROW(bus->subscribe(no_bindings), std::invalid_argument);
    Subscription no_attempts;
    no_attempts.queue = "q";
    no_attempts.bindings = {"#"};
    no_attempts.handler = handler;
    no_attempts.max_attempts = 0;
    EXPECT_THROW(bus->subscribe(no_attempts), std::invalid_argument);
    Subscription fine;
    fine.queue = "q";
    fine.bindings = {"#"};
    fine.handler = handler;
    bus->subscribe(fine);
    EXPECT_THROW(bus->subscribe(fine), std::invalid_argument);

    run(io, [&]() -> asio::awaitable<void> {
        auto event = make_event("tests", "t.created", {});
        std::string before_start;
        try {
            co_await bus->publish(event);
        } catch (const PublishError& error) {
            before_start = error.what();
        }
        EXPECT_FALSE(before_start.empty());

        co_await bus->start();  // one failed attempt, then retries in the background
        EXPECT_FALSE(bus->healthy());
        std::string during;
        try {
            co_await bus->publish(event);
        } catch (const PublishError& error) {
            during = error.what();
        }
        EXPECT_NE(during.find("not connected"), std::string::npos) << during;
        EXPECT_EQ(during.find("s3cret"), std::string::npos) << during;
        co_await bus->stop();
    }());
    EXPECT_THROW(bus->subscribe(fine), std::logic_error);
}

}  // namespace
}  // namespace aether::platform::bus
