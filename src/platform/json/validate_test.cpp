// Tests for the validation rules and their messages.
#include "platform/json/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace aether::platform::json {
namespace {

using ::testing::ElementsAre;

TEST(Email, AcceptsPracticalAddresses) {
    for (const char* address :
         {"a@b.co", "first.last@example.com", "user+tag@sub.example.org", "x_y-z@a-b.io",
          "o'neil@example.ie", "UPPER@EXAMPLE.COM", "1@2.3"}) {
        EXPECT_TRUE(is_valid_email(address)) << address;
    }
}

TEST(Email, RejectsMalformedAddresses) {
    for (const char* address :
         {"",          "plain",    "@example.com", "a@",      "a@b",     "a@@b.co",
          "a@b@c.co",  "a b@c.co", "a@b c.co",     "a@b..co", "a@.b.co", "a@b.co.",
          "a@-b.co",   "a@b-.co",  "a@b_c.co",     ".a@b.co", "a.@b.co", "a..b@c.co",
          "a\"b@c.co", "a@b.co\n", "\xc3\xa9@b.co"}) {
        EXPECT_FALSE(is_valid_email(address)) << address;
    }
}

TEST(Email, EnforcesLengthLimits) {
    EXPECT_TRUE(is_valid_email(std::string(64, 'a') + "@b.co"));
    EXPECT_FALSE(is_valid_email(std::string(65, 'a') + "@b.co"));
    EXPECT_TRUE(is_valid_email("a@" + std::string(63, 'b') + ".co"));
    EXPECT_FALSE(is_valid_email("a@" + std::string(64, 'b') + ".co"));
    std::string domain;
    while (domain.size() < 250) domain += std::string(9, 'd') + ".";
    domain += "co";
    const std::string local(64, 'a');
    EXPECT_FALSE(is_valid_email(local + "@" + domain));  // > 254 in total
    std::string fits = local + "@" + std::string(60, 'b') + "." + std::string(60, 'c') + "." +
                       std::string(60, 'd') + ".co";
    ASSERT_LE(fits.size(), 254u);
    EXPECT_TRUE(is_valid_email(fits));
}

TEST(ValidatorTest, CollectsErrorsInOrder) {
    Validator v;
    EXPECT_TRUE(v.ok());
    v.require(true, "ignored", "never reported");
    v.require(false, "password", "must contain a digit");
    v.email("email", "not-an-email");
    v.email("backup_email", "ok@example.com");
    v.length("name", "", 1, 100);
    v.length("bio", "caf\xc3\xa9", 0, 3);
    v.length("code", "ab", 4, 4);
    v.length("title", "\xe2\x82\xac\xe2\x82\xac", 2, 2);
    v.length("nickname", "x", 2, std::numeric_limits<std::size_t>::max());
    v.one_of("priority", "asap", {"low", "medium", "high", "urgent"});
    v.one_of("status", "done", {"todo", "done"});
    v.range("limit", 101, 1, 100);
    v.range("page", 1, 1, 100);
    v.range("temperature", 2.5, 0.0, 2.0);
    v.range("size", std::size_t{0}, 1, 10);
    EXPECT_FALSE(v.ok());
    EXPECT_THAT(v.errors(),
                ElementsAre(FieldError{"password", "must contain a digit"},
                            FieldError{"email", "must be a valid email address"},
                            FieldError{"name", "must be between 1 and 100 characters"},
                            FieldError{"bio", "must be at most 3 characters"},
                            FieldError{"code", "must be exactly 4 characters"},
                            FieldError{"nickname", "must be at least 2 characters"},
                            FieldError{"priority", "must be one of: low, medium, high, urgent"},
                            FieldError{"limit", "must be between 1 and 100"},
                            FieldError{"temperature", "must be between 0 and 2"},
                            FieldError{"size", "must be between 1 and 10"}));
    auto taken = v.take();
    EXPECT_EQ(taken.size(), 10u);
    v.add({"x", "y"});
    EXPECT_THAT(v.take(), ElementsAre(FieldError{"x", "y"}));
}

TEST(ValidatorTest, RangeRejectsNaN) {
    Validator v;
    v.range("ratio", std::numeric_limits<double>::quiet_NaN(), 0.0, 1.0);
    v.range("ratio2", 0.25, 0.0, 0.5);
    EXPECT_THAT(v.take(), ElementsAre(FieldError{"ratio", "must be between 0 and 1"}));
}

}  // namespace
}  // namespace aether::platform::json
