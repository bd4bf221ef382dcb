// Tests for HttpClient against an in-process test server on 127.0.0.1 (plain and TLS).
#include "platform/http/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace aether::platform::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using Result = Expected<ClientResponse, ClientError>;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

// What the server does with each connection, beyond answering requests.
enum class Mode {
    KeepAlive,           // answer every request, keep the connection open
    CloseAfterResponse,  // answer with `Connection: close`, then close
    CloseSilently,       // answer as keep-alive, then close anyway (a stale pooled connection)
    NeverAnswer,         // read requests, never write
    CloseOnAccept,       // close as soon as the connection is accepted
    DropSecondRequest,   // answer the first request, close on reading the second
    SpeakUnasked,        // 10 ms after the first answer, send a second one nobody asked for
};

// Routes: /bytes/N (N bytes), /chunked/N (N bytes in 100-byte chunks), /interim (1xx responses
// before a 201), anything else echoes the request line, body and a few headers.
class TestServer {
  public:
    TestServer(asio::io_context& io, Mode mode, asio::ssl::context* tls = nullptr)
        : io_(io), mode_(mode), tls_(tls), acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
        asio::co_spawn(io_, accept_loop(), asio::detached);
    }

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::string url(std::string_view path, std::string_view host = "127.0.0.1") const {
        return std::string(tls_ ? "https://" : "http://") + std::string(host) + ":" +
               std::to_string(port()) + std::string(path);
    }
    int accepted() const { return accepted_; }
    int peak_open() const { return peak_open_; }

  private:
    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(kUse);
            if (ec) co_return;
            ++accepted_;
            asio::co_spawn(io_, session(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> session(tcp::socket socket) {
        ++open_;
        peak_open_ = std::max(peak_open_, open_);
        if (mode_ == Mode::CloseOnAccept) {
            socket.close();
        } else if (tls_) {
            beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls_);
            auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kUse);
            if (!ec) co_await serve(stream);
        } else {
            beast::tcp_stream stream(std::move(socket));
            co_await serve(stream);
        }
        --open_;
    }

    template <class Stream>
    asio::awaitable<void> serve(Stream& stream) {
        beast::flat_buffer buffer;
        for (int served = 0;; ++served) {
            bhttp::request<bhttp::string_body> request;
            auto [ec, n] = co_await bhttp::async_read(stream, buffer, request, kUse);
            if (ec) break;
            if (mode_ == Mode::NeverAnswer) continue;
            if (mode_ == Mode::DropSecondRequest && served == 1) break;
            bool keep_alive = request.keep_alive() && mode_ != Mode::CloseAfterResponse;
            if (!co_await respond(stream, request, keep_alive)) break;
            if (!keep_alive || mode_ == Mode::CloseSilently) break;
            if (mode_ == Mode::SpeakUnasked && served == 0) {
                // Later than the answer, so that the client has read that alone.
                asio::steady_timer later(co_await asio::this_coro::executor, 10ms);
                co_await later.async_wait(kUse);
                std::string_view unasked = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale";
                auto [write_ec, written] =
                    co_await asio::async_write(stream, asio::buffer(unasked), kUse);
                if (write_ec) break;
            }
        }
        error_code ignored;
        beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(stream).socket().close(ignored);
    }

    using error_code = boost::system::error_code;

    template <class Stream>
    asio::awaitable<bool> respond(Stream& stream, const bhttp::request<bhttp::string_body>& request,
                                  bool keep_alive) {
        std::string_view target = request.target();
        if (target.starts_with("/chunked/")) {
            auto size = std::stoul(std::string(target.substr(9)));
            std::string raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n";
            if (!keep_alive) raw += "Connection: close\r\n";
            raw += "\r\n";
            for (std::size_t sent = 0; sent < size; sent += 100) {
                auto chunk = std::min<std::size_t>(100, size - sent);
                char hex[16];
                std::snprintf(hex, sizeof hex, "%zx\r\n", chunk);
                raw += hex + std::string(chunk, 'x') + "\r\n";
            }
            raw += "0\r\n\r\n";
            auto [ec, n] = co_await asio::async_write(stream, asio::buffer(raw), kUse);
            co_return !ec;
        }
        if (target == "/interim") {
            std::string raw =
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone";
            auto [ec, n] = co_await asio::async_write(stream, asio::buffer(raw), kUse);
            co_return !ec;
        }
        if (target.starts_with("/bytes/") && request.method() == bhttp::verb::head) {
            bhttp::response<bhttp::empty_body> response{bhttp::status::ok, 11};
            response.keep_alive(keep_alive);
            response.content_length(std::stoul(std::string(target.substr(7))));
            auto [ec, n] = co_await bhttp::async_write(stream, response, kUse);
            co_return !ec;
        }
        bhttp::response<bhttp::string_body> response{bhttp::status::ok, 11};
        if (target.starts_with("/bytes/")) {
            response.body() = std::string(std::stoul(std::string(target.substr(7))), 'x');
        } else {
            response.body() = std::string(request.method_string()) + " " + std::string(target) +
                              "\n" + request.body();
            response.set("X-Echo-Host", request[bhttp::field::host]);
            response.set("X-Echo-User-Agent", request[bhttp::field::user_agent]);
            response.set("X-Echo-Custom", request["X-Custom"]);
            response.set("X-Echo-Content-Length", request[bhttp::field::content_length]);
        }
        response.keep_alive(keep_alive);
        response.prepare_payload();
        auto [ec, n] = co_await bhttp::async_write(stream, response, kUse);
        co_return !ec;
    }

    asio::io_context& io_;
    Mode mode_;
    asio::ssl::context* tls_;
    tcp::acceptor acceptor_;
    int accepted_ = 0;
    int open_ = 0;
    int peak_open_ = 0;
};

