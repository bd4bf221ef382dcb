// CloudEvents envelopes (creation, structured-mode JSON, strict parsing) and topic matching.
#include "platform/bus/bus.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <system_error>

#include "platform/auth/tokens.h"
#include "platform/json/arena.h"
#include "platform/telemetry/clock.h"

namespace aether::platform::bus {

namespace json = boost::json;

namespace {

constexpr std::string_view kSpecVersion = "1.0";
constexpr std::string_view kContentType = "application/json";

bool digits(std::string_view text, std::size_t from, std::size_t count) {
    if (from + count > text.size()) return false;
    for (std::size_t i = from; i < from + count; ++i) {
        if (std::isdigit(static_cast<unsigned char>(text[i])) == 0) return false;
    }
    return true;
}

// RFC 3339 date-time syntax: "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)", with field ranges checked.
// Producers other than ours (a client on RabbitMQ) may use another precision or offset.
bool is_rfc3339(std::string_view text) {
    if (!digits(text, 0, 4) || text.size() < 20 || text[4] != '-' || !digits(text, 5, 2) ||
        text[7] != '-' || !digits(text, 8, 2) || (text[10] != 'T' && text[10] != 't') ||
        !digits(text, 11, 2) || text[13] != ':' || !digits(text, 14, 2) || text[16] != ':' ||
        !digits(text, 17, 2)) {
        return false;
    }
    auto number = [&](std::size_t at) { return (text[at] - '0') * 10 + (text[at + 1] - '0'); };
    if (number(5) < 1 || number(5) > 12 || number(8) < 1 || number(8) > 31 || number(11) > 23 ||
        number(14) > 59 || number(17) > 60) {
        return false;
    }
    std::size_t at = 19;
    if (text[at] == '.') {
        ++at;
        std::size_t start = at;
        while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])) != 0) ++at;
        if (at == start) return false;
    }
    if (at >= text.size()) return false;
    if (text[at] == 'Z' || text[at] == 'z') return at + 1 == text.size();
    if (text[at] != '+' && text[at] != '-') return false;
    return at + 6 == text.size() && digits(text, at + 1, 2) && text[at + 3] == ':' &&
           digits(text, at + 4, 2) && number(at + 1) <= 23 && number(at + 4) <= 59;
}

// The words of a topic: "" has none (as in RabbitMQ), "a..b" has an empty middle word.
std::vector<std::string_view> words_of(std::string_view topic) {
    std::vector<std::string_view> words;
    if (topic.empty()) return words;
    std::size_t start = 0;
    while (true) {
        auto dot = topic.find('.', start);
        if (dot == std::string_view::npos) {
            words.push_back(topic.substr(start));
            return words;
        }
        words.push_back(topic.substr(start, dot - start));
        start = dot + 1;
    }
}

}  // namespace

Event make_event(std::string_view module, std::string type, json::object data,
                 std::string traceparent) {
    Event event;
    event.id = auth::new_id("evt_");
    event.source = "/aether/" + std::string(module);
    event.type = std::move(type);
    event.time = telemetry::format_rfc3339_ms(std::chrono::system_clock::now());
    event.traceparent = std::move(traceparent);
    event.data = std::move(data);
    return event;
}

// The envelope is only built to be serialized: it lives in a stack arena, members emplaced.
std::string to_json(const Event& event) {
    platform::json::StackArena<4096> arena;
    json::object envelope(arena.storage());
    envelope.reserve(8);
    envelope.emplace("specversion", kSpecVersion);
    envelope.emplace("id", event.id);
    envelope.emplace("source", event.source);
    envelope.emplace("type", event.type);
    envelope.emplace("time", event.time);
    envelope.emplace("datacontenttype", kContentType);
    if (!event.traceparent.empty()) envelope.emplace("traceparent", event.traceparent);
    envelope.emplace("data", event.data);
    return json::serialize(envelope);
}

