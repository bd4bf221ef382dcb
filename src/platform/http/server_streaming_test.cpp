// Streamed response bodies and 101 upgrades, end to end over loopback sockets and raw HTTP.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdio>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "platform/http/pipeline.h"
#include "platform/http/router.h"
#include "platform/http/server.h"
#include "platform/http/server_test_support.h"

namespace aether::platform::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using HttpResponse = bhttp::response<bhttp::string_body>;
using test_support::chunk;
using test_support::eventually;
using test_support::get;
using test_support::RawClient;
using test_support::TestServer;

constexpr std::size_t kNever = std::numeric_limits<std::size_t>::max();

// What a test sees of, and how it steers, a ScriptedSource running on the server's thread.
struct SourceControl {
    std::size_t hold_before = kNever;  // waits for `release` before producing this piece
    std::size_t fail_at = kNever;      // fails instead of producing this piece
    std::atomic<bool> release{false};
    std::atomic<std::size_t> produced{0};
    std::atomic<bool> finished{false};  // the end of the body was reported
};

// A body of fixed pieces, optionally paused (on a timer, polling `release`) or failing part-way.
class ScriptedSource final : public BodySource {
  public:
    ScriptedSource(std::vector<std::string> pieces, std::shared_ptr<SourceControl> control)
        : pieces_(std::move(pieces)), control_(std::move(control)) {}

    asio::awaitable<Expected<std::string_view, std::string>> next() override {
        if (index_ == control_->hold_before) {
            auto executor = co_await asio::this_coro::executor;
            while (!control_->release.load()) {
                asio::steady_timer timer(executor, 2ms);
                co_await timer.async_wait(asio::use_awaitable);
            }
        }
        if (index_ == control_->fail_at) co_return unexpected(std::string("upstream went away"));
        if (index_ == pieces_.size()) {
            control_->finished = true;
            co_return std::string_view{};
        }
        control_->produced.fetch_add(1);
        const std::string& piece = pieces_[index_++];
        co_return std::string_view(piece);
    }

  private:
    std::vector<std::string> pieces_;
    std::shared_ptr<SourceControl> control_;
    std::size_t index_ = 0;
};

// A route answering with a fresh ScriptedSource; `configure` shapes the response around it.
void add_stream_route(Router& router, std::string path, std::vector<std::string> pieces,
                      std::shared_ptr<SourceControl> control,
                      std::function<void(Response&)> configure = {}) {
    router.add(Method::Get, path,
               [pieces = std::move(pieces), control = std::move(control),
                configure = std::move(configure)](Request&) -> asio::awaitable<Response> {
                   Response response;
                   response.content_type = "text/plain";
                   response.body_source = std::make_shared<ScriptedSource>(pieces, control);
                   if (configure) configure(response);
                   co_return response;
               });
}

std::string header(const HttpResponse& response, std::string_view name) {
    auto it = response.find(name);
    return it == response.end() ? std::string{} : std::string(it->value());
}

// The wire form of a chunked body made of `pieces`, terminating chunk included.
std::string chunked(const std::vector<std::string>& pieces) {
    std::string out;
    for (const auto& piece : pieces) out += chunk(piece);
    return out + "0\r\n\r\n";
}

std::string joined(const std::vector<std::string>& pieces) {
    std::string out;
    for (const auto& piece : pieces) out += piece;
    return out;
}

// Splits a raw response at the end of its head.
std::pair<std::string, std::string> split_head(const std::string& raw) {
    auto end = raw.find("\r\n\r\n");
    if (end == std::string::npos) return {raw, {}};
    return {raw.substr(0, end + 4), raw.substr(end + 4)};
}

const std::vector<std::string> kPieces = {"alpha", std::string(26, 'b'), "gamma!"};

