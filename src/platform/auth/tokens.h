// Random tokens, hashes, base64url, sortable prefixed IDs (ULID bodies) and API keys.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace aether::platform::auth {

// Unpadded base64url (RFC 4648 §5), as used by JWTs.
std::string base64url_encode(std::string_view data);
// Strict: rejects padding, characters outside the alphabet, an impossible length, and non-zero
// trailing bits (so every byte string has exactly one accepted encoding).
std::optional<std::string> base64url_decode(std::string_view text);

// `bytes` bytes from the CSPRNG (OpenSSL RAND_bytes), base64url encoded. Throws on RNG failure.
std::string random_token(std::size_t bytes);
std::string sha256_hex(std::string_view data);
bool constant_time_equals(std::string_view a, std::string_view b);

inline constexpr std::size_t kUlidLength = 26;
// 26 Crockford base32 characters: 48-bit milliseconds since the epoch, then 80 bits.
std::string encode_ulid(std::uint64_t unix_ms, const std::array<unsigned char, 10>& entropy);
// The millisecond timestamp of a ULID body, or nullopt if it is not one.
std::optional<std::uint64_t> ulid_time_ms(std::string_view ulid);
// prefix + ULID, e.g. new_id("usr_") -> "usr_01J...". IDs made by one process are strictly
// increasing (within one millisecond the random part is incremented), so they sort by creation.
std::string new_id(std::string_view prefix);

struct ApiKey {
    std::string id;                 // "key_" + ULID; stored, shown, used to look the key up
    std::string secret_shown_once;  // "ak_" + ULID + "_" + 43 base64url chars; never stored
    std::string hash;               // sha256 hex of the secret; stored
};

ApiKey generate_api_key();
// The key id ("key_...") named by a presented secret, or nullopt if the secret is malformed.
std::optional<std::string> api_key_id_from_secret(std::string_view secret);
bool verify_api_key(std::string_view presented_secret, std::string_view stored_hash);

}  // namespace aether::platform::auth
