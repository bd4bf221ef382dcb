// W3C Trace Context; ids come from a per-thread xoshiro256** since they only need to be unique.
#include "platform/telemetry/trace.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "platform/hex.h"

namespace aether::platform::telemetry {
namespace {

constexpr std::size_t kV0Length = 55;

// -1 for anything but a lowercase hex digit (the spec forbids uppercase).
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

template <std::size_t N>
bool parse_hex(std::string_view text, std::array<std::uint8_t, N>& out) {
    if (text.size() != 2 * N) return false;
    for (std::size_t i = 0; i < N; ++i) {
        const int hi = hex_value(text[2 * i]);
        const int lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return true;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& bytes) {
    for (auto b : bytes)
        if (b != 0) return false;
    return true;
}

// Writes the bytes as 2 * N lowercase hex digits at `cursor`; returns the end.
template <std::size_t N>
char* write_hex(char* cursor, const std::array<std::uint8_t, N>& bytes) {
    return platform::write_hex(cursor, bytes.data(), N);
}

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

class Xoshiro256 {
  public:
    Xoshiro256() {
        std::random_device device;
        std::uint64_t seed = (std::uint64_t{device()} << 32) ^ device();
        for (auto& word : s_) word = splitmix64(seed);
    }

    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

  private:
    std::uint64_t s_[4];
};

template <std::size_t N>
void fill_random_nonzero(std::array<std::uint8_t, N>& out) {
    thread_local Xoshiro256 rng;
    do {
        for (std::size_t i = 0; i < N; i += 8) {
            const std::uint64_t word = rng.next();
            std::memcpy(out.data() + i, &word, std::min<std::size_t>(8, N - i));
        }
    } while (all_zero(out));
}

}  // namespace

std::optional<TraceContext> parse_traceparent(std::string_view header) {
    if (header.size() < kV0Length) return std::nullopt;
    std::array<std::uint8_t, 1> version{};
    if (!parse_hex(header.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
    if (version[0] == 0x00 && header.size() != kV0Length) return std::nullopt;
    // Future versions may append fields, but only after another dash.
    if (header.size() > kV0Length && header[kV0Length] != '-') return std::nullopt;
    if (header[2] != '-' || header[35] != '-' || header[52] != '-') return std::nullopt;

    TraceContext ctx;
    std::array<std::uint8_t, 1> flags{};
    if (!parse_hex(header.substr(3, 32), ctx.trace_id) ||
        !parse_hex(header.substr(36, 16), ctx.span_id) || !parse_hex(header.substr(53, 2), flags))
        return std::nullopt;
    if (all_zero(ctx.trace_id) || all_zero(ctx.span_id)) return std::nullopt;
    ctx.flags = flags[0];
    return ctx;
}

std::string format_traceparent(const TraceContext& ctx) {
    std::string out;
    format_traceparent(ctx, out);
    return out;
}

void format_traceparent(const TraceContext& ctx, std::string& out) {
    // Written on the stack and copied once: appending piece by piece checked the string's
    // capacity at every piece, on every request.
    std::array<char, kV0Length> text;
    char* cursor = text.data();
    *cursor++ = '0';
    *cursor++ = '0';
    *cursor++ = '-';
    cursor = write_hex(cursor, ctx.trace_id);
    *cursor++ = '-';
    cursor = write_hex(cursor, ctx.span_id);
    *cursor++ = '-';
    platform::write_hex(cursor, &ctx.flags, 1);
    out.assign(text.data(), text.size());
}

TraceContext new_root(bool sampled) {
    TraceContext ctx;
    fill_random_nonzero(ctx.trace_id);
    fill_random_nonzero(ctx.span_id);
    ctx.flags = sampled ? TraceContext::kSampled : 0;
    return ctx;
}

TraceContext child_of(const TraceContext& parent) {
    TraceContext ctx;
    ctx.trace_id = parent.trace_id;
    fill_random_nonzero(ctx.span_id);
    // Version 00 defines only the sampled bit; the rest must be sent as zero.
    ctx.flags = parent.flags & TraceContext::kSampled;
    return ctx;
}

std::string trace_id_hex(const TraceContext& ctx) {
    std::string out(32, '0');
    write_hex(out.data(), ctx.trace_id);
    return out;
}

std::string span_id_hex(const TraceContext& ctx) {
    std::string out(16, '0');
    write_hex(out.data(), ctx.span_id);
    return out;
}

}  // namespace aether::platform::telemetry
