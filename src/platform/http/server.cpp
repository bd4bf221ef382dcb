// Beast session loop: read headers (header timeout), read body (body timeout), hand the request to
// the handler, write, then wait for the next request (idle timeout) or close.
//
// Timeouts are deadlines, not timers: a connection stores when its current read or write must be
// over, and one sweep per server cancels the IO of connections past theirs. Beast's tcp_stream
// arms and cancels a timer for every read and write (three per request), which cost more than a
// small request's own work.
#include "platform/http/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <tuple>

#include "platform/http/draining_read.h"
#include "platform/http/head_text.h"
#include "platform/http/parsing.h"
#include "platform/http/quick_head.h"
#include "platform/http/send_now.h"
#include "platform/telemetry/log.h"

namespace aether::platform::http {

namespace asio = boost::asio;
using namespace std::string_view_literals;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

namespace {

// CLOCK_MONOTONIC_COARSE: a few nanoseconds to read, a few milliseconds of resolution, which
// is plenty for timeouts of tens of milliseconds and more and costs nothing per request.
std::int64_t coarse_now_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

constexpr std::int64_t kNoDeadline = std::numeric_limits<std::int64_t>::max();

// Connections accepted in one go once the acceptor reports one (accept_loop). Bounded so that
// a flood of connects cannot hold the event loop away from the connections it already has.
constexpr int kAcceptBurst = 64;
// How long accepting rests after accept() failed, e.g. out of descriptors (nginx rests 500 ms,
// its accept_mutex_delay).
constexpr auto kAcceptFailurePause = std::chrono::milliseconds(100);

// A client connection: its socket, the deadline of its current IO, and whether it is idle
// (between requests), for the sweep and the drain, which run on other threads. The socket
// itself is only touched on the connection's executor.
struct Connection {
    explicit Connection(tcp::socket s) : socket(std::move(s)) {}

    tcp::socket socket;
    std::atomic<bool> idle{true};
    std::atomic<std::int64_t> deadline_ns{kNoDeadline};
    // Set when the sweep cancelled the IO for its deadline; read after an IO failed.
    bool timed_out = false;
    std::string response_head;  // reused by every response, so its capacity is allocated once

    void expires_after(std::chrono::milliseconds timeout) {
        expires_at(coarse_now_ns() +
                   std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
    }
    void expires_at(std::int64_t when_ns) {
        timed_out = false;
        deadline_ns.store(when_ns, std::memory_order_relaxed);
    }
    void expires_never() { expires_at(kNoDeadline); }
    // An IO error that the deadline caused, not the peer.
    bool timeout(const beast::error_code& ec) const { return ec && timed_out; }
};

// How the end of a body_source is marked: by the Content-Length the handler gave, by chunked
// encoding, or (HTTP/1.0) by closing the connection.
enum class BodyFraming { Fixed, Chunked, UntilClose };

// An answer whose head (and inline body) went to the socket as far as it took them at once.
// Most answers go whole: the session then goes on without a coroutine for the write.
struct PendingWrite {
    beast::error_code error;
    bool close = false;
    BodyFraming framing = BodyFraming::Fixed;
    bool inline_body = false;  // the body went with the head (not a body_source, not HEAD)
    bool body_source = false;  // a body_source follows the head
    std::size_t sent = 0;      // bytes of the head and inline body sent
    std::size_t total = 0;

    bool complete() const { return error || (sent == total && !body_source); }
    // Whether the connection carries another request, once complete.
    bool keeps_alive() const { return !error && !close; }
};

// A plain RequestHandler as phases: all of it is dispatch.
class WholeHandler final : public RequestPhases {
  public:
    WholeHandler(RequestHandler handler, ProtocolErrorResponder protocol_error)
        : handler_(std::move(handler)), protocol_error_(std::move(protocol_error)) {}
    bool begin(Request&, Response&) override { return false; }
    asio::awaitable<Response> dispatch(Request& request) override { return handler_(request); }
    Response failed(std::exception_ptr, Request&) override {
        return protocol_error_(500, "internal error");
    }
    void end(Request&, Response&) override {}

  private:
    RequestHandler handler_;
    ProtocolErrorResponder protocol_error_;
};

}  // namespace

struct Server::State : std::enable_shared_from_this<Server::State> {
    asio::io_context& io;
    ServerOptions options;
    std::shared_ptr<RequestPhases> phases;
    ProtocolErrorResponder protocol_error;
    tcp::acceptor acceptor;
    std::atomic<bool> draining{false};
    std::atomic<bool> stopped{false};  // the Server is gone: background loops end
    std::atomic<std::size_t> connections{0};
    std::atomic<std::size_t> in_flight{0};
    std::mutex registry_mutex;
    std::list<std::shared_ptr<Connection>> registry;
    asio::steady_timer sweep_timer;
    asio::steady_timer accept_pause;
    tcp listen_protocol = tcp::v4();

