// The PostgreSQL driver: libpq in non-blocking mode driven by the Asio loop (no thread per
// query), a bounded pool of lazily opened connections, broken ones discarded and replaced.
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <charconv>
#include <exception>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "platform/sql/connection_slots.h"
#include "platform/sql/drivers.h"

namespace aether::platform::sql::detail {

namespace {

using Clock = std::chrono::steady_clock;
using Kind = DatabaseError::Kind;
using Descriptor = asio::posix::stream_descriptor;

// Type OIDs from pg_type.h, so `$1 + 1` works for numbers; strings stay untyped (OID 0) so the
// server infers them from context (timestamps, enums, jsonb...).
constexpr Oid kInt8Oid = 20;
constexpr Oid kFloat8Oid = 701;
constexpr Oid kBoolOid = 16;

// An async_wait on an edge-triggered reactor can miss readiness that another IO thread saw
// between libpq's EAGAIN and the wait being queued; re-checking periodically bounds that case.
constexpr std::chrono::milliseconds kRecheck{200};

// The server cancels slow statements itself (statement_timeout); the client-side deadline is a
// backstop for an unresponsive server and costs the connection.
constexpr std::chrono::milliseconds kClientGrace{1000};
// How long the client waits for a statement (or a pipeline segment) before it gives the
// connection up: the server's own limit and the grace.
std::chrono::milliseconds statement_budget(const PoolOptions& options) {
    return options.query_timeout + kClientGrace;
}
Clock::time_point statement_deadline(const PoolOptions& options) {
    return Clock::now() + statement_budget(options);
}

// Prepared statements kept per connection; past this, new statements run unprepared.
constexpr std::size_t kMaxPreparedStatements = 256;

// The statement's first keyword, upper-cased ("" when there is none).
std::string first_keyword(std::string_view sql) {
    std::size_t start = 0;
    while (start < sql.size() && std::isspace(static_cast<unsigned char>(sql[start]))) ++start;
    std::string keyword;
    for (std::size_t i = start; i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i]));
         ++i) {
        keyword.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i]))));
    }
    return keyword;
}

// What a statement is, as far as prepared statements care, from its first keyword.
// - Write (INSERT, UPDATE, DELETE): prepared, so the server parses and plans it once per
//   connection; its plan does not depend on the values. Queries are not: after five calls the
//   server may switch a prepared query to a generic plan, which cannot see that a filter's value
//   makes one index the right one (and forcing custom plans gives back most of what preparing
//   the writes saves).
// - SchemaChange (CREATE, ALTER, DROP): can change what a prepared statement returns ("cached
//   plan must not change result type"), so the connection forgets its prepared statements first.
// - TransactionControl (BEGIN, COMMIT, ROLLBACK): run as scripts too, but never change the
//   schema (and a ROLLBACK runs in a failed transaction, where nothing else may).
enum class StatementKind { Write, SchemaChange, TransactionControl, Other };

StatementKind classify(std::string_view sql) {
    const std::string keyword = first_keyword(sql);
    if (keyword == "INSERT" || keyword == "UPDATE" || keyword == "DELETE") {
        return StatementKind::Write;
    }
    if (keyword == "CREATE" || keyword == "ALTER" || keyword == "DROP") {
        return StatementKind::SchemaChange;
    }
    if (keyword == "BEGIN" || keyword == "COMMIT" || keyword == "ROLLBACK") {
        return StatementKind::TransactionControl;
    }
    return StatementKind::Other;
}

Kind kind_of(const char* sqlstate) {
    std::string_view code = sqlstate != nullptr ? sqlstate : "";
    if (code == "23505") return Kind::UniqueViolation;
    if (code == "23503") return Kind::ForeignKey;
    if (code == "57014" || code == "55P03") return Kind::Timeout;
    if ((code.starts_with("08") && code != "08P01") || code == "57P01" || code == "57P02" ||
        code == "57P03") {
        return Kind::ConnectionLost;
    }
    return Kind::Other;
}

std::string first_line(const char* message) {
    std::string text = message != nullptr ? message : "";
    auto end = text.find('\n');
    if (end != std::string::npos) text.resize(end);
    return text;
}

// Room for the text of a number or a boolean.
using ParamSlot = std::array<char, 32>;

// The parameter as libpq takes it: NULL for null, a string's own characters, or the text of
// a number or boolean written into `slot`. Valid while `value` and `slot` are.
const char* param_text(const Value& value, ParamSlot& slot) {
    return std::visit(
        [&slot](const auto& v) -> const char* {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) {
                return nullptr;
            } else if constexpr (std::is_same_v<T, std::string>) {
                return v.c_str();
            } else if constexpr (std::is_same_v<T, bool>) {
                return v ? "true" : "false";
            } else {
                auto [end, error] = std::to_chars(slot.data(), slot.data() + slot.size() - 1, v);
                (void)error;  // an int64 or a shortest double always fits
                *end = '\0';
                return slot.data();
            }
        },
        value);
}

Oid type_of(const Value& value) {
    if (std::holds_alternative<std::int64_t>(value)) return kInt8Oid;
    if (std::holds_alternative<double>(value)) return kFloat8Oid;
    if (std::holds_alternative<bool>(value)) return kBoolOid;
    return 0;
}

