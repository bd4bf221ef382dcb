// SQL of the task manager, written once in the common subset of SQLite and PostgreSQL.
#include "services/tasks/store.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "platform/auth/tokens.h"
#include "platform/bus/outbox.h"
#include "platform/json/envelope.h"
#include "platform/sql/migrations.h"
#include "tasks_migrations.h"

namespace aether::services::tasks {
namespace {

constexpr const char* kTaskColumns =
    "t.id, t.title, t.description, t.status, t.priority, t.category, t.assignee, t.due_date, "
    "t.tags, t.estimated_hours, t.actual_hours, t.progress, t.created_by, t.created_at, "
    "t.updated_at, t.completed_at, t.completed_by, t.completion_hours, t.version";

std::vector<std::string> parse_tags(const std::string& text) {
    std::vector<std::string> tags;
    boost::system::error_code error;
    auto value = boost::json::parse(text, error);
    if (error || !value.is_array()) return tags;
    for (const auto& item : value.get_array()) {
        if (item.is_string()) tags.emplace_back(item.get_string());
    }
    return tags;
}

std::string tags_text(const std::vector<std::string>& tags) {
    boost::json::array array;
    for (const auto& tag : tags) array.emplace_back(tag);
    return boost::json::serialize(array);
}

Task to_task(const sql::Row& row) {
    Task task;
    task.id = row.get_string("id");
    task.title = row.get_string("title");
    task.description = row.get_string("description");
    task.status = row.get_string("status");
    task.priority = row.get_string("priority");
    task.category = row.get_optional_string("category");
    task.assignee = row.get_optional_string("assignee");
    task.due_date = row.get_optional_string("due_date");
    task.tags = parse_tags(row.get_string("tags"));
    task.estimated_hours = row.get_optional_double("estimated_hours");
    task.actual_hours = row.get_optional_double("actual_hours");
    task.progress = row.get_int("progress");
    task.created_by = row.get_string("created_by");
    task.created_at = row.get_string("created_at");
    task.updated_at = row.get_string("updated_at");
    task.completed_at = row.get_optional_string("completed_at");
    task.completed_by = row.get_optional_string("completed_by");
    task.completion_hours = row.get_optional_double("completion_hours");
    task.version = row.get_int("version");
    return task;
}

sql::Value optional_value(const std::optional<std::string>& value) {
    return value ? sql::Value{*value} : sql::Value{nullptr};
}

sql::Value optional_value(const std::optional<double>& value) {
    return value ? sql::Value{*value} : sql::Value{nullptr};
}

std::string placeholder(std::vector<sql::Value>& params, sql::Value value) {
    params.push_back(std::move(value));
    return "$" + std::to_string(params.size());
}

// Inserts whose results nobody reads are deferred: they reach the database with the transaction's
// next query or its commit, in the same round trip.
void insert_tags(sql::Session& session, const std::string& task_id,
                 const std::vector<std::string>& tags) {
    for (const auto& tag : tags) {
        session.defer("INSERT INTO task_tags (task_id, tag) VALUES ($1, $2)", task_id, tag);
    }
}

void insert_history(sql::Session& session, std::vector<HistoryEntry> entries) {
    for (auto& entry : entries) {
        if (entry.id.empty()) entry.id = platform::auth::new_id("hst_");
        session.defer(
            "INSERT INTO task_history (id, task_id, action, field, from_value, to_value, user_id, "
            "occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            entry.id, entry.task_id, entry.action, optional_value(entry.field), entry.from,
            entry.to, entry.user_id, entry.timestamp);
    }
}

asio::awaitable<void> append_events(sql::Session& session, const std::vector<bus::Event>& events) {
    for (const auto& event : events) co_await bus::append_to_outbox(session, event);
}

// The current row, locked against concurrent writers until the transaction ends (SQLite's
// BEGIN IMMEDIATE already holds the database).
asio::awaitable<std::optional<Task>> lock_task(sql::Session& session, const std::string& id) {
    std::string lock = session.dialect() == "postgres" ? " FOR UPDATE" : "";
    auto rows = co_await session.query(
        std::string("SELECT ") + kTaskColumns + " FROM tasks t WHERE t.id = $1" + lock, id);
    if (rows.empty()) co_return std::nullopt;
    co_return to_task(rows[0]);
}

}  // namespace

asio::awaitable<void> migrate_tasks(sql::Database& database) {
    co_await sql::migrate(database, "tasks", tasks_migrations());
    co_await bus::migrate_outbox(database);
}

ListStatements list_statements(const ListQuery& query) {
    std::vector<sql::Value> params;
    std::string where = " WHERE 1 = 1";
    if (query.status) where += " AND t.status = " + placeholder(params, *query.status);
    if (query.priority) where += " AND t.priority = " + placeholder(params, *query.priority);
    if (query.category) where += " AND t.category = " + placeholder(params, *query.category);
    if (query.assignee) where += " AND t.assignee = " + placeholder(params, *query.assignee);
    if (query.due_before) {
        where += " AND t.due_date < " + placeholder(params, *query.due_before);
    }
    // Every tag must be present: one probe of task_tags' primary key per tag.
    for (const auto& tag : query.tags) {
        where += " AND EXISTS (SELECT 1 FROM task_tags g WHERE g.task_id = t.id AND g.tag = " +
                 placeholder(params, tag) + ")";
    }
    std::string direction = query.descending ? " DESC" : " ASC";
    std::string column;
    switch (query.sort) {
        case SortField::CreatedAt:
            column = "t.created_at";
            break;
        case SortField::UpdatedAt:
            column = "t.updated_at";
            break;
        case SortField::DueDate:
            column = "t.due_date";
            break;
        case SortField::Priority:
            column = "t.priority_rank";
            break;
        case SortField::Title:
            column = "t.title";
            break;
        case SortField::Status:
            column = "t.status";
            break;
    }
    std::string order_by = " ORDER BY " + column + direction;
    // Tasks without a due date come last in both directions and on both databases.
    if (query.sort == SortField::DueDate) order_by += " NULLS LAST";
    if (query.sort != SortField::CreatedAt) order_by += ", t.created_at" + direction;
    order_by += ", t.id" + direction;
    ListStatements out;
    out.count = "SELECT COUNT(*) AS n FROM tasks t" + where;
    out.count_params = params;
    std::string limit = placeholder(params, query.page.limit);
    std::string offset = placeholder(params, query.page.offset());
    out.page = std::string("SELECT ") + kTaskColumns + " FROM tasks t" + where + order_by +
               " LIMIT " + limit + " OFFSET " + offset;
    out.page_params = std::move(params);
    return out;
}

asio::awaitable<void> TasksStore::create(const Task& task, const std::vector<HistoryEntry>& history,
                                         const std::vector<bus::Event>& events) {
    co_await database_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        session.defer(
            "INSERT INTO tasks (id, title, description, status, priority, priority_rank, "
            "category, assignee, due_date, tags, estimated_hours, actual_hours, progress, "
            "created_by, created_at, updated_at, completed_at, completed_by, completion_hours, "
            "version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
            "$16, $17, $18, $19, $20)",
            task.id, task.title, task.description, task.status, task.priority,
            static_cast<std::int64_t>(priority_rank(task.priority)), optional_value(task.category),
            optional_value(task.assignee), optional_value(task.due_date), tags_text(task.tags),
            optional_value(task.estimated_hours), optional_value(task.actual_hours), task.progress,
            task.created_by, task.created_at, task.updated_at, optional_value(task.completed_at),
            optional_value(task.completed_by), optional_value(task.completion_hours), task.version);
        insert_tags(session, task.id, task.tags);
        insert_history(session, history);
        co_await append_events(session, events);
    });
}

