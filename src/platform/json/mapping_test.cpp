// Tests for described struct <-> JSON mapping: every type, optional handling, error paths.
#include "platform/json/mapping.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/describe/enum.hpp>
#include <boost/json/parse.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace aether::platform::json {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

enum class Priority { low, medium, high, urgent };
BOOST_DESCRIBE_ENUM(Priority, low, medium, high, urgent)

struct Message {
    std::string role;
    std::string content;
};
BOOST_DESCRIBE_STRUCT(Message, (), (role, content))

struct User {
    std::string name;
    std::int32_t age = 0;
};
BOOST_DESCRIBE_STRUCT(User, (), (name, age))

struct CreateTask {
    std::string title;
    std::optional<std::string> description;
    Priority priority = Priority::low;
    std::vector<std::string> tags;
    User user;
    std::vector<Message> context;
    std::optional<std::map<std::string, double>> weights;
};
BOOST_DESCRIBE_STRUCT(CreateTask, (), (title, description, priority, tags, user, context, weights))

struct Scalars {
    bool flag = false;
    std::int8_t tiny = 0;
    std::uint16_t port = 0;
    std::int64_t big = 0;
    std::uint64_t huge = 0;
    double ratio = 0;
    std::string text;
};
BOOST_DESCRIBE_STRUCT(Scalars, (), (flag, tiny, port, big, huge, ratio, text))

struct Response {
    std::string id;
    std::optional<std::string> note;
    Nullable<std::string> assignee;
    boost::json::value raw;
    boost::json::object meta;
    boost::json::array list;
};
BOOST_DESCRIBE_STRUCT(Response, (), (id, note, assignee, raw, meta, list))

struct Base {
    std::string id;
};
BOOST_DESCRIBE_STRUCT(Base, (), (id))

struct Derived : Base {
    int count = 0;
};
BOOST_DESCRIBE_STRUCT(Derived, (Base), (count))

boost::json::value parse(std::string_view text) {
    return boost::json::parse(text);
}

template <class T>
std::vector<FieldError> errors_of(std::string_view text) {
    auto result = from_value<T>(parse(text));
    EXPECT_FALSE(result.has_value()) << text;
    if (result) return {};
    return result.error();
}

TEST(ToValue, WritesScalarsAndContainers) {
    EXPECT_EQ(to_string(std::string("a\"b")), R"("a\"b")");
    EXPECT_EQ(to_string(std::string_view("x")), R"("x")");
    EXPECT_EQ(to_string(-5), "-5");
    EXPECT_EQ(to_string(std::uint64_t{18446744073709551615ULL}), "18446744073709551615");
    EXPECT_EQ(to_string(true), "true");
    EXPECT_EQ(to_string(0.5), "5E-1");
    EXPECT_EQ(to_string(std::vector<int>{1, 2}), "[1,2]");
    EXPECT_EQ(to_string(std::map<std::string, int>{{"b", 2}, {"a", 1}}), R"({"a":1,"b":2})");
    EXPECT_EQ(to_string(std::optional<int>{}), "null");
    EXPECT_EQ(to_string(std::optional<int>{3}), "3");
    EXPECT_EQ(to_string(Priority::urgent), R"("urgent")");
}

TEST(ToValue, WritesDescribedStructInDeclarationOrder) {
    CreateTask task;
    task.title = "Ship";
    task.priority = Priority::high;
    task.tags = {"a", "b"};
    task.user = {"Ann", 40};
    task.context = {{"user", "hi"}};
    EXPECT_EQ(to_string(task),
              R"({"title":"Ship","priority":"high","tags":["a","b"],)"
              R"("user":{"name":"Ann","age":40},"context":[{"role":"user","content":"hi"}]})");
}

TEST(ToValue, OmitsEmptyOptionalButWritesNullForNullable) {
    Response response;
    response.id = "r1";
    EXPECT_EQ(to_string(response), R"({"id":"r1","assignee":null,"raw":null,"meta":{},"list":[]})");
    response.note = "n";
    response.assignee = "bob";
    response.raw = parse(R"({"x":[1,true]})");
    response.meta["k"] = 1;
    response.list.push_back(nullptr);
    EXPECT_EQ(to_string(response),
              R"({"id":"r1","note":"n","assignee":"bob","raw":{"x":[1,true]},"meta":{"k":1},)"
              R"("list":[null]})");
}

TEST(ToValue, IncludesInheritedMembersAndFieldError) {
    Derived derived;
    derived.id = "d";
    derived.count = 2;
    EXPECT_EQ(to_string(derived), R"({"id":"d","count":2})");
    EXPECT_EQ(to_string(FieldError{"email", "is required"}),
              R"({"field":"email","message":"is required"})");
}

TEST(ToValue, WritesUnnamedEnumValueAsInteger) {
    EXPECT_EQ(to_string(static_cast<Priority>(9)), "9");
}

