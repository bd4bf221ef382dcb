// String-keyed tables split into shards by the key's hash, looked up with that hash computed
// once: std::unordered_map::find(key) hashes the key again after shard_for() did, which for a
// table hit on every request (verified tokens, rate-limit counters) was a second hash each time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace aether::platform {

// A key and its hash, for find() on a table whose hasher is PrehashedHash.
struct Prehashed {
    std::string_view text;
    std::size_t hash;
};

// Hashes a std::string key with `Hash` (on insertion and rehashing) and takes a Prehashed key's
// hash as it is. `Hash` must be the function that computed that hash.
template <class Hash>
struct PrehashedHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const { return Hash{}(text); }
    std::size_t operator()(const Prehashed& key) const { return key.hash; }
    Prehashed prehash(std::string_view text) const { return {text, Hash{}(text)}; }
};

struct PrehashedEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
    bool operator()(const Prehashed& a, std::string_view b) const { return a.text == b; }
    bool operator()(std::string_view a, const Prehashed& b) const { return a == b.text; }
};

}  // namespace aether::platform