    State(asio::io_context& context, ServerOptions opts,
          std::shared_ptr<RequestPhases> request_phases, ProtocolErrorResponder responder)
        : io(context),
          options(opts),
          phases(std::move(request_phases)),
          protocol_error(std::move(responder)),
          acceptor(asio::make_strand(context)),
          sweep_timer(acceptor.get_executor()),
          accept_pause(acceptor.get_executor()) {}

    asio::awaitable<void> accept_loop();
    asio::any_io_executor connection_executor();
    // A connection waiting in the listen backlog, without waiting for one.
    std::optional<tcp::socket> accept_waiting();
    // Starts the session of an accepted connection, or closes it while draining or full.
    void admit(tcp::socket socket);
    asio::awaitable<void> sweep_loop();
    void sweep();
    asio::awaitable<void> session(tcp::socket accepted);
    asio::awaitable<bool> write(Connection& connection, Response response, bool keep_alive,
                                bool head_request = false, bool http10 = false);
    // Writes the protocol error answer and closes. The session calls this rather than building
    // the Response in its own co_await expressions: each would take a slot of the session's
    // frame, which every connection keeps while idle.
    asio::awaitable<bool> refuse(Connection& connection, int status, std::string_view message);
    // The part of writing an answer that needs no waiting (see PendingWrite), and the rest.
    PendingWrite begin_write(Connection& connection, const Response& response, bool keep_alive,
                             bool head_request, bool http10);
    asio::awaitable<bool> finish_write(Connection& connection, Response response,
                                       PendingWrite pending);
    asio::awaitable<bool> write_body(Connection& connection, BodySource& source,
                                     BodyFraming framing);
};

namespace {

Method method_of(bhttp::verb verb) {
    switch (verb) {
        case bhttp::verb::get:
            return Method::Get;
        case bhttp::verb::head:
            return Method::Head;
        case bhttp::verb::post:
            return Method::Post;
        case bhttp::verb::put:
            return Method::Put;
        case bhttp::verb::patch:
            return Method::Patch;
        case bhttp::verb::delete_:
            return Method::Delete;
        case bhttp::verb::options:
            return Method::Options;
        default:
            return Method::Other;
    }
}

// Parses a request straight into the Request the handler gets: the request line and fields as
// they are read, the body into Request::body, or, once stream_body() was called, into the buffer
// the body stream gives each time (as Beast's buffer_body does). Beast's own parser fills its
// field container first, which then had to be copied out: two allocations and a copy of every
// header per request.
class RequestParser final : public bhttp::basic_parser<true> {
  public:
    explicit RequestParser(Request& request) : request_(request) {}

    // From here on the body goes to set_body_buffer's buffer, and trailer fields are dropped:
    // the handler already reads the headers.
    void stream_body() { streaming_ = true; }
    detail::BodyBuffer& body_buffer() { return body_; }

  private:
    void on_request_impl(bhttp::verb verb, beast::string_view method, beast::string_view target,
                         int version, beast::error_code&) override {
        request_.method = method_of(verb);
        if (request_.method == Method::Other) request_.method_text.assign(method);
        request_.target.assign(target);
        request_.http_version = version;
        request_.headers.reserve(8);
    }
    void on_response_impl(int, beast::string_view, int, beast::error_code& ec) override {
        ec = bhttp::error::bad_version;  // a request parser never sees a status line
    }
    void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                       beast::error_code&) override {
        if (streaming_) return;
        request_.headers.emplace_back(std::piecewise_construct,
                                      std::forward_as_tuple(name.data(), name.size()),
                                      std::forward_as_tuple(value.data(), value.size()));
    }
    void on_header_impl(beast::error_code&) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                           beast::error_code&) override {
        // The length passed the body limit already.
        if (!streaming_ && length) request_.body.reserve(static_cast<std::size_t>(*length));
    }
    std::size_t on_body_impl(beast::string_view body, beast::error_code& ec) override {
        if (!streaming_) {
            request_.body.append(body.data(), body.size());
            return body.size();
        }
        return body_.take(std::string_view(body.data(), body.size()), ec);
    }
    void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body,
                                   beast::error_code& ec) override {
        return on_body_impl(body, ec);
    }
    void on_finish_impl(beast::error_code&) override {}