class PgConnection {
  public:
    explicit PgConnection(PGconn* conn) : conn_(conn) {}
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;
    ~PgConnection() {
        // libpq owns the file descriptor: detach it from Asio before PQfinish closes it.
        if (socket_) socket_->release();
        PQfinish(conn_);
    }

    static asio::awaitable<std::unique_ptr<PgConnection>> connect(
        const std::string& url, const asio::any_io_executor& executor, const PoolOptions& options) {
        auto connection = std::make_unique<PgConnection>(PQconnectStart(url.c_str()));
        PGconn* conn = connection->conn_;
        if (conn == nullptr) throw std::bad_alloc();
        if (PQstatus(conn) == CONNECTION_BAD) {
            throw DatabaseError(Kind::ConnectionLost,
                                "connect: " + first_line(PQerrorMessage(conn)));
        }
        auto deadline = Clock::now() + options.connect_timeout;
        PostgresPollingStatusType status = PGRES_POLLING_WRITING;
        while (status != PGRES_POLLING_OK) {
            if (status == PGRES_POLLING_FAILED) {
                throw DatabaseError(Kind::ConnectionLost,
                                    "connect: " + first_line(PQerrorMessage(conn)));
            }
            // The socket may change while libpq tries addresses, so wrap it per step.
            Descriptor socket(executor, PQsocket(conn));
            bool ready = false;
            std::exception_ptr failure;
            try {
                ready = co_await wait(socket,
                                      status == PGRES_POLLING_READING ? Descriptor::wait_read
                                                                      : Descriptor::wait_write,
                                      deadline);
            } catch (...) {
                failure = std::current_exception();
            }
            socket.release();
            if (failure) std::rethrow_exception(failure);
            if (!ready) throw DatabaseError(Kind::Timeout, "connect: timed out");
            status = PQconnectPoll(conn);
        }
        // Notices ("table does not exist, skipping") stay off stderr. libpq also reports here
        // the FATAL a backend sends before it closes an idle connection (pg_terminate_backend,
        // server shutdown): that connection must not be handed out again.
        PQsetNoticeReceiver(
            conn,
            [](void* self, const PGresult* notice) {
                const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
                std::string_view level = severity != nullptr ? severity : "";
                if (level == "FATAL" || level == "PANIC") {
                    static_cast<PgConnection*>(self)->broken_ = true;
                }
            },
            connection.get());
        if (PQsetnonblocking(conn, 1) != 0) {
            throw DatabaseError(Kind::ConnectionLost, "connect: cannot enter non-blocking mode");
        }
        connection->socket_.emplace(executor, PQsocket(conn));
        co_await connection->execute(
            "SET statement_timeout = " + std::to_string(options.query_timeout.count()), {},
            deadline, false);
        co_return connection;
    }

    // Worth pooling: usable and outside any transaction. No system call: whether the server
    // closed it meanwhile is asked when it is taken again (reusable()).
    bool poolable() const {
        return !broken_ && PQstatus(conn_) == CONNECTION_OK &&
               PQtransactionStatus(conn_) == PQTRANS_IDLE &&
               PQpipelineStatus(conn_) == PQ_PIPELINE_OFF;
    }

    // A pooled connection is reused only if it is idle and the server has not closed it (a
    // terminated backend leaves its goodbye in the socket buffer, which PQconsumeInput reads).
    bool reusable() {
        if (!poolable()) return false;
        // The goodbye message and the end of stream may arrive separately: read until the
        // socket has nothing more to say.
        for (int i = 0; i < 4 && poll_ready(PQsocket(conn_), Descriptor::wait_read); ++i) {
            if (PQconsumeInput(conn_) == 0) return false;
            PQisBusy(conn_);  // parses what arrived, which may mark the connection broken
        }
        return !broken_ && PQstatus(conn_) == CONNECTION_OK;
    }

    // True inside an open (or failed) transaction block on a live connection.
    bool needs_rollback() const {
        auto status = PQtransactionStatus(conn_);
        return !broken_ && (status == PQTRANS_INTRANS || status == PQTRANS_INERROR);
    }
    void mark_broken() { broken_ = true; }

    // Runs one statement with parameters, or (script) several without.
    asio::awaitable<Result> execute(const std::string& sql, const std::vector<Value>& params,
                                    Clock::time_point deadline, bool script) {
        const StatementKind kind = classify(sql);
        if (kind == StatementKind::SchemaChange ||
            (script && kind != StatementKind::TransactionControl)) {
            co_await forget_prepared(deadline);
        } else if (kind == StatementKind::Write && needs_prepare(sql, params)) {
            // PREPARE and its first execution go out together, which takes pipeline mode.
            std::vector<Session::Statement> single;
            single.push_back(Session::Statement{sql, params});
            co_return co_await execute_pipeline(single, deadline);
        }
        bool sent = false;
        if (script) {
            sent = PQsendQuery(conn_, sql.c_str()) != 0;
        } else {
            std::vector<Step> steps;
            sent = send_statement(sql, params, kind, steps, true);
        }
        if (!sent) fail_connection("send");
        co_await flush_output(deadline);

        std::vector<Row> rows;
        std::int64_t affected = 0;
        std::optional<DatabaseError> error;
        for (;;) {
            while (!result_ready()) {
                if (!co_await wait(*socket_, Descriptor::wait_read, deadline)) time_out();
            }
            PGresult* result = PQgetResult(conn_);
            if (result == nullptr) break;
            std::unique_ptr<PGresult, decltype(&PQclear)> owned(result, &PQclear);
            switch (PQresultStatus(result)) {
                case PGRES_TUPLES_OK:
                case PGRES_SINGLE_TUPLE:
                    rows = read_rows(result);
                    affected = affected_rows(result);
                    break;
                case PGRES_COMMAND_OK:
                case PGRES_EMPTY_QUERY:
                    rows.clear();
                    affected = affected_rows(result);
                    break;
                default:
                    if (!error) error = to_error(result);
                    break;
            }
        }
        if (error) throw statement_error(*error);
        co_return Result(std::move(rows), affected);
    }

