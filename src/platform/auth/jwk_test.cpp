// Tests for parse_jwks/jwk_to_pem: round trips through JwtCodec, skipped keys, every rejection.
#include "platform/auth/jwk.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>

#include "platform/auth/jwt.h"
#include "platform/auth/tokens.h"

// GCC 12 flags designated initializers that leave defaulted members out (fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace aether::platform::auth {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

constexpr std::int64_t kNow = 1'700'000'000;

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

Key generate(const char* type, const char* curve) {
    Key key(curve != nullptr ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, curve)
                             : EVP_PKEY_Q_keygen(nullptr, nullptr, type, std::size_t{2048}),
            &EVP_PKEY_free);
    if (!key) throw std::runtime_error("keygen failed");
    return key;
}

std::string to_pem(EVP_PKEY* key, bool private_part) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    const int ok = private_part ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0,
                                                           nullptr, nullptr)
                                : PEM_write_bio_PUBKEY(bio.get(), key);
    if (ok != 1) throw std::runtime_error("PEM write failed");
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len));
}

struct KeyPair {
    std::string private_pem, public_pem;
};

KeyPair pair_of(EVP_PKEY* key) {
    return {to_pem(key, true), to_pem(key, false)};
}

// Keys are generated once per kind: RSA generation dominates the test's run time.
const KeyPair& test_key(const std::string& kind) {
    static const std::map<std::string, KeyPair> kKeys = [] {
        std::map<std::string, KeyPair> out;
        out["RSA"] = pair_of(generate("RSA", nullptr).get());
        out["RSA-other"] = pair_of(generate("RSA", nullptr).get());
        out["P-256"] = pair_of(generate("EC", "P-256").get());
        out["P-256-other"] = pair_of(generate("EC", "P-256").get());
        out["P-384"] = pair_of(generate("EC", "P-384").get());
        out["P-384-other"] = pair_of(generate("EC", "P-384").get());
        out["P-521"] = pair_of(generate("EC", "P-521").get());
        out["P-521-other"] = pair_of(generate("EC", "P-521").get());
        return out;
    }();
    return kKeys.at(kind);
}

JwtCodec make_codec(JwtSettings settings) {
    auto codec = JwtCodec::create(std::move(settings));
    if (!codec) throw std::runtime_error(codec.error());
    return std::move(codec).value();
}

Claims access_claims() {
    Claims c;
    c.sub = "usr_01HX";
    c.type = "access";
    c.iat = kNow - 10;
    c.exp = kNow + 900;
    return c;
}

// The first key of a codec's JWKS, as a JSON object to edit.
json::object jwk_of(const JwtCodec& codec) {
    return json::parse(codec.jwks_json()).as_object().at("keys").as_array().at(0).as_object();
}

// A JSON string holding `bytes` base64url-encoded.
json::value encoded(std::string_view bytes) {
    const std::string text = base64url_encode(bytes);
    return json::value(std::string_view(text));
}

std::string jwks_of(std::initializer_list<json::value> keys) {
    json::object doc;
    doc["keys"] = json::array(keys.begin(), keys.end());
    return json::serialize(doc);
}

// The error parse_jwks gives for a document holding `keys`; fails the test if it succeeds.
std::string error_for(const std::string& document) {
    const auto result = parse_jwks(document);
    if (result) {
        ADD_FAILURE() << "accepted: " << document.substr(0, 200);
        return {};
    }
    // A failed import must not leave errors behind for the next OpenSSL user on this thread.
    EXPECT_EQ(ERR_peek_error(), 0ul);
    return result.error();
}

std::string error_for_key(const json::object& key) {
    return error_for(jwks_of({json::object{{"kty", "oct"}, {"k", "AAAA"}}, key}));
}

struct RoundTripCase {
    std::string alg, key, other_key;
};

class JwksRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(JwksRoundTrip, ParsedKeyVerifiesTheIssuersTokensOnly) {
    const auto& param = GetParam();
    const auto signer = make_codec({.algorithm = param.alg,
                                    .private_key_pem = test_key(param.key).private_pem,
                                    .key_id = "kid-" + param.alg});
    const auto stranger = make_codec(
        {.algorithm = param.alg, .private_key_pem = test_key(param.other_key).private_pem});