// Runs a coroutine on the shared io_context until it finishes; the server keeps its state.
void run(asio::io_context& io, asio::awaitable<void> task) {
    std::exception_ptr failure;
    bool finished = false;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr error) {
        failure = error;
        finished = true;
        io.stop();
    });
    io.restart();
    io.run();
    ASSERT_TRUE(finished);
    if (failure) std::rethrow_exception(failure);
}

Result send_now(asio::io_context& io, HttpClient& client, ClientRequest request) {
    std::optional<Result> out;
    run(io, [&]() -> asio::awaitable<void> { out.emplace(co_await client.send(request)); }());
    if (!out) throw std::logic_error("send did not complete");
    return std::move(*out);
}

ClientRequest get(std::string url) {
    ClientRequest request;
    request.url = std::move(url);
    return request;
}

void sleep_for(asio::io_context& io, std::chrono::milliseconds duration) {
    run(io, [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(io, duration);
        co_await timer.async_wait(kUse);
    }());
}

struct Batch {
    std::vector<std::optional<Result>> results;
    std::size_t finished = 0;
    std::size_t max_waiting = 0;
    std::size_t max_open = 0;
};

// Parameters, not lambda captures: the coroutine outlives the expression that spawns it.
asio::awaitable<void> send_one(HttpClient& client, ClientRequest request, Batch& batch,
                               std::size_t index, asio::steady_timer& all_done) {
    auto result = co_await client.send(std::move(request));
    auto stats = client.stats();
    batch.max_waiting = std::max(batch.max_waiting, stats.waiting_requests);
    batch.max_open = std::max(batch.max_open, stats.open_connections);
    batch.results[index].emplace(std::move(result));
    if (++batch.finished == batch.results.size()) all_done.cancel();
}

// Starts every request at once and waits for all of them.
Batch send_all(asio::io_context& io, HttpClient& client,
               const std::vector<ClientRequest>& requests) {
    Batch batch;
    batch.results.resize(requests.size());
    run(io, [&]() -> asio::awaitable<void> {
        asio::steady_timer all_done(io, asio::steady_timer::time_point::max());
        for (std::size_t i = 0; i < requests.size(); ++i) {
            asio::co_spawn(io, send_one(client, requests[i], batch, i, all_done), asio::detached);
        }
        co_await all_done.async_wait(kUse);
    }());
    return batch;
}

std::string describe(const Result& result) {
    if (result) return "status " + std::to_string(result->status);
    return std::string(to_string(result.error().kind)) + ": " + result.error().message;
}

class HttpClientTest : public testing::Test {
  protected:
    asio::io_context io_;
};

TEST(ClientResponse, HeaderLookupIsCaseInsensitive) {
    ClientResponse response;
    response.headers = {{"Content-Type", "text/plain"}, {"X-A", "1"}, {"x-a", "2"}};
    EXPECT_EQ(response.header("content-type"), "text/plain");
    EXPECT_EQ(response.header("X-A"), "1");
    EXPECT_EQ(response.header("missing"), "");
}