TEST(FromValue, ReadsAFullStruct) {
    auto task = from_value<CreateTask>(parse(R"({
        "title": "Ship", "description": "soon", "priority": "urgent", "tags": ["x"],
        "user": {"name": "Ann", "age": 40, "unknown": true},
        "context": [{"role": "user", "content": "hi"}], "weights": {"a": 1, "b": 0.5},
        "ignored": [1, 2, 3]})"));
    ASSERT_TRUE(task.has_value()) << to_string(task.error());
    EXPECT_EQ(task->title, "Ship");
    EXPECT_EQ(task->description, "soon");
    EXPECT_EQ(task->priority, Priority::urgent);
    EXPECT_THAT(task->tags, ElementsAre("x"));
    EXPECT_EQ(task->user.name, "Ann");
    EXPECT_EQ(task->user.age, 40);
    ASSERT_EQ(task->context.size(), 1u);
    EXPECT_EQ(task->context[0].content, "hi");
    ASSERT_TRUE(task->weights.has_value());
    EXPECT_EQ(task->weights->at("a"), 1.0);
    EXPECT_EQ(task->weights->at("b"), 0.5);
}

TEST(FromValue, MissingOrNullOptionalIsEmpty) {
    auto absent = from_value<Response>(parse(R"({"id":"a","raw":1,"meta":{},"list":[]})"));
    ASSERT_TRUE(absent.has_value());
    EXPECT_FALSE(absent->note.has_value());
    EXPECT_FALSE(absent->assignee.has_value());
    auto nulls = from_value<Response>(
        parse(R"({"id":"a","note":null,"assignee":null,"raw":null,"meta":{},"list":[]})"));
    ASSERT_TRUE(nulls.has_value());
    EXPECT_FALSE(nulls->note.has_value());
    EXPECT_FALSE(nulls->assignee.has_value());
    EXPECT_TRUE(nulls->raw.is_null());
}

TEST(FromValue, CollectsEveryBadFieldWithItsPath) {
    auto errors = errors_of<CreateTask>(R"({
        "title": 5, "description": 7, "priority": "asap", "tags": ["ok", "fine", 3],
        "user": {"age": "40"},
        "context": [{"role": 1, "content": "a"}, {"content": "b"}, "x"],
        "weights": {"a": "heavy"}})");
    EXPECT_THAT(
        errors,
        UnorderedElementsAre(
            FieldError{"title", "must be a string"}, FieldError{"description", "must be a string"},
            FieldError{"priority", "must be one of: low, medium, high, urgent"},
            FieldError{"tags[2]", "must be a string"}, FieldError{"user.name", "is required"},
            FieldError{"user.age", "must be an integer"},
            FieldError{"context[0].role", "must be a string"},
            FieldError{"context[1].role", "is required"},
            FieldError{"context[2]", "must be an object"},
            FieldError{"weights.a", "must be a number"}));
}

TEST(FromValue, ReportsRequiredMembersAndWrongContainerKinds) {
    EXPECT_THAT(errors_of<CreateTask>(R"({"tags": {}, "context": 1, "user": []})"),
                UnorderedElementsAre(
                    FieldError{"title", "is required"}, FieldError{"priority", "is required"},
                    FieldError{"tags", "must be an array"}, FieldError{"user", "must be an object"},
                    FieldError{"context", "must be an array"}));
    EXPECT_THAT(errors_of<CreateTask>("[]"), ElementsAre(FieldError{"", "must be an object"}));
    EXPECT_THAT(errors_of<Response>(R"({"id":"a","raw":1,"meta":[],"list":{}})"),
                UnorderedElementsAre(FieldError{"meta", "must be an object"},
                                     FieldError{"list", "must be an array"}));
}

TEST(FromValue, NestedArraysOfStructsReportIndexedPaths) {
    auto errors =
        from_value<std::vector<std::vector<Message>>>(parse(R"([[{"role":"a","content":"b"}],
            [{"role":"a","content":"b"},{"role":"a"}]])"));
    ASSERT_FALSE(errors.has_value());
    EXPECT_THAT(errors.error(), ElementsAre(FieldError{"[1][1].content", "is required"}));
}

TEST(FromValue, ChecksScalarKindsWithoutCoercion) {
    auto errors = errors_of<Scalars>(
        R"({"flag":"true","tiny":"1","port":null,"big":1.5,"huge":"9","ratio":"0.5","text":1})");
    EXPECT_THAT(errors, UnorderedElementsAre(FieldError{"flag", "must be a boolean"},
                                             FieldError{"tiny", "must be an integer"},
                                             FieldError{"port", "must be an integer"},
                                             FieldError{"big", "must be an integer"},
                                             FieldError{"huge", "must be an integer"},
                                             FieldError{"ratio", "must be a number"},
                                             FieldError{"text", "must be a string"}));
}

