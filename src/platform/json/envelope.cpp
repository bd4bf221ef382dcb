// Error codes, their HTTP statuses, and the JSON error envelope text.
#include "platform/json/envelope.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace aether::platform::json {

std::string_view code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::ValidationError:
            return "VALIDATION_ERROR";
        case ErrorCode::Unauthorized:
            return "UNAUTHORIZED";
        case ErrorCode::Forbidden:
            return "FORBIDDEN";
        case ErrorCode::NotFound:
            return "NOT_FOUND";
        case ErrorCode::MethodNotAllowed:
            return "METHOD_NOT_ALLOWED";
        case ErrorCode::RequestTimeout:
            return "REQUEST_TIMEOUT";
        case ErrorCode::Conflict:
            return "CONFLICT";
        case ErrorCode::PreconditionFailed:
            return "PRECONDITION_FAILED";
        case ErrorCode::PayloadTooLarge:
            return "PAYLOAD_TOO_LARGE";
        case ErrorCode::UnsupportedMediaType:
            return "UNSUPPORTED_MEDIA_TYPE";
        case ErrorCode::RateLimitExceeded:
            return "RATE_LIMIT_EXCEEDED";
        case ErrorCode::HeadersTooLarge:
            return "HEADERS_TOO_LARGE";
        case ErrorCode::Internal:
            return "INTERNAL";
        case ErrorCode::UpstreamUnavailable:
            return "UPSTREAM_UNAVAILABLE";
        case ErrorCode::ServiceUnavailable:
            return "SERVICE_UNAVAILABLE";
    }
    return "INTERNAL";
}

int default_status(ErrorCode code) {
    switch (code) {
        case ErrorCode::ValidationError:
            return 400;
        case ErrorCode::Unauthorized:
            return 401;
        case ErrorCode::Forbidden:
            return 403;
        case ErrorCode::NotFound:
            return 404;
        case ErrorCode::MethodNotAllowed:
            return 405;
        case ErrorCode::RequestTimeout:
            return 408;
        case ErrorCode::Conflict:
            return 409;
        case ErrorCode::PreconditionFailed:
            return 412;
        case ErrorCode::PayloadTooLarge:
            return 413;
        case ErrorCode::UnsupportedMediaType:
            return 415;
        case ErrorCode::RateLimitExceeded:
            return 429;
        case ErrorCode::HeadersTooLarge:
            return 431;
        case ErrorCode::Internal:
            return 500;
        case ErrorCode::UpstreamUnavailable:
            return 502;
        case ErrorCode::ServiceUnavailable:
            return 503;
    }
    return 500;
}

std::string error_body(ErrorCode code, std::string_view message,
                       const std::vector<FieldError>& details, std::string_view request_id,
                       std::string_view timestamp, std::optional<int> retry_after_seconds) {
    boost::json::object error;
    error["code"] = code_name(code);
    error["message"] = message;
    error["details"] = to_value(details);
    error["request_id"] = request_id;
    error["timestamp"] = timestamp;
    if (retry_after_seconds) error["retry_after"] = *retry_after_seconds;
    boost::json::object envelope;
    envelope["error"] = std::move(error);
    return boost::json::serialize(envelope);
}

ClientError::ClientError(ErrorCode code, std::string message, std::vector<FieldError> details,
                         std::optional<int> retry_after, std::optional<int> status)
    : std::runtime_error(std::move(message)),
      code(code),
      status(status.value_or(default_status(code))),
      details(std::move(details)),
      retry_after(retry_after) {}

ClientError ClientError::validation(std::vector<FieldError> details, std::string message) {
    return ClientError(ErrorCode::ValidationError, std::move(message), std::move(details));
}

ClientError ClientError::unauthorized(std::string message) {
    return ClientError(ErrorCode::Unauthorized, std::move(message));
}

ClientError ClientError::forbidden(std::string message) {
    return ClientError(ErrorCode::Forbidden, std::move(message));
}

ClientError ClientError::not_found(std::string message) {
    return ClientError(ErrorCode::NotFound, std::move(message));
}

ClientError ClientError::conflict(std::string message) {
    return ClientError(ErrorCode::Conflict, std::move(message));
}

ClientError ClientError::precondition_failed(std::string message) {
    return ClientError(ErrorCode::PreconditionFailed, std::move(message));
}

ClientError ClientError::payload_too_large(std::string message) {
    return ClientError(ErrorCode::PayloadTooLarge, std::move(message));
}

ClientError ClientError::rate_limited(std::string message, int retry_after_seconds) {
    return ClientError(ErrorCode::RateLimitExceeded, std::move(message), {}, retry_after_seconds);
}

std::string error_body(const ClientError& error, std::string_view request_id,
                       std::string_view timestamp) {
    return error_body(error.code, error.what(), error.details, request_id, timestamp,
                      error.retry_after);
}

}  // namespace aether::platform::json
