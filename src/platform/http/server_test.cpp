// End-to-end tests of Server + Pipeline + Router over real loopback sockets and raw HTTP/1.1.
#include "platform/http/server.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "platform/http/pipeline.h"
#include "platform/http/router.h"
#include "platform/json/envelope.h"
#include "platform/runtime/blocking_pool.h"
#include "platform/telemetry/log.h"
#include "platform/telemetry/metrics.h"

namespace aether::platform::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using HttpResponse = bhttp::response<bhttp::string_body>;

// Lets a test hold a request inside its handler until it says so.
struct Gate {
    std::promise<void> entered;
    std::atomic<bool> entered_once{false};
    std::atomic<bool> release{false};
};

std::string json_text(const boost::json::value& value) {
    return boost::json::serialize(value);
}

void add_routes(Router& router, const std::shared_ptr<Gate>& gate) {
    router.add(Method::Get, "/items/{id}", [](Request& request) -> asio::awaitable<Response> {
        co_return Response::json(200, json_text({{"id", request.param("id")}}));
    });
    router.add(Method::Put, "/items/{id}",
               [](Request&) -> asio::awaitable<Response> { co_return Response::json(200, "{}"); });
    router.add(Method::Get, "/echo", [](Request& request) -> asio::awaitable<Response> {
        co_return Response::json(200, json_text({{"request_id", request.context.request_id},
                                                 {"traceparent", request.context.traceparent},
                                                 {"trace_id", request.context.trace_id()}}));
    });
    // What a request brings, and then leaves on it what a handler or filter may set: none of it
    // may show through in the next request on the connection.
    auto what_came = [](Request& request) -> asio::awaitable<Response> {
        auto answer = json_text({{"thing", request.header("X-Thing")},
                                 {"added", request.header("X-Added")},
                                 {"body", request.body},
                                 {"user_id", request.context.user_id},
                                 {"request_id", request.context.request_id}});
        request.context.user_id = "usr_seen";
        request.header_lines.append("X-Added", "by-the-handler");
        co_return Response::json(200, std::move(answer));
    };
    router.add(Method::Get, "/what-came", what_came);
    router.add(Method::Post, "/what-came", what_came);
    router.add(Method::Post, "/upload", [](Request& request) -> asio::awaitable<Response> {
        co_return Response::json(200, json_text({{"bytes", request.body.size()}}));
    });
    router.add(Method::Get, "/large", [](Request& request) -> asio::awaitable<Response> {
        // Larger than any socket send buffer: the answer cannot go out in one write.
        const std::size_t size = std::stoul(std::string(request.query("bytes").value_or("0")));
        std::string body(size, 'x');
        for (std::size_t at = 0; at < size; at += 4096) body[at] = static_cast<char>('a' + at % 26);
        co_return Response::text(200, std::move(body));
    });
    router.add(Method::Get, "/line-breaks", [](Request&) -> asio::awaitable<Response> {
        Response response = Response::json(200, "{}");
        response.set_header("X-Before", "1");
        response.set_header("X-Bad-Value", "a\r\nX-Injected: 1");
        response.set_header("X-Lone-Lf", "a\nX-Injected-Too: 1");
        response.set_header("X-Bad-Name\r", "2");
        response.set_header("X-After", "3");
        co_return response;
    });
    router.add(Method::Get, "/client-error", [](Request&) -> asio::awaitable<Response> {
        throw json::ClientError(json::ErrorCode::ValidationError, "the title is not acceptable",
                                {{"title", "is required"}, {"due", "must be a date"}}, {}, 422);
        co_return Response{};
    });
    router.add(Method::Get, "/rate-limited", [](Request&) -> asio::awaitable<Response> {
        throw json::ClientError::rate_limited("slow down", 7);
        co_return Response{};
    });
    router.add(Method::Get, "/boom", [](Request&) -> asio::awaitable<Response> {
        throw std::runtime_error("connection to db password=hunter2 failed");
        co_return Response{};
    });
    router.add(Method::Get, "/busy", [](Request&) -> asio::awaitable<Response> {
        throw runtime::Overloaded(3);
        co_return Response{};
    });
    router.add(Method::Get, "/slow", [gate](Request&) -> asio::awaitable<Response> {
        if (!gate->entered_once.exchange(true)) gate->entered.set_value();
        auto executor = co_await asio::this_coro::executor;
        while (!gate->release.load()) {
            asio::steady_timer timer(executor, 5ms);
            co_await timer.async_wait(asio::use_awaitable);
        }
        co_return Response::json(200, R"({"slow":true})");
    });
}

PipelineOptions quiet(std::string service = "utest") {
    PipelineOptions options;
    options.service = std::move(service);
    options.access_log = false;
    return options;
}

