// Tests for streamed request bodies (ClientRequest::body_stream), read_timeout and
// replay_on_stale_connection, against scripted upstreams on 127.0.0.1.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>

#include "platform/http/client.h"

namespace aether::platform::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using StreamedResult = Expected<StreamedResponse, ClientError>;
using PlainResult = Expected<ClientResponse, ClientError>;
using UpstreamRequest = bhttp::request<bhttp::string_body>;
using Clock = std::chrono::steady_clock;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kNever = std::numeric_limits<std::size_t>::max();

// One accepted connection, as the upstream's script sees it. Every read gives up after 5 s.
class Peer {
  public:
    explicit Peer(tcp::socket socket) : stream_(std::move(socket)) {}

    // The next request, parsed (chunked bodies decoded); nullopt once the client has closed.
    asio::awaitable<std::optional<UpstreamRequest>> read_request() {
        bhttp::request_parser<bhttp::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        stream_.expires_after(5s);
        auto [ec, n] = co_await bhttp::async_read(stream_, buffer_, parser, kUse);
        (void)n;
        if (ec) co_return std::nullopt;
        co_return std::optional<UpstreamRequest>(parser.release());
    }

    // The raw bytes up to and including `marker`; nullopt if the connection ends first.
    asio::awaitable<std::optional<std::string>> read_until(std::string_view marker) {
        for (;;) {
            std::string_view have(static_cast<const char*>(buffer_.data().data()), buffer_.size());
            if (auto at = have.find(marker); at != std::string_view::npos) {
                std::string out(have.substr(0, at + marker.size()));
                buffer_.consume(out.size());
                co_return std::optional<std::string>(std::move(out));
            }
            if (!co_await fill()) co_return std::nullopt;
        }
    }

    // Exactly `count` raw bytes; nullopt if the connection ends first.
    asio::awaitable<std::optional<std::string>> read_exactly(std::size_t count) {
        while (buffer_.size() < count) {
            if (!co_await fill()) co_return std::nullopt;
        }
        std::string out(static_cast<const char*>(buffer_.data().data()), count);
        buffer_.consume(count);
        co_return std::optional<std::string>(std::move(out));
    }

    // Every raw byte until the client closes the connection (or 5 s pass: `closed` false).
    struct UntilClose {
        std::string bytes;
        bool closed = false;
    };
    asio::awaitable<UntilClose> read_until_close() {
        UntilClose out;
        for (;;) {
            std::array<char, 16 * 1024> bytes{};
            if (buffer_.size() > 0) {
                out.bytes.append(static_cast<const char*>(buffer_.data().data()), buffer_.size());
                buffer_.consume(buffer_.size());
            }
            stream_.expires_after(5s);
            auto [ec, n] = co_await stream_.async_read_some(asio::buffer(bytes), kUse);
            out.bytes.append(bytes.data(), n);
            if (ec) {
                out.closed = ec != beast::error::timeout;
                co_return out;
            }
        }
    }

    asio::awaitable<bool> write(std::string_view bytes) {
        stream_.expires_after(5s);
        auto [ec, n] =
            co_await asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()), kUse);
        (void)n;
        co_return !ec;
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

  private:
    asio::awaitable<bool> fill() {
        stream_.expires_after(5s);
        auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(16 * 1024), kUse);
        buffer_.commit(n);
        co_return !ec;
    }

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

