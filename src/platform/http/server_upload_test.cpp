// Streamed request bodies (ServerOptions::stream_body_threshold), end to end over loopback sockets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdio>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <random>
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
using HttpResponse = bhttp::response<bhttp::string_body>;
using Clock = std::chrono::steady_clock;
using test_support::chunk;
using test_support::eventually;
using test_support::get;
using test_support::RawClient;
using test_support::TestServer;

std::string post_head(std::string_view target, std::string_view framing) {
    return "POST " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
           std::string(framing) + "\r\n";
}

std::string with_length(std::string_view target, std::size_t length) {
    return post_head(target, "Content-Length: " + std::to_string(length) + "\r\n");
}

std::string chunked_head(std::string_view target) {
    return post_head(target, "Transfer-Encoding: chunked\r\n");
}

// Every byte value, in no order a misplaced or repeated piece could hide in.
std::string random_bytes(std::size_t size, unsigned seed = 7) {
    std::mt19937 engine(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    std::string out(size, '\0');
    for (auto& c : out) c = static_cast<char>(byte(engine));
    return out;
}

// What the upload handler saw, for the test thread to check.
struct UploadLog {
    std::mutex mutex;
    std::string body;      // Request::body
    std::string streamed;  // the body stream's pieces, concatenated
    bool had_stream = false;
    std::size_t pieces = 0;
    std::size_t largest_piece = 0;
    std::optional<std::string> error;  // the body stream's failure
    // What next() gave when asked once more after the failure: an error, or "" for "complete".
    std::optional<Expected<std::string, std::string>> after_error;
    Clock::duration waited_for_error{};  // from the last piece (or the first call) to the failure
    std::shared_ptr<BodySource> kept;    // /keep: the stream, held past the handler's return
    std::atomic<std::size_t> requests{0};
    std::atomic<std::size_t> streamed_bytes{0};
    std::atomic<bool> returned{false};  // the handler has its answer
};

// Reads the body whichever way it came and answers "buffered N" or "streamed N"; a failed stream
// is answered 400 with its message.
asio::awaitable<Response> read_upload(Request& request, std::shared_ptr<UploadLog> log) {
    log->requests.fetch_add(1);
    {
        std::lock_guard lock(log->mutex);
        log->body = request.body;
        log->had_stream = request.body_stream != nullptr;
    }
    if (!request.body_stream) {
        log->returned = true;
        std::string text = "buffered " + std::to_string(request.body.size());
        co_return Response::text(200, std::move(text));
    }
    auto last = Clock::now();
    std::size_t total = 0;
    for (;;) {
        auto piece = co_await request.body_stream->next();
        if (!piece) {
            const auto waited = Clock::now() - last;
            auto again = co_await request.body_stream->next();
            {
                std::lock_guard lock(log->mutex);
                log->error = piece.error();
                log->waited_for_error = waited;
                if (again) {
                    log->after_error.emplace(std::string(*again));
                } else {
                    log->after_error.emplace(unexpected(again.error()));
                }
            }
            log->returned = true;
            std::string text = piece.error();
            co_return Response::text(400, std::move(text));
        }
        if (piece->empty()) break;
        {
            std::lock_guard lock(log->mutex);
            log->streamed.append(*piece);
            ++log->pieces;
            log->largest_piece = std::max(log->largest_piece, piece->size());
        }
        total += piece->size();
        log->streamed_bytes.fetch_add(piece->size());
        last = Clock::now();
    }
    log->returned = true;
    std::string text = "streamed " + std::to_string(total);
    co_return Response::text(200, std::move(text));
}

// POST /upload reads the body; POST /reject answers 401 without reading it; POST /keep answers
// without reading and keeps the stream; GET /ping answers "pong".
void add_upload_routes(Router& router, const std::shared_ptr<UploadLog>& log) {
    router.add(Method::Post, "/upload", [log](Request& request) -> asio::awaitable<Response> {
        return read_upload(request, log);
    });
    router.add(Method::Post, "/reject", [log](Request& request) -> asio::awaitable<Response> {
        log->requests.fetch_add(1);
        {
            std::lock_guard lock(log->mutex);
            log->had_stream = request.body_stream != nullptr;
        }
        log->returned = true;
        co_return Response::json(401, R"({"error":"unauthorized"})");
    });
    router.add(Method::Post, "/keep", [log](Request& request) -> asio::awaitable<Response> {
        log->requests.fetch_add(1);
        {
            std::lock_guard lock(log->mutex);
            log->had_stream = request.body_stream != nullptr;
            log->kept = request.body_stream;
        }
        log->returned = true;
        co_return Response::text(202, "kept");
    });
    router.add(Method::Get, "/ping", [](Request&) -> asio::awaitable<Response> {
        co_return Response::text(200, "pong");
    });
}

ServerOptions streaming(std::size_t threshold = 1024) {
    ServerOptions options;
    options.stream_body_threshold = threshold;
    return options;
}

// The next piece of a body stream, asked for on the server's thread.
struct Pulled {
    bool ok = false;
    std::string bytes;  // the piece, or the error
};

asio::awaitable<Pulled> pull(std::shared_ptr<BodySource> source) {
    Pulled out;
    auto piece = co_await source->next();
    out.ok = static_cast<bool>(piece);
    out.bytes = piece ? std::string(*piece) : piece.error();
    co_return out;
}

std::optional<Pulled> pull_on(asio::io_context& io, std::shared_ptr<BodySource> source) {
    auto future = asio::co_spawn(io, pull(std::move(source)), asio::use_future);
    if (future.wait_for(5s) != std::future_status::ready) return std::nullopt;
    return future.get();
}

TEST(ServerUploadTest, WithoutAThresholdBodiesAreBufferedAsBefore) {
    auto log = std::make_shared<UploadLog>();
    ServerOptions options;  // stream_body_threshold = 0
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, options);
    RawClient client(server.port());

    const std::string body = random_bytes(200 * 1024);
    auto response = client.exchange(with_length("/upload", body.size()) + body);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(response->body(), "buffered " + std::to_string(body.size()));
    {
        std::lock_guard lock(log->mutex);
        EXPECT_FALSE(log->had_stream);
        EXPECT_TRUE(log->body == body);
    }

    // A chunked body too is read whole before the handler runs.
    const std::string chunked =
        chunked_head("/upload") + chunk("abc") + chunk("defgh") + "0\r\n\r\n";
    auto second = client.exchange(chunked);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->body(), "buffered 8");
    std::lock_guard lock(log->mutex);
    EXPECT_FALSE(log->had_stream);
    EXPECT_EQ(log->body, "abcdefgh");
}

