// Task domain rules: validation with field details, dates, completion bookkeeping, diffs, ETags.
#include "services/tasks/task.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cmath>
#include <limits>

#include "platform/json/envelope.h"
#include "platform/json/utf8.h"

namespace aether::services::tasks {
namespace {

namespace json = platform::json;
using std::chrono::milliseconds;

constexpr std::string_view kStatusChoices =
    "must be one of: pending, in_progress, completed, blocked";
constexpr std::string_view kPriorityChoices = "must be one of: low, medium, high, urgent";
constexpr std::string_view kTimeMessage =
    "must be an RFC 3339 time (2025-01-31T17:00:00Z) or a date (2025-01-31)";

std::string_view trim(std::string_view text) {
    constexpr std::string_view kSpace = " \t\r\n";
    auto first = text.find_first_not_of(kSpace);
    if (first == std::string_view::npos) return {};
    auto last = text.find_last_not_of(kSpace);
    return text.substr(first, last - first + 1);
}

bool has_nul(std::string_view text) {
    return text.find('\0') != std::string_view::npos;
}

std::string length_message(std::size_t min, std::size_t max) {
    if (min == 0) return "must be at most " + std::to_string(max) + " characters";
    return "must be between " + std::to_string(min) + " and " + std::to_string(max) + " characters";
}

// A problem with a text value, or nullopt when it is acceptable.
std::optional<std::string> text_problem(std::string_view value, std::size_t min, std::size_t max) {
    if (has_nul(value)) return "must not contain NUL characters";
    auto length = json::count_code_points(value);
    if (min > 0 && length == 0) return "must not be empty";
    if (length < min || length > max) return length_message(min, max);
    return std::nullopt;
}

bool parse_digits(std::string_view text, std::size_t position, std::size_t count, int& out) {
    if (position + count > text.size()) return false;
    out = 0;
    for (std::size_t i = position; i < position + count; ++i) {
        if (text[i] < '0' || text[i] > '9') return false;
        out = out * 10 + (text[i] - '0');
    }
    return true;
}

double hours_between(const std::string& from, const std::string& to) {
    auto start = parse_time(from);
    auto end = parse_time(to);
    if (!start || !end) return 0;
    return std::chrono::duration<double, std::ratio<3600>>(end->time - start->time).count();
}

double round2(double value) {
    return std::round(value * 100) / 100;
}

// Whole numbers are written as integers ("3", not "3E0").
boost::json::value number_json(double value) {
    if (std::trunc(value) == value && std::fabs(value) < 9e15) {
        return boost::json::value(static_cast<std::int64_t>(value));
    }
    return boost::json::value(value);
}

boost::json::value optional_json(const std::optional<std::string>& value) {
    return value ? boost::json::value(*value) : boost::json::value(nullptr);
}

boost::json::value optional_json(const std::optional<double>& value) {
    return value ? number_json(*value) : boost::json::value(nullptr);
}

boost::json::array tags_json(const std::vector<std::string>& tags) {
    boost::json::array array;
    for (const auto& tag : tags) array.emplace_back(tag);
    return array;
}

// Reads the fields of one body, collecting a FieldError per bad field.
class BodyReader {
  public:
    explicit BodyReader(const boost::json::object& body) : body_(body) {}

    std::vector<FieldError> take_errors() { return std::move(errors_); }
    bool ok() const { return errors_.empty(); }
    void fail(std::string field, std::string message) {
        errors_.push_back({std::move(field), std::move(message)});
    }

    // A trimmed string. `nullable`: null is accepted (and an empty string means null too).
    Patch<std::string> text(std::string_view name, std::size_t min, std::size_t max, bool nullable,
                            bool trimmed = true) {
        const auto* value = body_.if_contains(name);
        if (value == nullptr) return std::nullopt;
        std::string field(name);
        if (value->is_null()) {
            if (nullable) return std::optional<std::string>();
            fail(field, "must not be null");
            return std::nullopt;
        }
        const auto* string = value->if_string();
        if (string == nullptr) {
            fail(field, "must be a string");
            return std::nullopt;
        }
        std::string_view view = *string;
        if (trimmed) view = trim(view);
        if (nullable && view.empty()) return std::optional<std::string>();
        if (auto problem = text_problem(view, min, max)) {
            fail(field, std::move(*problem));
            return std::nullopt;
        }
        return std::optional<std::string>(std::string(view));
    }

