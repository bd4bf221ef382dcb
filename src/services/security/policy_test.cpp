// Unit tests for the security service's password policy, email normalization and role encoding.
#include "services/security/policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace aether::services::security {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> messages(const std::vector<FieldError>& errors) {
    std::vector<std::string> out;
    for (const auto& error : errors) {
        EXPECT_EQ(error.field, "password");
        out.push_back(error.message);
    }
    return out;
}

const PasswordPolicy kPolicy{};

TEST(CheckPasswordTest, AcceptsAGoodPassword) {
    EXPECT_THAT(check_password(kPolicy, "correct horse 9", "ada@example.com"), IsEmpty());
}

TEST(CheckPasswordTest, TooShort) {
    EXPECT_THAT(messages(check_password(kPolicy, "abc123", "")),
                ElementsAre("must be at least 8 characters"));
    EXPECT_THAT(check_password(kPolicy, "abcd1234", ""), IsEmpty());
}

TEST(CheckPasswordTest, MinimumLengthCountsCodePointsNotBytes) {
    // Seven characters in thirteen bytes: too short although longer than 8 bytes.
    std::string seven =
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "1";
    ASSERT_EQ(seven.size(), 13u);
    EXPECT_THAT(messages(check_password(kPolicy, seven, "")),
                ElementsAre("must be at least 8 characters"));
    EXPECT_THAT(check_password(kPolicy, seven + "\xc3\xa9", ""), IsEmpty());
}

TEST(CheckPasswordTest, MaximumIsSeventyTwoBytes) {
    std::string limit = std::string(71, 'a') + "1";
    EXPECT_THAT(check_password(kPolicy, limit, ""), IsEmpty());
    EXPECT_THAT(messages(check_password(kPolicy, limit + "a", "")),
                ElementsAre("must be at most 72 bytes (longer passwords would be truncated by "
                            "bcrypt)"));
}

TEST(CheckPasswordTest, MaximumCountsBytesOfMultiByteCharacters) {
    // 35 two-byte characters and 2 ASCII = 72 bytes is fine; 24 euro signs and 3 digits are 75
    // bytes, too long although only 27 characters.
    std::string two_byte;
    for (int i = 0; i < 35; ++i) two_byte += "\xc3\xa9";
    two_byte += "1a";
    ASSERT_EQ(two_byte.size(), 72u);
    EXPECT_THAT(check_password(kPolicy, two_byte, ""), IsEmpty());

    std::string euros;
    for (int i = 0; i < 24; ++i) euros += "\xe2\x82\xac";
    euros += "123";
    ASSERT_EQ(euros.size(), 75u);
    auto errors = messages(check_password(kPolicy, euros, ""));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_THAT(errors[0], ::testing::HasSubstr("at most 72 bytes"));
}

TEST(CheckPasswordTest, RequiresALetterAndADigit) {
    EXPECT_THAT(messages(check_password(kPolicy, "12345678", "")),
                ElementsAre("must contain a letter"));
    EXPECT_THAT(messages(check_password(kPolicy, "abcdefgh", "")),
                ElementsAre("must contain a digit"));
    EXPECT_THAT(messages(check_password(kPolicy, "!!!!!!!!", "")),
                ElementsAre("must contain a letter", "must contain a digit"));
}

TEST(CheckPasswordTest, NonAsciiCharactersCountAsLetters) {
    EXPECT_THAT(check_password(kPolicy,
                               "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c"
                               "123",
                               ""),
                IsEmpty());
}

TEST(CheckPasswordTest, RulesCanBeTurnedOff) {
    PasswordPolicy lax;
    lax.require_letter = false;
    lax.require_digit = false;
    lax.min_length = 4;
    EXPECT_THAT(check_password(lax, "!!!!", ""), IsEmpty());
    EXPECT_THAT(messages(check_password(lax, "!!!", "")),
                ElementsAre("must be at least 4 characters"));
}

TEST(CheckPasswordTest, RejectsNul) {
    std::string with_nul(
        "abcd\0"
        "1234",
        9);
    EXPECT_THAT(messages(check_password(kPolicy, with_nul, "")),
                ElementsAre("must not contain NUL characters"));
}

TEST(CheckPasswordTest, RejectsThePasswordEqualToTheEmailIgnoringCaseAndSpaces) {
    EXPECT_THAT(messages(check_password(kPolicy, "Ada1@Example.com", " ada1@example.COM ")),
                ElementsAre("must not be the email address"));
    EXPECT_THAT(check_password(kPolicy, "ada1@example.org", "ada1@example.com"), IsEmpty());
    EXPECT_THAT(check_password(kPolicy, "ada1@example.com", ""), IsEmpty());
}

TEST(CheckPasswordTest, ReportsEveryBrokenRule) {
    EXPECT_THAT(messages(check_password(kPolicy, "", "")),
                ElementsAre("must be at least 8 characters", "must contain a letter",
                            "must contain a digit"));
}

TEST(NormalizeEmailTest, TrimsAndLowerCases) {
    EXPECT_EQ(normalize_email("  Ada@Example.COM\t\r\n"), "ada@example.com");
    EXPECT_EQ(normalize_email("ada@example.com"), "ada@example.com");
    EXPECT_EQ(normalize_email("   "), "");
    EXPECT_EQ(normalize_email(""), "");
    EXPECT_EQ(normalize_email("A B@x"), "a b@x");
}

TEST(RolesTest, JoinAndSplitRoundTrip) {
    std::vector<std::string> roles{"admin", "developer", "user"};
    EXPECT_EQ(join_roles(roles), "admin,developer,user");
    EXPECT_EQ(split_roles(join_roles(roles)), roles);
    EXPECT_EQ(join_roles({}), "");
    EXPECT_THAT(split_roles(""), IsEmpty());
    EXPECT_THAT(split_roles("user"), ElementsAre("user"));
}

TEST(RolesTest, SplitSkipsEmptyItems) {
    EXPECT_THAT(split_roles(",admin,,user,"), ElementsAre("admin", "user"));
    EXPECT_THAT(split_roles(","), IsEmpty());
}

}  // namespace
}  // namespace aether::services::security

namespace aether::services::security {
namespace {

TEST(ThrottleKeyForAddress, GroupsIpv6ByPrefixAndKeepsIpv4) {
    EXPECT_EQ(throttle_key_for_address("192.0.2.7"), "192.0.2.7");
    EXPECT_EQ(throttle_key_for_address("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
    EXPECT_EQ(throttle_key_for_address("2001:db8:1:2::1"),
              throttle_key_for_address("2001:db8:1:2:ffff::9"));
    EXPECT_NE(throttle_key_for_address("2001:db8:1:2::1"),
              throttle_key_for_address("2001:db8:1:3::1"));
    EXPECT_EQ(throttle_key_for_address("::ffff:192.0.2.7"), "192.0.2.7");
    EXPECT_EQ(throttle_key_for_address("not-an-address"), "not-an-address");
}

}  // namespace
}  // namespace aether::services::security
