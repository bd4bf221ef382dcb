// Tests for HttpClient::send_streamed against scripted upstreams on 127.0.0.1.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <functional>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "platform/http/client.h"

namespace aether::platform::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using StreamedResult = Expected<StreamedResponse, ClientError>;
using UpstreamRequest = bhttp::request<bhttp::string_body>;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kPieceLimit = 16 * 1024;

// One accepted connection, as the upstream's script sees it.
class Peer {
  public:
    explicit Peer(tcp::socket socket) : stream_(std::move(socket)) {}

    // The next request; nullopt once the client has closed the connection.
    asio::awaitable<std::optional<UpstreamRequest>> read_request() {
        UpstreamRequest request;
        auto [ec, n] = co_await bhttp::async_read(stream_, buffer_, request, kUse);
        (void)n;
        if (ec) co_return std::nullopt;
        co_return std::optional<UpstreamRequest>(std::move(request));
    }

    asio::awaitable<bool> write(std::string_view bytes) {
        auto [ec, n] =
            co_await asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()), kUse);
        (void)n;
        co_return !ec;
    }

    // Bytes already read past the request head first, then whatever arrives; "" at end of stream.
    asio::awaitable<std::string> read_some() {
        if (buffer_.size() > 0) {
            std::string bytes(static_cast<const char*>(buffer_.data().data()), buffer_.size());
            buffer_.consume(buffer_.size());
            co_return bytes;
        }
        std::array<char, 4096> bytes{};
        auto [ec, n] = co_await stream_.async_read_some(asio::buffer(bytes), kUse);
        if (ec) co_return std::string();
        co_return std::string(bytes.data(), n);
    }

    // True when the client closes the connection within `limit`; what it sends meanwhile is
    // dropped.
    asio::awaitable<bool> closed_by_client(std::chrono::milliseconds limit) {
        std::array<char, 4096> bytes{};
        stream_.expires_after(limit);
        for (;;) {
            auto [ec, n] = co_await stream_.async_read_some(asio::buffer(bytes), kUse);
            (void)n;
            if (ec == beast::error::timeout) co_return false;
            if (ec) co_return true;
        }
    }

    asio::awaitable<void> pause(std::chrono::milliseconds duration) {
        asio::steady_timer timer(stream_.get_executor(), duration);
        co_await timer.async_wait(kUse);
    }

    void shutdown_send() {
        boost::system::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

  private:
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
};

// What an upstream does with its n-th accepted connection (0-based); the connection is closed
// when the script returns.
using Script = std::function<asio::awaitable<void>(Peer&, int)>;

class Upstream {
  public:
    Upstream(asio::io_context& io, Script script)
        : io_(io),
          script_(std::move(script)),
          acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
        asio::co_spawn(io_, accept_loop(), asio::detached);
    }

    std::string url(std::string_view path) const {
        return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) +
               std::string(path);
    }
    int accepted() const { return accepted_; }

  private:
    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(kUse);
            if (ec) co_return;
            asio::co_spawn(io_, session(std::move(socket), accepted_++), asio::detached);
        }
    }

    asio::awaitable<void> session(tcp::socket socket, int index) {
        Peer peer(std::move(socket));
        co_await script_(peer, index);
    }

    asio::io_context& io_;
    Script script_;
    tcp::acceptor acceptor_;
    int accepted_ = 0;
};

// A one-shot event from the test to a script running on the same io_context.
class Signal {
  public:
    explicit Signal(asio::io_context& io) : timer_(io, asio::steady_timer::time_point::max()) {}
    void fire() {
        fired_ = true;
        timer_.cancel();
    }
    asio::awaitable<void> wait() {
        while (!fired_) co_await timer_.async_wait(kUse);
    }

  private:
    asio::steady_timer timer_;
    bool fired_ = false;
};

// Runs a coroutine on the shared io_context until it finishes; the upstream keeps its state.
void run(asio::io_context& io, asio::awaitable<void> task) {
    std::exception_ptr failure;
    bool finished = false;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr error) {
        failure = error;
        finished = true;
        io.stop();
    });
    io.restart();
    io.run_for(10s);
    ASSERT_TRUE(finished) << "the step did not finish within 10 s";
    if (failure) std::rethrow_exception(failure);
}

StreamedResult send_now(asio::io_context& io, HttpClient& client, const ClientRequest& request) {
    std::optional<StreamedResult> out;
    run(io,
        [&]() -> asio::awaitable<void> { out.emplace(co_await client.send_streamed(request)); }());
    if (!out) throw std::logic_error("send_streamed did not complete");
    return std::move(*out);
}

// One piece of the body, copied out: the view is only valid until the next call.
Expected<std::string, std::string> next_now(asio::io_context& io, BodySource& body) {
    std::optional<Expected<std::string, std::string>> out;
    run(io, [&]() -> asio::awaitable<void> {
        auto piece = co_await body.next();
        if (piece) {
            out.emplace(std::string(*piece));
        } else {
            out.emplace(unexpected(piece.error()));
        }
    }());
    if (!out) throw std::logic_error("next did not complete");
    return std::move(*out);
}

struct Drained {
    std::string body;
    std::size_t pieces = 0;
    std::size_t largest = 0;
    std::optional<std::string> error;
};

// Reads the body to its end (or its error) in one step.
Drained drain(asio::io_context& io, BodySource& body) {
    Drained out;
    run(io, [&]() -> asio::awaitable<void> {
        for (;;) {
            auto piece = co_await body.next();
            if (!piece) {
                out.error = piece.error();
                co_return;
            }
            if (piece->empty()) co_return;
            ++out.pieces;
            out.largest = std::max(out.largest, piece->size());
            out.body.append(*piece);
        }
    }());
    return out;
}

