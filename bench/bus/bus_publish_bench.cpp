// Publish throughput with confirms and end-to-end latency of the RabbitMQ bus (run by
// bench/bus/compare.sh against a private broker):
//   bus_publish_bench URL publish COUNT [BATCH]
//       COUNT events the size of task.created through publish_batch, BATCH (100) at a time and
//       each batch confirmed before the next, as the outbox relay publishes; prints one line
//       `publish events=… body_bytes=… seconds=… events_per_s=… failed=…`
//   bus_publish_bench URL latency RATE SECONDS
//       a transient queue bound to the bench type; RATE events/s for SECONDS, each carrying its
//       send time; prints `latency … received=… p50_us=… p99_us=… max_us=…` of receive - send
// The driver's log goes to stderr. Exit status 1 when an event was refused or lost, 2 on bad
// arguments.
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "platform/bus/bus.h"
#include "platform/bus/rabbitmq_bus.h"
#include "platform/telemetry/log.h"

namespace {

namespace asio = boost::asio;
namespace bus = aether::platform::bus;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Not task.created itself: a bench run must not feed the queues of modules sharing the broker.
constexpr std::string_view kType = "bench.task.created";
// The longest the latency run waits for its last deliveries after the last publish.
constexpr auto kDrainLimit = 10s;

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
        .count();
}

// An event shaped like the tasks module's task.created (module.cpp, created_event), plus the
// steady-clock time it was handed to the bus; the consumer runs in the same process, so the
// clocks agree.
bus::Event bench_event(std::uint64_t n) {
    char task_id[40];
    std::snprintf(task_id, sizeof task_id, "task_%026llu", static_cast<unsigned long long>(n));
    auto event = bus::make_event("tasks", std::string(kType), boost::json::object());
    event.data["task_id"] = task_id;
    event.data["title"] = "Benchmark task " + std::to_string(n);
    event.data["priority"] = "medium";
    event.data["created_by"] = "usr_01JBENCHBENCHBENCHBENCHBEN";
    event.data["timestamp"] = event.time;
    event.data["sent_us"] = now_us();
    return event;
}

struct PublishReport {
    std::size_t published = 0;
    std::size_t failed = 0;
    std::string first_error;
    double seconds = 0;
};

asio::awaitable<void> publish_throughput(bus::Bus& bus, std::size_t count, std::size_t batch,
                                         PublishReport& report) {
    co_await bus.start();
    if (!bus.healthy()) throw std::runtime_error("could not connect to the broker");
    auto started = Clock::now();
    while (report.published < count) {
        std::size_t n = std::min(batch, count - report.published);
        std::vector<bus::Event> events;
        events.reserve(n);
        for (std::size_t i = 0; i < n; ++i) events.push_back(bench_event(report.published + i));
        auto outcomes = co_await bus.publish_batch(std::move(events));
        for (const auto& outcome : outcomes) {
            if (outcome.empty()) continue;
            if (report.failed++ == 0) report.first_error = outcome;
        }
        report.published += n;
    }
    report.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    co_await bus.stop();
}

struct LatencyState {
    std::vector<std::int64_t> latencies_us;  // one per delivery, receive - send
    std::size_t in_flight = 0;               // publishes awaiting their confirm
    std::size_t failed = 0;
    std::string first_error;
    std::size_t sent = 0;
    double send_seconds = 0;
};

asio::awaitable<void> publish_one(bus::Bus& bus, bus::Event event, LatencyState& state) {
    try {
        co_await bus.publish(std::move(event));
    } catch (const std::exception& error) {
        if (state.failed++ == 0) state.first_error = error.what();
    }
    --state.in_flight;
}

// Each publish runs as its own coroutine, so that a slow confirm does not delay the next send:
// the schedule stays RATE per second and the latency measured is the bus's, not a queue's in
// this program. Sends are due at fixed instants from the start (a late one goes at once).
asio::awaitable<void> measure_latency(bus::Bus& bus, double rate, double seconds,
                                      LatencyState& state) {
    co_await bus.start();
    if (!bus.healthy()) throw std::runtime_error("could not connect to the broker");
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor);
    auto total = static_cast<std::size_t>(std::llround(rate * seconds));
    std::chrono::duration<double> period(1.0 / rate);
    auto started = Clock::now();
    for (std::size_t i = 0; i < total; ++i) {
        timer.expires_at(started + std::chrono::duration_cast<Clock::duration>(period * i));
        co_await timer.async_wait(asio::use_awaitable);
        ++state.in_flight;
        ++state.sent;
        asio::co_spawn(executor, publish_one(bus, bench_event(i), state), asio::detached);
    }
    state.send_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    // The handler and the confirms run on this executor: polling here sees their counts.
    auto deadline = Clock::now() + kDrainLimit;
    while ((state.in_flight > 0 || state.latencies_us.size() + state.failed < total) &&
           Clock::now() < deadline) {
        timer.expires_after(5ms);
        co_await timer.async_wait(asio::use_awaitable);
    }
    co_await bus.stop();
}

