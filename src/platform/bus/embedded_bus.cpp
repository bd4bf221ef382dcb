// The embedded broker: queues, bindings and dead letters in a database, one consumer loop per
// queue, handlers run concurrently up to the prefetch.
#include "platform/bus/embedded_bus.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "embedded_bus_migrations.h"
#include "platform/auth/tokens.h"
#include "platform/sql/database.h"
#include "platform/sql/migrations.h"
#include "platform/telemetry/clock.h"
#include "platform/telemetry/log.h"

namespace aether::platform::bus {

namespace {

using Strand = asio::strand<asio::any_io_executor>;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Error texts stored with a message are cut to this size (a handler may throw anything).
constexpr std::size_t kMaxErrorLength = 1000;
// Retrying an acknowledgement the database refused: first delay and cap.
constexpr milliseconds kSettleRetryDelay{50};
constexpr milliseconds kSettleRetryMaxDelay{5000};

std::int64_t now_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string now_text() {
    return telemetry::format_rfc3339_ms(std::chrono::system_clock::now());
}

std::string truncated(std::string text) {
    if (text.size() > kMaxErrorLength) text.resize(kMaxErrorLength);
    return text;
}

// retry_delay * 2^(attempt-1), capped, without overflowing for large attempt counts.
milliseconds retry_delay(const Subscription& subscription, int attempt) {
    auto delay = subscription.retry_delay;
    for (int i = 1; i < attempt && delay < subscription.max_retry_delay; ++i) delay *= 2;
    return std::min(delay, subscription.max_retry_delay);
}

struct Queue {
    Queue(Subscription subscription_in, const Strand& strand)
        : subscription(std::move(subscription_in)), wake(strand) {}

    const Subscription subscription;
    // Set by a publish or a finished handler since the loop last claimed; the loop claims again
    // instead of sleeping, so a wake-up that arrives while it queries is not lost.
    std::atomic<bool> pending{false};
    std::atomic<bool> wake_posted{false};
    // Touched on the strand only.
    asio::steady_timer wake;
    int in_flight = 0;
};

struct Message {
    std::int64_t id = 0;
    std::string event_id;
    std::string payload;
    int attempts = 0;
    std::int64_t available_at = 0;
};

struct Shared {
    Shared(std::shared_ptr<sql::Database> database_in, asio::any_io_executor executor_in,
           EmbeddedBusOptions options_in)
        : database(std::move(database_in)),
          executor(std::move(executor_in)),
          strand(asio::make_strand(executor)),
          options(options_in),
          instance(auth::new_id("bus_")) {}

    std::shared_ptr<sql::Database> database;
    asio::any_io_executor executor;
    Strand strand;
    const EmbeddedBusOptions options;
    // Claims carry this instance's name: a message claimed by another (an earlier process on
    // the database) was in flight when that process died, and is delivered again.
    const std::string instance;

    // Guards `queues` (its shape changes only before start) and the started flag's transition.
    std::mutex mutex;
    std::vector<std::unique_ptr<Queue>> queues;
    std::atomic<bool> started{false};
    std::atomic<bool> stopping{false};
    std::atomic<bool> database_ok{true};

    // Touched on the strand only.
    int loops = 0;
    int handlers = 0;
    std::vector<asio::steady_timer*> drain_waiters;

    Queue* find(const std::string& name) {
        for (auto& queue : queues) {
            if (queue->subscription.queue == name) return queue.get();
        }
        return nullptr;
    }

    // Wakes a queue's loop from any thread; bursts of publishes post at most one wake-up.
    static void wake(const std::shared_ptr<Shared>& shared, Queue* queue) {
        queue->pending.store(true);
        if (queue->wake_posted.exchange(true)) return;
        asio::post(shared->strand, [shared, queue] {
            queue->wake_posted.store(false);
            queue->wake.cancel();
        });
    }

    // On the strand: a loop or a handler ended.
    void drained_one() {
        for (auto* waiter : drain_waiters) waiter->cancel();
    }
};

// Registers a timer as waiting for the loops and handlers to end, for the timer's lifetime.
class DrainWaiter {
  public:
    DrainWaiter(Shared& shared, asio::steady_timer& timer) : shared_(shared), timer_(timer) {
        shared_.drain_waiters.push_back(&timer_);
    }
    ~DrainWaiter() { std::erase(shared_.drain_waiters, &timer_); }
    DrainWaiter(const DrainWaiter&) = delete;
    DrainWaiter& operator=(const DrainWaiter&) = delete;

