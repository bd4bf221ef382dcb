// JSON string escaping with UTF-8 validation; plain ASCII runs are copied in one append.
#include "platform/telemetry/json_escape.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace aether::platform::telemetry {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Bytes copied as they are; one table load per byte keeps the common all-ASCII case tight.
constexpr auto kPlain = [] {
    std::array<bool, 256> table{};
    for (int c = 0x20; c < 0x80; ++c) table[c] = c != '"' && c != '\\';
    return table;
}();

bool is_plain_ascii(unsigned char c) {
    return kPlain[c];
}

// Length of the well-formed UTF-8 sequence starting at text[i] (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 if it is not well formed.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char c = byte(i);
    const std::size_t left = text.size() - i;
    const auto cont = [&](std::size_t k) { return (byte(k) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return left >= 2 && cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || !cont(i + 1) || !cont(i + 2)) return 0;
        const unsigned char c1 = byte(i + 1);
        if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
        if (c == 0xED && c1 > 0x9F) return 0;  // UTF-16 surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
        const unsigned char c1 = byte(i + 1);
        if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
        if (c == 0xF4 && c1 > 0x8F) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}

// True when one of the eight bytes is a control character, non-ASCII, '"' or '\\' (the
// classic "has a zero byte" bit trick applied to each condition); false means all are plain.
bool word_needs_care(std::uint64_t word) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
    constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
    const auto has_zero_byte = [](std::uint64_t v) { return (v - kOnes) & ~v & kHighBits; };
    const std::uint64_t below_space = (word - kOnes * 0x20) & ~word & kHighBits;
    return ((word & kHighBits) | below_space | has_zero_byte(word ^ (kOnes * '"')) |
            has_zero_byte(word ^ (kOnes * '\\'))) != 0;
}

std::size_t end_of_plain_run(std::string_view text, std::size_t from) {
    std::size_t run = from;
    while (run + 8 <= text.size()) {
        std::uint64_t word;
        std::memcpy(&word, text.data() + run, sizeof word);
        if (word_needs_care(word)) break;
        run += 8;
    }
    while (run < text.size() && is_plain_ascii(static_cast<unsigned char>(text[run]))) ++run;
    return run;
}

}  // namespace

void append_json_escaped(std::string& out, std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t run = end_of_plain_run(text, i);
        out.append(text.data() + i, run - i);
        i = run;
        if (i == text.size()) break;
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            const std::size_t len = utf8_sequence_length(text, i);
            if (len == 0) {
                out.append(kReplacement);
                ++i;
            } else {
                out.append(text.data() + i, len);
                i += len;
            }
            continue;
        }
        switch (c) {
            case '"':
                out.append("\\\"");
                break;
            case '\\':
                out.append("\\\\");
                break;
            case '\n':
                out.append("\\n");
                break;
            case '\r':
                out.append("\\r");
                break;
            case '\t':
                out.append("\\t");
                break;
            case '\b':
                out.append("\\b");
                break;
            case '\f':
                out.append("\\f");
                break;
            default: {
                const char escaped[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0x0f]};
                out.append(escaped, 6);
            }
        }
        ++i;
    }
}

void append_json_string(std::string& out, std::string_view text) {
    out.push_back('"');
    append_json_escaped(out, text);
    out.push_back('"');
}

}  // namespace aether::platform::telemetry
