#pragma once

// Correlator: the server's brain. Feeds agent events through the Detector,
// makes every decision durable in the Store, and only then publishes ban
// changes. After a restart (or a failed commit) it rebuilds from the store:
// the durable ban list, history, allowlist and counters are loaded, and the
// scores are replayed from the stored events of the rebuild horizon, so the
// revision sequence continues where it stopped.
//
// Thread-safety: thread-safe (see docs/threading.md). One mutex (mu_)
// serialises the detector: observing a group, admin calls, rebuilds. The
// store transaction of an IngestMany() group runs OUTSIDE that mutex, so
// several callers (the ingest pipeline's workers) overlap: one group commits
// while the next is observed, and groups without ban-list changes commit
// concurrently on separate connections. Ordering is kept by tickets taken in
// observation order: a group with journal entries commits only after every
// earlier group finished, results and publications are released in ticket
// order, and a batch whose id is still being committed by an earlier group
// is settled by that group's outcome. Admin calls and rebuilds wait until no
// group is in flight.

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/core/ban_publisher.h"
#include "server/core/detector.h"
#include "server/core/policy.h"
#include "server/core/protected_addresses.h"
#include "server/core/store.h"

namespace rampart::server {

struct CorrelatorOptions {
  Policy policy;
  // Stored events this far back are replayed to rebuild scores. Zero means
  // derived from the policy: the longest of 16 half-lives and the server,
  // account, prefix and compromise windows.
  absl::Duration rebuild_horizon = absl::ZeroDuration();
  // Abuse limits (DetectorLimits): most new automatic bans per minute one
  // agent's evidence alone may cause (0: no cap), and the addresses never
  // auto-banned (not owned, must outlive the Correlator; may be null).
  int agent_new_bans_per_minute = 0;
  const ProtectedAddresses* protected_addresses = nullptr;
  // Memory budget (DetectorLimits, same names; 0: no cap).
  size_t max_score_entries = 0;
  size_t max_account_entries = 0;
  int agent_new_keys_per_minute = 0;
};

// Entries the detector tracks now (for the memory-budget gauges).
struct TrackedEntries {
  size_t scores = 0;
  size_t accounts = 0;
};

// One agent batch for IngestMany().
struct IngestBatch {
  // nullopt: not deduplicated (e.g. events injected by a test or a tool).
  std::optional<BatchId> id;
  std::vector<AuthEvent> events;
};

struct IngestResult {
  // The batch had been committed before (or appeared earlier in the same
  // IngestMany() call); nothing of it was processed again.
  bool duplicate = false;
  size_t events = 0;
  size_t new_bans = 0;
  size_t alerts = 0;
  size_t accounts = 0;
  uint64_t revision = 0;  // ban-list revision after the batch
};

class Correlator {
 public:
  // Validates the policy and rebuilds from `store`. The references must
  // outlive the Correlator.
  static absl::StatusOr<std::unique_ptr<Correlator>> Create(
      const CorrelatorOptions& options, Store& store, Clock& clock,
      BanPublisher& publisher);

  // Ingests one agent batch (at-least-once: a batch id already committed is
  // reported as a duplicate and changes nothing). Events, bans, alerts and
  // account records are committed in one transaction before any ban is
  // published. kUnavailable while the store is down (the correlator is then
  // degraded and retries a rebuild on the next call).
  // Same as IngestMany() with one batch.
  absl::StatusOr<IngestResult> Ingest(const std::optional<BatchId>& batch,
                                      std::vector<AuthEvent> events);

  // Group commit: ingests `batches` (e.g. everything the agents sent since
  // the last call) with ONE store transaction for all the batches that are
  // not duplicates, then publishes the ban changes once. Returns one result
  // per batch, in input order. A batch whose id was committed before, or
  // appears earlier in `batches`, is reported with duplicate = true and is
  // not processed; duplicates are found with one Store::HasBatches() call
  // before anything is observed. If that look-up or the commit fails, every
  // result carries the error (nothing of the call was committed; the
  // correlator is degraded and rebuilds on the next call) - except that a
  // batch found to have been committed concurrently by another process is
  // reported as a duplicate and the others as kAborted (retry). Several
  // threads may call it at once: their transactions overlap (class comment);
  // a batch another call is still committing is reported as a duplicate if
  // that commit succeeds, else with kUnavailable.
  std::vector<absl::StatusOr<IngestResult>> IngestMany(
      std::vector<IngestBatch> batches);

