// Parsing and validating the gateway's declarative configuration; see gateway_config.h.
#include "services/gateway/gateway_config.h"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>
#include <utility>

namespace aether::services::gateway {
namespace {

constexpr std::size_t kMaxFileBytes = 4u << 20;
// Every YAML node the parser looks at, counting each use of an alias again, so a file of
// nested aliases ("billion laughs") cannot make validation run for ever.
constexpr std::size_t kMaxNodes = 200'000;
// Past this many problems the rest are summarised: the first ones are what to fix.
constexpr std::size_t kMaxErrors = 100;
constexpr std::int64_t kMaxTimeoutMs = 2'147'483'646;  // Kong's bound for service timeouts

constexpr std::array<std::string_view, kHttpMethodCount> kMethodNames = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"};

// ---------------------------------------------------------------------------------------------
// Text helpers

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// RFC 9110 token characters: what a header name is made of.
bool is_token(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0) continue;
        if (std::strchr("!#$%&'*+-.^_`|~", c) == nullptr || c == '\0') return false;
    }
    return true;
}

bool is_entity_name(std::string_view text) {
    if (text.empty()) return false;
    return std::all_of(text.begin(), text.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' ||
               c == '_' || c == '~';
    });
}

bool is_module_name(std::string_view text) {
    if (text.empty() || std::islower(static_cast<unsigned char>(text.front())) == 0) return false;
    return std::all_of(text.begin(), text.end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) != 0 ||
               std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
    });
}

// Letters, digits, '-', '_' in dot-separated labels of 1..63 characters, 253 at most in all.
bool is_hostname(std::string_view text) {
    if (text.empty() || text.size() > 253) return false;
    std::size_t label = 0;
    for (char c : text) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') return false;
        if (++label > 63) return false;
    }
    return label != 0;
}

// Printable ASCII without spaces: what a path or URL may hold as written in the file.
bool is_visible_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
    });
}

std::optional<std::int64_t> parse_int(std::string_view text) {
    text = trim(text);
    if (!text.empty() && text.front() == '+') text.remove_prefix(1);
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<double> parse_number(std::string_view text) {
    text = trim(text);
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
        !std::isfinite(value)) {
        return std::nullopt;
    }
    return value;
}

std::optional<bool> parse_bool(std::string_view text) {
    const std::string word = lower(trim(text));
    if (word == "true") return true;
    if (word == "false") return false;
    return std::nullopt;
}

std::string format_number(double value) {
    char buffer[64];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, result.ptr);
}

