// The configuration schema: key declarations, value parsing per kind, common checks.
#include "platform/config/schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace aether::platform::config {
namespace {

std::string_view trim(std::string_view text) {
    constexpr std::string_view kSpace = " \t\r\n";
    const auto first = text.find_first_not_of(kSpace);
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(kSpace);
    return text.substr(first, last - first + 1);
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// "a, b or c"
std::string join_alternatives(const std::vector<std::string>& items, std::string_view last_sep) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += i + 1 == items.size() ? last_sep : std::string_view(", ");
        out += items[i];
    }
    return out;
}

bool valid_segment(std::string_view segment) {
    if (segment.empty() || segment.front() < 'a' || segment.front() > 'z') return false;
    return std::all_of(segment.begin(), segment.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

std::string_view kind_form(Kind kind) {
    switch (kind) {
        case Kind::String:
        case Kind::Secret:
            return "must be a string";
        case Kind::Int:
            return "must be an integer";
        case Kind::Double:
            return "must be a number";
        case Kind::Bool:
            return "must be true or false";
        case Kind::Duration:
            return "must be a duration";
        case Kind::StringList:
            return "must be a list of strings";
    }
    return "must be a value";
}

std::string escape_cell(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '|') out += '\\';
        out += c == '\n' ? ' ' : c;
    }
    return out;
}

}  // namespace

std::string env_name(std::string_view path) {
    std::string out = "AETHER_";
    for (char c : path) {
        out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string_view kind_name(Kind kind) {
    switch (kind) {
        case Kind::String:
            return "string";
        case Kind::Secret:
            return "secret";
        case Kind::Int:
            return "int";
        case Kind::Double:
            return "double";
        case Kind::Bool:
            return "bool";
        case Kind::Duration:
            return "duration";
        case Kind::StringList:
            return "list";
    }
    return "unknown";
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    std::int64_t amount = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), amount);
    if (ec != std::errc() || end == text.data() || amount < 0) return std::nullopt;
    const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
    std::int64_t factor = 0;
    if (unit == "ms") {
        factor = 1;
    } else if (unit.empty() || unit == "s") {
        factor = 1000;
    } else if (unit == "m") {
        factor = 60 * 1000;
    } else if (unit == "h") {
        factor = 60 * 60 * 1000;
    } else {
        return std::nullopt;
    }
    if (amount > std::numeric_limits<std::int64_t>::max() / factor) return std::nullopt;
    return std::chrono::milliseconds(amount * factor);
}

std::string format_duration(std::chrono::milliseconds duration) {
    const std::int64_t ms = duration.count();
    if (ms == 0) return "0s";
    if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

Check one_of(std::vector<std::string> allowed) {
    std::string requirement = "must be one of " + join_alternatives(allowed, ", ");
    return {std::move(requirement), [allowed = std::move(allowed)](const Value& value) {
                const auto ok = [&](const std::string& item) {
                    return std::find(allowed.begin(), allowed.end(), item) != allowed.end();
                };
                if (const auto* text = std::get_if<std::string>(&value)) return ok(*text);
                if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
                    return std::all_of(list->begin(), list->end(), ok);
                }
                return false;
            }};
}

Check int_range(std::int64_t lo, std::int64_t hi) {
    return {"must be an integer between " + std::to_string(lo) + " and " + std::to_string(hi),
            [lo, hi](const Value& value) {
                const auto* number = std::get_if<std::int64_t>(&value);
                return number != nullptr && *number >= lo && *number <= hi;
            }};
}

Check duration_range(std::chrono::milliseconds lo, std::chrono::milliseconds hi) {
    return {"must be a duration between " + format_duration(lo) + " and " + format_duration(hi),
            [lo, hi](const Value& value) {
                const auto* duration = std::get_if<std::chrono::milliseconds>(&value);
                return duration != nullptr && *duration >= lo && *duration <= hi;
            }};
}

Check min_length(std::size_t n) {
    return {"must be at least " + std::to_string(n) + " characters long", [n](const Value& value) {
                const auto* text = std::get_if<std::string>(&value);
                return text != nullptr && text->size() >= n;
            }};
}

Check url_schemes(std::vector<std::string> schemes) {
    std::vector<std::string> prefixes;
    for (const auto& scheme : schemes) prefixes.push_back(scheme + "://");
    std::string requirement = "must be a URL starting with " + join_alternatives(prefixes, " or ");
    return {std::move(requirement), [prefixes = std::move(prefixes)](const Value& value) {
                const auto* text = std::get_if<std::string>(&value);
                if (text == nullptr) return false;
                return std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) {
                    return text->size() > p.size() && text->starts_with(p);
                });
            }};
}

Check database_url() {
    return {"must be a postgresql:// URL or sqlite:PATH", [](const Value& value) {
                const auto* text = std::get_if<std::string>(&value);
                if (text == nullptr) return false;
                for (std::string_view prefix : {"postgresql://", "postgres://", "sqlite:"}) {
                    if (text->size() > prefix.size() && text->starts_with(prefix)) return true;
                }
                return false;
            }};
}

