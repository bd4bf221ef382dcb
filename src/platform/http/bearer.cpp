// Bearer-token authentication shared by the services.
#include "platform/http/bearer.h"

#include <chrono>

#include "platform/json/envelope.h"

namespace aether::platform::http {
namespace {

constexpr std::string_view kCredentialQueryParameters[] = {"token", "access_token", "refresh_token",
                                                           "api_key", "jwt"};

std::int64_t epoch_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

std::string_view bearer_token(const Request& request) {
    for (auto name : kCredentialQueryParameters) {
        if (request.query(name)) {
            // URLs end up in logs, proxies and browser history; credentials must not.
            throw json::ClientError::unauthorized(
                "credentials are accepted only in the Authorization header, never in the URL");
        }
    }
    auto header = request.header("Authorization");
    if (header.empty()) throw json::ClientError::unauthorized("missing bearer token");
    constexpr std::string_view kScheme = "Bearer ";
    if (header.size() <= kScheme.size() || !iequals(header.substr(0, kScheme.size()), kScheme)) {
        throw json::ClientError::unauthorized("Authorization must be \"Bearer <token>\"");
    }
    auto token = header.substr(kScheme.size());
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    if (token.empty()) throw json::ClientError::unauthorized("missing bearer token");
    return token;
}

std::vector<std::string> effective_permissions(const auth::Claims& claims) {
    return claims.permissions.empty() ? auth::permissions_for_roles(claims.roles)
                                      : claims.permissions;
}

auth::Principal principal_from_claims(const auth::Claims& claims) {
    auth::Principal principal;
    principal.user_id = claims.sub;
    principal.email = claims.email;
    principal.roles = claims.roles;
    principal.permissions = effective_permissions(claims);
    principal.token_id = claims.jti;
    principal.via = "token";
    return principal;
}

auth::Principal authenticate_access_token(Request& request, const auth::JwtCodec& jwt) {
    auto token = bearer_token(request);
    auto claims = jwt.verify(token, "access", epoch_now());
    if (!claims) throw json::ClientError::unauthorized("invalid or expired token");
    auto principal = principal_from_claims(**claims);
    request.context.user_id = principal.user_id;
    return principal;
}

void require_permission(const auth::Principal& principal, std::string_view permission) {
    if (!principal.has_permission(permission)) {
        throw json::ClientError::forbidden("this requires the " + std::string(permission) +
                                           " permission");
    }
}

}  // namespace aether::platform::http
