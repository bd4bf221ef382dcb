// Tests for bcrypt/argon2id hashing, including hashes made by Debian's python3-bcrypt.
#include "platform/auth/password.h"

#include <gtest/gtest.h>

#include "platform/auth/python_test_util.h"

// GCC 12 flags designated initializers that leave defaulted members out (fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace aether::platform::auth {
namespace {

using testing::run_python;

PasswordHasher fast_bcrypt() {
    return PasswordHasher({.scheme = "bcrypt", .bcrypt_cost = 4});
}

PasswordHasher fast_argon2() {
    return PasswordHasher({.scheme = "argon2id",
                           .argon2_time_cost = 1,
                           .argon2_memory_kib = 1024,
                           .argon2_parallelism = 1});
}

TEST(Bcrypt, RoundTrip) {
    const auto hasher = fast_bcrypt();
    const auto hash = hasher.hash("correct horse battery staple");
    ASSERT_TRUE(hash) << password_error_message(hash.error());
    EXPECT_EQ(hash->substr(0, 7), "$2b$04$");
    EXPECT_EQ(hash->size(), 60u);
    EXPECT_TRUE(hasher.verify("correct horse battery staple", *hash));
    EXPECT_FALSE(hasher.verify("correct horse battery stapler", *hash));
    EXPECT_FALSE(hasher.verify("", *hash));
    EXPECT_NE(*hasher.hash("correct horse battery staple"), *hash);  // fresh salt
}

TEST(Bcrypt, DefaultCost12) {
    const PasswordHasher hasher{PasswordSettings{}};
    const auto hash = hasher.hash("s3cret-password");
    ASSERT_TRUE(hash);
    EXPECT_EQ(hash->substr(0, 7), "$2b$12$");
    EXPECT_TRUE(hasher.verify("s3cret-password", *hash));
    EXPECT_FALSE(hasher.needs_rehash(*hash));
}

TEST(Bcrypt, VerifiesPythonBcryptHashesAndAllPrefixes) {
    const std::string password = "pässwörd with spaces & symbols!";
    const std::string made = run_python(
        "import bcrypt, sys; "
        "print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(rounds=4)).decode())",
        {password});
    ASSERT_EQ(made.substr(0, 7), "$2b$04$");
    const auto hasher = fast_bcrypt();
    for (const char* prefix : {"$2b$", "$2a$", "$2y$"}) {
        const std::string variant = prefix + made.substr(4);
        EXPECT_TRUE(hasher.verify(password, variant)) << variant;
        EXPECT_FALSE(hasher.verify(password + "x", variant)) << variant;
    }
    // The buggy $2x$ variant is refused rather than verified with different semantics.
    EXPECT_FALSE(hasher.verify(password, "$2x$" + made.substr(4)));
}

TEST(Bcrypt, PythonBcryptVerifiesOurHashes) {
    const auto hash = fast_bcrypt().hash("from-cpp");
    ASSERT_TRUE(hash);
    EXPECT_EQ(run_python("import bcrypt, sys; "
                         "print(bcrypt.checkpw(sys.argv[1].encode(), sys.argv[2].encode()))",
                         {"from-cpp", *hash}),
              "True");
}

TEST(Bcrypt, SeventyTwoByteLimitIsExplicit) {
    const auto hasher = fast_bcrypt();
    const std::string p72(72, 'a');
    const auto hash = hasher.hash(p72);
    ASSERT_TRUE(hash);
    EXPECT_TRUE(hasher.verify(p72, *hash));

    const auto too_long = hasher.hash(p72 + "b");
    ASSERT_FALSE(too_long);
    EXPECT_EQ(too_long.error(), PasswordError::TooLongForBcrypt);
    // bcrypt itself would ignore the 73rd byte and say yes; we must not.
    EXPECT_FALSE(hasher.verify(p72 + "b", *hash));

    // The limit is in bytes, not characters: 24 x "€" is 72 bytes, 25 is 75.
    std::string euros;
    for (int i = 0; i < 24; ++i) euros += "\xe2\x82\xac";
    EXPECT_TRUE(hasher.hash(euros));
    EXPECT_EQ(hasher.hash(euros + "\xe2\x82\xac").error(), PasswordError::TooLongForBcrypt);
}

TEST(Bcrypt, NulBytesAndEmptyPasswordsAreRejected) {
    const auto hasher = fast_bcrypt();
    const std::string with_nul("abc\0def", 7);
    EXPECT_EQ(hasher.hash(with_nul).error(), PasswordError::ContainsNul);
    EXPECT_EQ(hasher.hash("").error(), PasswordError::Empty);
    const auto hash = hasher.hash("abc");
    ASSERT_TRUE(hash);
    // crypt_r would stop at the NUL and match "abc".
    EXPECT_FALSE(hasher.verify(std::string("abc\0def", 7), *hash));
}

TEST(Bcrypt, GarbageStoredHashesNeverVerify) {
    const auto hasher = fast_bcrypt();
    EXPECT_FALSE(hasher.verify("x", ""));
    EXPECT_FALSE(hasher.verify("x", "*0"));
    EXPECT_FALSE(hasher.verify("x", "$2b$04$short"));
    EXPECT_FALSE(hasher.verify("x", "$1$abcdefgh$abcdefghijklmnopqrstuv"));
    EXPECT_FALSE(hasher.verify("x", std::string(60, '$')));
}

TEST(Bcrypt, InvalidSettings) {
    EXPECT_EQ(PasswordHasher({.scheme = "bcrypt", .bcrypt_cost = 3}).hash("x").error(),
              PasswordError::InvalidSettings);
    EXPECT_EQ(PasswordHasher({.scheme = "md5"}).hash("x").error(), PasswordError::InvalidSettings);
}

TEST(Bcrypt, NeedsRehash) {
    const auto cost4 = *fast_bcrypt().hash("pw");
    const PasswordHasher cost12{PasswordSettings{}};
    EXPECT_TRUE(cost12.needs_rehash(cost4));
    EXPECT_FALSE(fast_bcrypt().needs_rehash(cost4));
    EXPECT_TRUE(fast_bcrypt().needs_rehash(*fast_argon2().hash("pw")));
    EXPECT_TRUE(fast_bcrypt().needs_rehash("garbage"));
}

TEST(Argon2id, RoundTrip) {
    const auto hasher = fast_argon2();
    const auto hash = hasher.hash("correct horse");
    ASSERT_TRUE(hash) << password_error_message(hash.error());
    EXPECT_EQ(hash->substr(0, 30), "$argon2id$v=19$m=1024,t=1,p=1$");
    EXPECT_TRUE(hasher.verify("correct horse", *hash));
    EXPECT_FALSE(hasher.verify("correct horsE", *hash));
    // Over 72 bytes is fine for argon2id.
    const std::string long_pw(200, 'z');
    EXPECT_TRUE(hasher.verify(long_pw, *hasher.hash(long_pw)));
    // A bcrypt-configured hasher still verifies argon2id hashes (scheme migration).
    EXPECT_TRUE(fast_bcrypt().verify("correct horse", *hash));
}

TEST(Argon2id, DefaultParameters) {
    const PasswordHasher hasher({.scheme = "argon2id"});
    const auto hash = hasher.hash("pw");
    ASSERT_TRUE(hash);
    EXPECT_EQ(hash->substr(0, 31), "$argon2id$v=19$m=65536,t=3,p=1$");
    EXPECT_TRUE(hasher.verify("pw", *hash));
    EXPECT_FALSE(hasher.needs_rehash(*hash));
}

TEST(Argon2id, NeedsRehash) {
    const auto weak = *fast_argon2().hash("pw");
    const PasswordHasher strong({.scheme = "argon2id",
                                 .argon2_time_cost = 2,
                                 .argon2_memory_kib = 2048,
                                 .argon2_parallelism = 1});
    EXPECT_FALSE(fast_argon2().needs_rehash(weak));
    EXPECT_TRUE(strong.needs_rehash(weak));
    EXPECT_FALSE(fast_argon2().needs_rehash(*strong.hash("pw")));  // stronger is fine
    EXPECT_TRUE(fast_argon2().needs_rehash(*fast_bcrypt().hash("pw")));
    EXPECT_TRUE(fast_argon2().needs_rehash("$argon2id$v=16$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA"));
    EXPECT_TRUE(fast_argon2().needs_rehash("$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA"));
}

TEST(Argon2id, RejectsNul) {
    EXPECT_EQ(fast_argon2().hash(std::string("a\0b", 3)).error(), PasswordError::ContainsNul);
}

TEST(PasswordHasher, BurnEqualWorkLeavesVerificationIntact) {
    for (const auto& hasher : {fast_bcrypt(), fast_argon2()}) {
        const auto hash = hasher.hash("pw");
        ASSERT_TRUE(hash);
        hasher.burn_equal_work("pw");
        hasher.burn_equal_work(std::string(100, 'x'));
        hasher.burn_equal_work(std::string("a\0b", 3));
        EXPECT_TRUE(hasher.verify("pw", *hash));
    }
}

}  // namespace
}  // namespace aether::platform::auth
