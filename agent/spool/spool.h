#pragma once

// Spool: the agent's bounded, crash-safe, on-disk queue of sealed event
// batches that the server has not acknowledged yet (docs/agent.md, "Spool";
// docs/protocol.md, "Events").
//
// Each record is one sealed batch: an opaque payload (the serialized batch,
// produced and consumed by the gRPC edge), its event count (for the dropped
// counters) and a sequence number the spool assigns. Sequences start at 1 per
// spool epoch, strictly increase and are never reused, also across crashes: a
// sequence lease is persisted ahead of use, so after a crash numbering
// resumes past anything that may have been handed out (a gap, never a reuse).
//
// Records live in append-only segment files (segment.h); a small META file
// (written atomically) holds the epoch, the lease, the ack watermark and the
// dropped counters. Past `max_bytes` the oldest segments are dropped and the
// batches and events in them that were not yet acknowledged are counted
// (cumulative for the epoch, persisted). A torn record at the end of the last
// segment (crash mid-append) is cut off on Open; a corrupted record elsewhere
// ends its segment: the records before it stay readable, the rest of that
// segment is discarded, and both are reported (TakeDamageReports, stats).
//
// Thread-safety: thread-safe. Every public method serializes on one internal
// mutex (file I/O runs under it; every call is bounded by one record or one
// ReadUnacked batch). See docs/threading.md.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace rampart::agent {

// When the spool calls fsync(2)/fdatasync(2). The default, kEveryAppend,
// makes every batch durable before Append returns (the protocol spools a
// batch before sending it). Batches are sealed at most a few times per
// second, so the cost is a few fdatasyncs per second.
enum class FsyncPolicy {
  // fdatasync after every Append; META and directory changes are fsynced.
  kEveryAppend,
  // Only Sync() (which the caller schedules, e.g. every 500 ms), segment
  // rotation and Close() sync. A power loss can lose the batches appended
  // since the last Sync(); a process crash loses nothing.
  kExplicit,
  // Never sync; the kernel writes back when it likes. A power loss can lose
  // recent batches and, rarely, reuse sequences. For tests and throwaway
  // setups.
  kNever,
};

struct SpoolOptions {
  // Directory of the spool; created (with parents) if missing. One spool per
  // directory.
  std::string dir;
  // Cap on the bytes of all segment files. Must be >= 2 * segment_bytes.
  // Default 256 MiB.
  uint64_t max_bytes = 256ull << 20;
  // A segment is sealed when the next record would make it larger than
  // this. Must be >= max_record_bytes + 36. Default 4 MiB.
  uint64_t segment_bytes = 4ull << 20;
  // Largest payload accepted by Append, at most 64 MiB. Default 4 MiB (the
  // agent's default max message size).
  uint32_t max_record_bytes = 4u << 20;
  // Default kEveryAppend (see FsyncPolicy).
  FsyncPolicy fsync = FsyncPolicy::kEveryAppend;
};

// One spooled batch, as returned by ReadUnacked.
struct SpoolRecord {
  uint64_t sequence = 0;
  uint32_t event_count = 0;
  std::string payload;
};

struct SpoolStats {
  uint64_t epoch = 0;
  // Sequence the next Append will get.
  uint64_t next_sequence = 0;
  // Every sequence <= acked_through was acknowledged.
  uint64_t acked_through = 0;
  // Lowest sequence held and not acknowledged; 0 if none
  // (Hello.oldest_unacked_sequence).
  uint64_t oldest_unacked_sequence = 0;
  // Batches held and not acknowledged (Heartbeat.spool_depth_batches).
  uint64_t unacked_batches = 0;
  // Bytes of all segment files (Heartbeat.spool_depth_bytes).
  uint64_t bytes = 0;
  uint64_t segments = 0;
  // Unacknowledged batches / events dropped because the spool was full,
  // cumulative for this epoch, persisted (Heartbeat.spool_dropped_*).
  uint64_t dropped_batches = 0;
  uint64_t dropped_events = 0;
  // Damage found since Open: torn tails cut off, corrupted records that
  // ended a segment, unreadable segment files removed.
  uint64_t torn_tails = 0;
  uint64_t corrupt_records = 0;
  uint64_t bad_segments = 0;
  // True if META was missing or unreadable while segments existed; the epoch
  // was recovered from the segment headers and sequences resume after a
  // large gap.
  bool meta_recovered = false;
};

class Spool {
 public:
  // Opens (or creates) the spool in options.dir: reads META, scans every
  // segment, cuts off a torn tail, drops damaged parts and fully
  // acknowledged segments. `random_u64` supplies the epoch of a new spool
  // (never 0 is used); nullptr means a generator seeded by the OS.
  // Returns InvalidArgument for bad options; NotFound / PermissionDenied /
  // ResourceExhausted / Unavailable (with path and errno text) when the
  // directory or a file cannot be used. Damage in the data is not an error:
  // it is repaired and reported (TakeDamageReports, stats()).
  static absl::StatusOr<std::unique_ptr<Spool>> Open(
      const SpoolOptions& options,
      std::function<uint64_t()> random_u64 = nullptr);

