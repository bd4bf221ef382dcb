// JWT signing and verification (libjwt) with the algorithm pinned by configuration, plus JWKS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::auth {

struct JwtSettings {
    std::string algorithm = "HS256";  // HS256/384/512, RS256/384/512, ES256/384/512
    std::string secret;               // HS*: at least as many bytes as the hash output
    std::string private_key_pem;      // RS*/ES*: optional; without it the codec only verifies
    std::string public_key_pem;       // RS*/ES*: optional when the private key is given
    std::string key_id;               // RS*/ES*: "kid"; defaults to the RFC 7638 thumbprint
    std::string issuer;               // added on sign, required on verify, when non-empty
    std::string audience;             // added on sign, required on verify, when non-empty
    int leeway_seconds = 30;
    // Tokens whose signature libjwt has verified, remembered so a token presented again (an
    // access token is used for many requests) skips libjwt 1.10's per-call key parsing and JSON
    // decoding. Only successfully verified tokens enter; time and type are rechecked on every
    // call. 0 disables the cache.
    std::size_t verified_cache_entries = 8192;
};

struct Claims {
    std::string sub, email;
    std::string type;  // "access" | "refresh"
    std::string jti, iss, aud;
    std::string family;  // refresh-token family id, claim "fam", optional
    std::vector<std::string> roles, permissions;
    std::int64_t iat = 0, nbf = 0, exp = 0;  // 0 = absent
};

enum class JwtError {
    Malformed,
    AlgorithmMismatch,
    BadSignature,
    Expired,
    NotYetValid,
    WrongType,
    BadIssuer,
    BadAudience,
    MissingClaim,
};

std::string_view jwt_error_message(JwtError error);

// Immutable after create(); verify() and sign() are const and safe to call from many threads.
// The hash for a table keyed by a token's text: of its last 32 bytes, the end of the signature,
// which differs between any two tokens a key signed. Hashing the whole token (300 bytes and
// more) three times a request cost more than verifying its HMAC. Such tables hold only verified
// tokens, and equality still compares the whole text.
inline std::size_t token_hash(std::string_view token) noexcept {
    constexpr std::size_t kTail = 32;
    return std::hash<std::string_view>{}(token.size() > kTail ? token.substr(token.size() - kTail)
                                                              : token);
}

namespace detail {
class VerifiedTokenCache;
class HmacKey;
}  // namespace detail

class JwtCodec {
  public:
    static Expected<JwtCodec, std::string> create(JwtSettings settings);

    const std::string& algorithm() const { return settings_.algorithm; }
    const std::string& key_id() const { return key_id_; }
    bool can_sign() const { return !sign_key_.empty(); }

    // Throws std::logic_error when the codec has no signing key, std::runtime_error if libjwt
    // fails (out of memory): neither is an expected failure.
    std::string sign(const Claims& claims) const;
    // The token's header "alg" must equal the configured algorithm (never chosen by the token);
    // then libjwt checks the signature; then exp/nbf/iat (with leeway), iss, aud, type.
    // An empty expected_type accepts any type. "exp" and "sub" are required. A token verified
    // before is answered from the cache (see JwtSettings::verified_cache_entries), with its
    // time and type checked again against the arguments of this call.
    // The claims are shared with the cache: a cached answer costs no copy of them.
    Expected<std::shared_ptr<const Claims>, JwtError> verify(std::string_view token,
                                                             std::string_view expected_type,
                                                             std::int64_t now_epoch_seconds) const;
    // {"keys":[...]} with the public key for RS*/ES*; {"keys":[]} for HS*.
    std::string jwks_json() const;

  private:
    JwtCodec() = default;
    void make_cache();
    Expected<Claims, JwtError> verify_with_libjwt(std::string_view token) const;
    Expected<void, JwtError> check_time_and_type(const Claims& claims,
                                                 std::string_view expected_type,
                                                 std::int64_t now_epoch_seconds) const;

    JwtSettings settings_;
    int libjwt_alg_ = 0;      // jwt_alg_t, kept as int so <jwt.h> stays out of this header
    std::string sign_key_;    // HMAC secret or private PEM
    std::string verify_key_;  // HMAC secret or public PEM
    std::string key_id_;
    std::string jwk_;  // the public key as one JWK object, empty for HS*
    std::shared_ptr<detail::VerifiedTokenCache> cache_;  // shared by copies: same keys
    std::shared_ptr<const detail::HmacKey> hmac_;        // HS* only
};

}  // namespace aether::platform::auth
