#pragma once

// Enforcer: owns the ban list the server sent and keeps a Firewall backend
// in step with it (docs/agent.md, "Enforcement").
//
// The desired state is the server's list (BanItems keyed by id, at an
// (epoch, revision)). What the backend gets is derived from it:
//   1. expired items are dropped (the injected Clock decides; backends with
//      kernel timeouts also expire them on their own);
//   2. items whose prefix the Guard refuses are not enforced and are
//      reported (ApplyReport.refused -> EnforcedRevision.errors);
//   3. items with the same prefix merge (the longest expiry wins; permanent
//      beats any expiry);
//   4. a prefix covered by a wider enforced prefix is not installed (nft
//      interval sets reject overlaps; the wider one blocks it anyway). The
//      Enforcer remembers it, so it is installed once the wider one is
//      removed or expires.
// Deltas are turned into a backend delta touching only what changed (cost
// independent of the list size, except for a wide prefix covering many
// others); snapshots replace the backend's whole set in one call.
//
// Restart safety: after every successful apply the list is persisted in
// `state_dir` (EnforcedStateStore: a snapshot file written atomically plus
// an fdatasync'ed journal of deltas, so a delta costs O(changes)). Create()
// loads it and Start() re-applies it before the agent talks to the server,
// so a restarted agent enforces its last list at once and resumes with
// deltas. Stop() leaves the rules in place unless `remove_on_stop`.
//
// Drift repair: Repair() re-installs the backend's rules, lists what the
// backend enforces and fixes both directions (re-adds deleted entries,
// removes foreign ones). Callers schedule Refresh() at NextWakeup() (expiry
// handling) and Repair() periodically (e.g. every minute); tests call them
// directly.
//
// Failure handling: a failed backend delta falls back to a snapshot of the
// whole derived set. If that fails too, the call returns the error, the
// list still advances to the new revision in memory, and the Enforcer is
// marked dirty: the next call of any kind re-applies a full snapshot first.
// EnforcedRevision may be reported only for calls that returned OK.
//
// Thread-safety: thread-safe; all methods serialise on one mutex, and the
// backend is only called with it held. See docs/threading.md.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/firewall/ban_item.h"
#include "agent/firewall/enforced_state_store.h"
#include "agent/firewall/firewall.h"
#include "agent/firewall/guard.h"
#include "common/clock.h"
#include "common/metrics.h"

namespace rampart::agent {

struct EnforcerOptions {
  // Directory of the enforced-state file, created if missing. Empty = no
  // persistence (dry runs, tests). Default empty.
  std::string state_dir;
  // fsync the state file and its directory on every write. Default true.
  bool sync_state = true;
  // Stop() removes every rule and set the backend created. Default false:
  // the bans stay enforced (and the kernel keeps expiring them) while the
  // agent is stopped or being upgraded.
  bool remove_on_stop = false;
  // Caps on what the enforced list may block, summed over the distinct
  // enforced prefixes (a prefix inside another counts again): IPv4
  // addresses, and IPv6 /64 subnets (a longer IPv6 prefix counts as one).
  // A ban that would pass the cap is refused (GuardReason::kCapacity) until
  // a Repair() finds room. Defaults 2^24 (256 /16s) and 2^40 (256 /32s).
  uint64_t max_blocked_ipv4_addresses = uint64_t{1} << 24;
  uint64_t max_blocked_ipv6_subnets = uint64_t{1} << 40;
};

// A ban of the list the Guard refused.
struct RefusedBan {
  uint64_t id = 0;
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  GuardRefusal refusal;
};

// Result of a successful ApplySnapshot/ApplyDelta.
struct ApplyReport {
  uint64_t epoch = 0;
  // The revision now enforced (report it in EnforcedRevision).
  uint64_t revision = 0;
  // Prefixes installed in the backend (after merging and covering).
  size_t installed = 0;
  // Every item of the list the Guard refuses, ordered by id (for
  // EnforcedRevision.errors; not just the ones new in this call).
  std::vector<RefusedBan> refused;
  // The backend delta failed and a snapshot was applied instead.
  bool fell_back_to_snapshot = false;
};

// Result of Repair().
struct RepairReport {
  // Desired prefixes that were missing from the backend and were re-added.
  size_t added = 0;
  // Prefixes the backend enforced without being desired, removed.
  size_t removed = 0;
  // The backend's listing failed or the repair delta failed, so the whole
  // set was re-applied as a snapshot (added/removed are then 0).
  bool full_resync = false;
};

class Enforcer {
 public:
  // Loads `<state_dir>/enforced-bans.state` if present. A missing, corrupt
  // or newer-version file is logged and the Enforcer starts with no list
  // (the server then sends a snapshot). Errors: the state directory cannot
  // be created (ErrnoStatus codes). `firewall`, `guard`, `clock` and
  // `metrics` must outlive the Enforcer.
  static absl::StatusOr<std::unique_ptr<Enforcer>> Create(
      const EnforcerOptions& options, Firewall& firewall, Guard& guard,
      Clock& clock, metrics::Registry& metrics);

