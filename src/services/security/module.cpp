// Wires the security module: its config block, migrations and routes.
#include "services/security/module.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/describe.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "platform/auth/jwt.h"
#include "platform/auth/password.h"
#include "platform/auth/permissions.h"
#include "platform/auth/tokens.h"
#include "platform/bus/outbox.h"
#include "platform/config/config.h"
#include "platform/config/schema.h"
#include "platform/http/bearer.h"
#include "platform/http/pagination.h"
#include "platform/http/router.h"
#include "platform/json/body.h"
#include "platform/json/envelope.h"
#include "platform/json/validate.h"
#include "platform/runtime/blocking_pool.h"
#include "platform/sql/migrations.h"
#include "platform/telemetry/clock.h"
#include "platform/telemetry/json_escape.h"
#include "platform/telemetry/log.h"
#include "platform/telemetry/metrics.h"
#include "security_migrations.h"
#include "services/security/policy.h"
#include "services/security/store.h"
#include "services/security/throttle.h"

namespace aether::services::security {

namespace asio = boost::asio;
namespace http = platform::http;
namespace auth = platform::auth;
namespace json = platform::json;
namespace config = platform::config;
namespace runtime = platform::runtime;
namespace telemetry = platform::telemetry;
using json::ClientError;
using json::FieldError;

struct LoginBody {
    std::string email;
    std::string password;
};
BOOST_DESCRIBE_STRUCT(LoginBody, (), (email, password))

struct RegisterBody {
    std::string email;
    std::string password;
    std::string name;
};
BOOST_DESCRIBE_STRUCT(RegisterBody, (), (email, password, name))

struct TokenBody {
    std::string token;
};
BOOST_DESCRIBE_STRUCT(TokenBody, (), (token))

struct RefreshBody {
    std::string refresh_token;
};
BOOST_DESCRIBE_STRUCT(RefreshBody, (), (refresh_token))

struct ApiKeyBody {
    std::string name;
    std::optional<std::vector<std::string>> scopes;
    std::optional<std::int64_t> expires_in_days;
};
BOOST_DESCRIBE_STRUCT(ApiKeyBody, (), (name, scopes, expires_in_days))

struct RolesBody {
    std::vector<std::string> roles;
};
BOOST_DESCRIBE_STRUCT(RolesBody, (), (roles))

namespace {

constexpr std::string_view kBase = "/api/v1/auth";
constexpr std::size_t kMaxEmailBytes = 254;
constexpr auto kThrottleQueuePoll = std::chrono::milliseconds(20);
constexpr auto kLongestThrottleQueueWait = std::chrono::seconds(10);

struct Settings {
    std::chrono::seconds access_ttl{3600};
    std::chrono::seconds refresh_ttl{30 * 24 * 3600};
    bool allow_registration = true;
    PasswordPolicy policy;
    auth::PasswordSettings password;
    ThrottleSettings throttle;
};

std::int64_t epoch_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string now_text() {
    return telemetry::format_rfc3339_ms(std::chrono::system_clock::now());
}

std::string epoch_text(std::int64_t epoch_seconds) {
    return telemetry::format_rfc3339_ms(
        std::chrono::system_clock::time_point(std::chrono::seconds(epoch_seconds)));
}

template <class T>
T parse_body(const http::Request& request) {
    auto parsed = json::parse_as<T>(request.body);
    if (!parsed) throw ClientError::validation(std::move(parsed).error());
    return std::move(*parsed);
}

boost::json::array to_array(const std::vector<std::string>& values) {
    boost::json::array array;
    for (const auto& value : values) array.emplace_back(value);
    return array;
}

boost::json::value optional_json(const std::optional<std::string>& value) {
    return value ? boost::json::value(*value) : boost::json::value(nullptr);
}

http::Response json_response(int status, const boost::json::object& body) {
    return http::Response::json(status, boost::json::serialize(body));
}

void append_string_array(std::string& out, const std::vector<std::string>& values) {
    out.push_back('[');
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out.push_back(',');
        telemetry::append_json_string(out, values[i]);
    }
    out.push_back(']');
}

// The body of a successful /validate, written directly: it is the hottest endpoint there is.
std::string validation_body(std::string_view user_id, const std::vector<std::string>& roles,
                            const std::vector<std::string>& permissions,
                            std::string_view expires_at) {
    std::string out;
    out.reserve(96 + user_id.size() + expires_at.size() + 24 * (roles.size() + permissions.size()));
    out.append(R"({"valid":true,"user_id":)");
    telemetry::append_json_string(out, user_id);
    out.append(R"(,"roles":)");
    append_string_array(out, roles);
    out.append(R"(,"permissions":)");
    append_string_array(out, permissions);
    out.append(R"(,"expires_at":)");
    if (expires_at.empty()) {
        out.append("null");
    } else {
        telemetry::append_json_string(out, expires_at);
    }
    out.push_back('}');
    return out;
}

boost::json::object user_json(const UserRecord& user) {
    return {{"id", user.id},
            {"email", user.email},
            {"name", user.name},
            {"roles", to_array(user.roles)},
            {"created_at", user.created_at}};
}

std::vector<std::string> permissions_of(const std::vector<std::string>& roles) {
    return auth::permissions_for_roles(roles);
}

class SecurityModule final : public runtime::Module {
  public:
    std::string_view name() const override { return "security"; }
    std::string_view base_path() const override { return kBase; }