asio::awaitable<std::optional<Task>> TasksStore::find(const std::string& id) {
    auto rows = co_await database_->query(
        std::string("SELECT ") + kTaskColumns + " FROM tasks t WHERE t.id = $1", id);
    if (rows.empty()) co_return std::nullopt;
    co_return to_task(rows[0]);
}

asio::awaitable<std::optional<Task>> TasksStore::modify(const std::string& id,
                                                        const TaskMutator& mutate) {
    std::optional<Task> result;
    co_await database_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        auto current = co_await lock_task(session, id);
        if (!current) co_return;
        Task task = *current;
        TaskWrite write = mutate(*current, task);
        if (!write.changed) {
            result = std::move(*current);
            co_return;
        }
        task.version = current->version + 1;
        auto updated = co_await session.query(
            "UPDATE tasks SET title = $1, description = $2, status = $3, priority = $4, "
            "priority_rank = $5, category = $6, assignee = $7, due_date = $8, tags = $9, "
            "estimated_hours = $10, actual_hours = $11, progress = $12, updated_at = $13, "
            "completed_at = $14, completed_by = $15, completion_hours = $16, version = $17 "
            "WHERE id = $18 AND version = $19",
            task.title, task.description, task.status, task.priority,
            static_cast<std::int64_t>(priority_rank(task.priority)), optional_value(task.category),
            optional_value(task.assignee), optional_value(task.due_date), tags_text(task.tags),
            optional_value(task.estimated_hours), optional_value(task.actual_hours), task.progress,
            task.updated_at, optional_value(task.completed_at), optional_value(task.completed_by),
            optional_value(task.completion_hours), task.version, id, current->version);
        if (updated.affected_rows() != 1) {
            // Unreachable while the row lock holds; kept so a lost race can never write twice.
            throw platform::json::ClientError::precondition_failed(
                "the task was changed concurrently; fetch it again");
        }
        if (task.tags != current->tags) {
            session.defer("DELETE FROM task_tags WHERE task_id = $1", id);
            insert_tags(session, id, task.tags);
        }
        insert_history(session, std::move(write.history));
        co_await append_events(session, write.events);
        result = std::move(task);
    });
    co_return result;
}