    // Runs `statements` in one round trip (libpq pipeline mode) and returns the last one's
    // result. The first error is thrown once every result is read; the server skips the
    // statements after a failed one.
    asio::awaitable<Result> execute_pipeline(const std::vector<Session::Statement>& statements,
                                             Clock::time_point deadline) {
        std::vector<StatementKind> kinds;
        kinds.reserve(statements.size());
        for (const auto& statement : statements) kinds.push_back(classify(statement.sql));
        if (std::find(kinds.begin(), kinds.end(), StatementKind::SchemaChange) != kinds.end()) {
            co_await forget_prepared(deadline);
        }
        if (PQenterPipelineMode(conn_) == 0) fail_connection("pipeline");
        // One step per result the server will send: a PREPARE, then each statement.
        std::vector<Step> steps;
        steps.reserve(statements.size() + 2);
        for (std::size_t i = 0; i < statements.size(); ++i) {
            if (!send_statement(statements[i].sql, statements[i].params, kinds[i], steps, true)) {
                fail_connection("send");
            }
        }
        if (PQpipelineSync(conn_) == 0) fail_connection("send");
        co_await flush_output(deadline);
        auto segment = co_await read_segment(steps, deadline);
        if (PQexitPipelineMode(conn_) == 0) fail_connection("pipeline");
        if (segment.error) throw statement_error(*segment.error);
        co_return Result(std::move(segment.rows), segment.affected);
    }

    // Runs independent transactions of writes (every statement an INSERT, UPDATE or DELETE, as
    // PgSession::commit checked) in one round trip. Each is a pipeline segment of its own, which
    // PostgreSQL runs as an implicit transaction committed (or rolled back) at its sync point:
    // one that fails leaves the others alone. `finished(i, error)` is called as
    // transaction i's sync point arrives, with no error when it committed. Each segment has
    // `budget` from the moment it is awaited, so a slow one costs only its own deadline. A write
    // new to this connection runs unprepared here and is prepared for next time in a segment
    // ahead of the transactions, alone: a PREPARE that failed inside a transaction's segment
    // would abort it, and the later transactions that use the name would fail too. Throws when
    // the connection fails; the transactions not yet finished may or may not have committed.
    asio::awaitable<void> execute_transactions(
        const std::vector<const std::vector<Session::Statement>*>& transactions,
        std::chrono::milliseconds budget,
        const std::function<void(std::size_t, std::optional<DatabaseError>)>& finished) {
        if (PQenterPipelineMode(conn_) == 0) fail_connection("pipeline");
        // libpq 15 sends at every sync point (PQpipelineSync flushes; libpq 17's
        // PQsendPipelineSync would not): corked, the segments leave in one send and wake the
        // server once instead of once per segment.
        bool corked = false;
        auto cork = [this, &corked] {
            if (!corked) corked = set_cork(true);
        };
        if (transactions.size() > 1) cork();
        // The steps of each segment: the preparations first, then the transactions.
        std::vector<std::vector<Step>> segments;
        for (const auto* transaction : transactions) {
            for (const auto& statement : *transaction) {
                if (!needs_prepare(statement.sql, statement.params)) continue;
                cork();
                auto& steps = segments.emplace_back();
                if (send_prepare(statement_key(statement.sql, statement.params), statement.sql,
                                 statement.params, steps) == nullptr ||
                    PQpipelineSync(conn_) == 0) {
                    fail_connection("send");
                }
            }
        }
        const std::size_t preparations = segments.size();
        segments.reserve(preparations + transactions.size());
        for (const auto* transaction : transactions) {
            auto& steps = segments.emplace_back();
            steps.reserve(transaction->size());
            for (const auto& statement : *transaction) {
                if (!send_statement(statement.sql, statement.params, StatementKind::Write, steps,
                                    false)) {
                    fail_connection("send");
                }
            }
            if (PQpipelineSync(conn_) == 0) fail_connection("send");
        }
        if (corked) set_cork(false);
        co_await flush_output(Clock::now() + budget);
        for (std::size_t i = 0; i < segments.size(); ++i) {
            auto segment = co_await read_segment(segments[i], Clock::now() + budget);
            // A failed preparation is forgotten (settle_prepare): its statement stays unprepared.
            if (i < preparations) continue;
            std::optional<DatabaseError> error;
            if (segment.error) error = statement_error(*segment.error);
            finished(i - preparations, std::move(error));
        }
        if (PQexitPipelineMode(conn_) == 0) fail_connection("pipeline");
    }

