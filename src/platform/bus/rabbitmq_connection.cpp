// rabbitmq-c behind a small C++ surface: URL parsing, login, topology, publish, acks, and a
// non-blocking read of whatever the broker sent.
#include "platform/bus/rabbitmq_connection.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <limits>

namespace aether::platform::bus {
namespace {

amqp_bytes_t bytes(std::string_view text) {
    amqp_bytes_t result;
    result.len = text.size();
    result.bytes = const_cast<char*>(text.data());
    return result;
}

std::string text(amqp_bytes_t value) {
    if (value.len == 0 || value.bytes == nullptr) return {};
    return std::string(static_cast<const char*>(value.bytes), value.len);
}

timeval to_timeval(std::chrono::milliseconds duration) {
    auto ms = std::max<std::int64_t>(duration.count(), 1);
    timeval result{};
    result.tv_sec = static_cast<time_t>(ms / 1000);
    result.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    return result;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> percent_decode(std::string_view encoded) {
    std::string decoded;
    decoded.reserve(encoded.size());
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] != '%') {
            decoded.push_back(encoded[i]);
            continue;
        }
        if (i + 2 >= encoded.size()) return std::nullopt;
        int high = hex_value(encoded[i + 1]);
        int low = hex_value(encoded[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        decoded.push_back(static_cast<char>(high * 16 + low));
        i += 2;
    }
    return decoded;
}

std::string describe_close(std::string_view what, std::uint16_t code, amqp_bytes_t reply_text) {
    return std::string(what) + " (" + std::to_string(code) + " " + text(reply_text) + ")";
}

std::string describe(const amqp_rpc_reply_t& reply) {
    switch (reply.reply_type) {
        case AMQP_RESPONSE_NORMAL:
            return "ok";
        case AMQP_RESPONSE_NONE:
            return "no reply";
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return amqp_error_string2(reply.library_error);
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
                auto* close = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
                return describe_close("the broker closed the connection", close->reply_code,
                                      close->reply_text);
            }
            if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
                return describe_close("the broker closed the channel", close->reply_code,
                                      close->reply_text);
            }
            return std::string("unexpected method ") + amqp_method_name(reply.reply.id);
    }
    return "unknown reply";
}

amqp_table_entry_t bool_entry(const char* key, bool value) {
    amqp_table_entry_t entry{};
    entry.key = amqp_cstring_bytes(key);
    entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    entry.value.value.boolean = value ? 1 : 0;
    return entry;
}

std::optional<std::int64_t> integer_of(const amqp_field_value_t& value) {
    switch (value.kind) {
        case AMQP_FIELD_KIND_I8:
            return value.value.i8;
        case AMQP_FIELD_KIND_U8:
            return value.value.u8;
        case AMQP_FIELD_KIND_I16:
            return value.value.i16;
        case AMQP_FIELD_KIND_U16:
            return value.value.u16;
        case AMQP_FIELD_KIND_I32:
            return value.value.i32;
        case AMQP_FIELD_KIND_U32:
            return value.value.u32;
        case AMQP_FIELD_KIND_I64:
            return value.value.i64;
        case AMQP_FIELD_KIND_U64:
            return static_cast<std::int64_t>(std::min<std::uint64_t>(
                value.value.u64,
                static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())));
        default:
            return std::nullopt;
    }
}

AmqpMessage message_of(const amqp_envelope_t& envelope) {
    AmqpMessage message;
    message.exchange = text(envelope.exchange);
    message.routing_key = text(envelope.routing_key);
    message.body = text(envelope.message.body);
    const amqp_basic_properties_t& properties = envelope.message.properties;
    auto has = [&](amqp_flags_t flag) { return (properties._flags & flag) != 0; };
    if (has(AMQP_BASIC_CONTENT_TYPE_FLAG)) message.content_type = text(properties.content_type);
    if (has(AMQP_BASIC_MESSAGE_ID_FLAG)) message.message_id = text(properties.message_id);
    if (has(AMQP_BASIC_TYPE_FLAG)) message.type = text(properties.type);
    message.persistent =
        has(AMQP_BASIC_DELIVERY_MODE_FLAG) && properties.delivery_mode == AMQP_DELIVERY_PERSISTENT;
    if (has(AMQP_BASIC_HEADERS_FLAG)) {
        for (int i = 0; i < properties.headers.num_entries; ++i) {
            const amqp_table_entry_t& entry = properties.headers.entries[i];
            AmqpHeader header;
            header.name = text(entry.key);
            if (auto integer = integer_of(entry.value)) {
                header.value = *integer;
            } else if (entry.value.kind == AMQP_FIELD_KIND_UTF8 ||
                       entry.value.kind == AMQP_FIELD_KIND_BYTES) {
                header.value = text(entry.value.value.bytes);
            } else {
                continue;  // x-death and other structured headers: the driver does not read them
            }
            message.headers.push_back(std::move(header));
        }
    }
    return message;
}

}  // namespace

