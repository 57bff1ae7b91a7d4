#pragma once

// AgentService: the server side of the agent stream (rampart.v1
// AgentService.Connect, docs/protocol.md "The agent stream"), on the gRPC
// callback API. One reactor (Stream) per agent stream:
//
//   Hello -> validate, authenticate, supersede an older stream of the agent
//         -> Welcome + catch-up (exact delta or chunked snapshot, planned by
//            BanDistributor) -> subscribe to live ban-list changes;
//   EventBatch -> ToDomain -> IngestPipeline::TryPush (the next read is
//            deferred while the queue is full: HTTP/2 flow control then slows
//            the agent) -> BatchAck once the Correlator made it durable;
//            malformed batches are rejected in BatchAck.rejected, invalid
//            events are dropped and reported in a rate-limited Notice;
//   Heartbeat -> liveness and the agent's facts (agents list); EnforcedRevision
//   -> BanDistributor::ReportEnforced.
//
// Reactions only convert and enqueue; they never block and never hold a lock
// across StartRead/StartWrite/Finish (CONVENTIONS, gRPC server rules). Pushes
// queued for a slow agent are coalesced, and replaced by a snapshot beyond a
// bound, so a slow agent costs bounded memory.
//
// Thread-safety: thread-safe. See docs/threading.md "Server" for which thread
// touches what. Lifetime: the BanDistributor, IngestPipeline, Clock and
// Registry must outlive the service; the service must outlive the
// grpc::Server it is registered with (shut the server down first).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/server_callback.h"
#include "rampart/v1/agent.grpc.pb.h"
#include "rampart/v1/limits.h"
#include "server/core/admin_queries.h"
#include "server/core/agent_rate_limiter.h"
#include "server/core/ban.h"
#include "server/core/ban_distributor.h"
#include "server/core/ingest_pipeline.h"
#include "server/core/protected_addresses.h"
#include "server/enroll/enrollment_manager.h"

