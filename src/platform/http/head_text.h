// Checks on the text of a message head that the server and the client write by hand. Internal
// to platform/http.
#pragma once

#include <cstddef>
#include <string_view>

namespace aether::platform::http::detail {

// A plain loop the compiler vectorises; find_first_of scans the set once per character.
inline bool has_line_break(std::string_view text) {
    bool found = false;
    for (char c : text) found |= (c == '\r') | (c == '\n');
    return found;
}

// The CR and LF bytes in `text`. A head written line by line holds exactly two per line when no
// name or value brought one of its own: one count over the whole head instead of a check of
// every name and value (which cost more than writing them, for a dozen short headers).
inline std::size_t line_break_bytes(std::string_view text) {
    std::size_t count = 0;
    for (char c : text) count += static_cast<std::size_t>((c == '\r') | (c == '\n'));
    return count;
}

}  // namespace aether::platform::http::detail