    Request& request_;
    bool streaming_ = false;
    detail::BodyBuffer body_;
};

// A request body read from the client connection as the handler asks for it.
class RequestBodyStream final : public BodySource {
  public:
    RequestBodyStream(Connection& connection, beast::flat_buffer& buffer, RequestParser& parser,
                      std::chrono::milliseconds timeout)
        : connection_(&connection),
          buffer_(&buffer),
          parser_(&parser),
          deadline_ns_(coarse_now_ns() +
                       std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count()),
          ended_(parser.is_done()) {}

    asio::awaitable<Expected<std::string_view, std::string>> next() override {
        // Asked again after a failure, or once the request is over, the body must not look
        // complete: a proxy would end the body it forwards right there.
        if (!failure_.empty()) co_return unexpected(failure_);
        while (!ended_) {
            if (connection_ == nullptr) {
                failure_ = "the request is over: its body can no longer be read";
                co_return unexpected(failure_);
            }
            parser_->body_buffer().set(chunk_.data(), chunk_.size());
            // body_timeout bounds the whole body, as for buffered ones: a client trickling a
            // byte now and then must not hold the connection (and an upstream's) forever.
            connection_->expires_at(deadline_ns_);
            auto [ec, read] =
                co_await bhttp::async_read_some(connection_->socket, *buffer_, *parser_, kNoThrow);
            (void)read;
            if (ec == bhttp::error::need_buffer) ec = {};
            if (ec) {
                failure_ = connection_->timeout(ec) ? "request body was not received in time"
                                                    : describe(ec);
                detach();
                co_return unexpected(failure_);
            }
            ended_ = parser_->is_done();
            const std::size_t produced = chunk_.size() - parser_->body_buffer().room();
            if (produced > 0) co_return std::string_view(chunk_.data(), produced);
        }
        co_return std::string_view{};
    }

    // True when the body was read to its end: the connection can carry the next request.
    bool complete() const { return failure_.empty() && connection_ != nullptr && ended_; }
    // The session is done with the connection (and the parser); a handler still holding the
    // source gets errors.
    void detach() {
        connection_ = nullptr;
        buffer_ = nullptr;
        parser_ = nullptr;
    }

  private:
    static std::string describe(const beast::error_code& ec) {
        if (ec == bhttp::error::body_limit) return "request body is too large";
        return "reading the request body: " + ec.message();
    }

    Connection* connection_;
    beast::flat_buffer* buffer_;
    RequestParser* parser_;
    std::int64_t deadline_ns_;
    bool ended_;
    std::string failure_;
    std::array<char, 16 * 1024> chunk_{};
};

}  // namespace

namespace {

using detail::has_line_break;

bool is_bodiless(int status) {
    return status == 204 || status == 304 || status < 200;
}

BodyFraming framing_of(const Response& response, bool http10) {
    if (!response.body_source || !response.header("Content-Length").empty()) {
        return BodyFraming::Fixed;
    }
    return http10 ? BodyFraming::UntilClose : BodyFraming::Chunked;
}

// The client connection handed to an upgrade handler.
class StreamTunnel final : public Tunnel {
  public:
    StreamTunnel(Connection& connection, beast::flat_buffer& buffer,
                 std::chrono::milliseconds idle_timeout)
        : connection_(connection), buffer_(buffer), idle_timeout_(idle_timeout) {}

