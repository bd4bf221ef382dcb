// Tests of RFC 3339 millisecond formatting.
#include "platform/telemetry/clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace aether::platform::telemetry {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

system_clock::time_point at_ms(std::int64_t ms) {
    return system_clock::time_point(milliseconds(ms));
}

TEST(Clock, FormatsKnownInstants) {
    EXPECT_EQ(format_rfc3339_ms(at_ms(0)), "1970-01-01T00:00:00.000Z");
    // 2026-11-28T15:41:25.123Z
    EXPECT_EQ(format_rfc3339_ms(at_ms(1795880485123)), "2026-11-28T15:41:25.123Z");
    EXPECT_EQ(format_rfc3339_ms(at_ms(951782400000)), "2000-02-29T00:00:00.000Z");
    EXPECT_EQ(format_rfc3339_ms(at_ms(1704067199999)), "2023-12-31T23:59:59.999Z");
}

TEST(Clock, TruncatesSubMillisecondsAndHandlesPreEpoch) {
    auto tp = at_ms(1000) + std::chrono::microseconds(999);
    EXPECT_EQ(format_rfc3339_ms(tp), "1970-01-01T00:00:01.000Z");
    EXPECT_EQ(format_rfc3339_ms(at_ms(-1)), "1969-12-31T23:59:59.999Z");
    EXPECT_EQ(format_rfc3339_ms(at_ms(-1000)), "1969-12-31T23:59:59.000Z");
}

TEST(Clock, CachedSecondIsNotReusedAcrossSeconds) {
    // Same second twice (cache hit), then the next second and back again.
    EXPECT_EQ(format_rfc3339_ms(at_ms(1795880485001)), "2026-11-28T15:41:25.001Z");
    EXPECT_EQ(format_rfc3339_ms(at_ms(1795880485999)), "2026-11-28T15:41:25.999Z");
    EXPECT_EQ(format_rfc3339_ms(at_ms(1795880486000)), "2026-11-28T15:41:26.000Z");
    EXPECT_EQ(format_rfc3339_ms(at_ms(1795880485500)), "2026-11-28T15:41:25.500Z");
}

TEST(Clock, AppendsToExistingText) {
    std::string out = "t=";
    append_rfc3339_ms(out, at_ms(86400000));
    EXPECT_EQ(out, "t=1970-01-02T00:00:00.000Z");
}

TEST(Clock, AgreesWithGmtimeOverManyInstants) {
    // Walk ~50 years in irregular steps and compare with the C library.
    for (std::int64_t s = -86400; s < 1600000000; s += 7654321) {
        const std::time_t t = static_cast<std::time_t>(s);
        std::tm tm{};
        gmtime_r(&t, &tm);
        char expected[32];
        std::strftime(expected, sizeof expected, "%Y-%m-%dT%H:%M:%S.042Z", &tm);
        EXPECT_EQ(format_rfc3339_ms(at_ms(s * 1000 + 42)), expected) << s;
    }
}

TEST(Clock, EachThreadHasItsOwnCache) {
    std::string other;
    std::thread thread([&] { other = format_rfc3339_ms(at_ms(1000)); });
    std::string mine = format_rfc3339_ms(at_ms(2000));
    thread.join();
    EXPECT_EQ(other, "1970-01-01T00:00:01.000Z");
    EXPECT_EQ(mine, "1970-01-01T00:00:02.000Z");
}

TEST(Clock, NowHasTheRightShape) {
    auto text = format_rfc3339_ms(system_clock::now());
    ASSERT_EQ(text.size(), 24u);
    EXPECT_EQ(text[4], '-');
    EXPECT_EQ(text[10], 'T');
    EXPECT_EQ(text[19], '.');
    EXPECT_EQ(text[23], 'Z');
}

}  // namespace
}  // namespace aether::platform::telemetry
