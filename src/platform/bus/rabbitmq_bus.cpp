// The RabbitMQ bus: a driver thread owns the rabbitmq-c connection and does every blocking call;
// coroutines reach it through a bounded queue and an eventfd, and it resumes them (and runs the
// handlers) on their executors.
#include "platform/bus/rabbitmq_bus.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <climits>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "platform/bus/rabbitmq_connection.h"
#include "platform/telemetry/log.h"

namespace aether::platform::bus {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::uint16_t kPublishChannel = 1;
constexpr std::uint16_t kFirstConsumerChannel = 2;
constexpr std::string_view kContentType = "application/json";
constexpr std::string_view kAttemptHeader = "x-aether-attempt";
constexpr std::string_view kErrorHeader = "x-aether-error";
constexpr std::size_t kMaxErrorLength = 1000;
// AMQP short strings (routing keys, queue names, message ids) hold at most 255 bytes; the
// longest suffix the driver adds to a queue name is ".retry.<ms>ms".
constexpr std::size_t kMaxShortString = 255;
constexpr std::size_t kMaxQueueName = 200;
// The driver thread looks at its timers (confirm deadline, heartbeat, backoff) at least this often.
constexpr milliseconds kMaxPollWait{100};
// Events read per turn of the loop before it looks at its queue again.
constexpr int kMaxEventsPerTurn = 256;

// retry_delay * 2^(retry-1), capped, without overflowing for large retry counts.
milliseconds retry_delay(const Subscription& subscription, int retry) {
    auto delay = subscription.retry_delay;
    for (int i = 1; i < retry && delay < subscription.max_retry_delay; ++i) delay *= 2;
    return std::min(delay, subscription.max_retry_delay);
}

std::string retry_queue_name(const std::string& queue, milliseconds delay) {
    return queue + ".retry." + std::to_string(delay.count()) + "ms";
}

std::string dead_queue_name(const std::string& queue) {
    return queue + ".dead";
}

void set_header(AmqpMessage& message, std::string_view name,
                std::variant<std::int64_t, std::string> value) {
    for (auto& header : message.headers) {
        if (header.name == name) {
            header.value = std::move(value);
            return;
        }
    }
    message.headers.push_back(AmqpHeader{std::string(name), std::move(value)});
}

int attempt_of(const AmqpMessage& message) {
    const AmqpHeader* header = message.header(kAttemptHeader);
    if (header == nullptr) return 0;
    const auto* value = std::get_if<std::int64_t>(&header->value);
    if (value == nullptr) return 0;
    return static_cast<int>(std::clamp<std::int64_t>(*value, 0, INT_MAX));
}

// Resumes one awaiting coroutine on its own executor; called exactly once, from any thread.
using Completion = std::function<void(std::exception_ptr)>;

template <class Handler>
Completion completion_for(Handler handler, const asio::any_io_executor& fallback) {
    auto shared = std::make_shared<Handler>(std::move(handler));
    auto work = asio::prefer(asio::get_associated_executor(*shared, fallback),
                             asio::execution::outstanding_work.tracked);
    return [shared, work](std::exception_ptr error) {
        // post, never dispatch: the caller may still be inside its own initiation.
        asio::post(work, [shared, error]() { std::move (*shared)(error); });
    };
}

std::exception_ptr publish_error(std::string message) {
    return std::make_exception_ptr(PublishError(std::move(message)));
}

struct PublishRequest {
    AmqpMessage message;
    Completion done;
};

// Which delivery a handler ran for; stale once the connection it came on is gone.
struct Ticket {
    std::uint64_t generation = 0;
    std::uint16_t channel = 0;
    std::uint64_t delivery_tag = 0;
};

struct HandlerOutcome {
    Ticket ticket;
    bool failed = false;
    std::string error;
};

// A delivery whose handler runs: kept to republish it if the handler fails.
struct InFlight {
    std::size_t subscription = 0;
    int attempt = 0;
    AmqpMessage message;
};

// A publish awaiting its confirm: a caller's (done) or a retry/dead letter that settles the
// delivery it replaces once confirmed (at least once: never ack before the copy is safe).
struct PendingConfirm {
    Clock::time_point sent_at;
    Completion done;
    std::uint16_t settle_channel = 0;
    std::uint64_t settle_tag = 0;
};

class Core : public std::enable_shared_from_this<Core> {
  public:
    Core(AmqpEndpoint endpoint, RabbitMqOptions options, asio::any_io_executor executor_in)
        : executor(std::move(executor_in)),
          options_(std::move(options)),
          endpoint_(std::move(endpoint)),
          backoff_(options_.reconnect_backoff_min) {
        wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd_ < 0) {
            throw std::system_error(errno, std::generic_category(), "eventfd for the RabbitMQ bus");
        }
    }