TEST_F(HttpClientTest, SendsRequestAndReadsResponse) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());

    ClientRequest request;
    request.method = "POST";
    request.url = server.url("/things?x=1#fragment");
    request.headers = {{"X-Custom", "yes"}, {"Content-Type", "application/json"}};
    request.body = R"({"a":1})";
    auto result = send_now(io_, client, request);
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->body, "POST /things?x=1\n{\"a\":1}");
    EXPECT_EQ(result->header("x-echo-host"), "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_EQ(result->header("X-ECHO-USER-AGENT"), "aether");
    EXPECT_EQ(result->header("x-echo-custom"), "yes");
    EXPECT_EQ(result->header("x-echo-content-length"), "7");
}

TEST_F(HttpClientTest, ResolvesHostNames) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    auto result = send_now(io_, client, get(server.url("/", "localhost")));
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(result->body, "GET /\n");
    EXPECT_EQ(result->header("x-echo-host"), "localhost:" + std::to_string(server.port()));
}

TEST_F(HttpClientTest, SequentialRequestsReuseOneConnection) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    for (int i = 0; i < 10; ++i) {
        auto result = send_now(io_, client, get(server.url("/n/" + std::to_string(i))));
        ASSERT_TRUE(result) << describe(result);
        EXPECT_EQ(result->body, "GET /n/" + std::to_string(i) + "\n");
    }
    EXPECT_EQ(server.accepted(), 1);
    auto stats = client.stats();
    EXPECT_EQ(stats.connections_created, 1u);
    EXPECT_EQ(stats.open_connections, 1u);
    EXPECT_EQ(stats.idle_connections, 1u);
}

TEST_F(HttpClientTest, ServerConnectionCloseIsHonoured) {
    TestServer server(io_, Mode::CloseAfterResponse);
    HttpClient client(io_.get_executor());
    for (int i = 0; i < 3; ++i) {
        auto result = send_now(io_, client, get(server.url("/")));
        ASSERT_TRUE(result) << describe(result);
        EXPECT_EQ(result->header("connection"), "close");
        EXPECT_EQ(client.stats().open_connections, 0u);
    }
    EXPECT_EQ(server.accepted(), 3);
}

TEST_F(HttpClientTest, RequestConnectionCloseIsNotPooled) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    auto request = get(server.url("/"));
    request.headers = {{"Connection", "close"}};
    auto result = send_now(io_, client, request);
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(client.stats().open_connections, 0u);
    EXPECT_EQ(client.stats().idle_connections, 0u);
}

TEST_F(HttpClientTest, ConnectionsClosedByTheServerWhileIdleAreReplaced) {
    TestServer server(io_, Mode::CloseSilently);
    HttpClient client(io_.get_executor());
    for (int i = 0; i < 3; ++i) {
        auto result = send_now(io_, client, get(server.url("/")));
        ASSERT_TRUE(result) << describe(result);
    }
    EXPECT_EQ(server.accepted(), 3);
}

ClientRequest unreplayable_post(std::string url) {
    ClientRequest request;
    request.method = "POST";
    request.url = std::move(url);
    request.body = "{}";
    request.replay_on_stale_connection = false;
    return request;
}

// The server's first answer, a pause, then a POST that cannot be replayed: it must go on a new
// connection, answered, and not into the first one, which the server left unusable.
void expect_the_next_post_on_a_new_connection(asio::io_context& io, Mode mode,
                                              std::chrono::milliseconds pause) {
    TestServer server(io, mode);
    HttpClient client(io.get_executor());
    auto first = send_now(io, client, get(server.url("/first")));
    ASSERT_TRUE(first) << describe(first);
    EXPECT_EQ(first->body, "GET /first\n");
    sleep_for(io, pause);
    auto second = send_now(io, client, unreplayable_post(server.url("/orders")));
    ASSERT_TRUE(second) << describe(second);
    EXPECT_EQ(second->body, "POST /orders\n{}");
    EXPECT_EQ(server.accepted(), 2);
}

// A request that cannot be replayed must not go into a connection the upstream has closed: it
// would fail after its bytes left. The close a moment ago (20 ms, for it to reach the client's
// socket) is seen by the pool's watch.
TEST_F(HttpClientTest, AConnectionTheServerClosedAMomentAgoIsNotReused) {
    expect_the_next_post_on_a_new_connection(io_, Mode::CloseSilently, 20ms);
}

