// The configuration schema: the keys each module declares, with kind, default, check and help.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::config {

enum class Kind {
    String,
    Secret,  // a string that is never printed: redacted in dumps, never echoed in errors
    Int,
    Double,
    Bool,
    Duration,    // "250ms", "30s", "5m", "1h", or a bare integer meaning seconds
    StringList,  // a YAML sequence, or comma-separated in an environment variable
};

// A parsed value. String and Secret hold std::string; StringList holds the vector.
using Value = std::variant<std::string, std::int64_t, double, bool, std::chrono::milliseconds,
                           std::vector<std::string>>;

// A constraint beyond the kind. `requirement` is the whole message shown on failure ("must be
// an integer between 1 and 256"); it is fixed text so that no check can echo a secret.
struct Check {
    std::string requirement{};
    std::function<bool(const Value&)> accepts{};

    explicit operator bool() const { return static_cast<bool>(accepts); }
};

// The value (a String, or every item of a StringList) is one of `allowed`.
Check one_of(std::vector<std::string> allowed);
// An Int within [lo, hi].
Check int_range(std::int64_t lo, std::int64_t hi);
// A Duration within [lo, hi].
Check duration_range(std::chrono::milliseconds lo, std::chrono::milliseconds hi);
// A String or Secret of at least n bytes.
Check min_length(std::size_t n);
// A String of the form `scheme://rest` with one of `schemes` (given without "://").
Check url_schemes(std::vector<std::string> schemes);
// A `services.<name>.database` value: postgresql://… (or postgres://…) or sqlite:PATH.
Check database_url();

struct Key {
    std::string path{};  // dot-separated, lower-case: "auth.jwt_secret"
    Kind kind = Kind::String;
    std::string default_value{};  // textual, as it would be written in the environment; "" = unset
    std::string description{};
    Check check{};          // optional
    bool required = false;  // loading fails if no source sets it
};

// "auth.jwt_secret" -> "AETHER_AUTH_JWT_SECRET".
std::string env_name(std::string_view path);
// "string", "secret", "int", "double", "bool", "duration", "list".
std::string_view kind_name(Kind kind);
// "250ms", "30s", "5m", "1h" or a bare integer (seconds); nullopt when malformed or negative.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// The shortest exact spelling in the form parse_duration reads: 90000ms -> "90s".
std::string format_duration(std::chrono::milliseconds duration);

// All declared keys. Modules add their blocks at start-up; mistakes in a declaration (bad path,
// duplicate, default that fails its own check) are programming errors: std::logic_error.
class Schema {
  public:
    Schema& add(Key key);

    // Pointers stay valid until the next add().
    const Key* find(std::string_view path) const;
    const Key* find_by_env(std::string_view variable) const;
    // True for a proper prefix of a declared path ("services", "services.tasks").
    bool is_section(std::string_view path) const;
    const std::vector<Key>& keys() const { return keys_; }

    // The operator reference: | Key | Environment variable | Kind | Default | Description |,
    // sorted by path. A secret's default is never shown.
    std::string markdown_table() const;

  private:
    std::vector<Key> keys_;
    std::map<std::string, std::size_t, std::less<>> by_path_;
    std::map<std::string, std::size_t, std::less<>> by_env_;
    std::map<std::string, std::string, std::less<>> sections_;  // section -> first key under it
};

namespace detail {

// Reads one textual value (a YAML scalar, an environment variable, a default) as `kind`;
// on failure returns the reason, "must be ...", without the value.
Expected<Value, std::string> parse_text(Kind kind, std::string_view text);
// The message for a value of the wrong form for `key`, e.g. "must be an integer between 1 and
// 256": the check's requirement when it already names the kind, otherwise the kind's.
std::string form_requirement(const Key& key);

}  // namespace detail

}  // namespace aether::platform::config
