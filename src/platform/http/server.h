// The HTTP/1.1 server: Beast coroutines on a shared io_context, with limits and timeouts so a
// slow or half-open client cannot hold resources. What to answer is the RequestHandler's job.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "platform/expected.h"
#include "platform/http/message.h"

namespace aether::platform::http {

struct ServerOptions {
    std::size_t max_body_bytes = 1024 * 1024;
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_connections = 10000;
    std::chrono::milliseconds header_timeout{10'000};  // first byte to end of headers
    std::chrono::milliseconds body_timeout{30'000};    // end of headers to end of body
    std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
    std::chrono::milliseconds write_timeout{30'000};   // each write, including body pieces
    // 0: every request body is read whole (up to max_body_bytes) before the handler runs.
    // Otherwise chunked bodies and bodies larger than this reach the handler as
    // Request::body_stream while they arrive, up to max_streamed_body_bytes (the gateway).
    std::size_t stream_body_threshold = 0;
    std::uint64_t max_streamed_body_bytes = 1ull << 30;
    // An upgraded connection (WebSocket) with no byte either way for this long is closed.
    std::chrono::milliseconds tunnel_idle_timeout{600'000};
    // Each connection on its own strand; needless (and ~10% slower) when one thread runs the
    // io_context.
    bool strand_per_connection = true;
};

using RequestHandler = std::function<boost::asio::awaitable<Response>(Request&)>;

// A handler in phases, which the server runs in its connection's own coroutine frame: a handler
// that wraps the work in a coroutine of its own (ids and tracing before, metrics and the access
// log after) costs a frame allocation per request; this needs none of its own.
class RequestPhases {
  public:
    virtual ~RequestPhases() = default;
    // Prepares the request; true, with `response` set, when it is answered already.
    virtual bool begin(Request& request, Response& response) = 0;
    // The handler's own awaitable (not a coroutine around it, where that can be helped).
    virtual boost::asio::awaitable<Response> dispatch(Request& request) = 0;
    // The answer when dispatch threw.
    virtual Response failed(std::exception_ptr failure, Request& request) = 0;
    // Whatever every answer gets (headers, metrics, the access log), once it is known.
    virtual void end(Request& request, Response& response) = 0;
};
// Builds the response for errors found before a request reaches the handler (413, 431, 400,
// 408), so they carry the same envelope as everything else.
using ProtocolErrorResponder = std::function<Response(int status, std::string_view message)>;

class Server {
  public:
    Server(boost::asio::io_context& io, ServerOptions options, RequestHandler handler,
           ProtocolErrorResponder protocol_error);
    Server(boost::asio::io_context& io, ServerOptions options,
           std::shared_ptr<RequestPhases> phases, ProtocolErrorResponder protocol_error);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and listens; returns the bound port (useful with port 0).
    Expected<std::uint16_t, std::string> listen(const std::string& host, std::uint16_t port);
    void start();
    // Stops accepting, answers in-flight requests with Connection: close and closes idle
    // keep-alive connections. Safe to call from any thread.
    void begin_drain();
    std::size_t open_connections() const;
    std::size_t in_flight_requests() const;

  private:
    struct State;
    std::shared_ptr<State> state_;
};

}  // namespace aether::platform::http
