// Tests for the role -> permission table and Principal checks.
#include "platform/auth/permissions.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace aether::platform::auth {
namespace {

using Perms = std::vector<std::string>;

TEST(Permissions, KnownRoles) {
    EXPECT_EQ(known_roles(), (Perms{"admin", "developer", "user", "guest"}));
    EXPECT_TRUE(is_known_role("developer"));
    EXPECT_FALSE(is_known_role("root"));
}

TEST(Permissions, GuestReadsTasksOnly) {
    EXPECT_EQ(permissions_for_roles({"guest"}), (Perms{"tasks:read"}));
}

TEST(Permissions, UserTable) {
    EXPECT_EQ(permissions_for_roles({"user"}), (Perms{"ai:use", "analytics:read", "api_keys:write",
                                                      "code:review", "tasks:read", "tasks:write"}));
}

TEST(Permissions, DeveloperTable) {
    EXPECT_EQ(permissions_for_roles({"developer"}),
              (Perms{"ai:use", "analytics:read", "api_keys:write", "code:review", "code:run",
                     "integrations:admin", "tasks:read", "tasks:write"}));
}

TEST(Permissions, AdminHasEverythingPlusAdminPermissions) {
    EXPECT_EQ(permissions_for_roles({"admin"}),
              (Perms{"ai:use", "analytics:read", "api_keys:admin", "api_keys:write", "audit:read",
                     "code:review", "code:run", "integrations:admin", "tasks:read", "tasks:write",
                     "users:admin"}));
}

TEST(Permissions, UnionIsSortedAndDeduplicated) {
    const auto perms = permissions_for_roles({"guest", "user", "user", "developer"});
    EXPECT_TRUE(std::is_sorted(perms.begin(), perms.end()));
    EXPECT_EQ(std::adjacent_find(perms.begin(), perms.end()), perms.end());
    EXPECT_EQ(perms, permissions_for_roles({"developer"}));
}

TEST(Permissions, UnknownRolesGrantNothing) {
    EXPECT_TRUE(permissions_for_roles({"root", "ADMIN"}).empty());
    EXPECT_TRUE(permissions_for_roles({}).empty());
}

TEST(Permissions, PrincipalChecks) {
    Principal p;
    p.roles = {"user"};
    p.permissions = permissions_for_roles(p.roles);
    EXPECT_TRUE(p.has_role("user"));
    EXPECT_FALSE(p.has_role("admin"));
    EXPECT_TRUE(p.has_permission("tasks:write"));
    EXPECT_FALSE(p.has_permission("users:admin"));
    EXPECT_FALSE(p.has_permission("tasks"));
}

}  // namespace
}  // namespace aether::platform::auth
