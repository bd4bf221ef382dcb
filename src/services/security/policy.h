// The security service's rules as plain functions: password policy, email normalization, roles.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "platform/json/mapping.h"

namespace aether::services::security {

using platform::json::FieldError;

struct PasswordPolicy {
    std::size_t min_length = 8;  // Unicode code points
    std::size_t max_bytes = 72;  // bcrypt reads 72 bytes; argon2id allows more
    bool require_letter = true;
    bool require_digit = true;
};

// Every rule the password breaks, each as a detail for field "password".
std::vector<FieldError> check_password(const PasswordPolicy& policy, std::string_view password,
                                       std::string_view email);

// Lower-cases and trims an email address for storage and lookup.
std::string normalize_email(std::string_view email);

// The key failed logins are counted under for a client address. IPv6 clients usually hold a whole
// /64, so they are counted per /64 ("2001:db8:1:2::/64"); IPv4-mapped addresses as IPv4.
std::string throttle_key_for_address(const std::string& address);

// Roles are stored as a comma-separated list of known role names.
std::string join_roles(const std::vector<std::string>& roles);
std::vector<std::string> split_roles(std::string_view stored);

}  // namespace aether::services::security
