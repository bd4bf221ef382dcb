#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <string>
#include <string_view>

namespace {

// A connected pair of stream sockets, closed at the end of the test.
class SocketCallsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, ends_.data()), 0);
    }
    void TearDown() override {
        for (int end : ends_) {
            if (end >= 0) ::close(end);
        }
    }
    int near() const { return ends_[0]; }
    int far() const { return ends_[1]; }
    void close_far() {
        ::close(ends_[1]);
        ends_[1] = -1;
    }

  private:
    std::array<int, 2> ends_{-1, -1};
};

const char* library_of(const void* function) {
    Dl_info info{};
    if (::dladdr(function, &info) == 0 || info.dli_fname == nullptr) return "";
    return info.dli_fname;
}

TEST_F(SocketCallsTest, TheExecutableDefinesTheSocketCallsInsteadOfLibc) {
    for (const void* function :
         {reinterpret_cast<const void*>(&::recv), reinterpret_cast<const void*>(&::send),
          reinterpret_cast<const void*>(&::recvmsg), reinterpret_cast<const void*>(&::sendmsg),
          reinterpret_cast<const void*>(&::epoll_wait)}) {
        EXPECT_EQ(std::string_view(library_of(function)).find("libc.so"), std::string_view::npos)
            << library_of(function);
    }
}

TEST_F(SocketCallsTest, SendAndReceiveCarryTheBytes) {
    ASSERT_EQ(::send(near(), "hello", 5, MSG_NOSIGNAL), 5);
    char buffer[16] = {};
    ASSERT_EQ(::recv(far(), buffer, sizeof buffer, 0), 5);
    EXPECT_EQ(std::string_view(buffer, 5), "hello");
}

TEST_F(SocketCallsTest, GatheredMessagesArriveWholeAndScatterInOrder) {
    char head[] = "GET / ";
    char tail[] = "HTTP/1.1";
    std::array<iovec, 2> out{iovec{head, 6}, iovec{tail, 8}};
    msghdr sent{};
    sent.msg_iov = out.data();
    sent.msg_iovlen = out.size();
    ASSERT_EQ(::sendmsg(near(), &sent, MSG_NOSIGNAL), 14);

    char first[4] = {};
    char second[32] = {};
    std::array<iovec, 2> in{iovec{first, sizeof first}, iovec{second, sizeof second}};
    msghdr received{};
    received.msg_iov = in.data();
    received.msg_iovlen = in.size();
    ASSERT_EQ(::recvmsg(far(), &received, 0), 14);
    EXPECT_EQ(std::string(first, 4) + std::string(second, 10), "GET / HTTP/1.1");
}

TEST_F(SocketCallsTest, FailuresReturnMinusOneWithTheKernelsErrno) {
    char byte = 0;
    errno = 0;
    EXPECT_EQ(::recv(far(), &byte, 1, MSG_PEEK | MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN);

    errno = 0;
    EXPECT_EQ(::recv(-1, &byte, 1, 0), -1);
    EXPECT_EQ(errno, EBADF);

    msghdr nothing{};
    errno = 0;
    EXPECT_EQ(::recvmsg(far(), &nothing, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN);

    close_far();
    errno = 0;
    EXPECT_EQ(::send(near(), "x", 1, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, EPIPE);
    errno = 0;
    EXPECT_EQ(::sendmsg(near(), &nothing, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, EPIPE);
    // The peer's close reads as the end of the stream, not an error.
    EXPECT_EQ(::recv(near(), &byte, 1, 0), 0);
}

TEST_F(SocketCallsTest, EpollWaitReportsTheReadySocketAndTimesOutWithoutOne) {
    const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
    ASSERT_GE(epoll, 0);
    epoll_event interest{};
    interest.events = EPOLLIN;
    interest.data.fd = far();
    ASSERT_EQ(::epoll_ctl(epoll, EPOLL_CTL_ADD, far(), &interest), 0);

    std::array<epoll_event, 4> events{};
    EXPECT_EQ(::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 0), 0);
    ASSERT_EQ(::send(near(), "x", 1, MSG_NOSIGNAL), 1);
    ASSERT_EQ(::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 1000), 1);
    EXPECT_EQ(events[0].data.fd, far());
    EXPECT_TRUE(events[0].events & EPOLLIN);

    errno = 0;
    EXPECT_EQ(::epoll_wait(-1, events.data(), 1, 0), -1);
    EXPECT_EQ(errno, EBADF);
    ::close(epoll);
}

}  // namespace
