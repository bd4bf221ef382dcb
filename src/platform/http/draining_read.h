// A socket read that tells Asio's reactor when it has emptied the socket.
// Internal to platform/http (the server's wait for the next request, the client's wait for an
// answer).
//
// Asio 1.81 tries every read on a socket before it waits: for a request the peer has not sent
// yet, that try is a system call that finds nothing (EAGAIN), and the read waits anyway. On a
// proxied request two of the gateway's seven system calls were such tries. The reactor can skip
// the try: it keeps per socket whether the last read found the socket empty, and then queues the
// next read at once, to run at epoll's next edge. Asio marks that only at end of stream. A TCP
// read that returns fewer bytes than it had room for has emptied the socket as well (nginx relies
// on the same), and the socket's edge-triggered registration turns any later arrival into a new
// event. This read reports a short read as "exhausted" from inside its perform step, which the
// reactor runs under the socket's lock, so an event between the read and the mark cannot be lost.
//
// Unless the peer's end of stream came with the last bytes: one edge announced both, the read
// took the bytes, and the next read would wait for an edge that never comes (a client that sends
// its request and shuts its side, an upstream that answers and closes). So the read asks the
// kernel what the socket still holds after it, end of stream included (TCP_INQ, which
// enable_draining_reads turns on for a socket), and marks only a socket that holds nothing. A
// reset that arrives with the last bytes is not counted there; the next write on the socket
// fails instead, or the read's own deadline ends the wait. nginx reads the same from
// EPOLLRDHUP, which Asio does not register.
//
// It uses Asio's reactor interface (boost::asio::detail), which has no stability promise: it is
// compiled only for the Boost release it was written against, with Asio's epoll reactor, and
// every other build gets a plain async_read_some. A handler with a connected cancellation slot
// gets the plain read too, which supports per-operation cancellation.
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>
#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define AETHER_HTTP_DRAINING_READ 1
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactive_socket_service.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_types.hpp>
#include <boost/asio/error.hpp>
#include <cerrno>
#else
#define AETHER_HTTP_DRAINING_READ 0
#endif

namespace aether::platform::http::detail {

#if AETHER_HTTP_DRAINING_READ

namespace draining {

namespace asio_detail = boost::asio::detail;
using boost::asio::ip::tcp;

// The socket's implementation and its service, which basic_socket keeps protected: a pointer to
// a protected member named through a derived class is valid on any basic_socket. Never
// constructed.
struct SocketInternals : tcp::socket {
    static auto& of(tcp::socket& socket) { return socket.*(&SocketInternals::impl_); }
};
struct ServiceInternals : asio_detail::reactive_socket_service<tcp> {
    static auto start() { return &ServiceInternals::start_op; }
};

class ReadOp : public asio_detail::reactor_op {
  public:
    ReadOp(asio_detail::socket_type socket, boost::asio::mutable_buffer buffer, func_type complete)
        : reactor_op(boost::system::error_code(), &ReadOp::perform_read, complete),
          socket_(socket),
          buffer_(buffer) {}

  private:
    // As Asio's stream read (socket_ops::non_blocking_recv1), with TCP_INQ's answer besides.
    static status perform_read(reactor_op* base) {
        auto* op = static_cast<ReadOp*>(base);
        iovec room{op->buffer_.data(), op->buffer_.size()};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
        msghdr message{};
        message.msg_iov = &room;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        ssize_t got = 0;
        do {
            got = ::recvmsg(op->socket_, &message, 0);
        } while (got < 0 && errno == EINTR);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
            op->ec_ = boost::system::error_code(errno, boost::asio::error::get_system_category());
            op->bytes_transferred_ = 0;
            return done;
        }
        op->bytes_transferred_ = static_cast<std::size_t>(got);
        if (got == 0) {
            op->ec_ = boost::asio::error::eof;
            return done_and_exhausted;
        }
        return op->bytes_transferred_ < op->buffer_.size() && holds_nothing_more(message)
                   ? done_and_exhausted
                   : done;
    }

