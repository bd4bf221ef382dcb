// Tests for the error envelope text, code names, statuses and ClientError factories.
#include "platform/json/envelope.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace aether::platform::json {
namespace {

TEST(Envelope, CodeNamesAndStatuses) {
    const std::pair<ErrorCode, std::pair<std::string_view, int>> expected[] = {
        {ErrorCode::ValidationError, {"VALIDATION_ERROR", 400}},
        {ErrorCode::Unauthorized, {"UNAUTHORIZED", 401}},
        {ErrorCode::Forbidden, {"FORBIDDEN", 403}},
        {ErrorCode::NotFound, {"NOT_FOUND", 404}},
        {ErrorCode::MethodNotAllowed, {"METHOD_NOT_ALLOWED", 405}},
        {ErrorCode::RequestTimeout, {"REQUEST_TIMEOUT", 408}},
        {ErrorCode::Conflict, {"CONFLICT", 409}},
        {ErrorCode::PreconditionFailed, {"PRECONDITION_FAILED", 412}},
        {ErrorCode::PayloadTooLarge, {"PAYLOAD_TOO_LARGE", 413}},
        {ErrorCode::UnsupportedMediaType, {"UNSUPPORTED_MEDIA_TYPE", 415}},
        {ErrorCode::RateLimitExceeded, {"RATE_LIMIT_EXCEEDED", 429}},
        {ErrorCode::HeadersTooLarge, {"HEADERS_TOO_LARGE", 431}},
        {ErrorCode::Internal, {"INTERNAL", 500}},
        {ErrorCode::UpstreamUnavailable, {"UPSTREAM_UNAVAILABLE", 502}},
        {ErrorCode::ServiceUnavailable, {"SERVICE_UNAVAILABLE", 503}},
    };
    for (const auto& [code, name_status] : expected) {
        EXPECT_EQ(code_name(code), name_status.first);
        EXPECT_EQ(default_status(code), name_status.second) << name_status.first;
    }
}

TEST(Envelope, ExactShapeWithDetails) {
    EXPECT_EQ(error_body(ErrorCode::ValidationError, "Request validation failed",
                         {{"priority", "must be one of: low, high"}, {"tags[2]", "is required"}},
                         "req-1", "2024-06-01T12:00:00.000Z", std::nullopt),
              R"({"error":{"code":"VALIDATION_ERROR","message":"Request validation failed",)"
              R"("details":[{"field":"priority","message":"must be one of: low, high"},)"
              R"({"field":"tags[2]","message":"is required"}],"request_id":"req-1",)"
              R"("timestamp":"2024-06-01T12:00:00.000Z"}})");
}

TEST(Envelope, EmptyDetailsAndRetryAfter) {
    EXPECT_EQ(error_body(ErrorCode::RateLimitExceeded, "Too many requests", {}, "r", "t", 30),
              R"({"error":{"code":"RATE_LIMIT_EXCEEDED","message":"Too many requests",)"
              R"("details":[],"request_id":"r","timestamp":"t","retry_after":30}})");
}

TEST(Envelope, EscapesMessages) {
    const std::string body =
        error_body(ErrorCode::NotFound, "no \"task\"\n\x01", {}, "r\"", "t", std::nullopt);
    const auto parsed = boost::json::parse(body);
    EXPECT_EQ(parsed.at("error").at("message").as_string(), "no \"task\"\n\x01");
    EXPECT_EQ(parsed.at("error").at("request_id").as_string(), "r\"");
}

TEST(ClientErrorTest, Factories) {
    auto validation = ClientError::validation({{"email", "is required"}});
    EXPECT_EQ(validation.code, ErrorCode::ValidationError);
    EXPECT_EQ(validation.status, 400);
    EXPECT_STREQ(validation.what(), "Request validation failed");
    ASSERT_EQ(validation.details.size(), 1u);
    EXPECT_EQ(validation.details[0].field, "email");

    EXPECT_EQ(ClientError::unauthorized("Invalid credentials").status, 401);
    EXPECT_STREQ(ClientError::unauthorized("Invalid credentials").what(), "Invalid credentials");
    EXPECT_EQ(ClientError::forbidden("no").status, 403);
    EXPECT_EQ(ClientError::not_found("Task not found").code, ErrorCode::NotFound);
    EXPECT_EQ(ClientError::conflict("Email exists").status, 409);
    EXPECT_EQ(ClientError::precondition_failed("stale").status, 412);
    EXPECT_EQ(ClientError::payload_too_large().status, 413);

    auto limited = ClientError::rate_limited("slow down", 12);
    EXPECT_EQ(limited.status, 429);
    EXPECT_EQ(limited.retry_after, 12);
    EXPECT_FALSE(ClientError::conflict("x").retry_after.has_value());

    const ClientError unprocessable(ErrorCode::ValidationError, "bad", {}, std::nullopt, 422);
    EXPECT_EQ(unprocessable.status, 422);
}

TEST(ClientErrorTest, IsARuntimeErrorAndRendersTheEnvelope) {
    try {
        throw ClientError::rate_limited("Rate limit exceeded", 5);
    } catch (const std::runtime_error& error) {
        const auto* client = dynamic_cast<const ClientError*>(&error);
        ASSERT_NE(client, nullptr);
        EXPECT_EQ(error_body(*client, "id", "ts"),
                  R"({"error":{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded",)"
                  R"("details":[],"request_id":"id","timestamp":"ts","retry_after":5}})");
    }
}

}  // namespace
}  // namespace aether::platform::json
