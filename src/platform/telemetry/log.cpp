// JSON log lines: formatted on the caller's thread, copied into a bounded buffer, and written
// in batches by one writer thread, so a slow stdout costs dropped lines, never a stalled IO loop.
#include "platform/telemetry/log.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "platform/telemetry/clock.h"
#include "platform/telemetry/json_escape.h"
#include "platform/telemetry/metrics.h"

namespace aether::platform::telemetry {
namespace {

constexpr auto kBatchWindow = std::chrono::milliseconds(5);

// Shared by all loggers so a thread's cached service name can never be mistaken for another
// logger's (a new logger always starts at a generation no thread has seen).
std::atomic<std::uint64_t> next_service_generation{1};

Counter& dropped_lines_counter() {
    return default_registry()
        .counter("log_lines_dropped_total",
                 "Log lines dropped because the log buffer was full or the sink failed.")
        .with();
}

template <class T>
void append_number(std::string& out, T value) {
    char buf[32];
    const auto result = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, result.ptr);
}

void append_value(std::string& out, const Field::Value& value) {
    switch (value.index()) {
        case 0:
            append_json_string(out, std::get<0>(value));
            break;
        case 1:
            append_number(out, std::get<1>(value));
            break;
        case 2:
            append_number(out, std::get<2>(value));
            break;
        case 3: {
            const double d = std::get<3>(value);
            // JSON has no NaN or Infinity.
            if (std::isfinite(d)) {
                append_number(out, d);
            } else {
                out.append("null");
            }
            break;
        }
        case 4:
            out.append(std::get<4>(value) ? "true" : "false");
            break;
    }
}

std::uint64_t count_lines(std::string_view batch) {
    std::uint64_t lines = 0;
    for (char c : batch) lines += c == '\n';
    return lines;
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n > 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            // A non-blocking stdout: we are the writer thread, so waiting here is fine.
            pollfd pfd{fd, POLLOUT, 0};
            ::poll(&pfd, 1, 100);
        } else {
            return false;
        }
    }
    return true;
}

}  // namespace

std::string_view level_name(Level level) {
    switch (level) {
        case Level::Debug:
            return "debug";
        case Level::Info:
            return "info";
        case Level::Warn:
            return "warn";
        case Level::Error:
            return "error";
    }
    return "info";
}

std::optional<Level> parse_level(std::string_view text) {
    std::string lower;
    for (char c : text)
        lower.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    if (lower == "debug") return Level::Debug;
    if (lower == "info") return Level::Info;
    if (lower == "warn" || lower == "warning") return Level::Warn;
    if (lower == "error") return Level::Error;
    return std::nullopt;
}

Logger::Logger(std::size_t capacity_bytes)
    : capacity_(capacity_bytes),
      dropped_metric_(dropped_lines_counter()),
      service_generation_(next_service_generation.fetch_add(1)) {
    start();
}

Logger::Logger(Sink sink, std::size_t capacity_bytes)
    : capacity_(capacity_bytes),
      dropped_metric_(dropped_lines_counter()),
      service_generation_(next_service_generation.fetch_add(1)),
      sink_(std::move(sink)) {
    start();
}

Logger::~Logger() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_writer_.notify_one();
    writer_.join();
}

void Logger::start() {
    pending_.reserve(std::min<std::size_t>(capacity_, 64 * 1024));
    writer_ = std::thread([this] { writer_loop(); });
}

Logger& Logger::instance() {
    // Never destroyed (threads may log during static destruction); exit() flushes it instead.
    static Logger* logger = [] {
        auto* created = new Logger();
        std::atexit([] { Logger::instance().flush(); });
        return created;
    }();
    return *logger;
}

void Logger::set_service(std::string service) {
    std::lock_guard lock(service_mutex_);
    service_ = std::move(service);
    service_generation_.store(next_service_generation.fetch_add(1), std::memory_order_release);
}

void Logger::append_service(std::string& out) {
    struct Cache {
        std::uint64_t generation = 0;
        std::string escaped;
    };
    thread_local Cache cache;
    const auto generation = service_generation_.load(std::memory_order_acquire);
    if (cache.generation != generation) {
        std::lock_guard lock(service_mutex_);
        cache.escaped.clear();
        append_json_string(cache.escaped, service_);
        cache.generation = service_generation_.load(std::memory_order_relaxed);
    }
    out.append(cache.escaped);
}

