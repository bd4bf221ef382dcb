// The common message head parsed without Beast: whole in the buffer, well formed, and with
// nothing in it that needs Beast's handling of a body. Beast's parser reads a head byte by byte
// at about ten instructions a byte, a third of what parsing costs a proxied request; this one
// finds the end of a value sixteen bytes at a time.
//
// Whatever is not that common head is declined, and Beast parses the same bytes as before:
// folded lines, Transfer-Encoding, Upgrade, a Connection list, a repeated Content-Length, a
// head not yet complete or over the limit, anything malformed. So declining is always safe,
// and an accepted head must mean exactly what it means to Beast (a test holds the two to that).
// Internal to platform/http.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "platform/http/message.h"

namespace aether::platform::http::detail {

struct QuickHead {
    std::size_t size = 0;  // bytes of the head, its blank line included
    int version = 11;      // 10 or 11
    bool keep_alive = true;
    int status = 0;                    // a response's
    std::uint64_t content_length = 0;  // a response's (a quick request has no body)
};

// A request head with no body: no Content-Length, no Transfer-Encoding. Its method, target,
// version and headers go into `request`; nothing is left in it when the head is declined.
// `limit`: the most bytes a head may have.
std::optional<QuickHead> quick_request_head(std::string_view bytes, std::size_t limit,
                                            Request& request);

// A response head with a Content-Length and a status other than 1xx, 204 and 304 (which have
// no body whatever their headers say). Its fields are appended to `lines`, which must be empty
// and is left empty when the head is declined.
std::optional<QuickHead> quick_response_head(std::string_view bytes, std::size_t limit,
                                             HeaderLines& lines);

}  // namespace aether::platform::http::detail