// A Server running the shared Pipeline's phases, as the App does (server_test_support.h's runs
// Pipeline::handle as a plain handler), on its own io_context and thread.
class TestServer {
  public:
    explicit TestServer(ServerOptions options = {}, PipelineOptions pipeline_options = quiet()) {
        auto router = std::make_shared<Router>();
        add_routes(*router, gate_);
        pipeline_ = std::make_shared<Pipeline>(std::move(pipeline_options), std::move(router));
        Pipeline* pipeline = pipeline_.get();
        server_ = std::make_unique<Server>(io_, options, pipeline_,
                                           [pipeline](int status, std::string_view message) {
                                               return pipeline->protocol_error(status, message);
                                           });
        auto port = server_->listen("127.0.0.1", 0);
        if (!port) throw std::runtime_error(port.error());
        port_ = *port;
        server_->start();
        thread_ = std::thread([this] { io_.run(); });
    }

    ~TestServer() {
        io_.stop();
        thread_.join();
        server_.reset();
    }

    std::uint16_t port() const { return port_; }
    Server& server() { return *server_; }
    Gate& gate() { return *gate_; }

  private:
    std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();
    std::shared_ptr<Pipeline> pipeline_;
    asio::io_context io_;
    std::unique_ptr<Server> server_;
    std::thread thread_;
    std::uint16_t port_ = 0;
};

// A blocking-style client whose reads give up after a deadline instead of hanging the test.
class Client {
  public:
    explicit Client(std::uint16_t port) {
        socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    }

    bool send(std::string_view data) {
        beast::error_code ec;
        asio::write(socket_, asio::buffer(data.data(), data.size()), ec);
        return !ec;
    }

    // `head`: the response answers a HEAD request, so it has no body whatever its headers say.
    std::optional<HttpResponse> read(std::chrono::milliseconds limit = 5s, bool head = false) {
        auto parser = std::make_shared<bhttp::response_parser<bhttp::string_body>>();
        parser->body_limit(16 * 1024 * 1024);
        parser->skip(head);
        beast::error_code result;
        bool done = false;
        bhttp::async_read(socket_, buffer_, *parser, [&](beast::error_code ec, std::size_t) {
            result = ec;
            done = true;
        });
        run(limit);
        if (!done) {
            ADD_FAILURE() << "no response within " << limit.count() << " ms";
            return std::nullopt;
        }
        if (result) return std::nullopt;
        return parser->release();
    }

    // Ends what the client sends (a half-close: it can still read).
    void shut_sending() {
        beast::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
    }

    // True when the server closes the connection (EOF or reset) within the limit without sending
    // anything more.
    // A byte that arrives instead stays in the buffer, for a read() of the response it begins.
    bool closed_within(std::chrono::milliseconds limit) {
        beast::error_code result;
        std::size_t received = 0;
        bool done = false;
        if (buffer_.size() > 0) return false;
        socket_.async_read_some(buffer_.prepare(1), [&](beast::error_code ec, std::size_t n) {
            result = ec;
            received = n;
            done = true;
        });
        run(limit);
        buffer_.commit(received);
        return done && received == 0 &&
               (result == asio::error::eof || result == asio::error::connection_reset);
    }

    std::string request(std::string_view method, std::string_view target,
                        std::string_view extra_headers = "", std::string_view body = "") {
        std::string text(method);
        text += ' ';
        text += target;
        text += " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        text += extra_headers;
        if (!body.empty() || method == "POST") {
            text += "Content-Length: " + std::to_string(body.size()) + "\r\n";
        }
        text += "\r\n";
        text += body;
        return text;
    }

    std::optional<HttpResponse> exchange(std::string_view method, std::string_view target,
                                         std::string_view extra_headers = "",
                                         std::string_view body = "") {
        if (!send(request(method, target, extra_headers, body))) return std::nullopt;
        return read();
    }

  private:
    void run(std::chrono::milliseconds limit) {
        io_.restart();
        io_.run_for(limit);
        if (!io_.stopped()) {
            beast::error_code ignored;
            socket_.cancel(ignored);
            io_.restart();
            io_.run();
        }
    }

    asio::io_context io_;
    tcp::socket socket_{io_};
    beast::flat_buffer buffer_;
};

boost::json::object error_of(const HttpResponse& response) {
    auto parsed = boost::json::parse(response.body());
    return parsed.at("error").as_object();
}

std::string header(const HttpResponse& response, std::string_view name) {
    auto it = response.find(name);
    return it == response.end() ? std::string{} : std::string(it->value());
}

bool has_header(const HttpResponse& response, std::string_view name) {
    return response.find(name) != response.end();
}

// Asserts the common envelope: code, non-empty message, details array, request id, timestamp.
void expect_envelope(const HttpResponse& response, std::string_view code) {
    EXPECT_THAT(header(response, "Content-Type"), HasSubstr("application/json"));
    auto error = error_of(response);
    EXPECT_EQ(error.at("code").as_string(), code);
    EXPECT_FALSE(error.at("message").as_string().empty());
    EXPECT_TRUE(error.at("details").is_array());
    EXPECT_FALSE(error.at("request_id").as_string().empty());
    std::string timestamp(error.at("timestamp").as_string());
    EXPECT_EQ(timestamp.size(), 24u) << timestamp;  // 2024-01-02T03:04:05.678Z
    EXPECT_EQ(timestamp.back(), 'Z') << timestamp;
    EXPECT_EQ(timestamp[10], 'T') << timestamp;
}