// A one-shot event from one coroutine to another on the same io_context.
class Signal {
  public:
    explicit Signal(asio::io_context& io) : timer_(io, asio::steady_timer::time_point::max()) {}
    void fire() {
        fired_ = true;
        timer_.cancel();
    }
    bool fired() const { return fired_; }
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

PlainResult send_plain_now(asio::io_context& io, HttpClient& client, const ClientRequest& request) {
    std::optional<PlainResult> out;
    run(io, [&]() -> asio::awaitable<void> { out.emplace(co_await client.send(request)); }());
    if (!out) throw std::logic_error("send did not complete");
    return std::move(*out);
}

// The whole response body, however it came.
std::string body_of(asio::io_context& io, const StreamedResponse& response) {
    if (response.complete_body) return *response.complete_body;
    if (!response.body) return "<no body>";
    std::string out;
    run(io, [&]() -> asio::awaitable<void> {
        for (;;) {
            auto piece = co_await response.body->next();
            if (!piece) {
                out += "<error: " + piece.error() + ">";
                co_return;
            }
            if (piece->empty()) co_return;
            out.append(*piece);
        }
    }());
    return out;
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

std::string describe(const StreamedResult& result) {
    if (result) return "status " + std::to_string(result->status);
    return std::string(to_string(result.error().kind)) + ": " + result.error().message;
}

std::string describe(const PlainResult& result) {
    if (result) return "status " + std::to_string(result->status);
    return std::string(to_string(result.error().kind)) + ": " + result.error().message;
}

// Bytes with no short period and no CR or LF, so a piece out of place shows and a chunk's end
// cannot be mistaken for data.
std::string pattern(std::size_t size, std::uint32_t seed = 12345) {
    std::string out(size, '\0');
    std::uint32_t state = seed;
    for (auto& byte : out) {
        state = state * 1103515245u + 12345u;
        byte = static_cast<char>('!' + (state >> 16) % 90);
    }
    return out;
}

std::string joined(const std::vector<std::string>& pieces) {
    std::string out;
    for (const auto& piece : pieces) out += piece;
    return out;
}

std::string fixed_head(std::size_t length) {
    return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
}

std::string ok(std::string_view body) {
    return fixed_head(body.size()) + std::string(body);
}

// Answers every request on the connection with its target, counting the requests it read.
asio::awaitable<void> echo_targets(Peer& peer, std::vector<std::string>& seen) {
    for (;;) {
        auto request = co_await peer.read_request();
        if (!request) co_return;
        std::string target(request->target());
        seen.push_back(target);
        if (!co_await peer.write(ok(target))) co_return;
    }
}

// What the test sees of a PieceSource (all on the test's io_context: no locking).
struct SourceLog {
    std::size_t produced = 0;
    bool finished = false;  // the end of the body was reported
    bool failed = false;
};

// A request body of fixed pieces: optionally paused before one piece until a Signal fires,
// spaced by a delay, failing part-way, or endless (the first piece over and over).
class PieceSource final : public BodySource {
  public:
    PieceSource(std::vector<std::string> pieces, std::shared_ptr<SourceLog> log)
        : pieces_(std::move(pieces)), log_(std::move(log)) {}

    std::size_t fail_at = kNever;
    std::size_t hold_before = kNever;
    Signal* release = nullptr;
    std::chrono::milliseconds delay{0};
    bool endless = false;

    asio::awaitable<Expected<std::string_view, std::string>> next() override {
        if (index_ == hold_before && release != nullptr) co_await release->wait();
        if (delay.count() > 0) {
            auto executor = co_await asio::this_coro::executor;
            asio::steady_timer timer(executor, delay);
            co_await timer.async_wait(kUse);
        }
        if (index_ == fail_at) {
            log_->failed = true;
            co_return unexpected(std::string("the client went away"));
        }
        if (endless) {
            ++log_->produced;
            co_return std::string_view(pieces_.front());
        }
        if (index_ == pieces_.size()) {
            log_->finished = true;
            co_return std::string_view{};
        }
        ++log_->produced;
        co_return std::string_view(pieces_[index_++]);
    }

  private:
    std::vector<std::string> pieces_;
    std::shared_ptr<SourceLog> log_;
    std::size_t index_ = 0;
};

ClientRequest upload(std::string url, std::shared_ptr<BodySource> source) {
    ClientRequest request;
    request.method = "POST";
    request.url = std::move(url);
    request.body_stream = std::move(source);
    return request;
}

// A standard parser's reading of raw request bytes (chunked bodies decoded).
std::optional<UpstreamRequest> parse(std::string_view raw) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.eager(true);
    parser.body_limit(64 * 1024 * 1024);
    beast::error_code ec;
    std::size_t used = parser.put(asio::buffer(raw.data(), raw.size()), ec);
    if (ec || used != raw.size() || !parser.is_done()) return std::nullopt;
    return parser.release();
}

class HttpClientUploadTest : public testing::Test {
  protected:
    asio::io_context io_;
};

TEST_F(HttpClientUploadTest, StreamWithContentLengthIsSentUnframed) {
    const std::vector<std::string> pieces = {"hello ", pattern(100 * 1024), "!", pattern(3, 9)};
    const std::string body = joined(pieces);
    std::string head;
    std::optional<std::string> received;
    std::string next_head;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        auto raw_head = co_await peer.read_until("\r\n\r\n");
        if (!raw_head) co_return;
        head = *raw_head;
        received = co_await peer.read_exactly(body.size());
        if (!received) co_return;
        if (!co_await peer.write(ok("stored"))) co_return;
        // Whatever follows the body on the connection is the next request, verbatim.
        auto second = co_await peer.read_until("\r\n\r\n");
        if (!second) co_return;
        next_head = *second;
        co_await peer.write(ok("second"));
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto log = std::make_shared<SourceLog>();
    auto request = upload(upstream.url("/files"), std::make_shared<PieceSource>(pieces, log));
    request.headers = {{"Content-Length", std::to_string(body.size())}};
    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(body_of(io_, *response), "stored");
    EXPECT_TRUE(log->finished);

    EXPECT_EQ(head.rfind("POST /files HTTP/1.1\r\n", 0), 0u) << head;
    EXPECT_NE(head.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
              std::string::npos)
        << head;
    EXPECT_EQ(head.find("Transfer-Encoding"), std::string::npos) << head;
    // Exactly one Content-Length: the client adds none of its own.
    EXPECT_EQ(head.find("Content-Length"), head.rfind("Content-Length")) << head;
    ASSERT_TRUE(received);
    EXPECT_EQ(received->size(), body.size());
    EXPECT_TRUE(*received == body);

    auto second = send_now(io_, client, upload(upstream.url("/next"), nullptr));
    ASSERT_TRUE(second) << describe(second);
    EXPECT_EQ(body_of(io_, *second), "second");
    // No framing bytes (a terminating chunk) were sent behind the body.
    EXPECT_EQ(next_head.rfind("POST /next HTTP/1.1\r\n", 0), 0u) << next_head;
    EXPECT_EQ(client.stats().connections_created, 1u);
}

TEST_F(HttpClientUploadTest, StreamWithoutALengthIsSentChunked) {
    // Sizes whose hexadecimal forms differ from their decimal ones.
    const std::vector<std::string> pieces = {
        "x", pattern(10, 1), pattern(255, 2), pattern(4096, 3), pattern(16, 4), pattern(70000, 5)};
    std::string raw;
    std::vector<std::string> seen;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        auto head = co_await peer.read_until("\r\n\r\n");
        if (!head) co_return;
        auto body = co_await peer.read_until("\r\n0\r\n\r\n");
        if (!body) co_return;
        raw = *head + *body;
        if (!co_await peer.write(ok("stored"))) co_return;
        co_await echo_targets(peer, seen);
    });
    HttpClient client(io_.get_executor());

    auto log = std::make_shared<SourceLog>();
    auto response = send_now(
        io_, client, upload(upstream.url("/files"), std::make_shared<PieceSource>(pieces, log)));
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(body_of(io_, *response), "stored");

    const auto split = raw.find("\r\n\r\n") + 4;
    const std::string head = raw.substr(0, split);
    const std::string body = raw.substr(split);
    EXPECT_NE(head.find("\r\nTransfer-Encoding: chunked\r\n"), std::string::npos) << head;
    EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
    std::string expected = "1\r\nx\r\n";
    expected += "a\r\n" + pieces[1] + "\r\n";
    expected += "ff\r\n" + pieces[2] + "\r\n";
    expected += "1000\r\n" + pieces[3] + "\r\n";
    expected += "10\r\n" + pieces[4] + "\r\n";
    expected += "11170\r\n" + pieces[5] + "\r\n";
    expected += "0\r\n\r\n";
    EXPECT_EQ(body.size(), expected.size());
    EXPECT_TRUE(body == expected) << body.substr(0, 200);
    // A standard decoder reads the same body.
    auto parsed = parse(raw);
    ASSERT_TRUE(parsed) << "the request could not be parsed";
    EXPECT_TRUE(parsed->body() == joined(pieces));

    // Nothing stray after the last chunk: the connection carries the next request.
    auto next = send_now(io_, client, upload(upstream.url("/after"), nullptr));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(body_of(io_, *next), "/after");
    EXPECT_EQ(seen, std::vector<std::string>{"/after"});
    EXPECT_EQ(client.stats().connections_created, 1u);
}