    std::string take_buffered() override {
        std::string bytes(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        buffer_.consume(buffer_.size());
        return bytes;
    }

    asio::awaitable<Expected<std::size_t, std::string>> read_some(std::span<char> into) override {
        connection_.expires_after(idle_timeout_);
        auto [ec, bytes] = co_await connection_.socket.async_read_some(
            asio::buffer(into.data(), into.size()), kNoThrow);
        if (ec == asio::error::eof) co_return std::size_t{0};
        if (ec) co_return unexpected(ec.message());
        co_return bytes;
    }

    asio::awaitable<Expected<void, std::string>> write(std::string_view bytes) override {
        connection_.expires_after(idle_timeout_);
        auto [ec, written] = co_await asio::async_write(
            connection_.socket, asio::buffer(bytes.data(), bytes.size()), kNoThrow);
        (void)written;
        if (ec) co_return unexpected(ec.message());
        co_return Expected<void, std::string>{};
    }

    void shutdown_send() override {
        beast::error_code ignored;
        connection_.socket.shutdown(tcp::socket::shutdown_send, ignored);
    }

  private:
    Connection& connection_;
    beast::flat_buffer& buffer_;
    std::chrono::milliseconds idle_timeout_;
};

// An idle connection keeps an ordinary head's capacity, not an unusually large one's.
void release_large_head(std::string& head) {
    if (head.capacity() > 8 * 1024) std::string().swap(head);
}

// The head and, unless it streams or answers HEAD, the body of an answer, as written.
std::array<asio::const_buffer, 2> answer_buffers(const std::string& head, const Response& response,
                                                 bool inline_body) {
    return {asio::buffer(head), inline_body ? asio::buffer(response.body) : asio::const_buffer{}};
}

// The status line and headers of a response, in one buffer: cheaper than Beast's serializer on
// this hot path, and our responses need nothing it adds (no chunking, no trailers).
// Written into `head`, which the connection reuses: its capacity stays from one response to the
// next. Returns the number of lines written, the blank one included. `check_each`: leave out
// any header whose name or value holds a line break (the caller finds one from the count of the
// whole head).
std::size_t write_response_head(std::string& head, const Response& response, BodyFraming framing,
                                bool close, bool http10, bool check_each) {
    head.clear();
    head.reserve(160 + response.headers.size() * 48 + response.header_lines.text().size());
    std::size_t lines = 2;  // the status line and the blank line
    head.append("HTTP/1.1 "sv);
    head.append(std::to_string(response.status));
    head.push_back(' ');
    head.append(bhttp::obsolete_reason(static_cast<bhttp::status>(response.status)));
    head.append("\r\n"sv);
    auto line = [&](std::string_view text) {
        head.append(text);
        ++lines;
    };
    if (!response.verbatim_headers) line("Server: aether\r\n"sv);
    if (framing == BodyFraming::Chunked) line("Transfer-Encoding: chunked\r\n"sv);
    if (!is_bodiless(response.status) && !response.verbatim_headers) {
        append_header_line(head, "Content-Type", response.content_type);
        ++lines;
        // A body_source is framed by chunks, by the handler's own Content-Length, or by closing.
        if (!response.body_source) {
            append_header_line(head, "Content-Length", std::to_string(response.body.size()));
            ++lines;
        }
    }
    for (const auto& [name, value] : response.headers) {
        if (check_each && (has_line_break(name) || has_line_break(value))) continue;
        append_header_line(head, name, value);
        ++lines;
    }
    // Lines hold no stray CR or LF (HeaderLines refuses them).
    head.append(response.header_lines.text());
    lines += response.header_lines.size();
    if (response.status == 101) {
        // The upgrade's own Connection/Upgrade headers are in the list.
    } else if (close) {
        line("Connection: close\r\n"sv);
    } else if (http10) {
        line("Connection: keep-alive\r\n"sv);
    }
    head.append("\r\n"sv);
    return lines;
}

}  // namespace

PendingWrite Server::State::begin_write(Connection& connection, const Response& response,
                                        bool keep_alive, bool head_request, bool http10) {
    PendingWrite pending;
    // HEAD answers and 1xx/204/304 have no body, even when a proxied one comes with an (empty)
    // body_source: a chunked terminator there would corrupt the connection's next response.
    const bool no_body = head_request || is_bodiless(response.status);
    pending.framing = no_body ? BodyFraming::Fixed : framing_of(response, http10);
    pending.close = !keep_alive || response.close_connection || draining.load() ||
                    pending.framing == BodyFraming::UntilClose;
    std::string& head = connection.response_head;
    const std::size_t lines =
        write_response_head(head, response, pending.framing, pending.close, http10, false);
    if (detail::line_break_bytes(head) != 2 * lines) {
        // Header text is ours, but a line break in it would split the answer: never send one.
        write_response_head(head, response, pending.framing, pending.close, http10, true);
    }
    // A HEAD answer carries the GET answer's Content-Length but no body.
    pending.inline_body = !head_request && !response.body_source;
    pending.body_source = response.body_source && !no_body;
    pending.total = head.size() + (pending.inline_body ? response.body.size() : 0);
    auto rest = detail::send_now(
        connection.socket, answer_buffers(head, response, pending.inline_body), pending.error);
    pending.sent = pending.total - beast::buffer_bytes(rest);
    if (pending.complete()) release_large_head(head);
    return pending;
}

asio::awaitable<bool> Server::State::finish_write(Connection& connection, Response response,
                                                  PendingWrite pending) {
    std::string& head = connection.response_head;
    if (!pending.error && pending.sent < pending.total) {
        beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(
            answer_buffers(head, response, pending.inline_body));
        rest.consume(pending.sent);
        connection.expires_after(options.write_timeout);
        auto [write_ec, written] = co_await asio::async_write(connection.socket, rest, kNoThrow);
        (void)written;
        pending.error = write_ec;
    }
    release_large_head(head);
    if (pending.error) co_return false;
    if (pending.body_source) {
        if (!co_await write_body(connection, *response.body_source, pending.framing)) {
            co_return false;
        }
    }
    co_return !pending.close;
}

asio::awaitable<bool> Server::State::write(Connection& connection, Response response,
                                           bool keep_alive, bool head_request, bool http10) {
    auto pending = begin_write(connection, response, keep_alive, head_request, http10);
    if (pending.complete()) co_return pending.keeps_alive();
    co_return co_await finish_write(connection, std::move(response), pending);
}

asio::awaitable<bool> Server::State::refuse(Connection& connection, int status,
                                            std::string_view message) {
    co_return co_await write(connection, protocol_error(status, message), false);
}

asio::awaitable<bool> Server::State::write_body(Connection& connection, BodySource& source,
                                                BodyFraming framing) {
    char size_line[24];
    for (;;) {
        // The source may take its time (an upstream's next chunk); only the writes have one.
        connection.expires_never();
        auto piece = co_await source.next();
        if (!piece) co_return false;
        if (piece->empty()) break;
        std::array<asio::const_buffer, 3> buffers{
            asio::const_buffer{}, asio::buffer(piece->data(), piece->size()), asio::const_buffer{}};
        if (framing == BodyFraming::Chunked) {
            const int length = std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece->size());
            buffers[0] = asio::buffer(size_line, static_cast<std::size_t>(length));
            buffers[2] = asio::buffer("\r\n", 2);
        }
        connection.expires_after(options.write_timeout);
        auto [ec, written] = co_await asio::async_write(connection.socket, buffers, kNoThrow);
        (void)written;
        if (ec) co_return false;
    }
    if (framing == BodyFraming::Chunked) {
        connection.expires_after(options.write_timeout);
        auto [ec, written] =
            co_await asio::async_write(connection.socket, asio::buffer("0\r\n\r\n", 5), kNoThrow);
        (void)written;
        if (ec) co_return false;
    }
    co_return true;
}