TEST(ServerTest, AnswersJsonWithTheRouteParameter) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/items/a%20b");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(header(*response, "Content-Type"), "application/json");
    EXPECT_EQ(boost::json::parse(response->body()).at("id").as_string(), "a b");
    EXPECT_FALSE(header(*response, "X-Request-ID").empty());
}

TEST(ServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
    TestServer server;
    Client client(server.port());
    auto first = client.exchange("GET", "/items/1");
    ASSERT_TRUE(first);
    EXPECT_EQ(first->result_int(), 200);
    EXPECT_TRUE(first->keep_alive());
    auto second = client.exchange("GET", "/items/2");
    ASSERT_TRUE(second);
    EXPECT_EQ(second->result_int(), 200);
    EXPECT_EQ(boost::json::parse(second->body()).at("id").as_string(), "2");
}

TEST(ServerTest, ARequestOnAKeptAliveConnectionSeesNothingOfThePreviousOne) {
    TestServer server;
    Client client(server.port());
    auto first = client.exchange("POST", "/what-came", "X-Thing: one\r\nX-Request-ID: req-1\r\n",
                                 "first body");
    ASSERT_TRUE(first);
    ASSERT_EQ(first->result_int(), 200);
    auto came = boost::json::parse(first->body()).as_object();
    EXPECT_EQ(came.at("thing").as_string(), "one");
    EXPECT_EQ(came.at("body").as_string(), "first body");
    EXPECT_EQ(came.at("request_id").as_string(), "req-1");
    EXPECT_EQ(came.at("user_id").as_string(), "");

    auto second = client.exchange("GET", "/what-came");
    ASSERT_TRUE(second);
    ASSERT_EQ(second->result_int(), 200);
    came = boost::json::parse(second->body()).as_object();
    EXPECT_EQ(came.at("thing").as_string(), "");
    EXPECT_EQ(came.at("added").as_string(), "");
    EXPECT_EQ(came.at("body").as_string(), "");
    EXPECT_EQ(came.at("user_id").as_string(), "");
    EXPECT_NE(came.at("request_id").as_string(), "req-1");
    EXPECT_EQ(came.at("request_id").as_string(), header(*second, "X-Request-ID"));
}

TEST(ServerTest, HeadIsAnsweredWithoutABodyAndTheConnectionStaysUsable) {
    TestServer server;
    Client client(server.port());
    ASSERT_TRUE(client.send(client.request("HEAD", "/items/1")));
    auto head = client.read(5s, true);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->result_int(), 200);
    // Any body bytes the server sent for HEAD now sit in front of the next response.
    auto next = client.exchange("GET", "/items/2");
    ASSERT_TRUE(next) << "the response after HEAD could not be parsed";
    EXPECT_EQ(next->result_int(), 200);
    EXPECT_EQ(next->body(), R"({"id":"2"})");
}

TEST(ServerTest, ConnectionsBeyondTheLimitAreClosed) {
    ServerOptions options;
    options.max_connections = 1;
    TestServer server(options);
    Client first(server.port());
    ASSERT_TRUE(first.exchange("GET", "/items/1"));
    Client second(server.port());
    second.send(second.request("GET", "/items/2"));
    EXPECT_TRUE(second.closed_within(5s));
    auto again = first.exchange("GET", "/items/3");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->result_int(), 200);
}

TEST(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
    TestServer server;
    Client client(server.port());
    ASSERT_TRUE(client.send(client.request("GET", "/items/1") + client.request("GET", "/items/2")));
    auto first = client.read();
    auto second = client.read();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(boost::json::parse(first->body()).at("id").as_string(), "1");
    EXPECT_EQ(boost::json::parse(second->body()).at("id").as_string(), "2");
}

TEST(ServerTest, AnAnswerLargerThanTheSocketTakesAtOnceArrivesWholeToASlowReader) {
    TestServer server;
    Client client(server.port());
    constexpr std::size_t kSize = 12 * 1024 * 1024;
    ASSERT_TRUE(client.send(client.request("GET", "/large?bytes=" + std::to_string(kSize))));
    // The server fills the socket and must wait for the rest; then a second request follows.
    std::this_thread::sleep_for(300ms);
    auto response = client.read(10s);
    ASSERT_TRUE(response);
    ASSERT_EQ(response->body().size(), kSize);
    for (std::size_t at = 0; at < kSize; at += 4096) {
        ASSERT_EQ(response->body()[at], static_cast<char>('a' + at % 26)) << at;
    }
    auto next = client.exchange("GET", "/items/7");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->body(), R"({"id":"7"})");
}

