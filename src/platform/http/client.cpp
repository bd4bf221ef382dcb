// HttpClient: Beast on coroutines, one bounded keep-alive pool per (scheme, host, port).
#include "platform/http/client.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <deque>
#include <map>
#include <optional>
#include <tuple>
#include <type_traits>

#include "platform/http/draining_read.h"
#include "platform/http/head_text.h"
#include "platform/http/parsing.h"
#include "platform/http/peer_watch.h"
#include "platform/http/quick_head.h"
#include "platform/http/send_now.h"

namespace aether::platform::http {

namespace asio = boost::asio;
using namespace std::string_view_literals;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
// Bodies up to this size that arrived with the head are handed over whole, without a source.
constexpr std::uint64_t kCompleteBodyLimit = 64 * 1024;
// A pooled connection idle this long is checked with a system call of its own before reuse:
// upstreams close idle connections after seconds, and a check made at once sees that closest.
constexpr std::chrono::seconds kAskAfterIdle{1};

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

struct Url {
    bool tls = false;
    std::string host;  // without IPv6 brackets, lower-cased
    std::uint16_t port = 0;
    std::string target;  // path + query
    std::string host_header;
};

// A URL cut after its authority: "scheme://authority" and the rest (path, query, fragment).
struct SplitUrl {
    std::string_view origin;
    std::string_view tail;
};

std::optional<SplitUrl> split_url(std::string_view url) {
    auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) return std::nullopt;
    // A plain loop: find_first_of scans the set once per character.
    for (std::size_t at = scheme_end + 3; at < url.size(); ++at) {
        const char c = url[at];
        if (c == '/' || c == '?' || c == '#') return SplitUrl{url.substr(0, at), url.substr(at)};
    }
    return SplitUrl{url, {}};
}

// Everything of a Url but its target, from "scheme://authority".
std::optional<Url> parse_origin(std::string_view origin) {
    Url out;
    auto scheme_end = origin.find("://");
    auto scheme = origin.substr(0, scheme_end);
    if (iequals(scheme, "https")) {
        out.tls = true;
    } else if (!iequals(scheme, "http")) {
        return std::nullopt;
    }
    auto authority = origin.substr(scheme_end + 3);
    // Credentials in URLs are not supported: they would leak into logs.
    if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;

    std::string_view host;
    std::string_view port_text;
    if (authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos || close == 1) return std::nullopt;
        host = authority.substr(1, close - 1);
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return std::nullopt;
            port_text = after.substr(1);
            if (port_text.empty()) return std::nullopt;
        }
    } else {
        auto colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
            if (port_text.empty()) return std::nullopt;
        }
        if (host.empty()) return std::nullopt;
        for (char c : host) {
            auto u = static_cast<unsigned char>(c);
            if (!(std::isalnum(u) || c == '-' || c == '.' || c == '_')) return std::nullopt;
        }
    }
    std::uint16_t default_port = out.tls ? 443 : 80;
    out.port = default_port;
    if (!port_text.empty()) {
        unsigned value = 0;
        auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
        if (ec != std::errc{} || end != port_text.data() + port_text.size() || value == 0 ||
            value > 65535) {
            return std::nullopt;
        }
        out.port = static_cast<std::uint16_t>(value);
    }
    out.host = lower(host);
    bool ipv6 = out.host.find(':') != std::string::npos;
    out.host_header = ipv6 ? "[" + out.host + "]" : out.host;
    if (out.port != default_port) out.host_header += ":" + std::to_string(out.port);
    return out;
}

// The request target from what follows the authority; false when it holds a control character.
bool parse_target(std::string_view tail, std::string& target) {
    auto fragment = tail.find('#');
    tail = tail.substr(0, fragment);
    if (tail.empty()) {
        target.assign("/");
    } else if (tail.front() == '?') {
        target.assign("/");
        target.append(tail);
    } else {
        target.assign(tail);
    }
    for (char c : target) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) return false;
    }
    return true;
}

bool is_ip_literal(const std::string& host) {
    error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

bool is_idempotent(bhttp::verb verb) {
    switch (verb) {
        case bhttp::verb::get:
        case bhttp::verb::head:
        case bhttp::verb::put:
        case bhttp::verb::delete_:
        case bhttp::verb::options:
        case bhttp::verb::trace:
            return true;
        default:
            return false;
    }
}

using detail::has_line_break;

ClientError error(ClientError::Kind kind, std::string message, bool request_sent = false) {
    return ClientError{kind, std::move(message), request_sent};
}

struct Connection {
    // What the client's PeerWatch saw of the upstream (empty until the connection first goes
    // into the pool, or when it could not watch). Every read of the socket tells it (read_done),
    // so that bytes found after the last read are bytes nobody asked for.
    detail::PeerWatch::Entry peer;
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
    beast::flat_buffer buffer;
    Clock::time_point idle_since{};  // when it went into the pool
    // While it waits for a response head (HeadWatch): until when, where it is in the watch's
    // list, and whether the watch cancelled the read for its deadline.
    Clock::time_point head_deadline{};
    std::size_t watch_slot = kUnwatched;
    bool head_timed_out = false;
    static constexpr std::size_t kUnwatched = static_cast<std::size_t>(-1);

    beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

    void close() {
        error_code ignored;
        tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
        tcp().socket().close(ignored);
    }

    // A pooled connection the peer has closed (or written garbage to) reads as EOF or data
    // while idle; catching it here saves a doomed write.
    bool reusable_by_peek() {
        char byte = 0;
        auto n = ::recv(tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) return false;
        // TLS peers may legitimately send records (session tickets) after a response.
        if (n > 0) return tls.has_value();
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
};

// Connections waiting for a response head, each with its deadline; a sweep every kTick cancels
// the reads of those past theirs. Beast's tcp_stream arms a timer for every read and cancels it
// after, whose cancellation is then one more completion to run: a tenth of the client's cost of a
// proxied request. Used from the client's executor only, as the rest of it.
struct HeadWatch {
    static constexpr std::chrono::milliseconds kTick{10};
    std::vector<Connection*> waiting;
    bool sweeping = false;

    void watch(Connection& connection, Clock::time_point deadline) {
        connection.head_deadline = deadline;
        connection.head_timed_out = false;
        connection.watch_slot = waiting.size();
        waiting.push_back(&connection);
    }
    void unwatch(Connection& connection) {
        const std::size_t slot = connection.watch_slot;
        if (slot == Connection::kUnwatched) return;
        waiting[slot] = waiting.back();
        waiting[slot]->watch_slot = slot;
        waiting.pop_back();
        connection.watch_slot = Connection::kUnwatched;
    }
    void expire(Clock::time_point now) {
        for (Connection* connection : waiting) {
            if (connection->head_timed_out || connection->head_deadline > now) continue;
            connection->head_timed_out = true;
            error_code ignored;
            connection->tcp().socket().cancel(ignored);
        }
    }
};

// Takes a connection off the watch however its wait ends (a destroyed frame included).
class Watched {
  public:
    Watched(HeadWatch& watch, Connection& connection, Clock::time_point deadline)
        : watch_(watch), connection_(connection) {
        watch_.watch(connection_, deadline);
    }
    ~Watched() { watch_.unwatch(connection_); }
    Watched(const Watched&) = delete;
    Watched& operator=(const Watched&) = delete;

  private:
    HeadWatch& watch_;
    Connection& connection_;
};

struct Waiter;

struct HostPool {
    std::size_t open = 0;  // slots in use, including idle connections
    std::deque<std::unique_ptr<Connection>> idle;
    std::deque<Waiter*> waiters;
};

// A request queued for a slot; woken by cancelling its timer after one of the fields is set.
struct Waiter {
    Waiter(asio::any_io_executor executor, HostPool& host_pool)
        : timer(std::move(executor)), pool(host_pool) {}
    ~Waiter() { std::erase(pool.waiters, this); }
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;

    asio::steady_timer timer;
    HostPool& pool;
    std::unique_ptr<Connection> connection;
    bool slot = false;
    bool closed = false;
};

struct ExchangeOutcome {
    error_code ec;
    bool sent_bytes = false;
    bool got_bytes = false;
    bool keep_alive = false;
    ClientResponse response;
};

template <class Stream>
asio::awaitable<ExchangeOutcome> exchange(Stream& stream, beast::tcp_stream& tcp,
                                          beast::flat_buffer& buffer,
                                          const bhttp::request<bhttp::string_body>& request,
                                          Clock::time_point deadline, std::size_t body_limit) {
    ExchangeOutcome out;
    tcp.expires_at(deadline);
    auto [write_ec, written] = co_await bhttp::async_write(stream, request, kUse);
    out.sent_bytes = written > 0;
    if (write_ec) {
        out.ec = write_ec;
        co_return out;
    }
    for (;;) {
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(body_limit);
        parser.header_limit(kHeaderLimit);
        if (request.method() == bhttp::verb::head) parser.skip(true);
        tcp.expires_at(deadline);
        auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kUse);
        out.got_bytes = out.got_bytes || read > 0 || parser.got_some() || buffer.size() > 0;
        if (read_ec) {
            out.ec = read_ec;
            co_return out;
        }
        auto message = parser.release();
        int status = static_cast<int>(message.result_int());
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (status >= 100 && status < 200 && status != 101) continue;
        out.keep_alive = message.keep_alive() && request.keep_alive() && status != 101;
        out.response.status = status;
        for (const auto& field : message.base()) {
            out.response.headers.emplace_back(std::string(field.name_string()),
                                              std::string(field.value()));
        }
        out.response.body = std::move(message.body());
        co_return out;
    }
}

// Parses a response for a caller that forwards it: the head's fields go straight into the list
// the caller receives, and the body into whatever buffer the reader gives (as Beast's
// buffer_body does). Beast's own parser fills its field container first, which then had to be
// copied out: a third of a proxied response's parsing cost.
class StreamParser final : public bhttp::basic_parser<false> {
  public:
    int status() const { return status_; }
    HeaderLines& header_lines() { return lines_; }

    // Where the body's next bytes go.
    detail::BodyBuffer& body_buffer() { return body_; }

  private:
    void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int,
                         error_code& ec) override {
        ec = bhttp::error::bad_method;  // a response parser never sees a request line
    }
    void on_response_impl(int code, beast::string_view, int, error_code&) override {
        status_ = code;
    }
    void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                       error_code&) override {
        lines_.append_parsed(std::string_view(name.data(), name.size()),
                             std::string_view(value.data(), value.size()));
    }
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(beast::string_view body, error_code& ec) override {
        return body_.take(std::string_view(body.data(), body.size()), ec);
    }
    void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body,
                                   error_code& ec) override {
        return on_body_impl(body, ec);
    }
    void on_finish_impl(error_code&) override {}

    int status_ = 0;
    HeaderLines lines_;
    detail::BodyBuffer body_;
};

