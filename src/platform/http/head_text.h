// Checks on the text of a message head that the server and the client write by hand. Internal
// to platform/http.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

namespace aether::platform::http::detail {

// Two memchr calls: the C library's vector code, faster than a loop over short names and values
// (find_first_of scans the set once per character).
inline bool has_line_break(std::string_view text) {
    return std::memchr(text.data(), '\n', text.size()) != nullptr ||
           std::memchr(text.data(), '\r', text.size()) != nullptr;
}

// The CR and LF bytes in `text`. A head written line by line holds exactly two per line when no
// name or value brought one of its own: one count over the whole head instead of a check of
// every name and value (which cost more than writing them, for a dozen short headers).
inline std::size_t line_break_bytes(std::string_view text) {
    // Counted a byte wide over runs of 240 bytes (a whole number of vectors, and under 256),
    // which the compiler turns into a few vector compares per 16 bytes; a wider counter makes
    // it scalar code, and a run that is not a multiple of the vector leaves a scalar tail.
    constexpr std::size_t kRun = 240;
    std::size_t count = 0;
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
    std::size_t left = text.size();
    while (left > 0) {
        const std::size_t run = left < kRun ? left : kRun;
        unsigned char in_run = 0;
        for (std::size_t i = 0; i < run; ++i) {
            in_run = static_cast<unsigned char>(in_run + (bytes[i] == '\r') + (bytes[i] == '\n'));
        }
        count += in_run;
        bytes += run;
        left -= run;
    }
    return count;
}

}  // namespace aether::platform::http::detail
