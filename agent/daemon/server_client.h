#pragma once

// ServerClient: the agent's one stream to the Rampart server
// (AgentService.Connect, docs/protocol.md "The agent stream"), on the gRPC
// sync client API (CONVENTIONS: one stream, low rate). Per connection:
//
//   connection thread (writer): Hello; after Welcome sends the spool's
//     unacked batches in sequence order with at most max_unacked_batches in
//     flight, then new batches as they are sealed (Wake()), heartbeats, and
//     queued EnforcedRevision / LocalBanReport messages;
//   reader thread: Welcome (spool Ack up to durable_through), BatchAck (Ack;
//     rejected batches are logged and count as settled), snapshot chunks
//     (assembled, applied through the BanListKeeper on the final chunk),
//     deltas (applied; a gap or epoch mismatch cancels the stream so that
//     the next Hello yields a snapshot), PolicyHint, Notice.
//
// Any failure ends the connection; the client reconnects after a jittered
// exponential backoff (Backoff) and fails over to the next address of
// `servers` whenever an attempt did not reach Welcome.
//
// Time: reachability (unreachable_since) reads the injected Clock, which
// drives the local fallback; transport timers (backoff, heartbeat period,
// Welcome timeout) are real-time waits on a condition variable, which Stop()
// interrupts.
//
// Thread-safety: thread-safe. See docs/threading.md "Agent".

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/daemon/ban_list_keeper.h"
#include "agent/daemon/local_fallback.h"
#include "agent/spool/spool.h"
#include "common/clock.h"
#include "grpcpp/client_context.h"
#include "rampart/v1/agent.grpc.pb.h"

namespace rampart::agent {

// Jittered exponential backoff: min, 2 min, 4 min, ... capped at max, each
// multiplied by a uniform factor in [1 - jitter, 1 + jitter].
// Thread-safety: not thread-safe.
class Backoff {
 public:
  // `uniform01` returns values in [0, 1).
  Backoff(absl::Duration min, absl::Duration max, double jitter,
          std::function<double()> uniform01);
  // The delay before the next attempt; grows the base.
  absl::Duration Next();
  // Back to `min` (after a successful connection).
  void Reset() { attempt_ = 0; }

 private:
  const absl::Duration min_;
  const absl::Duration max_;
  const double jitter_;
  std::function<double()> uniform01_;
  int attempt_ = 0;
};

// What Hello says about this agent besides the ban list and spool state.
struct HelloInfo {
  std::string agent_id;
  std::string site;
  std::string hostname;
  std::string time_zone = "UTC";
  std::vector<std::string> host_addresses;
  // (id, path) of each log.
  std::vector<std::pair<uint32_t, std::string>> log_sources;
  std::string firewall_backend;
};

// Heartbeat fields the rest of the agent provides.
struct HeartbeatStats {
  uint64_t lines_read = 0;
  uint64_t events_parsed = 0;
  uint64_t backlog_bytes = 0;
  absl::Duration tailer_lag = absl::ZeroDuration();
  uint32_t local_fallback_bans = 0;
};

// How the client authenticates: plaintext (insecure), or mutual TLS with
// the agent's certificate (PEM contents, not paths).
struct ClientTls {
  bool insecure = false;
  std::string ca_pem;    // trust anchors for the server certificate
  std::string cert_pem;  // the agent's certificate chain (CN = agent id)
  std::string key_pem;   // its private key
};

struct ServerClientOptions {
  // "HOST:PORT" targets, tried in order. At least one.
  std::vector<std::string> servers;
  ClientTls tls;
  HelloInfo hello;
  // Reconnect backoff. Defaults 1s .. 60s, +-20 % jitter (protocol).
  absl::Duration backoff_min = absl::Seconds(1);
  absl::Duration backoff_max = absl::Seconds(60);
  double jitter = 0.2;
  // Until PolicyHint says otherwise. Default 15s.
  absl::Duration heartbeat_interval = absl::Seconds(15);
  // Until PolicyHint says otherwise. Default 32.
  uint32_t max_unacked_batches = 32;
  // A welcomed connection that ends resets the backoff only if it was
  // healthy: at least one batch acknowledged on it, or open this long.
  // Otherwise (e.g. the server welcomes, then ends the stream because its
  // database is down) the backoff keeps growing instead of reconnecting at
  // backoff_min forever. Default 60s.
  absl::Duration healthy_stream_after = absl::Seconds(60);
  // A connection that gets no Welcome within this is abandoned. Default 30s.
  absl::Duration welcome_timeout = absl::Seconds(30);
  // Called from the client's threads; all optional.
  std::function<HeartbeatStats()> heartbeat_stats;
  std::function<std::vector<LocalBan>()> local_bans;
  // PolicyHint.max_events_per_batch (clamped to [1, 5000]).
  std::function<void(int)> on_max_events_per_batch;
};

struct ServerClientStats {
  uint64_t connect_attempts = 0;
  uint64_t welcomes = 0;
  uint64_t batches_sent = 0;
  uint64_t batches_acked = 0;
  uint64_t batches_rejected = 0;
  uint64_t snapshots_applied = 0;
  uint64_t deltas_applied = 0;
  uint64_t apply_errors = 0;
  uint64_t resyncs_requested = 0;  // streams cancelled for a delta gap
  // Welcomed streams that ended healthy (backoff reset) or not (backoff
  // kept growing), see ServerClientOptions::healthy_stream_after.
  uint64_t healthy_streams_ended = 0;
  uint64_t unhealthy_streams_ended = 0;
  // The last Notice.retry_after honoured (zero: none yet).
  absl::Duration last_retry_after = absl::ZeroDuration();
  // The address of the current (or last) connection attempt.
  std::string server;
};

class ServerClient {
 public:
  // References must outlive the client. `uniform01` feeds the backoff
  // jitter (tests pass a seeded generator).
  ServerClient(const ServerClientOptions& options, Spool& spool,
               BanListKeeper& keeper, Clock& clock,
               std::function<double()> uniform01);
  // Stop().
  ~ServerClient();
  ServerClient(const ServerClient&) = delete;
  ServerClient& operator=(const ServerClient&) = delete;

