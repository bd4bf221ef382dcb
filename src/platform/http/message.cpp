// Request/response helpers: method names, header lookup, query decoding.
#include "platform/http/message.h"

#include <array>
#include <cctype>

namespace aether::platform::http {
namespace {

constexpr std::array<std::pair<Method, std::string_view>, 7> kMethods{{
    {Method::Get, "GET"},
    {Method::Head, "HEAD"},
    {Method::Post, "POST"},
    {Method::Put, "PUT"},
    {Method::Patch, "PATCH"},
    {Method::Delete, "DELETE"},
    {Method::Options, "OPTIONS"},
}};

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string_view method_name(Method method) {
    for (const auto& [value, name] : kMethods) {
        if (value == method) return name;
    }
    return "OTHER";
}

Method parse_method(std::string_view name) {
    for (const auto& [value, text] : kMethods) {
        if (text == name) return value;
    }
    return Method::Other;
}

std::string_view find_header(const HeaderList& headers, std::string_view name) {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) return value;
    }
    return {};
}

std::optional<std::string> url_decode(std::string_view encoded) {
    std::string decoded;
    decoded.reserve(encoded.size());
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        char c = encoded[i];
        if (c == '+') {
            decoded.push_back(' ');
        } else if (c == '%') {
            if (i + 2 >= encoded.size()) return std::nullopt;
            int high = hex_value(encoded[i + 1]);
            int low = hex_value(encoded[i + 2]);
            if (high < 0 || low < 0) return std::nullopt;
            decoded.push_back(static_cast<char>(high * 16 + low));
            i += 2;
        } else {
            decoded.push_back(c);
        }
    }
    return decoded;
}

std::string_view Request::path() const {
    std::string_view view(target);
    auto mark = view.find('?');
    return mark == std::string_view::npos ? view : view.substr(0, mark);
}

std::string_view Request::raw_query() const {
    std::string_view view(target);
    auto mark = view.find('?');
    return mark == std::string_view::npos ? std::string_view{} : view.substr(mark + 1);
}

std::optional<std::string> Request::query(std::string_view name) const {
    std::string_view rest = raw_query();
    while (!rest.empty()) {
        auto amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        auto eq = pair.find('=');
        auto key = url_decode(pair.substr(0, eq));
        if (!key || *key != name) continue;
        if (eq == std::string_view::npos) return std::string{};
        return url_decode(pair.substr(eq + 1));
    }
    return std::nullopt;
}

std::string_view Request::param(std::string_view name) const {
    for (const auto& [key, value] : path_params) {
        if (key == name) return value;
    }
    return {};
}

Response Response::json(int status, std::string body) {
    Response response;
    response.status = status;
    response.body = std::move(body);
    return response;
}

Response Response::text(int status, std::string body, std::string_view content_type) {
    Response response;
    response.status = status;
    response.body = std::move(body);
    response.content_type = content_type;
    return response;
}

Response& Response::set_header(std::string name, std::string value) {
    for (auto& [key, existing] : headers) {
        if (iequals(key, name)) {
            existing = std::move(value);
            return *this;
        }
    }
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
}

}  // namespace aether::platform::http
