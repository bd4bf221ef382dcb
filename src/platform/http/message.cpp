// Request/response helpers: method names, header lookup, query decoding.
#include "platform/http/message.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <functional>

#include "platform/http/head_text.h"

namespace aether::platform::http {

using namespace std::string_view_literals;

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

namespace {

// Whether `part` points into `text`: such a view moves when the text is rewritten.
bool points_into(std::string_view part, std::string_view text) {
    const std::less_equal<const char*> not_after;
    return !part.empty() && not_after(text.data(), part.data()) &&
           not_after(part.data() + part.size(), text.data() + text.size());
}

}  // namespace

Response& Response::set_header(std::string_view name, std::string_view value) {
    if (points_into(name, header_lines.text()) || points_into(value, header_lines.text())) {
        // A value read from these lines (header() returns a view into them).
        const std::string name_copy(name);
        const std::string value_copy(value);
        return set_header(name_copy, value_copy);
    }
    std::erase_if(headers, [name](const auto& header) { return iequals(header.first, name); });
    header_lines.erase(name);
    header_lines.append(name, value);
    return *this;
}

Response& Response::set_headers(const HeaderLines& lines) {
    if (lines.empty()) return *this;
    // The lengths of the new names, one bit each (modulo 64): a name of none of these lengths is
    // not compared, which on a proxied answer is nearly every line.
    std::uint64_t name_lengths = 0;
    lines.each([&name_lengths](std::string_view name, std::string_view) {
        name_lengths |= std::uint64_t{1} << (name.size() % 64);
    });
    auto replaced = [&](std::string_view name) {
        return ((name_lengths >> (name.size() % 64)) & 1) != 0 && lines.contains(name);
    };
    std::erase_if(headers, [&replaced](const auto& header) { return replaced(header.first); });
    bool any_replaced = false;
    header_lines.each([&](std::string_view name, std::string_view) {
        any_replaced = any_replaced || replaced(name);
    });
    // Reading costs less than rewriting.
    if (any_replaced) {
        header_lines.keep_if(
            [&replaced](std::string_view name, std::string_view) { return !replaced(name); });
    }
    header_lines.append(lines);
    return *this;
}

// clear() must reset every member: a field added to Request or RequestContext changes their
// size, and this reminds whoever adds one to clear it too (else a value of one request would
// show through in the next on the connection).
static_assert(sizeof(RequestContext) == 144 && sizeof(Request) == 416,
              "a member was added or removed: update Request::clear()");

void Request::clear() {
    method = Method::Get;
    method_text.clear();
    target.clear();
    headers.clear();
    header_lines.clear();
    clear_for_reuse(body, 16 * 1024);
    remote_address.clear();
    keep_alive = true;
    http_version = 11;
    path_params.clear();
    context.request_id.clear();
    context.traceparent.clear();
    context.user_id.clear();
    context.route = {};
    context.route_owner.reset();
    context.started = {};
    context.cors_by_pipeline = true;
    body_stream.reset();
}

std::string_view Request::header(std::string_view name) const {
    const auto value = find_header(headers, name);
    if (!value.empty() || header_lines.empty()) return value;
    return header_lines.find(name);
}

std::string_view Response::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) return value;
    }
    return header_lines.find(name);
}

bool HeaderLines::append(std::string_view name, std::string_view value) {
    if (name.empty() || name.find(':') != std::string_view::npos || detail::has_line_break(name) ||
        detail::has_line_break(value)) {
        return false;
    }
    append_parsed(name, value);
    return true;
}

void HeaderLines::make_room(std::size_t more) {
    // A few lines are the rule: room for them at once, rather than growing from the small-string
    // buffer through three allocations.
    constexpr std::size_t kFirstRoom = 256;
    if (text_.size() + more > text_.capacity()) {
        text_.reserve(std::max({text_.size() + more, 2 * text_.capacity(), kFirstRoom}));
    }
}

void HeaderLines::append_parsed(std::string_view name, std::string_view value) {
    make_room(name.size() + value.size() + 4);
    append_header_line(text_, name, value);
    note_line(text_.size(), name.size());
}

void HeaderLines::append_parsed_line(std::string_view line, std::size_t name_size) {
    make_room(line.size());
    text_.append(line);
    note_line(text_.size(), name_size);
}

void HeaderLines::append_parsed_lines(std::string_view lines, std::span<const LineShape> shapes) {
    const std::size_t base = text_.size();
    make_room(lines.size());
    text_.append(lines);
    for (const LineShape& shape : shapes) note_line(base + shape.end, shape.name_size);
}

void HeaderLines::append(const HeaderLines& other) {
    // `other` may be this list: its lines are those before the copy.
    const std::size_t lines = other.count_;
    const std::size_t size = other.text_.size();
    const std::size_t base = text_.size();
    make_room(size);
    text_.append(other.text_, 0, size);
    std::size_t at = 0;
    for (std::size_t i = 0; i < lines; ++i) {
        const Line line = other.line_at(i, at);
        at += line.length;
        note_line(base + at, line.name.size());
    }
}

void HeaderLines::note_line(std::size_t end, std::size_t name_size) {
    if (indexed_ == count_ && indexed_ < kIndexed && end < (std::size_t{1} << kEndBits) &&
        name_size < (std::size_t{1} << (32 - kEndBits))) {
        index_[indexed_++] = static_cast<std::uint32_t>(end | (name_size << kEndBits));
    }
    ++count_;
}

std::size_t HeaderLines::scan_end(std::size_t at, std::size_t& name_size) const {
    // Lines are "name: value\r\n" with no ':' in the name and no CR inside.
    const std::string_view text(text_);
    name_size = text.find(':', at) - at;
    return text.find('\r', at + name_size) + 2;
}

std::optional<HeaderLines::Line> HeaderLines::line_named(std::string_view name) const {
    std::size_t at = 0;
    for (std::size_t i = 0; i < count_; ++i) {
        const Line line = line_at(i, at);
        if (iequals(line.name, name)) return line;
        at += line.length;
    }
    return std::nullopt;
}

std::string_view HeaderLines::find(std::string_view name) const {
    const auto line = line_named(name);
    return line ? line->value : std::string_view();
}

bool HeaderLines::contains(std::string_view name) const {
    return line_named(name).has_value();
}

std::size_t HeaderLines::erase(std::string_view name) {
    if (!contains(name)) return 0;  // reading costs less than rewriting
    const std::size_t before = count_;
    keep_if(
        [name](std::string_view line_name, std::string_view) { return !iequals(line_name, name); });
    return before - count_;
}

}  // namespace aether::platform::http