    Patch<std::string> choice(std::string_view name, bool (*valid)(std::string_view),
                              std::string_view message) {
        const auto* value = body_.if_contains(name);
        if (value == nullptr) return std::nullopt;
        std::string field(name);
        const auto* string = value->if_string();
        if (string == nullptr || !valid(*string)) {
            fail(field, value->is_null() ? "must not be null" : std::string(message));
            return std::nullopt;
        }
        return std::optional<std::string>(std::string(*string));
    }

    Patch<std::string> time(std::string_view name) {
        const auto* value = body_.if_contains(name);
        if (value == nullptr) return std::nullopt;
        if (value->is_null()) return std::optional<std::string>();
        const auto* string = value->if_string();
        std::optional<ParsedTime> parsed;
        if (string != nullptr) parsed = parse_time(*string);
        if (!parsed) {
            fail(std::string(name), std::string(kTimeMessage));
            return std::nullopt;
        }
        return std::optional<std::string>(format_time(parsed->time));
    }

    Patch<double> hours(std::string_view name) {
        const auto* value = body_.if_contains(name);
        if (value == nullptr) return std::nullopt;
        if (value->is_null()) return std::optional<double>();
        std::string field(name);
        if (!value->is_number()) {
            fail(field, "must be a number");
            return std::nullopt;
        }
        double number = value->to_number<double>();
        if (!std::isfinite(number) || number < 0 || number > kMaxHours) {
            fail(field, "must be a number between 0 and 100000");
            return std::nullopt;
        }
        return std::optional<double>(number);
    }

    Patch<std::int64_t> percent(std::string_view name) {
        const auto* value = body_.if_contains(name);
        if (value == nullptr) return std::nullopt;
        std::optional<double> number;
        if (value->is_number()) number = value->to_number<double>();
        if (!number || std::trunc(*number) != *number || *number < 0 || *number > 100) {
            fail(std::string(name),
                 value->is_null() ? "must not be null" : "must be an integer between 0 and 100");
            return std::nullopt;
        }
        return std::optional<std::int64_t>(static_cast<std::int64_t>(*number));
    }

    Patch<std::vector<std::string>> tags(std::string_view name) {
        const auto* value = body_.if_contains(name);
        if (value == nullptr) return std::nullopt;
        if (value->is_null())
            return std::optional<std::vector<std::string>>(std::vector<std::string>{});
        std::string field(name);
        const auto* array = value->if_array();
        if (array == nullptr) {
            fail(field, "must be an array of strings");
            return std::nullopt;
        }
        if (array->size() > kMaxTags) {
            fail(field, "must have at most " + std::to_string(kMaxTags) + " tags");
            return std::nullopt;
        }
        std::vector<std::string> tags;
        bool good = true;
        for (std::size_t i = 0; i < array->size(); ++i) {
            std::string item_field = field + "[" + std::to_string(i) + "]";
            const auto* string = (*array)[i].if_string();
            if (string == nullptr) {
                fail(item_field, "must be a string");
                good = false;
                continue;
            }
            auto tag = trim(*string);
            if (auto problem = text_problem(tag, 1, kMaxTag)) {
                fail(item_field, std::move(*problem));
                good = false;
            } else if (tag.find(',') != std::string_view::npos) {
                // The list filter takes tags as a comma list.
                fail(item_field, "must not contain a comma");
                good = false;
            } else if (std::find(tags.begin(), tags.end(), tag) == tags.end()) {
                tags.emplace_back(tag);
            }
        }
        if (!good) return std::nullopt;
        return std::optional<std::vector<std::string>>(std::move(tags));
    }

