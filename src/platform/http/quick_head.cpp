// The quick head parser; see quick_head.h. Its rules are Beast's (boost/beast/http/detail/
// basic_parser.ipp), narrowed: where Beast would do more than read a field, it declines.
#include "platform/http/quick_head.h"

#include <algorithm>
#include <array>
#include <charconv>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace aether::platform::http::detail {
namespace {

using namespace std::string_view_literals;

using ByteTable = std::array<bool, 256>;

// tchar (RFC 9110 §5.6.2): a method or a field name.
constexpr ByteTable kTokenChar = [] {
    ByteTable table{};
    for (int c = '0'; c <= '9'; ++c) table[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
    for (unsigned char c : "!#$%&'*+-.^_`|~"sv) table[c] = true;
    return table;
}();

// What Beast lets into a request target: anything but controls, space and DEL.
constexpr ByteTable kTargetChar = [] {
    ByteTable table{};
    for (int c = 0x21; c <= 0xff; ++c) table[c] = c != 0x7f;
    return table;
}();

// The first control byte other than HTAB, or DEL, from `p`; `end` when there is none. A field
// value or reason phrase (VCHAR, obs-text, SP, HTAB) ends at the first one, which must be the CR
// of its CRLF.
const char* find_control(const char* p, const char* end) {
#if defined(__SSE2__)
    const __m128i space = _mm_set1_epi8(0x20);
    const __m128i tab = _mm_set1_epi8(0x09);
    const __m128i del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        // Unsigned bytes >= 0x20 are those the unsigned max with 0x20 leaves unchanged.
        const __m128i allowed = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(bytes, space), bytes),
                                             _mm_cmpeq_epi8(bytes, tab));
        const __m128i refused =
            _mm_or_si128(_mm_xor_si128(allowed, _mm_set1_epi8(-1)), _mm_cmpeq_epi8(bytes, del));
        if (const int mask = _mm_movemask_epi8(refused); mask != 0) {
            return p + __builtin_ctz(static_cast<unsigned>(mask));
        }
        p += 16;
    }
#endif
    for (; p < end; ++p) {
        const auto c = static_cast<unsigned char>(*p);
        if ((c < 0x20 && c != '\t') || c == 0x7f) return p;
    }
    return end;
}

bool is_space_or_tab(char c) {
    return c == ' ' || c == '\t';
}

// "HTTP/1.1" or "HTTP/1.0" at p (8 bytes are there): 11, 10, or 0 for anything else.
int version_at(const char* p) {
    if (std::string_view(p, 7) != "HTTP/1."sv) return 0;
    if (p[7] == '1') return 11;
    if (p[7] == '0') return 10;
    return 0;
}

// What the fields say about the message, as far as the quick path understands it.
struct FieldFacts {
    bool close = false;
    bool keep_alive = false;
    bool declined = false;
    std::optional<std::uint64_t> content_length;
};

// Beast acts on these fields (basic_parser::do_field); the quick path takes only their plain
// forms and declines the rest, Beast's to judge.
void note_field(std::string_view name, std::string_view value, FieldFacts& facts) {
    switch (name.size()) {
        case 10:  // Connection
        case 16:  // Proxy-Connection
            if (iequals(name, "Connection") || iequals(name, "Proxy-Connection")) {
                if (iequals(value, "close")) {
                    facts.close = true;
                } else if (iequals(value, "keep-alive")) {
                    facts.keep_alive = true;
                } else {
                    facts.declined = true;  // a list, "upgrade", or malformed
                }
            }
            return;
        case 14:  // Content-Length
            if (iequals(name, "Content-Length")) {
                std::uint64_t length = 0;
                const char* last = value.data() + value.size();
                // Digits only (from_chars would take a sign), and short of overflowing.
                const bool digits = !value.empty() && value.size() <= 18 &&
                                    value.find_first_not_of("0123456789"sv) == value.npos;
                if (!digits || facts.content_length ||
                    std::from_chars(value.data(), last, length).ptr != last) {
                    facts.declined = true;
                } else {
                    facts.content_length = length;
                }
            }
            return;
        case 17:  // Transfer-Encoding
            if (iequals(name, "Transfer-Encoding")) facts.declined = true;
            return;
        case 7:  // Upgrade
            if (iequals(name, "Upgrade")) facts.declined = true;
            return;
        default:
            return;
    }
}

// Reads the fields from `p` to the head's blank line, within `end`; returns the end of that
// line, or null when a field is malformed or folded or the head goes past `end`. Calls
// on_field(name, value, line) for each field; `line` is the whole line when it is written
// exactly "name: value\r\n" (one space, no trailing whitespace), else empty.
template <class OnField>
const char* read_fields(const char* p, const char* end, FieldFacts& facts, OnField&& on_field) {
    for (;;) {
        if (end - p < 2) return nullptr;
        if (p[0] == '\r') return p[1] == '\n' ? p + 2 : nullptr;
        const char* name = p;
        while (p < end && kTokenChar[static_cast<unsigned char>(*p)]) ++p;
        if (p == name || p == end || *p != ':') return nullptr;
        const std::string_view field_name(name, static_cast<std::size_t>(p - name));
        ++p;
        while (p < end && is_space_or_tab(*p)) ++p;
        const char* value = p;
        p = find_control(p, end);
        // The value's CRLF, then not SP or HTAB (a folded line).
        if (end - p < 3 || p[0] != '\r' || p[1] != '\n' || is_space_or_tab(p[2])) return nullptr;
        const char* value_end = p;
        while (value_end > value && is_space_or_tab(value_end[-1])) --value_end;
        const std::string_view field_value(value, static_cast<std::size_t>(value_end - value));
        note_field(field_name, field_value, facts);
        if (facts.declined) return nullptr;
        const bool exact = value == field_name.data() + field_name.size() + 2 && value[-1] == ' ' &&
                           value_end == p;
        on_field(field_name, field_value,
                 exact ? std::string_view(name, static_cast<std::size_t>(p + 2 - name))
                       : std::string_view());
        p += 2;
    }
}