// The client reuses a finished request's preparation for the next one: nothing of a streamed
// POST (its body, framing, headers, method or target) may show in a GET sent after it.
TEST_F(HttpClientUploadTest, ARequestAfterAStreamedOneCarriesNothingOfIt) {
    std::string second_head;
    std::optional<std::string> after_second;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        auto head = co_await peer.read_until("\r\n\r\n");
        if (!head) co_return;
        if (!co_await peer.read_until("\r\n0\r\n\r\n")) co_return;
        if (!co_await peer.write(ok("stored"))) co_return;
        auto second = co_await peer.read_until("\r\n\r\n");
        if (!second) co_return;
        second_head = *second;
        if (!co_await peer.write(ok("plain"))) co_return;
        // Anything the client sends now would be left over from the first request.
        after_second = co_await peer.read_until("\r\n");
    });
    HttpClient client(io_.get_executor());

    std::weak_ptr<BodySource> first_source;
    {
        auto source = std::make_shared<PieceSource>(std::vector<std::string>{"abc", "def"},
                                                    std::make_shared<SourceLog>());
        first_source = source;
        auto first = upload(upstream.url("/files?kind=big"), std::move(source));
        first.headers = {{"X-First", "1"}};
        first.body = "ahead";
        auto stored = send_now(io_, client, first);
        ASSERT_TRUE(stored) << describe(stored);
        EXPECT_EQ(body_of(io_, *stored), "stored");
    }
    // The finished request let go of its body's source.
    EXPECT_TRUE(first_source.expired());

    ClientRequest get;
    get.url = upstream.url("/plain");
    auto plain = send_now(io_, client, get);
    ASSERT_TRUE(plain) << describe(plain);
    EXPECT_EQ(body_of(io_, *plain), "plain");
    EXPECT_EQ(second_head.rfind("GET /plain HTTP/1.1\r\n", 0), 0u) << second_head;
    EXPECT_EQ(second_head.find("Transfer-Encoding"), std::string::npos) << second_head;
    EXPECT_EQ(second_head.find("Content-Length"), std::string::npos) << second_head;
    EXPECT_EQ(second_head.find("X-First"), std::string::npos) << second_head;
    EXPECT_EQ(second_head.find("kind=big"), std::string::npos) << second_head;
    client.close();
    io_.run_for(200ms);
    EXPECT_FALSE(after_second) << *after_second;
}

