// List endpoints' `page`/`limit` query parameters and the `pagination` object of API.md.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>

#include "platform/http/message.h"

namespace aether::platform::http {

struct PageRequest {
    std::int64_t page = 1;
    std::int64_t limit = 20;
    std::int64_t offset() const { return (page - 1) * limit; }
};

inline constexpr std::int64_t kDefaultPageLimit = 20;
inline constexpr std::int64_t kMaxPageLimit = 100;

// Reads page (default 1) and limit (default 20, max 100); throws json::ClientError (400, with a
// detail per bad parameter) when either is not a positive integer in range.
PageRequest page_request(const Request& request);

// {"total","page","limit","total_pages","has_next","has_prev"}
boost::json::object pagination(const PageRequest& page, std::int64_t total);

}  // namespace aether::platform::http
