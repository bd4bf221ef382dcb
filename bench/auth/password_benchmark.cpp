// The cost of one password check at the configured bcrypt cost: the ceiling of login throughput
// is (cores available) / (this time).
#include <benchmark/benchmark.h>

#include "platform/auth/password.h"

namespace {

using aether::platform::auth::PasswordHasher;
using aether::platform::auth::PasswordSettings;

void BM_BcryptVerify(benchmark::State& state) {
    PasswordSettings settings;
    settings.bcrypt_cost = static_cast<int>(state.range(0));
    PasswordHasher hasher(settings);
    auto hash = hasher.hash("TestPass123!");
    for (auto _ : state) benchmark::DoNotOptimize(hasher.verify("TestPass123!", *hash));
}
BENCHMARK(BM_BcryptVerify)->Arg(4)->Arg(10)->Arg(12)->Unit(benchmark::kMillisecond);

void BM_Argon2idVerify(benchmark::State& state) {
    PasswordSettings settings;
    settings.scheme = "argon2id";
    PasswordHasher hasher(settings);
    auto hash = hasher.hash("TestPass123!");
    for (auto _ : state) benchmark::DoNotOptimize(hasher.verify("TestPass123!", *hash));
}
BENCHMARK(BM_Argon2idVerify)->Unit(benchmark::kMillisecond);

}  // namespace
