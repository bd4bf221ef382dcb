// RedisClient: hiredis encodes commands and parses replies; Asio owns the socket, timers, order.
#include "platform/cache/redis_client.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <charconv>
#include <deque>
#include <limits>
#include <optional>
#include <stdexcept>

#include "platform/hex.h"

namespace aether::platform::cache {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;
using Result = RedisClient::Result;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 16 * 1024;

RedisError make_error(RedisError::Kind kind, std::string message) {
    return RedisError{kind, std::move(message)};
}

long long to_ms(Clock::duration duration) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

struct ReaderDeleter {
    void operator()(redisReader* reader) const { redisReaderFree(reader); }
};
using ReaderPtr = std::unique_ptr<redisReader, ReaderDeleter>;

struct ReplyDeleter {
    void operator()(void* reply) const { freeReplyObject(reply); }
};
using RawReplyPtr = std::unique_ptr<void, ReplyDeleter>;

// hiredis limits nesting to 7 levels, so the recursion is bounded.
RedisReply convert(const redisReply& raw) {
    RedisReply out;
    switch (raw.type) {
        case REDIS_REPLY_STRING:
            out.type = RedisReply::Type::String;
            out.text.assign(raw.str, raw.len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = RedisReply::Type::Status;
            out.text.assign(raw.str, raw.len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = RedisReply::Type::Error;
            out.text.assign(raw.str, raw.len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = RedisReply::Type::Integer;
            out.integer = raw.integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.type = RedisReply::Type::Array;
            out.elements.reserve(raw.elements);
            for (std::size_t i = 0; i < raw.elements; ++i) {
                out.elements.push_back(convert(*raw.element[i]));
            }
            break;
        default:
            out.type = RedisReply::Type::Nil;
            break;
    }
    return out;
}

Expected<std::string, RedisError> encode(const std::vector<std::string>& argv) {
    if (argv.empty()) return unexpected(make_error(RedisError::Protocol, "empty command"));
    if (argv.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        return unexpected(make_error(RedisError::Protocol, "too many arguments"));
    }
    std::vector<const char*> pointers;
    std::vector<std::size_t> lengths;
    pointers.reserve(argv.size());
    lengths.reserve(argv.size());
    for (const auto& argument : argv) {
        pointers.push_back(argument.data());
        lengths.push_back(argument.size());
    }
    char* formatted = nullptr;
    int length = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), pointers.data(),
                                        lengths.data());
    if (length < 0 || formatted == nullptr) {
        return unexpected(make_error(RedisError::Protocol, "cannot encode command"));
    }
    std::string out(formatted, static_cast<std::size_t>(length));
    redisFreeCommand(formatted);
    return out;
}

// The next complete reply in the reader's buffer, nullopt when more bytes are needed.
Expected<std::optional<RedisReply>, RedisError> next_reply(redisReader& reader) {
    void* raw = nullptr;
    if (redisReaderGetReply(&reader, &raw) != REDIS_OK) {
        return unexpected(make_error(RedisError::Protocol,
                                     std::string("invalid reply from Redis: ") + reader.errstr));
    }
    if (raw == nullptr) return std::optional<RedisReply>();
    RawReplyPtr owned(raw);
    return std::optional<RedisReply>(convert(*static_cast<redisReply*>(raw)));
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        unsigned value = 0;
        auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
        if (ec != std::errc{} || end != text.data() + i + 3) return std::nullopt;
        out += static_cast<char>(value);
        i += 2;
    }
    return out;
}

bool parse_number(std::string_view text, unsigned long long max, unsigned long long& out) {
    if (text.empty()) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size() && out <= max;
}

bool is_ip_literal(const std::string& host) {
    error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

}  // namespace

std::string_view to_string(RedisError::Kind kind) {
    switch (kind) {
        case RedisError::Unavailable:
            return "unavailable";
        case RedisError::Timeout:
            return "timeout";
        case RedisError::Protocol:
            return "protocol";
        case RedisError::ServerError:
            return "server_error";
        case RedisError::QueueFull:
            return "queue_full";
    }
    return "unknown";
}

std::string RedisEndpoint::address() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

Expected<RedisEndpoint, std::string> parse_redis_url(std::string_view url) {
    auto fail = [](std::string why) { return unexpected("invalid Redis URL: " + std::move(why)); };
    auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) return fail("expected redis://host[:port][/db]");
    auto scheme = lower(url.substr(0, scheme_end));
    if (scheme == "rediss") return fail("TLS (rediss://) is not supported");
    if (scheme != "redis") return fail("the scheme must be redis://");
    auto rest = url.substr(scheme_end + 3);
    if (rest.find_first_of("?#") != std::string_view::npos) {
        return fail("query parameters and fragments are not supported");
    }
    auto slash = rest.find('/');
    auto authority = rest.substr(0, slash);
    auto path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

