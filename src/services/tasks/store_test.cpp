// The tasks store on SQLite and PostgreSQL: each change writes its row, tags, history and events
// together or not at all, concurrent changes serialize, and list queries use the indexes.
#include "services/tasks/store.h"

#include <boost/asio/detached.hpp>
#include <iostream>

#include "platform/auth/tokens.h"
#include "platform/json/envelope.h"
#include "platform/sql/test_support.h"

namespace aether::services::tasks {
namespace {

using platform::sql::testing::Backend;
using platform::sql::testing::backend_name;
using platform::sql::testing::SqlTestBase;

Task sample(std::string title) {
    Task task;
    task.id = platform::auth::new_id("task_");
    task.title = std::move(title);
    task.description = "d";
    task.priority = "high";
    task.category = "ops";
    task.tags = {"b", "a"};
    task.estimated_hours = 2.5;
    task.created_by = "usr_a";
    task.created_at = "2025-01-01T00:00:00.000Z";
    task.updated_at = task.created_at;
    return task;
}

bus::Event event_for(const Task& task, std::string type) {
    boost::json::object data;
    data["task_id"] = task.id;
    return bus::make_event("tasks", std::move(type), std::move(data));
}

class TasksStoreTest : public ::testing::TestWithParam<Backend>, protected SqlTestBase {
  protected:
    void SetUp() override {
        sql::PoolOptions options;
        options.max_connections = 4;
        // Seeding 100 000 rows (seven indexes) takes over the default 10 s under ASan on a busy
        // 2-core machine.
        options.query_timeout = std::chrono::seconds(120);
        db_ = open_database(GetParam(), options);
        ASSERT_TRUE(db_);
        run(reset());
        store_ = std::make_unique<TasksStore>(db_);
    }

    asio::awaitable<void> reset() {
        std::string cascade = db_->dialect() == "postgres" ? " CASCADE" : "";
        for (auto table : {"task_tags", "task_comments", "task_history", "tasks", "outbox",
                           "schema_migrations"}) {
            co_await db_->query(std::string("DROP TABLE IF EXISTS ") + table + cascade);
        }
        co_await migrate_tasks(*db_);
        // Twice: an up-to-date database is left alone.
        co_await migrate_tasks(*db_);
    }

    std::int64_t count(std::string sql) {
        return run([&]() -> asio::awaitable<std::int64_t> {
            auto rows = co_await db_->query(sql);
            co_return rows[0].get_int(0);
        }());
    }

    void create(const Task& task) {
        std::vector<HistoryEntry> history(1);
        history[0].task_id = task.id;
        history[0].action = "created";
        history[0].user_id = task.created_by;
        history[0].timestamp = task.created_at;
        std::vector<bus::Event> events(1, event_for(task, "task.created"));
        run(store_->create(task, history, events));
    }

    std::vector<std::string> listed_ids(std::string target) {
        http::Request request;
        request.target = std::move(target);
        auto query = read_list_query(request);
        EXPECT_TRUE(query);
        auto page = run(store_->list(*query));
        std::vector<std::string> ids;
        for (const auto& task : page.items) ids.push_back(task.id);
        return ids;
    }

