// The shared request pipeline: everything a request passes through besides its handler.
#include "platform/http/pipeline.h"

#include <array>
#include <atomic>
#include <chrono>
#include <random>
#include <unordered_map>

#include "platform/hex.h"
#include "platform/runtime/blocking_pool.h"
#include "platform/telemetry/clock.h"
#include "platform/telemetry/log.h"
#include "platform/telemetry/metrics.h"
#include "platform/telemetry/trace.h"

namespace aether::platform::http {

namespace telemetry = platform::telemetry;

struct Pipeline::Instruments {
    telemetry::CounterFamily& requests;
    telemetry::HistogramFamily& duration;
    telemetry::CounterFamily& errors;
    telemetry::GaugeFamily& in_flight;

    Instruments()
        : requests(telemetry::default_registry().counter(
              "http_requests_total", "HTTP requests handled, by route template and status.",
              {"service", "method", "route", "status"})),
          duration(telemetry::default_registry().histogram(
              "http_request_duration_seconds", "Time from request read to response ready.",
              {"service", "method", "route"}, {})),
          errors(telemetry::default_registry().counter(
              "http_requests_errors_total", "HTTP requests answered with an error, by code.",
              {"service", "error_type"})),
          in_flight(telemetry::default_registry().gauge(
              "http_requests_in_flight", "Requests being handled right now.", {"service"})) {}
};

namespace {

std::string_view status_text_for_metrics(int status, std::array<char, 4>& buffer) {
    buffer[0] = static_cast<char>('0' + (status / 100) % 10);
    buffer[1] = static_cast<char>('0' + (status / 10) % 10);
    buffer[2] = static_cast<char>('0' + status % 10);
    return {buffer.data(), 3};
}

json::ErrorCode code_for_status(int status) {
    switch (status) {
        case 400:
            return json::ErrorCode::ValidationError;
        case 401:
            return json::ErrorCode::Unauthorized;
        case 403:
            return json::ErrorCode::Forbidden;
        case 404:
            return json::ErrorCode::NotFound;
        case 405:
            return json::ErrorCode::MethodNotAllowed;
        case 408:
            return json::ErrorCode::RequestTimeout;
        case 409:
            return json::ErrorCode::Conflict;
        case 412:
            return json::ErrorCode::PreconditionFailed;
        case 413:
            return json::ErrorCode::PayloadTooLarge;
        case 431:
            return json::ErrorCode::HeadersTooLarge;
        case 429:
            return json::ErrorCode::RateLimitExceeded;
        case 502:
            return json::ErrorCode::UpstreamUnavailable;
        case 503:
            return json::ErrorCode::UpstreamUnavailable;
        default:
            return status >= 500 ? json::ErrorCode::Internal : json::ErrorCode::ValidationError;
    }
}

std::atomic<std::uint64_t> next_pipeline_id{1};

bool contains(const std::vector<std::string>& values, std::string_view value) {
    for (const auto& candidate : values) {
        if (candidate == value) return true;
    }
    return false;
}

std::string join(const std::vector<std::string>& values) {
    std::string joined;
    for (const auto& value : values) {
        if (!joined.empty()) joined += ", ";
        joined += value;
    }
    return joined;
}

}  // namespace

bool is_valid_request_id(std::string_view value) {
    if (value.empty() || value.size() > 128) return false;
    for (char c : value) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok) return false;
    }
    return true;
}

void generate_request_id(std::string& id) {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    // Written on the stack and copied once (indexing the string checked nothing but cost more).
    const std::array<std::uint64_t, 2> words{generator(), generator()};
    std::array<char, 32> text;
    platform::write_hex(text.data(), reinterpret_cast<const std::uint8_t*>(words.data()),
                        sizeof words);
    id.assign(text.data(), text.size());
}

std::string generate_request_id() {
    std::string id;
    generate_request_id(id);
    return id;
}

Response error_response(json::ErrorCode code, std::string_view message, std::string_view request_id,
                        const std::vector<json::FieldError>& details,
                        std::optional<int> retry_after_seconds) {
    auto timestamp = telemetry::format_rfc3339_ms(std::chrono::system_clock::now());
    Response response = Response::json(
        json::default_status(code),
        json::error_body(code, message, details, request_id, timestamp, retry_after_seconds));
    if (retry_after_seconds)
        response.set_header("Retry-After", std::to_string(*retry_after_seconds));
    return response;
}

Pipeline::Pipeline(PipelineOptions options, std::shared_ptr<const Router> router)
    : options_(std::move(options)),
      router_(std::move(router)),
      instruments_(std::make_unique<Instruments>()),
      id_(next_pipeline_id.fetch_add(1, std::memory_order_relaxed)) {}

Pipeline::~Pipeline() = default;

void Pipeline::add_filter(std::shared_ptr<Filter> filter) {
    filters_.push_back(std::move(filter));
}

