// The outbox and its relay on SQLite and PostgreSQL, with a broker double that can fail.
#include "platform/bus/outbox.h"

#include <algorithm>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_future.hpp>
#include <future>
#include <set>
#include <stdexcept>

#include "platform/bus/test_support.h"

namespace aether::platform::bus {
namespace {

using std::chrono::milliseconds;
using testing::Backend;
using testing::Background;
using testing::FakeBus;
namespace json = boost::json;

class OutboxTest : public ::testing::TestWithParam<Backend>, protected testing::BusTestBase {
  protected:
    void SetUp() override {
        db_ = open_clean(GetParam());
        ASSERT_TRUE(db_);
        run(migrate_outbox(*db_));
    }

    // Appends one event per transaction, returning them in commit order.
    asio::awaitable<std::vector<Event>> append(int count, std::string type = "task.created") {
        std::vector<Event> events;
        for (int i = 0; i < count; ++i) {
            json::object data;
            data["n"] = i;
            auto event = make_event("tasks", type, data);
            co_await db_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
                co_await append_to_outbox(session, event);
            });
            events.push_back(std::move(event));
        }
        co_return events;
    }

    asio::awaitable<std::int64_t> count(std::string where) {
        auto rows = co_await db_->query("SELECT count(*) AS n FROM outbox WHERE " + where);
        co_return rows[0].get_int("n");
    }

    // Polls until `count(where)` is `expected` (10 s at most): marks commit after the publish.
    asio::awaitable<bool> rows_become(std::string where, std::int64_t expected) {
        for (int i = 0; i < 2000; ++i) {
            if (co_await count(where) == expected) co_return true;
            co_await sleep_for(milliseconds(5));
        }
        co_return false;
    }

    static std::vector<std::string> ids(const std::vector<Event>& events) {
        std::vector<std::string> ids;
        for (const auto& event : events) ids.push_back(event.id);
        return ids;
    }

    static RelayOptions fast_options() {
        RelayOptions options;
        options.poll_interval = milliseconds(30000);  // only notify() wakes the relay in time
        options.backoff = milliseconds(5);
        options.max_backoff = milliseconds(20);
        return options;
    }

    std::shared_ptr<sql::Database> db_;
};

TEST_P(OutboxTest, MigrationIsIdempotent) {
    run(migrate_outbox(*db_));
    run([&]() -> asio::awaitable<void> { EXPECT_EQ(co_await count("1 = 1"), 0); }());
}

TEST_P(OutboxTest, AppendedRowHoldsTheEnvelope) {
    run([&]() -> asio::awaitable<void> {
        auto events = co_await append(1);
        auto rows = co_await db_->query(
            "SELECT id, type, payload, created_at, sent_at, attempts FROM outbox");
        CO_ASSERT_EQ(rows.size(), 1u);
        EXPECT_EQ(rows[0].get_string("id"), events[0].id);
        EXPECT_EQ(rows[0].get_string("type"), "task.created");
        EXPECT_EQ(rows[0].get_string("payload"), to_json(events[0]));
        EXPECT_EQ(rows[0].get_string("created_at").size(), 24u);
        EXPECT_TRUE(rows[0].is_null("sent_at"));
        EXPECT_EQ(rows[0].get_int("attempts"), 0);
    }());
}

TEST_P(OutboxTest, OnlyCommittedTransactionsArePublished) {
    FakeBus bus;
    OutboxRelay relay(db_, bus, fast_options());
    run([&]() -> asio::awaitable<void> {
        auto lost = make_event("tasks", "task.created", {});
        bool rolled_back = false;
        try {
            co_await db_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
                co_await append_to_outbox(session, lost);
                throw std::runtime_error("the state change failed");
            });
        } catch (const std::runtime_error&) {
            rolled_back = true;
        }
        EXPECT_TRUE(rolled_back);
        auto kept = co_await append(1);
        EXPECT_EQ(co_await relay.flush(milliseconds(5000)), 0);
        auto published = bus.events();
        CO_ASSERT_EQ(published.size(), 1u);
        EXPECT_EQ(published[0].id, kept[0].id);
        EXPECT_EQ(published[0].data, kept[0].data);
        EXPECT_EQ(co_await count("id = '" + lost.id + "'"), 0);
    }());
}

