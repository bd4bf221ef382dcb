// Tests of JSON string escaping and UTF-8 repair.
#include "platform/telemetry/json_escape.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace aether::platform::telemetry {
namespace {

std::string quoted(std::string_view text) {
    std::string out;
    append_json_string(out, text);
    return out;
}

TEST(JsonEscape, PlainTextIsCopied) {
    EXPECT_EQ(quoted("hello /api/v1 ~"), "\"hello /api/v1 ~\"");
}

TEST(JsonEscape, QuotesBackslashAndControlCharacters) {
    EXPECT_EQ(quoted("a\"b\\c"), R"("a\"b\\c")");
    EXPECT_EQ(quoted("\n\r\t\b\f"), R"("\n\r\t\b\f")");
    EXPECT_EQ(quoted(std::string_view("\x00\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
    EXPECT_EQ(quoted("\x7f"), "\"\x7f\"");  // DEL is legal in JSON strings
}

TEST(JsonEscape, ValidUtf8PassesThrough) {
    EXPECT_EQ(quoted("caf\xC3\xA9"), "\"caf\xC3\xA9\"");            // é
    EXPECT_EQ(quoted("\xE2\x82\xAC"), "\"\xE2\x82\xAC\"");          // €
    EXPECT_EQ(quoted("\xF0\x9F\x98\x80"), "\"\xF0\x9F\x98\x80\"");  // 😀
    EXPECT_EQ(quoted("\xF4\x8F\xBF\xBF"), "\"\xF4\x8F\xBF\xBF\"");  // U+10FFFF
    EXPECT_EQ(quoted("\xED\x9F\xBF"), "\"\xED\x9F\xBF\"");          // U+D7FF
}

TEST(JsonEscape, InvalidUtf8BecomesReplacementCharacters) {
    const std::string r = "\xEF\xBF\xBD";
    EXPECT_EQ(quoted("a\xFF"
                     "b"),
              "\"a" + r + "b\"");
    EXPECT_EQ(quoted("\xC3"), "\"" + r + "\"");                          // truncated
    EXPECT_EQ(quoted("\xC0\xAF"), "\"" + r + r + "\"");                  // overlong '/'
    EXPECT_EQ(quoted("\xE0\x80\xAF"), "\"" + r + r + r + "\"");          // overlong
    EXPECT_EQ(quoted("\xED\xA0\x80"), "\"" + r + r + r + "\"");          // surrogate D800
    EXPECT_EQ(quoted("\xF4\x90\x80\x80"), "\"" + r + r + r + r + "\"");  // above U+10FFFF
    EXPECT_EQ(quoted("\x80x"), "\"" + r + "x\"");                        // lone continuation
    EXPECT_EQ(quoted("\xE2\x82"), "\"" + r + r + "\"");
}

TEST(JsonEscape, EscapedOmitsQuotes) {
    std::string out = "x";
    append_json_escaped(out, "\"");
    EXPECT_EQ(out, "x\\\"");
}

// Plain runs are scanned eight bytes at a time: every byte that needs care must be found at
// every position of a word, and next to every other such byte.
TEST(JsonEscape, SpecialBytesAreFoundAtEveryOffset) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"\"", "\\\""},
        {"\\", "\\\\"},
        {"\n", "\\n"},
        {std::string(1, '\0'), "\\u0000"},
        {"\x1f", "\\u001f"},
        {"\xC3\xA9", "\xC3\xA9"},
        {"\xFF", "\xEF\xBF\xBD"},
        {"\x7f", "\x7f"},
        {" ", " "},
        {"!", "!"},
        {"#", "#"},
        {"[", "["},
        {"]", "]"}};
    for (const auto& [raw, escaped] : cases) {
        for (std::size_t offset = 0; offset < 20; ++offset) {
            const std::string text = std::string(offset, 'a') + raw + std::string(19 - offset, 'b');
            const std::string expected =
                std::string(offset, 'a') + escaped + std::string(19 - offset, 'b');
            std::string out;
            append_json_escaped(out, text);
            EXPECT_EQ(out, expected) << "offset " << offset;
        }
    }
}

}  // namespace
}  // namespace aether::platform::telemetry
