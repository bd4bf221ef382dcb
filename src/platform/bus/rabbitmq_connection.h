// One AMQP 0-9-1 connection through rabbitmq-c, for the RabbitMQ bus driver's own thread: every
// call may block (each bounded by the connect or RPC timeout) and nothing here is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "platform/expected.h"

// rabbitmq-c's connection handle, without its header.
struct amqp_connection_state_t_;

namespace aether::platform::bus {

// amqp://[user[:password]@]host[:port][/vhost]; user, password and vhost may be
// percent-encoded. No path or "/" is the vhost "/" (as amqplib reads it), "/%2f" too.
struct AmqpEndpoint {
    std::string host;  // without IPv6 brackets
    std::uint16_t port = 5672;
    std::string user = "guest";
    std::string password = "guest";
    std::string vhost = "/";

    // host:port, for messages (never the credentials).
    std::string address() const;
};

// The error names what is wrong, never the URL (it may carry the password).
Expected<AmqpEndpoint, std::string> parse_amqp_url(std::string_view url);

// A header value the driver reads or writes: integers (any AMQP integer kind) and strings.
struct AmqpHeader {
    std::string name;
    std::variant<std::int64_t, std::string> value;
};

// A message to publish (persistent) or one delivered.
struct AmqpMessage {
    std::string exchange;
    std::string routing_key;
    std::string body;
    std::string content_type;
    std::string message_id;
    std::string type;
    std::vector<AmqpHeader> headers;
    bool persistent = true;

    const AmqpHeader* header(std::string_view name) const;
};

struct AmqpDelivery {
    std::uint16_t channel = 0;
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
    AmqpMessage message;
};

// A publisher confirm: basic.ack or basic.nack for one tag, or for every tag up to it.
struct AmqpConfirm {
    std::uint64_t delivery_tag = 0;
    bool multiple = false;
    bool ack = true;
};

// connection.blocked / connection.unblocked: the broker stopped reading publishes (a resource
// alarm) or resumed.
struct AmqpBlocked {
    bool blocked = true;
    std::string reason;
};

// The broker cancelled a consumer (its queue was deleted).
struct AmqpConsumerCancelled {
    std::uint16_t channel = 0;
};

using AmqpEvent =
    std::variant<std::monostate, AmqpDelivery, AmqpConfirm, AmqpBlocked, AmqpConsumerCancelled>;

struct AmqpQueueArguments {
    std::optional<std::int64_t> message_ttl_ms;          // x-message-ttl
    std::optional<std::string> dead_letter_exchange;     // x-dead-letter-exchange
    std::optional<std::string> dead_letter_routing_key;  // x-dead-letter-routing-key
    // Not durable, exclusive to this connection and deleted with it (operator tools).
    bool exclusive = false;
};

struct AmqpConnectOptions {
    std::chrono::milliseconds connect_timeout{5000};  // TCP connect and the login handshake
    std::chrono::milliseconds rpc_timeout{5000};      // each declare, bind, consume, close
    std::chrono::seconds heartbeat{10};               // 0 disables heartbeats
    std::string connection_name = "aether";           // shown by the broker's tools
};

// Every method returning an error leaves the connection unusable: the caller abandons it.
class AmqpConnection {
  public:
    using Result = Expected<void, std::string>;

    AmqpConnection() = default;
    ~AmqpConnection();
    AmqpConnection(const AmqpConnection&) = delete;
    AmqpConnection& operator=(const AmqpConnection&) = delete;

    // Connects and logs in; errors never contain the password.
    Result open(const AmqpEndpoint& endpoint, const AmqpConnectOptions& options);
    bool is_open() const { return state_ != nullptr; }
    // The socket, to poll for input; -1 when closed.
    int fd() const;
    // True when rabbitmq-c holds received bytes or frames that poll() on fd() would not report.
    bool has_buffered_input() const;

    // Closes with the close handshake (bounded by the RPC timeout), then frees the connection.
    void close();
    // Frees the connection without a handshake (the socket is dead or the broker misbehaved).
    void abandon();

    Result open_channel(std::uint16_t channel);
    Result select_confirms(std::uint16_t channel);
    Result declare_exchange(std::uint16_t channel, const std::string& name,
                            const std::string& type);
    // Durable, not exclusive, not auto-deleted, unless arguments.exclusive.
    Result declare_queue(std::uint16_t channel, const std::string& name,
                         const AmqpQueueArguments& arguments = {});
    Result bind_queue(std::uint16_t channel, const std::string& queue, const std::string& exchange,
                      const std::string& routing_key);
    Result set_prefetch(std::uint16_t channel, std::uint16_t count);
    // Manual acknowledgements.
    Result consume(std::uint16_t channel, const std::string& queue,
                   const std::string& consumer_tag);
    Result cancel(std::uint16_t channel, const std::string& consumer_tag);

    // Sends without waiting; the confirm (on a confirm-mode channel) arrives as an event.
    Result publish(std::uint16_t channel, const AmqpMessage& message);
    Result ack(std::uint16_t channel, std::uint64_t delivery_tag);
    Result nack(std::uint16_t channel, std::uint64_t delivery_tag, bool requeue);

    // The next delivery, confirm or notice already received; monostate when there is none yet.
    // Never waits for the socket (but reads a delivery's content frames once its method arrived).
    Expected<AmqpEvent, std::string> next_event();

  private:
    Result check_rpc(std::string_view what);

    amqp_connection_state_t_* state_ = nullptr;
    std::string address_;
};

}  // namespace aether::platform::bus