    RedisEndpoint out;
    // The last '@' ends the credentials: an unencoded '@' in a password still parses.
    auto at = authority.rfind('@');
    if (at != std::string_view::npos) {
        auto credentials = authority.substr(0, at);
        authority = authority.substr(at + 1);
        auto colon = credentials.find(':');
        if (colon == std::string_view::npos) {
            return fail("credentials need a password (redis://[user]:password@host)");
        }
        auto user = percent_decode(credentials.substr(0, colon));
        auto password = percent_decode(credentials.substr(colon + 1));
        if (!user || !password) return fail("bad percent-encoding in the credentials");
        if (password->empty() && !user->empty()) return fail("a user name needs a password");
        out.user = std::move(*user);
        out.password = std::move(*password);
    }

    std::string_view host;
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos || close == 1) return fail("bad IPv6 address");
        host = authority.substr(1, close - 1);
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return fail("bad port");
            port_text = after.substr(1);
            if (port_text.empty()) return fail("bad port");
        }
    } else {
        auto colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            if (port_text.empty()) return fail("bad port");
        }
        for (char c : host) {
            auto u = static_cast<unsigned char>(c);
            if (!(std::isalnum(u) || c == '-' || c == '.' || c == '_')) return fail("bad host");
        }
    }
    if (host.empty()) return fail("missing host");
    out.host = lower(host);
    if (!port_text.empty()) {
        unsigned long long port = 0;
        if (!parse_number(port_text, 65535, port) || port == 0) return fail("bad port");
        out.port = static_cast<std::uint16_t>(port);
    }
    if (!path.empty()) {
        unsigned long long db = 0;
        if (!parse_number(path, std::numeric_limits<int>::max(), db)) {
            return fail("the path must be a database number");
        }
        out.db = static_cast<int>(db);
    }
    return out;
}

RedisScript::RedisScript(std::string source) : source_(std::move(source)) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(source_.data(), source_.size(), digest, &length, EVP_sha1(), nullptr) != 1) {
        throw std::runtime_error("SHA1 is not available");
    }
    sha1_.assign(2 * length, '\0');
    write_hex(sha1_.data(), digest, length);
}

struct RedisClient::Impl : std::enable_shared_from_this<Impl> {
    using Strand = asio::strand<asio::any_io_executor>;

    // A socket being connected or connected, with its own parser: a new connection starts clean.
    struct Connection {
        explicit Connection(const Strand& strand) : socket(strand), watchdog(strand) {}
        tcp::socket socket;
        asio::steady_timer watchdog;  // bounds connect + AUTH/SELECT
        ReaderPtr reader{redisReaderCreate()};
        std::string out;  // bytes being written; kept for its capacity
        bool writing = false;
        bool timed_out = false;       // the watchdog closed the socket
        bool handshake_over = false;  // succeeded or failed: the watchdog no longer applies
    };

    // A command waiting for its reply; woken by cancelling its timer once `result` is set.
    struct Pending {
        Pending(const Strand& strand, std::deque<Pending*>& queue) : timer(strand), queue_(queue) {}
        ~Pending() {
            if (!result) std::erase(queue_, this);
        }
        Pending(const Pending&) = delete;
        Pending& operator=(const Pending&) = delete;

        asio::steady_timer timer;
        std::optional<Result> result;

      private:
        std::deque<Pending*>& queue_;
    };

    Impl(asio::any_io_executor executor, RedisOptions options, RedisEndpoint endpoint)
        : strand_(asio::make_strand(std::move(executor))),
          options_(std::move(options)),
          endpoint_(std::move(endpoint)),
          address_(endpoint_.address()) {
        options_.max_pending = std::max<std::size_t>(1, options_.max_pending);
        options_.reconnect_backoff_max =
            std::max(options_.reconnect_backoff_max, options_.reconnect_backoff_min);
    }