namespace rampart::server {

struct AgentServiceOptions {
  // Welcome.server_id (host name or configured id), at most 253 bytes.
  std::string server_id = "rampart-server";
  // Lineage of the ban list (Welcome.ban_list_epoch): random, non-zero,
  // changes only when the store is recreated or restored. An agent whose
  // Hello names another epoch gets a snapshot.
  uint64_t ban_list_epoch = 1;
  // Most concurrently connected (authenticated) agents; a Hello beyond it
  // ends its stream with RESOURCE_EXHAUSTED. A stream counts only once its
  // Hello is accepted; an agent superseding its own stream always may.
  int max_agents = 5000;
  // Unauthenticated streams (docs/security.md "Abuse limits"): a stream
  // that sent no Hello this long after it opened ends with
  // DEADLINE_EXCEEDED (SweepIdleStreams, by the injected clock); it is also
  // the listener's TLS handshake timeout.
  absl::Duration hello_timeout = absl::Seconds(10);
  // Most streams whose Hello is not yet accepted: in all, per source
  // address, per HTTP/2 connection (gRPC's peer string). Further streams
  // are refused at once with RESOURCE_EXHAUSTED, before anything is read.
  // Until its Hello is accepted a stream has one read outstanding (a
  // message of at most max_message_bytes) and nothing queued to send.
  int max_unauthenticated_streams = 512;
  int max_unauthenticated_streams_per_address = 32;
  int max_unauthenticated_streams_per_connection = 4;
  // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of the listener (any service):
  // a client opening more waits for one to end.
  int max_streams_per_connection = 1000;
  // Largest message accepted and sent, in bytes (Welcome.limits and the
  // server's channel limits); ServerConfig.max_message_bytes, 4..64 MiB.
  int64_t max_message_bytes = v1::kMaxMessageBytes;
  // PolicyHint.heartbeat_interval sent to agents.
  absl::Duration heartbeat_interval = absl::Seconds(15);
  // A stream that sent nothing for this long ends with UNAVAILABLE
  // (protocol: 3 x heartbeat_interval).
  absl::Duration heartbeat_timeout = absl::Seconds(45);
  // How often the service's own thread runs SweepIdleStreams(); zero: no
  // thread (call SweepIdleStreams() yourself, as tests do).
  absl::Duration sweep_interval = absl::Seconds(5);
  // PolicyHint.max_unacked_batches sent to agents.
  uint32_t max_unacked_batches = 32;
  // Bound of the per-stream queue of ban-list messages: beyond it, queued
  // deltas are replaced by one snapshot.
  size_t max_outbound_messages = 64;
  // Once this many ban-list messages are queued for a stream, new changes
  // are merged into the last queued delta instead of queueing another one.
  // Clamped to [1, max_outbound_messages - 1].
  size_t coalesce_threshold = 8;
  // A merged delta with more changes than this is replaced by a snapshot
  // (protocol: beyond 2000 changes). Clamped to [1, kMaxDeltaChanges].
  size_t max_coalesced_changes = v1::kMaxDeltaChanges;
  // Entries per snapshot chunk, clamped to [1, kMaxSnapshotChunkEntries].
  int snapshot_chunk_entries = v1::kMaxSnapshotChunkEntries;
  // In-band Notices per stream and minute (protocol: 10).
  int notices_per_minute = 10;
  // Notice.retry_after sent before a draining server ends a stream.
  absl::Duration drain_retry_after = absl::Seconds(5);
  // Retry hint in the Notice that ends a stream whose batch could not be
  // stored (database down): the agent waits at least this long before it
  // reconnects and resends. Default 2s.
  absl::Duration unavailable_retry_after = absl::Seconds(2);
  // Abuse limits (docs/security.md "Abuse limits"). Most events per batch
  // (StreamLimits.max_events_per_batch; larger batches are rejected with
  // INVALID_ARGUMENT), clamped to [1, kMaxEventsPerBatch].
  int max_events_per_batch = v1::kMaxEventsPerBatch;
  // Per-agent event token bucket. A batch beyond it is held back: the stream
  // reads nothing more until the tokens are due, so HTTP/2 flow control
  // slows the agent down and its spool keeps the events
  // (rampart_agent_batches_throttled_total). Nothing is rejected or lost.
  AgentRateLimiter::Options rate;
  // How often the service's own thread hands held-back batches on once
  // their tokens are due; zero: no thread (call RetryThrottledStreams()
  // yourself, as tests may).
  absl::Duration throttle_retry_interval = absl::Milliseconds(50);
};

// Largest serialized Hello accepted (a valid one is far smaller).
inline constexpr size_t kMaxHelloBytes = 64 * 1024;

// Validates a Hello (docs/protocol.md, agent.proto field comments). Returns
// InvalidArgument naming the field, e.g. "hello.agent_id: ...".
absl::Status ValidateHello(const v1::Hello& hello);

// Merges `more` (ascending revisions) into `queued` (ascending revisions,
// possibly already merged) so that at most one change per ban id remains,
// in the order of each id's first change: ADD+UPDATE is an ADD of the new
// entry, UPDATE+UPDATE the later UPDATE, UPDATE+REMOVE a REMOVE, ADD+REMOVE
// cancels. Each surviving change carries the revision of its latest part.
// If everything cancels, the last cancelled REMOVE is kept (a no-op for the
// agent) because a delta must carry at least one change.
std::vector<JournalEntry> CoalesceJournal(
    std::vector<JournalEntry> queued, const std::vector<JournalEntry>& more);

class AgentService final : public v1::AgentService::CallbackService {
 public:
  // Starts the idle-sweep thread if options.sweep_interval > 0. References
  // must outlive the service.
  // `protect`, if given, learns every agent's peer and Hello addresses (so
  // they are never auto-banned); it must outlive the service. `identity`:
  // with mutual TLS, the check every Hello must pass (client certificate ->
  // enrolled, non-revoked agent named by hello.agent_id), again once the
  // stream is registered (a revocation in between is seen), and whenever
  // the agent enrolls anew (the service is its certificate listener: the
  // stream of a replaced certificate ends); a stream also ends when its
  // certificate's not_after passes (SweepIdleStreams). Null = no check
  // (plaintext, --insecure).
  AgentService(const AgentServiceOptions& options, BanDistributor& distributor,
               IngestPipeline& pipeline, Clock& clock,
               metrics::Registry& metrics,
               ProtectedAddresses* protect = nullptr,
               EnrollmentManager* identity = nullptr);
  // REQUIRES: every stream is done (the grpc::Server was shut down).
  ~AgentService() override;

