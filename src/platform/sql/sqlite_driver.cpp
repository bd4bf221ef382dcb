// The SQLite driver: one writer connection (transactions pinned to it, BEGIN IMMEDIATE) and a
// few WAL reader connections; every SQLite call runs on the blocking pool, never an IO thread.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <exception>
#include <mutex>

#include "platform/runtime/blocking_pool.h"
#include "platform/sql/connection_slots.h"
#include "platform/sql/drivers.h"

namespace aether::platform::sql::detail {

namespace {

using Clock = std::chrono::steady_clock;
using Kind = DatabaseError::Kind;

// One sqlite3 handle; used by one thread at a time (the leases guarantee it).
struct SqliteConnection {
    sqlite3* db = nullptr;
    Clock::time_point deadline = Clock::time_point::max();

    SqliteConnection() = default;
    SqliteConnection(const SqliteConnection&) = delete;
    SqliteConnection& operator=(const SqliteConnection&) = delete;
    ~SqliteConnection() { sqlite3_close_v2(db); }
};

[[noreturn]] void throw_sqlite(sqlite3* db, int code, std::string_view context) {
    int extended = db != nullptr ? sqlite3_extended_errcode(db) : code;
    int primary = code & 0xff;
    Kind kind = Kind::Other;
    if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
        kind = Kind::UniqueViolation;
    } else if (extended == SQLITE_CONSTRAINT_FOREIGNKEY) {
        kind = Kind::ForeignKey;
    } else if (primary == SQLITE_INTERRUPT || primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        kind = Kind::Timeout;
    }
    std::string message(context);
    message += ": ";
    message += kind == Kind::Timeout && primary == SQLITE_INTERRUPT
                   ? "query timed out"
                   : (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code));
    throw DatabaseError(kind, message, std::to_string(extended));
}

int check_deadline(void* context) {
    auto* connection = static_cast<SqliteConnection*>(context);
    return Clock::now() > connection->deadline ? 1 : 0;
}

struct StatementDeleter {
    void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

bool only_separators(const char* text) {
    for (; *text != '\0'; ++text) {
        if (!std::isspace(static_cast<unsigned char>(*text)) && *text != ';') return false;
    }
    return true;
}

// Binds Value params to `$N` placeholders (SQLite treats `$1` as a parameter named "$1").
void bind_parameters(sqlite3* db, sqlite3_stmt* statement, const std::vector<Value>& params) {
    int count = sqlite3_bind_parameter_count(statement);
    for (int i = 1; i <= count; ++i) {
        const char* name = sqlite3_bind_parameter_name(statement, i);
        std::size_t number = 0;
        std::string_view text = name != nullptr ? name : "";
        bool numbered = text.size() > 1 && text[0] == '$';
        if (numbered) {
            auto [end, error] = std::from_chars(text.data() + 1, text.data() + text.size(), number);
            numbered = error == std::errc() && end == text.data() + text.size() && number > 0;
        }
        if (!numbered) {
            throw DatabaseError(Kind::Other, "SQL parameters must be written $1, $2, ...");
        }
        if (number > params.size()) {
            throw DatabaseError(Kind::Other, "no value for parameter $" + std::to_string(number));
        }
        const Value& value = params[number - 1];
        int rc = std::visit(
            [&](const auto& v) -> int {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, std::nullptr_t>) {
                    return sqlite3_bind_null(statement, i);
                } else if constexpr (std::is_same_v<T, std::int64_t>) {
                    return sqlite3_bind_int64(statement, i, v);
                } else if constexpr (std::is_same_v<T, double>) {
                    return sqlite3_bind_double(statement, i, v);
                } else if constexpr (std::is_same_v<T, bool>) {
                    return sqlite3_bind_int(statement, i, v ? 1 : 0);
                } else {
                    return sqlite3_bind_text64(statement, i, v.data(), v.size(), SQLITE_TRANSIENT,
                                               SQLITE_UTF8);
                }
            },
            value);
        if (rc != SQLITE_OK) throw_sqlite(db, rc, "bind");
    }
}

Value read_cell(sqlite3_stmt* statement, int column) {
    switch (sqlite3_column_type(statement, column)) {
        case SQLITE_INTEGER:
            return std::int64_t{sqlite3_column_int64(statement, column)};
        case SQLITE_FLOAT:
            return sqlite3_column_double(statement, column);
        case SQLITE_NULL:
            return nullptr;
        default: {
            const auto* bytes = static_cast<const char*>(sqlite3_column_blob(statement, column));
            int size = sqlite3_column_bytes(statement, column);
            return std::string(bytes != nullptr ? bytes : "", static_cast<std::size_t>(size));
        }
    }
}

