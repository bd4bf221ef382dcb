// Row conversions shared by both drivers, and open(): the URL decides the driver.
#include "platform/sql/database.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "platform/sql/drivers.h"

namespace aether::platform::sql {

namespace {

[[noreturn]] void conversion_error(const Row& row, std::size_t index, std::string_view wanted) {
    throw DatabaseError(DatabaseError::Kind::Other,
                        "column '" + row.columns().at(index) + "' is not " + std::string(wanted));
}

std::string format_double(double value) {
    char buffer[64];
    auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, end);
}

}  // namespace

std::string_view to_string(DatabaseError::Kind kind) {
    switch (kind) {
        case DatabaseError::Kind::UniqueViolation:
            return "unique_violation";
        case DatabaseError::Kind::ForeignKey:
            return "foreign_key_violation";
        case DatabaseError::Kind::Timeout:
            return "timeout";
        case DatabaseError::Kind::ConnectionLost:
            return "connection_lost";
        case DatabaseError::Kind::Busy:
            return "busy";
        case DatabaseError::Kind::Other:
            break;
    }
    return "other";
}

std::size_t Row::index_of(std::string_view name) const {
    for (std::size_t i = 0; i < columns_->size(); ++i) {
        if ((*columns_)[i] == name) return i;
    }
    throw DatabaseError(DatabaseError::Kind::Other,
                        "result has no column '" + std::string(name) + "'");
}

const Value& Row::raw(std::size_t index) const {
    if (index >= cells_.size()) {
        throw DatabaseError(DatabaseError::Kind::Other,
                            "column index " + std::to_string(index) + " is out of range");
    }
    return cells_[index];
}

bool Row::is_null(std::size_t index) const {
    return std::holds_alternative<std::nullptr_t>(raw(index));
}

std::string Row::get_string(std::size_t index) const {
    const Value& cell = raw(index);
    if (auto* text = std::get_if<std::string>(&cell)) return *text;
    if (auto* number = std::get_if<std::int64_t>(&cell)) return std::to_string(*number);
    if (auto* real = std::get_if<double>(&cell)) return format_double(*real);
    if (auto* flag = std::get_if<bool>(&cell)) return *flag ? "true" : "false";
    conversion_error(*this, index, "a string (it is NULL)");
}

std::int64_t Row::get_int(std::size_t index) const {
    const Value& cell = raw(index);
    if (auto* number = std::get_if<std::int64_t>(&cell)) return *number;
    if (auto* flag = std::get_if<bool>(&cell)) return *flag ? 1 : 0;
    if (auto* real = std::get_if<double>(&cell)) {
        if (std::trunc(*real) == *real && std::abs(*real) < 9.2e18) {
            return static_cast<std::int64_t>(*real);
        }
    }
    if (auto* text = std::get_if<std::string>(&cell)) {
        std::int64_t value = 0;
        auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
        if (error == std::errc() && end == text->data() + text->size()) return value;
    }
    conversion_error(*this, index, "an integer");
}

double Row::get_double(std::size_t index) const {
    const Value& cell = raw(index);
    if (auto* real = std::get_if<double>(&cell)) return *real;
    if (auto* number = std::get_if<std::int64_t>(&cell)) return static_cast<double>(*number);
    if (auto* text = std::get_if<std::string>(&cell)) {
        double value = 0;
        auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
        if (error == std::errc() && end == text->data() + text->size()) return value;
    }
    conversion_error(*this, index, "a number");
}

bool Row::get_bool(std::size_t index) const {
    const Value& cell = raw(index);
    if (auto* flag = std::get_if<bool>(&cell)) return *flag;
    if (auto* number = std::get_if<std::int64_t>(&cell)) {
        if (*number == 0 || *number == 1) return *number == 1;
    }
    if (auto* text = std::get_if<std::string>(&cell)) {
        if (*text == "t" || *text == "true" || *text == "1") return true;
        if (*text == "f" || *text == "false" || *text == "0") return false;
    }
    conversion_error(*this, index, "a boolean");
}

std::optional<std::string> Row::get_optional_string(std::string_view name) const {
    auto index = index_of(name);
    if (is_null(index)) return std::nullopt;
    return get_string(index);
}

std::optional<std::int64_t> Row::get_optional_int(std::string_view name) const {
    auto index = index_of(name);
    if (is_null(index)) return std::nullopt;
    return get_int(index);
}

std::optional<double> Row::get_optional_double(std::string_view name) const {
    auto index = index_of(name);
    if (is_null(index)) return std::nullopt;
    return get_double(index);
}

std::optional<bool> Row::get_optional_bool(std::string_view name) const {
    auto index = index_of(name);
    if (is_null(index)) return std::nullopt;
    return get_bool(index);
}

Expected<std::shared_ptr<Database>, std::string> open(const std::string& url,
                                                      const asio::any_io_executor& executor,
                                                      runtime::BlockingPool& pool,
                                                      PoolOptions options) {
    if (options.max_connections < 1) return unexpected(std::string("max_connections must be >= 1"));
    std::string_view view(url);
    if (view.starts_with("sqlite:")) {
        return detail::open_sqlite(std::string(view.substr(7)), pool, options);
    }
    if (view.starts_with("postgresql://") || view.starts_with("postgres://")) {
        return detail::open_postgres(url, executor, options);
    }
    return unexpected(
        std::string("unsupported database URL scheme (want sqlite: or postgresql://)"));
}

asio::awaitable<bool> Database::ping() {
    try {
        auto result = co_await query("SELECT 1");
        co_return result.size() == 1;
    } catch (const std::exception&) {
        co_return false;
    }
}

}  // namespace aether::platform::sql
