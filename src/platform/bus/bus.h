// The event bus every module publishes to and consumes from (ARCHITECTURE.md §6): CloudEvents 1.0
// envelopes on a topic exchange, at-least-once delivery to one durable queue per consuming module,
// retries with growing delay, and a dead-letter queue after N failed attempts. Two drivers share
// these semantics: RabbitMQ (microservices) and an embedded broker on SQLite (all-in-one).
//
// Modules never publish directly: they append to their transactional outbox (outbox.h) inside the
// transaction that changes their state, and the outbox relay publishes with confirms.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::bus {

namespace asio = boost::asio;

// A CloudEvents 1.0 event. `type` is also the routing key ("task.created").
struct Event {
    std::string id;      // "evt_<ULID>": unique, sortable
    std::string source;  // "/aether/<module>", e.g. "/aether/tasks"
    std::string type;
    std::string time;         // RFC 3339 UTC with milliseconds
    std::string traceparent;  // W3C trace context of the request that caused it; may be empty
    boost::json::object data;
};

// A new event with a fresh id and the current time.
Event make_event(std::string_view module, std::string type, boost::json::object data,
                 std::string traceparent = {});

// The structured-mode JSON envelope: specversion "1.0", id, source, type, time,
// datacontenttype "application/json", data, and traceparent when present.
std::string to_json(const Event& event);
// Parses and checks an envelope (required attributes present and strings, specversion "1.0",
// data an object); the error names the first problem.
Expected<Event, std::string> parse_event(std::string_view json);

// An event as the outbox keeps it: the envelope's text, with the attributes brokers route and
// label it by. Publishing it sends the text as it is, instead of an Event serialized again.
struct StoredEvent {
    std::string id;
    std::string type;
    std::string envelope;
};
// Checks an envelope as parse_event does, with the same errors, and keeps its text; nothing of
// `data` is copied.
Expected<StoredEvent, std::string> parse_stored_event(std::string envelope);

// RabbitMQ topic matching: words separated by '.', '*' matches exactly one word, '#' zero or more.
bool topic_matches(std::string_view pattern, std::string_view routing_key);

// What a handler received, and how many times it was delivered before (0 on the first attempt).
struct Delivery {
    Event event;
    int attempt = 0;
};

// A handler returns normally to acknowledge; throwing schedules a retry (or dead-letters the event
// once the subscription's attempts are used up). Handlers must be idempotent (see idempotency.h):
// delivery is at least once.
using Handler = std::function<asio::awaitable<void>(const Delivery&)>;

struct Subscription {
    // The durable queue, named after the consuming module: "analytics.events".
    std::string queue;
    // Topic patterns bound to the queue: "task.*", "user.registered", "#".
    std::vector<std::string> bindings;
    Handler handler;
    // Deliveries in flight for this queue (RabbitMQ prefetch).
    int prefetch = 16;
    // Attempts before the event goes to the queue's dead letters ("<queue>.dead").
    int max_attempts = 5;
    // Delay before retry n (1-based) is retry_delay * 2^(n-1), capped at max_retry_delay.
    std::chrono::milliseconds retry_delay{1000};
    std::chrono::milliseconds max_retry_delay{60000};
    // For operator tools (`aether events tail`): the queue lives only while this subscriber
    // runs (RabbitMQ: exclusive, auto-deleted; embedded: removed by stop()) and has no retries
    // or dead letters: a failed delivery is dropped.
    bool transient = false;
};

// The broker refused or did not confirm a publish in time; the caller (the relay) retries later.
class PublishError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The outcome publish_batch gives the events behind a refused one that it did not try.
inline constexpr std::string_view kNotAttempted =
    "not published: an earlier event of the batch failed";

class Bus {
  public:
    virtual ~Bus() = default;
    // "rabbitmq" or "embedded".
    virtual std::string_view driver() const = 0;
    // Publishes to the exchange and returns once the broker has confirmed it (stored durably);
    // throws PublishError otherwise. Order is kept among the publishes of one caller that awaits
    // each before the next.
    virtual asio::awaitable<void> publish(Event event) = 0;
    // Publishes `events` in order and reports each one's fate: "" once confirmed, else why it was
    // not. Drivers keep them in flight together (RabbitMQ) or store them in one transaction
    // (embedded); this default publishes one by one and stops at the first failure, leaving the
    // rest unsent (kNotAttempted), so that nothing overtakes a refused event.
    virtual asio::awaitable<std::vector<std::string>> publish_batch(std::vector<Event> events);
    // publish_batch for events as the outbox keeps them. The RabbitMQ driver sends each
    // envelope's text as it is; this default parses them and calls publish_batch.
    virtual asio::awaitable<std::vector<std::string>> publish_stored(
        std::vector<StoredEvent> events);
    // Declares the queue and its bindings (idempotently) and starts consuming. Call before start().
    virtual void subscribe(Subscription subscription) = 0;
    // Connects and runs the consumers until stop(); reconnects with backoff after a broker loss.
    virtual asio::awaitable<void> start() = 0;
    // Stops consuming, lets handlers in flight finish (their deliveries are acknowledged), closes.
    virtual asio::awaitable<void> stop() = 0;
    // True while connected to the broker (readiness).
    virtual bool healthy() const = 0;
};

}  // namespace aether::platform::bus