  private:
    // True when PQgetResult would not block. Reads the socket only when libpq lacks bytes: the
    // results of a pipeline usually arrive together, and a read per result would mostly find
    // nothing (EAGAIN) yet cost a system call each. What already arrived is read before waiting,
    // since its readiness may have been reported before anyone waited.
    bool result_ready() {
        if (!PQisBusy(conn_)) return true;
        if (PQconsumeInput(conn_) == 0) fail_connection("receive");
        return !PQisBusy(conn_);
    }

    // What one result of a pipeline answers: a statement, or (prepares set) the PREPARE of the
    // statement named by that cache key.
    struct Step {
        std::string prepares;
    };
    struct Prepared {
        std::string name;
        bool ready = false;  // the server confirmed the PREPARE
    };

    // Sets or clears TCP_CORK on the connection's socket: while set, what is sent waits in the
    // socket until it is cleared. False when it cannot be set.
    bool set_cork(bool on) {
        int value = on ? 1 : 0;
        return ::setsockopt(PQsocket(conn_), IPPROTO_TCP, TCP_CORK, &value, sizeof value) == 0;
    }

    // Sends what libpq has queued, waiting for the socket when it is full.
    asio::awaitable<void> flush_output(Clock::time_point deadline) {
        for (;;) {
            int flushed = PQflush(conn_);
            if (flushed == 0) co_return;
            if (flushed < 0) fail_connection("send");
            if (!co_await wait(*socket_, Descriptor::wait_write, deadline)) time_out();
        }
    }

    // What one segment of a pipeline (the statements up to a sync point) gave: the last
    // statement's rows and count, and the first error.
    struct SegmentResult {
        std::vector<Row> rows;
        std::int64_t affected = 0;
        std::optional<DatabaseError> error;
    };

    // Reads the results of one pipeline segment, whose results `steps` describes, up to its
    // sync point.
    asio::awaitable<SegmentResult> read_segment(const std::vector<Step>& steps,
                                                Clock::time_point deadline) {
        SegmentResult segment;
        // Each statement's results end with a null result; the sync point ends the segment.
        std::size_t finished = 0;
        for (;;) {
            while (!result_ready()) {
                if (!co_await wait(*socket_, Descriptor::wait_read, deadline)) time_out();
            }
            PGresult* result = PQgetResult(conn_);
            if (result == nullptr) {
                ++finished;
                continue;
            }
            std::unique_ptr<PGresult, decltype(&PQclear)> owned(result, &PQclear);
            const auto status = PQresultStatus(result);
            if (status == PGRES_PIPELINE_SYNC) co_return segment;
            if (finished < steps.size() && !steps[finished].prepares.empty()) {
                // The PREPARE's own result: the name is usable only if it succeeded.
                settle_prepare(steps[finished].prepares, status == PGRES_COMMAND_OK);
                if (status == PGRES_COMMAND_OK || status == PGRES_PIPELINE_ABORTED) continue;
            }
            bool last = finished + 1 == steps.size();
            switch (status) {
                case PGRES_TUPLES_OK:
                case PGRES_SINGLE_TUPLE:
                    if (last) {
                        segment.rows = read_rows(result);
                        segment.affected = affected_rows(result);
                    }
                    break;
                case PGRES_COMMAND_OK:
                case PGRES_EMPTY_QUERY:
                    if (last) segment.affected = affected_rows(result);
                    break;
                case PGRES_PIPELINE_ABORTED:
                    break;
                default:
                    if (!segment.error) segment.error = to_error(result);
                    break;
            }
        }
    }

    // Waits for the socket until `deadline`; false when the deadline passed first.
    static asio::awaitable<bool> wait(Descriptor& socket, Descriptor::wait_type type,
                                      Clock::time_point deadline) {
        using namespace asio::experimental::awaitable_operators;
        asio::steady_timer timer(socket.get_executor());
        for (;;) {
            auto now = Clock::now();
            if (now >= deadline) co_return false;
            timer.expires_at(std::min(deadline, now + kRecheck));
            // as_tuple: the wait that loses is cancelled, which must not throw (an exception per
            // round trip, and unwinding takes a process-wide lock).
            auto outcome = co_await (socket.async_wait(type, asio::as_tuple(asio::use_awaitable)) ||
                                     timer.async_wait(asio::as_tuple(asio::use_awaitable)));
            if (outcome.index() == 0 && !std::get<0>(std::get<0>(outcome))) co_return true;
            if (poll_ready(socket.native_handle(), type)) co_return true;
        }
    }

    static bool poll_ready(int fd, Descriptor::wait_type type);

    // The cache key: the text and the parameter types, which a prepared statement fixes. Built in
    // a buffer each thread reuses (nothing suspends between building and using it), so a lookup
    // allocates nothing.
    static const std::string& statement_key(const std::string& sql,
                                            const std::vector<Value>& params) {
        thread_local std::string key;
        key.clear();
        key.append(sql);
        key.push_back('\0');
        for (const auto& param : params) {
            const Oid type = type_of(param);
            key.append(reinterpret_cast<const char*>(&type), sizeof type);
        }
        return key;
    }

    // True when a write would be prepared before it runs (not yet prepared, room left).
    bool needs_prepare(const std::string& sql, const std::vector<Value>& params) const {
        return room_to_prepare() && prepared_.find(statement_key(sql, params)) == prepared_.end();
    }
    bool room_to_prepare() const { return prepared_.size() < kMaxPreparedStatements; }

