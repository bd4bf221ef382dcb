// Pagination parameters and the pagination object shared by every list endpoint.
#include "platform/http/pagination.h"

#include <charconv>
#include <vector>

#include "platform/json/envelope.h"

namespace aether::platform::http {
namespace {

// The value of an integer query parameter, or an error message for the details.
std::optional<std::string> read_integer(const Request& request, std::string_view name,
                                        std::int64_t low, std::int64_t high, std::int64_t& value) {
    auto text = request.query(name);
    if (!text) return std::nullopt;
    std::int64_t parsed = 0;
    auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), parsed);
    if (error != std::errc{} || end != text->data() + text->size()) {
        return "must be an integer";
    }
    if (parsed < low || parsed > high) {
        return "must be between " + std::to_string(low) + " and " + std::to_string(high);
    }
    value = parsed;
    return std::nullopt;
}

}  // namespace

PageRequest page_request(const Request& request) {
    PageRequest page;
    std::vector<json::FieldError> errors;
    if (auto error = read_integer(request, "page", 1, 1'000'000'000, page.page)) {
        errors.push_back({"page", *error});
    }
    if (auto error = read_integer(request, "limit", 1, kMaxPageLimit, page.limit)) {
        errors.push_back({"limit", *error});
    }
    if (!errors.empty()) throw json::ClientError::validation(std::move(errors));
    return page;
}

boost::json::object pagination(const PageRequest& page, std::int64_t total) {
    std::int64_t total_pages = total == 0 ? 0 : (total + page.limit - 1) / page.limit;
    return boost::json::object{{"total", total},
                               {"page", page.page},
                               {"limit", page.limit},
                               {"total_pages", total_pages},
                               {"has_next", page.page < total_pages},
                               {"has_prev", page.page > 1}};
}

}  // namespace aether::platform::http
