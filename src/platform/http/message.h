// The request and response types every handler sees; free of Beast so services compile fast.
#pragma once

#include <algorithm>
#include <array>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::http {

enum class Method { Get, Head, Post, Put, Patch, Delete, Options, Other };

std::string_view method_name(Method method);
Method parse_method(std::string_view name);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// ASCII case-insensitive, as HTTP field names are (std::tolower consults the locale). Inline:
// a proxied request compares header names a few dozen times, most of them of another length.
inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto x = static_cast<unsigned char>(a[i]);
        const auto y = static_cast<unsigned char>(b[i]);
        if (x == y) continue;
        if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
    }
    return true;
}

// Appends "name: value\r\n" to `text`, unchecked: for a name and value the caller knows hold no
// CR or LF (and the name no ':'), or checks in the text afterwards. Grown once and written in
// place: four appends cost twice as much. Neither may point into `text`, which growing moves.
inline void append_header_line(std::string& text, std::string_view name, std::string_view value) {
    const std::size_t at = text.size();
    text.resize(at + name.size() + value.size() + 4);
    char* out = std::copy(name.begin(), name.end(), text.data() + at);
    *out++ = ':';
    *out++ = ' ';
    out = std::copy(value.begin(), value.end(), out);
    *out++ = '\r';
    *out = '\n';
}

// Empties a buffer reused from one request to the next, keeping its capacity unless it grew past
// `kept_capacity` (a large body or head stays no longer than its request).
inline void clear_for_reuse(std::string& buffer, std::size_t kept_capacity) {
    if (buffer.capacity() > kept_capacity) {
        std::string().swap(buffer);
    } else {
        buffer.clear();
    }
}

// Case-insensitive lookup; the empty view when the header is absent.
std::string_view find_header(const HeaderList& headers, std::string_view name);

// Headers held as the text they are sent as, one "Name: value\r\n" line each: a proxy passes
// an upstream's headers on, and a plugin adds its own, without a pair of strings per header
// (each pair is moved several times, and a long name or value is on the heap). A name or value
// holding CR or LF is refused, so the text always splits back into the lines appended.
class HeaderLines {
  public:
    HeaderLines() = default;
    HeaderLines(const HeaderLines&) = default;
    HeaderLines& operator=(const HeaderLines&) = default;
    // A moved-from list is empty, and usable again.
    HeaderLines(HeaderLines&& other) noexcept
        : text_(std::move(other.text_)),
          count_(std::exchange(other.count_, 0)),
          index_(other.index_),
          indexed_(std::exchange(other.indexed_, 0)) {
        other.text_.clear();
    }
    HeaderLines& operator=(HeaderLines&& other) noexcept {
        text_ = std::move(other.text_);
        other.text_.clear();
        count_ = std::exchange(other.count_, 0);
        indexed_ = std::exchange(other.indexed_, 0);
        index_ = other.index_;
        return *this;
    }

