// The request pipeline every service shares: request id, trace context, CORS, routing, filters,
// the error envelope, metrics and the access log, around the matched handler.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "platform/http/message.h"
#include "platform/http/router.h"
#include "platform/http/server.h"
#include "platform/json/envelope.h"

namespace aether::platform::telemetry {
class Counter;
class Histogram;
}  // namespace aether::platform::telemetry

namespace aether::platform::http {

// A step that may answer a request before its handler runs (authentication, rate limits) and may
// adjust the response on the way out. Built once from validated config; cheap per request.
class Filter {
  public:
    virtual ~Filter() = default;
    virtual boost::asio::awaitable<std::optional<Response>> on_request(Request& request) = 0;
    virtual void on_response(const Request& /*request*/, Response& /*response*/) {}
};

struct CorsOptions {
    std::vector<std::string> allowed_origins;  // exact origins, or "*" (never with credentials)
    bool allow_credentials = false;
    std::vector<std::string> allowed_methods{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    std::vector<std::string> allowed_headers{"Authorization", "Content-Type", "X-Request-ID",
                                             "X-API-Key",     "If-Match",     "traceparent"};
    std::vector<std::string> exposed_headers{"X-Request-ID",          "ETag",
                                             "Retry-After",           "X-RateLimit-Limit",
                                             "X-RateLimit-Remaining", "X-RateLimit-Reset"};
    int max_age_seconds = 600;
};

struct PipelineOptions {
    std::string service = "aether";
    CorsOptions cors;
    bool access_log = true;
};

// Builds an error response in the common envelope.
Response error_response(json::ErrorCode code, std::string_view message, std::string_view request_id,
                        const std::vector<json::FieldError>& details = {},
                        std::optional<int> retry_after_seconds = std::nullopt);

// An awaitable that yields `response` at once: for a plain function that returns either a
// handler's awaitable or an answer it already has (no coroutine frame of its own on the way).
boost::asio::awaitable<Response> ready_response(Response response);

// Runs the handler of the route matching the request; 404 or 405 (with Allow) in the error
// envelope otherwise. Sets request.context.route and the path parameters.
boost::asio::awaitable<Response> dispatch_route(const Router& router, Request& request);

// The error envelope for an exception a handler threw: a ClientError's status and details, 503
// for an overloaded pool, 500 (logged, nothing leaked) for anything else.
Response response_for_exception(std::exception_ptr failure, const Request& request);

// True for the endpoints every process serves itself: /health, /ready, /metrics, /openapi.json.
bool is_process_endpoint(std::string_view path);

// The phases run by the server in its connection's frame (server.h); handle() runs them all in a
// coroutine of its own, for a caller without one.
class Pipeline final : public RequestPhases {
  public:
    using Edge = std::function<boost::asio::awaitable<Response>(Request&)>;

    Pipeline(PipelineOptions options, std::shared_ptr<const Router> router);
    ~Pipeline();

    void add_filter(std::shared_ptr<Filter> filter);
    // Every request but the process endpoints goes to `edge` (the gateway) instead of the
    // router; the edge sets request.context.route itself.
    void set_edge(Edge edge);
    boost::asio::awaitable<Response> handle(Request& request);
    // For errors the server detects before a request is complete (413, 431, 400, 408).
    Response protocol_error(int status, std::string_view message) const;

    // Request id, trace context, and the answer to a CORS preflight.
    bool begin(Request& request, Response& response) override;
    // To the edge, or through the filters to the matched route; not a coroutine itself.
    boost::asio::awaitable<Response> dispatch(Request& request) override;
    Response failed(std::exception_ptr failure, Request& request) override;
    // The filters' on_response, CORS headers, X-Request-ID, metrics and the access log.
    void end(Request& request, Response& response) override;

  private:
    struct Instruments;
    struct Series {
        telemetry::Counter* requests = nullptr;
        telemetry::Histogram* duration = nullptr;
        telemetry::Counter* errors = nullptr;  // only for statuses >= 400
    };
    boost::asio::awaitable<Response> dispatch_filtered(Request& request);
    bool allows_origin(std::string_view origin) const;
    void finish(const Request& request, Response& response);
    const Series& series_for(std::string_view method, std::string_view route, int status);

    PipelineOptions options_;
    std::shared_ptr<const Router> router_;
    std::vector<std::shared_ptr<Filter>> filters_;
    Edge edge_;
    std::unique_ptr<Instruments> instruments_;
    std::uint64_t id_;  // unique per process, so a pipeline reusing an address misses the cache
};

// True when the value may be echoed as a request id: 1-128 of [A-Za-z0-9._:-].
bool is_valid_request_id(std::string_view value);
std::string generate_request_id();
// The same, written over `id` (reusing its capacity).
void generate_request_id(std::string& id);

}  // namespace aether::platform::http
