// The driver suite: every case runs against SQLite (a temp file) and PostgreSQL.
#include <algorithm>
#include <atomic>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>

#include "platform/sql/test_support.h"

namespace aether::platform::sql {
namespace {

using testing::Backend;
using Kind = DatabaseError::Kind;

class DriverTest : public ::testing::TestWithParam<Backend>, protected testing::SqlTestBase {
  protected:
    std::shared_ptr<Database> open_db(PoolOptions options = {}) {
        return open_database(GetParam(), options);
    }
    bool postgres() const { return GetParam() == Backend::kPostgres; }

    // A fresh `items` table with a column per Value type.
    asio::awaitable<void> create_items(Database& db) {
        co_await db.query("DROP TABLE IF EXISTS items");
        co_await db.query(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT UNIQUE, qty BIGINT, "
            "price DOUBLE PRECISION, active BOOLEAN, note TEXT)");
    }
};

// The kind of DatabaseError the awaited operation throws (a test failure if it succeeds).
template <class T>
asio::awaitable<Kind> failure_kind(asio::awaitable<T> operation) {
    try {
        co_await std::move(operation);
    } catch (const DatabaseError& error) {
        co_return error.kind();
    }
    ADD_FAILURE() << "expected a DatabaseError";
    co_return Kind::Other;
}

template <class F>
Kind kind_of_failure(F&& body) {
    try {
        body();
    } catch (const DatabaseError& error) {
        return error.kind();
    }
    ADD_FAILURE() << "expected a DatabaseError";
    return Kind::Other;
}

TEST_P(DriverTest, ReportsItsDialect) {
    auto db = open_db();
    ASSERT_TRUE(db);
    EXPECT_EQ(db->dialect(), postgres() ? "postgres" : "sqlite");
}

TEST_P(DriverTest, CrudRoundTripWithEveryValueTypeAndNull) {
    auto db = open_db();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_items(*db);
        const std::int64_t big = 9007199254740993;  // 2^53 + 1: not exact as a double
        std::vector<Value> params{std::int64_t{1}, std::string("widget"), big, 0.1, true, nullptr};
        auto inserted = co_await db->query(
            "INSERT INTO items (id, name, qty, price, active, note) VALUES ($1, $2, $3, $4, $5, "
            "$6)",
            std::move(params));
        EXPECT_EQ(inserted.affected_rows(), 1);
        auto returned = co_await db->query(
            "INSERT INTO items (id, name, qty, price, active, note) VALUES ($1, $2, $3, $4, $5, "
            "$6) "
            "RETURNING id",
            std::int64_t{2}, std::string("gadget"), std::int64_t{-7}, -2.5, false,
            std::string("n"));
        EXPECT_EQ(returned.affected_rows(), 1);
        CO_ASSERT_EQ(returned.size(), 1u);
        EXPECT_EQ(returned[0].get_int("id"), 2);

        auto rows =
            co_await db->query("SELECT id, name, qty, price, active, note FROM items ORDER BY id");
        EXPECT_EQ(rows.affected_rows(), 0);
        CO_ASSERT_EQ(rows.size(), 2u);
        const Row& first = rows[0];
        EXPECT_EQ(first.get_int("id"), 1);
        EXPECT_EQ(first.get_string("name"), "widget");
        EXPECT_EQ(first.get_int("qty"), big);
        EXPECT_DOUBLE_EQ(first.get_double("price"), 0.1);
        EXPECT_TRUE(first.get_bool("active"));
        EXPECT_TRUE(first.is_null("note"));
        EXPECT_EQ(first.get_optional_string("note"), std::nullopt);
        EXPECT_EQ(first.get_optional_int("qty"), big);
        EXPECT_EQ(first.get_string(1), "widget");
        EXPECT_EQ(first.columns().at(4), "active");
        const Row& second = rows[1];
        EXPECT_EQ(second.get_int(2), -7);
        EXPECT_DOUBLE_EQ(second.get_double("price"), -2.5);
        EXPECT_FALSE(second.get_bool("active"));
        EXPECT_EQ(second.get_optional_bool("active"), false);
        EXPECT_EQ(second.get_optional_string("note"), "n");
        EXPECT_EQ(kind_of_failure([&] { second.get_int("missing"); }), Kind::Other);
        EXPECT_EQ(kind_of_failure([&] { second.get_int("name"); }), Kind::Other);
        EXPECT_EQ(kind_of_failure([&] { first.get_string("note"); }), Kind::Other);

        auto updated = co_await db->query("UPDATE items SET note = $1 WHERE qty < $2",
                                          std::string("cheap"), std::int64_t{0});
        EXPECT_EQ(updated.affected_rows(), 1);
        auto deleted = co_await db->query("DELETE FROM items");
        EXPECT_EQ(deleted.affected_rows(), 2);
        EXPECT_TRUE((co_await db->query("SELECT id FROM items")).empty());
    }());
}

