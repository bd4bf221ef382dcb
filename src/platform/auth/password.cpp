// Password hashing: bcrypt (libxcrypt) and argon2id (libargon2), constant-time verification,
// rehash detection and equal-work burning for unknown accounts.
#include "platform/auth/password.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>

#include "platform/auth/tokens.h"

namespace aether::platform::auth {
namespace {

constexpr std::string_view kArgon2idPrefix = "$argon2id$";
constexpr std::size_t kArgon2SaltBytes = 16;
constexpr std::size_t kArgon2HashBytes = 32;
constexpr int kBcryptMinCost = 4;
constexpr int kBcryptMaxCost = 31;

bool is_bcrypt(std::string_view hash) {
    // $2x$ (the buggy pre-2011 variant) is deliberately not accepted.
    return hash.size() == 60 &&
           (hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$"));
}

std::optional<int> bcrypt_cost(std::string_view hash) {
    if (!is_bcrypt(hash) || hash[6] != '$') return std::nullopt;
    int cost = 0;
    const auto [ptr, ec] = std::from_chars(hash.data() + 4, hash.data() + 6, cost);
    if (ec != std::errc() || ptr != hash.data() + 6) return std::nullopt;
    return cost;
}

struct Argon2Params {
    std::uint32_t version = 0, m = 0, t = 0, p = 0;
};

// Parses "$argon2id$v=19$m=65536,t=3,p=1$salt$hash" (the parameter part only).
std::optional<Argon2Params> argon2_params(std::string_view hash) {
    if (!hash.starts_with(kArgon2idPrefix)) return std::nullopt;
    std::string_view rest = hash.substr(kArgon2idPrefix.size());
    Argon2Params params;
    const auto take = [&rest](std::string_view key, std::uint32_t& out, char end) {
        if (!rest.starts_with(key)) return false;
        rest.remove_prefix(key.size());
        const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), out);
        if (ec != std::errc() || ptr == rest.data() + rest.size() || *ptr != end) return false;
        rest.remove_prefix(static_cast<std::size_t>(ptr - rest.data()) + 1);
        return true;
    };
    if (!take("v=", params.version, '$') || !take("m=", params.m, ',') ||
        !take("t=", params.t, ',') || !take("p=", params.p, '$')) {
        return std::nullopt;
    }
    return params;
}

bool acceptable_password(std::string_view password) {
    return password.find('\0') == std::string_view::npos && password.size() <= kMaxPasswordBytes;
}

// crypt_r output for `setting` (a full hash or a bare salt), or empty on failure. The password
// must be NUL-free; crypt_data is ~32 KiB, so it lives on the heap.
std::string bcrypt_compute(std::string_view password, const char* setting) {
    auto data = std::make_unique<crypt_data>();
    std::memset(data.get(), 0, sizeof(crypt_data));
    const std::string phrase(password);
    const char* out = crypt_r(phrase.c_str(), setting, data.get());
    std::string result = (out == nullptr || out[0] == '*') ? std::string() : std::string(out);
    OPENSSL_cleanse(data.get(), sizeof(crypt_data));
    return result;
}

std::string bcrypt_salt(int cost) {
    std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> salt{};
    // NULL random bytes: libxcrypt reads the OS CSPRNG itself.
    if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, salt.data(),
                         static_cast<int>(salt.size())) == nullptr) {
        return {};
    }
    return std::string(salt.data());
}

}  // namespace

std::string_view password_error_message(PasswordError error) {
    switch (error) {
        case PasswordError::Empty:
            return "password is empty";
        case PasswordError::ContainsNul:
            return "password contains a NUL byte";
        case PasswordError::TooLongForBcrypt:
            return "password is longer than 72 bytes, the most bcrypt can use";
        case PasswordError::TooLong:
            return "password is too long";
        case PasswordError::InvalidSettings:
            return "invalid password hashing settings";
        case PasswordError::BackendFailure:
            return "password hashing failed";
    }
    return "unknown password error";
}

PasswordHasher::PasswordHasher(PasswordSettings settings) : settings_(std::move(settings)) {
    if (settings_.scheme == "bcrypt") {
        valid_ = settings_.bcrypt_cost >= kBcryptMinCost && settings_.bcrypt_cost <= kBcryptMaxCost;
    } else if (settings_.scheme == "argon2id") {
        argon2_ = true;
        valid_ = settings_.argon2_time_cost >= ARGON2_MIN_TIME &&
                 settings_.argon2_parallelism >= ARGON2_MIN_LANES &&
                 settings_.argon2_parallelism <= ARGON2_MAX_LANES &&
                 settings_.argon2_memory_kib >= 8 * settings_.argon2_parallelism &&
                 settings_.argon2_memory_kib <= ARGON2_MAX_MEMORY;
    }
}