    const auto keys = parse_jwks(signer.jwks_json());
    ASSERT_TRUE(keys) << keys.error();
    ASSERT_EQ(keys->size(), 1u);
    const JsonWebKey& key = keys->front();
    EXPECT_EQ(key.kid, "kid-" + param.alg);
    EXPECT_EQ(key.alg, param.alg);
    // The same SubjectPublicKeyInfo OpenSSL writes for the original key.
    EXPECT_EQ(key.public_key_pem, test_key(param.key).public_pem);

    const auto verifier = make_codec({.algorithm = key.alg, .public_key_pem = key.public_key_pem});
    const auto claims = verifier.verify(signer.sign(access_claims()), "access", kNow);
    ASSERT_TRUE(claims);
    EXPECT_EQ((*claims)->sub, "usr_01HX");
    const auto forged = verifier.verify(stranger.sign(access_claims()), "access", kNow);
    ASSERT_FALSE(forged);
    EXPECT_EQ(forged.error(), JwtError::BadSignature);

    const auto pem = jwk_to_pem(jwk_of(signer));
    ASSERT_TRUE(pem) << pem.error();
    EXPECT_EQ(*pem, key.public_key_pem);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, JwksRoundTrip,
                         ::testing::Values(RoundTripCase{"RS256", "RSA", "RSA-other"},
                                           RoundTripCase{"RS512", "RSA", "RSA-other"},
                                           RoundTripCase{"ES256", "P-256", "P-256-other"},
                                           RoundTripCase{"ES384", "P-384", "P-384-other"},
                                           RoundTripCase{"ES512", "P-521", "P-521-other"}),
                         [](const auto& info) { return info.param.alg; });

TEST(Jwks, AlgIsDerivedFromTheCurveOnlyForEcKeys) {
    const std::pair<std::string, std::string> cases[] = {
        {"P-256", "ES256"}, {"P-384", "ES384"}, {"P-521", "ES512"}};
    for (const auto& [curve, alg] : cases) {
        json::object jwk =
            jwk_of(make_codec({.algorithm = alg, .private_key_pem = test_key(curve).private_pem}));
        jwk.erase("alg");
        jwk.erase("kid");
        jwk.erase("use");
        const auto keys = parse_jwks(jwks_of({jwk}));
        ASSERT_TRUE(keys) << keys.error();
        ASSERT_EQ(keys->size(), 1u);
        EXPECT_EQ(keys->front().alg, alg);
        EXPECT_EQ(keys->front().kid, "");
    }
    json::object rsa =
        jwk_of(make_codec({.algorithm = "RS256", .private_key_pem = test_key("RSA").private_pem}));
    rsa.erase("alg");
    const auto keys = parse_jwks(jwks_of({rsa}));
    ASSERT_TRUE(keys) << keys.error();
    ASSERT_EQ(keys->size(), 1u);
    EXPECT_EQ(keys->front().alg, "");
    EXPECT_EQ(keys->front().public_key_pem, test_key("RSA").public_pem);
}

TEST(Jwks, PublishedAlgorithmsWeDoNotImplementArePassedThrough) {
    json::object rsa =
        jwk_of(make_codec({.algorithm = "RS256", .private_key_pem = test_key("RSA").private_pem}));
    rsa["alg"] = "PS256";
    const auto keys = parse_jwks(jwks_of({rsa}));
    ASSERT_TRUE(keys) << keys.error();
    ASSERT_EQ(keys->size(), 1u);
    EXPECT_EQ(keys->front().alg, "PS256");
}