  private:
    Shared& shared_;
    asio::steady_timer& timer_;
};

asio::awaitable<std::vector<Message>> claim(Shared& shared, Queue& queue, int count) {
    auto now = now_ms();
    auto limit = static_cast<std::int64_t>(count);
    auto rows = co_await shared.database->query(
        "UPDATE bus_messages SET claimed_by = $1 WHERE id IN (SELECT id FROM bus_messages WHERE "
        "queue = $2 AND available_at <= $3 AND (claimed_by IS NULL OR claimed_by <> $1) ORDER BY "
        "available_at, id LIMIT $4) RETURNING id, event_id, payload, attempts, available_at",
        shared.instance, queue.subscription.queue, now, limit);
    std::vector<Message> messages;
    messages.reserve(rows.size());
    for (const auto& row : rows) {
        Message message;
        message.id = row.get_int("id");
        message.event_id = row.get_string("event_id");
        message.payload = row.get_string("payload");
        message.attempts = static_cast<int>(row.get_int("attempts"));
        message.available_at = row.get_int("available_at");
        messages.push_back(std::move(message));
    }
    // RETURNING has no order; deliveries start oldest first.
    std::sort(messages.begin(), messages.end(), [](const Message& a, const Message& b) {
        return a.available_at != b.available_at ? a.available_at < b.available_at : a.id < b.id;
    });
    co_return messages;
}

// When the next message of the queue that nobody here holds becomes due (ms since the epoch).
asio::awaitable<std::optional<std::int64_t>> next_due(Shared& shared, Queue& queue) {
    auto rows = co_await shared.database->query(
        "SELECT min(available_at) AS due FROM bus_messages WHERE queue = $1 AND (claimed_by IS "
        "NULL OR claimed_by <> $2)",
        queue.subscription.queue, shared.instance);
    if (rows.empty() || rows[0].is_null("due")) co_return std::nullopt;
    co_return rows[0].get_int("due");
}

// Records the outcome of one delivery: ack (delete), retry later, or dead-letter. Each statement
// requires this bus's claim, so an outcome never touches a message another bus has taken over.
asio::awaitable<void> settle_once(Shared& shared, const Queue& queue, const Message& message,
                                  const std::string& error, bool poisoned) {
    const auto& subscription = queue.subscription;
    auto& database = *shared.database;
    // An operator's tail has no retries: a failed delivery is dropped like a handled one.
    if (error.empty() || subscription.transient) {
        co_await database.query("DELETE FROM bus_messages WHERE id = $1 AND claimed_by = $2",
                                message.id, shared.instance);
        co_return;
    }
    int attempts = message.attempts + 1;
    if (!poisoned && attempts < subscription.max_attempts) {
        auto available_at = now_ms() + retry_delay(subscription, attempts).count();
        co_await database.query(
            "UPDATE bus_messages SET attempts = $1, available_at = $2, last_error = $3, "
            "claimed_by = NULL WHERE id = $4 AND claimed_by = $5",
            static_cast<std::int64_t>(attempts), available_at, error, message.id, shared.instance);
        co_return;
    }
    auto dead_queue = subscription.queue + ".dead";
    auto dead_at = now_text();
    bool moved = false;
    co_await database.transaction([&](sql::Session& session) -> asio::awaitable<void> {
        auto deleted =
            co_await session.query("DELETE FROM bus_messages WHERE id = $1 AND claimed_by = $2",
                                   message.id, shared.instance);
        if (deleted.affected_rows() == 0) co_return;
        co_await session.query(
            "INSERT INTO bus_dead_letters (queue, event_id, payload, attempts, last_error, "
            "dead_at) VALUES ($1, $2, $3, $4, $5, $6)",
            dead_queue, message.event_id, message.payload, static_cast<std::int64_t>(attempts),
            error, dead_at);
        moved = true;
    });
    if (moved) {
        telemetry::log_warn("event dead-lettered", {{"queue", dead_queue},
                                                    {"event_id", message.event_id},
                                                    {"attempts", attempts},
                                                    {"error", error}});
    }
}

// A transient queue goes with its subscriber: its bindings, so publishers stop copying events
// into it, and what it still holds.
asio::awaitable<void> remove_transient_queues(Shared& shared) {
    for (auto& queue : shared.queues) {
        if (!queue->subscription.transient) continue;
        const auto& name = queue->subscription.queue;
        co_await shared.database->transaction([&](sql::Session& session) -> asio::awaitable<void> {
            co_await session.query("DELETE FROM bus_bindings WHERE queue = $1", name);
            co_await session.query("DELETE FROM bus_messages WHERE queue = $1", name);
        });
    }
}

// Retries the bookkeeping while the database refuses it; a bus that is stopping gives up, and
// the message is delivered again by the next bus on the database.
asio::awaitable<void> settle(Shared& shared, const Queue& queue, const Message& message,
                             const std::string& error, bool poisoned) {
    auto delay = kSettleRetryDelay;
    while (true) {
        std::string failure;
        try {
            co_await settle_once(shared, queue, message, error, poisoned);
            co_return;
        } catch (const std::exception& problem) {
            failure = problem.what();
        }
        if (shared.stopping.load()) {
            telemetry::log_error("embedded bus could not record a delivery; it will be redelivered",
                                 {{"queue", queue.subscription.queue},
                                  {"event_id", message.event_id},
                                  {"error", failure}});
            co_return;
        }
        telemetry::log_warn("embedded bus could not record a delivery; retrying",
                            {{"queue", queue.subscription.queue},
                             {"event_id", message.event_id},
                             {"error", failure}});
        asio::steady_timer timer(shared.executor, delay);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        delay = std::min(delay * 2, kSettleRetryMaxDelay);
    }
}

// Runs the handler for one message on the bus's executor, then settles it.
asio::awaitable<void> deliver(std::shared_ptr<Shared> shared, Queue* queue, Message message) {
    std::string error;
    bool poisoned = false;
    try {
        auto parsed = parse_event(message.payload);
        if (parsed) {
            Delivery delivery;
            delivery.event = std::move(*parsed);
            delivery.attempt = message.attempts;
            co_await queue->subscription.handler(delivery);
        } else {
            // Only a hand-edited row gets here; no retry can help it.
            error = "unparseable envelope: " + parsed.error();
            poisoned = true;
        }
    } catch (const std::exception& failure) {
        error = failure.what();
        if (error.empty()) error = "handler failed";
    } catch (...) {
        error = "handler threw a non-standard exception";
    }
    auto reason = truncated(std::move(error));
    co_await settle(*shared, *queue, message, reason, poisoned);
    asio::post(shared->strand, [shared, queue] {
        --queue->in_flight;
        --shared->handlers;
        queue->pending.store(true);
        queue->wake.cancel();
        shared->drained_one();
    });
}

// One queue's consumer, on the strand: claims due messages up to the free prefetch slots, starts
// their handlers, and sleeps until woken (publish, a finished handler, the next retry) or polled.
asio::awaitable<void> consume(std::shared_ptr<Shared> shared, Queue* queue) {
    const auto& subscription = queue->subscription;
    auto failure_delay = kSettleRetryDelay;
    while (!shared->stopping.load()) {
        auto wait = shared->options.poll_interval;
        int free = subscription.prefetch - queue->in_flight;
        if (free > 0) {
            queue->pending.store(false);
            std::vector<Message> claimed;
            std::optional<std::int64_t> due;
            std::string error;
            try {
                claimed = co_await claim(*shared, *queue, free);
                if (static_cast<int>(claimed.size()) < free)
                    due = co_await next_due(*shared, *queue);
            } catch (const std::exception& failure) {
                error = failure.what();
            }
            for (auto& message : claimed) {
                ++queue->in_flight;
                ++shared->handlers;
                asio::co_spawn(shared->executor, deliver(shared, queue, std::move(message)),
                               asio::detached);
            }
            if (!error.empty()) {
                shared->database_ok.store(false);
                telemetry::log_error("embedded bus consumer failed to read its queue",
                                     {{"queue", subscription.queue}, {"error", error}});
                wait = std::min(failure_delay, shared->options.poll_interval);
                failure_delay = std::min(failure_delay * 2, kSettleRetryMaxDelay);
            } else {
                shared->database_ok.store(true);
                failure_delay = kSettleRetryDelay;
                if (static_cast<int>(claimed.size()) == free) continue;
                if (due) {
                    auto until_due = *due - now_ms();
                    if (until_due <= 0) continue;
                    wait = std::min(wait, milliseconds(until_due));
                }
            }
        }
        if (shared->stopping.load()) break;
        if (queue->pending.exchange(false)) continue;
        queue->wake.expires_after(wait);
        co_await queue->wake.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

// Runs a consumer and accounts for its end, on the strand.
asio::awaitable<void> consume_and_count(std::shared_ptr<Shared> shared, Queue* queue) {
    try {
        co_await consume(shared, queue);
    } catch (const std::exception& failure) {
        telemetry::log_error("embedded bus consumer stopped",
                             {{"queue", queue->subscription.queue}, {"error", failure.what()}});
    }
    --shared->loops;
    shared->drained_one();
}

asio::awaitable<void> launch(std::shared_ptr<Shared> shared) {
    for (auto& queue : shared->queues) {
        ++shared->loops;
        asio::co_spawn(shared->strand, consume_and_count(shared, queue.get()), asio::detached);
    }
    co_return;
}

asio::awaitable<void> drain(std::shared_ptr<Shared> shared) {
    for (auto& queue : shared->queues) queue->wake.cancel();
    while (shared->loops > 0 || shared->handlers > 0) {
        asio::steady_timer timer(shared->strand, SteadyClock::time_point::max());
        DrainWaiter waiter(*shared, timer);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

class EmbeddedBus final : public Bus {
  public:
    EmbeddedBus(std::shared_ptr<sql::Database> database, asio::any_io_executor executor,
                EmbeddedBusOptions options)
        : shared_(std::make_shared<Shared>(std::move(database), std::move(executor), options)) {}

    ~EmbeddedBus() override {
        // Loops hold the shared state; tell them to end if stop() was not awaited.
        if (!shared_->stopping.exchange(true) && shared_->started.load()) {
            asio::post(shared_->strand, [shared = shared_] {
                for (auto& queue : shared->queues) queue->wake.cancel();
            });
        }
    }

    std::string_view driver() const override { return "embedded"; }

    asio::awaitable<void> publish(Event event) override {
        std::vector<Event> events;
        events.push_back(std::move(event));
        auto outcomes = co_await publish_batch(std::move(events));
        if (!outcomes[0].empty()) throw PublishError(outcomes[0]);
    }

    // The whole batch in one transaction: one commit for all of it, in order, or none of it.
    asio::awaitable<std::vector<std::string>> publish_batch(std::vector<Event> events) override {
        auto shared = shared_;
        std::vector<std::string> outcomes(events.size());
        if (events.empty()) co_return outcomes;
        // Before start() the subscriptions made here are not in bus_bindings yet.
        std::vector<std::pair<std::string, std::vector<std::string>>> local;
        if (!shared->started.load()) {
            std::lock_guard lock(shared->mutex);
            for (auto& queue : shared->queues) {
                local.emplace_back(queue->subscription.queue, queue->subscription.bindings);
            }
        }
        std::set<std::string> woken;
        std::string error;
        try {
            co_await shared->database->transaction(
                [&](sql::Session& session) -> asio::awaitable<void> {
                    woken.clear();
                    auto bindings =
                        co_await session.query("SELECT queue, pattern FROM bus_bindings");
                    auto available_at = now_ms();
                    auto created_at = now_text();
                    for (const auto& event : events) {
                        std::set<std::string> targets;
                        for (const auto& row : bindings) {
                            if (topic_matches(row.get_string("pattern"), event.type)) {
                                targets.insert(row.get_string("queue"));
                            }
                        }
                        for (const auto& [queue, patterns] : local) {
                            for (const auto& pattern : patterns) {
                                if (topic_matches(pattern, event.type)) targets.insert(queue);
                            }
                        }
                        if (targets.empty()) continue;
                        auto payload = to_json(event);
                        for (const auto& queue : targets) {
                            co_await session.query(
                                "INSERT INTO bus_messages (queue, event_id, payload, attempts, "
                                "available_at, created_at) VALUES ($1, $2, $3, 0, $4, $5)",
                                queue, event.id, payload, available_at, created_at);
                            woken.insert(queue);
                        }
                    }
                });
        } catch (const std::exception& failure) {
            error = failure.what();
        }
        if (!error.empty()) {
            shared->database_ok.store(false);
            for (std::size_t i = 0; i < events.size(); ++i) {
                outcomes[i] = "embedded bus: publish of " + events[i].type + " failed: " + error;
            }
            co_return outcomes;
        }
        shared->database_ok.store(true);
        std::lock_guard lock(shared->mutex);
        for (const auto& name : woken) {
            if (auto* queue = shared->find(name)) Shared::wake(shared, queue);
        }
        co_return outcomes;
    }

    void subscribe(Subscription subscription) override {
        if (subscription.queue.empty()) throw std::invalid_argument("subscription needs a queue");
        if (!subscription.handler) {
            throw std::invalid_argument("subscription " + subscription.queue + " has no handler");
        }
        if (subscription.prefetch < 1 || subscription.max_attempts < 1) {
            throw std::invalid_argument("subscription " + subscription.queue +
                                        " needs prefetch and max_attempts of at least 1");
        }
        std::lock_guard lock(shared_->mutex);
        if (shared_->started.load()) {
            throw std::logic_error("subscribe(" + subscription.queue + ") after start()");
        }
        if (shared_->find(subscription.queue) != nullptr) {
            throw std::logic_error("queue " + subscription.queue + " is subscribed twice");
        }
        shared_->queues.push_back(
            std::make_unique<Queue>(std::move(subscription), shared_->strand));
    }

    asio::awaitable<void> start() override {
        auto shared = shared_;
        if (shared->started.load()) throw std::logic_error("embedded bus started twice");
        if (shared->stopping.load()) throw std::logic_error("embedded bus started after stop()");
        // The code's subscriptions are the truth for their queues: earlier bindings of those
        // queues are replaced, other queues' bindings (and waiting messages) are kept.
        co_await shared->database->transaction([&](sql::Session& session) -> asio::awaitable<void> {
            for (auto& queue : shared->queues) {
                const auto& name = queue->subscription.queue;
                co_await session.query("DELETE FROM bus_bindings WHERE queue = $1", name);
                for (const auto& pattern : queue->subscription.bindings) {
                    co_await session.query(
                        "INSERT INTO bus_bindings (queue, pattern) VALUES ($1, $2) ON CONFLICT "
                        "(queue, pattern) DO NOTHING",
                        name, pattern);
                }
            }
        });
        {
            std::lock_guard lock(shared->mutex);
            shared->started.store(true);
        }
        auto work = launch(shared);
        co_await asio::co_spawn(shared->strand, std::move(work), asio::use_awaitable);
    }

    asio::awaitable<void> stop() override {
        auto shared = shared_;
        shared->stopping.store(true);
        auto work = drain(shared);
        co_await asio::co_spawn(shared->strand, std::move(work), asio::use_awaitable);
        if (shared->started.load()) co_await remove_transient_queues(*shared);
    }

    bool healthy() const override {
        return shared_->started.load() && !shared_->stopping.load() && shared_->database_ok.load();
    }

  private:
    std::shared_ptr<Shared> shared_;
};

}  // namespace

asio::awaitable<void> migrate_embedded_bus(sql::Database& database) {
    auto migrations = embedded_bus_migrations();
    co_await sql::migrate(database, "embedded_bus", std::move(migrations));
}

std::unique_ptr<Bus> make_embedded_bus(std::shared_ptr<sql::Database> broker_database,
                                       asio::any_io_executor executor, EmbeddedBusOptions options) {
    return std::make_unique<EmbeddedBus>(std::move(broker_database), std::move(executor), options);
}

asio::awaitable<std::vector<DeadLetter>> dead_letters(sql::Database& broker_database,
                                                      std::string queue, std::int64_t limit) {
    auto dead_queue = queue + ".dead";
    auto rows = co_await broker_database.query(
        "SELECT queue, payload, attempts, last_error, dead_at FROM bus_dead_letters WHERE queue = "
        "$1 ORDER BY id LIMIT $2",
        dead_queue, limit);
    std::vector<DeadLetter> letters;
    letters.reserve(rows.size());
    for (const auto& row : rows) {
        DeadLetter letter;
        letter.queue = row.get_string("queue");
        letter.event = row.get_string("payload");
        letter.attempts = static_cast<int>(row.get_int("attempts"));
        letter.last_error = row.get_string("last_error");
        letter.dead_at = row.get_string("dead_at");
        letters.push_back(std::move(letter));
    }
    co_return letters;
}

}  // namespace aether::platform::bus
