// Outbound HTTP/1.1 client with pooled keep-alive connections, TLS verification and timeouts.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform/expected.h"
#include "platform/http/message.h"

namespace aether::platform::http {

struct ClientRequest {
    std::string method = "GET";
    // http://host[:port]/path?query or https://...; IPv6 hosts in brackets.
    std::string url;
    // Sent as given; Host, User-Agent and Content-Length are added when absent.
    std::vector<std::pair<std::string, std::string>> headers;
    // More headers, after `headers`, as lines the caller wrote: "Name: value\r\n" each (a proxy
    // forwarding a request writes them into one buffer rather than two strings per header).
    // Checked like `headers`: an empty line, a line without a name or a stray CR or LF is refused.
    std::string header_lines;
    std::string body;
    // send_streamed only: a body sent while it is read from here (after `body`), with the
    // caller's Content-Length header, or chunked when it gives none. Such a request is never
    // replayed once a byte of it was sent.
    std::shared_ptr<BodySource> body_stream;
    // Bounds the whole call (pool wait, connect, write, read); 0 = ClientOptions::request_timeout.
    // For send_streamed it bounds the pool wait, the connect and the head; a streamed body is
    // bounded per piece by read_timeout instead, and the wait for the answer restarts after it.
    std::chrono::milliseconds timeout{0};
    // A request that fails on a reused pooled connection before any response byte is sent
    // again on a fresh one when idempotent; a proxy that must never deliver a request twice
    // turns this off.
    bool replay_on_stale_connection = true;
    // send_streamed only: the longest wait for the response head once the request is written,
    // for each piece of the body, and for each read of an upgraded connection; 0 = `timeout`.
    std::chrono::milliseconds read_timeout{0};
};

struct ClientResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    // The first header with this name (case-insensitive); empty when absent.
    std::string_view header(std::string_view name) const;
};

// A response whose body is read while the caller forwards it (a proxy): memory stays bounded
// whatever the body's size, and Server-Sent Events arrive as they are sent.
struct StreamedResponse {
    int status = 0;
    // As the upstream sent them, one line each: a proxy passes them on without a pair of
    // strings per header.
    HeaderLines header_lines;
    // Never null except after an upgrade or with complete_body; reading it to the end returns
    // the connection to the pool, dropping it part-way closes the connection.
    std::shared_ptr<BodySource> body;
    // A small body that arrived together with the head (most API answers): given whole, and the
    // connection is already back in the pool.
    std::optional<std::string> complete_body;
    // After 101 Switching Protocols (when the request asked for an upgrade): the upstream
    // connection itself, for relaying bytes both ways.
    std::shared_ptr<Tunnel> upgraded;

    std::string_view header(std::string_view name) const;
};

struct ClientError {
    enum Kind {
        InvalidUrl,
        Resolve,
        Connect,
        Tls,
        Timeout,
        ProtocolError,
        BodyTooLarge,
        PoolExhausted,
        Closed,
        // The request's own body_stream failed (the client of a proxy went away, sent a
        // malformed or oversized body): the upstream is not at fault.
        RequestBody,
    };
    Kind kind = ProtocolError;
    std::string message;
    // True once any byte of the request was written: the upstream may have acted on it, so only
    // idempotent requests may be retried by the caller.
    bool request_sent = false;
};

std::string_view to_string(ClientError::Kind kind);

struct ClientOptions {
    // Bounds resolve + TCP connect + TLS handshake of a new connection.
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds request_timeout{10000};
    // Pooled connections unused for this long are closed.
    std::chrono::milliseconds idle_timeout{30000};
    std::size_t max_connections_per_host = 64;
    std::size_t max_response_body = 8 * 1024 * 1024;
    bool verify_tls = true;
    // PEM file of trusted CAs; empty = the system's default verify paths.
    std::string ca_file;
    std::string user_agent = "aether";
};

struct ClientStats {
    std::size_t open_connections = 0;  // idle + in use + being connected, all hosts
    std::size_t idle_connections = 0;
    std::size_t waiting_requests = 0;       // queued for a connection slot
    std::uint64_t connections_created = 0;  // established since the client was made
};

// Not thread-safe: call send/close_idle/stats from the one executor (or strand) given to the
// constructor. Destroy the client before its io_context; requests still in flight then finish
// without pooling their connections.
class HttpClient {
  public:
    explicit HttpClient(boost::asio::any_io_executor executor, ClientOptions options = {});
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Expected failures (network, TLS, timeouts, limits) come back as ClientError, never thrown.
    // A pooled connection that fails before any response byte is retried once on a fresh
    // connection when the method is idempotent.
    boost::asio::awaitable<Expected<ClientResponse, ClientError>> send(ClientRequest request);
    // The same exchange, returning as soon as the response head has arrived. Retries like
    // send(); a failure while reading the body is reported by the body source. Unlike send(),
    // it prepares the request (the client's origin table and pools) when called, before the
    // result is awaited: call it on the thread or strand the client belongs to.
    boost::asio::awaitable<Expected<StreamedResponse, ClientError>> send_streamed(
        ClientRequest request);

    // Closes every pooled idle connection now (e.g. after an upstream's address changed).
    void close_idle();
    // Closes idle connections, fails queued and future sends with ClientError::Closed.
    void close();

    ClientStats stats() const;

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace aether::platform::http
