// AMQP URL parsing: defaults, percent-encoding, vhosts, IPv6, and errors that never show the
// password. No broker needed.
#include "platform/bus/rabbitmq_connection.h"

#include <gtest/gtest.h>

namespace aether::platform::bus {
namespace {

TEST(AmqpUrl, ReadsEveryPart) {
    auto endpoint = parse_amqp_url("amqp://alice:pa%40ss@rabbit.example:5673/prod");
    ASSERT_TRUE(endpoint) << endpoint.error();
    EXPECT_EQ(endpoint->host, "rabbit.example");
    EXPECT_EQ(endpoint->port, 5673);
    EXPECT_EQ(endpoint->user, "alice");
    EXPECT_EQ(endpoint->password, "pa@ss");
    EXPECT_EQ(endpoint->vhost, "prod");
    EXPECT_EQ(endpoint->address(), "rabbit.example:5673");
}

TEST(AmqpUrl, DefaultsToGuestOnPort5672AndVhostSlash) {
    for (const char* url : {"amqp://localhost", "amqp://localhost/"}) {
        auto endpoint = parse_amqp_url(url);
        ASSERT_TRUE(endpoint) << url;
        EXPECT_EQ(endpoint->port, 5672);
        EXPECT_EQ(endpoint->user, "guest");
        EXPECT_EQ(endpoint->password, "guest");
        EXPECT_EQ(endpoint->vhost, "/") << url;
    }
    auto encoded = parse_amqp_url("amqp://localhost/%2f");
    ASSERT_TRUE(encoded);
    EXPECT_EQ(encoded->vhost, "/");
}

TEST(AmqpUrl, UserWithoutPasswordAndUnencodedAtInPassword) {
    auto bare = parse_amqp_url("amqp://bob@h");
    ASSERT_TRUE(bare);
    EXPECT_EQ(bare->user, "bob");
    EXPECT_EQ(bare->password, "");
    auto at = parse_amqp_url("amqp://bob:p@ss@h:1");
    ASSERT_TRUE(at);
    EXPECT_EQ(at->password, "p@ss");
    EXPECT_EQ(at->host, "h");
}

TEST(AmqpUrl, Ipv6Host) {
    auto endpoint = parse_amqp_url("amqp://u:p@[::1]:5999/");
    ASSERT_TRUE(endpoint) << endpoint.error();
    EXPECT_EQ(endpoint->host, "::1");
    EXPECT_EQ(endpoint->port, 5999);
    EXPECT_EQ(endpoint->address(), "[::1]:5999");
}

TEST(AmqpUrl, RejectsMalformedUrlsWithoutShowingThePassword) {
    for (const char* url : {
             "http://u:s3cret@h/",           // wrong scheme
             "amqps://u:s3cret@h/",          // TLS
             "amqp://u:s3cret@/",            // no host
             "amqp://u:s3cret@h:notaport/",  // port
             "amqp://u:s3cret@h:0/",
             "amqp://u:s3cret@h:65536/",
             "amqp://u:s3cret@h:/",
             "amqp://u:s3cret@[::1/",  // unclosed bracket
             "amqp://u:s3cret@h/a/b",  // vhost with a raw '/'
             "amqp://u:s3cret@h/%zz",  // bad escape in the vhost
             "amqp://u:s3cret%@h/",    // bad escape in the password
             "amqp://:s3cret@h/",      // empty user
             "amqp://u:s3cret@h/?heartbeat=5",
             "",
         }) {
        auto endpoint = parse_amqp_url(url);
        ASSERT_FALSE(endpoint) << url;
        EXPECT_FALSE(endpoint.error().empty());
        EXPECT_EQ(endpoint.error().find("s3cret"), std::string::npos) << endpoint.error();
    }
}

TEST(AmqpMessage, FindsHeadersByName) {
    AmqpMessage message;
    message.headers.push_back(AmqpHeader{"x-a", std::int64_t{3}});
    message.headers.push_back(AmqpHeader{"x-b", std::string("text")});
    ASSERT_NE(message.header("x-a"), nullptr);
    EXPECT_EQ(std::get<std::int64_t>(message.header("x-a")->value), 3);
    EXPECT_EQ(std::get<std::string>(message.header("x-b")->value), "text");
    EXPECT_EQ(message.header("x-c"), nullptr);
}

}  // namespace
}  // namespace aether::platform::bus