TEST_P(DriverTest, ParametersCarryQuotesUnicodeAndReuse) {
    auto db = open_db();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_items(*db);
        const std::string tricky = "O'Brien \"q\" $1 ; DROP TABLE items; -- \\ %";
        const std::string unicode = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x9A\x80";
        co_await db->query("INSERT INTO items (id, name, note) VALUES ($1, $2, $3)",
                           std::int64_t{1}, tricky, unicode);
        auto rows = co_await db->query("SELECT note FROM items WHERE name = $1", tricky);
        CO_ASSERT_EQ(rows.size(), 1u);
        EXPECT_EQ(rows[0].get_string("note"), unicode);
        auto same =
            co_await db->query("SELECT id FROM items WHERE name = $1 OR note = $1", unicode);
        EXPECT_EQ(same.size(), 1u);
        auto sum = co_await db->query("SELECT $1 + 1 AS n, $2 * 2.0 AS d", std::int64_t{41}, 1.25);
        EXPECT_EQ(sum[0].get_int("n"), 42);
        EXPECT_DOUBLE_EQ(sum[0].get_double("d"), 2.5);
        EXPECT_EQ(co_await failure_kind(db->query("SELECT $1 AS a, $2 AS b", std::int64_t{1})),
                  Kind::Other);
        EXPECT_EQ(co_await failure_kind(db->query("SELEKT 1")), Kind::Other);
    }());
}

TEST_P(DriverTest, UniqueViolationHasItsKindAndNoParameterValues) {
    auto db = open_db();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_items(*db);
        const std::string secret = "s3cret-token-value";
        co_await db->query("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{1}, secret);
        try {
            co_await db->query("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{2},
                               secret);
            ADD_FAILURE() << "duplicate insert succeeded";
        } catch (const DatabaseError& error) {
            EXPECT_EQ(error.kind(), Kind::UniqueViolation) << error.what();
            EXPECT_EQ(std::string(error.what()).find(secret), std::string::npos) << error.what();
        }
        EXPECT_EQ(
            co_await failure_kind(db->query("INSERT INTO items (id) VALUES ($1)", std::int64_t{1})),
            Kind::UniqueViolation);
    }());
}

TEST_P(DriverTest, ForeignKeyViolationHasItsKind) {
    auto db = open_db();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await db->query("DROP TABLE IF EXISTS children");
        co_await db->query("DROP TABLE IF EXISTS parents");
        co_await db->query("CREATE TABLE parents (id BIGINT PRIMARY KEY)");
        co_await db->query(
            "CREATE TABLE children (id BIGINT PRIMARY KEY, parent BIGINT REFERENCES parents(id))");
        EXPECT_EQ(co_await failure_kind(db->query("INSERT INTO children VALUES ($1, $2)",
                                                  std::int64_t{1}, std::int64_t{99})),
                  Kind::ForeignKey);
    }());
}

TEST_P(DriverTest, TransactionCommitsWhenTheBodyReturns) {
    auto db = open_db();
    ASSERT_TRUE(db);
    auto count = run([&]() -> asio::awaitable<std::int64_t> {
        co_await create_items(*db);
        co_await db->transaction([](Session& session) -> asio::awaitable<void> {
            co_await session.query("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{1},
                                   std::string("a"));
            auto inside = co_await session.query("SELECT count(*) AS n FROM items");
            EXPECT_EQ(inside[0].get_int("n"), 1);
            co_await session.query("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{2},
                                   std::string("b"));
        });
        auto rows = co_await db->query("SELECT count(*) AS n FROM items");
        co_return rows[0].get_int("n");
    }());
    EXPECT_EQ(count, 2);
}

TEST_P(DriverTest, TransactionRollsBackAndRethrowsWhenTheBodyThrows) {
    auto db = open_db();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_items(*db);
        bool caught = false;
        try {
            co_await db->transaction([](Session& session) -> asio::awaitable<void> {
                co_await session.query("INSERT INTO items (id) VALUES ($1)", std::int64_t{1});
                throw std::runtime_error("boom");
            });
        } catch (const std::runtime_error& error) {
            caught = std::string(error.what()) == "boom";
        }
        EXPECT_TRUE(caught);
        // A failing statement aborts the transaction the same way, with its own error.
        EXPECT_EQ(
            co_await failure_kind(db->transaction([](Session& session) -> asio::awaitable<void> {
                co_await session.query("INSERT INTO items (id) VALUES ($1)", std::int64_t{2});
                co_await session.query("INSERT INTO items (id) VALUES ($1)", std::int64_t{2});
            })),
            Kind::UniqueViolation);
        auto rows = co_await db->query("SELECT count(*) AS n FROM items");
        EXPECT_EQ(rows[0].get_int("n"), 0);
        // The connection is clean afterwards.
        co_await db->transaction([](Session& session) -> asio::awaitable<void> {
            co_await session.query("INSERT INTO items (id) VALUES ($1)", std::int64_t{3});
        });
        EXPECT_EQ((co_await db->query("SELECT id FROM items")).size(), 1u);
    }());
}