    ~Core() {
        if (thread_.joinable()) {
            abort_and_join();
        }
        ::close(wake_fd_);
    }

    Core(const Core&) = delete;
    Core& operator=(const Core&) = delete;

    // Fixed before launch(); read by the driver thread and by handlers on the executor.
    std::vector<Subscription> subscriptions;
    const asio::any_io_executor executor;

    const RabbitMqOptions& options() const { return options_; }

    bool healthy() const { return healthy_.load(); }

    // Any thread. Refuses at once (done gets a PublishError) when the bus cannot take it.
    void submit(AmqpMessage message, Completion done) {
        std::string refusal;
        {
            std::lock_guard lock(mutex_);
            if (!accepting_) {
                refusal = "the RabbitMQ bus is not running";
            } else if (!healthy_.load()) {
                refusal = "not connected to RabbitMQ";
                if (!last_error_.empty()) refusal += ": " + last_error_;
            } else if (blocked_) {
                refusal = "RabbitMQ blocks publishing (" + blocked_reason_ + ")";
            } else if (outstanding_ >= options_.max_pending_publishes) {
                refusal = "too many publishes waiting for RabbitMQ (max_pending_publishes " +
                          std::to_string(options_.max_pending_publishes) + ")";
            } else {
                ++outstanding_;
                requests_.push_back(PublishRequest{std::move(message), std::move(done)});
                wake_locked();
                return;
            }
        }
        done(publish_error(std::move(refusal)));
    }

    // Any thread: a handler finished.
    void finished(HandlerOutcome outcome) {
        std::lock_guard lock(mutex_);
        outcomes_.push_back(std::move(outcome));
        wake_locked();
    }

    // Starts the driver thread; `connected` completes after its first connection attempt.
    void launch(Completion connected) {
        connected_ = std::move(connected);
        {
            std::lock_guard lock(mutex_);
            accepting_ = true;
        }
        thread_ = std::thread([this] { run(); });
        pthread_setname_np(thread_.native_handle(), "rabbitmq-bus");
    }

    // `stopped` completes once handlers in flight finished and the connection closed.
    void request_stop(Completion stopped) {
        std::lock_guard lock(mutex_);
        accepting_ = false;
        stop_requested_ = true;
        stopped_ = std::move(stopped);
        wake_locked();
    }

    void join() {
        if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    }

    // Destruction without stop(): drop the connection now (unacknowledged deliveries return to
    // their queues), fail what waits, do not wait for handlers.
    void abort_and_join() {
        {
            std::lock_guard lock(mutex_);
            accepting_ = false;
            abort_ = true;
            wake_locked();
        }
        join();
    }

  private:
    void wake_locked() {
        if (wake_pending_) return;
        wake_pending_ = true;
        std::uint64_t one = 1;
        // Fails only when the counter would overflow, which a pending wake-up rules out.
        (void)::write(wake_fd_, &one, sizeof one);
    }

    void finish_publish(Completion& done, std::exception_ptr error) {
        {
            std::lock_guard lock(mutex_);
            --outstanding_;
        }
        done(error);
    }

    void set_connected(bool connected, std::string error = {}) {
        std::lock_guard lock(mutex_);
        healthy_.store(connected);
        last_error_ = std::move(error);
        blocked_ = false;
        blocked_reason_.clear();
    }

    // ---- The driver thread from here on. ----

