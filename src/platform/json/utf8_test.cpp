// Tests for strict UTF-8 validation and code point counting.
#include "platform/json/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace aether::platform::json {
namespace {

constexpr auto kValid = std::string_view::npos;

TEST(Utf8, AcceptsWellFormedText) {
    EXPECT_EQ(invalid_utf8_offset(""), kValid);
    EXPECT_EQ(invalid_utf8_offset("plain ascii"), kValid);
    EXPECT_EQ(invalid_utf8_offset(std::string("a\0b", 3)), kValid);
    EXPECT_EQ(invalid_utf8_offset("\xc2\x80 \xdf\xbf"), kValid);  // U+0080, U+07FF
    EXPECT_EQ(invalid_utf8_offset("\xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80"),
              kValid);  // around surrogates
    EXPECT_EQ(invalid_utf8_offset("\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf"),
              kValid);  // U+10000, U+10FFFF
}

TEST(Utf8, FindsTheFirstBadByte) {
    EXPECT_EQ(invalid_utf8_offset("ab\x80"), 2u);            // stray continuation
    EXPECT_EQ(invalid_utf8_offset("\xc1\xbf"), 0u);          // overlong 2-byte
    EXPECT_EQ(invalid_utf8_offset("x\xe0\x9f\xbf"), 1u);     // overlong 3-byte
    EXPECT_EQ(invalid_utf8_offset("\xed\xa0\x80"), 0u);      // surrogate
    EXPECT_EQ(invalid_utf8_offset("\xf0\x8f\xbf\xbf"), 0u);  // overlong 4-byte
    EXPECT_EQ(invalid_utf8_offset("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
    EXPECT_EQ(invalid_utf8_offset("\xf5\x80\x80\x80"), 0u);  // invalid lead
    EXPECT_EQ(invalid_utf8_offset("ok\xe2\x82"), 2u);        // truncated at the end
    EXPECT_EQ(invalid_utf8_offset("\xe2\x28\xa1"), 0u);      // bad continuation
    EXPECT_EQ(invalid_utf8_offset("\xc3\xa9\xff"), 2u);
}

TEST(Utf8, CountsCodePoints) {
    EXPECT_EQ(count_code_points(""), 0u);
    EXPECT_EQ(count_code_points("abc"), 3u);
    EXPECT_EQ(count_code_points("caf\xc3\xa9"), 4u);
    EXPECT_EQ(count_code_points("\xe2\x82\xac\xf0\x9f\x98\x80"), 2u);
}

}  // namespace
}  // namespace aether::platform::json