asio::awaitable<bool> TasksStore::remove(const std::string& id, const DeleteCheck& check) {
    bool found = false;
    co_await database_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        auto current = co_await lock_task(session, id);
        if (!current) co_return;
        auto events = check(*current);
        co_await session.query("DELETE FROM task_tags WHERE task_id = $1", id);
        co_await session.query("DELETE FROM task_comments WHERE task_id = $1", id);
        co_await session.query("DELETE FROM task_history WHERE task_id = $1", id);
        auto deleted = co_await session.query("DELETE FROM tasks WHERE id = $1 AND version = $2",
                                              id, current->version);
        if (deleted.affected_rows() != 1) {
            throw platform::json::ClientError::precondition_failed(
                "the task was changed concurrently; fetch it again");
        }
        co_await append_events(session, events);
        found = true;
    });
    co_return found;
}

asio::awaitable<bool> TasksStore::add_comment(const Comment& comment, const bus::Event& event) {
    bool found = false;
    co_await database_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        // FOR SHARE keeps a concurrent delete from removing the task under the new comment.
        std::string lock = session.dialect() == "postgres" ? " FOR SHARE" : "";
        auto rows =
            co_await session.query("SELECT id FROM tasks WHERE id = $1" + lock, comment.task_id);
        if (rows.empty()) co_return;
        co_await session.query(
            "INSERT INTO task_comments (id, task_id, user_id, text, created_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            comment.id, comment.task_id, comment.user_id, comment.text, comment.created_at);
        co_await bus::append_to_outbox(session, event);
        found = true;
    });
    co_return found;
}