// Past a second idle the pool asks the socket itself, where upstreams' idle timeouts strike.
TEST_F(HttpClientTest, AConnectionTheServerClosedWhileLongIdleIsNotReused) {
    expect_the_next_post_on_a_new_connection(io_, Mode::CloseSilently, 1100ms);
}

// Bytes an upstream sent on an idle connection would be read as the next request's answer (30 ms
// for the unasked answer to arrive).
TEST_F(HttpClientTest, AConnectionTheServerSpokeOnUnaskedIsNotReused) {
    expect_the_next_post_on_a_new_connection(io_, Mode::SpeakUnasked, 30ms);
}

TEST_F(HttpClientTest, IdempotentRequestIsRetriedOnceWhenAPooledConnectionFails) {
    TestServer server(io_, Mode::DropSecondRequest);
    HttpClient client(io_.get_executor());
    ASSERT_TRUE(send_now(io_, client, get(server.url("/first"))));
    auto result = send_now(io_, client, get(server.url("/second")));
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(result->body, "GET /second\n");
    EXPECT_EQ(server.accepted(), 2);
}

TEST_F(HttpClientTest, NonIdempotentRequestIsNotRetried) {
    TestServer server(io_, Mode::DropSecondRequest);
    HttpClient client(io_.get_executor());
    ClientRequest request;
    request.method = "POST";
    request.url = server.url("/orders");
    request.body = "{}";
    ASSERT_TRUE(send_now(io_, client, request));
    auto result = send_now(io_, client, request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::ProtocolError) << describe(result);
    EXPECT_TRUE(result.error().request_sent);
    EXPECT_EQ(server.accepted(), 1);
    EXPECT_EQ(client.stats().open_connections, 0u);
}

TEST_F(HttpClientTest, SilentServerTimesOut) {
    TestServer server(io_, Mode::NeverAnswer);
    HttpClient client(io_.get_executor());
    auto request = get(server.url("/"));
    request.timeout = 200ms;
    auto result = send_now(io_, client, request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::Timeout) << describe(result);
    EXPECT_TRUE(result.error().request_sent);
    EXPECT_EQ(client.stats().open_connections, 0u);
}

TEST_F(HttpClientTest, ClientDefaultRequestTimeoutApplies) {
    TestServer server(io_, Mode::NeverAnswer);
    ClientOptions options;
    options.request_timeout = 150ms;
    HttpClient client(io_.get_executor(), options);
    auto result = send_now(io_, client, get(server.url("/")));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::Timeout) << describe(result);
}

TEST_F(HttpClientTest, ConnectionClosedOnAcceptFailsAfterTheRequestWasSent) {
    TestServer server(io_, Mode::CloseOnAccept);
    HttpClient client(io_.get_executor());
    auto result = send_now(io_, client, get(server.url("/")));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::ProtocolError) << describe(result);
    EXPECT_TRUE(result.error().request_sent);
    // A fresh connection is never retried: the failure is not a stale pool entry.
    EXPECT_EQ(server.accepted(), 1);
}

TEST_F(HttpClientTest, RefusedConnectionReportsNothingSent) {
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

TEST_F(HttpClientTest, BodyLargerThanTheLimitIsRejected) {
    TestServer server(io_, Mode::KeepAlive);
    ClientOptions options;
    options.max_response_body = 1024;
    HttpClient client(io_.get_executor(), options);

    auto fits = send_now(io_, client, get(server.url("/bytes/1024")));
    ASSERT_TRUE(fits) << describe(fits);
    EXPECT_EQ(fits->body.size(), 1024u);

    auto too_large = send_now(io_, client, get(server.url("/bytes/4096")));
    ASSERT_FALSE(too_large);
    EXPECT_EQ(too_large.error().kind, ClientError::BodyTooLarge) << describe(too_large);
    EXPECT_TRUE(too_large.error().request_sent);

    auto chunked = send_now(io_, client, get(server.url("/chunked/4096")));
    ASSERT_FALSE(chunked);
    EXPECT_EQ(chunked.error().kind, ClientError::BodyTooLarge) << describe(chunked);
    // A connection abandoned mid-body cannot be reused.
    EXPECT_EQ(client.stats().open_connections, 0u);
}

TEST_F(HttpClientTest, ChunkedResponseIsDecodedAndTheConnectionReused) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    auto result = send_now(io_, client, get(server.url("/chunked/250")));
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(result->body, std::string(250, 'x'));
    auto next = send_now(io_, client, get(server.url("/after")));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(next->body, "GET /after\n");
    EXPECT_EQ(server.accepted(), 1);
}

