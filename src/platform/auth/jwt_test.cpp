// Tests for JwtCodec: round trips, every known forgery, claim checks, and PyJWT compatibility.
#include "platform/auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <atomic>
#include <boost/json.hpp>
#include <memory>
#include <thread>

#include "platform/auth/python_test_util.h"
#include "platform/auth/tokens.h"

// GCC 12 flags designated initializers that leave defaulted members out (fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace aether::platform::auth {

void PrintTo(JwtError error, std::ostream* os) {
    *os << jwt_error_message(error);
}

namespace {

namespace json = boost::json;
using testing::run_python;

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";

struct TestKeys {
    std::string rsa_private, rsa_public, ec_private, ec_public, other_rsa_private;
};

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

const TestKeys& keys() {
    static const TestKeys k = [] {
        TestKeys out;
        using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
        Key rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}), &EVP_PKEY_free);
        Key rsa2(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}), &EVP_PKEY_free);
        Key ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free);
        if (!rsa || !rsa2 || !ec) throw std::runtime_error("keygen failed");
        out.rsa_private = to_pem(rsa.get(), true);
        out.rsa_public = to_pem(rsa.get(), false);
        out.other_rsa_private = to_pem(rsa2.get(), true);
        out.ec_private = to_pem(ec.get(), true);
        out.ec_public = to_pem(ec.get(), false);
        return out;
    }();
    return k;
}

JwtCodec make_codec(JwtSettings settings) {
    auto codec = JwtCodec::create(std::move(settings));
    if (!codec) throw std::runtime_error(codec.error());
    return std::move(codec).value();
}

JwtCodec hs256() {
    return make_codec({.secret = kSecret});
}

Claims access_claims() {
    Claims c;
    c.sub = "usr_01HX";
    c.email = "ada@example.com";
    c.type = "access";
    c.jti = "jti-1";
    c.roles = {"user", "developer"};
    c.permissions = {"tasks:read", "ai:use"};
    c.iat = kNow - 10;
    c.exp = kNow + 900;
    return c;
}

// Builds a token by hand, HMAC-signed with `key`, to forge what libjwt would never produce.
std::string hmac_token(std::string_view header, std::string_view payload, std::string_view key,
                       const EVP_MD* md) {
    const std::string input = base64url_encode(header) + "." + base64url_encode(payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(md, key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return input + "." + base64url_encode(std::string_view(reinterpret_cast<char*>(mac), len));
}

const std::string kPayload =
    R"({"sub":"usr_1","type":"access","roles":["admin"],"exp":1700000900,"iat":1699999990})";

std::vector<std::string> split(const std::string& token) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t dot; (dot = token.find('.', start)) != std::string::npos; start = dot + 1) {
        parts.push_back(token.substr(start, dot - start));
    }
    parts.push_back(token.substr(start));
    return parts;
}

TEST(Jwt, Hs256RoundTrip) {
    const auto codec = make_codec({.secret = kSecret, .issuer = "aether", .audience = "api"});
    Claims in = access_claims();
    in.family = "fam-1";
    in.nbf = kNow - 5;
    const std::string token = codec.sign(in);
    EXPECT_EQ(split(token).size(), 3u);

    const auto out = codec.verify(token, "access", kNow);
    ASSERT_TRUE(out) << jwt_error_message(out.error());
    EXPECT_EQ((*out)->sub, in.sub);
    EXPECT_EQ((*out)->email, in.email);
    EXPECT_EQ((*out)->type, "access");
    EXPECT_EQ((*out)->jti, "jti-1");
    EXPECT_EQ((*out)->family, "fam-1");
    EXPECT_EQ((*out)->iss, "aether");
    EXPECT_EQ((*out)->aud, "api");
    EXPECT_EQ((*out)->roles, in.roles);
    EXPECT_EQ((*out)->permissions, in.permissions);
    EXPECT_EQ((*out)->iat, in.iat);
    EXPECT_EQ((*out)->nbf, in.nbf);
    EXPECT_EQ((*out)->exp, in.exp);
    EXPECT_TRUE(codec.verify(token, "", kNow));  // empty expected type accepts any
    EXPECT_EQ(codec.jwks_json(), R"({"keys":[]})");
}