TEST_P(DriverTest, DeferredStatementsRunInOrderWithTheNextQueryOrTheCommit) {
    auto db = open_db();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_items(*db);
        co_await db->transaction([](Session& session) -> asio::awaitable<void> {
            session.defer("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{1}, "a");
            session.defer("UPDATE items SET name = $1 WHERE id = $2", "b", std::int64_t{1});
            // The next query sees what was deferred before it.
            auto seen =
                co_await session.query("SELECT name FROM items WHERE id = $1", std::int64_t{1});
            EXPECT_EQ(seen.size(), 1u);
            if (!seen.empty()) {
                EXPECT_EQ(seen[0].get_string("name"), "b");
            }
            session.defer("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{2}, "c");
        });
        // Deferred after the last query: committed with the commit.
        auto rows = co_await db->query("SELECT id, name FROM items ORDER BY id");
        EXPECT_EQ(rows.size(), 2u);
        if (rows.size() == 2) {
            EXPECT_EQ(rows[1].get_string("name"), "c");
        }

        // A deferred statement that fails fails the commit, and nothing of the body stays.
        EXPECT_EQ(
            co_await failure_kind(db->transaction([](Session& session) -> asio::awaitable<void> {
                session.defer("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{3}, "d");
                session.defer("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{1}, "x");
                session.defer("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{4}, "e");
                co_return;
            })),
            Kind::UniqueViolation);
        // ... or the query it went out with.
        EXPECT_EQ(
            co_await failure_kind(db->transaction([](Session& session) -> asio::awaitable<void> {
                session.defer("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{2}, "x");
                co_await session.query("SELECT count(*) AS n FROM items");
                ADD_FAILURE() << "the query after a failed deferred statement returned";
            })),
            Kind::UniqueViolation);
        // A body that throws before its first query leaves nothing behind either.
        bool caught = false;
        try {
            co_await db->transaction([](Session& session) -> asio::awaitable<void> {
                session.defer("INSERT INTO items (id, name) VALUES ($1, $2)", std::int64_t{5}, "f");
                throw std::runtime_error("refused");
            });
        } catch (const std::runtime_error&) {
            caught = true;
        }
        EXPECT_TRUE(caught);
        rows = co_await db->query("SELECT count(*) AS n FROM items");
        EXPECT_EQ(rows[0].get_int("n"), 2);
        // The connection is clean afterwards.
        co_await db->transaction([](Session& session) -> asio::awaitable<void> {
            session.defer("DELETE FROM items WHERE id = $1", std::int64_t{2});
            co_return;
        });
        rows = co_await db->query("SELECT count(*) AS n FROM items");
        EXPECT_EQ(rows[0].get_int("n"), 1);
    }());
}

TEST_P(DriverTest, ManyCoroutinesShareASmallPool) {
    PoolOptions options;
    options.max_connections = 3;
    auto db = open_db(options);
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> { co_await create_items(*db); }());
    constexpr int kCoroutines = 40;
    std::atomic<int> succeeded{0};
    run(
        [&]() -> asio::awaitable<void> {
            auto executor = co_await asio::this_coro::executor;
            std::vector<std::future<void>> done;
            for (int i = 0; i < kCoroutines; ++i) {
                done.push_back(asio::co_spawn(
                    executor,
                    [&, i]() -> asio::awaitable<void> {
                        co_await db->query("INSERT INTO items (id, qty) VALUES ($1, $2)",
                                           std::int64_t{i}, std::int64_t{i * 2});
                        auto rows = co_await db->query("SELECT qty FROM items WHERE id = $1",
                                                       std::int64_t{i});
                        if (rows.size() == 1 && rows[0].get_int("qty") == i * 2) ++succeeded;
                    },
                    asio::use_future));
            }
            co_return;
        }(),
        2);
    EXPECT_EQ(succeeded.load(), kCoroutines);
    auto count = run([&]() -> asio::awaitable<std::int64_t> {
        co_return (co_await db->query("SELECT count(*) AS n FROM items"))[0].get_int("n");
    }());
    EXPECT_EQ(count, kCoroutines);
}

TEST_P(DriverTest, WaitersAreBoundedAndTimeOut) {
    PoolOptions options;
    options.max_connections = 1;
    options.max_waiters = 2;
    options.acquire_timeout = std::chrono::milliseconds(10000);
    auto db = open_db(options);
    ASSERT_TRUE(db);
    PoolOptions impatient = options;
    impatient.acquire_timeout = std::chrono::milliseconds(100);
    run([&]() -> asio::awaitable<void> {
        auto executor = co_await asio::this_coro::executor;
        asio::steady_timer gate(executor, std::chrono::steady_clock::time_point::max());
        bool holding = false;
        auto holder = asio::co_spawn(
            executor, db->transaction([&](Session& session) -> asio::awaitable<void> {
                co_await session.query("SELECT 1 AS one");
                holding = true;
                try {
                    co_await gate.async_wait(asio::use_awaitable);
                } catch (const boost::system::system_error&) {
                }
            }),
            asio::use_future);
        for (int i = 0; i < 500 && !holding; ++i) co_await sleep_for(std::chrono::milliseconds(10));
        EXPECT_TRUE(holding);

        std::vector<std::future<Result>> waiting;
        for (int i = 0; i < 2; ++i) {
            waiting.push_back(
                asio::co_spawn(executor, db->query("SELECT 1 AS one"), asio::use_future));
        }
        // Let both reach the queue.
        co_await sleep_for(std::chrono::milliseconds(50));
        EXPECT_EQ(co_await failure_kind(db->query("SELECT 1 AS one")), Kind::Busy);
        gate.cancel();
        for (int i = 0; i < 200; ++i) {
            bool ready = true;
            for (auto& future : waiting) {
                ready =
                    ready && future.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
            }
            if (ready) break;
            co_await sleep_for(std::chrono::milliseconds(10));
        }
        for (auto& future : waiting) EXPECT_EQ(future.get().size(), 1u);
        holder.get();
    }());

    auto slow = open_db(impatient);
    ASSERT_TRUE(slow);
    run([&]() -> asio::awaitable<void> {
        auto executor = co_await asio::this_coro::executor;
        asio::steady_timer gate(executor, std::chrono::steady_clock::time_point::max());
        bool holding = false;
        asio::co_spawn(executor, slow->transaction([&](Session& session) -> asio::awaitable<void> {
            co_await session.query("SELECT 1 AS one");
            holding = true;
            try {
                co_await gate.async_wait(asio::use_awaitable);
            } catch (const boost::system::system_error&) {
            }
        }),
                       asio::detached);
        for (int i = 0; i < 500 && !holding; ++i) co_await sleep_for(std::chrono::milliseconds(10));
        EXPECT_EQ(co_await failure_kind(slow->query("SELECT 1 AS one")), Kind::Timeout);
        gate.cancel();
    }());
}

TEST_P(DriverTest, SlowQueriesTimeOutAndTheConnectionRecovers) {
    PoolOptions options;
    options.max_connections = 2;
    options.query_timeout = std::chrono::milliseconds(300);
    auto db = open_db(options);
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        std::string slow = postgres() ? "SELECT pg_sleep(5)"
                                      : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                        "FROM c) SELECT count(*) FROM c";
        EXPECT_EQ(co_await failure_kind(db->query(slow)), Kind::Timeout);
        // Writers time out too (the SQLite writer connection, a PostgreSQL transaction).
        EXPECT_EQ(
            co_await failure_kind(db->transaction(
                [&](Session& session) -> asio::awaitable<void> { co_await session.query(slow); })),
            Kind::Timeout);
        auto rows = co_await db->query("SELECT 1 AS one");
        EXPECT_EQ(rows[0].get_int("one"), 1);
    }());
}

TEST_P(DriverTest, PingReportsReadinessAndCloseStopsTheDatabase) {
    auto db = open_db();
    ASSERT_TRUE(db);
    EXPECT_TRUE(run(db->ping()));
    db->close();
    EXPECT_FALSE(run(db->ping()));
    EXPECT_EQ(run(failure_kind(db->query("SELECT 1 AS one"))), Kind::ConnectionLost);
}

TEST_P(DriverTest, ScriptsRunSeveralStatementsInATransaction) {
    auto db = open_db();
    ASSERT_TRUE(db);
    auto count = run([&]() -> asio::awaitable<std::int64_t> {
        co_await create_items(*db);
        co_await db->transaction([](Session& session) -> asio::awaitable<void> {
            co_await session.execute_script(
                "INSERT INTO items (id) VALUES (1); INSERT INTO items (id) VALUES (2);");
        });
        EXPECT_EQ(co_await failure_kind(db->query(
                      "INSERT INTO items (id) VALUES (3); INSERT INTO items (id) VALUES (4)")),
                  Kind::Other);
        co_return (co_await db->query("SELECT count(*) AS n FROM items"))[0].get_int("n");
    }());
    EXPECT_EQ(count, 2);
}

INSTANTIATE_TEST_SUITE_P(Drivers, DriverTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::backend_name);

class SqliteOnly : public ::testing::Test, protected testing::SqlTestBase {};

TEST_F(SqliteOnly, ReadersSeeCommittedDataWhileTheWriterHoldsATransaction) {
    auto db = open_database(Backend::kSqlite);
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await db->query("CREATE TABLE t (id INTEGER PRIMARY KEY)");
        co_await db->query("INSERT INTO t (id) VALUES (1)");
        co_await db->transaction([&](Session& session) -> asio::awaitable<void> {
            co_await session.query("INSERT INTO t (id) VALUES (2)");
            // Runs on a reader connection (WAL): not blocked, and isolated from the open write.
            auto rows = co_await db->query("SELECT count(*) AS n FROM t");
            EXPECT_EQ(rows[0].get_int("n"), 1);
        });
        EXPECT_EQ((co_await db->query("SELECT count(*) AS n FROM t"))[0].get_int("n"), 2);
    }());
}

