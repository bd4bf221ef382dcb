// Unit tests of the task domain: validation details, dates, completion, diffs, ETags, queries.
#include "services/tasks/task.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>

#include "services/tasks/store.h"

namespace aether::services::tasks {
namespace {

boost::json::object object(std::string_view text) {
    return boost::json::parse(text).as_object();
}

std::vector<std::string> fields_of(const std::vector<FieldError>& errors) {
    std::vector<std::string> fields;
    for (const auto& error : errors) fields.push_back(error.field);
    return fields;
}

bool has_field(const std::vector<FieldError>& errors, std::string_view field) {
    return std::any_of(errors.begin(), errors.end(),
                       [&](const FieldError& error) { return error.field == field; });
}

std::string message_for(const std::vector<FieldError>& errors, std::string_view field) {
    for (const auto& error : errors) {
        if (error.field == field) return error.message;
    }
    return {};
}

http::Request request_for(std::string target) {
    http::Request request;
    request.target = std::move(target);
    return request;
}

std::string normalized(std::string_view text) {
    auto parsed = parse_time(text);
    return parsed ? format_time(parsed->time) : "invalid";
}

// ---------------------------------------------------------------- times

TEST(ParseTime, AcceptsDatesAndRfc3339InAnyOffset) {
    EXPECT_EQ(normalized("2025-03-01"), "2025-03-01T00:00:00.000Z");
    EXPECT_TRUE(parse_time("2025-03-01")->date_only);
    EXPECT_EQ(normalized("2025-03-01T12:34:56Z"), "2025-03-01T12:34:56.000Z");
    EXPECT_FALSE(parse_time("2025-03-01T12:34:56Z")->date_only);
    EXPECT_EQ(normalized("2025-03-01t12:34:56.7z"), "2025-03-01T12:34:56.700Z");
    EXPECT_EQ(normalized("2025-03-01 12:34:56.123456789Z"), "2025-03-01T12:34:56.123Z");
    EXPECT_EQ(normalized("2025-03-01T01:30:00+02:00"), "2025-02-28T23:30:00.000Z");
    EXPECT_EQ(normalized("2025-12-31T23:30:00-01:15"), "2026-01-01T00:45:00.000Z");
    EXPECT_EQ(normalized("2024-02-29"), "2024-02-29T00:00:00.000Z");
}

TEST(ParseTime, FarYearsFormatAndClampToFourDigits) {
    // Past 2262 a nanosecond time_point overflows; these must not go through one.
    EXPECT_EQ(normalized("2999-01-01"), "2999-01-01T00:00:00.000Z");
    EXPECT_EQ(normalized("9999-12-31T23:59:59.999Z"), "9999-12-31T23:59:59.999Z");
    EXPECT_EQ(normalized("9999-12-31T23:00:00-05:00"), "9999-12-31T23:59:59.999Z");
    EXPECT_EQ(normalized("0000-01-01T00:30:00+01:00"), "0000-01-01T00:00:00.000Z");
    EXPECT_EQ(normalized("1969-12-31T23:59:59.999Z"), "1969-12-31T23:59:59.999Z");
    auto request = request_for("/api/v1/tasks/stats?end_date=9999-12-31");
    auto query = read_stats_query(request);
    ASSERT_TRUE(query);
    EXPECT_EQ(query->until, "9999-12-31T23:59:59.999Z");
}

TEST(ParseTime, RejectsImpossibleOrMalformedTimes) {
    for (std::string_view text : {"",
                                  "2025",
                                  "2025-3-01",
                                  "2025-02-30",
                                  "2023-02-29",
                                  "2025-13-01",
                                  "2025-00-10",
                                  "2025-01-01T24:00:00Z",
                                  "2025-01-01T12:60:00Z",
                                  "2025-01-01T12:00:60Z",
                                  "2025-01-01T12:00:00",
                                  "2025-01-01T12:00Z",
                                  "2025-01-01T12:00:00.Z",
                                  "2025-01-01T12:00:00+0200",
                                  "2025-01-01T12:00:00+24:00",
                                  "2025-01-01T12:00:00Zjunk",
                                  "2025-01-01x",
                                  "tomorrow",
                                  "2025-01-01T12:00:00.1234567890Z",
                                  "２０２５-01-01"}) {
        EXPECT_FALSE(parse_time(text).has_value()) << text;
    }
}

// ---------------------------------------------------------------- bodies

TEST(ReadTaskInput, CreateNeedsOnlyATitleAndFillsDefaults) {
    auto input = read_task_input(object(R"({"title":"  Write the report  "})"), InputMode::Create);
    ASSERT_TRUE(input);
    auto task = new_task(*input, "task_1", "usr_a", "2025-01-01T00:00:00.000Z");
    EXPECT_EQ(task.title, "Write the report");
    EXPECT_EQ(task.status, "pending");
    EXPECT_EQ(task.priority, "medium");
    EXPECT_EQ(task.description, "");
    EXPECT_FALSE(task.category);
    EXPECT_FALSE(task.due_date);
    EXPECT_TRUE(task.tags.empty());
    EXPECT_EQ(task.progress, 0);
    EXPECT_EQ(task.created_by, "usr_a");
    EXPECT_EQ(task.created_at, task.updated_at);
    EXPECT_EQ(task.version, 1);
}

TEST(ReadTaskInput, CreateReadsEveryContractField) {
    auto input = read_task_input(
        object(R"({"title":"T","description":"d","priority":"urgent","category":"ops",
                   "due_date":"2025-05-01","tags":["a"," b ","a"],"assignee":"usr_b",
                   "estimated_hours":2.5,"status":"completed","progress":90,"actual_hours":3})"),
        InputMode::Create);
    ASSERT_TRUE(input);
    auto task = new_task(*input, "task_1", "usr_a", "2025-01-01T00:00:00.000Z");
    EXPECT_EQ(task.description, "d");
    EXPECT_EQ(task.priority, "urgent");
    EXPECT_EQ(task.category, "ops");
    EXPECT_EQ(task.due_date, "2025-05-01T00:00:00.000Z");
    EXPECT_EQ(task.tags, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(task.assignee, "usr_b");
    EXPECT_EQ(task.estimated_hours, 2.5);
    // A new task is pending at 0 % whatever the body says.
    EXPECT_EQ(task.status, "pending");
    EXPECT_EQ(task.progress, 0);
    EXPECT_FALSE(task.actual_hours);
}

TEST(ReadTaskInput, ReportsEveryBadFieldAtOnce) {
    auto input = read_task_input(
        object(R"({"title":"   ","description":7,"priority":"critical","category":["x"],
                   "due_date":"2025-02-30","tags":"a,b","assignee":false,
                   "estimated_hours":-1})"),
        InputMode::Create);
    ASSERT_FALSE(input);
    auto fields = fields_of(input.error());
    for (auto field : {"title", "description", "priority", "category", "due_date", "tags",
                       "assignee", "estimated_hours"}) {
        EXPECT_TRUE(has_field(input.error(), field)) << field;
    }
    EXPECT_EQ(fields.size(), 8u);
    EXPECT_EQ(message_for(input.error(), "title"), "must not be empty");
    EXPECT_EQ(message_for(input.error(), "priority"), "must be one of: low, medium, high, urgent");
}

TEST(ReadTaskInput, MissingOrNullTitle) {
    auto missing = read_task_input(object(R"({"priority":"low"})"), InputMode::Create);
    ASSERT_FALSE(missing);
    EXPECT_EQ(message_for(missing.error(), "title"), "is required");
    auto null_title = read_task_input(object(R"({"title":null})"), InputMode::Create);
    ASSERT_FALSE(null_title);
    EXPECT_EQ(message_for(null_title.error(), "title"), "must not be null");
    auto number = read_task_input(object(R"({"title":5})"), InputMode::Create);
    ASSERT_FALSE(number);
    EXPECT_EQ(message_for(number.error(), "title"), "must be a string");
}

TEST(ReadTaskInput, LengthsCountCharactersNotBytes) {
    std::string ok_title;
    for (int i = 0; i < 200; ++i) ok_title += "é";
    boost::json::object body;
    body["title"] = ok_title;
    EXPECT_TRUE(read_task_input(body, InputMode::Create));
    body["title"] = ok_title + "x";
    auto long_title = read_task_input(body, InputMode::Create);
    ASSERT_FALSE(long_title);
    EXPECT_EQ(message_for(long_title.error(), "title"), "must be between 1 and 200 characters");
    body["title"] = "t";
    body["description"] = std::string(kMaxDescription + 1, 'd');
    body["category"] = std::string(kMaxCategory + 1, 'c');
    body["assignee"] = std::string(kMaxAssignee + 1, 'a');
    auto long_fields = read_task_input(body, InputMode::Create);
    ASSERT_FALSE(long_fields);
    EXPECT_EQ(fields_of(long_fields.error()),
              (std::vector<std::string>{"description", "category", "assignee"}));
}

TEST(ReadTaskInput, RejectsNulCharacters) {
    auto input =
        read_task_input(object(R"({"title":"a\u0000b","tags":["x\u0000"]})"), InputMode::Create);
    ASSERT_FALSE(input);
    EXPECT_EQ(message_for(input.error(), "title"), "must not contain NUL characters");
    EXPECT_TRUE(has_field(input.error(), "tags[0]"));
}

TEST(ReadTaskInput, TagRules) {
    auto bad = read_task_input(object(R"({"title":"t","tags":["ok",3,"",
                                  "has,comma","xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]})"),
                               InputMode::Create);
    ASSERT_FALSE(bad);
    EXPECT_EQ(fields_of(bad.error()),
              (std::vector<std::string>{"tags[1]", "tags[2]", "tags[3]", "tags[4]"}));
    boost::json::array many;
    for (int i = 0; i <= static_cast<int>(kMaxTags); ++i)
        many.emplace_back("t" + std::to_string(i));
    boost::json::object body;
    body["title"] = "t";
    body["tags"] = many;
    auto too_many = read_task_input(body, InputMode::Create);
    ASSERT_FALSE(too_many);
    EXPECT_EQ(message_for(too_many.error(), "tags"), "must have at most 20 tags");
}

TEST(ReadTaskInput, UpdateReadsStatusProgressAndHours) {
    auto input = read_task_input(
        object(R"({"status":"in_progress","progress":40,"actual_hours":1.25})"), InputMode::Update);
    ASSERT_TRUE(input);
    EXPECT_EQ(**input->status, "in_progress");
    EXPECT_EQ(**input->progress, 40);
    EXPECT_EQ(**input->actual_hours, 1.25);
    EXPECT_FALSE(input->title);
    EXPECT_TRUE(read_task_input(object(R"({"progress":50.0})"), InputMode::Update));
}

TEST(ReadTaskInput, UpdateRejectsBadStatusProgressAndNulls) {
    auto input =
        read_task_input(object(R"({"status":"done","progress":101,"actual_hours":"2","title":null,
                   "priority":null})"),
                        InputMode::Update);
    ASSERT_FALSE(input);
    EXPECT_EQ(message_for(input.error(), "status"),
              "must be one of: pending, in_progress, completed, blocked");
    EXPECT_EQ(message_for(input.error(), "progress"), "must be an integer between 0 and 100");
    EXPECT_EQ(message_for(input.error(), "actual_hours"), "must be a number");
    EXPECT_EQ(message_for(input.error(), "title"), "must not be null");
    EXPECT_EQ(message_for(input.error(), "priority"), "must not be null");
    for (auto progress :
         {R"({"progress":50.5})", R"({"progress":-1})", R"({"progress":"5"})",
          R"({"progress":null})", R"({"progress":true})", R"({"progress":18446744073709551615})"}) {
        auto result = read_task_input(object(progress), InputMode::Update);
        ASSERT_FALSE(result) << progress;
        EXPECT_TRUE(has_field(result.error(), "progress")) << progress;
    }
}

