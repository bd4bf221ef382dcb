// Tests of the metrics registry and its exposition, checked by the real `promtool`.
#include "platform/telemetry/metrics.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace aether::platform::telemetry {
namespace {

struct PromtoolResult {
    int exit_status = -1;
    std::string output;
};

// Runs `promtool check metrics` on the text (through a file: popen is one-directional).
PromtoolResult promtool_check(const std::string& exposition) {
    char path[] = "/tmp/aether_metrics_XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    std::ofstream(path, std::ios::binary) << exposition;
    const std::string command = std::string("/usr/bin/promtool check metrics < ") + path + " 2>&1";
    PromtoolResult result;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("popen failed");
    char buf[512];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) result.output.append(buf, n);
    const int status = ::pclose(pipe);
    ::unlink(path);
    result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
        ++n;
    return n;
}

TEST(Metrics, ExactExpositionOfEachType) {
    Registry registry(ProcessMetrics::Exclude);
    auto& requests = registry.counter("http_requests_total", "Requests.", {"method", "status"});
    requests.with({"GET", "200"}).inc();
    requests.with({"GET", "200"}).inc(2);
    requests.with({"DELETE", "404"}).inc(0.5);
    registry.gauge("in_flight", "In flight.").with().set(-3.25);
    auto& latency = registry.histogram("latency_seconds", "Latency.", {"route"}, {0.1, 1});
    auto& api = latency.with({"/api"});
    api.observe(0.05);
    api.observe(0.1);  // le is inclusive
    api.observe(0.5);
    api.observe(7);

    EXPECT_EQ(registry.expose(),
              "# HELP http_requests_total Requests.\n"
              "# TYPE http_requests_total counter\n"
              "http_requests_total{method=\"DELETE\",status=\"404\"} 0.5\n"
              "http_requests_total{method=\"GET\",status=\"200\"} 3\n"
              "# HELP in_flight In flight.\n"
              "# TYPE in_flight gauge\n"
              "in_flight -3.25\n"
              "# HELP latency_seconds Latency.\n"
              "# TYPE latency_seconds histogram\n"
              "latency_seconds_bucket{route=\"/api\",le=\"0.1\"} 2\n"
              "latency_seconds_bucket{route=\"/api\",le=\"1\"} 3\n"
              "latency_seconds_bucket{route=\"/api\",le=\"+Inf\"} 4\n"
              "latency_seconds_sum{route=\"/api\"} 7.65\n"
              "latency_seconds_count{route=\"/api\"} 4\n");
}

