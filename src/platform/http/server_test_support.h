// Test support for the HTTP server's tests: a Server with a Pipeline on its own thread, a raw
// loopback client whose reads give up after a deadline, and request builders.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "platform/http/pipeline.h"
#include "platform/http/router.h"
#include "platform/http/server.h"

namespace aether::platform::http::test_support {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using HttpResponse = bhttp::response<bhttp::string_body>;

inline PipelineOptions quiet_pipeline(std::string service) {
    PipelineOptions options;
    options.service = std::move(service);
    options.access_log = false;
    return options;
}

// A Server with a Pipeline over the routes a test adds, run on its own io_context and thread.
class TestServer {
  public:
    explicit TestServer(const std::function<void(Router&)>& add_routes, ServerOptions options = {},
                        std::string service = "utest") {
        auto router = std::make_shared<Router>();
        add_routes(*router);
        pipeline_ =
            std::make_unique<Pipeline>(quiet_pipeline(std::move(service)), std::move(router));
        Pipeline* pipeline = pipeline_.get();
        server_ = std::make_unique<Server>(
            io_, options, [pipeline](Request& request) { return pipeline->handle(request); },
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
    // To run something on the server's thread (where a handler's body stream lives).
    asio::io_context& io() { return io_; }

  private:
    std::unique_ptr<Pipeline> pipeline_;
    asio::io_context io_;
    std::unique_ptr<Server> server_;
    std::thread thread_;
    std::uint16_t port_ = 0;
};

// Polls a condition another thread makes true (a counter the server updates after the last byte
// the client can observe); bounded so a failing test does not hang.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// A blocking-style client reading raw bytes (to see the framing) or parsed responses; every read
// gives up after a deadline instead of hanging the test.
class RawClient {
  public:
    explicit RawClient(std::uint16_t port) {
        socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    }

    bool send(std::string_view data) {
        beast::error_code ec;
        asio::write(socket_, asio::buffer(data.data(), data.size()), ec);
        return !ec;
    }

    void shutdown_send() {
        beast::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
    }

    void close() {
        beast::error_code ignored;
        socket_.close(ignored);
    }

    // Everything up to and including `marker`, taken from the received bytes; nullopt if the
    // marker has not arrived within the limit or the connection ended first.
    std::optional<std::string> read_until(std::string_view marker,
                                          std::chrono::milliseconds limit = 5s) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            std::string_view have = buffered();
            auto at = have.find(marker);
            if (at != std::string_view::npos) return take(at + marker.size());
            if (!fill(deadline)) return std::nullopt;
        }
    }

    // Exactly `count` bytes, or nullopt.
    std::optional<std::string> read_exactly(std::size_t count,
                                            std::chrono::milliseconds limit = 5s) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (buffer_.size() < count) {
            if (!fill(deadline)) return std::nullopt;
        }
        return take(count);
    }

    struct UntilClose {
        std::string bytes;
        bool closed = false;  // the server closed the connection within the limit
    };

    // Every byte until the server closes the connection.
    UntilClose read_until_close(std::chrono::milliseconds limit = 5s) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        UntilClose out;
        while (fill(deadline)) {
        }
        out.closed = eof_;
        out.bytes = take(buffer_.size());
        return out;
    }

    // One parsed response (chunked bodies decoded). `head`: it answers a HEAD request.
    std::optional<HttpResponse> read(std::chrono::milliseconds limit = 5s, bool head = false) {
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(16 * 1024 * 1024);
        parser.skip(head);
        beast::error_code result;
        bool done = false;
        bhttp::async_read(socket_, buffer_, parser, [&](beast::error_code ec, std::size_t) {
            result = ec;
            done = true;
        });
        run(limit);
        if (!done) {
            ADD_FAILURE() << "no response within " << limit.count() << " ms";
            return std::nullopt;
        }
        if (result) return std::nullopt;
        return parser.release();
    }

    std::optional<HttpResponse> exchange(std::string_view request) {
        if (!send(request)) return std::nullopt;
        return read();
    }

    std::size_t pending_bytes() const { return buffer_.size(); }

  private:
    std::string_view buffered() const {
        return {static_cast<const char*>(buffer_.data().data()), buffer_.size()};
    }

    std::string take(std::size_t count) {
        std::string out(buffered().substr(0, count));
        buffer_.consume(count);
        return out;
    }

    // Reads some more bytes; false on end of stream, error or the deadline.
    bool fill(std::chrono::steady_clock::time_point deadline) {
        if (eof_) return false;
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        beast::error_code result;
        std::size_t received = 0;
        bool done = false;
        socket_.async_read_some(buffer_.prepare(16 * 1024),
                                [&](beast::error_code ec, std::size_t n) {
                                    result = ec;
                                    received = n;
                                    done = true;
                                });
        run(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
        if (!done) return false;
        buffer_.commit(received);
        if (result == asio::error::eof || result == asio::error::connection_reset) eof_ = true;
        return !result;
    }

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
    bool eof_ = false;
};

inline std::string get(std::string_view target, std::string_view extra_headers = "") {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
           std::string(extra_headers) + "\r\n";
}

// One chunk in its wire form.
inline std::string chunk(std::string_view bytes) {
    char size_line[24];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", bytes.size());
    return size_line + std::string(bytes) + "\r\n";
}

}  // namespace aether::platform::http::test_support
