// Tests of the JSON logger: line format, escaping, levels, sinks, flushing and dropping.
#include "platform/telemetry/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <regex>
#include <thread>
#include <vector>

#include "platform/telemetry/metrics.h"

namespace aether::platform::telemetry {
namespace {

namespace json = boost::json;
using namespace std::string_literals;

// Collects what the writer thread hands to the sink.
struct Captured {
    std::mutex mutex;
    std::string text;
    int batches = 0;

    Logger::Sink sink() {
        return [this](std::string_view batch) {
            std::lock_guard lock(mutex);
            text.append(batch);
            ++batches;
        };
    }

    std::vector<std::string> lines() {
        std::lock_guard lock(mutex);
        std::vector<std::string> out;
        std::size_t start = 0;
        for (auto end = text.find('\n'); end != std::string::npos; end = text.find('\n', start)) {
            out.push_back(text.substr(start, end - start));
            start = end + 1;
        }
        EXPECT_EQ(start, text.size()) << "output must end with a newline";
        return out;
    }
};

json::object parse_line(const std::string& line) {
    json::error_code error;
    auto value = json::parse(line, error);
    EXPECT_FALSE(error) << error.message() << ": " << line;
    EXPECT_TRUE(value.is_object()) << line;
    return value.is_object() ? value.as_object() : json::object{};
}

TEST(Log, WritesOneJsonObjectPerEvent) {
    Captured captured;
    {
        Logger logger(captured.sink());
        logger.set_service("security");
        const std::string user = "usr_01";
        logger.log(Level::Info, "login ok",
                   {{"user_id", user},
                    {"attempt", 3},
                    {"big", std::numeric_limits<std::uint64_t>::max()},
                    {"negative", std::int64_t{-42}},
                    {"duration_ms", 1.5},
                    {"remember", true},
                    {"literal", "text"}});
        logger.flush();
    }
    const auto lines = captured.lines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].find("{\"timestamp\":\""), 0u) << lines[0];
    const auto obj = parse_line(lines[0]);
    const std::string timestamp(obj.at("timestamp").as_string());
    EXPECT_TRUE(
        std::regex_match(timestamp, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
        << timestamp;
    EXPECT_EQ(obj.at("level").as_string(), "info");
    EXPECT_EQ(obj.at("service").as_string(), "security");
    EXPECT_EQ(obj.at("message").as_string(), "login ok");
    EXPECT_EQ(obj.at("user_id").as_string(), "usr_01");
    EXPECT_EQ(obj.at("attempt").as_int64(), 3);
    EXPECT_EQ(obj.at("big").as_uint64(), std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(obj.at("negative").as_int64(), -42);
    EXPECT_EQ(obj.at("duration_ms").as_double(), 1.5);
    EXPECT_EQ(obj.at("remember").as_bool(), true);
    EXPECT_EQ(obj.at("literal").as_string(), "text");
    // Keys keep the order they were given in, after the fixed ones.
    EXPECT_LT(lines[0].find("\"message\""), lines[0].find("\"user_id\""));
    EXPECT_LT(lines[0].find("\"user_id\""), lines[0].find("\"attempt\""));
}

TEST(Log, EscapesEverythingIntoValidJson) {
    Captured captured;
    {
        Logger logger(captured.sink());
        const std::string nasty = "quote\" back\\ nl\n tab\t nul\0 bell\a bad\xFF\xC0 ok\xC3\xA9"s;
        logger.log(Level::Error, nasty, {{nasty, nasty}, {"nan", std::nan("")}});
    }
    const auto lines = captured.lines();
    ASSERT_EQ(lines.size(), 1u);
    const auto obj = parse_line(lines[0]);
    const std::string expected =
        "quote\" back\\ nl\n tab\t nul\0 bell\a bad\xEF\xBF\xBD\xEF\xBF\xBD ok\xC3\xA9"s;
    EXPECT_EQ(obj.at("message").as_string(), expected);
    EXPECT_EQ(obj.at(expected).as_string(), expected);
    EXPECT_TRUE(obj.at("nan").is_null());
    EXPECT_EQ(obj.at("level").as_string(), "error");
}

TEST(Log, LevelFiltering) {
    Captured captured;
    Logger logger(captured.sink());
    EXPECT_EQ(logger.level(), Level::Info);
    EXPECT_FALSE(logger.enabled(Level::Debug));
    logger.log(Level::Debug, "hidden");
    logger.log(Level::Warn, "shown");
    logger.set_level(Level::Error);
    logger.log(Level::Warn, "hidden too");
    logger.log(Level::Error, "shown too");
    logger.set_level(Level::Debug);
    logger.log(Level::Debug, "now shown");
    logger.flush();
    const auto lines = captured.lines();
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(parse_line(lines[0]).at("level").as_string(), "warn");
    EXPECT_EQ(parse_line(lines[1]).at("message").as_string(), "shown too");
    EXPECT_EQ(parse_line(lines[2]).at("level").as_string(), "debug");
}

TEST(Log, ParsesLevelNames) {
    EXPECT_EQ(parse_level("debug"), Level::Debug);
    EXPECT_EQ(parse_level("INFO"), Level::Info);
    EXPECT_EQ(parse_level("warning"), Level::Warn);
    EXPECT_EQ(parse_level("Warn"), Level::Warn);
    EXPECT_EQ(parse_level("error"), Level::Error);
    EXPECT_FALSE(parse_level("verbose"));
    EXPECT_EQ(level_name(Level::Warn), "warn");
}

TEST(Log, ServiceChangesAreSeenByOtherThreads) {
    Captured captured;
    Logger logger(captured.sink());
    std::thread([&] { logger.log(Level::Info, "before"); }).join();
    logger.set_service("tasks \"q\"");
    std::thread([&] { logger.log(Level::Info, "after"); }).join();
    logger.flush();
    const auto lines = captured.lines();
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(parse_line(lines[0]).at("service").as_string(), "aether");
    EXPECT_EQ(parse_line(lines[1]).at("service").as_string(), "tasks \"q\"");
}

TEST(Log, ConcurrentLinesArriveWholeAndComplete) {
    Captured captured;
    constexpr int kThreads = 4;
    constexpr int kPerThread = 5000;
    {
        Logger logger(captured.sink());
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                for (int i = 0; i < kPerThread; ++i)
                    logger.log(Level::Info, "event", {{"thread", t}, {"seq", i}});
            });
        }
        for (auto& thread : threads) thread.join();
        logger.flush();
        EXPECT_EQ(logger.dropped(), 0u);
    }
    const auto lines = captured.lines();
    ASSERT_EQ(lines.size(), static_cast<std::size_t>(kThreads * kPerThread));
    std::vector<int> next(kThreads, 0);
    for (const auto& line : lines) {
        const auto obj = parse_line(line);
        const auto t = obj.at("thread").as_int64();
        // Per-thread order is preserved.
        EXPECT_EQ(obj.at("seq").as_int64(), next[t]++);
    }
    // Lines were batched: fewer sink calls than lines.
    EXPECT_LT(captured.batches, kThreads * kPerThread);
}