  private:
    const boost::json::object& body_;
    std::vector<FieldError> errors_;
};

// The single value of a filter parameter, or nullopt when absent or empty.
std::optional<std::string> filter_value(const http::Request& request, std::string_view name,
                                        std::size_t max, std::vector<FieldError>& errors) {
    auto value = request.query(name);
    if (!value) return std::nullopt;
    auto trimmed = trim(*value);
    if (trimmed.empty()) return std::nullopt;
    if (auto problem = text_problem(trimmed, 1, max)) {
        errors.push_back({std::string(name), std::move(*problem)});
        return std::nullopt;
    }
    return std::string(trimmed);
}

void mark_completed(Task& task, const std::string& user_id, const std::string& now) {
    task.status = "completed";
    task.completed_at = now;
    task.completed_by = user_id;
    task.completion_hours = std::max(0.0, hours_between(task.created_at, now));
    task.progress = 100;
}

}  // namespace

bool is_status(std::string_view value) {
    return std::find(std::begin(kStatuses), std::end(kStatuses), value) != std::end(kStatuses);
}

bool is_priority(std::string_view value) {
    return priority_rank(value) != 0;
}

int priority_rank(std::string_view priority) {
    for (std::size_t i = 0; i < std::size(kPriorities); ++i) {
        if (kPriorities[i] == priority) return static_cast<int>(i) + 1;
    }
    return 0;
}

std::optional<ParsedTime> parse_time(std::string_view text) {
    using namespace std::chrono;
    int y = 0, mo = 0, d = 0;
    if (text.size() < 10 || !parse_digits(text, 0, 4, y) || text[4] != '-' ||
        !parse_digits(text, 5, 2, mo) || text[7] != '-' || !parse_digits(text, 8, 2, d)) {
        return std::nullopt;
    }
    year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!date.ok()) return std::nullopt;
    sys_time<milliseconds> midnight = sys_days(date);
    if (text.size() == 10) return ParsedTime{midnight, true};
    int h = 0, mi = 0, s = 0;
    char separator = text[10];
    if ((separator != 'T' && separator != 't' && separator != ' ') ||
        !parse_digits(text, 11, 2, h) || text.size() < 20 || text[13] != ':' ||
        !parse_digits(text, 14, 2, mi) || text[16] != ':' || !parse_digits(text, 17, 2, s) ||
        h > 23 || mi > 59 || s > 59) {
        return std::nullopt;
    }
    std::size_t position = 19;
    int fraction_ms = 0;
    if (text[position] == '.') {
        ++position;
        std::size_t digits = 0;
        while (position < text.size() && text[position] >= '0' && text[position] <= '9') {
            if (digits < 3) fraction_ms = fraction_ms * 10 + (text[position] - '0');
            ++digits;
            ++position;
        }
        if (digits == 0 || digits > 9) return std::nullopt;
        for (std::size_t i = digits; i < 3; ++i) fraction_ms *= 10;
    }
    if (position >= text.size()) return std::nullopt;
    minutes offset{0};
    char zone = text[position];
    if (zone == 'Z' || zone == 'z') {
        if (position + 1 != text.size()) return std::nullopt;
    } else if (zone == '+' || zone == '-') {
        int oh = 0, om = 0;
        if (position + 6 != text.size() || !parse_digits(text, position + 1, 2, oh) ||
            text[position + 3] != ':' || !parse_digits(text, position + 4, 2, om) || oh > 23 ||
            om > 59) {
            return std::nullopt;
        }
        offset = hours{oh} + minutes{om};
        if (zone == '-') offset = -offset;
    } else {
        return std::nullopt;
    }
    auto time = midnight + hours{h} + minutes{mi} + seconds{s} + milliseconds{fraction_ms} - offset;
    return ParsedTime{time, false};
}

