// JWT signing and verification (libjwt) with the algorithm pinned by configuration, plus JWKS.
#include "platform/auth/jwt.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include <array>
#include <boost/json.hpp>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "platform/auth/tokens.h"
#include "platform/json/arena.h"
#include "platform/prehashed.h"

namespace aether::platform::auth {
namespace json = boost::json;

namespace detail {

// Verified tokens by their exact text. Sharded so IO threads verifying at once rarely contend;
// bounded, oldest-first eviction. Only tokens libjwt accepted are inserted, so a client sending
// junk cannot fill it.
class VerifiedTokenCache {
  public:
    explicit VerifiedTokenCache(std::size_t capacity)
        : per_shard_(std::max<std::size_t>(1, capacity / kShards)) {}

    std::shared_ptr<const Claims> find(std::string_view token) const {
        const Prehashed key = TokenHash{}.prehash(token);
        const Shard& shard = shards_[key.hash % kShards];
        std::lock_guard lock(shard.mutex);
        const auto it = shard.entries.find(key);
        if (it == shard.entries.end()) return nullptr;
        return it->second;
    }

    void insert(std::string_view token, std::shared_ptr<const Claims> claims) {
        const Prehashed key = TokenHash{}.prehash(token);
        Shard& shard = shards_[key.hash % kShards];
        std::lock_guard lock(shard.mutex);
        if (shard.entries.find(key) != shard.entries.end()) return;
        if (shard.entries.size() >= per_shard_) {
            shard.entries.erase(*shard.order.front());
            shard.order.pop_front();
        }
        const auto [it, inserted] = shard.entries.emplace(std::string(token), std::move(claims));
        // Node keys stay put across rehashing, so the queue can point at them.
        if (inserted) shard.order.push_back(&it->first);
    }

  private:
    static constexpr std::size_t kShards = 16;
    struct TokenTailHash {
        std::size_t operator()(std::string_view token) const { return token_hash(token); }
    };
    using TokenHash = PrehashedHash<TokenTailHash>;
    struct Shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, std::shared_ptr<const Claims>, TokenHash, PrehashedEqual>
            entries;
        std::deque<const std::string*> order;
    };

    std::size_t per_shard_;
    std::array<Shard, kShards> shards_;
};

// A keyed HMAC context cloned per check. libjwt 1.10 compares HMACs with strcmp, which leaks
// timing; checking first in constant time means libjwt only ever sees correct signatures.
class HmacKey {
  public:
    static std::unique_ptr<HmacKey> create(std::string_view digest, std::string_view key) {
        auto out = std::unique_ptr<HmacKey>(new HmacKey);
        out->mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        if (out->mac_ == nullptr) return nullptr;
        out->template_ = EVP_MAC_CTX_new(out->mac_);
        std::string digest_name(digest);
        const OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name.data(), 0),
            OSSL_PARAM_construct_end()};
        if (out->template_ == nullptr ||
            EVP_MAC_init(out->template_, reinterpret_cast<const unsigned char*>(key.data()),
                         key.size(), params) != 1) {
            return nullptr;
        }
        return out;
    }
    ~HmacKey() {
        EVP_MAC_CTX_free(template_);
        EVP_MAC_free(mac_);
    }
    HmacKey(const HmacKey&) = delete;
    HmacKey& operator=(const HmacKey&) = delete;

    bool matches(std::string_view signing_input, std::string_view signature) const {
        std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_dup(template_),
                                                                      &EVP_MAC_CTX_free);
        unsigned char mac[EVP_MAX_MD_SIZE];
        std::size_t len = 0;
        if (!ctx ||
            EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(signing_input.data()),
                           signing_input.size()) != 1 ||
            EVP_MAC_final(ctx.get(), mac, &len, sizeof mac) != 1) {
            return false;
        }
        return len == signature.size() && CRYPTO_memcmp(mac, signature.data(), len) == 0;
    }

  private:
    HmacKey() = default;
    EVP_MAC* mac_ = nullptr;
    EVP_MAC_CTX* template_ = nullptr;
};

}  // namespace detail