TEST(ReadTaskInput, NullClearsNullableFieldsAndEmptyTextMeansNull) {
    auto input = read_task_input(object(R"({"category":null,"assignee":"","due_date":null,
                                            "description":null,"tags":null,
                                            "estimated_hours":null})"),
                                 InputMode::Update);
    ASSERT_TRUE(input);
    Task task;
    task.category = "c";
    task.assignee = "a";
    task.due_date = "2025-01-01T00:00:00.000Z";
    task.description = "d";
    task.tags = {"x"};
    task.estimated_hours = 3;
    apply_update(*input, task, "usr_a", "2025-01-02T00:00:00.000Z");
    EXPECT_FALSE(task.category);
    EXPECT_FALSE(task.assignee);
    EXPECT_FALSE(task.due_date);
    EXPECT_EQ(task.description, "");
    EXPECT_TRUE(task.tags.empty());
    EXPECT_FALSE(task.estimated_hours);
}

TEST(ReadCompletionAndComment, Rules) {
    EXPECT_FALSE(*read_completion(object("{}")));
    EXPECT_EQ(*read_completion(object(R"({"actual_hours":4})")), 4.0);
    auto bad = read_completion(object(R"({"actual_hours":-2})"));
    ASSERT_FALSE(bad);
    EXPECT_TRUE(has_field(bad.error(), "actual_hours"));
    EXPECT_EQ(*read_comment(object(R"({"text":" looks good "})")), "looks good");
    for (auto body :
         {R"({})", R"({"text":""})", R"({"text":"  "})", R"({"text":1})", R"({"text":null})"}) {
        auto result = read_comment(object(body));
        ASSERT_FALSE(result) << body;
        EXPECT_EQ(fields_of(result.error()), (std::vector<std::string>{"text"})) << body;
    }
    boost::json::object long_text;
    long_text["text"] = std::string(kMaxCommentText + 1, 'x');
    EXPECT_FALSE(read_comment(long_text));
}