TEST_P(OutboxTest, FlushPublishesEveryBatchInOrderAndMarksSent) {
    FakeBus bus;
    auto options = fast_options();
    options.batch = 7;
    OutboxRelay relay(db_, bus, options);
    run([&]() -> asio::awaitable<void> {
        auto events = co_await append(30);
        EXPECT_EQ(co_await relay.flush(milliseconds(10000)), 0);
        EXPECT_EQ(ids(bus.events()), ids(events));
        EXPECT_EQ(co_await count("sent_at IS NULL"), 0);
        EXPECT_EQ(co_await count("attempts = 1 AND last_error IS NULL"), 30);
        EXPECT_EQ(relay.stats().published, 30u);
        EXPECT_EQ(relay.stats().publish_failures, 0u);
        // Nothing is published twice.
        EXPECT_EQ(co_await relay.flush(milliseconds(1000)), 0);
        EXPECT_EQ(bus.count(), 30u);
    }());
}

TEST_P(OutboxTest, BatchesConfirmedBeforeARefusalStaySentAndAreNotPublishedAgain) {
    FakeBus bus;
    auto options = fast_options();
    options.batch = 5;
    OutboxRelay relay(db_, bus, options);
    run([&]() -> asio::awaitable<void> {
        auto events = co_await append(20);
        // The third event of the second batch is refused: the rest of that batch is not tried.
        bus.fail_after(7, 1);
        EXPECT_EQ(co_await relay.flush(milliseconds(10000)), 0);
        EXPECT_EQ(ids(bus.events()), ids(events));
        EXPECT_EQ(bus.attempts(), 21);
        EXPECT_EQ(relay.stats().published, 20u);
        EXPECT_EQ(relay.stats().publish_failures, 1u);
        EXPECT_EQ(co_await count("attempts = 1 AND last_error IS NULL"), 19);
        EXPECT_EQ(co_await count("attempts = 2 AND last_error IS NULL"), 1);
    }());
}

TEST_P(OutboxTest, FlushGivesUpAtTheDeadlineWhileTheBrokerIsDown) {
    FakeBus bus(1000000);
    OutboxRelay relay(db_, bus, fast_options());
    run([&]() -> asio::awaitable<void> {
        co_await append(3);
        auto started = std::chrono::steady_clock::now();
        EXPECT_EQ(co_await relay.flush(milliseconds(100)), 3);
        EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(2000));
        EXPECT_EQ(bus.count(), 0u);
        EXPECT_GE(relay.stats().publish_failures, 1u);
        // Only the oldest row was tried: order is kept even while failing.
        EXPECT_EQ(co_await count("attempts > 0"), 1);
        EXPECT_EQ(co_await count("last_error = 'broker unavailable'"), 1);
    }());
}

TEST_P(OutboxTest, RelayRetriesWithBackoffAndKeepsTheOrder) {
    FakeBus bus(3);
    OutboxRelay relay(db_, bus, fast_options());
    run([&]() -> asio::awaitable<void> {
        Background loop(co_await asio::this_coro::executor, relay.run());
        auto events = co_await append(5);
        relay.notify();
        EXPECT_TRUE(
            co_await eventually([&] { return bus.count() == 5 && relay.stats().published == 5; }));
        EXPECT_TRUE(co_await rows_become("sent_at IS NULL", 0));
        EXPECT_EQ(ids(bus.events()), ids(events));
        EXPECT_EQ(bus.attempts(), 8);
        EXPECT_EQ(relay.stats().publish_failures, 3u);
        EXPECT_EQ(relay.stats().published, 5u);
        auto first = co_await db_->query("SELECT attempts, last_error FROM outbox WHERE id = $1",
                                         events[0].id);
        EXPECT_EQ(first[0].get_int("attempts"), 4);
        EXPECT_TRUE(first[0].is_null("last_error"));
        loop.cancel();
        EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
        EXPECT_FALSE(loop.failure());
    }());
}

