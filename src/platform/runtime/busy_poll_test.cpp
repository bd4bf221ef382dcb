// Busy polling: the adaptive window, and the run loop with work posted, timed and stopped.
#include "platform/runtime/busy_poll.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <thread>
#include <utility>

namespace aether::platform::runtime {
namespace {

using detail::PollWindow;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// Ends idle spells of the given lengths in turn, checking the window after each.
void expect_windows(PollWindow& window,
                    std::initializer_list<std::pair<nanoseconds, nanoseconds>> spells_and_windows) {
    for (const auto& [idle, expected] : spells_and_windows) {
        window.idle_ended(idle);
        EXPECT_EQ(window.current(), expected) << "after an idle spell of " << idle.count() << " ns";
    }
}

TEST(PollWindowTest, StartsClosed) {
    PollWindow window(microseconds(50));
    EXPECT_EQ(window.current(), nanoseconds(0));
}

TEST(PollWindowTest, ShortIdleSpellsGrowItFromTheFirstStepToTheLongest) {
    PollWindow window(microseconds(50));
    expect_windows(window, {{microseconds(30), microseconds(10)},
                            {microseconds(30), microseconds(20)},
                            {microseconds(30), microseconds(40)},
                            {microseconds(45), microseconds(50)},
                            {microseconds(50), microseconds(50)}});
}

TEST(PollWindowTest, AnIdleSpellWithinTheWindowLeavesIt) {
    PollWindow window(microseconds(50));
    expect_windows(window, {{microseconds(30), microseconds(10)},
                            {microseconds(30), microseconds(20)},
                            {microseconds(20), microseconds(20)},
                            {microseconds(5), microseconds(20)}});
}

TEST(PollWindowTest, LongIdleSpellsHalveItUntilItCloses) {
    PollWindow window(microseconds(80));
    for (int i = 0; i < 4; ++i) window.idle_ended(microseconds(70));
    ASSERT_EQ(window.current(), microseconds(80));
    expect_windows(window, {{milliseconds(250), microseconds(40)},
                            {milliseconds(250), microseconds(20)},
                            {milliseconds(250), microseconds(10)},
                            {milliseconds(250), nanoseconds(0)},
                            {milliseconds(250), nanoseconds(0)}});
}

TEST(PollWindowTest, ALongestWindowBelowTheFirstStepIsTheWholeWindow) {
    PollWindow window(microseconds(4));
    expect_windows(window, {{microseconds(3), microseconds(4)}, {microseconds(5), nanoseconds(0)}});
}

TEST(PollWindowTest, NoLongestWindowNeverPolls) {
    PollWindow window(nanoseconds(0));
    expect_windows(window, {{nanoseconds(0), nanoseconds(0)}, {microseconds(1), nanoseconds(0)}});
}

// The loop runs handlers posted from another thread while it polls and while it sleeps, and
// returns when the io_context stops.
TEST(BusyPollingTest, RunsWorkPostedFromAnotherThreadAndReturnsWhenStopped) {
    for (auto longest : {microseconds(0), microseconds(50), microseconds(5000)}) {
        boost::asio::io_context io(1);
        auto guard = boost::asio::make_work_guard(io);
        std::atomic<int> ran{0};
        std::thread poster([&] {
            for (int i = 0; i < 200; ++i) {
                boost::asio::post(io, [&] { ran.fetch_add(1); });
                // Gaps both shorter and longer than the windows, so it both polls and sleeps.
                std::this_thread::sleep_for(microseconds(i % 2 ? 5 : 2000));
            }
            boost::asio::post(io, [&] { io.stop(); });
        });
        IdleSpellCounts counts;
        run_busy_polling(io, longest, counts);
        poster.join();
        EXPECT_EQ(ran.load(), 200) << "longest window " << longest.count() << " µs";
        EXPECT_TRUE(io.stopped());
    }
}

TEST(BusyPollingTest, ReturnsWhenTheWorkRunsOutAndRunsTimers) {
    boost::asio::io_context io(1);
    boost::asio::steady_timer timer(io, milliseconds(20));
    bool fired = false;
    timer.async_wait([&](boost::system::error_code error) { fired = !error; });
    IdleSpellCounts counts;
    run_busy_polling(io, microseconds(100), counts);
    EXPECT_TRUE(fired);
    EXPECT_TRUE(io.stopped());
}

std::chrono::nanoseconds cpu_time_of_this_thread() {
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return std::chrono::seconds(now.tv_sec) + nanoseconds(now.tv_nsec);
}

// When work turns sparse the window closes and the thread sleeps. Ticks 8 ms apart open a
// window of 10 ms or more (the longest is 20 ms); then ticks 50 ms apart, each longer than the
// longest, halve it shut: some 20 ms of polling in all, where polling the open window after each
// of those 15 spells would take 140 ms or more.
TEST(BusyPollingTest, SparseWorkClosesTheWindowAndLeavesTheThreadAsleep) {
    constexpr int kDenseTicks = 30;
    constexpr int kTicks = kDenseTicks + 15;
    boost::asio::io_context io(1);
    boost::asio::steady_timer timer(io);
    IdleSpellCounts counts;
    int ticks = 0;
    std::uint64_t caught_when_sparse = 0;
    std::chrono::nanoseconds cpu_when_sparse{0};
    std::function<void()> arm = [&] {
        timer.expires_after(milliseconds(ticks < kDenseTicks ? 8 : 50));
        timer.async_wait([&](boost::system::error_code error) {
            if (error) return;
            // At the first sparse tick: the last dense one's catch is counted once its handler
            // has run.
            if (++ticks == kDenseTicks + 1) {
                caught_when_sparse = counts.caught.load();
                cpu_when_sparse = cpu_time_of_this_thread();
            }
            if (ticks < kTicks) arm();
        });
    };
    arm();
    run_busy_polling(io, milliseconds(20), counts);
    const auto cpu_while_sparse = cpu_time_of_this_thread() - cpu_when_sparse;
    ASSERT_EQ(ticks, kTicks);
    EXPECT_GT(caught_when_sparse, 0u) << "the 8 ms ticks did not open the window";
    EXPECT_EQ(counts.caught.load(), caught_when_sparse) << "a 50 ms spell was caught polling";
    EXPECT_LT(cpu_while_sparse, milliseconds(70));
}

// Runs 500 empty handlers posted 20 µs apart from another thread through run_busy_polling with
// `longest`, and returns how its idle spells ended.
std::pair<std::uint64_t, std::uint64_t> caught_and_waited_through_frequent_work(
    std::chrono::microseconds longest) {
    boost::asio::io_context io(1);
    auto guard = boost::asio::make_work_guard(io);
    std::thread poster([&] {
        std::this_thread::sleep_for(milliseconds(5));
        for (int i = 0; i < 500; ++i) {
            boost::asio::post(io, [] {});
            std::this_thread::sleep_for(microseconds(20));
        }
        boost::asio::post(io, [&] { io.stop(); });
    });
    IdleSpellCounts counts;
    run_busy_polling(io, longest, counts);
    poster.join();
    return {counts.caught.load(), counts.waited.load()};
}

// Work that keeps coming within the longest window keeps the thread awake: it waits in the
// kernel only while the window grows, not once per piece of work as io.run() does.
TEST(BusyPollingTest, FrequentWorkIsCaughtWhilePolling) {
    const auto [caught_without, waited_without] =
        caught_and_waited_through_frequent_work(microseconds(0));
    EXPECT_EQ(caught_without, 0u);
    EXPECT_GT(waited_without, 0u);
    // How many spells there are depends on the machine: posts that arrive while the thread is
    // busy or off the core make one. Waits come only while the window grows from 10 µs to the
    // gaps (a dozen doublings reach 50 ms) and after a gap longer than 50 ms (each costs a few).
    const auto [caught, waited] = caught_and_waited_through_frequent_work(milliseconds(50));
    EXPECT_GT(caught, 0u);
    EXPECT_LT(waited, 40u) << caught << " caught";
}

}  // namespace
}  // namespace aether::platform::runtime
