#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace rampart::metrics {
namespace {

bool ValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       c == '_' || (allow_colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) {
      return false;
    }
  }
  return true;
}

void CheckNames(std::string_view name, const Labels& labels) {
  bool ok = ValidName(name, /*allow_colon=*/true);
  for (const auto& [k, v] : labels) {
    ok = ok && ValidName(k, /*allow_colon=*/false) && k != "le";
  }
  if (!ok) {
    std::fprintf(stderr, "metrics: invalid metric or label name '%.*s'\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
}

void AppendEscaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

std::string FormatValue(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrFormat("%.0f", v);
  }
  return absl::StrFormat("%.17g", v);
}

void AppendSeries(std::string& out, std::string_view name, const Labels& labels,
                  double value,
                  const std::pair<std::string, std::string>* extra = nullptr) {
  out.append(name);
  if (!labels.empty() || extra != nullptr) {
    out += '{';
    bool first = true;
    auto add = [&](const std::string& k, const std::string& v) {
      if (!first) {
        out += ',';
      }
      first = false;
      out += k;
      out += "=\"";
      AppendEscaped(out, v, /*quote=*/true);
      out += '"';
    };
    for (const auto& [k, v] : labels) {
      add(k, v);
    }
    if (extra != nullptr) {
      add(extra->first, extra->second);
    }
    out += '}';
  }
  out += ' ';
  out += FormatValue(value);
  out += '\n';
}

const char* TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AtomicAdd(std::atomic<double>& a, double d) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

}  // namespace

void Gauge::Add(double d) { AtomicAdd(value_, d); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      buckets_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    buckets_[i].store(0, std::memory_order_relaxed);
  }
}

void Histogram::Observe(double value) {
  const auto it =
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  buckets_[static_cast<size_t>(it - upper_bounds_.begin())].fetch_add(
      1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  s.cumulative.resize(upper_bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

double Histogram::Snapshot::Quantile(double q) const {
  if (count == 0 || cumulative.empty()) {
    return 0;
  }
  const double rank = q * static_cast<double>(count);
  for (size_t i = 0; i < cumulative.size(); ++i) {
    if (static_cast<double>(cumulative[i]) >= rank) {
      if (i == upper_bounds.size()) {
        // In the +Inf bucket: the best estimate is the largest finite bound.
        return upper_bounds.empty() ? 0 : upper_bounds.back();
      }
      const double lo = i == 0 ? 0 : upper_bounds[i - 1];
      const double hi = upper_bounds[i];
      const double below = i == 0 ? 0 : static_cast<double>(cumulative[i - 1]);
      const double in_bucket = static_cast<double>(cumulative[i]) - below;
      if (in_bucket <= 0) {
        return hi;
      }
      return lo + (hi - lo) * (rank - below) / in_bucket;
    }
  }
  return upper_bounds.empty() ? 0 : upper_bounds.back();
}

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
}

Registry::Family& Registry::FamilyLocked(std::string_view name,
                                         std::string_view help, Type type,
                                         const Labels& labels) {
  CheckNames(name, labels);
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{}).first;
    it->second.type = type;
    it->second.help = std::string(help);
  } else if (it->second.type != type) {
    std::fprintf(stderr, "metrics: '%s' registered with two types\n",
                 it->first.c_str());
    std::abort();
  }
  return it->second;
}

Counter& Registry::GetCounter(std::string_view name, std::string_view help,
                              const Labels& labels) {
  absl::MutexLock lock(&mu_);
  auto& slot =
      FamilyLocked(name, help, Type::kCounter, labels).counters[labels];
  if (!slot) {
    slot = std::make_unique<Counter>();
  }
  return *slot;
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help,
                          const Labels& labels) {
  absl::MutexLock lock(&mu_);
  auto& slot = FamilyLocked(name, help, Type::kGauge, labels).gauges[labels];
  if (!slot) {
    slot = std::make_unique<Gauge>();
  }
  return *slot;
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help,
                                  const Labels& labels,
                                  std::vector<double> upper_bounds) {
  absl::MutexLock lock(&mu_);
  auto& slot =
      FamilyLocked(name, help, Type::kHistogram, labels).histograms[labels];
  if (!slot) {
    slot = std::make_unique<Histogram>(std::move(upper_bounds));
  }
  return *slot;
}

void Registry::AddCollector(std::string_view name, std::string_view help,
                            Type type, Collector collector) {
  absl::MutexLock lock(&mu_);
  FamilyLocked(name, help, type, {}).collectors.push_back(std::move(collector));
}

