// Memory on the caller's stack for JSON that lives only while it is built and serialized, or
// parsed and read.
#pragma once

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/storage_ptr.hpp>
#include <cstddef>

namespace aether::platform::json {

// Values built with storage() take their keys, strings and containers from a buffer inside the
// arena (the heap once it is full) and free nothing until the arena goes: one allocation per
// member becomes none. Put an arena in a plain function, not a coroutine: a coroutine's locals
// live in its frame, which Asio recycles only up to 1020 bytes.
template <std::size_t Bytes>
class StackArena {
  public:
    StackArena() = default;
    StackArena(const StackArena&) = delete;
    StackArena& operator=(const StackArena&) = delete;

    boost::json::storage_ptr storage() { return boost::json::storage_ptr(&resource_); }

  private:
    alignas(std::max_align_t) unsigned char scratch_[Bytes];
    boost::json::monotonic_resource resource_{scratch_, Bytes};
};

}  // namespace aether::platform::json
