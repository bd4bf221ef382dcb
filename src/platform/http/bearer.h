// Authentication of a request from its Authorization header, shared by every service: the token
// comes from the header only, never from the URL, and is verified locally.
#pragma once

#include <string_view>
#include <vector>

#include "platform/auth/jwt.h"
#include "platform/auth/permissions.h"
#include "platform/http/message.h"

namespace aether::platform::http {

// The token of "Authorization: Bearer <token>"; throws ClientError 401 when the header is missing
// or malformed, or when a credential was put in the query string instead.
std::string_view bearer_token(const Request& request);

// Verifies a bearer access JWT and returns who is calling; throws ClientError 401 on any failure
// (a refresh token included). Sets request.context.user_id for the access log.
auth::Principal authenticate_access_token(Request& request, const auth::JwtCodec& jwt);

// The permissions verified claims grant: their own, or those of their roles when a token from
// the old system carries none.
std::vector<std::string> effective_permissions(const auth::Claims& claims);

// The principal behind verified access-token claims (permissions derived from roles when a token
// from the old system carries none).
auth::Principal principal_from_claims(const auth::Claims& claims);

// Throws ClientError 403 unless the principal holds the permission.
void require_permission(const auth::Principal& principal, std::string_view permission);

}  // namespace aether::platform::http