TEST(Jwt, Rs256RoundTripAndJwks) {
    const auto codec = make_codec({.algorithm = "RS256", .private_key_pem = keys().rsa_private});
    const auto out = codec.verify(codec.sign(access_claims()), "access", kNow);
    ASSERT_TRUE(out) << jwt_error_message(out.error());
    EXPECT_EQ((*out)->roles, access_claims().roles);

    // A verify-only codec built from the public key accepts the same tokens.
    const auto verifier = make_codec({.algorithm = "RS256", .public_key_pem = keys().rsa_public});
    EXPECT_FALSE(verifier.can_sign());
    EXPECT_TRUE(verifier.verify(codec.sign(access_claims()), "access", kNow));
    EXPECT_THROW((void)verifier.sign(access_claims()), std::logic_error);

    const auto jwks = json::parse(codec.jwks_json());
    const auto& key = jwks.at("keys").at(0).as_object();
    EXPECT_EQ(jwks.at("keys").as_array().size(), 1u);
    EXPECT_EQ(key.at("kty"), "RSA");
    EXPECT_EQ(key.at("alg"), "RS256");
    EXPECT_EQ(key.at("use"), "sig");
    EXPECT_EQ(key.at("e"), "AQAB");
    EXPECT_EQ(base64url_decode(key.at("n").as_string())->size(), 256u);
    EXPECT_EQ(std::string(key.at("kid").as_string()), codec.key_id());
    EXPECT_EQ(verifier.key_id(), codec.key_id());  // thumbprint of the same public key
    const auto header = json::parse(*base64url_decode(split(codec.sign(access_claims()))[0]));
    EXPECT_EQ(std::string(header.at("kid").as_string()), codec.key_id());
}

TEST(Jwt, Es256RoundTripAndJwks) {
    const auto codec =
        make_codec({.algorithm = "ES256", .private_key_pem = keys().ec_private, .key_id = "ec-1"});
    const auto out = codec.verify(codec.sign(access_claims()), "access", kNow);
    ASSERT_TRUE(out) << jwt_error_message(out.error());
    // JOSE ECDSA signatures are raw r||s (64 bytes for P-256), not DER.
    EXPECT_EQ(base64url_decode(split(codec.sign(access_claims()))[2])->size(), 64u);
    const auto jwks = json::parse(codec.jwks_json());
    const auto& key = jwks.at("keys").at(0).as_object();
    EXPECT_EQ(key.at("kty"), "EC");
    EXPECT_EQ(key.at("crv"), "P-256");
    EXPECT_EQ(key.at("kid"), "ec-1");
    EXPECT_EQ(base64url_decode(key.at("x").as_string())->size(), 32u);
    EXPECT_EQ(base64url_decode(key.at("y").as_string())->size(), 32u);
}

TEST(Jwt, CreateRejectsBadSettings) {
    EXPECT_FALSE(JwtCodec::create({.algorithm = "none", .secret = kSecret}));
    EXPECT_FALSE(JwtCodec::create({.algorithm = "HS256", .secret = "short"}));
    EXPECT_FALSE(JwtCodec::create({.algorithm = "RS256"}));
    EXPECT_FALSE(JwtCodec::create({.algorithm = "RS256", .private_key_pem = "not a pem"}));
    EXPECT_FALSE(JwtCodec::create({.algorithm = "RS256", .private_key_pem = keys().ec_private}));
    EXPECT_FALSE(JwtCodec::create({.algorithm = "ES256", .private_key_pem = keys().rsa_private}));
    EXPECT_FALSE(JwtCodec::create({.algorithm = "ES384", .private_key_pem = keys().ec_private}));
    EXPECT_FALSE(JwtCodec::create({.algorithm = "RS256",
                                   .private_key_pem = keys().other_rsa_private,
                                   .public_key_pem = keys().rsa_public}));
}

TEST(JwtAttack, AlgNoneIsRejected) {
    const auto codec = hs256();
    const std::string unsigned_token =
        base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." + base64url_encode(kPayload) + ".";
    EXPECT_EQ(codec.verify(unsigned_token, "access", kNow).error(), JwtError::AlgorithmMismatch);
    EXPECT_EQ(codec.verify(unsigned_token + "c2ln", "access", kNow).error(),
              JwtError::AlgorithmMismatch);
    const std::string none_caps =
        base64url_encode(R"({"alg":"None"})") + "." + base64url_encode(kPayload) + ".";
    EXPECT_EQ(codec.verify(none_caps, "access", kNow).error(), JwtError::AlgorithmMismatch);
}