std::string Registry::Render() const {
  // Copy what is needed under the lock; run collectors without it.
  struct View {
    std::string name;
    Type type;
    std::string help;
    std::vector<std::pair<Labels, double>> values;
    std::vector<std::pair<Labels, Histogram::Snapshot>> histograms;
    std::vector<Collector> collectors;
  };
  std::vector<View> views;
  {
    absl::MutexLock lock(&mu_);
    views.reserve(families_.size());
    for (const auto& [name, family] : families_) {
      View v{name, family.type, family.help, {}, {}, family.collectors};
      for (const auto& [labels, c] : family.counters) {
        v.values.emplace_back(labels, static_cast<double>(c->Value()));
      }
      for (const auto& [labels, g] : family.gauges) {
        v.values.emplace_back(labels, g->Value());
      }
      for (const auto& [labels, h] : family.histograms) {
        v.histograms.emplace_back(labels, h->Take());
      }
      views.push_back(std::move(v));
    }
  }
  std::string out;
  for (View& v : views) {
    for (const Collector& collect : v.collectors) {
      std::vector<Sample> samples;
      collect(samples);
      for (Sample& s : samples) {
        CheckNames(v.name, s.labels);
        v.values.emplace_back(std::move(s.labels), s.value);
      }
    }
    std::sort(v.values.begin(), v.values.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    out += "# HELP ";
    out += v.name;
    out += ' ';
    AppendEscaped(out, v.help, /*quote=*/false);
    out += "\n# TYPE ";
    out += v.name;
    out += ' ';
    out += TypeName(v.type);
    out += '\n';
    for (const auto& [labels, value] : v.values) {
      AppendSeries(out, v.name, labels, value);
    }
    for (const auto& [labels, snap] : v.histograms) {
      const std::string bucket = v.name + "_bucket";
      for (size_t i = 0; i < snap.cumulative.size(); ++i) {
        const std::pair<std::string, std::string> le{
            "le", i < snap.upper_bounds.size()
                      ? absl::StrFormat("%g", snap.upper_bounds[i])
                      : std::string("+Inf")};
        AppendSeries(out, bucket, labels,
                     static_cast<double>(snap.cumulative[i]), &le);
      }
      AppendSeries(out, v.name + "_sum", labels, snap.sum);
      AppendSeries(out, v.name + "_count", labels,
                   static_cast<double>(snap.count));
    }
  }
  return out;
}

// --- Parsing ----------------------------------------------------------------

namespace {

absl::Status LineError(size_t line, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrFormat("metrics text line %d: %s", line, std::string(why)));
}

bool ParseDouble(std::string_view s, double& v) {
  if (s == "+Inf" || s == "Inf") {
    v = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-Inf") {
    v = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "NaN") {
    v = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (s.empty() || s.size() > 64) {
    return false;
  }
  // std::from_chars for double is in GCC 12's libstdc++.
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

double ParsedMetrics::Value(std::string_view name, const Labels& labels,
                            double fallback) const {
  for (const ParsedSample& s : samples) {
    if (s.name != name) {
      continue;
    }
    const bool all = std::all_of(labels.begin(), labels.end(), [&](auto& l) {
      return std::find(s.labels.begin(), s.labels.end(), l) != s.labels.end();
    });
    if (all) {
      return s.value;
    }
  }
  return fallback;
}

absl::StatusOr<ParsedMetrics> ParsePrometheusText(std::string_view text) {
  ParsedMetrics out;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text =
        nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty()) {
      continue;
    }
    if (line[0] == '#') {
      // "# HELP name text" / "# TYPE name type"; other comments are ignored.
      if (line.substr(0, 7) == "# HELP " || line.substr(0, 7) == "# TYPE ") {
        const bool help = line[2] == 'H';
        std::string_view rest = line.substr(7);
        const size_t sp = rest.find(' ');
        const std::string_view name = rest.substr(0, sp);
        if (!ValidName(name, true)) {
          return LineError(line_no, "bad metric name in comment");
        }
        const std::string_view value = sp == std::string_view::npos
                                           ? std::string_view()
                                           : rest.substr(sp + 1);
        if (help) {
          out.help[std::string(name)] = std::string(value);
        } else {
          if (value != "counter" && value != "gauge" && value != "histogram" &&
              value != "summary" && value != "untyped") {
            return LineError(line_no, "unknown TYPE");
          }
          out.types[std::string(name)] = std::string(value);
        }
      }
      continue;
    }
    ParsedSample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') {
      ++i;
    }
    s.name = std::string(line.substr(0, i));
    if (!ValidName(s.name, true)) {
      return LineError(line_no, "bad metric name");
    }
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        const size_t eq = line.find('=', i);
        if (eq == std::string_view::npos || eq + 1 >= line.size() ||
            line[eq + 1] != '"') {
          return LineError(line_no, "bad label");
        }
        std::string key(line.substr(i, eq - i));
        if (!ValidName(key, false)) {
          return LineError(line_no, "bad label name");
        }
        std::string value;
        i = eq + 2;
        bool closed = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '\\') {
            if (i >= line.size()) {
              break;
            }
            const char e = line[i++];
            value += e == 'n' ? '\n' : e;
          } else if (c == '"') {
            closed = true;
            break;
          } else {
            value += c;
          }
        }
        if (!closed) {
          return LineError(line_no, "unterminated label value");
        }
        s.labels.emplace_back(std::move(key), std::move(value));
        if (i < line.size() && line[i] == ',') {
          ++i;
        } else if (i >= line.size() || line[i] != '}') {
          return LineError(line_no, "expected ',' or '}' after label");
        }
      }
    }
    if (i >= line.size() || line[i] != ' ') {
      return LineError(line_no, "expected a space before the value");
    }
    std::string_view value = line.substr(i + 1);
    // An optional timestamp may follow the value.
    if (const size_t sp = value.find(' '); sp != std::string_view::npos) {
      value = value.substr(0, sp);
    }
    if (!ParseDouble(value, s.value)) {
      return LineError(line_no, "bad sample value");
    }
    out.samples.push_back(std::move(s));
  }
  return out;
}

}  // namespace rampart::metrics
