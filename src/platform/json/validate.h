// Plain-function request validation rules that collect field-level errors instead of throwing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "platform/json/mapping.h"

namespace aether::platform::json {

// A practical address check (RFC 5321 sizes, dot-atom local part, hostname domain); no quoted
// local parts, IP literals or comments, which no sign-up form needs.
bool is_valid_email(std::string_view address);

class Validator {
  public:
    void require(bool ok, std::string field, std::string message);
    void email(std::string field, std::string_view value);
    // Length in Unicode code points (the value is expected to be valid UTF-8).
    void length(std::string field, std::string_view value, std::size_t min, std::size_t max);
    void one_of(std::string field, std::string_view value,
                std::initializer_list<std::string_view> choices);

    template <class N>
    requires std::is_arithmetic_v<N>
    void range(std::string field, N value, std::type_identity_t<N> lo, std::type_identity_t<N> hi) {
        if (value >= lo && value <= hi) return;
        if constexpr (std::is_floating_point_v<N>) {
            fail_range(std::move(field), static_cast<double>(lo), static_cast<double>(hi));
        } else if constexpr (std::is_signed_v<N>) {
            fail_range(std::move(field), static_cast<std::int64_t>(lo),
                       static_cast<std::int64_t>(hi));
        } else {
            fail_range(std::move(field), static_cast<std::uint64_t>(lo),
                       static_cast<std::uint64_t>(hi));
        }
    }

    void add(FieldError error) { errors_.push_back(std::move(error)); }
    bool ok() const { return errors_.empty(); }
    const std::vector<FieldError>& errors() const { return errors_; }
    std::vector<FieldError> take() { return std::move(errors_); }

  private:
    void fail_range(std::string field, std::int64_t lo, std::int64_t hi);
    void fail_range(std::string field, std::uint64_t lo, std::uint64_t hi);
    void fail_range(std::string field, double lo, double hi);

    std::vector<FieldError> errors_;
};

}  // namespace aether::platform::json