TEST(ServerTest, AHeadArrivingInPiecesIsAnsweredOnceComplete) {
    TestServer server;
    Client client(server.port());
    const std::string request = client.request("GET", "/items/42", "X-Extra: yes\r\n");
    // Cut inside the request line, inside a header name and between the last two line breaks.
    const std::size_t cuts[] = {6, 30, request.size() - 1};
    std::size_t from = 0;
    for (std::size_t cut : cuts) {
        ASSERT_TRUE(client.send(std::string_view(request).substr(from, cut - from)));
        EXPECT_FALSE(client.closed_within(50ms));
        from = cut;
    }
    ASSERT_TRUE(client.send(std::string_view(request).substr(from)));
    auto response = client.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(response->body(), R"({"id":"42"})");
}

TEST(ServerTest, AHeaderWithALineBreakIsLeftOutAndTheRestIsSent) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/line-breaks");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(header(*response, "X-Before"), "1");
    EXPECT_EQ(header(*response, "X-After"), "3");
    EXPECT_FALSE(has_header(*response, "X-Bad-Value"));
    EXPECT_FALSE(has_header(*response, "X-Lone-Lf"));
    EXPECT_FALSE(has_header(*response, "X-Injected"));
    EXPECT_FALSE(has_header(*response, "X-Injected-Too"));
    EXPECT_EQ(response->body(), "{}");
    // The connection is still in step: the next answer is the next request's.
    auto next = client.exchange("GET", "/items/9");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->body(), R"({"id":"9"})");
}

TEST(ServerTest, ConnectionCloseIsHonoured) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/items/1", "Connection: close\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_FALSE(response->keep_alive());
    EXPECT_TRUE(client.closed_within(5s));
}

TEST(ServerTest, UnknownPathIs404Envelope) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/nowhere");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 404);
    expect_envelope(*response, "NOT_FOUND");
    auto error = error_of(*response);
    EXPECT_TRUE(error.at("details").as_array().empty());
    EXPECT_EQ(error.at("request_id").as_string(), header(*response, "X-Request-ID"));
    EXPECT_TRUE(response->keep_alive());
}

TEST(ServerTest, WrongMethodIs405WithAllow) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("DELETE", "/items/1");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 405);
    expect_envelope(*response, "METHOD_NOT_ALLOWED");
    EXPECT_EQ(header(*response, "Allow"), "GET, PUT, HEAD");
}

TEST(ServerTest, ValidRequestIdIsEchoedToClientAndHandler) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/echo", "X-Request-ID: req-42_a.B:c\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(header(*response, "X-Request-ID"), "req-42_a.B:c");
    EXPECT_EQ(boost::json::parse(response->body()).at("request_id").as_string(), "req-42_a.B:c");

    std::string longest(128, 'r');
    auto at_limit = client.exchange("GET", "/echo", "X-Request-ID: " + longest + "\r\n");
    ASSERT_TRUE(at_limit);
    EXPECT_EQ(header(*at_limit, "X-Request-ID"), longest);
}

TEST(ServerTest, InvalidRequestIdIsReplaced) {
    TestServer server;
    Client client(server.port());
    for (const std::string& bad : {std::string("has spaces in it"), std::string(200, 'a'),
                                   std::string("semi;colon"), std::string("<script>")}) {
        auto response = client.exchange("GET", "/echo", "X-Request-ID: " + bad + "\r\n");
        ASSERT_TRUE(response) << bad;
        auto echoed = header(*response, "X-Request-ID");
        EXPECT_NE(echoed, bad);
        EXPECT_TRUE(is_valid_request_id(echoed)) << echoed;
        EXPECT_EQ(boost::json::parse(response->body()).at("request_id").as_string(), echoed);
    }
}

TEST(ServerTest, GeneratedRequestIdsDiffer) {
    TestServer server;
    Client client(server.port());
    auto first = client.exchange("GET", "/echo");
    auto second = client.exchange("GET", "/echo");
    ASSERT_TRUE(first && second);
    EXPECT_NE(header(*first, "X-Request-ID"), header(*second, "X-Request-ID"));
}

TEST(ServerTest, BodyOverTheLimitIs413) {
    ServerOptions options;
    options.max_body_bytes = 1024;
    TestServer server(options);
    Client client(server.port());
    ASSERT_TRUE(client.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"));
    auto response = client.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 413);
    expect_envelope(*response, "PAYLOAD_TOO_LARGE");
    EXPECT_FALSE(response->keep_alive());
}

TEST(ServerTest, ChunkedBodyOverTheLimitIs413) {
    ServerOptions options;
    options.max_body_bytes = 1024;
    TestServer server(options);
    Client client(server.port());
    std::string chunk(800, 'x');
    std::string request =
        "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" + chunk +
        "\r\n320\r\n" + chunk + "\r\n";
    ASSERT_TRUE(client.send(request));
    auto response = client.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 413);
    expect_envelope(*response, "PAYLOAD_TOO_LARGE");
}

TEST(ServerTest, BodyWithinTheLimitReachesTheHandler) {
    ServerOptions options;
    options.max_body_bytes = 1024;
    TestServer server(options);
    Client client(server.port());
    auto response = client.exchange("POST", "/upload", "", std::string(1024, 'b'));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(boost::json::parse(response->body()).at("bytes").as_int64(), 1024);
}