// Runs one statement. With `readonly_only`, a statement that would write is not run and
// nullopt comes back, so the caller can route it to the writer.
std::optional<Result> run_statement(SqliteConnection& connection, const std::string& sql,
                                    const std::vector<Value>& params, bool readonly_only,
                                    std::chrono::milliseconds timeout) {
    sqlite3* db = connection.db;
    connection.deadline = Clock::now() + timeout;
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size() + 1), &raw, &tail);
    Statement statement(raw);
    if (rc != SQLITE_OK) throw_sqlite(db, rc, "prepare");
    if (tail != nullptr && !only_separators(tail)) {
        throw DatabaseError(Kind::Other, "query() runs one statement; use execute_script()");
    }
    if (!statement) return Result{};
    if (readonly_only && !sqlite3_stmt_readonly(statement.get())) return std::nullopt;
    bind_parameters(db, statement.get(), params);

    int columns = sqlite3_column_count(statement.get());
    auto names = std::make_shared<std::vector<std::string>>();
    for (int i = 0; i < columns; ++i) names->emplace_back(sqlite3_column_name(statement.get(), i));
    std::vector<Row> rows;
    auto changes_before = sqlite3_total_changes64(db);
    while ((rc = sqlite3_step(statement.get())) == SQLITE_ROW) {
        std::vector<Value> cells;
        cells.reserve(static_cast<std::size_t>(columns));
        for (int i = 0; i < columns; ++i) cells.push_back(read_cell(statement.get(), i));
        rows.emplace_back(names, std::move(cells));
    }
    if (rc != SQLITE_DONE) throw_sqlite(db, rc, "query");
    std::int64_t affected =
        sqlite3_total_changes64(db) != changes_before ? sqlite3_changes64(db) : 0;
    return Result(std::move(rows), affected);
}

void run_script(SqliteConnection& connection, const std::string& sql,
                std::chrono::milliseconds timeout) {
    connection.deadline = Clock::now() + timeout;
    char* error = nullptr;
    int rc = sqlite3_exec(connection.db, sql.c_str(), nullptr, nullptr, &error);
    sqlite3_free(error);
    if (rc != SQLITE_OK) throw_sqlite(connection.db, rc, "script");
}

std::unique_ptr<SqliteConnection> open_connection(const std::string& path, bool reader,
                                                  const PoolOptions& options) {
    auto connection = std::make_unique<SqliteConnection>();
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path.c_str(), &connection->db, flags, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(connection->db, rc, "open " + path);
    sqlite3_extended_result_codes(connection->db, 1);
    sqlite3_progress_handler(connection->db, 1000, &check_deadline, connection.get());
    std::string pragmas =
        "PRAGMA busy_timeout = " + std::to_string(options.acquire_timeout.count()) +
        "; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
    if (!reader) pragmas = "PRAGMA journal_mode = WAL; " + pragmas;
    if (reader) pragmas += " PRAGMA query_only = ON;";
    run_script(*connection, pragmas, options.connect_timeout);
    return connection;
}

bool looks_like_read(std::string_view sql) {
    auto start = sql.find_first_not_of(" \t\r\n(");
    if (start == std::string_view::npos) return false;
    auto word = sql.substr(start, 6);
    auto equals = [&](std::string_view keyword) {
        if (word.size() < keyword.size()) return false;
        for (std::size_t i = 0; i < keyword.size(); ++i) {
            if (std::toupper(static_cast<unsigned char>(word[i])) != keyword[i]) return false;
        }
        return true;
    };
    return equals("SELECT") || equals("WITH") || equals("VALUES");
}

class SqliteDatabase;

class SqliteSession final : public Session {
  public:
    SqliteSession(SqliteDatabase& database, SqliteConnection& connection)
        : database_(database), connection_(connection) {}
    asio::awaitable<void> execute_script(std::string sql) override;
    std::string_view dialect() const override { return "sqlite"; }
    // Runs what is deferred (BEGIN IMMEDIATE at least) and then `sql` in one blocking job.
    asio::awaitable<void> script_with_deferred(std::string sql);
    // Forgets what was deferred and never run (a body that threw before its first query).
    void discard_deferred() { take_deferred(); }

  protected:
    asio::awaitable<Result> do_query(std::string sql, std::vector<Value> params) override;

  private:
    SqliteDatabase& database_;
    SqliteConnection& connection_;
};

class SqliteDatabase final : public Database, public std::enable_shared_from_this<SqliteDatabase> {
  public:
    SqliteDatabase(runtime::BlockingPool& pool, const PoolOptions& options,
                   std::unique_ptr<SqliteConnection> writer,
                   std::vector<std::unique_ptr<SqliteConnection>> readers)
        : pool_(pool),
          options_(options),
          writer_(std::move(writer)),
          writer_slot_(1, options.max_waiters),
          readers_(std::move(readers)) {
        if (!readers_.empty()) {
            reader_slots_ = std::make_unique<ConnectionSlots>(readers_.size(), options.max_waiters);
        }
    }

    std::string_view dialect() const override { return "sqlite"; }