TEST(FromValue, RejectsIntegersOutsideTheCppType) {
    auto errors =
        errors_of<Scalars>(R"({"flag":true,"tiny":128,"port":-1,"big":9223372036854775808,)"
                           R"("huge":-1,"ratio":1,"text":""})");
    EXPECT_THAT(errors,
                UnorderedElementsAre(
                    FieldError{"tiny", "must be an integer between -128 and 127"},
                    FieldError{"port", "must be an integer between 0 and 65535"},
                    FieldError{"big",
                               "must be an integer between -9223372036854775808 and "
                               "9223372036854775807"},
                    FieldError{"huge", "must be an integer between 0 and 18446744073709551615"}));
    EXPECT_THAT(errors_of<Scalars>(R"({"flag":true,"tiny":-129,"port":65536,"big":1e19,)"
                                   R"("huge":1e20,"ratio":1,"text":""})"),
                UnorderedElementsAre(FieldError{"tiny", "must be an integer between -128 and 127"},
                                     FieldError{"port", "must be an integer between 0 and 65535"},
                                     FieldError{"big",
                                                "must be an integer between -9223372036854775808 "
                                                "and 9223372036854775807"},
                                     FieldError{"huge",
                                                "must be an integer between 0 and "
                                                "18446744073709551615"}));
}

TEST(FromValue, AcceptsTheFullRangeAndIntegralDecimals) {
    auto scalars = from_value<Scalars>(
        parse(R"({"flag":false,"tiny":-128,"port":65535,"big":-9223372036854775808,)"
              R"("huge":18446744073709551615,"ratio":7,"text":"\u0000x"})"));
    ASSERT_TRUE(scalars.has_value()) << to_string(scalars.error());
    EXPECT_EQ(scalars->tiny, -128);
    EXPECT_EQ(scalars->port, 65535);
    EXPECT_EQ(scalars->big, INT64_MIN);
    EXPECT_EQ(scalars->huge, UINT64_MAX);
    EXPECT_EQ(scalars->ratio, 7.0);
    EXPECT_EQ(scalars->text, std::string("\0x", 2));
    auto decimals = from_value<Scalars>(
        parse(R"({"flag":true,"tiny":1e2,"port":8.0,"big":-2e3,"huge":4E0,"ratio":1,"text":""})"));
    ASSERT_TRUE(decimals.has_value()) << to_string(decimals.error());
    EXPECT_EQ(decimals->tiny, 100);
    EXPECT_EQ(decimals->port, 8);
    EXPECT_EQ(decimals->big, -2000);
    EXPECT_EQ(decimals->huge, 4u);
}

TEST(FromValue, EnumsRoundTripAndAreCaseSensitive) {
    for (Priority p : {Priority::low, Priority::medium, Priority::high, Priority::urgent}) {
        auto back = from_value<Priority>(to_value(p));
        ASSERT_TRUE(back.has_value());
        EXPECT_EQ(*back, p);
    }
    auto upper = from_value<Priority>(parse(R"("HIGH")"));
    ASSERT_FALSE(upper.has_value());
    EXPECT_THAT(upper.error(),
                ElementsAre(FieldError{"", "must be one of: low, medium, high, urgent"}));
    EXPECT_FALSE(from_value<Priority>(parse("2")).has_value());
}

TEST(FromValue, StructsRoundTrip) {
    CreateTask task;
    task.title = "T";
    task.description = "D";
    task.priority = Priority::medium;
    task.tags = {"a", ""};
    task.user = {"U", -3};
    task.context = {{"system", "s"}, {"user", "u"}};
    task.weights = std::map<std::string, double>{{"w", 0.25}};
    auto back = from_value<CreateTask>(to_value(task));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(to_string(*back), to_string(task));

    Derived derived;
    derived.id = "x";
    derived.count = 4;
    auto derived_back = from_value<Derived>(to_value(derived));
    ASSERT_TRUE(derived_back.has_value());
    EXPECT_EQ(derived_back->id, "x");
    EXPECT_EQ(derived_back->count, 4);
    EXPECT_THAT(
        from_value<Derived>(parse("{}")).error(),
        UnorderedElementsAre(FieldError{"id", "is required"}, FieldError{"count", "is required"}));
}

TEST(FromValue, MapKeysExtendThePath) {
    auto errors = from_value<std::map<std::string, std::vector<int>>>(
        parse(R"({"a":[1,2],"b":[1,"2"],"c":null})"));
    ASSERT_FALSE(errors.has_value());
    EXPECT_THAT(errors.error(), UnorderedElementsAre(FieldError{"b[1]", "must be an integer"},
                                                     FieldError{"c", "must be an array"}));
}

TEST(FromValue, CapsTheNumberOfErrors) {
    boost::json::array many(1000, boost::json::value("x"));
    auto result = from_value<std::vector<int>>(many);
    ASSERT_FALSE(result.has_value());
    ASSERT_EQ(result.error().size(), detail::kMaxFieldErrors);
    EXPECT_EQ(result.error().front(), (FieldError{"[0]", "must be an integer"}));
    EXPECT_EQ(result.error().back(), (FieldError{"[99]", "must be an integer"}));
}

TEST(FromValue, FieldErrorDecodes) {
    auto error = from_value<FieldError>(parse(R"({"field":"f","message":"m"})"));
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(*error, (FieldError{"f", "m"}));
}

}  // namespace
}  // namespace aether::platform::json
