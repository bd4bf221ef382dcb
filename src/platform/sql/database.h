// The Database interface every service uses: one API over the SQLite and PostgreSQL drivers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "platform/expected.h"

namespace aether::platform::runtime {
class BlockingPool;
}

namespace aether::platform::sql {

namespace asio = boost::asio;

// A parameter or a cell. Parameters are written $1, $2, ... in the SQL for both drivers.
using Value = std::variant<std::nullptr_t, std::int64_t, double, bool, std::string>;

// Failures of the database itself. The message never contains the query parameters (they may be
// secrets); the kind lets callers map a unique violation to 409 and Busy/Timeout to 503.
class DatabaseError : public std::runtime_error {
  public:
    enum class Kind { UniqueViolation, ForeignKey, Timeout, ConnectionLost, Busy, Other };

    DatabaseError(Kind kind, const std::string& message, std::string sqlstate = {})
        : std::runtime_error(message), kind_(kind), sqlstate_(std::move(sqlstate)) {}
    Kind kind() const { return kind_; }
    // The PostgreSQL SQLSTATE (or SQLite extended result code), empty when not applicable.
    const std::string& sqlstate() const { return sqlstate_; }

  private:
    Kind kind_;
    std::string sqlstate_;
};

std::string_view to_string(DatabaseError::Kind kind);

namespace detail {
template <class... Args>
std::vector<Value> make_params(Args&&... args) {
    std::vector<Value> params;
    params.reserve(sizeof...(Args));
    (params.emplace_back(std::forward<Args>(args)), ...);
    return params;
}
}  // namespace detail

// One result row. Cells hold typed values from SQLite and text from PostgreSQL; getters convert
// on access and throw DatabaseError (kind Other) for a missing column or an unconvertible value.
class Row {
  public:
    Row(std::shared_ptr<const std::vector<std::string>> columns, std::vector<Value> cells)
        : columns_(std::move(columns)), cells_(std::move(cells)) {}

    std::size_t size() const { return cells_.size(); }
    const std::vector<std::string>& columns() const { return *columns_; }
    // The index of a column by name; throws when there is none.
    std::size_t index_of(std::string_view name) const;
    const Value& raw(std::size_t index) const;

    bool is_null(std::size_t index) const;
    std::string get_string(std::size_t index) const;
    std::int64_t get_int(std::size_t index) const;
    double get_double(std::size_t index) const;
    bool get_bool(std::size_t index) const;

    bool is_null(std::string_view name) const { return is_null(index_of(name)); }
    std::string get_string(std::string_view name) const { return get_string(index_of(name)); }
    std::int64_t get_int(std::string_view name) const { return get_int(index_of(name)); }
    double get_double(std::string_view name) const { return get_double(index_of(name)); }
    bool get_bool(std::string_view name) const { return get_bool(index_of(name)); }

    // std::nullopt for NULL, the converted value otherwise.
    std::optional<std::string> get_optional_string(std::string_view name) const;
    std::optional<std::int64_t> get_optional_int(std::string_view name) const;
    std::optional<double> get_optional_double(std::string_view name) const;
    std::optional<bool> get_optional_bool(std::string_view name) const;

  private:
    std::shared_ptr<const std::vector<std::string>> columns_;
    std::vector<Value> cells_;
};

class Result {
  public:
    Result() = default;
    Result(std::vector<Row> rows, std::int64_t affected_rows)
        : rows_(std::move(rows)), affected_rows_(affected_rows) {}

    std::size_t size() const { return rows_.size(); }
    bool empty() const { return rows_.empty(); }
    const Row& operator[](std::size_t index) const { return rows_.at(index); }
    const std::vector<Row>& rows() const { return rows_; }
    auto begin() const { return rows_.begin(); }
    auto end() const { return rows_.end(); }
    // Rows changed by INSERT/UPDATE/DELETE; 0 for other statements.
    std::int64_t affected_rows() const { return affected_rows_; }

