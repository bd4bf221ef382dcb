// Prometheus registry and text exposition; process_* metrics come from /proc/self.
#include "platform/telemetry/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace aether::platform::telemetry {
namespace {

// Largest double below which every integer is exact; whole increments under it can use the
// integer counter without rounding.
constexpr double kMaxExactWhole = 9007199254740992.0;

bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

std::string_view type_name(MetricType type) {
    switch (type) {
        case MetricType::Counter:
            return "counter";
        case MetricType::Gauge:
            return "gauge";
        case MetricType::Histogram:
            return "histogram";
    }
    return "untyped";
}

void append_uint(std::string& out, std::uint64_t value) {
    char buf[24];
    const auto result = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, result.ptr);
}

void append_help_text(std::string& out, std::string_view help) {
    for (char c : help) {
        if (c == '\\') {
            out.append("\\\\");
        } else if (c == '\n') {
            out.append("\\n");
        } else {
            out.push_back(c);
        }
    }
}

// Joins label values unambiguously (length-prefixed) into a hash-map key.
std::string child_key(std::span<const std::string_view> values) {
    std::string key;
    for (auto v : values) {
        append_uint(key, v.size());
        key.push_back(':');
        key.append(v);
    }
    return key;
}

// `{a="x",b="y"` without the closing brace, so histograms can append `,le="..."`.
std::string label_prefix(const std::vector<std::string>& names,
                         std::span<const std::string_view> values) {
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i) {
        out.push_back(i == 0 ? '{' : ',');
        out.append(names[i]);
        out.append("=\"");
        append_label_value(out, values[i]);
        out.push_back('"');
    }
    return out;
}

void append_series(std::string& out, std::string_view name, std::string_view suffix,
                   const std::string& labels) {
    out.append(name);
    out.append(suffix);
    if (!labels.empty()) {
        out.append(labels);
        out.push_back('}');
    }
    out.push_back(' ');
}

void validate_names(const std::string& name, const std::vector<std::string>& label_names,
                    MetricType type) {
    if (!is_valid_metric_name(name))
        throw std::invalid_argument("invalid metric name '" + name + "'");
    for (std::size_t i = 0; i < label_names.size(); ++i) {
        const auto& label = label_names[i];
        if (!is_valid_label_name(label))
            throw std::invalid_argument("invalid label name '" + label + "' on " + name);
        if (type == MetricType::Histogram && label == "le")
            throw std::invalid_argument("histogram " + name + " cannot use the label 'le'");
        for (std::size_t j = 0; j < i; ++j)
            if (label_names[j] == label)
                throw std::invalid_argument("duplicate label '" + label + "' on " + name);
    }
}

std::vector<double> validate_buckets(const std::string& name, std::vector<double> buckets) {
    // A histogram with only +Inf says nothing about a distribution, so `{}` means "the default".
    if (buckets.empty()) buckets = default_http_buckets();
    if (!buckets.empty() && std::isinf(buckets.back()) && buckets.back() > 0) buckets.pop_back();
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        if (!std::isfinite(buckets[i]))
            throw std::invalid_argument("histogram " + name + " has a non-finite bucket");
        if (i > 0 && !(buckets[i - 1] < buckets[i]))
            throw std::invalid_argument("histogram " + name + " buckets must strictly increase");
    }
    return buckets;
}

class CallbackFamily final : public MetricFamily {
  public:
    CallbackFamily(std::string name, std::string help, MetricType type,
                   std::function<double()> value)
        : MetricFamily(std::move(name), std::move(help), type, {}), value_(std::move(value)) {}

    void set_value(std::function<double()> value) { value_ = std::move(value); }

    void expose(std::string& out) const override {
        double v = std::numeric_limits<double>::quiet_NaN();
        try {
            v = value_();
        } catch (const std::exception&) {
            // One failing probe must not take the whole scrape down with it.
        }
        // NaN means "no reading" (say /proc is unavailable): the series is left out.
        if (std::isnan(v)) return;
        expose_header(out);
        out.append(name_);
        out.push_back(' ');
        append_sample_value(out, v);
        out.push_back('\n');
    }

  private:
    std::function<double()> value_;
};

// --- /proc/self readers. Each returns NaN when the file cannot be read.