TEST_F(HttpClientUploadTest, EmptyStreamIsJustTheLastChunk) {
    std::string raw;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        auto head = co_await peer.read_until("\r\n\r\n");
        if (!head) co_return;
        auto body = co_await peer.read_exactly(5);
        if (!body) co_return;
        raw = *body;
        co_await peer.write(ok("empty"));
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());
    auto log = std::make_shared<SourceLog>();
    auto response = send_now(io_, client,
                             upload(upstream.url("/empty"), std::make_shared<PieceSource>(
                                                                std::vector<std::string>{}, log)));
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(body_of(io_, *response), "empty");
    EXPECT_EQ(raw, "0\r\n\r\n");
}

TEST_F(HttpClientUploadTest, BodyAheadOfTheStreamIsPartOfTheChunkedBody) {
    std::optional<UpstreamRequest> got;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        got = co_await peer.read_request();
        if (!got) co_return;
        co_await peer.write(ok("stored"));
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto log = std::make_shared<SourceLog>();
    auto request = upload(upstream.url("/files"), std::make_shared<PieceSource>(
                                                      std::vector<std::string>{"-streamed"}, log));
    request.body = "buffered";
    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(body_of(io_, *response), "stored");
    ASSERT_TRUE(got) << "the upstream could not parse the request";
    EXPECT_EQ(got->body(), "buffered-streamed");
}