  // Starts the connection thread. Call once.
  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels the stream, ends the threads. Batches in flight stay in the
  // spool. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // New batches were spooled: send them (if the window allows).
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);
  // The local-fallback set changed: send a LocalBanReport when connected.
  void ReportLocalBans() ABSL_LOCKS_EXCLUDED(mu_);

  // Connected = past Welcome on a live stream.
  bool connected() const ABSL_LOCKS_EXCLUDED(mu_);
  // When the server became unreachable (by the injected clock): the start
  // time before the first Welcome, the end of the last stream after one;
  // nullopt while connected.
  std::optional<absl::Time> unreachable_since() const ABSL_LOCKS_EXCLUDED(mu_);
  // A server ban list (snapshot, delta, or an UP_TO_DATE Welcome) was
  // applied on the current connection.
  bool server_list_current() const ABSL_LOCKS_EXCLUDED(mu_);
  ServerClientStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();
  // One connection to `target`; sets *welcomed if Welcome arrived.
  void RunStream(const std::string& target, bool* welcomed);
  void ReadLoop(
      grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>* stream,
      grpc::ClientContext* context);
  // Reader-thread handlers; return false to end the stream.
  bool OnWelcome(const v1::Welcome& welcome);
  void OnBatchAck(const v1::BatchAck& ack);
  bool OnSnapshot(const v1::BanListSnapshot& chunk);
  bool OnDelta(const v1::BanListDelta& delta);
  void OnPolicyHint(const v1::PolicyHint& hint);
  void QueueEnforced(const ApplyReport& report) ABSL_LOCKS_EXCLUDED(mu_);
  v1::AgentMessage MakeHello() const;
  v1::AgentMessage MakeHeartbeat() const;
  v1::AgentMessage MakeLocalBanReport() const;
  // Waits up to `d` unless stopping. Returns false if stopping.
  bool WaitFor(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const ServerClientOptions options_;
  Spool& spool_;
  BanListKeeper& keeper_;
  Clock& clock_;
  Backoff backoff_;  // connection thread only

  // Snapshot assembly; reader thread only.
  uint64_t snapshot_id_ = 0;
  uint32_t next_chunk_ = 0;
  std::vector<BanItem> snapshot_items_;

  std::thread thread_;

  mutable absl::Mutex mu_;
  // State below is protected by mu_.
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Per connection.
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool list_current_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t replay_boundary_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<uint64_t> in_flight_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::AgentMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool report_local_ ABSL_GUARDED_BY(mu_) = false;
  // Notice.retry_after of this connection (zero: none), at most 10 min.
  absl::Duration retry_after_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  // Across connections.
  std::optional<absl::Time> unreachable_since_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_);
  uint32_t max_unacked_ ABSL_GUARDED_BY(mu_);
  ServerClientStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::agent