asio::awaitable<void> Server::State::session(tcp::socket accepted) {
    auto self = shared_from_this();
    // Counters and the drain registry are released however the session ends.
    struct Registration {
        State& state;
        std::list<std::shared_ptr<Connection>>::iterator entry;
        ~Registration() {
            {
                std::lock_guard lock(state.registry_mutex);
                state.registry.erase(entry);
            }
            state.connections.fetch_sub(1);
        }
    };
    struct InFlight {
        std::atomic<std::size_t>& counter;
        explicit InFlight(std::atomic<std::size_t>& c) : counter(c) { counter.fetch_add(1); }
        ~InFlight() { counter.fetch_sub(1); }
    };
    beast::error_code ignored;
    auto remote_endpoint = accepted.remote_endpoint(ignored);
    std::string remote = ignored ? std::string{} : remote_endpoint.address().to_string();
    auto connection = std::make_shared<Connection>(std::move(accepted));
    tcp::socket& socket = connection->socket;
    std::unique_lock registry_lock(registry_mutex);
    Registration registration{*this, registry.insert(registry.end(), connection)};
    registry_lock.unlock();
    // Read by the drain on another thread; it acts on the connection's executor, so a store
    // here needs no lock.
    auto set_idle = [&](bool idle) { connection->idle.store(idle, std::memory_order_relaxed); };
    beast::flat_buffer buffer;
    bool first = true;
    bool unread_body = false;
    // One per connection, cleared for each request: its strings and lists keep their capacity.
    Request request;
    for (;;) {
        if (draining.load()) break;
        request.clear();
        const bool may_stream = options.stream_body_threshold > 0;
        if (buffer.size() == 0) {
            // Between requests the idle timeout applies until the next request's first byte;
            // from then on the header timeout does, so a kept-alive connection is no slowloris.
            connection->expires_after(first ? options.header_timeout : options.idle_timeout);
            auto [idle_ec, idle_bytes] =
                co_await detail::async_read_some_draining(socket, buffer.prepare(4096), kNoThrow);
            if (idle_ec) break;
            buffer.commit(idle_bytes);
        }
        // A request has begun: a drain lets it finish rather than cutting it off.
        set_idle(false);
        connection->expires_after(options.header_timeout);
        first = false;
        std::optional<RequestParser> beast_parser;
        std::shared_ptr<RequestBodyStream> body_stream;
        // A common head without a body is read without Beast (quick_head.h); any other head, and
        // every body, goes to Beast's parser.
        const auto quick = detail::quick_request_head(
            std::string_view(static_cast<const char*>(buffer.data().data()), buffer.size()),
            options.max_header_bytes, request);
        if (quick) {
            buffer.consume(quick->size);
            request.keep_alive = quick->keep_alive;
        } else {
            auto& parser = beast_parser.emplace(request);
            parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
            // Beast checks Content-Length against the limit with the head already: a body that
            // will stream must pass it; a buffered one is checked against max_body_bytes below.
            parser.body_limit(may_stream ? std::max<std::uint64_t>(options.max_body_bytes,
                                                                   options.max_streamed_body_bytes)
                                         : options.max_body_bytes);
            beast::error_code header_ec;
            if (!detail::parse_buffered_head(parser, buffer, header_ec)) {
                auto [read_ec, header_bytes] =
                    co_await bhttp::async_read_header(socket, buffer, parser, kNoThrow);
                (void)header_bytes;
                header_ec = read_ec;
            }
            if (header_ec) {
                if (header_ec == bhttp::error::header_limit) {
                    co_await refuse(*connection, 431, "request headers are too large");
                } else if (header_ec == bhttp::error::body_limit) {
                    unread_body = true;
                    co_await refuse(*connection, 413, "request body is too large");
                } else if (header_ec != bhttp::error::end_of_stream &&
                           !connection->timeout(header_ec) && header_ec != asio::error::eof &&
                           header_ec != asio::error::operation_aborted &&
                           header_ec != asio::error::connection_reset && buffer.size() > 0) {
                    co_await refuse(*connection, 400, "malformed HTTP request");
                }
                break;
            }
            const bool will_stream = options.stream_body_threshold > 0 && !parser.is_done() &&
                                     (parser.chunked() || parser.content_length().value_or(0) >
                                                              options.stream_body_threshold);
            if (may_stream && !will_stream &&
                parser.content_length().value_or(0) > options.max_body_bytes) {
                // Checked before any 100 Continue, so the client does not start sending it.
                unread_body = true;
                co_await refuse(*connection, 413, "request body is too large");
                break;
            }
            if (!parser.is_done() && iequals(request.header("Expect"), "100-continue")) {
                // The client waits for this before sending its body (curl: up to a second).
                connection->expires_after(options.write_timeout);
                auto [continue_ec, continue_bytes] = co_await asio::async_write(
                    socket, asio::buffer("HTTP/1.1 100 Continue\r\n\r\n", 25), kNoThrow);
                (void)continue_bytes;
                if (continue_ec) break;
            }
            if (will_stream) {
                parser.stream_body();
                parser.body_limit(options.max_streamed_body_bytes);
                body_stream = std::make_shared<RequestBodyStream>(*connection, buffer, parser,
                                                                  options.body_timeout);
            } else if (!parser.is_done()) {
                connection->expires_after(options.body_timeout);
                auto [body_ec, body_bytes] =
                    co_await bhttp::async_read(socket, buffer, parser, kNoThrow);
                (void)body_bytes;
                if (body_ec) {
                    if (body_ec == bhttp::error::body_limit) {
                        unread_body = true;
                        co_await refuse(*connection, 413, "request body is too large");
                    } else if (connection->timeout(body_ec)) {
                        co_await refuse(*connection, 408, "request body was not received in time");
                    }
                    break;
                }
            }
            request.keep_alive = parser.keep_alive();
        }
        // The handler takes the time it takes; the next read or write sets a new deadline.
        connection->expires_never();
        request.remote_address = remote;
        request.body_stream = body_stream;
        bool keep_alive = request.keep_alive;
        bool head_request = request.method == Method::Head;
        bool http10 = request.http_version == 10;
        Response response;
        {
            InFlight in_flight_guard(in_flight);
            try {
                if (!phases->begin(request, response)) {
                    std::exception_ptr failure;
                    try {
                        response = co_await phases->dispatch(request);
                    } catch (...) {
                        failure = std::current_exception();
                    }
                    if (failure) response = phases->failed(failure, request);
                }
                phases->end(request, response);
            } catch (...) {
                // The phases answer every failure themselves; this only guards the connection.
                response = protocol_error(500, "internal error");
            }
        }
        if (body_stream) {
            // A body the handler did not read to its end still sits on the connection.
            unread_body = !body_stream->complete();
            keep_alive = keep_alive && !unread_body;
            body_stream->detach();
            request.body_stream.reset();
        }
        if (response.status == 101 && response.on_upgrade) {
            if (draining.load()) {
                // A connection that would outlive the drain is refused, not half-opened.
                co_await refuse(*connection, 503, "the server is shutting down");
                break;
            }
            auto on_upgrade = std::move(response.on_upgrade);
            if (!co_await write(*connection, std::move(response), true, false, http10)) break;
            StreamTunnel tunnel(*connection, buffer, options.tunnel_idle_timeout);
            InFlight in_flight_guard(in_flight);
            std::exception_ptr failure;
            try {
                co_await on_upgrade(tunnel);
            } catch (...) {
                failure = std::current_exception();
            }
            if (failure) {
                try {
                    std::rethrow_exception(failure);
                } catch (const std::exception& error) {
                    telemetry::log_error("upgraded connection failed", {{"error", error.what()}});
                } catch (...) {
                    telemetry::log_error("upgraded connection failed", {});
                }
            }
            break;
        }
        // Most answers go out whole at once: the session goes on without awaiting a write.
        auto pending = begin_write(*connection, response, keep_alive, head_request, http10);
        bool again = pending.keeps_alive();
        if (!pending.complete()) {
            again = co_await finish_write(*connection, std::move(response), pending);
        }
        if (!again) break;
        set_idle(true);
    }
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    if (unread_body) {
        // Closing with unread input makes the kernel send a reset, which can overtake the
        // answer on a real network: read and drop what the client still sends, briefly
        // ("lingering close", as nginx does).
        // The connection's own buffer is the sink: a local array would live in every
        // session's coroutine frame, idle connections included.
        std::size_t discarded = 0;
        connection->expires_after(std::chrono::seconds(2));
        while (discarded < (4u << 20)) {
            buffer.consume(buffer.size());
            auto [linger_ec, bytes] =
                co_await socket.async_read_some(buffer.prepare(16 * 1024), kNoThrow);
            if (linger_ec) break;
            discarded += bytes;
        }
    }
    socket.close(ignored);
}

