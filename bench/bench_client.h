#pragma once

// Support code for the end-to-end server benchmarks (propagation_benchmark,
// ingest_benchmark): a light agent-stream client on the gRPC callback API,
// so that 1000 agents need neither 1000 threads nor 1000 connections, plus
// the small pieces both benchmarks share (a throwaway PostgreSQL database,
// channels, percentiles, a /metrics scrape).
//
// Thread-safety: BenchAgent is thread-safe (see its comment); the free
// functions are.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"
#include "rampart/v1/agent.grpc.pb.h"
#include "tests/integration/server_process.h"
#include "tests/integration/throwaway_database.h"

namespace rampart::bench {

using ::rampart::testing::ThrowawayDatabase;
using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

// One agent stream (AgentService.Connect) driven by gRPC's callback
// threads. It sends Hello, reads every ServerMessage, keeps the ban-list
// position (epoch, revision: deltas and final snapshot chunks), and hands
// each message with its arrival time (steady_clock, taken first thing in
// the read reaction) to `on_message`. Outgoing messages go through a queue
// with one write in flight. With `report_enforced`, it answers applied
// ban-list changes with EnforcedRevision at most once per
// `enforced_interval`, as a real agent does (the latest revision wins; a
// change arriving inside the interval is reported with the next one after
// it, or by FlushEnforced()).
//
// Lifetime: Start() once; Close() once (always, also after a failure: it
// removes the hold that keeps the call open); then WaitDone(). The object
// must outlive OnDone (WaitDone returned).
//
// Thread-safety: Send/Close/Wait*/accessors may be called from any thread,
// including from `on_message` (which runs on a gRPC callback thread and must
// not block).
class BenchAgent final
    : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  struct Options {
    bool report_enforced = false;
    absl::Duration enforced_interval = absl::Seconds(1);
  };
  using OnMessage =
      std::function<void(const v1::ServerMessage& message, SteadyTime at)>;

  BenchAgent(const Options& options, OnMessage on_message);
  ~BenchAgent() override = default;

  BenchAgent(const BenchAgent&) = delete;
  BenchAgent& operator=(const BenchAgent&) = delete;

  // Opens the stream on `stub` and sends `hello`. `stub` must outlive the
  // stream.
  void Start(v1::AgentService::Stub& stub, const v1::Hello& hello);
  // Queues `message`; false if writes are closed or a write already failed.
  bool Send(std::shared_ptr<const v1::AgentMessage> message);
  // Sends the pending EnforcedRevision, if any.
  void FlushEnforced();
  // Half-closes after the queued writes and releases the call's hold. The
  // server then ends the stream. Idempotent.
  void Close();
  // Cancels the call (the stream ends with CANCELLED).
  void Cancel() { context_.TryCancel(); }

  // Waits for the Welcome. DeadlineExceeded, or the stream's status if it
  // ended first.
  absl::Status WaitForWelcome(absl::Duration timeout);
  // Waits for OnDone; returns the final status, or DeadlineExceeded.
  absl::StatusOr<grpc::Status> WaitDone(absl::Duration timeout);

  uint64_t revision() const;
  // The first inconsistency in the ban-list messages (delta gap), or OK.
  absl::Status protocol_error() const;