    void run() {
        std::deque<PublishRequest> requests;
        std::deque<HandlerOutcome> outcomes;
        for (;;) {
            bool stop = false;
            bool abort = false;
            {
                std::lock_guard lock(mutex_);
                requests.swap(requests_);
                outcomes.swap(outcomes_);
                stop = stop_requested_;
                abort = abort_;
                wake_pending_ = false;
            }
            if (abort) {
                for (auto& request : requests) {
                    finish_publish(request.done, publish_error("the RabbitMQ bus stopped"));
                }
                requests.clear();
                break;
            }
            if (stop && !stopping_) begin_stopping();
            for (auto& outcome : outcomes) settle(outcome);
            outcomes.clear();
            for (auto& request : requests) send(request);
            requests.clear();

            if (connection_.is_open()) {
                read_input();
                check_deadlines();
                if (stopping_ && connection_.is_open() && handlers_running_ == 0 &&
                    confirms_.empty()) {
                    connection_.close();
                    set_connected(false, "stopped");
                    break;
                }
            } else if (stopping_) {
                if (handlers_running_ == 0) break;
            } else if (Clock::now() >= next_attempt_) {
                connect();
                if (connected_) std::exchange(connected_, nullptr)(nullptr);
                continue;
            }
            wait();
        }
        shut_down();
    }

    void wait() {
        if (connection_.has_buffered_input()) return;
        auto timeout = kMaxPollWait;
        if (!connection_.is_open() && !stopping_) {
            auto until_attempt =
                std::chrono::duration_cast<milliseconds>(next_attempt_ - Clock::now());
            timeout = std::clamp(until_attempt + milliseconds(1), milliseconds(0), kMaxPollWait);
        }
        pollfd fds[2]{};
        fds[0].fd = wake_fd_;
        fds[0].events = POLLIN;
        fds[1].fd = connection_.fd();
        fds[1].events = POLLIN;
        nfds_t count = connection_.is_open() ? 2 : 1;
        if (::poll(fds, count, static_cast<int>(timeout.count())) <= 0) return;
        if ((fds[0].revents & POLLIN) != 0) {
            std::uint64_t value = 0;
            (void)::read(wake_fd_, &value, sizeof value);
        }
        if (count == 2 && fds[1].revents != 0) last_input_ = Clock::now();
    }

    AmqpConnection::Result establish() {
        AmqpConnectOptions connect_options;
        connect_options.connect_timeout = options_.connect_timeout;
        connect_options.rpc_timeout = options_.connect_timeout;
        connect_options.heartbeat = options_.heartbeat;
        connect_options.connection_name = options_.connection_name;
        if (auto opened = connection_.open(endpoint_, connect_options); !opened) return opened;

        auto& c = connection_;
        AmqpConnection::Result result;
        auto ok = [&](AmqpConnection::Result step) {
            result = std::move(step);
            return result.has_value();
        };
        if (!ok(c.open_channel(kPublishChannel)) || !ok(c.select_confirms(kPublishChannel)) ||
            !ok(c.declare_exchange(kPublishChannel, options_.exchange, "topic"))) {
            return result;
        }
        if (!subscriptions.empty() &&
            (!ok(c.declare_exchange(kPublishChannel, options_.retry_exchange, "direct")) ||
             !ok(c.declare_exchange(kPublishChannel, options_.dead_letter_exchange, "direct")))) {
            return result;
        }
        for (std::size_t i = 0; i < subscriptions.size(); ++i) {
            const Subscription& subscription = subscriptions[i];
            auto channel = static_cast<std::uint16_t>(kFirstConsumerChannel + i);
            const std::string& queue = subscription.queue;
            AmqpQueueArguments queue_arguments;
            queue_arguments.exclusive = subscription.transient;
            if (!ok(c.open_channel(channel)) ||
                !ok(c.declare_queue(channel, queue, queue_arguments)))
                return result;
            for (const auto& binding : subscription.bindings) {
                if (!ok(c.bind_queue(channel, queue, options_.exchange, binding))) return result;
            }
            if (subscription.transient) {
                if (!ok(c.set_prefetch(channel,
                                       static_cast<std::uint16_t>(subscription.prefetch))) ||
                    !ok(c.consume(channel, queue, consumer_tag(queue)))) {
                    return result;
                }
                continue;
            }
            auto dead = dead_queue_name(queue);
            if (!ok(c.declare_queue(channel, dead)) ||
                !ok(c.bind_queue(channel, dead, options_.dead_letter_exchange, dead))) {
                return result;
            }
            // One queue per distinct delay, all messages in it with the same TTL: they expire
            // in arrival order, so a short delay never waits behind a long one.
            std::set<milliseconds::rep> delays;
            for (int retry = 1; retry < subscription.max_attempts; ++retry) {
                auto delay = retry_delay(subscription, retry);
                if (!delays.insert(delay.count()).second) continue;
                auto name = retry_queue_name(queue, delay);
                AmqpQueueArguments arguments;
                arguments.message_ttl_ms = delay.count();
                arguments.dead_letter_exchange = "";
                arguments.dead_letter_routing_key = queue;
                if (!ok(c.declare_queue(channel, name, arguments)) ||
                    !ok(c.bind_queue(channel, name, options_.retry_exchange, name))) {
                    return result;
                }
            }
            if (!ok(c.set_prefetch(channel, static_cast<std::uint16_t>(subscription.prefetch))) ||
                !ok(c.consume(channel, queue, consumer_tag(queue)))) {
                return result;
            }
        }
        return {};
    }