namespace {

constexpr std::size_t kMaxTokenBytes = 8192;

enum class Family { Hmac, Rsa, Ec };

struct AlgInfo {
    std::string_view name;
    jwt_alg_t alg;
    Family family;
    std::size_t hmac_min_secret;  // RFC 7518 §3.2: a key at least as long as the hash
    std::string_view curve;       // OpenSSL group name for ES*
    std::string_view jwk_curve;
    std::string_view digest;
};

constexpr AlgInfo kAlgorithms[] = {
    {"HS256", JWT_ALG_HS256, Family::Hmac, 32, "", "", "SHA256"},
    {"HS384", JWT_ALG_HS384, Family::Hmac, 48, "", "", "SHA384"},
    {"HS512", JWT_ALG_HS512, Family::Hmac, 64, "", "", "SHA512"},
    {"RS256", JWT_ALG_RS256, Family::Rsa, 0, "", "", "SHA256"},
    {"RS384", JWT_ALG_RS384, Family::Rsa, 0, "", "", "SHA384"},
    {"RS512", JWT_ALG_RS512, Family::Rsa, 0, "", "", "SHA512"},
    {"ES256", JWT_ALG_ES256, Family::Ec, 0, "prime256v1", "P-256", "SHA256"},
    {"ES384", JWT_ALG_ES384, Family::Ec, 0, "secp384r1", "P-384", "SHA384"},
    {"ES512", JWT_ALG_ES512, Family::Ec, 0, "secp521r1", "P-521", "SHA512"},
};

const AlgInfo* find_alg(std::string_view name) {
    for (const auto& info : kAlgorithms) {
        if (info.name == name) return &info;
    }
    return nullptr;
}

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct BnFree {
    void operator()(BIGNUM* b) const { BN_free(b); }
};
struct JwtFree {
    void operator()(jwt_t* j) const { jwt_free(j); }
};
struct CharFree {
    void operator()(char* p) const { std::free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Bio = std::unique_ptr<BIO, BioFree>;
using Bn = std::unique_ptr<BIGNUM, BnFree>;

Bio mem_bio(std::string_view pem) {
    return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string bio_string(BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

std::string public_pem(EVP_PKEY* key) {
    Bio out(BIO_new(BIO_s_mem()));
    if (!out || PEM_write_bio_PUBKEY(out.get(), key) != 1) return {};
    return bio_string(out.get());
}

std::string private_pem(EVP_PKEY* key) {
    Bio out(BIO_new(BIO_s_mem()));
    if (!out ||
        PEM_write_bio_PrivateKey(out.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        return {};
    }
    return bio_string(out.get());
}

std::optional<std::string> bn_param_b64(EVP_PKEY* key, const char* name, int pad_to = 0) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return std::nullopt;
    Bn bn(raw);
    const int len = pad_to > 0 ? pad_to : BN_num_bytes(bn.get());
    std::string bytes(static_cast<std::size_t>(len), '\0');
    if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(bytes.data()), len) != len) {
        return std::nullopt;
    }
    return base64url_encode(bytes);
}

std::string sha256_b64(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) return {};
    return base64url_encode(std::string_view(reinterpret_cast<char*>(digest), len));
}

// Checks the key fits the algorithm and fills the JWK members (without kid/use/alg) and the
// RFC 7638 thumbprint input.
std::optional<std::string> describe_public_key(EVP_PKEY* key, const AlgInfo& alg, json::object& jwk,
                                               std::string& thumbprint_input) {
    if (alg.family == Family::Rsa) {
        if (!EVP_PKEY_is_a(key, "RSA")) return "key is not an RSA key";
        if (EVP_PKEY_get_bits(key) < 2048) return "RSA key is shorter than 2048 bits";
        const auto n = bn_param_b64(key, OSSL_PKEY_PARAM_RSA_N);
        const auto e = bn_param_b64(key, OSSL_PKEY_PARAM_RSA_E);
        if (!n || !e) return "cannot read the RSA public key";
        jwk = {{"kty", "RSA"}, {"n", *n}, {"e", *e}};
        thumbprint_input = R"({"e":")" + *e + R"(","kty":"RSA","n":")" + *n + R"("})";
        return std::nullopt;
    }
    if (!EVP_PKEY_is_a(key, "EC")) return "key is not an EC key";
    char group[64] = {};
    std::size_t group_len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &group_len) != 1 ||
        std::string_view(group, group_len) != alg.curve) {
        return "EC key is not on the curve " + std::string(alg.jwk_curve);
    }
    const int coord = (EVP_PKEY_get_bits(key) + 7) / 8;
    const auto x = bn_param_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, coord);
    const auto y = bn_param_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, coord);
    if (!x || !y) return "cannot read the EC public key";
    const std::string crv(alg.jwk_curve);
    jwk = {{"kty", "EC"}, {"crv", crv}, {"x", *x}, {"y", *y}};
    thumbprint_input =
        R"({"crv":")" + crv + R"(","kty":"EC","x":")" + *x + R"(","y":")" + *y + R"("})";
    return std::nullopt;
}