Response Pipeline::protocol_error(int status, std::string_view message) const {
    auto request_id = generate_request_id();
    Response response = error_response(code_for_status(status), message, request_id);
    response.status = status;
    response.close_connection = true;
    response.set_header("X-Request-ID", request_id);
    return response;
}

Response response_for_exception(std::exception_ptr failure, const Request& request) {
    const auto& context = request.context;
    try {
        std::rethrow_exception(failure);
    } catch (const json::ClientError& error) {
        Response response = error_response(error.code, error.what(), context.request_id,
                                           error.details, error.retry_after);
        response.status = error.status;
        return response;
    } catch (const runtime::Overloaded& overloaded) {
        Response response = error_response(json::ErrorCode::UpstreamUnavailable,
                                           "the server is busy, retry shortly", context.request_id,
                                           {}, overloaded.retry_after_seconds());
        response.status = 503;
        return response;
    } catch (const std::exception& error) {
        telemetry::log_error("unhandled exception in handler", {{"request_id", context.request_id},
                                                                {"route", context.route},
                                                                {"error", error.what()}});
    } catch (...) {
        telemetry::log_error("unhandled non-standard exception in handler",
                             {{"request_id", context.request_id}, {"route", context.route}});
    }
    return error_response(json::ErrorCode::Internal, "internal error", context.request_id);
}

bool is_process_endpoint(std::string_view path) {
    return path == "/health" || path == "/ready" || path == "/metrics" || path == "/openapi.json";
}

boost::asio::awaitable<Response> ready_response(Response response) {
    co_return response;
}

// Not a coroutine: a matched request goes straight to the handler's own coroutine, with no
// frame of ours around it (a frame costs an allocation per request).
boost::asio::awaitable<Response> dispatch_route(const Router& router, Request& request) {
    auto match = router.match(request.method, request.path());
    request.context.route = match.route_template;
    const auto& request_id = request.context.request_id;
    if (match.outcome == RouteMatch::Outcome::NotFound) {
        return ready_response(
            error_response(json::ErrorCode::NotFound, "no route for this path", request_id));
    }
    if (match.outcome == RouteMatch::Outcome::MethodNotAllowed) {
        Response response = error_response(json::ErrorCode::MethodNotAllowed,
                                           "method not allowed on this path", request_id);
        response.set_header("Allow", allow_header(match.allowed));
        return ready_response(std::move(response));
    }
    request.path_params = std::move(match.params);
    return (*match.handler)(request);
}

void Pipeline::set_edge(Edge edge) {
    edge_ = std::move(edge);
}

// Not a coroutine either, for the same reason as dispatch_route.
boost::asio::awaitable<Response> Pipeline::dispatch(Request& request) {
    if (edge_ && !is_process_endpoint(request.path())) return edge_(request);
    if (filters_.empty()) return dispatch_route(*router_, request);
    return dispatch_filtered(request);
}

boost::asio::awaitable<Response> Pipeline::dispatch_filtered(Request& request) {
    auto match = router_->match(request.method, request.path());
    request.context.route = match.route_template;
    if (match.outcome != RouteMatch::Outcome::Found) {
        co_return co_await dispatch_route(*router_, request);
    }
    request.path_params = std::move(match.params);
    for (const auto& filter : filters_) {
        if (auto early = co_await filter->on_request(request)) co_return std::move(*early);
    }
    co_return co_await (*match.handler)(request);
}

bool Pipeline::begin(Request& request, Response& response) {
    auto& context = request.context;
    context.started = std::chrono::steady_clock::now();
    // Written into the context's own strings: a connection's next request reuses them.
    if (auto presented_id = request.header("X-Request-ID"); is_valid_request_id(presented_id)) {
        context.request_id.assign(presented_id);
    } else {
        generate_request_id(context.request_id);
    }
    auto parent = telemetry::parse_traceparent(request.header("traceparent"));
    auto trace = parent ? telemetry::child_of(*parent) : telemetry::new_root();
    telemetry::format_traceparent(trace, context.traceparent);

    // Behind an edge, CORS is the gateway's cors plugin's business, per route. Decided here,
    // before a handler may rewrite the target.
    context.cors_by_pipeline = !edge_ || is_process_endpoint(request.path());
    const auto origin = context.cors_by_pipeline ? request.header("Origin") : std::string_view();
    if (request.method != Method::Options || origin.empty() ||
        request.header("Access-Control-Request-Method").empty()) {
        return false;
    }
    response = Response::text(204, "");
    if (allows_origin(origin)) {
        response.set_header("Access-Control-Allow-Methods", join(options_.cors.allowed_methods));
        response.set_header("Access-Control-Allow-Headers", join(options_.cors.allowed_headers));
        response.set_header("Access-Control-Max-Age",
                            std::to_string(options_.cors.max_age_seconds));
    }
    context.route = "preflight";
    return true;
}

Response Pipeline::failed(std::exception_ptr failure, Request& request) {
    return response_for_exception(failure, request);
}

