// JSON Web Keys (RFC 7517/7518) to PEM, so keys published as a JWKS can verify JWTs.
#include "platform/auth/jwk.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include <boost/json.hpp>
#include <memory>

#include "platform/auth/tokens.h"

namespace aether::platform::auth {
namespace json = boost::json;

namespace {

// OpenSSL's limits on what it will verify with: larger moduli are refused, and above 3072-bit
// moduli so are exponents over 64 bits. Checked here so such a key fails at load, not per token.
constexpr int kMaxRsaModulusBits = 16384;
constexpr int kMaxRsaExponentBits = 64;

struct Curve {
    std::string_view jwk_name;
    const char* group;  // OpenSSL group name; NUL-terminated for OSSL_PARAM
    std::string_view alg;
    std::size_t coordinate_bytes;
};

constexpr Curve kCurves[] = {
    {"P-256", "prime256v1", "ES256", 32},
    {"P-384", "secp384r1", "ES384", 48},
    {"P-521", "secp521r1", "ES512", 66},
};

struct OpensslFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
    void operator()(BIO* p) const { BIO_free(p); }
    void operator()(BIGNUM* p) const { BN_free(p); }
    void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, OpensslFree>;

std::string_view view(const json::string& s) {
    return {s.data(), s.size()};
}

std::string member(std::string_view name) {
    return "member \"" + std::string(name) + "\"";
}

// An optional string member: absent -> empty; present and not a string -> error.
Expected<std::string, std::string> string_member(const json::object& jwk, std::string_view name) {
    const json::value* v = jwk.if_contains(name);
    if (v == nullptr) return std::string();
    if (!v->is_string()) return unexpected(member(name) + " is not a string");
    return std::string(view(v->get_string()));
}

// The bytes of a required base64url member.
Expected<std::string, std::string> binary_member(const json::object& jwk, std::string_view name) {
    const json::value* v = jwk.if_contains(name);
    if (v == nullptr) return unexpected(member(name) + " is missing");
    if (!v->is_string()) return unexpected(member(name) + " is not a string");
    auto bytes = base64url_decode(view(v->get_string()));
    if (!bytes) return unexpected(member(name) + " is not valid base64url");
    if (bytes->empty()) return unexpected(member(name) + " is empty");
    return std::move(*bytes);
}

Owned<BIGNUM> to_bn(const std::string& bytes) {
    return Owned<BIGNUM>(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                                   static_cast<int>(bytes.size()), nullptr));
}

Owned<EVP_PKEY> public_key_from(const char* type, OSSL_PARAM_BLD* builder) {
    const Owned<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(builder));
    const Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        EVP_PKEY_free(raw);
        return nullptr;
    }
    return Owned<EVP_PKEY>(raw);
}

Expected<Owned<EVP_PKEY>, std::string> rsa_key(const json::object& jwk) {
    auto n_bytes = binary_member(jwk, "n");
    if (!n_bytes) return unexpected(std::move(n_bytes).error());
    auto e_bytes = binary_member(jwk, "e");
    if (!e_bytes) return unexpected(std::move(e_bytes).error());
    const Owned<BIGNUM> n = to_bn(*n_bytes);
    const Owned<BIGNUM> e = to_bn(*e_bytes);
    if (!n || !e) return unexpected(std::string("out of memory"));
    if (BN_num_bits(n.get()) > kMaxRsaModulusBits) {
        return unexpected(member("n") + " is longer than " + std::to_string(kMaxRsaModulusBits) +
                          " bits");
    }
    // An RSA modulus is a product of odd primes; an even or zero one is not a key.
    if (!BN_is_odd(n.get())) return unexpected(member("n") + " is not an RSA modulus");
    if (BN_num_bits(e.get()) > kMaxRsaExponentBits) {
        return unexpected(member("e") + " is longer than " + std::to_string(kMaxRsaExponentBits) +
                          " bits");
    }
    if (!BN_is_odd(e.get()) || BN_is_one(e.get())) {
        return unexpected(member("e") + " is not an RSA public exponent");
    }
    const Owned<OSSL_PARAM_BLD> builder(OSSL_PARAM_BLD_new());
    if (!builder || OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
        return unexpected(std::string("cannot build the RSA key"));
    }
    Owned<EVP_PKEY> key = public_key_from("RSA", builder.get());
    if (!key) return unexpected(std::string("cannot build the RSA key"));
    return key;
}