    std::string consumer_tag(const std::string& queue) const {
        return options_.connection_name + "/" + queue;
    }

    void connect() {
        auto result = establish();
        if (!result) {
            connection_.abandon();
            // Once per distinct reason, not at every backoff step of a long outage.
            if (result.error() != logged_failure_) {
                telemetry::log_warn("cannot connect to RabbitMQ; retrying with backoff",
                                    {{"error", result.error()}});
                logged_failure_ = result.error();
            }
            set_connected(false, result.error());
            schedule_reconnect();
            return;
        }
        ++generation_;
        next_publish_tag_ = 1;
        last_input_ = Clock::now();
        backoff_ = options_.reconnect_backoff_min;
        logged_failure_.clear();
        set_connected(true);
        telemetry::log_info("connected to RabbitMQ",
                            {{"address", endpoint_.address()},
                             {"subscriptions", static_cast<std::uint64_t>(subscriptions.size())}});
    }

    void schedule_reconnect() {
        next_attempt_ = Clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, options_.reconnect_backoff_max);
    }

    void lose_connection(const std::string& reason) {
        if (!connection_.is_open()) return;
        telemetry::log_warn("RabbitMQ connection lost; reconnecting", {{"error", reason}});
        connection_.abandon();
        set_connected(false, reason);
        // Deliveries not yet acknowledged go back to their queues on the broker's side.
        in_flight_.clear();
        auto confirms = std::exchange(confirms_, {});
        for (auto& [tag, pending] : confirms) {
            if (pending.done) {
                finish_publish(
                    pending.done,
                    publish_error("RabbitMQ connection lost before the confirm: " + reason));
            }
        }
        schedule_reconnect();
    }

    void begin_stopping() {
        stopping_ = true;
        if (!connection_.is_open()) return;
        // Deliveries that arrive after this are never dispatched nor acknowledged: the broker
        // requeues them when the connection closes.
        for (std::size_t i = 0; i < subscriptions.size(); ++i) {
            auto channel = static_cast<std::uint16_t>(kFirstConsumerChannel + i);
            if (auto cancelled = connection_.cancel(channel, consumer_tag(subscriptions[i].queue));
                !cancelled) {
                lose_connection(cancelled.error());
                return;
            }
        }
    }

    void shut_down() {
        connection_.abandon();
        for (auto& [tag, pending] : confirms_) {
            if (pending.done)
                finish_publish(pending.done, publish_error("the RabbitMQ bus stopped"));
        }
        confirms_.clear();
        in_flight_.clear();
        std::deque<PublishRequest> requests;
        Completion stopped;
        {
            std::lock_guard lock(mutex_);
            requests.swap(requests_);
            stopped = std::move(stopped_);
            healthy_.store(false);
            accepting_ = false;
        }
        for (auto& request : requests) {
            finish_publish(request.done, publish_error("the RabbitMQ bus stopped"));
        }
        if (connected_) std::exchange(connected_, nullptr)(nullptr);
        // Last: stop() joins this thread once it resumes.
        if (stopped) stopped(nullptr);
    }

    void send(PublishRequest& request) {
        if (!connection_.is_open()) {
            finish_publish(request.done, publish_error("not connected to RabbitMQ"));
            return;
        }
        if (blocked_) {
            finish_publish(request.done, publish_error("RabbitMQ blocks publishing"));
            return;
        }
        if (auto sent = connection_.publish(kPublishChannel, request.message); !sent) {
            finish_publish(request.done, publish_error(sent.error()));
            lose_connection(sent.error());
            return;
        }
        PendingConfirm pending;
        pending.sent_at = Clock::now();
        pending.done = std::move(request.done);
        confirms_.emplace(next_publish_tag_++, std::move(pending));
    }

    // Republishes a delivery (to a retry queue or the dead letters); the original is settled
    // when the broker confirmed the copy.
    void republish(const AmqpMessage& message, std::uint16_t channel, std::uint64_t tag) {
        if (auto sent = connection_.publish(kPublishChannel, message); !sent) {
            lose_connection(sent.error());
            return;
        }
        PendingConfirm pending;
        pending.sent_at = Clock::now();
        pending.settle_channel = channel;
        pending.settle_tag = tag;
        confirms_.emplace(next_publish_tag_++, std::move(pending));
    }

    void dead_letter(std::size_t index, std::uint16_t channel, std::uint64_t tag,
                     AmqpMessage message, int attempts, std::string error) {
        const Subscription& subscription = subscriptions[index];
        if (error.size() > kMaxErrorLength) error.resize(kMaxErrorLength);
        auto dead = dead_queue_name(subscription.queue);
        telemetry::log_warn("event dead-lettered", {{"queue", dead},
                                                    {"event_id", message.message_id},
                                                    {"attempts", attempts},
                                                    {"error", error}});
        message.exchange = options_.dead_letter_exchange;
        message.routing_key = dead;
        set_header(message, kAttemptHeader, std::int64_t{attempts});
        set_header(message, kErrorHeader, std::move(error));
        republish(message, channel, tag);
    }

    void on_delivery(AmqpDelivery& delivery) {
        if (stopping_) return;
        std::size_t index = delivery.channel - kFirstConsumerChannel;
        if (delivery.channel < kFirstConsumerChannel || index >= subscriptions.size()) {
            lose_connection("a delivery on channel " + std::to_string(delivery.channel) +
                            ", which has no consumer");
            return;
        }
        int attempt = attempt_of(delivery.message);
        auto event = parse_event(delivery.message.body);
        if (!event) {
            // Retrying cannot fix the bytes: straight to the dead letters.
            dead_letter(index, delivery.channel, delivery.delivery_tag, std::move(delivery.message),
                        attempt, "malformed event: " + event.error());
            return;
        }
        Ticket ticket{generation_, delivery.channel, delivery.delivery_tag};
        in_flight_.insert_or_assign(std::pair(delivery.channel, delivery.delivery_tag),
                                    InFlight{index, attempt, std::move(delivery.message)});
        ++handlers_running_;
        Delivery handed;
        handed.event = std::move(*event);
        handed.attempt = attempt;
        dispatch(index, std::move(handed), ticket);
    }

    void dispatch(std::size_t index, Delivery delivery, Ticket ticket);

    void settle(HandlerOutcome& outcome) {
        --handlers_running_;
        const Ticket& ticket = outcome.ticket;
        // From an earlier connection: the broker has delivered it again already.
        if (!connection_.is_open() || ticket.generation != generation_) return;
        auto found = in_flight_.find(std::pair(ticket.channel, ticket.delivery_tag));
        if (found == in_flight_.end()) return;
        InFlight flight = std::move(found->second);
        in_flight_.erase(found);
        if (!outcome.failed) {
            if (auto acked = connection_.ack(ticket.channel, ticket.delivery_tag); !acked) {
                lose_connection(acked.error());
            }
            return;
        }
        const Subscription& subscription = subscriptions[flight.subscription];
        if (subscription.transient) {
            // An operator's tail has no retries: the event is dropped from its private queue.
            if (auto acked = connection_.ack(ticket.channel, ticket.delivery_tag); !acked) {
                lose_connection(acked.error());
            }
            return;
        }
        int attempts = flight.attempt + 1;
        if (attempts >= subscription.max_attempts) {
            dead_letter(flight.subscription, ticket.channel, ticket.delivery_tag,
                        std::move(flight.message), attempts, std::move(outcome.error));
            return;
        }
        auto delay = retry_delay(subscription, attempts);
        flight.message.exchange = options_.retry_exchange;
        flight.message.routing_key = retry_queue_name(subscription.queue, delay);
        set_header(flight.message, kAttemptHeader, std::int64_t{attempts});
        republish(flight.message, ticket.channel, ticket.delivery_tag);
    }

    void on_confirm(const AmqpConfirm& confirm) {
        std::vector<PendingConfirm> confirmed;
        if (confirm.multiple) {
            auto end = confirms_.upper_bound(confirm.delivery_tag);
            for (auto it = confirms_.begin(); it != end; ++it)
                confirmed.push_back(std::move(it->second));
            confirms_.erase(confirms_.begin(), end);
        } else if (auto found = confirms_.find(confirm.delivery_tag); found != confirms_.end()) {
            confirmed.push_back(std::move(found->second));
            confirms_.erase(found);
        }
        for (auto& pending : confirmed) {
            if (pending.done) {
                finish_publish(
                    pending.done,
                    confirm.ack ? nullptr : publish_error("RabbitMQ refused the event (nack)"));
                continue;
            }
            if (!connection_.is_open()) continue;
            // A refused copy: give the original back to its queue to be tried again.
            auto settled = confirm.ack
                               ? connection_.ack(pending.settle_channel, pending.settle_tag)
                               : connection_.nack(pending.settle_channel, pending.settle_tag, true);
            if (!settled) lose_connection(settled.error());
        }
    }

    void read_input() {
        for (int i = 0; i < kMaxEventsPerTurn && connection_.is_open(); ++i) {
            auto event = connection_.next_event();
            if (!event) {
                lose_connection(event.error());
                return;
            }
            if (std::holds_alternative<std::monostate>(*event)) return;
            last_input_ = Clock::now();
            if (auto* delivery = std::get_if<AmqpDelivery>(&*event)) {
                on_delivery(*delivery);
            } else if (auto* confirm = std::get_if<AmqpConfirm>(&*event)) {
                on_confirm(*confirm);
            } else if (auto* blocked = std::get_if<AmqpBlocked>(&*event)) {
                telemetry::log_warn(blocked->blocked ? "RabbitMQ blocks publishing"
                                                     : "RabbitMQ accepts publishing again",
                                    {{"reason", blocked->reason}});
                std::lock_guard lock(mutex_);
                blocked_ = blocked->blocked;
                blocked_reason_ = blocked->reason;
            } else if (auto* cancelled = std::get_if<AmqpConsumerCancelled>(&*event)) {
                // Its queue was deleted: reconnecting declares it again.
                std::size_t index = cancelled->channel - kFirstConsumerChannel;
                lose_connection("RabbitMQ cancelled the consumer of " +
                                (index < subscriptions.size() ? subscriptions[index].queue
                                                              : std::string("a queue")));
            }
        }
    }

    void check_deadlines() {
        if (!connection_.is_open()) return;
        auto now = Clock::now();
        if (!confirms_.empty() &&
            now - confirms_.begin()->second.sent_at > options_.confirm_timeout) {
            lose_connection("no publisher confirm within " +
                            std::to_string(options_.confirm_timeout.count()) + " ms");
            return;
        }
        // rabbitmq-c notices a silent broker only inside blocking reads; this loop never blocks
        // in one, so it keeps its own clock (any byte received counts).
        if (options_.heartbeat.count() > 0 && now - last_input_ > 2 * options_.heartbeat) {
            lose_connection("no heartbeat from RabbitMQ for " +
                            std::to_string(2 * options_.heartbeat.count()) + " s");
        }
    }

    const RabbitMqOptions options_;
    const AmqpEndpoint endpoint_;
    int wake_fd_ = -1;
    std::thread thread_;

    // Shared with other threads, under mutex_.
    std::mutex mutex_;
    std::deque<PublishRequest> requests_;
    std::deque<HandlerOutcome> outcomes_;
    std::size_t outstanding_ = 0;  // accepted publishes not completed yet
    bool accepting_ = false;
    bool stop_requested_ = false;
    bool abort_ = false;
    bool wake_pending_ = false;
    Completion stopped_;
    std::string last_error_;
    std::string blocked_reason_;
    std::atomic<bool> healthy_{false};

    // The driver thread's own (blocked_ is also written under mutex_ for submit()).
    bool blocked_ = false;
    AmqpConnection connection_;
    Completion connected_;
    std::uint64_t generation_ = 0;
    std::uint64_t next_publish_tag_ = 1;
    std::map<std::uint64_t, PendingConfirm> confirms_;
    std::map<std::pair<std::uint16_t, std::uint64_t>, InFlight> in_flight_;
    std::size_t handlers_running_ = 0;
    bool stopping_ = false;
    std::string logged_failure_;
    milliseconds backoff_;
    Clock::time_point next_attempt_{};
    Clock::time_point last_input_{};
};