TEST_F(SqliteOnly, InMemoryDatabasesWorkAndBadUrlsFail) {
    auto memory = open("sqlite::memory:", io_.get_executor(), pool_);
    ASSERT_TRUE(memory);
    auto rows = run([&]() -> asio::awaitable<Result> {
        co_await (*memory)->query("CREATE TABLE t (v TEXT)");
        co_await (*memory)->query("INSERT INTO t VALUES ($1)", std::string("x"));
        co_return co_await (*memory)->query("SELECT v FROM t");
    }());
    EXPECT_EQ(rows[0].get_string("v"), "x");
    EXPECT_FALSE(open("sqlite:/nonexistent-dir/x/y.db", io_.get_executor(), pool_));
    EXPECT_FALSE(open("mysql://x", io_.get_executor(), pool_));
    EXPECT_FALSE(open("postgresql://host:notaport:/x?bad", io_.get_executor(), pool_));
}

class PostgresOnly : public ::testing::Test, protected testing::SqlTestBase {
  protected:
    // A pool of one connection: every query of a test meets the same backend.
    std::shared_ptr<Database> open_single_connection() {
        PoolOptions one;
        one.max_connections = 1;
        return open_database(Backend::kPostgres, one);
    }

    asio::awaitable<void> create_prepared_items(Database& db, std::string columns) {
        co_await db.query("DROP TABLE IF EXISTS prepared_items");
        co_await db.query("CREATE TABLE prepared_items (" + columns + ")");
    }

