// Loading and reading the effective configuration; see config.h for the model.
#include "platform/config/config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace aether::platform::config {
namespace {

constexpr std::string_view kEnvPrefix = "AETHER_";
constexpr std::string_view kReservedTestPrefix = "AETHER_TEST_";
constexpr std::size_t kMaxEchoedChars = 60;

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                              std::tolower(static_cast<unsigned char>(b[j - 1]));
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string_view last_segment(std::string_view path, char separator) {
    const auto pos = path.rfind(separator);
    return pos == std::string_view::npos ? path : path.substr(pos + 1);
}

// The candidate a typo most likely meant: a small edit away, or the same final name declared
// elsewhere (a key put in the wrong section) when that is unambiguous.
std::optional<std::string> suggestion(std::string_view wrong,
                                      const std::vector<std::string>& candidates, char separator) {
    const std::size_t limit = std::clamp<std::size_t>(wrong.size() / 4, 1, 3);
    std::optional<std::string> best;
    std::size_t best_distance = limit + 1;
    for (const auto& candidate : candidates) {
        const std::size_t distance = edit_distance(wrong, candidate);
        if (distance < best_distance) {
            best_distance = distance;
            best = candidate;
        }
    }
    if (best) return best;
    std::optional<std::string> moved;
    for (const auto& candidate : candidates) {
        if (last_segment(candidate, separator) == last_segment(wrong, separator)) {
            if (moved) return std::nullopt;
            moved = candidate;
        }
    }
    return moved;
}

// ` (got "value")`, shortened and escaped; nothing at all for a secret.
std::string echo(const Key& key, std::string_view raw) {
    if (key.kind == Kind::Secret) return "";
    std::string out = " (got \"";
    std::size_t shown = 0;
    for (char c : raw) {
        if (shown++ == kMaxEchoedChars) {
            out += "...";
            break;
        }
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += '?';
        } else {
            out += c;
        }
    }
    return out + "\")";
}

std::string node_form(const YAML::Node& node) {
    if (node.IsMap()) return "a mapping";
    if (node.IsSequence()) return "a list";
    return "a single value";
}

std::string format_double(double value) {
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, result.ptr);
}

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> segments;
    std::size_t start = 0;
    for (auto dot = path.find('.'); dot != std::string_view::npos; dot = path.find('.', start)) {
        segments.emplace_back(path.substr(start, dot - start));
        start = dot + 1;
    }
    segments.emplace_back(path.substr(start));
    return segments;
}

}  // namespace

std::string ConfigError::to_string() const {
    std::string out;
    for (const std::string* part : {&origin, &path, &message}) {
        if (part->empty()) continue;
        if (!out.empty()) out += ": ";
        out += *part;
    }
    return out;
}

// Builds a Config source by source, collecting every error instead of stopping at the first.
class Loader {
  public:
    explicit Loader(const Schema& schema) : schema_(schema) {
        for (const Key& key : schema.keys()) {
            auto& entry = config_.entries_[key.path];
            entry.kind = key.kind;
            if (key.default_value.empty()) continue;
            // Defaults were validated by Schema::add.
            entry.value = *detail::parse_text(key.kind, key.default_value);
            entry.origin = "default";
        }
    }