// The whole body, however it came: whole with the head, or read piece by piece from the source.
Drained drain(asio::io_context& io, const StreamedResponse& response) {
    if (response.complete_body) {
        Drained out;
        out.body = *response.complete_body;
        out.pieces = 1;
        out.largest = out.body.size();
        return out;
    }
    if (!response.body) {
        Drained out;
        out.error = "neither a complete body nor a body source";
        return out;
    }
    return drain(io, *response.body);
}

Expected<std::string, std::string> tunnel_read(asio::io_context& io, Tunnel& tunnel) {
    std::optional<Expected<std::string, std::string>> out;
    run(io, [&]() -> asio::awaitable<void> {
        std::array<char, 4096> bytes{};
        std::span<char> into(bytes);
        auto read = co_await tunnel.read_some(into);
        if (read) {
            out.emplace(std::string(bytes.data(), *read));
        } else {
            out.emplace(unexpected(read.error()));
        }
    }());
    if (!out) throw std::logic_error("read_some did not complete");
    return std::move(*out);
}

// Reads from the tunnel until `count` bytes have arrived (or it ends).
std::string tunnel_read_exactly(asio::io_context& io, Tunnel& tunnel, std::size_t count) {
    std::string out;
    while (out.size() < count) {
        auto piece = tunnel_read(io, tunnel);
        if (!piece || piece->empty()) break;
        out += *piece;
    }
    return out;
}

bool tunnel_write(asio::io_context& io, Tunnel& tunnel, std::string_view bytes) {
    bool ok = false;
    run(io, [&]() -> asio::awaitable<void> {
        auto written = co_await tunnel.write(bytes);
        ok = static_cast<bool>(written);
    }());
    return ok;
}

// Runs the io_context until `condition` holds (something the upstream observes), at most 5 s.
bool run_until(asio::io_context& io, const std::function<bool()>& condition) {
    bool held = false;
    run(io, [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(io);
        for (int i = 0; i < 5000 && !(held = condition()); ++i) {
            timer.expires_after(1ms);
            co_await timer.async_wait(kUse);
        }
    }());
    return held;
}

ClientRequest get(std::string url) {
    ClientRequest request;
    request.url = std::move(url);
    return request;
}

std::string describe(const StreamedResult& result) {
    if (result) return "status " + std::to_string(result->status);
    return std::string(to_string(result.error().kind)) + ": " + result.error().message;
}

// Bytes with no short period, so a piece out of place or repeated shows.
std::string pattern(std::size_t size) {
    std::string out(size, '\0');
    std::uint32_t state = 12345;
    for (auto& byte : out) {
        state = state * 1103515245u + 12345u;
        byte = static_cast<char>('!' + (state >> 16) % 90);
    }
    return out;
}

std::string chunk(std::string_view bytes) {
    char size_line[24];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", bytes.size());
    return size_line + std::string(bytes) + "\r\n";
}

std::string fixed_head(std::size_t length, std::string_view extra = "") {
    return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(length) + "\r\n" +
           std::string(extra) + "\r\n";
}

// Answers every request on the connection: /cl/N with N bytes, /chunked/N with N bytes in
// chunks, HEAD with the length of /cl/N, /empty with 204.
asio::awaitable<void> serve_keep_alive(Peer& peer, int) {
    for (;;) {
        auto request = co_await peer.read_request();
        if (!request) co_return;
        std::string target(request->target());
        std::string answer;
        if (target == "/empty") {
            answer = "HTTP/1.1 204 No Content\r\n\r\n";
        } else if (target.starts_with("/cl/")) {
            auto size = std::stoul(target.substr(4));
            answer = fixed_head(size);
            if (request->method() != bhttp::verb::head) answer += pattern(size);
        } else if (target.starts_with("/chunked/")) {
            auto body = pattern(std::stoul(target.substr(9)));
            answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            for (std::size_t at = 0; at < body.size(); at += 1000) {
                answer += chunk(std::string_view(body).substr(at, 1000));
            }
            answer += "0\r\n\r\n";
        } else {
            answer = fixed_head(target.size()) + target;
        }
        if (!co_await peer.write(answer)) co_return;
    }
}

class HttpClientStreamingTest : public testing::Test {
  protected:
    asio::io_context io_;
};

TEST(StreamedResponse, HeaderLookupIsCaseInsensitive) {
    StreamedResponse response;
    response.header_lines.append("Content-Type", "text/plain");
    response.header_lines.append("X-A", "1");
    response.header_lines.append("x-a", "2");
    EXPECT_EQ(response.header("content-type"), "text/plain");
    EXPECT_EQ(response.header("X-A"), "1");
    EXPECT_EQ(response.header("missing"), "");
}

TEST_F(HttpClientStreamingTest, ReturnsAtTheHeadWhileTheBodyIsStillComing) {
    Signal rest(io_);
    bool body_complete = false;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        const std::string answer = fixed_head(10, "X-Upstream: yes\r\n") + "hello";
        if (!co_await peer.write(answer)) co_return;
        co_await rest.wait();
        if (!co_await peer.write("world")) co_return;
        body_complete = true;
        co_await serve_keep_alive(peer, 0);
    });
    HttpClient client(io_.get_executor());

    auto response = send_now(io_, client, get(upstream.url("/slow")));
    ASSERT_TRUE(response) << describe(response);
    EXPECT_FALSE(body_complete);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->header("x-upstream"), "yes");
    EXPECT_EQ(response->header("content-length"), "10");
    ASSERT_TRUE(response->body);
    EXPECT_FALSE(response->upgraded);

    auto first = next_now(io_, *response->body);
    ASSERT_TRUE(first) << first.error();
    EXPECT_EQ(*first, "hello");
    EXPECT_FALSE(body_complete);

    rest.fire();
    auto second = next_now(io_, *response->body);
    ASSERT_TRUE(second) << second.error();
    EXPECT_EQ(*second, "world");
    auto end = next_now(io_, *response->body);
    ASSERT_TRUE(end) << end.error();
    EXPECT_EQ(*end, "");
    EXPECT_TRUE(body_complete);
}

