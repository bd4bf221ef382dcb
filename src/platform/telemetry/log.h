// Structured JSON logs, one line per event, written by a background thread so an IO thread
// never waits on stdout; when the bounded buffer is full lines are dropped and counted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <variant>

namespace aether::platform::telemetry {

class Counter;

enum class Level { Debug, Info, Warn, Error };

std::string_view level_name(Level level);
// "debug", "info", "warn"/"warning", "error" (case-insensitive), for configuration.
std::optional<Level> parse_level(std::string_view text);

// One key/value of a log event. It only borrows: keys and string values must outlive the
// log() call, which the usual `log_info("msg", {{"route", route}})` guarantees.
struct Field {
    using Value = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;

    Field(std::string_view k, std::string_view v) : key(k), value(v) {}
    Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
    Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
    Field(std::string_view k, bool v) : key(k), value(v) {}
    Field(std::string_view k, double v) : key(k), value(v) {}
    Field(std::string_view k, float v) : key(k), value(static_cast<double>(v)) {}
    template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && std::is_signed_v<T>)
        Field(std::string_view k, T v)
        : key(k), value(static_cast<std::int64_t>(v)) {}
    template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && std::is_unsigned_v<T>)
        Field(std::string_view k, T v)
        : key(k), value(static_cast<std::uint64_t>(v)) {}

    std::string_view key;
    Value value;
};

class Logger {
  public:
    using Sink = std::function<void(std::string_view batch)>;
    static constexpr std::size_t kDefaultCapacity = 8 * 1024 * 1024;

    // Writes to stdout. Tests construct their own with a callback sink.
    explicit Logger(std::size_t capacity_bytes = kDefaultCapacity);
    explicit Logger(Sink sink, std::size_t capacity_bytes = kDefaultCapacity);
    // Drains what is buffered, then stops the writer thread.
    ~Logger();
    Logger(const Logger&) = delete;
    Logger& operator=(const Logger&) = delete;

    // The process-wide logger (stdout, level info, service "aether"); flushed at exit().
    static Logger& instance();

    void set_level(Level level) {
        level_.store(static_cast<int>(level), std::memory_order_relaxed);
    }
    Level level() const { return static_cast<Level>(level_.load(std::memory_order_relaxed)); }
    bool enabled(Level level) const {
        return static_cast<int>(level) >= level_.load(std::memory_order_relaxed);
    }
    void set_service(std::string service);

    // Formats on the calling thread, then only copies the line into the buffer.
    void log(Level level, std::string_view message, std::initializer_list<Field> fields = {}) {
        log(level, message, std::span<const Field>(fields.begin(), fields.size()));
    }
    void log(Level level, std::string_view message, std::span<const Field> fields);

    // Blocks until every line logged before the call has been handed to the sink. Call it at
    // shutdown; never from inside a sink callback (that is the writer thread).
    void flush();
    // Flushes, then sends later lines to fd (not closed by the logger) or to a callback.
    void set_sink(int fd);
    void set_sink(Sink sink);

    // Lines dropped because the buffer was full or the sink failed.
    std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  private:
    void start();
    void enqueue(std::string_view line);
    void writer_loop();
    void write_batch(std::string_view batch);
    void count_dropped(std::uint64_t lines);
    void append_service(std::string& out);

    std::atomic<int> level_{static_cast<int>(Level::Info)};
    const std::size_t capacity_;
    Counter& dropped_metric_;
    std::atomic<std::uint64_t> dropped_{0};

    // service_ changes rarely; threads keep a copy and refresh it when the generation moves.
    std::mutex service_mutex_;
    std::string service_ = "aether";
    std::atomic<std::uint64_t> service_generation_;

    std::mutex mutex_;
    std::condition_variable wake_writer_;
    std::condition_variable drained_;
    std::string pending_;
    // Under load the writer polls every kBatchWindow instead of being notified per line (a
    // futex wake per line would cost more than formatting it); after a quiet window it sleeps
    // until the next line arrives.
    enum class WriterState { Busy, Polling, Sleeping };
    WriterState writer_state_ = WriterState::Busy;
    bool flush_requested_ = false;  // a flush() waits: write without gathering first
    bool stopping_ = false;
    std::uint64_t enqueued_bytes_ = 0;  // total ever accepted
    std::uint64_t written_bytes_ = 0;   // total ever handed to the sink (or given up on)

    std::mutex sink_mutex_;  // held by the writer while it writes a batch
    Sink sink_;
    int fd_ = 1;

    std::thread writer_;
};

inline void log_debug(std::string_view message, std::initializer_list<Field> fields = {}) {
    auto& logger = Logger::instance();
    if (logger.enabled(Level::Debug)) logger.log(Level::Debug, message, fields);
}
inline void log_info(std::string_view message, std::initializer_list<Field> fields = {}) {
    auto& logger = Logger::instance();
    if (logger.enabled(Level::Info)) logger.log(Level::Info, message, fields);
}
inline void log_warn(std::string_view message, std::initializer_list<Field> fields = {}) {
    auto& logger = Logger::instance();
    if (logger.enabled(Level::Warn)) logger.log(Level::Warn, message, fields);
}
inline void log_error(std::string_view message, std::initializer_list<Field> fields = {}) {
    auto& logger = Logger::instance();
    if (logger.enabled(Level::Error)) logger.log(Level::Error, message, fields);
}

}  // namespace aether::platform::telemetry