// RFC 7518 wants full-size coordinates, but some encoders drop leading zero bytes.
TEST(Jwks, ShortEcCoordinateIsLeftPadded) {
    for (int attempt = 0; attempt < 5000; ++attempt) {
        const Key key = generate("EC", "P-256");
        const auto codec =
            make_codec({.algorithm = "ES256", .public_key_pem = to_pem(key.get(), false)});
        json::object jwk = jwk_of(codec);
        const auto x = base64url_decode(std::string_view(jwk.at("x").as_string()));
        ASSERT_TRUE(x);
        ASSERT_EQ(x->size(), 32u);
        if ((*x)[0] != '\0') continue;
        jwk["x"] = base64url_encode(std::string_view(*x).substr(1));
        const auto keys = parse_jwks(jwks_of({jwk}));
        ASSERT_TRUE(keys) << keys.error();
        ASSERT_EQ(keys->size(), 1u);
        EXPECT_EQ(keys->front().public_key_pem, to_pem(key.get(), false));
        return;
    }
    FAIL() << "no P-256 key with a leading zero byte in x in 5000 keys";
}

TEST(Jwks, KeysOfOtherKindsAreSkipped) {
    const json::object rsa = jwk_of(make_codec(
        {.algorithm = "RS256", .private_key_pem = test_key("RSA").private_pem, .key_id = "rsa"}));
    json::object enc = rsa;
    enc["use"] = "enc";
    enc["kid"] = "enc";
    json::object oaep = rsa;
    oaep.erase("use");
    oaep["alg"] = "RSA-OAEP-256";
    json::object ecdh = jwk_of(
        make_codec({.algorithm = "ES256", .private_key_pem = test_key("P-256").private_pem}));
    ecdh.erase("use");
    ecdh["alg"] = "ECDH-ES+A128KW";
    const std::string document = jwks_of({
        json::object{{"kty", "oct"}, {"k", "c2VjcmV0"}, {"kid", "hmac"}},
        json::object{{"kty", "OKP"},
                     {"crv", "Ed25519"},
                     {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}},
        // An unsupported key type is skipped whatever its members look like.
        json::object{{"kty", "oct"}, {"k", 42}},
        enc,
        oaep,
        ecdh,
        rsa,
    });
    const auto keys = parse_jwks(document);
    ASSERT_TRUE(keys) << keys.error();
    ASSERT_EQ(keys->size(), 1u);
    EXPECT_EQ(keys->front().kid, "rsa");

    const auto empty = parse_jwks(R"({"keys":[]})");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
}

TEST(Jwks, HundredKeysAreAcceptedAndMoreAreNot) {
    json::array keys;
    for (int i = 0; i < 100; ++i) keys.push_back(json::object{{"kty", "oct"}, {"k", "AA"}});
    json::object doc{{"keys", keys}};
    const auto hundred = parse_jwks(json::serialize(doc));
    ASSERT_TRUE(hundred) << hundred.error();
    EXPECT_TRUE(hundred->empty());
    doc["keys"].as_array().push_back(json::object{{"kty", "oct"}, {"k", "AA"}});
    EXPECT_THAT(error_for(json::serialize(doc)), HasSubstr("more than 100 keys"));
}

TEST(Jwks, DocumentErrors) {
    EXPECT_THAT(error_for(""), HasSubstr("not valid JSON"));
    EXPECT_THAT(error_for(R"({"keys":[)"), HasSubstr("not valid JSON"));
    EXPECT_THAT(error_for("[]"), HasSubstr("not a JSON object"));
    EXPECT_THAT(error_for(R"("keys")"), HasSubstr("not a JSON object"));
    EXPECT_THAT(error_for("{}"), HasSubstr("no \"keys\" array"));
    EXPECT_THAT(error_for(R"({"keys":{}})"), HasSubstr("no \"keys\" array"));
    EXPECT_THAT(error_for(R"({"keys":"[]"})"), HasSubstr("no \"keys\" array"));
    EXPECT_THAT(error_for(R"({"keys":[1]})"), HasSubstr("JWKS key 0 is not a JSON object"));
    EXPECT_THAT(error_for(R"({"keys":[{"kty":"oct"},[]]})"),
                HasSubstr("JWKS key 1 is not a JSON object"));
    // Over the size limit even though the JSON is fine.
    EXPECT_THAT(error_for(R"({"keys":[]})" + std::string(256 * 1024, ' ')),
                HasSubstr("larger than 256 KiB"));
}

