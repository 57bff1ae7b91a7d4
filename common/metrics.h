#pragma once

// Metrics: counters, gauges and histograms rendered in the Prometheus text
// exposition format (version 0.0.4), shared by rampart-server and
// rampart-agent. Debian 12 ships no Prometheus client library, so this is a
// small one: a Registry owns metric objects; hot paths keep a reference and
// update it with relaxed atomics (no lock, no allocation); values that only
// exist at scrape time (per-agent lag, active bans) come from collectors
// called by Render().
//
// Thread-safety: Counter, Gauge and Histogram updates are lock-free and safe
// from any thread. Registry is thread-safe; references it returns stay valid
// for the Registry's lifetime. Collectors run on the thread calling Render(),
// with no Registry lock held, and must not call back into the Registry.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rampart::metrics {

// Label pairs in the order they are rendered, e.g. {{"protocol", "smtp"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count.
class Counter {
 public:
  void Increment(uint64_t n = 1) {
    value_.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A distribution over fixed upper bounds (seconds for latencies), with
// cumulative buckets as Prometheus expects.
class Histogram {
 public:
  // REQUIRES: `upper_bounds` strictly increasing and finite (+Inf is
  // implicit).
  explicit Histogram(std::vector<double> upper_bounds);

  void Observe(double value);
  void ObserveDuration(absl::Duration d) { Observe(absl::ToDoubleSeconds(d)); }

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    uint64_t count = 0;
    double sum = 0;
    // Estimated q-quantile (0 < q < 1) by linear interpolation inside the
    // bucket, as Prometheus' histogram_quantile does. 0 when empty.
    double Quantile(double q) const;
  };
  Snapshot Take() const;

 private:
  const std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Latency buckets from 100 µs to 30 s, in seconds.
std::vector<double> LatencyBuckets();

enum class Type { kCounter, kGauge, kHistogram };

// One sample produced by a collector at scrape time.
struct Sample {
  Labels labels;
  double value = 0;
};

class Registry {
 public:
  using Collector = std::function<void(std::vector<Sample>&)>;

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Get-or-create the series `name{labels}`. The first call for a name fixes
  // its help text and type; a later call with another type, or an invalid
  // metric/label name, is a programming error and aborts (names are
  // compile-time constants in our code).
  Counter& GetCounter(std::string_view name, std::string_view help,
                      const Labels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help,
                  const Labels& labels = {});
  Histogram& GetHistogram(std::string_view name, std::string_view help,
                          const Labels& labels = {},
                          std::vector<double> upper_bounds = LatencyBuckets());

  // A counter or gauge family whose samples are produced at scrape time.
  void AddCollector(std::string_view name, std::string_view help, Type type,
                    Collector collector);

  // The whole registry in the Prometheus text format, families sorted by
  // name, series by labels.
  std::string Render() const;

 private:
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
    std::vector<Collector> collectors;
  };
  Family& FamilyLocked(std::string_view name, std::string_view help, Type type,
                       const Labels& labels) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

// --- Parsing (for tests and tools that scrape /metrics) ---------------------

// One parsed sample line: `name{labels} value`.
struct ParsedSample {
  std::string name;
  Labels labels;
  double value = 0;
};
struct ParsedMetrics {
  std::map<std::string, std::string> types;  // family name -> "counter", ...
  std::map<std::string, std::string> help;
  std::vector<ParsedSample> samples;

  // Value of the first sample named `name` whose labels include all of
  // `labels`; nullopt-like NaN is avoided: returns `fallback` if none.
  double Value(std::string_view name, const Labels& labels = {},
               double fallback = -1) const;
};
// Strict parser for the text format: returns InvalidArgument with the line
// number on any malformed line. Linear in the input.
absl::StatusOr<ParsedMetrics> ParsePrometheusText(std::string_view text);

}  // namespace rampart::metrics