TEST_F(HttpClientStreamingTest, ContentLengthBodyIsReadExactly) {
    // Larger than what the client hands over whole with the head.
    const std::string body = pattern(101000);
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        const std::string answer = fixed_head(body.size());
        if (!co_await peer.write(answer)) co_return;
        // Uneven writes, so reads end in the middle of what was sent.
        const std::array<std::size_t, 5> sizes = {1, 999, 3, 70000, 29997};
        std::size_t at = 0;
        for (std::size_t size : sizes) {
            if (!co_await peer.write(std::string_view(body).substr(at, size))) co_return;
            at += size;
            co_await peer.pause(1ms);
        }
        // Bytes past the body are not part of it.
        co_await peer.write("HTTP/1.1 200 OK\r\n");
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto response = send_now(io_, client, get(upstream.url("/cl")));
    ASSERT_TRUE(response) << describe(response);
    ASSERT_TRUE(response->body);
    auto drained = drain(io_, *response);
    EXPECT_FALSE(drained.error) << *drained.error;
    EXPECT_EQ(drained.body, body);
}

TEST_F(HttpClientStreamingTest, ABodyLargerThanTheSocketTakesAtOnceIsSentWhole) {
    const std::string body = pattern(8 * 1024 * 1024);
    std::string received;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        // Not reading for a while: the client's socket fills and the rest must wait for room.
        co_await peer.pause(200ms);
        std::string bytes;
        for (;;) {
            auto piece = co_await peer.read_some();
            if (piece.empty()) co_return;
            bytes += piece;
            const auto head_end = bytes.find("\r\n\r\n");
            if (head_end != std::string::npos && bytes.size() - head_end - 4 >= body.size()) {
                received = bytes.substr(head_end + 4);
                break;
            }
        }
        co_await peer.write(fixed_head(2) + "ok");
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());
    ClientRequest request = get(upstream.url("/upload"));
    request.method = "POST";
    request.body = body;

    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(response->status, 200);
    ASSERT_EQ(received.size(), body.size());
    EXPECT_TRUE(received == body);
}

TEST_F(HttpClientStreamingTest, EverySpellingOfAnOriginReachesItsHostWithItsOwnTarget) {
    Upstream upstream(io_, serve_keep_alive);
    HttpClient client(io_.get_executor());
    const std::string port = upstream.url("").substr(std::string("http://127.0.0.1:").size());
    // More spellings than the client keeps parsed, each twice, so some are parsed again.
    std::vector<std::string> origins;
    for (const char* scheme : {"http", "HTTP", "Http", "hTTp", "htTP"}) {
        for (const char* host : {"127.0.0.1", "localhost", "LOCALHOST", "LocalHost"}) {
            origins.push_back(std::string(scheme) + "://" + host + ":" + port);
        }
    }
    for (int round = 0; round < 2; ++round) {
        for (std::size_t i = 0; i < origins.size(); ++i) {
            const std::string path = "/o/" + std::to_string(round) + "/" + std::to_string(i);
            for (const auto& [tail, target] : std::vector<std::pair<std::string, std::string>>{
                     {path + "?q=1#frag", path + "?q=1"},
                     {"?only=query", "/?only=query"},
                     {"", "/"}}) {
                auto response = send_now(io_, client, get(origins[i] + tail));
                ASSERT_TRUE(response) << origins[i] << tail << ": " << describe(response);
                ASSERT_TRUE(response->complete_body);
                EXPECT_EQ(*response->complete_body, target) << origins[i] << tail;
            }
        }
    }
    // One pool per host, whichever way its scheme and name were written.
    EXPECT_EQ(client.stats().connections_created, 2u);
    auto bad = send_now(io_, client, get("http://localhost:" + port + "/a b"));
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().kind, ClientError::InvalidUrl);
}

TEST_F(HttpClientStreamingTest, HeaderLinesAreSentAsWrittenAndDecideTheFraming) {
    std::vector<UpstreamRequest> seen;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        for (;;) {
            auto request = co_await peer.read_request();
            if (!request) co_return;
            seen.push_back(*request);
            if (!co_await peer.write(fixed_head(2) + "ok")) co_return;
        }
    });
    HttpClient client(io_.get_executor());
    ClientRequest request = get(upstream.url("/lines"));
    request.method = "POST";
    request.body = "hello";
    // The caller's Host and Content-Length, given as lines, are the only ones sent.
    request.header_lines =
        "Host: upstream.test\r\nX-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nContent-Length: 5\r\n";
    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    ASSERT_EQ(seen.size(), 1u);
    const auto& sent = seen.front();
    EXPECT_EQ(sent[bhttp::field::host], "upstream.test");
    EXPECT_EQ(sent["X-Forwarded-For"], "10.0.0.1, 127.0.0.1");
    EXPECT_EQ(sent.body(), "hello");
    EXPECT_EQ(sent.count(bhttp::field::host), 1u);
    EXPECT_EQ(sent.count(bhttp::field::content_length), 1u);

    // A Connection: close line keeps the connection out of the pool.
    request = get(upstream.url("/close"));
    request.header_lines = "Connection: close\r\n";
    response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(client.stats().idle_connections, 0u);
}