// A response whose head and whole (small) body were already buffered, read without Beast.
struct QuickResponse {
    detail::QuickHead head;
    HeaderLines lines;
};

// The quick response at the start of `buffer`, when its head is common (quick_head.h) and its
// body whole there too; null leaves the buffer to Beast's parser. On the heap: held in a
// coroutine frame it would push two frames past what glibc's per-thread cache takes.
std::unique_ptr<QuickResponse> quick_response(const beast::flat_buffer& buffer) {
    const std::string_view bytes(static_cast<const char*>(buffer.data().data()), buffer.size());
    HeaderLines lines;
    auto head = detail::quick_response_head(bytes, kHeaderLimit, lines);
    if (!head || head->content_length > kCompleteBodyLimit ||
        bytes.size() - head->size < head->content_length) {
        return nullptr;
    }
    return std::make_unique<QuickResponse>(QuickResponse{*head, std::move(lines)});
}

struct HeadOutcome {
    error_code ec;
    bool sent_bytes = false;
    bool got_bytes = false;
    std::string body_error;                // set when the request's body_stream failed
    std::unique_ptr<QuickResponse> quick;  // set instead of the parser for a quick response
};

// A request serialized by hand: Beast's serializer and field container cost ~30k instructions
// per proxied request, several times what building one string does.
struct WireRequest {
    std::string head;
    std::string body;
    bool head_method = false;
    bool keep_alive = true;
    bool upgrade = false;
    bool idempotent = false;
    std::shared_ptr<BodySource> body_stream;
    bool chunked_stream = false;
    // What the Content-Length promises after `body`: a stream that delivers more or less would
    // desynchronise the connection, so the exchange fails instead.
    std::optional<std::uint64_t> stream_length;
    std::chrono::milliseconds stream_timeout{0};

    // The head and the body ahead of any stream, as one write sends them.
    std::array<asio::const_buffer, 2> buffers() const {
        return {asio::buffer(head), asio::buffer(body)};
    }
};

// Sends a streamed request body behind the head: fixed length or chunked.
template <class Stream>
asio::awaitable<error_code> send_body_stream(Stream& stream, beast::tcp_stream& tcp,
                                             const WireRequest& request, std::string& body_error) {
    char size_line[24];
    std::uint64_t sent = 0;
    for (;;) {
        auto piece = co_await request.body_stream->next();
        if (!piece) {
            body_error = piece.error();
            co_return make_error_code(asio::error::connection_aborted);
        }
        sent += piece->size();
        if (request.stream_length &&
            (sent > *request.stream_length || (piece->empty() && sent != *request.stream_length))) {
            body_error = "the request body does not match its Content-Length";
            co_return make_error_code(bhttp::error::body_limit);
        }
        std::array<asio::const_buffer, 3> buffers{
            asio::const_buffer{}, asio::buffer(piece->data(), piece->size()), asio::const_buffer{}};
        if (request.chunked_stream) {
            if (piece->empty()) {
                buffers[1] = asio::buffer("0\r\n\r\n", 5);
            } else {
                const int length =
                    std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece->size());
                buffers[0] = asio::buffer(size_line, static_cast<std::size_t>(length));
                buffers[2] = asio::buffer("\r\n", 2);
            }
        }
        tcp.expires_after(request.stream_timeout);
        auto [ec, written] = co_await asio::async_write(stream, buffers, kUse);
        (void)written;
        if (ec) co_return ec;
        if (piece->empty()) co_return error_code{};
    }
}

// Where an exchange of exchange_head starts: at the first byte of the request, part way
// through it, or with all of it sent and the answer's deadline set (the client's quick path,
// whose first read found no quick answer).
struct ExchangeStart {
    std::size_t sent = 0;  // bytes of the head and body already written
    std::optional<Clock::time_point> head_deadline;
};

// When the upstream must have started its answer: read_timeout after the request is out (a
// long upload does not eat into it), and never past the request's own deadline unless the body
// was streamed.
Clock::time_point head_deadline_of(const WireRequest& request, Clock::time_point deadline) {
    return request.body_stream ? Clock::now() + request.stream_timeout
                               : std::min(deadline, Clock::now() + request.stream_timeout);
}

// What a read that left the head incomplete means: the end of the stream before any byte of an
// answer, a truncated head, the head watch's timeout, or the socket's own error.
error_code head_read_error(error_code ec, const Connection& connection, StreamParser* parser) {
    if (ec && connection.head_timed_out) return beast::error::timeout;
    if (ec != asio::error::eof) return ec;
    if (parser && parser->got_some()) {
        error_code eof_ec;
        parser->put_eof(eof_ec);
        return eof_ec ? eof_ec : error_code(bhttp::error::partial_message);
    }
    return bhttp::error::end_of_stream;
}