Schema& Schema::add(Key key) {
    const auto fail = [&](const std::string& why) {
        throw std::logic_error("config schema: key '" + key.path + "': " + why);
    };
    std::vector<std::string> segments;
    for (std::size_t start = 0;;) {
        const auto dot = key.path.find('.', start);
        segments.push_back(key.path.substr(start, dot - start));
        if (!valid_segment(segments.back())) {
            fail("path segments must be lower-case names ([a-z][a-z0-9_]*) separated by dots");
        }
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    if (by_path_.contains(key.path)) fail("declared twice");
    if (sections_.contains(key.path)) fail("already a section holding other keys");
    std::string prefix;
    for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
        prefix += (i > 0 ? "." : "") + segments[i];
        if (by_path_.contains(prefix)) fail("'" + prefix + "' is already a key, not a section");
    }
    const std::string env = env_name(key.path);
    if (const auto it = by_env_.find(env); it != by_env_.end()) {
        fail("environment name " + env + " collides with key '" + keys_[it->second].path + "'");
    }
    if (key.required && !key.default_value.empty()) fail("a required key cannot have a default");
    if (!key.default_value.empty()) {
        auto parsed = detail::parse_text(key.kind, key.default_value);
        if (!parsed) fail("default: " + parsed.error());
        if (key.check && !key.check.accepts(*parsed)) fail("default: " + key.check.requirement);
    }

    prefix.clear();
    for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
        prefix += (i > 0 ? "." : "") + segments[i];
        sections_.try_emplace(prefix, key.path);
    }
    by_path_.emplace(key.path, keys_.size());
    by_env_.emplace(env, keys_.size());
    keys_.push_back(std::move(key));
    return *this;
}

const Key* Schema::find(std::string_view path) const {
    const auto it = by_path_.find(path);
    return it == by_path_.end() ? nullptr : &keys_[it->second];
}

const Key* Schema::find_by_env(std::string_view variable) const {
    const auto it = by_env_.find(variable);
    return it == by_env_.end() ? nullptr : &keys_[it->second];
}

bool Schema::is_section(std::string_view path) const {
    return sections_.contains(path);
}

std::string Schema::markdown_table() const {
    std::string out =
        "| Key | Environment variable | Kind | Default | Description |\n"
        "|---|---|---|---|---|\n";
    for (const auto& [path, index] : by_path_) {
        const Key& key = keys_[index];
        std::string default_cell;
        if (key.kind == Kind::Secret) {
            default_cell = key.default_value.empty() ? "" : "*(hidden)*";
        } else if (!key.default_value.empty()) {
            default_cell = "`" + escape_cell(key.default_value) + "`";
        }
        std::string description = key.description;
        if (key.required) description += description.empty() ? "Required." : " Required.";
        if (key.check) {
            std::string rule = key.check.requirement;
            rule[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(rule[0])));
            description += (description.empty() ? "" : " ") + rule + ".";
        }
        out += "| `" + path + "` | `" + env_name(path) + "` | " + std::string(kind_name(key.kind)) +
               " | " + default_cell + " | " + escape_cell(description) + " |\n";
    }
    return out;
}

namespace detail {

Expected<Value, std::string> parse_text(Kind kind, std::string_view text) {
    const std::string_view trimmed = trim(text);
    const char* first = trimmed.data();
    const char* last = trimmed.data() + trimmed.size();
    switch (kind) {
        case Kind::String:
        case Kind::Secret:
            return Value(std::string(text));
        case Kind::Int: {
            std::int64_t number = 0;
            const auto [end, ec] = std::from_chars(first, last, number);
            if (trimmed.empty() || ec != std::errc() || end != last) {
                return unexpected(std::string(kind_form(kind)));
            }
            return Value(number);
        }
        case Kind::Double: {
            double number = 0;
            const auto [end, ec] = std::from_chars(first, last, number);
            if (trimmed.empty() || ec != std::errc() || end != last || !std::isfinite(number)) {
                return unexpected(std::string(kind_form(kind)));
            }
            return Value(number);
        }
        case Kind::Bool: {
            const std::string word = lower(trimmed);
            if (word == "true" || word == "yes" || word == "on" || word == "1") return Value(true);
            if (word == "false" || word == "no" || word == "off" || word == "0") {
                return Value(false);
            }
            return unexpected(std::string(kind_form(kind)));
        }
        case Kind::Duration: {
            if (auto duration = parse_duration(trimmed)) return Value(*duration);
            return unexpected(std::string(kind_form(kind)) + " such as 250ms, 30s, 5m or 1h");
        }
        case Kind::StringList: {
            std::vector<std::string> items;
            std::size_t start = 0;
            while (start <= text.size()) {
                auto comma = text.find(',', start);
                if (comma == std::string_view::npos) comma = text.size();
                const auto item = trim(text.substr(start, comma - start));
                if (!item.empty()) items.emplace_back(item);
                start = comma + 1;
            }
            return Value(std::move(items));
        }
    }
    return unexpected(std::string("unsupported kind"));
}

std::string form_requirement(const Key& key) {
    const std::string_view form = kind_form(key.kind);
    if (key.check && key.check.requirement.starts_with(form)) return key.check.requirement;
    if (key.kind == Kind::Duration) return std::string(form) + " such as 250ms, 30s, 5m or 1h";
    return std::string(form);
}

}  // namespace detail
}  // namespace aether::platform::config
