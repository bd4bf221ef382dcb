// Password hashing: bcrypt (libxcrypt) and argon2id (libargon2), constant-time verification,
// rehash detection and equal-work burning for unknown accounts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "platform/expected.h"

namespace aether::platform::auth {

struct PasswordSettings {
    std::string scheme = "bcrypt";  // or "argon2id"
    int bcrypt_cost = 12;
    std::uint32_t argon2_time_cost = 3;
    std::uint32_t argon2_memory_kib = 65536;
    std::uint32_t argon2_parallelism = 1;
};

enum class PasswordError {
    Empty,
    ContainsNul,
    TooLongForBcrypt,  // bcrypt reads only 72 bytes; longer passwords are refused, not truncated
    TooLong,           // over kMaxPasswordBytes for any scheme (bounds the work per request)
    InvalidSettings,
    BackendFailure,
};

inline constexpr std::size_t kBcryptMaxPasswordBytes = 72;
inline constexpr std::size_t kMaxPasswordBytes = 4096;

std::string_view password_error_message(PasswordError error);

// All methods are const and thread-safe; each call does the full hashing work, so call them on
// the blocking pool, never on an IO thread.
class PasswordHasher {
  public:
    explicit PasswordHasher(PasswordSettings settings);

    // Whether the settings are usable (known scheme, bcrypt cost 4..31, sane argon2 params).
    bool settings_valid() const { return valid_; }
    const PasswordSettings& settings() const { return settings_; }

    Expected<std::string, PasswordError> hash(std::string_view password) const;
    // Accepts bcrypt ($2a$, $2b$, $2y$) and argon2id hashes whatever the configured scheme.
    bool verify(std::string_view password, std::string_view stored_hash) const;
    // True when the stored hash uses the other scheme or weaker parameters than configured.
    bool needs_rehash(std::string_view stored_hash) const;
    // The work of verify() against a hash of the configured scheme, for logins naming an
    // unknown account, so response time does not reveal which accounts exist.
    void burn_equal_work(std::string_view password) const;

  private:
    PasswordSettings settings_;
    bool valid_ = false;
    bool argon2_ = false;
};

}  // namespace aether::platform::auth