    // co_spawn needs a default-constructible result, hence the optional (always engaged).
    static asio::awaitable<std::optional<Result>> run(std::shared_ptr<Impl> self,
                                                      std::vector<std::string> argv) {
        auto result = co_await self->execute(argv);
        co_return std::optional<Result>(std::move(result));
    }

    asio::awaitable<Result> execute(const std::vector<std::string>& argv) {
        if (closed_) co_return unexpected(make_error(RedisError::Unavailable, "client closed"));
        if (pending_.size() >= options_.max_pending) {
            co_return unexpected(make_error(RedisError::QueueFull,
                                            std::to_string(pending_.size()) +
                                                " Redis commands already pending for " + address_));
        }
        auto payload = encode(argv);
        if (!payload) co_return unexpected(std::move(payload).error());

        Clock::duration budget = options_.command_timeout;
        if (!ready_) {
            if (!conn_) {
                auto now = Clock::now();
                if (now < retry_at_) {
                    co_return unexpected(make_error(
                        RedisError::Unavailable, "Redis at " + address_ +
                                                     " unavailable, next connection attempt in " +
                                                     std::to_string(to_ms(retry_at_ - now)) +
                                                     " ms (" + last_failure_ + ")"));
                }
                start_connect();
            } else if (failures_ > 0) {
                // During an outage only the command that started the attempt waits for it:
                // callers with a fallback get their answer now, not after connect_timeout.
                co_return unexpected(make_error(
                    RedisError::Unavailable,
                    "reconnecting to Redis at " + address_ + " (" + last_failure_ + ")"));
            }
            budget += options_.connect_timeout;
        }

        Pending pending(strand_, pending_);
        pending.timer.expires_after(budget);
        write_buffer_ += *payload;
        pending_.push_back(&pending);
        update_count();
        start_writer();
        while (!pending.result) {
            auto [ec] = co_await pending.timer.async_wait(kUse);
            if (pending.result) break;
            // Without a result, a cancellation means the deadline moved (the connection became
            // ready): wait again.
            if (!ec && Clock::now() >= pending.timer.expiry()) {
                fail_connection(
                    RedisError::Unavailable,
                    "connection to " + address_ + " reset: an earlier command timed out", &pending);
            }
        }
        co_return std::move(*pending.result);
    }

    void update_count() { pending_count_.store(pending_.size(), std::memory_order_relaxed); }

    void complete(Pending* pending, RedisReply reply) {
        if (reply.type == RedisReply::Type::Error) {
            pending->result.emplace(
                unexpected(make_error(RedisError::ServerError, std::move(reply.text))));
        } else {
            pending->result.emplace(std::move(reply));
        }
        pending->timer.cancel();
    }

    void note_failure(std::string reason) {
        connection_failures_.fetch_add(1, std::memory_order_relaxed);
        auto delay = options_.reconnect_backoff_min;
        for (int i = 0; i < failures_ && delay < options_.reconnect_backoff_max; ++i) delay *= 2;
        delay = std::min(delay, options_.reconnect_backoff_max);
        failures_ = std::min(failures_ + 1, 62);
        retry_at_ = Clock::now() + delay;
        last_failure_ = std::move(reason);
    }

    // Drops the connection (or the attempt) and fails every pending command; `timed_out`, if
    // any, gets Timeout, the others `kind` with `reason`.
    void fail_connection(RedisError::Kind kind, std::string reason, Pending* timed_out = nullptr) {
        drop_connection();
        write_buffer_.clear();
        std::string timeout_message;
        if (timed_out) {
            timeout_message = "Redis command timed out after " +
                              std::to_string(options_.command_timeout.count()) + " ms on " +
                              address_;
            note_failure(timeout_message);
        } else {
            note_failure(reason);
        }
        fail_pending(kind, reason, timed_out, timeout_message);
    }

    void fail_pending(RedisError::Kind kind, const std::string& reason, Pending* timed_out,
                      const std::string& timeout_message) {
        auto failed = std::move(pending_);
        pending_.clear();
        update_count();
        for (Pending* pending : failed) {
            if (pending == timed_out) {
                pending->result.emplace(
                    unexpected(make_error(RedisError::Timeout, timeout_message)));
            } else {
                pending->result.emplace(unexpected(make_error(kind, reason)));
            }
            pending->timer.cancel();
        }
    }