  // Closes file descriptors without the clean-shutdown bookkeeping of
  // Close(): destroying an open Spool is equivalent to a crash (sequences
  // will resume after the persisted lease), never a loss of appended data.
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends one batch and returns its sequence number. Durable on return
  // under kEveryAppend. If the spool would exceed max_bytes, the oldest
  // segments are dropped first (and counted). Returns InvalidArgument if
  // payload is larger than max_record_bytes, FailedPrecondition after
  // Close(), ResourceExhausted / Unavailable (path, errno) on write errors.
  // After a write error the record is not in the spool and its sequence is
  // skipped (a gap, never a reuse).
  absl::StatusOr<uint64_t> Append(std::string_view payload,
                                  uint32_t event_count)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Marks every sequence <= up_to_sequence acknowledged and deletes sealed
  // segments that hold only acknowledged batches (the segment being
  // appended to is deleted once sealed, or on the next Open). Acks are not
  // synced by themselves (Sync/Close persist the watermark): after a crash,
  // acknowledged batches may be replayed again, which the server
  // deduplicates. Returns InvalidArgument if up_to_sequence was never
  // issued; FailedPrecondition after Close(); Unavailable if a segment
  // cannot be deleted (the ack itself still took effect).
  absl::Status Ack(uint64_t up_to_sequence) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns, in sequence order, the unacknowledged batches with sequence >=
  // from_sequence: at most max_records, and no more than max_bytes of
  // payload (but always at least one batch if one exists). An empty vector
  // means nothing is left. Damage found while reading is repaired and
  // reported like on Open. Errors: FailedPrecondition after Close(),
  // Unavailable (path, errno) on read errors.
  absl::StatusOr<std::vector<SpoolRecord>> ReadUnacked(uint64_t from_sequence,
                                                       size_t max_records,
                                                       size_t max_bytes = 16u
                                                                          << 20)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Makes everything appended so far, and the ack watermark, durable
  // (fdatasync + META). The caller schedules it under kExplicit; harmless
  // under the other policies. Errors carry path and errno.
  absl::Status Sync() ABSL_LOCKS_EXCLUDED(mu_);

  // Clean shutdown: syncs (unless kNever), persists the ack watermark and a
  // tight sequence lease (so the next Open continues without a gap), closes
  // files. Later calls return FailedPrecondition. Idempotent.
  absl::Status Close() ABSL_LOCKS_EXCLUDED(mu_);

  // Deletes every batch and starts a new epoch (new random id, sequences
  // from 1, counters zero). For an operator-requested reset or a state the
  // agent decides to abandon.
  absl::Status Reset() ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t epoch() const ABSL_LOCKS_EXCLUDED(mu_);
  SpoolStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

  // Returns and clears the human-readable damage and drop reports gathered
  // since the last call (at most 64 are kept; older ones are counted only).
  std::vector<std::string> TakeDamageReports() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Segment {
    uint64_t first_sequence = 0;
    uint64_t last_sequence = 0;  // first_sequence - 1 while empty
    uint64_t bytes = 0;          // valid bytes, header included
    uint64_t events = 0;
    std::string path;
    // (sequence, file offset) of the first record after every 64 KiB, for
    // seeking in ReadUnacked without reading the whole segment.
    std::vector<std::pair<uint64_t, uint64_t>> index;
  };

  Spool(const SpoolOptions& options, std::function<uint64_t()> random_u64);

  absl::Status Recover() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Scans one segment file; returns false if it should not be kept.
  absl::StatusOr<bool> ScanSegment(Segment* seg, bool is_last)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteMeta(bool sync) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CreateSegment() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SealActive() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DropOldest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DeleteFront() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cuts `seg` to its first `valid_bytes` after damage found while reading.
  void TruncateDamaged(Segment* seg, uint64_t valid_bytes,
                       uint64_t last_good_sequence, std::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sum of event counts of the records of `seg` with sequence >= from.
  uint64_t CountEvents(const Segment& seg, uint64_t from)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t NewEpoch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Report(std::string message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SyncEnabled() const { return options_.fsync != FsyncPolicy::kNever; }

  // Constant after construction.
  const SpoolOptions options_;
  const std::string meta_path_;

  mutable absl::Mutex mu_;
  std::function<uint64_t()> random_u64_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t lease_end_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t acked_through_ ABSL_GUARDED_BY(mu_) = 0;
  bool meta_dirty_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_batches_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_events_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Segment> segments_ ABSL_GUARDED_BY(mu_);
  // fd of segments_.back() while it is open for appending, else -1.
  int active_fd_ ABSL_GUARDED_BY(mu_) = -1;
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t torn_tails_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t corrupt_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bad_segments_ ABSL_GUARDED_BY(mu_) = 0;
  bool meta_recovered_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> reports_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::agent
