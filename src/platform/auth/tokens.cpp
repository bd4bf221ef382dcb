// Random tokens, hashes, base64url, sortable prefixed IDs (ULID bodies) and API keys.
#include "platform/auth/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "platform/hex.h"

namespace aether::platform::auth {
namespace {

constexpr std::string_view kB64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kCrockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::string_view kApiKeyPrefix = "ak_";
constexpr std::string_view kApiKeyIdPrefix = "key_";
constexpr std::size_t kApiKeySecretBytes = 32;
constexpr std::size_t kApiKeySecretChars = 43;  // base64url of 32 bytes, unpadded

// Reverse lookup of an alphabet: the value of each character, -1 for characters outside it.
constexpr std::array<signed char, 256> make_decode_table(std::string_view alphabet) {
    std::array<signed char, 256> table{};
    for (auto& v : table) v = -1;
    for (std::size_t i = 0; i < alphabet.size(); ++i) {
        table[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
    }
    return table;
}
constexpr auto kB64Table = make_decode_table(kB64Alphabet);
constexpr auto kCrockfordTable = make_decode_table(kCrockford);

void fill_random(unsigned char* out, std::size_t n) {
    if (RAND_bytes(out, static_cast<int>(n)) != 1) {
        throw std::runtime_error("RAND_bytes failed");
    }
}

std::uint64_t now_unix_ms() {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace

std::string base64url_encode(std::string_view data) {
    std::string out;
    out.reserve((data.size() * 4 + 2) / 3);
    std::size_t i = 0;
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(data[k]); };
    for (; i + 3 <= data.size(); i += 3) {
        const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += kB64Alphabet[(v >> 18) & 63];
        out += kB64Alphabet[(v >> 12) & 63];
        out += kB64Alphabet[(v >> 6) & 63];
        out += kB64Alphabet[v & 63];
    }
    const std::size_t rest = data.size() - i;
    if (rest == 1) {
        const std::uint32_t v = byte(i) << 16;
        out += kB64Alphabet[(v >> 18) & 63];
        out += kB64Alphabet[(v >> 12) & 63];
    } else if (rest == 2) {
        const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
        out += kB64Alphabet[(v >> 18) & 63];
        out += kB64Alphabet[(v >> 12) & 63];
        out += kB64Alphabet[(v >> 6) & 63];
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : text) {
        const int v = kB64Table[static_cast<unsigned char>(c)];
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

std::string random_token(std::size_t bytes) {
    std::string raw(bytes, '\0');
    fill_random(reinterpret_cast<unsigned char*>(raw.data()), raw.size());
    return base64url_encode(raw);
}

std::string sha256_hex(std::string_view data) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("SHA-256 failed");
    }
    std::string out(2 * len, '\0');
    write_hex(out.data(), digest, len);
    return out;
}

bool constant_time_equals(std::string_view a, std::string_view b) {
    // Lengths are not secret here (hashes and tokens have fixed public lengths).
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string encode_ulid(std::uint64_t unix_ms, const std::array<unsigned char, 10>& entropy) {
    std::string out(kUlidLength, '0');
    // Time: 48 bits in 10 characters (the first carries only 3 bits).
    std::uint64_t t = unix_ms & ((std::uint64_t{1} << 48) - 1);
    for (int i = 9; i >= 0; --i) {
        out[static_cast<std::size_t>(i)] = kCrockford[t & 31];
        t >>= 5;
    }
    // Entropy: 80 bits in 16 characters, as two 40-bit halves.
    for (int half = 0; half < 2; ++half) {
        std::uint64_t v = 0;
        for (int k = 0; k < 5; ++k) v = (v << 8) | entropy[static_cast<std::size_t>(half * 5 + k)];
        for (int i = 7; i >= 0; --i) {
            out[static_cast<std::size_t>(10 + half * 8 + i)] = kCrockford[v & 31];
            v >>= 5;
        }
    }
    return out;
}

std::optional<std::uint64_t> ulid_time_ms(std::string_view ulid) {
    if (ulid.size() != kUlidLength) return std::nullopt;
    std::uint64_t t = 0;
    for (std::size_t i = 0; i < ulid.size(); ++i) {
        const int v = kCrockfordTable[static_cast<unsigned char>(ulid[i])];
        if (v < 0) return std::nullopt;
        if (i == 0 && v > 7) return std::nullopt;
        if (i < 10) t = (t << 5) | static_cast<std::uint64_t>(v);
    }
    return t;
}

std::string new_id(std::string_view prefix) {
    static std::mutex mutex;
    static std::uint64_t last_ms = 0;
    static std::array<unsigned char, 10> last_entropy{};

    // The random part comes from a per-thread buffer of CSPRNG output: RAND_bytes costs about
    // as much per call for 10 bytes as for 320, and an id is public, not a secret. (A forked
    // child would repeat its parent's next ids: the process never forks.)
    constexpr std::size_t kIdsPerRefill = 32;
    thread_local std::array<unsigned char, 10 * kIdsPerRefill> pool;
    thread_local std::size_t pool_used = pool.size();
    if (pool_used == pool.size()) {
        fill_random(pool.data(), pool.size());
        pool_used = 0;
    }
    std::array<unsigned char, 10> fresh;
    std::memcpy(fresh.data(), pool.data() + pool_used, fresh.size());
    pool_used += fresh.size();
    const std::uint64_t now = now_unix_ms();

    std::string body;
    {
        std::lock_guard lock(mutex);
        if (now > last_ms) {
            last_ms = now;
            last_entropy = fresh;
        } else {
            // Same millisecond (or the clock stepped back): keep the order by incrementing the
            // previous entropy; on the (2^80) overflow borrow the next millisecond.
            int i = 9;
            for (; i >= 0; --i) {
                if (++last_entropy[static_cast<std::size_t>(i)] != 0) break;
            }
            if (i < 0) ++last_ms;
        }
        body = encode_ulid(last_ms, last_entropy);
    }
    std::string out;
    out.reserve(prefix.size() + body.size());
    out.append(prefix);
    out.append(body);
    return out;
}

ApiKey generate_api_key() {
    ApiKey key;
    key.id = new_id(kApiKeyIdPrefix);
    const std::string_view body = std::string_view(key.id).substr(kApiKeyIdPrefix.size());
    key.secret_shown_once.reserve(kApiKeyPrefix.size() + body.size() + 1 + kApiKeySecretChars);
    key.secret_shown_once.append(kApiKeyPrefix);
    key.secret_shown_once.append(body);
    key.secret_shown_once += '_';
    key.secret_shown_once.append(random_token(kApiKeySecretBytes));
    key.hash = sha256_hex(key.secret_shown_once);
    return key;
}

std::optional<std::string> api_key_id_from_secret(std::string_view secret) {
    // Fixed layout; the random part may itself contain '_', so positions are used, not splits.
    if (secret.size() != kApiKeyPrefix.size() + kUlidLength + 1 + kApiKeySecretChars) {
        return std::nullopt;
    }
    if (secret.substr(0, kApiKeyPrefix.size()) != kApiKeyPrefix) return std::nullopt;
    const std::string_view body = secret.substr(kApiKeyPrefix.size(), kUlidLength);
    if (!ulid_time_ms(body)) return std::nullopt;
    if (secret[kApiKeyPrefix.size() + kUlidLength] != '_') return std::nullopt;
    if (!base64url_decode(secret.substr(kApiKeyPrefix.size() + kUlidLength + 1))) {
        return std::nullopt;
    }
    std::string id;
    id.reserve(kApiKeyIdPrefix.size() + body.size());
    id.append(kApiKeyIdPrefix);
    id.append(body);
    return id;
}

bool verify_api_key(std::string_view presented_secret, std::string_view stored_hash) {
    return constant_time_equals(sha256_hex(presented_secret), stored_hash);
}

}  // namespace aether::platform::auth
