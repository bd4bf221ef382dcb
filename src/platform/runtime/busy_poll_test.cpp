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
#include <thread>
#include <utility>

namespace aether::platform::runtime {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

TEST(PollWindowTest, StartsClosed) {
    PollWindow window(microseconds(50));
    EXPECT_EQ(window.current(), nanoseconds(0));
}

TEST(PollWindowTest, ShortIdleSpellsGrowItFromTheFirstStepToTheLongest) {
    PollWindow window(microseconds(50));
    window.idle_ended(microseconds(30));
    EXPECT_EQ(window.current(), microseconds(10));
    window.idle_ended(microseconds(30));
    EXPECT_EQ(window.current(), microseconds(20));
    window.idle_ended(microseconds(30));
    EXPECT_EQ(window.current(), microseconds(40));
    window.idle_ended(microseconds(45));
    EXPECT_EQ(window.current(), microseconds(50));
    window.idle_ended(microseconds(50));
    EXPECT_EQ(window.current(), microseconds(50));
}

TEST(PollWindowTest, AnIdleSpellWithinTheWindowLeavesIt) {
    PollWindow window(microseconds(50));
    window.idle_ended(microseconds(30));
    window.idle_ended(microseconds(30));
    ASSERT_EQ(window.current(), microseconds(20));
    window.idle_ended(microseconds(20));
    window.idle_ended(microseconds(5));
    EXPECT_EQ(window.current(), microseconds(20));
}

TEST(PollWindowTest, LongIdleSpellsHalveItUntilItCloses) {
    PollWindow window(microseconds(80));
    for (int i = 0; i < 4; ++i) window.idle_ended(microseconds(70));
    ASSERT_EQ(window.current(), microseconds(80));
    window.idle_ended(milliseconds(250));
    EXPECT_EQ(window.current(), microseconds(40));
    window.idle_ended(milliseconds(250));
    EXPECT_EQ(window.current(), microseconds(20));
    window.idle_ended(milliseconds(250));
    EXPECT_EQ(window.current(), microseconds(10));
    window.idle_ended(milliseconds(250));
    EXPECT_EQ(window.current(), nanoseconds(0));
    window.idle_ended(milliseconds(250));
    EXPECT_EQ(window.current(), nanoseconds(0));
}

TEST(PollWindowTest, ALongestWindowBelowTheFirstStepIsTheWholeWindow) {
    PollWindow window(microseconds(4));
    window.idle_ended(microseconds(3));
    EXPECT_EQ(window.current(), microseconds(4));
    window.idle_ended(microseconds(5));
    EXPECT_EQ(window.current(), nanoseconds(0));
}

TEST(PollWindowTest, NoLongestWindowNeverPolls) {
    PollWindow window(nanoseconds(0));
    window.idle_ended(nanoseconds(0));
    window.idle_ended(microseconds(1));
    EXPECT_EQ(window.current(), nanoseconds(0));
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

// Idle, the thread sleeps: with work only every 20 ms the window closes, and the polling
// thread's CPU time stays a small part of the wall time.
TEST(BusyPollingTest, SparseWorkLeavesTheThreadAsleep) {
    boost::asio::io_context io(1);
    boost::asio::steady_timer timer(io);
    int ticks = 0;
    std::function<void()> arm = [&] {
        timer.expires_after(milliseconds(20));
        timer.async_wait([&](boost::system::error_code error) {
            if (!error && ++ticks < 25) arm();
        });
    };
    arm();
    timespec cpu_before{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu_before);
    IdleSpellCounts counts;
    run_busy_polling(io, milliseconds(10), counts);
    timespec cpu_after{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu_after);
    const auto cpu = std::chrono::seconds(cpu_after.tv_sec - cpu_before.tv_sec) +
                     nanoseconds(cpu_after.tv_nsec - cpu_before.tv_nsec);
    EXPECT_EQ(ticks, 25);
    EXPECT_EQ(counts.caught.load(), 0u);
    EXPECT_GE(counts.waited.load(), 25u);
    // Polling the longest window after each of the 25 spells would take 250 ms.
    EXPECT_LT(cpu, milliseconds(100));
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
    // gaps (a dozen doublings reach 50 ms) or after a gap longer than 50 ms.
    const auto [caught, waited] = caught_and_waited_through_frequent_work(milliseconds(50));
    EXPECT_GT(caught, 0u);
    EXPECT_LT(waited, 20u) << caught << " caught";
}

}  // namespace
}  // namespace aether::platform::runtime