    void declare_config(config::Schema& schema) const override {
        using config::Kind;
        schema.add({"services.security.database", Kind::String, "",
                    "postgresql:// URL or sqlite:PATH (default sqlite:<data-dir>/security.db)",
                    config::database_url()});
        schema.add({"services.security.access_token_ttl",
                    Kind::Duration,
                    "1h",
                    "Lifetime of access tokens",
                    {}});
        schema.add({"services.security.refresh_token_ttl",
                    Kind::Duration,
                    "720h",
                    "Lifetime of refresh tokens",
                    {}});
        schema.add({"services.security.allow_registration",
                    Kind::Bool,
                    "true",
                    "Whether POST /register is open",
                    {}});
        schema.add({"services.security.password_scheme", Kind::String, "bcrypt",
                    "Hash for new passwords: bcrypt or argon2id (old hashes are upgraded on login)",
                    config::one_of({"bcrypt", "argon2id"})});
        schema.add({"services.security.bcrypt_cost", Kind::Int, "12", "bcrypt work factor",
                    config::int_range(4, 31)});
        schema.add({"services.security.password_min_length", Kind::Int, "8",
                    "Shortest password accepted, in characters", config::int_range(1, 72)});
        schema.add({"services.security.login.account_limit", Kind::Int, "5",
                    "Failed logins per account within the window before 429",
                    config::int_range(1, 1000)});
        schema.add({"services.security.login.address_limit", Kind::Int, "20",
                    "Failed logins per client address within the window before 429",
                    config::int_range(1, 100000)});
        schema.add({"services.security.login.window",
                    Kind::Duration,
                    "15m",
                    "Sliding window in which failed logins are counted",
                    {}});
        schema.add({"services.security.login.free_failures", Kind::Int, "2",
                    "Failures answered without an added delay", config::int_range(0, 1000)});
        schema.add({"services.security.login.base_delay",
                    Kind::Duration,
                    "250ms",
                    "First added delay; it doubles with each further failure",
                    {}});
        schema.add(
            {"services.security.login.max_delay", Kind::Duration, "4s", "Largest added delay", {}});
    }

    asio::awaitable<void> migrate(runtime::ModuleContext& context) override {
        database_ = co_await context.database("security");
        co_await platform::sql::migrate(*database_, "security", security_migrations());
        co_await platform::bus::migrate_outbox(*database_);
    }

    asio::awaitable<void> start(runtime::ModuleContext& context) override;

    // Creates a user from the CLI; shares the module's hashing and validation.
    asio::awaitable<int> create_user(runtime::ModuleContext& context, std::string email,
                                     std::string name, std::string role, std::string password);

  private:
    void load_settings(const config::Config& config);
    void add_routes(http::Router& router);

    asio::awaitable<http::Response> register_user(http::Request& request);
    asio::awaitable<http::Response> login(http::Request& request);
    asio::awaitable<http::Response> refresh(http::Request& request);
    asio::awaitable<http::Response> validate(http::Request& request);
    asio::awaitable<http::Response> me(http::Request& request);
    asio::awaitable<http::Response> logout(http::Request& request);
    asio::awaitable<http::Response> create_api_key(http::Request& request);
    asio::awaitable<http::Response> list_api_keys(http::Request& request);
    asio::awaitable<http::Response> revoke_api_key(http::Request& request);
    asio::awaitable<http::Response> list_users(http::Request& request);
    asio::awaitable<http::Response> set_roles(http::Request& request);
    asio::awaitable<http::Response> audit(http::Request& request);

    // Who is calling: a bearer access JWT or an API key ("ak_…", Bearer or X-API-Key).
    asio::awaitable<auth::Principal> authenticate(http::Request& request);
    asio::awaitable<std::optional<auth::Principal>> principal_from_api_key(std::string_view secret);

    struct Issued {
        std::string access_token;
        std::string refresh_token;
    };
    asio::awaitable<Issued> issue_tokens(const UserRecord& user, std::string family);
    // Records a refresh token of the old system (no jti) in a new family so that it, too, can be
    // used only once. A concurrent adoption of the same token is fine; an unknown user is not.
    asio::awaitable<void> adopt_legacy_refresh_token(const std::string& jti,
                                                     const std::string& family,
                                                     const auth::Claims& claims,
                                                     const std::string& now);
    // Marks a verified refresh token spent. A token of the old system (no jti) is first adopted
    // into a family of its own, so that it, too, works only once.
    asio::awaitable<SpendOutcome> spend_refresh_token(const auth::Claims& claims,
                                                      std::string_view token,
                                                      const std::string& now);
    // The jti a refresh token is tracked by; tokens of the old system carry none.
    static std::string refresh_jti(const auth::Claims& claims, std::string_view token);

