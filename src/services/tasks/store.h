// SQL of the task manager: tasks with their tags, comments and history, written together with
// their events (transactional outbox) in one transaction per change.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "platform/bus/bus.h"
#include "platform/sql/database.h"
#include "services/tasks/task.h"

namespace aether::services::tasks {

namespace asio = boost::asio;
namespace sql = platform::sql;
namespace bus = platform::bus;

// Brings the module's tables and its outbox up to date (Module::migrate, tests).
asio::awaitable<void> migrate_tasks(sql::Database& database);

template <class T>
struct Page {
    std::vector<T> items;
    std::int64_t total = 0;
};

// What a change to one task writes besides the task row, in the same transaction.
struct TaskWrite {
    // False: nothing is written and the task is returned as it is (an update that changes no
    // field).
    bool changed = false;
    std::vector<HistoryEntry> history;  // empty ids are filled in
    std::vector<bus::Event> events;
};

// Decides a change inside the transaction from the task as it is now (`current`): edits `task`,
// a copy of it, and says what else to write. Throwing (a json::ClientError for 403/409/412)
// refuses the change: nothing is written.
using TaskMutator = std::function<TaskWrite(const Task& current, Task& task)>;
// Decides a deletion from the task as it is now; returns the events to append or throws.
using DeleteCheck = std::function<std::vector<bus::Event>(const Task& current)>;

class TasksStore {
  public:
    explicit TasksStore(std::shared_ptr<sql::Database> database) : database_(std::move(database)) {}

    asio::awaitable<void> create(const Task& task, const std::vector<HistoryEntry>& history,
                                 const std::vector<bus::Event>& events);
    asio::awaitable<std::optional<Task>> find(const std::string& id);
    // Changes a task atomically: the row is locked (PostgreSQL) or the database is (SQLite), and
    // the UPDATE is conditional on the version read, which it increments. Returns the task as
    // written, or nullopt when there is no such task.
    asio::awaitable<std::optional<Task>> modify(const std::string& id, const TaskMutator& mutate);
    // Deletes a task with its tags, comments and history; false when there is no such task.
    asio::awaitable<bool> remove(const std::string& id, const DeleteCheck& check);
    // False when the task does not exist (any more).
    asio::awaitable<bool> add_comment(const Comment& comment, const bus::Event& event);

    // The newest `limit` comments / history entries, oldest first.
    asio::awaitable<std::vector<Comment>> comments(const std::string& task_id, std::int64_t limit);
    asio::awaitable<std::vector<HistoryEntry>> history(const std::string& task_id,
                                                       std::int64_t limit);

    asio::awaitable<Page<Task>> list(const ListQuery& query);
    // Counts per (status, priority); tasks due before `now` and not completed are overdue.
    asio::awaitable<std::vector<StatsGroup>> stats(const StatsQuery& query, const std::string& now);

  private:
    std::shared_ptr<sql::Database> database_;
};

// The two statements of a list query (exposed for tests and EXPLAIN): only plain comparisons on
// indexed columns, so the filter indexes serve them.
struct ListStatements {
    std::string count;  // SELECT COUNT(*) ... WHERE ...
    std::vector<sql::Value> count_params;
    std::string page;  // SELECT ... WHERE ... ORDER BY ... LIMIT ... OFFSET ...
    std::vector<sql::Value> page_params;
};
ListStatements list_statements(const ListQuery& query);

}  // namespace aether::services::tasks