TEST(ServerUploadTest, ContentLengthAboveTheThresholdStreamsTheExactBytes) {
    auto log = std::make_shared<UploadLog>();
    TestServer server([&](Router& router) { add_upload_routes(router, log); },
                      streaming(64 * 1024));
    RawClient client(server.port());

    const std::string body = random_bytes(1024 * 1024);
    auto response = client.exchange(with_length("/upload", body.size()) + body);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(response->body(), "streamed " + std::to_string(body.size()));
    EXPECT_TRUE(response->keep_alive());
    {
        std::lock_guard lock(log->mutex);
        EXPECT_TRUE(log->had_stream);
        EXPECT_EQ(log->body, "");
        EXPECT_EQ(log->streamed.size(), body.size());
        EXPECT_TRUE(log->streamed == body);
        EXPECT_FALSE(log->error);
        // Pieces, not the body whole: memory stays bounded whatever the upload's size.
        EXPECT_GT(log->pieces, 1u);
        EXPECT_LE(log->largest_piece, 64u * 1024);
    }

    // The body was read to its end: the connection carries the next request.
    auto next = client.exchange(get("/ping"));
    ASSERT_TRUE(next) << "the connection did not serve a request after the streamed body";
    EXPECT_EQ(next->body(), "pong");
    EXPECT_EQ(server.server().open_connections(), 1u);

    // And another streamed upload on the same connection.
    const std::string again = random_bytes(100 * 1024, 11);
    auto third = client.exchange(with_length("/upload", again.size()) + again);
    ASSERT_TRUE(third);
    EXPECT_EQ(third->body(), "streamed " + std::to_string(again.size()));
    std::lock_guard lock(log->mutex);
    EXPECT_TRUE(log->streamed == body + again);
}

