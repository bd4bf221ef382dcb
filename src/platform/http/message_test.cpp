// Unit tests for the request/response helpers: methods, headers, url_decode and query parsing.
#include "platform/http/message.h"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>

namespace aether::platform::http {
namespace {

// A body source with nothing in it, for a request that had one.
class NoBody final : public BodySource {
  public:
    boost::asio::awaitable<Expected<std::string_view, std::string>> next() override {
        co_return std::string_view();
    }
};

Request with_target(std::string target) {
    Request request;
    request.target = std::move(target);
    return request;
}

TEST(MethodTest, ParsesKnownMethodsExactly) {
    EXPECT_EQ(parse_method("GET"), Method::Get);
    EXPECT_EQ(parse_method("HEAD"), Method::Head);
    EXPECT_EQ(parse_method("POST"), Method::Post);
    EXPECT_EQ(parse_method("PUT"), Method::Put);
    EXPECT_EQ(parse_method("PATCH"), Method::Patch);
    EXPECT_EQ(parse_method("DELETE"), Method::Delete);
    EXPECT_EQ(parse_method("OPTIONS"), Method::Options);
}

TEST(MethodTest, MethodNamesAreCaseSensitiveAndUnknownIsOther) {
    EXPECT_EQ(parse_method("get"), Method::Other);
    EXPECT_EQ(parse_method("PROPFIND"), Method::Other);
    EXPECT_EQ(parse_method(""), Method::Other);
    EXPECT_EQ(method_name(Method::Patch), "PATCH");
    EXPECT_EQ(method_name(Method::Other), "OTHER");
    for (auto method : {Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch,
                        Method::Delete, Method::Options}) {
        EXPECT_EQ(parse_method(method_name(method)), method);
    }
}

TEST(HeaderTest, LookupIsCaseInsensitiveAndReturnsFirstMatch) {
    HeaderList headers{
        {"Content-Type", "application/json"}, {"X-Thing", "one"}, {"x-thing", "two"}};
    EXPECT_EQ(find_header(headers, "content-type"), "application/json");
    EXPECT_EQ(find_header(headers, "CONTENT-TYPE"), "application/json");
    EXPECT_EQ(find_header(headers, "X-THING"), "one");
    EXPECT_TRUE(find_header(headers, "Missing").empty());
    EXPECT_TRUE(find_header(headers, "Content-Typ").empty());
    EXPECT_TRUE(iequals("AbC", "aBc"));
    EXPECT_FALSE(iequals("abc", "abcd"));
}

TEST(RequestTest, ClearLeavesNothingOfTheRequestButASmallBuffersCapacity) {
    Request request;
    request.method = Method::Other;
    request.method_text = "PURGE";
    request.target = "/a/long/enough/target?with=a&query=string";
    request.headers = {{"Host", "api.example.com"}, {"X-Thing", "one"}};
    ASSERT_TRUE(request.header_lines.append("X-User-ID", "usr_1"));
    request.body = std::string(100 * 1024, 'b');
    request.remote_address = "203.0.113.7";
    request.keep_alive = false;
    request.http_version = 10;
    request.path_params = {{"id", "7"}};
    request.context.request_id = "req-1";
    request.context.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    request.context.user_id = "usr_1";
    request.context.route = "/a/{id}";
    request.context.route_owner = std::make_shared<int>(1);
    request.context.started = std::chrono::steady_clock::now();
    request.context.cors_by_pipeline = false;
    request.body_stream = std::make_shared<NoBody>();
    const std::size_t target_capacity = request.target.capacity();

    request.clear();
    EXPECT_EQ(request.method, Method::Get);
    EXPECT_EQ(request.method_text, "");
    EXPECT_EQ(request.target, "");
    EXPECT_EQ(request.target.capacity(), target_capacity);
    EXPECT_TRUE(request.headers.empty());
    EXPECT_TRUE(request.header_lines.empty());
    EXPECT_EQ(request.header("X-User-ID"), "");
    EXPECT_EQ(request.body, "");
    EXPECT_LT(request.body.capacity(), 100u * 1024);
    EXPECT_EQ(request.remote_address, "");
    EXPECT_TRUE(request.keep_alive);
    EXPECT_EQ(request.http_version, 11);
    EXPECT_TRUE(request.path_params.empty());
    EXPECT_EQ(request.context.request_id, "");
    EXPECT_EQ(request.context.traceparent, "");
    EXPECT_EQ(request.context.user_id, "");
    EXPECT_EQ(request.context.route, "");
    EXPECT_EQ(request.context.route_owner, nullptr);
    EXPECT_EQ(request.context.started, std::chrono::steady_clock::time_point{});
    EXPECT_TRUE(request.context.cors_by_pipeline);
    EXPECT_EQ(request.body_stream, nullptr);
}

TEST(HeaderTest, RequestLookupFindsAddedLinesAfterTheListedHeaders) {
    Request request;
    request.headers = {{"Host", "api.example.com"}, {"X-User-ID", "listed"}};
    EXPECT_TRUE(request.header("X-User-Roles").empty());
    ASSERT_TRUE(request.header_lines.append("X-User-ID", "added"));
    ASSERT_TRUE(request.header_lines.append("X-User-Roles", "admin,user"));
    EXPECT_EQ(request.header("x-user-roles"), "admin,user");
    EXPECT_EQ(request.header("X-User-ID"), "listed");
    EXPECT_EQ(request.header("host"), "api.example.com");
    EXPECT_TRUE(request.header("X-User-Permissions").empty());
}

TEST(HeaderTest, ResponseSetHeaderReplacesCaseInsensitively) {
    Response response;
    response.set_header("Vary", "Origin");
    response.set_header("vary", "Accept");
    EXPECT_EQ(response.header_lines.size(), 1u);
    EXPECT_EQ(response.header("VARY"), "Accept");
    response.set_header("ETag", "\"1\"");
    EXPECT_EQ(response.header_lines.text(), "vary: Accept\r\nETag: \"1\"\r\n");
}

TEST(HeaderTest, ResponseSetHeaderReplacesListedHeadersAndLines) {
    Response response;
    response.headers = {{"X-Request-ID", "upstream"}, {"Cache-Control", "no-store"}};
    response.header_lines.append("x-request-id", "also-upstream");
    response.header_lines.append("Server", "up");
    response.set_header("X-Request-ID", "ours");
    ASSERT_EQ(response.headers.size(), 1u);
    EXPECT_EQ(response.headers[0].first, "Cache-Control");
    EXPECT_EQ(response.header_lines.text(), "Server: up\r\nX-Request-ID: ours\r\n");
    EXPECT_EQ(response.header("x-request-id"), "ours");
    EXPECT_EQ(response.header("cache-control"), "no-store");
}

TEST(HeaderTest, ResponseSetHeaderWithALineBreakSetsNothingAndRemovesTheOld) {
    Response response;
    response.set_header("X-A", "1");
    response.set_header("X-A", "2\r\nX-Injected: yes");
    response.set_header("X-B\n", "3");
    EXPECT_TRUE(response.header_lines.empty());
    EXPECT_EQ(response.header("X-A"), "");
    EXPECT_EQ(response.header("X-Injected"), "");
}

// header() returns a view into the lines, which set_header rewrites: removing "A" moves "B"'s
// line to the front, and the new line is written where "B"'s value was.
TEST(HeaderTest, ResponseSetHeaderTakesAValueReadFromItsOwnLines) {
    Response response;
    response.set_header("A", std::string(30, 'a'));
    response.set_header("B", std::string(30, 'b'));
    response.set_header("A", response.header("B"));
    EXPECT_EQ(response.header("A"), std::string(30, 'b'));
    EXPECT_EQ(response.header("B"), std::string(30, 'b'));
    response.header_lines.append(response.header_lines);
    EXPECT_EQ(response.header_lines.size(), 4u);
    const std::string line_b = "B: " + std::string(30, 'b') + "\r\n";
    const std::string line_a = "A: " + std::string(30, 'b') + "\r\n";
    EXPECT_EQ(response.header_lines.text(), line_b + line_a + line_b + line_a);
}

TEST(HeaderTest, ResponseSetHeadersReplacesEachNameOnce) {
    Response response;
    response.headers = {{"X-RateLimit-Limit", "1"}};
    response.header_lines.append("x-ratelimit-remaining", "9");
    response.header_lines.append("Server", "up");
    HeaderLines plugin;
    plugin.append("X-RateLimit-Limit", "60");
    plugin.append("X-RateLimit-Remaining", "59");
    response.set_headers(plugin);
    EXPECT_TRUE(response.headers.empty());
    EXPECT_EQ(response.header_lines.text(),
              "Server: up\r\nX-RateLimit-Limit: 60\r\nX-RateLimit-Remaining: 59\r\n");
    EXPECT_EQ(response.header_lines.size(), 3u);
}

TEST(HeaderTest, ResponseSetHeadersKeepsOtherNamesOfTheSameLength) {
    Response response;
    const std::string long_name(17 + 64, 'x');  // a length the same modulo 64
    response.header_lines.append("X-RateLimit-Limix", "kept");
    response.header_lines.append(long_name, "kept too");
    response.header_lines.append("x-ratelimit-limit", "old");
    HeaderLines plugin;
    plugin.append("X-RateLimit-Limit", "60");
    response.set_headers(plugin);
    EXPECT_EQ(response.header_lines.text(), "X-RateLimit-Limix: kept\r\n" + long_name +
                                                ": kept too\r\nX-RateLimit-Limit: 60\r\n");
    EXPECT_EQ(response.header("X-RateLimit-Limit"), "60");
}

TEST(HeaderLinesTest, RefusesWhatWouldNotSplitBack) {
    HeaderLines lines;
    EXPECT_FALSE(lines.append("", "v"));
    EXPECT_FALSE(lines.append("X:Y", "v"));
    EXPECT_FALSE(lines.append("X-A\r", "v"));
    EXPECT_FALSE(lines.append("X-A", "v\n"));
    EXPECT_FALSE(lines.append("X-A", "v\rX-B: w"));
    EXPECT_TRUE(lines.empty());
    EXPECT_EQ(lines.text(), "");
    EXPECT_TRUE(lines.append("X-A", "a: b"));  // a colon in a value is fine
    EXPECT_TRUE(lines.append("X-Empty", ""));
    EXPECT_EQ(lines.text(), "X-A: a: b\r\nX-Empty: \r\n");
    EXPECT_EQ(lines.find("x-a"), "a: b");
    EXPECT_TRUE(lines.contains("X-EMPTY"));
    EXPECT_EQ(lines.find("X-Empty"), "");
    EXPECT_FALSE(lines.contains("X-Missing"));
}

TEST(HeaderLinesTest, EraseAndKeepIfKeepTheOrderOfWhatStays) {
    HeaderLines lines;
    lines.append("A", "1");
    lines.append("b", "2");
    lines.append("B", "3");
    lines.append("C", "4");
    EXPECT_EQ(lines.erase("B"), 2u);
    EXPECT_EQ(lines.erase("B"), 0u);
    EXPECT_EQ(lines.text(), "A: 1\r\nC: 4\r\n");
    lines.append("D", "5");
    lines.keep_if([](std::string_view name, std::string_view) { return name != "A"; });
    EXPECT_EQ(lines.text(), "C: 4\r\nD: 5\r\n");
    std::vector<std::string> seen;
    lines.each([&](std::string_view name, std::string_view value) {
        seen.push_back(std::string(name) + "=" + std::string(value));
    });
    EXPECT_EQ(seen, (std::vector<std::string>{"C=4", "D=5"}));
    EXPECT_EQ(lines.size(), 2u);
}

// The first lines are found through an index; later ones, and lines too long for it, by
// reading the text. Every operation must see all of them alike.
TEST(HeaderLinesTest, LinesPastTheIndexAndLongLinesAreFoundToo) {
    HeaderLines lines;
    const std::string long_value(1100 * 1024, 'v');  // ends past what the index can hold
    lines.append("Long", long_value);
    for (int i = 0; i < 40; ++i) lines.append("X-" + std::to_string(i), std::to_string(i * 10));
    EXPECT_EQ(lines.size(), 41u);
    EXPECT_EQ(lines.find("long"), long_value);
    EXPECT_EQ(lines.find("x-39"), "390");
    EXPECT_EQ(lines.erase("Long"), 1u);
    // Without the long line in front, the next lines fit the index again.
    EXPECT_EQ(lines.find("X-0"), "0");
    EXPECT_EQ(lines.find("X-30"), "300");
    lines.keep_if([](std::string_view name, std::string_view) { return name.size() == 4; });
    EXPECT_EQ(lines.size(), 30u);  // X-10 … X-39
    EXPECT_EQ(lines.find("X-10"), "100");
    EXPECT_EQ(lines.find("X-39"), "390");
    EXPECT_EQ(lines.find("X-9"), "");
    std::size_t visited = 0;
    lines.each([&](std::string_view name, std::string_view value) {
        EXPECT_EQ(value, std::string(name.substr(2)) + "0");
        ++visited;
    });
    EXPECT_EQ(visited, 30u);
    HeaderLines copy;
    copy.append(lines);
    EXPECT_EQ(copy.text(), lines.text());
    EXPECT_EQ(copy.find("X-25"), "250");
}

TEST(HeaderLinesTest, AListAppendedAfterLinesOrToItselfKeepsEveryLineFindable) {
    HeaderLines lines;
    lines.append("A", "1");
    HeaderLines more;
    more.append("Bb", "2");
    more.append("Ccc", "3");
    lines.append(more);
    EXPECT_EQ(lines.text(), "A: 1\r\nBb: 2\r\nCcc: 3\r\n");
    EXPECT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines.find("ccc"), "3");
    EXPECT_EQ(lines.find("bb"), "2");
    lines.append(lines);
    EXPECT_EQ(lines.size(), 6u);
    EXPECT_EQ(lines.text(), "A: 1\r\nBb: 2\r\nCcc: 3\r\nA: 1\r\nBb: 2\r\nCcc: 3\r\n");
    EXPECT_EQ(lines.erase("Bb"), 2u);
    EXPECT_EQ(lines.text(), "A: 1\r\nCcc: 3\r\nA: 1\r\nCcc: 3\r\n");
    EXPECT_EQ(lines.find("Ccc"), "3");
    EXPECT_EQ(lines.find("A"), "1");
}

TEST(HeaderLinesTest, ARunOfParsedLinesIsCopiedAtOnceAndEachLineIndexed) {
    HeaderLines lines;
    lines.append("A", "1");
    const std::string run = "Bb: 2\r\nCcc: 3\r\nDddd: \r\n";
    const std::array<HeaderLines::LineShape, 3> shapes{{{7, 2}, {15, 3}, {23, 4}}};
    lines.append_parsed_lines(run, shapes);
    EXPECT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines.text(), "A: 1\r\nBb: 2\r\nCcc: 3\r\nDddd: \r\n");
    EXPECT_EQ(lines.find("ccc"), "3");
    EXPECT_TRUE(lines.contains("dddd"));
    std::vector<std::string> seen;
    lines.each([&](std::string_view name, std::string_view value) {
        seen.push_back(std::string(name) + "=" + std::string(value));
    });
    EXPECT_EQ(seen, (std::vector<std::string>{"A=1", "Bb=2", "Ccc=3", "Dddd="}));
    // Past the index's six lines, the rest are read from the text.
    lines.append_parsed_lines("E: 5\r\nF: 6\r\nG: 7\r\n",
                              std::array<HeaderLines::LineShape, 3>{{{6, 1}, {12, 1}, {18, 1}}});
    EXPECT_EQ(lines.size(), 7u);
    EXPECT_EQ(lines.find("g"), "7");
    EXPECT_EQ(lines.erase("Bb"), 1u);
    EXPECT_EQ(lines.find("F"), "6");
    EXPECT_EQ(lines.find("A"), "1");
    lines.append_parsed_lines("", {});
    EXPECT_EQ(lines.size(), 6u);
}

