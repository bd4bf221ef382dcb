// Redis client: one pipelined connection on Asio coroutines, hiredis only for the RESP protocol.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::cache {

// One reply, owned. A top-level error reply comes back as RedisError::ServerError instead;
// Error appears only inside arrays (EXEC, scripts returning error tables).
struct RedisReply {
    enum class Type { Nil, Integer, String, Status, Error, Array };
    Type type = Type::Nil;
    std::int64_t integer = 0;          // Integer
    std::string text;                  // String, Status, Error
    std::vector<RedisReply> elements;  // Array

    bool is_nil() const { return type == Type::Nil; }
    bool operator==(const RedisReply&) const = default;
};

struct RedisError {
    enum Kind {
        Unavailable,  // not connected: connect failed, connection lost, backing off, closed
        Timeout,      // no reply within command_timeout (the command may have run)
        Protocol,     // the server sent bytes that are not RESP, or a reply nobody asked for
        ServerError,  // the server answered with an error reply; the connection stays usable
        QueueFull,    // max_pending commands already waiting
    };
    Kind kind = Unavailable;
    // Never contains the password.
    std::string message;
};

std::string_view to_string(RedisError::Kind kind);

// redis://[[user]:password@]host[:port][/db]; user and password may be percent-encoded.
struct RedisEndpoint {
    std::string host;  // without IPv6 brackets
    std::uint16_t port = 6379;
    std::string user;      // empty = AUTH with the password only (requirepass)
    std::string password;  // empty = no AUTH
    int db = 0;            // SELECTed when not 0

    // host:port, for messages (never the credentials).
    std::string address() const;
};

// The error message names what is wrong, never the URL (it may carry the password).
Expected<RedisEndpoint, std::string> parse_redis_url(std::string_view url);

struct RedisOptions {
    std::string url = "redis://127.0.0.1:6379";
    // Bounds resolve + TCP connect + AUTH/SELECT of a new connection.
    std::chrono::milliseconds connect_timeout{500};
    // Bounds one command from being queued on a ready connection to its reply; a command that
    // has to wait for a new connection waits at most connect_timeout for it on top.
    std::chrono::milliseconds command_timeout{200};
    // Commands queued or awaiting a reply; more fail at once with QueueFull.
    std::size_t max_pending = 10000;
    // After a failed connection (or one torn down by a timeout or I/O error) no new connection is
    // tried for this long; it doubles with each consecutive failure up to the max, and commands
    // fail at once with Unavailable meanwhile. The first command after it tries to connect and
    // waits for the attempt; others fail at once until it succeeds. A reply resets the backoff.
    std::chrono::milliseconds reconnect_backoff_min{100};
    std::chrono::milliseconds reconnect_backoff_max{5000};
};

struct RedisClientStats {
    std::uint64_t connections_opened = 0;   // successful connects (after AUTH/SELECT)
    std::uint64_t connection_failures = 0;  // failed connects and connections torn down
    std::size_t pending = 0;                // commands queued or awaiting a reply
};

// A Lua script and its SHA1, for RedisClient::eval.
class RedisScript {
  public:
    explicit RedisScript(std::string source);
    const std::string& source() const { return source_; }
    const std::string& sha1() const { return sha1_; }  // lower-case hex

  private:
    std::string source_;
    std::string sha1_;
};

// One connection, commands pipelined: they are written in call order and replies are matched in
// FIFO order. Connects lazily on the first command (AUTH/SELECT as the URL says). A command
// timeout or an I/O error fails that command and every pending one and closes the connection;
// the next command reconnects, subject to the backoff.
//
// Thread-safe: the client runs on its own strand of the given executor, so command()/eval() may
// be awaited from coroutines on any executor or thread (they resume on their own executor).
// Destroy the client before its io_context; commands still pending then fail with Unavailable.
class RedisClient {
  public:
    // Throws std::invalid_argument for an invalid options.url (message without the URL).
    explicit RedisClient(boost::asio::any_io_executor executor, RedisOptions options = {});
    ~RedisClient();
    RedisClient(const RedisClient&) = delete;
    RedisClient& operator=(const RedisClient&) = delete;

    using Result = Expected<RedisReply, RedisError>;

    // Sends argv as one command (binary-safe arguments).
    boost::asio::awaitable<Result> command(std::vector<std::string> argv);

    // EVALSHA; on a NOSCRIPT reply (script cache flushed, server restarted) EVAL once, which also
    // loads the script for the next call.
    boost::asio::awaitable<Result> eval(const RedisScript& script, std::vector<std::string> keys,
                                        std::vector<std::string> args);

    // Fails pending and future commands with Unavailable and closes the connection.
    void close();

    RedisClientStats stats() const;

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace aether::platform::cache