// Where parsing must stop: the end of the bytes, or of the limit (a head must be smaller).
const char* parse_end(std::string_view bytes, std::size_t limit) {
    return bytes.data() + std::min(bytes.size(), limit > 0 ? limit - 1 : 0);
}

}  // namespace

std::optional<QuickHead> quick_request_head(std::string_view bytes, std::size_t limit,
                                            Request& request) {
    const char* p = bytes.data();
    const char* end = parse_end(bytes, limit);

    // request-line = method SP request-target SP HTTP-version CRLF
    const char* method = p;
    while (p < end && kTokenChar[static_cast<unsigned char>(*p)]) ++p;
    if (p == method || p == end || *p != ' ') return std::nullopt;
    const std::string_view method_text(method, static_cast<std::size_t>(p - method));
    const char* target = ++p;
    while (p < end && kTargetChar[static_cast<unsigned char>(*p)]) ++p;
    if (p == target || p == end || *p != ' ') return std::nullopt;
    const std::string_view target_text(target, static_cast<std::size_t>(p - target));
    ++p;
    // The version, its CRLF, and the blank line.
    if (end - p < 12) return std::nullopt;
    QuickHead head;
    head.version = version_at(p);
    if (head.version == 0 || p[8] != '\r' || p[9] != '\n') return std::nullopt;
    p += 10;

    request.headers.reserve(8);
    FieldFacts facts;
    const char* head_end = read_fields(
        p, end, facts,
        [&](std::string_view name, std::string_view value, std::string_view /*line*/) {
            request.headers.emplace_back(std::piecewise_construct,
                                         std::forward_as_tuple(name.data(), name.size()),
                                         std::forward_as_tuple(value.data(), value.size()));
        });
    if (head_end == nullptr || facts.content_length) {
        request.headers.clear();
        return std::nullopt;
    }
    head.size = static_cast<std::size_t>(head_end - bytes.data());
    request.method = parse_method(method_text);
    if (request.method == Method::Other) request.method_text.assign(method_text);
    request.target.assign(target_text);
    request.http_version = head.version;
    head.keep_alive = head.version == 11 ? !facts.close : facts.keep_alive;
    return head;
}

std::optional<QuickHead> quick_response_head(std::string_view bytes, std::size_t limit,
                                             HeaderLines& lines) {
    const char* p = bytes.data();
    const char* end = parse_end(bytes, limit);

    // status-line = HTTP-version SP status-code SP reason-phrase CRLF
    if (end - p < 17) return std::nullopt;  // "HTTP/1.1 200 \r\n" and a blank line
    QuickHead head;
    head.version = version_at(p);
    if (head.version == 0 || p[8] != ' ' || p[12] != ' ') return std::nullopt;
    for (int i = 9; i < 12; ++i) {
        if (p[i] < '0' || p[i] > '9') return std::nullopt;
        head.status = head.status * 10 + (p[i] - '0');
    }
    if (head.status < 200 || head.status == 204 || head.status == 304) return std::nullopt;
    p = find_control(p + 13, end);
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n') return std::nullopt;
    p += 2;

    FieldFacts facts;
    // A run of lines written exactly "name: value\r\n" from the first one on (an upstream's
    // usual head) is copied at once; the lines after the first that is not (or past the run's
    // room) are added one by one.
    const char* const run = p;
    std::array<HeaderLines::LineShape, 16> shapes;
    std::size_t in_run = 0;
    bool running = true;
    const char* head_end = read_fields(
        p, end, facts, [&](std::string_view name, std::string_view value, std::string_view line) {
            if (running && !line.empty() && in_run < shapes.size()) {
                shapes[in_run++] = {static_cast<std::uint32_t>(line.data() + line.size() - run),
                                    static_cast<std::uint32_t>(name.size())};
                return;
            }
            if (running) {
                running = false;
                lines.append_parsed_lines(
                    std::string_view(run, static_cast<std::size_t>(name.data() - run)),
                    std::span(shapes.data(), in_run));
            }
            if (line.empty()) {
                lines.append_parsed(name, value);
            } else {
                lines.append_parsed_line(line, name.size());
            }
        });
    if (head_end != nullptr && running) {
        // The blank line ends the run.
        lines.append_parsed_lines(
            std::string_view(run, static_cast<std::size_t>(head_end - 2 - run)),
            std::span(shapes.data(), in_run));
    }
    if (head_end == nullptr || !facts.content_length) {
        lines = HeaderLines();
        return std::nullopt;
    }
    head.size = static_cast<std::size_t>(head_end - bytes.data());
    head.content_length = *facts.content_length;
    head.keep_alive = head.version == 11 ? !facts.close : facts.keep_alive;
    return head;
}

}  // namespace aether::platform::http::detail