    // How many statements with this text the connection has prepared on the server.
    asio::awaitable<std::int64_t> prepared_count(Database& db, std::string_view text) {
        auto rows = co_await db.query(
            "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = $1",
            std::string(text));
        co_return rows[0].get_int("n");
    }

    // Starts `count` transactions at once, transaction i deferring what `defer_statements(i,
    // session)` defers, on `threads` threads; returns how each ended: nothing when it committed,
    // else the kind of its DatabaseError. Each must end exactly once.
    std::vector<std::optional<Kind>> transactions_at_once(
        Database& db, int count, const std::function<void(int, Session&)>& defer_statements,
        int threads = 1) {
        const auto size = static_cast<std::size_t>(count);
        std::vector<std::optional<Kind>> failures(size);
        std::vector<int> ended(size, 0);
        run(
            [&]() -> asio::awaitable<void> {
                auto executor = co_await asio::this_coro::executor;
                for (int i = 0; i < count; ++i) {
                    asio::co_spawn(
                        executor,
                        [&, i]() -> asio::awaitable<void> {
                            const auto index = static_cast<std::size_t>(i);
                            try {
                                co_await db.transaction(
                                    [&](Session& session) -> asio::awaitable<void> {
                                        defer_statements(i, session);
                                        co_return;
                                    });
                            } catch (const DatabaseError& error) {
                                failures[index] = error.kind();
                            }
                            ++ended[index];
                        },
                        asio::detached);
                }
                co_return;
            }(),
            threads);
        for (std::size_t i = 0; i < size; ++i) EXPECT_EQ(ended[i], 1) << "transaction " << i;
        return failures;
    }

    asio::awaitable<std::int64_t> backend_pid(Database& db) {
        co_return (co_await db.query("SELECT pg_backend_pid() AS pid"))[0].get_int("pid");
    }

    // Terminates a backend from another connection and waits until it is gone.
    asio::awaitable<void> terminate(Database& admin, std::int64_t pid) {
        co_await admin.query("SELECT pg_terminate_backend(CAST($1 AS INTEGER))", pid);
        for (int i = 0; i < 250; ++i) {
            auto rows = co_await admin.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = CAST($1 AS INTEGER)", pid);
            if (rows[0].get_int("n") == 0) co_return;
            co_await sleep_for(std::chrono::milliseconds(20));
        }
        ADD_FAILURE() << "backend " << pid << " did not exit";
    }
};

TEST_F(PostgresOnly, ATerminatedIdleConnectionIsReplaced) {
    auto db = open_single_connection();
    auto admin = open_database(Backend::kPostgres);
    ASSERT_TRUE(db && admin);
    run([&]() -> asio::awaitable<void> {
        auto first = co_await backend_pid(*db);
        EXPECT_EQ(co_await backend_pid(*db), first);  // pooled: same connection
        co_await terminate(*admin, first);
        auto second = co_await backend_pid(*db);
        EXPECT_NE(second, first);
        EXPECT_TRUE(co_await db->ping());
    }());
}

TEST_F(PostgresOnly, ALostConnectionFailsTheQueryAndTheNextOneWorks) {
    auto db = open_single_connection();
    auto admin = open_database(Backend::kPostgres);
    ASSERT_TRUE(db && admin);
    run([&]() -> asio::awaitable<void> {
        auto pid = co_await backend_pid(*db);
        auto executor = co_await asio::this_coro::executor;
        auto victim = asio::co_spawn(executor, failure_kind(db->query("SELECT pg_sleep(3)")),
                                     asio::use_future);
        for (int i = 0; i < 250; ++i) {
            auto rows = co_await admin->query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = CAST($1 AS INTEGER) "
                "AND state = 'active'",
                pid);
            if (rows[0].get_int("n") == 1) break;
            co_await sleep_for(std::chrono::milliseconds(10));
        }
        co_await terminate(*admin, pid);
        while (victim.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
            co_await sleep_for(std::chrono::milliseconds(10));
        }
        EXPECT_EQ(victim.get(), Kind::ConnectionLost);
        EXPECT_NE(co_await backend_pid(*db), pid);
    }());
}

