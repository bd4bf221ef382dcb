// The quick head parser against Beast's: every head it accepts, Beast must accept and read
// alike (method, target, version, fields, length, keep-alive, size). Heads it must decline, and
// thousands of mutated heads, where declining is always allowed and accepting wrongly is not.
#include "platform/http/quick_head.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/beast/http/basic_parser.hpp>
#include <random>
#include <string>
#include <vector>

namespace aether::platform::http::detail {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

using Fields = std::vector<std::pair<std::string, std::string>>;

// What Beast makes of a head.
template <bool isRequest>
class BeastReading final : public bhttp::basic_parser<isRequest> {
  public:
    std::string method;
    std::string target;
    int version = 0;
    int status = 0;
    Fields fields;

  private:
    void on_request_impl(bhttp::verb, beast::string_view verb, beast::string_view path, int v,
                         beast::error_code&) override {
        method.assign(verb.data(), verb.size());
        target.assign(path.data(), path.size());
        version = v;
    }
    void on_response_impl(int code, beast::string_view, int v, beast::error_code&) override {
        status = code;
        version = v;
    }
    void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                       beast::error_code&) override {
        fields.emplace_back(std::string(name.data(), name.size()),
                            std::string(value.data(), value.size()));
    }
    void on_header_impl(beast::error_code&) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>&, beast::error_code&) override {}
    std::size_t on_body_impl(beast::string_view body, beast::error_code&) override {
        return body.size();
    }
    void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body,
                                   beast::error_code&) override {
        return body.size();
    }
    void on_finish_impl(beast::error_code&) override {}
};

constexpr std::size_t kLimit = 8192;

// Beast reads the head of `bytes`; what it made of it, or why it refused.
template <bool isRequest>
std::pair<std::unique_ptr<BeastReading<isRequest>>, std::size_t> beast_reads(
    const std::string& bytes, beast::error_code& ec) {
    auto reading = std::make_unique<BeastReading<isRequest>>();
    reading->header_limit(kLimit);
    reading->eager(false);
    const std::size_t used = reading->put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (!ec && !reading->is_header_done()) ec = bhttp::error::need_more;
    return {std::move(reading), used};
}

Fields fields_of(const Request& request) {
    return Fields(request.headers.begin(), request.headers.end());
}

Fields fields_of(const HeaderLines& lines) {
    Fields fields;
    lines.each([&](std::string_view name, std::string_view value) {
        fields.emplace_back(std::string(name), std::string(value));
    });
    return fields;
}

// Checks the request head `bytes` both ways; true when the quick parser accepted it.
bool check_request(const std::string& bytes) {
    Request request;
    const auto quick = quick_request_head(bytes, kLimit, request);
    if (!quick) {
        EXPECT_TRUE(request.headers.empty()) << bytes;
        return false;
    }
    beast::error_code ec;
    auto [beast, used] = beast_reads<true>(bytes, ec);
    EXPECT_FALSE(ec) << "Beast refuses what the quick parser accepted (" << ec.message() << "):\n"
                     << bytes;
    if (ec) return true;
    EXPECT_TRUE(beast->is_done()) << bytes;
    EXPECT_EQ(used, quick->size) << bytes;
    const std::string method = request.method == Method::Other
                                   ? request.method_text
                                   : std::string(method_name(request.method));
    EXPECT_EQ(method, beast->method) << bytes;
    EXPECT_EQ(request.target, beast->target) << bytes;
    EXPECT_EQ(request.http_version, beast->version) << bytes;
    EXPECT_EQ(quick->version, beast->version) << bytes;
    EXPECT_EQ(fields_of(request), beast->fields) << bytes;
    EXPECT_EQ(quick->keep_alive, beast->keep_alive()) << bytes;
    return true;
}