std::optional<std::string> string_claim(const json::object& payload, std::string_view name,
                                        bool& malformed) {
    const auto* v = payload.if_contains(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
        malformed = true;
        return std::nullopt;
    }
    return std::string(v->get_string());
}

// NumericDate: integers, or JSON numbers with a fraction (truncated); absent -> 0.
bool time_claim(const json::object& payload, std::string_view name, std::int64_t& out) {
    const auto* v = payload.if_contains(name);
    if (v == nullptr) return true;
    if (v->is_int64()) {
        out = v->get_int64();
    } else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
        out = static_cast<std::int64_t>(v->get_uint64());
    } else if (v->is_double() && v->get_double() > -9e18 && v->get_double() < 9e18) {
        out = static_cast<std::int64_t>(v->get_double());
    } else {
        return false;
    }
    return true;
}

bool string_list_claim(const json::object& payload, std::string_view name,
                       std::vector<std::string>& out) {
    const auto* v = payload.if_contains(name);
    if (v == nullptr || v->is_null()) return true;
    if (!v->is_array()) return false;
    out.reserve(v->get_array().size());
    for (const auto& item : v->get_array()) {
        if (!item.is_string()) return false;
        out.emplace_back(item.get_string());
    }
    return true;
}

// A base64url JSON object segment, allocated from `storage`.
std::optional<json::value> parse_segment(std::string_view segment,
                                         const json::storage_ptr& storage) {
    const auto decoded = base64url_decode(segment);
    if (!decoded) return std::nullopt;
    boost::system::error_code ec;
    json::value value = json::parse(*decoded, ec, storage);
    if (ec || !value.is_object()) return std::nullopt;
    return value;
}

}  // namespace

std::string_view jwt_error_message(JwtError error) {
    switch (error) {
        case JwtError::Malformed:
            return "malformed token";
        case JwtError::AlgorithmMismatch:
            return "token algorithm not accepted";
        case JwtError::BadSignature:
            return "invalid token signature";
        case JwtError::Expired:
            return "token expired";
        case JwtError::NotYetValid:
            return "token not yet valid";
        case JwtError::WrongType:
            return "wrong token type";
        case JwtError::BadIssuer:
            return "wrong token issuer";
        case JwtError::BadAudience:
            return "wrong token audience";
        case JwtError::MissingClaim:
            return "token is missing a required claim";
    }
    return "invalid token";
}

