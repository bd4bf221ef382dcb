// The socket calls Asio makes on every request, without glibc's cancellation wrappers.
//
// glibc's recv, send, recvmsg, sendmsg and epoll_wait are thread cancellation points: in a
// process with more than one thread each call switches the thread to asynchronous cancellation
// before the system call and back after it, two atomic operations on the thread's cancellation
// state. Aether never cancels a thread (std::thread has no way to), so that work buys nothing,
// and on a proxied request (five of these calls) it was 1.6% of the gateway's CPU time.
//
// Defined in the executable, these take precedence over libc's for every caller in it (Asio,
// the HTTP client's pool check, and shared libraries that call them); each is the same system
// call with the same arguments, result and errno. glibc's own internal uses are unaffected.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

extern "C" {

ssize_t recv(int socket, void* buffer, std::size_t length, int flags) {
    return syscall(SYS_recvfrom, socket, buffer, length, flags, nullptr, nullptr);
}

ssize_t recvmsg(int socket, struct msghdr* message, int flags) {
    return syscall(SYS_recvmsg, socket, message, flags);
}

ssize_t send(int socket, const void* buffer, std::size_t length, int flags) {
    return syscall(SYS_sendto, socket, buffer, length, flags, nullptr, 0);
}

ssize_t sendmsg(int socket, const struct msghdr* message, int flags) {
    return syscall(SYS_sendmsg, socket, message, flags);
}

int epoll_wait(int epoll, struct epoll_event* events, int max_events, int timeout) {
    return static_cast<int>(syscall(SYS_epoll_wait, epoll, events, max_events, timeout));
}

}  // extern "C"
