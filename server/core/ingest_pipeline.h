#pragma once

// IngestPipeline: the bounded queue between the agent streams and the
// Correlator. Stream reactors TryPush converted batches (they never block);
// worker threads (IngestPipelineOptions::workers) each drain up to a group
// of batches at a time, feed it to the Correlator (which makes it durable
// and publishes any bans), then report each batch's outcome through its
// `done` callback, on which the stream acknowledges the batch to its agent.
// With two workers one group is observed while the previous one commits
// (Correlator::IngestMany overlaps the store transactions).
//
// Backpressure: the queue is bounded in events. When it is full TryPush
// returns false and (with the two-argument form) registers a one-shot "room"
// callback; the reactor defers its next read until the callback fires, so
// HTTP/2 flow control slows the agent instead of server memory growing
// (CONVENTIONS, gRPC server rules; docs/threading.md "Server").
//
// Domain code: no gRPC, no proto.
// Thread-safety: thread-safe. `done` and room callbacks run on a worker
// thread with no pipeline lock held (two groups' callbacks may run at the
// same time on different workers); they may call TryPush again but must not
// call Stop().

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "server/core/auth_event.h"
#include "server/core/correlator.h"
#include "server/core/durable_state.h"

namespace rampart::server {

struct IngestPipelineOptions {
  // Bound of the queue, in events (a batch without events counts as one). A
  // single batch larger than the bound is still accepted into an empty queue,
  // so no valid batch can be refused forever. Default 50000 (ten full
  // 5000-event batches).
  size_t capacity_events = 50000;
  // Most batches handed to the Correlator in one group: one
  // Correlator::IngestMany call, hence one store transaction. Default 64.
  size_t max_group_batches = 64;
  // Worker threads, clamped to [1, 8]. Default 2: the correlator observes a
  // group while the store commits the previous one. The store should have
  // at least this many connections (PgStoreOptions::pool_size).
  int workers = 2;
};

class IngestPipeline {
 public:
  // Outcome of one batch: the IngestResult once durable (or a duplicate), or
  // the Correlator's error (kUnavailable while the store is down: the agent
  // keeps the batch spooled and resends it).
  using Done = std::function<void(absl::StatusOr<IngestResult>)>;
  using RoomCallback = std::function<void()>;

  struct Item {
    // Dedup key; nullopt for events without one (never from agents).
    std::optional<BatchId> id;
    std::vector<AuthEvent> events;
    // When the batch entered the server, for the ingest latency histogram.
    // InfinitePast (the default) means "now": TryPush stamps it.
    absl::Time enqueued = absl::InfinitePast();
    // Events of this batch the edge already dropped as invalid; counted in
    // rampart_ingest_rejected_events_total when the batch is first committed.
    size_t rejected_events = 0;
    // Called exactly once with the outcome, on the worker thread, with no
    // lock held. Required.
    Done done;
  };

  // Starts the worker thread. `correlator`, `clock` and `metrics` must
  // outlive the pipeline.
  IngestPipeline(const IngestPipelineOptions& options, Correlator& correlator,
                 Clock& clock, metrics::Registry& metrics);
  // Stop()s if still running.
  ~IngestPipeline();

  IngestPipeline(const IngestPipeline&) = delete;
  IngestPipeline& operator=(const IngestPipeline&) = delete;

  // Queues `item` and returns true, or returns false when the queue is full
  // or the pipeline is stopping. NOTE: `item` is moved from only when true is
  // returned; on false the caller still owns it, unchanged.
  bool TryPush(Item&& item) ABSL_LOCKS_EXCLUDED(mu_);

  // As TryPush(item); in addition, when the queue is full, registers
  // `on_room` atomically with the failed attempt (so no wake-up can be lost)
  // to be called once, on the worker thread with no lock held, as soon as the
  // worker has taken batches off the queue. The callback should retry its
  // push (which may fail again if others filled the room first; then it
  // registers again). Nothing is registered when the pipeline is stopping:
  // check stopping() after a false return.
  bool TryPush(Item&& item, RoomCallback on_room) ABSL_LOCKS_EXCLUDED(mu_);

  // Refuses new items, processes everything already queued (flush), calls
  // any remaining room callbacks, then joins the worker. Idempotent.
  // REQUIRES: not called from a `done` or room callback.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // `observer` is called on a worker thread (two may call it at once), with
  // no lock held, for every
  // batch committed now (not for duplicates or failures), before its `done`;
  // e.g. to wake alert watchers when result.alerts > 0. It must only
  // enqueue. REQUIRES: called before the first TryPush.
  void SetCommitObserver(std::function<void(const IngestResult&)> observer);

  // True once Stop() has begun.
  bool stopping() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until at least `n` room callbacks are registered (producers held
  // back by a full queue), at most `timeout`. Returns whether they are.
  bool WaitForRoomWaitersForTest(size_t n, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Events and batches currently queued (not yet taken by the worker).
  size_t queued_events() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t queued_batches() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Series of rampart_events_total, by protocol and kind.
  static constexpr int kProtocols = 6;  // Protocol::kUnknown .. kHttp
  static constexpr int kKinds = 8;      // index = EventKind value (1..7)

  static size_t Cost(const Item& item) {
    return item.events.empty() ? 1 : item.events.size();
  }
  bool PushLocked(Item& item) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run();
  // Processes one group and calls every `done`.
  void Process(std::vector<Item>& group);
  // Feeds a group to the Correlator (IngestMany: one transaction); one
  // result per item, in order. Moves the events out of `group`.
  std::vector<absl::StatusOr<IngestResult>> IngestGroup(
      std::vector<Item>& group);

  // Constant after construction.
  const IngestPipelineOptions options_;
  Correlator& correlator_;
  Clock& clock_;
  metrics::Counter* events_total_[kProtocols][kKinds] = {};
  metrics::Counter& batches_total_;
  metrics::Counter& duplicate_batches_total_;
  metrics::Counter& failed_batches_total_;
  metrics::Counter& rejected_events_total_;
  metrics::Gauge& queue_events_;
  metrics::Histogram& ingest_latency_;
  metrics::Histogram& commit_latency_;
  // Set before the first push, then only read by the worker.
  std::function<void(const IngestResult&)> observer_;

  mutable absl::Mutex mu_;
  // State below is protected by mu_.
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_events_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<RoomCallback> waiters_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Serialises Stop() callers around the join.
  absl::Mutex stop_mu_;
  std::vector<std::thread> workers_;  // joined under stop_mu_
};

}  // namespace rampart::server
