// A fixed pool of threads with a bounded queue for work that must not run on an IO thread
// (password hashing, SQLite, blocking client libraries). `co_await blocking(fn)` runs fn there.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

namespace aether::platform::runtime {

// Thrown into the awaiting coroutine when the pool's queue is full; the HTTP layer answers it
// with 503 and Retry-After instead of queueing without bound.
class Overloaded : public std::runtime_error {
  public:
    explicit Overloaded(int retry_after_seconds)
        : std::runtime_error("blocking pool queue is full"),
          retry_after_seconds_(retry_after_seconds) {}
    int retry_after_seconds() const { return retry_after_seconds_; }

  private:
    int retry_after_seconds_;
};

class BlockingPool {
  public:
    // nice_increment lowers the workers' scheduling priority (Linux per-thread nice), so that
    // hashing never delays the IO threads' answers when both share a core.
    BlockingPool(std::size_t threads, std::size_t queue_capacity, std::string name = "blocking",
                 int nice_increment = 0);
    ~BlockingPool();
    BlockingPool(const BlockingPool&) = delete;
    BlockingPool& operator=(const BlockingPool&) = delete;

    // Queues a job; false when the queue is at capacity or the pool is stopping.
    bool try_submit(std::function<void()> job);
    // Finishes queued jobs, then joins the threads. Idempotent.
    void stop();

    std::size_t threads() const { return workers_.size(); }
    std::size_t capacity() const { return capacity_; }
    std::size_t queued() const;
    std::size_t busy() const;

    // The process-wide pool that `blocking(fn)` uses; set once by the App.
    static BlockingPool* default_pool();
    static void set_default_pool(BlockingPool* pool);

  private:
    void work();

    std::size_t capacity_;
    std::string name_;
    int nice_increment_;
    mutable std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::function<void()>> queue_;
    std::size_t busy_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

namespace detail {

template <class R>
using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

template <class R>
using Outcome = std::variant<Stored<R>, std::exception_ptr>;

}  // namespace detail

namespace detail {

// Starts a job on the pool and completes the awaiting coroutine's handler on its own executor.
// A named type rather than a lambda: GCC 12 mishandles closures that cross into coroutines
// (copies that skip their captures' copy constructors; seen under valgrind as double frees).
template <class F>
struct BlockingInitiation {
    BlockingPool* pool;
    std::shared_ptr<F> fn;

    template <class Handler>
    void operator()(Handler handler) const {
        using R = std::invoke_result_t<F>;
        using Result = Outcome<R>;
        auto shared = std::make_shared<Handler>(std::move(handler));
        auto target = boost::asio::get_associated_executor(*shared);
        auto work = boost::asio::prefer(target, boost::asio::execution::outstanding_work.tracked);
        auto job = [shared, work, fn = fn]() {
            Result result{std::exception_ptr{}};
            try {
                if constexpr (std::is_void_v<R>) {
                    (*fn)();
                    result.template emplace<0>();
                } else {
                    result.template emplace<0>((*fn)());
                }
            } catch (...) {
                result.template emplace<1>(std::current_exception());
            }
            boost::asio::dispatch(work, [shared, result = std::move(result)]() mutable {
                (*shared)(std::move(result));
            });
        };
        if (!pool->try_submit(std::move(job))) {
            // post, not dispatch: completing inline would resume the coroutine inside its own
            // initiation.
            boost::asio::post(target, [shared]() mutable {
                (*shared)(Result{std::make_exception_ptr(Overloaded(1))});
            });
        }
    }
};

template <class R>
boost::asio::awaitable<R> unwrap(boost::asio::awaitable<Outcome<R>> pending) {
    Outcome<R> outcome = co_await std::move(pending);
    if (outcome.index() == 1) std::rethrow_exception(std::get<1>(outcome));
    if constexpr (!std::is_void_v<R>) co_return std::move(std::get<0>(outcome));
}

}  // namespace detail

// Runs fn on `pool` and resumes the calling coroutine on its own executor with fn's result (or
// its exception). Throws Overloaded when the queue is full.
template <class F>
boost::asio::awaitable<std::invoke_result_t<F>> blocking(BlockingPool& pool, F fn) {
    using R = std::invoke_result_t<F>;
    auto pending =
        boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(detail::Outcome<R>)>(
            detail::BlockingInitiation<F>{&pool, std::make_shared<F>(std::move(fn))},
            boost::asio::use_awaitable);
    return detail::unwrap<R>(std::move(pending));
}

// `co_await blocking(fn)` on the process-wide pool.
template <class F>
boost::asio::awaitable<std::invoke_result_t<F>> blocking(F fn) {
    return blocking(*BlockingPool::default_pool(), std::move(fn));
}

}  // namespace aether::platform::runtime
