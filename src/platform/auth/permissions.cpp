// The authenticated caller (Principal) and the fixed role -> permission table.
#include "platform/auth/permissions.h"

#include <algorithm>
#include <array>
#include <vector>

namespace aether::platform::auth {
namespace {

struct RoleGrant {
    std::string_view role;
    std::vector<std::string_view> permissions;
};

// admin is computed as "everything the others have" plus its own, so a permission added to a
// lower role can never be forgotten for admin.
constexpr std::array<std::string_view, 3> kAdminOnly = {"users:admin", "audit:read",
                                                        "api_keys:admin"};

const std::array<RoleGrant, 3>& lower_roles() {
    static const std::array<RoleGrant, 3> kTable = {{
        {"developer",
         {"tasks:read", "tasks:write", "ai:use", "code:run", "code:review", "integrations:admin",
          "analytics:read", "api_keys:write"}},
        {"user",
         {"tasks:read", "tasks:write", "ai:use", "code:review", "analytics:read",
          "api_keys:write"}},
        {"guest", {"tasks:read"}},
    }};
    return kTable;
}

void add_role(std::string_view role, std::vector<std::string>& out) {
    if (role == "admin") {
        for (const auto& grant : lower_roles()) {
            for (auto p : grant.permissions) out.emplace_back(p);
        }
        for (auto p : kAdminOnly) out.emplace_back(p);
        return;
    }
    for (const auto& grant : lower_roles()) {
        if (grant.role == role) {
            for (auto p : grant.permissions) out.emplace_back(p);
        }
    }
}

}  // namespace

bool Principal::has_permission(std::string_view permission) const {
    return std::find(permissions.begin(), permissions.end(), permission) != permissions.end();
}

bool Principal::has_role(std::string_view role) const {
    return std::find(roles.begin(), roles.end(), role) != roles.end();
}

const std::vector<std::string>& known_roles() {
    static const std::vector<std::string> kRoles = {"admin", "developer", "user", "guest"};
    return kRoles;
}

bool is_known_role(std::string_view role) {
    const auto& roles = known_roles();
    return std::find(roles.begin(), roles.end(), role) != roles.end();
}

std::vector<std::string> permissions_for_roles(const std::vector<std::string>& roles) {
    std::vector<std::string> out;
    for (const auto& role : roles) add_role(role, out);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace aether::platform::auth
