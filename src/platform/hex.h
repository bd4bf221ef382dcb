// Bytes as lowercase hexadecimal, four bytes at a time: request ids and trace contexts are written
// on every request, and a table lookup per digit cost a dozen instructions a byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace aether::platform {

namespace hex_detail {

// Four bytes (the first in the lowest bits) to their eight digits, the first byte's high digit
// first in memory.
inline std::uint64_t digits_of(std::uint32_t four) {
    std::uint64_t spread = four;
    spread = (spread | (spread << 16)) & 0x0000FFFF0000FFFFull;
    spread = (spread | (spread << 8)) & 0x00FF00FF00FF00FFull;
    // Each byte now has a 16-bit lane of its own: its high digit goes to the lane's first byte in
    // memory, its low digit to the second.
    const std::uint64_t nibbles =
        ((spread >> 4) & 0x000F000F000F000Full) | ((spread & 0x000F000F000F000Full) << 8);
    // 0-9 to '0'-'9', 10-15 to 'a'-'f': a nibble of 10 or more carries into bit 4 when 6 is added.
    const std::uint64_t letters = ((nibbles + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
    return nibbles + 0x3030303030303030ull + letters * 0x27;
}

}  // namespace hex_detail

// Writes 2 * size digits at `out` and returns the end.
inline char* write_hex(char* out, const std::uint8_t* bytes, std::size_t size) {
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "digits_of assumes little-endian");
    std::size_t at = 0;
    for (; at + 4 <= size; at += 4) {
        std::uint32_t four;
        std::memcpy(&four, bytes + at, 4);
        const std::uint64_t digits = hex_detail::digits_of(four);
        std::memcpy(out, &digits, 8);
        out += 8;
    }
    static constexpr char kDigits[] = "0123456789abcdef";
    for (; at < size; ++at) {
        *out++ = kDigits[bytes[at] >> 4];
        *out++ = kDigits[bytes[at] & 0x0f];
    }
    return out;
}

}  // namespace aether::platform