TEST(Jwks, MalformedRsaMembersNameTheKeyAndMember) {
    const json::object rsa =
        jwk_of(make_codec({.algorithm = "RS256", .private_key_pem = test_key("RSA").private_pem}));
    const auto with = [&](std::string_view name, json::value value) {
        json::object jwk = rsa;
        jwk[name] = std::move(value);
        return error_for_key(jwk);
    };
    const auto without = [&](std::string_view name) {
        json::object jwk = rsa;
        jwk.erase(name);
        return error_for_key(jwk);
    };
    EXPECT_EQ(without("n"), "JWKS key 1: member \"n\" is missing");
    EXPECT_EQ(without("e"), "JWKS key 1: member \"e\" is missing");
    EXPECT_EQ(without("kty"), "JWKS key 1: member \"kty\" is missing");
    EXPECT_EQ(with("n", 12345), "JWKS key 1: member \"n\" is not a string");
    EXPECT_EQ(with("n", "AQAB+"), "JWKS key 1: member \"n\" is not valid base64url");
    EXPECT_EQ(with("n", "AQA="), "JWKS key 1: member \"n\" is not valid base64url");
    EXPECT_EQ(with("n", "AQAC"), "JWKS key 1: member \"n\" is not an RSA modulus");
    EXPECT_EQ(with("n", ""), "JWKS key 1: member \"n\" is empty");
    EXPECT_EQ(with("n", encoded("\x01" + std::string(2048, '\x01'))),
              "JWKS key 1: member \"n\" is longer than 16384 bits");
    EXPECT_EQ(with("e", "AA"), "JWKS key 1: member \"e\" is not an RSA public exponent");
    EXPECT_EQ(with("e", "AQ"), "JWKS key 1: member \"e\" is not an RSA public exponent");
    EXPECT_EQ(with("e", "AQAA"), "JWKS key 1: member \"e\" is not an RSA public exponent");
    EXPECT_EQ(with("e", encoded(std::string(9, '\x01'))),
              "JWKS key 1: member \"e\" is longer than 64 bits");
    EXPECT_EQ(with("kty", nullptr), "JWKS key 1: member \"kty\" is not a string");
    EXPECT_EQ(with("use", true), "JWKS key 1: member \"use\" is not a string");
    EXPECT_EQ(with("kid", 7), "JWKS key 1: member \"kid\" is not a string");
    EXPECT_EQ(with("alg", json::array()), "JWKS key 1: member \"alg\" is not a string");
    EXPECT_EQ(with("alg", "ES256"), "JWKS key 1: member \"alg\" does not fit an RSA key");
    EXPECT_EQ(with("alg", "HS256"), "JWKS key 1: member \"alg\" does not fit an RSA key");
}

TEST(Jwks, MalformedEcMembersNameTheKeyAndMember) {
    const json::object ec = jwk_of(
        make_codec({.algorithm = "ES256", .private_key_pem = test_key("P-256").private_pem}));
    const auto with = [&](std::string_view name, json::value value) {
        json::object jwk = ec;
        jwk[name] = std::move(value);
        return error_for_key(jwk);
    };
    const auto without = [&](std::string_view name) {
        json::object jwk = ec;
        jwk.erase(name);
        return error_for_key(jwk);
    };
    const std::string x = *base64url_decode(std::string_view(ec.at("x").as_string()));
    std::string y = *base64url_decode(std::string_view(ec.at("y").as_string()));

    EXPECT_EQ(without("crv"), "JWKS key 1: member \"crv\" is missing");
    EXPECT_EQ(without("x"), "JWKS key 1: member \"x\" is missing");
    EXPECT_EQ(without("y"), "JWKS key 1: member \"y\" is missing");
    EXPECT_EQ(with("crv", "secp256k1"),
              "JWKS key 1: member \"crv\" is not one of P-256, P-384, P-521");
    EXPECT_EQ(with("crv", "P-384"),  // a P-256 point is not on P-384
              "JWKS key 1: members \"x\" and \"y\" are not a point on P-384");
    EXPECT_EQ(with("crv", 256), "JWKS key 1: member \"crv\" is not a string");
    EXPECT_EQ(with("x", encoded(std::string(1, '\0') + x)),
              "JWKS key 1: member \"x\" is longer than a P-256 coordinate (32 bytes)");
    EXPECT_EQ(with("y", encoded(y + "\x01")),
              "JWKS key 1: member \"y\" is longer than a P-256 coordinate (32 bytes)");
    EXPECT_EQ(with("x", "AAAA*"), "JWKS key 1: member \"x\" is not valid base64url");
    EXPECT_EQ(with("y", ""), "JWKS key 1: member \"y\" is empty");
    y.back() = static_cast<char>(y.back() ^ 1);
    EXPECT_EQ(with("y", encoded(y)),
              "JWKS key 1: members \"x\" and \"y\" are not a point on P-256");
    EXPECT_EQ(with("x", encoded(std::string(32, '\0'))),
              "JWKS key 1: members \"x\" and \"y\" are not a point on P-256");
    EXPECT_EQ(with("alg", "ES384"), "JWKS key 1: member \"alg\" does not fit a P-256 key");
    EXPECT_EQ(with("alg", "RS256"), "JWKS key 1: member \"alg\" does not fit a P-256 key");
}