std::string AmqpEndpoint::address() const {
    auto bracketed = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return bracketed + ":" + std::to_string(port);
}

Expected<AmqpEndpoint, std::string> parse_amqp_url(std::string_view url) {
    constexpr std::string_view kScheme = "amqp://";
    if (url.starts_with("amqps://")) {
        return unexpected(std::string("amqps:// (TLS) is not supported; use amqp://"));
    }
    if (!url.starts_with(kScheme)) {
        return unexpected(std::string("the AMQP URL must start with amqp://"));
    }
    auto rest = url.substr(kScheme.size());
    if (rest.find_first_of("?#") != std::string_view::npos) {
        return unexpected(std::string("the AMQP URL may not have query parameters or a fragment"));
    }
    auto slash = rest.find('/');
    auto authority = rest.substr(0, slash);
    auto path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);

    AmqpEndpoint endpoint;
    // The last '@' ends the credentials: a password may contain an unencoded '@'.
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        auto userinfo = authority.substr(0, at);
        authority = authority.substr(at + 1);
        auto colon = userinfo.find(':');
        auto user = percent_decode(userinfo.substr(0, colon));
        if (!user || user->empty()) {
            return unexpected(std::string("the user in the AMQP URL is empty or badly encoded"));
        }
        endpoint.user = std::move(*user);
        endpoint.password.clear();
        if (colon != std::string_view::npos) {
            auto password = percent_decode(userinfo.substr(colon + 1));
            if (!password) {
                return unexpected(std::string("the password in the AMQP URL is badly encoded"));
            }
            endpoint.password = std::move(*password);
        }
    }

    std::string_view port;
    if (authority.starts_with('[')) {
        auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return unexpected(std::string("the AMQP URL has an unclosed '[' in its host"));
        }
        endpoint.host = std::string(authority.substr(1, close - 1));
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                return unexpected(std::string("the AMQP URL has text after its IPv6 host"));
            }
            port = after.substr(1);
            if (port.empty()) return unexpected(std::string("the AMQP URL has an empty port"));
        }
    } else {
        auto colon = authority.rfind(':');
        endpoint.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
            if (port.empty()) return unexpected(std::string("the AMQP URL has an empty port"));
        }
    }
    if (endpoint.host.empty()) return unexpected(std::string("the AMQP URL has no host"));
    if (!port.empty()) {
        unsigned value = 0;
        auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (error != std::errc() || end != port.data() + port.size() || value == 0 ||
            value > 65535) {
            return unexpected(
                std::string("the port in the AMQP URL is not a number from 1 to "
                            "65535"));
        }
        endpoint.port = static_cast<std::uint16_t>(value);
    }

    if (path.find('/') != std::string_view::npos) {
        return unexpected(
            std::string("the vhost in the AMQP URL must be one percent-encoded "
                        "segment (\"/\" is %2f)"));
    }
    if (!path.empty()) {
        auto vhost = percent_decode(path);
        if (!vhost) return unexpected(std::string("the vhost in the AMQP URL is badly encoded"));
        endpoint.vhost = std::move(*vhost);
    }
    return endpoint;
}

const AmqpHeader* AmqpMessage::header(std::string_view name) const {
    auto found = std::find_if(headers.begin(), headers.end(),
                              [&](const AmqpHeader& header) { return header.name == name; });
    return found == headers.end() ? nullptr : &*found;
}

AmqpConnection::~AmqpConnection() {
    abandon();
}

int AmqpConnection::fd() const {
    return state_ == nullptr ? -1 : amqp_get_sockfd(state_);
}