TEST(JwtAttack, Hs512TokenRejectedByHs256Codec) {
    const std::string token =
        hmac_token(R"({"alg":"HS512","typ":"JWT"})", kPayload, kSecret, EVP_sha512());
    EXPECT_EQ(hs256().verify(token, "access", kNow).error(), JwtError::AlgorithmMismatch);
    // Control: the same payload signed HS256 with the same secret is accepted.
    EXPECT_TRUE(hs256().verify(
        hmac_token(R"({"alg":"HS256","typ":"JWT"})", kPayload, kSecret, EVP_sha256()), "access",
        kNow));
}

TEST(JwtAttack, RsaPublicKeyUsedAsHmacSecretIsRejected) {
    const auto codec = make_codec({.algorithm = "RS256", .public_key_pem = keys().rsa_public});
    // The attacker knows the public key and signs HS256 with its PEM text as the HMAC secret,
    // hoping the verifier hands "its key" to whatever algorithm the token names.
    for (const std::string& secret : {keys().rsa_public, keys().rsa_public + "\n"}) {
        const std::string forged =
            hmac_token(R"({"alg":"HS256","typ":"JWT"})", kPayload, secret, EVP_sha256());
        EXPECT_EQ(codec.verify(forged, "access", kNow).error(), JwtError::AlgorithmMismatch);
        // Also when produced by a real HS256 signer.
        const auto attacker = make_codec({.secret = secret});
        EXPECT_EQ(codec.verify(attacker.sign(access_claims()), "access", kNow).error(),
                  JwtError::AlgorithmMismatch);
    }
}

TEST(JwtAttack, Es256TokenRejectedByRs256Codec) {
    const auto es = make_codec({.algorithm = "ES256", .private_key_pem = keys().ec_private});
    const auto rs = make_codec({.algorithm = "RS256", .private_key_pem = keys().rsa_private});
    EXPECT_EQ(rs.verify(es.sign(access_claims()), "access", kNow).error(),
              JwtError::AlgorithmMismatch);
}

TEST(JwtAttack, BadSignatureIsRejected) {
    const auto other = make_codec({.secret = kSecret + "-other"});
    EXPECT_EQ(hs256().verify(other.sign(access_claims()), "access", kNow).error(),
              JwtError::BadSignature);
    // Same algorithm, different RSA key.
    const auto rs = make_codec({.algorithm = "RS256", .public_key_pem = keys().rsa_public});
    const auto rs_other =
        make_codec({.algorithm = "RS256", .private_key_pem = keys().other_rsa_private});
    EXPECT_EQ(rs.verify(rs_other.sign(access_claims()), "access", kNow).error(),
              JwtError::BadSignature);
}

TEST(JwtAttack, TamperedPayloadIsRejected) {
    const auto codec = hs256();
    const auto parts = split(codec.sign(access_claims()));
    auto payload = json::parse(*base64url_decode(parts[1])).as_object();
    payload["roles"] = json::array{"admin"};
    const std::string tampered =
        parts[0] + "." + base64url_encode(json::serialize(payload)) + "." + parts[2];
    EXPECT_EQ(codec.verify(tampered, "access", kNow).error(), JwtError::BadSignature);

    std::string flipped_sig = parts[2];
    flipped_sig[3] = flipped_sig[3] == 'A' ? 'B' : 'A';
    EXPECT_EQ(codec.verify(parts[0] + "." + parts[1] + "." + flipped_sig, "access", kNow).error(),
              JwtError::BadSignature);
}

TEST(JwtClaims, ExpiredAndLeeway) {
    const auto codec = hs256();  // leeway 30 s
    Claims c = access_claims();
    c.iat = kNow - 1000;
    c.exp = kNow - 31;
    EXPECT_EQ(codec.verify(codec.sign(c), "access", kNow).error(), JwtError::Expired);
    c.exp = kNow - 30;
    EXPECT_EQ(codec.verify(codec.sign(c), "access", kNow).error(), JwtError::Expired);
    c.exp = kNow - 29;
    EXPECT_TRUE(codec.verify(codec.sign(c), "access", kNow));

    const auto strict = make_codec({.secret = kSecret, .leeway_seconds = 0});
    c.exp = kNow;
    EXPECT_EQ(strict.verify(strict.sign(c), "access", kNow).error(), JwtError::Expired);
    c.exp = kNow + 1;
    EXPECT_TRUE(strict.verify(strict.sign(c), "access", kNow));
}