TEST(ServerTest, HeadersOverTheLimitAre431) {
    ServerOptions options;
    options.max_header_bytes = 1024;
    TestServer server(options);
    Client client(server.port());
    ASSERT_TRUE(client.send("GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'h') +
                            "\r\n\r\n"));
    auto response = client.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 431);
    expect_envelope(*response, "HEADERS_TOO_LARGE");
}

TEST(ServerTest, MalformedRequestIs400) {
    TestServer server;
    Client client(server.port());
    ASSERT_TRUE(client.send("THIS IS NOT HTTP\r\n\r\n"));
    auto response = client.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 400);
    expect_envelope(*response, "VALIDATION_ERROR");
    EXPECT_TRUE(client.closed_within(5s));
}

TEST(ServerTest, HeaderTimeoutClosesASlowClient) {
    ServerOptions options;
    options.header_timeout = 200ms;
    TestServer server(options);
    Client client(server.port());
    ASSERT_TRUE(client.send("GET /items/1 HTT"));
    EXPECT_TRUE(client.closed_within(5s));
}

TEST(ServerTest, HeaderTimeoutAppliesToLaterRequestsOnAKeptAliveConnection) {
    ServerOptions options;
    options.header_timeout = 200ms;
    options.idle_timeout = 30s;
    TestServer server(options);
    Client client(server.port());
    auto first = client.exchange("GET", "/items/1");
    ASSERT_TRUE(first);
    // The next request has started: the header timeout, not the idle timeout, bounds it.
    ASSERT_TRUE(client.send("GET /items/2 HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    EXPECT_TRUE(client.closed_within(5s));
}

TEST(ServerTest, IdleKeepAliveConnectionIsClosed) {
    ServerOptions options;
    options.idle_timeout = 200ms;
    TestServer server(options);
    Client client(server.port());
    ASSERT_TRUE(client.exchange("GET", "/items/1"));
    EXPECT_TRUE(client.closed_within(5s));
}

TEST(ServerTest, BodyTimeoutAnswers408ThenCloses) {
    ServerOptions options;
    options.body_timeout = 200ms;
    TestServer server(options);
    Client client(server.port());
    ASSERT_TRUE(client.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" +
                            std::string(10, 'b')));
    auto response = client.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 408);
    expect_envelope(*response, "REQUEST_TIMEOUT");
    EXPECT_TRUE(client.closed_within(5s));
}

TEST(PipelineTest, ProtocolErrorsCarryTheirOwnCodes) {
    Pipeline pipeline(quiet(), std::make_shared<Router>());
    struct Case {
        int status;
        std::string_view code;
    };
    for (auto [status, code] : {Case{400, "VALIDATION_ERROR"}, Case{408, "REQUEST_TIMEOUT"},
                                Case{413, "PAYLOAD_TOO_LARGE"}, Case{431, "HEADERS_TOO_LARGE"}}) {
        auto response = pipeline.protocol_error(status, "problem");
        EXPECT_EQ(response.status, status);
        EXPECT_TRUE(response.close_connection);
        auto error = boost::json::parse(response.body).at("error");
        EXPECT_EQ(std::string(error.at("code").as_string()), code) << status;
        EXPECT_EQ(error.at("message").as_string(), "problem");
    }
}

// Behind an edge the edge's plugins answer CORS, whatever the edge does to the target; the
// pipeline's own CORS stays with the process endpoints.
TEST(PipelineTest, BehindAnEdgeCorsIsDecidedByThePathAsItArrived) {
    PipelineOptions options = quiet();
    options.cors.allowed_origins = {"https://app.example.com"};
    Pipeline pipeline(options, std::make_shared<Router>());
    pipeline.set_edge([](Request& request) -> asio::awaitable<Response> {
        request.target = "/health";  // as the gateway's in-process dispatch rewrites it
        co_return Response::json(200, "{}");
    });
    auto run = [&](std::string target) {
        Request request;
        request.target = std::move(target);
        request.headers = {{"Origin", "https://app.example.com"}};
        asio::io_context io;
        std::optional<Response> response;
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { response = co_await pipeline.handle(request); },
            asio::detached);
        io.run();
        return std::move(response).value();
    };
    const auto proxied = run("/api/v1/tasks/health");
    EXPECT_EQ(proxied.status, 200);
    EXPECT_EQ(proxied.header("Access-Control-Allow-Origin"), "");
    EXPECT_FALSE(proxied.header("X-Request-ID").empty());
}

TEST(ServerTest, ClientErrorKeepsItsStatusAndDetails) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/client-error");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 422);
    expect_envelope(*response, "VALIDATION_ERROR");
    auto error = error_of(*response);
    EXPECT_EQ(error.at("message").as_string(), "the title is not acceptable");
    auto details = error.at("details").as_array();
    ASSERT_EQ(details.size(), 2u);
    EXPECT_EQ(details[0].at("field").as_string(), "title");
    EXPECT_EQ(details[0].at("message").as_string(), "is required");
    EXPECT_EQ(details[1].at("field").as_string(), "due");
    EXPECT_TRUE(response->keep_alive());
}

