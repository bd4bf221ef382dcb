// Non-template pieces of the JSON mapping: path building and scalar decoding with range checks.
#include "platform/json/mapping.h"

#include <cmath>

namespace aether::platform::json::detail {

ReadContext::Scope::Scope(ReadContext& context, std::string_view member)
    : context_(context), saved_(context.path_.size()) {
    if (!context_.path_.empty()) context_.path_ += '.';
    context_.path_ += member;
}

ReadContext::Scope::Scope(ReadContext& context, std::size_t index)
    : context_(context), saved_(context.path_.size()) {
    context_.path_ += '[';
    context_.path_ += std::to_string(index);
    context_.path_ += ']';
}

namespace {

template <class I>
std::string between(I lo, I hi) {
    return "must be an integer between " + std::to_string(lo) + " and " + std::to_string(hi);
}

// The largest double below 2^63 and 2^64 are exactly representable; anything at or above those
// bounds does not fit the 64-bit types.
constexpr double kTwoPow63 = 9223372036854775808.0;
constexpr double kTwoPow64 = 18446744073709551616.0;

}  // namespace

void read_string(const boost::json::value& in, std::string& out, ReadContext& context) {
    const boost::json::string* text = in.if_string();
    if (text == nullptr) return context.fail("must be a string");
    out.assign(text->data(), text->size());
}

void read_bool(const boost::json::value& in, bool& out, ReadContext& context) {
    const bool* flag = in.if_bool();
    if (flag == nullptr) return context.fail("must be a boolean");
    out = *flag;
}

void read_double(const boost::json::value& in, double& out, ReadContext& context) {
    switch (in.kind()) {
        case boost::json::kind::double_:
            if (!std::isfinite(in.get_double())) return context.fail("must be a finite number");
            out = in.get_double();
            return;
        case boost::json::kind::int64:
            out = static_cast<double>(in.get_int64());
            return;
        case boost::json::kind::uint64:
            out = static_cast<double>(in.get_uint64());
            return;
        default:
            return context.fail("must be a number");
    }
}

void read_signed(const boost::json::value& in, std::int64_t lo, std::int64_t hi, std::int64_t& out,
                 ReadContext& context) {
    std::int64_t wide = 0;
    switch (in.kind()) {
        case boost::json::kind::int64:
            wide = in.get_int64();
            break;
        case boost::json::kind::uint64:
            // Only reached above INT64_MAX: the parser stores smaller values as int64.
            if (in.get_uint64() > static_cast<std::uint64_t>(hi)) {
                return context.fail(between(lo, hi));
            }
            wide = static_cast<std::int64_t>(in.get_uint64());
            break;
        case boost::json::kind::double_: {
            // 1e3 or 2.0 are integers written as decimals; 2.5 is not.
            const double d = in.get_double();
            if (!std::isfinite(d) || std::trunc(d) != d) return context.fail("must be an integer");
            if (d < -kTwoPow63 || d >= kTwoPow63) return context.fail(between(lo, hi));
            wide = static_cast<std::int64_t>(d);
            break;
        }
        default:
            return context.fail("must be an integer");
    }
    if (wide < lo || wide > hi) return context.fail(between(lo, hi));
    out = wide;
}

void read_unsigned(const boost::json::value& in, std::uint64_t hi, std::uint64_t& out,
                   ReadContext& context) {
    std::uint64_t wide = 0;
    switch (in.kind()) {
        case boost::json::kind::int64:
            if (in.get_int64() < 0) return context.fail(between<std::uint64_t>(0, hi));
            wide = static_cast<std::uint64_t>(in.get_int64());
            break;
        case boost::json::kind::uint64:
            wide = in.get_uint64();
            break;
        case boost::json::kind::double_: {
            const double d = in.get_double();
            if (!std::isfinite(d) || std::trunc(d) != d) return context.fail("must be an integer");
            if (d < 0 || d >= kTwoPow64) return context.fail(between<std::uint64_t>(0, hi));
            wide = static_cast<std::uint64_t>(d);
            break;
        }
        default:
            return context.fail("must be an integer");
    }
    if (wide > hi) return context.fail(between<std::uint64_t>(0, hi));
    out = wide;
}

}  // namespace aether::platform::json::detail
