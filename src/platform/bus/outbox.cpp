// The transactional outbox and its relay: rows appended in a module's transactions, published in
// order with confirms, marked sent, and deleted after a while.
#include "platform/bus/outbox.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "outbox_migrations.h"
#include "platform/sql/database.h"
#include "platform/sql/migrations.h"
#include "platform/telemetry/clock.h"
#include "platform/telemetry/log.h"

namespace aether::platform::bus {

namespace {

using SteadyClock = std::chrono::steady_clock;
using Strand = asio::strand<asio::any_io_executor>;

std::string now_text() {
    return telemetry::format_rfc3339_ms(std::chrono::system_clock::now());
}

// What one round of publishing did.
struct RoundOutcome {
    bool failed = false;   // a publish failed: back off before the next round
    bool more = false;     // the round ended on a full batch: more rows may be pending
    bool blocked = false;  // another relay is publishing (PostgreSQL replicas)
};

// Sent rows are deleted at most this often, and at every idle moment when keep_sent is shorter.
constexpr std::chrono::milliseconds kMaxCleanupInterval{60000};

// The relay's shared state; OutboxRelay::State (private in the header) derives from it so the
// coroutines below can name it.
struct RelayState {
    RelayState(std::shared_ptr<sql::Database> database_in, Bus& bus_in, RelayOptions options_in)
        : database(std::move(database_in)), bus(bus_in), options(options_in) {}

    std::shared_ptr<sql::Database> database;
    Bus& bus;
    const RelayOptions options;

    std::atomic<std::uint64_t> published{0};
    std::atomic<std::uint64_t> publish_failures{0};
    // notify() was called since the last round began.
    std::atomic<bool> pending{false};
    // A wake-up is queued on the strand already: notify() storms post at most one.
    std::atomic<bool> wake_posted{false};

    // Guards the lazy creation of the strand and its timer (the first run() or flush() supplies
    // the executor) against notify() from other threads.
    std::mutex mutex;
    std::optional<Strand> strand;

    // Touched on the strand only.
    std::unique_ptr<asio::steady_timer> wake;
    bool busy = false;  // a round is running (run() or flush())
    std::vector<asio::steady_timer*> idle_waiters;
    std::optional<SteadyClock::time_point> last_cleanup;
    // PostgreSQL (RelayOptions::gap_timeout): every row up to `settled` is sent or was never
    // committed, as far as this relay knows; `gaps` are the seqs above it not yet seen sent, with
    // when each was first missed.
    std::int64_t settled = 0;
    std::map<std::int64_t, SteadyClock::time_point> gaps;
    std::optional<SteadyClock::time_point> last_full_claim;

    Strand bind(const asio::any_io_executor& executor) {
        std::lock_guard lock(mutex);
        if (!strand) {
            strand.emplace(asio::make_strand(executor));
            wake = std::make_unique<asio::steady_timer>(*strand);
        }
        return *strand;
    }

    std::chrono::milliseconds cleanup_interval() const {
        auto keep = std::chrono::duration_cast<std::chrono::milliseconds>(options.keep_sent);
        return std::clamp(keep, std::chrono::milliseconds(0), kMaxCleanupInterval);
    }
};

using State = RelayState;

}  // namespace

asio::awaitable<void> migrate_outbox(sql::Database& database) {
    auto migrations = outbox_migrations();
    co_await sql::migrate(database, "outbox", std::move(migrations));
}

asio::awaitable<void> append_to_outbox(sql::Session& session, const Event& event) {
    auto payload = to_json(event);
    auto created_at = now_text();
    // Deferred: it reaches the database with the transaction's next query or its commit.
    session.defer("INSERT INTO outbox (id, type, payload, created_at) VALUES ($1, $2, $3, $4)",
                  event.id, event.type, payload, created_at);
    co_return;
}

struct OutboxRelay::State : RelayState {
    using RelayState::RelayState;
};

namespace {

// Marks the relay busy for one round; waking those who wait for it to end.
class RoundGuard {
  public:
    explicit RoundGuard(State& state) : state_(state) { state_.busy = true; }
    ~RoundGuard() {
        state_.busy = false;
        for (auto* waiter : state_.idle_waiters) waiter->cancel();
    }
    RoundGuard(const RoundGuard&) = delete;
    RoundGuard& operator=(const RoundGuard&) = delete;