    void drop_connection() {
        ++generation_;
        ready_ = false;
        if (conn_) {
            error_code ignored;
            conn_->socket.close(ignored);
            conn_->watchdog.cancel();
            conn_.reset();
        }
    }

    void start_connect() {
        conn_ = std::make_shared<Connection>(strand_);
        ready_ = false;
        ++generation_;
        asio::co_spawn(strand_, connect(shared_from_this(), conn_, generation_), asio::detached);
    }

    void start_writer() {
        if (!ready_ || conn_->writing || write_buffer_.empty()) return;
        conn_->writing = true;
        asio::co_spawn(strand_, write_loop(shared_from_this(), conn_, generation_), asio::detached);
    }

    static asio::awaitable<void> connect(std::shared_ptr<Impl> self,
                                         std::shared_ptr<Connection> conn,
                                         std::uint64_t generation) {
        auto failure = co_await self->establish(conn, generation);
        if (generation != self->generation_) co_return;  // superseded (timeout, close)
        if (failure) {
            self->drop_connection();
            self->write_buffer_.clear();
            self->note_failure(*failure);
            self->fail_pending(RedisError::Unavailable, *failure, nullptr, {});
            co_return;
        }
        self->ready_ = true;
        self->connections_opened_.fetch_add(1, std::memory_order_relaxed);
        // Commands that waited for the connection get their full command_timeout from now.
        for (Pending* pending : self->pending_) {
            pending->timer.expires_after(self->options_.command_timeout);
        }
        asio::co_spawn(self->strand_, read_loop(self, conn, generation), asio::detached);
        self->start_writer();
    }

    // Connects, authenticates and selects the database; returns the failure, if any.
    asio::awaitable<std::optional<std::string>> establish(std::shared_ptr<Connection> shared,
                                                          std::uint64_t generation) {
        Connection& conn = *shared;
        auto deadline = Clock::now() + options_.connect_timeout;
        auto timeout_message = "connecting to Redis at " + address_ + " timed out after " +
                               std::to_string(options_.connect_timeout.count()) + " ms";
        std::vector<tcp::endpoint> endpoints;
        if (is_ip_literal(endpoint_.host)) {
            endpoints.emplace_back(asio::ip::make_address(endpoint_.host), endpoint_.port);
        } else {
            auto resolved = co_await resolve(deadline);
            if (generation != generation_) co_return std::nullopt;
            if (!resolved) co_return std::move(resolved).error();
            endpoints = std::move(*resolved);
        }

        // The watchdog closes the socket at the deadline, which fails whatever is in progress.
        conn.watchdog.expires_at(deadline);
        // The handler owns the connection: it may run after establish() has returned.
        conn.watchdog.async_wait([shared](error_code ec) {
            if (ec || shared->handshake_over) return;
            shared->timed_out = true;
            error_code ignored;
            shared->socket.close(ignored);
        });
        struct StopWatchdog {
            Connection& conn;
            ~StopWatchdog() {
                conn.handshake_over = true;
                conn.watchdog.cancel();
            }
        } stop_watchdog{conn};

        auto [connect_ec, endpoint] = co_await asio::async_connect(conn.socket, endpoints, kUse);
        if (generation != generation_) co_return std::nullopt;
        if (conn.timed_out) co_return timeout_message;
        if (connect_ec) {
            co_return "cannot connect to Redis at " + address_ + ": " + connect_ec.message();
        }
        error_code ignored;
        conn.socket.set_option(tcp::no_delay(true), ignored);

        std::string handshake;
        std::vector<std::string> steps;
        if (!endpoint_.password.empty()) {
            std::vector<std::string> auth{"AUTH"};
            if (!endpoint_.user.empty()) auth.push_back(endpoint_.user);
            auth.push_back(endpoint_.password);
            handshake += *encode(auth);
            steps.emplace_back("AUTH");
        }
        if (endpoint_.db != 0) {
            std::vector<std::string> select{"SELECT", std::to_string(endpoint_.db)};
            handshake += *encode(select);
            steps.emplace_back("SELECT " + std::to_string(endpoint_.db));
        }
        if (steps.empty()) co_return std::nullopt;

        auto [write_ec, written] =
            co_await asio::async_write(conn.socket, asio::buffer(handshake), kUse);
        if (generation != generation_) co_return std::nullopt;
        if (conn.timed_out) co_return timeout_message;
        if (write_ec) co_return "writing to Redis at " + address_ + ": " + write_ec.message();

        std::array<char, 4096> buffer;
        for (const auto& step : steps) {
            std::optional<RedisReply> reply;
            for (;;) {
                auto parsed = next_reply(*conn.reader);
                if (!parsed) co_return std::move(parsed).error().message;
                if (*parsed) {
                    reply = std::move(**parsed);
                    break;
                }
                auto [read_ec, n] =
                    co_await conn.socket.async_read_some(asio::buffer(buffer), kUse);
                if (generation != generation_) co_return std::nullopt;
                if (conn.timed_out) co_return timeout_message;
                if (read_ec) {
                    co_return "reading from Redis at " + address_ + ": " + read_ec.message();
                }
                redisReaderFeed(conn.reader.get(), buffer.data(), n);
            }
            if (reply->type == RedisReply::Type::Error) {
                co_return "Redis at " + address_ + " refused " + step + ": " + reply->text;
            }
        }
        co_return std::nullopt;
    }

