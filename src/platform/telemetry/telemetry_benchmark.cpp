// Micro-benchmarks of the per-request telemetry work: metric updates, a log line, a trace id.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include "platform/telemetry/clock.h"
#include "platform/telemetry/log.h"
#include "platform/telemetry/metrics.h"
#include "platform/telemetry/trace.h"

namespace aether::platform::telemetry {
namespace {

void BM_CounterInc(benchmark::State& state) {
    static Registry registry(ProcessMetrics::Exclude);
    auto& counter = registry.counter("bench_total", "Bench.", {"route"}).with({"/x"});
    for (auto _ : state) counter.inc();
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
    static Registry registry(ProcessMetrics::Exclude);
    auto& histogram = registry.histogram("bench_seconds", "Bench.", {"route"}).with({"/x"});
    double v = 0.0001;
    for (auto _ : state) {
        histogram.observe(v);
        v = v < 5 ? v * 1.7 : 0.0001;
    }
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

void BM_FamilyWith(benchmark::State& state) {
    static Registry registry(ProcessMetrics::Exclude);
    auto& family =
        registry.counter("with_total", "Bench.", {"service", "method", "route", "status"});
    for (auto _ : state)
        benchmark::DoNotOptimize(&family.with({"tasks", "GET", "/api/v1/tasks/{id}", "200"}));
}
BENCHMARK(BM_FamilyWith);

void BM_FormatTimestamp(benchmark::State& state) {
    std::string out;
    for (auto _ : state) {
        out.clear();
        append_rfc3339_ms(out, std::chrono::system_clock::now());
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_FormatTimestamp);

void BM_AccessLogLine(benchmark::State& state) {
    static Logger* logger = [] {
        auto* created = new Logger();
        created->set_sink(::open("/dev/null", O_WRONLY | O_CLOEXEC));
        return created;
    }();
    const std::string request_id = "req_01JD5YQ8N3W4X2Z7K9M6P1R0ST";
    for (auto _ : state) {
        logger->log(Level::Info, "request",
                    {{"request_id", request_id},
                     {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"},
                     {"method", "GET"},
                     {"route", "/api/v1/tasks/{id}"},
                     {"status", 200},
                     {"duration_ms", 0.734}});
    }
    logger->flush();
    state.counters["dropped"] = static_cast<double>(logger->dropped());
}
BENCHMARK(BM_AccessLogLine)->Threads(1)->Threads(2);

void BM_TraceChild(benchmark::State& state) {
    auto parent = new_root();
    for (auto _ : state) {
        auto child = child_of(parent);
        benchmark::DoNotOptimize(format_traceparent(child));
    }
}
BENCHMARK(BM_TraceChild);

}  // namespace
}  // namespace aether::platform::telemetry