    void read_file(const std::string& file) {
        std::error_code ec;
        const auto status = std::filesystem::status(file, ec);
        if (!std::filesystem::exists(status)) {
            errors_.push_back({file, "", "cannot read the configuration file: it does not exist"});
            return;
        }
        if (std::filesystem::is_directory(status)) {
            errors_.push_back({file, "", "cannot read the configuration file: it is a directory"});
            return;
        }
        std::ifstream in(file, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        if (!in) {
            errors_.push_back(
                {file, "",
                 std::string("cannot read the configuration file: ") + std::strerror(errno)});
            return;
        }
        read_yaml(text.str(), file);
    }

    void read_yaml(std::string_view text, const std::string& source) {
        source_ = source;
        YAML::Node root;
        try {
            root = YAML::Load(std::string(text));
        } catch (const YAML::Exception& e) {
            errors_.push_back({origin_at(e.mark), "", "invalid YAML: " + e.msg});
            return;
        }
        if (root.IsNull()) return;
        if (!root.IsMap()) {
            errors_.push_back(
                {origin_at(root.Mark()), "",
                 "the file must be a mapping of configuration keys, not " + node_form(root)});
            return;
        }
        walk(root, "");
    }

    void read_environment(const std::map<std::string, std::string>& environment) {
        std::vector<std::string> known;
        for (const Key& key : schema_.keys()) known.push_back(env_name(key.path));
        for (const auto& [name, text] : environment) {
            if (!name.starts_with(kEnvPrefix) || name.starts_with(kReservedTestPrefix)) continue;
            const Key* key = schema_.find_by_env(name);
            if (key == nullptr) {
                const auto guess = suggestion(name, known, '_');
                errors_.push_back(
                    {name, "",
                     guess ? "unknown variable (did you mean " + *guess + "?)"
                           : "unknown variable: no configuration key has this name (names "
                             "starting with " +
                                 std::string(kReservedTestPrefix) + " are ignored)"});
                continue;
            }
            accept_text(*key, text, name);
        }
    }

    Expected<Config, std::vector<ConfigError>> finish() && {
        for (const Key& key : schema_.keys()) {
            if (key.required && !config_.entries_.at(key.path).value) {
                errors_.push_back(
                    {"", key.path,
                     "is required: set it in the configuration file or as " + env_name(key.path)});
            }
        }
        if (!errors_.empty()) return unexpected(std::move(errors_));
        return std::move(config_);
    }

  private:
    std::string origin_at(const YAML::Mark& mark) const {
        if (mark.line < 0) return source_;
        return source_ + ":" + std::to_string(mark.line + 1);
    }

    void walk(const YAML::Node& map, const std::string& prefix) {
        for (const auto& item : map) {
            const YAML::Node& name = item.first;
            const YAML::Node& value = item.second;
            const std::string origin = origin_at(name.Mark());
            if (!name.IsScalar()) {
                errors_.push_back(
                    {origin, prefix, "keys must be plain names, not " + node_form(name)});
                continue;
            }
            const std::string path = prefix.empty() ? name.Scalar() : prefix + "." + name.Scalar();
            const auto [first, inserted] = lines_seen_.try_emplace(path, origin);
            if (!inserted) {
                errors_.push_back(
                    {origin, path, "duplicate key (first set at " + first->second + ")"});
                continue;
            }
            if (const Key* key = schema_.find(path)) {
                accept_node(*key, value, origin);
            } else if (schema_.is_section(path)) {
                if (value.IsMap()) {
                    walk(value, path);
                } else if (!value.IsNull()) {
                    errors_.push_back(
                        {origin, path,
                         "must be a mapping of keys (a section), not " + node_form(value)});
                }
            } else {
                const auto guess = suggestion(path, file_candidates(), '.');
                errors_.push_back(
                    {origin, path,
                     guess ? "unknown key (did you mean " + *guess + "?)" : "unknown key"});
            }
        }
    }

    const std::vector<std::string>& file_candidates() {
        if (candidates_.empty()) {
            for (const Key& key : schema_.keys()) {
                candidates_.push_back(key.path);
                for (auto dot = key.path.find('.'); dot != std::string::npos;
                     dot = key.path.find('.', dot + 1)) {
                    candidates_.push_back(key.path.substr(0, dot));
                }
            }
            std::sort(candidates_.begin(), candidates_.end());
            candidates_.erase(std::unique(candidates_.begin(), candidates_.end()),
                              candidates_.end());
        }
        return candidates_;
    }

    void accept_node(const Key& key, const YAML::Node& value, const std::string& origin) {
        if (value.IsNull()) return;  // `key:` or `key: ~` leaves the default in place
        if (key.kind != Kind::StringList) {
            if (!value.IsScalar()) {
                errors_.push_back({origin, key.path,
                                   detail::form_requirement(key) + ", not " + node_form(value)});
                return;
            }
            accept_text(key, value.Scalar(), origin);
            return;
        }
        if (!value.IsSequence()) {
            const std::string raw = value.IsScalar() ? echo(key, value.Scalar()) : "";
            errors_.push_back(
                {origin, key.path,
                 detail::form_requirement(key) + " such as [a, b], not " + node_form(value) + raw});
            return;
        }
        std::vector<std::string> items;
        std::string raw = "[";
        for (const auto& element : value) {
            if (!element.IsScalar()) {
                errors_.push_back({origin_at(element.Mark()), key.path,
                                   detail::form_requirement(key) + ", but item " +
                                       std::to_string(items.size() + 1) + " is " +
                                       node_form(element)});
                return;
            }
            raw += (items.empty() ? "" : ", ") + element.Scalar();
            items.push_back(element.Scalar());
        }
        accept(key, Value(std::move(items)), raw + "]", origin);
    }

    void accept_text(const Key& key, std::string_view text, const std::string& origin) {
        auto parsed = detail::parse_text(key.kind, text);
        if (!parsed) {
            errors_.push_back({origin, key.path, detail::form_requirement(key) + echo(key, text)});
            return;
        }
        accept(key, std::move(*parsed), text, origin);
    }

    void accept(const Key& key, Value value, std::string_view raw, const std::string& origin) {
        if (key.check && !key.check.accepts(value)) {
            errors_.push_back({origin, key.path, key.check.requirement + echo(key, raw)});
            return;
        }
        auto& entry = config_.entries_.at(key.path);
        entry.value = std::move(value);
        entry.origin = origin;
    }

    const Schema& schema_;
    Config config_;
    std::vector<ConfigError> errors_;
    std::string source_;
    std::map<std::string, std::string> lines_seen_;
    std::vector<std::string> candidates_;
};

Expected<Config, std::vector<ConfigError>> load(
    const Schema& schema, const std::string& yaml_file,
    const std::map<std::string, std::string>& environment) {
    Loader loader(schema);
    if (!yaml_file.empty()) loader.read_file(yaml_file);
    loader.read_environment(environment);
    return std::move(loader).finish();
}

Expected<Config, std::vector<ConfigError>> load_from_string(
    const Schema& schema, std::string_view yaml_text, const std::string& source_name,
    const std::map<std::string, std::string>& environment) {
    Loader loader(schema);
    loader.read_yaml(yaml_text, source_name);
    loader.read_environment(environment);
    return std::move(loader).finish();
}

std::map<std::string, std::string> process_environment() {
    std::map<std::string, std::string> out;
    for (char** variable = environ; variable != nullptr && *variable != nullptr; ++variable) {
        const std::string_view text(*variable);
        const auto equals = text.find('=');
        if (equals == std::string_view::npos || !text.starts_with(kEnvPrefix)) continue;
        out.emplace(text.substr(0, equals), text.substr(equals + 1));
    }
    return out;
}

const Config::Entry& Config::entry(std::string_view path, Kind kind) const {
    const auto it = entries_.find(path);
    if (it == entries_.end()) {
        throw std::logic_error("config: key '" + std::string(path) + "' is not declared");
    }
    if (it->second.kind != kind) {
        throw std::logic_error("config: key '" + std::string(path) + "' is a " +
                               std::string(kind_name(it->second.kind)) + ", not a " +
                               std::string(kind_name(kind)));
    }
    return it->second;
}

const Value& Config::value_of(std::string_view path, Kind kind) const {
    const Entry& found = entry(path, kind);
    if (!found.value) {
        throw std::logic_error("config: key '" + std::string(path) +
                               "' is unset; check is_set() first");
    }
    return *found.value;
}

std::string Config::get_string(std::string_view path) const {
    const Entry& found = entry(path, Kind::String);
    return found.value ? std::get<std::string>(*found.value) : std::string();
}

std::string Config::get_secret(std::string_view path) const {
    const Entry& found = entry(path, Kind::Secret);
    return found.value ? std::get<std::string>(*found.value) : std::string();
}

std::int64_t Config::get_int(std::string_view path) const {
    return std::get<std::int64_t>(value_of(path, Kind::Int));
}

double Config::get_double(std::string_view path) const {
    return std::get<double>(value_of(path, Kind::Double));
}

bool Config::get_bool(std::string_view path) const {
    return std::get<bool>(value_of(path, Kind::Bool));
}

std::chrono::milliseconds Config::get_duration(std::string_view path) const {
    return std::get<std::chrono::milliseconds>(value_of(path, Kind::Duration));
}

std::vector<std::string> Config::get_list(std::string_view path) const {
    const Entry& found = entry(path, Kind::StringList);
    return found.value ? std::get<std::vector<std::string>>(*found.value)
                       : std::vector<std::string>();
}

bool Config::is_set(std::string_view path) const {
    const auto it = entries_.find(path);
    if (it == entries_.end()) {
        throw std::logic_error("config: key '" + std::string(path) + "' is not declared");
    }
    return it->second.value.has_value();
}

std::string Config::origin_of(std::string_view path) const {
    const auto it = entries_.find(path);
    if (it == entries_.end()) {
        throw std::logic_error("config: key '" + std::string(path) + "' is not declared");
    }
    return it->second.origin;
}

std::string Config::dump() const {
    // Sorting by segments keeps each section's keys contiguous, so maps open and close once.
    std::vector<std::pair<std::vector<std::string>, const Entry*>> sorted;
    for (const auto& [path, found] : entries_) sorted.emplace_back(split_path(path), &found);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });

    YAML::Emitter out;
    out << YAML::BeginMap;
    std::vector<std::string> open;
    for (const auto& [segments, found] : sorted) {
        std::size_t common = 0;
        while (common < open.size() && common + 1 < segments.size() &&
               open[common] == segments[common]) {
            ++common;
        }
        for (; open.size() > common; open.pop_back()) out << YAML::EndMap;
        for (; open.size() + 1 < segments.size(); open.push_back(segments[open.size()])) {
            out << YAML::Key << segments[open.size()] << YAML::Value << YAML::BeginMap;
        }
        out << YAML::Key << segments.back() << YAML::Value;
        if (!found->value) {
            out << YAML::Null << YAML::Comment("unset");
            continue;
        }
        const Value& value = *found->value;
        switch (found->kind) {
            case Kind::String:
                out << YAML::DoubleQuoted << std::get<std::string>(value);
                break;
            case Kind::Secret:
                out << YAML::DoubleQuoted << "<redacted>";
                break;
            case Kind::Int:
                out << std::get<std::int64_t>(value);
                break;
            case Kind::Double:
                out << format_double(std::get<double>(value));
                break;
            case Kind::Bool:
                out << std::get<bool>(value);
                break;
            case Kind::Duration:
                out << format_duration(std::get<std::chrono::milliseconds>(value));
                break;
            case Kind::StringList:
                out << YAML::Flow << YAML::BeginSeq;
                for (const auto& item : std::get<std::vector<std::string>>(value)) {
                    out << YAML::DoubleQuoted << item;
                }
                out << YAML::EndSeq;
                break;
        }
        out << YAML::Comment(found->origin);
    }
    for (; !open.empty(); open.pop_back()) out << YAML::EndMap;
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
}

}  // namespace aether::platform::config