double read_statm_pages(int field) {
    std::ifstream in("/proc/self/statm");
    double value = 0;
    for (int i = 0; i <= field; ++i)
        if (!(in >> value)) return std::numeric_limits<double>::quiet_NaN();
    return value * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

// Fields of /proc/self/stat after the command name (which may contain spaces and parens);
// index 0 is field 3 ("state") of proc(5).
std::vector<std::string> read_stat_fields() {
    std::ifstream in("/proc/self/stat");
    std::string line;
    std::getline(in, line);
    const auto close = line.rfind(')');
    std::vector<std::string> fields;
    if (close == std::string::npos) return fields;
    std::istringstream rest(line.substr(close + 1));
    for (std::string field; rest >> field;) fields.push_back(std::move(field));
    return fields;
}

constexpr std::size_t kUtimeIndex = 11;      // field 14
constexpr std::size_t kStimeIndex = 12;      // field 15
constexpr std::size_t kStarttimeIndex = 19;  // field 22

double cpu_seconds() {
    const auto fields = read_stat_fields();
    if (fields.size() <= kStimeIndex) return std::numeric_limits<double>::quiet_NaN();
    const double ticks = std::stod(fields[kUtimeIndex]) + std::stod(fields[kStimeIndex]);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double start_time_seconds() {
    // Fixed for the life of the process, so read once.
    static const double value = [] {
        const auto fields = read_stat_fields();
        std::ifstream stat("/proc/stat");
        double boot_time = std::numeric_limits<double>::quiet_NaN();
        for (std::string key; stat >> key;) {
            if (key == "btime") {
                stat >> boot_time;
                break;
            }
            stat.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
        }
        if (fields.size() <= kStarttimeIndex) return std::numeric_limits<double>::quiet_NaN();
        return boot_time +
               std::stod(fields[kStarttimeIndex]) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }();
    return value;
}

double open_fds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return std::numeric_limits<double>::quiet_NaN();
    double count = 0;
    while (const dirent* entry = ::readdir(dir))
        if (entry->d_name[0] != '.') ++count;
    ::closedir(dir);
    return count - 1;  // the descriptor opendir itself used
}

double max_fds() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return std::numeric_limits<double>::quiet_NaN();
    return static_cast<double>(limit.rlim_cur);
}

}  // namespace

// --- helpers

bool is_valid_metric_name(std::string_view name) {
    if (name.empty() || !(is_name_start(name[0]) || name[0] == ':')) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return is_name_char(c) || c == ':'; });
}

bool is_valid_label_name(std::string_view name) {
    if (name.empty() || !is_name_start(name[0])) return false;
    if (name.starts_with("__")) return false;  // reserved for Prometheus itself
    return std::all_of(name.begin(), name.end(), is_name_char);
}

void append_label_value(std::string& out, std::string_view value) {
    for (char c : value) {
        switch (c) {
            case '\\':
                out.append("\\\\");
                break;
            case '"':
                out.append("\\\"");
                break;
            case '\n':
                out.append("\\n");
                break;
            default:
                out.push_back(c);
        }
    }
}

void append_sample_value(std::string& out, double value) {
    if (std::isnan(value)) {
        out.append("NaN");
    } else if (std::isinf(value)) {
        out.append(value > 0 ? "+Inf" : "-Inf");
    } else {
        // Shortest round-trip digits, but plain decimals in the everyday range: "0.0005" rather
        // than "5e-04", so `le` labels read naturally and match other clients' series.
        char buf[400];
        const double magnitude = std::fabs(value);
        const bool plain = value == 0 || (magnitude >= 1e-4 && magnitude < 1e21);
        const auto result =
            plain ? std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed)
                  : std::to_chars(buf, buf + sizeof buf, value);
        out.append(buf, result.ptr);
    }
}

std::vector<double> default_http_buckets() {
    return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// --- metrics

void Counter::inc_slow(double delta) {
    if (!(delta > 0)) return;  // counters only go up; also drops NaN
    if (delta < kMaxExactWhole && delta == std::trunc(delta)) {
        whole_.fetch_add(static_cast<std::uint64_t>(delta), std::memory_order_relaxed);
    } else {
        detail::add_double(fraction_bits_, delta);
    }
}

double Counter::value() const {
    return static_cast<double>(whole()) + fraction();
}

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(new std::atomic<std::uint64_t>[bounds.size() + 1]) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i)
        counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) {
    if (std::isnan(value)) return;
    std::size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    detail::add_double(sum_bits_, value);
}

Histogram::Snapshot Histogram::snapshot() const {
    Snapshot snap;
    snap.cumulative.reserve(bounds_.size() + 1);
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        snap.count += counts_[i].load(std::memory_order_relaxed);
        snap.cumulative.push_back(snap.count);
    }
    snap.sum = detail::load_double(sum_bits_);
    return snap;
}