TEST_F(HttpClientStreamingTest, AStrayLineBreakInHeaderLinesIsRefusedNamingItsLine) {
    Upstream upstream(io_, serve_keep_alive);
    HttpClient client(io_.get_executor());
    for (const auto& [lines, culprit] : std::vector<std::pair<std::string, std::string>>{
             {"X-Fine: 1\r\nX-A: a\rb\r\n", "X-A: a\rb"},
             {"X-Fine: 1\r\nX-B: a\nX-Smuggled: 1\r\n", "X-B: a\nX-Smuggled: 1"}}) {
        ClientRequest request = get(upstream.url("/lines"));
        request.header_lines = lines;
        auto refused = send_now(io_, client, request);
        ASSERT_FALSE(refused) << culprit;
        EXPECT_EQ(refused.error().kind, ClientError::ProtocolError);
        EXPECT_EQ(refused.error().message, "invalid header line " + culprit);
        EXPECT_FALSE(refused.error().request_sent);
    }
    EXPECT_EQ(upstream.accepted(), 0);
}

TEST_F(HttpClientStreamingTest, SmallBodyThatCameWithTheHeadIsGivenWhole) {
    Upstream upstream(io_, serve_keep_alive);
    HttpClient client(io_.get_executor());

    for (int i = 0; i < 2; ++i) {
        auto response = send_now(io_, client, get(upstream.url("/cl/300")));
        ASSERT_TRUE(response) << describe(response);
        ASSERT_TRUE(response->complete_body);
        EXPECT_EQ(*response->complete_body, pattern(300));
        EXPECT_FALSE(response->body);
        // Already back in the pool.
        EXPECT_EQ(client.stats().idle_connections, 1u);
    }
    EXPECT_EQ(client.stats().connections_created, 1u);
}

// An answer whole in the buffer is read by the quick parser, one whose body comes later by
// Beast's: the caller sees the same lines either way, trimmed and written "name: value".
TEST_F(HttpClientStreamingTest, AnswerHeadersReadTheSameWholeOrInPieces) {
    const std::string head =
        "HTTP/1.1 200 OK\r\nX-Exact: a b\r\nX-Spaced:\t  padded  \r\nx-empty:\r\n"
        "Content-Length: 2\r\n\r\n";
    Signal rest(io_);
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        for (;;) {
            auto request = co_await peer.read_request();
            if (!request) co_return;
            if (request->target() == "/whole") {
                if (!co_await peer.write(head + "ok")) co_return;
            } else {
                if (!co_await peer.write(head)) co_return;
                co_await rest.wait();
                if (!co_await peer.write("ok")) co_return;
            }
        }
    });
    HttpClient client(io_.get_executor());
    const std::string expected =
        "X-Exact: a b\r\nX-Spaced: padded\r\nx-empty: \r\nContent-Length: 2\r\n";

    auto whole = send_now(io_, client, get(upstream.url("/whole")));
    ASSERT_TRUE(whole) << describe(whole);
    EXPECT_EQ(whole->header_lines.text(), expected);
    EXPECT_EQ(whole->header("x-spaced"), "padded");
    ASSERT_TRUE(whole->complete_body);
    EXPECT_EQ(*whole->complete_body, "ok");
    EXPECT_EQ(client.stats().idle_connections, 1u);

    auto pieces = send_now(io_, client, get(upstream.url("/pieces")));
    ASSERT_TRUE(pieces) << describe(pieces);
    EXPECT_EQ(pieces->header_lines.text(), expected);
    EXPECT_FALSE(pieces->complete_body);
    rest.fire();
    auto body = next_now(io_, *pieces->body);
    ASSERT_TRUE(body) << body.error();
    EXPECT_EQ(*body, "ok");
    EXPECT_EQ(client.stats().connections_created, 1u);
}

// The client's first read after a request takes the quick path; a head it leaves incomplete is
// finished by the general one, and one the upstream cuts short is an error, not a retry.
TEST_F(HttpClientStreamingTest, AHeadSplitAcrossReadsIsJoinedAndAHeadCutShortIsAnError) {
    Upstream upstream(io_, [](Peer& peer, int) -> asio::awaitable<void> {
        for (;;) {
            auto request = co_await peer.read_request();
            if (!request) co_return;
            if (!co_await peer.write("HTTP/1.1 200 OK\r\nX-Split: befo")) co_return;
            co_await peer.pause(50ms);
            if (request->target() == "/cut") {
                peer.shutdown_send();
                co_await peer.closed_by_client(5s);
                co_return;
            }
            if (!co_await peer.write("re\r\nContent-Length: 2\r\n\r\nok")) co_return;
        }
    });
    HttpClient client(io_.get_executor());

    auto split = send_now(io_, client, get(upstream.url("/split")));
    ASSERT_TRUE(split) << describe(split);
    EXPECT_EQ(split->status, 200);
    EXPECT_EQ(split->header_lines.text(), "X-Split: before\r\nContent-Length: 2\r\n");
    ASSERT_TRUE(split->complete_body);
    EXPECT_EQ(*split->complete_body, "ok");
    EXPECT_EQ(client.stats().idle_connections, 1u);

    auto cut = send_now(io_, client, get(upstream.url("/cut")));
    ASSERT_FALSE(cut);
    EXPECT_EQ(cut.error().kind, ClientError::ProtocolError) << describe(cut);
    EXPECT_TRUE(cut.error().request_sent);
    EXPECT_EQ(upstream.accepted(), 1);
    EXPECT_EQ(client.stats().open_connections, 0u);
}

