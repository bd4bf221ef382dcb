// PrehashedHash and PrehashedEqual: a table keyed by strings found by a key and its hash.
#include "platform/prehashed.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <unordered_map>

namespace aether::platform {
namespace {

using Hash = PrehashedHash<std::hash<std::string_view>>;
using Table = std::unordered_map<std::string, int, Hash, PrehashedEqual>;

TEST(PrehashedTest, AKeyIsFoundByItsTextOrWithItsHash) {
    Table table;
    for (int i = 0; i < 100; ++i) table.emplace("key-" + std::to_string(i), i);
    for (int i = 0; i < 100; ++i) {
        const std::string key = "key-" + std::to_string(i);
        const auto by_hash = table.find(Hash{}.prehash(key));
        ASSERT_NE(by_hash, table.end()) << key;
        EXPECT_EQ(by_hash->second, i);
        EXPECT_EQ(table.find(std::string_view(key)), by_hash);
    }
    EXPECT_EQ(table.find(Hash{}.prehash("key-100")), table.end());
}

TEST(PrehashedTest, AnEqualHashDoesNotMakeAnotherKeyEqual) {
    Table table;
    table.emplace("a", 1);
    const Prehashed a = Hash{}.prehash("a");
    EXPECT_NE(table.find(a), table.end());
    EXPECT_EQ(table.find(Prehashed{"b", a.hash}), table.end());
}

}  // namespace
}  // namespace aether::platform
