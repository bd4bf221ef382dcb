// JSON string escaping for hand-built JSON (log lines): quotes, backslash, control characters,
// and invalid UTF-8 replaced by U+FFFD so every line stays valid JSON.
#pragma once

#include <string>
#include <string_view>

namespace aether::platform::telemetry {

// Appends text to out as a quoted JSON string.
void append_json_string(std::string& out, std::string_view text);

// Appends text escaped, without the surrounding quotes.
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace aether::platform::telemetry