TEST_F(HttpClientUploadTest, PiecesAreSentAsTheSourceProducesThem) {
    Signal release(io_);
    std::string first;
    std::optional<UpstreamRequest> rest;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        if (!co_await peer.read_until("\r\n\r\n")) co_return;
        auto piece = co_await peer.read_until("first\r\n");
        if (!piece) co_return;
        first = *piece;
        // The source produces the rest only once the upstream has the first piece.
        release.fire();
        auto tail = co_await peer.read_until("0\r\n\r\n");
        if (!tail) co_return;
        co_await peer.write(ok("stored"));
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    auto log = std::make_shared<SourceLog>();
    auto source = std::make_shared<PieceSource>(std::vector<std::string>{"first", "second"}, log);
    source->hold_before = 1;
    source->release = &release;
    auto response = send_now(io_, client, upload(upstream.url("/files"), source));
    ASSERT_TRUE(response) << describe(response);
    EXPECT_EQ(first, "5\r\nfirst\r\n");
    EXPECT_TRUE(release.fired());
    EXPECT_EQ(body_of(io_, *response), "stored");
    EXPECT_EQ(log->produced, 2u);
}

TEST_F(HttpClientUploadTest, FailingSourceAbortsTheRequestAndDropsTheConnection) {
    std::vector<Peer::UntilClose> received;
    std::vector<std::string> seen;
    Upstream upstream(io_, [&](Peer& peer, int index) -> asio::awaitable<void> {
        if (index == 2) {
            co_await echo_targets(peer, seen);
            co_return;
        }
        auto head = co_await peer.read_until("\r\n\r\n");
        if (!head) co_return;
        received.push_back(co_await peer.read_until_close());
    });
    HttpClient client(io_.get_executor());

    for (bool chunked : {true, false}) {
        auto log = std::make_shared<SourceLog>();
        auto source =
            std::make_shared<PieceSource>(std::vector<std::string>{"one", "two", "three"}, log);
        source->fail_at = 2;
        auto request = upload(upstream.url("/files"), source);
        if (!chunked) request.headers = {{"Content-Length", "11"}};
        auto response = send_now(io_, client, request);
        ASSERT_FALSE(response) << chunked << ": " << describe(response);
        // The request's own body failed, not the upstream.
        EXPECT_EQ(response.error().kind, ClientError::RequestBody) << describe(response);
        EXPECT_EQ(response.error().message, "the client went away");
        // The head went out: the caller must not resend the request elsewhere.
        EXPECT_TRUE(response.error().request_sent);
        EXPECT_TRUE(log->failed);
        EXPECT_EQ(client.stats().open_connections, 0u);
        EXPECT_EQ(client.stats().idle_connections, 0u);
    }
    ASSERT_TRUE(run_until(io_, [&] { return received.size() == 2; }));
    // The upstream saw the pieces produced, then the connection end; never a body that looks
    // complete (a terminating chunk, or all eleven bytes).
    EXPECT_TRUE(received[0].closed);
    EXPECT_EQ(received[0].bytes, "3\r\none\r\n3\r\ntwo\r\n");
    EXPECT_TRUE(received[1].closed);
    EXPECT_EQ(received[1].bytes, "onetwo");

    auto next = send_now(io_, client, upload(upstream.url("/after"), nullptr));
    ASSERT_TRUE(next) << describe(next);
    EXPECT_EQ(body_of(io_, *next), "/after");
    EXPECT_EQ(client.stats().connections_created, 3u);
    EXPECT_EQ(upstream.accepted(), 3);
}