TEST(ServerUploadTest, ChunkedUploadReachesTheHandlerWhileItIsBeingSent) {
    auto log = std::make_shared<UploadLog>();
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, streaming());
    RawClient client(server.port());

    const std::vector<std::string> pieces = {random_bytes(7, 1), random_bytes(1, 2),
                                             random_bytes(4099, 3), random_bytes(3, 4),
                                             random_bytes(40001, 5)};
    ASSERT_TRUE(client.send(chunked_head("/upload") + chunk(pieces[0])));
    // The handler holds the first piece while the client has sent nothing more.
    ASSERT_TRUE(eventually([&] { return log->streamed_bytes.load() == pieces[0].size(); }))
        << "the first chunk did not reach the handler before the body was complete";
    EXPECT_FALSE(log->returned);

    std::string sent = pieces[0];
    for (std::size_t i = 1; i < pieces.size(); ++i) {
        const std::string wire = chunk(pieces[i]);
        // Each chunk in three writes: cut after its first byte and in the middle of its data.
        const std::string_view bytes(wire);
        const std::size_t middle = wire.size() / 2;
        ASSERT_TRUE(client.send(bytes.substr(0, 1)));
        if (middle > 1) {
            ASSERT_TRUE(client.send(bytes.substr(1, middle - 1)));
        }
        ASSERT_TRUE(client.send(bytes.substr(std::max<std::size_t>(middle, 1))));
        sent += pieces[i];
        ASSERT_TRUE(eventually([&] { return log->streamed_bytes.load() == sent.size(); })) << i;
        EXPECT_FALSE(log->returned) << i;
    }
    // The last chunk, and a pipelined request right behind it in the same write.
    auto response = client.exchange("0\r\n\r\n" + get("/ping"));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(response->body(), "streamed " + std::to_string(sent.size()));
    EXPECT_TRUE(response->keep_alive());
    {
        std::lock_guard lock(log->mutex);
        EXPECT_TRUE(log->had_stream);
        EXPECT_TRUE(log->streamed == sent);
        EXPECT_FALSE(log->error);
    }
    auto pong = client.read();
    ASSERT_TRUE(pong) << "the request pipelined behind the chunked body was lost";
    EXPECT_EQ(pong->body(), "pong");
}

TEST(ServerUploadTest, ContentLengthAtOrBelowTheThresholdIsBuffered) {
    auto log = std::make_shared<UploadLog>();
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, streaming(1000));
    RawClient client(server.port());

    for (std::size_t size : {std::size_t{0}, std::size_t{10}, std::size_t{1000}}) {
        const std::string body = random_bytes(size, static_cast<unsigned>(size));
        auto response = client.exchange(with_length("/upload", size) + body);
        ASSERT_TRUE(response) << size;
        EXPECT_EQ(response->body(), "buffered " + std::to_string(size));
        std::lock_guard lock(log->mutex);
        EXPECT_FALSE(log->had_stream) << size;
        EXPECT_TRUE(log->body == body) << size;
    }
    // One byte over streams.
    const std::string body = random_bytes(1001);
    auto response = client.exchange(with_length("/upload", body.size()) + body);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body(), "streamed 1001");
    std::lock_guard lock(log->mutex);
    EXPECT_TRUE(log->had_stream);
}

TEST(ServerUploadTest, HandlerIgnoringTheBodyAnswersAndTheConnectionIsClosed) {
    auto log = std::make_shared<UploadLog>();
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, streaming());
    RawClient client(server.port());

    // A megabyte announced, a little sent: the answer must not wait for the rest.
    const std::string part = random_bytes(16 * 1024);
    ASSERT_TRUE(client.send(with_length("/reject", 1024 * 1024) + part));
    auto started = Clock::now();
    auto response = client.read(3s);
    ASSERT_TRUE(response);
    EXPECT_LT(Clock::now() - started, 2s);
    EXPECT_EQ(response->result_int(), 401);
    // The unread body is still on the connection: it cannot carry another request.
    EXPECT_FALSE(response->keep_alive());
    {
        std::lock_guard lock(log->mutex);
        EXPECT_TRUE(log->had_stream);
    }
    auto rest = client.read_until_close(3s);
    EXPECT_TRUE(rest.closed);
    EXPECT_EQ(rest.bytes, "");
    EXPECT_TRUE(eventually([&] { return server.server().open_connections() == 0; }));
    EXPECT_EQ(server.server().in_flight_requests(), 0u);
    EXPECT_EQ(log->requests.load(), 1u);
}

TEST(ServerUploadTest, HandlerIgnoringAChunkedBodyAlsoClosesTheConnection) {
    auto log = std::make_shared<UploadLog>();
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, streaming());
    RawClient client(server.port());

    ASSERT_TRUE(client.send(chunked_head("/reject") + chunk("first")));
    auto response = client.read(3s);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 401);
    EXPECT_FALSE(response->keep_alive());
    auto rest = client.read_until_close(3s);
    EXPECT_TRUE(rest.closed);
    EXPECT_EQ(rest.bytes, "");
}