    void settle_prepare(const std::string& key, bool succeeded) {
        auto found = prepared_.find(key);
        if (found == prepared_.end()) return;
        if (succeeded) {
            found->second.ready = true;
        } else {
            prepared_.erase(found);
        }
    }

    // Drops every prepared statement, on the server too, before a schema change.
    asio::awaitable<void> forget_prepared(Clock::time_point deadline) {
        if (prepared_.empty()) co_return;
        prepared_.clear();
        std::string deallocate = "DEALLOCATE ALL";
        std::vector<Value> no_params;
        co_await execute(deallocate, no_params, deadline, false);
    }

    // Queues the PREPARE of a write new to this connection, under a fresh name, and records it
    // (ready once the server confirms); appends its result to `steps`. Null when libpq refuses.
    // `key` is the statement's statement_key.
    const Prepared* send_prepare(const std::string& key, const std::string& sql,
                                 const std::vector<Value>& params, std::vector<Step>& steps) {
        std::vector<Oid> types;
        types.reserve(params.size());
        for (const auto& param : params) types.push_back(type_of(param));
        const std::string name = "aether_" + std::to_string(++statements_prepared_);
        if (PQsendPrepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params.size()),
                          types.data()) == 0) {
            return nullptr;
        }
        steps.push_back(Step{key});
        return &prepared_.emplace(key, Prepared{name, false}).first->second;
    }

    // Queues one statement with its parameters as text (NULL for null); appends the results it
    // adds to `steps`. A write runs prepared when this connection has prepared it; when it has
    // not and `prepare_new` is set, it is prepared first, in the same segment (that needs
    // pipeline mode). False when libpq refuses.
    bool send_statement(const std::string& sql, const std::vector<Value>& params,
                        StatementKind kind, std::vector<Step>& steps, bool prepare_new) {
        // On the stack for the statements we write (up to 32 parameters), on the heap beyond.
        constexpr std::size_t kInline = 32;
        std::array<ParamSlot, kInline> inline_slots;
        std::array<const char*, kInline> inline_values;
        std::array<Oid, kInline> inline_types;
        std::vector<ParamSlot> heap_slots;
        std::vector<const char*> heap_values;
        std::vector<Oid> heap_types;
        ParamSlot* slots = inline_slots.data();
        const char** values = inline_values.data();
        Oid* types = inline_types.data();
        if (params.size() > kInline) {
            heap_slots.resize(params.size());
            heap_values.resize(params.size());
            heap_types.resize(params.size());
            slots = heap_slots.data();
            values = heap_values.data();
            types = heap_types.data();
        }
        for (std::size_t i = 0; i < params.size(); ++i) {
            values[i] = param_text(params[i], slots[i]);
            types[i] = type_of(params[i]);
        }
        const int count = static_cast<int>(params.size());
        const Prepared* prepared = nullptr;
        if (kind == StatementKind::Write) {
            const std::string& key = statement_key(sql, params);
            if (auto found = prepared_.find(key); found != prepared_.end()) {
                // Not yet confirmed: prepared earlier in this segment, unless prepare_new is off
                // (then it was prepared in a segment of its own, which may yet fail).
                if (found->second.ready || prepare_new) prepared = &found->second;
            } else if (prepare_new && room_to_prepare() &&
                       PQpipelineStatus(conn_) == PQ_PIPELINE_ON) {
                prepared = send_prepare(key, sql, params, steps);
                if (prepared == nullptr) return false;
            }
        }
        steps.push_back(Step{});
        if (prepared != nullptr) {
            return PQsendQueryPrepared(conn_, prepared->name.c_str(), count, values, nullptr,
                                       nullptr, 0) != 0;
        }
        return PQsendQueryParams(conn_, sql.c_str(), count, types, values, nullptr, nullptr, 0) !=
               0;
    }

    // A statement's error as callers see it: ConnectionLost (and the connection broken) when the
    // server went away with it.
    DatabaseError statement_error(const DatabaseError& error) {
        if (PQstatus(conn_) != CONNECTION_OK) {
            broken_ = true;
            return DatabaseError(Kind::ConnectionLost, error.what(), error.sqlstate());
        }
        if (error.kind() == Kind::ConnectionLost) broken_ = true;
        return error;
    }

    [[noreturn]] void fail_connection(std::string_view stage) {
        broken_ = true;
        throw DatabaseError(Kind::ConnectionLost,
                            std::string(stage) + ": " + first_line(PQerrorMessage(conn_)));
    }

    [[noreturn]] void time_out() {
        broken_ = true;
        throw DatabaseError(Kind::Timeout, "query timed out", "57014");
    }

    static std::vector<Row> read_rows(PGresult* result) {
        int fields = PQnfields(result);
        auto names = std::make_shared<std::vector<std::string>>();
        for (int i = 0; i < fields; ++i) names->emplace_back(PQfname(result, i));
        std::vector<Row> rows;
        int count = PQntuples(result);
        rows.reserve(static_cast<std::size_t>(count));
        for (int r = 0; r < count; ++r) {
            std::vector<Value> cells;
            cells.reserve(static_cast<std::size_t>(fields));
            for (int c = 0; c < fields; ++c) {
                if (PQgetisnull(result, r, c)) {
                    cells.emplace_back(nullptr);
                } else {
                    cells.emplace_back(
                        std::string(PQgetvalue(result, r, c),
                                    static_cast<std::size_t>(PQgetlength(result, r, c))));
                }
            }
            rows.emplace_back(names, std::move(cells));
        }
        return rows;
    }

    static std::int64_t affected_rows(PGresult* result) {
        std::string_view status = PQcmdStatus(result);
        if (status.starts_with("SELECT")) return 0;
        std::string_view count = PQcmdTuples(result);
        std::int64_t value = 0;
        std::from_chars(count.data(), count.data() + count.size(), value);
        return value;
    }

    // Only the primary message: DETAIL lines may quote the parameter values.
    static DatabaseError to_error(PGresult* result) {
        const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
        std::string message =
            primary != nullptr ? primary : first_line(PQresultErrorMessage(result));
        return DatabaseError(kind_of(sqlstate), message, sqlstate != nullptr ? sqlstate : "");
    }

    PGconn* conn_;
    std::optional<Descriptor> socket_;
    bool broken_ = false;
    std::unordered_map<std::string, Prepared> prepared_;  // by statement_key
    std::uint64_t statements_prepared_ = 0;               // names are never reused
};