// A stream that delivers fewer or more bytes than its Content-Length would leave the upstream
// waiting or put stray bytes where the next request starts: the exchange fails, the connection
// is dropped, and never more than the promised bytes are written.
TEST_F(HttpClientUploadTest, StreamNotMatchingItsContentLengthFailsTheExchange) {
    std::vector<Peer::UntilClose> received;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        auto head = co_await peer.read_until("\r\n\r\n");
        if (!head) co_return;
        received.push_back(co_await peer.read_until_close());
    });
    HttpClient client(io_.get_executor());

    for (const char* declared : {"10", "4"}) {
        auto log = std::make_shared<SourceLog>();
        auto source = std::make_shared<PieceSource>(std::vector<std::string>{"abc", "def"}, log);
        auto request = upload(upstream.url("/files"), source);
        request.headers = {{"Content-Length", declared}};
        auto response = send_now(io_, client, request);
        ASSERT_FALSE(response) << declared << ": " << describe(response);
        EXPECT_TRUE(response.error().request_sent);
        EXPECT_EQ(client.stats().open_connections, 0u);
        EXPECT_EQ(client.stats().idle_connections, 0u);
    }
    ASSERT_TRUE(run_until(io_, [&] { return received.size() == 2; }));
    // Ten promised, six produced: all six went out, then the connection closed.
    EXPECT_TRUE(received[0].closed);
    EXPECT_EQ(received[0].bytes, "abcdef");
    // Four promised: the piece that would exceed them is never written.
    EXPECT_TRUE(received[1].closed);
    EXPECT_EQ(received[1].bytes, "abc");
}

TEST_F(HttpClientUploadTest, InvalidContentLengthForAStreamIsRefusedBeforeSending) {
    Upstream upstream(io_, [&](Peer&, int) -> asio::awaitable<void> { co_return; });
    HttpClient client(io_.get_executor());
    auto log = std::make_shared<SourceLog>();
    auto request = upload(upstream.url("/files"),
                          std::make_shared<PieceSource>(std::vector<std::string>{"abc"}, log));
    request.headers = {{"Content-Length", "3x"}};
    auto response = send_now(io_, client, request);
    ASSERT_FALSE(response);
    EXPECT_EQ(response.error().kind, ClientError::ProtocolError);
    EXPECT_FALSE(response.error().request_sent);
    EXPECT_EQ(upstream.accepted(), 0);
}

TEST_F(HttpClientUploadTest, ReadTimeoutBoundsTheWaitForTheHeadAfterTheUpload) {
    std::vector<std::string> bodies;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        auto request = co_await peer.read_request();
        if (!request) co_return;
        bodies.push_back(request->body());
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    for (bool streamed : {true, false}) {
        ClientRequest request;
        if (streamed) {
            auto log = std::make_shared<SourceLog>();
            request = upload(upstream.url("/files"),
                             std::make_shared<PieceSource>(
                                 std::vector<std::string>{"abc", pattern(30000)}, log));
        } else {
            request.url = upstream.url("/plain");
        }
        request.timeout = 10s;
        request.read_timeout = 200ms;
        auto started = Clock::now();
        auto response = send_now(io_, client, request);
        auto waited = Clock::now() - started;
        ASSERT_FALSE(response) << streamed << ": " << describe(response);
        EXPECT_EQ(response.error().kind, ClientError::Timeout) << describe(response);
        EXPECT_TRUE(response.error().request_sent);
        EXPECT_GE(waited, 180ms) << streamed;
        EXPECT_LT(waited, 3s) << streamed;
        EXPECT_EQ(client.stats().open_connections, 0u);
    }
    EXPECT_EQ(bodies, (std::vector<std::string>{"abc" + pattern(30000), ""}));
}