    // getaddrinfo cannot be interrupted, so a timed-out resolve is abandoned, not awaited.
    asio::awaitable<Expected<std::vector<tcp::endpoint>, std::string>> resolve(
        Clock::time_point deadline) {
        struct State {
            explicit State(const Strand& strand) : resolver(strand), timer(strand) {}
            tcp::resolver resolver;
            asio::steady_timer timer;
            bool done = false;
            error_code ec;
            std::vector<tcp::endpoint> endpoints;
        };
        auto state = std::make_shared<State>(strand_);
        state->timer.expires_at(deadline);
        state->resolver.async_resolve(
            endpoint_.host, std::to_string(endpoint_.port), tcp::resolver::numeric_service,
            [state](error_code ec, const tcp::resolver::results_type& results) {
                state->done = true;
                state->ec = ec;
                for (const auto& entry : results) state->endpoints.push_back(entry.endpoint());
                state->timer.cancel();
            });
        co_await state->timer.async_wait(kUse);
        if (!state->done) {
            state->resolver.cancel();
            co_return unexpected("resolving Redis host " + endpoint_.host + " timed out");
        }
        if (state->ec || state->endpoints.empty()) {
            std::string why = state->ec ? state->ec.message() : std::string("no addresses");
            co_return unexpected("resolving Redis host " + endpoint_.host + ": " + why);
        }
        co_return std::move(state->endpoints);
    }

    static asio::awaitable<void> write_loop(std::shared_ptr<Impl> self,
                                            std::shared_ptr<Connection> conn,
                                            std::uint64_t generation) {
        while (!self->write_buffer_.empty()) {
            conn->out.clear();
            conn->out.swap(self->write_buffer_);
            auto [ec, n] = co_await asio::async_write(conn->socket, asio::buffer(conn->out), kUse);
            if (generation != self->generation_) co_return;
            if (ec) {
                self->fail_connection(
                    RedisError::Unavailable,
                    "writing to Redis at " + self->address_ + ": " + ec.message());
                co_return;
            }
        }
        conn->writing = false;
    }