TEST(ServerStreamingTest, BodySourceIsSentChunkedAndTheConnectionIsKeptAlive) {
    auto control = std::make_shared<SourceControl>();
    TestServer server(
        [&](Router& router) { add_stream_route(router, "/stream", kPieces, control); });
    RawClient client(server.port());

    ASSERT_TRUE(client.send(get("/stream")));
    auto head = client.read_until("\r\n\r\n");
    ASSERT_TRUE(head);
    EXPECT_THAT(*head, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(*head, HasSubstr("\r\nTransfer-Encoding: chunked\r\n"));
    EXPECT_THAT(*head, HasSubstr("\r\nServer: aether\r\n"));
    EXPECT_THAT(*head, HasSubstr("\r\nContent-Type: text/plain\r\n"));
    // Content-Length beside chunked framing is a request-smuggling hazard; clients reject it.
    EXPECT_THAT(*head, Not(HasSubstr("Content-Length")));
    EXPECT_THAT(*head, Not(HasSubstr("Connection: close")));
    auto body = client.read_until("0\r\n\r\n");
    ASSERT_TRUE(body);
    // "1a": the size line is hexadecimal.
    EXPECT_EQ(*body, chunked(kPieces));
    EXPECT_TRUE(control->finished);
    EXPECT_EQ(client.pending_bytes(), 0u);

    // The same connection serves the next request, and a standard parser decodes the body.
    auto again = client.exchange(get("/stream"));
    ASSERT_TRUE(again) << "the second response on the connection could not be parsed";
    EXPECT_EQ(again->result_int(), 200);
    EXPECT_TRUE(again->chunked());
    EXPECT_TRUE(again->keep_alive());
    EXPECT_EQ(again->body(), joined(kPieces));
    EXPECT_EQ(server.server().open_connections(), 1u);
}

TEST(ServerStreamingTest, EmptyBodySourceIsJustTheLastChunk) {
    auto control = std::make_shared<SourceControl>();
    TestServer server([&](Router& router) { add_stream_route(router, "/empty", {}, control); });
    RawClient client(server.port());
    ASSERT_TRUE(client.send(get("/empty")));
    auto head = client.read_until("\r\n\r\n");
    ASSERT_TRUE(head);
    EXPECT_THAT(*head, HasSubstr("Transfer-Encoding: chunked"));
    auto body = client.read_exactly(5);
    ASSERT_TRUE(body);
    EXPECT_EQ(*body, "0\r\n\r\n");
    auto next = client.exchange(get("/empty"));
    ASSERT_TRUE(next);
    EXPECT_EQ(next->body(), "");
}

TEST(ServerStreamingTest, PiecesAreSentAsTheyAreProduced) {
    auto control = std::make_shared<SourceControl>();
    control->hold_before = 1;
    const std::vector<std::string> pieces = {"first", "last"};
    TestServer server([&](Router& router) { add_stream_route(router, "/slow", pieces, control); });
    RawClient client(server.port());

    ASSERT_TRUE(client.send(get("/slow")));
    ASSERT_TRUE(client.read_until("\r\n\r\n"));
    auto first = client.read_exactly(std::string("5\r\nfirst\r\n").size());
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, "5\r\nfirst\r\n");
    // The client holds the first piece while the source is still waiting to make the last.
    EXPECT_EQ(control->produced.load(), 1u);
    EXPECT_FALSE(control->finished);

    control->release = true;
    auto rest = client.read_until("0\r\n\r\n");
    ASSERT_TRUE(rest);
    EXPECT_EQ(*rest, "4\r\nlast\r\n0\r\n\r\n");
    EXPECT_EQ(control->produced.load(), 2u);
}

// A streamed answer whose headers (set by `set_headers`, verbatim) carry Content-Length 11: its
// head holds `expected_in_head`, and the bytes go out unframed, twice on one connection.
void expect_fixed_length_answers(std::function<void(Response&)> set_headers,
                                 std::string_view expected_in_head) {
    auto control = std::make_shared<SourceControl>();
    const std::vector<std::string> pieces = {"hello", " ", "world"};
    TestServer server([&](Router& router) {
        add_stream_route(router, "/fixed", pieces, control, [&](Response& response) {
            response.verbatim_headers = true;
            set_headers(response);
        });
    });
    RawClient client(server.port());

    ASSERT_TRUE(client.send(get("/fixed")));
    auto head = client.read_until("\r\n\r\n");
    ASSERT_TRUE(head);
    EXPECT_THAT(*head, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(*head, HasSubstr(std::string(expected_in_head)));
    EXPECT_THAT(*head, Not(HasSubstr("Transfer-Encoding")));
    auto body = client.read_exactly(11);
    ASSERT_TRUE(body);
    EXPECT_EQ(*body, "hello world");

    auto again = client.exchange(get("/fixed"));
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->chunked());
    EXPECT_EQ(again->body(), "hello world");
    EXPECT_TRUE(again->keep_alive());
}

