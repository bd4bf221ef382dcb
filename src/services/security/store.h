// SQL of the security service: users, refresh-token families, API keys, audit log.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "platform/bus/bus.h"
#include "platform/sql/database.h"

namespace aether::services::security {

namespace asio = boost::asio;
namespace sql = platform::sql;
namespace bus = platform::bus;

struct UserRecord {
    std::string id;
    std::string email;
    std::string name;
    std::string password_hash;
    std::vector<std::string> roles;
    std::string created_at;
};

struct ApiKeyRecord {
    std::string id;
    std::string user_id;
    std::string name;
    std::string secret_hash;
    std::vector<std::string> scopes;
    std::string created_at;
    std::optional<std::string> expires_at;
    std::optional<std::string> last_used_at;
    std::optional<std::string> revoked_at;
};

struct AuditRecord {
    std::string id;
    std::string occurred_at;
    std::string event;
    std::optional<std::string> user_id;
    std::optional<std::string> email;
    std::optional<std::string> ip;
    std::string details;  // a JSON object
};

struct AuditFilter {
    std::optional<std::string> event;
    std::optional<std::string> user_id;
};

// What spending a refresh token found.
struct SpendOutcome {
    enum class Kind { Spent, Unknown, Reused, FamilyRevoked } kind = Kind::Unknown;
    std::string family_id;
    std::string user_id;
};

template <class T>
struct Page {
    std::vector<T> items;
    std::int64_t total = 0;
};

class SecurityStore {
  public:
    explicit SecurityStore(std::shared_ptr<sql::Database> database)
        : database_(std::move(database)) {}

    asio::awaitable<std::optional<UserRecord>> find_user_by_email(const std::string& email);
    asio::awaitable<std::optional<UserRecord>> find_user_by_id(const std::string& id);
    // Throws sql::DatabaseError (UniqueViolation) when the email is taken.
    asio::awaitable<void> insert_user(const UserRecord& user);
    asio::awaitable<void> update_password_hash(const std::string& id, const std::string& hash,
                                               const std::string& now);
    // Sets the roles; refuses (returns false) to leave the system without an admin.
    enum class RoleChange { Changed, NotFound, LastAdmin };
    asio::awaitable<RoleChange> set_roles(const std::string& id,
                                          const std::vector<std::string>& roles,
                                          const std::string& now);
    asio::awaitable<Page<UserRecord>> list_users(std::int64_t page, std::int64_t limit);

    asio::awaitable<void> insert_refresh_token(const std::string& jti, const std::string& family_id,
                                               const std::string& user_id, bool new_family,
                                               std::int64_t expires_at, const std::string& now);
    asio::awaitable<SpendOutcome> spend_refresh_token(const std::string& jti,
                                                      const std::string& now);
    asio::awaitable<void> revoke_family(const std::string& family_id, const std::string& reason,
                                        const std::string& now);

    asio::awaitable<void> insert_api_key(const ApiKeyRecord& key);
    asio::awaitable<std::optional<ApiKeyRecord>> find_api_key(const std::string& id);
    asio::awaitable<std::vector<ApiKeyRecord>> list_api_keys(const std::string& user_id);
    // Revokes a key owned by user_id (any key when user_id is empty); false when none matched.
    asio::awaitable<bool> revoke_api_key(const std::string& id, const std::string& user_id,
                                         const std::string& now);
    asio::awaitable<void> touch_api_key(const std::string& id, const std::string& now);

    asio::awaitable<void> append_audit(const AuditRecord& record);
    // The audit entry and the event announcing it, in one transaction (the transactional outbox).
    asio::awaitable<void> append_audit(const AuditRecord& record, const bus::Event& event);
    asio::awaitable<Page<AuditRecord>> list_audit(const AuditFilter& filter, std::int64_t page,
                                                  std::int64_t limit);

  private:
    std::shared_ptr<sql::Database> database_;
};

}  // namespace aether::services::security