// ---------------------------------------------------------------- changes

Task sample_task() {
    Task task;
    task.id = "task_1";
    task.title = "T";
    task.created_by = "usr_a";
    task.created_at = "2025-01-01T00:00:00.000Z";
    task.updated_at = task.created_at;
    return task;
}

TEST(ApplyUpdate, CompletingAndReopeningKeepCompletionFieldsConsistent) {
    Task task = sample_task();
    auto completing = read_task_input(object(R"({"status":"completed"})"), InputMode::Update);
    ASSERT_TRUE(completing);
    apply_update(*completing, task, "usr_b", "2025-01-01T06:30:00.000Z");
    EXPECT_EQ(task.status, "completed");
    EXPECT_EQ(task.completed_at, "2025-01-01T06:30:00.000Z");
    EXPECT_EQ(task.completed_by, "usr_b");
    EXPECT_DOUBLE_EQ(*task.completion_hours, 6.5);
    EXPECT_EQ(task.progress, 100);

    auto reopening = read_task_input(object(R"({"status":"blocked"})"), InputMode::Update);
    ASSERT_TRUE(reopening);
    apply_update(*reopening, task, "usr_b", "2025-01-02T00:00:00.000Z");
    EXPECT_EQ(task.status, "blocked");
    EXPECT_FALSE(task.completed_at);
    EXPECT_FALSE(task.completed_by);
    EXPECT_FALSE(task.completion_hours);

    auto explicit_progress =
        read_task_input(object(R"({"status":"completed","progress":80})"), InputMode::Update);
    ASSERT_TRUE(explicit_progress);
    apply_update(*explicit_progress, task, "usr_b", "2025-01-03T00:00:00.000Z");
    EXPECT_EQ(task.progress, 80);
}