// Runs one handler on the executor and reports how it ended to the driver thread.
asio::awaitable<void> run_handler(std::shared_ptr<Core> core, std::size_t index, Delivery delivery,
                                  Ticket ticket) {
    HandlerOutcome outcome;
    outcome.ticket = ticket;
    try {
        co_await core->subscriptions[index].handler(delivery);
    } catch (const std::exception& error) {
        outcome.failed = true;
        outcome.error = error.what();
    } catch (...) {
        outcome.failed = true;
        outcome.error = "unknown exception";
    }
    core->finished(std::move(outcome));
}

void Core::dispatch(std::size_t index, Delivery delivery, Ticket ticket) {
    // The coroutine starts on the executor's thread, not this one.
    asio::post(executor, [core = shared_from_this(), index, delivery = std::move(delivery),
                          ticket]() mutable {
        asio::co_spawn(core->executor, run_handler(core, index, std::move(delivery), ticket),
                       asio::detached);
    });
}

struct PublishInitiation {
    Core* core;
    AmqpMessage* message;

    template <class Handler>
    void operator()(Handler handler) const {
        core->submit(std::move(*message), completion_for(std::move(handler), core->executor));
    }
};

// Submits every message of a batch in order (the channel keeps that order on the wire) and
// completes once each has its confirm or its refusal, written to the matching outcome.
struct BatchInitiation {
    Core* core;
    // (index into outcomes, message)
    std::vector<std::pair<std::size_t, AmqpMessage>>* messages;
    std::vector<std::string>* outcomes;

