// Tests for bounded body parsing: limits, strictness, byte offsets, and parse_as error mapping.
#include "platform/json/body.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <optional>
#include <string>
#include <vector>

namespace aether::platform::json {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

struct Login {
    std::string email;
    std::string password;
    std::optional<bool> remember;
};
BOOST_DESCRIBE_STRUCT(Login, (), (email, password, remember))

struct Tagged {
    std::string name;
    boost::json::value metadata;
    boost::json::object labels;
};
BOOST_DESCRIBE_STRUCT(Tagged, (), (name, metadata, labels))

// parse_as parses into a scratch arena: what it returns must own its memory, also when the
// document outgrows the arena's stack buffer.
TEST(ParseAs, DecodedJsonMembersOutliveTheParse) {
    for (const std::size_t filler : {8u, 64u * 1024u}) {
        const std::string long_text(filler, 'x');
        const std::string body = R"({"name":"n","metadata":{"list":[1,2,")" + long_text +
                                 R"("]},"labels":{"k":")" + long_text + R"("}})";
        auto decoded = parse_as<Tagged>(body);
        ASSERT_TRUE(decoded.has_value());
        EXPECT_EQ(decoded->metadata.storage(), boost::json::storage_ptr());
        EXPECT_EQ(decoded->labels.storage(), boost::json::storage_ptr());
        const Tagged copy = *decoded;
        decoded = Tagged{};  // nothing may still point into the parse
        EXPECT_EQ(copy.metadata.at("list").at(2).as_string(), long_text);
        EXPECT_EQ(copy.labels.at("k").as_string(), long_text);
    }
}

std::string error_of(std::string_view body, const ParseOptions& options = {}) {
    auto result = parse_body(body, options);
    EXPECT_FALSE(result.has_value()) << body;
    if (result) return {};
    EXPECT_EQ(result.error().field, "body");
    return result.error().message;
}

TEST(ParseBody, ParsesStrictJson) {
    auto value = parse_body(R"( {"a":[1,-2,3.5,true,null,"x"],"b":{}} )");
    ASSERT_TRUE(value.has_value());
    EXPECT_EQ(boost::json::serialize(*value), R"({"a":[1,-2,3.5E0,true,null,"x"],"b":{}})");
    auto scalar = parse_body("42");
    ASSERT_TRUE(scalar.has_value());
    EXPECT_EQ(scalar->as_int64(), 42);
}

TEST(ParseBody, ReportsTruncatedInputWithOffset) {
    EXPECT_EQ(error_of(R"({"a":1)"), "invalid JSON at byte 6: unexpected end of input");
    EXPECT_EQ(error_of(R"({"a":"unterminated)"),
              "invalid JSON at byte 18: unexpected end of input");
    EXPECT_EQ(error_of("["), "invalid JSON at byte 1: unexpected end of input");
    const std::string full = R"({"title":"x","items":[1,2,{"k":[true,false]}]})";
    for (std::size_t cut = 1; cut < full.size(); ++cut) {
        auto result = parse_body(full.substr(0, cut));
        ASSERT_FALSE(result.has_value()) << cut;
        EXPECT_THAT(result.error().message, HasSubstr("invalid JSON at byte "));
    }
}

TEST(ParseBody, RejectsEmptyTrailingDataAndExtensions) {
    EXPECT_EQ(error_of(""), "must not be empty");
    EXPECT_EQ(error_of(" \r\n\t"), "must not be empty");
    EXPECT_EQ(error_of("{} {}"), "invalid JSON at byte 3: unexpected data after the JSON value");
    EXPECT_THAT(error_of("[1,]"), HasSubstr("invalid JSON at byte 3"));
    EXPECT_THAT(error_of("{\"a\":1 /* c */}"), HasSubstr("invalid JSON at byte 7"));
    EXPECT_THAT(error_of("{'a':1}"), HasSubstr("invalid JSON at byte 1"));
    EXPECT_THAT(error_of("NaN"), HasSubstr("invalid JSON at byte 0"));
}

TEST(ParseBody, NeverEchoesTheInput) {
    const std::string secret = "hunter2-SECRET";
    for (const std::string& body : {"{\"password\":\"" + secret + "\"", "{\"" + secret + "\" 1}",
                                    secret, "[\"" + secret + "\xff\"]"}) {
        auto result = parse_body(body);
        ASSERT_FALSE(result.has_value());
        EXPECT_THAT(result.error().message, ::testing::Not(HasSubstr("hunter2")));
    }
}

TEST(ParseBody, DeepNestingIsACleanError) {
    EXPECT_EQ(error_of(std::string(10000, '[') + std::string(10000, ']')),
              "invalid JSON at byte 32: nested deeper than 32 levels");
    std::string objects;
    for (int i = 0; i < 10000; ++i) objects += "{\"a\":";
    EXPECT_THAT(error_of(objects), HasSubstr("nested deeper than 32 levels"));

    const std::string depth32 = std::string(32, '[') + std::string(32, ']');
    EXPECT_TRUE(parse_body(depth32).has_value());
    EXPECT_EQ(error_of(depth32, ParseOptions{4, false}),
              "invalid JSON at byte 4: nested deeper than 4 levels");
    // A huge configured depth is clamped, so even an operator mistake cannot overflow the stack.
    EXPECT_THAT(error_of(std::string(100000, '['), ParseOptions{1000000, false}),
                HasSubstr("nested deeper than 512 levels"));
}

