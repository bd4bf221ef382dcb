// Unit tests for bearer-token extraction and access-token authentication with a real JwtCodec.
#include "platform/http/bearer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>

#include "platform/json/envelope.h"

namespace aether::platform::http {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef-test-secret";

Request request_with(std::string target, std::string authorization = {}) {
    Request request;
    request.target = std::move(target);
    if (!authorization.empty()) request.headers.emplace_back("Authorization", authorization);
    return request;
}

json::ClientError rejection(const std::function<void()>& action) {
    try {
        action();
    } catch (const json::ClientError& error) {
        return error;
    }
    ADD_FAILURE() << "no ClientError was thrown";
    return json::ClientError(json::ErrorCode::Internal, "nothing thrown");
}

std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

auth::JwtCodec codec(std::string_view secret = kSecret) {
    auth::JwtSettings settings;
    settings.algorithm = "HS256";
    settings.secret = std::string(secret);
    auto created = auth::JwtCodec::create(settings);
    if (!created) throw std::runtime_error(created.error());
    return std::move(*created);
}

auth::Claims claims(std::string type) {
    auth::Claims claims;
    claims.sub = "usr_01";
    claims.email = "ada@example.com";
    claims.type = std::move(type);
    claims.jti = "tok_1";
    claims.roles = {"user"};
    claims.iat = now();
    claims.exp = now() + 600;
    return claims;
}

TEST(BearerTokenTest, ReturnsTheToken) {
    auto request = request_with("/x", "Bearer abc.def.ghi");
    EXPECT_EQ(bearer_token(request), "abc.def.ghi");
}

TEST(BearerTokenTest, SchemeIsCaseInsensitiveAndExtraSpacesAreSkipped) {
    EXPECT_EQ(bearer_token(request_with("/x", "bearer tok")), "tok");
    EXPECT_EQ(bearer_token(request_with("/x", "BEARER    tok")), "tok");
}

TEST(BearerTokenTest, MissingHeaderIs401) {
    auto error = rejection([] { bearer_token(request_with("/x")); });
    EXPECT_EQ(error.status, 401);
    EXPECT_EQ(error.code, json::ErrorCode::Unauthorized);
}

TEST(BearerTokenTest, WrongSchemeOrNoTokenIs401) {
    for (const char* header : {"Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer     ",
                               "Bearertok", "Token abc", "abc"}) {
        auto error = rejection([&] { bearer_token(request_with("/x", header)); });
        EXPECT_EQ(error.status, 401) << header;
    }
}

TEST(BearerTokenTest, CredentialInTheQueryStringIs401EvenWithAGoodHeader) {
    for (const char* target : {"/x?access_token=abc", "/x?token=abc", "/x?a=1&jwt=abc",
                               "/x?api_key=k", "/x?refresh_token=r", "/x?token="}) {
        auto error = rejection([&] { bearer_token(request_with(target, "Bearer good")); });
        EXPECT_EQ(error.status, 401) << target;
        EXPECT_THAT(error.what(), HasSubstr("never in the URL")) << target;
    }
    EXPECT_EQ(bearer_token(request_with("/x?tokens=1&page=2", "Bearer good")), "good");
}

TEST(AuthenticateAccessTokenTest, AcceptsAnAccessTokenAndSetsTheUser) {
    auto jwt = codec();
    auto request = request_with("/x", "Bearer " + jwt.sign(claims("access")));
    auto principal = authenticate_access_token(request, jwt);
    EXPECT_EQ(principal.user_id, "usr_01");
    EXPECT_EQ(principal.email, "ada@example.com");
    EXPECT_EQ(principal.roles, std::vector<std::string>{"user"});
    EXPECT_EQ(principal.token_id, "tok_1");
    EXPECT_EQ(principal.via, "token");
    EXPECT_THAT(principal.permissions, Contains("tasks:write"));
    EXPECT_EQ(request.context.user_id, "usr_01");
}

TEST(AuthenticateAccessTokenTest, ExplicitPermissionsInTheTokenWin) {
    auto jwt = codec();
    auto token_claims = claims("access");
    token_claims.permissions = {"tasks:read"};
    auto request = request_with("/x", "Bearer " + jwt.sign(token_claims));
    auto principal = authenticate_access_token(request, jwt);
    EXPECT_EQ(principal.permissions, std::vector<std::string>{"tasks:read"});
}

TEST(AuthenticateAccessTokenTest, RefreshTokenIsRejected) {
    auto jwt = codec();
    auto request = request_with("/x", "Bearer " + jwt.sign(claims("refresh")));
    auto error = rejection([&] { authenticate_access_token(request, jwt); });
    EXPECT_EQ(error.status, 401);
    EXPECT_TRUE(request.context.user_id.empty());
}

TEST(AuthenticateAccessTokenTest, ExpiredForgedAndGarbageTokensAreRejected) {
    auto jwt = codec();
    auto expired = claims("access");
    expired.iat = now() - 7200;
    expired.exp = now() - 3600;
    auto other = codec("another-secret-that-is-long-enough-32b");
    for (const std::string& token :
         {jwt.sign(expired), other.sign(claims("access")), std::string("not.a.jwt")}) {
        auto request = request_with("/x", "Bearer " + token);
        auto error = rejection([&] { authenticate_access_token(request, jwt); });
        EXPECT_EQ(error.status, 401);
        EXPECT_EQ(error.code, json::ErrorCode::Unauthorized);
    }
}

TEST(AuthenticateAccessTokenTest, TokenInTheUrlIsRejectedBeforeVerification) {
    auto jwt = codec();
    auto token = jwt.sign(claims("access"));
    auto request = request_with("/x?access_token=" + token, "Bearer " + token);
    EXPECT_EQ(rejection([&] { authenticate_access_token(request, jwt); }).status, 401);
}

TEST(RequirePermissionTest, ForbiddenWithoutThePermission) {
    auth::Principal principal;
    principal.permissions = {"tasks:read"};
    EXPECT_NO_THROW(require_permission(principal, "tasks:read"));
    auto error = rejection([&] { require_permission(principal, "tasks:write"); });
    EXPECT_EQ(error.status, 403);
    EXPECT_EQ(error.code, json::ErrorCode::Forbidden);
    EXPECT_THAT(error.what(), HasSubstr("tasks:write"));
}

}  // namespace
}  // namespace aether::platform::http
