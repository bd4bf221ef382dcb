// CloudEvents envelopes and RabbitMQ topic matching.
#include "platform/bus/bus.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>
#include <vector>

#include "platform/bus/test_support.h"

namespace aether::platform::bus {
namespace {

namespace json = boost::json;

Event sample_event() {
    Event event;
    event.id = "evt_01JDQ4Z8K9X2M3N4P5Q6R7S8T9";
    event.source = "/aether/tasks";
    event.type = "task.created";
    event.time = "2026-11-28T15:41:25.123Z";
    event.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    event.data = json::parse(R"({"task_id":"task_1","title":"Ship \"it\"","tags":["a","b"],"n":3})")
                     .as_object();
    return event;
}

TEST(EventTest, MakeEventFillsTheAttributes) {
    json::object data;
    data["task_id"] = "task_1";
    auto event = make_event("tasks", "task.created", data, "00-abc-def-01");
    EXPECT_EQ(event.id.rfind("evt_", 0), 0u);
    EXPECT_EQ(event.id.size(), 4u + 26u);
    EXPECT_EQ(event.source, "/aether/tasks");
    EXPECT_EQ(event.type, "task.created");
    ASSERT_EQ(event.time.size(), 24u);
    EXPECT_EQ(event.time[10], 'T');
    EXPECT_EQ(event.time.back(), 'Z');
    EXPECT_EQ(event.traceparent, "00-abc-def-01");
    EXPECT_EQ(event.data, data);

    auto later = make_event("tasks", "task.created", {});
    EXPECT_NE(later.id, event.id);
    EXPECT_GT(later.id, event.id) << "ids of one process sort by creation";
    EXPECT_TRUE(later.traceparent.empty());
}

TEST(EventTest, ToJsonWritesTheStructuredEnvelope) {
    auto event = sample_event();
    EXPECT_EQ(
        to_json(event),
        R"({"specversion":"1.0","id":"evt_01JDQ4Z8K9X2M3N4P5Q6R7S8T9","source":"/aether/tasks",)"
        R"("type":"task.created","time":"2026-11-28T15:41:25.123Z",)"
        R"("datacontenttype":"application/json",)"
        R"("traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",)"
        R"("data":{"task_id":"task_1","title":"Ship \"it\"","tags":["a","b"],"n":3}})");
    event.traceparent.clear();
    auto envelope = json::parse(to_json(event)).as_object();
    EXPECT_FALSE(envelope.contains("traceparent")) << "an empty traceparent is left out";
}

TEST(EventTest, RoundTripsThroughJson) {
    for (bool with_trace : {true, false}) {
        auto event = sample_event();
        if (!with_trace) event.traceparent.clear();
        auto parsed = parse_event(to_json(event));
        ASSERT_TRUE(parsed) << parsed.error();
        EXPECT_EQ(parsed->id, event.id);
        EXPECT_EQ(parsed->source, event.source);
        EXPECT_EQ(parsed->type, event.type);
        EXPECT_EQ(parsed->time, event.time);
        EXPECT_EQ(parsed->traceparent, event.traceparent);
        EXPECT_EQ(parsed->data, event.data);
    }
    auto made = make_event("security", "user.registered", {});
    auto parsed = parse_event(to_json(made));
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_EQ(parsed->id, made.id);
    EXPECT_TRUE(parsed->data.empty());
}

TEST(EventTest, AcceptsOtherProducersValidEnvelopes) {
    // Another client may omit datacontenttype, use another time precision or an offset, and add
    // extension attributes.
    for (
        const char* text : {
            R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-01-02T03:04:05Z","data":{}})",
            R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-01-02T03:04:05.123456+02:00","data":{}})",
            R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-01-02T03:04:05-05:30","data":{},"subject":"y"})",
        }) {
        auto parsed = parse_event(text);
        EXPECT_TRUE(parsed) << text << ": " << parsed.error();
    }
}

struct ParseCase {
    std::string json;
    std::string error;
};