// --- families

MetricFamily::MetricFamily(std::string name, std::string help, MetricType type,
                           std::vector<std::string> label_names, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {}

void MetricFamily::expose_header(std::string& out) const {
    out.append("# HELP ");
    out.append(name_);
    out.push_back(' ');
    append_help_text(out, help_);
    out.append("\n# TYPE ");
    out.append(name_);
    out.push_back(' ');
    out.append(type_name(type_));
    out.push_back('\n');
}

template <class Metric>
struct Family<Metric>::Child {
    template <class... Args>
    Child(std::vector<std::string> values, std::string labels, Args&&... args)
        : label_values(std::move(values)),
          label_text(std::move(labels)),
          metric(std::forward<Args>(args)...) {}

    std::vector<std::string> label_values;
    std::string label_text;
    Metric metric;
};

template <class Metric>
Metric& Family<Metric>::with(std::span<const std::string_view> label_values) {
    if (label_values.size() != label_names_.size()) {
        throw std::invalid_argument(name_ + " takes " + std::to_string(label_names_.size()) +
                                    " label values, got " + std::to_string(label_values.size()));
    }
    std::string key = child_key(label_values);
    {
        std::shared_lock lock(mutex_);
        if (auto it = children_.find(key); it != children_.end()) return it->second->metric;
    }
    std::unique_lock lock(mutex_);
    auto& slot = children_[std::move(key)];
    if (!slot) {
        std::vector<std::string> values(label_values.begin(), label_values.end());
        std::string labels = label_prefix(label_names_, label_values);
        if constexpr (std::is_same_v<Metric, Histogram>) {
            slot = std::make_unique<Child>(std::move(values), std::move(labels),
                                           std::span<const double>(bounds_));
        } else {
            slot = std::make_unique<Child>(std::move(values), std::move(labels));
        }
    }
    return slot->metric;
}

template <class Metric>
Metric& Family<Metric>::with(const std::vector<std::string>& label_values) {
    std::vector<std::string_view> views(label_values.begin(), label_values.end());
    return with(std::span<const std::string_view>(views));
}

template <class Metric>
void Family<Metric>::expose(std::string& out) const {
    std::vector<const Child*> children;
    {
        std::shared_lock lock(mutex_);
        children.reserve(children_.size());
        for (const auto& [key, child] : children_) children.push_back(child.get());
    }
    std::sort(children.begin(), children.end(),
              [](const Child* a, const Child* b) { return a->label_values < b->label_values; });
    expose_header(out);
    for (const Child* child : children) {
        const auto& labels = child->label_text;
        if constexpr (std::is_same_v<Metric, Histogram>) {
            const auto snap = child->metric.snapshot();
            for (std::size_t i = 0; i < snap.cumulative.size(); ++i) {
                out.append(name_);
                out.append("_bucket");
                out.append(labels.empty() ? "{" : labels);
                if (!labels.empty()) out.push_back(',');
                out.append("le=\"");
                if (i < bounds_.size()) {
                    append_sample_value(out, bounds_[i]);
                } else {
                    out.append("+Inf");
                }
                out.append("\"} ");
                append_uint(out, snap.cumulative[i]);
                out.push_back('\n');
            }
            append_series(out, name_, "_sum", labels);
            append_sample_value(out, snap.sum);
            out.push_back('\n');
            append_series(out, name_, "_count", labels);
            append_uint(out, snap.count);
            out.push_back('\n');
        } else if constexpr (std::is_same_v<Metric, Counter>) {
            append_series(out, name_, "", labels);
            const double fraction = child->metric.fraction();
            if (fraction == 0) {
                append_uint(out, child->metric.whole());
            } else {
                append_sample_value(out, child->metric.value());
            }
            out.push_back('\n');
        } else {
            append_series(out, name_, "", labels);
            append_sample_value(out, child->metric.value());
            out.push_back('\n');
        }
    }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// --- registry

Registry::Registry(ProcessMetrics process_metrics) {
    if (process_metrics == ProcessMetrics::Exclude) return;
    counter_callback("process_cpu_seconds_total",
                     "Total user and system CPU time spent in seconds.", cpu_seconds);
    gauge_callback("process_resident_memory_bytes", "Resident memory size in bytes.",
                   [] { return read_statm_pages(1); });
    gauge_callback("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                   [] { return read_statm_pages(0); });
    gauge_callback("process_start_time_seconds",
                   "Start time of the process since unix epoch in seconds.", start_time_seconds);
    gauge_callback("process_open_fds", "Number of open file descriptors.", open_fds);
    gauge_callback("process_max_fds", "Maximum number of open file descriptors.", max_fds);
}

Registry::~Registry() = default;

void Registry::claim_sample_names(const std::string& name, MetricType type) {
    std::vector<std::string> samples{name};
    if (type == MetricType::Histogram) {
        samples.push_back(name + "_bucket");
        samples.push_back(name + "_sum");
        samples.push_back(name + "_count");
    }
    for (const auto& sample : samples) {
        if (auto it = sample_names_.find(sample); it != sample_names_.end())
            throw std::logic_error("metric " + name + " would emit " + sample +
                                   ", already emitted by " + it->second);
    }
    for (auto& sample : samples) sample_names_.emplace(std::move(sample), name);
}

template <class F>
F& Registry::get_or_create(std::string name, std::string help, MetricType type,
                           std::vector<std::string> label_names, std::vector<double> bounds) {
    validate_names(name, label_names, type);
    std::lock_guard lock(mutex_);
    if (auto it = families_.find(name); it != families_.end()) {
        auto* existing = dynamic_cast<F*>(it->second.get());
        if (existing == nullptr || existing->type() != type)
            throw std::logic_error("metric " + name + " is already registered with another type");
        if (existing->label_names() != label_names)
            throw std::logic_error("metric " + name + " is already registered with other labels");
        if (existing->bounds() != bounds)
            throw std::logic_error("metric " + name + " is already registered with other buckets");
        return *existing;
    }
    claim_sample_names(name, type);
    auto family =
        std::make_unique<F>(name, std::move(help), type, std::move(label_names), std::move(bounds));
    F& ref = *family;
    // A family without labels has exactly one series; it is reported (as 0) from the start.
    if (ref.label_names().empty()) ref.with();
    families_.emplace(std::move(name), std::move(family));
    return ref;
}

CounterFamily& Registry::counter(std::string name, std::string help,
                                 std::vector<std::string> label_names) {
    return get_or_create<CounterFamily>(std::move(name), std::move(help), MetricType::Counter,
                                        std::move(label_names), {});
}

GaugeFamily& Registry::gauge(std::string name, std::string help,
                             std::vector<std::string> label_names) {
    return get_or_create<GaugeFamily>(std::move(name), std::move(help), MetricType::Gauge,
                                      std::move(label_names), {});
}

HistogramFamily& Registry::histogram(std::string name, std::string help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> buckets) {
    auto bounds = validate_buckets(name, std::move(buckets));
    return get_or_create<HistogramFamily>(std::move(name), std::move(help), MetricType::Histogram,
                                          std::move(label_names), std::move(bounds));
}

void Registry::add_callback(std::string name, std::string help, MetricType type,
                            std::function<double()> value) {
    validate_names(name, {}, type);
    if (!value) throw std::invalid_argument("callback metric " + name + " needs a function");
    std::lock_guard lock(mutex_);
    if (auto it = families_.find(name); it != families_.end()) {
        auto* existing = dynamic_cast<CallbackFamily*>(it->second.get());
        if (existing == nullptr || existing->type() != type)
            throw std::logic_error("metric " + name + " is already registered with another type");
        existing->set_value(std::move(value));
        return;
    }
    claim_sample_names(name, type);
    auto family = std::make_unique<CallbackFamily>(name, std::move(help), type, std::move(value));
    families_.emplace(std::move(name), std::move(family));
}

void Registry::gauge_callback(std::string name, std::string help, std::function<double()> value) {
    add_callback(std::move(name), std::move(help), MetricType::Gauge, std::move(value));
}

void Registry::counter_callback(std::string name, std::string help, std::function<double()> value) {
    add_callback(std::move(name), std::move(help), MetricType::Counter, std::move(value));
}

bool Registry::remove_callback(std::string_view name) {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end() || dynamic_cast<CallbackFamily*>(it->second.get()) == nullptr)
        return false;
    sample_names_.erase(it->first);
    families_.erase(it);
    return true;
}

std::string Registry::expose() const {
    std::string out;
    out.reserve(4096);
    std::lock_guard lock(mutex_);
    for (const auto& [name, family] : families_) family->expose(out);
    return out;
}

Registry& default_registry() {
    // Never destroyed: cached metric references and the logger's writer thread may still touch
    // it while static destructors run.
    static Registry* registry = new Registry();
    return *registry;
}

}  // namespace aether::platform::telemetry
