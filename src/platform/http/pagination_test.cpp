// Unit tests for the page/limit query parameters and the pagination object.
#include "platform/http/pagination.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "platform/json/envelope.h"

namespace aether::platform::http {
namespace {

using ::testing::ElementsAre;

Request with_query(std::string query) {
    Request request;
    request.target = "/items" + (query.empty() ? std::string{} : "?" + query);
    return request;
}

json::ClientError rejection(std::string query) {
    try {
        page_request(with_query(std::move(query)));
    } catch (const json::ClientError& error) {
        return error;
    }
    ADD_FAILURE() << "page_request accepted the query";
    return json::ClientError(json::ErrorCode::Internal, "accepted");
}

TEST(PageRequestTest, DefaultsToTheFirstPageOfTwenty) {
    auto page = page_request(with_query(""));
    EXPECT_EQ(page.page, 1);
    EXPECT_EQ(page.limit, kDefaultPageLimit);
    EXPECT_EQ(page.limit, 20);
    EXPECT_EQ(page.offset(), 0);
}

TEST(PageRequestTest, ReadsPageAndLimit) {
    auto page = page_request(with_query("page=3&limit=10&other=x"));
    EXPECT_EQ(page.page, 3);
    EXPECT_EQ(page.limit, 10);
    EXPECT_EQ(page.offset(), 20);
}

TEST(PageRequestTest, AcceptsTheBounds) {
    EXPECT_EQ(page_request(with_query("limit=1")).limit, 1);
    EXPECT_EQ(page_request(with_query("limit=100")).limit, kMaxPageLimit);
    EXPECT_EQ(page_request(with_query("page=1000000000")).page, 1'000'000'000);
}

TEST(PageRequestTest, LimitAboveTheMaximumIsAValidationError) {
    auto error = rejection("limit=101");
    EXPECT_EQ(error.status, 400);
    EXPECT_EQ(error.code, json::ErrorCode::ValidationError);
    EXPECT_THAT(error.details, ElementsAre(json::FieldError{"limit", "must be between 1 and 100"}));
}

TEST(PageRequestTest, ZeroAndNegativeValuesAreRejected) {
    EXPECT_THAT(rejection("page=0").details,
                ElementsAre(json::FieldError{"page", "must be between 1 and 1000000000"}));
    EXPECT_THAT(rejection("page=-2").details,
                ElementsAre(json::FieldError{"page", "must be between 1 and 1000000000"}));
    EXPECT_THAT(rejection("limit=0").details,
                ElementsAre(json::FieldError{"limit", "must be between 1 and 100"}));
    EXPECT_THAT(rejection("page=1000000001").details,
                ElementsAre(json::FieldError{"page", "must be between 1 and 1000000000"}));
}

TEST(PageRequestTest, NonIntegersAreRejected) {
    for (const char* query : {"page=abc", "page=1.5", "page=", "page", "page=2x", "page=+2",
                              "page=%202", "page=99999999999999999999"}) {
        EXPECT_THAT(rejection(query).details,
                    ElementsAre(json::FieldError{"page", "must be an integer"}))
            << query;
    }
}

TEST(PageRequestTest, ReportsBothParametersAtOnce) {
    auto error = rejection("page=zero&limit=500");
    EXPECT_THAT(error.details, ElementsAre(json::FieldError{"page", "must be an integer"},
                                           json::FieldError{"limit", "must be between 1 and 100"}));
}

TEST(PaginationTest, EmptyResult) {
    auto object = pagination(PageRequest{}, 0);
    EXPECT_EQ(object.at("total").as_int64(), 0);
    EXPECT_EQ(object.at("page").as_int64(), 1);
    EXPECT_EQ(object.at("limit").as_int64(), 20);
    EXPECT_EQ(object.at("total_pages").as_int64(), 0);
    EXPECT_FALSE(object.at("has_next").as_bool());
    EXPECT_FALSE(object.at("has_prev").as_bool());
    EXPECT_EQ(object.size(), 6u);
}

TEST(PaginationTest, MiddleAndLastPages) {
    auto middle = pagination(PageRequest{2, 20}, 45);
    EXPECT_EQ(middle.at("total_pages").as_int64(), 3);
    EXPECT_TRUE(middle.at("has_next").as_bool());
    EXPECT_TRUE(middle.at("has_prev").as_bool());

    auto last = pagination(PageRequest{3, 20}, 45);
    EXPECT_FALSE(last.at("has_next").as_bool());
    EXPECT_TRUE(last.at("has_prev").as_bool());

    auto exact = pagination(PageRequest{1, 20}, 40);
    EXPECT_EQ(exact.at("total_pages").as_int64(), 2);
    EXPECT_TRUE(exact.at("has_next").as_bool());
    EXPECT_FALSE(exact.at("has_prev").as_bool());
}

TEST(PaginationTest, PageBeyondTheEnd) {
    auto beyond = pagination(PageRequest{9, 10}, 15);
    EXPECT_EQ(beyond.at("total_pages").as_int64(), 2);
    EXPECT_FALSE(beyond.at("has_next").as_bool());
    EXPECT_TRUE(beyond.at("has_prev").as_bool());
}

}  // namespace
}  // namespace aether::platform::http