bool AmqpConnection::has_buffered_input() const {
    return state_ != nullptr && (amqp_frames_enqueued(state_) || amqp_data_in_buffer(state_));
}

AmqpConnection::Result AmqpConnection::open(const AmqpEndpoint& endpoint,
                                            const AmqpConnectOptions& options) {
    abandon();
    address_ = endpoint.address();
    state_ = amqp_new_connection();
    if (state_ == nullptr) return unexpected("cannot allocate a connection to " + address_);
    amqp_socket_t* socket = amqp_tcp_socket_new(state_);
    if (socket == nullptr) {
        abandon();
        return unexpected("cannot allocate a socket for " + address_);
    }
    timeval connect_timeout = to_timeval(options.connect_timeout);
    int status =
        amqp_socket_open_noblock(socket, endpoint.host.c_str(), endpoint.port, &connect_timeout);
    if (status != AMQP_STATUS_OK) {
        abandon();
        return unexpected("cannot connect to " + address_ + ": " + amqp_error_string2(status));
    }
    amqp_set_handshake_timeout(state_, &connect_timeout);
    timeval rpc_timeout = to_timeval(options.rpc_timeout);
    amqp_set_rpc_timeout(state_, &rpc_timeout);

    // connection.blocked makes the broker say when a resource alarm stops it reading publishes,
    // so the driver fails them fast instead of blocking in send().
    amqp_table_entry_t capabilities[] = {
        bool_entry("authentication_failure_close", true),
        bool_entry("exchange_exchange_bindings", true),
        bool_entry("connection.blocked", true),
        bool_entry("consumer_cancel_notify", true),
    };
    amqp_table_entry_t properties[2]{};
    properties[0].key = amqp_cstring_bytes("connection_name");
    properties[0].value.kind = AMQP_FIELD_KIND_UTF8;
    properties[0].value.value.bytes = bytes(options.connection_name);
    properties[1].key = amqp_cstring_bytes("capabilities");
    properties[1].value.kind = AMQP_FIELD_KIND_TABLE;
    properties[1].value.value.table.num_entries = 4;
    properties[1].value.value.table.entries = capabilities;
    amqp_table_t client_properties;
    client_properties.num_entries = 2;
    client_properties.entries = properties;

    auto heartbeat =
        static_cast<int>(std::clamp<std::int64_t>(options.heartbeat.count(), 0, 65535));
    amqp_rpc_reply_t reply = amqp_login_with_properties(
        state_, endpoint.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat, &client_properties,
        AMQP_SASL_METHOD_PLAIN, endpoint.user.c_str(), endpoint.password.c_str());
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        auto reason = describe(reply);
        abandon();
        return unexpected("cannot log in to " + address_ + " as " + endpoint.user + " (vhost " +
                          endpoint.vhost + "): " + reason);
    }
    return {};
}

void AmqpConnection::close() {
    if (state_ == nullptr) return;
    (void)amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    abandon();
}

void AmqpConnection::abandon() {
    if (state_ == nullptr) return;
    amqp_destroy_connection(state_);
    state_ = nullptr;
}

AmqpConnection::Result AmqpConnection::check_rpc(std::string_view what) {
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) return {};
    return unexpected(std::string(what) + " on " + address_ + ": " + describe(reply));
}

AmqpConnection::Result AmqpConnection::open_channel(std::uint16_t channel) {
    amqp_channel_open(state_, channel);
    return check_rpc("channel.open");
}

AmqpConnection::Result AmqpConnection::select_confirms(std::uint16_t channel) {
    amqp_confirm_select(state_, channel);
    return check_rpc("confirm.select");
}

AmqpConnection::Result AmqpConnection::declare_exchange(std::uint16_t channel,
                                                        const std::string& name,
                                                        const std::string& type) {
    amqp_exchange_declare(state_, channel, bytes(name), bytes(type), 0, 1, 0, 0, amqp_empty_table);
    return check_rpc("exchange.declare " + name);
}