TEST_F(HttpClientStreamingTest, ChunkedBodyIsDecodedWhateverTheReadBoundaries) {
    const std::string body = pattern(1 + 7 + 20000 + 3);
    std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::string_view view(body);
    wire += chunk(view.substr(0, 1));
    wire += "7;name=value\r\n" + std::string(view.substr(1, 7)) + "\r\n";  // an extension
    wire += chunk(view.substr(8, 20000));  // larger than one read of the body
    wire += chunk(view.substr(20008, 3));
    wire += "0\r\nX-Trailer: t\r\n\r\n";
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        // Cut inside size lines, chunk data and the final CRLFs.
        const std::array<std::size_t, 7> cuts = {
            50, 52, 60, 5000, 20040, wire.size() - 3, wire.size() - 1};
        std::size_t at = 0;
        for (std::size_t cut : cuts) {
            if (!co_await peer.write(std::string_view(wire).substr(at, cut - at))) co_return;
            at = cut;
            co_await peer.pause(1ms);
        }
        if (!co_await peer.write(std::string_view(wire).substr(at))) co_return;
        co_await serve_keep_alive(peer, 0);
    });
    HttpClient client(io_.get_executor());

    auto response = send_now(io_, client, get(upstream.url("/chunked")));
    ASSERT_TRUE(response) << describe(response);
    ASSERT_TRUE(response->body);
    auto drained = drain(io_, *response);
    EXPECT_FALSE(drained.error) << *drained.error;
    EXPECT_EQ(drained.body.size(), body.size());
    EXPECT_EQ(drained.body, body);
    EXPECT_LE(drained.largest, kPieceLimit);
    // The terminating chunk and trailer were consumed: the connection serves the next request.
    auto next = send_now(io_, client, get(upstream.url("/after")));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(drain(io_, *next).body, "/after");
    EXPECT_EQ(client.stats().connections_created, 1u);
}

TEST_F(HttpClientStreamingTest, CloseDelimitedBodyIsReadToTheEnd) {
    const std::string body = pattern(3000);
    Upstream upstream(io_, [&](Peer& peer, int index) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        const char* head =
            index == 0 ? "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" : "HTTP/1.0 200 OK\r\n\r\n";
        if (!co_await peer.write(head)) co_return;
        for (std::size_t at = 0; at < body.size(); at += 700) {
            if (!co_await peer.write(std::string_view(body).substr(at, 700))) co_return;
            co_await peer.pause(1ms);
        }
    });
    HttpClient client(io_.get_executor());

    for (int i = 0; i < 2; ++i) {
        auto response = send_now(io_, client, get(upstream.url("/until-close")));
        ASSERT_TRUE(response) << describe(response);
        ASSERT_TRUE(response->body);
        auto drained = drain(io_, *response);
        EXPECT_FALSE(drained.error) << i << ": " << *drained.error;
        EXPECT_EQ(drained.body, body) << i;
        EXPECT_EQ(client.stats().open_connections, 0u) << i;
    }
    EXPECT_EQ(upstream.accepted(), 2);
}

TEST_F(HttpClientStreamingTest, FullyReadKeepAliveBodyReturnsTheConnectionToThePool) {
    Upstream upstream(io_, serve_keep_alive);
    HttpClient client(io_.get_executor());

    for (std::string path : {"/cl/3000", "/chunked/2500", "/cl/0", "/cl/100000"}) {
        auto response = send_now(io_, client, get(upstream.url(path)));
        ASSERT_TRUE(response) << path << ": " << describe(response);
        auto drained = drain(io_, *response);
        EXPECT_FALSE(drained.error) << path << ": " << *drained.error;
        EXPECT_EQ(drained.body, pattern(std::stoul(path.substr(path.rfind('/') + 1)))) << path;
        auto stats = client.stats();
        EXPECT_EQ(stats.connections_created, 1u) << path;
        EXPECT_EQ(stats.idle_connections, 1u) << path;
        EXPECT_EQ(stats.open_connections, 1u) << path;
    }
    EXPECT_EQ(upstream.accepted(), 1);
}

