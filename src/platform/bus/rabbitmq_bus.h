// The RabbitMQ driver of the Bus (bus.h) over rabbitmq-c: the topology of ARCHITECTURE.md §6,
// publisher confirms, manual acks, retries through per-delay TTL queues, dead letters, and
// reconnection with backoff. rabbitmq-c blocks, so the connection lives on one thread of the
// driver; coroutines hand it work through a bounded queue and resume on their own executor.
//
// Topology, declared at every (re)connection (all durable):
//   exchange <exchange> (topic)            events, routing key = event type
//   queue <queue>                          per Subscription, bound with each of its bindings
//   exchange <retry_exchange> (direct)     failed deliveries waiting for their next attempt
//   queue <queue>.retry.<delay>ms          one per distinct retry delay of the subscription:
//                                          x-message-ttl = delay, dead-lettered through the
//                                          default exchange back to <queue> only
//   exchange <dead_letter_exchange> (direct), queue <queue>.dead
//                                          events that used up max_attempts, or malformed
// Messages are persistent, content_type application/json, message_id = event id, type = event
// type, body = the CloudEvents envelope (to_json); the header x-aether-attempt counts the failed
// attempts so far, and dead letters carry x-aether-error (the last error, truncated).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "platform/bus/bus.h"
#include "platform/expected.h"

namespace aether::platform::bus {

struct RabbitMqOptions {
    // amqp://user:password@host:port/vhost (percent-encoded; no path or "/" = vhost "/").
    std::string url = "amqp://guest:guest@127.0.0.1:5672/";
    std::string exchange = "aether.events";
    std::string retry_exchange = "aether.retry";
    std::string dead_letter_exchange = "aether.dead";
    // TCP connect plus the AMQP handshake; also bounds each declare/bind/consume at connection.
    std::chrono::milliseconds connect_timeout{5000};
    // From sending a publish to the broker's confirm; a late confirm fails every publish in
    // flight with PublishError and the connection is replaced.
    std::chrono::milliseconds confirm_timeout{5000};
    // Negotiated AMQP heartbeat; a broker silent for two intervals counts as gone. 0 = off.
    std::chrono::seconds heartbeat{10};
    // Delay before reconnecting after a failure, doubled per consecutive failure up to the max.
    std::chrono::milliseconds reconnect_backoff_min{100};
    std::chrono::milliseconds reconnect_backoff_max{5000};
    // Publishes queued or awaiting their confirm; more fail at once with PublishError.
    std::size_t max_pending_publishes = 1024;
    // Shown in the broker's connection list.
    std::string connection_name = "aether";
};

// Fails on a malformed URL (the message never contains the password). Nothing connects before
// start(): it connects once (waiting for that attempt, which may fail: the driver then keeps
// retrying in the background and healthy() stays false) and returns; consumers run until stop().
// Handlers run on `executor`; publish() resumes its caller on the caller's executor. While not
// connected, publish() fails at once with PublishError (the outbox relay retries later).
Expected<std::unique_ptr<Bus>, std::string> make_rabbitmq_bus(RabbitMqOptions options,
                                                              asio::any_io_executor executor);

}  // namespace aether::platform::bus
