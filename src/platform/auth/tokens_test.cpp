// Tests for base64url, hashing helpers, ULID ids and API keys.
#include "platform/auth/tokens.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>
#include <vector>

namespace aether::platform::auth {
namespace {

TEST(Base64Url, Rfc4648Vectors) {
    EXPECT_EQ(base64url_encode(""), "");
    EXPECT_EQ(base64url_encode("f"), "Zg");
    EXPECT_EQ(base64url_encode("fo"), "Zm8");
    EXPECT_EQ(base64url_encode("foo"), "Zm9v");
    EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
    EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
    EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64url_encode("\xfb\xff\xbf"), "-_-_");
    EXPECT_EQ(base64url_decode("Zm9vYmE").value(), "fooba");
    EXPECT_EQ(base64url_decode("-_-_").value(), "\xfb\xff\xbf");
}

TEST(Base64Url, RoundTripsEveryByte) {
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (std::size_t len = 0; len <= all.size(); len += 7) {
        const auto s = all.substr(0, len);
        EXPECT_EQ(base64url_decode(base64url_encode(s)).value(), s);
    }
}

TEST(Base64Url, DecodeIsStrict) {
    EXPECT_FALSE(base64url_decode("Zg=="));  // padding
    EXPECT_FALSE(base64url_decode("Zm+v"));  // standard alphabet
    EXPECT_FALSE(base64url_decode("Zm/v"));
    EXPECT_FALSE(base64url_decode("Zm9vY"));  // impossible length
    EXPECT_FALSE(base64url_decode("Zh"));     // non-zero trailing bits ("Zg" is canonical)
    EXPECT_FALSE(base64url_decode("Zm 9"));
    EXPECT_FALSE(base64url_decode(std::string("Zm\0v", 4)));
}

TEST(Tokens, Sha256Hex) {
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Tokens, ConstantTimeEquals) {
    EXPECT_TRUE(constant_time_equals("abc", "abc"));
    EXPECT_TRUE(constant_time_equals("", ""));
    EXPECT_FALSE(constant_time_equals("abc", "abd"));
    EXPECT_FALSE(constant_time_equals("abc", "abcd"));
}

TEST(Tokens, RandomTokenLengthAndUniqueness) {
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        const auto t = random_token(32);
        EXPECT_EQ(t.size(), 43u);
        EXPECT_EQ(base64url_decode(t)->size(), 32u);
        seen.insert(t);
    }
    EXPECT_EQ(seen.size(), 200u);
}

TEST(Ulid, EncodesTimeAndEntropy) {
    EXPECT_EQ(encode_ulid(0, {}), "00000000000000000000000000");
    std::array<unsigned char, 10> ones;
    ones.fill(0xFF);
    EXPECT_EQ(encode_ulid((std::uint64_t{1} << 48) - 1, ones), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    // 1469918176385 ms is the example in the ULID spec: "01ARYZ6S41".
    EXPECT_EQ(encode_ulid(1469918176385, {}).substr(0, 10), "01ARYZ6S41");
    EXPECT_EQ(ulid_time_ms(encode_ulid(1469918176385, ones)), 1469918176385u);
    EXPECT_FALSE(ulid_time_ms("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));  // > 48 bits
    EXPECT_FALSE(ulid_time_ms("0000000000000000000000000U"));  // U is not Crockford
    EXPECT_FALSE(ulid_time_ms("000"));
}

TEST(Ulid, NewIdsAreStrictlyIncreasingWithinAndAcrossMilliseconds) {
    std::vector<std::string> ids;
    for (int i = 0; i < 5000; ++i) ids.push_back(new_id("usr_"));
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    ids.push_back(new_id("usr_"));
    for (std::size_t i = 1; i < ids.size(); ++i) {
        ASSERT_LT(ids[i - 1], ids[i]) << i;
    }
    for (const auto& id : ids) {
        ASSERT_EQ(id.size(), 4 + kUlidLength);
        ASSERT_EQ(id.substr(0, 4), "usr_");
    }
    const auto first_ms = ulid_time_ms(ids.front().substr(4)).value();
    const auto last_ms = ulid_time_ms(ids.back().substr(4)).value();
    EXPECT_GE(last_ms, first_ms + 3);
    const auto now_ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    EXPECT_LE(last_ms, now_ms + 1000);
}

TEST(ApiKey, RoundTrip) {
    const ApiKey key = generate_api_key();
    EXPECT_EQ(key.id.substr(0, 4), "key_");
    EXPECT_EQ(key.secret_shown_once.substr(0, 3), "ak_");
    EXPECT_EQ(key.secret_shown_once.substr(3, kUlidLength), key.id.substr(4));
    EXPECT_EQ(key.hash.size(), 64u);
    EXPECT_EQ(key.hash, sha256_hex(key.secret_shown_once));
    EXPECT_EQ(api_key_id_from_secret(key.secret_shown_once), key.id);
    EXPECT_TRUE(verify_api_key(key.secret_shown_once, key.hash));

    std::string tampered = key.secret_shown_once;
    tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
    EXPECT_FALSE(verify_api_key(tampered, key.hash));
    EXPECT_NE(generate_api_key().secret_shown_once, key.secret_shown_once);
}

TEST(ApiKey, MalformedSecretsHaveNoId) {
    const ApiKey key = generate_api_key();
    const std::string& s = key.secret_shown_once;
    EXPECT_FALSE(api_key_id_from_secret(""));
    EXPECT_FALSE(api_key_id_from_secret(s.substr(0, s.size() - 1)));
    EXPECT_FALSE(api_key_id_from_secret("xk_" + s.substr(3)));
    std::string bad_sep = s;
    bad_sep[3 + kUlidLength] = '.';
    EXPECT_FALSE(api_key_id_from_secret(bad_sep));
    std::string bad_body = s;
    bad_body[5] = 'U';
    EXPECT_FALSE(api_key_id_from_secret(bad_body));
}

}  // namespace
}  // namespace aether::platform::auth