  private:
    std::vector<Row> rows_;
    std::int64_t affected_rows_ = 0;
};

// The statements of one transaction.
class Session {
  public:
    virtual ~Session() = default;
    asio::awaitable<Result> query(std::string sql, std::vector<Value> params = {}) {
        return do_query(std::move(sql), std::move(params));
    }
    template <class... Args>
    requires(sizeof...(Args) > 0 && (std::is_constructible_v<Value, Args&&> &&
                                     ...)) asio::awaitable<Result> query(std::string sql,
                                                                         Args&&... args) {
        return do_query(std::move(sql), detail::make_params(std::forward<Args>(args)...));
    }
    // Runs several ';'-separated statements without parameters (migrations, DDL).
    virtual asio::awaitable<void> execute_script(std::string sql) = 0;
    virtual std::string_view dialect() const = 0;

    // Queues a statement whose result is not needed. It runs with the next query, script or the
    // commit, in the same round trip: PostgreSQL pipelines them, SQLite runs them in the same
    // job. If it fails, that query or the commit throws its error and the transaction rolls back.
    void defer(std::string sql, std::vector<Value> params = {}) {
        deferred_.push_back({std::move(sql), std::move(params)});
    }
    template <class... Args>
    requires(sizeof...(Args) > 0 && (std::is_constructible_v<Value, Args&&> &&
                                     ...)) void defer(std::string sql, Args&&... args) {
        defer(std::move(sql), detail::make_params(std::forward<Args>(args)...));
    }

    struct Statement {
        std::string sql;
        std::vector<Value> params;
    };

  protected:
    virtual asio::awaitable<Result> do_query(std::string sql, std::vector<Value> params) = 0;
    // The deferred statements, oldest first; the driver runs them before what it runs next.
    std::vector<Statement> take_deferred() { return std::exchange(deferred_, {}); }

  private:
    std::vector<Statement> deferred_;
};

struct PoolOptions {
    int max_connections = 8;
    std::chrono::milliseconds acquire_timeout{5000};
    std::chrono::milliseconds query_timeout{10000};
    std::chrono::milliseconds connect_timeout{5000};
    // Coroutines allowed to wait for a connection; beyond it acquiring fails at once (Busy).
    std::size_t max_waiters = 1024;
};

class Database {
  public:
    virtual ~Database() = default;

    // "sqlite" or "postgres".
    virtual std::string_view dialect() const = 0;

    asio::awaitable<Result> query(std::string sql, std::vector<Value> params = {}) {
        return do_query(std::move(sql), std::move(params));
    }
    // query(sql, a, b, ...) binds the arguments to $1, $2, ... Prefer it inside co_await: GCC 12
    // rejects a braced list in a co_await expression ("array used as initializer").
    template <class... Args>
    requires(sizeof...(Args) > 0 && (std::is_constructible_v<Value, Args&&> &&
                                     ...)) asio::awaitable<Result> query(std::string sql,
                                                                         Args&&... args) {
        return do_query(std::move(sql), detail::make_params(std::forward<Args>(args)...));
    }
    // Runs body as a transaction: commits when body returns, rolls back and rethrows when it
    // throws. Inside body, use the Session: on SQLite a write through Database::query would wait
    // for the writer connection the transaction holds. On PostgreSQL the transaction takes a
    // connection at its first query; a body that only deferred writes takes none, and is
    // committed together with others like it in one round trip (its own implicit transaction
    // all the same), which can also fail with Busy or Timeout while it waits for that.
    virtual asio::awaitable<void> transaction(
        std::function<asio::awaitable<void>(Session&)> body) = 0;
    // True when a trivial query succeeds (readiness probes); never throws.
    virtual asio::awaitable<bool> ping();
    // Closes idle connections and fails later calls; connections in use close when released.
    virtual void close() = 0;

  protected:
    virtual asio::awaitable<Result> do_query(std::string sql, std::vector<Value> params) = 0;
};

// Opens a database from a URL: `sqlite:PATH`, `sqlite::memory:` or `postgresql://...` (also
// `postgres://`). SQLite work runs on `pool`; PostgreSQL sockets are driven on `executor` and
// its connections open lazily. Fails for an unknown scheme, a malformed URL or a SQLite file
// that cannot be opened.
Expected<std::shared_ptr<Database>, std::string> open(const std::string& url,
                                                      const asio::any_io_executor& executor,
                                                      runtime::BlockingPool& pool,
                                                      PoolOptions options = {});

}  // namespace aether::platform::sql