TEST_P(OutboxTest, NotifyWakesTheRelayBeforeThePollInterval) {
    FakeBus bus;
    OutboxRelay relay(db_, bus, fast_options());
    relay.notify();  // before run(): harmless
    run(
        [&]() -> asio::awaitable<void> {
            Background loop(co_await asio::this_coro::executor, relay.run());
            for (int round = 0; round < 3; ++round) {
                co_await append(1);
                relay.notify();
                EXPECT_TRUE(co_await eventually(
                    [&] { return bus.count() == std::size_t(round + 1); }, milliseconds(5000)));
            }
            loop.cancel();
            EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
        }(),
        2);
}

TEST_P(OutboxTest, EventsCommittedWhileTheRelayLingersShareTheNextRound) {
    FakeBus bus;
    auto options = fast_options();
    options.linger = milliseconds(400);
    OutboxRelay relay(db_, bus, options);
    run([&]() -> asio::awaitable<void> {
        Background loop(co_await asio::this_coro::executor, relay.run());
        // The relay's first round (at start, finding nothing) begins a linger: the first event
        // waits for it to pass, then goes out alone. The five events after it, each notified,
        // wait for the next linger and go out in one batch instead of a round each.
        co_await append(1);
        relay.notify();
        EXPECT_TRUE(co_await eventually([&] { return bus.count() == 1; }));
        for (int i = 0; i < 5; ++i) {
            co_await append(1);
            relay.notify();
        }
        EXPECT_TRUE(co_await eventually([&] { return bus.count() == 6; }));
        EXPECT_EQ(bus.batches(), 2);
        EXPECT_TRUE(co_await rows_become("sent_at IS NULL", 0));
        loop.cancel();
        EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
    }());
}

TEST_P(OutboxTest, ARoundThatFilledItsBatchIsFollowedAtOnceDespiteTheLinger) {
    FakeBus bus;
    auto options = fast_options();
    options.batch = 2;
    options.linger = milliseconds(60000);
    OutboxRelay relay(db_, bus, options);
    run([&]() -> asio::awaitable<void> {
        // Pending before the relay starts: its first rounds find full batches, and a backlog
        // is not held back by the linger (which would take a minute here).
        auto events = co_await append(7);
        Background loop(co_await asio::this_coro::executor, relay.run());
        EXPECT_TRUE(co_await eventually([&] { return bus.count() == 7; }));
        EXPECT_EQ(ids(bus.events()), ids(events));
        loop.cancel();
        EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
    }());
}

TEST_P(OutboxTest, RelayPollsForRowsAppendedWithoutNotify) {
    FakeBus bus;
    auto options = fast_options();
    options.poll_interval = milliseconds(20);
    OutboxRelay relay(db_, bus, options);
    run([&]() -> asio::awaitable<void> {
        Background loop(co_await asio::this_coro::executor, relay.run());
        co_await append(2);
        EXPECT_TRUE(co_await eventually([&] { return bus.count() == 2; }));
        loop.cancel();
        EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
    }());
}

TEST_P(OutboxTest, RunReturnsPromptlyWhenCancelled) {
    FakeBus bus(1000000);
    auto options = fast_options();
    options.backoff = milliseconds(30000);
    options.max_backoff = milliseconds(30000);
    OutboxRelay relay(db_, bus, options);
    run([&]() -> asio::awaitable<void> {
        // Idle, waiting for the next poll.
        {
            Background loop(co_await asio::this_coro::executor, relay.run());
            co_await sleep_for(milliseconds(30));
            auto cancelled_at = std::chrono::steady_clock::now();
            loop.cancel();
            EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
            EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, milliseconds(1000));
            EXPECT_FALSE(loop.failure());
        }
        // Backing off after a failed publish.
        {
            co_await append(1);
            Background loop(co_await asio::this_coro::executor, relay.run());
            EXPECT_TRUE(co_await eventually([&] { return relay.stats().publish_failures >= 1; }));
            auto cancelled_at = std::chrono::steady_clock::now();
            loop.cancel();
            EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
            EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, milliseconds(1000));
            EXPECT_FALSE(loop.failure());
        }
    }());
}

