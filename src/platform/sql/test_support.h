// Test helpers shared by the sql tests: one fixture that opens either driver.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "platform/runtime/blocking_pool.h"
#include "platform/sql/database.h"

// ASSERT_EQ for coroutine bodies (gtest's ASSERT uses `return`).
#define CO_ASSERT_EQ(a, b)            \
    do {                              \
        EXPECT_EQ(a, b);              \
        if (!((a) == (b))) co_return; \
    } while (false)

namespace aether::platform::sql::testing {

enum class Backend { kSqlite, kPostgres };

inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
    return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

class SqlTestBase {
  protected:
    // Returns an empty string (after recording a failure) when PostgreSQL is not configured.
    std::string url_for(Backend backend) {
        if (backend == Backend::kPostgres) {
            const char* url = std::getenv("AETHER_TEST_POSTGRES_URL");
            if (url == nullptr || *url == '\0') {
                ADD_FAILURE() << "AETHER_TEST_POSTGRES_URL is not set: run through ctest, or "
                                 "`scripts/pg-test-server exec DIR -- platform_sql_test`";
                return {};
            }
            return url;
        }
        if (directory_.empty()) {
            std::random_device random;
            directory_ = std::filesystem::temp_directory_path() /
                         ("aether-sql-test-" + std::to_string(random()));
            std::filesystem::create_directories(directory_);
        }
        return "sqlite:" + (directory_ / "test.db").string();
    }

    ~SqlTestBase() {
        if (!directory_.empty()) std::filesystem::remove_all(directory_);
    }

    std::shared_ptr<Database> open_database(Backend backend, PoolOptions options = {}) {
        auto url = url_for(backend);
        if (url.empty()) return nullptr;
        auto database = open(url, io_.get_executor(), pool_, options);
        if (!database) {
            ADD_FAILURE() << "open failed: " << database.error();
            return nullptr;
        }
        return *database;
    }

    // Runs a coroutine to completion on io_ (with `threads` threads) and returns its result.
    template <class T>
    T run(asio::awaitable<T> coroutine, int threads = 1) {
        auto future = asio::co_spawn(io_, std::move(coroutine), asio::use_future);
        std::vector<std::thread> extra;
        for (int i = 1; i < threads; ++i) extra.emplace_back([this] { io_.run(); });
        io_.run();
        for (auto& thread : extra) thread.join();
        io_.restart();
        return future.get();
    }

    asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
        asio::steady_timer timer(co_await asio::this_coro::executor, duration);
        co_await timer.async_wait(asio::use_awaitable);
    }

    asio::io_context io_;
    runtime::BlockingPool pool_{4, 512, "sql-test"};
    std::filesystem::path directory_;
};

}  // namespace aether::platform::sql::testing