TEST(ServerTest, RateLimitedClientErrorSetsRetryAfter) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/rate-limited");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 429);
    expect_envelope(*response, "RATE_LIMIT_EXCEEDED");
    EXPECT_EQ(header(*response, "Retry-After"), "7");
    EXPECT_EQ(error_of(*response).at("retry_after").as_int64(), 7);
}

TEST(ServerTest, UnexpectedExceptionIs500WithoutInternals) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/boom");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 500);
    expect_envelope(*response, "INTERNAL");
    EXPECT_THAT(response->body(), Not(HasSubstr("hunter2")));
    EXPECT_THAT(response->body(), Not(HasSubstr("password")));
    EXPECT_EQ(error_of(*response).at("message").as_string(), "internal error");
    // The connection survives a handler failure.
    auto next = client.exchange("GET", "/items/1");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->result_int(), 200);
}

TEST(ServerTest, OverloadedIs503WithRetryAfter) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/busy");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 503);
    expect_envelope(*response, "UPSTREAM_UNAVAILABLE");
    EXPECT_EQ(header(*response, "Retry-After"), "3");
}

PipelineOptions cors_options(std::vector<std::string> origins, bool credentials) {
    auto options = quiet();
    options.cors.allowed_origins = std::move(origins);
    options.cors.allow_credentials = credentials;
    return options;
}