std::int64_t percentile(const std::vector<std::int64_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

template <class Number>
bool parse_number(std::string_view text, Number& out) {
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc() && end == text.data() + text.size() && out > 0;
}

// Runs `task` on io to completion; rethrows its failure.
void run(asio::io_context& io, asio::awaitable<void> task) {
    std::exception_ptr failure;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr error) {
        failure = error;
        io.stop();
    });
    io.run();
    if (failure) std::rethrow_exception(failure);
}

int usage() {
    std::cerr << "usage: bus_publish_bench URL publish COUNT [BATCH]\n"
                 "       bus_publish_bench URL latency RATE SECONDS\n";
    return 2;
}

bus::RabbitMqOptions options_for(std::string url) {
    bus::RabbitMqOptions options;
    options.url = std::move(url);
    options.connection_name = "aether-bus-bench";
    return options;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    if (args.size() < 3) return usage();
    // The driver's log lines go to stderr: stdout carries only the result line.
    aether::platform::telemetry::Logger::instance().set_sink(STDERR_FILENO);
    asio::io_context io;
    auto made = bus::make_rabbitmq_bus(options_for(std::string(args[0])), io.get_executor());
    if (!made) {
        std::cerr << made.error() << "\n";
        return 2;
    }
    auto& driver = **made;
    try {
        if (args[1] == "publish" && args.size() <= 4) {
            std::size_t count = 0;
            std::size_t batch = 100;
            if (!parse_number(args[2], count)) return usage();
            if (args.size() == 4 && !parse_number(args[3], batch)) return usage();
            // More would fail at once: the driver bounds the publishes it holds.
            if (batch > bus::RabbitMqOptions().max_pending_publishes) return usage();
            PublishReport report;
            run(io, publish_throughput(driver, count, batch, report));
            auto body_bytes = bus::to_json(bench_event(count)).size();
            std::printf(
                "publish events=%zu batch=%zu body_bytes=%zu seconds=%.3f events_per_s=%.0f "
                "failed=%zu\n",
                report.published, batch, body_bytes, report.seconds,
                static_cast<double>(report.published) / report.seconds, report.failed);
            if (report.failed > 0) {
                std::cerr << "first failure: " << report.first_error << "\n";
                return 1;
            }
            return 0;
        }
        if (args[1] == "latency" && args.size() == 4) {
            double rate = 0;
            double seconds = 0;
            if (!parse_number(args[2], rate) || !parse_number(args[3], seconds)) return usage();
            LatencyState state;
            state.latencies_us.reserve(static_cast<std::size_t>(rate * seconds) + 16);
            bus::Subscription subscription;
            subscription.queue = "bench.latency." + std::to_string(now_us());
            subscription.bindings = {std::string(kType)};
            subscription.transient = true;
            subscription.handler =
                [&state](const bus::Delivery& delivery) -> asio::awaitable<void> {
                auto received = now_us();
                if (const auto* sent = delivery.event.data.if_contains("sent_us")) {
                    state.latencies_us.push_back(received - sent->to_number<std::int64_t>());
                }
                co_return;
            };
            driver.subscribe(std::move(subscription));
            run(io, measure_latency(driver, rate, seconds, state));
            auto sorted = state.latencies_us;
            std::sort(sorted.begin(), sorted.end());
            std::printf(
                "latency rate=%.0f seconds=%.1f sent=%zu achieved_per_s=%.0f received=%zu "
                "failed=%zu p50_us=%lld p99_us=%lld max_us=%lld prefetch=%d\n",
                rate, seconds, state.sent, static_cast<double>(state.sent) / state.send_seconds,
                sorted.size(), state.failed, static_cast<long long>(percentile(sorted, 0.50)),
                static_cast<long long>(percentile(sorted, 0.99)),
                static_cast<long long>(sorted.empty() ? 0 : sorted.back()),
                bus::Subscription().prefetch);
            if (state.failed > 0) std::cerr << "first failure: " << state.first_error << "\n";
            return state.failed > 0 || sorted.size() < state.sent ? 1 : 0;
        }
        return usage();
    } catch (const std::exception& error) {
        std::cerr << "bus_publish_bench: " << error.what() << "\n";
        return 1;
    }
}