Expected<Owned<EVP_PKEY>, std::string> ec_key(const json::object& jwk, const Curve*& curve) {
    const json::value* crv = jwk.if_contains("crv");
    if (crv == nullptr) return unexpected(member("crv") + " is missing");
    if (!crv->is_string()) return unexpected(member("crv") + " is not a string");
    curve = nullptr;
    for (const auto& c : kCurves) {
        if (c.jwk_name == view(crv->get_string())) curve = &c;
    }
    // The value is not echoed: error messages end up in logs, and it is untrusted text.
    if (curve == nullptr) {
        return unexpected(member("crv") + " is not one of P-256, P-384, P-521");
    }

    // The uncompressed SEC1 point. RFC 7518 §6.2.1.2 wants full-size coordinates; shorter ones
    // (leading zeros dropped by some encoders) are padded, longer ones cannot be on the curve.
    std::string point(1 + 2 * curve->coordinate_bytes, '\0');
    point[0] = '\x04';
    std::size_t offset = 1;
    for (const std::string_view name : {"x", "y"}) {
        auto coordinate = binary_member(jwk, name);
        if (!coordinate) return unexpected(std::move(coordinate).error());
        if (coordinate->size() > curve->coordinate_bytes) {
            return unexpected(member(name) + " is longer than a " + std::string(curve->jwk_name) +
                              " coordinate (" + std::to_string(curve->coordinate_bytes) +
                              " bytes)");
        }
        point.replace(offset + curve->coordinate_bytes - coordinate->size(), coordinate->size(),
                      *coordinate);
        offset += curve->coordinate_bytes;
    }

    const Owned<OSSL_PARAM_BLD> builder(OSSL_PARAM_BLD_new());
    if (!builder ||
        OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve->group,
                                        0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
        return unexpected(std::string("cannot build the EC key"));
    }
    Owned<EVP_PKEY> key = public_key_from("EC", builder.get());
    // A point off the curve fails the import already; the explicit check also refuses the
    // point at infinity and points outside the prime-order subgroup.
    const Owned<EVP_PKEY_CTX> check(key ? EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr)
                                        : nullptr);
    if (!check || EVP_PKEY_public_check(check.get()) != 1) {
        return unexpected("members \"x\" and \"y\" are not a point on " +
                          std::string(curve->jwk_name));
    }
    return key;
}

Expected<std::string, std::string> pem_of(EVP_PKEY* key) {
    const Owned<BIO> bio(BIO_new(BIO_s_mem()));
    char* data = nullptr;
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
        return unexpected(std::string("cannot write the public key PEM"));
    }
    const long len = BIO_get_mem_data(bio.get(), &data);
    if (len <= 0 || data == nullptr) {
        return unexpected(std::string("cannot write the public key PEM"));
    }
    return std::string(data, static_cast<std::size_t>(len));
}

// `curve` is set for EC keys.
Expected<std::string, std::string> convert(const json::object& jwk, const Curve*& curve) {
    curve = nullptr;
    const json::value* kty = jwk.if_contains("kty");
    if (kty == nullptr) return unexpected(member("kty") + " is missing");
    if (!kty->is_string()) return unexpected(member("kty") + " is not a string");
    const bool rsa = view(kty->get_string()) == "RSA";
    if (!rsa && view(kty->get_string()) != "EC") {
        return unexpected(member("kty") + " is not RSA or EC");
    }
    auto key = rsa ? rsa_key(jwk) : ec_key(jwk, curve);
    if (!key) return unexpected(std::move(key).error());
    return pem_of(key->get());
}