TEST_F(PostgresOnly, StatementsArePreparedOncePerConnectionAndStillCorrect) {
    auto db = open_single_connection();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_prepared_items(*db, "id BIGINT PRIMARY KEY, name TEXT");
        const std::string insert = "INSERT INTO prepared_items (id, name) VALUES ($1, $2)";
        for (std::int64_t id = 1; id <= 5; ++id) {
            co_await db->query(insert, id, "item " + std::to_string(id));
        }
        // Inside a transaction (pipeline mode) and outside, one statement on the server.
        co_await db->transaction([&](Session& session) -> asio::awaitable<void> {
            session.defer(insert, {Value{std::int64_t{6}}, Value{std::string("deferred")}});
            co_await session.query(insert, std::int64_t{7}, std::string("queried"));
        });
        EXPECT_EQ(co_await prepared_count(*db, insert), 1);
        // Queries are planned for each call's values: never prepared.
        const std::string count = "SELECT count(*) AS n FROM prepared_items";
        for (int i = 0; i < 6; ++i) {
            auto rows = co_await db->query(count);
            EXPECT_EQ(rows[0].get_int("n"), 7);
        }
        EXPECT_EQ(co_await prepared_count(*db, count), 0);
        // A null where text was bound reuses the statement: both go untyped, the server infers.
        co_await db->query(insert, std::int64_t{8}, nullptr);
        auto null_name =
            co_await db->query("SELECT name FROM prepared_items WHERE id = $1", std::int64_t{8});
        EXPECT_TRUE(null_name[0].is_null("name"));
        EXPECT_EQ(co_await prepared_count(*db, insert), 1);
        // A number where text was bound is another statement: the key holds the types.
        co_await db->query("UPDATE prepared_items SET name = $1 WHERE id = $2",
                           std::string("renamed"), std::int64_t{8});
        co_await db->query("UPDATE prepared_items SET name = $1 WHERE id = $2", std::int64_t{42},
                           std::int64_t{8});
        EXPECT_EQ(co_await prepared_count(*db, "UPDATE prepared_items SET name = $1 WHERE id = $2"),
                  2);
    }());
}

TEST_F(PostgresOnly, AnOnlyDeferredBodyRunsAsOneImplicitTransaction) {
    auto db = open_single_connection();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_prepared_items(*db, "id BIGINT PRIMARY KEY, name TEXT");
        const std::string insert =
            "INSERT INTO prepared_items (id, name) VALUES ($1, txid_current()::text)";
        co_await db->transaction([&](Session& session) -> asio::awaitable<void> {
            session.defer(insert, {Value{std::int64_t{1}}});
            session.defer(insert, {Value{std::int64_t{2}}});
            co_return;
        });
        auto rows = co_await db->query("SELECT name FROM prepared_items ORDER BY id");
        EXPECT_EQ(rows.size(), 2u);
        if (rows.size() == 2) {
            EXPECT_EQ(rows[0].get_string("name"), rows[1].get_string("name"));
        }
        // A failure in the middle undoes the statements before it, and leaves the connection
        // outside any transaction: the pool keeps it (the same backend answers next).
        const auto backend = co_await backend_pid(*db);
        EXPECT_EQ(
            co_await failure_kind(db->transaction([&](Session& session) -> asio::awaitable<void> {
                session.defer(insert, {Value{std::int64_t{3}}});
                session.defer(insert, {Value{std::int64_t{1}}});
                session.defer(insert, {Value{std::int64_t{4}}});
                co_return;
            })),
            Kind::UniqueViolation);
        auto kept = co_await db->query("SELECT id FROM prepared_items ORDER BY id");
        EXPECT_EQ(kept.size(), 2u);
        if (kept.size() == 2) {
            EXPECT_EQ(kept[1].get_int("id"), 2);
        }
        EXPECT_EQ(co_await backend_pid(*db), backend);
        // A body that defers nothing keeps the connection too.
        co_await db->transaction([](Session&) -> asio::awaitable<void> { co_return; });
        EXPECT_EQ(co_await backend_pid(*db), backend);
    }());
}

