// The authenticated caller (Principal) and the fixed role -> permission table.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace aether::platform::auth {

struct Principal {
    std::string user_id;
    std::string email;
    std::vector<std::string> roles;
    std::vector<std::string> permissions;
    std::string token_id;  // jti of the access token, or the API key id
    std::string via;       // "token" | "api_key"

    bool has_permission(std::string_view permission) const;
    bool has_role(std::string_view role) const;
};

// admin, developer, user, guest.
const std::vector<std::string>& known_roles();
bool is_known_role(std::string_view role);
// The union of the permissions of `roles`, sorted and deduplicated; unknown roles grant nothing.
std::vector<std::string> permissions_for_roles(const std::vector<std::string>& roles);

}  // namespace aether::platform::auth
