// Migrations on both drivers, using the set embedded from testdata/migrations by CMake.
#include "platform/sql/migrations.h"

#include "platform/sql/test_support.h"
#include "sqltest_migrations.h"

namespace aether::platform::sql {
namespace {

using testing::Backend;

class MigrationTest : public ::testing::TestWithParam<Backend>, protected testing::SqlTestBase {
  protected:
    void SetUp() override {
        db_ = open_database(GetParam());
        ASSERT_TRUE(db_);
        run([&]() -> asio::awaitable<void> {
            co_await db_->query("DROP TABLE IF EXISTS notes");
            co_await db_->query("DROP TABLE IF EXISTS schema_migrations");
        }());
    }

    asio::awaitable<std::int64_t> applied_count() {
        auto rows =
            co_await db_->query("SELECT count(*) AS n FROM schema_migrations WHERE module = $1",
                                std::string("sqltest"));
        co_return rows[0].get_int("n");
    }

    std::shared_ptr<Database> db_;
};

TEST(EmbeddedMigrations, AreReadFromTheFilesInOrder) {
    auto migrations = sqltest_migrations();
    ASSERT_EQ(migrations.size(), 2u);
    EXPECT_EQ(migrations[0].version, 1);
    EXPECT_EQ(migrations[0].name, "create_notes");
    EXPECT_EQ(migrations[0].sqlite_sql, migrations[0].postgres_sql);
    EXPECT_NE(migrations[0].sqlite_sql.find("CREATE TABLE notes"), std::string::npos);
    EXPECT_EQ(migrations[1].version, 2);
    EXPECT_EQ(migrations[1].name, "add_created_at");
    EXPECT_NE(migrations[1].sqlite_sql.find("TEXT NOT NULL"), std::string::npos);
    EXPECT_NE(migrations[1].postgres_sql.find("TIMESTAMPTZ"), std::string::npos);
    EXPECT_NE(migrations[1].postgres_sql.find(")\" \xC3\xA9'"), std::string::npos);
}

TEST_P(MigrationTest, AppliesOnceAndIsIdempotent) {
    run([&]() -> asio::awaitable<void> {
        co_await migrate(*db_, "sqltest", sqltest_migrations());
        EXPECT_EQ(co_await applied_count(), 2);
        co_await db_->query("INSERT INTO notes (id, title) VALUES ($1, $2)", std::string("n1"),
                            std::string("first"));
        co_await migrate(*db_, "sqltest", sqltest_migrations());
        EXPECT_EQ(co_await applied_count(), 2);
        auto rows = co_await db_->query("SELECT title, done, created_at FROM notes");
        CO_ASSERT_EQ(rows.size(), 1u);
        EXPECT_FALSE(rows[0].get_bool("done"));
        EXPECT_EQ(rows[0].get_string("created_at").substr(0, 4), "1970");
        auto recorded = co_await db_->query(
            "SELECT version, name, applied_at FROM schema_migrations WHERE module = $1 "
            "ORDER BY version",
            std::string("sqltest"));
        EXPECT_EQ(recorded[1].get_string("name"), "add_created_at");
        EXPECT_EQ(recorded[1].get_string("applied_at").size(), 24u);  // 2024-01-01T00:00:00.000Z
    }());
}

TEST_P(MigrationTest, AppliesOnlyNewMigrations) {
    run([&]() -> asio::awaitable<void> {
        auto migrations = sqltest_migrations();
        std::vector<Migration> first(migrations.begin(), migrations.begin() + 1);
        co_await migrate(*db_, "sqltest", first);
        EXPECT_EQ(co_await applied_count(), 1);
        co_await migrate(*db_, "sqltest", migrations);
        EXPECT_EQ(co_await applied_count(), 2);
        // Another module's history is separate.
        std::vector<Migration> other = {{1, "noop", "SELECT 1", "SELECT 1"}};
        co_await migrate(*db_, "other", other);
        EXPECT_EQ(co_await applied_count(), 2);
    }());
}

TEST_P(MigrationTest, RefusesAnEditedHistory) {
    auto migrations = sqltest_migrations();
    run(migrate(*db_, "sqltest", migrations));
    migrations[0].name = "create_notes_renamed";
    EXPECT_THROW(run(migrate(*db_, "sqltest", migrations)), MigrationError);
    std::vector<Migration> duplicated = {{3, "a", "", ""}, {3, "b", "", ""}};
    EXPECT_THROW(run(migrate(*db_, "sqltest", duplicated)), MigrationError);
}

TEST_P(MigrationTest, AFailingMigrationIsRolledBackAndNotRecorded) {
    std::vector<Migration> broken = {
        {1, "half", "CREATE TABLE notes (id TEXT); SELECT * FROM missing_table;",
         "CREATE TABLE notes (id TEXT); SELECT * FROM missing_table;"}};
    EXPECT_THROW(run(migrate(*db_, "sqltest", broken)), DatabaseError);
    auto count =
        run([&]() -> asio::awaitable<std::int64_t> { co_return co_await applied_count(); }());
    EXPECT_EQ(count, 0);
    // The table from the failed migration's first statement was rolled back too.
    run(migrate(*db_, "sqltest", sqltest_migrations()));
}

TEST_P(MigrationTest, TwoProcessesMigratingTogetherApplyEachMigrationOnce) {
    auto other = open_database(GetParam());
    ASSERT_TRUE(other);
    run(
        [&]() -> asio::awaitable<void> {
            auto executor = co_await asio::this_coro::executor;
            auto a = asio::co_spawn(executor, migrate(*db_, "sqltest", sqltest_migrations()),
                                    asio::use_future);
            auto b = asio::co_spawn(executor, migrate(*other, "sqltest", sqltest_migrations()),
                                    asio::use_future);
            while (a.wait_for(std::chrono::seconds(0)) != std::future_status::ready ||
                   b.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
                co_await sleep_for(std::chrono::milliseconds(5));
            }
            a.get();
            b.get();
            EXPECT_EQ(co_await applied_count(), 2);
        }(),
        2);
}

INSTANTIATE_TEST_SUITE_P(Drivers, MigrationTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::backend_name);

}  // namespace
}  // namespace aether::platform::sql
