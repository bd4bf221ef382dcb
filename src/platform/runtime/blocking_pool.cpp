// Implementation of the bounded blocking-work pool.
#include "platform/runtime/blocking_pool.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>

namespace aether::platform::runtime {
namespace {
std::atomic<BlockingPool*> g_default_pool{nullptr};
}

BlockingPool::BlockingPool(std::size_t threads, std::size_t queue_capacity, std::string name,
                           int nice_increment)
    : capacity_(queue_capacity), name_(std::move(name)), nice_increment_(nice_increment) {
    if (threads == 0) threads = 1;
    workers_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) {
        workers_.emplace_back([this] { work(); });
        std::string thread_name = (name_ + "-" + std::to_string(i)).substr(0, 15);
        pthread_setname_np(workers_.back().native_handle(), thread_name.c_str());
    }
}

BlockingPool::~BlockingPool() {
    stop();
    BlockingPool* self = this;
    g_default_pool.compare_exchange_strong(self, nullptr);
}

bool BlockingPool::try_submit(std::function<void()> job) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || queue_.size() >= capacity_) return false;
        queue_.push_back(std::move(job));
    }
    ready_.notify_one();
    return true;
}

void BlockingPool::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    ready_.notify_all();
    for (auto& worker : workers_) {
        if (worker.joinable()) worker.join();
    }
}

std::size_t BlockingPool::queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
}

std::size_t BlockingPool::busy() const {
    std::lock_guard lock(mutex_);
    return busy_;
}

BlockingPool* BlockingPool::default_pool() {
    return g_default_pool.load();
}
void BlockingPool::set_default_pool(BlockingPool* pool) {
    g_default_pool.store(pool);
}

void BlockingPool::work() {
    if (nice_increment_ != 0) {
        // Best effort: without the privilege to change it the pool still works at normal priority.
        (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice_increment_);
    }
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lock(mutex_);
            ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;
            job = std::move(queue_.front());
            queue_.pop_front();
            ++busy_;
        }
        job();
        std::lock_guard lock(mutex_);
        --busy_;
    }
}

}  // namespace aether::platform::runtime
