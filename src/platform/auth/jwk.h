// JSON Web Keys (RFC 7517/7518) to PEM, so keys published as a JWKS can verify JWTs.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::auth {

inline constexpr std::size_t kMaxJwksBytes = 256 * 1024;
inline constexpr std::size_t kMaxJwksKeys = 100;

struct JsonWebKey {
    std::string kid;  // may be empty
    // As published; when absent, derived from the curve for EC keys (P-256 -> ES256, P-384 ->
    // ES384, P-521 -> ES512) and left empty for RSA keys (RS* and PS* share the key type).
    std::string alg;
    std::string public_key_pem;  // SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----")
};

// Parses {"keys":[...]}: RSA keys (kty RSA, n, e) and EC keys (kty EC, crv P-256/P-384/P-521,
// x, y) whose "use" is absent or "sig". Keys of other types or uses are skipped; a malformed
// member of an RSA/EC key is an error naming the key's index and the member. At most
// kMaxJwksKeys entries and kMaxJwksBytes bytes.
Expected<std::vector<JsonWebKey>, std::string> parse_jwks(std::string_view document);

// One RSA or EC JWK object (public members only; private members are ignored) to PEM.
Expected<std::string, std::string> jwk_to_pem(const boost::json::object& jwk);

}  // namespace aether::platform::auth
