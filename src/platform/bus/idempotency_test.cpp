// process_once on SQLite and PostgreSQL: duplicates, failures and concurrent redeliveries.
#include "platform/bus/idempotency.h"

#include <atomic>
#include <boost/asio/detached.hpp>
#include <stdexcept>

#include "platform/bus/test_support.h"

namespace aether::platform::bus {
namespace {

using std::chrono::milliseconds;
using testing::Backend;

class IdempotencyTest : public ::testing::TestWithParam<Backend>, protected testing::BusTestBase {
  protected:
    void SetUp() override {
        db_ = open_clean(GetParam());
        ASSERT_TRUE(db_);
        run([&]() -> asio::awaitable<void> {
            co_await migrate_processed_events(*db_);
            co_await migrate_processed_events(*db_);  // idempotent
            co_await db_->query("CREATE TABLE effects (event_id TEXT NOT NULL, consumer TEXT)");
        }());
    }

    // An effect that records the event and counts its runs.
    std::function<asio::awaitable<void>(sql::Session&)> effect(std::string event_id,
                                                               std::string consumer = "c") {
        return [this, event_id, consumer](sql::Session& session) -> asio::awaitable<void> {
            ++runs_;
            co_await session.query("INSERT INTO effects (event_id, consumer) VALUES ($1, $2)",
                                   event_id, consumer);
        };
    }

    asio::awaitable<std::int64_t> effects(std::string event_id) {
        auto rows =
            co_await db_->query("SELECT count(*) AS n FROM effects WHERE event_id = $1", event_id);
        co_return rows[0].get_int("n");
    }

    std::shared_ptr<sql::Database> db_;
    std::atomic<int> runs_{0};
};

TEST_P(IdempotencyTest, RunsTheEffectOncePerConsumerAndEvent) {
    run([&]() -> asio::awaitable<void> {
        EXPECT_TRUE(co_await process_once(*db_, "analytics", "evt_1", effect("evt_1")));
        EXPECT_FALSE(co_await process_once(*db_, "analytics", "evt_1", effect("evt_1")));
        EXPECT_EQ(runs_.load(), 1);
        EXPECT_EQ(co_await effects("evt_1"), 1);
        // Another event, and the same event for another consumer, are new.
        EXPECT_TRUE(co_await process_once(*db_, "analytics", "evt_2", effect("evt_2")));
        EXPECT_TRUE(co_await process_once(*db_, "integrations", "evt_1", effect("evt_1")));
        EXPECT_EQ(runs_.load(), 3);
        auto recorded = co_await db_->query(
            "SELECT consumer, event_id, processed_at FROM processed_events ORDER BY consumer, "
            "event_id");
        CO_ASSERT_EQ(recorded.size(), 3u);
        EXPECT_EQ(recorded[0].get_string("consumer"), "analytics");
        EXPECT_EQ(recorded[0].get_string("event_id"), "evt_1");
        EXPECT_EQ(recorded[0].get_string("processed_at").size(), 24u);
    }());
}

TEST_P(IdempotencyTest, AFailedEffectRollsBackTheRecord) {
    run([&]() -> asio::awaitable<void> {
        bool thrown = false;
        try {
            co_await process_once(
                *db_, "analytics", "evt_1", [&](sql::Session& session) -> asio::awaitable<void> {
                    co_await session.query("INSERT INTO effects (event_id) VALUES ('evt_1')");
                    throw std::runtime_error("downstream failed");
                });
        } catch (const std::runtime_error& error) {
            thrown = std::string(error.what()) == "downstream failed";
        }
        EXPECT_TRUE(thrown);
        EXPECT_EQ(co_await effects("evt_1"), 0);
        // The redelivery runs it.
        EXPECT_TRUE(co_await process_once(*db_, "analytics", "evt_1", effect("evt_1")));
        EXPECT_EQ(co_await effects("evt_1"), 1);
    }());
}

TEST_P(IdempotencyTest, ConcurrentRedeliveriesApplyTheEffectOnce) {
    constexpr int kDeliveries = 6;
    std::atomic<int> finished{0};
    std::atomic<int> first{0};
    std::atomic<int> failed{0};
    run(
        [&]() -> asio::awaitable<void> {
            auto executor = co_await asio::this_coro::executor;
            for (int i = 0; i < kDeliveries; ++i) {
                // The effect is slow, so the duplicates overlap the first transaction.
                auto slow = [this](sql::Session& session) -> asio::awaitable<void> {
                    ++runs_;
                    co_await session.query("INSERT INTO effects (event_id) VALUES ('evt_same')");
                    asio::steady_timer timer(co_await asio::this_coro::executor, milliseconds(50));
                    co_await timer.async_wait(asio::use_awaitable);
                };
                asio::co_spawn(
                    executor,
                    [&, slow]() -> asio::awaitable<void> {
                        try {
                            if (co_await process_once(*db_, "analytics", "evt_same", slow)) ++first;
                        } catch (const std::exception& error) {
                            ADD_FAILURE() << error.what();
                            ++failed;
                        }
                        ++finished;
                    },
                    asio::detached);
            }
            EXPECT_TRUE(co_await eventually([&] { return finished.load() == kDeliveries; }));
        }(),
        2);
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(first.load(), 1);
    run([&]() -> asio::awaitable<void> { EXPECT_EQ(co_await effects("evt_same"), 1); }());
}

INSTANTIATE_TEST_SUITE_P(Drivers, IdempotencyTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::backend_name);

}  // namespace
}  // namespace aether::platform::bus