    asio::awaitable<void> transaction(
        std::function<asio::awaitable<void>(Session&)> body) override {
        auto self = shared_from_this();
        co_await writer_slot_.acquire(options_.acquire_timeout);
        SlotGuard guard{writer_slot_};
        check_open();
        SqliteSession session(*this, *writer_);
        // BEGIN runs in the job of the body's first statement, and the statements the body
        // deferred in the job of the COMMIT: one hop to the blocking pool for all of them.
        session.defer("BEGIN IMMEDIATE");
        std::exception_ptr failure;
        try {
            co_await body(session);
            co_await session.script_with_deferred("COMMIT");
        } catch (...) {
            failure = std::current_exception();
        }
        if (failure) {
            session.discard_deferred();
            // A failed COMMIT may leave the transaction open; ROLLBACK closes it either way.
            try {
                co_await on_pool([&] {
                    if (!sqlite3_get_autocommit(writer_->db)) {
                        run_script(*writer_, "ROLLBACK", options_.query_timeout);
                    }
                });
            } catch (const std::exception&) {
            }
            std::rethrow_exception(failure);
        }
    }

    void close() override {
        closed_ = true;
        writer_slot_.close();
        if (reader_slots_) reader_slots_->close();
    }

    template <class F>
    asio::awaitable<std::invoke_result_t<F>> on_pool(F fn) {
        try {
            co_return co_await runtime::blocking(pool_, std::move(fn));
        } catch (const runtime::Overloaded&) {
            throw DatabaseError(Kind::Busy, "blocking pool is full");
        }
    }

    const PoolOptions& options() const { return options_; }

  protected:
    asio::awaitable<Result> do_query(std::string sql, std::vector<Value> params) override {
        auto self = shared_from_this();
        if (reader_slots_ && looks_like_read(sql)) {
            co_await reader_slots_->acquire(options_.acquire_timeout);
            SlotGuard guard{*reader_slots_};
            check_open();
            auto connection = take_reader();
            std::optional<Result> result;
            std::exception_ptr failure;
            try {
                result = co_await on_pool([&] {
                    return run_statement(*connection, sql, params, true, options_.query_timeout);
                });
            } catch (...) {
                failure = std::current_exception();
            }
            return_reader(std::move(connection));
            if (failure) std::rethrow_exception(failure);
            if (result) co_return std::move(*result);
        }
        co_await writer_slot_.acquire(options_.acquire_timeout);
        SlotGuard guard{writer_slot_};
        check_open();
        co_return *co_await on_pool(
            [&] { return run_statement(*writer_, sql, params, false, options_.query_timeout); });
    }

  private:
    struct SlotGuard {
        ConnectionSlots& slots;
        explicit SlotGuard(ConnectionSlots& taken) : slots(taken) {}
        SlotGuard(const SlotGuard&) = delete;
        SlotGuard& operator=(const SlotGuard&) = delete;
        ~SlotGuard() { slots.release(); }
    };

    void check_open() const {
        if (closed_) throw DatabaseError(Kind::ConnectionLost, "database is closed");
    }

    std::unique_ptr<SqliteConnection> take_reader() {
        std::lock_guard lock(readers_mutex_);
        auto connection = std::move(readers_.back());
        readers_.pop_back();
        return connection;
    }

    void return_reader(std::unique_ptr<SqliteConnection> connection) {
        std::lock_guard lock(readers_mutex_);
        readers_.push_back(std::move(connection));
    }

    runtime::BlockingPool& pool_;
    PoolOptions options_;
    std::unique_ptr<SqliteConnection> writer_;
    ConnectionSlots writer_slot_;
    std::mutex readers_mutex_;
    std::vector<std::unique_ptr<SqliteConnection>> readers_;
    std::unique_ptr<ConnectionSlots> reader_slots_;
    std::atomic<bool> closed_{false};
};

asio::awaitable<void> SqliteSession::execute_script(std::string sql) {
    co_await script_with_deferred(std::move(sql));
}

asio::awaitable<void> SqliteSession::script_with_deferred(std::string sql) {
    auto timeout = database_.options().query_timeout;
    auto deferred = take_deferred();
    co_await database_.on_pool([&] {
        for (const auto& statement : deferred) {
            run_statement(connection_, statement.sql, statement.params, false, timeout);
        }
        run_script(connection_, sql, timeout);
    });
}

asio::awaitable<Result> SqliteSession::do_query(std::string sql, std::vector<Value> params) {
    auto timeout = database_.options().query_timeout;
    auto deferred = take_deferred();
    co_return *co_await database_.on_pool([&] {
        for (const auto& statement : deferred) {
            run_statement(connection_, statement.sql, statement.params, false, timeout);
        }
        return run_statement(connection_, sql, params, false, timeout);
    });
}

}  // namespace

Expected<std::shared_ptr<Database>, std::string> open_sqlite(const std::string& path,
                                                             runtime::BlockingPool& pool,
                                                             const PoolOptions& options) {
    if (path.empty()) return unexpected(std::string("sqlite: URL needs a path or :memory:"));
    try {
        auto writer = open_connection(path, false, options);
        std::vector<std::unique_ptr<SqliteConnection>> readers;
        // An in-memory database exists once per connection, so it gets the writer only.
        if (path != ":memory:") {
            for (int i = 1; i < options.max_connections; ++i) {
                readers.push_back(open_connection(path, true, options));
            }
        }
        return std::shared_ptr<Database>(
            std::make_shared<SqliteDatabase>(pool, options, std::move(writer), std::move(readers)));
    } catch (const DatabaseError& error) {
        return unexpected(std::string(error.what()));
    }
}

}  // namespace aether::platform::sql::detail