    template <class Handler>
    void operator()(Handler handler) const {
        auto done = completion_for(std::move(handler), core->executor);
        auto left = std::make_shared<std::atomic<std::size_t>>(messages->size());
        for (auto& [index, message] : *messages) {
            auto* outcome = &(*outcomes)[index];
            core->submit(std::move(message), [outcome, left, done](std::exception_ptr error) {
                if (error) {
                    try {
                        std::rethrow_exception(error);
                    } catch (const std::exception& failure) {
                        *outcome = failure.what();
                    } catch (...) {
                    }
                    if (outcome->empty()) *outcome = "publish failed";
                }
                if (left->fetch_sub(1, std::memory_order_acq_rel) == 1) done(nullptr);
            });
        }
    }
};

struct StartInitiation {
    Core* core;

    template <class Handler>
    void operator()(Handler handler) const {
        core->launch(completion_for(std::move(handler), core->executor));
    }
};

struct StopInitiation {
    Core* core;

    template <class Handler>
    void operator()(Handler handler) const {
        core->request_stop(completion_for(std::move(handler), core->executor));
    }
};

AmqpMessage message_of(const std::string& id, const std::string& type, std::string envelope) {
    if (type.size() > kMaxShortString || id.size() > kMaxShortString) {
        throw PublishError("event id and type must be at most 255 bytes");
    }
    AmqpMessage message;
    message.routing_key = type;
    message.body = std::move(envelope);
    message.content_type = std::string(kContentType);
    message.message_id = id;
    message.type = type;
    return message;
}