  // grpc::ClientBidiReactor
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnWritesDoneDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  // Starts the next write if none is in flight. Call without mu_ held.
  void PumpWrites() ABSL_LOCKS_EXCLUDED(mu_);
  // Queues an EnforcedRevision for the current revision if one is due.
  // Returns the message to send, or nullptr.
  std::shared_ptr<const v1::AgentMessage> EnforcedIfDueLocked(SteadyTime now,
                                                              bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const Options options_;
  const OnMessage on_message_;

  grpc::ClientContext context_;
  // Only touched by the read reactions (one read in flight).
  v1::ServerMessage read_;

  mutable absl::Mutex mu_;
  // State below is protected by mu_.
  std::deque<std::shared_ptr<const v1::AgentMessage>> outbox_
      ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool close_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_done_started_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> final_status_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reported_revision_ ABSL_GUARDED_BY(mu_) = 0;
  SteadyTime last_report_ ABSL_GUARDED_BY(mu_) = {};
  absl::Status protocol_error_ ABSL_GUARDED_BY(mu_);
};

// `count` channels to `target`, each its own TCP connection (a distinct
// channel argument keeps gRPC from sharing one subchannel), with the
// protocol's 4 MiB message limit raised to 64 MiB for receiving.
std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(
    const std::string& target, int count);

// The cluster's durability settings and counters, read through the base DSN
// of a ThrowawayDatabase (tests/integration/throwaway_database.h).
// fsync, synchronous_commit, full_page_writes and wal_sync_method, e.g.
// "fsync=on synchronous_commit=on ...", or the error text.
std::string DurabilitySettings(const std::string& base_dsn);
// Cluster-wide counters: checkpoints (timed + requested) and WAL bytes
// written (pg_stat_bgwriter, pg_stat_wal); -1 if unreadable.
struct PgCounters {
  double checkpoints = -1;
  double wal_bytes = -1;
};
PgCounters ReadPgCounters(const std::string& base_dsn);

// The q-quantile (0..1, nearest rank) of `values`; sorts them. 0 if empty.
double Percentile(std::vector<double>& values, double q);

// Milliseconds between two steady times.
inline double Ms(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// A histogram series scraped from /metrics: cumulative bucket counts.
struct ScrapedHistogram {
  std::vector<double> upper_bounds;  // ascending; +Inf last
  std::vector<double> cumulative;
  double count = 0;
  double sum = 0;

  // This minus `earlier` (the same series scraped before).
  ScrapedHistogram Minus(const ScrapedHistogram& earlier) const;
  double Mean() const { return count > 0 ? sum / count : 0; }
  // Upper bound of the bucket holding the q-quantile (Prometheus-style, no
  // interpolation).
  double QuantileUpperBound(double q) const;
};

// GETs http://127.0.0.1:`http_port`/metrics and returns the histogram
// `name`, the series whose labels include `label` = `value` when `label` is
// not empty, or an error.
absl::StatusOr<ScrapedHistogram> ScrapeHistogram(int http_port,
                                                 const std::string& name,
                                                 const std::string& label = "",
                                                 const std::string& value = "");

// Writes `text` to `path`. Internal error with errno text on failure.
absl::Status WriteFile(const std::string& path, const std::string& text);

// A private directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  // Internal error with errno text if mkdtemp fails.
  static absl::StatusOr<std::unique_ptr<TempDir>> Create();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Writes `config_yaml` to DIR/rampart-server.yaml and starts the build's
// rampart-server with it on `db_flag`, gRPC and HTTP on 127.0.0.1 with
// OS-chosen ports. Errors: those of ServerProcess::Start (with its log).
absl::StatusOr<std::unique_ptr<testing::ServerProcess>> StartServer(
    const TempDir& dir, const std::string& config_yaml,
    const std::string& db_flag);

// CPU seconds (user + system) used so far by process `pid` (0: this one),
// from /proc; -1 if unreadable.
double ProcessCpuSeconds(int pid);
// Busy and total jiffies of the whole machine from /proc/stat.
struct MachineCpu {
  double busy = 0;
  double total = 0;
};
MachineCpu ReadMachineCpu();
// CPU seconds used so far by every live process whose command name
// (/proc/PID/comm) is `command`, keyed by PID. A benchmark takes one before
// and one after its window and subtracts with CommandCpuDelta, so it can
// tell its own load (e.g. the PostgreSQL backends) from other jobs sharing
// the machine.
absl::flat_hash_map<int, double> CommandCpuSeconds(std::string_view command);
// CPU seconds between two CommandCpuSeconds snapshots (a process that
// started in between counts from zero; one that exited is not counted).
double CommandCpuDelta(const absl::flat_hash_map<int, double>& before,
                       const absl::flat_hash_map<int, double>& after);

}  // namespace rampart::bench
