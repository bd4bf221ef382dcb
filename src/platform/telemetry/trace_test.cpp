// Tests of W3C traceparent parsing, formatting and id generation.
#include "platform/telemetry/trace.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace aether::platform::telemetry {
namespace {

constexpr std::string_view kExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(Trace, ParsesTheSpecExample) {
    auto ctx = parse_traceparent(kExample);
    ASSERT_TRUE(ctx.has_value());
    EXPECT_EQ(trace_id_hex(*ctx), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(span_id_hex(*ctx), "00f067aa0ba902b7");
    EXPECT_EQ(ctx->trace_id[0], 0x4b);
    EXPECT_EQ(ctx->span_id[7], 0xb7);
    EXPECT_EQ(ctx->flags, 0x01);
    EXPECT_TRUE(ctx->sampled());
    EXPECT_EQ(format_traceparent(*ctx), kExample);
}

TEST(Trace, UnsampledFlagRoundTrips) {
    const std::string header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    auto ctx = parse_traceparent(header);
    ASSERT_TRUE(ctx);
    EXPECT_FALSE(ctx->sampled());
    EXPECT_EQ(format_traceparent(*ctx), header);
}

TEST(Trace, RejectsMalformedVersion00) {
    const std::vector<std::string> bad = {
        "",
        "00",
        // uppercase hex
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // all-zero ids
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        // version ff is forbidden
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // lengths
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // separators and non-hex
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (const auto& header : bad) EXPECT_FALSE(parse_traceparent(header)) << header;
}

TEST(Trace, FutureVersionsAreReadByTheirVersion00Prefix) {
    auto exact = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ASSERT_TRUE(exact);
    EXPECT_EQ(trace_id_hex(*exact), "4bf92f3577b34da6a3ce929d0e0e4736");

    auto extended = parse_traceparent(
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future");
    ASSERT_TRUE(extended);
    EXPECT_EQ(span_id_hex(*extended), "00f067aa0ba902b7");
    // Re-emitted as version 00.
    EXPECT_EQ(format_traceparent(*extended), kExample);

    // Extra data must follow a dash.
    EXPECT_FALSE(parse_traceparent(
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future"));
    EXPECT_FALSE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"));
}

TEST(Trace, NewRootHasRandomNonZeroIds) {
    auto a = new_root();
    auto b = new_root();
    EXPECT_NE(a.trace_id, b.trace_id);
    EXPECT_NE(a.span_id, b.span_id);
    EXPECT_TRUE(a.sampled());
    EXPECT_FALSE(new_root(false).sampled());
    auto parsed = parse_traceparent(format_traceparent(a));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, a);
}

TEST(Trace, ChildKeepsTraceAndSamplingButNotReservedFlags) {
    auto parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff");
    ASSERT_TRUE(parent);
    auto child = child_of(*parent);
    EXPECT_EQ(child.trace_id, parent->trace_id);
    EXPECT_NE(child.span_id, parent->span_id);
    EXPECT_EQ(child.flags, 0x01);
    auto header = format_traceparent(child);
    EXPECT_EQ(header.substr(0, 36), "00-4bf92f3577b34da6a3ce929d0e0e4736-");
    EXPECT_EQ(header.substr(52), "-01");
    EXPECT_EQ(child_of(new_root(false)).flags, 0x00);
}

TEST(Trace, IdsAreUniqueAcrossThreads) {
    constexpr int kThreads = 4;
    constexpr int kPerThread = 2000;
    std::vector<std::vector<std::string>> ids(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) ids[t].push_back(trace_id_hex(new_root()));
        });
    }
    for (auto& thread : threads) thread.join();
    std::set<std::string> unique;
    for (const auto& list : ids) unique.insert(list.begin(), list.end());
    EXPECT_EQ(unique.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace aether::platform::telemetry
