// SQL of the security service, written once in the common subset of SQLite and PostgreSQL.
#include "services/security/store.h"

#include "platform/bus/outbox.h"
#include "services/security/policy.h"

namespace aether::services::security {
namespace {

constexpr const char* kUserColumns = "id, email, name, password_hash, roles, created_at";

UserRecord to_user(const sql::Row& row) {
    return UserRecord{row.get_string("id"),
                      row.get_string("email"),
                      row.get_string("name"),
                      row.get_string("password_hash"),
                      split_roles(row.get_string("roles")),
                      row.get_string("created_at")};
}

ApiKeyRecord to_api_key(const sql::Row& row) {
    return ApiKeyRecord{row.get_string("id"),
                        row.get_string("user_id"),
                        row.get_string("name"),
                        row.get_string("secret_hash"),
                        split_roles(row.get_string("scopes")),
                        row.get_string("created_at"),
                        row.get_optional_string("expires_at"),
                        row.get_optional_string("last_used_at"),
                        row.get_optional_string("revoked_at")};
}

sql::Value optional_value(const std::optional<std::string>& value) {
    return value ? sql::Value{*value} : sql::Value{nullptr};
}

}  // namespace

asio::awaitable<std::optional<UserRecord>> SecurityStore::find_user_by_email(
    const std::string& email) {
    auto result = co_await database_->query(
        std::string("SELECT ") + kUserColumns + " FROM users WHERE email = $1", email);
    if (result.empty()) co_return std::nullopt;
    co_return to_user(result[0]);
}

asio::awaitable<std::optional<UserRecord>> SecurityStore::find_user_by_id(const std::string& id) {
    auto result = co_await database_->query(
        std::string("SELECT ") + kUserColumns + " FROM users WHERE id = $1", id);
    if (result.empty()) co_return std::nullopt;
    co_return to_user(result[0]);
}

asio::awaitable<void> SecurityStore::insert_user(const UserRecord& user) {
    co_await database_->query(
        "INSERT INTO users (id, email, name, password_hash, roles, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $6)",
        user.id, user.email, user.name, user.password_hash, join_roles(user.roles),
        user.created_at);
}

asio::awaitable<void> SecurityStore::update_password_hash(const std::string& id,
                                                          const std::string& hash,
                                                          const std::string& now) {
    co_await database_->query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3",
                              hash, now, id);
}

asio::awaitable<SecurityStore::RoleChange> SecurityStore::set_roles(
    const std::string& id, const std::vector<std::string>& roles, const std::string& now) {
    RoleChange outcome = RoleChange::Changed;
    co_await database_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        if (session.dialect() == "postgres") {
            // READ COMMITTED would let two concurrent demotions each see the other admin; the
            // lock serializes role changes (SQLite's BEGIN IMMEDIATE already does).
            co_await session.query("SELECT pg_advisory_xact_lock(7411)");
        }
        auto current = co_await session.query("SELECT roles FROM users WHERE id = $1", id);
        if (current.empty()) {
            outcome = RoleChange::NotFound;
            co_return;
        }
        auto existing = split_roles(current[0].get_string("roles"));
        bool was_admin = std::find(existing.begin(), existing.end(), "admin") != existing.end();
        bool stays_admin = std::find(roles.begin(), roles.end(), "admin") != roles.end();
        if (was_admin && !stays_admin) {
            auto admins = co_await session.query(
                "SELECT COUNT(*) AS n FROM users WHERE roles = 'admin' OR roles LIKE 'admin,%' "
                "OR roles LIKE '%,admin' OR roles LIKE '%,admin,%'");
            if (admins[0].get_int("n") <= 1) {
                outcome = RoleChange::LastAdmin;
                co_return;
            }
        }
        co_await session.query("UPDATE users SET roles = $1, updated_at = $2 WHERE id = $3",
                               join_roles(roles), now, id);
    });
    co_return outcome;
}

asio::awaitable<Page<UserRecord>> SecurityStore::list_users(std::int64_t page, std::int64_t limit) {
    Page<UserRecord> result;
    auto count = co_await database_->query("SELECT COUNT(*) AS n FROM users");
    result.total = count[0].get_int("n");
    auto rows = co_await database_->query(
        std::string("SELECT ") + kUserColumns + " FROM users ORDER BY id LIMIT $1 OFFSET $2", limit,
        (page - 1) * limit);
    for (const auto& row : rows) result.items.push_back(to_user(row));
    co_return result;
}

asio::awaitable<void> SecurityStore::insert_refresh_token(const std::string& jti,
                                                          const std::string& family_id,
                                                          const std::string& user_id,
                                                          bool new_family, std::int64_t expires_at,
                                                          const std::string& now) {
    co_await database_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        if (new_family) {
            co_await session.query(
                "INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)",
                family_id, user_id, now);
        }
        co_await session.query(
            "INSERT INTO refresh_tokens (jti, family_id, expires_at, created_at) "
            "VALUES ($1, $2, $3, $4)",
            jti, family_id, expires_at, now);
    });
}

