// Unit tests for the request/response helpers: methods, headers, url_decode and query parsing.
#include "platform/http/message.h"

#include <gtest/gtest.h>

namespace aether::platform::http {
namespace {

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

TEST(HeaderTest, ResponseSetHeaderReplacesCaseInsensitively) {
    Response response;
    response.set_header("Vary", "Origin");
    response.set_header("vary", "Accept");
    ASSERT_EQ(response.headers.size(), 1u);
    EXPECT_EQ(response.header("VARY"), "Accept");
    response.set_header("ETag", "\"1\"");
    EXPECT_EQ(response.headers.size(), 2u);
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
