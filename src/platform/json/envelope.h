// The common error envelope of every non-2xx JSON response, and the ClientError handlers throw.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "platform/json/mapping.h"

namespace aether::platform::json {

enum class ErrorCode {
    ValidationError,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimitExceeded,
    HeadersTooLarge,
    Internal,
    UpstreamUnavailable,
    ServiceUnavailable,
};

// The wire name, e.g. "VALIDATION_ERROR".
std::string_view code_name(ErrorCode code);

// The usual HTTP status for the code (ValidationError is 400; a handler may choose 422).
int default_status(ErrorCode code);

// {"error":{"code","message","details":[{"field","message"}],"request_id","timestamp"
// [,"retry_after"]}} with "details" always present.
std::string error_body(ErrorCode code, std::string_view message,
                       const std::vector<FieldError>& details, std::string_view request_id,
                       std::string_view timestamp, std::optional<int> retry_after_seconds = {});

// Thrown by handlers for an expected client failure; the HTTP middleware turns it into the
// envelope with `status`. Anything else thrown from a handler is a 500 with no internals shown.
class ClientError : public std::runtime_error {
  public:
    ClientError(ErrorCode code, std::string message, std::vector<FieldError> details = {},
                std::optional<int> retry_after = {}, std::optional<int> status = {});

    static ClientError validation(std::vector<FieldError> details,
                                  std::string message = "Request validation failed");
    static ClientError unauthorized(std::string message = "Authentication required");
    static ClientError forbidden(std::string message = "Permission denied");
    static ClientError not_found(std::string message = "Not found");
    static ClientError conflict(std::string message);
    static ClientError precondition_failed(std::string message);
    static ClientError payload_too_large(std::string message = "Request body too large");
    static ClientError rate_limited(std::string message, int retry_after_seconds);

    ErrorCode code;
    int status;
    std::vector<FieldError> details;
    std::optional<int> retry_after;
};

// The envelope for a thrown ClientError.
std::string error_body(const ClientError& error, std::string_view request_id,
                       std::string_view timestamp);

}  // namespace aether::platform::json
