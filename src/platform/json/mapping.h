// Described structs <-> JSON, with decoding that reports every bad field and its path.
#pragma once

#include <boost/describe/class.hpp>
#include <boost/describe/enum.hpp>
#include <boost/describe/enumerators.hpp>
#include <boost/describe/members.hpp>
#include <boost/describe/modifiers.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/mp11/algorithm.hpp>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::json {

// One rejected input field: `field` is a path such as "user.name" or "context[0].role".
struct FieldError {
    std::string field;
    std::string message;

    friend bool operator==(const FieldError&, const FieldError&) = default;
};
BOOST_DESCRIBE_STRUCT(FieldError, (), (field, message))

// An optional that is serialized as `null` when empty instead of being left out of its object,
// for response fields the contract says are always present. Decodes exactly like std::optional.
template <class T>
class Nullable : public std::optional<T> {
  public:
    using std::optional<T>::optional;
    using std::optional<T>::operator=;
};

namespace detail {

template <class T>
struct IsOptional : std::false_type {};
template <class U>
struct IsOptional<std::optional<U>> : std::true_type {};

template <class T>
struct IsNullable : std::false_type {};
template <class U>
struct IsNullable<Nullable<U>> : std::true_type {};

template <class T>
struct IsVector : std::false_type {};
template <class U, class A>
struct IsVector<std::vector<U, A>> : std::true_type {};

template <class T>
struct IsStringMap : std::false_type {};
template <class U, class C, class A>
struct IsStringMap<std::map<std::string, U, C, A>> : std::true_type {};

template <class T>
inline constexpr bool kMayBeAbsent = IsOptional<T>::value || IsNullable<T>::value;

// Plain char types are text, not numbers; int8_t/uint8_t (signed/unsigned char) are numbers.
template <class T>
inline constexpr bool kIsCharacter =
    std::is_same_v<T, char> || std::is_same_v<T, wchar_t> || std::is_same_v<T, char8_t> ||
    std::is_same_v<T, char16_t> || std::is_same_v<T, char32_t>;

template <class T>
inline constexpr bool kIsInteger =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !kIsCharacter<T>;

template <class T>
inline constexpr bool kIsDescribedEnum =
    std::is_enum_v<T>&& boost::describe::has_describe_enumerators<T>::value;

template <class T>
inline constexpr bool kIsDescribedStruct =
    std::is_class_v<T>&& boost::describe::has_describe_members<T>::value;

template <class T>
using Members = boost::describe::describe_members<T, boost::describe::mod_public |
                                                         boost::describe::mod_inherited>;

template <class>
inline constexpr bool kUnsupported = false;

inline constexpr std::size_t kMaxFieldErrors = 100;

// Decoding state: the path of the value being read and the errors found so far.
class ReadContext {
  public:
    // Past the cap further errors are dropped, so a hostile body cannot make the error
    // response bigger than a reasonable one.
    void fail(std::string message) {
        if (errors_.size() < kMaxFieldErrors) errors_.push_back({path_, std::move(message)});
    }
    std::vector<FieldError> take_errors() { return std::move(errors_); }
    bool failed() const { return !errors_.empty(); }

    // Extends the path for the lifetime of the scope.
    class Scope {
      public:
        Scope(ReadContext& context, std::string_view member);
        Scope(ReadContext& context, std::size_t index);
        ~Scope() { context_.path_.resize(saved_); }
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;

      private:
        ReadContext& context_;
        std::size_t saved_;
    };

  private:
    std::string path_;
    std::vector<FieldError> errors_;
};

void read_string(const boost::json::value& in, std::string& out, ReadContext& context);
void read_bool(const boost::json::value& in, bool& out, ReadContext& context);
void read_double(const boost::json::value& in, double& out, ReadContext& context);
void read_signed(const boost::json::value& in, std::int64_t lo, std::int64_t hi, std::int64_t& out,
                 ReadContext& context);
void read_unsigned(const boost::json::value& in, std::uint64_t hi, std::uint64_t& out,
                   ReadContext& context);

// "must be one of: low, medium, high", built once per enum type.
template <class E>
const std::string& enum_choices_message() {
    static const std::string message = [] {
        std::string text = "must be one of: ";
        bool first = true;
        boost::mp11::mp_for_each<boost::describe::describe_enumerators<E>>([&](auto d) {
            if (!first) text += ", ";
            first = false;
            text += d.name;
        });
        return text;
    }();
    return message;
}

template <class T>
void read(const boost::json::value& in, T& out, ReadContext& context);

template <class T>
void read_members(const boost::json::object& in, T& out, ReadContext& context) {
    boost::mp11::mp_for_each<Members<T>>([&](auto d) {
        using Member = std::remove_cvref_t<decltype(out.*d.pointer)>;
        ReadContext::Scope scope(context, d.name);
        const boost::json::value* field = in.if_contains(d.name);
        if (field == nullptr) {
            if constexpr (!kMayBeAbsent<Member>) context.fail("is required");
            return;
        }
        read(*field, out.*d.pointer, context);
    });
}

template <class T>
void read(const boost::json::value& in, T& out, ReadContext& context) {
    if constexpr (kMayBeAbsent<T>) {
        if (in.is_null()) {
            out.reset();
            return;
        }
        out.emplace();
        read(in, *out, context);
    } else if constexpr (std::is_same_v<T, std::string>) {
        read_string(in, out, context);
    } else if constexpr (std::is_same_v<T, bool>) {
        read_bool(in, out, context);
    } else if constexpr (kIsInteger<T> && std::is_signed_v<T>) {
        std::int64_t wide = 0;
        read_signed(in, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), wide,
                    context);
        out = static_cast<T>(wide);
    } else if constexpr (kIsInteger<T>) {
        std::uint64_t wide = 0;
        read_unsigned(in, std::numeric_limits<T>::max(), wide, context);
        out = static_cast<T>(wide);
    } else if constexpr (std::is_floating_point_v<T>) {
        double wide = 0;
        read_double(in, wide, context);
        out = static_cast<T>(wide);
    } else if constexpr (kIsDescribedEnum<T>) {
        const boost::json::string* name = in.if_string();
        bool found = false;
        if (name != nullptr) {
            boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto d) {
                if (!found && std::string_view(*name) == d.name) {
                    out = d.value;
                    found = true;
                }
            });
        }
        if (!found) context.fail(enum_choices_message<T>());
    } else if constexpr (IsVector<T>::value) {
        const boost::json::array* items = in.if_array();
        if (items == nullptr) return context.fail("must be an array");
        out.clear();
        out.resize(items->size());
        for (std::size_t i = 0; i < items->size(); ++i) {
            ReadContext::Scope scope(context, i);
            read((*items)[i], out[i], context);
        }
    } else if constexpr (IsStringMap<T>::value) {
        const boost::json::object* entries = in.if_object();
        if (entries == nullptr) return context.fail("must be an object");
        out.clear();
        for (const auto& entry : *entries) {
            ReadContext::Scope scope(context, entry.key());
            read(entry.value(), out[std::string(entry.key())], context);
        }
    } else if constexpr (std::is_same_v<T, boost::json::value>) {
        out = in;
    } else if constexpr (std::is_same_v<T, boost::json::object>) {
        if (!in.is_object()) return context.fail("must be an object");
        out = in.get_object();
    } else if constexpr (std::is_same_v<T, boost::json::array>) {
        if (!in.is_array()) return context.fail("must be an array");
        out = in.get_array();
    } else if constexpr (kIsDescribedStruct<T>) {
        const boost::json::object* fields = in.if_object();
        if (fields == nullptr) return context.fail("must be an object");
        read_members(*fields, out, context);
    } else {
        static_assert(kUnsupported<T>, "no JSON mapping for this type: describe it");
    }
}

}  // namespace detail

