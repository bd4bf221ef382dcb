// Domain of the task manager without I/O: the task, reading create/update bodies and list/stats
// queries with a detail per bad field, history diffs, ETags and who may change a task.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/auth/permissions.h"
#include "platform/expected.h"
#include "platform/http/message.h"
#include "platform/http/pagination.h"
#include "platform/json/mapping.h"

namespace aether::services::tasks {

namespace auth = platform::auth;
namespace http = platform::http;
using platform::json::FieldError;

inline constexpr std::string_view kStatuses[] = {"pending", "in_progress", "completed", "blocked"};
// In rank order: sorting by priority sorts by urgency, not by name.
inline constexpr std::string_view kPriorities[] = {"low", "medium", "high", "urgent"};

inline constexpr std::size_t kMaxTitle = 200;
inline constexpr std::size_t kMaxDescription = 10000;
inline constexpr std::size_t kMaxCategory = 100;
inline constexpr std::size_t kMaxAssignee = 200;
inline constexpr std::size_t kMaxTags = 20;
inline constexpr std::size_t kMaxTag = 50;
inline constexpr std::size_t kMaxCommentText = 5000;
inline constexpr double kMaxHours = 100000;
inline constexpr std::size_t kMaxIdBytes = 64;

bool is_status(std::string_view value);
bool is_priority(std::string_view value);
// 1 (low) .. 4 (urgent); 0 for an unknown priority.
int priority_rank(std::string_view priority);

struct Task {
    std::string id;
    std::string title;
    std::string description;
    std::string status = "pending";
    std::string priority = "medium";
    std::optional<std::string> category;
    std::optional<std::string> assignee;
    std::optional<std::string> due_date;  // normalized UTC RFC 3339 with milliseconds
    std::vector<std::string> tags;
    std::optional<double> estimated_hours;
    std::optional<double> actual_hours;
    std::int64_t progress = 0;
    std::string created_by;
    std::string created_at;
    std::string updated_at;
    std::optional<std::string> completed_at;
    std::optional<std::string> completed_by;
    // Hours from creation to completion, kept so that stats can average it in SQL.
    std::optional<double> completion_hours;
    std::int64_t version = 1;
};

struct Comment {
    std::string id;
    std::string task_id;
    std::string user_id;
    std::string text;
    std::string created_at;
};

// One entry of a task's history. `from`/`to` are JSON texts.
struct HistoryEntry {
    std::string id;
    std::string task_id;
    std::string action;  // "created", "updated", "status_changed"
    std::optional<std::string> field;
    std::string from = "null";
    std::string to = "null";
    std::string user_id;
    std::string timestamp;
};

// A time as RFC 3339 (any offset, optional fraction) or a plain date YYYY-MM-DD.
struct ParsedTime {
    std::chrono::sys_time<std::chrono::milliseconds> time;  // a plain date is its midnight UTC
    bool date_only = false;
};
std::optional<ParsedTime> parse_time(std::string_view text);
// "YYYY-MM-DDTHH:MM:SS.mmmZ", the one format stored and returned.
std::string format_time(std::chrono::sys_time<std::chrono::milliseconds> time);

// A present field of a body: a value, or null (which clears a nullable field).
template <class T>
using Patch = std::optional<std::optional<T>>;

// The editable fields found in a create or update body; absent fields stay empty. Fields that
// are not editable (id, created_by, comments, ...) and unknown names are ignored, so a client
// may send back a task it fetched.
struct TaskInput {
    Patch<std::string> title;
    Patch<std::string> description;
    Patch<std::string> status;
    Patch<std::string> priority;
    Patch<std::string> category;
    Patch<std::string> assignee;
    Patch<std::string> due_date;  // normalized
    Patch<std::vector<std::string>> tags;
    Patch<double> estimated_hours;
    Patch<double> actual_hours;
    Patch<std::int64_t> progress;
};

enum class InputMode { Create, Update };

// Reads and validates a body; every bad field is reported. Create requires a title and reads the
// contract's create fields only (a new task is pending at 0 % with no actual hours, whatever the
// body says); Update reads every editable field.
platform::Expected<TaskInput, std::vector<FieldError>> read_task_input(
    const boost::json::object& body, InputMode mode);

// The optional body of POST /{id}/complete: {"actual_hours": number}.
platform::Expected<std::optional<double>, std::vector<FieldError>> read_completion(
    const boost::json::object& body);
// The body of POST /{id}/comments: {"text": "..."}; returns the trimmed text.
platform::Expected<std::string, std::vector<FieldError>> read_comment(
    const boost::json::object& body);

// A new pending task from a validated create input.
Task new_task(const TaskInput& input, std::string id, const std::string& user_id,
              const std::string& now);

// Applies a validated update. A change of status into or out of "completed" keeps the
// completion fields consistent: completing sets completed_at/by, completion_hours and progress
// 100; reopening clears the completion fields.
void apply_update(const TaskInput& input, Task& task, const std::string& user_id,
                  const std::string& now);

// Marks a task completed now (POST /{id}/complete).
void complete(Task& task, std::optional<double> actual_hours, const std::string& user_id,
              const std::string& now);

// One changed editable field, with its values as JSON.
struct FieldChange {
    std::string field;
    boost::json::value from;
    boost::json::value to;
};
// The editable fields that differ, in a fixed order (status first).
std::vector<FieldChange> diff(const Task& before, const Task& after);

// History entries for the changes ("status_changed" for status, "updated" otherwise); the ids
// are left for the caller to fill.
std::vector<HistoryEntry> history_for(const std::string& task_id,
                                      const std::vector<FieldChange>& changes,
                                      const std::string& user_id, const std::string& now);

// Hours as JSON: null when unknown, whole numbers as integers ("3", not "3E0").
boost::json::value hours_json(std::optional<double> hours);

// JSON of the API, allocated from `storage` (default: the heap).
boost::json::object to_json(const Task& task, boost::json::storage_ptr storage = {});
boost::json::object to_json(const Comment& comment, boost::json::storage_ptr storage = {});
boost::json::object to_json(const HistoryEntry& entry, boost::json::storage_ptr storage = {});

// Strong ETag of a task version: "\"<version>\"".
std::string etag(std::int64_t version);
// Whether an If-Match header lets a change of `version` proceed: absent, "*", or a list with
// the current tag. A weak W/ prefix is tolerated (the tag is compared by its opaque value).
bool if_match_allows(std::string_view header, std::int64_t version);

bool is_admin(const auth::Principal& principal);
// Admins may change any task; everyone else only the tasks they created or are assigned to
// (the assignee names the user by id or by email).
bool may_modify(const auth::Principal& principal, const Task& task);

// What a task id must look like before any query is made for it.
bool plausible_task_id(std::string_view id);

enum class SortField { CreatedAt, UpdatedAt, DueDate, Priority, Title, Status };

struct ListQuery {
    std::optional<std::string> status;
    std::optional<std::string> priority;
    std::optional<std::string> category;
    std::optional<std::string> assignee;
    // A task matches when it carries every one of these tags.
    std::vector<std::string> tags;
    std::optional<std::string> due_before;  // normalized; due_date strictly before it
    SortField sort = SortField::CreatedAt;
    bool descending = true;
    http::PageRequest page;
};

// Reads the list query; every bad parameter is reported at once.
platform::Expected<ListQuery, std::vector<FieldError>> read_list_query(
    const http::Request& request);

struct StatsQuery {
    std::optional<std::string> user_id;  // tasks the user created or is assigned to
    std::optional<std::string> since;    // created_at >= since
    std::optional<std::string> until;    // created_at < until (end_date is inclusive)
};

platform::Expected<StatsQuery, std::vector<FieldError>> read_stats_query(
    const http::Request& request);

// One group of the stats aggregate.
struct StatsGroup {
    std::string status;
    std::string priority;
    std::int64_t count = 0;
    std::int64_t overdue = 0;
    double completion_hours_sum = 0;
    std::int64_t completion_hours_count = 0;
};

// {total, by_status, by_priority, completion_rate (percent of tasks completed, 0..100, two
// decimals), average_completion_time_hours (0 when nothing is completed), overdue}. Every
// status and priority is present, with 0 when it has no task.
boost::json::object stats_json(const std::vector<StatsGroup>& groups);

}  // namespace aether::services::tasks