  Enforcer(const Enforcer&) = delete;
  Enforcer& operator=(const Enforcer&) = delete;

  // Refreshes the Guard's host addresses, installs the backend's rules and,
  // if a list was loaded, re-applies it as a snapshot. Without a loaded list
  // the backend's entries are left alone until the first snapshot. Call
  // once, before connecting to the server. Backend errors are returned; the
  // caller may retry.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);

  // Replaces the list with `items` at (epoch, revision) and applies it.
  // InvalidArgument (nothing changed) if an id repeats. Backend errors as
  // described in the class comment.
  absl::StatusOr<ApplyReport> ApplySnapshot(uint64_t epoch, uint64_t revision,
                                            const std::vector<BanItem>& items)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Applies `changes` in order, turning the list at `from_revision` into
  // `to_revision`. FailedPrecondition (nothing changed) if there is no list,
  // the epoch differs or `from_revision` is not the current revision (the
  // caller reconnects and gets a snapshot); InvalidArgument if to_revision
  // <= from_revision. Backend errors as described in the class comment.
  absl::StatusOr<ApplyReport> ApplyDelta(uint64_t epoch, uint64_t from_revision,
                                         uint64_t to_revision,
                                         const std::vector<BanChange>& changes)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Drops expired items and updates the backend (installs prefixes that an
  // expired wider one was covering; removes expired ones from backends
  // without kernel timeouts). Cheap when nothing expired. Backend errors
  // as described in the class comment.
  absl::Status Refresh() ABSL_LOCKS_EXCLUDED(mu_);

  // Drift repair, see the class comment. Also re-reads the host addresses
  // and re-evaluates the Guard for every item. Before the first list it only
  // re-installs the rules. Errors only if even the snapshot fallback fails.
  absl::StatusOr<RepairReport> Repair() ABSL_LOCKS_EXCLUDED(mu_);

  // Removes everything the backend created if `remove_on_stop`; otherwise
  // does nothing. The state file is kept either way.
  absl::Status Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // When Refresh() should run next: the earliest expiry in the list;
  // nullopt if nothing expires.
  std::optional<absl::Time> NextWakeup() const ABSL_LOCKS_EXCLUDED(mu_);

  // The list's lineage and revision (0, 0 before the first list).
  std::pair<uint64_t, uint64_t> ListRevision() const ABSL_LOCKS_EXCLUDED(mu_);

  // The list's items (expired ones dropped at the last operation), sorted
  // by id. After Create() this is the loaded list.
  std::vector<BanItem> Items() const ABSL_LOCKS_EXCLUDED(mu_);

  // What the backend should hold right now, sorted by prefix.
  std::vector<FirewallEntry> InstalledForTest() const ABSL_LOCKS_EXCLUDED(mu_);

  // Path of the state file ("" without persistence); ReadEnforcedState()
  // on it also replays the journal next to it.
  std::string state_path() const {
    return store_ == nullptr ? std::string() : store_->state_path();
  }

 private:
  // Per distinct prefix of the list.
  struct PrefixState {
    absl::InlinedVector<uint64_t, 1> ids;
    // Merged expiry of `ids`; nullopt = permanent.
    std::optional<absl::Time> expires;
    std::optional<GuardRefusal> refused;
    // As last handed to the backend.
    bool installed = false;
    std::optional<absl::Time> installed_expires;
    bool active() const { return !ids.empty() && !refused.has_value(); }
  };
  using PrefixMap = absl::btree_map<IpPrefix, PrefixState>;

  struct Metrics {
    explicit Metrics(metrics::Registry& r);
    metrics::Counter* applies_ok[4];
    metrics::Counter* applies_failed[4];
    metrics::Histogram* apply_seconds[4];
    metrics::Counter& fallback_snapshots;
    metrics::Counter& drift_added;
    metrics::Counter& drift_removed;
    metrics::Counter& full_resyncs;
    metrics::Counter& state_write_errors;
    metrics::Counter* refused[kGuardReasonCount];
    metrics::Gauge& bans;
    metrics::Gauge& installed;
    metrics::Gauge& refused_bans;
    metrics::Gauge& revision;
  };
  enum Kind { kSnapshot = 0, kDelta = 1, kRefresh = 2, kRepair = 3 };

  Enforcer(const EnforcerOptions& options, Firewall& firewall, Guard& guard,
           Clock& clock, metrics::Registry& metrics,
           std::unique_ptr<EnforcedStateStore> store);

  // List mutation. REQUIRES: mu_ held.
  void ClearList() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void InsertItem(const BanItem& item, absl::btree_set<IpPrefix>* touched)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseItem(uint64_t id, absl::btree_set<IpPrefix>* touched)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PruneExpired(absl::Time now, absl::btree_set<IpPrefix>* touched)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetRefused(PrefixMap::iterator it, std::optional<GuardRefusal> refusal)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecomputeMergedExpiry(PrefixState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The Guard's verdict on `it`'s prefix, then the capacity cap (the
  // prefix's own weight excluded from the sum if it is active).
  std::optional<GuardRefusal> Limits(PrefixMap::const_iterator it) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds (+1) or removes (-1) `p`'s weight from active_weight_.
  void Weigh(const IpPrefix& p, int sign) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True if an active prefix other than `p` contains `p`.
  bool Covered(const IpPrefix& p) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Derivation. Both update `installed` flags to the new wanted state.
  // Incremental: the backend delta for the prefixes in `touched` and
  // everything inside them.
  void DiffTouched(const absl::btree_set<IpPrefix>& touched,
                   std::vector<FirewallEntry>* adds,
                   std::vector<IpPrefix>* removes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Full: every wanted entry, in prefix order (one sweep).
  std::vector<FirewallEntry> RecomputeAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Erases prefixes with no ids that are not installed.
  void DropDeadPrefixes(const absl::btree_set<IpPrefix>& touched)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Backend application: a delta (falling back to a snapshot) or, when
  // dirty_, a snapshot. Updates dirty_ and the fallback flag.
  absl::Status PushDelta(const std::vector<FirewallEntry>& adds,
                         const std::vector<IpPrefix>& removes, bool* fell_back)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PushSnapshot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ApplyReport MakeReport(bool fell_back) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Persist the whole list, or (when it chains from what is persisted) just
  // `changes`, the delta from `from_revision` to revision_. Failures are
  // logged and counted; enforcement does not depend on them.
  void PersistSnapshot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistDelta(uint64_t from_revision,
                    const std::vector<BanChange>& changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Count(Kind kind, const absl::Status& status, absl::Duration took)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const EnforcerOptions options_;
  Firewall& firewall_;
  Guard& guard_;
  Clock& clock_;
  Metrics metrics_;
  // Null without persistence. Not thread-safe: used only with mu_ held
  // (except the constant state_path()).
  const std::unique_ptr<EnforcedStateStore> store_;

  mutable absl::Mutex mu_;
  // The (epoch, revision) the store holds, if any.
  std::optional<std::pair<uint64_t, uint64_t>> persisted_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  // A list was loaded at Create() and Start() has not applied it yet.
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  // The backend may differ from the installed flags: re-apply a snapshot.
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<uint64_t, BanItem> items_ ABSL_GUARDED_BY(mu_);
  PrefixMap prefixes_ ABSL_GUARDED_BY(mu_);
  // Active prefixes per (family, length), so Covered() probes only lengths
  // in use.
  std::array<std::array<int, 129>, 2> active_lengths_ ABSL_GUARDED_BY(mu_){};
  // Sum of the weights (EnforcerOptions caps) of the active prefixes, per
  // family (saturating).
  std::array<uint64_t, 2> active_weight_ ABSL_GUARDED_BY(mu_){};
  // (expiry, id) of every expiring item.
  absl::btree_set<std::pair<absl::Time, uint64_t>> expiries_
      ABSL_GUARDED_BY(mu_);
  // Prefixes the Guard refuses (each with at least one id).
  absl::btree_set<IpPrefix> refused_ ABSL_GUARDED_BY(mu_);
  size_t installed_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rampart::agent