TEST_F(HttpClientUploadTest, ReadTimeoutBoundsEachPieceWrite) {
    Upstream upstream(io_, [](Peer& peer, int) -> asio::awaitable<void> {
        // Never reads: the client's writes stall once the socket buffers are full.
        co_await peer.pause(5s);
    });
    HttpClient client(io_.get_executor());

    auto log = std::make_shared<SourceLog>();
    auto source = std::make_shared<PieceSource>(std::vector<std::string>{pattern(64 * 1024)}, log);
    source->endless = true;
    auto request = upload(upstream.url("/files"), source);
    request.timeout = 10s;
    request.read_timeout = 200ms;
    auto started = Clock::now();
    auto response = send_now(io_, client, request);
    auto waited = Clock::now() - started;
    ASSERT_FALSE(response) << describe(response);
    EXPECT_EQ(response.error().kind, ClientError::Timeout) << describe(response);
    EXPECT_TRUE(response.error().request_sent);
    EXPECT_GE(waited, 180ms);
    EXPECT_LT(waited, 5s);
    EXPECT_GT(log->produced, 1u);
    EXPECT_EQ(client.stats().open_connections, 0u);
}

TEST_F(HttpClientUploadTest, SlowSourceIsBoundedPerPieceNotByTheWholeTimeout) {
    std::optional<UpstreamRequest> got;
    Upstream upstream(io_, [&](Peer& peer, int) -> asio::awaitable<void> {
        got = co_await peer.read_request();
        if (!got) co_return;
        co_await peer.write(ok("stored"));
        co_await peer.closed_by_client(5s);
    });
    HttpClient client(io_.get_executor());

    // ~500 ms of upload: longer than `timeout`, each piece well within read_timeout.
    auto log = std::make_shared<SourceLog>();
    auto source =
        std::make_shared<PieceSource>(std::vector<std::string>{"a", "b", "c", "d", "e"}, log);
    source->delay = 100ms;
    auto request = upload(upstream.url("/files"), source);
    request.timeout = 250ms;
    request.read_timeout = 400ms;
    auto started = Clock::now();
    auto response = send_now(io_, client, request);
    ASSERT_TRUE(response) << describe(response);
    EXPECT_GE(Clock::now() - started, 450ms);
    EXPECT_EQ(body_of(io_, *response), "stored");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->body(), "abcde");
}

// The first connection answers its first request, then reads the next one and closes without a
// word: a pooled connection the upstream dropped just as it was reused. Later connections answer
// everything. Every request read is recorded by target.
Script drop_second_request(std::vector<std::string>& seen) {
    return [&seen](Peer& peer, int index) -> asio::awaitable<void> {
        if (index > 0) {
            co_await echo_targets(peer, seen);
            co_return;
        }
        auto first = co_await peer.read_request();
        if (!first) co_return;
        seen.emplace_back(first->target());
        if (!co_await peer.write(ok("first"))) co_return;
        auto second = co_await peer.read_request();
        if (second) seen.emplace_back(second->target());
    };
}

TEST_F(HttpClientUploadTest, WithoutReplayAStaleConnectionIsAnErrorAndTheRequestIsSentOnce) {
    std::vector<std::string> seen;
    Upstream upstream(io_, drop_second_request(seen));
    HttpClient client(io_.get_executor());

    auto first = send_now(io_, client, upload(upstream.url("/1"), nullptr));
    ASSERT_TRUE(first) << describe(first);
    EXPECT_EQ(body_of(io_, *first), "first");
    EXPECT_EQ(client.stats().idle_connections, 1u);

    ClientRequest request;
    request.url = upstream.url("/2");
    request.replay_on_stale_connection = false;
    auto second = send_now(io_, client, request);
    ASSERT_FALSE(second) << describe(second);
    EXPECT_EQ(second.error().kind, ClientError::ProtocolError) << describe(second);
    EXPECT_TRUE(second.error().request_sent);
    EXPECT_EQ(seen, (std::vector<std::string>{"/1", "/2"}));
    EXPECT_EQ(upstream.accepted(), 1);
    EXPECT_EQ(client.stats().open_connections, 0u);
}