TEST(Complete, SetsCompletionAndHours) {
    Task task = sample_task();
    complete(task, 7.5, "usr_c", "2025-01-03T00:00:00.000Z");
    EXPECT_EQ(task.status, "completed");
    EXPECT_EQ(task.completed_by, "usr_c");
    EXPECT_EQ(task.actual_hours, 7.5);
    EXPECT_DOUBLE_EQ(*task.completion_hours, 48.0);
    Task other = sample_task();
    other.actual_hours = 2;
    complete(other, std::nullopt, "usr_c", "2025-01-01T00:00:00.000Z");
    EXPECT_EQ(other.actual_hours, 2.0);
}

TEST(Diff, ListsChangedFieldsWithJsonValuesAndHistoryActions) {
    Task before = sample_task();
    Task after = before;
    after.status = "in_progress";
    after.priority = "high";
    after.tags = {"x", "y"};
    after.estimated_hours = 3;
    after.progress = 10;
    auto changes = diff(before, after);
    ASSERT_EQ(changes.size(), 5u);
    EXPECT_EQ(changes[0].field, "status");
    EXPECT_EQ(changes[0].from, boost::json::value("pending"));
    EXPECT_EQ(changes[0].to, boost::json::value("in_progress"));
    EXPECT_EQ(changes[2].field, "tags");
    EXPECT_EQ(boost::json::serialize(changes[2].to), R"(["x","y"])");
    EXPECT_EQ(boost::json::serialize(changes[3].from), "null");
    EXPECT_EQ(boost::json::serialize(changes[3].to), "3");
    auto history = history_for("task_1", changes, "usr_a", "2025-01-01T00:00:01.000Z");
    ASSERT_EQ(history.size(), 5u);
    EXPECT_EQ(history[0].action, "status_changed");
    EXPECT_EQ(history[1].action, "updated");
    EXPECT_EQ(history[1].field, "priority");
    EXPECT_EQ(history[1].from, R"("medium")");
    EXPECT_EQ(history[1].to, R"("high")");
    auto json = to_json(history[0]);
    EXPECT_EQ(json["from"], boost::json::value("pending"));
    EXPECT_EQ(json["user_id"], boost::json::value("usr_a"));
    EXPECT_TRUE(diff(before, before).empty());
}