// Serializes a value. std::optional members that are empty are left out of their object;
// Nullable members that are empty are written as null; described enums are written as their
// enumerator names (a value that has no name is written as its underlying integer).
template <class T>
boost::json::value to_value(const T& in) {
    using namespace detail;
    if constexpr (kMayBeAbsent<T>) {
        return in.has_value() ? to_value(*in) : boost::json::value(nullptr);
    } else if constexpr (std::is_same_v<T, bool>) {
        return boost::json::value(in);
    } else if constexpr (kIsInteger<T> && std::is_signed_v<T>) {
        return boost::json::value(static_cast<std::int64_t>(in));
    } else if constexpr (kIsInteger<T>) {
        return boost::json::value(static_cast<std::uint64_t>(in));
    } else if constexpr (std::is_floating_point_v<T>) {
        return boost::json::value(static_cast<double>(in));
    } else if constexpr (std::is_convertible_v<const T&, std::string_view> &&
                         !std::is_same_v<T, boost::json::value>) {
        return boost::json::value(boost::json::string_view(std::string_view(in)));
    } else if constexpr (kIsDescribedEnum<T>) {
        std::optional<boost::json::value> named;
        boost::mp11::mp_for_each<boost::describe::describe_enumerators<T>>([&](auto d) {
            if (!named && in == d.value) named.emplace(boost::json::string_view(d.name));
        });
        if (named) return std::move(*named);
        return to_value(static_cast<std::underlying_type_t<T>>(in));
    } else if constexpr (IsVector<T>::value) {
        boost::json::array items;
        items.reserve(in.size());
        for (const auto& item : in) items.push_back(to_value(item));
        return items;
    } else if constexpr (IsStringMap<T>::value) {
        boost::json::object entries;
        for (const auto& [key, item] : in) {
            if constexpr (IsOptional<std::remove_cvref_t<decltype(item)>>::value) {
                if (!item.has_value()) continue;
            }
            entries.emplace(key, to_value(item));
        }
        return entries;
    } else if constexpr (std::is_same_v<T, boost::json::value> ||
                         std::is_same_v<T, boost::json::object> ||
                         std::is_same_v<T, boost::json::array>) {
        return boost::json::value(in);
    } else if constexpr (kIsDescribedStruct<T>) {
        boost::json::object fields;
        boost::mp11::mp_for_each<Members<T>>([&](auto d) {
            const auto& member = in.*d.pointer;
            if constexpr (IsOptional<std::remove_cvref_t<decltype(member)>>::value) {
                if (!member.has_value()) return;
            }
            fields.emplace(d.name, to_value(member));
        });
        return fields;
    } else {
        static_assert(kUnsupported<T>, "no JSON mapping for this type: describe it");
    }
}

// Serializes to compact JSON text.
template <class T>
std::string to_string(const T& in) {
    return boost::json::serialize(to_value(in));
}

// Decodes a value, collecting every bad field rather than stopping at the first. Members that
// are not std::optional/Nullable are required; unknown members are ignored; numbers are never
// coerced from strings and integers outside the C++ type's range are rejected. An error about
// the root value itself has an empty field path. At most detail::kMaxFieldErrors are reported.
template <class T>
Expected<T, std::vector<FieldError>> from_value(const boost::json::value& in) {
    static_assert(std::is_default_constructible_v<T>,
                  "decoded types must be default-constructible");
    T out{};
    detail::ReadContext context;
    detail::read(in, out, context);
    if (context.failed()) return unexpected(context.take_errors());
    return out;
}

}  // namespace aether::platform::json
