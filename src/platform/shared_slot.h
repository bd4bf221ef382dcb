// A shared_ptr that threads read and replace: a configuration snapshot swapped by reloads while
// every request reads it.
//
// Not std::atomic<std::shared_ptr<T>>: libstdc++ 12's load() drops its lock bit with a relaxed
// store, so its read of the pointer is not ordered before a writer's replacement of it.
// ThreadSanitizer reports that, and on a weakly ordered CPU the read may see the new pointer
// with the old one's reference count. That load takes a lock anyway, so a mutex costs the same.
#pragma once

#include <memory>
#include <mutex>
#include <utility>

namespace aether::platform {

template <typename T>
class SharedSlot {
  public:
    SharedSlot() = default;
    explicit SharedSlot(std::shared_ptr<T> value) : value_(std::move(value)) {}
    SharedSlot(const SharedSlot&) = delete;
    SharedSlot& operator=(const SharedSlot&) = delete;

    std::shared_ptr<T> load() const {
        std::lock_guard lock(mutex_);
        return value_;
    }

    // The previous value is released after the lock is dropped: destroying it may take long.
    void store(std::shared_ptr<T> next) {
        {
            std::lock_guard lock(mutex_);
            value_.swap(next);
        }
    }

  private:
    mutable std::mutex mutex_;
    std::shared_ptr<T> value_;
};

}  // namespace aether::platform