    // TCP_INQ's count of the bytes left after the read, the end of stream counting as one; a
    // socket without TCP_INQ says nothing, and counts as not emptied.
    static bool holds_nothing_more(msghdr& message) {
        for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
             header = CMSG_NXTHDR(&message, header)) {
            if (header->cmsg_level != SOL_TCP || header->cmsg_type != TCP_CM_INQ) continue;
            int left = 0;
            std::memcpy(&left, CMSG_DATA(header), sizeof left);
            return left == 0;
        }
        return false;
    }

    asio_detail::socket_type socket_;
    boost::asio::mutable_buffer buffer_;
};

// The read with its handler, allocated and completed as Asio's own socket operations are.
template <class Handler, class IoExecutor>
class HandlerReadOp : public ReadOp {
  public:
    BOOST_ASIO_DEFINE_HANDLER_PTR(HandlerReadOp);

    HandlerReadOp(asio_detail::socket_type socket, boost::asio::mutable_buffer buffer,
                  Handler& handler, const IoExecutor& io_executor)
        : ReadOp(socket, buffer, &HandlerReadOp::complete),
          handler_(std::move(handler)),
          work_(handler_, io_executor) {}

  private:
    static void complete(void* owner, asio_detail::operation* base,
                         const boost::system::error_code& /*ec*/, std::size_t /*bytes*/) {
        auto* op = static_cast<HandlerReadOp*>(base);
        ptr owned = {std::addressof(op->handler_), op, op};
        asio_detail::handler_work<Handler, IoExecutor> work(std::move(op->work_));
        // The handler leaves the operation's memory before the memory is freed: a part of the
        // handler may own it.
        asio_detail::binder2<Handler, boost::system::error_code, std::size_t> bound(
            op->handler_, op->ec_, op->bytes_transferred_);
        owned.h = std::addressof(bound.handler_);
        owned.reset();
        if (owner) {
            asio_detail::fenced_block block(asio_detail::fenced_block::half);
            work.complete(bound, bound.handler_);
        }
    }

    Handler handler_;
    asio_detail::handler_work<Handler, IoExecutor> work_;
};

struct Initiation {
    template <class Handler>
    void operator()(Handler&& handler, tcp::socket* socket,
                    boost::asio::mutable_buffer buffer) const {
        if (boost::asio::get_associated_cancellation_slot(handler).is_connected()) {
            socket->async_read_some(buffer, std::forward<Handler>(handler));
            return;
        }
        auto& object = SocketInternals::of(*socket);
        auto& implementation = object.get_implementation();
        using Executor = std::decay_t<decltype(object.get_executor())>;
        using Op = HandlerReadOp<std::decay_t<Handler>, Executor>;
        const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
        typename Op::ptr owned = {std::addressof(handler), Op::ptr::allocate(handler), nullptr};
        owned.p = new (owned.v) Op(implementation.socket_, buffer, handler, object.get_executor());
        (object.get_service().*ServiceInternals::start())(
            implementation, asio_detail::reactor::read_op, owned.p, is_continuation,
            /*is_non_blocking=*/true, /*noop=*/buffer.size() == 0);
        owned.v = owned.p = nullptr;
    }
};

}  // namespace draining

// Lets async_read_some_draining tell when it has emptied the socket; without it, the reads
// work as Asio's own. Once per socket, after it is connected or accepted.
inline void enable_draining_reads(boost::asio::ip::tcp::socket& socket) {
    const int on = 1;
    (void)::setsockopt(socket.native_handle(), SOL_TCP, TCP_INQ, &on, sizeof on);
}

// As socket.async_read_some(buffer, token), completing the same way; a read that leaves the
// socket empty makes the next read on it wait for the peer without trying the socket first.
template <class Token>
auto async_read_some_draining(boost::asio::ip::tcp::socket& socket,
                              boost::asio::mutable_buffer buffer, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        draining::Initiation{}, token, &socket, buffer);
}

#else

inline void enable_draining_reads(boost::asio::ip::tcp::socket& /*socket*/) {}

template <class Token>
auto async_read_some_draining(boost::asio::ip::tcp::socket& socket,
                              boost::asio::mutable_buffer buffer, Token&& token) {
    return socket.async_read_some(buffer, std::forward<Token>(token));
}

#endif

}  // namespace aether::platform::http::detail