TEST_F(HttpClientTest, HeadResponseHasNoBodyDespiteContentLength) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    auto request = get(server.url("/bytes/5"));
    request.method = "HEAD";
    auto result = send_now(io_, client, request);
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(result->header("content-length"), "5");
    EXPECT_EQ(result->body, "");
    auto next = send_now(io_, client, get(server.url("/bytes/3")));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(next->body, "xxx");
    EXPECT_EQ(server.accepted(), 1);
}

TEST_F(HttpClientTest, InterimResponsesAreSkipped) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    auto result = send_now(io_, client, get(server.url("/interim")));
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(result->status, 201);
    EXPECT_EQ(result->body, "done");
    EXPECT_EQ(result->header("link"), "");
    auto next = send_now(io_, client, get(server.url("/after")));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(server.accepted(), 1);
}

TEST_F(HttpClientTest, InvalidUrlsAreRejectedWithoutIo) {
    HttpClient client(io_.get_executor());
    for (const char* url : {"", "localhost:80/", "ftp://host/", "http://", "http:///path",
                            "http://host:0/", "http://host:99999/", "http://host:/",
                            "http://user@host/", "http://[::1/", "http://ho st/", "http://h/a b"}) {
        auto result = send_now(io_, client, get(url));
        ASSERT_FALSE(result) << url;
        EXPECT_EQ(result.error().kind, ClientError::InvalidUrl) << url;
        EXPECT_FALSE(result.error().request_sent);
    }
    EXPECT_EQ(client.stats().connections_created, 0u);
}

TEST_F(HttpClientTest, HeaderInjectionIsRejected) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    auto request = get(server.url("/"));
    request.headers = {{"X-Custom", "a\r\nX-Injected: 1"}};
    auto result = send_now(io_, client, request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::ProtocolError);
    EXPECT_FALSE(result.error().request_sent);
    EXPECT_EQ(server.accepted(), 0);

    // A lone CR or LF anywhere, after headers that are fine, is refused the same way.
    const std::vector<std::pair<HeaderList, std::string>> cases = {
        {{{"X-Fine", "1"}, {"X-Lone-Lf", "a\nb"}}, "invalid header X-Lone-Lf"},
        {{{"X-Fine", "1"}, {"X-Lone-Cr", "a\rb"}}, "invalid header X-Lone-Cr"},
        {{{"X-Name\n", "1"}}, "invalid header X-Name\n"},
    };
    for (const auto& [headers, message] : cases) {
        auto bad = get(server.url("/"));
        bad.headers = headers;
        auto refused = send_now(io_, client, bad);
        ASSERT_FALSE(refused) << message;
        EXPECT_EQ(refused.error().kind, ClientError::ProtocolError);
        EXPECT_EQ(refused.error().message, message);
    }
    auto bad_method = get(server.url("/"));
    bad_method.method = "GET\r\nX-Injected:";
    auto refused = send_now(io_, client, bad_method);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message, "invalid method");
    EXPECT_EQ(server.accepted(), 0);
}

TEST_F(HttpClientTest, HeaderLinesAreSentAsHeadersAndTheirHostReplacesTheClients) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    auto request = get(server.url("/lines"));
    request.headers = {{"X-Other", "1"}};
    request.header_lines = "X-Custom: from-lines\r\nHost:example.test\r\n";
    auto result = send_now(io_, client, request);
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(result->header("X-Echo-Custom"), "from-lines");
    EXPECT_EQ(result->header("X-Echo-Host"), "example.test");
}

TEST_F(HttpClientTest, MalformedHeaderLinesAreRefusedBeforeAnyConnection) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    for (const char* lines : {"X-A: 1\r\n\r\nGET /smuggled HTTP/1.1\r\n", "NoColon\r\n",
                              ": no-name\r\n", "X-A: 1", "X-A: 1\nX-B: 2\r\n", "X-A: a\rb\r\n"}) {
        auto request = get(server.url("/"));
        request.header_lines = lines;
        auto result = send_now(io_, client, request);
        ASSERT_FALSE(result) << lines;
        EXPECT_EQ(result.error().kind, ClientError::ProtocolError) << lines;
        EXPECT_THAT(result.error().message, testing::HasSubstr("invalid header")) << lines;
    }
    EXPECT_EQ(server.accepted(), 0);
}