TEST(JwtClaims, NotBeforeInTheFuture) {
    const auto codec = hs256();
    Claims c = access_claims();
    c.nbf = kNow + 31;
    EXPECT_EQ(codec.verify(codec.sign(c), "access", kNow).error(), JwtError::NotYetValid);
    c.nbf = kNow + 29;
    EXPECT_TRUE(codec.verify(codec.sign(c), "access", kNow));
    c.nbf = 0;
    c.iat = kNow + 120;  // issued in the future beyond the leeway
    EXPECT_EQ(codec.verify(codec.sign(c), "access", kNow).error(), JwtError::NotYetValid);
}

TEST(JwtClaims, RefreshTokenUsedAsAccessToken) {
    const auto codec = hs256();
    Claims c = access_claims();
    c.type = "refresh";
    const std::string refresh = codec.sign(c);
    EXPECT_EQ(codec.verify(refresh, "access", kNow).error(), JwtError::WrongType);
    EXPECT_TRUE(codec.verify(refresh, "refresh", kNow));
    c.type.clear();
    EXPECT_EQ(codec.verify(codec.sign(c), "access", kNow).error(), JwtError::WrongType);
}

TEST(JwtClaims, IssuerAndAudience) {
    const auto ours = make_codec({.secret = kSecret, .issuer = "aether", .audience = "api"});
    const auto wrong_iss = make_codec({.secret = kSecret, .issuer = "evil", .audience = "api"});
    const auto wrong_aud = make_codec({.secret = kSecret, .issuer = "aether", .audience = "web"});
    const auto none = hs256();
    EXPECT_EQ(ours.verify(wrong_iss.sign(access_claims()), "access", kNow).error(),
              JwtError::BadIssuer);
    EXPECT_EQ(ours.verify(wrong_aud.sign(access_claims()), "access", kNow).error(),
              JwtError::BadAudience);
    EXPECT_EQ(ours.verify(none.sign(access_claims()), "access", kNow).error(), JwtError::BadIssuer);
    // An audience list containing ours is accepted.
    const std::string multi = hmac_token(
        R"({"alg":"HS256"})",
        R"({"sub":"u","exp":1700000900,"iss":"aether","aud":["web","api"],"type":"access"})",
        kSecret, EVP_sha256());
    EXPECT_TRUE(ours.verify(multi, "access", kNow));
}

TEST(JwtClaims, RequiredClaims) {
    const auto codec = hs256();
    Claims c = access_claims();
    c.exp = 0;
    EXPECT_EQ(codec.verify(codec.sign(c), "access", kNow).error(), JwtError::MissingClaim);
    c = access_claims();
    c.sub.clear();
    EXPECT_EQ(codec.verify(codec.sign(c), "access", kNow).error(), JwtError::MissingClaim);
}

TEST(JwtClaims, WronglyTypedClaimsAreMalformed) {
    const auto codec = hs256();
    const auto signed_payload = [&](std::string_view payload) {
        return hmac_token(R"({"alg":"HS256"})", payload, kSecret, EVP_sha256());
    };
    EXPECT_EQ(codec.verify(signed_payload(R"({"sub":"u","exp":"soon"})"), "", kNow).error(),
              JwtError::Malformed);
    EXPECT_EQ(
        codec.verify(signed_payload(R"({"sub":"u","exp":1700000900,"roles":"admin"})"), "", kNow)
            .error(),
        JwtError::Malformed);
    EXPECT_EQ(codec.verify(signed_payload(R"({"sub":42,"exp":1700000900})"), "", kNow).error(),
              JwtError::Malformed);
    // Fractional NumericDate is allowed (RFC 7519 §2).
    EXPECT_TRUE(codec.verify(signed_payload(R"({"sub":"u","exp":1700000900.5})"), "", kNow));
}