Expected<JwtCodec, std::string> JwtCodec::create(JwtSettings settings) {
    const AlgInfo* alg = find_alg(settings.algorithm);
    if (alg == nullptr) {
        return unexpected("unsupported JWT algorithm '" + settings.algorithm + "'");
    }
    if (settings.leeway_seconds < 0) return unexpected(std::string("JWT leeway is negative"));

    JwtCodec codec;
    codec.libjwt_alg_ = static_cast<int>(alg->alg);

    if (alg->family == Family::Hmac) {
        if (settings.secret.size() < alg->hmac_min_secret) {
            return unexpected(settings.algorithm + " needs a secret of at least " +
                              std::to_string(alg->hmac_min_secret) + " bytes");
        }
        codec.hmac_ = detail::HmacKey::create(alg->digest, settings.secret);
        if (!codec.hmac_) return unexpected(std::string("cannot set up HMAC"));
        codec.sign_key_ = settings.secret;
        codec.verify_key_ = settings.secret;
        codec.settings_ = std::move(settings);
        codec.make_cache();
        return codec;
    }

    Pkey private_key;
    Pkey public_key;
    if (!settings.private_key_pem.empty()) {
        const Bio bio = mem_bio(settings.private_key_pem);
        private_key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
        if (!private_key) return unexpected(std::string("cannot parse the JWT private key PEM"));
    }
    if (!settings.public_key_pem.empty()) {
        const Bio bio = mem_bio(settings.public_key_pem);
        public_key.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
        if (!public_key) return unexpected(std::string("cannot parse the JWT public key PEM"));
    }
    if (!private_key && !public_key) {
        return unexpected(settings.algorithm + " needs a private or public key PEM");
    }
    if (private_key && public_key && EVP_PKEY_eq(private_key.get(), public_key.get()) != 1) {
        return unexpected(std::string("the JWT public key does not match the private key"));
    }
    EVP_PKEY* key = public_key ? public_key.get() : private_key.get();

    json::object jwk;
    std::string thumbprint_input;
    if (auto problem = describe_public_key(key, *alg, jwk, thumbprint_input)) {
        return unexpected("JWT " + settings.algorithm + ": " + *problem);
    }
    // Re-encoded so libjwt always receives SPKI / PKCS#8 PEM whatever form was configured.
    codec.verify_key_ = public_pem(key);
    if (private_key) codec.sign_key_ = private_pem(private_key.get());
    if (codec.verify_key_.empty() || (private_key && codec.sign_key_.empty())) {
        return unexpected(std::string("cannot re-encode the JWT keys"));
    }
    codec.key_id_ = settings.key_id.empty() ? sha256_b64(thumbprint_input) : settings.key_id;
    jwk["use"] = "sig";
    jwk["alg"] = settings.algorithm;
    jwk["kid"] = codec.key_id_;
    codec.jwk_ = json::serialize(jwk);
    codec.settings_ = std::move(settings);
    codec.make_cache();
    return codec;
}