void Pipeline::end(Request& request, Response& response) {
    for (const auto& filter : filters_) filter->on_response(request, response);
    // Looked up again rather than kept from begin(): a handler may have added headers since,
    // moving those already there.
    const auto origin =
        request.context.cors_by_pipeline ? request.header("Origin") : std::string_view();
    if (!origin.empty() && allows_origin(origin)) {
        if (contains(options_.cors.allowed_origins, origin)) {
            response.set_header("Access-Control-Allow-Origin", std::string(origin));
            response.set_header("Vary", "Origin");
            if (options_.cors.allow_credentials) {
                response.set_header("Access-Control-Allow-Credentials", "true");
            }
        } else {
            // Matched only by "*": never echoed and never with credentials, or any site could
            // make credentialed requests (the configuration refuses "*" with credentials too).
            response.set_header("Access-Control-Allow-Origin", "*");
        }
        response.set_header("Access-Control-Expose-Headers", join(options_.cors.exposed_headers));
    }
    response.set_header("X-Request-ID", request.context.request_id);
    finish(request, response);
}

bool Pipeline::allows_origin(std::string_view origin) const {
    return contains(options_.cors.allowed_origins, origin) ||
           contains(options_.cors.allowed_origins, "*");
}

boost::asio::awaitable<Response> Pipeline::handle(Request& request) {
    Response response;
    if (!begin(request, response)) {
        std::exception_ptr failure;
        try {
            response = co_await dispatch(request);
        } catch (...) {
            failure = std::current_exception();
        }
        if (failure) response = failed(failure, request);
    }
    end(request, response);
    co_return response;
}

namespace {

struct TransparentHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept {
        return std::hash<std::string_view>{}(key);
    }
};

}  // namespace

// Family::with() joins and hashes the label values under a lock (~5k instructions, a tenth of a
// small request), so each thread remembers the series it has used, keyed by pipeline, method,
// status and route without allocating on a hit.
const Pipeline::Series& Pipeline::series_for(std::string_view method, std::string_view route,
                                             int status) {
    using Cache = std::unordered_map<std::string, Series, TransparentHash, std::equal_to<>>;
    thread_local Cache cache;
    // The series this thread found last: consecutive requests mostly share a route, and
    // comparing is cheaper than building the key and hashing it.
    struct Last {
        std::uint64_t pipeline = 0;
        int status = 0;
        std::string method;
        std::string route;
        const Series* series = nullptr;
    };
    thread_local Last last;
    if (last.series != nullptr && last.pipeline == id_ && last.status == status &&
        last.method == method && last.route == route) {
        return *last.series;
    }
    auto remember = [&](const Series& series) -> const Series& {
        last.pipeline = id_;
        last.status = status;
        last.method.assign(method);
        last.route.assign(route);
        last.series = &series;
        return series;
    };
    thread_local std::string key;
    key.clear();
    key.append(reinterpret_cast<const char*>(&id_), sizeof id_);
    std::array<char, 4> status_buffer{};
    const auto status_text = status_text_for_metrics(status, status_buffer);
    key.append(status_text);
    key.append(method);
    key.push_back(' ');
    key.append(route);
    if (auto found = cache.find(std::string_view(key)); found != cache.end()) {
        return remember(found->second);
    }

    // Bounded: routes, methods and statuses are few, but tests build many pipelines.
    if (cache.size() >= 4096) {
        cache.clear();
        last.series = nullptr;
    }
    Series series;
    series.requests = &instruments_->requests.with({options_.service, method, route, status_text});
    series.duration = &instruments_->duration.with({options_.service, method, route});
    if (status >= 400) {
        series.errors = &instruments_->errors.with(
            {options_.service, json::code_name(code_for_status(status))});
    }
    return remember(cache.emplace(key, series).first->second);
}

void Pipeline::finish(const Request& request, Response& response) {
    const auto& context = request.context;
    auto elapsed = std::chrono::steady_clock::now() - context.started;
    double seconds = std::chrono::duration<double>(elapsed).count();
    std::string_view route = context.route.empty() ? std::string_view("unmatched") : context.route;
    std::string_view method =
        request.method == Method::Other ? std::string_view("OTHER") : method_name(request.method);
    const Series& series = series_for(method, route, response.status);
    series.requests->inc();
    series.duration->observe(seconds);
    if (series.errors != nullptr) series.errors->inc();
    if (options_.access_log && telemetry::Logger::instance().enabled(telemetry::Level::Info)) {
        telemetry::log_info("request", {{"request_id", context.request_id},
                                        {"trace_id", context.trace_id()},
                                        {"user_id", context.user_id},
                                        {"method", method},
                                        {"route", route},
                                        {"status", static_cast<std::int64_t>(response.status)},
                                        {"duration_ms", seconds * 1000.0},
                                        {"remote", request.remote_address}});
    }
}

}  // namespace aether::platform::http