    std::shared_ptr<sql::Database> db_;
    std::unique_ptr<TasksStore> store_;
};

TEST_P(TasksStoreTest, CreateAndFindRoundTrip) {
    Task task = sample("Round trip");
    task.due_date = "2025-02-01T10:00:00.000Z";
    create(task);
    auto found = run(store_->find(task.id));
    ASSERT_TRUE(found);
    EXPECT_EQ(found->title, "Round trip");
    EXPECT_EQ(found->tags, (std::vector<std::string>{"b", "a"}));
    EXPECT_EQ(found->estimated_hours, 2.5);
    EXPECT_FALSE(found->actual_hours);
    EXPECT_FALSE(found->assignee);
    EXPECT_EQ(found->due_date, task.due_date);
    EXPECT_EQ(found->version, 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM task_tags"), 2);
    EXPECT_EQ(count("SELECT COUNT(*) FROM task_history"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE type = 'task.created'"), 1);
    EXPECT_FALSE(run(store_->find("task_missing")));
}

TEST_P(TasksStoreTest, ModifyWritesRowTagsHistoryAndEventsTogether) {
    Task task = sample("Before");
    create(task);
    TaskMutator mutate = [&](const Task& current, Task& next) {
        next.title = "After";
        next.tags = {"c"};
        next.updated_at = "2025-01-02T00:00:00.000Z";
        TaskWrite write;
        write.changed = true;
        write.history = history_for(current.id, diff(current, next), "usr_a", next.updated_at);
        write.events.push_back(event_for(next, "task.updated"));
        return write;
    };
    auto written = run(store_->modify(task.id, mutate));
    ASSERT_TRUE(written);
    EXPECT_EQ(written->version, 2);
    auto found = run(store_->find(task.id));
    EXPECT_EQ(found->title, "After");
    EXPECT_EQ(found->version, 2);
    EXPECT_EQ(found->tags, (std::vector<std::string>{"c"}));
    EXPECT_EQ(listed_ids("/?tags=c"), (std::vector<std::string>{task.id}));
    EXPECT_TRUE(listed_ids("/?tags=a").empty());
    auto history = run(store_->history(task.id, 10));
    ASSERT_EQ(history.size(), 3u);
    EXPECT_EQ(history[0].action, "created");
    EXPECT_EQ(history[1].field, "title");
    EXPECT_EQ(history[2].field, "tags");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 2);
}

TEST_P(TasksStoreTest, RefusedOrEmptyChangesWriteNothing) {
    Task task = sample("Keep");
    create(task);
    TaskMutator refuse = [&](const Task&, Task& next) -> TaskWrite {
        next.title = "Changed";
        throw platform::json::ClientError::precondition_failed("stale");
    };
    EXPECT_THROW(run(store_->modify(task.id, refuse)), platform::json::ClientError);
    TaskMutator nothing = [&](const Task&, Task&) { return TaskWrite{}; };
    auto same = run(store_->modify(task.id, nothing));
    ASSERT_TRUE(same);
    EXPECT_EQ(same->version, 1);
    auto found = run(store_->find(task.id));
    EXPECT_EQ(found->title, "Keep");
    EXPECT_EQ(found->version, 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM task_history"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), 1);
    bool called = false;
    TaskMutator unused = [&](const Task&, Task&) {
        called = true;
        return TaskWrite{};
    };
    EXPECT_FALSE(run(store_->modify("task_missing", unused)));
    EXPECT_FALSE(called);
}

TEST_P(TasksStoreTest, ConcurrentModificationsSerialize) {
    Task task = sample("Counter");
    create(task);
    constexpr int kWriters = 24;
    std::atomic<int> failures{0};
    TaskMutator increment = [](const Task& current, Task& next) {
        next.progress = current.progress + 1;
        TaskWrite write;
        write.changed = true;
        write.events.push_back(event_for(next, "task.updated"));
        return write;
    };
    auto writer = [&]() -> asio::awaitable<void> {
        try {
            co_await store_->modify(task.id, increment);
        } catch (const std::exception& error) {
            ADD_FAILURE() << error.what();
            ++failures;
        }
    };
    for (int i = 0; i < kWriters; ++i) asio::co_spawn(io_, writer(), asio::detached);
    run([]() -> asio::awaitable<void> { co_return; }(), 4);
    EXPECT_EQ(failures.load(), 0);
    auto found = run(store_->find(task.id));
    EXPECT_EQ(found->progress, kWriters);
    EXPECT_EQ(found->version, kWriters + 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox"), kWriters + 1);
}

TEST_P(TasksStoreTest, RemoveDeletesEverythingOfTheTask) {
    Task task = sample("Doomed");
    Task other = sample("Stays");
    create(task);
    create(other);
    Comment comment{"cmt_1", task.id, "usr_b", "hi", "2025-01-01T00:00:01.000Z"};
    ASSERT_TRUE(run(store_->add_comment(comment, event_for(task, "task.commented"))));
    DeleteCheck refuse = [](const Task&) -> std::vector<bus::Event> {
        throw platform::json::ClientError::forbidden();
    };
    EXPECT_THROW(run(store_->remove(task.id, refuse)), platform::json::ClientError);
    EXPECT_EQ(count("SELECT COUNT(*) FROM tasks"), 2);
    DeleteCheck allow = [](const Task& current) {
        return std::vector<bus::Event>(1, event_for(current, "task.deleted"));
    };
    EXPECT_TRUE(run(store_->remove(task.id, allow)));
    EXPECT_FALSE(run(store_->remove(task.id, allow)));
    EXPECT_EQ(count("SELECT COUNT(*) FROM tasks"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM task_tags"), 2);
    EXPECT_EQ(count("SELECT COUNT(*) FROM task_comments"), 0);
    EXPECT_EQ(count("SELECT COUNT(*) FROM task_history"), 1);
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE type = 'task.deleted'"), 1);
}

TEST_P(TasksStoreTest, CommentsOnMissingTasksAndNewestFirstLimits) {
    Task task = sample("Chatty");
    create(task);
    Comment orphan{"cmt_0", "task_missing", "usr_b", "hi", "2025-01-01T00:00:00.000Z"};
    EXPECT_FALSE(run(store_->add_comment(orphan, event_for(task, "task.commented"))));
    for (int i = 1; i <= 5; ++i) {
        Comment comment{"cmt_" + std::to_string(i), task.id, "usr_b", "c" + std::to_string(i),
                        "2025-01-01T00:00:0" + std::to_string(i) + ".000Z"};
        ASSERT_TRUE(run(store_->add_comment(comment, event_for(task, "task.commented"))));
    }
    auto newest = run(store_->comments(task.id, 3));
    ASSERT_EQ(newest.size(), 3u);
    EXPECT_EQ(newest[0].text, "c3");
    EXPECT_EQ(newest[2].text, "c5");
    EXPECT_EQ(count("SELECT COUNT(*) FROM outbox WHERE type = 'task.commented'"), 5);
}

// 100 000 tasks: every list shape the API produces must be served by an index, never by a full
// scan of tasks (PostgreSQL: EXPLAIN; SQLite: EXPLAIN QUERY PLAN).
TEST_P(TasksStoreTest, ListQueriesUseTheIndexesAt100000Tasks) {
    bool postgres = GetParam() == Backend::kPostgres;
    const std::string columns =
        "INSERT INTO tasks (id, title, description, status, priority, priority_rank, category, "
        "assignee, due_date, tags, progress, created_by, created_at, updated_at, version) ";
    std::string generate =
        postgres
            ? columns +
                  "SELECT 'task_' || lpad(i::text, 26, '0'), 'Task ' || i, '', "
                  "(ARRAY['pending','in_progress','completed','blocked'])[1 + i % 4], "
                  "(ARRAY['low','medium','high','urgent'])[1 + (i / 4) % 4], 1 + (i / 4) % 4, "
                  "'cat' || (i % 20), 'usr_' || (i % 500), CASE WHEN i % 3 = 0 THEN NULL ELSE "
                  "to_char(timestamp '2026-01-01' + i * interval '1 minute', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END, '[]', 0, 'usr_' || (i % 700), "
                  "to_char(timestamp '2025-01-01' + i * interval '1 second', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '2025-01-01T00:00:00.000Z', 1 "
                  "FROM generate_series(1, 100000) AS i"
            : "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100000) " +
                  columns +
                  "SELECT 'task_' || printf('%026d', i), 'Task ' || i, '', "
                  "CASE i % 4 WHEN 0 THEN 'pending' WHEN 1 THEN 'in_progress' WHEN 2 THEN "
                  "'completed' ELSE 'blocked' END, CASE (i / 4) % 4 WHEN 0 THEN 'low' WHEN 1 "
                  "THEN 'medium' WHEN 2 THEN 'high' ELSE 'urgent' END, 1 + (i / 4) % 4, "
                  "'cat' || (i % 20), 'usr_' || (i % 500), CASE WHEN i % 3 = 0 THEN NULL ELSE "
                  "strftime('%Y-%m-%dT%H:%M:%S.000Z', '2026-01-01', '+' || i || ' minutes') END, "
                  "'[]', 0, 'usr_' || (i % 700), "
                  "strftime('%Y-%m-%dT%H:%M:%S.000Z', '2025-01-01', '+' || i || ' seconds'), "
                  "'2025-01-01T00:00:00.000Z', 1 FROM s";
    std::string tags =
        postgres ? "INSERT INTO task_tags (task_id, tag) SELECT 'task_' || lpad(i::text, 26, '0'), "
                   "'tag' || (i % 10) FROM generate_series(1, 100000) AS i"
                 : "INSERT INTO task_tags (task_id, tag) SELECT id, 'tag' || "
                   "(CAST(substr(id, 6) AS INTEGER) % 10) FROM tasks";
    run([&]() -> asio::awaitable<void> {
        co_await db_->query(generate);
        co_await db_->query(tags);
        co_await db_->query(postgres ? "VACUUM ANALYZE" : "ANALYZE");
    }());
    ASSERT_EQ(count("SELECT COUNT(*) FROM tasks"), 100000);

    auto plan_of = [&](const std::string& sql, const std::vector<sql::Value>& params) {
        return run([&]() -> asio::awaitable<std::string> {
            auto rows =
                co_await db_->query((postgres ? "EXPLAIN " : "EXPLAIN QUERY PLAN ") + sql, params);
            std::string plan;
            for (const auto& row : rows) {
                plan += (postgres ? row.get_string(0) : row.get_string("detail")) + "\n";
            }
            co_return plan;
        }());
    };
    auto full_scan = [&](const std::string& plan) {
        if (postgres) return plan.find("Seq Scan on tasks") != std::string::npos;
        // SQLite names a full scan "SCAN t" and an index scan "SCAN t USING [COVERING] INDEX".
        std::size_t at = 0;
        while ((at = plan.find("SCAN t", at)) != std::string::npos) {
            auto end = plan.find('\n', at);
            if (plan.substr(at, end - at).find("USING") == std::string::npos) return true;
            at = end;
        }
        return false;
    };
    const char* shapes[] = {
        "/",
        "/?status=pending",
        "/?status=blocked&priority=urgent&category=cat7",
        "/?assignee=usr_42",
        "/?category=cat3&priority=low",
        "/?tags=tag3",
        "/?status=pending&tags=tag3",
        "/?due_before=2026-01-02&sort=due_date",
        "/?sort=due_date",
        "/?priority=high&order=asc",
    };
    for (const char* target : shapes) {
        http::Request request;
        request.target = target;
        auto query = read_list_query(request);
        ASSERT_TRUE(query) << target;
        auto statements = list_statements(*query);
        auto page_plan = plan_of(statements.page, statements.page_params);
        std::cout << "[plan] " << target << " (page)\n" << page_plan;
        EXPECT_FALSE(full_scan(page_plan)) << target << "\n" << page_plan;
        if (query->status || query->priority || query->category || query->assignee) {
            auto count_plan = plan_of(statements.count, statements.count_params);
            std::cout << "[plan] " << target << " (count)\n" << count_plan;
            EXPECT_FALSE(full_scan(count_plan)) << target << "\n" << count_plan;
        }
    }
    // The answers themselves, against the generated data (task i is created i seconds in).
    EXPECT_EQ(listed_ids("/?status=blocked&priority=urgent&category=cat7&limit=2"),
              (std::vector<std::string>{"task_00000000000000000000099967",
                                        "task_00000000000000000000099887"}));
    EXPECT_EQ(listed_ids("/?assignee=usr_42&limit=3"),
              (std::vector<std::string>{"task_00000000000000000000099542",
                                        "task_00000000000000000000099042",
                                        "task_00000000000000000000098542"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, TasksStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), backend_name);

}  // namespace
}  // namespace aether::services::tasks