  // Administrative ban for `duration` (nullopt: permanent). Audited.
  absl::StatusOr<Ban> AddBan(const IpPrefix& prefix,
                             std::optional<absl::Duration> duration,
                             std::string reason, std::string actor,
                             BanOrigin origin = BanOrigin::kManual,
                             std::string peer = "");
  // Administrative ban until exactly `expires` (absl::InfiniteFuture():
  // permanent), e.g. an imported ban list's expiry. Audited.
  // InvalidArgument unless `expires` is after the clock's now.
  absl::StatusOr<Ban> AddBanUntil(const IpPrefix& prefix, absl::Time expires,
                                  std::string reason, std::string actor,
                                  BanOrigin origin = BanOrigin::kManual,
                                  std::string peer = "");
  // Lifts a ban and forgives its score. Audited. NotFound if none.
  absl::StatusOr<Ban> RemoveBan(const IpPrefix& prefix, std::string reason,
                                std::string actor, std::string peer = "");
  // Allowlist changes. Audited. `peer` (here and above): the admin
  // connection's address, recorded in the audit log. `broad`: the entry is
  // broader than /16 IPv4 or /32 IPv6 (audited as "allow.add.broad").
  absl::Status AddAllow(AllowEntry entry, std::string actor,
                        std::string peer = "", bool broad = false);
  absl::Status RemoveAllow(const IpPrefix& prefix, std::string actor,
                           std::string peer = "");

  // Periodic housekeeping (expiry, idle state). Call about once a minute.
  void Expire();

  // Event retention: deletes stored events older than `retention`, but never
  // inside the rebuild horizon (scores must survive a restart). Returns the
  // number of events deleted.
  absl::StatusOr<int64_t> PruneEvents(absl::Duration retention);

  uint64_t revision() const;
  std::vector<Ban> ActiveBans() const;
  std::vector<AllowEntry> Allowlist() const;
  KeyInfo Explain(const IpAddress& ip) const;
  // True while the last store write failed and no rebuild succeeded since.
  bool degraded() const;
  // Automatic bans withheld by the abuse limits since start, and the
  // memory-budget evictions and refused keys (the last_* fields are empty).
  DetectorStats abuse_stats() const;
  TrackedEntries tracked_entries() const;

 private:
  Correlator(const CorrelatorOptions& options, Store& store, Clock& clock,
             BanPublisher& publisher);

  absl::Status RebuildLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EnsureHealthyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AddBan / AddBanUntil after their checks; `now` is the clock's time.
  absl::StatusOr<Ban> AddBanLocked(const IpPrefix& prefix, absl::Time now,
                                   absl::Time expires, std::string reason,
                                   std::string actor, BanOrigin origin,
                                   std::string peer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits `record` (with `decisions` merged in) and publishes its journal,
  // after every in-flight IngestMany() group has finished.
  absl::Status CommitLocked(CommitRecord record, Decisions decisions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Blocks until no IngestMany() group is between observation and its end.
  void AwaitNoGroupInFlightLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_)
      ABSL_LOCKS_EXCLUDED(seq_mu_);
  // Logs (rate-limited) what the abuse limits withheld since `before`.
  void WarnAboutLimitsLocked(const DetectorStats& before, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CorrelatorOptions options_;
  const absl::Duration horizon_;
  Store& store_;
  Clock& clock_;
  BanPublisher& publisher_;

  mutable absl::Mutex mu_;
  std::unique_ptr<Detector> detector_ ABSL_GUARDED_BY(mu_);
  bool needs_rebuild_ ABSL_GUARDED_BY(mu_) = true;

  // Group sequencing. Lock order: mu_, then seq_mu_ (never the reverse).
  mutable absl::Mutex seq_mu_;
  // Next ticket to hand out (taken under mu_ too, so in observation order).
  uint64_t next_ticket_ ABSL_GUARDED_BY(seq_mu_) = 0;
  // Every ticket below this one has finished (results released).
  uint64_t finished_below_ ABSL_GUARDED_BY(seq_mu_) = 0;
  // A group's commit failed: the detector is ahead of the store; rebuild
  // once nothing is in flight.
  bool group_failed_ ABSL_GUARDED_BY(seq_mu_) = false;
  // Tickets that finished with a failed commit, while groups are in flight
  // (cleared when none is).
  absl::flat_hash_set<uint64_t> failed_tickets_ ABSL_GUARDED_BY(seq_mu_);
  // Batch ids being committed, by the ticket of their group.
  absl::flat_hash_map<std::tuple<std::string, uint64_t, uint64_t>, uint64_t>
      pending_ids_ ABSL_GUARDED_BY(seq_mu_);
  DetectorStats carried_ ABSL_GUARDED_BY(mu_);  // of replaced detectors
  absl::Time last_cap_warning_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_protected_warning_ ABSL_GUARDED_BY(mu_) =
      absl::InfinitePast();
};

// Result of replaying stored events through two policies.
struct ReplayReport {
  size_t events = 0;
  // Prefixes banned by the candidate policy but not by the live one, and the
  // reverse; each with the candidate's (resp. live) ban for its reason.
  std::vector<Ban> only_candidate;
  std::vector<Ban> only_live;
  size_t both = 0;
};

// Policy dry-run: replays the events stored in [from, to) through `live` and
// `candidate` (each from a clean state, with `allowlist`) in simulated time
// and reports which bans differ. Reads the store only.
absl::StatusOr<ReplayReport> ReplayPolicies(
    Store& store, absl::Time from, absl::Time to, const Policy& live,
    const Policy& candidate, const std::vector<AllowEntry>& allowlist);

}  // namespace rampart::server