// Cancels the IO of every connection past its deadline, on the connection's own executor,
// where the deadline is checked again: the connection may have moved on meanwhile.
void Server::State::sweep() {
    const std::int64_t now = coarse_now_ns();
    std::lock_guard lock(registry_mutex);
    for (const auto& connection : registry) {
        if (connection->deadline_ns.load(std::memory_order_relaxed) > now) continue;
        std::weak_ptr<Connection> weak = connection;
        asio::post(connection->socket.get_executor(), [weak] {
            auto alive = weak.lock();
            if (!alive || alive->deadline_ns.load(std::memory_order_relaxed) > coarse_now_ns()) {
                return;
            }
            alive->timed_out = true;
            alive->deadline_ns.store(kNoDeadline, std::memory_order_relaxed);
            beast::error_code ignored;
            alive->socket.cancel(ignored);
        });
    }
}

asio::awaitable<void> Server::State::sweep_loop() {
    // Holds the state while it waits, as accept_loop does; ~Server ends the loop.
    auto self = shared_from_this();
    // A tick of an eighth of the shortest timeout (within 5 ms..250 ms): timeouts fire at most
    // that late, and an idle server wakes four times a second.
    const auto shortest =
        std::min({options.header_timeout, options.body_timeout, options.idle_timeout,
                  options.write_timeout, options.tunnel_idle_timeout});
    const auto tick = std::clamp<std::chrono::milliseconds>(
        shortest / 8, std::chrono::milliseconds(5), std::chrono::milliseconds(250));
    while (!stopped.load() && !(draining.load() && connections.load() == 0)) {
        sweep_timer.expires_after(tick);
        auto [ec] = co_await sweep_timer.async_wait(kNoThrow);
        if (ec || stopped.load()) break;
        sweep();
    }
}