TEST(Jwk, ToPemRejectsWhatItCannotConvert) {
    const auto oct = jwk_to_pem(json::object{{"kty", "oct"}, {"k", "AAAA"}});
    ASSERT_FALSE(oct);
    EXPECT_EQ(oct.error(), "member \"kty\" is not RSA or EC");
    const auto missing = jwk_to_pem(json::object{{"kty", "RSA"}, {"e", "AQAB"}});
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), "member \"n\" is missing");
    const auto no_kty = jwk_to_pem(json::object{});
    ASSERT_FALSE(no_kty);
    EXPECT_EQ(no_kty.error(), "member \"kty\" is missing");
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

// Truncations and random byte edits of real documents: any answer is fine, crashing or
// leaking (under ASan) is not, and whatever is accepted must be a usable key.
TEST(Jwks, TruncatedAndMutatedDocumentsNeverCrash) {
    const json::object rsa =
        jwk_of(make_codec({.algorithm = "RS256", .private_key_pem = test_key("RSA").private_pem}));
    const json::object ec = jwk_of(
        make_codec({.algorithm = "ES384", .private_key_pem = test_key("P-384").private_pem}));
    const std::vector<std::string> seeds = {
        jwks_of({rsa}),
        jwks_of({ec}),
        jwks_of({json::object{{"kty", "oct"}, {"k", "AA"}}, ec, rsa}),
        R"({"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]})",
    };
    int accepted = 0, rejected = 0;
    const auto check = [&](const std::string& input) {
        const auto keys = parse_jwks(input);
        if (!keys) {
            ++rejected;
            EXPECT_FALSE(keys.error().empty());
            return;
        }
        ++accepted;
        for (const auto& key : *keys) {
            EXPECT_TRUE(key.public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        }
    };
    for (const auto& seed : seeds) {
        for (std::size_t len = 0; len <= seed.size(); ++len) check(seed.substr(0, len));
    }
    std::mt19937 random(20261128);
    for (int round = 0; round < 4000; ++round) {
        std::string input = seeds[random() % seeds.size()];
        const int edits = 1 + static_cast<int>(random() % 4);
        for (int edit = 0; edit < edits; ++edit) {
            switch (random() % 3) {
                case 0:
                    if (!input.empty())
                        input[random() % input.size()] = static_cast<char>(random());
                    break;
                case 1:
                    input.insert(input.begin() + static_cast<long>(random() % (input.size() + 1)),
                                 static_cast<char>(random()));
                    break;
                default:
                    if (!input.empty()) input.erase(random() % input.size(), 1);
            }
        }
        check(input);
    }
    // Both paths were exercised (the seed is fixed, so these counts are too).
    EXPECT_GT(accepted, 100);
    EXPECT_GT(rejected, 100);
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

}  // namespace
}  // namespace aether::platform::auth
