#include "platform/hex.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

std::string reference_hex(const std::vector<std::uint8_t>& bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string text;
    for (auto byte : bytes) {
        text += kDigits[byte >> 4];
        text += kDigits[byte & 0x0f];
    }
    return text;
}

std::string written_hex(const std::vector<std::uint8_t>& bytes) {
    // One byte past the digits shows a write beyond them.
    std::string text(2 * bytes.size() + 1, '#');
    const char* end = aether::platform::write_hex(text.data(), bytes.data(), bytes.size());
    EXPECT_EQ(end, text.data() + 2 * bytes.size());
    EXPECT_EQ(text.back(), '#');
    text.pop_back();
    return text;
}

TEST(HexTest, EveryByteValueInEveryPositionOfAFourByteGroup) {
    for (int value = 0; value < 256; ++value) {
        for (std::size_t position = 0; position < 5; ++position) {
            std::vector<std::uint8_t> bytes(5, 0x5a);
            bytes[position] = static_cast<std::uint8_t>(value);
            ASSERT_EQ(written_hex(bytes), reference_hex(bytes)) << value << " at " << position;
        }
    }
}

TEST(HexTest, KnownDigitsHighNibbleFirst) {
    EXPECT_EQ(written_hex({0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}), "0123456789abcdef");
    EXPECT_EQ(written_hex({0xff, 0x00, 0x9a, 0xa9}), "ff009aa9");
    EXPECT_EQ(written_hex({}), "");
}

TEST(HexTest, RandomBytesOfEveryLengthUpTo40) {
    std::mt19937 random(3);
    for (std::size_t size = 0; size <= 40; ++size) {
        for (int round = 0; round < 50; ++round) {
            std::vector<std::uint8_t> bytes(size);
            for (auto& byte : bytes) byte = static_cast<std::uint8_t>(random());
            ASSERT_EQ(written_hex(bytes), reference_hex(bytes)) << "size " << size;
        }
    }
}

}  // namespace
