// Tests for key declarations, per-kind parsing, the common checks and the Markdown key table.
#include "platform/config/schema.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace aether::platform::config {
namespace {

using std::chrono::milliseconds;

TEST(EnvName, UpperCasesAndReplacesDots) {
    EXPECT_EQ(env_name("auth.jwt_secret"), "AETHER_AUTH_JWT_SECRET");
    EXPECT_EQ(env_name("services.tasks.database"), "AETHER_SERVICES_TASKS_DATABASE");
    EXPECT_EQ(env_name("http.io_threads"), "AETHER_HTTP_IO_THREADS");
}

TEST(Duration, ParsesEveryUnitAndBareSeconds) {
    EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
    EXPECT_EQ(parse_duration("30s"), milliseconds(30'000));
    EXPECT_EQ(parse_duration("5m"), milliseconds(300'000));
    EXPECT_EQ(parse_duration("1h"), milliseconds(3'600'000));
    EXPECT_EQ(parse_duration("45"), milliseconds(45'000));
    EXPECT_EQ(parse_duration("0"), milliseconds(0));
}

TEST(Duration, RejectsMalformedNegativeAndOverflowing) {
    for (const char* bad :
         {"", "s", "-5s", "5 s", "5d", "1.5s", "abc", "5sec", "99999999999999999h"}) {
        EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
    }
}

TEST(Duration, FormatsWithTheLargestExactUnit) {
    EXPECT_EQ(format_duration(milliseconds(0)), "0s");
    EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
    EXPECT_EQ(format_duration(milliseconds(1500)), "1500ms");
    EXPECT_EQ(format_duration(milliseconds(90'000)), "90s");
    EXPECT_EQ(format_duration(milliseconds(300'000)), "5m");
    EXPECT_EQ(format_duration(milliseconds(7'200'000)), "2h");
}

TEST(ParseText, Int) {
    EXPECT_EQ(std::get<std::int64_t>(*detail::parse_text(Kind::Int, "42")), 42);
    EXPECT_EQ(std::get<std::int64_t>(*detail::parse_text(Kind::Int, "-7")), -7);
    EXPECT_EQ(std::get<std::int64_t>(*detail::parse_text(Kind::Int, " 8 ")), 8);
    for (const char* bad : {"", "many", "4.5", "12abc", "99999999999999999999"}) {
        auto parsed = detail::parse_text(Kind::Int, bad);
        ASSERT_FALSE(parsed) << bad;
        EXPECT_EQ(parsed.error(), "must be an integer");
    }
}

TEST(ParseText, Double) {
    EXPECT_DOUBLE_EQ(std::get<double>(*detail::parse_text(Kind::Double, "0.25")), 0.25);
    EXPECT_DOUBLE_EQ(std::get<double>(*detail::parse_text(Kind::Double, "3")), 3.0);
    EXPECT_DOUBLE_EQ(std::get<double>(*detail::parse_text(Kind::Double, "1e3")), 1000.0);
    for (const char* bad : {"", "x", "1.5.2", "nan", "inf"}) {
        auto parsed = detail::parse_text(Kind::Double, bad);
        ASSERT_FALSE(parsed) << bad;
        EXPECT_EQ(parsed.error(), "must be a number");
    }
}

TEST(ParseText, Bool) {
    for (const char* yes : {"true", "True", "YES", "on", "1"}) {
        EXPECT_TRUE(std::get<bool>(*detail::parse_text(Kind::Bool, yes))) << yes;
    }
    for (const char* no : {"false", "FALSE", "no", "off", "0"}) {
        EXPECT_FALSE(std::get<bool>(*detail::parse_text(Kind::Bool, no))) << no;
    }
    auto parsed = detail::parse_text(Kind::Bool, "maybe");
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error(), "must be true or false");
}

TEST(ParseText, DurationErrorNamesTheForms) {
    EXPECT_EQ(std::get<milliseconds>(*detail::parse_text(Kind::Duration, "2m")),
              milliseconds(120'000));
    auto parsed = detail::parse_text(Kind::Duration, "soon");
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error(), "must be a duration such as 250ms, 30s, 5m or 1h");
}

TEST(ParseText, StringListSplitsOnCommasAndTrims) {
    using List = std::vector<std::string>;
    EXPECT_EQ(std::get<List>(*detail::parse_text(Kind::StringList, "a, b ,c")),
              (List{"a", "b", "c"}));
    EXPECT_EQ(std::get<List>(*detail::parse_text(Kind::StringList, "a,,b,")), (List{"a", "b"}));
    EXPECT_EQ(std::get<List>(*detail::parse_text(Kind::StringList, "")), List{});
}

TEST(ParseText, StringsAreKeptVerbatim) {
    EXPECT_EQ(std::get<std::string>(*detail::parse_text(Kind::String, " spaced ")), " spaced ");
    EXPECT_EQ(std::get<std::string>(*detail::parse_text(Kind::Secret, "s3cr3t")), "s3cr3t");
}

TEST(Checks, OneOfAcceptsStringsAndEveryListItem) {
    const Check check = one_of({"debug", "info"});
    EXPECT_EQ(check.requirement, "must be one of debug, info");
    EXPECT_TRUE(check.accepts(Value(std::string("info"))));
    EXPECT_FALSE(check.accepts(Value(std::string("trace"))));
    EXPECT_TRUE(check.accepts(Value(std::vector<std::string>{"debug", "info"})));
    EXPECT_FALSE(check.accepts(Value(std::vector<std::string>{"debug", "trace"})));
}

TEST(Checks, IntRange) {
    const Check check = int_range(1, 256);
    EXPECT_EQ(check.requirement, "must be an integer between 1 and 256");
    EXPECT_TRUE(check.accepts(Value(std::int64_t{1})));
    EXPECT_TRUE(check.accepts(Value(std::int64_t{256})));
    EXPECT_FALSE(check.accepts(Value(std::int64_t{0})));
    EXPECT_FALSE(check.accepts(Value(std::int64_t{257})));
}

TEST(Checks, DurationRange) {
    const Check check = duration_range(milliseconds(1000), milliseconds(300'000));
    EXPECT_EQ(check.requirement, "must be a duration between 1s and 5m");
    EXPECT_TRUE(check.accepts(Value(milliseconds(1000))));
    EXPECT_FALSE(check.accepts(Value(milliseconds(999))));
    EXPECT_FALSE(check.accepts(Value(milliseconds(300'001))));
}

TEST(Checks, MinLength) {
    const Check check = min_length(4);
    EXPECT_EQ(check.requirement, "must be at least 4 characters long");
    EXPECT_TRUE(check.accepts(Value(std::string("abcd"))));
    EXPECT_FALSE(check.accepts(Value(std::string("abc"))));
}

TEST(Checks, UrlSchemes) {
    const Check check = url_schemes({"http", "https"});
    EXPECT_EQ(check.requirement, "must be a URL starting with http:// or https://");
    EXPECT_TRUE(check.accepts(Value(std::string("https://example.com"))));
    EXPECT_FALSE(check.accepts(Value(std::string("https://"))));
    EXPECT_FALSE(check.accepts(Value(std::string("ftp://example.com"))));
    EXPECT_FALSE(check.accepts(Value(std::string("example.com"))));
}

TEST(Checks, DatabaseUrl) {
    const Check check = database_url();
    EXPECT_TRUE(check.accepts(Value(std::string("postgresql://u@db/tasks"))));
    EXPECT_TRUE(check.accepts(Value(std::string("postgres://db/tasks"))));
    EXPECT_TRUE(check.accepts(Value(std::string("sqlite:data/tasks.db"))));
    EXPECT_FALSE(check.accepts(Value(std::string("sqlite:"))));
    EXPECT_FALSE(check.accepts(Value(std::string("mysql://x"))));
}

TEST(Schema, FindsKeysByPathAndEnvironmentName) {
    Schema schema;
    schema.add({.path = "http.io_threads", .kind = Kind::Int, .default_value = "4"})
        .add({.path = "services.tasks.database", .kind = Kind::String});
    ASSERT_NE(schema.find("http.io_threads"), nullptr);
    EXPECT_EQ(schema.find("http.io_threads")->default_value, "4");
    EXPECT_EQ(schema.find("http"), nullptr);
    EXPECT_EQ(schema.find_by_env("AETHER_SERVICES_TASKS_DATABASE"),
              schema.find("services.tasks.database"));
    EXPECT_TRUE(schema.is_section("services"));
    EXPECT_TRUE(schema.is_section("services.tasks"));
    EXPECT_FALSE(schema.is_section("services.tasks.database"));
    EXPECT_FALSE(schema.is_section("auth"));
}

TEST(Schema, RejectsDeclarationMistakes) {
    Schema schema;
    schema.add({.path = "a.b", .kind = Kind::Int});
    EXPECT_THROW(schema.add({.path = "a.b"}), std::logic_error);    // twice
    EXPECT_THROW(schema.add({.path = "a"}), std::logic_error);      // already a section
    EXPECT_THROW(schema.add({.path = "a.b.c"}), std::logic_error);  // a.b is a key
    EXPECT_THROW(schema.add({.path = "a_b"}), std::logic_error);    // AETHER_A_B collides
    EXPECT_THROW(schema.add({.path = "Upper"}), std::logic_error);  // not lower-case
    EXPECT_THROW(schema.add({.path = "x..y"}), std::logic_error);   // empty segment
    EXPECT_THROW(schema.add({.path = ""}), std::logic_error);
    EXPECT_THROW(schema.add({.path = "n", .kind = Kind::Int, .default_value = "x"}),
                 std::logic_error);
    EXPECT_THROW(
        schema.add(
            {.path = "r", .kind = Kind::Int, .default_value = "0", .check = int_range(1, 2)}),
        std::logic_error);
    EXPECT_THROW(schema.add({.path = "q", .default_value = "x", .required = true}),
                 std::logic_error);
    EXPECT_EQ(schema.keys().size(), 1u);
}

TEST(Schema, FormRequirementPrefersACheckThatNamesTheKind) {
    EXPECT_EQ(detail::form_requirement({.path = "a", .kind = Kind::Int, .check = int_range(1, 2)}),
              "must be an integer between 1 and 2");
    EXPECT_EQ(detail::form_requirement({.path = "a", .kind = Kind::Int}), "must be an integer");
    EXPECT_EQ(detail::form_requirement({.path = "a", .kind = Kind::String, .check = one_of({"x"})}),
              "must be a string");
    EXPECT_EQ(detail::form_requirement({.path = "a", .kind = Kind::Duration}),
              "must be a duration such as 250ms, 30s, 5m or 1h");
}

TEST(Schema, MarkdownTableIsSortedAndHidesSecretDefaults) {
    Schema schema;
    schema
        .add({.path = "log.level",
              .kind = Kind::String,
              .default_value = "info",
              .description = "Log level | verbosity.",
              .check = one_of({"debug", "info"})})
        .add({.path = "auth.jwt_secret",
              .kind = Kind::Secret,
              .default_value = "dev-only-secret-value",
              .description = "HS256 key."})
        .add({.path = "auth.issuer", .required = true});
    const std::string table = schema.markdown_table();
    EXPECT_EQ(
        table,
        "| Key | Environment variable | Kind | Default | Description |\n"
        "|---|---|---|---|---|\n"
        "| `auth.issuer` | `AETHER_AUTH_ISSUER` | string |  | Required. |\n"
        "| `auth.jwt_secret` | `AETHER_AUTH_JWT_SECRET` | secret | *(hidden)* | HS256 key. |\n"
        "| `log.level` | `AETHER_LOG_LEVEL` | string | `info` | Log level \\| verbosity. "
        "Must be one of debug, info. |\n");
    EXPECT_EQ(table.find("dev-only-secret-value"), std::string::npos);
}

}  // namespace
}  // namespace aether::platform::config