TEST(ServerStreamingTest, ContentLengthInVerbatimHeadersSendsTheBytesUnframed) {
    expect_fixed_length_answers(
        [](Response& response) {
            response.headers = {{"Content-Type", "text/plain"}, {"Content-Length", "11"}};
        },
        "\r\nContent-Length: 11\r\n");
}

// A proxy hands the upstream's headers over as lines: they are written as they are, after the
// listed ones, and a Content-Length among them frames the body like a listed one.
TEST(ServerStreamingTest, HeaderLinesAreWrittenAndTheirContentLengthFramesTheBody) {
    expect_fixed_length_answers(
        [](Response& response) {
            response.headers = {{"X-Listed", "1"}};
            response.header_lines.append("Content-Type", "text/plain");
            response.header_lines.append("content-length", "11");
            response.header_lines.append("X-Upstream", "a, b");
        },
        "\r\nX-Listed: 1\r\nContent-Type: text/plain\r\ncontent-length: 11\r\n"
        "X-Upstream: a, b\r\n");
}

TEST(ServerStreamingTest, Http10ClientGetsTheBodyUntilClose) {
    auto control = std::make_shared<SourceControl>();
    TestServer server(
        [&](Router& router) { add_stream_route(router, "/stream", kPieces, control); });
    RawClient client(server.port());

    // Even a keep-alive HTTP/1.0 client: without a length, only closing marks the end.
    ASSERT_TRUE(
        client.send("GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"));
    auto received = client.read_until_close();
    EXPECT_TRUE(received.closed);
    auto [head, body] = split_head(received.bytes);
    EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(head, HasSubstr("\r\nConnection: close\r\n"));
    EXPECT_THAT(head, Not(HasSubstr("Transfer-Encoding")));
    EXPECT_THAT(head, Not(HasSubstr("Content-Length")));
    EXPECT_EQ(body, joined(kPieces));
    EXPECT_TRUE(control->finished);
}

