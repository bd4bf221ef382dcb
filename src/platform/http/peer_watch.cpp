// The HTTP client's watch over its pooled connections' peers (peer_watch.h).
#include "platform/http/peer_watch.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <utility>

namespace aether::platform::http::detail {

PeerWatch::Entry::Entry(Entry&& other) noexcept
    : watch_(std::exchange(other.watch_, nullptr)), slot_(other.slot_) {}

PeerWatch::Entry& PeerWatch::Entry::operator=(Entry&& other) noexcept {
    if (this != &other) {
        if (watch_ != nullptr) watch_->forget(slot_);
        watch_ = std::exchange(other.watch_, nullptr);
        slot_ = other.slot_;
    }
    return *this;
}

PeerWatch::Entry::~Entry() {
    if (watch_ != nullptr) watch_->forget(slot_);
}

bool PeerWatch::Entry::peer_closed() const {
    return watch_ != nullptr && watch_->slots_[slot_].peer_closed;
}

void PeerWatch::Entry::read_done() {
    if (watch_ != nullptr) watch_->slots_[slot_].read_at_look = watch_->looks_;
}

bool PeerWatch::Entry::unread_input() const {
    if (watch_ == nullptr) return false;
    const Slot& state = watch_->slots_[slot_];
    return state.input_look > state.read_at_look;
}

PeerWatch::~PeerWatch() {
    if (epoll_ >= 0) ::close(epoll_);
}

PeerWatch::Entry PeerWatch::watch(int fd) {
    // Made at the first socket, so that a client that never connects holds no descriptor; one
    // that failed (descriptors exhausted) is tried again at the next.
    if (epoll_ < 0) epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) return {};
    std::uint32_t slot = 0;
    if (!free_slots_.empty()) {
        slot = free_slots_.back();
        free_slots_.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(slots_.size());
        slots_.emplace_back();
    }
    Slot& state = slots_[slot];
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    event.data.u64 = (std::uint64_t{state.generation} << 32) | slot;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) {
        free_slots_.push_back(slot);
        return {};
    }
    state.peer_closed = false;
    state.input_look = 0;
    state.read_at_look = looks_;
    return Entry(this, slot);
}

void PeerWatch::forget(std::uint32_t slot) {
    ++slots_[slot].generation;
    free_slots_.push_back(slot);
}

bool PeerWatch::look(Clock::time_point now) {
    if (epoll_ < 0) return false;
    if (now - looked_ < interval_) return true;
    constexpr int kBatch = 64;
    epoll_event events[kBatch];
    int ready = 0;
    ++looks_;
    do {
        ready = ::epoll_wait(epoll_, events, kBatch, 0);
        for (int i = 0; i < ready; ++i) {
            const auto slot = static_cast<std::uint32_t>(events[i].data.u64);
            const auto generation = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
            if (slot >= slots_.size()) continue;
            Slot& state = slots_[slot];
            if (state.generation != generation) continue;
            if ((events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
                state.peer_closed = true;
            }
            if ((events[i].events & EPOLLIN) != 0) state.input_look = looks_;
        }
    } while (ready == kBatch);
    if (ready < 0) return false;
    looked_ = now;
    return true;
}

}  // namespace aether::platform::http::detail