std::string format_time(std::chrono::sys_time<milliseconds> time) {
    using namespace std::chrono;
    // Formatted from days and milliseconds: a system_clock (nanosecond) time_point cannot hold
    // years past 2262. Times outside 0000..9999 are clamped, as RFC 3339 cannot express them.
    constexpr sys_days kFirst = year_month_day{year{0}, January, day{1}};
    constexpr sys_days kLast = year_month_day{year{9999}, December, day{31}};
    time = std::clamp(time, sys_time<milliseconds>(kFirst),
                      sys_time<milliseconds>(kLast) + days{1} - milliseconds{1});
    auto midnight = floor<days>(time);
    year_month_day date{midnight};
    auto in_day = (time - midnight).count();
    auto put = [](std::string& out, long long value, int width) {
        std::string digits = std::to_string(value);
        out.append(static_cast<std::size_t>(std::max(0, width - static_cast<int>(digits.size()))),
                   '0');
        out += digits;
    };
    std::string out;
    out.reserve(24);
    put(out, static_cast<int>(date.year()), 4);
    out += '-';
    put(out, static_cast<unsigned>(date.month()), 2);
    out += '-';
    put(out, static_cast<unsigned>(date.day()), 2);
    out += 'T';
    put(out, in_day / 3'600'000, 2);
    out += ':';
    put(out, in_day / 60'000 % 60, 2);
    out += ':';
    put(out, in_day / 1000 % 60, 2);
    out += '.';
    put(out, in_day % 1000, 3);
    out += 'Z';
    return out;
}

platform::Expected<TaskInput, std::vector<FieldError>> read_task_input(
    const boost::json::object& body, InputMode mode) {
    BodyReader reader(body);
    TaskInput input;
    input.title = reader.text("title", 1, kMaxTitle, false);
    if (mode == InputMode::Create && !body.contains("title")) reader.fail("title", "is required");
    input.description = reader.text("description", 0, kMaxDescription, true, false);
    if (input.description && !*input.description) *input.description = std::string();
    input.priority = reader.choice("priority", is_priority, kPriorityChoices);
    input.category = reader.text("category", 1, kMaxCategory, true);
    input.assignee = reader.text("assignee", 1, kMaxAssignee, true);
    input.due_date = reader.time("due_date");
    input.tags = reader.tags("tags");
    input.estimated_hours = reader.hours("estimated_hours");
    if (mode == InputMode::Update) {
        // A new task is always pending at 0 % with nothing spent; these are ignored on create.
        input.status = reader.choice("status", is_status, kStatusChoices);
        input.actual_hours = reader.hours("actual_hours");
        input.progress = reader.percent("progress");
    }
    if (!reader.ok()) return platform::unexpected(reader.take_errors());
    return input;
}

platform::Expected<std::optional<double>, std::vector<FieldError>> read_completion(
    const boost::json::object& body) {
    BodyReader reader(body);
    auto hours = reader.hours("actual_hours");
    if (!reader.ok()) return platform::unexpected(reader.take_errors());
    return hours ? *hours : std::optional<double>();
}

platform::Expected<std::string, std::vector<FieldError>> read_comment(
    const boost::json::object& body) {
    BodyReader reader(body);
    auto text = reader.text("text", 1, kMaxCommentText, false);
    if (!body.contains("text")) reader.fail("text", "is required");
    if (!reader.ok()) return platform::unexpected(reader.take_errors());
    return **text;
}

Task new_task(const TaskInput& input, std::string id, const std::string& user_id,
              const std::string& now) {
    Task task;
    task.id = std::move(id);
    task.title = input.title && *input.title ? **input.title : std::string();
    if (input.description && *input.description) task.description = **input.description;
    if (input.priority && *input.priority) task.priority = **input.priority;
    if (input.category) task.category = *input.category;
    if (input.assignee) task.assignee = *input.assignee;
    if (input.due_date) task.due_date = *input.due_date;
    if (input.tags && *input.tags) task.tags = **input.tags;
    if (input.estimated_hours) task.estimated_hours = *input.estimated_hours;
    task.created_by = user_id;
    task.created_at = now;
    task.updated_at = now;
    return task;
}

void apply_update(const TaskInput& input, Task& task, const std::string& user_id,
                  const std::string& now) {
    std::string old_status = task.status;
    if (input.title && *input.title) task.title = **input.title;
    if (input.description) task.description = input.description->value_or(std::string());
    if (input.priority && *input.priority) task.priority = **input.priority;
    if (input.category) task.category = *input.category;
    if (input.assignee) task.assignee = *input.assignee;
    if (input.due_date) task.due_date = *input.due_date;
    if (input.tags) task.tags = input.tags->value_or(std::vector<std::string>{});
    if (input.estimated_hours) task.estimated_hours = *input.estimated_hours;
    if (input.actual_hours) task.actual_hours = *input.actual_hours;
    if (input.status && *input.status && **input.status != old_status) {
        if (**input.status == "completed") {
            mark_completed(task, user_id, now);
        } else {
            task.status = **input.status;
            task.completed_at.reset();
            task.completed_by.reset();
            task.completion_hours.reset();
        }
    }
    // An explicit progress wins over the 100 % that completing implies.
    if (input.progress && *input.progress) task.progress = **input.progress;
}

void complete(Task& task, std::optional<double> actual_hours, const std::string& user_id,
              const std::string& now) {
    mark_completed(task, user_id, now);
    if (actual_hours) task.actual_hours = *actual_hours;
}

std::vector<FieldChange> diff(const Task& before, const Task& after) {
    std::vector<FieldChange> changes;
    auto add = [&](std::string field, boost::json::value from, boost::json::value to) {
        if (from != to) changes.push_back({std::move(field), std::move(from), std::move(to)});
    };
    add("status", boost::json::value(before.status), boost::json::value(after.status));
    add("title", boost::json::value(before.title), boost::json::value(after.title));
    add("description", boost::json::value(before.description),
        boost::json::value(after.description));
    add("priority", boost::json::value(before.priority), boost::json::value(after.priority));
    add("category", optional_json(before.category), optional_json(after.category));
    add("assignee", optional_json(before.assignee), optional_json(after.assignee));
    add("due_date", optional_json(before.due_date), optional_json(after.due_date));
    add("tags", tags_json(before.tags), tags_json(after.tags));
    add("estimated_hours", optional_json(before.estimated_hours),
        optional_json(after.estimated_hours));
    add("actual_hours", optional_json(before.actual_hours), optional_json(after.actual_hours));
    add("progress", boost::json::value(before.progress), boost::json::value(after.progress));
    return changes;
}

std::vector<HistoryEntry> history_for(const std::string& task_id,
                                      const std::vector<FieldChange>& changes,
                                      const std::string& user_id, const std::string& now) {
    std::vector<HistoryEntry> entries;
    entries.reserve(changes.size());
    for (const auto& change : changes) {
        HistoryEntry entry;
        entry.task_id = task_id;
        entry.action = change.field == "status" ? "status_changed" : "updated";
        entry.field = change.field;
        entry.from = boost::json::serialize(change.from);
        entry.to = boost::json::serialize(change.to);
        entry.user_id = user_id;
        entry.timestamp = now;
        entries.push_back(std::move(entry));
    }
    return entries;
}

boost::json::value hours_json(std::optional<double> hours) {
    return optional_json(hours);
}

namespace {

void put_optional(boost::json::object& out, std::string_view key,
                  const std::optional<std::string>& value) {
    if (value) {
        out.emplace(key, *value);
    } else {
        out.emplace(key, nullptr);
    }
}

}  // namespace

// Members are emplaced, so every string goes straight into `storage`.
boost::json::object to_json(const Task& task, boost::json::storage_ptr storage) {
    boost::json::object out(std::move(storage));
    out.reserve(18);
    out.emplace("id", task.id);
    out.emplace("title", task.title);
    out.emplace("description", task.description);
    out.emplace("status", task.status);
    out.emplace("priority", task.priority);
    put_optional(out, "category", task.category);
    put_optional(out, "assignee", task.assignee);
    put_optional(out, "due_date", task.due_date);
    boost::json::array tags(out.storage());
    tags.reserve(task.tags.size());
    for (const auto& tag : task.tags) tags.emplace_back(tag);
    out.emplace("tags", std::move(tags));
    out.emplace("estimated_hours", optional_json(task.estimated_hours));
    out.emplace("actual_hours", optional_json(task.actual_hours));
    out.emplace("progress", task.progress);
    out.emplace("created_by", task.created_by);
    out.emplace("created_at", task.created_at);
    out.emplace("updated_at", task.updated_at);
    put_optional(out, "completed_at", task.completed_at);
    put_optional(out, "completed_by", task.completed_by);
    out.emplace("version", task.version);
    return out;
}

boost::json::object to_json(const Comment& comment, boost::json::storage_ptr storage) {
    boost::json::object out(std::move(storage));
    out.reserve(5);
    out.emplace("id", comment.id);
    out.emplace("task_id", comment.task_id);
    out.emplace("user_id", comment.user_id);
    out.emplace("text", comment.text);
    out.emplace("created_at", comment.created_at);
    return out;
}

boost::json::object to_json(const HistoryEntry& entry, boost::json::storage_ptr storage) {
    boost::json::object out(std::move(storage));
    out.reserve(7);
    out.emplace("id", entry.id);
    out.emplace("action", entry.action);
    put_optional(out, "field", entry.field);
    // Written by this service as JSON; a damaged row shows as null rather than failing the read.
    boost::system::error_code error;
    auto from = boost::json::parse(entry.from, error, out.storage());
    out.emplace("from", error ? boost::json::value(nullptr) : std::move(from));
    auto to = boost::json::parse(entry.to, error, out.storage());
    out.emplace("to", error ? boost::json::value(nullptr) : std::move(to));
    out.emplace("user_id", entry.user_id);
    out.emplace("timestamp", entry.timestamp);
    return out;
}

std::string etag(std::int64_t version) {
    return "\"" + std::to_string(version) + "\"";
}

bool if_match_allows(std::string_view header, std::int64_t version) {
    if (trim(header).empty()) return true;
    const std::string current = std::to_string(version);
    std::size_t start = 0;
    while (start <= header.size()) {
        auto comma = header.find(',', start);
        if (comma == std::string_view::npos) comma = header.size();
        auto tag = trim(header.substr(start, comma - start));
        start = comma + 1;
        if (tag == "*") return true;
        if (tag.starts_with("W/")) tag.remove_prefix(2);
        if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') {
            tag = tag.substr(1, tag.size() - 2);
        }
        if (tag == current) return true;
    }
    return false;
}