  AgentService(const AgentService&) = delete;
  AgentService& operator=(const AgentService&) = delete;

  // Channel arguments the agent listener needs: keepalive (30 s pings, 10 s
  // timeout, pings without calls allowed, agents' 30 s pings accepted),
  // message size limits (options.max_message_bytes both ways). Call before
  // BuildAndStart().
  static void ConfigureServerBuilder(grpc::ServerBuilder& builder,
                                     const AgentServiceOptions& options = {});

  // v1::AgentService::CallbackService
  grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* Connect(
      grpc::CallbackServerContext* context) override;

  // Begins draining and returns at once: new streams end with UNAVAILABLE;
  // every open stream stops reading, lets its batches already handed to the
  // pipeline commit and be acknowledged, sends a Notice with retry_after and
  // ends with UNAVAILABLE "server draining". REQUIRES: the IngestPipeline
  // still runs (stop it after the drain).
  void StartDrain() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until every stream is done (OnDone ran), at most `timeout`.
  // Returns whether all are done.
  bool AwaitDrained(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // StartDrain() + AwaitDrained(timeout); streams still open at the timeout
  // are ended at once. Returns whether every stream was done in time. Then
  // shut the grpc::Server down, then Stop() the pipeline, then flush the
  // store (SIGTERM sequence, see docs/threading.md).
  bool Shutdown(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  // Ends the agent's current stream (if any) with `status`, e.g.
  // PERMISSION_DENIED after RevokeAgent. Returns whether one was open.
  bool EndAgentStream(const std::string& agent_id, const grpc::Status& status)
      ABSL_LOCKS_EXCLUDED(mu_);

  // By the injected clock, ends every stream that received nothing for
  // heartbeat_timeout (UNAVAILABLE), sent no Hello within hello_timeout
  // (DEADLINE_EXCEEDED), or whose client certificate's not_after has passed
  // (UNAUTHENTICATED).
  void SweepIdleStreams() ABSL_LOCKS_EXCLUDED(mu_);
  // Hands every batch held back by its agent's rate limit whose tokens are
  // due (by the injected clock) to its stream again. Runs every
  // options.throttle_retry_interval on the service's own thread.
  void RetryThrottledStreams() ABSL_LOCKS_EXCLUDED(mu_);

  // What each agent said in its latest Hello (kept after it disconnects),
  // for AdminService (version, site, host addresses never to be banned),
  // sorted by agent id.
  std::vector<AgentFacts> KnownAgents() const ABSL_LOCKS_EXCLUDED(mu_);

  // Streams not yet done, streams past Hello, streams awaiting their Hello.
  int open_streams() const ABSL_LOCKS_EXCLUDED(mu_);
  int connected_agents() const ABSL_LOCKS_EXCLUDED(mu_);
  int unauthenticated_streams() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Stream;
  // The full ban list at one revision, entries in ascending id order; shared
  // by every stream that needs a snapshot at that revision.
  struct Snapshot {
    uint64_t revision = 0;
    std::vector<VersionedBan> bans;
  };
  struct Watermark {
    uint64_t spool_epoch = 0;
    uint64_t durable_through = 0;
  };

  // The identity check of a Hello claiming `agent_id` with `cert` (see the
  // constructor's `identity`); `peer` names the caller in the log.
  grpc::Status AuthenticatePeer(const std::optional<PeerCertificate>& cert,
                                const std::string& agent_id,
                                std::string_view peer) const;
  // EnrollmentManager's certificate listener: re-checks the identity of the
  // agent's current stream, which ends if its certificate was replaced.
  void OnCertificateChanged(const std::string& agent_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The current ban list as a snapshot (cached per revision).
  std::shared_ptr<const Snapshot> CurrentSnapshot() ABSL_LOCKS_EXCLUDED(mu_);
  // Makes a snapshot from a kSnapshot plan and caches it.
  std::shared_ptr<const Snapshot> SnapshotFromPlan(CatchUpPlan plan)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Stream bookkeeping; called by streams without their own lock held
  // (lock order: Stream::mu_ may be held when calling RecordWatermark; the
  // service never calls into a stream with mu_ held).
  // Makes `stream` the agent's current stream (counted as connected) and
  // returns the one it supersedes, if any.
  void RecordHello(const v1::Hello& hello, std::string peer)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Updates the agent's facts (spool depth, tailer lag, clock skew, local
  // fallback bans) from a Heartbeat, clamped to sane bounds.
  void RecordHeartbeat(const std::string& agent_id, const v1::Heartbeat& hb)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Makes `stream` the agent's current stream (it stops counting as
  // unauthenticated) and returns the one it supersedes, if any.
  // RESOURCE_EXHAUSTED if max_agents other agents are connected.
  absl::StatusOr<std::weak_ptr<Stream>> RegisterAgent(
      const std::string& agent_id, const std::shared_ptr<Stream>& stream)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets `stream` as unauthenticated, if it was.
  void ReleaseUnauthenticatedLocked(Stream* stream)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `connected`: the stream had registered its agent.
  void StreamDone(Stream* stream, const std::string& agent_id, bool connected)
      ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t RememberedWatermark(const std::string& agent_id,
                               uint64_t spool_epoch) const
      ABSL_LOCKS_EXCLUDED(mu_);
  void RecordWatermark(const std::string& agent_id, uint64_t spool_epoch,
                       uint64_t durable_through) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::shared_ptr<Stream>> LiveStreams() const
      ABSL_LOCKS_EXCLUDED(mu_);
  void SweepLoop();
  void ThrottleRetryLoop();
  // The rampart_agent_messages_rejected_total series for `reason`.
  metrics::Counter& Rejected(std::string_view reason);

  // Constant after construction.
  const AgentServiceOptions options_;
  BanDistributor& distributor_;
  IngestPipeline& pipeline_;
  Clock& clock_;
  EnrollmentManager* const identity_;
  metrics::Gauge& connected_agents_;
  metrics::Gauge& unauthenticated_gauge_;
  metrics::Histogram& push_latency_;
  metrics::Counter& reads_deferred_;
  metrics::Counter& snapshot_fallbacks_;
  metrics::Counter& batches_throttled_;
  metrics::Counter& batches_oversized_;
  AgentRateLimiter limiter_;
  ProtectedAddresses* const protect_;
  std::map<std::string, metrics::Counter*, std::less<>> rejected_;

  mutable absl::Mutex mu_;
  // State below is protected by mu_.
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::map<Stream*, std::weak_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  // Streams whose Hello is not yet accepted, with their connection (gRPC
  // peer string) and source address, and the counts per key (entries at
  // zero are erased, so these stay bounded by the streams).
  struct Unauthenticated {
    std::string connection;
    std::string address;
  };
  std::map<Stream*, Unauthenticated> unauthenticated_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int, std::less<>> unauthenticated_per_connection_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, int, std::less<>> unauthenticated_per_address_
      ABSL_GUARDED_BY(mu_);
  // The current stream of each connected agent.
  struct AgentSlot {
    Stream* stream = nullptr;  // identity only, never dereferenced
    std::weak_ptr<Stream> weak;
  };
  std::map<std::string, AgentSlot, std::less<>> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Watermark, std::less<>> watermarks_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, AgentFacts, std::less<>> facts_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const Snapshot> snapshot_cache_ ABSL_GUARDED_BY(mu_);
  int connected_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex sweep_mu_;
  bool stop_sweep_ ABSL_GUARDED_BY(sweep_mu_) = false;
  std::thread sweeper_;
  std::thread throttle_retrier_;
  // Streams holding a batch over their agent's rate (RetryThrottledStreams
  // does nothing while zero).
  std::atomic<int> throttled_streams_{0};
};

}  // namespace rampart::server
