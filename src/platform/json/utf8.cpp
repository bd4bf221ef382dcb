// Strict UTF-8 validation following the well-formed byte sequences table of Unicode §3.9.
#include "platform/json/utf8.h"

#include <cstdint>
#include <cstring>

namespace aether::platform::json {

std::size_t invalid_utf8_offset(std::string_view text) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t size = text.size();
    std::size_t i = 0;
    while (i < size) {
        // ASCII fast path: eight bytes at a time while none has its high bit set.
        while (size - i >= 8) {
            std::uint64_t word;
            std::memcpy(&word, bytes + i, sizeof word);
            if (word & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= size) break;
        const unsigned char lead = bytes[i];
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t length = 0;
        // The second byte's range depends on the lead byte; it is where overlongs, surrogates
        // and values above U+10FFFF are excluded.
        unsigned char second_lo = 0x80;
        unsigned char second_hi = 0xBF;
        if (lead >= 0xC2 && lead <= 0xDF) {
            length = 2;
        } else if (lead == 0xE0) {
            length = 3;
            second_lo = 0xA0;
        } else if (lead == 0xED) {
            length = 3;
            second_hi = 0x9F;
        } else if (lead >= 0xE1 && lead <= 0xEF) {
            length = 3;
        } else if (lead == 0xF0) {
            length = 4;
            second_lo = 0x90;
        } else if (lead >= 0xF1 && lead <= 0xF3) {
            length = 4;
        } else if (lead == 0xF4) {
            length = 4;
            second_hi = 0x8F;
        } else {
            return i;
        }
        if (size - i < length) return i;
        if (bytes[i + 1] < second_lo || bytes[i + 1] > second_hi) return i;
        for (std::size_t k = 2; k < length; ++k) {
            if (bytes[i + k] < 0x80 || bytes[i + k] > 0xBF) return i;
        }
        i += length;
    }
    return std::string_view::npos;
}

std::size_t count_code_points(std::string_view text) {
    std::size_t count = 0;
    for (const char c : text) {
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
    }
    return count;
}

}  // namespace aether::platform::json
