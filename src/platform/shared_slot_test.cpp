// SharedSlot: loads and replacements, values kept by readers, and concurrent use.
#include "platform/shared_slot.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
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

// A value whose destructor loads from the slot on another thread, as a snapshot's teardown
// might reach code that reads the current configuration.
struct LoadsWhenDestroyed {
    std::shared_ptr<SharedSlot<const LoadsWhenDestroyed>> slot;
    std::shared_ptr<std::atomic<bool>> loaded_in_time;
    ~LoadsWhenDestroyed() {
        if (!slot) return;
        auto done = std::make_shared<std::promise<void>>();
        auto finished = done->get_future();
        // Detached: if the slot still held its lock, the load would wait for this destructor.
        std::thread([slot = slot, done] {
            (void)slot->load();
            done->set_value();
        }).detach();
        *loaded_in_time = finished.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    }
};

TEST(SharedSlotTest, TheReplacedValueIsReleasedAfterTheLockIsDropped) {
    auto slot = std::make_shared<SharedSlot<const LoadsWhenDestroyed>>();
    auto loaded_in_time = std::make_shared<std::atomic<bool>>(false);
    slot->store(std::make_shared<const LoadsWhenDestroyed>(slot, loaded_in_time));
    slot->store(nullptr);
    EXPECT_TRUE(loaded_in_time->load());
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
