// Tests for the bounded blocking pool and the `blocking(fn)` awaitable.
#include "platform/runtime/blocking_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <future>
#include <thread>

namespace aether::platform::runtime {
namespace {

namespace asio = boost::asio;

template <class T>
T run_coroutine(asio::io_context& io, asio::awaitable<T> coroutine) {
    auto future = asio::co_spawn(io, std::move(coroutine), asio::use_future);
    io.run();
    io.restart();
    return future.get();
}

TEST(BlockingPool, ReturnsTheResultOnTheCallersThread) {
    BlockingPool pool(2, 8);
    asio::io_context io;
    auto io_thread = std::this_thread::get_id();
    auto [value, ran_elsewhere,
          resumed_here] = run_coroutine(io, [&]() -> asio::awaitable<std::tuple<int, bool, bool>> {
        std::thread::id worker;
        int value = co_await blocking(pool, [&] {
            worker = std::this_thread::get_id();
            return 42;
        });
        co_return std::tuple{value, worker != io_thread, std::this_thread::get_id() == io_thread};
    }());
    EXPECT_EQ(value, 42);
    EXPECT_TRUE(ran_elsewhere);
    EXPECT_TRUE(resumed_here);
}

TEST(BlockingPool, PropagatesExceptions) {
    BlockingPool pool(1, 8);
    asio::io_context io;
    bool caught = run_coroutine(io, [&]() -> asio::awaitable<bool> {
        try {
            co_await blocking(pool, []() -> int { throw std::invalid_argument("bad"); });
        } catch (const std::invalid_argument& error) {
            co_return std::string(error.what()) == "bad";
        }
        co_return false;
    }());
    EXPECT_TRUE(caught);
}

TEST(BlockingPool, VoidJobsComplete) {
    BlockingPool pool(1, 8);
    asio::io_context io;
    std::atomic<int> counter{0};
    run_coroutine(io, [&]() -> asio::awaitable<int> {
        co_await blocking(pool, [&] { counter += 1; });
        co_await blocking(pool, [&] { counter += 1; });
        co_return 0;
    }());
    EXPECT_EQ(counter.load(), 2);
}

TEST(BlockingPool, FullQueueThrowsOverloaded) {
    BlockingPool pool(1, 1);
    std::promise<void> release;
    auto released = release.get_future().share();
    std::promise<void> started;
    ASSERT_TRUE(pool.try_submit([&] {
        started.set_value();
        released.wait();
    }));
    started.get_future().wait();
    ASSERT_TRUE(pool.try_submit([] {}));  // fills the single queue slot
    EXPECT_FALSE(pool.try_submit([] {}));

    asio::io_context io;
    auto future = asio::co_spawn(io, blocking(pool, [] { return 1; }), asio::use_future);
    io.run();
    EXPECT_THROW(future.get(), Overloaded);
    release.set_value();
    pool.stop();
}

TEST(BlockingPool, StopFinishesQueuedWork) {
    std::atomic<int> done{0};
    {
        BlockingPool pool(2, 100);
        for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.try_submit([&] { done += 1; }));
        pool.stop();
        EXPECT_FALSE(pool.try_submit([] {}));
    }
    EXPECT_EQ(done.load(), 50);
}

}  // namespace
}  // namespace aether::platform::runtime