TEST_P(OutboxTest, SentRowsOlderThanKeepSentAreDeleted) {
    FakeBus bus;
    auto options = fast_options();
    options.keep_sent = std::chrono::hours(0);
    OutboxRelay relay(db_, bus, options);
    run([&]() -> asio::awaitable<void> {
        co_await append(3);
        Background loop(co_await asio::this_coro::executor, relay.run());
        EXPECT_TRUE(co_await eventually([&] { return bus.count() == 3; }));
        // The relay deletes at its next idle moment; sent_at must be strictly older than now.
        co_await sleep_for(milliseconds(5));
        co_await append(1);
        relay.notify();
        bool deleted = false;
        for (int i = 0; i < 500 && !deleted; ++i) {
            deleted = co_await count("1 = 1") == 0;
            if (!deleted) {
                co_await sleep_for(milliseconds(5));
                relay.notify();
            }
        }
        EXPECT_TRUE(deleted);
        EXPECT_EQ(bus.count(), 4u);
        loop.cancel();
        EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
    }());
}

TEST_P(OutboxTest, SentRowsWithinKeepSentStay) {
    FakeBus bus;
    OutboxRelay relay(db_, bus, fast_options());
    run([&]() -> asio::awaitable<void> {
        co_await append(2);
        Background loop(co_await asio::this_coro::executor, relay.run());
        EXPECT_TRUE(co_await eventually([&] { return bus.count() == 2; }));
        loop.cancel();
        EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
        EXPECT_EQ(co_await count("sent_at IS NOT NULL"), 2);
    }());
}

TEST_P(OutboxTest, UnparseableRowIsSetAsideAndLaterRowsFlow) {
    FakeBus bus;
    OutboxRelay relay(db_, bus, fast_options());
    run([&]() -> asio::awaitable<void> {
        co_await db_->query(
            "INSERT INTO outbox (id, type, payload, created_at) VALUES ('evt_bad', 'x', 'not "
            "json', '2026-01-01T00:00:00.000Z')");
        auto events = co_await append(2);
        EXPECT_EQ(co_await relay.flush(milliseconds(5000)), 0);
        EXPECT_EQ(ids(bus.events()), ids(events));
        EXPECT_EQ(co_await count("id = 'evt_bad' AND last_error LIKE 'unpublishable:%'"), 1);
    }());
}

INSTANTIATE_TEST_SUITE_P(Drivers, OutboxTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::backend_name);

// Replicas: two relays on one PostgreSQL database.
class OutboxReplicaTest : public OutboxTest {};

TEST_P(OutboxReplicaTest, TwoRelaysNeverPublishARowTwiceAndKeepTheOrder) {
    FakeBus bus(0, milliseconds(1));
    auto options = fast_options();
    options.batch = 10;
    options.poll_interval = milliseconds(5);
    OutboxRelay first(db_, bus, options);
    OutboxRelay second(db_, bus, options);
    run(
        [&]() -> asio::awaitable<void> {
            auto events = co_await append(200);
            auto executor = co_await asio::this_coro::executor;
            Background one(executor, first.run());
            Background two(executor, second.run());
            EXPECT_TRUE(
                co_await eventually([&] { return bus.count() >= 200; }, milliseconds(30000)));
            // Rows appended while both run are published exactly once too.
            auto more = co_await append(50);
            first.notify();
            second.notify();
            EXPECT_TRUE(
                co_await eventually([&] { return bus.count() >= 250; }, milliseconds(30000)));
            co_await sleep_for(milliseconds(50));
            one.cancel();
            two.cancel();
            EXPECT_TRUE(co_await eventually([&] { return one.done() && two.done(); }));
            auto published = ids(bus.events());
            EXPECT_EQ(published.size(), 250u);
            events.insert(events.end(), more.begin(), more.end());
            auto expected = ids(events);
            auto mismatch =
                std::mismatch(published.begin(), published.end(), expected.begin(), expected.end());
            EXPECT_TRUE(mismatch.first == published.end())
                << "published out of order at position " << (mismatch.first - published.begin());
            EXPECT_EQ(std::set<std::string>(published.begin(), published.end()).size(), 250u);
            EXPECT_EQ(first.stats().published + second.stats().published, 250u);
            EXPECT_EQ(co_await count("attempts = 1 AND sent_at IS NOT NULL"), 250);
        }(),
        2);
}