namespace {

// The attributes of a checked envelope, pointing into its parsed value.
struct EnvelopeView {
    std::string_view id;
    std::string_view source;
    std::string_view type;
    std::string_view time;
    std::string_view traceparent;
    const json::object* data = nullptr;
};

// Checks a parsed envelope (required attributes present and strings, specversion "1.0", data an
// object); the error names the first problem.
Expected<EnvelopeView, std::string> check_envelope(const json::value& value) {
    auto* envelope = value.if_object();
    if (envelope == nullptr) return unexpected("envelope is not a JSON object");

    // A required, non-empty string attribute; nullptr (with `problem` set) otherwise.
    std::string problem;
    auto required = [&](std::string_view name) -> const json::string* {
        auto* attribute = envelope->if_contains(name);
        if (attribute == nullptr) {
            problem = "envelope is missing \"" + std::string(name) + "\"";
            return nullptr;
        }
        auto* string = attribute->if_string();
        if (string == nullptr) {
            problem = "envelope attribute \"" + std::string(name) + "\" is not a string";
            return nullptr;
        }
        if (string->empty()) {
            problem = "envelope attribute \"" + std::string(name) + "\" is empty";
            return nullptr;
        }
        return string;
    };

    auto* specversion = required("specversion");
    if (specversion == nullptr) return unexpected(problem);
    if (*specversion != kSpecVersion) {
        return unexpected("unsupported specversion \"" + std::string(*specversion) +
                          "\" (expected \"1.0\")");
    }
    EnvelopeView view;
    for (auto [name, target] : {std::pair<std::string_view, std::string_view*>{"id", &view.id},
                                {"source", &view.source},
                                {"type", &view.type},
                                {"time", &view.time}}) {
        auto* attribute = required(name);
        if (attribute == nullptr) return unexpected(problem);
        *target = *attribute;
    }
    if (!is_rfc3339(view.time)) {
        return unexpected("envelope attribute \"time\" is not an RFC 3339 timestamp");
    }
    if (auto* content_type = envelope->if_contains("datacontenttype")) {
        auto* string = content_type->if_string();
        if (string == nullptr)
            return unexpected("envelope attribute \"datacontenttype\" is not a string");
        if (*string != kContentType) {
            return unexpected("unsupported datacontenttype \"" + std::string(*string) +
                              "\" (expected \"application/json\")");
        }
    }
    if (auto* traceparent = envelope->if_contains("traceparent")) {
        auto* string = traceparent->if_string();
        if (string == nullptr)
            return unexpected("envelope attribute \"traceparent\" is not a string");
        view.traceparent = *string;
    }
    auto* data = envelope->if_contains("data");
    if (data == nullptr) return unexpected("envelope is missing \"data\"");
    if (!data->is_object()) return unexpected("envelope attribute \"data\" is not a JSON object");
    view.data = &data->get_object();
    return view;
}

// Parses `text` into a stack arena, checks it, and returns what `build` makes of the view while
// it is valid.
template <class T, class Build>
Expected<T, std::string> checked_envelope(std::string_view text, Build build) {
    platform::json::StackArena<4096> arena;
    std::error_code error;
    json::value value = json::parse(text, error, arena.storage());
    if (error) return unexpected("envelope is not valid JSON: " + error.message());
    auto view = check_envelope(value);
    if (!view) return unexpected(std::move(view).error());
    return build(*view);
}

}  // namespace

Expected<Event, std::string> parse_event(std::string_view text) {
    // Only the attributes and `data` are copied out of the arena.
    return checked_envelope<Event>(text, [](const EnvelopeView& view) {
        Event event;
        event.id = std::string(view.id);
        event.source = std::string(view.source);
        event.type = std::string(view.type);
        event.time = std::string(view.time);
        event.traceparent = std::string(view.traceparent);
        event.data = json::object(*view.data, json::storage_ptr());
        return event;
    });
}

Expected<StoredEvent, std::string> parse_stored_event(std::string envelope) {
    // The view points into the parsed copy, so the text can move into the result.
    return checked_envelope<StoredEvent>(envelope, [&envelope](const EnvelopeView& view) {
        StoredEvent stored;
        stored.id = std::string(view.id);
        stored.type = std::string(view.type);
        stored.envelope = std::move(envelope);
        return stored;
    });
}

bool topic_matches(std::string_view pattern, std::string_view routing_key) {
    auto pattern_words = words_of(pattern);
    auto key_words = words_of(routing_key);
    const auto n = key_words.size();
    // matched[j]: the pattern words so far match the first j key words.
    std::vector<char> matched(n + 1, 0);
    matched[0] = 1;
    for (auto word : pattern_words) {
        std::vector<char> next(n + 1, 0);
        if (word == "#") {
            // Zero or more words: reachable from any earlier matched prefix.
            bool any = false;
            for (std::size_t j = 0; j <= n; ++j) {
                any = any || matched[j] != 0;
                next[j] = any ? 1 : 0;
            }
        } else {
            for (std::size_t j = 1; j <= n; ++j) {
                next[j] = matched[j - 1] != 0 && (word == "*" || word == key_words[j - 1]) ? 1 : 0;
            }
        }
        matched = std::move(next);
    }
    return matched[n] != 0;
}

asio::awaitable<std::vector<std::string>> Bus::publish_batch(std::vector<Event> events) {
    std::vector<std::string> outcomes(events.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
        try {
            co_await publish(std::move(events[i]));
        } catch (const std::exception& failure) {
            outcomes[i] = failure.what();
            if (outcomes[i].empty()) outcomes[i] = "publish failed";
        }
        if (outcomes[i].empty()) continue;
        for (std::size_t later = i + 1; later < events.size(); ++later) {
            outcomes[later] = std::string(kNotAttempted);
        }
        break;
    }
    co_return outcomes;
}

asio::awaitable<std::vector<std::string>> Bus::publish_stored(std::vector<StoredEvent> events) {
    std::vector<Event> parsed;
    parsed.reserve(events.size());
    for (const auto& stored : events) {
        auto event = parse_event(stored.envelope);
        // parse_stored_event checked it: only a caller that skipped the check gets here.
        if (!event) throw PublishError("stored event " + stored.id + ": " + event.error());
        parsed.push_back(std::move(*event));
    }
    co_return co_await publish_batch(std::move(parsed));
}

}  // namespace aether::platform::bus