TEST(HeaderLinesTest, AMovedFromListIsEmptyAndUsable) {
    HeaderLines lines;
    lines.append("A", "1");
    HeaderLines taken = std::move(lines);
    EXPECT_EQ(taken.find("A"), "1");
    EXPECT_TRUE(lines.empty());  // NOLINT(bugprone-use-after-move): the state is specified
    lines.append("B", "2");
    EXPECT_EQ(lines.text(), "B: 2\r\n");
    EXPECT_EQ(lines.find("B"), "2");
    EXPECT_EQ(lines.find("A"), "");
    HeaderLines assigned;
    assigned = std::move(lines);
    EXPECT_EQ(assigned.find("B"), "2");
    EXPECT_EQ(lines.size(), 0u);  // NOLINT(bugprone-use-after-move)
}

TEST(ResponseTest, FactoriesSetStatusBodyAndType) {
    auto json = Response::json(201, "{}");
    EXPECT_EQ(json.status, 201);
    EXPECT_EQ(json.body, "{}");
    EXPECT_EQ(json.content_type, "application/json");
    auto text = Response::text(200, "ok", "text/csv");
    EXPECT_EQ(text.content_type, "text/csv");
    EXPECT_EQ(Response::text(200, "ok").content_type, "text/plain");
}

TEST(UrlDecodeTest, DecodesPercentEscapesAndPlus) {
    EXPECT_EQ(url_decode("a%20b"), "a b");
    EXPECT_EQ(url_decode("a+b"), "a b");
    EXPECT_EQ(url_decode("%2B"), "+");
    EXPECT_EQ(url_decode("%e2%82%AC"), "\xe2\x82\xac");
    EXPECT_EQ(url_decode("%2F%3f%26"), "/?&");
    EXPECT_EQ(url_decode(""), "");
    EXPECT_EQ(url_decode("plain"), "plain");
}

