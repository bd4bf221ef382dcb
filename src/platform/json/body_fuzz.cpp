// libFuzzer target for request bodies: never crash, and what is accepted must round-trip.
#include <algorithm>
#include <boost/describe/enum.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/json/body.h"
#include "platform/json/mapping.h"

namespace aether::platform::json::fuzz {

enum class Level { low, medium, high };
BOOST_DESCRIBE_ENUM(Level, low, medium, high)

struct Item {
    std::string name;
    std::optional<std::int32_t> count;
    std::vector<Level> levels;
    std::map<std::string, double> scores;
};
BOOST_DESCRIBE_STRUCT(Item, (), (name, count, levels, scores))

struct Request {
    std::string title;
    std::vector<Item> items;
    Nullable<bool> flag;
    std::optional<std::uint16_t> port;
    std::optional<boost::json::value> extra;
};
BOOST_DESCRIBE_STRUCT(Request, (), (title, items, flag, port, extra))

// Boost.JSON 1.81 parses decimals to within an ulp or so, not exactly, so doubles that went
// through text are compared with a tolerance; everything else must match exactly.
bool same(const boost::json::value& a, const boost::json::value& b) {
    if (a.is_double() && b.is_double()) {
        const double x = a.get_double();
        const double y = b.get_double();
        return std::fabs(x - y) <= 1e-12 * std::max(std::fabs(x), std::fabs(y));
    }
    if (a.kind() != b.kind()) return false;
    if (a.is_array()) {
        const auto& left = a.get_array();
        const auto& right = b.get_array();
        if (left.size() != right.size()) return false;
        for (std::size_t i = 0; i < left.size(); ++i) {
            if (!same(left[i], right[i])) return false;
        }
        return true;
    }
    if (a.is_object()) {
        const auto& left = a.get_object();
        const auto& right = b.get_object();
        if (left.size() != right.size()) return false;
        for (const auto& entry : left) {
            const boost::json::value* other = right.if_contains(entry.key());
            if (other == nullptr || !same(entry.value(), *other)) return false;
        }
        return true;
    }
    return a == b;
}

}  // namespace aether::platform::json::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace json = aether::platform::json;
    const std::string_view body(reinterpret_cast<const char*>(data), size);

    auto parsed = json::parse_body(body);
    if (parsed) {
        const std::string text = boost::json::serialize(*parsed);
        auto again = json::parse_body(text);
        if (!again || !json::fuzz::same(*again, *parsed)) __builtin_trap();
    } else if (parsed.error().field != "body" || parsed.error().message.empty()) {
        __builtin_trap();
    }

    auto decoded = json::parse_as<json::fuzz::Request>(body);
    if (decoded) {
        auto back = json::parse_as<json::fuzz::Request>(json::to_string(*decoded));
        if (!back || !json::fuzz::same(json::to_value(*back), json::to_value(*decoded))) {
            __builtin_trap();
        }
    } else if (decoded.error().empty()) {
        __builtin_trap();
    }
    return 0;
}