TEST(ToJson, HasEveryFieldAndWritesWholeHoursAsIntegers) {
    Task task = sample_task();
    task.estimated_hours = 3;
    task.actual_hours = 2.5;
    auto text = boost::json::serialize(to_json(task));
    EXPECT_NE(text.find(R"("estimated_hours":3,)"), std::string::npos) << text;
    EXPECT_NE(text.find(R"("actual_hours":2.5)"), std::string::npos) << text;
    auto json = to_json(task);
    for (auto key :
         {"id", "title", "description", "status", "priority", "category", "assignee", "due_date",
          "tags", "estimated_hours", "actual_hours", "progress", "created_by", "created_at",
          "updated_at", "completed_at", "completed_by", "version"}) {
        EXPECT_TRUE(json.contains(key)) << key;
    }
}

// ---------------------------------------------------------------- ETags and authorization

TEST(IfMatch, MatchesCurrentVersionStarOrAbsence) {
    EXPECT_EQ(etag(7), "\"7\"");
    EXPECT_TRUE(if_match_allows("", 7));
    EXPECT_TRUE(if_match_allows("*", 7));
    EXPECT_TRUE(if_match_allows("\"7\"", 7));
    EXPECT_TRUE(if_match_allows("W/\"7\"", 7));
    EXPECT_TRUE(if_match_allows("\"5\", \"7\"", 7));
    EXPECT_FALSE(if_match_allows("\"6\"", 7));
    EXPECT_FALSE(if_match_allows("\"77\"", 7));
    EXPECT_FALSE(if_match_allows("garbage", 7));
    EXPECT_FALSE(if_match_allows("\"\"", 7));
}

TEST(MayModify, CreatorAssigneeOrAdmin) {
    Task task = sample_task();
    task.assignee = "bob@example.com";
    auth::Principal creator{"usr_a", "a@example.com", {"user"}, {}, "", "token"};
    auth::Principal assignee{"usr_b", "bob@example.com", {"user"}, {}, "", "token"};
    auth::Principal stranger{"usr_c", "c@example.com", {"developer"}, {}, "", "token"};
    auth::Principal admin{"usr_d", "d@example.com", {"admin"}, {}, "", "token"};
    EXPECT_TRUE(may_modify(creator, task));
    EXPECT_TRUE(may_modify(assignee, task));
    EXPECT_FALSE(may_modify(stranger, task));
    EXPECT_TRUE(may_modify(admin, task));
    task.assignee = "usr_c";
    EXPECT_TRUE(may_modify(stranger, task));
    auth::Principal nobody{"", "", {"user"}, {}, "", "token"};
    task.created_by = "";
    task.assignee.reset();
    EXPECT_FALSE(may_modify(nobody, task));
}

TEST(PlausibleTaskId, ShapeOnly) {
    EXPECT_TRUE(plausible_task_id("task_01JABCDEFGHJKMNPQRSTVWXYZ0"));
    EXPECT_FALSE(plausible_task_id("stats"));
    EXPECT_FALSE(plausible_task_id("usr_01JABC"));
    EXPECT_FALSE(plausible_task_id("task_a b"));
    EXPECT_FALSE(plausible_task_id("task_" + std::string(100, 'a')));
}