TEST(UrlDecodeTest, DecodesAnEscapeAtTheVeryEnd) {
    EXPECT_EQ(url_decode("%41"), "A");
    EXPECT_EQ(url_decode("ab%41"), "abA");
}

TEST(UrlDecodeTest, RejectsMalformedEscapes) {
    EXPECT_EQ(url_decode("%"), std::nullopt);
    EXPECT_EQ(url_decode("%4"), std::nullopt);
    EXPECT_EQ(url_decode("abc%"), std::nullopt);
    EXPECT_EQ(url_decode("%zz"), std::nullopt);
    EXPECT_EQ(url_decode("%4g"), std::nullopt);
    EXPECT_EQ(url_decode("%%41"), std::nullopt);
}

TEST(UrlDecodeTest, KeepsNulFromEscape) {
    auto decoded = url_decode("a%00b");
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->size(), 3u);
    EXPECT_EQ((*decoded)[1], '\0');
}

TEST(RequestTest, PathAndRawQuerySplitAtFirstQuestionMark) {
    auto request = with_target("/items/7?x=1&y=?2");
    EXPECT_EQ(request.path(), "/items/7");
    EXPECT_EQ(request.raw_query(), "x=1&y=?2");
    auto bare = with_target("/items");
    EXPECT_EQ(bare.path(), "/items");
    EXPECT_TRUE(bare.raw_query().empty());
    auto empty_query = with_target("/items?");
    EXPECT_EQ(empty_query.path(), "/items");
    EXPECT_TRUE(empty_query.raw_query().empty());
}