TEST(ServerUploadTest, ChunkedBodyOverTheStreamedLimitFailsTheStream) {
    auto log = std::make_shared<UploadLog>();
    auto options = streaming();
    options.max_body_bytes = 1024;
    options.max_streamed_body_bytes = 64 * 1024;
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, options);
    RawClient client(server.port());

    std::string wire = chunked_head("/upload");
    const std::string piece = random_bytes(16 * 1024);
    for (int i = 0; i < 5; ++i) wire += chunk(piece);
    wire += "0\r\n\r\n";
    ASSERT_TRUE(client.send(wire));
    auto received = client.read_until_close(5s);
    EXPECT_TRUE(received.closed);
    ASSERT_TRUE(log->returned);
    std::lock_guard lock(log->mutex);
    EXPECT_TRUE(log->had_stream);
    ASSERT_TRUE(log->error);
    EXPECT_THAT(*log->error, HasSubstr("too large"));
    // Everything up to the limit arrived; nothing beyond it.
    EXPECT_EQ(log->streamed.size(), 64u * 1024);
    EXPECT_TRUE(log->streamed == piece + piece + piece + piece);
    // Asked again, a failed body must not look complete.
    ASSERT_TRUE(log->after_error);
    EXPECT_FALSE(*log->after_error)
        << "next() after the failure returned \"" << **log->after_error << "\" (end of body)";
    // What the handler answered reached the client before the close.
    EXPECT_THAT(received.bytes, ::testing::StartsWith("HTTP/1.1 400 "));
    EXPECT_THAT(received.bytes, HasSubstr("Connection: close"));
}

TEST(ServerUploadTest, ClientStoppingMidBodyFailsTheStreamAfterTheBodyTimeout) {
    auto log = std::make_shared<UploadLog>();
    auto options = streaming();
    options.body_timeout = 300ms;
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, options);
    RawClient client(server.port());

    const std::string part = random_bytes(40 * 1024);
    auto started = Clock::now();
    ASSERT_TRUE(client.send(with_length("/upload", 100 * 1024) + part));
    // The connection is given up on: whatever the handler answered, it ends.
    auto received = client.read_until_close(5s);
    EXPECT_TRUE(received.closed);
    EXPECT_LT(Clock::now() - started, 3s);
    ASSERT_TRUE(eventually([&] { return log->returned.load(); }));
    std::lock_guard lock(log->mutex);
    EXPECT_TRUE(log->streamed == part);
    ASSERT_TRUE(log->error);
    EXPECT_THAT(*log->error, HasSubstr("not received in time"));
    // The timeout runs from the head: the client stalled right after its first bytes.
    EXPECT_GE(log->waited_for_error, 250ms);
    EXPECT_LT(log->waited_for_error, 2s);
    ASSERT_TRUE(log->after_error);
    EXPECT_FALSE(*log->after_error)
        << "next() after the timeout returned \"" << **log->after_error << "\" (end of body)";
    EXPECT_TRUE(eventually([&] { return server.server().open_connections() == 0; }));
}

// body_timeout bounds the whole body, as for buffered bodies: a client trickling a few bytes
// now and then cannot hold the connection (and, behind a proxy, an upstream one) for longer.
TEST(ServerUploadTest, BodyTimeoutBoundsTheWholeStreamedBody) {
    auto log = std::make_shared<UploadLog>();
    auto options = streaming();
    options.body_timeout = 300ms;
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, options);
    RawClient client(server.port());

    // Each chunk well within 300 ms of the one before; together well beyond it.
    auto started = Clock::now();
    ASSERT_TRUE(client.send(chunked_head("/upload")));
    for (int i = 0; i < 8 && !log->returned.load(); ++i) {
        if (!client.send(chunk(random_bytes(100, static_cast<unsigned>(i))))) break;
        std::this_thread::sleep_for(100ms);  // the pace of a slow uploader, not synchronisation
    }
    ASSERT_TRUE(eventually([&] { return log->returned.load(); }));
    const auto failed_after = Clock::now() - started;
    EXPECT_GE(failed_after, 250ms);
    EXPECT_LT(failed_after, 2s);
    std::lock_guard lock(log->mutex);
    ASSERT_TRUE(log->error);
    EXPECT_THAT(*log->error, HasSubstr("not received in time"));
    EXPECT_LT(log->streamed.size(), 800u);
}