asio::awaitable<std::vector<Comment>> TasksStore::comments(const std::string& task_id,
                                                           std::int64_t limit) {
    auto rows = co_await database_->query(
        "SELECT id, task_id, user_id, text, created_at FROM task_comments WHERE task_id = $1 "
        "ORDER BY created_at DESC, id DESC LIMIT $2",
        task_id, limit);
    std::vector<Comment> comments;
    comments.reserve(rows.size());
    for (const auto& row : rows) {
        comments.push_back(Comment{row.get_string("id"), row.get_string("task_id"),
                                   row.get_string("user_id"), row.get_string("text"),
                                   row.get_string("created_at")});
    }
    std::reverse(comments.begin(), comments.end());
    co_return comments;
}

asio::awaitable<std::vector<HistoryEntry>> TasksStore::history(const std::string& task_id,
                                                               std::int64_t limit) {
    auto rows = co_await database_->query(
        "SELECT id, task_id, action, field, from_value, to_value, user_id, occurred_at "
        "FROM task_history WHERE task_id = $1 ORDER BY id DESC LIMIT $2",
        task_id, limit);
    std::vector<HistoryEntry> entries;
    entries.reserve(rows.size());
    for (const auto& row : rows) {
        HistoryEntry entry;
        entry.id = row.get_string("id");
        entry.task_id = row.get_string("task_id");
        entry.action = row.get_string("action");
        entry.field = row.get_optional_string("field");
        entry.from = row.get_string("from_value");
        entry.to = row.get_string("to_value");
        entry.user_id = row.get_string("user_id");
        entry.timestamp = row.get_string("occurred_at");
        entries.push_back(std::move(entry));
    }
    std::reverse(entries.begin(), entries.end());
    co_return entries;
}

asio::awaitable<Page<Task>> TasksStore::list(const ListQuery& query) {
    auto statements = list_statements(query);
    Page<Task> page;
    auto count =
        co_await database_->query(std::move(statements.count), std::move(statements.count_params));
    page.total = count[0].get_int("n");
    // Past the last page there is nothing to read.
    if (page.total <= query.page.offset()) co_return page;
    auto rows =
        co_await database_->query(std::move(statements.page), std::move(statements.page_params));
    page.items.reserve(rows.size());
    for (const auto& row : rows) page.items.push_back(to_task(row));
    co_return page;
}

asio::awaitable<std::vector<StatsGroup>> TasksStore::stats(const StatsQuery& query,
                                                           const std::string& now) {
    std::vector<sql::Value> params;
    std::string now_param = placeholder(params, now);
    std::string where = " WHERE 1 = 1";
    if (query.user_id) {
        std::string user = placeholder(params, *query.user_id);
        where += " AND (created_by = " + user + " OR assignee = " + user + ")";
    }
    if (query.since) where += " AND created_at >= " + placeholder(params, *query.since);
    if (query.until) where += " AND created_at < " + placeholder(params, *query.until);
    std::string sql = "SELECT status, priority, COUNT(*) AS n, SUM(CASE WHEN due_date < " +
                      now_param +
                      " AND status <> 'completed' THEN 1 ELSE 0 END) AS overdue, "
                      "SUM(completion_hours) AS hours_sum, COUNT(completion_hours) AS hours_n "
                      "FROM tasks" +
                      where + " GROUP BY status, priority";
    auto rows = co_await database_->query(std::move(sql), std::move(params));
    std::vector<StatsGroup> groups;
    groups.reserve(rows.size());
    for (const auto& row : rows) {
        StatsGroup group;
        group.status = row.get_string("status");
        group.priority = row.get_string("priority");
        group.count = row.get_int("n");
        group.overdue = row.get_optional_int("overdue").value_or(0);
        group.completion_hours_sum = row.get_optional_double("hours_sum").value_or(0.0);
        group.completion_hours_count = row.get_int("hours_n");
        groups.push_back(std::move(group));
    }
    co_return groups;
}

}  // namespace aether::services::tasks