TEST(RequestTest, QueryDistinguishesAbsentFromEmpty) {
    auto request = with_target("/s?flag&empty=&value=3");
    EXPECT_EQ(request.query("flag"), std::string{});
    EXPECT_EQ(request.query("empty"), std::string{});
    EXPECT_EQ(request.query("value"), "3");
    EXPECT_EQ(request.query("missing"), std::nullopt);
    EXPECT_EQ(with_target("/s").query("value"), std::nullopt);
}

TEST(RequestTest, QueryDecodesNamesAndValues) {
    auto request = with_target("/s?first%20name=Ada+Lovelace&q=a%26b%3Dc&sp%61ce=x");
    EXPECT_EQ(request.query("first name"), "Ada Lovelace");
    EXPECT_EQ(request.query("q"), "a&b=c");
    EXPECT_EQ(request.query("space"), "x");
    EXPECT_EQ(request.query("first%20name"), std::nullopt);
}

TEST(RequestTest, QueryTakesTheFirstOccurrenceAndSkipsEmptyPairs) {
    auto request = with_target("/s?&&a=1&a=2&&b=3");
    EXPECT_EQ(request.query("a"), "1");
    EXPECT_EQ(request.query("b"), "3");
}

TEST(RequestTest, QueryValueWithOnlyTheFirstEqualsAsSeparator) {
    EXPECT_EQ(with_target("/s?k=a=b").query("k"), "a=b");
}

TEST(RequestTest, MalformedValueIsAbsentAndMalformedNameIsSkipped) {
    EXPECT_EQ(with_target("/s?k=%zz").query("k"), std::nullopt);
    EXPECT_EQ(with_target("/s?%zz=1&k=2").query("k"), "2");
}

TEST(RequestTest, HeaderAndParamLookups) {
    Request request;
    request.headers = {{"X-Request-ID", "abc"}};
    request.path_params = {{"id", "42"}, {"name", "a b"}};
    EXPECT_EQ(request.header("x-request-id"), "abc");
    EXPECT_EQ(request.param("id"), "42");
    EXPECT_EQ(request.param("name"), "a b");
    EXPECT_TRUE(request.param("ID").empty());
    EXPECT_TRUE(request.param("missing").empty());
}

}  // namespace
}  // namespace aether::platform::http