TEST_F(HttpClientTest, WaitingForASlotIsBoundedByTheRequestTimeout) {
    TestServer server(io_, Mode::NeverAnswer);
    ClientOptions options;
    options.max_connections_per_host = 1;
    HttpClient client(io_.get_executor(), options);
    auto holder = get(server.url("/hold"));
    holder.timeout = 1000ms;
    auto waiter = get(server.url("/wait"));
    waiter.timeout = 100ms;
    auto batch = send_all(io_, client, {holder, waiter});

    ASSERT_FALSE(*batch.results[1]);
    EXPECT_EQ(batch.results[1]->error().kind, ClientError::PoolExhausted)
        << describe(*batch.results[1]);
    EXPECT_FALSE(batch.results[1]->error().request_sent);
    ASSERT_FALSE(*batch.results[0]);
    EXPECT_EQ(batch.results[0]->error().kind, ClientError::Timeout) << describe(*batch.results[0]);
    EXPECT_EQ(server.accepted(), 1);
    EXPECT_EQ(client.stats().open_connections, 0u);
    EXPECT_EQ(client.stats().waiting_requests, 0u);
}

TEST_F(HttpClientTest, ConcurrentRequestsShareABoundedPool) {
    TestServer server(io_, Mode::KeepAlive);
    ClientOptions options;
    options.max_connections_per_host = 4;
    HttpClient client(io_.get_executor(), options);
    std::vector<ClientRequest> requests;
    for (int i = 0; i < 100; ++i) requests.push_back(get(server.url("/c/" + std::to_string(i))));
    auto batch = send_all(io_, client, requests);

    for (std::size_t i = 0; i < requests.size(); ++i) {
        const auto& result = *batch.results[i];
        ASSERT_TRUE(result) << i << ": " << describe(result);
        EXPECT_EQ(result->body, "GET /c/" + std::to_string(i) + "\n");
    }
    EXPECT_LE(server.accepted(), 4);
    EXPECT_LE(server.peak_open(), 4);
    EXPECT_LE(batch.max_open, 4u);
    EXPECT_GT(batch.max_waiting, 0u);
    EXPECT_LE(client.stats().connections_created, 4u);
}

TEST_F(HttpClientTest, IdleConnectionsAreClosedAfterTheIdleTimeout) {
    TestServer server(io_, Mode::KeepAlive);
    ClientOptions options;
    options.idle_timeout = 50ms;
    HttpClient client(io_.get_executor(), options);
    ASSERT_TRUE(send_now(io_, client, get(server.url("/"))));
    EXPECT_EQ(client.stats().idle_connections, 1u);
    sleep_for(io_, 300ms);
    EXPECT_EQ(client.stats().idle_connections, 0u);
    EXPECT_EQ(client.stats().open_connections, 0u);
    ASSERT_TRUE(send_now(io_, client, get(server.url("/"))));
    EXPECT_EQ(server.accepted(), 2);
}

TEST_F(HttpClientTest, CloseIdleDropsPooledConnections) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    ASSERT_TRUE(send_now(io_, client, get(server.url("/"))));
    client.close_idle();
    EXPECT_EQ(client.stats().idle_connections, 0u);
    EXPECT_EQ(client.stats().open_connections, 0u);
    ASSERT_TRUE(send_now(io_, client, get(server.url("/"))));
    EXPECT_EQ(server.accepted(), 2);
}

TEST_F(HttpClientTest, ClosedClientRefusesRequests) {
    TestServer server(io_, Mode::KeepAlive);
    HttpClient client(io_.get_executor());
    ASSERT_TRUE(send_now(io_, client, get(server.url("/"))));
    client.close();
    EXPECT_EQ(client.stats().open_connections, 0u);
    auto result = send_now(io_, client, get(server.url("/")));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::Closed);
    EXPECT_EQ(server.accepted(), 1);
}

// A self-signed certificate for "localhost" only, written to a temporary directory.
struct Certificate {
    std::string cert_pem;
    std::string key_pem;
    std::filesystem::path directory;
    std::filesystem::path cert_file;
};