    static asio::awaitable<void> read_loop(std::shared_ptr<Impl> self,
                                           std::shared_ptr<Connection> conn,
                                           std::uint64_t generation) {
        std::vector<char> buffer(kReadChunk);
        for (;;) {
            auto [ec, n] = co_await conn->socket.async_read_some(asio::buffer(buffer), kUse);
            if (generation != self->generation_) co_return;
            if (ec) {
                if (self->pending_.empty()) {
                    // An idle connection closed by the server (its `timeout`, a restart) is not a
                    // failure: the next command reconnects at once.
                    self->drop_connection();
                } else {
                    auto reason = ec == asio::error::eof
                                      ? std::string("connection closed by the server")
                                      : ec.message();
                    self->fail_connection(
                        RedisError::Unavailable,
                        "lost connection to Redis at " + self->address_ + ": " + reason);
                }
                co_return;
            }
            if (redisReaderFeed(conn->reader.get(), buffer.data(), n) != REDIS_OK) {
                self->fail_connection(RedisError::Protocol,
                                      "Redis reader failed: " + std::string(conn->reader->errstr));
                co_return;
            }
            for (;;) {
                auto reply = next_reply(*conn->reader);
                if (!reply) {
                    self->fail_connection(RedisError::Protocol, reply.error().message);
                    co_return;
                }
                if (!*reply) break;
                if (self->pending_.empty()) {
                    self->fail_connection(
                        RedisError::Protocol,
                        "Redis at " + self->address_ + " sent a reply nobody asked for");
                    co_return;
                }
                Pending* pending = self->pending_.front();
                self->pending_.pop_front();
                self->update_count();
                self->failures_ = 0;
                self->complete(pending, std::move(**reply));
            }
        }
    }

    void shutdown() {
        closed_ = true;
        drop_connection();
        write_buffer_.clear();
        fail_pending(RedisError::Unavailable, "client closed", nullptr, {});
    }

    Strand strand_;
    RedisOptions options_;
    RedisEndpoint endpoint_;
    std::string address_;

    // All below are touched on strand_ only.
    std::shared_ptr<Connection> conn_;  // being connected (ready_ false) or connected
    bool ready_ = false;
    // Bumped whenever conn_ is replaced or dropped, so loops of an old connection stop.
    std::uint64_t generation_ = 0;
    std::string write_buffer_;      // encoded commands not yet handed to the socket
    std::deque<Pending*> pending_;  // in send order; the front gets the next reply
    Clock::time_point retry_at_{};
    int failures_ = 0;  // consecutive, for the backoff
    std::string last_failure_;
    bool closed_ = false;

    std::atomic<std::uint64_t> connections_opened_{0};
    std::atomic<std::uint64_t> connection_failures_{0};
    std::atomic<std::size_t> pending_count_{0};
};

namespace {

RedisEndpoint endpoint_or_throw(const std::string& url) {
    auto endpoint = parse_redis_url(url);
    if (!endpoint) throw std::invalid_argument(endpoint.error());
    return std::move(*endpoint);
}

}  // namespace

RedisClient::RedisClient(asio::any_io_executor executor, RedisOptions options) {
    auto endpoint = endpoint_or_throw(options.url);
    impl_ = std::make_shared<Impl>(std::move(executor), std::move(options), std::move(endpoint));
}

RedisClient::~RedisClient() {
    close();
}

asio::awaitable<Result> RedisClient::command(std::vector<std::string> argv) {
    // Runs on the client's strand; the caller resumes on its own executor.
    auto task = Impl::run(impl_, std::move(argv));
    auto result = co_await asio::co_spawn(impl_->strand_, std::move(task), asio::use_awaitable);
    co_return std::move(*result);
}

asio::awaitable<Result> RedisClient::eval(const RedisScript& script, std::vector<std::string> keys,
                                          std::vector<std::string> args) {
    auto argv_for = [&](std::string verb, const std::string& body) {
        std::vector<std::string> argv;
        argv.reserve(3 + keys.size() + args.size());
        argv.push_back(std::move(verb));
        argv.push_back(body);
        argv.push_back(std::to_string(keys.size()));
        argv.insert(argv.end(), keys.begin(), keys.end());
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
    };
    auto by_sha = argv_for("EVALSHA", script.sha1());
    auto result = co_await command(std::move(by_sha));
    if (result || result.error().kind != RedisError::ServerError ||
        !result.error().message.starts_with("NOSCRIPT")) {
        co_return result;
    }
    auto by_source = argv_for("EVAL", script.source());
    co_return co_await command(std::move(by_source));
}

void RedisClient::close() {
    asio::dispatch(impl_->strand_, [impl = impl_] { impl->shutdown(); });
}

RedisClientStats RedisClient::stats() const {
    RedisClientStats out;
    out.connections_opened = impl_->connections_opened_.load(std::memory_order_relaxed);
    out.connection_failures = impl_->connection_failures_.load(std::memory_order_relaxed);
    out.pending = impl_->pending_count_.load(std::memory_order_relaxed);
    return out;
}

}  // namespace aether::platform::cache
