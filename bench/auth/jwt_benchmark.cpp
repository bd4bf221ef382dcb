// Micro-benchmarks of JWT sign/verify (the gateway and /validate verify every request).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <stdexcept>

#include "platform/auth/jwt.h"

namespace {

using aether::platform::auth::Claims;
using aether::platform::auth::JwtCodec;
using aether::platform::auth::JwtSettings;

constexpr std::int64_t kNow = 1'700'000'000;

std::string private_pem(const char* type, const char* param_or_null, std::size_t bits) {
    EVP_PKEY* key = param_or_null != nullptr
                        ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, param_or_null)
                        : EVP_PKEY_Q_keygen(nullptr, nullptr, type, bits);
    if (key == nullptr) throw std::runtime_error("keygen failed");
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    EVP_PKEY_free(key);
    return pem;
}

JwtCodec codec_for(const std::string& alg, std::size_t cache_entries = 0) {
    JwtSettings settings;
    settings.algorithm = alg;
    settings.verified_cache_entries = cache_entries;
    if (alg == "HS256") settings.secret = std::string(48, 'k');
    if (alg == "RS256") settings.private_key_pem = private_pem("RSA", nullptr, 2048);
    if (alg == "ES256") settings.private_key_pem = private_pem("EC", "P-256", 0);
    auto codec = JwtCodec::create(settings);
    if (!codec) throw std::runtime_error(codec.error());
    return std::move(codec).value();
}

Claims claims() {
    Claims c;
    c.sub = "usr_01HXK3M5Z8Q2W7R4T6Y9B1N0CD";
    c.email = "ada@example.com";
    c.type = "access";
    c.jti = "01HXK3M5Z8Q2W7R4T6Y9B1N0CE";
    c.roles = {"user", "developer"};
    c.permissions = {"ai:use",   "analytics:read", "api_keys:write", "code:review",
                     "code:run", "tasks:read",     "tasks:write"};
    c.iat = kNow;
    c.exp = kNow + 900;
    return c;
}

// Every call goes through libjwt (cache disabled): the cost of a token seen for the first time.
void BM_Verify(benchmark::State& state, const std::string& alg) {
    const JwtCodec codec = codec_for(alg);
    const std::string token = codec.sign(claims());
    for (auto _ : state) {
        auto result = codec.verify(token, "access", kNow);
        if (!result) state.SkipWithError("verify failed");
        benchmark::DoNotOptimize(result);
    }
}

// A token verified before: the steady state of a client reusing its access token.
void BM_VerifyCached(benchmark::State& state, const std::string& alg) {
    const JwtCodec codec = codec_for(alg, 8192);
    const std::string token = codec.sign(claims());
    for (auto _ : state) {
        auto result = codec.verify(token, "access", kNow);
        if (!result) state.SkipWithError("verify failed");
        benchmark::DoNotOptimize(result);
    }
}

void BM_Sign(benchmark::State& state, const std::string& alg) {
    const JwtCodec codec = codec_for(alg);
    const Claims c = claims();
    for (auto _ : state) benchmark::DoNotOptimize(codec.sign(c));
}

BENCHMARK_CAPTURE(BM_Verify, HS256, std::string("HS256"));
BENCHMARK_CAPTURE(BM_VerifyCached, HS256, std::string("HS256"));
BENCHMARK_CAPTURE(BM_Sign, HS256, std::string("HS256"));
BENCHMARK_CAPTURE(BM_Verify, RS256, std::string("RS256"));
BENCHMARK_CAPTURE(BM_VerifyCached, RS256, std::string("RS256"));
BENCHMARK_CAPTURE(BM_Sign, RS256, std::string("RS256"));
BENCHMARK_CAPTURE(BM_Verify, ES256, std::string("ES256"));
BENCHMARK_CAPTURE(BM_VerifyCached, ES256, std::string("ES256"));
BENCHMARK_CAPTURE(BM_Sign, ES256, std::string("ES256"));

}  // namespace