  private:
    State& state_;
};

// Registers a timer as waiting for the current round to end, for the timer's lifetime.
class IdleWaiter {
  public:
    IdleWaiter(State& state, asio::steady_timer& timer) : state_(state), timer_(timer) {
        state_.idle_waiters.push_back(&timer_);
    }
    ~IdleWaiter() { std::erase(state_.idle_waiters, &timer_); }
    IdleWaiter(const IdleWaiter&) = delete;
    IdleWaiter& operator=(const IdleWaiter&) = delete;

  private:
    State& state_;
    asio::steady_timer& timer_;
};

// Waits on the strand until no round runs or `until` passes; true when the relay is free.
asio::awaitable<bool> wait_until_idle(State& state, SteadyClock::time_point until) {
    while (state.busy) {
        if (SteadyClock::now() >= until) co_return false;
        asio::steady_timer timer(*state.strand, until);
        IdleWaiter waiter(state, timer);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return true;
}

enum class RowResult { kDone, kFailed, kStopped };

// Claimed rows ready to publish: the events, and the seq of each (rows are updated by seq, the
// integer key both dialects index; ids are for the logs).
struct Batch {
    std::vector<std::int64_t> seqs;
    std::vector<std::string> ids;
    std::vector<StoredEvent> events;
};

// Checks claimed rows into a batch, writing through `query` (run at once on SQLite, deferred to
// the commit on PostgreSQL). A row that is not a valid event is set aside with the reason; the
// others are published as stored.
template <class Query>
asio::awaitable<Batch> prepare_batch(Query& query, const std::vector<const sql::Row*>& rows) {
    Batch batch;
    batch.seqs.reserve(rows.size());
    batch.ids.reserve(rows.size());
    batch.events.reserve(rows.size());
    for (const auto* row : rows) {
        auto seq = row->get_int("seq");
        auto id = row->get_string("id");
        auto parsed = parse_stored_event(row->get_string("payload"));
        if (parsed) {
            batch.seqs.push_back(seq);
            batch.ids.push_back(std::move(id));
            batch.events.push_back(std::move(*parsed));
            continue;
        }
        // Only a hand-edited row gets here; publishing it is impossible and holding every later
        // event behind it would be worse, so it is set aside with the reason.
        telemetry::log_error("outbox row is not a valid event; skipped",
                             {{"id", id}, {"error", parsed.error()}});
        auto reason = "unpublishable: " + parsed.error();
        auto sent_at = now_text();
        co_await query(
            "UPDATE outbox SET sent_at = $1, last_error = $2, attempts = attempts + 1 WHERE seq = "
            "$3",
            sent_at, reason, seq);
    }
    co_return batch;
}

// Records what the broker said of a published batch: confirmed rows are marked sent in one
// statement (and counted in `marked_sent`, which the caller adds to the statistics once that
// is committed), refused ones keep their error for a later round. A refused row may be published
// after rows behind it that were confirmed: the order holds except across a failure (consumers
// are idempotent and see redeliveries anyway).
template <class Query>
asio::awaitable<RowResult> record_outcomes(State& state, Query& query, const Batch& batch,
                                           const std::vector<std::string>& outcomes,
                                           std::uint64_t& marked_sent) {
    std::vector<sql::Value> sent{sql::Value{now_text()}};
    std::string placeholders;
    bool failed = false;
    for (std::size_t i = 0; i < batch.seqs.size(); ++i) {
        const auto& error = outcomes.at(i);
        if (error == kNotAttempted) {
            failed = true;
            continue;
        }
        if (!error.empty()) {
            failed = true;
            state.publish_failures.fetch_add(1, std::memory_order_relaxed);
            telemetry::log_warn("outbox publish failed; retrying later",
                                {{"id", batch.ids[i]}, {"error", error}});
            co_await query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE seq = $2", error,
                batch.seqs[i]);
            continue;
        }
        sent.emplace_back(batch.seqs[i]);
        placeholders += (placeholders.empty() ? "$" : ", $") + std::to_string(sent.size());
    }
    if (auto confirmed = sent.size() - 1; confirmed > 0) {
        // The IN list is padded with the last seq to 1, 8, 64, 512… entries: a handful of
        // statement shapes, each prepared once per connection, not one per batch size.
        std::size_t shape = 1;
        while (shape < confirmed) shape *= 8;
        for (std::size_t padding = confirmed; padding < shape; ++padding) {
            sql::Value last = sent.back();
            sent.push_back(std::move(last));
            placeholders += ", $" + std::to_string(sent.size());
        }
        std::string mark_sent =
            "UPDATE outbox SET sent_at = $1, attempts = attempts + 1, last_error = NULL WHERE seq "
            "IN (" +
            placeholders + ")";
        co_await query(std::move(mark_sent), std::move(sent));
        marked_sent += confirmed;
    }
    co_return failed ? RowResult::kFailed : RowResult::kDone;
}

// Publishes claimed rows as one batch of the bus: in flight together (one broker confirm round
// trip for the batch, not one per row) or stored in one transaction, in order. Cancellation is
// checked before the batch starts.
template <class Query>
asio::awaitable<RowResult> publish_rows(State& state, Query& query,
                                        const std::vector<const sql::Row*>& rows,
                                        const asio::cancellation_state& cancellation) {
    if (cancellation.cancelled() != asio::cancellation_type::none) co_return RowResult::kStopped;
    auto batch = co_await prepare_batch(query, rows);
    if (batch.events.empty()) co_return RowResult::kDone;
    auto outcomes = co_await state.bus.publish_stored(std::move(batch.events));
    std::uint64_t marked_sent = 0;
    auto result = co_await record_outcomes(state, query, batch, outcomes, marked_sent);
    state.published.fetch_add(marked_sent, std::memory_order_relaxed);
    co_return result;
}

constexpr std::string_view kClaimSql =
    "SELECT seq, id, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1";

// The first key of the relays' advisory lock ("outb" in ASCII); the second is the outbox
// table's oid, so the outboxes of several modules in one database do not exclude each other.
constexpr std::int64_t kRelayLockClass = 0x6f757462;

// PostgreSQL: one relay per outbox publishes at a time. A round is a transaction that first
// tries a transaction-scoped advisory lock; a replica's relay that finds it taken reports
// `blocked` and looks again later. The holder reads the pending rows without locking them (a
// row lock is a write and a WAL record per event) and marks them sent before it commits. The
// rows are read by a later statement than the one that took the lock: a statement's snapshot is
// taken before it runs, and one taken before the previous holder committed would still show
// that holder's rows as pending.
constexpr std::string_view kTakeLeadSql =
    "SELECT pg_try_advisory_xact_lock($1::integer, 'outbox'::regclass::oid::integer) AS leader";

// The rows after `after` that are pending, oldest first.
constexpr std::string_view kNextClaimSql =
    "SELECT seq, id, payload FROM outbox WHERE sent_at IS NULL AND seq > $1 ORDER BY seq LIMIT $2";

// The seqs in ($1, $2] not sent, in the round's own transaction (whose marks went first): rows
// still pending or refused, and seqs no committed row holds (yet).
constexpr std::string_view kUnsentSql =
    "SELECT g AS seq FROM generate_series($1::bigint + 1, $2::bigint) AS g EXCEPT "
    "SELECT seq FROM outbox WHERE seq > $1 AND seq <= $2 AND sent_at IS NOT NULL ORDER BY seq";

// The most seqs a round checks for gaps (kUnsentSql's series).
constexpr std::int64_t kMaxSettleWindow = 100000;

// Moves `settled` up to just below the oldest seq of (lo, hi] that is still unsent, forgetting
// gaps older than gap_timeout (rolled back, or left to the next full claim).
void settle(State& state, std::int64_t lo, std::int64_t hi, const sql::Result& unsent,
            SteadyClock::time_point now) {
    std::set<std::int64_t> missing;
    for (const auto& row : unsent) missing.insert(row.get_int("seq"));
    for (auto seq : missing) state.gaps.try_emplace(seq, now);
    for (auto gap = state.gaps.begin(); gap != state.gaps.end();) {
        const bool resolved = gap->first > lo && gap->first <= hi && !missing.contains(gap->first);
        const bool expired = now - gap->second >= state.options.gap_timeout;
        gap = resolved || expired ? state.gaps.erase(gap) : std::next(gap);
    }
    const std::int64_t reach =
        state.gaps.empty() ? hi : std::min(hi, state.gaps.begin()->first - 1);
    state.settled = std::max(state.settled, reach);
}

// Batches one round publishes before it commits: while the broker confirms one batch the next
// is read, and the marks of a batch travel with the next read. Bounded, because a crash (or a
// failed read) before the commit publishes the round's events again.
constexpr int kBatchesPerRound = 4;

// Every event of a batch refused with the reason publish_stored threw.
std::vector<std::string> refused_by(const std::exception_ptr& failure, std::size_t events) {
    std::string reason = "publish failed";
    try {
        std::rethrow_exception(failure);
    } catch (const std::exception& error) {
        reason = error.what();
    } catch (...) {
    }
    return std::vector<std::string>(events, reason);
}

std::vector<const sql::Row*> claimed_rows(const sql::Result& rows) {
    std::vector<const sql::Row*> claimed;
    claimed.reserve(rows.size());
    for (const auto& row : rows) claimed.push_back(&row);
    return claimed;
}

asio::awaitable<RoundOutcome> round_postgres(State& state,
                                             const asio::cancellation_state& cancellation) {
    RoundOutcome outcome;
    std::uint64_t marked_sent = 0;
    const auto started = SteadyClock::now();
    const bool full = !state.last_full_claim ||
                      started - *state.last_full_claim >= state.options.full_claim_interval;
    // The seqs this round read, and what of (unsent_floor, last_seq] is unsent once its marks
    // are made.
    std::optional<std::int64_t> first_seq;
    std::int64_t last_seq = 0;
    std::int64_t unsent_floor = 0;
    std::optional<sql::Result> unsent;
    co_await state.database->transaction([&](sql::Session& session) -> asio::awaitable<void> {
        auto leader = co_await session.query(std::string(kTakeLeadSql), kRelayLockClass);
        if (leader.empty() || !leader[0].get_bool("leader")) {
            outcome.blocked = true;
            co_return;
        }
        auto limit = static_cast<std::int64_t>(state.options.batch);
        sql::Result rows;
        if (full) {
            rows = co_await session.query(std::string(kClaimSql), limit);
        } else {
            rows = co_await session.query(std::string(kNextClaimSql), state.settled, limit);
        }
        if (!rows.empty()) first_seq = rows[0].get_int("seq");
        auto defer = [&session](std::string sql, auto&&... args) -> asio::awaitable<sql::Result> {
            session.defer(std::move(sql), std::forward<decltype(args)>(args)...);
            co_return sql::Result{};
        };
        auto executor = co_await asio::this_coro::executor;
        auto claimed = claimed_rows(rows);
        // Once the marks are made (they go first): what of the seqs read is still unsent.
        auto find_unsent = [&]() -> asio::awaitable<void> {
            if (!first_seq) co_return;
            unsent_floor = full ? *first_seq - 1 : state.settled;
            // A straggler far below (found by a full round) is not worth a scan that long.
            if (last_seq - unsent_floor > kMaxSettleWindow) co_return;
            unsent = co_await session.query(std::string(kUnsentSql), unsent_floor, last_seq);
        };
        for (int round_batch = 0; !claimed.empty(); ++round_batch) {
            if (cancellation.cancelled() != asio::cancellation_type::none) co_return;
            const bool full_batch = claimed.size() == state.options.batch;
            last_seq = claimed.back()->get_int("seq");
            auto batch = co_await prepare_batch(defer, claimed);
            std::vector<std::string> outcomes;
            sql::Result next;
            if (full_batch && round_batch + 1 < kBatchesPerRound) {
                // The broker confirms this batch while the next one is read.
                auto publish = asio::co_spawn(
                    executor, state.bus.publish_stored(std::move(batch.events)), asio::deferred);
                std::string next_sql(kNextClaimSql);
                auto read = asio::co_spawn(
                    executor, session.query(std::move(next_sql), last_seq, limit), asio::deferred);
                auto group =
                    asio::experimental::make_parallel_group(std::move(publish), std::move(read));
                auto [order, publish_failure, published, read_failure, read_rows] =
                    co_await group.async_wait(asio::experimental::wait_for_all(),
                                              asio::use_awaitable);
                (void)order;
                // A failed read aborted the transaction: the round is lost. A failed publish
                // is the broker's: the marks of the batches before it are still committed.
                if (read_failure) std::rethrow_exception(read_failure);
                outcomes = publish_failure ? refused_by(publish_failure, batch.seqs.size())
                                           : std::move(published);
                next = std::move(read_rows);
            } else if (!batch.events.empty()) {
                outcomes = co_await state.bus.publish_stored(std::move(batch.events));
            }
            if (co_await record_outcomes(state, defer, batch, outcomes, marked_sent) ==
                RowResult::kFailed) {
                outcome.failed = true;
                co_return;
            }
            if (!full_batch) break;
            if (round_batch + 1 == kBatchesPerRound) {
                outcome.more = true;
                break;
            }
            rows = std::move(next);
            claimed = claimed_rows(rows);
        }
        co_await find_unsent();
    });
    // The marks are committed now; a round that failed before its COMMIT counts nothing.
    state.published.fetch_add(marked_sent, std::memory_order_relaxed);
    if (full && !outcome.blocked) state.last_full_claim = started;
    if (unsent) settle(state, unsent_floor, last_seq, *unsent, started);
    co_return outcome;
}

// SQLite: one process owns the file, so a plain read of the pending rows is enough.
asio::awaitable<RoundOutcome> round_sqlite(State& state,
                                           const asio::cancellation_state& cancellation) {
    RoundOutcome outcome;
    auto& database = *state.database;
    auto limit = static_cast<std::int64_t>(state.options.batch);
    auto rows = co_await database.query(std::string(kClaimSql), limit);
    auto query = [&database](std::string sql, auto&&... args) {
        return database.query(std::move(sql), std::forward<decltype(args)>(args)...);
    };
    auto claimed = claimed_rows(rows);
    auto result = co_await publish_rows(state, query, claimed, cancellation);
    if (result == RowResult::kFailed) outcome.failed = true;
    if (result != RowResult::kDone) co_return outcome;
    outcome.more = rows.size() == state.options.batch;
    co_return outcome;
}

asio::awaitable<RoundOutcome> round_body(State& state,
                                         const asio::cancellation_state& cancellation) {
    RoundGuard guard(state);
    state.pending.store(false);
    if (state.database->dialect() == "postgres") {
        co_return co_await round_postgres(state, cancellation);
    }
    co_return co_await round_sqlite(state, cancellation);
}

// One round on the strand; the caller has checked that no other round runs. The round is
// shielded from the caller's cancellation, which it only checks between batches: a confirmed
// publish is always marked sent, and a round's transaction is never abandoned half-way.
asio::awaitable<RoundOutcome> round(State& state, const asio::cancellation_state& cancellation) {
    auto body = round_body(state, cancellation);
    auto shielded = asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable);
    co_return co_await asio::co_spawn(*state.strand, std::move(body), shielded);
}

// Deletes sent rows older than keep_sent, at most every cleanup_interval().
asio::awaitable<void> cleanup_if_due(State& state) {
    auto now = SteadyClock::now();
    if (state.last_cleanup && now - *state.last_cleanup < state.cleanup_interval()) co_return;
    state.last_cleanup = now;
    auto cutoff =
        telemetry::format_rfc3339_ms(std::chrono::system_clock::now() - state.options.keep_sent);
    co_await state.database->query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1",
                                   cutoff);
}

