#include "platform/http/peer_watch.h"

#include <sys/epoll.h>
#include <unistd.h>

namespace aether::platform::http::detail {

PeerWatch::~PeerWatch() {
    if (epoll_ >= 0) ::close(epoll_);
}

bool PeerWatch::watch(int fd, Mark& mark) {
    if (epoll_ < 0) {
        if (unavailable_) return false;
        epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epoll_ < 0) {
            unavailable_ = true;
            return false;
        }
    }
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    event.data.ptr = &mark;
    return ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) == 0;
}

void PeerWatch::look(Clock::time_point now) {
    if (epoll_ < 0 || now - looked_ < interval_) return;
    looked_ = now;
    ++looks_;
    constexpr int kBatch = 64;
    epoll_event events[kBatch];
    int ready = 0;
    do {
        ready = ::epoll_wait(epoll_, events, kBatch, 0);
        for (int i = 0; i < ready; ++i) {
            auto& mark = *static_cast<Mark*>(events[i].data.ptr);
            if ((events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) mark.closed = true;
            if ((events[i].events & EPOLLIN) != 0) mark.input_look = looks_;
        }
    } while (ready == kBatch);
}

}  // namespace aether::platform::http::detail
