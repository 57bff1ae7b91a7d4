#include "agent/daemon/event_source.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace rampart::agent {
namespace {
constexpr size_t kMaxUserBytes = kMaxTrustedUserBytes;

// The first 10 drops of a kind are logged, then every power of two: an
// attacker who writes millions of such lines cannot flood the agent's log,
// and the counters hold the exact numbers.
bool ShouldLog(uint64_t count) {
  return count <= 10 || (count & (count - 1)) == 0;
}
}  // namespace

EventSource::EventSource(const EventSourceOptions& options, Spool& spool,
                         PositionStore& positions, const BatchEncoder& encoder,
                         Clock& clock)
    : options_(options),
      spool_(spool),
      positions_(positions),
      encoder_(encoder),
      clock_(clock),
      max_events_(std::clamp(options.max_events_per_batch, 1, 5000)) {
  if (options.metrics != nullptr) {
    constexpr std::string_view kHelp =
        "Log lines not turned into events because their address could be "
        "forged: cut (over-long or unterminated) or a suspect user field.";
    dropped_[0] = &options.metrics->GetCounter(
        "rampart_agent_log_lines_dropped_total", kHelp, {{"reason", "cut"}});
    for (int i = 1; i < kSuspicionCount; ++i) {
      dropped_[i] = &options.metrics->GetCounter(
          "rampart_agent_log_lines_dropped_total", kHelp,
          {{"reason", std::string(SuspicionName(static_cast<Suspicion>(i)))}});
    }
  }
}

absl::StatusOr<std::unique_ptr<EventSource>> EventSource::Create(
    const EventSourceOptions& options, Spool& spool, PositionStore& positions,
    const BatchEncoder& encoder, Clock& clock) {
  if (options.logs.empty() || options.logs.size() > 16) {
    return absl::InvalidArgumentError("1..16 logs required");
  }
  if (options.max_events_per_batch < 1 || options.max_events_per_batch > 5000) {
    return absl::InvalidArgumentError("max_events_per_batch must be 1..5000");
  }
  if (options.flush_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("flush_interval must be positive");
  }
  auto source = std::unique_ptr<EventSource>(
      new EventSource(options, spool, positions, encoder, clock));
  for (size_t i = 0; i < options.logs.size(); ++i) {
    Source s;
    s.config = options.logs[i];
    s.id = static_cast<uint32_t>(i + 1);
    s.key = PositionStore::KeyForPath(s.config.path);
    std::optional<TailPosition> saved;
    if (auto loaded = positions.Load(s.key); loaded.ok()) {
      saved = *loaded;
    } else {
      RAMPART_LOG(Warning) << "tail position of " << s.config.path
                           << " unusable, starting afresh: " << loaded.status();
    }
    TailerOptions topts;
    topts.path = s.config.path;
    topts.start_at = options.read_existing_logs
                         ? TailerOptions::Start::kBeginning
                         : TailerOptions::Start::kEnd;
    ASSIGN_OR_RETURN(s.tailer, Tailer::Create(topts, saved));
    s.parser = std::make_unique<DominoParser>(
        DominoParserOptions{.date_order = s.config.date_order,
                            .successes = options.successes,
                            .tls_failures = options.tls_failures,
                            .sessions = options.sessions});
    source->sources_.push_back(std::move(s));
  }
  return source;
}

void EventSource::Dropped(const Source& source, const TailLine& line,
                          std::string_view reason, uint64_t count,
                          metrics::Counter* counter) {
  if (counter != nullptr) {
    counter->Increment();
  }
  if (ShouldLog(count)) {
    // The line is attacker-controlled: only an escaped, bounded excerpt.
    RAMPART_LOG(Warning) << "ignoring a line of " << source.config.path
                         << " at offset " << line.offset << " (" << reason
                         << ", " << count << " so far): \""
                         << absl::CHexEscape(absl::string_view(
                                line.text.data(),
                                std::min<size_t>(line.text.size(), 120)))
                         << (line.text.size() > 120 ? "\"..." : "\"");
  }
}

