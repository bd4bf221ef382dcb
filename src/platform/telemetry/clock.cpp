// RFC 3339 formatting; the date/time part is cached per thread because it changes once a second.
#include "platform/telemetry/clock.h"

#include <cstdint>

namespace aether::platform::telemetry {
namespace {

using std::chrono::system_clock;

// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds.
constexpr std::int64_t kMinSeconds = -62167219200;
constexpr std::int64_t kMaxSeconds = 253402300799;

void put2(char* p, unsigned v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
}

struct SecondCache {
    std::int64_t seconds = INT64_MIN;
    char text[20] = {};  // "YYYY-MM-DDTHH:MM:SS" plus a terminator we never use
};

void render_seconds(std::int64_t seconds, char* out) {
    using namespace std::chrono;
    const sys_seconds s{std::chrono::seconds{seconds}};
    const auto day = floor<days>(s);
    const year_month_day ymd{day};
    const hh_mm_ss hms{s - day};
    const auto y = static_cast<unsigned>(static_cast<int>(ymd.year()));
    put2(out, y / 100);
    put2(out + 2, y % 100);
    out[4] = '-';
    put2(out + 5, static_cast<unsigned>(ymd.month()));
    out[7] = '-';
    put2(out + 8, static_cast<unsigned>(ymd.day()));
    out[10] = 'T';
    put2(out + 11, static_cast<unsigned>(hms.hours().count()));
    out[13] = ':';
    put2(out + 14, static_cast<unsigned>(hms.minutes().count()));
    out[16] = ':';
    put2(out + 17, static_cast<unsigned>(hms.seconds().count()));
}

}  // namespace

void append_rfc3339_ms(std::string& out, system_clock::time_point tp) {
    using namespace std::chrono;
    const auto ms_total = floor<milliseconds>(tp).time_since_epoch().count();
    std::int64_t seconds = ms_total >= 0 ? ms_total / 1000 : -((-ms_total + 999) / 1000);
    auto ms = static_cast<unsigned>(ms_total - seconds * 1000);
    if (seconds < kMinSeconds) {
        seconds = kMinSeconds;
        ms = 0;
    } else if (seconds > kMaxSeconds) {
        seconds = kMaxSeconds;
        ms = 999;
    }
    thread_local SecondCache cache;
    if (cache.seconds != seconds) {
        render_seconds(seconds, cache.text);
        cache.seconds = seconds;
    }
    char tail[5] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                    static_cast<char>('0' + ms % 10), 'Z'};
    out.append(cache.text, 19);
    out.append(tail, 5);
}

std::string format_rfc3339_ms(system_clock::time_point tp) {
    std::string out;
    out.reserve(24);
    append_rfc3339_ms(out, tp);
    return out;
}

}  // namespace aether::platform::telemetry
