// Password policy, email normalization and role encoding for the security service.
#include "services/security/policy.h"

#include <algorithm>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>
#include <cctype>

namespace aether::services::security {
namespace {

std::size_t code_points(std::string_view text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

}  // namespace

std::vector<FieldError> check_password(const PasswordPolicy& policy, std::string_view password,
                                       std::string_view email) {
    std::vector<FieldError> errors;
    auto fail = [&](std::string message) { errors.push_back({"password", std::move(message)}); };
    if (code_points(password) < policy.min_length) {
        fail("must be at least " + std::to_string(policy.min_length) + " characters");
    }
    if (password.size() > policy.max_bytes) {
        fail("must be at most " + std::to_string(policy.max_bytes) +
             " bytes (longer passwords would be truncated by bcrypt)");
    }
    if (password.find('\0') != std::string_view::npos) fail("must not contain NUL characters");
    bool has_letter = std::any_of(password.begin(), password.end(), [](char c) {
        return std::isalpha(static_cast<unsigned char>(c)) ||
               (static_cast<unsigned char>(c) >= 0x80);
    });
    bool has_digit = std::any_of(password.begin(), password.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
    });
    if (policy.require_letter && !has_letter) fail("must contain a letter");
    if (policy.require_digit && !has_digit) fail("must contain a digit");
    if (!email.empty() && normalize_email(password) == normalize_email(email)) {
        fail("must not be the email address");
    }
    return errors;
}

std::string normalize_email(std::string_view email) {
    auto begin = email.find_first_not_of(" \t\r\n");
    auto end = email.find_last_not_of(" \t\r\n");
    if (begin == std::string_view::npos) return {};
    std::string normalized(email.substr(begin, end - begin + 1));
    std::transform(normalized.begin(), normalized.end(), normalized.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return normalized;
}

std::string throttle_key_for_address(const std::string& address) {
    namespace ip = boost::asio::ip;
    if (address.find(':') == std::string::npos) return address;
    boost::system::error_code error;
    auto parsed = ip::make_address_v6(address, error);
    if (error) return address;
    if (parsed.is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, parsed).to_string();
    auto bytes = parsed.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return ip::address_v6(bytes).to_string() + "/64";
}

std::string join_roles(const std::vector<std::string>& roles) {
    std::string joined;
    for (const auto& role : roles) {
        if (!joined.empty()) joined += ',';
        joined += role;
    }
    return joined;
}

std::vector<std::string> split_roles(std::string_view stored) {
    std::vector<std::string> roles;
    std::size_t start = 0;
    while (start < stored.size()) {
        auto comma = stored.find(',', start);
        if (comma == std::string_view::npos) comma = stored.size();
        if (comma > start) roles.emplace_back(stored.substr(start, comma - start));
        start = comma + 1;
    }
    return roles;
}

}  // namespace aether::services::security
