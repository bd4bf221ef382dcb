// Writing to a socket without an asynchronous operation when the kernel takes the bytes at once.
// Internal to platform/http (the server and the client).
//
// An Asio operation that completes at once still posts its completion through the scheduler and
// resumes the coroutine from there: a request's answer costs a scheduler round, executor copies
// and an operation allocation. A small answer nearly always fits the socket's send buffer, so a
// non-blocking write_some sends it whole and the caller goes on; only the rest, when there is
// one, waits for the socket asynchronously.
#pragma once

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <cstddef>

namespace aether::platform::http::detail {

// Puts the socket in non-blocking mode for its synchronous calls (Asio's asynchronous ones are
// non-blocking whatever this says); send_now needs it, else write_some would wait.
inline void make_non_blocking(boost::asio::ip::tcp::socket& socket) {
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
}

// Sends what the socket takes now; the returned suffix is what is left (empty when all went).
// `ec` is set only for a real failure, not for a full send buffer.
template <class Buffers>
boost::beast::buffers_suffix<Buffers> send_now(boost::asio::ip::tcp::socket& socket,
                                               const Buffers& buffers,
                                               boost::system::error_code& ec) {
    boost::beast::buffers_suffix<Buffers> rest(buffers);
    const std::size_t sent = socket.write_some(buffers, ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) ec = {};
    rest.consume(sent);
    return rest;
}

}  // namespace aether::platform::http::detail