AmqpConnection::Result AmqpConnection::declare_queue(std::uint16_t channel, const std::string& name,
                                                     const AmqpQueueArguments& arguments) {
    amqp_table_entry_t entries[3]{};
    int count = 0;
    if (arguments.message_ttl_ms) {
        entries[count].key = amqp_cstring_bytes("x-message-ttl");
        entries[count].value.kind = AMQP_FIELD_KIND_I64;
        entries[count].value.value.i64 = *arguments.message_ttl_ms;
        ++count;
    }
    if (arguments.dead_letter_exchange) {
        entries[count].key = amqp_cstring_bytes("x-dead-letter-exchange");
        entries[count].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[count].value.value.bytes = bytes(*arguments.dead_letter_exchange);
        ++count;
    }
    if (arguments.dead_letter_routing_key) {
        entries[count].key = amqp_cstring_bytes("x-dead-letter-routing-key");
        entries[count].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[count].value.value.bytes = bytes(*arguments.dead_letter_routing_key);
        ++count;
    }
    amqp_table_t table;
    table.num_entries = count;
    table.entries = entries;
    amqp_boolean_t durable = arguments.exclusive ? 0 : 1;
    amqp_boolean_t exclusive = arguments.exclusive ? 1 : 0;
    amqp_queue_declare(state_, channel, bytes(name), 0, durable, exclusive, exclusive, table);
    return check_rpc("queue.declare " + name);
}

AmqpConnection::Result AmqpConnection::bind_queue(std::uint16_t channel, const std::string& queue,
                                                  const std::string& exchange,
                                                  const std::string& routing_key) {
    amqp_queue_bind(state_, channel, bytes(queue), bytes(exchange), bytes(routing_key),
                    amqp_empty_table);
    return check_rpc("queue.bind " + queue + " to " + exchange + " (" + routing_key + ")");
}

AmqpConnection::Result AmqpConnection::set_prefetch(std::uint16_t channel, std::uint16_t count) {
    amqp_basic_qos(state_, channel, 0, count, 0);
    return check_rpc("basic.qos");
}

AmqpConnection::Result AmqpConnection::consume(std::uint16_t channel, const std::string& queue,
                                               const std::string& consumer_tag) {
    amqp_basic_consume(state_, channel, bytes(queue), bytes(consumer_tag), 0, 0, 0,
                       amqp_empty_table);
    return check_rpc("basic.consume " + queue);
}

AmqpConnection::Result AmqpConnection::cancel(std::uint16_t channel,
                                              const std::string& consumer_tag) {
    amqp_basic_cancel(state_, channel, bytes(consumer_tag));
    return check_rpc("basic.cancel");
}

AmqpConnection::Result AmqpConnection::publish(std::uint16_t channel, const AmqpMessage& message) {
    amqp_basic_properties_t properties{};
    properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    properties.delivery_mode =
        message.persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
    if (!message.content_type.empty()) {
        properties._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        properties.content_type = bytes(message.content_type);
    }
    if (!message.message_id.empty()) {
        properties._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        properties.message_id = bytes(message.message_id);
    }
    if (!message.type.empty()) {
        properties._flags |= AMQP_BASIC_TYPE_FLAG;
        properties.type = bytes(message.type);
    }
    std::vector<amqp_table_entry_t> headers(message.headers.size());
    for (std::size_t i = 0; i < message.headers.size(); ++i) {
        const AmqpHeader& header = message.headers[i];
        headers[i].key = bytes(header.name);
        if (const auto* integer = std::get_if<std::int64_t>(&header.value)) {
            headers[i].value.kind = AMQP_FIELD_KIND_I64;
            headers[i].value.value.i64 = *integer;
        } else {
            headers[i].value.kind = AMQP_FIELD_KIND_UTF8;
            headers[i].value.value.bytes = bytes(std::get<std::string>(header.value));
        }
    }
    if (!headers.empty()) {
        properties._flags |= AMQP_BASIC_HEADERS_FLAG;
        properties.headers.num_entries = static_cast<int>(headers.size());
        properties.headers.entries = headers.data();
    }
    int status =
        amqp_basic_publish(state_, channel, bytes(message.exchange), bytes(message.routing_key), 0,
                           0, &properties, bytes(message.body));
    if (status != AMQP_STATUS_OK) {
        return unexpected("basic.publish on " + address_ + ": " + amqp_error_string2(status));
    }
    return {};
}