std::string JwtCodec::sign(const Claims& claims) const {
    if (!can_sign()) throw std::logic_error("JwtCodec::sign: no signing key configured");

    json::object payload;
    if (!claims.sub.empty()) payload["sub"] = claims.sub;
    if (!claims.email.empty()) payload["email"] = claims.email;
    if (!claims.type.empty()) payload["type"] = claims.type;
    if (!claims.jti.empty()) payload["jti"] = claims.jti;
    if (!claims.family.empty()) payload["fam"] = claims.family;
    const std::string& iss = settings_.issuer.empty() ? claims.iss : settings_.issuer;
    const std::string& aud = settings_.audience.empty() ? claims.aud : settings_.audience;
    if (!iss.empty()) payload["iss"] = iss;
    if (!aud.empty()) payload["aud"] = aud;
    if (claims.iat != 0) payload["iat"] = claims.iat;
    if (claims.nbf != 0) payload["nbf"] = claims.nbf;
    if (claims.exp != 0) payload["exp"] = claims.exp;
    json::array roles(claims.roles.begin(), claims.roles.end());
    json::array permissions(claims.permissions.begin(), claims.permissions.end());
    payload["roles"] = std::move(roles);
    payload["permissions"] = std::move(permissions);
    const std::string payload_json = json::serialize(payload);

    jwt_t* raw = nullptr;
    if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new failed");
    const std::unique_ptr<jwt_t, JwtFree> jwt(raw);
    if (jwt_add_grants_json(jwt.get(), payload_json.c_str()) != 0 ||
        (!key_id_.empty() && jwt_add_header(jwt.get(), "kid", key_id_.c_str()) != 0) ||
        jwt_set_alg(jwt.get(), static_cast<jwt_alg_t>(libjwt_alg_),
                    reinterpret_cast<const unsigned char*>(sign_key_.data()),
                    static_cast<int>(sign_key_.size())) != 0) {
        throw std::runtime_error("libjwt rejected the token contents");
    }
    const std::unique_ptr<char, CharFree> encoded(jwt_encode_str(jwt.get()));
    if (!encoded) throw std::runtime_error("jwt_encode_str failed");
    return std::string(encoded.get());
}

void JwtCodec::make_cache() {
    if (settings_.verified_cache_entries > 0) {
        cache_ = std::make_shared<detail::VerifiedTokenCache>(settings_.verified_cache_entries);
    }
}

Expected<std::shared_ptr<const Claims>, JwtError> JwtCodec::verify(
    std::string_view token, std::string_view expected_type, std::int64_t now_epoch_seconds) const {
    if (cache_) {
        if (auto hit = cache_->find(token)) {
            const auto checked = check_time_and_type(*hit, expected_type, now_epoch_seconds);
            if (!checked) return unexpected(checked.error());
            return hit;
        }
    }
    auto verified = verify_with_libjwt(token);
    if (!verified) return unexpected(verified.error());
    auto claims = std::make_shared<const Claims>(std::move(*verified));
    const auto checked = check_time_and_type(*claims, expected_type, now_epoch_seconds);
    // An expired token can never become valid again; anything else may be presented again.
    if (cache_ && (checked || checked.error() != JwtError::Expired)) cache_->insert(token, claims);
    if (!checked) return unexpected(checked.error());
    return claims;
}

Expected<void, JwtError> JwtCodec::check_time_and_type(const Claims& claims,
                                                       std::string_view expected_type,
                                                       std::int64_t now_epoch_seconds) const {
    const std::int64_t leeway = settings_.leeway_seconds;
    if (now_epoch_seconds - leeway >= claims.exp) return unexpected(JwtError::Expired);
    if (claims.nbf != 0 && now_epoch_seconds + leeway < claims.nbf) {
        return unexpected(JwtError::NotYetValid);
    }
    if (claims.iat != 0 && now_epoch_seconds + leeway < claims.iat) {
        return unexpected(JwtError::NotYetValid);
    }
    if (!expected_type.empty() && claims.type != expected_type) {
        return unexpected(JwtError::WrongType);
    }
    return {};
}