// ---------------------------------------------------------------- list and stats queries

TEST(ListQuery, Defaults) {
    auto query = read_list_query(request_for("/api/v1/tasks"));
    ASSERT_TRUE(query);
    EXPECT_EQ(query->page.page, 1);
    EXPECT_EQ(query->page.limit, 20);
    EXPECT_EQ(query->sort, SortField::CreatedAt);
    EXPECT_TRUE(query->descending);
    EXPECT_FALSE(query->status);
    EXPECT_TRUE(query->tags.empty());
}

TEST(ListQuery, ReadsEveryFilter) {
    auto query = read_list_query(
        request_for("/api/v1/tasks?status=blocked&priority=high&category=ops&assignee=usr_b"
                    "&tags=a,%20b,,a&due_before=2025-06-01&page=3&limit=100&sort=due_date"));
    ASSERT_TRUE(query);
    EXPECT_EQ(query->status, "blocked");
    EXPECT_EQ(query->priority, "high");
    EXPECT_EQ(query->category, "ops");
    EXPECT_EQ(query->assignee, "usr_b");
    EXPECT_EQ(query->tags, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(query->due_before, "2025-06-01T00:00:00.000Z");
    EXPECT_EQ(query->page.page, 3);
    EXPECT_EQ(query->page.limit, 100);
    EXPECT_EQ(query->sort, SortField::DueDate);
    EXPECT_FALSE(query->descending);
    auto ordered = read_list_query(request_for("/api/v1/tasks?sort=title&order=desc"));
    ASSERT_TRUE(ordered);
    EXPECT_TRUE(ordered->descending);
    auto oldest = read_list_query(request_for("/api/v1/tasks?order=asc"));
    ASSERT_TRUE(oldest);
    EXPECT_FALSE(oldest->descending);
}

TEST(ListQuery, ReportsEveryBadParameterAtOnce) {
    auto query = read_list_query(
        request_for("/api/v1/tasks?status=done&priority=p0&limit=101&page=0&sort=owner"
                    "&order=up&due_before=soon"));
    ASSERT_FALSE(query);
    for (auto field : {"status", "priority", "limit", "page", "sort", "order", "due_before"}) {
        EXPECT_TRUE(has_field(query.error(), field)) << field;
    }
    EXPECT_EQ(query.error().size(), 7u);
    EXPECT_FALSE(read_list_query(request_for("/api/v1/tasks?page=x")));
    EXPECT_FALSE(read_list_query(request_for("/api/v1/tasks?category=a%00b")));
}

TEST(StatsQuery, EndDateIsInclusive) {
    auto query = read_stats_query(
        request_for("/api/v1/tasks/stats?user_id=usr_a&start_date=2025-01-01&end_date=2025-01-31"));
    ASSERT_TRUE(query);
    EXPECT_EQ(query->user_id, "usr_a");
    EXPECT_EQ(query->since, "2025-01-01T00:00:00.000Z");
    EXPECT_EQ(query->until, "2025-02-01T00:00:00.000Z");
    auto exact = read_stats_query(request_for("/api/v1/tasks/stats?end_date=2025-01-31T10:00:00Z"));
    ASSERT_TRUE(exact);
    EXPECT_EQ(exact->until, "2025-01-31T10:00:00.001Z");
    auto none = read_stats_query(request_for("/api/v1/tasks/stats"));
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->user_id || none->since || none->until);
}

TEST(StatsQuery, RejectsBadDatesAndReversedRange) {
    auto bad =
        read_stats_query(request_for("/api/v1/tasks/stats?start_date=x&end_date=2025-13-01"));
    ASSERT_FALSE(bad);
    EXPECT_EQ(fields_of(bad.error()), (std::vector<std::string>{"start_date", "end_date"}));
    auto reversed = read_stats_query(
        request_for("/api/v1/tasks/stats?start_date=2025-02-01&end_date=2025-01-01"));
    ASSERT_FALSE(reversed);
    EXPECT_EQ(message_for(reversed.error(), "end_date"), "must not be before start_date");
}