// Writes the request (what `start` says is left of it) and reads the head of the final
// response into `parser`; the body is left on the connection for the caller to read piece by
// piece.
template <class Stream>
asio::awaitable<HeadOutcome> exchange_head(Stream& stream, Connection& connection, HeadWatch& watch,
                                           const WireRequest& request, Clock::time_point deadline,
                                           std::unique_ptr<StreamParser>& parser,
                                           ExchangeStart start) {
    beast::tcp_stream& tcp = connection.tcp();
    beast::flat_buffer& buffer = connection.buffer;
    HeadOutcome out;
    if (start.head_deadline) {
        out.sent_bytes = true;
        deadline = *start.head_deadline;
    } else {
        auto buffers = request.buffers();
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
            beast::buffers_suffix<decltype(buffers)> rest(buffers);
            rest.consume(start.sent);
            if (start.sent == 0) rest = detail::send_now(tcp.socket(), buffers, out.ec);
            out.sent_bytes = beast::buffer_bytes(rest) < beast::buffer_bytes(buffers);
            if (!out.ec && beast::buffer_bytes(rest) > 0) {
                tcp.expires_at(deadline);
                auto [write_ec, written] = co_await asio::async_write(stream, rest, kUse);
                out.sent_bytes = out.sent_bytes || written > 0;
                out.ec = write_ec;
            }
        } else {
            tcp.expires_at(deadline);
            auto [write_ec, written] = co_await asio::async_write(stream, buffers, kUse);
            out.sent_bytes = written > 0;
            out.ec = write_ec;
        }
        if (out.ec) co_return out;
        if (request.body_stream) {
            if (auto stream_ec = co_await send_body_stream(stream, tcp, request, out.body_error)) {
                out.ec = stream_ec;
                co_return out;
            }
        }
        deadline = head_deadline_of(request, deadline);
    }
    for (;;) {
        parser.reset();
        // Reads and parses in this loop rather than with Beast's read_header, whose layers of
        // composed operations cost more than the parse itself for a small answer. A common
        // answer, whole in the buffer, needs no Beast parser at all (quick_head.h).
        auto beast_parses = [&](error_code& ec) {
            if (buffer.size() == 0) return false;
            if (!request.head_method && (out.quick = quick_response(buffer))) return true;
            if (!parser) {
                parser = std::make_unique<StreamParser>();
                parser->header_limit(kHeaderLimit);
                parser->body_limit(boost::none);
                if (request.head_method) parser->skip(true);
            }
            return detail::parse_buffered_head(*parser, buffer, ec);
        };
        error_code read_ec;
        while (!read_ec && !beast_parses(read_ec)) {
            const auto room = buffer.prepare(beast::read_size(buffer, 65536));
            error_code ec;
            std::size_t read = 0;
            if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
                // The socket itself, bounded by the head watch; through TLS, the tcp_stream's
                // own timer bounds the read.
                Watched watched(watch, connection, deadline);
                auto [socket_ec, bytes] =
                    co_await detail::async_read_some_draining(tcp.socket(), room, kUse);
                ec = socket_ec;
                read = bytes;
            } else {
                tcp.expires_at(deadline);
                auto [stream_ec, bytes] = co_await stream.async_read_some(room, kUse);
                ec = stream_ec;
                read = bytes;
            }
            buffer.commit(read);
            connection.peer.read_done();
            out.got_bytes = out.got_bytes || read > 0;
            if (ec) read_ec = head_read_error(ec, connection, parser.get());
        }
        out.got_bytes = out.got_bytes || out.quick != nullptr || (parser && parser->got_some()) ||
                        buffer.size() > 0;
        if (read_ec) {
            out.ec = read_ec;
            co_return out;
        }
        if (out.quick) co_return out;
        const int status = parser->status();
        if (status >= 100 && status < 200 && status != 101) continue;
        co_return out;
    }
}

}  // namespace

std::string_view ClientResponse::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) return value;
    }
    return {};
}

std::string_view StreamedResponse::header(std::string_view name) const {
    return header_lines.find(name);
}

std::string_view to_string(ClientError::Kind kind) {
    switch (kind) {
        case ClientError::InvalidUrl:
            return "invalid_url";
        case ClientError::Resolve:
            return "resolve";
        case ClientError::Connect:
            return "connect";
        case ClientError::Tls:
            return "tls";
        case ClientError::Timeout:
            return "timeout";
        case ClientError::ProtocolError:
            return "protocol_error";
        case ClientError::BodyTooLarge:
            return "body_too_large";
        case ClientError::PoolExhausted:
            return "pool_exhausted";
        case ClientError::Closed:
            return "closed";
        case ClientError::RequestBody:
            return "request_body";
    }
    return "unknown";
}

namespace {

// What the client needs to know of the headers a caller gives.
struct HeaderFacts {
    bool has_host = false;
    bool has_agent = false;
    bool has_length = false;  // Content-Length or Transfer-Encoding
    std::string_view declared_length;
    bool close = false;
    bool upgrade = false;

    void note(std::string_view name, std::string_view value) {
        switch (name.size()) {
            case 4:
                has_host = has_host || iequals(name, "Host");
                break;
            case 7:
                upgrade = upgrade || iequals(name, "Upgrade");
                break;
            case 10:
                has_agent = has_agent || iequals(name, "User-Agent");
                if (iequals(name, "Connection") &&
                    lower(value).find("close") != std::string::npos) {
                    close = true;
                }
                break;
            case 14:
                if (iequals(name, "Content-Length")) {
                    has_length = true;
                    declared_length = value;
                }
                break;
            case 17:
                has_length = has_length || iequals(name, "Transfer-Encoding");
                break;
            default:
                break;
        }
    }
};

// True when neither the name nor the value of a header holds a CR or LF.
bool without_line_break(std::string_view name, std::string_view value) {
    return !has_line_break(name) && !has_line_break(value);
}

// Calls on_header(name, value) for each line "Name: value\r\n" a caller wrote; the number of
// lines, or why they cannot be sent: an empty line (which would end the head early), one without
// a name, or one on_header refuses (returns false for). A lone CR or LF inside a line is the
// caller's to find: on_header, or a count over the whole head.
template <class OnHeader>
Expected<std::size_t, ClientError> each_header_line(std::string_view text, OnHeader on_header) {
    auto refuse = [](std::string_view line) {
        return unexpected(error(ClientError::ProtocolError,
                                "invalid header line " + std::string(line.substr(0, 64))));
    };
    std::size_t lines = 0;
    while (!text.empty()) {
        const auto end = text.find("\r\n");
        if (end == std::string_view::npos) return refuse(text);
        const auto line = text.substr(0, end);
        text.remove_prefix(end + 2);
        const auto colon = line.find(':');
        if (colon == 0 || colon == std::string_view::npos) return refuse(line);
        auto value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
            value.remove_prefix(1);
        }
        if (!on_header(line.substr(0, colon), value)) return refuse(line);
        ++lines;
    }
    return lines;
}

}  // namespace