// Everything that depends on the token alone (format, algorithm, signature, required claims,
// issuer, audience), so its result can be cached.
Expected<Claims, JwtError> JwtCodec::verify_with_libjwt(std::string_view token) const {
    if (token.empty() || token.size() > kMaxTokenBytes) return unexpected(JwtError::Malformed);
    const std::size_t dot1 = token.find('.');
    if (dot1 == std::string_view::npos) return unexpected(JwtError::Malformed);
    const std::size_t dot2 = token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
        return unexpected(JwtError::Malformed);
    }
    const std::string_view header_b64 = token.substr(0, dot1);
    const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    const std::string_view signature_b64 = token.substr(dot2 + 1);

    // Small tokens parse without touching the heap.
    platform::json::StackArena<4096> arena;
    json::storage_ptr storage = arena.storage();

    // 1. The algorithm is ours, not the token's: this is what defeats "alg":"none" and
    //    HS256-signed-with-the-RSA-public-key, before any key is handed to libjwt.
    const auto header = parse_segment(header_b64, storage);
    if (!header) return unexpected(JwtError::Malformed);
    const auto* alg = header->get_object().if_contains("alg");
    if (alg == nullptr || !alg->is_string()) return unexpected(JwtError::Malformed);
    if (alg->get_string() != settings_.algorithm) return unexpected(JwtError::AlgorithmMismatch);
    // Extensions we do not implement must not be silently ignored (RFC 7515 §4.1.11).
    if (header->get_object().contains("crit")) return unexpected(JwtError::Malformed);

    const auto payload_value = parse_segment(payload_b64, storage);
    if (!payload_value) return unexpected(JwtError::Malformed);
    const auto signature = signature_b64.empty() ? std::nullopt : base64url_decode(signature_b64);
    if (!signature) return unexpected(JwtError::Malformed);
    if (hmac_ && !hmac_->matches(token.substr(0, dot2), *signature)) {
        return unexpected(JwtError::BadSignature);
    }

    // 2. Signature: libjwt verifies it with the configured key (HS* tokens were already checked
    //    in constant time above, so libjwt's strcmp never compares a wrong HMAC).
    {
        const std::string token_z(token);
        jwt_t* raw = nullptr;
        const int rc = jwt_decode(&raw, token_z.c_str(),
                                  reinterpret_cast<const unsigned char*>(verify_key_.data()),
                                  static_cast<int>(verify_key_.size()));
        const std::unique_ptr<jwt_t, JwtFree> jwt(raw);
        if (rc != 0 || !jwt || jwt_get_alg(jwt.get()) != static_cast<jwt_alg_t>(libjwt_alg_)) {
            return unexpected(JwtError::BadSignature);
        }
    }

    // 3. Claims.
    const json::object& payload = payload_value->get_object();
    Claims claims;
    bool malformed = false;
    claims.sub = string_claim(payload, "sub", malformed).value_or("");
    claims.email = string_claim(payload, "email", malformed).value_or("");
    claims.jti = string_claim(payload, "jti", malformed).value_or("");
    claims.iss = string_claim(payload, "iss", malformed).value_or("");
    claims.family = string_claim(payload, "fam", malformed).value_or("");
    auto type = string_claim(payload, "type", malformed);
    if (!type) type = string_claim(payload, "typ", malformed);
    claims.type = type.value_or("");
    if (malformed || !time_claim(payload, "exp", claims.exp) ||
        !time_claim(payload, "nbf", claims.nbf) || !time_claim(payload, "iat", claims.iat) ||
        !string_list_claim(payload, "roles", claims.roles) ||
        !string_list_claim(payload, "permissions", claims.permissions)) {
        return unexpected(JwtError::Malformed);
    }
    std::vector<std::string> audiences;
    if (const auto* aud = payload.if_contains("aud")) {
        if (aud->is_string()) {
            audiences.emplace_back(aud->get_string());
        } else if (!string_list_claim(payload, "aud", audiences)) {
            return unexpected(JwtError::Malformed);
        }
    }
    if (!audiences.empty()) claims.aud = audiences.front();

    if (!payload.contains("exp") || claims.sub.empty()) return unexpected(JwtError::MissingClaim);
    if (!settings_.issuer.empty() && claims.iss != settings_.issuer) {
        return unexpected(JwtError::BadIssuer);
    }
    if (!settings_.audience.empty()) {
        bool found = false;
        for (const auto& a : audiences) found = found || a == settings_.audience;
        if (!found) return unexpected(JwtError::BadAudience);
        claims.aud = settings_.audience;
    }
    return claims;
}

std::string JwtCodec::jwks_json() const {
    if (jwk_.empty()) return R"({"keys":[]})";
    return R"({"keys":[)" + jwk_ + "]}";
}

}  // namespace aether::platform::auth