void Logger::log(Level level, std::string_view message, std::span<const Field> fields) {
    if (!enabled(level)) return;
    thread_local std::string line;
    line.clear();
    line.append("{\"timestamp\":\"");
    append_rfc3339_ms(line, std::chrono::system_clock::now());
    line.append("\",\"level\":\"");
    line.append(level_name(level));
    line.append("\",\"service\":");
    append_service(line);
    line.append(",\"message\":");
    append_json_string(line, message);
    for (const auto& field : fields) {
        line.push_back(',');
        append_json_string(line, field.key);
        line.push_back(':');
        append_value(line, field.value);
    }
    line.append("}\n");
    enqueue(line);
    // One huge line must not pin its memory in this thread forever.
    if (line.capacity() > 64 * 1024) std::string().swap(line);
}

void Logger::enqueue(std::string_view line) {
    bool accepted = false;
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        accepted = pending_.size() + line.size() <= capacity_;
        if (accepted) {
            const std::size_t half = capacity_ / 2;
            const bool crossed_half =
                pending_.size() < half && pending_.size() + line.size() >= half;
            pending_.append(line);
            enqueued_bytes_ += line.size();
            wake = writer_state_ == WriterState::Sleeping ||
                   (writer_state_ == WriterState::Polling && crossed_half);
            if (wake) writer_state_ = WriterState::Busy;
        }
    }
    if (wake) wake_writer_.notify_one();
    if (!accepted) count_dropped(1);
}

void Logger::count_dropped(std::uint64_t lines) {
    dropped_.fetch_add(lines, std::memory_order_relaxed);
    dropped_metric_.inc(static_cast<double>(lines));
}

void Logger::writer_loop() {
    const auto has_work = [this] { return !pending_.empty() || stopping_; };
    std::string batch;
    std::unique_lock lock(mutex_);
    while (true) {
        if (pending_.empty()) {
            if (stopping_) return;
            writer_state_ = WriterState::Polling;
            if (!wake_writer_.wait_for(lock, kBatchWindow, has_work)) {
                writer_state_ = WriterState::Sleeping;
                wake_writer_.wait(lock, has_work);
            }
            writer_state_ = WriterState::Busy;
            continue;
        }
        flush_requested_ = false;
        batch.clear();
        batch.swap(pending_);
        lock.unlock();
        write_batch(batch);
        lock.lock();
        written_bytes_ += batch.size();
        drained_.notify_all();
        // Reuse the written buffer as the next pending_, so steady state allocates nothing.
        if (pending_.empty()) {
            batch.clear();
            pending_.swap(batch);
        }
        // Gather lines for a while rather than writing each as it arrives: where the writer
        // shares a core with the IO threads, every wake-up and write() is taken from them.
        writer_state_ = WriterState::Polling;
        wake_writer_.wait_for(lock, kBatchWindow, [this] {
            return stopping_ || flush_requested_ || pending_.size() >= capacity_ / 2;
        });
        writer_state_ = WriterState::Busy;
    }
}

void Logger::write_batch(std::string_view batch) {
    std::lock_guard lock(sink_mutex_);
    bool ok = true;
    if (sink_) {
        try {
            sink_(batch);
        } catch (const std::exception&) {
            ok = false;
        }
    } else {
        ok = write_all(fd_, batch);
    }
    if (!ok) count_dropped(count_lines(batch));
}

void Logger::flush() {
    std::unique_lock lock(mutex_);
    const auto target = enqueued_bytes_;
    if (written_bytes_ >= target) return;
    flush_requested_ = true;
    if (writer_state_ != WriterState::Busy) writer_state_ = WriterState::Busy;
    wake_writer_.notify_one();
    drained_.wait(lock, [&] { return written_bytes_ >= target; });
}

void Logger::set_sink(int fd) {
    flush();
    std::lock_guard lock(sink_mutex_);
    sink_ = nullptr;
    fd_ = fd;
}

void Logger::set_sink(Sink sink) {
    flush();
    std::lock_guard lock(sink_mutex_);
    sink_ = std::move(sink);
}

}  // namespace aether::platform::telemetry