asio::awaitable<void> Server::State::accept_loop() {
    auto self = shared_from_this();
    bool accept_failing = false;
    while (acceptor.is_open()) {
        auto [ec, socket] = co_await acceptor.async_accept(connection_executor(), kNoThrow);
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) break;
            // Out of descriptors, the connection stays in the backlog and each retry fails at
            // once: without a pause the retries would spin a core until a descriptor frees. The
            // connections already open are served meanwhile.
            if (!accept_failing) {
                telemetry::log_warn(
                    "accepting connections failed; retrying after a pause",
                    {{"error", ec.message()},
                     {"pause_ms", static_cast<std::int64_t>(kAcceptFailurePause.count())}});
            }
            accept_failing = true;
            accept_pause.expires_after(kAcceptFailurePause);
            auto [pause_ec] = co_await accept_pause.async_wait(kNoThrow);
            if (pause_ec || stopped.load()) break;
            continue;
        }
        if (accept_failing) telemetry::log_info("accepting connections again", {});
        accept_failing = false;
        admit(std::move(socket));
        // Each async_accept completes a whole turn of the event loop after the last. Under load
        // a turn runs every connection's ready work, so a burst of 50 new connections taken one
        // a turn left the last of them waiting tens of milliseconds for its first read.
        for (int taken = 1; taken < kAcceptBurst; ++taken) {
            auto next = accept_waiting();
            if (!next) break;
            admit(std::move(*next));
        }
    }
}

