// Unit tests for the router: precedence, backtracking, parameters, 404 vs 405, registration errors.
#include "platform/http/router.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <stdexcept>

namespace aether::platform::http {
namespace {

using Outcome = RouteMatch::Outcome;
using Params = std::vector<std::pair<std::string, std::string>>;

// A handler that answers with its own name, so a test can tell which one matched.
Handler named(std::string name) {
    return [name](Request&) -> boost::asio::awaitable<Response> {
        co_return Response::text(200, name);
    };
}

std::string run(const Handler& handler) {
    boost::asio::io_context io;
    Request request;
    std::string body;
    boost::asio::co_spawn(io, handler(request), [&](std::exception_ptr error, Response response) {
        if (error) std::rethrow_exception(error);
        body = response.body;
    });
    io.run();
    return body;
}

TEST(RouterTest, StaticSegmentWinsOverParameter) {
    Router router;
    router.add(Method::Get, "/users/{id}", named("by-id"));
    router.add(Method::Get, "/users/me", named("me"));
    auto me = router.match(Method::Get, "/users/me");
    ASSERT_EQ(me.outcome, Outcome::Found);
    EXPECT_EQ(me.route_template, "/users/me");
    EXPECT_TRUE(me.params.empty());
    EXPECT_EQ(run(*me.handler), "me");

    auto other = router.match(Method::Get, "/users/42");
    ASSERT_EQ(other.outcome, Outcome::Found);
    EXPECT_EQ(other.route_template, "/users/{id}");
    EXPECT_EQ(other.params, (Params{{"id", "42"}}));
    EXPECT_EQ(run(*other.handler), "by-id");
}

TEST(RouterTest, BacktracksFromADeadStaticBranchToTheParameter) {
    Router router;
    router.add(Method::Get, "/a/b/c", named("static"));
    router.add(Method::Get, "/a/{x}/d", named("param"));
    auto match = router.match(Method::Get, "/a/b/d");
    ASSERT_EQ(match.outcome, Outcome::Found);
    EXPECT_EQ(match.route_template, "/a/{x}/d");
    EXPECT_EQ(match.params, (Params{{"x", "b"}}));
    EXPECT_EQ(run(*match.handler), "param");
    EXPECT_EQ(router.match(Method::Get, "/a/b/c").route_template, "/a/b/c");
}

TEST(RouterTest, ParamsCapturedOnAnAbandonedBranchAreDropped) {
    Router router;
    router.add(Method::Get, "/s/a/{k}/end", named("first"));
    router.add(Method::Get, "/s/{m}/b/x", named("second"));
    auto match = router.match(Method::Get, "/s/a/b/x");
    ASSERT_EQ(match.outcome, Outcome::Found);
    EXPECT_EQ(match.route_template, "/s/{m}/b/x");
    EXPECT_EQ(match.params, (Params{{"m", "a"}}));
}

TEST(RouterTest, BacktracksBetweenNestedParameters) {
    Router router;
    router.add(Method::Get, "/p/{x}/q", named("q"));
    router.add(Method::Get, "/p/{x}/{y}/z", named("z"));
    auto match = router.match(Method::Get, "/p/1/q/z");
    ASSERT_EQ(match.outcome, Outcome::Found);
    EXPECT_EQ(match.route_template, "/p/{x}/{y}/z");
    EXPECT_EQ(match.params, (Params{{"x", "1"}, {"y", "q"}}));
}

TEST(RouterTest, ParametersArePercentDecoded) {
    Router router;
    router.add(Method::Get, "/files/{name}", named("file"));
    auto match = router.match(Method::Get, "/files/a%20b%2Fc");
    ASSERT_EQ(match.outcome, Outcome::Found);
    EXPECT_EQ(match.params, (Params{{"name", "a b/c"}}));
}

TEST(RouterTest, MalformedPercentEncodingInAParameterIsNotFound) {
    Router router;
    router.add(Method::Get, "/files/{name}", named("file"));
    EXPECT_EQ(router.match(Method::Get, "/files/%zz").outcome, Outcome::NotFound);
    EXPECT_EQ(router.match(Method::Get, "/files/abc%").outcome, Outcome::NotFound);
}

TEST(RouterTest, TrailingAndRepeatedSlashesAreIgnored) {
    Router router;
    router.add(Method::Get, "/users/{id}", named("user"));
    router.add(Method::Get, "/health", named("health"));
    auto trailing = router.match(Method::Get, "/users/7/");
    ASSERT_EQ(trailing.outcome, Outcome::Found);
    EXPECT_EQ(trailing.params, (Params{{"id", "7"}}));
    EXPECT_EQ(router.match(Method::Get, "/health/").outcome, Outcome::Found);
    EXPECT_EQ(router.match(Method::Get, "//health").outcome, Outcome::Found);
}

TEST(RouterTest, RootRoute) {
    Router router;
    router.add(Method::Get, "/", named("root"));
    auto match = router.match(Method::Get, "/");
    ASSERT_EQ(match.outcome, Outcome::Found);
    EXPECT_EQ(match.route_template, "/");
    EXPECT_EQ(router.match(Method::Get, "/x").outcome, Outcome::NotFound);
}

TEST(RouterTest, UnknownPathAndHandlerlessPrefixAreNotFound) {
    Router router;
    router.add(Method::Get, "/a/b/c", named("abc"));
    EXPECT_EQ(router.match(Method::Get, "/nope").outcome, Outcome::NotFound);
    auto prefix = router.match(Method::Get, "/a/b");
    EXPECT_EQ(prefix.outcome, Outcome::NotFound);
    EXPECT_EQ(prefix.handler, nullptr);
    EXPECT_TRUE(prefix.allowed.empty());
    EXPECT_EQ(router.match(Method::Get, "/a/b/c/d").outcome, Outcome::NotFound);
    EXPECT_EQ(router.match(Method::Get, "/").outcome, Outcome::NotFound);
}

TEST(RouterTest, WrongMethodIsMethodNotAllowedWithHeadImpliedByGet) {
    Router router;
    router.add(Method::Get, "/items/{id}", named("get"));
    router.add(Method::Delete, "/items/{id}", named("delete"));
    router.add(Method::Post, "/items/{id}", named("post"));
    auto match = router.match(Method::Put, "/items/1");
    ASSERT_EQ(match.outcome, Outcome::MethodNotAllowed);
    EXPECT_EQ(match.handler, nullptr);
    EXPECT_EQ(match.route_template, "/items/{id}");
    EXPECT_EQ(match.allowed,
              (std::vector<Method>{Method::Get, Method::Post, Method::Delete, Method::Head}));
    EXPECT_EQ(allow_header(match.allowed), "GET, POST, DELETE, HEAD");
}

TEST(RouterTest, HeadFallsBackToGet) {
    Router router;
    router.add(Method::Get, "/items", named("list"));
    auto match = router.match(Method::Head, "/items");
    ASSERT_EQ(match.outcome, Outcome::Found);
    EXPECT_EQ(run(*match.handler), "list");
}

TEST(RouterTest, ExplicitHeadRouteWinsAndIsListedOnce) {
    Router router;
    router.add(Method::Get, "/items", named("list"));
    router.add(Method::Head, "/items", named("head"));
    EXPECT_EQ(run(*router.match(Method::Head, "/items").handler), "head");
    auto match = router.match(Method::Post, "/items");
    ASSERT_EQ(match.outcome, Outcome::MethodNotAllowed);
    EXPECT_EQ(match.allowed, (std::vector<Method>{Method::Get, Method::Head}));
}

TEST(RouterTest, HeadIsNotAllowedWithoutGet) {
    Router router;
    router.add(Method::Post, "/login", named("login"));
    auto match = router.match(Method::Head, "/login");
    ASSERT_EQ(match.outcome, Outcome::MethodNotAllowed);
    EXPECT_EQ(match.allowed, (std::vector<Method>{Method::Post}));
    EXPECT_EQ(allow_header(match.allowed), "POST");
}

TEST(RouterTest, DuplicateRouteThrows) {
    Router router;
    router.add(Method::Get, "/items/{id}", named("a"));
    EXPECT_THROW(router.add(Method::Get, "/items/{id}", named("b")), std::invalid_argument);
    // The same template after normalization is the same route.
    EXPECT_THROW(router.add(Method::Get, "/items/{id}/", named("c")), std::invalid_argument);
    // Another method on the same template is fine.
    EXPECT_NO_THROW(router.add(Method::Put, "/items/{id}", named("d")));
    EXPECT_EQ(run(*router.match(Method::Get, "/items/1").handler), "a");
}

TEST(RouterTest, ConflictingParameterNamesThrow) {
    Router router;
    router.add(Method::Get, "/items/{id}", named("a"));
    EXPECT_THROW(router.add(Method::Delete, "/items/{item_id}", named("b")), std::invalid_argument);
}

TEST(RouterTest, MalformedTemplatesThrow) {
    Router router;
    EXPECT_THROW(router.add(Method::Get, "", named("x")), std::invalid_argument);
    EXPECT_THROW(router.add(Method::Get, "items", named("x")), std::invalid_argument);
    EXPECT_THROW(router.add(Method::Get, "/items/{id", named("x")), std::invalid_argument);
    EXPECT_THROW(router.add(Method::Get, "/items/id}", named("x")), std::invalid_argument);
    EXPECT_THROW(router.add(Method::Get, "/items/{}", named("x")), std::invalid_argument);
    EXPECT_THROW(router.add(Method::Get, "/items/a{id}", named("x")), std::invalid_argument);
    EXPECT_THROW(router.add(Method::Get, "/items/{id}x", named("x")), std::invalid_argument);
    EXPECT_TRUE(router.routes().empty());
}

TEST(RouterTest, RoutesListsNormalizedTemplatesInRegistrationOrder) {
    Router router;
    router.add(Method::Get, "/items", named("a"));
    router.add(Method::Post, "/items/", named("b"));
    router.add(Method::Delete, "/items/{id}", named("c"));
    router.add(Method::Get, "/", named("d"));
    auto routes = router.routes();
    std::vector<std::pair<Method, std::string>> expected{{Method::Get, "/items"},
                                                         {Method::Post, "/items"},
                                                         {Method::Delete, "/items/{id}"},
                                                         {Method::Get, "/"}};
    EXPECT_EQ(routes, expected);
}

TEST(RouterTest, MovedRouterKeepsItsRoutes) {
    Router router;
    router.add(Method::Get, "/items/{id}", named("a"));
    Router moved(std::move(router));
    auto match = moved.match(Method::Get, "/items/9");
    ASSERT_EQ(match.outcome, Outcome::Found);
    EXPECT_EQ(match.params, (Params{{"id", "9"}}));
    EXPECT_EQ(moved.routes().size(), 1u);
}

TEST(RouterTest, AllowHeaderOfNothingIsEmpty) {
    EXPECT_EQ(allow_header({}), "");
}

}  // namespace
}  // namespace aether::platform::http