INSTANTIATE_TEST_SUITE_P(Postgres, OutboxReplicaTest, ::testing::Values(Backend::kPostgres),
                         testing::backend_name);

// PostgreSQL rounds read above the seq up to which every row is settled.
class OutboxSettledTest : public OutboxTest {
  protected:
    // Appends one event in a transaction that stays open for `hold` after its row was written
    // (its seq taken), then commits.
    asio::awaitable<Event> append_slowly(milliseconds hold) {
        auto event = make_event("tasks", "task.created", json::object{});
        co_await db_->transaction([&](sql::Session& session) -> asio::awaitable<void> {
            co_await append_to_outbox(session, event);
            co_await session.query("SELECT 1");  // sends the insert: the seq is taken now
            co_await sleep_for(hold);
        });
        co_return event;
    }
};

TEST_P(OutboxSettledTest, AnEventCommittedAfterLaterOnesWerePublishedStillGoesOutOnce) {
    FakeBus bus;
    auto options = fast_options();
    options.linger = milliseconds(0);
    options.gap_timeout = milliseconds(10000);
    options.full_claim_interval = milliseconds(600000);  // only the first round reads it all
    OutboxRelay relay(db_, bus, options);
    run(
        [&]() -> asio::awaitable<void> {
            auto executor = co_await asio::this_coro::executor;
            Background loop(executor, relay.run());
            co_await sleep_for(milliseconds(50));  // the first, full, round is over
            // The slow transaction's seq is below the three events that are published while it
            // runs: the relay must not settle past it, or it would wait for the next full round.
            auto slow =
                asio::co_spawn(executor, append_slowly(milliseconds(300)), asio::use_future);
            co_await sleep_for(milliseconds(50));
            auto quick = co_await append(3);
            relay.notify();
            EXPECT_TRUE(co_await eventually([&] { return bus.count() == 3; }));
            while (slow.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
                co_await sleep_for(milliseconds(10));
            }
            auto straggler = slow.get();
            relay.notify();
            EXPECT_TRUE(co_await eventually([&] { return bus.count() == 4; }, milliseconds(5000)));
            co_await sleep_for(milliseconds(50));
            EXPECT_EQ(bus.count(), 4u);
            auto published = ids(bus.events());
            quick.push_back(straggler);
            EXPECT_EQ(published, ids(quick));
            loop.cancel();
            EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
        }(),
        2);
}

TEST_P(OutboxSettledTest, RoundsReadAboveTheSettledPointAndFullRoundsFromTheStart) {
    FakeBus bus;
    auto options = fast_options();
    options.linger = milliseconds(0);
    options.gap_timeout = milliseconds(100);
    options.full_claim_interval = milliseconds(1500);
    options.poll_interval = milliseconds(100);  // rounds without notify(), as in production
    OutboxRelay relay(db_, bus, options);
    run([&]() -> asio::awaitable<void> {
        auto executor = co_await asio::this_coro::executor;
        Background loop(executor, relay.run());
        auto events = co_await append(5);
        relay.notify();
        // Published, and the marks committed: an UPDATE ahead of the round's commit would be
        // undone by its mark.
        EXPECT_TRUE(
            co_await eventually([&] { return bus.count() == 5 && relay.stats().published == 5; }));
        // A row below the settled point pending again (as a transaction slower than the
        // gap timeout leaves one): rounds started by new events do not read down there...
        co_await db_->query("UPDATE outbox SET sent_at = NULL WHERE id = $1", events[0].id);
        auto later = co_await append(1);
        relay.notify();
        EXPECT_TRUE(co_await eventually([&] { return bus.count() == 6; }));
        EXPECT_EQ(bus.events().back().id, later[0].id);
        // ...the next full round does.
        EXPECT_TRUE(co_await eventually([&] { return bus.count() == 7; }, milliseconds(5000)));
        EXPECT_EQ(bus.events().back().id, events[0].id);
        loop.cancel();
        EXPECT_TRUE(co_await eventually([&] { return loop.done(); }));
    }());
}

INSTANTIATE_TEST_SUITE_P(Postgres, OutboxSettledTest, ::testing::Values(Backend::kPostgres),
                         testing::backend_name);

}  // namespace
}  // namespace aether::platform::bus