bool PgConnection::poll_ready(int fd, Descriptor::wait_type type) {
    pollfd entry{fd, static_cast<short>(type == Descriptor::wait_read ? POLLIN : POLLOUT), 0};
    return ::poll(&entry, 1, 0) > 0;
}

class PgDatabase;

// A connection taken from the pool; returns it (or discards it when unusable) on destruction.
class Lease {
  public:
    Lease(std::shared_ptr<PgDatabase> database, std::unique_ptr<PgConnection> connection)
        : database_(std::move(database)), connection_(std::move(connection)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    PgConnection& operator*() const { return *connection_; }
    PgConnection* operator->() const { return connection_.get(); }

  private:
    std::shared_ptr<PgDatabase> database_;
    std::unique_ptr<PgConnection> connection_;
};

// Transactions of writes only that wait to be committed together: a committer sends up to this
// many in one round trip.
constexpr std::size_t kMaxCommitBatch = 64;
// Committers (each on a connection of its own) at once. More would spread the waiting
// transactions thinner, giving each round trip fewer. A pool keeps a connection besides them
// for queries; a pool of one commits each transaction on its own.
constexpr std::size_t kMaxCommitters = 2;

// A transaction. Its connection is taken at its first query, with BEGIN in the same round trip.
// A body that only deferred statements takes none of its own: its statements are committed with
// other such transactions (PgDatabase::commit_together), in one round trip, as one pipeline
// segment each, which PostgreSQL runs as an implicit transaction (all or nothing, committed at
// the segment's sync point): two statements fewer than BEGIN ... COMMIT, and one round trip for
// many.
class PgSession final : public Session {
  public:
    PgSession(PgDatabase& database, const PoolOptions& options)
        : database_(database), options_(options) {}
    asio::awaitable<void> execute_script(std::string sql) override;
    std::string_view dialect() const override { return "postgres"; }

    asio::awaitable<void> commit();
    // After a failure: forgets what was deferred and never sent, and rolls back what was.
    asio::awaitable<void> abandon();

  protected:
    asio::awaitable<Result> do_query(std::string sql, std::vector<Value> params) override;

  private:
    asio::awaitable<PgConnection*> connection();
    // Sends BEGIN (the first time), what is deferred and `sql` in one round trip.
    asio::awaitable<Result> run_with_deferred(std::string sql, std::vector<Value> params);
    std::vector<Statement> take_deferred_after_begin() {
        auto deferred = take_deferred();
        if (begun_) return deferred;
        begun_ = true;
        std::vector<Statement> statements;
        statements.reserve(deferred.size() + 2);
        statements.push_back({"BEGIN", {}});
        std::move(deferred.begin(), deferred.end(), std::back_inserter(statements));
        return statements;
    }
    Clock::time_point deadline() const { return statement_deadline(options_); }
    PgDatabase& database_;
    const PoolOptions& options_;
    std::optional<Lease> lease_;
    bool begun_ = false;
};

class PgDatabase final : public Database, public std::enable_shared_from_this<PgDatabase> {
  public:
    PgDatabase(std::string url, asio::any_io_executor executor, const PoolOptions& options)
        : url_(std::move(url)),
          executor_(std::move(executor)),
          options_(options),
          slots_(static_cast<std::size_t>(options.max_connections), options.max_waiters),
          max_committers_(std::min(
              kMaxCommitters, static_cast<std::size_t>(std::max(options.max_connections, 1)) - 1)) {
    }

    std::string_view dialect() const override { return "postgres"; }

    // Whether transactions of writes only are committed together (commit_together).
    bool commits_together() const { return max_committers_ > 0; }

    asio::awaitable<void> transaction(
        std::function<asio::awaitable<void>(Session&)> body) override {
        PgSession session(*this, options_);
        std::exception_ptr failure;
        try {
            co_await body(session);
            co_await session.commit();
        } catch (...) {
            failure = std::current_exception();
        }
        if (failure) {
            co_await session.abandon();
            std::rethrow_exception(failure);
        }
    }