bool check_response(const std::string& bytes) {
    HeaderLines lines;
    const auto quick = quick_response_head(bytes, kLimit, lines);
    if (!quick) {
        EXPECT_TRUE(lines.empty()) << bytes;
        return false;
    }
    beast::error_code ec;
    auto [beast, used] = beast_reads<false>(bytes, ec);
    EXPECT_FALSE(ec) << "Beast refuses what the quick parser accepted (" << ec.message() << "):\n"
                     << bytes;
    if (ec) return true;
    EXPECT_EQ(used, quick->size) << bytes;
    EXPECT_EQ(quick->status, beast->status) << bytes;
    EXPECT_EQ(quick->version, beast->version) << bytes;
    EXPECT_EQ(fields_of(lines), beast->fields) << bytes;
    // Found by name too, through the lines' index and past it.
    for (std::size_t i = 0; i < beast->fields.size(); ++i) {
        const auto& [name, value] = beast->fields[i];
        const bool first =
            std::none_of(beast->fields.begin(), beast->fields.begin() + i,
                         [&](const auto& field) { return iequals(field.first, name); });
        if (first) {
            EXPECT_EQ(lines.find(name), value) << name << " in " << bytes;
        }
    }
    const auto length = beast->content_length();
    EXPECT_TRUE(length && *length == quick->content_length) << bytes;
    EXPECT_FALSE(beast->chunked()) << bytes;
    EXPECT_EQ(quick->keep_alive, beast->keep_alive()) << bytes;
    EXPECT_EQ(quick->content_length == 0, beast->is_done()) << bytes;
    return true;
}

const std::vector<std::string> kRequests = {
    "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    "GET /api/v1/tasks?limit=10&x=%20 HTTP/1.1\r\nHost: a\r\nUser-Agent: wrk\r\n"
    "Accept: */*\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln\r\n\r\n",
    "DELETE /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nhost:a\r\nX-Empty:\r\nX-Spaces: \t padded value \t \r\n\r\n",
    "PROPFIND /dav HTTP/1.1\r\nConnection: close\r\nX-High: caf\xc3\xa9\r\n\r\n",
    "get /lower HTTP/1.1\r\nproxy-connection: Close\r\n\r\n",
    "HEAD / HTTP/1.0\r\n\r\n",
};

const std::vector<std::string> kResponses = {
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 09:22:28 GMT\r\n"
    "Content-Type: application/octet-stream\r\nContent-Length: 2\r\n"
    "Connection: keep-alive\r\n\r\nok",
    "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
    "HTTP/1.1 201 \r\ncontent-length:  12 \r\nX-A: a, b\tc\r\n\r\n",
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    "HTTP/1.1 200 caf\xc3\xa9\r\nContent-Length: 0\r\nX-High: \xff\r\n\r\n",
    // Lines written exactly, then one that is not (read on its own), then exact ones again.
    "HTTP/1.1 200 OK\r\nServer: s\r\nX-B: 1\r\nX-Loose:  2 \r\nX-C: 3\r\nContent-Length: 1\r\n"
    "X-D: 4\r\n\r\nx",
    // More exact lines than one run takes.
    "HTTP/1.1 200 OK\r\nX-01: a\r\nX-02: b\r\nX-03: c\r\nX-04: d\r\nX-05: e\r\nX-06: f\r\n"
    "X-07: g\r\nX-08: h\r\nX-09: i\r\nX-10: j\r\nX-11: k\r\nX-12: l\r\nX-13: m\r\nX-14: n\r\n"
    "X-15: o\r\nX-16: p\r\nX-17: q\r\nX-18: r\r\nContent-Length: 0\r\n\r\n",
};

TEST(QuickHeadTest, CommonHeadsAreAcceptedAndReadAsBeastReadsThem) {
    for (const auto& head : kRequests) EXPECT_TRUE(check_request(head)) << head;
    for (const auto& head : kResponses) EXPECT_TRUE(check_response(head)) << head;
}

