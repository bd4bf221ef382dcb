// Strict, bounded JSON body parsing over Boost.JSON's basic_parser with our own value builder.
#include "platform/json/body.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/value_stack.hpp>
#include <cmath>
#include <string>

#include "platform/json/utf8.h"

namespace aether::platform::json {

namespace {

// Builds the value like Boost's own parser does, but refuses numbers that overflow a double:
// the default turns 1e999 into infinity, which cannot be written back as JSON.
struct BodyHandler {
    static constexpr std::size_t max_object_size = boost::json::object::max_size();
    static constexpr std::size_t max_array_size = boost::json::array::max_size();
    static constexpr std::size_t max_key_size = boost::json::string::max_size();
    static constexpr std::size_t max_string_size = boost::json::string::max_size();

    // The stack's own scratch space (keys and strings being assembled) comes first from this
    // buffer, so a small document needs no allocation for it.
    alignas(std::max_align_t) unsigned char temporary[512];
    boost::json::value_stack stack{{}, temporary, sizeof temporary};

    bool on_document_begin(boost::json::error_code&) { return true; }
    bool on_document_end(boost::json::error_code&) { return true; }
    bool on_object_begin(boost::json::error_code&) { return true; }
    bool on_object_end(std::size_t n, boost::json::error_code&) {
        stack.push_object(n);
        return true;
    }
    bool on_array_begin(boost::json::error_code&) { return true; }
    bool on_array_end(std::size_t n, boost::json::error_code&) {
        stack.push_array(n);
        return true;
    }
    bool on_key_part(boost::json::string_view s, std::size_t, boost::json::error_code&) {
        stack.push_chars(s);
        return true;
    }
    bool on_key(boost::json::string_view s, std::size_t, boost::json::error_code&) {
        stack.push_key(s);
        return true;
    }
    bool on_string_part(boost::json::string_view s, std::size_t, boost::json::error_code&) {
        stack.push_chars(s);
        return true;
    }
    bool on_string(boost::json::string_view s, std::size_t, boost::json::error_code&) {
        stack.push_string(s);
        return true;
    }
    bool on_number_part(boost::json::string_view, boost::json::error_code&) { return true; }
    bool on_int64(std::int64_t i, boost::json::string_view, boost::json::error_code&) {
        stack.push_int64(i);
        return true;
    }
    bool on_uint64(std::uint64_t u, boost::json::string_view, boost::json::error_code&) {
        stack.push_uint64(u);
        return true;
    }
    bool on_double(double d, boost::json::string_view, boost::json::error_code& ec) {
        if (!std::isfinite(d)) {
            ec = boost::json::error::exponent_overflow;
            return false;
        }
        stack.push_double(d);
        return true;
    }
    bool on_bool(bool b, boost::json::error_code&) {
        stack.push_bool(b);
        return true;
    }
    bool on_null(boost::json::error_code&) {
        stack.push_null();
        return true;
    }
    bool on_comment_part(boost::json::string_view, boost::json::error_code&) { return true; }
    bool on_comment(boost::json::string_view, boost::json::error_code&) { return true; }
};

FieldError body_error(std::string message) {
    return FieldError{"body", std::move(message)};
}

std::string describe(const boost::json::error_code& ec, std::size_t max_depth) {
    if (ec == boost::json::error::too_deep) {
        return "nested deeper than " + std::to_string(max_depth) + " levels";
    }
    if (ec == boost::json::error::incomplete) return "unexpected end of input";
    if (ec == boost::json::error::extra_data) return "unexpected data after the JSON value";
    if (ec == boost::json::error::exponent_overflow) return "number out of range";
    return ec.message();
}

}  // namespace

Expected<boost::json::value, FieldError> parse_body(std::string_view body,
                                                    const ParseOptions& options,
                                                    boost::json::storage_ptr storage) {
    if (std::all_of(body.begin(), body.end(),
                    [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; })) {
        return unexpected(body_error("must not be empty"));
    }
    if (const std::size_t bad = invalid_utf8_offset(body); bad != std::string_view::npos) {
        return unexpected(body_error("invalid UTF-8 at byte " + std::to_string(bad)));
    }

    const std::size_t max_depth = std::clamp<std::size_t>(options.max_depth, 1, kMaxDepthCeiling);
    boost::json::parse_options parse_options;
    parse_options.max_depth = max_depth;
    boost::json::basic_parser<BodyHandler> parser(parse_options);
    parser.handler().stack.reset(std::move(storage));

    boost::json::error_code ec;
    const std::size_t consumed = parser.write_some(false, body.data(), body.size(), ec);
    if (!ec && consumed < body.size()) ec = boost::json::error::extra_data;
    if (ec) {
        return unexpected(body_error("invalid JSON at byte " + std::to_string(consumed) + ": " +
                                     describe(ec, max_depth)));
    }
    boost::json::value value = parser.handler().stack.release();
    if (options.require_object && !value.is_object()) {
        return unexpected(body_error("must be a JSON object"));
    }
    return value;
}

Expected<boost::json::object, FieldError> parse_object(std::string_view body,
                                                       std::size_t max_depth) {
    auto parsed = parse_body(body, ParseOptions{max_depth, true});
    if (!parsed) return unexpected(std::move(parsed).error());
    return std::move(parsed->get_object());
}

}  // namespace aether::platform::json