TEST(ServerTest, CorsEchoesAnAllowedOriginWithVary) {
    TestServer server({}, cors_options({"https://app.example"}, true));
    Client client(server.port());
    auto response = client.exchange("GET", "/items/1", "Origin: https://app.example\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(header(*response, "Access-Control-Allow-Origin"), "https://app.example");
    EXPECT_EQ(header(*response, "Vary"), "Origin");
    EXPECT_EQ(header(*response, "Access-Control-Allow-Credentials"), "true");
    EXPECT_THAT(header(*response, "Access-Control-Expose-Headers"), HasSubstr("X-Request-ID"));
}

TEST(ServerTest, CorsIgnoresAnUnknownOrigin) {
    TestServer server({}, cors_options({"https://app.example"}, true));
    Client client(server.port());
    auto response = client.exchange("GET", "/items/1", "Origin: https://evil.example\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_FALSE(has_header(*response, "Access-Control-Allow-Origin"));
    EXPECT_FALSE(has_header(*response, "Access-Control-Allow-Credentials"));
}

TEST(ServerTest, CorsWildcardWithoutCredentials) {
    TestServer server({}, cors_options({"*"}, false));
    Client client(server.port());
    auto response = client.exchange("GET", "/items/1", "Origin: https://anyone.example\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(header(*response, "Access-Control-Allow-Origin"), "*");
    EXPECT_FALSE(has_header(*response, "Access-Control-Allow-Credentials"));
}

TEST(ServerTest, CorsWildcardNeverReflectsAnOriginWithCredentials) {
    // The App refuses this configuration at start-up; the pipeline is safe even if handed it:
    // reflecting every origin with credentials would let any site make credentialed calls.
    TestServer server({}, cors_options({"*"}, true));
    Client client(server.port());
    auto response = client.exchange("GET", "/items/1", "Origin: https://anyone.example\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(header(*response, "Access-Control-Allow-Origin"), "*");
    EXPECT_EQ(header(*response, "Access-Control-Allow-Credentials"), "");
}

TEST(ServerTest, CorsPreflightIs204WithAllowedMethods) {
    TestServer server({}, cors_options({"https://app.example"}, false));
    Client client(server.port());
    auto response = client.exchange("OPTIONS", "/items/1",
                                    "Origin: https://app.example\r\n"
                                    "Access-Control-Request-Method: PUT\r\n");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 204);
    EXPECT_EQ(header(*response, "Access-Control-Allow-Origin"), "https://app.example");
    EXPECT_THAT(header(*response, "Access-Control-Allow-Methods"), HasSubstr("PUT"));
    EXPECT_THAT(header(*response, "Access-Control-Allow-Headers"), HasSubstr("Authorization"));
    EXPECT_EQ(header(*response, "Access-Control-Max-Age"), "600");
    EXPECT_TRUE(response->body().empty());
}

TEST(ServerTest, CorsPreflightFromAnUnknownOriginGetsNoPermissions) {
    TestServer server({}, cors_options({"https://app.example"}, false));
    Client client(server.port());
    auto response = client.exchange("OPTIONS", "/items/1",
                                    "Origin: https://evil.example\r\n"
                                    "Access-Control-Request-Method: PUT\r\n");
    ASSERT_TRUE(response);
    EXPECT_FALSE(has_header(*response, "Access-Control-Allow-Origin"));
    EXPECT_FALSE(has_header(*response, "Access-Control-Allow-Methods"));
}

TEST(ServerTest, MetricsUseTheRouteTemplate) {
    // The registry is process-wide: a fresh service label per run keeps the counts exact.
    static int run = 0;
    const std::string service = "utest-metrics-" + std::to_string(++run);
    TestServer server({}, quiet(service));
    Client client(server.port());
    ASSERT_TRUE(client.exchange("GET", "/items/abc"));
    ASSERT_TRUE(client.exchange("GET", "/items/def"));
    ASSERT_TRUE(client.exchange("GET", "/nowhere/at/all"));
    auto text = telemetry::default_registry().expose();
    const std::string labels = "{service=\"" + service + "\",method=\"GET\",";
    EXPECT_THAT(text, HasSubstr("http_requests_total" + labels +
                                "route=\"/items/{id}\",status=\"200\"} 2\n"));
    EXPECT_THAT(text, HasSubstr("http_requests_total" + labels +
                                "route=\"unmatched\",status=\"404\"} 1\n"));
    EXPECT_THAT(text, Not(HasSubstr("/items/abc")));
    EXPECT_THAT(text, Not(HasSubstr("/nowhere")));
    EXPECT_THAT(text, HasSubstr("http_request_duration_seconds_count" + labels +
                                "route=\"/items/{id}\"} 2\n"));
}

TEST(ServerTest, TraceparentContinuesTheCallersTrace) {
    TestServer server;
    Client client(server.port());
    constexpr std::string_view kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    auto response =
        client.exchange("GET", "/echo", "traceparent: " + std::string(kParent) + "\r\n");
    ASSERT_TRUE(response);
    auto body = boost::json::parse(response->body());
    std::string traceparent(body.at("traceparent").as_string());
    ASSERT_EQ(traceparent.size(), 55u) << traceparent;
    EXPECT_EQ(traceparent.substr(0, 36), "00-4bf92f3577b34da6a3ce929d0e0e4736-");
    EXPECT_NE(traceparent.substr(36, 16), "00f067aa0ba902b7");
    EXPECT_EQ(traceparent.substr(53), "01");
    EXPECT_EQ(body.at("trace_id").as_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
}

TEST(ServerTest, InvalidTraceparentStartsANewTrace) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange(
        "GET", "/echo", "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n");
    ASSERT_TRUE(response);
    auto body = boost::json::parse(response->body());
    std::string trace_id(body.at("trace_id").as_string());
    EXPECT_EQ(trace_id.size(), 32u);
    EXPECT_NE(trace_id, "00000000000000000000000000000000");
    EXPECT_EQ(body.at("traceparent").as_string().size(), 55u);
}

TEST(ServerTest, DrainClosesIdleKeepAliveConnections) {
    TestServer server;
    Client client(server.port());
    auto response = client.exchange("GET", "/items/1");
    ASSERT_TRUE(response);
    EXPECT_TRUE(response->keep_alive());
    server.server().begin_drain();
    EXPECT_TRUE(client.closed_within(5s));
}

TEST(ServerTest, DrainStopsAcceptingNewConnections) {
    TestServer server;
    server.server().begin_drain();
    // Whether the acceptor is already closed or accepts and drops the socket, nothing is served.
    beast::error_code ec;
    asio::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()), ec);
    if (!ec) {
        std::string request = "GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n";
        asio::write(socket, asio::buffer(request), ec);
        char byte = 0;
        std::size_t received = socket.read_some(asio::buffer(&byte, 1), ec);
        EXPECT_EQ(received, 0u);
        EXPECT_TRUE(ec);
    }
}

// Sends GET /slow and returns once its handler holds it (until server.gate().release).
void hold_a_slow_request(TestServer& server, Client& client) {
    ASSERT_TRUE(client.send(client.request("GET", "/slow")));
    auto entered = server.gate().entered.get_future();
    ASSERT_EQ(entered.wait_for(5s), std::future_status::ready);
}

// The second request and the client's end of stream reach the server's socket together, while
// it is busy with the first: read in one go, the end of stream must not be lost.
TEST(ServerTest, AKeptAliveConnectionIsClosedWhenTheClientEndsItWithItsLastRequest) {
    TestServer server;
    Client client(server.port());
    ASSERT_NO_FATAL_FAILURE(hold_a_slow_request(server, client));
    ASSERT_TRUE(client.send(client.request("GET", "/items/2")));
    client.shut_sending();
    std::this_thread::sleep_for(50ms);  // for both to arrive before the server reads again
    server.gate().release = true;

    auto slow = client.read();
    ASSERT_TRUE(slow);
    EXPECT_EQ(slow->result_int(), 200);
    auto last = client.read();
    ASSERT_TRUE(last);
    EXPECT_EQ(last->body(), R"({"id":"2"})");
    EXPECT_TRUE(client.closed_within(2s)) << "the server waited for a request that cannot come";
}

TEST(ServerTest, DrainLetsAnInFlightRequestFinishWithConnectionClose) {
    TestServer server;
    Client client(server.port());
    ASSERT_NO_FATAL_FAILURE(hold_a_slow_request(server, client));
    EXPECT_EQ(server.server().in_flight_requests(), 1u);
    EXPECT_EQ(server.server().open_connections(), 1u);
    server.server().begin_drain();
    server.gate().release = true;
    auto response = client.read();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_FALSE(response->keep_alive());
    EXPECT_EQ(header(*response, "Connection"), "close");
    EXPECT_TRUE(client.closed_within(5s));
    EXPECT_EQ(server.server().in_flight_requests(), 0u);
}

// A Server on an io_context the test turns itself; it answers every request 200.
Server server_on(asio::io_context& io) {
    return Server(
        io, {},
        [](Request&) -> asio::awaitable<Response> {
            co_return Response::json(200, R"({"ok":true})");
        },
        [](int status, std::string_view) { return Response::json(status, "{}"); });
}

// Listens on a free loopback port and turns the loop until the accept loop waits there.
void listen_on_loopback(Server& server, asio::io_context& io, std::uint16_t& port) {
    auto bound = server.listen("127.0.0.1", 0);
    ASSERT_TRUE(bound) << bound.error();
    port = *bound;
    server.start();
    io.poll();
}

// Busy connections make each turn of the event loop long; connections that arrive together must
// not each wait a turn of their own to be accepted.
TEST(ServerTest, ConnectionsArrivingTogetherDoNotWaitATurnEachInABusyLoop) {
    asio::io_context io;
    Server server = server_on(io);
    std::uint16_t port = 0;
    ASSERT_NO_FATAL_FAILURE(listen_on_loopback(server, io, port));

    constexpr int kArriving = 16;
    asio::io_context client_io;
    std::vector<tcp::socket> clients;
    for (int i = 0; i < kArriving; ++i) {
        // The kernel completes the handshake; the connection waits in the listen backlog.
        clients.emplace_back(client_io).connect(
            tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    }

    // Stand-ins for busy connections: each runs once a turn, as a connection with work would.
    constexpr int kBusy = 20;
    std::size_t busy_runs = 0;
    std::function<void()> busy = [&] {
        ++busy_runs;
        asio::post(io, busy);
    };
    for (int i = 0; i < kBusy; ++i) asio::post(io, busy);
    // A few turns, not one: the kernel may finish a handshake a little after connect returns.
    constexpr std::size_t kTurns = 4;
    while (busy_runs < kTurns * kBusy) io.run_one();

    EXPECT_EQ(server.open_connections(), static_cast<std::size_t>(kArriving));
}

// Holds the process's soft limit of open descriptors at a value for its lifetime.
class DescriptorLimit {
  public:
    explicit DescriptorLimit(rlim_t soft) {
        if (getrlimit(RLIMIT_NOFILE, &saved_) != 0) throw std::runtime_error("getrlimit failed");
        rlimit lowered = saved_;
        lowered.rlim_cur = soft;
        if (setrlimit(RLIMIT_NOFILE, &lowered) != 0) throw std::runtime_error("setrlimit failed");
    }
    ~DescriptorLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }
    DescriptorLimit(const DescriptorLimit&) = delete;
    DescriptorLimit& operator=(const DescriptorLimit&) = delete;

  private:
    rlimit saved_{};
};

// The number the next descriptor would get: a limit at it leaves no descriptor to open.
rlim_t lowest_free_descriptor() {
    const int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (probe < 0) throw std::runtime_error("cannot open /dev/null");
    close(probe);
    return static_cast<rlim_t>(probe);
}

// Out of descriptors, every accept fails at once while the connection waits in the backlog.
TEST(ServerTest, AcceptingRestsWhileOutOfDescriptorsAndResumesWhenTheyReturn) {
    asio::io_context io;
    Server server = server_on(io);
    std::uint16_t port = 0;
    ASSERT_NO_FATAL_FAILURE(listen_on_loopback(server, io, port));
    Client client(port);
    ASSERT_TRUE(client.send(client.request("GET", "/")));
    // The process's logger exists before any server runs, as in the App. Made under the limit,
    // UBSan's checks of its construction would find no descriptor to work with.
    (void)telemetry::Logger::instance();
    {
        const DescriptorLimit limit(lowest_free_descriptor());
        const std::size_t handlers_run = io.run_for(300ms);
        EXPECT_EQ(server.open_connections(), 0u);
        // A rest of 100 ms between tries is a handful of handlers; retrying at once is thousands.
        EXPECT_LT(handlers_run, 40u) << "accept was retried without a rest";
    }
    std::thread runner([&io] { io.run(); });
    auto response = client.read();
    io.stop();
    runner.join();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
}

TEST(ServerTest, ListenRejectsABadAddress) {
    asio::io_context io;
    Server server = server_on(io);
    auto result = server.listen("not-an-address", 0);
    ASSERT_FALSE(result);
    EXPECT_THAT(result.error(), HasSubstr("not-an-address"));
}

}  // namespace
}  // namespace aether::platform::http