struct HttpClient::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::any_io_executor executor, ClientOptions client_options)
        : executor_(std::move(executor)),
          options_(std::move(client_options)),
          tls_context_(asio::ssl::context::tls_client),
          sweep_timer_(executor_),
          head_sweep_timer_(executor_) {
        if (options_.max_connections_per_host == 0) options_.max_connections_per_host = 1;
        error_code ec;
        tls_context_.set_options(asio::ssl::context::default_workarounds |
                                     asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                                     asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1,
                                 ec);
        if (options_.verify_tls) {
            tls_context_.set_verify_mode(asio::ssl::verify_peer, ec);
            if (options_.ca_file.empty()) {
                tls_context_.set_default_verify_paths(ec);
            } else {
                tls_context_.load_verify_file(options_.ca_file, ec);
            }
            if (ec) tls_setup_error_ = "cannot load trusted CAs: " + ec.message();
        } else {
            tls_context_.set_verify_mode(asio::ssl::verify_none, ec);
        }
    }

    using Result = Expected<ClientResponse, ClientError>;

    // Holds one slot of a host pool, with or without a connected stream; returns the slot on
    // destruction unless the connection was recycled into the pool.
    class Lease {
      public:
        Lease(Impl* impl, HostPool* pool, std::unique_ptr<Connection> connection, bool reused)
            : impl_(impl), pool_(pool), connection_(std::move(connection)), reused_(reused) {}
        Lease(Lease&& other) noexcept
            : impl_(other.impl_),
              pool_(std::exchange(other.pool_, nullptr)),
              connection_(std::move(other.connection_)),
              reused_(other.reused_) {}
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (pool_) impl_->release_slot(*pool_, std::move(connection_));
        }

        Connection* connection() const { return connection_.get(); }
        void attach(std::unique_ptr<Connection> connection) { connection_ = std::move(connection); }
        bool reused() const { return reused_; }
        void recycle() { impl_->recycle(*std::exchange(pool_, nullptr), std::move(connection_)); }

      private:
        Impl* impl_;
        HostPool* pool_;
        std::unique_ptr<Connection> connection_;
        bool reused_;
    };

    void release_slot(HostPool& pool, std::unique_ptr<Connection> connection) {
        if (connection) connection->close();
        while (!pool.waiters.empty()) {
            Waiter* waiter = pool.waiters.front();
            pool.waiters.pop_front();
            if (waiter->connection || waiter->slot || waiter->closed) continue;
            waiter->slot = true;
            waiter->timer.cancel();
            return;
        }
        --pool.open;
    }

    void recycle(HostPool& pool, std::unique_ptr<Connection> connection) {
        if (closed_) {
            release_slot(pool, std::move(connection));
            return;
        }
        // Watched from its first return to the pool: an upstream that closes after every answer
        // costs no registration. epoll takes the socket's state as it is when it is added, so
        // what came before is reported too.
        if (!connection->peer) {
            connection->peer = peer_watch_.watch(connection->tcp().socket().native_handle());
        }
        while (!pool.waiters.empty()) {
            Waiter* waiter = pool.waiters.front();
            pool.waiters.pop_front();
            if (waiter->connection || waiter->slot || waiter->closed) continue;
            waiter->connection = std::move(connection);
            waiter->timer.cancel();
            return;
        }
        connection->idle_since = Clock::now();
        pool.idle.push_back(std::move(connection));
        start_sweeper();
    }

    // `fresh` skips pooled connections (a retry after a stale one failed).
    // The most recently used idle connection when it is still usable: it is the least likely to
    // have been closed by the peer. Not a coroutine, so the common case costs no frame.
    std::optional<Lease> reuse_idle(HostPool& pool) {
        if (pool.idle.empty()) return std::nullopt;
        auto& newest = pool.idle.back();
        const auto now = Clock::now();
        if (idle_expiry(*newest) <= now || !still_open(*newest, now)) return std::nullopt;
        auto connection = std::move(newest);
        pool.idle.pop_back();
        return std::optional<Lease>(std::in_place, this, &pool, std::move(connection), true);
    }

    // When an idle connection is closed unless a request takes it first.
    Clock::time_point idle_expiry(const Connection& connection) const {
        return connection.idle_since + options_.idle_timeout;
    }

    // Whether an idle connection can take a request: nothing of it unread, and the upstream has
    // neither closed it nor written to it unasked (TLS peers may send session tickets). One idle
    // for kAskAfterIdle or more, where upstreams' idle timeouts close connections, is asked
    // itself; a busier one goes by the watch.
    bool still_open(Connection& connection, Clock::time_point now) {
        if (connection.buffer.size() != 0) return false;
        if (!connection.peer || now - connection.idle_since >= kAskAfterIdle ||
            !peer_watch_.look(now)) {
            return connection.reusable_by_peek();
        }
        if (connection.peer.peer_closed()) return false;
        return connection.tls || !connection.peer.unread_input();
    }

    asio::awaitable<Expected<Lease, ClientError>> acquire(HostPool& pool,
                                                          Clock::time_point deadline, bool fresh) {
        if (!fresh) {
            if (auto lease = reuse_idle(pool)) co_return std::move(*lease);
        }
        if (!pool.idle.empty()) {
            // A stale connection (or one a fresh attempt must not use): its slot becomes ours.
            auto connection = std::move(pool.idle.back());
            pool.idle.pop_back();
            connection->close();
            co_return Lease(this, &pool, nullptr, false);
        }
        if (pool.open < options_.max_connections_per_host) {
            ++pool.open;
            co_return Lease(this, &pool, nullptr, false);
        }
        Waiter waiter(executor_, pool);
        waiter.timer.expires_at(deadline);
        pool.waiters.push_back(&waiter);
        co_await waiter.timer.async_wait(kUse);
        if (waiter.connection) co_return Lease(this, &pool, std::move(waiter.connection), true);
        if (waiter.slot) co_return Lease(this, &pool, nullptr, false);
        if (waiter.closed || closed_)
            co_return unexpected(error(ClientError::Closed, "client closed"));
        co_return unexpected(error(ClientError::PoolExhausted,
                                   "no connection available within the request timeout (" +
                                       std::to_string(options_.max_connections_per_host) +
                                       " open)"));
    }

    asio::awaitable<Expected<std::unique_ptr<Connection>, ClientError>> connect(
        const Url& url, Clock::time_point deadline) {
        auto connect_deadline = std::min(deadline, Clock::now() + options_.connect_timeout);
        auto where = url.host_header;
        auto timed_out = [&] {
            return unexpected(error(ClientError::Timeout, "connecting to " + where + " timed out"));
        };
        if (url.tls && !tls_setup_error_.empty()) {
            co_return unexpected(error(ClientError::Tls, tls_setup_error_));
        }

        std::vector<tcp::endpoint> endpoints;
        if (is_ip_literal(url.host)) {
            endpoints.emplace_back(asio::ip::make_address(url.host), url.port);
        } else {
            auto resolved = co_await resolve(url, connect_deadline);
            if (!resolved) co_return unexpected(std::move(resolved).error());
            endpoints = std::move(*resolved);
        }

        auto connection = std::make_unique<Connection>();
        auto& stream = connection->plain.emplace(executor_);
        stream.expires_at(connect_deadline);
        auto [connect_ec, endpoint] = co_await stream.async_connect(endpoints, kUse);
        if (connect_ec == beast::error::timeout) co_return timed_out();
        if (connect_ec) {
            co_return unexpected(
                error(ClientError::Connect, "connect to " + where + ": " + connect_ec.message()));
        }
        error_code ignored;
        stream.socket().set_option(tcp::no_delay(true), ignored);
        detail::make_non_blocking(stream.socket());
        detail::enable_draining_reads(stream.socket());
        ++connections_created_;
        if (!url.tls) co_return connection;

        auto& tls = connection->tls.emplace(std::move(*connection->plain), tls_context_);
        connection->plain.reset();
        if (!is_ip_literal(url.host) &&
            !SSL_set_tlsext_host_name(tls.native_handle(), url.host.c_str())) {
            co_return unexpected(error(ClientError::Tls, "cannot set SNI for " + url.host));
        }
        if (options_.verify_tls) {
            tls.set_verify_callback(asio::ssl::host_name_verification(url.host), ignored);
        }
        beast::get_lowest_layer(tls).expires_at(connect_deadline);
        auto [handshake_ec] = co_await tls.async_handshake(asio::ssl::stream_base::client, kUse);
        if (handshake_ec == beast::error::timeout) co_return timed_out();
        if (handshake_ec) {
            std::string message = "TLS handshake with " + where + ": " + handshake_ec.message();
            auto verify = SSL_get_verify_result(tls.native_handle());
            if (verify != X509_V_OK) {
                message += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
            }
            co_return unexpected(error(ClientError::Tls, std::move(message)));
        }
        co_return connection;
    }

    // getaddrinfo cannot be interrupted, so a timed-out resolve is abandoned, not awaited.
    asio::awaitable<Expected<std::vector<tcp::endpoint>, ClientError>> resolve(
        const Url& url, Clock::time_point deadline) {
        struct State {
            explicit State(const asio::any_io_executor& executor)
                : resolver(executor), timer(executor) {}
            tcp::resolver resolver;
            asio::steady_timer timer;
            bool done = false;
            error_code ec;
            std::vector<tcp::endpoint> endpoints;
        };
        auto state = std::make_shared<State>(executor_);
        state->timer.expires_at(deadline);
        state->resolver.async_resolve(
            url.host, std::to_string(url.port), tcp::resolver::numeric_service,
            [state](error_code ec, const tcp::resolver::results_type& results) {
                state->done = true;
                state->ec = ec;
                for (const auto& entry : results) state->endpoints.push_back(entry.endpoint());
                state->timer.cancel();
            });
        co_await state->timer.async_wait(kUse);
        if (!state->done) {
            state->resolver.cancel();
            co_return unexpected(
                error(ClientError::Timeout, "resolving " + url.host + " timed out"));
        }
        if (state->ec || state->endpoints.empty()) {
            co_return unexpected(
                error(ClientError::Resolve,
                      "resolving " + url.host + ": " +
                          (state->ec ? state->ec.message() : std::string("no addresses"))));
        }
        co_return std::move(state->endpoints);
    }

    static asio::awaitable<Result> send(std::shared_ptr<Impl> self, ClientRequest request) {
        co_return co_await self->send_impl(std::move(request));
    }

    using Message = bhttp::request<bhttp::string_body>;

    Expected<Message, ClientError> build_message(ClientRequest& request, const Url& url) const {
        if (request.method.empty() || has_line_break(request.method) ||
            request.method.find(' ') != std::string::npos) {
            return unexpected(error(ClientError::ProtocolError, "invalid method"));
        }
        Message message;
        auto verb = bhttp::string_to_verb(request.method);
        if (verb == bhttp::verb::unknown) {
            message.method_string(request.method);
        } else {
            message.method(verb);
        }
        message.target(url.target);
        message.version(11);
        for (auto& [name, value] : request.headers) {
            if (name.empty() || has_line_break(name) || has_line_break(value)) {
                return unexpected(error(ClientError::ProtocolError, "invalid header " + name));
            }
            message.insert(name, value);
        }
        auto added = each_header_line(request.header_lines,
                                      [&](std::string_view name, std::string_view value) {
                                          if (!without_line_break(name, value)) return false;
                                          message.insert(name, value);
                                          return true;
                                      });
        if (!added) return unexpected(std::move(added).error());
        if (message.find(bhttp::field::host) == message.end()) {
            message.set(bhttp::field::host, url.host_header);
        }
        if (message.find(bhttp::field::user_agent) == message.end() &&
            !options_.user_agent.empty()) {
            message.set(bhttp::field::user_agent, options_.user_agent);
        }
        message.body() = std::move(request.body);
        if (message.find(bhttp::field::content_length) == message.end() &&
            message.find(bhttp::field::transfer_encoding) == message.end()) {
            message.prepare_payload();
        }
        return message;
    }

    // Which part of a request brought a line break of its own into its head.
    ClientError line_break_error(const ClientRequest& request) const {
        if (has_line_break(request.method)) {
            return error(ClientError::ProtocolError, "invalid method");
        }
        for (const auto& [name, value] : request.headers) {
            if (!without_line_break(name, value)) {
                return error(ClientError::ProtocolError, "invalid header " + name);
            }
        }
        if (auto lines = each_header_line(request.header_lines, without_line_break); !lines) {
            return std::move(lines).error();
        }
        return error(ClientError::ProtocolError, "invalid header User-Agent");
    }

    // Writes the request's head into `wire` (which starts empty), and moves its body there.
    Expected<void, ClientError> build_wire(ClientRequest& request, const Url& url,
                                           WireRequest& wire) const {
        if (request.method.empty() || request.method.find(' ') != std::string::npos) {
            return unexpected(error(ClientError::ProtocolError, "invalid method"));
        }
        auto verb = bhttp::string_to_verb(request.method);
        wire.head_method = verb == bhttp::verb::head;
        wire.idempotent = verb != bhttp::verb::unknown && is_idempotent(verb);
        std::string& head = wire.head;
        // One allocation: a proxied request carries long values (tokens, trace context).
        std::size_t size = 128 + request.method.size() + url.target.size() +
                           url.host_header.size() + options_.user_agent.size() +
                           request.header_lines.size();
        for (const auto& [name, value] : request.headers) size += name.size() + value.size() + 4;
        head.reserve(size);
        head.append(request.method);
        head.push_back(' ');
        head.append(url.target);
        head.append(" HTTP/1.1\r\n"sv);
        HeaderFacts facts;
        std::size_t lines = 2;  // the request line and the blank line
        for (const auto& [name, value] : request.headers) {
            if (name.empty() || name.find(':') != std::string::npos) {
                return unexpected(error(ClientError::ProtocolError, "invalid header " + name));
            }
            facts.note(name, value);
            append_header_line(head, name, value);
            ++lines;
        }
        if (!request.header_lines.empty()) {
            auto added = each_header_line(request.header_lines,
                                          [&](std::string_view name, std::string_view value) {
                                              facts.note(name, value);
                                              return true;
                                          });
            if (!added) return unexpected(std::move(added).error());
            head.append(request.header_lines);
            lines += *added;
        }
        const bool has_host = facts.has_host, has_agent = facts.has_agent;
        bool has_length = facts.has_length;
        wire.keep_alive = !facts.close;
        wire.upgrade = facts.upgrade;
        if (!has_host) {
            append_header_line(head, "Host", url.host_header);
            ++lines;
        }
        if (!has_agent && !options_.user_agent.empty()) {
            append_header_line(head, "User-Agent", options_.user_agent);
            ++lines;
        }
        if (request.body_stream) {
            wire.body_stream = std::move(request.body_stream);
            wire.chunked_stream = !has_length;
            if (!wire.chunked_stream && !facts.declared_length.empty()) {
                const auto value = facts.declared_length;
                std::uint64_t declared = 0;
                auto [end, parse_error] =
                    std::from_chars(value.data(), value.data() + value.size(), declared);
                if (parse_error != std::errc() || end != value.data() + value.size() ||
                    declared < request.body.size()) {
                    return unexpected(error(ClientError::ProtocolError,
                                            "invalid Content-Length for a streamed body"));
                }
                wire.stream_length = declared - request.body.size();
            }
            if (wire.chunked_stream) {
                head.append("Transfer-Encoding: chunked\r\n"sv);
                ++lines;
                // `body` goes ahead of the stream: it must be a chunk too.
                if (!request.body.empty()) {
                    char size_line[24];
                    const int length =
                        std::snprintf(size_line, sizeof size_line, "%zx\r\n", request.body.size());
                    request.body.insert(0, size_line, static_cast<std::size_t>(length));
                    request.body.append("\r\n");
                }
            }
            has_length = true;
        }
        const bool bodiless_method = verb == bhttp::verb::get || verb == bhttp::verb::head ||
                                     verb == bhttp::verb::delete_ || verb == bhttp::verb::options ||
                                     verb == bhttp::verb::trace;
        if (!has_length && (!request.body.empty() || !bodiless_method)) {
            append_header_line(head, "Content-Length", std::to_string(request.body.size()));
            ++lines;
        }
        head.append("\r\n"sv);
        if (detail::line_break_bytes(head) != 2 * lines)
            return unexpected(line_break_error(request));
        wire.body = std::move(request.body);
        return {};
    }

    HostPool& pool_for(const Url& url) {
        // The key is built in a reused buffer: a lookup of a known host allocates nothing.
        thread_local std::string key;
        key.assign(url.tls ? "https://" : "http://");
        key.append(url.host_header);
        if (auto found = pools_.find(key); found != pools_.end()) return found->second;
        return pools_[key];
    }

    // A leased slot with a connected stream: pooled, or new.
    asio::awaitable<Expected<Lease, ClientError>> connected_lease(HostPool& pool, const Url& url,
                                                                  Clock::time_point deadline,
                                                                  bool fresh) {
        auto lease = co_await acquire(pool, deadline, fresh);
        if (!lease) co_return unexpected(std::move(lease).error());
        if (!lease->connection()) {
            auto connection = co_await connect(url, deadline);
            if (!connection) co_return unexpected(std::move(connection).error());
            lease->attach(std::move(*connection));
        }
        co_return std::move(*lease);
    }

    asio::awaitable<Result> send_impl(ClientRequest request) {
        auto timeout = request.timeout.count() > 0 ? request.timeout : options_.request_timeout;
        auto deadline = Clock::now() + timeout;
        Url url;
        HostPool* const url_pool = url_into(request.url, url);
        if (url_pool == nullptr)
            co_return unexpected(error(ClientError::InvalidUrl, "invalid URL"));
        if (closed_) co_return unexpected(error(ClientError::Closed, "client closed"));
        auto built = build_message(request, url);
        if (!built) co_return unexpected(std::move(built).error());
        Message message = std::move(*built);

        auto& pool = *url_pool;
        bool sent_any = false;
        bool retry_allowed = is_idempotent(message.method()) && request.replay_on_stale_connection;
        for (int attempt = 0;; ++attempt) {
            auto lease = co_await acquire(pool, deadline, attempt > 0);
            if (!lease) {
                auto failure = std::move(lease).error();
                failure.request_sent = sent_any;
                co_return unexpected(std::move(failure));
            }
            if (!lease->connection()) {
                auto connection = co_await connect(url, deadline);
                if (!connection) {
                    auto failure = std::move(connection).error();
                    failure.request_sent = sent_any;
                    co_return unexpected(std::move(failure));
                }
                lease->attach(std::move(*connection));
            }
            auto& connection = *lease->connection();
            // Plain if/else, not ?:, around co_await: GCC 12 miscompiles the conditional form.
            ExchangeOutcome outcome;
            if (connection.tls) {
                outcome = co_await exchange(*connection.tls, connection.tcp(), connection.buffer,
                                            message, deadline, options_.max_response_body);
            } else {
                outcome = co_await exchange(*connection.plain, connection.tcp(), connection.buffer,
                                            message, deadline, options_.max_response_body);
            }
            connection.peer.read_done();
            sent_any = sent_any || outcome.sent_bytes;
            if (!outcome.ec) {
                if (outcome.keep_alive) lease->recycle();
                co_return std::move(outcome.response);
            }
            if (outcome.ec == beast::error::timeout) {
                co_return unexpected(error(ClientError::Timeout,
                                           "request to " + url.host_header + " timed out",
                                           sent_any));
            }
            if (outcome.ec == bhttp::error::body_limit) {
                co_return unexpected(error(ClientError::BodyTooLarge,
                                           "response body exceeds " +
                                               std::to_string(options_.max_response_body) +
                                               " bytes",
                                           sent_any));
            }
            // A reused connection may have been closed by the peer while we sent on it; nothing
            // was processed if no response byte came back, so an idempotent request is safe
            // to replay once.
            if (attempt == 0 && lease->reused() && !outcome.got_bytes && retry_allowed) continue;
            co_return unexpected(
                error(ClientError::ProtocolError,
                      std::string(outcome.sent_bytes ? "reading from " : "writing to ") +
                          url.host_header + ": " + outcome.ec.message(),
                      sent_any));
        }
    }

    // A response body read from the leased connection one piece at a time; the connection goes
    // back to the pool once the body is complete and both sides keep it alive, and is closed if
    // the body is abandoned half-way.
    class StreamedBody final : public BodySource {
      public:
        StreamedBody(std::shared_ptr<Impl> impl, Lease lease, std::unique_ptr<StreamParser> parser,
                     std::chrono::milliseconds read_timeout, bool keep_alive)
            : impl_(std::move(impl)),
              lease_(std::move(lease)),
              parser_(std::move(parser)),
              read_timeout_(read_timeout),
              keep_alive_(keep_alive) {
            if (parser_->is_done()) finish();
        }

        asio::awaitable<Expected<std::string_view, std::string>> next() override {
            if (!failure_.empty()) co_return unexpected(failure_);
            while (lease_) {
                auto& connection = *lease_->connection();
                parser_->body_buffer().set(chunk_.data(), chunk_.size());
                connection.tcp().expires_after(read_timeout_);
                error_code ec;
                if (connection.tls) {
                    auto [read_ec, read] = co_await bhttp::async_read_some(
                        *connection.tls, connection.buffer, *parser_, kUse);
                    (void)read;
                    ec = read_ec;
                } else {
                    auto [read_ec, read] = co_await bhttp::async_read_some(
                        *connection.plain, connection.buffer, *parser_, kUse);
                    (void)read;
                    ec = read_ec;
                }
                connection.peer.read_done();
                if (ec == bhttp::error::need_buffer) ec = {};
                if (ec) {
                    lease_.reset();
                    // Asked again, the body must not look complete.
                    failure_ = ec == beast::error::timeout
                                   ? "upstream body read timed out"
                                   : "reading upstream body: " + ec.message();
                    co_return unexpected(failure_);
                }
                const std::size_t produced = chunk_.size() - parser_->body_buffer().room();
                if (parser_->is_done()) finish();
                if (produced > 0) co_return std::string_view(chunk_.data(), produced);
            }
            co_return std::string_view{};
        }

      private:
        void finish() {
            if (keep_alive_ && parser_->keep_alive()) {
                lease_->recycle();
            }
            lease_.reset();
        }

        std::shared_ptr<Impl> impl_;  // the pool the lease returns to
        std::optional<Lease> lease_;  // empty once the body is complete or failed
        std::unique_ptr<StreamParser> parser_;
        std::chrono::milliseconds read_timeout_;
        bool keep_alive_;
        std::string failure_;
        std::array<char, 16 * 1024> chunk_{};
    };

    // The upstream connection after 101 Switching Protocols; never pooled again.
    class UpstreamTunnel final : public Tunnel {
      public:
        UpstreamTunnel(std::shared_ptr<Impl> impl, Lease lease,
                       std::chrono::milliseconds idle_timeout)
            : impl_(std::move(impl)), lease_(std::move(lease)), idle_timeout_(idle_timeout) {}

        std::string take_buffered() override {
            auto& buffer = lease_.connection()->buffer;
            std::string bytes(static_cast<const char*>(buffer.data().data()), buffer.size());
            buffer.consume(buffer.size());
            return bytes;
        }

        asio::awaitable<Expected<std::size_t, std::string>> read_some(
            std::span<char> into) override {
            auto& connection = *lease_.connection();
            connection.tcp().expires_after(idle_timeout_);
            error_code ec;
            std::size_t bytes = 0;
            if (connection.tls) {
                auto [read_ec, read] = co_await connection.tls->async_read_some(
                    asio::buffer(into.data(), into.size()), kUse);
                ec = read_ec;
                bytes = read;
            } else {
                auto [read_ec, read] = co_await connection.plain->async_read_some(
                    asio::buffer(into.data(), into.size()), kUse);
                ec = read_ec;
                bytes = read;
            }
            if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
                co_return std::size_t{0};
            }
            if (ec) co_return unexpected(ec.message());
            co_return bytes;
        }

        asio::awaitable<Expected<void, std::string>> write(std::string_view bytes) override {
            auto& connection = *lease_.connection();
            connection.tcp().expires_after(idle_timeout_);
            error_code ec;
            if (connection.tls) {
                auto [write_ec, written] = co_await asio::async_write(
                    *connection.tls, asio::buffer(bytes.data(), bytes.size()), kUse);
                (void)written;
                ec = write_ec;
            } else {
                auto [write_ec, written] = co_await asio::async_write(
                    *connection.plain, asio::buffer(bytes.data(), bytes.size()), kUse);
                (void)written;
                ec = write_ec;
            }
            if (ec) co_return unexpected(ec.message());
            co_return Expected<void, std::string>{};
        }

        void shutdown_send() override {
            error_code ignored;
            lease_.connection()->tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
        }

      private:
        std::shared_ptr<Impl> impl_;
        Lease lease_;
        std::chrono::milliseconds idle_timeout_;
    };

    using StreamedResult = Expected<StreamedResponse, ClientError>;

    // A request checked and serialized, before its first byte goes out. Held on the heap so that
    // the coroutine frame of the exchange stays small enough for Asio to recycle.
    struct PreparedRequest {
        Url url;
        HostPool* pool = nullptr;  // the URL origin's
        WireRequest wire;
        Clock::time_point deadline;
        std::chrono::milliseconds read_timeout{0};
        bool retry_allowed = false;

        // As new, with the strings' buffers kept (a large head's released).
        void reset() {
            url.tls = false;
            url.host.clear();
            url.port = 0;
            url.target.clear();
            url.host_header.clear();
            pool = nullptr;
            clear_for_reuse(wire.head, 16 * 1024);
            std::string().swap(wire.body);
            wire.head_method = false;
            wire.keep_alive = true;
            wire.upgrade = false;
            wire.idempotent = false;
            wire.body_stream.reset();
            wire.chunked_stream = false;
            wire.stream_length.reset();
            wire.stream_timeout = std::chrono::milliseconds{0};
            deadline = {};
            read_timeout = std::chrono::milliseconds{0};
            retry_allowed = false;
        }
    };
    // reset() must reset every member: one added to PreparedRequest, Url or WireRequest changes
    // these sizes, and this reminds whoever adds it (else one request's value would show
    // through in a later one's).
    static_assert(sizeof(PreparedRequest) == 264 && sizeof(Url) == 112 &&
                      sizeof(WireRequest) == 120,
                  "a member was added or removed: update PreparedRequest::reset()");

    // Prepared requests kept per thread for later ones: a proxy has tens of requests in flight,
    // past glibc's per-thread cache, and each request with its head's buffer cost two slow
    // allocations. Bounded; a request freed on another thread goes to that thread's.
    class KeptPrepared {
      public:
        static constexpr std::size_t kPerThread = 64;

        // Null once the thread's list is destroyed (a request freed later is deleted).
        static KeptPrepared* of_this_thread() {
            if (gone()) return nullptr;
            thread_local KeptPrepared kept;
            return &kept;
        }
        std::unique_ptr<PreparedRequest> take() {
            if (list_.empty()) return nullptr;
            auto taken = std::move(list_.back());
            list_.pop_back();
            return taken;
        }
        // False when the list is full.
        bool keep(PreparedRequest* prepared) {
            if (list_.size() == kPerThread) return false;
            prepared->reset();
            list_.emplace_back(prepared);
            return true;
        }

      private:
        KeptPrepared() { list_.reserve(kPerThread); }
        ~KeptPrepared() { gone() = true; }
        // Trivial, so still readable after the list's destruction at the thread's exit.
        static bool& gone() {
            thread_local bool destroyed = false;
            return destroyed;
        }
        std::vector<std::unique_ptr<PreparedRequest>> list_;
    };
    struct PreparedRecycler {
        void operator()(PreparedRequest* prepared) const noexcept {
            auto* kept = KeptPrepared::of_this_thread();
            if (kept == nullptr || !kept->keep(prepared)) delete prepared;
        }
    };
    using PreparedPtr = std::unique_ptr<PreparedRequest, PreparedRecycler>;

    static PreparedPtr new_prepared() {
        auto* kept = KeptPrepared::of_this_thread();
        if (auto taken = kept ? kept->take() : nullptr) return PreparedPtr(taken.release());
        return PreparedPtr(new PreparedRequest());
    }

    Expected<PreparedPtr, ClientError> prepare(ClientRequest& request) {
        auto timeout = request.timeout.count() > 0 ? request.timeout : options_.request_timeout;
        auto prepared = new_prepared();
        prepared->read_timeout = request.read_timeout.count() > 0 ? request.read_timeout : timeout;
        prepared->deadline = Clock::now() + timeout;
        prepared->pool = url_into(request.url, prepared->url);
        if (prepared->pool == nullptr) {
            return unexpected(error(ClientError::InvalidUrl, "invalid URL"));
        }
        if (closed_) return unexpected(error(ClientError::Closed, "client closed"));
        if (auto built = build_wire(request, prepared->url, prepared->wire); !built) {
            return unexpected(std::move(built).error());
        }
        prepared->wire.stream_timeout = prepared->read_timeout;
        prepared->retry_allowed = prepared->wire.idempotent && !prepared->wire.body_stream &&
                                  request.replay_on_stale_connection;
        return prepared;
    }

    // An origin parsed once, with its pool (which pools_ keeps for the client's life).
    struct KnownOrigin {
        std::string text;  // "scheme://authority"
        Url url;           // without a target
        HostPool* pool;
    };

    // Parses a URL into `url`; returns its origin's pool, or null when it is invalid. Its origin
    // comes from known_origin, so only the target is parsed per request.
    HostPool* url_into(std::string_view text, Url& url) {
        auto split = split_url(text);
        const KnownOrigin* origin = split ? known_origin(split->origin) : nullptr;
        if (origin == nullptr) return nullptr;
        url = origin->url;  // its target is empty; the strings keep their buffers
        return parse_target(split->tail, url.target) ? origin->pool : nullptr;
    }

    // The parsed origin ("scheme://authority") of a URL and its pool; null when it is invalid.
    // A proxy sends every request to one of a few origins: each is parsed, and its pool found
    // (a map lookup by a key built for it), once rather than once per request.
    const KnownOrigin* known_origin(std::string_view text) {
        for (const auto& known : known_origins_) {
            if (known.text == text) return &known;
        }
        auto parsed = parse_origin(text);
        if (!parsed) return nullptr;
        HostPool& pool = pool_for(*parsed);
        if (known_origins_.size() == kKnownOrigins) known_origins_.erase(known_origins_.begin());
        return &known_origins_.emplace_back(
            KnownOrigin{std::string(text), std::move(*parsed), &pool});
    }

    static asio::awaitable<StreamedResult> fail_now(ClientError failure) {
        co_return unexpected(std::move(failure));
    }

    // Why an exchange failed, once it is not retried.
    static ClientError exchange_failure(HeadOutcome& outcome, const Url& url, bool sent_any) {
        if (!outcome.body_error.empty()) {
            return error(ClientError::RequestBody, std::move(outcome.body_error), sent_any);
        }
        if (outcome.ec == beast::error::timeout) {
            return error(ClientError::Timeout, "request to " + url.host_header + " timed out",
                         sent_any);
        }
        return error(ClientError::ProtocolError,
                     std::string(outcome.sent_bytes ? "reading from " : "writing to ") +
                         url.host_header + ": " + outcome.ec.message(),
                     sent_any);
    }

    // The response once its head arrived: a small body already read whole, the rest left on
    // the connection for the caller to stream, or the tunnel after a 101.
    // A quick response: its body is taken from the buffer and the connection is back in the
    // pool at once.
    static StreamedResponse quick_streamed_response(Lease& lease, QuickResponse& quick,
                                                    const PreparedRequest& prepared) {
        auto& buffer = lease.connection()->buffer;
        StreamedResponse response;
        response.status = quick.head.status;
        response.header_lines = std::move(quick.lines);
        const auto length = static_cast<std::size_t>(quick.head.content_length);
        response.complete_body.emplace(
            static_cast<const char*>(buffer.data().data()) + quick.head.size, length);
        buffer.consume(quick.head.size + length);
        if (prepared.wire.keep_alive && quick.head.keep_alive) lease.recycle();
        return response;
    }

    StreamedResponse streamed_response(Lease& lease, std::unique_ptr<StreamParser> parser,
                                       const PreparedRequest& prepared) {
        auto& connection = *lease.connection();
        StreamedResponse response;
        response.status = parser->status();
        response.header_lines = std::move(parser->header_lines());
        if (response.status == 101 && prepared.wire.upgrade) {
            response.upgraded = std::make_shared<UpstreamTunnel>(
                shared_from_this(), std::move(lease), prepared.read_timeout);
            return response;
        }
        const bool keep_alive = prepared.wire.keep_alive && response.status != 101;
        if (auto length = parser->content_length();
            length && !parser->is_done() && !parser->chunked() && *length <= kCompleteBodyLimit &&
            connection.buffer.size() >= *length) {
            const auto* bytes = static_cast<const char*>(connection.buffer.data().data());
            response.complete_body.emplace(bytes, static_cast<std::size_t>(*length));
            connection.buffer.consume(static_cast<std::size_t>(*length));
            if (keep_alive && parser->keep_alive()) lease.recycle();
            return response;
        }
        response.body =
            std::make_shared<StreamedBody>(shared_from_this(), std::move(lease), std::move(parser),
                                           prepared.read_timeout, keep_alive);
        return response;
    }

    // exchange_head on the connection's stream, plain or TLS. Not a coroutine: one co_await in
    // the caller's frame instead of one per stream type.
    asio::awaitable<HeadOutcome> exchange_on(Connection& connection, const WireRequest& request,
                                             Clock::time_point deadline,
                                             std::unique_ptr<StreamParser>& parser,
                                             ExchangeStart start) {
        if (connection.tls) {
            return exchange_head(*connection.tls, connection, head_watch_, request, deadline,
                                 parser, start);
        }
        return exchange_head(*connection.plain, connection, head_watch_, request, deadline, parser,
                             start);
    }

    // Writes a plain request whole when the socket takes it at once, which a small one nearly
    // always is; the start for exchange_head otherwise. A request with a streamed body is left
    // to exchange_head whole.
    static ExchangeStart send_at_once(Connection& connection, const WireRequest& request,
                                      Clock::time_point deadline, HeadOutcome& outcome) {
        ExchangeStart start;
        if (request.body_stream) return start;
        const auto buffers = request.buffers();
        const auto rest = detail::send_now(connection.plain->socket(), buffers, outcome.ec);
        start.sent = beast::buffer_bytes(buffers) - beast::buffer_bytes(rest);
        outcome.sent_bytes = start.sent > 0;
        if (!outcome.ec && beast::buffer_bytes(rest) == 0) {
            start.head_deadline = head_deadline_of(request, deadline);
        }
        return start;
    }

    // `self` keeps the client alive for the call.
    asio::awaitable<StreamedResult> send_streamed(std::shared_ptr<Impl> self,
                                                  ClientRequest request) {
        auto prepared = prepare(request);
        if (!prepared) return fail_now(std::move(prepared).error());
        return exchange_streamed(std::move(self), std::move(*prepared));
    }

    asio::awaitable<StreamedResult> exchange_streamed(std::shared_ptr<Impl> self,
                                                      PreparedPtr prepared) {
        (void)self;
        auto& pool = *prepared->pool;
        bool sent_any = false;
        for (int attempt = 0;; ++attempt) {
            std::optional<Expected<Lease, ClientError>> leased;
            if (attempt == 0) {
                if (auto pooled = reuse_idle(pool)) leased.emplace(std::move(*pooled));
            }
            if (!leased) {
                leased.emplace(
                    co_await connected_lease(pool, prepared->url, prepared->deadline, attempt > 0));
            }
            auto& lease = *leased;
            if (!lease) {
                auto failure = std::move(lease).error();
                failure.request_sent = sent_any;
                co_return unexpected(std::move(failure));
            }
            auto& connection = *lease->connection();
            std::unique_ptr<StreamParser> parser;
            HeadOutcome outcome;
            ExchangeStart start;
            if (!connection.tls) {
                start_head_sweep();
                start = send_at_once(connection, prepared->wire, prepared->deadline, outcome);
            }
            if (start.head_deadline) {
                // The whole request went at once: the answer is most often one read away and
                // common enough for the quick parser, so it is read here, without the frame of a
                // coroutine of its own (exchange_head takes over otherwise).
                auto& buffer = connection.buffer;
                error_code read_ec;
                std::size_t read = 0;
                {
                    Watched watched(head_watch_, connection, *start.head_deadline);
                    std::tie(read_ec, read) = co_await detail::async_read_some_draining(
                        connection.plain->socket(), buffer.prepare(beast::read_size(buffer, 65536)),
                        kUse);
                }
                buffer.commit(read);
                connection.peer.read_done();
                outcome.got_bytes = read > 0;
                if (read_ec) {
                    outcome.ec = head_read_error(read_ec, connection, nullptr);
                } else if (!prepared->wire.head_method) {
                    outcome.quick = quick_response(buffer);
                }
            }
            // Unless it failed before an answer, or was answered on the quick path.
            if (!outcome.ec && !outcome.quick) {
                outcome = co_await exchange_on(connection, prepared->wire, prepared->deadline,
                                               parser, start);
            }
            sent_any = sent_any || outcome.sent_bytes;
            if (!outcome.ec && outcome.quick) {
                co_return quick_streamed_response(*lease, *outcome.quick, *prepared);
            }
            if (!outcome.ec) co_return streamed_response(*lease, std::move(parser), *prepared);
            if (outcome.body_error.empty() && attempt == 0 && lease->reused() &&
                !outcome.got_bytes && prepared->retry_allowed) {
                continue;
            }
            co_return unexpected(exchange_failure(outcome, prepared->url, sent_any));
        }
    }

    // Runs the head watch's sweep while a plain connection may wait for a head; it ends at the
    // first tick that finds none waiting.
    void start_head_sweep() {
        if (head_watch_.sweeping) return;
        head_watch_.sweeping = true;
        asio::co_spawn(executor_, sweep_heads(shared_from_this()), asio::detached);
    }

    static asio::awaitable<void> sweep_heads(std::shared_ptr<Impl> self) {
        auto& watch = self->head_watch_;
        for (;;) {
            self->head_sweep_timer_.expires_after(HeadWatch::kTick);
            co_await self->head_sweep_timer_.async_wait(kUse);
            watch.expire(Clock::now());
            if (watch.waiting.empty()) break;
        }
        watch.sweeping = false;
    }

    void start_sweeper() {
        if (sweeping_ || closed_) return;
        sweeping_ = true;
        asio::co_spawn(executor_, sweep(shared_from_this()), asio::detached);
    }

    static asio::awaitable<void> sweep(std::shared_ptr<Impl> self) {
        while (!self->closed_) {
            std::optional<Clock::time_point> next;
            for (auto& [key, pool] : self->pools_) {
                for (auto& connection : pool.idle) {
                    const auto expiry = self->idle_expiry(*connection);
                    if (!next || expiry < *next) next = expiry;
                }
            }
            if (!next) break;
            self->sweep_timer_.expires_at(*next);
            co_await self->sweep_timer_.async_wait(kUse);
            if (self->closed_) break;
            self->drop_idle([&self, now = Clock::now()](const Connection& connection) {
                return self->idle_expiry(connection) <= now;
            });
        }
        self->sweeping_ = false;
    }

    template <class Predicate>
    void drop_idle(Predicate should_drop) {
        for (auto& [key, pool] : pools_) {
            auto keep = std::stable_partition(
                pool.idle.begin(), pool.idle.end(),
                [&](const std::unique_ptr<Connection>& c) { return !should_drop(*c); });
            for (auto it = keep; it != pool.idle.end(); ++it) {
                (*it)->close();
                --pool.open;
            }
            pool.idle.erase(keep, pool.idle.end());
        }
    }

    void close() {
        closed_ = true;
        drop_idle([](const Connection&) { return true; });
        for (auto& [key, pool] : pools_) {
            for (Waiter* waiter : pool.waiters) {
                waiter->closed = true;
                waiter->timer.cancel();
            }
            pool.waiters.clear();
        }
        sweep_timer_.cancel();
    }

    ClientStats stats() const {
        ClientStats out;
        out.connections_created = connections_created_;
        for (const auto& [key, pool] : pools_) {
            out.open_connections += pool.open;
            out.idle_connections += pool.idle.size();
            out.waiting_requests += pool.waiters.size();
        }
        return out;
    }

    asio::any_io_executor executor_;
    ClientOptions options_;
    asio::ssl::context tls_context_;
    std::string tls_setup_error_;
    asio::steady_timer sweep_timer_;
    HeadWatch head_watch_;
    detail::PeerWatch peer_watch_;
    asio::steady_timer head_sweep_timer_;
    // Entries are never erased: waiters and leases point into them, and the set of upstreams a
    // process talks to is small and fixed by configuration.
    std::map<std::string, HostPool, std::less<>> pools_;
    // The origins parsed last.
    static constexpr std::size_t kKnownOrigins = 16;
    std::vector<KnownOrigin> known_origins_;
    std::uint64_t connections_created_ = 0;
    bool sweeping_ = false;
    bool closed_ = false;
};

HttpClient::HttpClient(asio::any_io_executor executor, ClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

HttpClient::~HttpClient() {
    impl_->close();
}

asio::awaitable<Expected<ClientResponse, ClientError>> HttpClient::send(ClientRequest request) {
    return Impl::send(impl_, std::move(request));
}

asio::awaitable<Expected<StreamedResponse, ClientError>> HttpClient::send_streamed(
    ClientRequest request) {
    return impl_->send_streamed(impl_, std::move(request));
}

void HttpClient::close_idle() {
    impl_->drop_idle([](const Connection&) { return true; });
}

void HttpClient::close() {
    impl_->close();
}

ClientStats HttpClient::stats() const {
    return impl_->stats();
}

}  // namespace aether::platform::http