// `"value"` shortened and with control characters replaced, for echoing non-secret input.
std::string echo_value(std::string_view text) {
    constexpr std::size_t kMaxEchoed = 60;
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (i == kMaxEchoed) {
            out += "...";
            break;
        }
        const char c = text[i];
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            out += '?';
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string joined(std::initializer_list<std::string_view> words, std::string_view separator) {
    std::string out;
    for (std::string_view word : words) {
        if (!out.empty()) out += separator;
        out += word;
    }
    return out;
}

// Edits (insert, delete, replace, swap of neighbours) from a to b: "retires" is one from
// "retries".
std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t width = b.size() + 1;
    std::vector<std::size_t> d((a.size() + 1) * width);
    for (std::size_t i = 0; i <= a.size(); ++i) d[i * width] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            std::size_t best = std::min({d[(i - 1) * width + j] + 1, d[i * width + j - 1] + 1,
                                         d[(i - 1) * width + j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                best = std::min(best, d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    return d[a.size() * width + b.size()];
}

std::string form_of(const YAML::Node& node) {
    if (node.IsMap()) return "a mapping";
    if (node.IsSequence()) return "a list";
    if (node.IsNull()) return "empty";
    return "a single value";
}

std::string child(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string item(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

// ---------------------------------------------------------------------------------------------
// Collecting errors while walking the YAML

class Context {
  public:
    explicit Context(std::string source) : source_(std::move(source)) {}

    std::string origin(const YAML::Mark& mark) const {
        if (mark.line < 0) return source_;
        return source_ + ":" + std::to_string(mark.line + 1);
    }
    void error(const YAML::Mark& mark, std::string path, std::string message) {
        if (errors_.size() == kMaxErrors) {
            errors_.push_back({source_, "", "more problems follow; fix these first"});
        }
        if (errors_.size() > kMaxErrors) return;
        errors_.push_back({origin(mark), std::move(path), std::move(message)});
    }
    // Counts `count` more nodes; false (reported once) when the file is past the budget.
    bool spend(std::size_t count, const YAML::Mark& mark) {
        nodes_ += count;
        if (nodes_ <= kMaxNodes) return true;
        if (!exhausted_) {
            exhausted_ = true;
            error(mark, "",
                  "the file is too large: more than " + std::to_string(kMaxNodes) +
                      " YAML nodes (counting every use of an alias)");
        }
        return false;
    }
    bool exhausted() const { return exhausted_; }
    std::vector<GatewayConfigError>& errors() { return errors_; }
    const std::string& source() const { return source_; }

  private:
    std::string source_;
    std::vector<GatewayConfigError> errors_;
    std::size_t nodes_ = 0;
    bool exhausted_ = false;
};

struct ScalarItem {
    std::string text;
    YAML::Mark mark;
    std::string path;
};

struct NodeItem {
    YAML::Node node;
    std::string path;
};

// Reads one YAML mapping with known keys: each typed getter validates and reports, and
// finish() reports every key nobody asked for.
class MapReader {
  public:
    // `node` is a mapping, or null/absent (every key then takes its default). Anything else is
    // reported here and read as empty. `mark` is where the mapping is named (its key, or its
    // list item), the line of problems about the mapping as a whole.
    MapReader(Context& ctx, const YAML::Node& node, std::string path, const YAML::Mark& mark)
        : ctx_(ctx), path_(std::move(path)), mark_(mark.line >= 0 ? mark : node.Mark()) {
        if (!node.IsDefined() || node.IsNull()) return;
        if (!node.IsMap()) {
            ctx_.error(mark_, path_, "must be a mapping of keys, not " + form_of(node));
            return;
        }
        if (!ctx_.spend(node.size() + 1, mark_)) return;
        for (const auto& entry : node) {
            const YAML::Node& key = entry.first;
            if (!key.IsScalar()) {
                ctx_.error(key.Mark(), path_, "keys must be plain names, not " + form_of(key));
                continue;
            }
            const std::string name = key.Scalar();
            const auto first = std::find_if(fields_.begin(), fields_.end(),
                                            [&](const Field& f) { return f.key == name; });
            if (first != fields_.end()) {
                ctx_.error(key.Mark(), child(path_, name),
                           "duplicate key (first on line " +
                               std::to_string(first->key_node.Mark().line + 1) + ")");
                continue;
            }
            fields_.push_back({name, key, entry.second, false});
        }
    }
    MapReader(const MapReader&) = delete;
    MapReader& operator=(const MapReader&) = delete;

    Context& context() { return ctx_; }
    const std::string& path() const { return path_; }
    const YAML::Mark& mark() const { return mark_; }
    std::string at(std::string_view key) const { return child(path_, key); }

    // The mark of `key` when the file has it, else of this mapping.
    YAML::Mark mark_of(std::string_view key) const {
        const Field* field = find(key);
        return field != nullptr ? field->key_node.Mark() : mark_;
    }
    void error(std::string_view key, std::string message) {
        ctx_.error(mark_of(key), at(key), std::move(message));
    }
    void error_here(std::string message) { ctx_.error(mark_, path_, std::move(message)); }

    // True when `key` is present with a non-null value (does not count as reading it).
    bool has(std::string_view key) {
        known_.emplace_back(key);
        const Field* field = find(key);
        return field != nullptr && !field->value.IsNull();
    }

    // The value of `key`, or nullptr when absent or null; marks the key as read.
    const YAML::Node* value(std::string_view key) {
        known_.emplace_back(key);
        Field* field = find(key);
        if (field == nullptr) return nullptr;
        field->read = true;
        if (field->value.IsNull()) return nullptr;
        return &field->value;
    }

    std::optional<std::string> string(std::string_view key, bool required = false) {
        const YAML::Node* node = value(key);
        if (node == nullptr) {
            if (required) error(key, "is required");
            return std::nullopt;
        }
        if (!node->IsScalar()) {
            error(key, "must be a single value, not " + form_of(*node));
            return std::nullopt;
        }
        return node->Scalar();
    }

    // A non-empty string; "" is reported as "must not be empty".
    std::optional<std::string> text(std::string_view key, bool required = false) {
        auto got = string(key, required);
        if (got && got->empty()) {
            error(key, "must not be empty");
            return std::nullopt;
        }
        return got;
    }

    std::optional<std::int64_t> integer(std::string_view key, std::int64_t lo, std::int64_t hi) {
        auto raw = string(key);
        if (!raw) return std::nullopt;
        auto parsed = parse_int(*raw);
        if (!parsed || *parsed < lo || *parsed > hi) {
            error(key, "must be an integer between " + std::to_string(lo) + " and " +
                           std::to_string(hi) + " (got " + echo_value(*raw) + ")");
            return std::nullopt;
        }
        return parsed;
    }

    std::optional<double> number(std::string_view key, double lo, double hi) {
        auto raw = string(key);
        if (!raw) return std::nullopt;
        auto parsed = parse_number(*raw);
        if (!parsed || *parsed < lo || *parsed > hi) {
            error(key, "must be a number between " + format_number(lo) + " and " +
                           format_number(hi) + " (got " + echo_value(*raw) + ")");
            return std::nullopt;
        }
        return parsed;
    }

    void boolean(std::string_view key, bool& out) {
        auto raw = string(key);
        if (!raw) return;
        auto parsed = parse_bool(*raw);
        if (!parsed) {
            error(key, "must be true or false (got " + echo_value(*raw) + ")");
            return;
        }
        out = *parsed;
    }

    void integer_into(std::string_view key, int& out, std::int64_t lo, std::int64_t hi) {
        if (auto got = integer(key, lo, hi)) out = static_cast<int>(*got);
    }

    void millis(std::string_view key, std::chrono::milliseconds& out, std::int64_t lo,
                std::int64_t hi) {
        if (auto got = integer(key, lo, hi)) out = std::chrono::milliseconds(*got);
    }

    // Seconds (fractions allowed) as Kong's healthcheck fields take them.
    void seconds(std::string_view key, std::chrono::milliseconds& out, double hi) {
        if (auto got = number(key, 0, hi)) {
            out = std::chrono::milliseconds(std::llround(*got * 1000.0));
        }
    }

    // One of `allowed` (exact); `refused` gives a tailored message for known but unsupported
    // values. Returns the index into `allowed`.
    std::optional<std::size_t> one_of(
        std::string_view key, std::initializer_list<std::string_view> allowed,
        std::initializer_list<std::pair<std::string_view, std::string_view>> refused = {}) {
        auto raw = string(key);
        if (!raw) return std::nullopt;
        std::size_t index = 0;
        for (std::string_view candidate : allowed) {
            if (*raw == candidate) return index;
            ++index;
        }
        for (const auto& [word, message] : refused) {
            if (*raw == word) {
                error(key, std::string(message));
                return std::nullopt;
            }
        }
        error(key, "must be one of " + joined(allowed, ", ") + " (got " + echo_value(*raw) + ")");
        return std::nullopt;
    }

    // A list of single values; nullopt when absent, null or malformed (reported).
    std::optional<std::vector<ScalarItem>> scalars(std::string_view key) {
        const YAML::Node* node = value(key);
        if (node == nullptr) return std::nullopt;
        if (!node->IsSequence()) {
            error(key, "must be a list such as [a, b], not " + form_of(*node));
            return std::nullopt;
        }
        if (!ctx_.spend(node->size(), mark_of(key))) return std::nullopt;
        std::vector<ScalarItem> items;
        bool ok = true;
        std::size_t index = 0;
        for (const auto& element : *node) {
            const std::string element_path = item(at(key), index++);
            const YAML::Mark mark = element.Mark().line >= 0 ? element.Mark() : mark_of(key);
            if (!element.IsScalar()) {
                ctx_.error(mark, element_path, "must be a single value, not " + form_of(element));
                ok = false;
                continue;
            }
            items.push_back({element.Scalar(), mark, element_path});
        }
        if (!ok) return std::nullopt;
        return items;
    }

    // A list of mappings (each checked by the caller's MapReader); nullopt when absent or null.
    std::optional<std::vector<NodeItem>> entries(std::string_view key) {
        const YAML::Node* node = value(key);
        if (node == nullptr) return std::nullopt;
        if (!node->IsSequence()) {
            error(key, "must be a list (each item starting with -), not " + form_of(*node));
            return std::nullopt;
        }
        if (!ctx_.spend(node->size(), mark_of(key))) return std::nullopt;
        std::vector<NodeItem> items;
        std::size_t index = 0;
        for (const auto& element : *node) {
            const std::string element_path = item(at(key), index++);
            if (!element.IsMap()) {
                const YAML::Mark mark = element.Mark().line >= 0 ? element.Mark() : mark_of(key);
                ctx_.error(mark, element_path,
                           "must be a mapping of keys, not " + form_of(element));
                continue;
            }
            items.push_back({element, element_path});
        }
        return items;
    }

    // Reports every key that was neither read nor listed in `ignored`.
    void finish(std::initializer_list<std::string_view> ignored = {}) {
        for (const Field& field : fields_) {
            if (field.read) continue;
            if (std::find(ignored.begin(), ignored.end(), field.key) != ignored.end()) continue;
            std::string message = "unknown key";
            if (auto guess = suggestion(field.key)) message += " (did you mean " + *guess + "?)";
            ctx_.error(field.key_node.Mark(), at(field.key), std::move(message));
        }
    }

  private:
    struct Field {
        std::string key;
        YAML::Node key_node;
        YAML::Node value;
        bool read = false;
    };

    const Field* find(std::string_view key) const {
        for (const Field& field : fields_) {
            if (field.key == key) return &field;
        }
        return nullptr;
    }
    Field* find(std::string_view key) {
        for (Field& field : fields_) {
            if (field.key == key) return &field;
        }
        return nullptr;
    }

    std::optional<std::string> suggestion(std::string_view wrong) const {
        const std::size_t limit = std::clamp<std::size_t>(wrong.size() / 4, 1, 3);
        std::optional<std::string> best;
        std::size_t best_distance = limit + 1;
        for (const std::string& candidate : known_) {
            const std::size_t distance = edit_distance(wrong, candidate);
            if (distance < best_distance) {
                best_distance = distance;
                best = candidate;
            }
        }
        return best;
    }

    Context& ctx_;
    std::string path_;
    YAML::Mark mark_;
    std::vector<Field> fields_;
    std::vector<std::string> known_;
};

// ---------------------------------------------------------------------------------------------
// Addresses and URLs

struct HostPort {
    std::string host;
    std::optional<std::uint16_t> port;
};

// "host", "host:port", "[v6]" or "[v6]:port"; the reason when malformed.
Expected<HostPort, std::string> parse_host_port(std::string_view text) {
    HostPort out;
    std::string_view rest;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos)
            return platform::unexpected("has an unclosed [ in its host");
        if (!IpAddress::parse(text.substr(1, close - 1)) ||
            IpAddress::parse(text.substr(1, close - 1))->is_v4()) {
            return platform::unexpected("has a bracketed host that is not an IPv6 address");
        }
        out.host = lower(text.substr(0, close + 1));
        rest = text.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') return platform::unexpected("has text after ]");
    } else {
        const auto colon = text.find(':');
        if (colon != std::string_view::npos &&
            text.find(':', colon + 1) != std::string_view::npos) {
            return platform::unexpected("must put an IPv6 address in brackets, as [::1]:8000");
        }
        const std::string_view host = text.substr(0, colon);
        if (host.empty()) return platform::unexpected("has no host");
        if (!is_hostname(host)) {
            return platform::unexpected("has an invalid host name " + echo_value(host) +
                                        " (letters, digits, - and _ in dot-separated labels)");
        }
        out.host = lower(host);
        rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    }
    if (!rest.empty()) {
        auto port = parse_int(rest.substr(1));
        if (rest.size() < 2 || !port || *port < 1 || *port > 65535 ||
            rest.find_first_not_of("0123456789", 1) != std::string_view::npos) {
            return platform::unexpected("has an invalid port: must be between 1 and 65535");
        }
        out.port = static_cast<std::uint16_t>(*port);
    }
    return out;
}

std::uint16_t default_port(std::string_view scheme) {
    return scheme == "https" ? 443 : 80;
}

// http(s)://host[:port][/path], no credentials, query or fragment; the reason when malformed.
Expected<Endpoint, std::string> parse_url(std::string_view text) {
    const auto separator = text.find("://");
    if (separator == std::string_view::npos) {
        return platform::unexpected(
            std::string("must be an http:// or https:// URL such as http://tasks:8000"));
    }
    Endpoint out;
    out.scheme = lower(text.substr(0, separator));
    if (out.scheme != "http" && out.scheme != "https") {
        return platform::unexpected("must use http or https, not " + echo_value(out.scheme));
    }
    const std::string_view rest = text.substr(separator + 3);
    if (!is_visible_ascii(rest))
        return platform::unexpected(std::string("must not contain spaces or control characters"));
    if (rest.find_first_of("?#") != std::string_view::npos) {
        return platform::unexpected(std::string("must not have a query string or fragment"));
    }
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    if (authority.find('@') != std::string_view::npos) {
        return platform::unexpected(std::string("must not contain credentials (user:password@)"));
    }
    auto host_port = parse_host_port(authority);
    if (!host_port) return platform::unexpected(std::move(host_port).error());
    out.host = std::move(host_port->host);
    out.port = host_port->port.value_or(default_port(out.scheme));
    if (slash != std::string_view::npos) out.path = std::string(rest.substr(slash));
    return out;
}

bool valid_path(std::string_view path) {
    return !path.empty() && path.front() == '/' && is_visible_ascii(path) &&
           path.find_first_of("?#") == std::string_view::npos;
}

// A route host: a host name with an optional leading "*." or trailing ".*" and an optional port.
bool valid_route_host(std::string_view text) {
    std::string_view host = text;
    if (!host.empty() && host.front() != '[') {
        const auto colon = host.rfind(':');
        if (colon != std::string_view::npos) {
            const std::string_view port = host.substr(colon + 1);
            auto number = parse_int(port);
            if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos ||
                !number || *number < 1 || *number > 65535) {
                return false;
            }
            host = host.substr(0, colon);
        }
    }
    const bool leading = host.starts_with("*.");
    const bool trailing = host.ends_with(".*");
    if (leading && trailing) return false;
    if (leading) host.remove_prefix(2);
    if (trailing) host.remove_suffix(2);
    return is_hostname(host);
}

// "https://app.example.com" or "http://localhost:3000": an origin as browsers send it.
bool valid_origin(std::string_view text) {
    auto url = parse_url(text);
    return url && url->path.empty() && text.back() != '/';
}

bool looks_like_pem_public_key(std::string_view text) {
    text = trim(text);
    return (text.starts_with("-----BEGIN PUBLIC KEY-----") ||
            text.starts_with("-----BEGIN RSA PUBLIC KEY-----")) &&
           text.find("-----END ") != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Plugins

void read_header_names(MapReader& r, std::string_view key, std::vector<std::string>& out) {
    auto items = r.scalars(key);
    if (!items) return;
    out.clear();
    for (const ScalarItem& it : *items) {
        if (!is_token(it.text)) {
            r.context().error(it.mark, it.path, "must be a header name (letters, digits, -)");
            continue;
        }
        out.push_back(it.text);
    }
}

void read_methods(MapReader& r, std::string_view key, std::vector<std::string>& out) {
    auto items = r.scalars(key);
    if (!items) return;
    out.clear();
    for (const ScalarItem& it : *items) {
        if (parse_http_method(it.text)) {
            out.push_back(it.text);
        } else if (parse_http_method(upper(it.text))) {
            r.context().error(it.mark, it.path, "must be upper case: " + upper(it.text));
        } else {
            r.context().error(it.mark, it.path,
                              "must be an HTTP method (GET, HEAD, POST, PUT, DELETE, PATCH, "
                              "OPTIONS, TRACE, CONNECT), not " +
                                  echo_value(it.text));
        }
    }
}

JwtPluginConfig parse_jwt(MapReader& r) {
    JwtPluginConfig out;
    if (auto claim = r.text("key_claim_name")) out.key_claim_name = *claim;
    if (auto claims = r.scalars("claims_to_verify")) {
        out.claims_to_verify.clear();
        for (const ScalarItem& it : *claims) {
            if (it.text != "exp" && it.text != "nbf") {
                r.context().error(it.mark, it.path,
                                  "must be exp or nbf (got " + echo_value(it.text) + ")");
            } else if (std::find(out.claims_to_verify.begin(), out.claims_to_verify.end(),
                                 it.text) == out.claims_to_verify.end()) {
                out.claims_to_verify.push_back(it.text);
            }
        }
    }
    if (auto max = r.integer("maximum_expiration", 0, 31'536'000)) {
        out.maximum_expiration = *max;
        if (*max > 0 && std::find(out.claims_to_verify.begin(), out.claims_to_verify.end(),
                                  "exp") == out.claims_to_verify.end()) {
            r.error("maximum_expiration", "requires exp in claims_to_verify");
        }
    }
    read_header_names(r, "header_names", out.header_names);
    read_header_names(r, "cookie_names", out.cookie_names);
    if (auto params = r.scalars("uri_param_names"); params && !params->empty()) {
        r.error("uri_param_names",
                "must be empty: tokens in the query string are refused (they end up in access "
                "logs, browser history and Referer headers); send them in the Authorization "
                "header");
    }
    if (out.header_names.empty() && out.cookie_names.empty()) {
        r.error("header_names",
                "must not be empty when cookie_names is: the token could not "
                "be read from anywhere");
    }
    r.boolean("secret_is_base64", out.secret_is_base64);
    r.boolean("run_on_preflight", out.run_on_preflight);
    if (r.value("anonymous") != nullptr) {
        r.error("anonymous", "anonymous consumers are not supported: leave it unset");
    }
    if (auto url = r.text("jwks_url")) {
        if (auto parsed = parse_url(*url); !parsed) {
            r.error("jwks_url", std::move(parsed).error());
        } else {
            out.jwks_url = *url;
        }
    }
    if (auto type = r.one_of("token_type", {"access", "any"})) {
        out.token_type = *type == 0 ? "access" : "any";
    }
    return out;
}

RateLimitingPluginConfig parse_rate_limiting(MapReader& r) {
    using Config = RateLimitingPluginConfig;
    Config out;
    constexpr std::array<RateLimitPeriod, 6> kPeriods = {
        RateLimitPeriod::Second, RateLimitPeriod::Minute, RateLimitPeriod::Hour,
        RateLimitPeriod::Day,    RateLimitPeriod::Month,  RateLimitPeriod::Year};
    for (RateLimitPeriod period : kPeriods) {
        const std::string_view key = rate_limit_period_name(period);
        auto limit = r.integer(key, 1, std::numeric_limits<std::int32_t>::max());
        if (!limit) continue;
        if (!out.limits.empty() && *limit < out.limits.back().limit) {
            r.error(key, "must not be lower than the limit for " +
                             std::string(rate_limit_period_name(out.limits.back().period)) + " (" +
                             std::to_string(*limit) + " < " +
                             std::to_string(out.limits.back().limit) + ")");
        }
        out.limits.push_back({period, *limit});
    }
    bool any_limit_key = false;
    for (RateLimitPeriod period : kPeriods) any_limit_key |= r.has(rate_limit_period_name(period));
    if (!any_limit_key) {
        r.error_here("needs at least one limit: second, minute, hour, day, month or year");
    }
    if (auto by =
            r.one_of("limit_by", {"consumer", "credential", "ip", "service", "header", "path"})) {
        out.limit_by = static_cast<Config::LimitBy>(*by);
    }
    auto header = r.text("header_name");
    if (header && !is_token(*header)) {
        r.error("header_name", "must be a header name (letters, digits, -)");
    } else if (header) {
        out.header_name = *header;
    }
    if (out.limit_by == Config::LimitBy::Header && !header && !r.has("header_name")) {
        r.error("header_name", "is required when limit_by is header");
    }
    auto path = r.text("path");
    if (path && !valid_path(*path)) {
        r.error("path", "must start with /");
    } else if (path) {
        out.path = *path;
    }
    if (out.limit_by == Config::LimitBy::Path && !path && !r.has("path")) {
        r.error("path", "is required when limit_by is path");
    }
    if (auto policy = r.one_of("policy", {"local", "redis"},
                               {{"cluster",
                                 "cluster is not supported, use redis (counters shared through "
                                 "Redis) or local"}})) {
        out.policy = static_cast<Config::Policy>(*policy);
    }
    r.boolean("fault_tolerant", out.fault_tolerant);
    r.boolean("hide_client_headers", out.hide_client_headers);
    r.integer_into("error_code", out.error_code, 400, 599);
    if (auto message = r.string("error_message")) out.error_message = *message;
    if (auto host = r.text("redis_host")) {
        if (!parse_host_port(*host) || parse_host_port(*host)->port) {
            r.error("redis_host", "must be a host name or address without a port (see redis_port)");
        } else {
            out.redis_host = *host;
        }
    }
    if (auto port = r.integer("redis_port", 1, 65535))
        out.redis_port = static_cast<std::uint16_t>(*port);
    if (auto user = r.string("redis_username")) out.redis_username = *user;
    // The password is a secret: read as text and never echoed, whatever its form.
    if (const YAML::Node* password = r.value("redis_password")) {
        if (!password->IsScalar()) {
            r.error("redis_password", "must be a single value");
        } else {
            out.redis_password = password->Scalar();
        }
    }
    r.integer_into("redis_database", out.redis_database, 0, 1'000'000);
    r.millis("redis_timeout", out.redis_timeout, 1, kMaxTimeoutMs);
    r.boolean("redis_ssl", out.redis_ssl);
    r.boolean("redis_ssl_verify", out.redis_ssl_verify);
    if (auto name = r.string("redis_server_name")) out.redis_server_name = *name;
    if (auto sync = r.string("sync_rate"); sync && parse_number(*sync) != -1.0) {
        r.error("sync_rate", "only synchronous counters are supported: leave it unset or -1");
    }
    return out;
}

CorsPluginConfig parse_cors(MapReader& r) {
    CorsPluginConfig out;
    std::size_t star_index = 0;
    bool star = false;
    auto origins = r.scalars("origins");
    if (origins) {
        std::size_t index = 0;
        for (const ScalarItem& it : *origins) {
            if (it.text == "*") {
                star = true;
                star_index = index;
                out.origins.push_back(it.text);
            } else if (valid_origin(it.text)) {
                out.origins.push_back(lower(it.text));
            } else {
                r.context().error(it.mark, it.path,
                                  "must be \"*\" or an origin such as https://app.example.com "
                                  "(scheme, host and optional port; no path; regular "
                                  "expressions are not supported)");
            }
            ++index;
        }
    }
    if (!r.has("origins") || (origins && origins->empty())) {
        r.error("origins", "must list at least one origin (\"*\" allows any, without credentials)");
    }
    read_methods(r, "methods", out.methods);
    read_header_names(r, "headers", out.headers);
    read_header_names(r, "exposed_headers", out.exposed_headers);
    r.boolean("credentials", out.credentials);
    if (auto age = r.integer("max_age", 0, std::numeric_limits<std::int32_t>::max())) {
        out.max_age = *age;
    }
    r.boolean("preflight_continue", out.preflight_continue);
    if (star && out.credentials) {
        r.error("credentials", "must not be true while origins contains \"*\" (origins[" +
                                   std::to_string(star_index) +
                                   "]): browsers reject the pair, and it would let any site make "
                                   "credentialed calls; list the allowed origins instead");
    }
    return out;
}

CorrelationIdPluginConfig parse_correlation_id(MapReader& r) {
    CorrelationIdPluginConfig out;
    if (auto name = r.text("header_name")) {
        if (!is_token(*name)) {
            r.error("header_name", "must be a header name (letters, digits, -)");
        } else {
            out.header_name = *name;
        }
    }
    if (auto generator = r.one_of("generator", {"uuid", "uuid#counter", "tracker"})) {
        out.generator = static_cast<CorrelationIdPluginConfig::Generator>(*generator);
    }
    r.boolean("echo_downstream", out.echo_downstream);
    return out;
}

PrometheusPluginConfig parse_prometheus(MapReader& r) {
    PrometheusPluginConfig out;
    r.boolean("per_consumer", out.per_consumer);
    r.boolean("status_code_metrics", out.status_code_metrics);
    r.boolean("latency_metrics", out.latency_metrics);
    r.boolean("bandwidth_metrics", out.bandwidth_metrics);
    r.boolean("upstream_health_metrics", out.upstream_health_metrics);
    return out;
}

// Returns whether the list was given with at least one item (valid or not).
bool read_cidrs(MapReader& r, std::string_view key, std::vector<Cidr>& out) {
    const bool given = r.has(key);
    auto items = r.scalars(key);
    if (!items) return given;
    for (const ScalarItem& it : *items) {
        if (auto cidr = Cidr::parse(trim(it.text))) {
            out.push_back(*cidr);
        } else {
            r.context().error(it.mark, it.path,
                              "must be an IPv4 or IPv6 address or CIDR block such as 10.0.0.0/8 "
                              "or 2001:db8::/32 (got " +
                                  echo_value(it.text) + ")");
        }
    }
    return !items->empty();
}

IpRestrictionPluginConfig parse_ip_restriction(MapReader& r) {
    IpRestrictionPluginConfig out;
    const bool allow = read_cidrs(r, "allow", out.allow);
    const bool deny = read_cidrs(r, "deny", out.deny);
    if (!allow && !deny) r.error_here("needs allow or deny: a list of addresses or CIDR blocks");
    r.integer_into("status", out.status, 100, 599);
    if (auto message = r.string("message")) out.message = *message;
    return out;
}

RequestSizeLimitingPluginConfig parse_request_size_limiting(MapReader& r) {
    using Config = RequestSizeLimitingPluginConfig;
    Config out;
    if (auto size =
            r.integer("allowed_payload_size", 0, std::numeric_limits<std::int32_t>::max())) {
        out.allowed_payload_size = *size;
    }
    if (auto unit = r.one_of("size_unit", {"megabytes", "kilobytes", "bytes"})) {
        out.size_unit = static_cast<Config::SizeUnit>(*unit);
    }
    r.boolean("require_content_length", out.require_content_length);
    const unsigned shift = out.size_unit == Config::SizeUnit::Megabytes   ? 20
                           : out.size_unit == Config::SizeUnit::Kilobytes ? 10
                                                                          : 0;
    out.limit_bytes = static_cast<std::uint64_t>(out.allowed_payload_size) << shift;
    return out;
}

struct PluginInfo {
    std::string_view name;
    int priority;
};

// Kong 3's priorities, highest first.
constexpr std::array<PluginInfo, 7> kPlugins = {{{"correlation-id", 100001},
                                                 {"cors", 2000},
                                                 {"jwt", 1450},
                                                 {"ip-restriction", 990},
                                                 {"request-size-limiting", 951},
                                                 {"rate-limiting", 910},
                                                 {"prometheus", 13}}};

std::optional<PluginConfig> parse_plugin_config(std::string_view name, MapReader& r) {
    if (name == "jwt") return PluginConfig(parse_jwt(r));
    if (name == "rate-limiting") return PluginConfig(parse_rate_limiting(r));
    if (name == "cors") return PluginConfig(parse_cors(r));
    if (name == "correlation-id") return PluginConfig(parse_correlation_id(r));
    if (name == "prometheus") return PluginConfig(parse_prometheus(r));
    if (name == "ip-restriction") return PluginConfig(parse_ip_restriction(r));
    if (name == "request-size-limiting") return PluginConfig(parse_request_size_limiting(r));
    return std::nullopt;
}

std::vector<PluginSpec> parse_plugins(MapReader& owner) {
    Context& ctx = owner.context();
    std::vector<PluginSpec> out;
    auto entries = owner.entries("plugins");
    if (!entries) return out;
    std::map<std::string, int> seen;  // name -> line
    for (const NodeItem& entry : *entries) {
        MapReader r(ctx, entry.node, entry.path, entry.node.Mark());
        PluginSpec spec;
        spec.origin = ctx.origin(entry.node.Mark());
        auto name = r.text("name", true);
        r.boolean("enabled", spec.enabled);
        for (std::string_view scope : {"service", "route", "consumer"}) {
            if (r.value(scope) != nullptr) {
                r.error(scope, std::string(scope) == "consumer"
                                   ? "per-consumer plugins are not supported"
                                   : "plugins are not attached by reference here: nest the plugin "
                                     "under its " +
                                         std::string(scope));
            }
        }
        const YAML::Node* config = r.value("config");
        const YAML::Mark config_mark = r.mark_of("config");
        if (name) {
            spec.name = *name;
            const auto known = std::find_if(kPlugins.begin(), kPlugins.end(),
                                            [&](const PluginInfo& p) { return p.name == *name; });
            if (known == kPlugins.end()) {
                std::string list;
                for (const PluginInfo& p : kPlugins)
                    list += (list.empty() ? "" : ", ") + std::string(p.name);
                r.error("name", "unknown plugin " + echo_value(*name) + " (known: " + list + ")");
            } else {
                const auto [first, inserted] = seen.emplace(*name, r.mark_of("name").line + 1);
                if (!inserted) {
                    r.error("name", "duplicate plugin " + echo_value(*name) +
                                        " in this list (first on line " +
                                        std::to_string(first->second) + ")");
                }
                MapReader c(ctx, config != nullptr ? *config : YAML::Node(), r.at("config"),
                            config_mark);
                if (auto parsed = parse_plugin_config(*name, c)) spec.config = std::move(*parsed);
                c.finish();
            }
        }
        r.finish({"id", "tags", "created_at", "updated_at", "ws_id", "protocols"});
        out.push_back(std::move(spec));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Entities

std::optional<Mirror> parse_mirror(MapReader& owner) {
    const YAML::Node* node = owner.value("mirror");
    if (node == nullptr) return std::nullopt;
    MapReader r(owner.context(), *node, owner.at("mirror"), owner.mark_of("mirror"));
    Mirror out;
    if (auto url = r.text("url", true)) {
        if (auto parsed = parse_url(*url)) {
            out.endpoint = std::move(*parsed);
        } else {
            r.error("url", std::move(parsed).error());
        }
    }
    if (auto percentage = r.number("percentage", 0, 100)) out.percentage = *percentage;
    if (auto compare = r.one_of("compare", {"status", "body", "none"})) {
        out.compare = static_cast<Mirror::Compare>(*compare);
    }
    r.millis("timeout", out.timeout, 1, kMaxTimeoutMs);
    r.finish();
    return out;
}

// Unique names across the file: reports the second use with the line of the first.
class UniqueNames {
  public:
    UniqueNames(Context& ctx, std::string what) : ctx_(ctx), what_(std::move(what)) {}
    void add(MapReader& r, std::string_view key, const std::string& name) {
        if (name.empty()) return;
        const YAML::Mark mark = r.mark_of(key);
        const auto [first, inserted] = seen_.emplace(name, mark.line + 1);
        if (!inserted) {
            ctx_.error(mark, r.at(key),
                       "duplicate " + what_ + " " + echo_value(name) + " (first on line " +
                           std::to_string(first->second) + ")");
        }
    }

  private:
    Context& ctx_;
    std::string what_;
    std::map<std::string, int> seen_;
};

Route parse_route(Context& ctx, const NodeItem& entry, bool strip_path_default,
                  UniqueNames& route_names) {
    MapReader r(ctx, entry.node, entry.path, entry.node.Mark());
    Route out;
    out.origin = ctx.origin(entry.node.Mark());
    out.strip_path = strip_path_default;
    if (auto name = r.text("name")) {
        if (!is_entity_name(*name)) {
            r.error("name", "must contain only letters, digits, and . - _ ~");
        }
        out.name = *name;
        route_names.add(r, "name", out.name);
    }
    if (auto paths = r.scalars("paths")) {
        if (paths->empty()) r.error("paths", "must list at least one path, such as /api/v1/tasks");
        for (const ScalarItem& it : *paths) {
            if (it.text.starts_with("~")) {
                ctx.error(it.mark, it.path, "regex paths are not supported: use a path prefix");
            } else if (it.text.empty() || it.text.front() != '/') {
                ctx.error(it.mark, it.path, "must start with /");
            } else if (!valid_path(it.text)) {
                ctx.error(it.mark, it.path, "must not contain spaces, control characters, ? or #");
            } else if (std::find(out.paths.begin(), out.paths.end(), it.text) != out.paths.end()) {
                ctx.error(it.mark, it.path,
                          "duplicate path " + echo_value(it.text) + " in this route");
            } else {
                out.paths.push_back(it.text);
            }
        }
    } else if (!r.has("paths")) {
        r.error("paths",
                "is required: a route needs at least one path prefix such as /api/v1/tasks");
    }
    std::vector<std::string> methods;
    read_methods(r, "methods", methods);
    for (const std::string& method : methods) out.methods |= method_bit(*parse_http_method(method));
    if (auto hosts = r.scalars("hosts")) {
        for (const ScalarItem& it : *hosts) {
            if (!valid_route_host(it.text)) {
                ctx.error(it.mark, it.path,
                          "must be a host name such as api.example.com, optionally with a port "
                          "(a * is allowed only as the whole first or last label)");
            } else {
                out.hosts.push_back(lower(it.text));
            }
        }
    }
    r.boolean("strip_path", out.strip_path);
    r.boolean("preserve_host", out.preserve_host);
    out.plugins = parse_plugins(r);
    r.finish({"id", "tags", "created_at", "updated_at", "ws_id", "protocols",
              "https_redirect_status_code", "regex_priority", "path_handling", "request_buffering",
              "response_buffering"});
    return out;
}

Service parse_service(Context& ctx, const NodeItem& entry, UniqueNames& service_names,
                      UniqueNames& route_names) {
    MapReader r(ctx, entry.node, entry.path, entry.node.Mark());
    Service out;
    out.origin = ctx.origin(entry.node.Mark());
    if (auto name = r.text("name", true)) {
        if (!is_entity_name(*name)) {
            r.error("name", "must contain only letters, digits, and . - _ ~");
        }
        out.name = *name;
        service_names.add(r, "name", out.name);
    }

    const bool has_url = r.has("url");
    const bool has_fields = r.has("protocol") || r.has("host") || r.has("port") || r.has("path");
    const bool has_module = r.has("module");
    if (has_module && (has_url || has_fields)) {
        r.error("module",
                "a service is either in-process (module) or proxied (url, or protocol/host/port/"
                "path), not both");
    } else if (has_url && has_fields) {
        r.error("url", "give either url or protocol/host/port/path, not both");
    } else if (!has_module && !has_url && !has_fields) {
        r.error_here(
            "needs url (or host) for a proxied service, or module for in-process dispatch");
    }

    if (auto module = r.text("module")) {
        if (!is_module_name(*module)) {
            r.error("module",
                    "must be a module name such as tasks (lower-case letters, digits, "
                    "- and _)");
        }
        out.module = *module;
    }
    if (auto url = r.text("url")) {
        if (auto parsed = parse_url(*url)) {
            out.endpoint = std::move(*parsed);
        } else {
            r.error("url", std::move(parsed).error());
        }
    }
    // Kong's other form: protocol (default http), host, port (default by protocol), path.
    auto protocol = r.one_of("protocol", {"http", "https"},
                             {{"grpc", "grpc services are not supported"},
                              {"grpcs", "grpc services are not supported"},
                              {"tcp", "tcp services are not supported"},
                              {"tls", "tls services are not supported"},
                              {"udp", "udp services are not supported"}});
    auto host = r.text("host");
    auto port = r.integer("port", 1, 65535);
    auto path = r.text("path");
    if (has_fields && !has_url && !has_module) {
        out.endpoint.scheme = protocol.value_or(0) == 0 ? "http" : "https";
        out.endpoint.port =
            port ? static_cast<std::uint16_t>(*port) : default_port(out.endpoint.scheme);
        if (host) {
            auto parsed = parse_host_port(*host);
            if (!parsed) {
                r.error("host", parsed.error());
            } else if (parsed->port) {
                r.error("host", "must not contain a port (see port)");
            } else {
                out.endpoint.host = parsed->host;
            }
        } else if (!r.has("host")) {
            r.error("host", "is required when protocol, port or path is given");
        }
        if (path && !valid_path(*path)) {
            r.error("path", "must start with / and contain no spaces, control characters, ? or #");
        } else if (path) {
            out.endpoint.path = *path;
        }
    }

    r.integer_into("retries", out.retries, 0, 32767);
    r.millis("connect_timeout", out.connect_timeout, 1, kMaxTimeoutMs);
    r.millis("write_timeout", out.write_timeout, 1, kMaxTimeoutMs);
    r.millis("read_timeout", out.read_timeout, 1, kMaxTimeoutMs);
    r.boolean("enabled", out.enabled);
    out.mirror = parse_mirror(r);
    if (auto routes = r.entries("routes")) {
        // In-process modules route on their full base paths, so stripping the prefix would
        // hand them paths they do not know.
        for (const NodeItem& route : *routes) {
            out.routes.push_back(parse_route(ctx, route, !has_module, route_names));
        }
    }
    out.plugins = parse_plugins(r);
    r.finish({"id", "tags", "created_at", "updated_at", "ws_id"});
    return out;
}

std::vector<int> read_statuses(MapReader& r, std::vector<int> defaults) {
    auto items = r.scalars("http_statuses");
    if (!items) return defaults;
    std::vector<int> out;
    for (const ScalarItem& it : *items) {
        auto status = parse_int(it.text);
        if (!status || *status < 100 || *status > 999) {
            r.context().error(it.mark, it.path, "must be an HTTP status between 100 and 999");
            continue;
        }
        out.push_back(static_cast<int>(*status));
    }
    return out;
}

void read_counters(MapReader& owner, std::string_view key, HealthcheckCounters& out, bool active,
                   bool healthy, std::vector<int> statuses) {
    const YAML::Node* node = owner.value(key);
    MapReader r(owner.context(), node != nullptr ? *node : YAML::Node(), owner.at(key),
                owner.mark_of(key));
    if (active) r.seconds("interval", out.interval, 65535);
    out.http_statuses = read_statuses(r, std::move(statuses));
    if (healthy) {
        r.integer_into("successes", out.successes, 0, 255);
    } else {
        r.integer_into("http_failures", out.http_failures, 0, 255);
        r.integer_into("tcp_failures", out.tcp_failures, 0, 255);
        r.integer_into("timeouts", out.timeouts, 0, 255);
    }
    r.finish();
}

std::optional<ActiveHealthcheck::Type> read_check_type(MapReader& r) {
    auto type = r.one_of("type", {"http", "https", "tcp"},
                         {{"grpc", "grpc health checks are not supported"},
                          {"grpcs", "grpc health checks are not supported"}});
    if (!type) return std::nullopt;
    return static_cast<ActiveHealthcheck::Type>(*type);
}

void parse_healthchecks(MapReader& owner, Upstream& out) {
    const YAML::Node* node = owner.value("healthchecks");
    MapReader r(owner.context(), node != nullptr ? *node : YAML::Node(), owner.at("healthchecks"),
                owner.mark_of("healthchecks"));
    if (auto threshold = r.number("threshold", 0, 100)) out.threshold = *threshold;

    const YAML::Node* active_node = r.value("active");
    MapReader a(r.context(), active_node != nullptr ? *active_node : YAML::Node(), r.at("active"),
                r.mark_of("active"));
    ActiveHealthcheck& active = out.active;
    if (auto type = read_check_type(a)) active.type = *type;
    if (auto path = a.text("http_path")) {
        if (!valid_path(*path)) {
            a.error("http_path", "must start with /");
        } else {
            active.http_path = *path;
        }
    }
    a.seconds("timeout", active.timeout, 65535);
    a.integer_into("concurrency", active.concurrency, 1, 2'147'483'648 - 1);
    a.boolean("https_verify_certificate", active.https_verify_certificate);
    if (auto sni = a.string("https_sni")) active.https_sni = *sni;
    read_counters(a, "healthy", active.healthy, true, true, {200, 302});
    read_counters(a, "unhealthy", active.unhealthy, true, false,
                  {429, 404, 500, 501, 502, 503, 504, 505});
    a.finish();

    const YAML::Node* passive_node = r.value("passive");
    MapReader p(r.context(), passive_node != nullptr ? *passive_node : YAML::Node(),
                r.at("passive"), r.mark_of("passive"));
    if (auto type = read_check_type(p)) out.passive.type = *type;
    read_counters(p, "healthy", out.passive.healthy, false, true,
                  {200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305,
                   306, 307, 308});
    read_counters(p, "unhealthy", out.passive.unhealthy, false, false, {429, 500, 503});
    p.finish();
    r.finish();
}

Upstream parse_upstream(Context& ctx, const NodeItem& entry, UniqueNames& names) {
    MapReader r(ctx, entry.node, entry.path, entry.node.Mark());
    Upstream out;
    out.origin = ctx.origin(entry.node.Mark());
    if (auto name = r.text("name", true)) {
        if (!is_hostname(*name)) {
            r.error("name", "must be a host name (services reach the upstream as http://NAME)");
        }
        out.name = lower(*name);
        names.add(r, "name", out.name);
    }
    if (auto algorithm = r.one_of("algorithm", {"round-robin", "least-connections"},
                                  {{"consistent-hashing",
                                    "consistent-hashing is not supported: use "
                                    "round-robin or least-connections"},
                                   {"latency",
                                    "latency is not supported: use round-robin or "
                                    "least-connections"}})) {
        out.algorithm = static_cast<Upstream::Algorithm>(*algorithm);
    }
    for (std::string_view key : {"hash_on", "hash_fallback"}) {
        if (auto hash = r.string(key); hash && *hash != "none") {
            r.error(key, "consistent hashing is not supported: leave it unset or none");
        }
    }
    if (auto header = r.text("host_header")) {
        auto parsed = parse_host_port(*header);
        if (!parsed) {
            r.error("host_header", parsed.error());
        } else {
            out.host_header = lower(*header);
        }
    }
    if (auto targets = r.entries("targets")) {
        std::map<std::string, int> seen;
        for (const NodeItem& target_entry : *targets) {
            MapReader t(ctx, target_entry.node, target_entry.path, target_entry.node.Mark());
            Target target;
            if (auto text = t.text("target", true)) {
                if (auto parsed = parse_host_port(*text)) {
                    target.host = parsed->host;
                    target.port = parsed->port.value_or(8000);
                    const std::string key = target.host + ":" + std::to_string(target.port);
                    const auto [first, inserted] = seen.emplace(key, t.mark_of("target").line + 1);
                    if (!inserted) {
                        t.error("target", "duplicate target " + key + " (first on line " +
                                              std::to_string(first->second) + ")");
                    }
                } else {
                    t.error("target", "must be host:port such as tasks-v2:8000; it " +
                                          std::move(parsed).error());
                }
            }
            t.integer_into("weight", target.weight, 0, 65535);
            t.finish({"id", "tags", "created_at", "updated_at", "ws_id", "upstream"});
            out.targets.push_back(std::move(target));
        }
        if (targets->empty()) {
            r.error("targets", "must list at least one target such as {target: \"tasks:8000\"}");
        } else if (out.targets.size() == targets->size() &&
                   std::all_of(out.targets.begin(), out.targets.end(),
                               [](const Target& t) { return t.weight == 0; })) {
            r.error("targets", "every target has weight 0: the upstream could receive no traffic");
        }
    } else if (!r.has("targets")) {
        r.error("targets",
                "is required: list at least one target such as {target: \"tasks:8000\"}");
    }
    parse_healthchecks(r, out);
    r.finish({"id", "tags", "created_at", "updated_at", "ws_id", "slots", "hash_on_cookie_path"});
    return out;
}

struct AlgorithmInfo {
    std::string_view name;
    std::size_t min_secret;  // 0 for public-key algorithms
};

constexpr std::array<AlgorithmInfo, 9> kJwtAlgorithms = {{{"HS256", 32},
                                                          {"HS384", 48},
                                                          {"HS512", 64},
                                                          {"RS256", 0},
                                                          {"RS384", 0},
                                                          {"RS512", 0},
                                                          {"ES256", 0},
                                                          {"ES384", 0},
                                                          {"ES512", 0}}};

JwtSecret parse_jwt_secret(Context& ctx, const NodeItem& entry, UniqueNames& keys) {
    MapReader r(ctx, entry.node, entry.path, entry.node.Mark());
    JwtSecret out;
    if (auto key = r.text("key", true)) {
        out.key = *key;
        keys.add(r, "key", out.key);
    }
    out.algorithm = "HS256";
    const AlgorithmInfo* algorithm = &kJwtAlgorithms[0];
    if (auto name = r.string("algorithm")) {
        const auto found = std::find_if(kJwtAlgorithms.begin(), kJwtAlgorithms.end(),
                                        [&](const AlgorithmInfo& a) { return a.name == *name; });
        if (found == kJwtAlgorithms.end()) {
            r.error("algorithm",
                    "must be one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, ES512 "
                    "(got " +
                        echo_value(*name) + ")");
            algorithm = nullptr;
        } else {
            algorithm = &*found;
            out.algorithm = std::string(found->name);
        }
    }
    // Secrets are read without echoing them in any message.
    const YAML::Node* secret = r.value("secret");
    if (secret != nullptr && !secret->IsScalar()) {
        r.error("secret", "must be a single value");
    } else if (secret != nullptr) {
        out.secret = secret->Scalar();
    }
    const YAML::Node* key_pem = r.value("rsa_public_key");
    if (key_pem != nullptr && !key_pem->IsScalar()) {
        r.error("rsa_public_key", "must be a single value (a PEM block)");
    } else if (key_pem != nullptr) {
        out.rsa_public_key = key_pem->Scalar();
    }
    if (algorithm != nullptr && algorithm->min_secret > 0) {
        if (out.secret.empty()) {
            r.error("secret", "is required for " + out.algorithm);
        } else if (out.secret.size() < algorithm->min_secret) {
            r.error("secret", "must be at least " + std::to_string(algorithm->min_secret) +
                                  " bytes for " + out.algorithm + " (the size of its hash output)");
        }
        if (!out.rsa_public_key.empty()) {
            r.error("rsa_public_key", "is only for RS* and ES* algorithms, not " + out.algorithm);
        }
    } else if (algorithm != nullptr) {
        if (out.rsa_public_key.empty()) {
            r.error("rsa_public_key", "is required for " + out.algorithm + " (a PEM public key)");
        } else if (!looks_like_pem_public_key(out.rsa_public_key)) {
            r.error("rsa_public_key",
                    "must be a PEM public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC "
                    "KEY-----)");
        }
    }
    r.finish({"id", "tags", "created_at", "updated_at", "ws_id"});
    return out;
}

struct ConsumerNames {
    UniqueNames usernames;
    UniqueNames custom_ids;
    UniqueNames jwt_keys;
};

Consumer parse_consumer(Context& ctx, const NodeItem& entry, ConsumerNames& names) {
    MapReader r(ctx, entry.node, entry.path, entry.node.Mark());
    Consumer out;
    if (auto username = r.text("username")) {
        out.username = *username;
        names.usernames.add(r, "username", out.username);
    }
    if (auto custom_id = r.text("custom_id")) {
        out.custom_id = *custom_id;
        names.custom_ids.add(r, "custom_id", out.custom_id);
    }
    if (!r.has("username") && !r.has("custom_id")) {
        r.error_here("needs username or custom_id");
    }
    if (auto secrets = r.entries("jwt_secrets")) {
        for (const NodeItem& secret : *secrets)
            out.jwt_secrets.push_back(parse_jwt_secret(ctx, secret, names.jwt_keys));
    }
    r.finish({"id", "tags", "created_at", "updated_at", "ws_id"});
    return out;
}

void parse_root(Context& ctx, const YAML::Node& root, GatewayConfig& out) {
    MapReader r(ctx, root, "", root.Mark());
    if (auto version = r.string("_format_version")) {
        if (trim(*version) != "3.0") {
            r.error("_format_version",
                    "must be \"3.0\" (this gateway reads Kong 3.0 declarative files; got " +
                        echo_value(*version) + ")");
        }
    } else if (!r.has("_format_version")) {
        r.error("_format_version",
                "is required: add _format_version: \"3.0\" (a Kong 3.0 declarative file)");
    }
    bool transform = true;
    r.boolean("_transform", transform);
    r.value("_workspace");

    UniqueNames service_names(ctx, "service name");
    UniqueNames route_names(ctx, "route name");
    if (auto services = r.entries("services")) {
        for (const NodeItem& entry : *services) {
            out.services.push_back(parse_service(ctx, entry, service_names, route_names));
        }
    }
    if (r.value("routes") != nullptr) {
        r.error("routes", "top-level routes are not supported: nest each route under its service");
    }
    out.plugins = parse_plugins(r);
    if (auto consumers = r.entries("consumers")) {
        ConsumerNames names{UniqueNames(ctx, "consumer username"),
                            UniqueNames(ctx, "consumer custom_id"),
                            UniqueNames(ctx, "jwt_secrets key")};
        for (const NodeItem& entry : *consumers) {
            out.consumers.push_back(parse_consumer(ctx, entry, names));
        }
    }
    if (auto upstreams = r.entries("upstreams")) {
        UniqueNames names(ctx, "upstream name");
        for (const NodeItem& entry : *upstreams) {
            out.upstreams.push_back(parse_upstream(ctx, entry, names));
        }
    }
    r.finish({"_transform", "_workspace"});

    // A service (or mirror) whose host names an upstream balances over its targets, as in Kong.
    for (Service& service : out.services) {
        if (service.in_process()) continue;
        if (out.find_upstream(service.endpoint.host) != nullptr) {
            service.upstream = service.endpoint.host;
        }
        if (service.mirror && out.find_upstream(service.mirror->endpoint.host) != nullptr) {
            service.mirror->upstream = service.mirror->endpoint.host;
        }
    }
}

// Parser events, all ignored: for counting documents.
class IgnoreEvents final : public YAML::EventHandler {
  public:
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

// 0, 1, or 2 meaning "more than one". Not YAML::LoadAll: in yaml-cpp 0.7 it never returns on
// some malformed input such as ",", piling up empty documents (jbeder/yaml-cpp#1040).
std::size_t count_documents(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    IgnoreEvents events;
    std::size_t count = 0;
    try {
        while (count < 2 && parser.HandleNextDocument(events)) ++count;
    } catch (const YAML::Exception&) {
        // The first document parsed; a broken second one still means "more than one".
        ++count;
    }
    return count;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public helpers

std::string GatewayConfigError::to_string() const {
    std::string out;
    for (const std::string* part : {&origin, &path, &message}) {
        if (part->empty()) continue;
        if (!out.empty()) out += ": ";
        out += *part;
    }
    return out;
}

std::optional<HttpMethod> parse_http_method(std::string_view text) {
    for (std::size_t i = 0; i < kMethodNames.size(); ++i) {
        if (kMethodNames[i] == text) return static_cast<HttpMethod>(i);
    }
    return std::nullopt;
}

std::string_view http_method_name(HttpMethod method) {
    return kMethodNames[static_cast<std::size_t>(method)];
}

std::string method_list(MethodSet methods) {
    std::string out;
    for (std::size_t i = 0; i < kMethodNames.size(); ++i) {
        if ((methods & (1u << i)) == 0) continue;
        if (!out.empty()) out += ", ";
        out += kMethodNames[i];
    }
    return out;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    // inet_pton needs a terminated string; no address is longer than this.
    char buffer[64];
    if (text.empty() || text.size() >= sizeof buffer) return std::nullopt;
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    std::array<std::uint8_t, 16> bytes{};
    if (text.find(':') == std::string_view::npos) {
        std::array<std::uint8_t, 4> v4bytes{};
        if (inet_pton(AF_INET, buffer, v4bytes.data()) != 1) return std::nullopt;
        return v4(v4bytes);
    }
    if (inet_pton(AF_INET6, buffer, bytes.data()) != 1) return std::nullopt;
    return v6(bytes);
}

IpAddress IpAddress::v4(const std::array<std::uint8_t, 4>& bytes) {
    IpAddress out;
    out.bytes_[10] = 0xff;
    out.bytes_[11] = 0xff;
    std::copy(bytes.begin(), bytes.end(), out.bytes_.begin() + 12);
    return out;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16>& bytes) {
    IpAddress out;
    out.bytes_ = bytes;
    return out;
}

bool IpAddress::is_v4() const {
    for (std::size_t i = 0; i < 10; ++i) {
        if (bytes_[i] != 0) return false;
    }
    return bytes_[10] == 0xff && bytes_[11] == 0xff;
}

std::string IpAddress::to_string() const {
    char buffer[INET6_ADDRSTRLEN];
    if (is_v4()) {
        inet_ntop(AF_INET, bytes_.data() + 12, buffer, sizeof buffer);
    } else {
        inet_ntop(AF_INET6, bytes_.data(), buffer, sizeof buffer);
    }
    return buffer;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
    const auto slash = text.find('/');
    auto address = IpAddress::parse(text.substr(0, slash));
    if (!address) return std::nullopt;
    const bool v4_text = text.substr(0, slash).find(':') == std::string_view::npos;
    unsigned prefix = 128;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        auto length = parse_int(digits);
        if (digits.empty() || digits.size() > 3 ||
            digits.find_first_not_of("0123456789") != std::string_view::npos || !length ||
            *length > (v4_text ? 32 : 128)) {
            return std::nullopt;
        }
        prefix = static_cast<unsigned>(*length) + (v4_text ? 96 : 0);
    }
    Cidr out;
    out.prefix_ = prefix;
    // An IPv6 block inside ::ffff:0:0/96 holds IPv4 addresses only.
    out.v4_ = address->is_v4() && prefix >= 96;
    std::array<std::uint8_t, 16> bytes = address->bytes();
    for (unsigned bit = prefix; bit < 128; ++bit) {
        bytes[bit / 8] = static_cast<std::uint8_t>(bytes[bit / 8] & ~(0x80u >> (bit % 8)));
    }
    out.network_ = IpAddress::v6(bytes);
    return out;
}

bool Cidr::contains(const IpAddress& address) const {
    if (address.is_v4() != v4_) return false;
    const auto& a = address.bytes();
    const auto& n = network_.bytes();
    const unsigned whole = prefix_ / 8;
    for (unsigned i = 0; i < whole; ++i) {
        if (a[i] != n[i]) return false;
    }
    const unsigned rest = prefix_ % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xffu << (8 - rest));
    return (a[whole] & mask) == (n[whole] & mask);
}

bool Cidr::contains(std::string_view address) const {
    auto parsed = IpAddress::parse(address);
    return parsed && contains(*parsed);
}

std::string Cidr::to_string() const {
    return network_.to_string() + "/" + std::to_string(prefix_length());
}

std::string_view rate_limit_period_name(RateLimitPeriod period) {
    constexpr std::array<std::string_view, 6> kNames = {"second", "minute", "hour",
                                                        "day",    "month",  "year"};
    return kNames[static_cast<std::size_t>(period)];
}

bool CorsPluginConfig::any_origin() const {
    return std::find(origins.begin(), origins.end(), "*") != origins.end();
}

bool IpRestrictionPluginConfig::allows(const IpAddress& address) const {
    for (const Cidr& block : deny) {
        if (block.contains(address)) return false;
    }
    if (allow.empty()) return true;
    return std::any_of(allow.begin(), allow.end(),
                       [&](const Cidr& block) { return block.contains(address); });
}

const std::vector<std::string_view>& known_plugins() {
    static const std::vector<std::string_view> kNames = [] {
        std::vector<std::string_view> names;
        for (const PluginInfo& plugin : kPlugins) names.push_back(plugin.name);
        return names;
    }();
    return kNames;
}

int plugin_priority(std::string_view name) {
    for (const PluginInfo& plugin : kPlugins) {
        if (plugin.name == name) return plugin.priority;
    }
    return 0;
}

std::string Endpoint::authority() const {
    if (port == default_port(scheme)) return host;
    return host + ":" + std::to_string(port);
}

const Service* GatewayConfig::find_service(std::string_view name) const {
    for (const Service& service : services) {
        if (service.name == name) return &service;
    }
    return nullptr;
}

const Upstream* GatewayConfig::find_upstream(std::string_view name) const {
    for (const Upstream& upstream : upstreams) {
        if (upstream.name == name) return &upstream;
    }
    return nullptr;
}

std::optional<std::pair<const Consumer*, const JwtSecret*>> GatewayConfig::find_jwt_secret(
    std::string_view key) const {
    for (const Consumer& consumer : consumers) {
        for (const JwtSecret& secret : consumer.jwt_secrets) {
            if (secret.key == key) return std::make_pair(&consumer, &secret);
        }
    }
    return std::nullopt;
}

Expected<std::shared_ptr<const GatewayConfig>, std::vector<GatewayConfigError>>
parse_gateway_config(std::string_view yaml_text, const std::string& source_name) {
    Context ctx(source_name);
    if (yaml_text.size() > kMaxFileBytes) {
        ctx.error(YAML::Mark::null_mark(), "",
                  "the file is too large: at most " + std::to_string(kMaxFileBytes >> 20) + " MiB");
        return platform::unexpected(std::move(ctx.errors()));
    }
    const std::string text(yaml_text);
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
        ctx.error(e.mark, "", "invalid YAML: " + e.msg);
        return platform::unexpected(std::move(ctx.errors()));
    }
    if (!root.IsMap()) {
        ctx.error(
            root.Mark(), "",
            "must be a mapping with _format_version: \"3.0\" and services:, not " + form_of(root));
        return platform::unexpected(std::move(ctx.errors()));
    }
    if (count_documents(text) > 1) {
        ctx.error(YAML::Mark::null_mark(), "",
                  "holds more than one YAML document (separated by ---); the configuration is "
                  "one document");
        return platform::unexpected(std::move(ctx.errors()));
    }
    auto config = std::make_shared<GatewayConfig>();
    config->source = source_name;
    try {
        parse_root(ctx, root, *config);
    } catch (const YAML::Exception& e) {
        // yaml-cpp may still throw on a malformed node graph; report it like a syntax error.
        ctx.error(e.mark, "", "invalid YAML: " + e.msg);
    }
    if (!ctx.errors().empty()) return platform::unexpected(std::move(ctx.errors()));
    return std::shared_ptr<const GatewayConfig>(std::move(config));
}

Expected<std::shared_ptr<const GatewayConfig>, std::vector<GatewayConfigError>> load_gateway_config(
    const std::string& path) {
    auto failure = [&](std::string message) {
        return platform::unexpected(
            std::vector<GatewayConfigError>{{path, "", std::move(message)}});
    };
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) {
        return failure("cannot read the gateway configuration: it does not exist");
    }
    if (std::filesystem::is_directory(status)) {
        return failure("cannot read the gateway configuration: it is a directory");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return failure(std::string("cannot read the gateway configuration: ") +
                       std::strerror(errno));
    }
    std::string text;
    char buffer[16384];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (text.size() > kMaxFileBytes) {
            return failure("the file is too large: at most " + std::to_string(kMaxFileBytes >> 20) +
                           " MiB");
        }
    }
    if (in.bad()) {
        return failure(std::string("cannot read the gateway configuration: ") +
                       std::strerror(errno));
    }
    return parse_gateway_config(text, path);
}

}  // namespace aether::services::gateway