bool is_admin(const auth::Principal& principal) {
    return principal.has_role("admin");
}

bool may_modify(const auth::Principal& principal, const Task& task) {
    if (is_admin(principal)) return true;
    if (!principal.user_id.empty() && task.created_by == principal.user_id) return true;
    if (!task.assignee) return false;
    return (!principal.user_id.empty() && *task.assignee == principal.user_id) ||
           (!principal.email.empty() && *task.assignee == principal.email);
}

bool plausible_task_id(std::string_view id) {
    if (!id.starts_with("task_") || id.size() > kMaxIdBytes) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
               c == '_' || c == '-';
    });
}

platform::Expected<ListQuery, std::vector<FieldError>> read_list_query(
    const http::Request& request) {
    ListQuery query;
    std::vector<FieldError> errors;
    try {
        query.page = http::page_request(request);
    } catch (const json::ClientError& error) {
        errors.insert(errors.end(), error.details.begin(), error.details.end());
    }
    if (auto status = filter_value(request, "status", 32, errors)) {
        if (is_status(*status)) {
            query.status = std::move(status);
        } else {
            errors.push_back({"status", std::string(kStatusChoices)});
        }
    }
    if (auto priority = filter_value(request, "priority", 32, errors)) {
        if (is_priority(*priority)) {
            query.priority = std::move(priority);
        } else {
            errors.push_back({"priority", std::string(kPriorityChoices)});
        }
    }
    query.category = filter_value(request, "category", kMaxCategory, errors);
    query.assignee = filter_value(request, "assignee", kMaxAssignee, errors);
    if (auto tags = request.query("tags")) {
        std::string_view rest = *tags;
        bool good = true;
        while (good) {
            auto comma = rest.find(',');
            auto tag = trim(rest.substr(0, comma));
            if (!tag.empty()) {
                if (auto problem = text_problem(tag, 1, kMaxTag)) {
                    errors.push_back({"tags", "each tag " + *problem});
                    good = false;
                } else if (std::find(query.tags.begin(), query.tags.end(), tag) ==
                           query.tags.end()) {
                    query.tags.emplace_back(tag);
                }
            }
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
        if (good && query.tags.size() > kMaxTags) {
            errors.push_back({"tags", "must name at most " + std::to_string(kMaxTags) + " tags"});
        }
    }
    if (auto due = request.query("due_before"); due && !trim(*due).empty()) {
        if (auto parsed = parse_time(trim(*due))) {
            query.due_before = format_time(parsed->time);
        } else {
            errors.push_back({"due_before", std::string(kTimeMessage)});
        }
    }
    if (auto sort = request.query("sort"); sort && !sort->empty()) {
        static constexpr std::pair<std::string_view, SortField> kSorts[] = {
            {"created_at", SortField::CreatedAt}, {"updated_at", SortField::UpdatedAt},
            {"due_date", SortField::DueDate},     {"priority", SortField::Priority},
            {"title", SortField::Title},          {"status", SortField::Status}};
        auto found = std::find_if(std::begin(kSorts), std::end(kSorts),
                                  [&](const auto& entry) { return entry.first == *sort; });
        if (found == std::end(kSorts)) {
            errors.push_back(
                {"sort",
                 "must be one of: created_at, updated_at, due_date, priority, title, status"});
        } else {
            query.sort = found->second;
        }
    }
    // Newest first for the times; the natural ascending order for every other field.
    query.descending = query.sort == SortField::CreatedAt || query.sort == SortField::UpdatedAt;
    if (auto order = request.query("order"); order && !order->empty()) {
        if (*order == "asc") {
            query.descending = false;
        } else if (*order == "desc") {
            query.descending = true;
        } else {
            errors.push_back({"order", "must be asc or desc"});
        }
    }
    if (!errors.empty()) return platform::unexpected(std::move(errors));
    return query;
}

platform::Expected<StatsQuery, std::vector<FieldError>> read_stats_query(
    const http::Request& request) {
    StatsQuery query;
    std::vector<FieldError> errors;
    query.user_id = filter_value(request, "user_id", kMaxAssignee, errors);
    std::optional<std::chrono::sys_time<milliseconds>> since;
    std::optional<std::chrono::sys_time<milliseconds>> until;
    if (auto start = request.query("start_date"); start && !trim(*start).empty()) {
        if (auto parsed = parse_time(trim(*start))) {
            since = parsed->time;
        } else {
            errors.push_back({"start_date", std::string(kTimeMessage)});
        }
    }
    if (auto end = request.query("end_date"); end && !trim(*end).empty()) {
        if (auto parsed = parse_time(trim(*end))) {
            // Inclusive: a date covers its whole day, a time its whole millisecond.
            until = parsed->date_only ? parsed->time + std::chrono::days{1}
                                      : parsed->time + milliseconds{1};
        } else {
            errors.push_back({"end_date", std::string(kTimeMessage)});
        }
    }
    if (since && until && *until <= *since) {
        errors.push_back({"end_date", "must not be before start_date"});
    }
    if (!errors.empty()) return platform::unexpected(std::move(errors));
    if (since) query.since = format_time(*since);
    if (until) query.until = format_time(*until);
    return query;
}

boost::json::object stats_json(const std::vector<StatsGroup>& groups) {
    boost::json::object by_status;
    for (auto status : kStatuses) by_status[status] = 0;
    boost::json::object by_priority;
    for (auto priority : kPriorities) by_priority[priority] = 0;
    std::int64_t total = 0;
    std::int64_t overdue = 0;
    double hours_sum = 0;
    std::int64_t hours_count = 0;
    for (const auto& group : groups) {
        total += group.count;
        overdue += group.overdue;
        hours_sum += group.completion_hours_sum;
        hours_count += group.completion_hours_count;
        if (auto* slot = by_status.if_contains(group.status)) {
            *slot = slot->as_int64() + group.count;
        }
        if (auto* slot = by_priority.if_contains(group.priority)) {
            *slot = slot->as_int64() + group.count;
        }
    }
    std::int64_t completed = by_status["completed"].as_int64();
    double rate = total == 0
                      ? 0.0
                      : round2(100.0 * static_cast<double>(completed) / static_cast<double>(total));
    double average = hours_count == 0 ? 0.0 : round2(hours_sum / static_cast<double>(hours_count));
    boost::json::object out;
    out["total"] = total;
    out["by_status"] = std::move(by_status);
    out["by_priority"] = std::move(by_priority);
    out["completion_rate"] = number_json(rate);
    out["average_completion_time_hours"] = number_json(average);
    out["overdue"] = overdue;
    return out;
}

}  // namespace aether::services::tasks