std::string to_pem(int (*write)(BIO*, void*), void* object) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio, object);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(size));
    BIO_free(bio);
    return pem;
}

Certificate make_localhost_certificate() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    if (!key) throw std::runtime_error("EC key generation failed");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, cert, cert, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost"},
                              std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
        X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
        X509_add_ext(cert, extension, -1);
        X509_EXTENSION_free(extension);
    }
    if (X509_sign(cert, key, EVP_sha256()) == 0) throw std::runtime_error("X509_sign failed");

    Certificate out;
    out.cert_pem = to_pem(
        [](BIO* bio, void* x) { return PEM_write_bio_X509(bio, static_cast<X509*>(x)); }, cert);
    out.key_pem = to_pem(
        [](BIO* bio, void* k) {
            return PEM_write_bio_PrivateKey(bio, static_cast<EVP_PKEY*>(k), nullptr, nullptr, 0,
                                            nullptr, nullptr);
        },
        key);
    X509_free(cert);
    EVP_PKEY_free(key);

    std::string pattern =
        (std::filesystem::temp_directory_path() / "aether-client-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    out.directory = pattern;
    out.cert_file = out.directory / "localhost.pem";
    std::ofstream(out.cert_file) << out.cert_pem;
    return out;
}

class HttpClientTlsTest : public HttpClientTest {
  protected:
    static void SetUpTestSuite() { certificate_ = new Certificate(make_localhost_certificate()); }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(certificate_->directory);
        delete certificate_;
        certificate_ = nullptr;
    }

    void SetUp() override {
        server_tls_.use_certificate_chain(asio::buffer(certificate_->cert_pem));
        server_tls_.use_private_key(asio::buffer(certificate_->key_pem), asio::ssl::context::pem);
    }

    ClientOptions trusting() const {
        ClientOptions options;
        options.ca_file = certificate_->cert_file.string();
        return options;
    }

    static Certificate* certificate_;
    asio::ssl::context server_tls_{asio::ssl::context::tls_server};
};

Certificate* HttpClientTlsTest::certificate_ = nullptr;

TEST_F(HttpClientTlsTest, VerifiedConnectionSucceedsAndIsReused) {
    TestServer server(io_, Mode::KeepAlive, &server_tls_);
    HttpClient client(io_.get_executor(), trusting());
    for (int i = 0; i < 3; ++i) {
        auto result = send_now(io_, client, get(server.url("/secure", "localhost")));
        ASSERT_TRUE(result) << describe(result);
        EXPECT_EQ(result->body, "GET /secure\n");
    }
    EXPECT_EQ(server.accepted(), 1);
}

TEST_F(HttpClientTlsTest, UntrustedCertificateIsRejected) {
    TestServer server(io_, Mode::KeepAlive, &server_tls_);
    HttpClient client(io_.get_executor());
    auto result = send_now(io_, client, get(server.url("/", "localhost")));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::Tls) << describe(result);
    EXPECT_FALSE(result.error().request_sent);
}

TEST_F(HttpClientTlsTest, HostNameMismatchIsRejected) {
    TestServer server(io_, Mode::KeepAlive, &server_tls_);
    HttpClient client(io_.get_executor(), trusting());
    auto result = send_now(io_, client, get(server.url("/", "127.0.0.1")));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::Tls) << describe(result);
    EXPECT_FALSE(result.error().request_sent);
}

TEST_F(HttpClientTlsTest, VerificationCanBeDisabledExplicitly) {
    TestServer server(io_, Mode::KeepAlive, &server_tls_);
    ClientOptions options;
    options.verify_tls = false;
    HttpClient client(io_.get_executor(), options);
    auto result = send_now(io_, client, get(server.url("/", "127.0.0.1")));
    ASSERT_TRUE(result) << describe(result);
    EXPECT_EQ(result->status, 200);
}

TEST_F(HttpClientTlsTest, MissingCaFileIsATlsError) {
    TestServer server(io_, Mode::KeepAlive, &server_tls_);
    ClientOptions options;
    options.ca_file = (certificate_->directory / "missing.pem").string();
    HttpClient client(io_.get_executor(), options);
    auto result = send_now(io_, client, get(server.url("/", "localhost")));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().kind, ClientError::Tls) << describe(result);
}

}  // namespace
}  // namespace aether::platform::http