TEST(StatsJson, AggregatesGroups) {
    std::vector<StatsGroup> groups = {
        {"completed", "high", 2, 0, 10.0, 2},
        {"pending", "high", 3, 2, 0, 0},
        {"blocked", "low", 1, 1, 0, 0},
    };
    auto stats = stats_json(groups);
    EXPECT_EQ(stats["total"], boost::json::value(6));
    EXPECT_EQ(stats["by_status"].as_object()["completed"], boost::json::value(2));
    EXPECT_EQ(stats["by_status"].as_object()["in_progress"], boost::json::value(0));
    EXPECT_EQ(stats["by_priority"].as_object()["high"], boost::json::value(5));
    EXPECT_EQ(stats["by_priority"].as_object()["urgent"], boost::json::value(0));
    EXPECT_DOUBLE_EQ(stats["completion_rate"].to_number<double>(), 33.33);
    EXPECT_DOUBLE_EQ(stats["average_completion_time_hours"].to_number<double>(), 5.0);
    EXPECT_EQ(stats["overdue"], boost::json::value(3));
    auto empty = stats_json({});
    EXPECT_EQ(empty["total"], boost::json::value(0));
    EXPECT_EQ(empty["completion_rate"], boost::json::value(0));
    EXPECT_EQ(empty["average_completion_time_hours"], boost::json::value(0));
}

// ---------------------------------------------------------------- list SQL

std::string order_by_of(const std::string& page) {
    auto from = page.find(" ORDER BY ");
    auto to = page.find(" LIMIT ");
    return page.substr(from, to - from);
}

TEST(ListStatements, PlainComparisonsOnIndexedColumnsAndStableOrder) {
    auto query = read_list_query(
        request_for("/api/v1/tasks?status=pending&priority=low&category=c&assignee=u&tags=x,y"
                    "&due_before=2025-01-01&page=3&limit=10"));
    ASSERT_TRUE(query);
    auto statements = list_statements(*query);
    const std::string where =
        " WHERE 1 = 1 AND t.status = $1 AND t.priority = $2 AND t.category = $3 AND "
        "t.assignee = $4 AND t.due_date < $5 AND EXISTS (SELECT 1 FROM task_tags g WHERE "
        "g.task_id = t.id AND g.tag = $6) AND EXISTS (SELECT 1 FROM task_tags g WHERE "
        "g.task_id = t.id AND g.tag = $7)";
    EXPECT_EQ(statements.count, "SELECT COUNT(*) AS n FROM tasks t" + where);
    EXPECT_EQ(statements.count_params.size(), 7u);
    EXPECT_NE(statements.page.find(" FROM tasks t" + where + " ORDER BY "), std::string::npos);
    EXPECT_TRUE(
        statements.page.ends_with(" ORDER BY t.created_at DESC, t.id DESC LIMIT $8 OFFSET $9"))
        << statements.page;
    ASSERT_EQ(statements.page_params.size(), 9u);
    EXPECT_EQ(statements.page_params[0], sql::Value(std::string("pending")));
    EXPECT_EQ(statements.page_params[7], sql::Value(std::int64_t{10}));
    EXPECT_EQ(statements.page_params[8], sql::Value(std::int64_t{20}));

    auto by_due = read_list_query(request_for("/api/v1/tasks?sort=due_date&order=desc"));
    ASSERT_TRUE(by_due);
    EXPECT_EQ(order_by_of(list_statements(*by_due).page),
              " ORDER BY t.due_date DESC NULLS LAST, t.created_at DESC, t.id DESC");
    auto by_priority = read_list_query(request_for("/api/v1/tasks?sort=priority"));
    ASSERT_TRUE(by_priority);
    EXPECT_EQ(order_by_of(list_statements(*by_priority).page),
              " ORDER BY t.priority_rank ASC, t.created_at ASC, t.id ASC");
    auto plain = list_statements(*read_list_query(request_for("/api/v1/tasks")));
    EXPECT_EQ(plain.count, "SELECT COUNT(*) AS n FROM tasks t WHERE 1 = 1");
    EXPECT_TRUE(plain.count_params.empty());
}

}  // namespace
}  // namespace aether::services::tasks