AmqpMessage message_of(const Event& event) {
    return message_of(event.id, event.type, to_json(event));
}
AmqpMessage message_of(StoredEvent& event) {
    return message_of(event.id, event.type, std::move(event.envelope));
}

class RabbitMqBus final : public Bus {
  public:
    explicit RabbitMqBus(std::shared_ptr<Core> core) : core_(std::move(core)) {}
    ~RabbitMqBus() override { core_->abort_and_join(); }

    std::string_view driver() const override { return "rabbitmq"; }

    asio::awaitable<void> publish(Event event) override {
        auto message = message_of(event);
        message.exchange = core_->options().exchange;
        PublishInitiation initiation{core_.get(), &message};
        co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
            initiation, asio::use_awaitable);
    }

    // All in flight at once: one confirm round trip for the batch, not one per event.
    asio::awaitable<std::vector<std::string>> publish_batch(std::vector<Event> events) override {
        return publish_all(std::move(events));
    }
    asio::awaitable<std::vector<std::string>> publish_stored(
        std::vector<StoredEvent> events) override {
        return publish_all(std::move(events));
    }

    void subscribe(Subscription subscription) override {
        if (started_.load()) {
            throw std::logic_error("subscribe(" + subscription.queue + ") after start()");
        }
        const auto& queue = subscription.queue;
        auto refuse = [&](const std::string& why) {
            throw std::invalid_argument("subscription " + queue + ": " + why);
        };
        if (queue.empty() || queue.size() > kMaxQueueName) refuse("queue name of 1 to 200 bytes");
        if (subscription.bindings.empty()) refuse("needs at least one binding");
        for (const auto& binding : subscription.bindings) {
            if (binding.size() > kMaxShortString) refuse("binding longer than 255 bytes");
        }
        if (!subscription.handler) refuse("needs a handler");
        if (subscription.prefetch < 1 || subscription.prefetch > 65535) {
            refuse("prefetch must be from 1 to 65535");
        }
        if (subscription.max_attempts < 1) refuse("max_attempts must be at least 1");
        if (subscription.retry_delay.count() < 0 ||
            subscription.max_retry_delay < subscription.retry_delay) {
            refuse("needs 0 <= retry_delay <= max_retry_delay");
        }
        for (const auto& existing : core_->subscriptions) {
            if (existing.queue == queue) refuse("subscribed twice");
        }
        core_->subscriptions.push_back(std::move(subscription));
    }

    asio::awaitable<void> start() override {
        if (started_.exchange(true)) throw std::logic_error("the RabbitMQ bus started twice");
        StartInitiation initiation{core_.get()};
        co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
            initiation, asio::use_awaitable);
    }

    asio::awaitable<void> stop() override {
        if (!started_.load() || stopped_.exchange(true)) co_return;
        StopInitiation initiation{core_.get()};
        co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
            initiation, asio::use_awaitable);
        // The thread completed stop() as its last act: this join does not wait.
        core_->join();
    }

    bool healthy() const override { return core_->healthy(); }

  private:
    // The events as messages, all in flight together; an event that cannot be a message is
    // refused alone.
    template <class Events>
    asio::awaitable<std::vector<std::string>> publish_all(Events events) {
        std::vector<std::string> outcomes(events.size());
        std::vector<std::pair<std::size_t, AmqpMessage>> messages;
        messages.reserve(events.size());
        for (std::size_t i = 0; i < events.size(); ++i) {
            try {
                messages.emplace_back(i, message_of(events[i]));
                messages.back().second.exchange = core_->options().exchange;
            } catch (const PublishError& refused) {
                outcomes[i] = refused.what();
            }
        }
        if (messages.empty()) co_return outcomes;
        BatchInitiation initiation{core_.get(), &messages, &outcomes};
        co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
            initiation, asio::use_awaitable);
        co_return outcomes;
    }

    std::shared_ptr<Core> core_;
    std::atomic<bool> started_{false};
    std::atomic<bool> stopped_{false};
};

}  // namespace