TEST(EventTest, ParseNamesTheFirstProblem) {
    const std::string tail =
        R"("source":"/aether/tasks","type":"task.created","time":"2026-11-28T15:41:25.123Z",)";
    const std::vector<ParseCase> cases = {
        {"", "not valid JSON"},
        {"{", "not valid JSON"},
        {R"({"a":1} x)", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"\"event\"", "not a JSON object"},
        {R"({"id":"x"})", "missing \"specversion\""},
        {R"({"specversion":1.0})", "\"specversion\" is not a string"},
        {R"({"specversion":"0.3"})", "unsupported specversion \"0.3\""},
        {R"({"specversion":""})", "\"specversion\" is empty"},
        {R"({"specversion":"1.0",)" + tail + R"("data":{}})", "missing \"id\""},
        {R"({"specversion":"1.0","id":7,)" + tail + R"("data":{}})", "\"id\" is not a string"},
        {R"({"specversion":"1.0","id":"",)" + tail + R"("data":{}})", "\"id\" is empty"},
        {R"({"specversion":"1.0","id":"x","type":"t","time":"2026-11-28T15:41:25Z","data":{}})",
         "missing \"source\""},
        {R"({"specversion":"1.0","id":"x","source":null,"type":"t","time":"2026-11-28T15:41:25Z","data":{}})",
         "\"source\" is not a string"},
        {R"({"specversion":"1.0","id":"x","source":"s","time":"2026-11-28T15:41:25Z","data":{}})",
         "missing \"type\""},
        {R"({"specversion":"1.0","id":"x","source":"s","type":["t"],"time":"2026-11-28T15:41:25Z","data":{}})",
         "\"type\" is not a string"},
        {R"({"specversion":"1.0","id":"x","source":"s","type":"t","data":{}})", "missing \"time\""},
        {R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"yesterday","data":{}})",
         "\"time\" is not an RFC 3339 timestamp"},
        {R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-13-28T15:41:25Z","data":{}})",
         "\"time\" is not an RFC 3339 timestamp"},
        {R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-11-28 15:41:25Z","data":{}})",
         "\"time\" is not an RFC 3339 timestamp"},
        {R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-11-28T15:41:25","data":{}})",
         "\"time\" is not an RFC 3339 timestamp"},
        {R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-11-28T15:41:25.Z","data":{}})",
         "\"time\" is not an RFC 3339 timestamp"},
        {R"({"specversion":"1.0","id":"x",)" + tail + R"("datacontenttype":5,"data":{}})",
         "\"datacontenttype\" is not a string"},
        {R"({"specversion":"1.0","id":"x",)" + tail +
             R"("datacontenttype":"text/plain","data":{}})",
         "unsupported datacontenttype \"text/plain\""},
        {R"({"specversion":"1.0","id":"x",)" + tail + R"("traceparent":{},"data":{}})",
         "\"traceparent\" is not a string"},
        {R"({"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-11-28T15:41:25Z"})",
         "missing \"data\""},
        {R"({"specversion":"1.0","id":"x",)" + tail + R"("data":[1]})",
         "\"data\" is not a JSON object"},
        {R"({"specversion":"1.0","id":"x",)" + tail + R"("data":"text"})",
         "\"data\" is not a JSON object"},
        {R"({"specversion":"1.0","id":"x",)" + tail + R"("data":null})",
         "\"data\" is not a JSON object"},
    };
    for (const auto& c : cases) {
        auto parsed = parse_event(c.json);
        ASSERT_FALSE(parsed) << c.json;
        EXPECT_NE(parsed.error().find(c.error), std::string::npos)
            << c.json << "\n  error: " << parsed.error() << "\n  expected: " << c.error;
        // The outbox's check refuses the same envelopes with the same words.
        auto stored = parse_stored_event(c.json);
        ASSERT_FALSE(stored) << c.json;
        EXPECT_EQ(stored.error(), parsed.error());
    }
}

TEST(EventTest, AStoredEventKeepsItsTextAndPublishesAsTheEvent) {
    auto event = sample_event();
    const auto text = to_json(event);
    auto stored = parse_stored_event(text);
    ASSERT_TRUE(stored) << stored.error();
    EXPECT_EQ(stored->id, event.id);
    EXPECT_EQ(stored->type, event.type);
    EXPECT_EQ(stored->envelope, text);
    // A driver without its own publish_stored publishes the parsed event.
    testing::FakeBus bus;
    asio::io_context io;
    std::vector<std::string> outcomes;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            std::vector<StoredEvent> events{*stored};
            outcomes = co_await bus.publish_stored(std::move(events));
        },
        asio::detached);
    io.run();
    EXPECT_EQ(outcomes, std::vector<std::string>{""});
    ASSERT_EQ(bus.count(), 1u);
    EXPECT_EQ(to_json(bus.events()[0]), text);
}

struct TopicCase {
    std::string pattern;
    std::string key;
    bool matches;
};

TEST(TopicTest, MatchesLikeARabbitMqTopicExchange) {
    const std::vector<TopicCase> cases = {
        {"task.created", "task.created", true},
        {"task.created", "task.updated", false},
        {"task.created", "task.created.x", false},
        {"task.created", "task", false},
        {"task.*", "task.created", true},
        {"task.*", "task", false},
        {"task.*", "task.created.extra", false},
        {"task.*", "user.created", false},
        {"*.created", "task.created", true},
        {"*.created", "created", false},
        {"*", "task", true},
        {"*", "task.created", false},
        {"*", "", false},
        {"*.*", "a.b", true},
        {"*.*", "a", false},
        {"#", "", true},
        {"#", "task", true},
        {"#", "task.created.x", true},
        {"task.#", "task", true},
        {"task.#", "task.created", true},
        {"task.#", "task.a.b.c", true},
        {"task.#", "tasks.created", false},
        {"task.#", "user.task", false},
        {"#.created", "created", true},
        {"#.created", "task.created", true},
        {"#.created", "a.b.created", true},
        {"#.created", "task.created.x", false},
        {"a.#.z", "a.z", true},
        {"a.#.z", "a.b.z", true},
        {"a.#.z", "a.b.c.z", true},
        {"a.#.z", "a.b.c", false},
        {"#.#", "", true},
        {"#.#", "a.b", true},
        {"#.*", "", false},
        {"#.*", "a", true},
        {"#.*", "a.b.c", true},
        {"*.#", "", false},
        {"*.#", "a", true},
        {"a.*.#", "a", false},
        {"a.*.#", "a.b", true},
        {"a.*.#", "a.b.c.d", true},
        {"#.b.#", "b", true},
        {"#.b.#", "a.b.c", true},
        {"#.b.#", "a.c", false},
        {"", "", true},
        {"", "a", false},
        {"a", "", false},
        {"a..b", "a..b", true},
        {"a.*.b", "a..b", true},
        {"a.#", "a.", true},
        {"task.created", "Task.created", false},
        {"auth.login.*", "auth.login.failed", true},
        {"auth.login.*", "auth.logout", false},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(topic_matches(c.pattern, c.key), c.matches)
            << "pattern \"" << c.pattern << "\" key \"" << c.key << "\"";
    }
}

}  // namespace
}  // namespace aether::platform::bus
