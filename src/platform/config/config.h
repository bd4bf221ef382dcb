// Loading the effective configuration: defaults, then the YAML file, then AETHER_* variables,
// checked against the schema with every problem reported at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/config/schema.h"
#include "platform/expected.h"

namespace aether::platform::config {

struct ConfigError {
    std::string origin;   // "aether.yaml:12", "AETHER_HTTP_IO_THREADS", or "" (e.g. a missing key)
    std::string path;     // "http.io_threads", or "" when the problem is not about one key
    std::string message;  // "must be an integer between 1 and 256 (got \"many\")"

    // "aether.yaml:12: http.io_threads: must be ..." (empty parts left out).
    std::string to_string() const;
};

// The effective configuration. Asking for an undeclared path, or with the getter of another
// kind, is a programming error: std::logic_error. An unset String/Secret/StringList reads as
// empty; an unset key of another kind throws std::logic_error, so check is_set() first.
class Config {
  public:
    Config() = default;

    std::string get_string(std::string_view path) const;
    std::string get_secret(std::string_view path) const;
    std::int64_t get_int(std::string_view path) const;
    double get_double(std::string_view path) const;
    bool get_bool(std::string_view path) const;
    std::chrono::milliseconds get_duration(std::string_view path) const;
    std::vector<std::string> get_list(std::string_view path) const;

    // True when a default, the file or the environment gave the key a value.
    bool is_set(std::string_view path) const;
    // "aether.yaml:12", "AETHER_X", "default", or "" when unset.
    std::string origin_of(std::string_view path) const;
    // Every declared key as nested YAML, each value followed by a comment naming its origin;
    // secrets appear as "<redacted>", unset keys as ~.
    std::string dump() const;

  private:
    struct Entry {
        Kind kind = Kind::String;
        std::optional<Value> value;
        std::string origin;
    };

    friend class Loader;
    const Entry& entry(std::string_view path, Kind kind) const;
    const Value& value_of(std::string_view path, Kind kind) const;

    std::map<std::string, Entry, std::less<>> entries_;
};

// Loads `yaml_file` ("" = no file; a named file that cannot be read is an error) and the
// AETHER_* variables of `environment` (others are ignored, as is the reserved AETHER_TEST_
// prefix). Precedence: environment > file > default.
Expected<Config, std::vector<ConfigError>> load(
    const Schema& schema, const std::string& yaml_file,
    const std::map<std::string, std::string>& environment);

// Same, with the YAML given as text; `source_name` is what messages call it ("aether.yaml").
Expected<Config, std::vector<ConfigError>> load_from_string(
    const Schema& schema, std::string_view yaml_text, const std::string& source_name,
    const std::map<std::string, std::string>& environment);

// The process's AETHER_* environment variables.
std::map<std::string, std::string> process_environment();

}  // namespace aether::platform::config