TEST(ServerUploadTest, ContentLengthOverMaxBodyButUnderTheStreamedLimitStreams) {
    auto log = std::make_shared<UploadLog>();
    auto options = streaming(1024);
    options.max_body_bytes = 4 * 1024;
    options.max_streamed_body_bytes = 1024 * 1024;
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, options);
    RawClient client(server.port());

    const std::string body = random_bytes(100 * 1024);
    auto response = client.exchange(with_length("/upload", body.size()) + body);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(response->body(), "streamed " + std::to_string(body.size()));
    {
        std::lock_guard lock(log->mutex);
        EXPECT_TRUE(log->streamed == body);
    }
    auto next = client.exchange(get("/ping"));
    ASSERT_TRUE(next);
    EXPECT_EQ(next->body(), "pong");
}

TEST(ServerUploadTest, ContentLengthOverTheStreamedLimitIs413) {
    auto log = std::make_shared<UploadLog>();
    auto options = streaming(1024);
    options.max_body_bytes = 4 * 1024;
    options.max_streamed_body_bytes = 64 * 1024;
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, options);
    RawClient client(server.port());

    ASSERT_TRUE(client.send(with_length("/upload", 64 * 1024 + 1) + "start"));
    auto response = client.read(3s);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 413);
    EXPECT_FALSE(response->keep_alive());
    EXPECT_TRUE(client.read_until_close(3s).closed);
    EXPECT_EQ(log->requests.load(), 0u);
}

TEST(ServerUploadTest, ThresholdAboveMaxBodyStillRejectsBufferedBodiesOverMaxBody) {
    auto log = std::make_shared<UploadLog>();
    auto options = streaming(16 * 1024);
    options.max_body_bytes = 1024;
    options.max_streamed_body_bytes = 1024 * 1024;
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, options);

    {
        // Within max_body_bytes: buffered as usual.
        RawClient client(server.port());
        const std::string body = random_bytes(1024);
        auto response = client.exchange(with_length("/upload", body.size()) + body);
        ASSERT_TRUE(response);
        EXPECT_EQ(response->body(), "buffered 1024");
    }
    {
        // Over max_body_bytes, under the threshold: would be buffered, so it is refused at once.
        RawClient client(server.port());
        ASSERT_TRUE(client.send(with_length("/upload", 8 * 1024) + "start"));
        auto started = Clock::now();
        auto response = client.read(3s);
        ASSERT_TRUE(response);
        EXPECT_LT(Clock::now() - started, 2s);
        EXPECT_EQ(response->result_int(), 413);
        EXPECT_FALSE(response->keep_alive());
        EXPECT_TRUE(client.read_until_close(3s).closed);
    }
    {
        // Over the threshold: streams.
        RawClient client(server.port());
        const std::string body = random_bytes(32 * 1024);
        auto response = client.exchange(with_length("/upload", body.size()) + body);
        ASSERT_TRUE(response);
        EXPECT_EQ(response->body(), "streamed " + std::to_string(body.size()));
    }
    EXPECT_EQ(log->requests.load(), 2u);
}

TEST(ServerUploadTest, RequestsWithoutABodyAreUnaffected) {
    auto log = std::make_shared<UploadLog>();
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, streaming());
    RawClient client(server.port());
    auto response = client.exchange(post_head("/upload", ""));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body(), "buffered 0");
    auto ping = client.exchange(get("/ping"));
    ASSERT_TRUE(ping);
    EXPECT_EQ(ping->body(), "pong");
    std::lock_guard lock(log->mutex);
    EXPECT_FALSE(log->had_stream);
}

TEST(ServerUploadTest, StreamKeptPastTheHandlerFailsInsteadOfEndingTheBody) {
    auto log = std::make_shared<UploadLog>();
    TestServer server([&](Router& router) { add_upload_routes(router, log); }, streaming());
    RawClient client(server.port());

    ASSERT_TRUE(client.send(with_length("/keep", 10 * 1024) + random_bytes(1024)));
    auto response = client.read(3s);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->result_int(), 202);
    EXPECT_FALSE(response->keep_alive());
    EXPECT_TRUE(client.read_until_close(3s).closed);

    std::shared_ptr<BodySource> kept;
    {
        std::lock_guard lock(log->mutex);
        kept = log->kept;
        log->kept.reset();
    }
    ASSERT_TRUE(kept);
    // The connection is gone; an empty piece would tell a forwarder the body ended there.
    auto pulled = pull_on(server.io(), kept);
    ASSERT_TRUE(pulled) << "next() on a stream kept past its request did not return";
    EXPECT_FALSE(pulled->ok) << "next() returned \"" << pulled->bytes << "\" (end of body)";
}

}  // namespace
}  // namespace aether::platform::http