TEST(JwtMalformed, SegmentsBase64AndJson) {
    const auto codec = hs256();
    const auto parts = split(codec.sign(access_claims()));
    const std::string h = parts[0], p = parts[1], s = parts[2];
    const std::vector<std::string> bad = {
        "",
        "abc",
        h + "." + p,
        h + "." + p + "." + s + "." + s,
        h + "." + p + ".",             // empty signature
        "." + p + "." + s,             // empty header
        h + ".." + s,                  // empty payload
        "!!!." + p + "." + s,          // not base64url
        h + "." + p + "=." + s,        // padding
        h + "." + p + "." + s + "==",  // padded signature
        h + "." + p + "." + s + "*",   // bad signature characters
        base64url_encode("not json") + "." + p + "." + s,
        base64url_encode(R"(["HS256"])") + "." + p + "." + s,
        base64url_encode(R"({"typ":"JWT"})") + "." + p + "." + s,  // no alg
        base64url_encode(R"({"alg":256})") + "." + p + "." + s,    // alg not a string
        h + "." + base64url_encode("{\"sub\":") + "." + s,         // truncated json
        h + "." + base64url_encode("[1,2]") + "." + s,             // payload not object
        std::string(9000, 'a'),                                    // oversized
    };
    for (const auto& token : bad) {
        const auto result = codec.verify(token, "access", kNow);
        ASSERT_FALSE(result) << token;
        EXPECT_EQ(result.error(), JwtError::Malformed) << token;
    }
    // A critical header extension we do not understand must not be ignored.
    const std::string crit =
        hmac_token(R"({"alg":"HS256","crit":["exp"],"exp":1})", kPayload, kSecret, EVP_sha256());
    EXPECT_EQ(codec.verify(crit, "access", kNow).error(), JwtError::Malformed);
}

TEST(JwtCompat, VerifiesPyJwtHs256Token) {
    const std::string token = run_python(
        "import jwt, sys, datetime; "
        "now = datetime.datetime.fromtimestamp(int(sys.argv[2]), tz=datetime.timezone.utc); "
        "print(jwt.encode({\"sub\": \"usr_42\", \"email\": \"bob@example.com\", "
        "\"roles\": [\"user\", \"admin\"], \"exp\": now + datetime.timedelta(minutes=30), "
        "\"iat\": now, \"type\": \"access\"}, sys.argv[1], algorithm=\"HS256\"))",
        {kSecret, std::to_string(kNow)});
    const auto out = hs256().verify(token, "access", kNow + 60);
    ASSERT_TRUE(out) << token << " " << jwt_error_message(out.error());
    EXPECT_EQ((*out)->sub, "usr_42");
    EXPECT_EQ((*out)->email, "bob@example.com");
    EXPECT_EQ((*out)->roles, (std::vector<std::string>{"user", "admin"}));
    EXPECT_TRUE((*out)->permissions.empty());
    EXPECT_EQ((*out)->iat, kNow);
    EXPECT_EQ((*out)->exp, kNow + 1800);
    EXPECT_EQ(hs256().verify(token, "refresh", kNow + 60).error(), JwtError::WrongType);
    EXPECT_EQ(hs256().verify(token, "access", kNow + 1900).error(), JwtError::Expired);
}

TEST(JwtCompat, PyJwtVerifiesOurTokens) {
    const auto codec = make_codec({.secret = kSecret});
    Claims c = access_claims();
    c.iat = 0;  // PyJWT checks iat/exp against its own clock
    c.exp = 4'000'000'000;
    EXPECT_EQ(run_python("import jwt, sys; "
                         "d = jwt.decode(sys.argv[1], sys.argv[2], algorithms=[\"HS256\"]); "
                         "print(d[\"sub\"], d[\"type\"], \",\".join(d[\"roles\"]))",
                         {codec.sign(c), kSecret}),
              "usr_01HX access user,developer");
}

TEST(JwtCompat, PyJwtVerifiesOurRs256AndEs256TokensFromJwks) {
    for (const auto& [alg, pem] : {std::pair{std::string("RS256"), keys().rsa_private},
                                   std::pair{std::string("ES256"), keys().ec_private}}) {
        const auto codec = make_codec({.algorithm = alg, .private_key_pem = pem});
        Claims c = access_claims();
        c.iat = 0;
        c.exp = 4'000'000'000;
        const std::string out = run_python(
            "import jwt, sys, json; "
            "k = json.loads(sys.argv[2])[\"keys\"][0]; "
            "key = jwt.PyJWK(k).key; "
            "print(jwt.decode(sys.argv[1], key, algorithms=[k[\"alg\"]])[\"sub\"])",
            {codec.sign(c), codec.jwks_json()});
        EXPECT_EQ(out, "usr_01HX") << alg;
    }
}