TEST_F(PostgresOnly, WriteOnlyTransactionsCommitTogetherYetSucceedOrFailAlone) {
    PoolOptions options;
    options.max_connections = 8;
    auto db = open_database(Backend::kPostgres, options);
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_prepared_items(*db, "id BIGINT PRIMARY KEY, backend INTEGER");
        co_await db->query("DROP TABLE IF EXISTS item_notes");
        co_await db->query(
            "CREATE TABLE item_notes (item_id BIGINT, note TEXT CHECK (note <> 'refused'))");
        co_await db->query("INSERT INTO prepared_items (id, backend) VALUES (7, 0)");
    }());
    // Forty transactions at once, each an item and its note, in groups of five whose note
    // statement is new to the connection (its text names the group). The first of a group
    // finds its item there already: it fails at its first statement, before its group's first
    // use of the note statement (a PREPARE inside its segment would go down with it, and the
    // rest of the group with the name). The second fails at its note, after its item was
    // written: the item must not stay.
    constexpr int kTransactions = 40;
    auto failures = transactions_at_once(*db, kTransactions, [](int i, Session& session) {
        const std::int64_t id = i % 5 == 0 ? 7 : 100 + i;
        const std::string note = i % 5 == 1 ? "refused" : "note " + std::to_string(i);
        session.defer("INSERT INTO prepared_items (id, backend) VALUES ($1, pg_backend_pid())", id);
        session.defer("INSERT INTO item_notes (item_id, note) VALUES ($1, $2) /* group " +
                          std::to_string(i / 5) + " */",
                      id, note);
    });
    for (int i = 0; i < kTransactions; ++i) {
        SCOPED_TRACE("transaction " + std::to_string(i));
        const auto& failure = failures[static_cast<std::size_t>(i)];
        if (i % 5 == 0) {
            EXPECT_EQ(failure, Kind::UniqueViolation);
        } else if (i % 5 == 1) {
            EXPECT_EQ(failure, Kind::Other);
        } else {
            EXPECT_FALSE(failure.has_value());
        }
    }
    run([&]() -> asio::awaitable<void> {
        auto items =
            co_await db->query("SELECT id FROM prepared_items WHERE id >= 100 ORDER BY id");
        std::vector<std::int64_t> ids;
        for (const auto& row : items) ids.push_back(row.get_int("id"));
        std::vector<std::int64_t> expected;
        for (int i = 0; i < kTransactions; ++i) {
            if (i % 5 > 1) expected.push_back(100 + i);
        }
        EXPECT_EQ(ids, expected);
        auto notes = co_await db->query(
            "SELECT count(*) AS n, count(*) FILTER (WHERE item_id = 7 OR note = 'refused') AS "
            "stray FROM item_notes");
        EXPECT_EQ(notes[0].get_int("n"), static_cast<std::int64_t>(expected.size()));
        EXPECT_EQ(notes[0].get_int("stray"), 0);
        // They went out together: on the committers' connections (two at most), not one
        // connection of the pool's eight each.
        auto backends = co_await db->query(
            "SELECT count(DISTINCT backend) AS n FROM prepared_items WHERE id >= 100");
        EXPECT_LE(backends[0].get_int("n"), 2);
    }());
    // Another wave on four threads, where committers and callers race for the queue and the
    // statements are prepared already: every transaction commits exactly once.
    constexpr int kWave = 200;
    auto wave = transactions_at_once(
        *db, kWave,
        [](int i, Session& session) {
            session.defer("INSERT INTO prepared_items (id, backend) VALUES ($1, pg_backend_pid())",
                          std::int64_t{1000 + i});
        },
        4);
    for (int i = 0; i < kWave; ++i) {
        EXPECT_FALSE(wave[static_cast<std::size_t>(i)].has_value()) << "transaction " << i;
    }
    auto stored = run([&]() -> asio::awaitable<std::int64_t> {
        auto rows = co_await db->query(
            "SELECT count(DISTINCT id) AS n FROM prepared_items WHERE id >= 1000");
        co_return rows[0].get_int("n");
    }());
    EXPECT_EQ(stored, kWave);
}

TEST_F(PostgresOnly, AConnectionLostHalfwayFailsTheRestOfItsBatchOnlyAndIsReplaced) {
    auto db = open_database(Backend::kPostgres);
    ASSERT_TRUE(db);
    run(create_prepared_items(*db, "id BIGINT PRIMARY KEY, backend INTEGER"));
    // The sixth transaction's backend terminates itself: the five before it have committed,
    // it fails with ConnectionLost, and so does each after it that shared its round trip,
    // none of which may have stored its row.
    constexpr int kTransactions = 12;
    constexpr int kKiller = 5;
    auto failures = transactions_at_once(*db, kTransactions, [](int i, Session& session) {
        if (i == kKiller) {
            session.defer(
                "INSERT INTO prepared_items (id, backend) SELECT $1, "
                "pg_terminate_backend(pg_backend_pid())::int",
                std::int64_t{i});
        } else {
            session.defer("INSERT INTO prepared_items (id, backend) VALUES ($1, 0)",
                          std::int64_t{i});
        }
    });
    auto stored = run([&]() -> asio::awaitable<std::vector<std::int64_t>> {
        std::vector<std::int64_t> ids;
        for (const auto& row : co_await db->query("SELECT id FROM prepared_items ORDER BY id")) {
            ids.push_back(row.get_int("id"));
        }
        co_return ids;
    }());
    auto is_stored = [&stored](int id) {
        return std::find(stored.begin(), stored.end(), id) != stored.end();
    };
    for (int i = 0; i < kTransactions; ++i) {
        SCOPED_TRACE("transaction " + std::to_string(i));
        const auto index = static_cast<std::size_t>(i);
        if (i < kKiller) {
            EXPECT_FALSE(failures[index].has_value());
        } else if (i == kKiller) {
            EXPECT_EQ(failures[index], Kind::ConnectionLost);
        } else if (failures[index]) {
            EXPECT_EQ(failures[index], Kind::ConnectionLost);
        }
        EXPECT_EQ(is_stored(i), !failures[index].has_value());
    }
    // A committer on a new connection takes the next ones.
    run([&]() -> asio::awaitable<void> {
        co_await db->transaction([&](Session& session) -> asio::awaitable<void> {
            session.defer("INSERT INTO prepared_items (id, backend) VALUES ($1, 0)",
                          std::int64_t{100});
            co_return;
        });
        auto rows = co_await db->query("SELECT count(*) AS n FROM prepared_items WHERE id = 100");
        EXPECT_EQ(rows[0].get_int("n"), 1);
    }());
}