// Sleeps until `until` on the wake timer; notify() does not shorten it (a failed broker is not
// retried once per commit). Returns false when cancelled.
asio::awaitable<bool> sleep_until(State& state, SteadyClock::time_point until,
                                  const asio::cancellation_state& cancellation) {
    while (SteadyClock::now() < until) {
        state.wake->expires_at(until);
        co_await state.wake->async_wait(asio::as_tuple(asio::use_awaitable));
        if (cancellation.cancelled() != asio::cancellation_type::none) co_return false;
    }
    co_return true;
}

asio::awaitable<void> run_loop(std::shared_ptr<State> state) {
    auto cancellation = co_await asio::this_coro::cancellation_state;
    auto cancelled = [&cancellation] {
        return cancellation.cancelled() != asio::cancellation_type::none;
    };
    auto backoff = state->options.backoff;
    SteadyClock::time_point next_round_at;  // the earliest start of the next round (linger)
    while (!cancelled()) {
        if (SteadyClock::now() < next_round_at &&
            !co_await sleep_until(*state, next_round_at, cancellation)) {
            co_return;
        }
        if (!co_await wait_until_idle(*state, SteadyClock::time_point::max())) continue;
        RoundOutcome outcome;
        std::string error;
        try {
            const auto started = SteadyClock::now();
            outcome = co_await round(*state, cancellation);
            next_round_at = outcome.more ? started : started + state->options.linger;
            if (!outcome.failed && !outcome.more) co_await cleanup_if_due(*state);
        } catch (const std::exception& failure) {
            error = failure.what();
        }
        if (cancelled()) co_return;
        if (!error.empty()) {
            telemetry::log_error("outbox relay round failed", {{"error", error}});
            outcome.failed = true;
        }
        if (outcome.failed) {
            if (!co_await sleep_until(*state, SteadyClock::now() + backoff, cancellation)) {
                co_return;
            }
            backoff = std::min(backoff * 2, state->options.max_backoff);
            continue;
        }
        backoff = state->options.backoff;
        if (outcome.more) continue;
        // A notify() during the round: its rows may have been committed after the claim.
        if (state->pending.load() && !outcome.blocked) continue;
        state->wake->expires_after(state->options.poll_interval);
        co_await state->wake->async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

asio::awaitable<std::int64_t> flush_loop(std::shared_ptr<State> state,
                                         std::chrono::milliseconds deadline) {
    auto cancellation = co_await asio::this_coro::cancellation_state;
    auto until = SteadyClock::now() + deadline;
    auto backoff = state->options.backoff;
    while (SteadyClock::now() < until) {
        if (!co_await wait_until_idle(*state, until)) break;
        RoundOutcome outcome;
        std::string error;
        try {
            outcome = co_await round(*state, cancellation);
        } catch (const std::exception& failure) {
            error = failure.what();
        }
        if (!error.empty()) {
            telemetry::log_error("outbox flush round failed", {{"error", error}});
            outcome.failed = true;
        }
        if (outcome.failed) {
            auto next = SteadyClock::now() + backoff;
            if (next >= until) break;
            asio::steady_timer timer(*state->strand, next);
            co_await timer.async_wait(asio::use_awaitable);
            backoff = std::min(backoff * 2, state->options.max_backoff);
            continue;
        }
        if (!outcome.more && !outcome.blocked) break;
        if (outcome.blocked) {
            // Another replica's relay holds the lock; look again shortly.
            auto next = std::min(until, SteadyClock::now() + std::chrono::milliseconds(20));
            asio::steady_timer timer(*state->strand, next);
            co_await timer.async_wait(asio::use_awaitable);
        }
    }
    auto pending = co_await state->database->query(
        "SELECT count(*) AS pending FROM outbox WHERE sent_at IS NULL");
    co_return pending.empty() ? 0 : pending[0].get_int("pending");
}

}  // namespace

OutboxRelay::OutboxRelay(std::shared_ptr<sql::Database> database, Bus& bus, RelayOptions options)
    : state_(std::make_shared<State>(std::move(database), bus, options)) {}

OutboxRelay::~OutboxRelay() = default;

asio::awaitable<void> OutboxRelay::run() {
    auto state = state_;
    auto executor = co_await asio::this_coro::executor;
    auto strand = state->bind(executor);
    // The loop runs on the relay's strand so notify() can reach its timer from any thread;
    // cancelling this coroutine cancels the loop through co_spawn.
    auto loop = run_loop(state);
    try {
        co_await asio::co_spawn(strand, std::move(loop), asio::use_awaitable);
    } catch (const boost::system::system_error& failure) {
        // Cancellation surfaces as operation_aborted from whatever the loop was awaiting.
        if (failure.code() != asio::error::operation_aborted) throw;
    }
}

void OutboxRelay::notify() {
    state_->pending.store(true);
    std::lock_guard lock(state_->mutex);
    if (!state_->strand || state_->wake_posted.exchange(true)) return;
    asio::post(*state_->strand, [state = state_] {
        state->wake_posted.store(false);
        state->wake->cancel();
    });
}

asio::awaitable<std::int64_t> OutboxRelay::flush(std::chrono::milliseconds deadline) {
    auto state = state_;
    auto executor = co_await asio::this_coro::executor;
    auto strand = state->bind(executor);
    auto work = flush_loop(state, deadline);
    co_return co_await asio::co_spawn(strand, std::move(work), asio::use_awaitable);
}

OutboxRelay::Stats OutboxRelay::stats() const {
    Stats stats;
    stats.published = state_->published.load(std::memory_order_relaxed);
    stats.publish_failures = state_->publish_failures.load(std::memory_order_relaxed);
    return stats;
}

}  // namespace aether::platform::bus
