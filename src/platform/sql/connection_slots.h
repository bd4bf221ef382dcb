// An async counting semaphore with a timeout and a bounded waiter queue: the admission control
// in front of each connection pool (internal to the drivers).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>

namespace aether::platform::sql::detail {

class ConnectionSlots {
  public:
    ConnectionSlots(std::size_t slots, std::size_t max_waiters)
        : available_(slots), max_waiters_(max_waiters) {}

    // Takes a slot; throws DatabaseError Busy when max_waiters coroutines already wait and
    // Timeout when none frees up within `timeout`.
    boost::asio::awaitable<void> acquire(std::chrono::milliseconds timeout);
    // Returns a slot, handing it to the oldest waiter if there is one.
    void release();
    // Fails every waiter with ConnectionLost; later acquires fail the same way.
    void close();

    std::size_t waiters() const;

  private:
    struct Waiter;

    mutable std::mutex mutex_;
    std::size_t available_;
    std::size_t max_waiters_;
    bool closed_ = false;
    std::deque<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace aether::platform::sql::detail