asio::any_io_executor Server::State::connection_executor() {
    return options.strand_per_connection ? asio::any_io_executor(asio::make_strand(io))
                                         : asio::any_io_executor(io.get_executor());
}

// accept4 rather than Asio's synchronous accept, which waits in poll() after ECONNABORTED or
// EPROTO whatever the acceptor's non-blocking mode.
std::optional<tcp::socket> Server::State::accept_waiting() {
    for (;;) {
        const int descriptor =
            ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (descriptor < 0) {
            // A connection reset while it waited is skipped. Anything else, out of descriptors
            // included, async_accept meets and reports again.
            if (errno == ECONNABORTED || errno == EPROTO || errno == EINTR) continue;
            return std::nullopt;
        }
        tcp::socket socket(connection_executor());
        beast::error_code ec;
        socket.assign(listen_protocol, descriptor, ec);
        if (ec) {
            ::close(descriptor);
            return std::nullopt;
        }
        return socket;
    }
}

void Server::State::admit(tcp::socket socket) {
    if (draining.load() || connections.load() >= options.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
        return;
    }
    beast::error_code option_error;
    socket.set_option(tcp::no_delay(true), option_error);
    detail::make_non_blocking(socket);
    detail::enable_draining_reads(socket);
    connections.fetch_add(1);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, session(std::move(socket)), asio::detached);
}

Server::Server(asio::io_context& io, ServerOptions options, RequestHandler handler,
               ProtocolErrorResponder protocol_error)
    : Server(io, options, std::make_shared<WholeHandler>(std::move(handler), protocol_error),
             protocol_error) {}

Server::Server(asio::io_context& io, ServerOptions options, std::shared_ptr<RequestPhases> phases,
               ProtocolErrorResponder protocol_error)
    : state_(std::make_shared<State>(io, options, std::move(phases), std::move(protocol_error))) {}

Server::~Server() {
    state_->stopped.store(true);
    // The acceptor and the timers belong to the acceptor's strand, where the accept loop may be
    // taking a burst: closed and cancelled there, which ends both loops. With the io_context
    // stopped already, they go when it is destroyed.
    asio::post(state_->acceptor.get_executor(), [state = state_] {
        beast::error_code ignored;
        state->acceptor.close(ignored);
        state->sweep_timer.cancel();
        state->accept_pause.cancel();
    });
}

Expected<std::uint16_t, std::string> Server::listen(const std::string& host, std::uint16_t port) {
    beast::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return unexpected("invalid listen address " + host);
    tcp::endpoint endpoint(address, port);
    auto& acceptor = state_->acceptor;
    state_->listen_protocol = endpoint.protocol();
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        return unexpected("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                          ec.message());
    }
    return acceptor.local_endpoint().port();
}

void Server::start() {
    asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(), asio::detached);
    asio::co_spawn(state_->acceptor.get_executor(), state_->sweep_loop(), asio::detached);
}

void Server::begin_drain() {
    auto state = state_;
    if (state->draining.exchange(true)) return;
    asio::post(state->acceptor.get_executor(), [state] {
        beast::error_code ignored;
        state->acceptor.close(ignored);
        state->accept_pause.cancel();
    });
    std::lock_guard lock(state->registry_mutex);
    for (const auto& connection : state->registry) {
        if (!connection->idle.load()) continue;
        std::weak_ptr<Connection> weak = connection;
        // On the connection's executor, so the session is not between its check of `idle`
        // and the read it starts.
        asio::post(connection->socket.get_executor(), [weak] {
            if (auto alive = weak.lock(); alive && alive->idle.load()) {
                beast::error_code ignored;
                alive->socket.cancel(ignored);
            }
        });
    }
}

std::size_t Server::open_connections() const {
    return state_->connections.load();
}
std::size_t Server::in_flight_requests() const {
    return state_->in_flight.load();
}

}  // namespace aether::platform::http
