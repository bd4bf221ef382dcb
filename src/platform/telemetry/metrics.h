// Prometheus metrics: a registry of labelled counter/gauge/histogram families with lock-free
// updates, callback gauges, and the text exposition format 0.0.4 served at /metrics.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace aether::platform::telemetry {

namespace detail {

// Doubles live in atomic<uint64_t> as their bit pattern: lock-free on every target we build.
inline double load_double(const std::atomic<std::uint64_t>& bits) {
    return std::bit_cast<double>(bits.load(std::memory_order_relaxed));
}

inline void add_double(std::atomic<std::uint64_t>& bits, double delta) {
    std::uint64_t old = bits.load(std::memory_order_relaxed);
    while (!bits.compare_exchange_weak(
        old, std::bit_cast<std::uint64_t>(std::bit_cast<double>(old) + delta),
        std::memory_order_relaxed)) {
    }
}

}  // namespace detail

// Monotonic. Whole-number increments (the common inc()) are a single fetch_add; fractional
// ones go through a CAS loop on a separate double so neither loses precision to the other.
class alignas(64) Counter {
  public:
    void inc(double delta = 1.0) {
        if (delta == 1.0) {
            whole_.fetch_add(1, std::memory_order_relaxed);
        } else {
            inc_slow(delta);
        }
    }
    double value() const;

  private:
    template <class>
    friend class Family;
    void inc_slow(double delta);
    std::uint64_t whole() const { return whole_.load(std::memory_order_relaxed); }
    double fraction() const { return detail::load_double(fraction_bits_); }

    std::atomic<std::uint64_t> whole_{0};
    std::atomic<std::uint64_t> fraction_bits_{0};
};

class alignas(64) Gauge {
  public:
    void set(double value) {
        bits_.store(std::bit_cast<std::uint64_t>(value), std::memory_order_relaxed);
    }
    void inc(double delta = 1.0) { detail::add_double(bits_, delta); }
    void dec(double delta = 1.0) { detail::add_double(bits_, -delta); }
    double value() const { return detail::load_double(bits_); }

  private:
    std::atomic<std::uint64_t> bits_{0};
};

class alignas(64) Histogram {
  public:
    struct Snapshot {
        std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (== count)
        std::uint64_t count = 0;
        double sum = 0;
    };

    // bounds must outlive the histogram (the family owns them).
    explicit Histogram(std::span<const double> bounds);

    // NaN is ignored: it would poison _sum for the rest of the process.
    void observe(double value);
    Snapshot snapshot() const;
    std::span<const double> bounds() const { return bounds_; }

  private:
    std::span<const double> bounds_;
    // Non-cumulative per-bucket counts, the last one for +Inf; _count is their total, so a
    // scrape never shows a _count that disagrees with the +Inf bucket.
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
    std::atomic<std::uint64_t> sum_bits_{0};
};

enum class MetricType { Counter, Gauge, Histogram };

class MetricFamily {
  public:
    MetricFamily(std::string name, std::string help, MetricType type,
                 std::vector<std::string> label_names, std::vector<double> bounds = {});
    virtual ~MetricFamily() = default;
    MetricFamily(const MetricFamily&) = delete;
    MetricFamily& operator=(const MetricFamily&) = delete;

    const std::string& name() const { return name_; }
    const std::string& help() const { return help_; }
    MetricType type() const { return type_; }
    const std::vector<std::string>& label_names() const { return label_names_; }
    const std::vector<double>& bounds() const { return bounds_; }

    // Appends "# HELP", "# TYPE" and the samples of this family.
    virtual void expose(std::string& out) const = 0;

  protected:
    void expose_header(std::string& out) const;

    std::string name_;
    std::string help_;
    MetricType type_;
    std::vector<std::string> label_names_;
    std::vector<double> bounds_;
};

// One metric name with a fixed set of label names; with() finds or creates the child for a
// set of label values. The returned reference is valid for the registry's lifetime, so hot
// paths look it up once and keep it.
template <class Metric>
class Family final : public MetricFamily {
  public:
    using MetricFamily::MetricFamily;

    // Throws std::invalid_argument when the number of values differs from the label names.
    Metric& with(std::initializer_list<std::string_view> label_values) {
        return with(std::span<const std::string_view>(label_values.begin(), label_values.size()));
    }
    Metric& with(std::span<const std::string_view> label_values);
    Metric& with(const std::vector<std::string>& label_values);
    // The only child of a family without labels.
    Metric& with() { return with(std::span<const std::string_view>{}); }

    void expose(std::string& out) const override;

  private:
    struct Child;
    mutable std::shared_mutex mutex_;
    std::unordered_map<std::string, std::unique_ptr<Child>> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10: HTTP latencies in seconds.
std::vector<double> default_http_buckets();

enum class ProcessMetrics { Include, Exclude };

class Registry {
  public:
    // With Include, expose() also reports process_* metrics read from /proc/self.
    explicit Registry(ProcessMetrics process_metrics = ProcessMetrics::Include);
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Registering an existing name returns the existing family when type, label names (and
    // buckets) match, and throws std::logic_error when they do not. Invalid metric or label
    // names (Prometheus rules) throw std::invalid_argument. Empty buckets mean the default;
    // a trailing +Inf bound is implied and may be omitted.
    CounterFamily& counter(std::string name, std::string help,
                           std::vector<std::string> label_names = {});
    GaugeFamily& gauge(std::string name, std::string help,
                       std::vector<std::string> label_names = {});
    HistogramFamily& histogram(std::string name, std::string help,
                               std::vector<std::string> label_names = {},
                               std::vector<double> buckets = default_http_buckets());

    // A gauge whose value is computed at exposition time (queue depth, pool size); NaN or an
    // exception leaves the series out of that scrape. The function runs under the registry's
    // lock, so it must not call back into the registry. Registering the same name again
    // replaces the function; call remove_callback() before whatever it captures is destroyed.
    void gauge_callback(std::string name, std::string help, std::function<double()> value);
    void counter_callback(std::string name, std::string help, std::function<double()> value);
    // Unregisters a callback metric (its captures may be about to die); false if none.
    bool remove_callback(std::string_view name);

    // Text exposition format 0.0.4, families sorted by name and children by label values.
    std::string expose() const;

  private:
    template <class F>
    F& get_or_create(std::string name, std::string help, MetricType type,
                     std::vector<std::string> label_names, std::vector<double> bounds);
    void add_callback(std::string name, std::string help, MetricType type,
                      std::function<double()> value);
    void claim_sample_names(const std::string& name, MetricType type);

    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<MetricFamily>, std::less<>> families_;
    // Sample names (foo, foo_bucket, foo_sum, foo_count) to the family that emits them, so two
    // families can never produce the same series name.
    std::map<std::string, std::string, std::less<>> sample_names_;
};

// The process-wide registry that /metrics exposes.
Registry& default_registry();

// Prometheus text-format helpers, shared with tests and anything emitting exposition by hand.
bool is_valid_metric_name(std::string_view name);
bool is_valid_label_name(std::string_view name);
void append_label_value(std::string& out, std::string_view value);
void append_sample_value(std::string& out, double value);

}  // namespace aether::platform::telemetry