    // False, and nothing appended, when the name is empty or holds ':', or either holds CR/LF.
    bool append(std::string_view name, std::string_view value);
    // append() for a field a parser read: it already refused those, so they are not looked for.
    void append_parsed(std::string_view name, std::string_view value);
    // append_parsed() of a line a parser read already written exactly "name: value\r\n":
    // copied whole.
    void append_parsed_line(std::string_view line, std::size_t name_size);
    // Where a line ends within a run of lines, and how long its name is.
    struct LineShape {
        std::uint32_t end;
        std::uint32_t name_size;
    };
    // append_parsed_line() of a run of lines a parser read, one after another in `lines`:
    // copied at once (a copy per line cost a hundred instructions each).
    void append_parsed_lines(std::string_view lines, std::span<const LineShape> shapes);
    // Appends all of `other`'s lines.
    void append(const HeaderLines& other);
    // The value of the first line named `name` (ASCII case-insensitive); "" when there is none.
    std::string_view find(std::string_view name) const;
    bool contains(std::string_view name) const;
    // Removes every line named `name`; returns how many there were.
    std::size_t erase(std::string_view name);
    // Keeps the lines for which keep(name, value) is true, in order.
    template <class Keep>
    void keep_if(Keep&& keep) {
        std::size_t read = 0;
        std::size_t write = 0;
        // The index is rewritten as lines are kept: entry k <= i, after line i was read.
        const std::size_t lines = count_;
        const std::size_t indexed = indexed_;
        count_ = 0;
        indexed_ = 0;
        for (std::size_t i = 0; i < lines; ++i) {
            const Line line = line_at(i, read, indexed);
            if (keep(line.name, line.value)) {
                if (write != read) {
                    std::char_traits<char>::move(text_.data() + write, text_.data() + read,
                                                 line.length);
                }
                write += line.length;
                note_line(write, line.name.size());
            }
            read += line.length;
        }
        text_.resize(write);
    }
    // Calls visit(name, value) for every line, in order.
    template <class Visit>
    void each(Visit&& visit) const {
        std::size_t at = 0;
        for (std::size_t i = 0; i < count_; ++i) {
            const Line line = line_at(i, at);
            visit(line.name, line.value);
            at += line.length;
        }
    }
    std::string_view text() const { return text_; }
    std::size_t size() const { return count_; }
    bool empty() const { return count_ == 0; }
    // Removes every line, keeping the text's capacity.
    void clear() {
        text_.clear();
        count_ = 0;
        indexed_ = 0;
    }

  private:
    struct Line {
        std::string_view name;
        std::string_view value;
        std::size_t length;  // the CRLF included
    };
    // Line `i`, which starts at offset `at`; `indexed`: how many lines the index holds.
    Line line_at(std::size_t i, std::size_t at, std::size_t indexed) const {
        std::size_t name_size = 0;
        std::size_t end = 0;
        if (i < indexed) {
            end = index_[i] & ((std::uint32_t{1} << kEndBits) - 1);
            name_size = index_[i] >> kEndBits;
        } else {
            end = scan_end(at, name_size);
        }
        const char* line = text_.data() + at;
        return Line{std::string_view(line, name_size),
                    std::string_view(line + name_size + 2, end - at - name_size - 4), end - at};
    }
    // Where the unindexed line at `at` ends, and its name's length.
    std::size_t scan_end(std::size_t at, std::size_t& name_size) const;
    Line line_at(std::size_t i, std::size_t at) const { return line_at(i, at, indexed_); }
    // Capacity for `more` bytes.
    void make_room(std::size_t more);
    // Counts a line just written, ending at `end`, in the index when it fits there.
    void note_line(std::size_t end, std::size_t name_size);
    std::optional<Line> line_named(std::string_view name) const;

    // Where each of the first lines ends and how long its name is (end in the low 20 bits, the
    // name's length above), so that finding, filtering and visiting read no text. Lines past
    // the index, or too long for it, are scanned; once one is, so are all after it. Six: most
    // proxied answers have no more lines, and a Response lives in several coroutine frames,
    // which glibc's per-thread cache only takes up to 1 032 bytes (the whole list is 64 bytes).
    static constexpr std::size_t kIndexed = 6;
    static constexpr std::uint32_t kEndBits = 20;
    std::string text_;
    std::uint32_t count_ = 0;
    std::array<std::uint32_t, kIndexed> index_{};
    std::uint8_t indexed_ = 0;  // lines [0, indexed_) are in index_
};

// Decodes %XX and '+' of an application/x-www-form-urlencoded component; nullopt when malformed.
std::optional<std::string> url_decode(std::string_view encoded);

class BodySource;

// Values the pipeline attaches to a request as it passes through.
struct RequestContext {
    std::string request_id;
    std::string traceparent;  // this hop's W3C traceparent, for logs and outgoing calls
    std::string user_id;      // set by whatever authenticated the request, for the access log
    // The matched route template, "" when none matched. It points into the router, which
    // outlives every request it routes, so naming the route costs no copy.
    std::string_view route;
    // Keeps alive whatever `route` points into when that is not the router (the gateway's
    // reloadable configuration).
    std::shared_ptr<const void> route_owner;
    std::chrono::steady_clock::time_point started;
    // Whether the pipeline answers CORS for this request (not the edge's plugins).
    bool cors_by_pipeline = true;