    // Audit entries are built by a plain function and then stored, so that no temporaries sit in
    // a co_await expression (GCC 12 destroys some of those twice; see docs/developing.md).
    static AuditRecord audit_entry(std::string event, const http::Request* request,
                                   std::optional<std::string> user_id,
                                   std::optional<std::string> email, boost::json::object details);
    asio::awaitable<void> record(const AuditRecord& entry) { co_await store_->append_audit(entry); }
    // Records the entry and, in the same transaction, the bus event of the same type
    // (user.registered, auth.login.*): other services learn of it exactly when it is stored.
    asio::awaitable<void> record_and_publish(const AuditRecord& entry,
                                             const http::Request& request);
    asio::awaitable<std::string> hash_password(const std::string& password);

    Settings settings_;
    std::shared_ptr<platform::sql::Database> database_;
    std::unique_ptr<SecurityStore> store_;
    std::unique_ptr<auth::PasswordHasher> hasher_;
    std::unique_ptr<LoginThrottle> throttle_;
    const auth::JwtCodec* jwt_ = nullptr;
    runtime::BlockingPool* hashing_pool_ = nullptr;
    telemetry::CounterFamily* logins_ = nullptr;
    std::function<void()> outbox_appended_;
};

void SecurityModule::load_settings(const config::Config& config) {
    using std::chrono::duration_cast;
    using std::chrono::seconds;
    settings_.access_ttl =
        duration_cast<seconds>(config.get_duration("services.security.access_token_ttl"));
    settings_.refresh_ttl =
        duration_cast<seconds>(config.get_duration("services.security.refresh_token_ttl"));
    settings_.allow_registration = config.get_bool("services.security.allow_registration");
    settings_.password.scheme = config.get_string("services.security.password_scheme");
    settings_.password.bcrypt_cost =
        static_cast<int>(config.get_int("services.security.bcrypt_cost"));
    settings_.policy.min_length =
        static_cast<std::size_t>(config.get_int("services.security.password_min_length"));
    settings_.policy.max_bytes =
        settings_.password.scheme == "bcrypt" ? auth::kBcryptMaxPasswordBytes : std::size_t{1024};
    auto& throttle = settings_.throttle;
    throttle.account_limit =
        static_cast<int>(config.get_int("services.security.login.account_limit"));
    throttle.address_limit =
        static_cast<int>(config.get_int("services.security.login.address_limit"));
    throttle.window = duration_cast<seconds>(config.get_duration("services.security.login.window"));
    throttle.free_failures =
        static_cast<int>(config.get_int("services.security.login.free_failures"));
    throttle.base_delay = config.get_duration("services.security.login.base_delay");
    throttle.max_delay = config.get_duration("services.security.login.max_delay");
}

asio::awaitable<void> SecurityModule::start(runtime::ModuleContext& context) {
    load_settings(context.config());
    if (!database_) database_ = co_await context.database("security");
    store_ = std::make_unique<SecurityStore>(database_);
    hasher_ = std::make_unique<auth::PasswordHasher>(settings_.password);
    if (!hasher_->settings_valid()) throw std::runtime_error("invalid password hashing settings");
    throttle_ = std::make_unique<LoginThrottle>(settings_.throttle);
    jwt_ = &context.jwt();
    hashing_pool_ = &context.hashing_pool();
    logins_ = &telemetry::default_registry().counter("auth_logins_total",
                                                     "Login attempts by outcome.", {"outcome"});
    outbox_appended_ = co_await context.publish_outbox(database_);
    add_routes(context.router());
}

namespace {
// The event of an audit entry: `user_id`/`email`, `ip`, `timestamp` (API.md §Events), plus the
// reason of a failure.
platform::bus::Event event_of(const AuditRecord& entry, const http::Request& request) {
    boost::json::object data;
    data["user_id"] = entry.user_id ? boost::json::value(*entry.user_id) : boost::json::value();
    data["email"] = entry.email ? boost::json::value(*entry.email) : boost::json::value();
    data["ip"] = request.remote_address;
    data["timestamp"] = entry.occurred_at;
    auto details = boost::json::parse(entry.details);
    if (auto* reason = details.as_object().if_contains("reason")) data["reason"] = *reason;
    return platform::bus::make_event("security", entry.event, std::move(data),
                                     request.context.traceparent);
}
}  // namespace

asio::awaitable<void> SecurityModule::record_and_publish(const AuditRecord& entry,
                                                         const http::Request& request) {
    auto event = event_of(entry, request);
    co_await store_->append_audit(entry, event);
    if (outbox_appended_) outbox_appended_();
}

void SecurityModule::add_routes(http::Router& router) {
    auto bind = [this](asio::awaitable<http::Response> (SecurityModule::*member)(http::Request&)) {
        return [this, member](http::Request& request) { return (this->*member)(request); };
    };
    std::string base(kBase);
    using http::Method;
    router.add(Method::Post, base + "/register", bind(&SecurityModule::register_user));
    router.add(Method::Post, base + "/login", bind(&SecurityModule::login));
    router.add(Method::Post, base + "/refresh", bind(&SecurityModule::refresh));
    router.add(Method::Post, base + "/validate", bind(&SecurityModule::validate));
    router.add(Method::Get, base + "/me", bind(&SecurityModule::me));
    router.add(Method::Post, base + "/logout", bind(&SecurityModule::logout));
    router.add(Method::Get, base + "/api-keys", bind(&SecurityModule::list_api_keys));
    router.add(Method::Post, base + "/api-keys", bind(&SecurityModule::create_api_key));
    router.add(Method::Delete, base + "/api-keys/{id}", bind(&SecurityModule::revoke_api_key));
    router.add(Method::Get, base + "/users", bind(&SecurityModule::list_users));
    router.add(Method::Put, base + "/users/{id}/roles", bind(&SecurityModule::set_roles));
    router.add(Method::Get, base + "/audit", bind(&SecurityModule::audit));
    router.add(Method::Get, base + "/.well-known/jwks.json",
               [this](http::Request&) -> asio::awaitable<http::Response> {
                   co_return http::Response::json(200, jwt_->jwks_json());
               });
}

asio::awaitable<std::string> SecurityModule::hash_password(const std::string& password) {
    auto hashed = co_await runtime::blocking(*hashing_pool_,
                                             [this, &password] { return hasher_->hash(password); });
    if (!hashed) {
        throw ClientError::validation([&] {
            return std::vector<FieldError>{
                {"password", std::string(auth::password_error_message(hashed.error()))}};
        }());
    }
    co_return std::move(*hashed);
}

AuditRecord SecurityModule::audit_entry(std::string event, const http::Request* request,
                                        std::optional<std::string> user_id,
                                        std::optional<std::string> email,
                                        boost::json::object details) {
    AuditRecord entry;
    entry.id = auth::new_id("aud_");
    entry.occurred_at = now_text();
    entry.event = std::move(event);
    entry.user_id = std::move(user_id);
    entry.email = std::move(email);
    if (request) {
        entry.ip = request->remote_address;
        details["request_id"] = request->context.request_id;
    }
    entry.details = boost::json::serialize(details);
    return entry;
}

asio::awaitable<http::Response> SecurityModule::register_user(http::Request& request) {
    if (!settings_.allow_registration) throw ClientError::forbidden("registration is closed");
    auto body = parse_body<RegisterBody>(request);
    json::Validator check;
    check.email("email", body.email);
    check.length("name", body.name, 1, 100);
    for (auto& error : check_password(settings_.policy, body.password, body.email)) {
        check.add(std::move(error));
    }
    if (!check.ok()) throw ClientError::validation(check.take());
    UserRecord user;
    user.email = normalize_email(body.email);
    if (co_await store_->find_user_by_email(user.email)) {
        throw ClientError::conflict("a user with this email already exists");
    }
    user.id = auth::new_id("usr_");
    user.name = body.name;
    user.roles = {"user"};
    user.created_at = now_text();
    user.password_hash = co_await hash_password(body.password);
    try {
        co_await store_->insert_user(user);
    } catch (const platform::sql::DatabaseError& error) {
        if (error.kind() != platform::sql::DatabaseError::Kind::UniqueViolation) throw;
        throw ClientError::conflict("a user with this email already exists");
    }
    auto audit = audit_entry("user.registered", &request, user.id, user.email,
                             [&] { return boost::json::object{}; }());
    co_await record_and_publish(audit, request);
    co_return json_response(201, [&] {
        return boost::json::object{{"user_id", user.id},
                                   {"email", user.email},
                                   {"message", "User registered successfully"}};
    }());
}

asio::awaitable<SecurityModule::Issued> SecurityModule::issue_tokens(const UserRecord& user,
                                                                     std::string family) {
    auto now = epoch_now();
    bool new_family = family.empty();
    if (new_family) family = auth::new_id("fam_");
    auth::Claims access;
    access.sub = user.id;
    access.email = user.email;
    access.roles = user.roles;
    access.permissions = permissions_of(user.roles);
    access.type = "access";
    access.jti = auth::new_id("at_");
    access.iat = now;
    access.exp = now + settings_.access_ttl.count();
    auth::Claims refresh = access;
    refresh.permissions.clear();
    refresh.type = "refresh";
    refresh.jti = auth::new_id("rt_");
    refresh.family = family;
    refresh.exp = now + settings_.refresh_ttl.count();
    co_await store_->insert_refresh_token(refresh.jti, family, user.id, new_family, refresh.exp,
                                          now_text());
    Issued issued{jwt_->sign(access), jwt_->sign(refresh)};
    co_return issued;
}

std::string SecurityModule::refresh_jti(const auth::Claims& claims, std::string_view token) {
    if (!claims.jti.empty()) return claims.jti;
    return "legacy_" + auth::sha256_hex(token);
}

asio::awaitable<http::Response> SecurityModule::login(http::Request& request) {
    auto body = parse_body<LoginBody>(request);
    json::Validator check;
    check.require(!body.email.empty(), "email", "is required");
    check.require(!body.password.empty(), "password", "is required");
    // Bounded before anything is counted, hashed or stored: these strings become throttle keys
    // and audit rows, and longer passwords would buy an attacker more hashing work.
    check.require(body.email.size() <= kMaxEmailBytes, "email", "must be at most 254 bytes");
    check.require(body.password.size() <= auth::kMaxPasswordBytes, "password",
                  "must be at most " + std::to_string(auth::kMaxPasswordBytes) + " bytes");
    if (!check.ok()) throw ClientError::validation(check.take());
    auto account = normalize_email(body.email);
    auto address = throttle_key_for_address(request.remote_address);
    // The attempt is registered as it begins, so parallel guesses cannot overshoot the limit;
    // attempts beyond the in-flight budget of their account or address wait their turn.
    auto decision = throttle_->begin_attempt(account, address, LoginThrottle::Clock::now());
    auto give_up = LoginThrottle::Clock::now() + kLongestThrottleQueueWait;
    while (decision.wait && LoginThrottle::Clock::now() < give_up) {
        asio::steady_timer pause(co_await asio::this_coro::executor, kThrottleQueuePoll);
        co_await pause.async_wait(asio::use_awaitable);
        decision = throttle_->begin_attempt(account, address, LoginThrottle::Clock::now());
    }
    if (decision.wait) {
        throw ClientError::rate_limited("too many sign-in attempts in progress; try again", 1);
    }
    if (decision.blocked) {
        logins_->with(std::array<std::string_view, 1>{"blocked"}).inc();
        if (decision.first_block) {
            auto audit = audit_entry("auth.login.blocked", &request, std::nullopt, account,
                                     boost::json::object{});
            co_await record(audit);
        }
        throw ClientError::rate_limited("too many failed logins; try again later",
                                        decision.retry_after_seconds);
    }
    // Ends the attempt however this handler leaves: as a failure unless marked otherwise.
    struct Attempt {
        LoginThrottle& throttle;
        std::string account;
        std::string address;
        bool ended = false;
        void end(bool succeeded) {
            if (ended) return;
            ended = true;
            throttle.end_attempt(account, address, succeeded, LoginThrottle::Clock::now());
        }
        ~Attempt() { end(false); }
    };
    Attempt attempt{*throttle_, account, address};
    if (decision.delay.count() > 0) {
        asio::steady_timer timer(co_await asio::this_coro::executor, decision.delay);
        co_await timer.async_wait(asio::use_awaitable);
    }
    auto user = co_await store_->find_user_by_email(account);
    const std::string& password = body.password;
    std::string stored = user ? user->password_hash : std::string{};
    bool verified = co_await runtime::blocking(
        *hashing_pool_, [this, &password, &stored, known = user.has_value()] {
            if (!known) {
                // Unknown accounts cost the same hashing work as a wrong password.
                hasher_->burn_equal_work(password);
                return false;
            }
            return hasher_->verify(password, stored);
        });
    if (!verified) {
        logins_->with(std::array<std::string_view, 1>{"failed"}).inc();
        std::optional<std::string> user_id;
        if (user) user_id = user->id;
        auto audit = audit_entry("auth.login.failed", &request, user_id, account,
                                 boost::json::object{{"reason", "invalid_credentials"}});
        co_await record_and_publish(audit, request);
        throw ClientError::unauthorized("Invalid credentials");
    }
    attempt.end(true);
    if (hasher_->needs_rehash(user->password_hash)) {
        // An upgrade of the stored hash must never fail a login that already succeeded.
        auto rehashed = co_await runtime::blocking(
            *hashing_pool_, [this, &password] { return hasher_->hash(password); });
        if (rehashed) {
            user->password_hash = std::move(*rehashed);
            co_await store_->update_password_hash(user->id, user->password_hash, now_text());
        } else {
            telemetry::log_warn("password rehash skipped",
                                {{"user_id", user->id},
                                 {"reason", auth::password_error_message(rehashed.error())}});
        }
    }
    request.context.user_id = user->id;
    std::string new_family;
    auto tokens = co_await issue_tokens(*user, new_family);
    logins_->with(std::array<std::string_view, 1>{"succeeded"}).inc();
    auto audit = audit_entry("auth.login.succeeded", &request, user->id, user->email,
                             [&] { return boost::json::object{}; }());
    co_await record_and_publish(audit, request);
    co_return json_response(200, [&] {
        return boost::json::object{{"access_token", tokens.access_token},
                                   {"refresh_token", tokens.refresh_token},
                                   {"token_type", "Bearer"},
                                   {"expires_in", settings_.access_ttl.count()},
                                   {"user", user_json(*user)}};
    }());
}

asio::awaitable<void> SecurityModule::adopt_legacy_refresh_token(const std::string& jti,
                                                                 const std::string& family,
                                                                 const auth::Claims& claims,
                                                                 const std::string& now) {
    bool unknown_user = false;
    // co_await is not allowed in a handler, so the outcome is noted and acted on after it.
    auto adopt = store_->insert_refresh_token(jti, family, claims.sub, true, claims.exp, now);
    try {
        co_await std::move(adopt);
    } catch (const platform::sql::DatabaseError& error) {
        if (error.kind() == platform::sql::DatabaseError::Kind::ForeignKey) {
            unknown_user = true;
        } else if (error.kind() != platform::sql::DatabaseError::Kind::UniqueViolation) {
            throw;
        }
    }
    if (unknown_user) throw ClientError::unauthorized("invalid refresh token");
}

asio::awaitable<SpendOutcome> SecurityModule::spend_refresh_token(const auth::Claims& claims,
                                                                  std::string_view token,
                                                                  const std::string& now) {
    auto jti = refresh_jti(claims, token);
    auto outcome = co_await store_->spend_refresh_token(jti, now);
    if (outcome.kind == SpendOutcome::Kind::Unknown && claims.jti.empty()) {
        auto family = auth::new_id("fam_");
        co_await adopt_legacy_refresh_token(jti, family, claims, now);
        outcome = co_await store_->spend_refresh_token(jti, now);
    }
    co_return outcome;
}

asio::awaitable<http::Response> SecurityModule::refresh(http::Request& request) {
    if (request.query("refresh_token")) {
        throw ClientError::validation([&] {
            return std::vector<FieldError>{
                {"refresh_token", "must be sent in the JSON body, never in the query string"}};
        }());
    }
    auto body = parse_body<RefreshBody>(request);
    auto verified = jwt_->verify(body.refresh_token, "refresh", epoch_now());
    if (!verified) throw ClientError::unauthorized("invalid refresh token");
    const std::shared_ptr<const auth::Claims> claims = std::move(*verified);
    auto now = now_text();
    auto outcome = co_await spend_refresh_token(*claims, body.refresh_token, now);
    std::string family = outcome.family_id;
    switch (outcome.kind) {
        case SpendOutcome::Kind::Unknown:
        case SpendOutcome::Kind::FamilyRevoked:
            throw ClientError::unauthorized("invalid refresh token");
        case SpendOutcome::Kind::Reused: {
            // A spent token presented again means it was stolen or replayed: end the family.
            co_await store_->revoke_family(family, "reuse", now);
            auto audit = audit_entry("auth.token.reuse", &request, outcome.user_id, claims->email,
                                     boost::json::object{{"family_id", family}});
            co_await record(audit);
            throw ClientError::unauthorized("refresh token reuse detected; please sign in again");
        }
        case SpendOutcome::Kind::Spent:
            break;
    }
    auto user = co_await store_->find_user_by_id(outcome.user_id);
    if (!user) throw ClientError::unauthorized("invalid refresh token");
    request.context.user_id = user->id;
    auto tokens = co_await issue_tokens(*user, family);
    auto audit = audit_entry("auth.token.refreshed", &request, user->id, user->email, [&] {
        return boost::json::object{{"family_id", family}};
    }());
    co_await record(audit);
    co_return json_response(200, [&] {
        return boost::json::object{{"access_token", tokens.access_token},
                                   {"refresh_token", tokens.refresh_token},
                                   {"token_type", "Bearer"},
                                   {"expires_in", settings_.access_ttl.count()}};
    }());
}

asio::awaitable<std::optional<auth::Principal>> SecurityModule::principal_from_api_key(
    std::string_view secret) {
    auto id = auth::api_key_id_from_secret(secret);
    if (!id) co_return std::nullopt;
    auto key = co_await store_->find_api_key(*id);
    if (!key || key->revoked_at || !auth::verify_api_key(secret, key->secret_hash)) {
        co_return std::nullopt;
    }
    auto now = now_text();
    if (key->expires_at && *key->expires_at <= now) co_return std::nullopt;
    auto user = co_await store_->find_user_by_id(key->user_id);
    if (!user) co_return std::nullopt;
    // A key never grants more than its owner holds today.
    auto owner_permissions = permissions_of(user->roles);
    auth::Principal principal;
    principal.user_id = user->id;
    principal.email = user->email;
    principal.roles = user->roles;
    for (const auto& scope : key->scopes) {
        if (std::find(owner_permissions.begin(), owner_permissions.end(), scope) !=
            owner_permissions.end()) {
            principal.permissions.push_back(scope);
        }
    }
    principal.token_id = key->id;
    principal.via = "api_key";
    co_await store_->touch_api_key(key->id, now);
    co_return principal;
}

asio::awaitable<auth::Principal> SecurityModule::authenticate(http::Request& request) {
    auto api_key_header = request.header("X-API-Key");
    std::string_view token = api_key_header;
    if (!token.empty() && !token.starts_with("ak_")) {
        throw ClientError::unauthorized("invalid API key");
    }
    if (token.empty()) token = http::bearer_token(request);
    if (token.starts_with("ak_")) {
        auto principal = co_await principal_from_api_key(token);
        if (!principal) throw ClientError::unauthorized("invalid API key");
        request.context.user_id = principal->user_id;
        co_return std::move(*principal);
    }
    co_return http::authenticate_access_token(request, *jwt_);
}

asio::awaitable<http::Response> SecurityModule::validate(http::Request& request) {
    auto body = parse_body<TokenBody>(request);
    if (body.token.starts_with("ak_")) {
        auto principal = co_await principal_from_api_key(body.token);
        if (!principal) co_return http::Response::json(200, R"({"valid":false})");
        co_return http::Response::json(
            200, validation_body(principal->user_id, principal->roles, principal->permissions, ""));
    }
    auto verified = jwt_->verify(body.token, "access", epoch_now());
    if (!verified) co_return http::Response::json(200, R"({"valid":false})");
    const auth::Claims& claims = **verified;
    auto permissions = http::effective_permissions(claims);
    co_return http::Response::json(
        200, validation_body(claims.sub, claims.roles, permissions, epoch_text(claims.exp)));
}

asio::awaitable<http::Response> SecurityModule::me(http::Request& request) {
    auto principal = co_await authenticate(request);
    co_return json_response(200, [&] {
        return boost::json::object{{"user_id", principal.user_id},
                                   {"email", principal.email},
                                   {"roles", to_array(principal.roles)},
                                   {"permissions", to_array(principal.permissions)}};
    }());
}

asio::awaitable<http::Response> SecurityModule::logout(http::Request& request) {
    auto body = parse_body<RefreshBody>(request);
    auto verified = jwt_->verify(body.refresh_token, "refresh", epoch_now());
    if (!verified) throw ClientError::unauthorized("invalid refresh token");
    const std::shared_ptr<const auth::Claims> claims = std::move(*verified);
    auto now = now_text();
    auto outcome = co_await spend_refresh_token(*claims, body.refresh_token, now);
    if (!outcome.family_id.empty())
        co_await store_->revoke_family(outcome.family_id, "logout", now);
    request.context.user_id = claims->sub;
    auto audit = audit_entry("auth.logout", &request, claims->sub, claims->email, [&] {
        return boost::json::object{{"family_id", outcome.family_id}};
    }());
    co_await record(audit);
    co_return json_response(200, [&] {
        return boost::json::object{{"success", true}, {"message", "Logged out"}};
    }());
}

asio::awaitable<http::Response> SecurityModule::create_api_key(http::Request& request) {
    auto principal = co_await authenticate(request);
    if (principal.via != "token") {
        throw ClientError::forbidden("API keys can only be created with a user's access token");
    }
    http::require_permission(principal, "api_keys:write");
    auto body = parse_body<ApiKeyBody>(request);
    json::Validator check;
    check.length("name", body.name, 1, 100);
    std::vector<std::string> scopes = body.scopes ? *body.scopes : principal.permissions;
    if (body.scopes && body.scopes->empty())
        check.add({"scopes", "must name at least one permission"});
    for (std::size_t i = 0; i < scopes.size(); ++i) {
        if (!principal.has_permission(scopes[i])) {
            check.add({"scopes[" + std::to_string(i) + "]",
                       "is not a permission you hold (" + scopes[i] + ")"});
        }
    }
    if (body.expires_in_days) check.range("expires_in_days", *body.expires_in_days, 1, 3650);
    if (!check.ok()) throw ClientError::validation(check.take());
    std::sort(scopes.begin(), scopes.end());
    scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
    auto generated = auth::generate_api_key();
    ApiKeyRecord key;
    key.id = generated.id;
    key.user_id = principal.user_id;
    key.name = body.name;
    key.secret_hash = generated.hash;
    key.scopes = scopes;
    key.created_at = now_text();
    if (body.expires_in_days) {
        key.expires_at = telemetry::format_rfc3339_ms(
            std::chrono::system_clock::now() + std::chrono::hours(24 * *body.expires_in_days));
    }
    co_await store_->insert_api_key(key);
    auto audit = audit_entry("api_key.created", &request, principal.user_id, principal.email, [&] {
        return boost::json::object{{"key_id", key.id}, {"scopes", to_array(scopes)}};
    }());
    co_await record(audit);
    co_return json_response(201, [&] {
        return boost::json::object{{"id", key.id},
                                   {"name", key.name},
                                   {"key", generated.secret_shown_once},
                                   {"scopes", to_array(key.scopes)},
                                   {"created_at", key.created_at},
                                   {"expires_at", optional_json(key.expires_at)}};
    }());
}

asio::awaitable<http::Response> SecurityModule::list_api_keys(http::Request& request) {
    auto principal = co_await authenticate(request);
    http::require_permission(principal, "api_keys:write");
    auto keys = co_await store_->list_api_keys(principal.user_id);
    boost::json::array items;
    for (const auto& key : keys) {
        items.push_back([&] {
            return boost::json::object{{"id", key.id},
                                       {"name", key.name},
                                       {"scopes", to_array(key.scopes)},
                                       {"created_at", key.created_at},
                                       {"expires_at", optional_json(key.expires_at)},
                                       {"last_used_at", optional_json(key.last_used_at)},
                                       {"revoked_at", optional_json(key.revoked_at)}};
        }());
    }
    co_return json_response(200, [&] {
        return boost::json::object{{"api_keys", std::move(items)}};
    }());
}

asio::awaitable<http::Response> SecurityModule::revoke_api_key(http::Request& request) {
    auto principal = co_await authenticate(request);
    if (!principal.has_permission("api_keys:admin")) {
        http::require_permission(principal, "api_keys:write");
    }
    std::string id(request.param("id"));
    // Admins may revoke anyone's key; everyone else only their own.
    std::string owner =
        principal.has_permission("api_keys:admin") ? std::string{} : principal.user_id;
    if (!co_await store_->revoke_api_key(id, owner, now_text())) {
        throw ClientError::not_found("no active API key with this id");
    }
    auto audit = audit_entry("api_key.revoked", &request, principal.user_id, principal.email, [&] {
        return boost::json::object{{"key_id", id}};
    }());
    co_await record(audit);
    co_return json_response(200, [&] {
        return boost::json::object{{"success", true}, {"id", id}, {"message", "API key revoked"}};
    }());
}

asio::awaitable<http::Response> SecurityModule::list_users(http::Request& request) {
    auto principal = co_await authenticate(request);
    http::require_permission(principal, "users:admin");
    auto page = http::page_request(request);
    auto users = co_await store_->list_users(page.page, page.limit);
    boost::json::array items;
    for (const auto& user : users.items) items.push_back(user_json(user));
    co_return json_response(200, [&] {
        return boost::json::object{{"users", std::move(items)},
                                   {"pagination", http::pagination(page, users.total)}};
    }());
}

asio::awaitable<http::Response> SecurityModule::set_roles(http::Request& request) {
    auto principal = co_await authenticate(request);
    http::require_permission(principal, "users:admin");
    auto body = parse_body<RolesBody>(request);
    json::Validator check;
    if (body.roles.empty()) check.add({"roles", "must name at least one role"});
    for (std::size_t i = 0; i < body.roles.size(); ++i) {
        if (!auth::is_known_role(body.roles[i])) {
            check.add({"roles[" + std::to_string(i) + "]",
                       "must be one of: admin, developer, user, guest"});
        }
    }
    if (!check.ok()) throw ClientError::validation(check.take());
    auto roles = body.roles;
    std::sort(roles.begin(), roles.end());
    roles.erase(std::unique(roles.begin(), roles.end()), roles.end());
    std::string id(request.param("id"));
    auto before = co_await store_->find_user_by_id(id);
    if (!before) throw ClientError::not_found("no user with this id");
    auto change = co_await store_->set_roles(id, roles, now_text());
    if (change == SecurityStore::RoleChange::NotFound)
        throw ClientError::not_found("no user with this id");
    if (change == SecurityStore::RoleChange::LastAdmin) {
        throw ClientError::conflict("this would leave no admin; promote another user first");
    }
    auto audit = audit_entry("role.changed", &request, id, before->email, [&] {
        return boost::json::object{
            {"from", to_array(before->roles)}, {"to", to_array(roles)}, {"by", principal.user_id}};
    }());
    co_await record(audit);
    auto after = co_await store_->find_user_by_id(id);
    co_return json_response(200, user_json(*after));
}

asio::awaitable<http::Response> SecurityModule::audit(http::Request& request) {
    auto principal = co_await authenticate(request);
    http::require_permission(principal, "audit:read");
    auto page = http::page_request(request);
    AuditFilter filter;
    filter.event = request.query("event");
    filter.user_id = request.query("user_id");
    auto entries = co_await store_->list_audit(filter, page.page, page.limit);
    boost::json::array items;
    for (const auto& entry : entries.items) {
        boost::json::value details = boost::json::parse(entry.details);
        items.push_back([&] {
            return boost::json::object{{"id", entry.id},
                                       {"timestamp", entry.occurred_at},
                                       {"event", entry.event},
                                       {"user_id", optional_json(entry.user_id)},
                                       {"email", optional_json(entry.email)},
                                       {"ip", optional_json(entry.ip)},
                                       {"details", std::move(details)}};
        }());
    }
    co_return json_response(200, [&] {
        return boost::json::object{{"entries", std::move(items)},
                                   {"pagination", http::pagination(page, entries.total)}};
    }());
}

asio::awaitable<int> SecurityModule::create_user(runtime::ModuleContext& context, std::string email,
                                                 std::string name, std::string role,
                                                 std::string password) {
    load_settings(context.config());
    co_await migrate(context);
    store_ = std::make_unique<SecurityStore>(database_);
    hasher_ = std::make_unique<auth::PasswordHasher>(settings_.password);
    hashing_pool_ = &context.hashing_pool();
    json::Validator check;
    check.email("email", email);
    check.length("name", name, 1, 100);
    check.require(auth::is_known_role(role), "role",
                  "must be one of: admin, developer, user, guest");
    for (auto& error : check_password(settings_.policy, password, email))
        check.add(std::move(error));
    if (!check.ok()) {
        for (const auto& error : check.errors()) {
            std::cerr << "aether: " << error.field << ": " << error.message << "\n";
        }
        co_return 2;
    }
    UserRecord user;
    user.email = normalize_email(email);
    user.id = auth::new_id("usr_");
    user.name = name;
    user.roles = {role};
    user.created_at = now_text();
    user.password_hash = co_await hash_password(password);
    try {
        co_await store_->insert_user(user);
    } catch (const platform::sql::DatabaseError& error) {
        if (error.kind() != platform::sql::DatabaseError::Kind::UniqueViolation) throw;
        std::cerr << "aether: a user with email " << user.email << " already exists\n";
        co_return 1;
    }
    auto audit = audit_entry("user.created", nullptr, user.id, user.email, [&] {
        return boost::json::object{{"role", role}, {"by", "cli"}};
    }());
    co_await record(audit);
    std::cout << "aether: created " << role << " " << user.email << " (" << user.id << ")\n";
    co_return 0;
}

}  // namespace

std::unique_ptr<runtime::Module> make_module() {
    return std::make_unique<SecurityModule>();
}

asio::awaitable<int> create_user_command(runtime::ModuleContext& context, std::string email,
                                         std::string name, std::string role, std::string password) {
    SecurityModule module;
    co_return co_await module.create_user(context, std::move(email), std::move(name),
                                          std::move(role), std::move(password));
}

}  // namespace aether::services::security