TEST_F(HttpClientStreamingTest, ConnectionCloseOnEitherSideIsNotPooled) {
    Upstream upstream(io_, [](Peer& peer, int index) -> asio::awaitable<void> {
        if (index == 0) {
            co_await serve_keep_alive(peer, index);
            co_return;
        }
        if (!co_await peer.read_request()) co_return;
        const std::string answer = fixed_head(2, "Connection: close\r\n") + "ok";
        co_await peer.write(answer);
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto request = get(upstream.url("/cl/10"));
    request.headers = {{"Connection", "close"}};
    auto asked = send_now(io_, client, request);
    ASSERT_TRUE(asked) << describe(asked);
    EXPECT_EQ(drain(io_, *asked).body, pattern(10));
    EXPECT_EQ(client.stats().open_connections, 0u);

    auto told = send_now(io_, client, get(upstream.url("/told")));
    ASSERT_TRUE(told) << describe(told);
    EXPECT_EQ(drain(io_, *told).body, "ok");
    EXPECT_EQ(client.stats().open_connections, 0u);
    EXPECT_EQ(client.stats().connections_created, 2u);
}

TEST_F(HttpClientStreamingTest, AbandonedBodyClosesTheConnection) {
    bool saw_close = false;
    Upstream upstream(io_, [&](Peer& peer, int index) -> asio::awaitable<void> {
        if (index > 0) {
            co_await serve_keep_alive(peer, index);
            co_return;
        }
        if (!co_await peer.read_request()) co_return;
        const std::string answer = fixed_head(100000) + pattern(1000);
        if (!co_await peer.write(answer)) co_return;
        saw_close = co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto response = send_now(io_, client, get(upstream.url("/big")));
    ASSERT_TRUE(response) << describe(response);
    ASSERT_TRUE(response->body);
    auto piece = next_now(io_, *response->body);
    ASSERT_TRUE(piece) << piece.error();
    EXPECT_FALSE(piece->empty());
    EXPECT_EQ(client.stats().open_connections, 1u);
    response->body.reset();
    EXPECT_EQ(client.stats().open_connections, 0u);
    EXPECT_EQ(client.stats().idle_connections, 0u);
    EXPECT_TRUE(run_until(io_, [&] { return saw_close; }));

    auto next = send_now(io_, client, get(upstream.url("/cl/5")));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(drain(io_, *next).body, pattern(5));
    EXPECT_EQ(client.stats().connections_created, 2u);
    EXPECT_EQ(upstream.accepted(), 2);
}

TEST_F(HttpClientStreamingTest, ReadTimeoutEndsTheBodyWithAnError) {
    bool saw_close = false;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        const std::string answer = fixed_head(10) + "hello";
        if (!co_await peer.write(answer)) co_return;
        saw_close = co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto request = get(upstream.url("/stalls"));
    request.read_timeout = 100ms;
    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    ASSERT_TRUE(response->body);
    auto first = next_now(io_, *response->body);
    ASSERT_TRUE(first) << first.error();
    EXPECT_EQ(*first, "hello");
    auto started = std::chrono::steady_clock::now();
    auto stalled = next_now(io_, *response->body);
    auto waited = std::chrono::steady_clock::now() - started;
    ASSERT_FALSE(stalled) << "got " << stalled->size() << " bytes";
    EXPECT_NE(stalled.error().find("timed out"), std::string::npos) << stalled.error();
    EXPECT_GE(waited, 90ms);
    EXPECT_LT(waited, 3s);
    EXPECT_EQ(client.stats().open_connections, 0u);
    EXPECT_TRUE(run_until(io_, [&] { return saw_close; }));
}

TEST_F(HttpClientStreamingTest, ReadTimeoutBoundsEachPieceNotTheWholeBody) {
    Upstream upstream(io_, [](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        const std::string answer = fixed_head(10);
        if (!co_await peer.write(answer)) co_return;
        for (char digit = '0'; digit <= '9'; ++digit) {
            co_await peer.pause(50ms);
            const char piece[1] = {digit};
            if (!co_await peer.write(std::string_view(piece, 1))) co_return;
        }
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    // The body takes ~500 ms: longer than `timeout` (which covers the head only) and than
    // read_timeout, which bounds each wait for a piece.
    auto request = get(upstream.url("/trickle"));
    request.timeout = 200ms;
    request.read_timeout = 400ms;
    auto started = std::chrono::steady_clock::now();
    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    ASSERT_TRUE(response->body);
    auto drained = drain(io_, *response);
    EXPECT_FALSE(drained.error) << *drained.error;
    EXPECT_EQ(drained.body, "0123456789");
    EXPECT_GE(std::chrono::steady_clock::now() - started, 450ms);
}

TEST_F(HttpClientStreamingTest, TruncatedBodyIsAnError) {
    Upstream upstream(io_, [](Peer& peer, int index) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        if (index == 0) {
            const std::string answer = fixed_head(10) + "12345";
            co_await peer.write(answer);
        } else {
            co_await peer.write(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n");
        }
    });
    HttpClient client(io_.get_executor());

    for (int i = 0; i < 2; ++i) {
        auto response = send_now(io_, client, get(upstream.url("/cut")));
        ASSERT_TRUE(response) << describe(response);
        ASSERT_TRUE(response->body);
        auto drained = drain(io_, *response);
        EXPECT_EQ(drained.body, "12345") << i;
        ASSERT_TRUE(drained.error) << i;
        EXPECT_NE(drained.error->find("reading upstream body"), std::string::npos)
            << *drained.error;
        EXPECT_EQ(client.stats().open_connections, 0u);
    }
}

TEST_F(HttpClientStreamingTest, LargeBodyStreamsInBoundedPieces) {
    constexpr std::size_t kSize = 1024 * 1024;
    const std::string body = pattern(kSize);
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        for (int i = 0;; ++i) {
            auto request = co_await peer.read_request();
            if (!request) co_return;
            std::string_view view(body);
            if (i == 0) {
                const std::string answer = fixed_head(kSize);
                if (!co_await peer.write(answer)) co_return;
                for (std::size_t at = 0; at < kSize; at += 64 * 1024) {
                    if (!co_await peer.write(view.substr(at, 64 * 1024))) co_return;
                }
            } else {
                std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                if (!co_await peer.write(head)) co_return;
                for (std::size_t at = 0; at < kSize; at += 40000) {
                    std::string piece = chunk(view.substr(at, 40000));
                    if (!co_await peer.write(piece)) co_return;
                }
                if (!co_await peer.write("0\r\n\r\n")) co_return;
            }
        }
    });
    HttpClient client(io_.get_executor());

    for (const char* framing : {"content-length", "chunked"}) {
        auto response = send_now(io_, client, get(upstream.url("/large")));
        ASSERT_TRUE(response) << framing << ": " << describe(response);
        ASSERT_TRUE(response->body) << framing;
        auto drained = drain(io_, *response);
        EXPECT_FALSE(drained.error) << framing << ": " << *drained.error;
        EXPECT_EQ(drained.body.size(), kSize) << framing;
        EXPECT_TRUE(drained.body == body) << framing;
        EXPECT_LE(drained.largest, kPieceLimit) << framing;
        EXPECT_GE(drained.pieces, kSize / kPieceLimit) << framing;
    }
    EXPECT_EQ(client.stats().connections_created, 1u);
}

TEST_F(HttpClientStreamingTest, UpgradeYieldsATunnelCarryingBytesBothWays) {
    std::string upgrade_header;
    bool saw_half_close = false;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        auto request = co_await peer.read_request();
        if (!request) co_return;
        upgrade_header = std::string((*request)[bhttp::field::upgrade]);
        // The first bytes of the new protocol travel with the 101 head.
        if (!co_await peer.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                 "Upgrade: echo\r\n\r\nHELLO")) {
            co_return;
        }
        for (;;) {
            std::string bytes = co_await peer.read_some();
            if (bytes.empty()) break;
            const std::string answer = "echo:" + bytes;
            if (!co_await peer.write(answer)) co_return;
        }
        saw_half_close = true;
        co_await peer.write("bye");
        peer.shutdown_send();
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto request = get(upstream.url("/ws"));
    request.headers = {{"Connection", "Upgrade"}, {"Upgrade", "echo"}};
    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(upgrade_header, "echo");
    EXPECT_EQ(response->status, 101);
    EXPECT_EQ(response->header("upgrade"), "echo");
    EXPECT_FALSE(response->body);
    EXPECT_FALSE(response->complete_body);
    ASSERT_TRUE(response->upgraded);
    auto& tunnel = *response->upgraded;

    EXPECT_EQ(tunnel.take_buffered(), "HELLO");
    EXPECT_EQ(tunnel.take_buffered(), "");
    ASSERT_TRUE(tunnel_write(io_, tunnel, "ping"));
    EXPECT_EQ(tunnel_read_exactly(io_, tunnel, 9), "echo:ping");
    ASSERT_TRUE(tunnel_write(io_, tunnel, "GET / HTTP/1.1\r\n\r\n"));
    EXPECT_EQ(tunnel_read_exactly(io_, tunnel, 23), "echo:GET / HTTP/1.1\r\n\r\n");
    // The tunnel holds the connection's slot and is never pooled.
    EXPECT_EQ(client.stats().open_connections, 1u);
    EXPECT_EQ(client.stats().idle_connections, 0u);

    tunnel.shutdown_send();
    EXPECT_EQ(tunnel_read_exactly(io_, tunnel, 3), "bye");
    EXPECT_TRUE(saw_half_close);
    auto end = tunnel_read(io_, tunnel);
    ASSERT_TRUE(end) << end.error();
    EXPECT_EQ(*end, "");

    response->upgraded.reset();
    EXPECT_EQ(client.stats().open_connections, 0u);
    EXPECT_EQ(client.stats().connections_created, 1u);
}

TEST_F(HttpClientStreamingTest, IdleTunnelReadTimesOut) {
    Upstream upstream(io_, [](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        if (!co_await peer.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                 "Upgrade: echo\r\n\r\n")) {
            co_return;
        }
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto request = get(upstream.url("/ws"));
    request.headers = {{"Connection", "Upgrade"}, {"Upgrade", "echo"}};
    request.read_timeout = 100ms;
    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    ASSERT_TRUE(response->upgraded);
    auto read = tunnel_read(io_, *response->upgraded);
    EXPECT_FALSE(read);
}

TEST_F(HttpClientStreamingTest, SwitchingProtocolsWithoutAnUpgradeRequestIsNotATunnel) {
    bool saw_close = false;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        if (!co_await peer.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\n")) {
            co_return;
        }
        saw_close = co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto response = send_now(io_, client, get(upstream.url("/plain")));
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(response->status, 101);
    EXPECT_FALSE(response->upgraded);
    ASSERT_TRUE(response->body);
    auto drained = drain(io_, *response);
    EXPECT_FALSE(drained.error) << *drained.error;
    EXPECT_EQ(drained.body, "");
    // The connection speaks something else now: it must not be pooled.
    EXPECT_EQ(client.stats().open_connections, 0u);
    EXPECT_TRUE(run_until(io_, [&] { return saw_close; }));
}

TEST_F(HttpClientStreamingTest, BodilessResponsesEndAtOnceAndKeepTheConnection) {
    Upstream upstream(io_, serve_keep_alive);
    HttpClient client(io_.get_executor());

    auto head_request = get(upstream.url("/cl/5"));
    head_request.method = "HEAD";
    auto head = send_now(io_, client, head_request);
    ASSERT_TRUE(head) << describe(head);
    EXPECT_EQ(head->header("content-length"), "5");
    // Complete at the head: the connection is back in the pool before the body is even read.
    EXPECT_EQ(client.stats().idle_connections, 1u);
    auto end = drain(io_, *head);
    EXPECT_FALSE(end.error) << *end.error;
    EXPECT_EQ(end.body, "");

    auto empty = send_now(io_, client, get(upstream.url("/empty")));
    ASSERT_TRUE(empty) << describe(empty);
    EXPECT_EQ(empty->status, 204);
    EXPECT_EQ(drain(io_, *empty).body, "");

    auto next = send_now(io_, client, get(upstream.url("/cl/3")));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(drain(io_, *next).body, pattern(3));
    EXPECT_EQ(client.stats().connections_created, 1u);
    EXPECT_EQ(upstream.accepted(), 1);
}

TEST_F(HttpClientStreamingTest, InterimResponsesAreSkipped) {
    Upstream upstream(io_, [](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        const std::string answer =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" +
            fixed_head(4) + "done";
        if (!co_await peer.write(answer)) co_return;
        co_await serve_keep_alive(peer, 0);
    });
    HttpClient client(io_.get_executor());
    auto response = send_now(io_, client, get(upstream.url("/interim")));
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->header("link"), "");
    EXPECT_EQ(drain(io_, *response).body, "done");
    auto next = send_now(io_, client, get(upstream.url("/cl/2")));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(drain(io_, *next).body, pattern(2));
    EXPECT_EQ(upstream.accepted(), 1);
}

TEST_F(HttpClientStreamingTest, BodyBeingReadHoldsItsPoolSlot) {
    Upstream upstream(io_, serve_keep_alive);
    ClientOptions options;
    options.max_connections_per_host = 1;
    HttpClient client(io_.get_executor(), options);

    auto first = send_now(io_, client, get(upstream.url("/cl/100000")));
    ASSERT_TRUE(first) << describe(first);
    ASSERT_TRUE(first->body);
    auto piece = next_now(io_, *first->body);
    ASSERT_TRUE(piece) << piece.error();

    auto waiting = get(upstream.url("/cl/5"));
    waiting.timeout = 100ms;
    auto refused = send_now(io_, client, waiting);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind, ClientError::PoolExhausted) << describe(refused);

    auto rest = drain(io_, *first);
    EXPECT_FALSE(rest.error) << *rest.error;
    EXPECT_EQ(*piece + rest.body, pattern(100000));
    auto next = send_now(io_, client, get(upstream.url("/cl/5")));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(drain(io_, *next).body, pattern(5));
    EXPECT_EQ(client.stats().connections_created, 1u);
}

TEST_F(HttpClientStreamingTest, BodyCanBeReadAfterTheClientIsGone) {
    Upstream upstream(io_, serve_keep_alive);
    std::shared_ptr<BodySource> body;
    {
        HttpClient client(io_.get_executor());
        auto response = send_now(io_, client, get(upstream.url("/cl/100000")));
        ASSERT_TRUE(response) << describe(response);
        ASSERT_TRUE(response->body);
        body = response->body;
    }
    auto drained = drain(io_, *body);
    EXPECT_FALSE(drained.error) << *drained.error;
    EXPECT_EQ(drained.body, pattern(100000));
    body.reset();
}

TEST_F(HttpClientStreamingTest, RefusedConnectionIsAConnectError) {
    std::uint16_t port = 0;
    {
        tcp::acceptor closed(io_, {asio::ip::make_address("127.0.0.1"), 0});
        port = closed.local_endpoint().port();
    }
    HttpClient client(io_.get_executor());
    auto result = send_now(io_, client, get("http://127.0.0.1:" + std::to_string(port) + "/"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::Connect) << describe(result);
    EXPECT_FALSE(result.error().request_sent);
    EXPECT_EQ(client.stats().open_connections, 0u);
}

TEST_F(HttpClientStreamingTest, InvalidUrlIsRejectedWithoutIo) {
    HttpClient client(io_.get_executor());
    auto result = send_now(io_, client, get("ftp://127.0.0.1/"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::InvalidUrl);
    EXPECT_EQ(client.stats().connections_created, 0u);
}

// The first connection answers one request, then reads the next and closes without a word: a
// pooled connection the upstream dropped just as it was reused.
asio::awaitable<void> drop_second_request(Peer& peer, int index) {
    if (index > 0) {
        co_await serve_keep_alive(peer, index);
        co_return;
    }
    auto first = co_await peer.read_request();
    if (!first) co_return;
    const std::string answer = fixed_head(5) + "first";
    if (!co_await peer.write(answer)) co_return;
    co_await peer.read_request();
}

TEST_F(HttpClientStreamingTest, StalePooledConnectionIsRetriedOnceForGet) {
    Upstream upstream(io_, drop_second_request);
    HttpClient client(io_.get_executor());

    auto first = send_now(io_, client, get(upstream.url("/1")));
    ASSERT_TRUE(first) << describe(first);
    EXPECT_EQ(drain(io_, *first).body, "first");
    EXPECT_EQ(client.stats().idle_connections, 1u);

    auto second = send_now(io_, client, get(upstream.url("/2")));
    ASSERT_TRUE(second) << describe(second);
    EXPECT_EQ(drain(io_, *second).body, "/2");
    EXPECT_EQ(upstream.accepted(), 2);
    EXPECT_EQ(client.stats().connections_created, 2u);
}

TEST_F(HttpClientStreamingTest, StalePooledConnectionIsNotRetriedForPost) {
    Upstream upstream(io_, drop_second_request);
    HttpClient client(io_.get_executor());

    auto first = send_now(io_, client, get(upstream.url("/1")));
    ASSERT_TRUE(first) << describe(first);
    EXPECT_EQ(drain(io_, *first).body, "first");

    ClientRequest post;
    post.method = "POST";
    post.url = upstream.url("/orders");
    post.body = "{}";
    auto second = send_now(io_, client, post);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().kind, ClientError::ProtocolError) << describe(second);
    EXPECT_TRUE(second.error().request_sent);
    EXPECT_EQ(upstream.accepted(), 1);
    EXPECT_EQ(client.stats().open_connections, 0u);
}

TEST_F(HttpClientStreamingTest, SilentUpstreamTimesOutBeforeTheHead) {
    Upstream upstream(io_, [](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_request()) co_return;
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());
    auto request = get(upstream.url("/"));
    request.timeout = 150ms;
    auto result = send_now(io_, client, request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::Timeout) << describe(result);
    EXPECT_TRUE(result.error().request_sent);
    EXPECT_EQ(client.stats().open_connections, 0u);
}

}  // namespace
}  // namespace aether::platform::http