AmqpConnection::Result AmqpConnection::ack(std::uint16_t channel, std::uint64_t delivery_tag) {
    int status = amqp_basic_ack(state_, channel, delivery_tag, 0);
    if (status != AMQP_STATUS_OK) {
        return unexpected("basic.ack on " + address_ + ": " + amqp_error_string2(status));
    }
    return {};
}

AmqpConnection::Result AmqpConnection::nack(std::uint16_t channel, std::uint64_t delivery_tag,
                                            bool requeue) {
    int status = amqp_basic_nack(state_, channel, delivery_tag, 0, requeue ? 1 : 0);
    if (status != AMQP_STATUS_OK) {
        return unexpected("basic.nack on " + address_ + ": " + amqp_error_string2(status));
    }
    return {};
}

Expected<AmqpEvent, std::string> AmqpConnection::next_event() {
    timeval immediately{};
    for (;;) {
        // Frees the frames decoded so far (nothing refers to them any more).
        amqp_maybe_release_buffers(state_);
        amqp_envelope_t envelope;
        amqp_rpc_reply_t reply = amqp_consume_message(state_, &envelope, &immediately, 0);
        if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
            AmqpDelivery delivery;
            delivery.channel = envelope.channel;
            delivery.delivery_tag = envelope.delivery_tag;
            delivery.redelivered = envelope.redelivered != 0;
            delivery.message = message_of(envelope);
            amqp_destroy_envelope(&envelope);
            return AmqpEvent(std::move(delivery));
        }
        if (reply.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION) {
            return unexpected("reading from " + address_ + ": " + describe(reply));
        }
        if (reply.library_error == AMQP_STATUS_TIMEOUT) return AmqpEvent();
        if (reply.library_error != AMQP_STATUS_UNEXPECTED_STATE) {
            return unexpected("reading from " + address_ + ": " + describe(reply));
        }

        // Something other than a delivery is next: rabbitmq-c put the frame back for us.
        amqp_frame_t frame;
        int status = amqp_simple_wait_frame_noblock(state_, &frame, &immediately);
        if (status != AMQP_STATUS_OK) {
            return unexpected("reading from " + address_ + ": " + amqp_error_string2(status));
        }
        if (frame.frame_type != AMQP_FRAME_METHOD) {
            return unexpected("unexpected frame from " + address_);
        }
        switch (frame.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
                return AmqpEvent(AmqpConfirm{ack->delivery_tag, ack->multiple != 0, true});
            }
            case AMQP_BASIC_NACK_METHOD: {
                auto* nack = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
                return AmqpEvent(AmqpConfirm{nack->delivery_tag, nack->multiple != 0, false});
            }
            case AMQP_CONNECTION_BLOCKED_METHOD: {
                auto* blocked =
                    static_cast<amqp_connection_blocked_t*>(frame.payload.method.decoded);
                return AmqpEvent(AmqpBlocked{true, text(blocked->reason)});
            }
            case AMQP_CONNECTION_UNBLOCKED_METHOD:
                return AmqpEvent(AmqpBlocked{false, {}});
            case AMQP_BASIC_CANCEL_METHOD:
                return AmqpEvent(AmqpConsumerCancelled{frame.channel});
            case AMQP_CHANNEL_CLOSE_METHOD: {
                auto* close = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
                auto reason =
                    describe_close("the broker closed channel " + std::to_string(frame.channel),
                                   close->reply_code, close->reply_text);
                amqp_channel_close_ok_t ok{};
                (void)amqp_send_method(state_, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
                return unexpected(reason + " on " + address_);
            }
            case AMQP_CONNECTION_CLOSE_METHOD: {
                auto* close = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
                auto reason = describe_close("the broker closed the connection", close->reply_code,
                                             close->reply_text);
                amqp_connection_close_ok_t ok{};
                (void)amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
                return unexpected(reason + " on " + address_);
            }
            case AMQP_BASIC_RETURN_METHOD: {
                // Only mandatory publishes come back, and the driver sends none; skip the content.
                amqp_message_t returned;
                reply = amqp_read_message(state_, frame.channel, &returned, 0);
                if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
                    return unexpected("reading from " + address_ + ": " + describe(reply));
                }
                amqp_destroy_message(&returned);
                continue;
            }
            default:
                continue;  // late replies (e.g. basic.cancel-ok) and the like
        }
    }
}

}  // namespace aether::platform::bus