bool EventSource::OnLine(Source& source, const TailLine& line) {
  ++stats_.lines;
  positions_dirty_ = true;
  if (line.truncated || line.unterminated) {
    // Never parse a cut line: what ends it is not Domino's text, so an
    // attacker's user name could end it with "; connecting host <victim>".
    ++stats_.cut_lines;
    Dropped(source, line,
            line.truncated ? "longer than the line cap, cut"
                           : "no line end, possibly cut",
            stats_.cut_lines, dropped_[0]);
    return true;
  }
  ParsedLine parsed;
  if (!source.parser->Parse(line.text, &parsed)) {
    return true;
  }
  if (parsed.suspicion != Suspicion::kNone) {
    const int i = static_cast<int>(parsed.suspicion);
    ++stats_.suspect_lines[i];
    Dropped(
        source, line,
        "suspect user field: " + std::string(SuspicionName(parsed.suspicion)),
        stats_.suspect_lines[i], dropped_[i]);
    return true;
  }
  if (source.dedup.Observe(parsed)) {
    ++stats_.deduplicated;
    return true;
  }
  AgentEvent e;
  e.kind = parsed.kind;
  e.protocol = parsed.protocol;
  e.ip = parsed.ip;
  e.user.assign(parsed.user.substr(0, kMaxUserBytes));
  if (parsed.has_time) {
    e.time = absl::FromCivil(parsed.time, options_.time_zone);
    last_line_time_ = e.time;
  }
  e.observed_at = clock_.Now();
  e.log_source_id = source.id;
  e.line_offset = line.offset;
  if (open_.empty()) {
    open_since_ = e.observed_at;
  }
  if (options_.observer) {
    options_.observer(e, spool_.stats().next_sequence);
  }
  open_.push_back(std::move(e));
  ++stats_.events;
  return static_cast<int>(open_.size()) < max_events_;
}

absl::StatusOr<bool> EventSource::Poll(int max_rounds) {
  bool more = true;
  for (int round = 0; round < max_rounds && more; ++round) {
    more = false;
    uint64_t backlog = 0;
    for (Source& s : sources_) {
      absl::StatusOr<TailPollResult> r =
          s.tailer->Poll([&](const TailLine& line) { return OnLine(s, line); });
      if (!r.ok()) {
        RAMPART_LOG(Warning)
            << "tailing " << s.config.path << ": " << r.status();
        continue;
      }
      backlog += s.tailer->stats().backlog_bytes;
      more = more || r->more;
      if (static_cast<int>(open_.size()) >= max_events_) {
        RETURN_IF_ERROR(Seal());
      }
    }
    stats_.backlog_bytes = backlog;
  }
  stats_.tailer_lag =
      stats_.backlog_bytes > 0 && last_line_time_.has_value()
          ? std::max(absl::ZeroDuration(), clock_.Now() - *last_line_time_)
          : absl::ZeroDuration();
  if (!open_.empty() && clock_.Now() >= open_since_ + options_.flush_interval) {
    RETURN_IF_ERROR(Seal());
  } else if (open_.empty() && positions_dirty_) {
    SavePositions();
  }
  return more;
}

absl::Status EventSource::Seal() {
  if (!open_.empty()) {
    const std::string payload = encoder_.Encode(open_, clock_.Now());
    absl::StatusOr<uint64_t> seq =
        spool_.Append(payload, static_cast<uint32_t>(open_.size()));
    if (!seq.ok()) {
      ++stats_.append_errors;
      return seq.status();
    }
    ++stats_.batches;
    open_.clear();
    if (options_.on_sealed) {
      options_.on_sealed();
    }
  }
  SavePositions();
  return absl::OkStatus();
}

void EventSource::SavePositions() {
  if (!positions_dirty_) {
    return;
  }
  bool ok = true;
  for (Source& s : sources_) {
    if (absl::Status st = positions_.Save(s.key, s.tailer->position());
        !st.ok()) {
      ++stats_.position_errors;
      ok = false;
      RAMPART_LOG(Warning) << "saving tail position of " << s.config.path
                           << ": " << st;
    }
  }
  positions_dirty_ = !ok;
}

absl::Status EventSource::Flush() { return Seal(); }

absl::Status EventSource::Close() { return Seal(); }

void EventSource::SetMaxEventsPerBatch(int n) {
  max_events_ = std::clamp(n, 1, 5000);
}

std::optional<absl::Time> EventSource::NextFlush() const {
  if (open_.empty()) {
    return std::nullopt;
  }
  return open_since_ + options_.flush_interval;
}

}  // namespace rampart::agent