Expected<std::string, PasswordError> PasswordHasher::hash(std::string_view password) const {
    if (!valid_) return unexpected(PasswordError::InvalidSettings);
    if (password.empty()) return unexpected(PasswordError::Empty);
    if (password.find('\0') != std::string_view::npos) {
        return unexpected(PasswordError::ContainsNul);
    }
    if (!argon2_ && password.size() > kBcryptMaxPasswordBytes) {
        return unexpected(PasswordError::TooLongForBcrypt);
    }
    if (password.size() > kMaxPasswordBytes) return unexpected(PasswordError::TooLong);

    if (!argon2_) {
        const std::string salt = bcrypt_salt(settings_.bcrypt_cost);
        if (salt.empty()) return unexpected(PasswordError::BackendFailure);
        std::string hashed = bcrypt_compute(password, salt.c_str());
        if (!is_bcrypt(hashed)) return unexpected(PasswordError::BackendFailure);
        return hashed;
    }

    std::array<unsigned char, kArgon2SaltBytes> salt{};
    if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
        return unexpected(PasswordError::BackendFailure);
    }
    const std::size_t encoded_len = argon2_encodedlen(
        settings_.argon2_time_cost, settings_.argon2_memory_kib, settings_.argon2_parallelism,
        kArgon2SaltBytes, kArgon2HashBytes, Argon2_id);
    std::string encoded(encoded_len, '\0');
    const int rc = argon2id_hash_encoded(settings_.argon2_time_cost, settings_.argon2_memory_kib,
                                         settings_.argon2_parallelism, password.data(),
                                         password.size(), salt.data(), salt.size(),
                                         kArgon2HashBytes, encoded.data(), encoded.size());
    if (rc != ARGON2_OK) return unexpected(PasswordError::BackendFailure);
    encoded.resize(std::strlen(encoded.c_str()));
    return encoded;
}

bool PasswordHasher::verify(std::string_view password, std::string_view stored_hash) const {
    if (password.empty() || !acceptable_password(password)) return false;
    if (is_bcrypt(stored_hash)) {
        if (password.size() > kBcryptMaxPasswordBytes) return false;
        const std::string stored(stored_hash);
        const std::string computed = bcrypt_compute(password, stored.c_str());
        return !computed.empty() && constant_time_equals(computed, stored);
    }
    if (stored_hash.starts_with(kArgon2idPrefix)) {
        const std::string stored(stored_hash);
        // argon2id_verify compares in constant time internally.
        return argon2id_verify(stored.c_str(), password.data(), password.size()) == ARGON2_OK;
    }
    return false;
}

bool PasswordHasher::needs_rehash(std::string_view stored_hash) const {
    if (!argon2_) {
        const auto cost = bcrypt_cost(stored_hash);
        return !cost || *cost < settings_.bcrypt_cost;
    }
    const auto params = argon2_params(stored_hash);
    return !params || params->version != ARGON2_VERSION_NUMBER ||
           params->m < settings_.argon2_memory_kib || params->t < settings_.argon2_time_cost ||
           params->p < settings_.argon2_parallelism;
}

void PasswordHasher::burn_equal_work(std::string_view password) const {
    // Mirror verify()'s early exits so both paths take the same time for the same input.
    if (!valid_ || password.empty() || !acceptable_password(password)) return;
    if (!argon2_) {
        if (password.size() > kBcryptMaxPasswordBytes) return;
        const std::string salt = bcrypt_salt(settings_.bcrypt_cost);
        if (salt.empty()) return;
        const std::string computed = bcrypt_compute(password, salt.c_str());
        // The comparison verify() would do; the result is meaningless and discarded.
        (void)constant_time_equals(computed, salt);
        return;
    }
    std::array<unsigned char, kArgon2SaltBytes> salt{};
    std::array<unsigned char, kArgon2HashBytes> out{};
    if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) return;
    (void)argon2id_hash_raw(settings_.argon2_time_cost, settings_.argon2_memory_kib,
                            settings_.argon2_parallelism, password.data(), password.size(),
                            salt.data(), salt.size(), out.data(), out.size());
}

}  // namespace aether::platform::auth