TEST(ServerStreamingTest, HeadRequestGetsNoBody) {
    auto control = std::make_shared<SourceControl>();
    TestServer server([&](Router& router) {
        add_stream_route(router, "/fixed", {"hello world"}, control, [](Response& response) {
            response.verbatim_headers = true;
            response.headers = {{"Content-Length", "11"}};
        });
    });
    RawClient client(server.port());

    ASSERT_TRUE(client.send("HEAD /fixed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    auto head = client.read(5s, true);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->result_int(), 200);
    EXPECT_EQ(header(*head, "Content-Length"), "11");
    EXPECT_EQ(control->produced.load(), 0u);
    // A body byte sent for HEAD would now sit in front of the next response.
    auto next = client.exchange(get("/fixed"));
    ASSERT_TRUE(next) << "the response after HEAD could not be parsed";
    EXPECT_EQ(next->body(), "hello world");
}

TEST(ServerStreamingTest, HeadRequestForAChunkedStreamGetsNoBody) {
    auto control = std::make_shared<SourceControl>();
    TestServer server(
        [&](Router& router) { add_stream_route(router, "/stream", kPieces, control); });
    RawClient client(server.port());

    ASSERT_TRUE(client.send("HEAD /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    auto head = client.read_until("\r\n\r\n");
    ASSERT_TRUE(head);
    EXPECT_THAT(*head, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(*head, Not(HasSubstr("Connection: close")));
    EXPECT_EQ(control->produced.load(), 0u);
    auto next = client.exchange(get("/stream"));
    ASSERT_TRUE(next) << "the response after HEAD could not be parsed";
    EXPECT_EQ(next->body(), joined(kPieces));
}

TEST(ServerStreamingTest, FailingSourceClosesTheConnectionWithATruncatedBody) {
    auto control = std::make_shared<SourceControl>();
    control->fail_at = 2;
    const std::vector<std::string> pieces = {"one", "two", "three"};
    TestServer server(
        [&](Router& router) { add_stream_route(router, "/broken", pieces, control); });
    RawClient client(server.port());

    ASSERT_TRUE(client.send(get("/broken")));
    auto received = client.read_until_close();
    EXPECT_TRUE(received.closed);
    auto [head, body] = split_head(received.bytes);
    EXPECT_THAT(head, HasSubstr("Transfer-Encoding: chunked"));
    // The pieces produced so far, and no terminating chunk: the client can tell it is cut short.
    EXPECT_EQ(body, "3\r\none\r\n3\r\ntwo\r\n");
    EXPECT_EQ(control->produced.load(), 2u);
    EXPECT_TRUE(eventually([&] { return server.server().open_connections() == 0; }));
}

TEST(ServerStreamingTest, FailingFixedLengthSourceClosesTheConnection) {
    auto control = std::make_shared<SourceControl>();
    control->fail_at = 1;
    TestServer server([&](Router& router) {
        add_stream_route(router, "/broken", {"12345", "67890"}, control, [](Response& response) {
            response.verbatim_headers = true;
            response.headers = {{"Content-Length", "10"}};
        });
    });
    RawClient client(server.port());
    ASSERT_TRUE(client.send(get("/broken")));
    auto received = client.read_until_close();
    EXPECT_TRUE(received.closed);
    EXPECT_EQ(split_head(received.bytes).second, "12345");
}

TEST(ServerStreamingTest, VerbatimHeadersAreSentAsListed) {
    auto control = std::make_shared<SourceControl>();
    TestServer server([&](Router& router) {
        add_stream_route(router, "/proxied", kPieces, control, [](Response& response) {
            response.verbatim_headers = true;
            response.headers = {{"X-Upstream", "yes"}, {"Cache-Control", "no-store"}};
        });
    });
    RawClient client(server.port());

    ASSERT_TRUE(client.send(get("/proxied")));
    auto head = client.read_until("\r\n\r\n");
    ASSERT_TRUE(head);
    EXPECT_THAT(*head, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(*head, HasSubstr("\r\nX-Upstream: yes\r\n"));
    EXPECT_THAT(*head, HasSubstr("\r\nCache-Control: no-store\r\n"));
    EXPECT_THAT(*head, HasSubstr("\r\nTransfer-Encoding: chunked\r\n"));
    EXPECT_THAT(*head, Not(HasSubstr("Server:")));
    EXPECT_THAT(*head, Not(HasSubstr("Content-Type:")));
    EXPECT_THAT(*head, Not(HasSubstr("Content-Length:")));
    auto body = client.read_until("0\r\n\r\n");
    ASSERT_TRUE(body);
    EXPECT_EQ(*body, chunked(kPieces));
}

TEST(ServerStreamingTest, BodilessStatusWithABodySourceSendsNoBody) {
    // What a proxy forwards for an upstream's 204 or 304: its headers and its (empty) body.
    auto control = std::make_shared<SourceControl>();
    TestServer server([&](Router& router) {
        for (int status : {204, 304}) {
            add_stream_route(router, "/status/" + std::to_string(status), {}, control,
                             [status](Response& response) {
                                 response.status = status;
                                 response.verbatim_headers = true;
                                 response.headers = {{"ETag", "\"v1\""}};
                             });
        }
        router.add(Method::Get, "/plain", [](Request&) -> asio::awaitable<Response> {
            co_return Response::text(200, "plain");
        });
    });
    RawClient client(server.port());

    for (int status : {204, 304}) {
        ASSERT_TRUE(client.send(get("/status/" + std::to_string(status))));
        auto head = client.read_until("\r\n\r\n");
        ASSERT_TRUE(head) << status;
        EXPECT_THAT(*head, StartsWith("HTTP/1.1 " + std::to_string(status) + " "));
        EXPECT_THAT(*head, HasSubstr("\r\nETag: \"v1\"\r\n"));
        EXPECT_THAT(*head, Not(HasSubstr("Transfer-Encoding")));
        EXPECT_THAT(*head, Not(HasSubstr("Content-Length")));
    }
    // A stray "0\r\n\r\n" after either answer would now sit in front of this response.
    auto next = client.exchange(get("/plain"));
    ASSERT_TRUE(next) << "the response after 204 and 304 could not be parsed";
    EXPECT_EQ(next->result_int(), 200);
    EXPECT_EQ(next->body(), "plain");
}

// A body that never ends (an event stream): only the client going away stops it.
class EndlessSource final : public BodySource {
  public:
    explicit EndlessSource(std::shared_ptr<std::atomic<bool>> destroyed)
        : destroyed_(std::move(destroyed)) {}
    ~EndlessSource() override { *destroyed_ = true; }

    asio::awaitable<Expected<std::string_view, std::string>> next() override {
        co_return std::string_view(piece_);
    }

  private:
    std::shared_ptr<std::atomic<bool>> destroyed_;
    std::string piece_ = std::string(4096, 'e');
};

TEST(ServerStreamingTest, ClientGoingAwayEndsAnEndlessBody) {
    auto destroyed = std::make_shared<std::atomic<bool>>(false);
    TestServer server([&](Router& router) {
        router.add(Method::Get, "/events", [destroyed](Request&) -> asio::awaitable<Response> {
            Response response;
            response.content_type = "text/event-stream";
            response.body_source = std::make_shared<EndlessSource>(destroyed);
            co_return response;
        });
    });
    RawClient client(server.port());

    ASSERT_TRUE(client.send(get("/events")));
    ASSERT_TRUE(client.read_until("\r\n\r\n"));
    ASSERT_TRUE(client.read_exactly(64 * 1024));
    EXPECT_FALSE(*destroyed);
    client.close();
    EXPECT_TRUE(eventually([&] { return destroyed->load(); }));
    EXPECT_TRUE(eventually([&] { return server.server().open_connections() == 0; }));
    EXPECT_EQ(server.server().in_flight_requests(), 0u);
}

// What the upgrade handler saw, for the test thread to check.
struct UpgradeLog {
    std::mutex mutex;
    std::string buffered;
    std::string received;
    std::optional<std::string> failure;
    std::atomic<bool> returned{false};
};

// Echoes the bytes the server had already read, then everything else, until the client
// half-closes; then says goodbye.
asio::awaitable<void> echo_until_half_close(Tunnel& tunnel, std::shared_ptr<UpgradeLog> log) {
    std::string early = tunnel.take_buffered();
    {
        std::lock_guard lock(log->mutex);
        log->buffered = early;
    }
    if (!early.empty()) {
        auto written = co_await tunnel.write(early);
        if (!written) {
            std::lock_guard lock(log->mutex);
            log->failure = written.error();
        }
    }
    std::array<char, 1024> bytes{};
    std::span<char> into(bytes);
    for (;;) {
        auto read = co_await tunnel.read_some(into);
        if (!read) {
            std::lock_guard lock(log->mutex);
            log->failure = read.error();
            break;
        }
        if (*read == 0) {
            auto bye = co_await tunnel.write("bye");
            (void)bye;
            break;
        }
        std::string_view piece(bytes.data(), *read);
        {
            std::lock_guard lock(log->mutex);
            log->received.append(piece);
        }
        auto written = co_await tunnel.write(piece);
        if (!written) break;
    }
    log->returned = true;
}

void add_upgrade_route(Router& router, const std::shared_ptr<UpgradeLog>& log) {
    router.add(Method::Get, "/ws", [log](Request& request) -> asio::awaitable<Response> {
        if (request.header("Upgrade") != "echo") co_return Response::json(426, "{}");
        Response response;
        response.status = 101;
        response.headers = {{"Connection", "Upgrade"}, {"Upgrade", "echo"}};
        response.on_upgrade = [log](Tunnel& tunnel) { return echo_until_half_close(tunnel, log); };
        co_return response;
    });
}

TEST(ServerStreamingTest, UpgradeHandsTheConnectionToTheHandler) {
    auto log = std::make_shared<UpgradeLog>();
    TestServer server([&](Router& router) { add_upgrade_route(router, log); });
    RawClient client(server.port());

    // Bytes right behind the request head, in the same packet: the server has read them already.
    ASSERT_TRUE(client.send(get("/ws", "Connection: Upgrade\r\nUpgrade: echo\r\n") + "EARLY"));
    auto head = client.read_until("\r\n\r\n");
    ASSERT_TRUE(head);
    EXPECT_THAT(*head, StartsWith("HTTP/1.1 101 Switching Protocols\r\n"));
    EXPECT_THAT(*head, HasSubstr("\r\nConnection: Upgrade\r\n"));
    EXPECT_THAT(*head, HasSubstr("\r\nUpgrade: echo\r\n"));
    EXPECT_THAT(*head, Not(HasSubstr("Content-Length")));
    EXPECT_THAT(*head, Not(HasSubstr("Transfer-Encoding")));
    EXPECT_THAT(*head, Not(HasSubstr("Connection: close")));

    auto early = client.read_exactly(5);
    ASSERT_TRUE(early);
    EXPECT_EQ(*early, "EARLY");
    {
        std::lock_guard lock(log->mutex);
        EXPECT_EQ(log->buffered, "EARLY");
    }
    // The upgraded connection counts as in flight (a drain waits for it) for as long as it is open.
    EXPECT_EQ(server.server().in_flight_requests(), 1u);
    EXPECT_EQ(server.server().open_connections(), 1u);

    ASSERT_TRUE(client.send("ping"));
    auto ping = client.read_exactly(4);
    ASSERT_TRUE(ping);
    EXPECT_EQ(*ping, "ping");
    // Not HTTP: the server must not parse it as a request.
    ASSERT_TRUE(client.send("GET / HTTP/1.1\r\n\r\n"));
    auto raw = client.read_exactly(18);
    ASSERT_TRUE(raw);
    EXPECT_EQ(*raw, "GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(server.server().in_flight_requests(), 1u);

    client.shutdown_send();
    auto rest = client.read_until_close();
    EXPECT_TRUE(rest.closed);
    EXPECT_EQ(rest.bytes, "bye");
    EXPECT_TRUE(log->returned);
    {
        std::lock_guard lock(log->mutex);
        EXPECT_EQ(log->received, "pingGET / HTTP/1.1\r\n\r\n");
        EXPECT_FALSE(log->failure) << *log->failure;
    }
    EXPECT_TRUE(eventually([&] { return server.server().in_flight_requests() == 0; }));
    EXPECT_TRUE(eventually([&] { return server.server().open_connections() == 0; }));
}

TEST(ServerStreamingTest, IdleUpgradedConnectionIsClosed) {
    auto log = std::make_shared<UpgradeLog>();
    ServerOptions options;
    options.tunnel_idle_timeout = 200ms;
    TestServer server([&](Router& router) { add_upgrade_route(router, log); }, options);
    RawClient client(server.port());

    ASSERT_TRUE(client.send(get("/ws", "Connection: Upgrade\r\nUpgrade: echo\r\n")));
    auto head = client.read_until("\r\n\r\n");
    ASSERT_TRUE(head);
    EXPECT_THAT(*head, StartsWith("HTTP/1.1 101"));
    auto rest = client.read_until_close(5s);
    EXPECT_TRUE(rest.closed);
    EXPECT_EQ(rest.bytes, "");
    // The timeout closes the socket before the handler's read completes.
    EXPECT_TRUE(eventually([&] { return log->returned.load(); }));
    {
        std::lock_guard lock(log->mutex);
        EXPECT_TRUE(log->failure);
    }
    EXPECT_TRUE(eventually([&] { return server.server().in_flight_requests() == 0; }));
}

TEST(ServerStreamingTest, RefusedUpgradeIsAnOrdinaryResponse) {
    auto log = std::make_shared<UpgradeLog>();
    TestServer server([&](Router& router) { add_upgrade_route(router, log); });
    RawClient client(server.port());
    auto response = client.exchange(get("/ws"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 426);
    EXPECT_TRUE(response->keep_alive());
    EXPECT_FALSE(log->returned);
    EXPECT_EQ(server.server().in_flight_requests(), 0u);
}

}  // namespace
}  // namespace aether::platform::http