    void close() override {
        closed_ = true;
        slots_.close();
        {
            std::lock_guard lock(mutex_);
            idle_.clear();
        }
        Commits waiting;
        {
            std::lock_guard lock(commits_mutex_);
            waiting = std::move(waiting_commits_);
            waiting_commits_.clear();
        }
        auto closed =
            std::make_exception_ptr(DatabaseError(Kind::ConnectionLost, "database is closed"));
        for (auto& commit : waiting) commit->complete(closed);
    }

    // Called by ~Lease.
    void give_back(std::unique_ptr<PgConnection> connection) {
        if (connection && !closed_ && connection->poolable()) {
            std::lock_guard lock(mutex_);
            idle_.push_back(std::move(connection));
        }
        connection.reset();
        slots_.release();
    }

    asio::awaitable<Lease> acquire() {
        auto self = shared_from_this();
        co_await slots_.acquire(options_.acquire_timeout);
        std::unique_ptr<PgConnection> connection;
        std::exception_ptr failure;
        try {
            if (closed_) throw DatabaseError(Kind::ConnectionLost, "database is closed");
            connection = take_idle();
            if (!connection) {
                connection = co_await PgConnection::connect(url_, executor_, options_);
            }
        } catch (...) {
            failure = std::current_exception();
        }
        if (failure) {
            slots_.release();
            std::rethrow_exception(failure);
        }
        // From here the slot belongs to the lease, which returns it on every path.
        co_return Lease(std::move(self), std::move(connection));
    }

    // Commits a transaction of writes only, together with others waiting at the same time, on
    // the connection of a committer; returns once it committed and throws what failed it.
    // Throws Busy when max_waiters transactions already wait, and Timeout when none took it
    // within acquire_timeout.
    asio::awaitable<void> commit_together(std::vector<Session::Statement> statements) {
        auto executor = co_await asio::this_coro::executor;
        co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::exception_ptr)>(
            [this, &statements, &executor](auto handler) {
                // Once the handler is queued a committer may complete it on another thread,
                // which frees this lambda: only locals are used after the unlock.
                auto self = shared_from_this();
                std::unique_lock lock(commits_mutex_);
                std::exception_ptr refusal;
                if (closed_) {
                    refusal = std::make_exception_ptr(
                        DatabaseError(Kind::ConnectionLost, "database is closed"));
                } else if (waiting_commits_.size() >= options_.max_waiters) {
                    refusal = std::make_exception_ptr(
                        DatabaseError(Kind::Busy, "too many transactions waiting to commit"));
                }
                if (refusal) {
                    lock.unlock();
                    asio::post(executor, asio::append(std::move(handler), refusal));
                    return;
                }
                auto& commit = waiting_commits_.emplace_back(
                    std::make_unique<WaitingCommit>(std::move(statements), executor));
                commit->handler.emplace(std::move(handler));
                const bool start = committers_ < max_committers_;
                if (start) ++committers_;
                lock.unlock();
                if (start) {
                    auto committer_executor = self->executor_;
                    asio::co_spawn(committer_executor, run_committer(std::move(self)),
                                   asio::detached);
                }
            },
            asio::use_awaitable);
    }

  protected:
    asio::awaitable<Result> do_query(std::string sql, std::vector<Value> params) override {
        Lease lease = co_await acquire();
        co_return co_await lease->execute(sql, params, statement_deadline(options_), false);
    }

  private:
    // A transaction waiting for a committer, and the coroutine waiting for its outcome.
    struct WaitingCommit {
        WaitingCommit(std::vector<Session::Statement> statements_in,
                      asio::any_io_executor executor_in)
            : statements(std::move(statements_in)),
              executor(std::move(executor_in)),
              queued_at(Clock::now()) {}
        std::vector<Session::Statement> statements;
        asio::any_io_executor executor;
        Clock::time_point queued_at;
        // optional + emplace: Boost 1.81's any_completion_handler move-assignment recurses.
        std::optional<asio::any_completion_handler<void(std::exception_ptr)>> handler;

        // Resumes the waiting coroutine on its own executor.
        void complete(std::exception_ptr failure) {
            if (!handler) return;
            auto taken = std::move(*handler);
            handler.reset();
            asio::post(executor, asio::append(std::move(taken), std::move(failure)));
        }
    };
    using Commits = std::vector<std::unique_ptr<WaitingCommit>>;

    // Takes up to kMaxCommitBatch waiting transactions, oldest first; when it takes none (none
    // wait), the calling committer ends, counted out under the same lock, so that a transaction
    // queued later starts another.
    // Transactions that waited longer than acquire_timeout fail with Timeout instead: they were
    // never sent, so they surely did not commit.
    Commits take_commits() {
        Commits batch;
        Commits expired;
        {
            std::lock_guard lock(commits_mutex_);
            const auto oldest_allowed = Clock::now() - options_.acquire_timeout;
            auto waiting = waiting_commits_.begin();
            for (; waiting != waiting_commits_.end() && batch.size() < kMaxCommitBatch; ++waiting) {
                ((*waiting)->queued_at < oldest_allowed ? expired : batch)
                    .push_back(std::move(*waiting));
            }
            waiting_commits_.erase(waiting_commits_.begin(), waiting);
            if (batch.empty() && waiting_commits_.empty()) --committers_;
        }
        auto timed_out =
            std::make_exception_ptr(DatabaseError(Kind::Timeout, "timed out waiting to commit"));
        for (auto& commit : expired) commit->complete(timed_out);
        return batch;
    }

