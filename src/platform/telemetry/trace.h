// W3C Trace Context (`traceparent`): parsing, formatting and id generation for propagation.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace aether::platform::telemetry {

struct TraceContext {
    static constexpr std::uint8_t kSampled = 0x01;

    std::array<std::uint8_t, 16> trace_id{};
    std::array<std::uint8_t, 8> span_id{};
    std::uint8_t flags = 0;

    bool sampled() const { return (flags & kSampled) != 0; }
    friend bool operator==(const TraceContext&, const TraceContext&) = default;
};

// Parses a `traceparent` header. Version 00 must be exactly 55 characters; a higher version is
// read by its version-00 prefix as the spec asks, so newer senders still join the trace.
// Rejects uppercase hex, version ff, all-zero ids and malformed lengths or separators.
std::optional<TraceContext> parse_traceparent(std::string_view header);

// "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"; always version 00.
std::string format_traceparent(const TraceContext& ctx);
// The same, written over `out` (reusing its capacity).
void format_traceparent(const TraceContext& ctx, std::string& out);

// A new trace with random non-zero ids.
TraceContext new_root(bool sampled = true);

// The same trace and sampling decision with a fresh span id: what we send downstream.
TraceContext child_of(const TraceContext& parent);

std::string trace_id_hex(const TraceContext& ctx);
std::string span_id_hex(const TraceContext& ctx);

}  // namespace aether::platform::telemetry