Expected<std::unique_ptr<Bus>, std::string> make_rabbitmq_bus(RabbitMqOptions options,
                                                              asio::any_io_executor executor) {
    auto endpoint = parse_amqp_url(options.url);
    if (!endpoint) return unexpected("invalid RabbitMQ URL: " + endpoint.error());
    if (options.exchange.empty() || options.retry_exchange.empty() ||
        options.dead_letter_exchange.empty()) {
        return unexpected(std::string("the RabbitMQ exchanges need names"));
    }
    if (options.connect_timeout.count() <= 0 || options.confirm_timeout.count() <= 0 ||
        options.heartbeat.count() < 0) {
        return unexpected(std::string("RabbitMQ timeouts must be positive"));
    }
    if (options.reconnect_backoff_min.count() <= 0 ||
        options.reconnect_backoff_max < options.reconnect_backoff_min) {
        return unexpected(std::string("RabbitMQ reconnect backoff needs 0 < min <= max"));
    }
    if (options.max_pending_publishes == 0) {
        return unexpected(std::string("max_pending_publishes must be at least 1"));
    }
    auto core = std::make_shared<Core>(std::move(endpoint).value(), std::move(options),
                                       std::move(executor));
    std::unique_ptr<Bus> bus = std::make_unique<RabbitMqBus>(std::move(core));
    return Expected<std::unique_ptr<Bus>, std::string>(std::move(bus));
}

}  // namespace aether::platform::bus