asio::awaitable<SpendOutcome> SecurityStore::spend_refresh_token(const std::string& jti,
                                                                 const std::string& now) {
    SpendOutcome outcome;
    co_await database_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        auto found = co_await session.query(
            "SELECT t.family_id, t.spent_at, f.user_id, f.revoked_at FROM refresh_tokens t "
            "JOIN refresh_families f ON f.id = t.family_id WHERE t.jti = $1",
            jti);
        if (found.empty()) co_return;
        const auto& row = found[0];
        outcome.family_id = row.get_string("family_id");
        outcome.user_id = row.get_string("user_id");
        if (!row.is_null("revoked_at")) {
            outcome.kind = SpendOutcome::Kind::FamilyRevoked;
            co_return;
        }
        // The conditional update makes two racing refreshes with one token see one winner.
        auto spent = co_await session.query(
            "UPDATE refresh_tokens SET spent_at = $1 WHERE jti = $2 AND spent_at IS NULL", now,
            jti);
        outcome.kind =
            spent.affected_rows() == 1 ? SpendOutcome::Kind::Spent : SpendOutcome::Kind::Reused;
    });
    co_return outcome;
}

asio::awaitable<void> SecurityStore::revoke_family(const std::string& family_id,
                                                   const std::string& reason,
                                                   const std::string& now) {
    co_await database_->query(
        "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2 "
        "WHERE id = $3 AND revoked_at IS NULL",
        now, reason, family_id);
}

asio::awaitable<void> SecurityStore::insert_api_key(const ApiKeyRecord& key) {
    co_await database_->query(
        "INSERT INTO api_keys (id, user_id, name, secret_hash, scopes, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        key.id, key.user_id, key.name, key.secret_hash, join_roles(key.scopes), key.created_at,
        optional_value(key.expires_at));
}

asio::awaitable<std::optional<ApiKeyRecord>> SecurityStore::find_api_key(const std::string& id) {
    auto result = co_await database_->query("SELECT * FROM api_keys WHERE id = $1", id);
    if (result.empty()) co_return std::nullopt;
    co_return to_api_key(result[0]);
}

asio::awaitable<std::vector<ApiKeyRecord>> SecurityStore::list_api_keys(
    const std::string& user_id) {
    auto result =
        co_await database_->query("SELECT * FROM api_keys WHERE user_id = $1 ORDER BY id", user_id);
    std::vector<ApiKeyRecord> keys;
    for (const auto& row : result) keys.push_back(to_api_key(row));
    co_return keys;
}

asio::awaitable<bool> SecurityStore::revoke_api_key(const std::string& id,
                                                    const std::string& user_id,
                                                    const std::string& now) {
    sql::Result result;
    if (user_id.empty()) {
        result = co_await database_->query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", now, id);
    } else {
        result = co_await database_->query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND user_id = $3 "
            "AND revoked_at IS NULL",
            now, id, user_id);
    }
    co_return result.affected_rows() == 1;
}

asio::awaitable<void> SecurityStore::touch_api_key(const std::string& id, const std::string& now) {
    co_await database_->query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", now, id);
}

namespace {
constexpr const char* kInsertAudit =
    "INSERT INTO audit_log (id, occurred_at, event, user_id, email, ip, details) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)";
}  // namespace

asio::awaitable<void> SecurityStore::append_audit(const AuditRecord& record) {
    co_await database_->query(kInsertAudit, record.id, record.occurred_at, record.event,
                              optional_value(record.user_id), optional_value(record.email),
                              optional_value(record.ip), record.details);
}

asio::awaitable<void> SecurityStore::append_audit(const AuditRecord& record,
                                                  const bus::Event& event) {
    co_await database_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        session.defer(kInsertAudit, record.id, record.occurred_at, record.event,
                      optional_value(record.user_id), optional_value(record.email),
                      optional_value(record.ip), record.details);
        co_await bus::append_to_outbox(session, event);
    });
}

asio::awaitable<Page<AuditRecord>> SecurityStore::list_audit(const AuditFilter& filter,
                                                             std::int64_t page,
                                                             std::int64_t limit) {
    std::string where = " WHERE 1 = 1";
    std::vector<sql::Value> params;
    if (filter.event) {
        params.emplace_back(*filter.event);
        where += " AND event = $" + std::to_string(params.size());
    }
    if (filter.user_id) {
        params.emplace_back(*filter.user_id);
        where += " AND user_id = $" + std::to_string(params.size());
    }
    Page<AuditRecord> result;
    auto count = co_await database_->query("SELECT COUNT(*) AS n FROM audit_log" + where, params);
    result.total = count[0].get_int("n");
    params.emplace_back(limit);
    std::string limit_param = "$" + std::to_string(params.size());
    params.emplace_back((page - 1) * limit);
    std::string offset_param = "$" + std::to_string(params.size());
    auto rows =
        co_await database_->query("SELECT * FROM audit_log" + where + " ORDER BY id DESC LIMIT " +
                                      limit_param + " OFFSET " + offset_param,
                                  std::move(params));
    for (const auto& row : rows) {
        result.items.push_back(AuditRecord{
            row.get_string("id"), row.get_string("occurred_at"), row.get_string("event"),
            row.get_optional_string("user_id"), row.get_optional_string("email"),
            row.get_optional_string("ip"), row.get_string("details")});
    }
    co_return result;
}

}  // namespace aether::services::security