TEST_F(HttpClientUploadTest, ByDefaultAGetOnAStaleConnectionIsReplayedOnce) {
    std::vector<std::string> seen;
    Upstream upstream(io_, drop_second_request(seen));
    HttpClient client(io_.get_executor());

    auto first = send_now(io_, client, upload(upstream.url("/1"), nullptr));
    ASSERT_TRUE(first) << describe(first);
    EXPECT_EQ(body_of(io_, *first), "first");

    ClientRequest request;
    request.url = upstream.url("/2");
    auto second = send_now(io_, client, request);
    ASSERT_TRUE(second) << describe(second);
    EXPECT_EQ(body_of(io_, *second), "/2");
    EXPECT_EQ(seen, (std::vector<std::string>{"/1", "/2", "/2"}));
    EXPECT_EQ(upstream.accepted(), 2);
}

TEST_F(HttpClientUploadTest, WithoutReplayABufferedSendIsNotResentEither) {
    std::vector<std::string> seen;
    Upstream upstream(io_, drop_second_request(seen));
    HttpClient client(io_.get_executor());

    ClientRequest first;
    first.url = upstream.url("/1");
    auto answered = send_plain_now(io_, client, first);
    ASSERT_TRUE(answered) << describe(answered);
    EXPECT_EQ(answered->body, "first");

    ClientRequest request;
    request.url = upstream.url("/2");
    request.replay_on_stale_connection = false;
    auto second = send_plain_now(io_, client, request);
    ASSERT_FALSE(second) << describe(second);
    EXPECT_EQ(second.error().kind, ClientError::ProtocolError) << describe(second);
    EXPECT_TRUE(second.error().request_sent);
    EXPECT_EQ(seen, (std::vector<std::string>{"/1", "/2"}));
    EXPECT_EQ(upstream.accepted(), 1);
}

TEST_F(HttpClientUploadTest, ByDefaultABufferedGetIsReplayedOnce) {
    std::vector<std::string> seen;
    Upstream upstream(io_, drop_second_request(seen));
    HttpClient client(io_.get_executor());

    ClientRequest first;
    first.url = upstream.url("/1");
    auto answered = send_plain_now(io_, client, first);
    ASSERT_TRUE(answered) << describe(answered);

    ClientRequest request;
    request.url = upstream.url("/2");
    auto second = send_plain_now(io_, client, request);
    ASSERT_TRUE(second) << describe(second);
    EXPECT_EQ(second->body, "/2");
    EXPECT_EQ(seen, (std::vector<std::string>{"/1", "/2", "/2"}));
    EXPECT_EQ(upstream.accepted(), 2);
}

TEST_F(HttpClientUploadTest, StreamedBodyIsNeverReplayedEvenForAnIdempotentMethod) {
    std::vector<std::string> seen;
    Upstream upstream(io_, drop_second_request(seen));
    HttpClient client(io_.get_executor());

    auto first = send_now(io_, client, upload(upstream.url("/1"), nullptr));
    ASSERT_TRUE(first) << describe(first);
    EXPECT_EQ(body_of(io_, *first), "first");

    auto log = std::make_shared<SourceLog>();
    auto request = upload(upstream.url("/2"),
                          std::make_shared<PieceSource>(std::vector<std::string>{"data"}, log));
    request.method = "PUT";
    auto second = send_now(io_, client, request);
    ASSERT_FALSE(second) << describe(second);
    EXPECT_EQ(second.error().kind, ClientError::ProtocolError) << describe(second);
    EXPECT_TRUE(second.error().request_sent);
    EXPECT_TRUE(log->finished);
    EXPECT_EQ(seen, (std::vector<std::string>{"/1", "/2"}));
    EXPECT_EQ(upstream.accepted(), 1);
}

}  // namespace
}  // namespace aether::platform::http
