#include "platform/shared_slot.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace aether::platform {
namespace {

TEST(SharedSlotTest, StartsEmptyOrWithItsValueAndReturnsTheLastStored) {
    SharedSlot<const int> empty;
    EXPECT_EQ(empty.load(), nullptr);
    SharedSlot<const int> slot(std::make_shared<const int>(1));
    EXPECT_EQ(*slot.load(), 1);
    slot.store(std::make_shared<const int>(2));
    EXPECT_EQ(*slot.load(), 2);
}

TEST(SharedSlotTest, AReaderKeepsWhatItLoadedAfterAReplacement) {
    SharedSlot<const int> slot(std::make_shared<const int>(1));
    auto held = slot.load();
    std::weak_ptr<const int> watch = held;
    slot.store(std::make_shared<const int>(2));
    EXPECT_EQ(*held, 1);
    held.reset();
    EXPECT_TRUE(watch.expired()) << "the slot no longer holds the replaced value";
}

// A value's fields are written before it is stored; readers on other threads must see them
// whole whatever they load. Run under ThreadSanitizer by `make unit-tsan`.
struct Snapshot {
    explicit Snapshot(int generation) : generation(generation), check(generation * 7) {}
    int generation;
    int check;
};

TEST(SharedSlotTest, ReadersOnOtherThreadsSeeWholeValuesWhileOneThreadReplacesThem) {
    SharedSlot<const Snapshot> slot(std::make_shared<const Snapshot>(0));
    std::atomic<bool> done{false};
    std::atomic<int> torn{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 3; ++i) {
        readers.emplace_back([&] {
            int last = 0;
            while (!done.load()) {
                auto current = slot.load();
                if (current->check != current->generation * 7 || current->generation < last) {
                    ++torn;
                }
                last = current->generation;
            }
        });
    }
    for (int generation = 1; generation <= 20000; ++generation) {
        slot.store(std::make_shared<const Snapshot>(generation));
    }
    done = true;
    for (auto& reader : readers) reader.join();
    EXPECT_EQ(torn.load(), 0);
    EXPECT_EQ(slot.load()->generation, 20000);
}

}  // namespace
}  // namespace aether::platform