TEST_F(PostgresOnly, FailingPreparedStatementsAreNotPreparedAgain) {
    auto db = open_single_connection();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_prepared_items(*db, "id BIGINT PRIMARY KEY, name TEXT");
        const std::string insert = "INSERT INTO prepared_items (id) VALUES ($1)";
        co_await db->query(insert, std::int64_t{1});
        // The statement fails after it was prepared: the name stays valid and is reused.
        for (int i = 0; i < 3; ++i) {
            EXPECT_EQ(co_await failure_kind(db->query(insert, std::int64_t{1})),
                      Kind::UniqueViolation);
        }
        EXPECT_EQ(co_await prepared_count(*db, insert), 1);
        // A statement the server cannot prepare fails every time, and prepares nothing.
        const std::string broken = "UPDATE prepared_items SET nothing = 1 WHERE id = $1";
        for (int i = 0; i < 2; ++i) {
            EXPECT_EQ(co_await failure_kind(db->query(broken, std::int64_t{1})), Kind::Other);
        }
        EXPECT_EQ(co_await prepared_count(*db, broken), 0);
        // Nor does one queued behind a failure in the same round trip.
        const std::string behind = "UPDATE prepared_items SET name = 'x' WHERE id = $1";
        EXPECT_EQ(
            co_await failure_kind(db->transaction([&](Session& session) -> asio::awaitable<void> {
                session.defer(insert, {Value{std::int64_t{1}}});
                co_await session.query(behind, std::int64_t{1});
            })),
            Kind::UniqueViolation);
        EXPECT_EQ(co_await prepared_count(*db, behind), 0);
        auto updated = co_await db->query(behind, std::int64_t{1});
        EXPECT_EQ(updated.affected_rows(), 1);
        EXPECT_EQ(co_await prepared_count(*db, behind), 1);
    }());
}

TEST_F(PostgresOnly, ASchemaChangeDropsPreparedStatements) {
    auto db = open_single_connection();
    ASSERT_TRUE(db);
    run([&]() -> asio::awaitable<void> {
        co_await create_prepared_items(*db, "id BIGINT PRIMARY KEY");
        co_await db->query("INSERT INTO prepared_items (id) VALUES ($1)", std::int64_t{1});
        const std::string everything =
            "UPDATE prepared_items SET id = id WHERE id = $1 RETURNING *";
        auto before = co_await db->query(everything, std::int64_t{1});
        EXPECT_EQ(before[0].columns().size(), 1u);
        EXPECT_EQ(co_await prepared_count(*db, everything), 1);
        // Kept, it would fail with "cached plan must not change result type".
        co_await db->query("ALTER TABLE prepared_items ADD COLUMN name TEXT DEFAULT 'x'");
        EXPECT_EQ(co_await prepared_count(*db, everything), 0);
        auto after = co_await db->query(everything, std::int64_t{1});
        EXPECT_EQ(after[0].columns().size(), 2u);
        EXPECT_EQ(after[0].get_string("name"), "x");
        co_await db->transaction([](Session& session) -> asio::awaitable<void> {
            co_await session.execute_script("ALTER TABLE prepared_items ADD COLUMN qty BIGINT");
        });
        auto scripted = co_await db->query(everything, std::int64_t{1});
        EXPECT_EQ(scripted[0].columns().size(), 3u);
    }());
}

TEST_F(PostgresOnly, AnUnreachableServerFailsPingAndQueries) {
    PoolOptions quick;
    quick.connect_timeout = std::chrono::milliseconds(500);
    auto db = open("postgresql://postgres@127.0.0.1:1/none", io_.get_executor(), pool_, quick);
    ASSERT_TRUE(db);
    EXPECT_FALSE(run((*db)->ping()));
    EXPECT_EQ(run(failure_kind((*db)->query("SELECT 1"))), Kind::ConnectionLost);
}

}  // namespace
}  // namespace aether::platform::sql