// Algorithms for which a key is an encryption key even without "use": such keys are skipped.
bool is_encryption_alg(std::string_view alg) {
    return alg.starts_with("RSA1_5") || alg.starts_with("RSA-OAEP") || alg.starts_with("ECDH-ES");
}

// A signature algorithm that cannot be used with the key is a broken document, not a key meant
// for something else. Algorithms we do not know are passed through for the caller to judge.
bool alg_fits(std::string_view alg, const Curve* curve) {
    const bool rsa_alg = alg.starts_with("RS") || alg.starts_with("PS");
    const bool ec_alg = alg.starts_with("ES");
    if (alg.starts_with("HS")) return false;
    if (curve == nullptr) return !ec_alg;
    return !rsa_alg && (!ec_alg || alg == curve->alg);
}

// nullopt: the key is skipped.
Expected<std::optional<JsonWebKey>, std::string> parse_key(const json::object& jwk) {
    std::optional<JsonWebKey> none;
    const json::value* kty = jwk.if_contains("kty");
    if (kty == nullptr) return unexpected(member("kty") + " is missing");
    if (!kty->is_string()) return unexpected(member("kty") + " is not a string");
    auto use = string_member(jwk, "use");
    if (!use) return unexpected(std::move(use).error());
    if (!use->empty() && *use != "sig") return none;
    if (view(kty->get_string()) != "RSA" && view(kty->get_string()) != "EC") return none;

    JsonWebKey out;
    auto kid = string_member(jwk, "kid");
    if (!kid) return unexpected(std::move(kid).error());
    out.kid = std::move(*kid);
    auto alg = string_member(jwk, "alg");
    if (!alg) return unexpected(std::move(alg).error());
    out.alg = std::move(*alg);
    if (is_encryption_alg(out.alg)) return none;

    const Curve* curve = nullptr;
    auto pem = convert(jwk, curve);
    if (!pem) return unexpected(std::move(pem).error());
    out.public_key_pem = std::move(*pem);
    if (out.alg.empty() && curve != nullptr) out.alg = curve->alg;
    if (!alg_fits(out.alg, curve)) {
        return unexpected(member("alg") + " does not fit " +
                          (curve == nullptr ? std::string("an RSA key")
                                            : "a " + std::string(curve->jwk_name) + " key"));
    }
    return std::optional<JsonWebKey>(std::move(out));
}

}  // namespace

Expected<std::string, std::string> jwk_to_pem(const json::object& jwk) {
    const Curve* curve = nullptr;
    auto pem = convert(jwk, curve);
    // A failed import leaves entries on this thread's OpenSSL error queue; later, unrelated
    // callers that inspect the queue must not see them.
    if (!pem) ERR_clear_error();
    return pem;
}

Expected<std::vector<JsonWebKey>, std::string> parse_jwks(std::string_view document) {
    if (document.size() > kMaxJwksBytes) {
        return unexpected("JWKS document is larger than " + std::to_string(kMaxJwksBytes / 1024) +
                          " KiB");
    }
    boost::system::error_code ec;
    const json::value value = json::parse(document, ec);
    if (ec) return unexpected(std::string("JWKS document is not valid JSON"));
    if (!value.is_object()) return unexpected(std::string("JWKS document is not a JSON object"));
    const json::value* keys = value.get_object().if_contains("keys");
    if (keys == nullptr || !keys->is_array()) {
        return unexpected(std::string("JWKS document has no \"keys\" array"));
    }
    if (keys->get_array().size() > kMaxJwksKeys) {
        return unexpected("JWKS document has more than " + std::to_string(kMaxJwksKeys) + " keys");
    }

    std::vector<JsonWebKey> out;
    std::size_t index = 0;
    for (const json::value& entry : keys->get_array()) {
        const std::string where = "JWKS key " + std::to_string(index++);
        if (!entry.is_object()) return unexpected(where + " is not a JSON object");
        auto key = parse_key(entry.get_object());
        if (!key) {
            ERR_clear_error();
            return unexpected(where + ": " + key.error());
        }
        if (*key) out.push_back(std::move(**key));
    }
    return out;
}

}  // namespace aether::platform::auth
