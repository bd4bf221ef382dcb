// Pieces the server's and the client's own Beast parsers share (RequestParser, StreamParser).
// Internal to platform/http.
#pragma once

#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <cstring>
#include <string_view>

namespace aether::platform::http::detail {

// The reader's buffer a streamed body is copied into, one read at a time: what Beast's
// buffer_body does for Beast's own parsers.
class BodyBuffer {
  public:
    void set(char* data, std::size_t size) {
        data_ = data;
        room_ = size;
    }
    // What is left of the buffer after a read.
    std::size_t room() const { return room_; }

    // Takes what fits of `body`; need_buffer when not all of it did, or no buffer is set.
    std::size_t take(std::string_view body, boost::system::error_code& ec) {
        if (data_ == nullptr) {
            ec = boost::beast::http::error::need_buffer;
            return 0;
        }
        const std::size_t taken = std::min(room_, body.size());
        std::memcpy(data_, body.data(), taken);
        data_ += taken;
        room_ -= taken;
        if (taken < body.size()) ec = boost::beast::http::error::need_buffer;
        return taken;
    }

  private:
    char* data_ = nullptr;
    std::size_t room_ = 0;
};

// Parses as much of a message head as the buffer holds. True when the head is complete or
// failed (`ec`), false when more must be read. The head usually arrives whole with the first
// read: parsed here, it costs no asynchronous operation (Beast's read_header posts its
// completion when it finds the head already buffered).
template <bool isRequest>
bool parse_buffered_head(boost::beast::http::basic_parser<isRequest>& parser,
                         boost::beast::flat_buffer& buffer, boost::system::error_code& ec) {
    while (!parser.is_header_done()) {
        if (buffer.size() == 0) return false;
        const std::size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec == boost::beast::http::error::need_more) {
            ec = {};
            return false;
        }
        if (ec) return true;
        if (used == 0) return false;
    }
    return true;
}

}  // namespace aether::platform::http::detail
