// Admission control for the connection pools: waiters queue in order and time out on their own.
#include "platform/sql/connection_slots.h"

#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

#include "platform/sql/database.h"

namespace aether::platform::sql::detail {

namespace {

enum Outcome : int { kGranted, kTimedOut, kClosed, kBusy };

}  // namespace

struct ConnectionSlots::Waiter {
    explicit Waiter(asio::any_io_executor executor) : executor(executor), timer(executor) {}
    asio::any_io_executor executor;
    asio::steady_timer timer;
    // optional + emplace: Boost 1.81's any_completion_handler move-assignment recurses forever.
    std::optional<asio::any_completion_handler<void(int)>> handler;

    asio::any_completion_handler<void(int)> take() {
        auto taken = std::move(*handler);
        handler.reset();
        return taken;
    }
};

namespace {

// Completes a parked waiter on its own executor (never inline, so release() cannot re-enter).
void complete(const asio::any_io_executor& executor,
              asio::any_completion_handler<void(int)> handler, int outcome) {
    asio::post(executor,
               [handler = std::move(handler), outcome]() mutable { std::move(handler)(outcome); });
}

}  // namespace

asio::awaitable<void> ConnectionSlots::acquire(std::chrono::milliseconds timeout) {
    auto executor = co_await asio::this_coro::executor;
    int outcome = co_await asio::async_initiate<decltype(asio::use_awaitable), void(int)>(
        [this, &executor, timeout](auto handler) {
            auto finish = [&](int value) {
                asio::post(executor, asio::append(std::move(handler), value));
            };
            std::unique_lock lock(mutex_);
            if (closed_) return finish(kClosed);
            if (available_ > 0) {
                --available_;
                return finish(kGranted);
            }
            if (waiters_.size() >= max_waiters_) return finish(kBusy);
            auto waiter = std::make_shared<Waiter>(executor);
            waiter->handler.emplace(std::move(handler));
            waiters_.push_back(waiter);
            waiter->timer.expires_after(timeout);
            // The timer is only touched under mutex_, so release() may cancel it from any thread.
            waiter->timer.async_wait([this, waiter](const boost::system::error_code&) {
                std::unique_lock lock(mutex_);
                if (!waiter->handler) return;
                std::erase(waiters_, waiter);
                auto pending = waiter->take();
                lock.unlock();
                complete(waiter->executor, std::move(pending), kTimedOut);
            });
        },
        asio::use_awaitable);
    switch (outcome) {
        case kGranted:
            co_return;
        case kTimedOut:
            throw DatabaseError(DatabaseError::Kind::Timeout,
                                "timed out waiting for a database connection");
        case kClosed:
            throw DatabaseError(DatabaseError::Kind::ConnectionLost, "database is closed");
        default:
            throw DatabaseError(DatabaseError::Kind::Busy,
                                "too many requests waiting for a database connection");
    }
}

void ConnectionSlots::release() {
    std::unique_lock lock(mutex_);
    while (!waiters_.empty()) {
        auto waiter = std::move(waiters_.front());
        waiters_.pop_front();
        if (!waiter->handler) continue;
        auto pending = waiter->take();
        waiter->timer.cancel();
        lock.unlock();
        complete(waiter->executor, std::move(pending), kGranted);
        return;
    }
    ++available_;
}

void ConnectionSlots::close() {
    std::unique_lock lock(mutex_);
    closed_ = true;
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& waiter : waiters) {
        if (!waiter->handler) continue;
        auto pending = waiter->take();
        waiter->timer.cancel();
        complete(waiter->executor, std::move(pending), kClosed);
    }
}

std::size_t ConnectionSlots::waiters() const {
    std::lock_guard lock(mutex_);
    return waiters_.size();
}

}  // namespace aether::platform::sql::detail