TEST(JwtCache, CachedTokensAreStillCheckedForTimeAndType) {
    const auto codec = hs256();
    const std::string token = codec.sign(access_claims());
    const auto first = codec.verify(token, "access", kNow);
    ASSERT_TRUE(first);
    const auto cached = codec.verify(token, "access", kNow);
    ASSERT_TRUE(cached);
    EXPECT_EQ(cached->get(), first->get());  // answered from the cache, not copied
    EXPECT_EQ(codec.verify(token, "refresh", kNow).error(), JwtError::WrongType);
    EXPECT_EQ(codec.verify(token, "access", kNow + 2000).error(), JwtError::Expired);
    EXPECT_EQ(codec.verify(token, "access", kNow - 100).error(), JwtError::NotYetValid);  // iat
    const auto again = codec.verify(token, "access", kNow);
    ASSERT_TRUE(again);
    EXPECT_EQ((*again)->roles, access_claims().roles);
    EXPECT_EQ((*again)->jti, "jti-1");
}

TEST(JwtCache, ACachedTokensSignatureUnderAnotherPayloadIsRejected) {
    // The cache hashes only the end of a token (its signature): a token that shares it, with a
    // payload of the attacker's, lands in the same bucket and must still not match.
    const auto codec = hs256();
    const std::string token = codec.sign(access_claims());
    ASSERT_TRUE(codec.verify(token, "access", kNow));
    ASSERT_TRUE(codec.verify(token, "access", kNow));  // now cached
    const auto parts = split(token);
    auto payload = json::parse(*base64url_decode(parts[1])).as_object();
    payload["roles"] = json::array{"admin", "root"};
    const std::string forged =
        parts[0] + "." + base64url_encode(json::serialize(payload)) + "." + parts[2];
    ASSERT_EQ(forged.substr(forged.size() - 32), token.substr(token.size() - 32));
    EXPECT_EQ(codec.verify(forged, "access", kNow).error(), JwtError::BadSignature);
    EXPECT_EQ(codec.verify(forged, "access", kNow).error(), JwtError::BadSignature);
    const auto genuine = codec.verify(token, "access", kNow);
    ASSERT_TRUE(genuine);
    EXPECT_EQ((*genuine)->roles, access_claims().roles);
}

TEST(JwtCache, DisabledCacheAndEvictionGiveTheSameAnswers) {
    auto uncached = make_codec({.secret = kSecret, .verified_cache_entries = 0});
    auto tiny = make_codec({.secret = kSecret, .verified_cache_entries = 16});
    std::vector<std::string> tokens;
    for (int i = 0; i < 200; ++i) {
        Claims c = access_claims();
        c.jti = "jti-" + std::to_string(i);
        tokens.push_back(tiny.sign(c));
    }
    for (int round = 0; round < 2; ++round) {
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            const auto a = tiny.verify(tokens[i], "access", kNow);
            const auto b = uncached.verify(tokens[i], "access", kNow);
            ASSERT_TRUE(a && b) << i;
            EXPECT_EQ((*a)->jti, "jti-" + std::to_string(i));
            EXPECT_EQ((*b)->jti, (*a)->jti);
        }
    }
    // A tampered token is rejected every time (failures are never cached as successes).
    auto parts = split(tokens[0]);
    parts[2][5] = parts[2][5] == 'x' ? 'y' : 'x';
    const std::string bad = parts[0] + "." + parts[1] + "." + parts[2];
    EXPECT_EQ(tiny.verify(bad, "access", kNow).error(), JwtError::BadSignature);
    EXPECT_EQ(tiny.verify(bad, "access", kNow).error(), JwtError::BadSignature);
}

TEST(JwtCache, ConcurrentVerification) {
    const auto codec = make_codec({.secret = kSecret, .verified_cache_entries = 64});
    std::vector<std::string> tokens;
    for (int i = 0; i < 100; ++i) {
        Claims c = access_claims();
        c.sub = "usr_" + std::to_string(i);
        tokens.push_back(codec.sign(c));
    }
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 20; ++round) {
                for (std::size_t i = 0; i < tokens.size(); ++i) {
                    const auto& token =
                        tokens[(i * 7 + static_cast<std::size_t>(t)) % tokens.size()];
                    const auto r = codec.verify(token, "access", kNow);
                    if (!r || (*r)->sub.rfind("usr_", 0) != 0) ++failures;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace aether::platform::auth
