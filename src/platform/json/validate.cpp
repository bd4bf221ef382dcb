// Validation rules: email syntax, code point lengths, enumerations and numeric ranges.
#include "platform/json/validate.h"

#include <charconv>

#include "platform/json/utf8.h"

namespace aether::platform::json {

namespace {

constexpr std::size_t kMaxAddress = 254;
constexpr std::size_t kMaxLocalPart = 64;
constexpr std::size_t kMaxLabel = 63;

bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 5322 atext: the characters allowed in a dot-atom besides the dots.
bool is_atext(char c) {
    return is_alnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool valid_local_part(std::string_view local) {
    if (local.empty() || local.size() > kMaxLocalPart) return false;
    if (local.front() == '.' || local.back() == '.') return false;
    char previous = '\0';
    for (const char c : local) {
        if (c == '.' ? previous == '.' : !is_atext(c)) return false;
        previous = c;
    }
    return true;
}

bool valid_domain(std::string_view domain) {
    if (domain.find('.') == std::string_view::npos) return false;
    std::size_t start = 0;
    while (start <= domain.size()) {
        std::size_t end = domain.find('.', start);
        if (end == std::string_view::npos) end = domain.size();
        const std::string_view label = domain.substr(start, end - start);
        if (label.empty() || label.size() > kMaxLabel) return false;
        if (label.front() == '-' || label.back() == '-') return false;
        for (const char c : label) {
            if (!is_alnum(c) && c != '-') return false;
        }
        start = end + 1;
    }
    return true;
}

std::string format_number(double value) {
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    return std::string(buffer, result.ptr);
}

}  // namespace

bool is_valid_email(std::string_view address) {
    if (address.size() > kMaxAddress) return false;
    const std::size_t at = address.find('@');
    if (at == std::string_view::npos || address.find('@', at + 1) != std::string_view::npos) {
        return false;
    }
    return valid_local_part(address.substr(0, at)) && valid_domain(address.substr(at + 1));
}

void Validator::require(bool ok, std::string field, std::string message) {
    if (!ok) errors_.push_back({std::move(field), std::move(message)});
}

void Validator::email(std::string field, std::string_view value) {
    if (!is_valid_email(value)) {
        errors_.push_back({std::move(field), "must be a valid email address"});
    }
}

void Validator::length(std::string field, std::string_view value, std::size_t min,
                       std::size_t max) {
    const std::size_t count = count_code_points(value);
    if (count >= min && count <= max) return;
    std::string message;
    if (min == max) {
        message = "must be exactly " + std::to_string(min) + " characters";
    } else if (count < min && max == std::numeric_limits<std::size_t>::max()) {
        message = "must be at least " + std::to_string(min) + " characters";
    } else if (min == 0) {
        message = "must be at most " + std::to_string(max) + " characters";
    } else {
        message = "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                  " characters";
    }
    errors_.push_back({std::move(field), std::move(message)});
}

void Validator::one_of(std::string field, std::string_view value,
                       std::initializer_list<std::string_view> choices) {
    for (const std::string_view choice : choices) {
        if (value == choice) return;
    }
    std::string message = "must be one of: ";
    bool first = true;
    for (const std::string_view choice : choices) {
        if (!first) message += ", ";
        first = false;
        message += choice;
    }
    errors_.push_back({std::move(field), std::move(message)});
}

void Validator::fail_range(std::string field, std::int64_t lo, std::int64_t hi) {
    errors_.push_back(
        {std::move(field), "must be between " + std::to_string(lo) + " and " + std::to_string(hi)});
}

void Validator::fail_range(std::string field, std::uint64_t lo, std::uint64_t hi) {
    errors_.push_back(
        {std::move(field), "must be between " + std::to_string(lo) + " and " + std::to_string(hi)});
}

void Validator::fail_range(std::string field, double lo, double hi) {
    errors_.push_back(
        {std::move(field), "must be between " + format_number(lo) + " and " + format_number(hi)});
}

}  // namespace aether::platform::json