    // Commits waiting transactions, a batch per round trip, until none wait. Keeps its connection
    // between batches, unless queries wait for one; a failed one is replaced.
    static asio::awaitable<void> run_committer(std::shared_ptr<PgDatabase> self) {
        std::optional<Lease> lease;
        for (;;) {
            Commits batch = self->take_commits();
            if (batch.empty()) co_return;
            std::vector<const std::vector<Session::Statement>*> transactions;
            transactions.reserve(batch.size());
            for (const auto& commit : batch) transactions.push_back(&commit->statements);
            std::size_t finished = 0;
            std::exception_ptr failure;
            try {
                if (self->closed_) {
                    throw DatabaseError(Kind::ConnectionLost, "database is closed");
                }
                if (!lease || !(*lease)->poolable()) {
                    lease.reset();
                    lease.emplace(co_await self->acquire());
                }
                const std::function<void(std::size_t, std::optional<DatabaseError>)> on_finished =
                    [&batch, &finished](std::size_t index, std::optional<DatabaseError> error) {
                        batch[index]->complete(error ? std::make_exception_ptr(std::move(*error))
                                                     : std::exception_ptr{});
                        finished = index + 1;
                    };
                co_await (*lease)->execute_transactions(
                    transactions, statement_budget(self->options_), on_finished);
            } catch (...) {
                failure = std::current_exception();
            }
            if (failure) {
                lease.reset();
                for (std::size_t i = finished; i < batch.size(); ++i) batch[i]->complete(failure);
            }
            if (self->slots_.waiters() > 0) lease.reset();
        }
    }

    std::unique_ptr<PgConnection> take_idle() {
        std::lock_guard lock(mutex_);
        while (!idle_.empty()) {
            auto connection = std::move(idle_.back());
            idle_.pop_back();
            if (connection->reusable()) return connection;
        }
        return nullptr;
    }

    std::string url_;
    asio::any_io_executor executor_;
    PoolOptions options_;
    ConnectionSlots slots_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<PgConnection>> idle_;
    std::atomic<bool> closed_{false};

    const std::size_t max_committers_;
    std::mutex commits_mutex_;
    Commits waiting_commits_;  // at most options_.max_waiters
    std::size_t committers_ = 0;
};

Lease::~Lease() {
    if (database_) database_->give_back(std::move(connection_));
}

asio::awaitable<PgConnection*> PgSession::connection() {
    if (!lease_) lease_.emplace(co_await database_.acquire());
    co_return &**lease_;
}

asio::awaitable<void> PgSession::execute_script(std::string sql) {
    auto* connection = co_await this->connection();
    auto statements = take_deferred_after_begin();
    if (!statements.empty()) co_await connection->execute_pipeline(statements, deadline());
    std::vector<Value> no_params;
    co_await connection->execute(sql, no_params, deadline(), true);
}

asio::awaitable<Result> PgSession::do_query(std::string sql, std::vector<Value> params) {
    co_return co_await run_with_deferred(std::move(sql), std::move(params));
}

asio::awaitable<Result> PgSession::run_with_deferred(std::string sql, std::vector<Value> params) {
    auto* connection = co_await this->connection();
    auto statements = take_deferred_after_begin();
    if (statements.empty()) {
        co_return co_await connection->execute(sql, params, deadline(), false);
    }
    statements.push_back({std::move(sql), std::move(params)});
    co_return co_await connection->execute_pipeline(statements, deadline());
}

asio::awaitable<void> PgSession::commit() {
    if (begun_) {
        std::string commit_sql = "COMMIT";
        std::vector<Value> no_params;
        co_await run_with_deferred(std::move(commit_sql), std::move(no_params));
        co_return;
    }
    auto statements = take_deferred();
    if (statements.empty()) co_return;
    // Anything but INSERT, UPDATE and DELETE could change the shared connection's state (SET,
    // START TRANSACTION, DEALLOCATE...): such a transaction runs on a connection of its own.
    const bool writes_only = std::all_of(statements.begin(), statements.end(), [](const auto& s) {
        return classify(s.sql) == StatementKind::Write;
    });
    if (writes_only && database_.commits_together()) {
        co_await database_.commit_together(std::move(statements));
        co_return;
    }
    // On a connection of its own, as one segment.
    auto* connection = co_await this->connection();
    co_await connection->execute_pipeline(statements, deadline());
}

asio::awaitable<void> PgSession::abandon() {
    take_deferred();
    if (!lease_ || !(*lease_)->needs_rollback()) co_return;
    try {
        const std::string rollback = "ROLLBACK";
        std::vector<Value> no_params;
        co_await (*lease_)->execute(rollback, no_params, deadline(), true);
    } catch (const std::exception&) {
        (*lease_)->mark_broken();
    }
}

}  // namespace

Expected<std::shared_ptr<Database>, std::string> open_postgres(
    const std::string& url, const asio::any_io_executor& executor, const PoolOptions& options) {
    char* error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &error);
    if (parsed == nullptr) {
        std::string message = "invalid PostgreSQL URL: " + first_line(error);
        PQfreemem(error);
        return unexpected(std::move(message));
    }
    PQconninfoFree(parsed);
    return std::shared_ptr<Database>(std::make_shared<PgDatabase>(url, executor, options));
}

}  // namespace aether::platform::sql::detail