TEST(Log, FullBufferDropsAndCountsInsteadOfBlocking) {
    std::mutex gate_mutex;
    std::condition_variable gate_cv;
    bool open = false;
    bool writer_blocked = false;
    std::string received;
    auto& dropped_metric =
        default_registry().counter("log_lines_dropped_total", "Log lines dropped.").with();
    const double dropped_before = dropped_metric.value();

    Logger logger(
        [&](std::string_view batch) {
            std::unique_lock lock(gate_mutex);
            writer_blocked = true;
            gate_cv.notify_all();
            gate_cv.wait(lock, [&] { return open; });
            received.append(batch);
        },
        4096);
    // The first line wakes the writer, which then stalls inside the sink.
    logger.log(Level::Info, "first");
    {
        std::unique_lock lock(gate_mutex);
        gate_cv.wait(lock, [&] { return writer_blocked; });
    }
    // With the writer stuck, these fill the 4 KiB buffer; the rest must be dropped, and every
    // call must return (a blocking logger would hang this test).
    constexpr int kLines = 500;
    for (int i = 0; i < kLines; ++i) logger.log(Level::Info, "filler line", {{"i", i}});
    const auto dropped = logger.dropped();
    EXPECT_GT(dropped, 0u);
    EXPECT_LT(dropped, static_cast<std::uint64_t>(kLines));
    EXPECT_EQ(dropped_metric.value(), dropped_before + static_cast<double>(dropped));
    {
        std::lock_guard lock(gate_mutex);
        open = true;
    }
    gate_cv.notify_all();
    logger.flush();
    std::size_t lines = 0;
    for (char c : received) lines += c == '\n';
    EXPECT_EQ(lines + dropped, static_cast<std::size_t>(kLines + 1));
    EXPECT_LE(received.size(), 4096u + 200u);  // the buffer plus the first line
    // Space is available again once drained.
    logger.log(Level::Info, "after");
    logger.flush();
    EXPECT_NE(received.find("\"message\":\"after\""), std::string::npos);
    EXPECT_EQ(logger.dropped(), dropped);
}

TEST(Log, WritesToAFileDescriptor) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    {
        Logger logger;
        logger.set_sink(fds[1]);
        logger.log(Level::Warn, "to the pipe", {{"n", 1}});
        logger.flush();
    }
    ::close(fds[1]);
    std::string text;
    char buf[256];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
        text.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    text.pop_back();
    const auto obj = parse_line(text);
    EXPECT_EQ(obj.at("message").as_string(), "to the pipe");
    EXPECT_EQ(obj.at("n").as_int64(), 1);
}

TEST(Log, FailingFdCountsDroppedLines) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    ::close(fds[0]);
    ::close(fds[1]);
    Logger logger;
    logger.set_sink(fds[1]);  // closed: write() fails with EBADF
    logger.log(Level::Info, "lost");
    logger.log(Level::Info, "lost too");
    logger.flush();
    EXPECT_EQ(logger.dropped(), 2u);
}

TEST(Log, DestructorDrainsTheBuffer) {
    Captured captured;
    {
        Logger logger(captured.sink());
        for (int i = 0; i < 100; ++i) logger.log(Level::Info, "bye", {{"i", i}});
    }
    EXPECT_EQ(captured.lines().size(), 100u);
}

TEST(Log, ConvenienceFunctionsUseTheProcessLogger) {
    Captured captured;
    auto& logger = Logger::instance();
    logger.set_sink(captured.sink());
    logger.set_level(Level::Debug);
    log_debug("d");
    log_info("i", {{"k", "v"}});
    log_warn("w");
    log_error("e", {});
    logger.set_level(Level::Info);
    log_debug("filtered");
    logger.flush();
    logger.set_sink(1);
    const auto lines = captured.lines();
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(parse_line(lines[0]).at("level").as_string(), "debug");
    EXPECT_EQ(parse_line(lines[1]).at("k").as_string(), "v");
    EXPECT_EQ(parse_line(lines[2]).at("level").as_string(), "warn");
    EXPECT_EQ(parse_line(lines[3]).at("message").as_string(), "e");
}

}  // namespace
}  // namespace aether::platform::telemetry
