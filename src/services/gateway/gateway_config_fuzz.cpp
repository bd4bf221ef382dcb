// libFuzzer target for the gateway configuration: never crash; a rejected file yields located,
// non-empty messages; an accepted one builds a route table that answers any request.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "services/gateway/gateway_config.h"
#include "services/gateway/route_table.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace gateway = aether::services::gateway;
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    auto parsed = gateway::parse_gateway_config(text, "fuzz.yaml");
    if (parsed) {
        const gateway::RouteTable table(*parsed);
        for (std::string_view target : {"/", "/api/v1/tasks/1?x=1", "/api/v1/ai", "/x/../y"}) {
            for (std::string_view method : {"GET", "POST", "BREW"}) {
                const auto match = table.match(method, "api.example.com:8443", target);
                if (match) {
                    if (match.upstream_path(target).empty() || match.route == nullptr ||
                        match.service == nullptr) {
                        __builtin_trap();
                    }
                } else if ((match.outcome == gateway::RouteMatch::Outcome::MethodNotAllowed) !=
                           (match.allowed != 0)) {
                    __builtin_trap();
                }
            }
        }
    } else {
        if (parsed.error().empty()) __builtin_trap();
        for (const auto& error : parsed.error()) {
            if (error.message.empty() || !error.origin.starts_with("fuzz.yaml")) __builtin_trap();
        }
    }

    // Normalising is idempotent, and its result always starts with "/".
    if (auto normal = gateway::normalize_path(text)) {
        if (normal->empty() || normal->front() != '/') __builtin_trap();
        auto again = gateway::normalize_path(*normal);
        if (!again || *again != *normal) __builtin_trap();
    }
    return 0;
}
