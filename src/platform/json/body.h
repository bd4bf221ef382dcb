// Parsing untrusted request bodies into JSON with limits, and straight into described structs.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <string_view>
#include <vector>

#include "platform/expected.h"
#include "platform/json/arena.h"
#include "platform/json/mapping.h"

namespace aether::platform::json {

inline constexpr std::size_t kDefaultMaxDepth = 32;
// The parser recurses per nesting level, so a configured depth is clamped to this.
inline constexpr std::size_t kMaxDepthCeiling = 512;

struct ParseOptions {
    std::size_t max_depth = kDefaultMaxDepth;
    bool require_object = false;
};

// Parses one JSON document. The text must be valid UTF-8 and strict JSON (no comments, no
// trailing commas, nothing after the value); numbers too large for a double are rejected. When an
// object repeats a key the LAST occurrence wins, so the result never depends on hash order.
// On failure the error has field "body" and a short message with the byte offset; the input
// itself is never echoed. The value is allocated from `storage` (default: the heap).
Expected<boost::json::value, FieldError> parse_body(std::string_view body,
                                                    const ParseOptions& options = {},
                                                    boost::json::storage_ptr storage = {});

// parse_body that also requires the top level to be an object.
Expected<boost::json::object, FieldError> parse_object(std::string_view body,
                                                       std::size_t max_depth = kDefaultMaxDepth);

// Parses and decodes in one call. A parse error becomes a single FieldError for "body";
// decoding errors about the root value are reported for "body" too.
template <class T>
Expected<T, std::vector<FieldError>> parse_as(std::string_view body) {
    ParseOptions options;
    options.require_object = detail::kIsDescribedStruct<T> || detail::IsStringMap<T>::value;
    // The parsed value only lives until it is decoded: a request body of ordinary size is
    // parsed into this stack buffer instead of one heap allocation per key, string and object.
    // Decoding copies out of it (a json::value member is copied into its own storage).
    StackArena<2048> arena;
    auto parsed = parse_body(body, options, arena.storage());
    if (!parsed) return unexpected(std::vector<FieldError>{std::move(parsed).error()});
    auto decoded = from_value<T>(*parsed);
    if (decoded) return decoded;
    std::vector<FieldError> errors = std::move(decoded).error();
    for (FieldError& error : errors) {
        if (error.field.empty()) {
            error.field = "body";
        } else if (error.field.front() == '[') {
            error.field.insert(0, "body");
        }
    }
    return unexpected(std::move(errors));
}

}  // namespace aether::platform::json