    // The 32 hex digits of the trace id inside traceparent ("" before the pipeline set it).
    std::string_view trace_id() const {
        return traceparent.size() >= 35 ? std::string_view(traceparent).substr(3, 32)
                                        : std::string_view();
    }
};

class Request {
  public:
    Method method = Method::Get;
    std::string method_text;  // as sent, for Method::Other
    std::string target;       // path and query as sent
    HeaderList headers;
    // Headers added on the way, already as lines (the gateway's verified identity): one buffer
    // rather than a pair of strings each. header() finds them after `headers`.
    HeaderLines header_lines;
    std::string body;
    std::string remote_address;
    bool keep_alive = true;
    int http_version = 11;  // 10 or 11
    std::vector<std::pair<std::string, std::string>> path_params;
    RequestContext context;
    // Set instead of `body` for a large or chunked body when the server streams request bodies
    // (behind the gateway's edge): the body arrives while the handler reads it.
    std::shared_ptr<BodySource> body_stream;

    // Empties the request for the next one on the same connection. The strings and lists keep
    // their capacity (a new Request would allocate them all again), except a large body's.
    void clear();

    std::string_view path() const;
    std::string_view raw_query() const;
    std::string_view header(std::string_view name) const;
    // A decoded query parameter; nullopt when absent (an empty value is present and "").
    std::optional<std::string> query(std::string_view name) const;
    // A path parameter captured by the route template ("{id}"); "" when absent.
    std::string_view param(std::string_view name) const;
};

// A body produced while it is being sent (a proxied upstream body, a stream of events). The
// server asks for the next piece only once the previous one is written, so memory stays bounded
// however long the body is.
class BodySource {
  public:
    virtual ~BodySource() = default;
    // The next bytes, valid until the next call; empty when the body is complete. An error ends
    // the response early: the connection is closed and the client sees a truncated body.
    virtual boost::asio::awaitable<Expected<std::string_view, std::string>> next() = 0;
};

// The client connection after a 101 Switching Protocols answer (WebSocket and other upgrades).
class Tunnel {
  public:
    virtual ~Tunnel() = default;
    // Bytes the client sent after its request head that the server had already read.
    virtual std::string take_buffered() = 0;
    // Some bytes; 0 when the client closed its side. Fails after the tunnel idle timeout.
    virtual boost::asio::awaitable<Expected<std::size_t, std::string>> read_some(
        std::span<char> into) = 0;
    virtual boost::asio::awaitable<Expected<void, std::string>> write(std::string_view bytes) = 0;
    // Half-closes towards the client (it reads end of stream).
    virtual void shutdown_send() = 0;
};

struct Response {
    int status = 200;
    HeaderList headers;
    // More headers, already as lines: a proxied upstream's, and those set_header sets. Sent
    // after `headers`.
    HeaderLines header_lines;
    std::string body;
    // Static text (a literal): the response does not own it. A std::string would put
    // "application/json", one byte past the small-string buffer, on the heap for every response.
    std::string_view content_type = "application/json";
    bool close_connection = false;
    // The headers are sent exactly as listed, with no Content-Type or Content-Length added (a
    // proxy forwarding an upstream's answer). Without a Content-Length header a body_source is
    // sent chunked (HTTP/1.1) or until the connection closes (HTTP/1.0).
    bool verbatim_headers = false;
    // When set, the body comes from here instead of `body`.
    std::shared_ptr<BodySource> body_source;
    // With status 101: runs once the answer is written, with the raw connection, which is
    // closed when it returns.
    std::function<boost::asio::awaitable<void>(Tunnel&)> on_upgrade;

    static Response json(int status, std::string body);
    static Response text(int status, std::string body,
                         std::string_view content_type = "text/plain");
    // Replaces every header of that name (in `headers` and `header_lines`) with one line. A name
    // or value holding CR or LF sets nothing (the old header is still removed).
    Response& set_header(std::string_view name, std::string_view value);
    // set_header for each of `lines`, in one pass.
    Response& set_headers(const HeaderLines& lines);
    std::string_view header(std::string_view name) const;
};

}  // namespace aether::platform::http