TEST(ParseBody, HugeNumbers) {
    EXPECT_EQ(error_of("[1e999]"), "invalid JSON at byte 6: number out of range");
    EXPECT_THAT(error_of("-1e400"), HasSubstr("number out of range"));
    auto big = parse_body("123456789012345678901234567890");
    ASSERT_TRUE(big.has_value());
    EXPECT_TRUE(big->is_double());
    auto max = parse_body("18446744073709551615");
    ASSERT_TRUE(max.has_value());
    EXPECT_EQ(max->as_uint64(), 18446744073709551615ULL);
    auto tiny = parse_body("1e-400");
    ASSERT_TRUE(tiny.has_value());
    EXPECT_EQ(tiny->as_double(), 0.0);
    // Long digit strings become doubles, until they no longer fit one.
    EXPECT_TRUE(parse_body(std::string(300, '9')).has_value());
    EXPECT_EQ(error_of(std::string(5000, '9')), "invalid JSON at byte 5000: number out of range");
    EXPECT_TRUE(parse_body("0." + std::string(5000, '1')).has_value());
}

TEST(ParseBody, InvalidUtf8IsRejectedWithOffset) {
    EXPECT_EQ(error_of("{\"a\":\"\xff\"}"), "invalid UTF-8 at byte 6");
    EXPECT_EQ(error_of("{\"\xc3\x28\":1}"), "invalid UTF-8 at byte 2");
    EXPECT_EQ(error_of("\"\xed\xa0\x80\""), "invalid UTF-8 at byte 1");  // UTF-16 surrogate
    EXPECT_EQ(error_of("\"\xc0\xaf\""), "invalid UTF-8 at byte 1");      // overlong '/'
    EXPECT_EQ(error_of("\"abc\xe2\x82\""), "invalid UTF-8 at byte 4");   // truncated sequence
    // Lone surrogate escapes would decode to invalid UTF-8, so they are refused too.
    EXPECT_THAT(error_of(R"("\ud800")"), HasSubstr("invalid JSON at byte"));
    auto ok = parse_body("\"\xe2\x82\xac \\ud83d\\ude00\"");
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(std::string(ok->as_string()), "\xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(ParseBody, NulBytes) {
    auto escaped = parse_body(R"({"a":"x\u0000y"})");
    ASSERT_TRUE(escaped.has_value());
    const auto& text = escaped->as_object().at("a").as_string();
    EXPECT_EQ(text.size(), 3u);
    EXPECT_EQ(std::string(text), std::string("x\0y", 3));
    EXPECT_EQ(boost::json::serialize(*escaped), R"({"a":"x\u0000y"})");
    // A raw NUL is an unescaped control character: invalid JSON, at its own offset.
    EXPECT_EQ(error_of(std::string("{\"a\":\"x\0y\"}", 11)),
              "invalid JSON at byte 7: syntax error");
    EXPECT_EQ(error_of(std::string("{}\0", 3)),
              "invalid JSON at byte 2: unexpected data after the JSON value");
}

TEST(ParseBody, DuplicateKeysKeepTheLastValue) {
    auto value = parse_body(R"({"role":"user","role":"admin","n":1})");
    ASSERT_TRUE(value.has_value());
    EXPECT_EQ(boost::json::serialize(*value), R"({"role":"admin","n":1})");
}

TEST(ParseBody, RequireObject) {
    EXPECT_EQ(error_of("[1]", ParseOptions{32, true}), "must be a JSON object");
    auto object = parse_object(R"({"k":"v"})");
    ASSERT_TRUE(object.has_value());
    EXPECT_EQ(object->at("k").as_string(), "v");
    auto not_object = parse_object("\"s\"");
    ASSERT_FALSE(not_object.has_value());
    EXPECT_EQ(not_object.error(), (FieldError{"body", "must be a JSON object"}));
}

TEST(ParseAs, DecodesAStruct) {
    auto login = parse_as<Login>(R"({"email":"a@b.co","password":"pw","remember":true})");
    ASSERT_TRUE(login.has_value());
    EXPECT_EQ(login->email, "a@b.co");
    EXPECT_EQ(login->remember, true);
}

TEST(ParseAs, ParseErrorIsOneBodyError) {
    auto login = parse_as<Login>(R"({"email":)");
    ASSERT_FALSE(login.has_value());
    EXPECT_THAT(login.error(),
                ElementsAre(FieldError{"body", "invalid JSON at byte 9: unexpected end of input"}));
    auto array = parse_as<Login>("[]");
    ASSERT_FALSE(array.has_value());
    EXPECT_THAT(array.error(), ElementsAre(FieldError{"body", "must be a JSON object"}));
}

TEST(ParseAs, FieldErrorsKeepTheirPaths) {
    auto login = parse_as<Login>(R"({"password":1,"remember":"yes"})");
    ASSERT_FALSE(login.has_value());
    EXPECT_THAT(login.error(), UnorderedElementsAre(FieldError{"email", "is required"},
                                                    FieldError{"password", "must be a string"},
                                                    FieldError{"remember", "must be a boolean"}));
    auto list = parse_as<std::vector<int>>(R"([1,"2"])");
    ASSERT_FALSE(list.has_value());
    EXPECT_THAT(list.error(), ElementsAre(FieldError{"body[1]", "must be an integer"}));
    auto scalar = parse_as<int>(R"("7")");
    ASSERT_FALSE(scalar.has_value());
    EXPECT_THAT(scalar.error(), ElementsAre(FieldError{"body", "must be an integer"}));
}

}  // namespace
}  // namespace aether::platform::json
