// Tests for loading configuration from defaults, YAML and the environment, and for its errors.
#include "platform/config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace aether::platform::config {
namespace {

using std::chrono::milliseconds;
using Env = std::map<std::string, std::string>;

constexpr const char* kSecret = "a-long-enough-signing-secret-0123456789";

Schema test_schema() {
    Schema schema;
    schema
        .add({.path = "http.io_threads",
              .kind = Kind::Int,
              .default_value = "4",
              .description = "IO threads.",
              .check = int_range(1, 256)})
        .add({.path = "http.request_timeout", .kind = Kind::Duration, .default_value = "30s"})
        .add({.path = "http.cors_origins", .kind = Kind::StringList})
        .add({.path = "auth.jwt_secret", .kind = Kind::Secret, .check = min_length(32)})
        .add({.path = "auth.issuer", .kind = Kind::String, .default_value = "aether"})
        .add({.path = "cache.sample_rate", .kind = Kind::Double, .default_value = "0.5"})
        .add({.path = "telemetry.json_logs", .kind = Kind::Bool, .default_value = "true"})
        .add({.path = "services.security.database",
              .kind = Kind::String,
              .default_value = "sqlite:data/security.db",
              .check = database_url()})
        .add({.path = "services.tasks.database",
              .kind = Kind::String,
              .default_value = "sqlite:data/tasks.db",
              .check = database_url()});
    return schema;
}

std::vector<std::string> messages(const std::vector<ConfigError>& errors) {
    std::vector<std::string> out;
    for (const auto& error : errors) out.push_back(error.to_string());
    return out;
}

// Loads YAML text named "aether.yaml" and returns the error lines (empty on success).
std::vector<std::string> errors_of(std::string_view yaml, const Env& env = {}) {
    auto loaded = load_from_string(test_schema(), yaml, "aether.yaml", env);
    return loaded ? std::vector<std::string>{} : messages(loaded.error());
}

Config loaded_ok(std::string_view yaml, const Env& env = {}) {
    auto loaded = load_from_string(test_schema(), yaml, "aether.yaml", env);
    if (!loaded) {
        ADD_FAILURE() << "unexpected errors, first: " << loaded.error().front().to_string();
        return Config();
    }
    return std::move(loaded).value();
}

TEST(ConfigError, ToStringLeavesOutEmptyParts) {
    EXPECT_EQ((ConfigError{"aether.yaml:3", "a.b", "unknown key"}).to_string(),
              "aether.yaml:3: a.b: unknown key");
    EXPECT_EQ((ConfigError{"AETHER_X", "", "unknown variable"}).to_string(),
              "AETHER_X: unknown variable");
    EXPECT_EQ((ConfigError{"", "a.b", "is required"}).to_string(), "a.b: is required");
}

TEST(Load, DefaultsApplyWithoutFileOrEnvironment) {
    auto loaded = load(test_schema(), "", {});
    ASSERT_TRUE(loaded);
    const Config& config = *loaded;
    EXPECT_EQ(config.get_int("http.io_threads"), 4);
    EXPECT_EQ(config.get_duration("http.request_timeout"), milliseconds(30'000));
    EXPECT_EQ(config.get_string("auth.issuer"), "aether");
    EXPECT_DOUBLE_EQ(config.get_double("cache.sample_rate"), 0.5);
    EXPECT_TRUE(config.get_bool("telemetry.json_logs"));
    EXPECT_EQ(config.origin_of("http.io_threads"), "default");
    EXPECT_TRUE(config.is_set("http.io_threads"));
    EXPECT_FALSE(config.is_set("auth.jwt_secret"));
    EXPECT_FALSE(config.is_set("http.cors_origins"));
    EXPECT_EQ(config.origin_of("auth.jwt_secret"), "");
    EXPECT_EQ(config.get_secret("auth.jwt_secret"), "");
    EXPECT_TRUE(config.get_list("http.cors_origins").empty());
}

TEST(Load, FileSetsEveryKindWithItsLine) {
    const Config config = loaded_ok(
        "http:\n"
        "  io_threads: 8\n"
        "  request_timeout: 250ms\n"
        "  cors_origins: [https://a.example, https://b.example]\n"
        "auth:\n"
        "  jwt_secret: a-long-enough-signing-secret-0123456789\n"
        "  issuer: \"aether-prod\"\n"
        "cache:\n"
        "  sample_rate: 0.125\n"
        "telemetry:\n"
        "  json_logs: no\n"
        "services:\n"
        "  tasks:\n"
        "    database: postgresql://aether@db/tasks\n");
    EXPECT_EQ(config.get_int("http.io_threads"), 8);
    EXPECT_EQ(config.origin_of("http.io_threads"), "aether.yaml:2");
    EXPECT_EQ(config.get_duration("http.request_timeout"), milliseconds(250));
    EXPECT_EQ(config.get_list("http.cors_origins"),
              (std::vector<std::string>{"https://a.example", "https://b.example"}));
    EXPECT_EQ(config.get_secret("auth.jwt_secret"), kSecret);
    EXPECT_EQ(config.get_string("auth.issuer"), "aether-prod");
    EXPECT_DOUBLE_EQ(config.get_double("cache.sample_rate"), 0.125);
    EXPECT_FALSE(config.get_bool("telemetry.json_logs"));
    EXPECT_EQ(config.get_string("services.tasks.database"), "postgresql://aether@db/tasks");
    EXPECT_EQ(config.origin_of("services.tasks.database"), "aether.yaml:14");
    EXPECT_EQ(config.get_string("services.security.database"), "sqlite:data/security.db");
    EXPECT_EQ(config.origin_of("services.security.database"), "default");
}

TEST(Load, EnvironmentOverridesFileWhichOverridesDefault) {
    const Config config = loaded_ok("http:\n  io_threads: 8\n  request_timeout: 5m\n",
                                    {{"AETHER_HTTP_IO_THREADS", "16"},
                                     {"AETHER_HTTP_CORS_ORIGINS", "https://a.example, https://b"},
                                     {"AETHER_TELEMETRY_JSON_LOGS", "off"}});
    EXPECT_EQ(config.get_int("http.io_threads"), 16);
    EXPECT_EQ(config.origin_of("http.io_threads"), "AETHER_HTTP_IO_THREADS");
    EXPECT_EQ(config.get_duration("http.request_timeout"), milliseconds(300'000));
    EXPECT_EQ(config.origin_of("http.request_timeout"), "aether.yaml:3");
    EXPECT_EQ(config.get_list("http.cors_origins"),
              (std::vector<std::string>{"https://a.example", "https://b"}));
    EXPECT_FALSE(config.get_bool("telemetry.json_logs"));
    EXPECT_EQ(config.get_string("auth.issuer"), "aether");
}

TEST(Load, EnvironmentIgnoresOtherVariablesAndTheTestPrefix) {
    const Config config =
        loaded_ok("", {{"PATH", "/bin"}, {"AETHER_TEST_ANYTHING", "x"}, {"XAETHER_Y", "1"}});
    EXPECT_EQ(config.get_int("http.io_threads"), 4);
}

TEST(Load, NullValueKeepsTheDefault) {
    const Config config = loaded_ok("http:\n  io_threads:\n  request_timeout: ~\nauth:\n");
    EXPECT_EQ(config.get_int("http.io_threads"), 4);
    EXPECT_EQ(config.origin_of("http.io_threads"), "default");
    EXPECT_EQ(config.get_duration("http.request_timeout"), milliseconds(30'000));
}

TEST(Load, EmptyFileIsFine) {
    EXPECT_TRUE(errors_of("").empty());
    EXPECT_TRUE(errors_of("# nothing configured yet\n").empty());
}

TEST(Errors, EachKindFromTheFile) {
    EXPECT_EQ(errors_of("http:\n  io_threads: many\n"),
              std::vector<std::string>{"aether.yaml:2: http.io_threads: must be an integer "
                                       "between 1 and 256 (got \"many\")"});
    EXPECT_EQ(errors_of("http:\n  io_threads: 0\n"),
              std::vector<std::string>{"aether.yaml:2: http.io_threads: must be an integer "
                                       "between 1 and 256 (got \"0\")"});
    EXPECT_EQ(errors_of("http:\n  request_timeout: soon\n"),
              std::vector<std::string>{"aether.yaml:2: http.request_timeout: must be a duration "
                                       "such as 250ms, 30s, 5m or 1h (got \"soon\")"});
    EXPECT_EQ(errors_of("cache:\n  sample_rate: half\n"),
              std::vector<std::string>{
                  "aether.yaml:2: cache.sample_rate: must be a number (got \"half\")"});
    EXPECT_EQ(errors_of("telemetry:\n  json_logs: maybe\n"),
              std::vector<std::string>{
                  "aether.yaml:2: telemetry.json_logs: must be true or false (got \"maybe\")"});
    EXPECT_EQ(errors_of("http:\n  cors_origins: https://a.example\n"),
              std::vector<std::string>{
                  "aether.yaml:2: http.cors_origins: must be a list of strings such as [a, b], "
                  "not a single value (got \"https://a.example\")"});
    EXPECT_EQ(errors_of("services:\n  security:\n    database: mysql://x\n"),
              std::vector<std::string>{"aether.yaml:3: services.security.database: must be a "
                                       "postgresql:// URL or sqlite:PATH (got \"mysql://x\")"});
}

TEST(Errors, EachKindFromTheEnvironment) {
    EXPECT_EQ(errors_of("", {{"AETHER_HTTP_IO_THREADS", "many"}}),
              std::vector<std::string>{"AETHER_HTTP_IO_THREADS: http.io_threads: must be an "
                                       "integer between 1 and 256 (got \"many\")"});
    EXPECT_EQ(errors_of("", {{"AETHER_HTTP_REQUEST_TIMEOUT", "10x"}}),
              std::vector<std::string>{"AETHER_HTTP_REQUEST_TIMEOUT: http.request_timeout: must "
                                       "be a duration such as 250ms, 30s, 5m or 1h (got \"10x\")"});
    EXPECT_EQ(errors_of("", {{"AETHER_CACHE_SAMPLE_RATE", ""}}),
              std::vector<std::string>{
                  "AETHER_CACHE_SAMPLE_RATE: cache.sample_rate: must be a number (got \"\")"});
    EXPECT_EQ(errors_of("", {{"AETHER_TELEMETRY_JSON_LOGS", "2"}}),
              std::vector<std::string>{"AETHER_TELEMETRY_JSON_LOGS: telemetry.json_logs: must be "
                                       "true or false (got \"2\")"});
}

TEST(Errors, WrongShapes) {
    EXPECT_EQ(errors_of("http:\n  io_threads:\n    min: 1\n"),
              std::vector<std::string>{"aether.yaml:2: http.io_threads: must be an integer "
                                       "between 1 and 256, not a mapping"});
    EXPECT_EQ(errors_of("auth:\n  issuer: [a, b]\n"),
              std::vector<std::string>{"aether.yaml:2: auth.issuer: must be a string, not a list"});
    EXPECT_EQ(
        errors_of("http: 8080\n"),
        std::vector<std::string>{
            "aether.yaml:1: http: must be a mapping of keys (a section), not a single value"});
    EXPECT_EQ(errors_of("http:\n  cors_origins:\n    - https://a\n    - [x]\n"),
              std::vector<std::string>{"aether.yaml:4: http.cors_origins: must be a list of "
                                       "strings, but item 2 is a list"});
    EXPECT_EQ(errors_of("- a\n- b\n"),
              std::vector<std::string>{
                  "aether.yaml:1: the file must be a mapping of configuration keys, not a list"});
    EXPECT_EQ(errors_of("[a]: 1\n"),
              std::vector<std::string>{"aether.yaml:1: keys must be plain names, not a list"});
}

TEST(Errors, UnknownKeysSuggestTheClosestName) {
    EXPECT_EQ(errors_of("\n\nauth:\n  jwt_secrt: x\n"),
              std::vector<std::string>{
                  "aether.yaml:4: auth.jwt_secrt: unknown key (did you mean auth.jwt_secret?)"});
    EXPECT_EQ(
        errors_of("servics:\n  tasks:\n    database: sqlite:x\n"),
        std::vector<std::string>{"aether.yaml:1: servics: unknown key (did you mean services?)"});
    EXPECT_EQ(errors_of("jwt_secret: x\n"),
              std::vector<std::string>{
                  "aether.yaml:1: jwt_secret: unknown key (did you mean auth.jwt_secret?)"});
    // "database" is declared under two services: no guess rather than a wrong one.
    EXPECT_EQ(errors_of("database: sqlite:x\n"),
              std::vector<std::string>{"aether.yaml:1: database: unknown key"});
    EXPECT_EQ(errors_of("frobnicate: 1\n"),
              std::vector<std::string>{"aether.yaml:1: frobnicate: unknown key"});
}

TEST(Errors, UnknownEnvironmentVariables) {
    EXPECT_EQ(
        errors_of("", {{"AETHER_HTTP_IO_THREAD", "4"}}),
        std::vector<std::string>{
            "AETHER_HTTP_IO_THREAD: unknown variable (did you mean AETHER_HTTP_IO_THREADS?)"});
    EXPECT_EQ(errors_of("", {{"AETHER_FROBNICATE", "1"}}),
              std::vector<std::string>{
                  "AETHER_FROBNICATE: unknown variable: no configuration key has this name "
                  "(names starting with AETHER_TEST_ are ignored)"});
}

TEST(Errors, DuplicateKey) {
    EXPECT_EQ(errors_of("auth:\n  issuer: a\n  issuer: b\n"),
              std::vector<std::string>{
                  "aether.yaml:3: auth.issuer: duplicate key (first set at aether.yaml:2)"});
}

TEST(Errors, DuplicateSection) {
    EXPECT_EQ(errors_of("auth:\n  issuer: a\nhttp: {}\nauth:\n  issuer: b\n"),
              std::vector<std::string>{
                  "aether.yaml:4: auth: duplicate key (first set at aether.yaml:1)"});
}

TEST(Errors, ListCheckAppliesToEveryItem) {
    Schema schema;
    schema.add({.path = "gateway.methods",
                .kind = Kind::StringList,
                .default_value = "GET",
                .check = one_of({"GET", "POST"})});
    auto from_file = load_from_string(schema, "gateway:\n  methods:\n    - GET\n    - PATCH\n",
                                      "aether.yaml", {});
    ASSERT_FALSE(from_file);
    EXPECT_EQ(messages(from_file.error()),
              std::vector<std::string>{"aether.yaml:2: gateway.methods: must be one of GET, POST "
                                       "(got \"[GET, PATCH]\")"});
    auto from_env =
        load_from_string(schema, "", "aether.yaml", {{"AETHER_GATEWAY_METHODS", "GET,POST"}});
    ASSERT_TRUE(from_env);
    EXPECT_EQ(from_env->get_list("gateway.methods"), (std::vector<std::string>{"GET", "POST"}));
}

TEST(Errors, RequiredKeyMissing) {
    Schema schema = test_schema();
    schema.add({.path = "auth.audience", .required = true});
    auto loaded = load_from_string(schema, "", "aether.yaml", {});
    ASSERT_FALSE(loaded);
    EXPECT_EQ(messages(loaded.error()),
              std::vector<std::string>{"auth.audience: is required: set it in the configuration "
                                       "file or as AETHER_AUTH_AUDIENCE"});
    EXPECT_TRUE(load_from_string(schema, "", "aether.yaml", {{"AETHER_AUTH_AUDIENCE", "web"}}));
}

TEST(Errors, AllReportedTogetherInOrder) {
    const auto errors = errors_of(
        "http:\n"
        "  io_threads: 0\n"
        "  io_thread: 2\n"
        "cache:\n"
        "  sample_rate: lots\n",
        {{"AETHER_AUTH_ISUER", "x"}, {"AETHER_TELEMETRY_JSON_LOGS", "perhaps"}});
    EXPECT_EQ(errors,
              (std::vector<std::string>{
                  "aether.yaml:2: http.io_threads: must be an integer between 1 and 256 (got "
                  "\"0\")",
                  "aether.yaml:3: http.io_thread: unknown key (did you mean http.io_threads?)",
                  "aether.yaml:5: cache.sample_rate: must be a number (got \"lots\")",
                  "AETHER_AUTH_ISUER: unknown variable (did you mean AETHER_AUTH_ISSUER?)",
                  "AETHER_TELEMETRY_JSON_LOGS: telemetry.json_logs: must be true or false (got "
                  "\"perhaps\")",
              }));
}

TEST(Errors, InvalidFileValueIsReportedEvenWhenTheEnvironmentOverridesIt) {
    EXPECT_EQ(errors_of("http:\n  io_threads: lots\n", {{"AETHER_HTTP_IO_THREADS", "2"}}),
              std::vector<std::string>{"aether.yaml:2: http.io_threads: must be an integer "
                                       "between 1 and 256 (got \"lots\")"});
}

TEST(Errors, LongValuesAreShortenedAndEscaped) {
    const std::string long_value(100, 'x');
    const auto errors = errors_of("", {{"AETHER_HTTP_IO_THREADS", "\"" + long_value}});
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0],
              "AETHER_HTTP_IO_THREADS: http.io_threads: must be an integer between 1 "
              "and 256 (got \"\\\"" +
                  std::string(59, 'x') + "...\")");
}

TEST(Errors, InvalidYamlGivesTheLine) {
    EXPECT_EQ(errors_of("http:\n  io_threads: 4\n  cors_origins: x: y\nauth: {}\n"),
              std::vector<std::string>{"aether.yaml:3: invalid YAML: illegal map value"});
    EXPECT_EQ(errors_of("a: 1\n\tb: 2\n"),
              std::vector<std::string>{
                  "aether.yaml:2: invalid YAML: illegal tab when looking for indentation"});
}

TEST(Secrets, BadSecretIsNeverEchoed) {
    const std::string short_secret = "hunter2";
    const auto from_file = errors_of("auth:\n  jwt_secret: " + short_secret + "\n");
    EXPECT_EQ(from_file, std::vector<std::string>{"aether.yaml:2: auth.jwt_secret: must be at "
                                                  "least 32 characters long"});
    const auto from_env = errors_of("", {{"AETHER_AUTH_JWT_SECRET", short_secret}});
    EXPECT_EQ(from_env, std::vector<std::string>{"AETHER_AUTH_JWT_SECRET: auth.jwt_secret: must be "
                                                 "at least 32 characters long"});
    const auto as_map = errors_of("auth:\n  jwt_secret:\n    value: " + short_secret + "\n");
    EXPECT_EQ(as_map, std::vector<std::string>{
                          "aether.yaml:2: auth.jwt_secret: must be a string, not a mapping"});
}

TEST(Secrets, MisspelledSecretKeyDoesNotEchoItsValue) {
    for (const auto& error :
         errors_of("auth:\n  jwt_secrt: hunter2\n", {{"AETHER_AUTH_JWT_SECRT", "hunter2"}})) {
        EXPECT_EQ(error.find("hunter2"), std::string::npos) << error;
    }
}

TEST(Dump, ShowsEveryKeyWithOriginAndRedactsSecrets) {
    const Config config = loaded_ok(
        "http:\n  io_threads: 8\nauth:\n  jwt_secret: a-long-enough-signing-secret-0123456789\n",
        {{"AETHER_HTTP_CORS_ORIGINS", "https://a,https://b"}});
    const std::string dump = config.dump();
    EXPECT_EQ(dump,
              "auth:\n"
              "  issuer: \"aether\"  # default\n"
              "  jwt_secret: \"<redacted>\"  # aether.yaml:4\n"
              "cache:\n"
              "  sample_rate: 0.5  # default\n"
              "http:\n"
              "  cors_origins: [\"https://a\", \"https://b\"]  # AETHER_HTTP_CORS_ORIGINS\n"
              "  io_threads: 8  # aether.yaml:2\n"
              "  request_timeout: 30s  # default\n"
              "services:\n"
              "  security:\n"
              "    database: \"sqlite:data/security.db\"  # default\n"
              "  tasks:\n"
              "    database: \"sqlite:data/tasks.db\"  # default\n"
              "telemetry:\n"
              "  json_logs: true  # default\n");
    EXPECT_EQ(dump.find(kSecret), std::string::npos);
}

TEST(Dump, UnsetKeysAppearAsNullAndTheDumpLoadsBack) {
    const Config config = loaded_ok("");
    const std::string dump = config.dump();
    EXPECT_NE(dump.find("  jwt_secret: ~  # unset\n"), std::string::npos) << dump;
    const Config again = loaded_ok(dump);
    EXPECT_EQ(again.get_int("http.io_threads"), 4);
    EXPECT_EQ(again.origin_of("http.io_threads"), "aether.yaml:8");
    EXPECT_FALSE(again.is_set("auth.jwt_secret"));
}

TEST(Getters, MisuseIsAProgrammingError) {
    const Config config = loaded_ok("");
    EXPECT_THROW(config.get_int("http.nope"), std::logic_error);
    EXPECT_THROW(config.is_set("http"), std::logic_error);
    EXPECT_THROW(config.origin_of("nope"), std::logic_error);
    EXPECT_THROW(config.get_string("http.io_threads"), std::logic_error);
    EXPECT_THROW(config.get_string("auth.jwt_secret"), std::logic_error);
    EXPECT_THROW(config.get_secret("auth.issuer"), std::logic_error);
    EXPECT_THROW(config.get_double("http.io_threads"), std::logic_error);

    Schema schema;
    schema.add({.path = "limits.max", .kind = Kind::Int});
    auto loaded = load(schema, "", {});
    ASSERT_TRUE(loaded);
    EXPECT_THROW(loaded->get_int("limits.max"), std::logic_error);
}

class FileTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::path(::testing::TempDir()) /
               ("aether_config_test_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string write(const std::string& name, const std::string& text) {
        const auto path = dir_ / name;
        std::ofstream(path) << text;
        return path.string();
    }

    std::filesystem::path dir_;
};

TEST_F(FileTest, LoadsANamedFile) {
    const std::string file = write("aether.yaml", "# comment\nhttp:\n  io_threads: 12\n");
    auto loaded = load(test_schema(), file, {});
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->get_int("http.io_threads"), 12);
    EXPECT_EQ(loaded->origin_of("http.io_threads"), file + ":3");
}

TEST_F(FileTest, ErrorsNameTheFile) {
    const std::string file = write("bad.yaml", "http:\n  io_threads: -1\n");
    auto loaded = load(test_schema(), file, {});
    ASSERT_FALSE(loaded);
    EXPECT_EQ(messages(loaded.error()),
              std::vector<std::string>{file + ":2: http.io_threads: must be an integer between 1 "
                                              "and 256 (got \"-1\")"});
}

TEST_F(FileTest, MissingFileOrDirectoryIsAnError) {
    const std::string missing = (dir_ / "absent.yaml").string();
    auto loaded = load(test_schema(), missing, {{"AETHER_HTTP_IO_THREAD", "1"}});
    ASSERT_FALSE(loaded);
    EXPECT_EQ(messages(loaded.error()),
              (std::vector<std::string>{
                  missing + ": cannot read the configuration file: it does not exist",
                  "AETHER_HTTP_IO_THREAD: unknown variable (did you mean AETHER_HTTP_IO_THREADS?)",
              }));
    auto directory = load(test_schema(), dir_.string(), {});
    ASSERT_FALSE(directory);
    EXPECT_EQ(messages(directory.error()),
              std::vector<std::string>{dir_.string() +
                                       ": cannot read the configuration file: it is a directory"});
}

TEST(ProcessEnvironment, CollectsOnlyAetherVariables) {
    ASSERT_EQ(::setenv("AETHER_TEST_CONFIG_PROBE", "42", 1), 0);
    ASSERT_EQ(::setenv("NOT_AETHER_CONFIG_PROBE", "1", 1), 0);
    const auto env = process_environment();
    ::unsetenv("AETHER_TEST_CONFIG_PROBE");
    ::unsetenv("NOT_AETHER_CONFIG_PROBE");
    ASSERT_TRUE(env.contains("AETHER_TEST_CONFIG_PROBE"));
    EXPECT_EQ(env.at("AETHER_TEST_CONFIG_PROBE"), "42");
    EXPECT_FALSE(env.contains("NOT_AETHER_CONFIG_PROBE"));
    for (const auto& [name, value] : env) EXPECT_TRUE(name.starts_with("AETHER_")) << name;
}

}  // namespace
}  // namespace aether::platform::config
