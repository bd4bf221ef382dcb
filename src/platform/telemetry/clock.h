// UTC RFC 3339 timestamps with milliseconds ("2026-11-28T15:41:25.123Z"), the one format we log and
// store.
#pragma once

#include <chrono>
#include <string>

namespace aether::platform::telemetry {

// Formats tp as "YYYY-MM-DDTHH:MM:SS.mmmZ" (always 24 characters). Times outside years
// 0000..9999 are clamped, since RFC 3339 cannot express them.
std::string format_rfc3339_ms(std::chrono::system_clock::time_point tp);

// Appends the same 24 characters to out; the logger uses it to avoid a temporary string.
void append_rfc3339_ms(std::string& out, std::chrono::system_clock::time_point tp);

}  // namespace aether::platform::telemetry