TEST(QuickHeadTest, WhatBeastMustJudgeIsDeclined) {
    const std::vector<std::string> requests = {
        "GET / HTTP/1.1\r\nHost: a\r\n",                          // not yet whole
        "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",            // a body's framing
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",  //
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",        // a list
        "GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",                    // obs-fold
        "GET / HTTP/1.1\r\nX-Bare: a\nX-B: b\r\n\r\n",                    // bare LF
        "GET / HTTP/1.1\r\nX-Cr: a\rb\r\n\r\n",                           // bare CR
        "GET / HTTP/1.1\r\nX-Nul: a\0b\r\n\r\n",                          // NUL
        "GET / HTTP/1.1\r\nX-Del: a\x7f\r\n\r\n",                         // DEL
        "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",                          // space in a name
        "GET / HTTP/1.1\r\nX-A : a\r\n\r\n",                              // space before ':'
        "GET / HTTP/1.1\r\n: a\r\n\r\n",                                  // empty name
        "GET / HTTP/1.2\r\n\r\n",                                         // version
        "GET / http/1.1\r\n\r\n",                                         //
        "GET  / HTTP/1.1\r\n\r\n",                                        // empty target
        "GET /a b HTTP/1.1\r\n\r\n",                                      //
        "G(T / HTTP/1.1\r\n\r\n",                                         // method not a token
        "\r\nGET / HTTP/1.1\r\n\r\n",                                     // leading blank line
        "GET / HTTP/1.1\r\nX: " + std::string(kLimit, 'v') + "\r\n\r\n",  // over the limit
    };
    for (const auto& head : requests) {
        Request request;
        EXPECT_FALSE(quick_request_head(head, kLimit, request)) << head;
        EXPECT_TRUE(request.headers.empty()) << head;
    }
    const std::vector<std::string> responses = {
        "HTTP/1.1 200 OK\r\n\r\n",                                 // until the end
        "HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n\r\n",      // no body whatever
        "HTTP/1.1 204 No Content\r\nContent-Length: 1\r\n\r\n",    //
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 1\r\n\r\n",  //
        "HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n",            //
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 20 OK\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: a\r\n\tb\r\n\r\n",
    };
    for (const auto& head : responses) {
        HeaderLines lines;
        EXPECT_FALSE(quick_response_head(head, kLimit, lines)) << head;
        EXPECT_TRUE(lines.empty()) << head;
    }
}

// Random edits of the common heads, with the bytes parsers trip on. Whatever the quick parser
// accepts of them, Beast must read alike; enough are accepted for that to mean something.
TEST(QuickHeadTest, MutatedHeadsAreEitherDeclinedOrReadAsBeastReadsThem) {
    const std::string alphabet = std::string("\r\n \t:,;\"/()=@\x7f\x80\xff") + '\0' + "aZ09-_";
    std::mt19937 random(20261129);
    auto pick = [&](std::size_t bound) {
        return std::uniform_int_distribution<std::size_t>(0, bound - 1)(random);
    };
    auto mutate = [&](std::string head) {
        const std::size_t edits = 1 + pick(3);
        for (std::size_t i = 0; i < edits && !head.empty(); ++i) {
            const std::size_t at = pick(head.size());
            const char byte = alphabet[pick(alphabet.size())];
            switch (pick(3)) {
                case 0:
                    head[at] = byte;
                    break;
                case 1:
                    head.insert(head.begin() + static_cast<std::ptrdiff_t>(at), byte);
                    break;
                default:
                    head.erase(at, 1);
                    break;
            }
        }
        return head;
    };
    int requests_accepted = 0;
    int responses_accepted = 0;
    for (int round = 0; round < 20000; ++round) {
        if (check_request(mutate(kRequests[pick(kRequests.size())]))) ++requests_accepted;
        if (check_response(mutate(kResponses[pick(kResponses.size())]))) ++responses_accepted;
        if (::testing::Test::HasFailure()) break;
    }
    EXPECT_GT(requests_accepted, 2000);
    EXPECT_GT(responses_accepted, 2000);
}

}  // namespace
}  // namespace aether::platform::http::detail