TEST(Metrics, UnlabelledHistogramAndDefaultBuckets) {
    Registry registry(ProcessMetrics::Exclude);
    auto& h = registry.histogram("job_duration_seconds", "Jobs.");
    EXPECT_EQ(h.bounds(), default_http_buckets());
    // `{}` also means the default: a +Inf-only histogram would be useless.
    auto& empty = registry.histogram("other_duration_seconds", "Other.", {}, {});
    EXPECT_EQ(empty.bounds(), default_http_buckets());
    h.with().observe(0.003);
    const auto text = registry.expose();
    EXPECT_NE(text.find("job_duration_seconds_bucket{le=\"0.0005\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("job_duration_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("job_duration_seconds_bucket{le=\"10\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("job_duration_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("job_duration_seconds_sum 0.003\n"), std::string::npos);
    EXPECT_NE(text.find("job_duration_seconds_count 1\n"), std::string::npos);
    EXPECT_EQ(count_of(text, "job_duration_seconds_bucket"), 15u);
}

TEST(Metrics, BucketsAccumulate) {
    Registry registry(ProcessMetrics::Exclude);
    auto& h = registry.histogram("size_bytes", "Sizes.", {}, {1, 2, 4, 8}).with();
    for (double v : {0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 8.0, 9.0, 100.0}) h.observe(v);
    h.observe(std::nan(""));  // ignored
    const auto snap = h.snapshot();
    EXPECT_EQ(snap.cumulative, (std::vector<std::uint64_t>{2, 4, 6, 8, 10}));
    EXPECT_EQ(snap.count, 10u);
    EXPECT_DOUBLE_EQ(snap.sum, 133.5);
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
    Registry registry(ProcessMetrics::Exclude);
    registry.counter("odd_total", "Help with \\ backslash\nand newline \"quoted\".", {"value"})
        .with({"a\\b\"c\nd"})
        .inc();
    const auto text = registry.expose();
    EXPECT_NE(text.find("# HELP odd_total Help with \\\\ backslash\\nand newline \"quoted\".\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("odd_total{value=\"a\\\\b\\\"c\\nd\"} 1\n"), std::string::npos) << text;
}

TEST(Metrics, SpecialValues) {
    std::string out;
    append_sample_value(out, std::numeric_limits<double>::infinity());
    out.push_back(' ');
    append_sample_value(out, -std::numeric_limits<double>::infinity());
    out.push_back(' ');
    append_sample_value(out, std::nan(""));
    out.push_back(' ');
    append_sample_value(out, 1e21);
    out.push_back(' ');
    append_sample_value(out, 0.1);
    out.push_back(' ');
    append_sample_value(out, 0.0005);
    out.push_back(' ');
    append_sample_value(out, 1e-5);
    out.push_back(' ');
    append_sample_value(out, 123456789012.0);
    out.push_back(' ');
    append_sample_value(out, -0.25);
    EXPECT_EQ(out, "+Inf -Inf NaN 1e+21 0.1 0.0005 1e-05 123456789012 -0.25");
}

TEST(Metrics, WithReturnsStableReferences) {
    Registry registry(ProcessMetrics::Exclude);
    auto& family = registry.counter("things_total", "Things.", {"kind"});
    Counter& a = family.with({"a"});
    for (int i = 0; i < 1000; ++i) family.with({std::to_string(i)});  // force rehashing
    EXPECT_EQ(&a, &family.with({"a"}));
    const std::string kind = "a";
    EXPECT_EQ(&a, &family.with({kind}));
    EXPECT_EQ(&a, &family.with(std::vector<std::string>{"a"}));
    // Length-prefixed keys keep ("ab","c") and ("a","bc") apart.
    auto& pair = registry.counter("pairs_total", "Pairs.", {"x", "y"});
    EXPECT_NE(&pair.with({"ab", "c"}), &pair.with({"a", "bc"}));
}

TEST(Metrics, WrongNumberOfLabelValuesThrows) {
    Registry registry(ProcessMetrics::Exclude);
    auto& family = registry.counter("things_total", "Things.", {"kind"});
    EXPECT_THROW(family.with({}), std::invalid_argument);
    EXPECT_THROW(family.with({"a", "b"}), std::invalid_argument);
}

TEST(Metrics, ReRegistrationReturnsTheSameFamilyOrThrows) {
    Registry registry(ProcessMetrics::Exclude);
    auto& first = registry.counter("jobs_total", "Jobs.", {"queue"});
    EXPECT_EQ(&first, &registry.counter("jobs_total", "Other help.", {"queue"}));
    EXPECT_THROW(registry.counter("jobs_total", "Jobs.", {"other"}), std::logic_error);
    EXPECT_THROW(registry.gauge("jobs_total", "Jobs.", {"queue"}), std::logic_error);
    auto& h = registry.histogram("wait_seconds", "Wait.", {}, {1, 2});
    EXPECT_EQ(&h, &registry.histogram("wait_seconds", "Wait.", {}, {1, 2}));
    EXPECT_THROW(registry.histogram("wait_seconds", "Wait.", {}, {1, 3}), std::logic_error);
    // Series names may not collide with a histogram's derived series.
    EXPECT_THROW(registry.counter("wait_seconds_count", "Clash."), std::logic_error);
    EXPECT_THROW(registry.gauge_callback("wait_seconds_sum", "Clash.", [] { return 1.0; }),
                 std::logic_error);
}

TEST(Metrics, InvalidNamesAreRejected) {
    Registry registry(ProcessMetrics::Exclude);
    EXPECT_THROW(registry.counter("", "x"), std::invalid_argument);
    EXPECT_THROW(registry.counter("1abc", "x"), std::invalid_argument);
    EXPECT_THROW(registry.counter("a-b", "x"), std::invalid_argument);
    EXPECT_THROW(registry.counter("ok_total", "x", {"__reserved"}), std::invalid_argument);
    EXPECT_THROW(registry.counter("ok_total", "x", {"a:b"}), std::invalid_argument);
    EXPECT_THROW(registry.counter("ok_total", "x", {"a", "a"}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h_seconds", "x", {"le"}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h_seconds", "x", {}, {2, 1}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h_seconds", "x", {}, {1, std::nan("")}),
                 std::invalid_argument);
    EXPECT_TRUE(is_valid_metric_name("ns:sub_name_total"));
    EXPECT_TRUE(is_valid_label_name("_private"));
    EXPECT_FALSE(is_valid_label_name("9lives"));
}

TEST(Metrics, TrailingInfBucketIsImplied) {
    Registry registry(ProcessMetrics::Exclude);
    auto& h =
        registry.histogram("h_seconds", "x", {}, {1, std::numeric_limits<double>::infinity()});
    EXPECT_EQ(h.bounds(), std::vector<double>{1});
    EXPECT_EQ(count_of(registry.expose(), "le=\"+Inf\""), 1u);
}

TEST(Metrics, CountersIgnoreNegativeAndNaN) {
    Counter c;
    c.inc(-5);
    c.inc(std::nan(""));
    c.inc(2.5);
    c.inc();
    EXPECT_DOUBLE_EQ(c.value(), 3.5);
    Gauge g;
    g.inc(4);
    g.dec(1.5);
    EXPECT_DOUBLE_EQ(g.value(), 2.5);
    g.set(10);
    EXPECT_DOUBLE_EQ(g.value(), 10);
}

TEST(Metrics, ConcurrentUpdatesAreExact) {
    Registry registry(ProcessMetrics::Exclude);
    auto& counters = registry.counter("hits_total", "Hits.", {"route"});
    auto& gauge = registry.gauge("level", "Level.").with();
    auto& histogram = registry.histogram("t_seconds", "T.", {}, {0.5}).with();
    constexpr int kThreads = 4;
    constexpr int kIterations = 100000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            // Each thread looks the child up itself, racing the first creation.
            Counter& hits = counters.with({"/x"});
            Counter& halves = counters.with({"/half"});
            for (int i = 0; i < kIterations; ++i) {
                hits.inc();
                halves.inc(0.5);
                gauge.inc(1);
                histogram.observe(i % 2 == 0 ? 0.25 : 1.0);
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(counters.with({"/x"}).value(), double{kThreads} * kIterations);
    EXPECT_EQ(counters.with({"/half"}).value(), double{kThreads} * kIterations / 2);
    EXPECT_EQ(gauge.value(), double{kThreads} * kIterations);
    const auto snap = histogram.snapshot();
    EXPECT_EQ(snap.count, std::uint64_t{kThreads} * kIterations);
    EXPECT_EQ(snap.cumulative[0], std::uint64_t{kThreads} * kIterations / 2);
    EXPECT_EQ(snap.sum, double{kThreads} * kIterations / 2 * 1.25);
}

TEST(Metrics, CallbacksAreEvaluatedAtExpositionAndRemovable) {
    Registry registry(ProcessMetrics::Exclude);
    double depth = 3;
    registry.gauge_callback("queue_depth", "Queued jobs.", [&] { return depth; });
    EXPECT_NE(registry.expose().find("queue_depth 3\n"), std::string::npos);
    depth = 7;
    EXPECT_NE(registry.expose().find("queue_depth 7\n"), std::string::npos);
    registry.gauge_callback("queue_depth", "Queued jobs.", [] { return 1.0; });  // replaces
    EXPECT_NE(registry.expose().find("queue_depth 1\n"), std::string::npos);
    registry.gauge_callback("broken", "Throws.", []() -> double { throw std::runtime_error("x"); });
    EXPECT_EQ(registry.expose().find("broken"), std::string::npos);
    EXPECT_TRUE(registry.remove_callback("queue_depth"));
    EXPECT_FALSE(registry.remove_callback("queue_depth"));
    EXPECT_EQ(registry.expose().find("queue_depth"), std::string::npos);
    registry.counter("plain_total", "Plain.");
    EXPECT_FALSE(registry.remove_callback("plain_total"));
    EXPECT_THROW(registry.counter_callback("plain_total", "x", [] { return 1.0; }),
                 std::logic_error);
}

TEST(Metrics, ProcessMetricsAreReported) {
    Registry registry;
    const auto text = registry.expose();
    for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ",
                             "process_start_time_seconds ", "process_open_fds ",
                             "process_virtual_memory_bytes ", "process_max_fds "}) {
        EXPECT_NE(text.find(std::string("\n") + name), std::string::npos) << name << "\n" << text;
    }
    const auto value_of = [&](const std::string& name) {
        const auto pos = text.find("\n" + name + " ");
        return std::stod(text.substr(pos + name.size() + 2));
    };
    EXPECT_GT(value_of("process_resident_memory_bytes"), 1024 * 1024);
    EXPECT_GT(value_of("process_open_fds"), 2);  // stdin, stdout, stderr at least
    // Started within the last day and not in the future.
    const double now = static_cast<double>(std::time(nullptr));
    EXPECT_LE(value_of("process_start_time_seconds"), now + 1);
    EXPECT_GT(value_of("process_start_time_seconds"), now - 86400);
    EXPECT_THROW(registry.gauge("process_open_fds", "Clash."), std::logic_error);
}

TEST(Metrics, OpenFdsFollowsOpenAndClose) {
    Registry registry;
    const auto fds = [&] {
        const auto text = registry.expose();
        const auto pos = text.find("\nprocess_open_fds ");
        return std::stod(text.substr(pos + 18));
    };
    const double before = fds();
    const int extra = ::dup(0);
    ASSERT_GE(extra, 0);
    EXPECT_EQ(fds(), before + 1);
    ::close(extra);
    EXPECT_EQ(fds(), before);
}

TEST(Metrics, PromtoolAcceptsOurExposition) {
    Registry registry;
    auto& requests = registry.counter("http_requests_total", "HTTP requests handled.",
                                      {"service", "method", "route", "status"});
    requests.with({"tasks", "GET", "/api/v1/tasks/{id}", "200"}).inc(41);
    requests.with({"tasks", "POST", "/api/v1/tasks", "201"}).inc();
    requests.with({"edge", "GET", "weird \"quoted\" \\ path\nnewline", "404"}).inc(0.25);
    auto& duration = registry.histogram("http_request_duration_seconds",
                                        "Time from request read to response ready.",
                                        {"service", "method", "route"});
    for (double v : {0.0001, 0.003, 0.02, 0.7, 12.0})
        duration.with({"tasks", "GET", "/api/v1/tasks/{id}"}).observe(v);
    duration.with({"tasks", "POST", "/api/v1/tasks"});  // a child with no observations
    registry.histogram("empty_wait_seconds", "Never observed.", {"queue"});
    registry.gauge("http_requests_in_flight", "Requests being handled right now.", {"service"})
        .with({"tasks"})
        .set(3);
    registry.gauge("temperature_celsius", "Special values.", {"kind"})
        .with({"inf"})
        .set(std::numeric_limits<double>::infinity());
    registry.gauge_callback("blocking_pool_queued_jobs", "Jobs waiting for a blocking thread.",
                            [] { return 5.0; });
    registry.counter("log_lines_dropped_total", "Log lines dropped.");

    const auto text = registry.expose();
    const auto result = promtool_check(text);
    EXPECT_EQ(result.exit_status, 0) << result.output << "\n" << text;
    EXPECT_EQ(result.output, "") << text;
}

TEST(Metrics, PromtoolCheckCanFail) {
    // The harness must be able to see a failure, or the test above proves nothing.
    const auto lint =
        promtool_check("# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n");
    EXPECT_NE(lint.exit_status, 0);
    EXPECT_NE(lint.output.find("_total"), std::string::npos) << lint.output;
    const auto broken = promtool_check("# TYPE x_total counter\nx_total{a=\"unterminated} 1\n");
    EXPECT_NE(broken.exit_status, 0);
}

TEST(Metrics, DefaultRegistryIsShared) {
    auto& a = default_registry().counter("telemetry_test_total", "Test.").with();
    a.inc();
    EXPECT_EQ(&a, &default_registry().counter("telemetry_test_total", "Test.").with());
    EXPECT_NE(default_registry().expose().find("\ntelemetry_test_total "), std::string::npos);
}

}  // namespace
}  // namespace aether::platform::telemetry
