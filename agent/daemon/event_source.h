#pragma once

// EventSource: the agent's read path, from log lines to spooled batches
// (docs/agent.md "Client and fallback"):
//
//   Tailer (one per log) -> DominoParser -> PairDeduplicator -> AgentEvent
//   -> open batch -> sealed at max_events or flush_interval
//   -> BatchEncoder -> Spool::Append -> PositionStore::Save (every tailer)
//
// Crash safety: tail positions are saved only at points where every line
// delivered so far is in the spool (right after a sealed batch's Append
// returned, or when the open batch is empty), so a crash never loses an
// event. The residual window: a crash after Append and before the position
// save re-reads the lines of that last batch, which are then spooled again
// under a new sequence (at-least-once; at most one batch of duplicates per
// crash). A clean Close() seals, appends and saves: no duplicates.
//
// Driven explicitly: Poll() reads what is there (tests call it directly; the
// agent's loop thread calls it after each ChangeNotifier wake-up); time
// (flush interval, observed_at) comes from the injected Clock.
//
// Thread-safety: not thread-safe; one owner thread (docs/threading.md
// "Agent"). The Spool it appends to is thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/daemon/agent_config.h"
#include "agent/daemon/agent_event.h"
#include "agent/domino/domino_parser.h"
#include "agent/domino/pair_deduplicator.h"
#include "agent/spool/spool.h"
#include "agent/tail/position_store.h"
#include "agent/tail/tailer.h"
#include "common/clock.h"
#include "common/metrics.h"

namespace rampart::agent {

struct EventSourceOptions {
  // The logs; log i gets Hello.log_sources id i + 1.
  std::vector<LogSourceConfig> logs;
  // Read logs that exist at the first start from the beginning. Default
  // false (from their end).
  bool read_existing_logs = false;
  // Parser families (DominoParserOptions).
  bool successes = false;
  bool tls_failures = true;
  bool sessions = true;
  // Zone of the log times. Default UTC.
  absl::TimeZone time_zone = absl::UTCTimeZone();
  // Seal at this many events, [1, 5000]. Default 1000.
  int max_events_per_batch = 1000;
  // Seal a non-empty batch this long after its first event. Default 500ms.
  absl::Duration flush_interval = absl::Milliseconds(500);
  // Called for every event (after dedup), e.g. by the local fallback, with
  // the sequence the batch holding it will most likely get (the spool's
  // next sequence). Optional.
  std::function<void(const AgentEvent&, uint64_t pending_sequence)> observer;
  // Called after every successful Append (wakes the sender). Optional.
  std::function<void()> on_sealed;
  // Where rampart_agent_log_lines_dropped_total{reason} is counted.
  // Optional (tests); must outlive the EventSource.
  metrics::Registry* metrics = nullptr;
};

struct EventSourceStats {
  uint64_t lines = 0;
  uint64_t events = 0;
  uint64_t deduplicated = 0;
  // Lines never parsed because the tailer cut them (longer than its cap) or
  // delivered them without their '\n' (the end of a rotated or wrapped
  // file): their end is not Domino's, so no address is taken from them.
  uint64_t cut_lines = 0;
  // Recognised lines dropped because their user field could have forged the
  // address (ParsedLine::suspicion), by Suspicion value.
  uint64_t suspect_lines[kSuspicionCount] = {};
  uint64_t batches = 0;
  uint64_t append_errors = 0;
  uint64_t position_errors = 0;
  uint64_t backlog_bytes = 0;
  // Heartbeat.tailer_lag: the clock minus the log time of the last event
  // read, while unread bytes remain (backlog_bytes > 0); zero at the end of
  // every log or before any timed event was read.
  absl::Duration tailer_lag = absl::ZeroDuration();
};

class EventSource {
 public:
  // Loads each log's saved position from `positions` (a damaged position is
  // logged and the log starts afresh) and creates the tailers. `spool`,
  // `positions`, `encoder` and `clock` must outlive the EventSource.
  // InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<EventSource>> Create(
      const EventSourceOptions& options, Spool& spool, PositionStore& positions,
      const BatchEncoder& encoder, Clock& clock);

  // Reads every log until it has nothing more (or `max_rounds` rounds, each
  // bounded per log by the tailer's byte budget), sealing full batches on
  // the way, then seals the open batch if its flush interval has passed.
  // Returns true if a log still has unread data. Tail errors are logged and
  // retried on the next call; Append errors are returned (the open batch
  // is kept and retried).
  absl::StatusOr<bool> Poll(int max_rounds = 64);

  // Seals the open batch now if it is non-empty (e.g. at shutdown), and
  // saves positions.
  absl::Status Flush();

  // Flush(), then the final position save. The EventSource must not be
  // used afterwards.
  absl::Status Close();

  // Changes the batch size (PolicyHint), clamped to [1, 5000].
  void SetMaxEventsPerBatch(int n);

  // When the open batch must be sealed (nullopt if it is empty).
  std::optional<absl::Time> NextFlush() const;

  const EventSourceStats& stats() const { return stats_; }
  size_t open_batch_size() const { return open_.size(); }

 private:
  struct Source {
    LogSourceConfig config;
    uint32_t id = 0;
    std::string key;
    std::unique_ptr<Tailer> tailer;
    std::unique_ptr<DominoParser> parser;
    PairDeduplicator dedup;
  };

  EventSource(const EventSourceOptions& options, Spool& spool,
              PositionStore& positions, const BatchEncoder& encoder,
              Clock& clock);

  // Handles one line; returns false when the open batch is full.
  bool OnLine(Source& source, const TailLine& line);
  // Counts and logs (rate-limited) a line not turned into an event.
  void Dropped(const Source& source, const TailLine& line,
               std::string_view reason, uint64_t count,
               metrics::Counter* counter);
  // Appends the open batch (if any) and saves positions.
  absl::Status Seal();
  void SavePositions();

  // Constant after construction.
  const EventSourceOptions options_;
  Spool& spool_;
  PositionStore& positions_;
  const BatchEncoder& encoder_;
  Clock& clock_;
  // Null without options.metrics; [0] cut, [1 + Suspicion - 1] suspect.
  metrics::Counter* dropped_[kSuspicionCount] = {};

  std::vector<Source> sources_;
  int max_events_;
  std::vector<AgentEvent> open_;
  absl::Time open_since_;
  // Log time of the newest timed event read (for stats_.tailer_lag).
  std::optional<absl::Time> last_line_time_;
  // Lines were delivered since the last position save.
  bool positions_dirty_ = false;
  EventSourceStats stats_;
};

}  // namespace rampart::agent
