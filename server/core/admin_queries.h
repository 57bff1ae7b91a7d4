#pragma once

// AdminQueries: the domain side of the operator API (rampartctl ->
// AdminService). Everything the admin edge (server/grpc/admin_service.h)
// needs beyond converting protos lives here, free of generated code:
//  - ban, allowlist and audit views joined with what the BanDistributor knows
//    (the revision of each ban, which agents enforce it: "live on 13 of 14"),
//  - the `rampartctl ip` lookup (score, history, servers hit, users tried),
//  - the report over a time range (one bounded Store::ForEachEvent scan),
//  - admin mutations with the checks the Correlator does not make (broad
//    prefixes, the server's and agents' own addresses, covering bans),
//  - export rendering (plain, nft, netsh, csv) and import parsing.
// AlertsHub, below, feeds WatchAlerts streams.
//
// Every scan is bounded (AdminQueriesOptions); lists read at most a fixed
// number of store rows. Times come from the injected Clock only.
//
// Thread-safety: AdminQueries is thread-safe (it holds no mutable state of
// its own besides an atomic; the Correlator, Store and BanDistributor it
// calls are thread-safe). Calls block on the store: run them on the admin
// sync thread pool, never on an agent reactor (docs/threading.md "Admin").

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/event_types.h"
#include "common/ip_address.h"
#include "server/core/auth_event.h"
#include "server/core/ban.h"
#include "server/core/ban_distributor.h"
#include "server/core/correlator.h"
#include "server/core/policy.h"
#include "server/core/protected_addresses.h"
#include "server/core/records.h"
#include "server/core/store.h"

namespace rampart::server {

// ---------------------------------------------------------------------------
// Facts only the server application knows (provided by main's wiring).

// What the agent stream learnt about one agent (Hello, heartbeats).
struct AgentFacts {
  std::string agent_id;
  std::string site;
  std::string hostname;
  std::string version;
  std::string peer_address;
  std::string firewall_backend;
  // Hello.host_addresses: claimed only; they protect nothing unless an
  // admin approves them (ProtectedAddresses).
  std::vector<IpAddress> host_addresses;
  std::optional<absl::Time> connected_since;
  uint64_t spool_depth_batches = 0;
  uint64_t spool_dropped_batches = 0;
  absl::Duration tailer_lag = absl::ZeroDuration();
  absl::Duration clock_skew = absl::ZeroDuration();
  uint64_t durable_through = 0;
  uint32_t apply_errors = 0;
  uint32_t local_fallback_bans = 0;
};

enum class StoreHealthState : uint8_t { kUnknown, kOk, kDegraded, kDown };

// Process-level status facts for AdminService.Status.
struct StatusFacts {
  std::string server_version;  // e.g. common/version.h kVersion
  std::string server_id;
  absl::Time started_at = absl::UnixEpoch();
  uint64_t ban_list_epoch = 0;
  StoreHealthState store_state = StoreHealthState::kOk;
  std::string store_message;
  std::optional<absl::Time> last_commit_at;
  uint64_t pending_writes = 0;
  uint64_t correlator_queue_depth = 0;
  // nullopt: counted by a bounded scan of the stored events.
  std::optional<uint64_t> events_last_hour;
};

// Callbacks into the server application. Either may be empty (defaults are
// used). They are called on admin threads, with no AdminQueries lock held,
// and must be thread-safe and quick.
struct ServerFacts {
  std::function<StatusFacts()> status;
  std::function<std::vector<AgentFacts>()> agents;
};

struct AdminQueriesOptions {
  // The live policy (the Correlator's; it does not expose it).
  Policy policy;
  // The server's own addresses and any configured never-ban prefixes: bans
  // overlapping them are refused.
  std::vector<IpPrefix> self_prefixes;
  // Also never banned, if set (agents' peer and approved addresses,
  // loopback, the server's interfaces); SetAgentProtection changes it. Not
  // owned; must outlive the AdminQueries.
  ProtectedAddresses* protect = nullptr;
  // Most events one report or status count reads; beyond it the result
  // covers the oldest part of the period only and is marked truncated.
  size_t max_scan_events = 5'000'000;
  // Most ban-list journal entries read (newest first) for inactive bans and
  // ban history.
  size_t max_journal_scan = 200'000;
  // Most distinct addresses / users a report aggregates; later ones only
  // count in the totals.
  size_t max_report_keys = 200'000;
  // Most distinct values (users per address, addresses per user, ...) kept
  // per aggregated key; counts above it are lower bounds.
  size_t max_distinct_per_key = 1'000;
  // Most rows read from the store for one list (alerts, audit, accounts).
  size_t max_list_rows = 10'000;
};

// ---------------------------------------------------------------------------
// Views

// A ban with where it stands in the revisioned list.
struct BanView {
  Ban ban;
  // Revision of the ban's latest add/update (0 when no longer known).
  uint64_t revision = 0;
  bool active = false;
  // Set for bans lifted by an operator (journal kRemove).
  std::optional<absl::Time> removed_at;
};

// ListBans filters; all given ones must match.
struct BanFilter {
  bool include_inactive = false;
  // Only bans whose prefix contains this prefix (an address is a host one).
  std::optional<IpPrefix> covering;
  // Only bans whose prefix lies inside this prefix.
  std::optional<IpPrefix> within;
  std::optional<BanOrigin> origin;
};

struct BanHistoryStep {
  enum class Action : uint8_t { kCreated, kUpdated, kRemoved, kExpired };
  uint64_t ban_id = 0;
  absl::Time at = absl::UnixEpoch();
  Action action = Action::kCreated;
  std::string actor;
  std::string reason;
  uint64_t revision = 0;  // 0 for kExpired (implicit, no journal entry)
  // Expiry after the step; InfiniteFuture: permanent. Unset for kRemoved.
  std::optional<absl::Time> expires;
};

struct AgentEnforcementView {
  std::string agent_id;
  std::string site;
  bool connected = false;
  uint64_t enforced_revision = 0;
  // enforced_revision >= the ban's revision.
  bool enforced = false;
};

// A ban with everything known about it (rampartctl bans show).
struct BanDetail {
  BanView view;
  // Oldest first: this prefix's bans found in the journal window.
  std::vector<BanHistoryStep> history;
  // Events of the prefix around the ban (at most 50, newest first).
  std::vector<AuthEvent> evidence;
  int evidence_servers = 0;
  // "Live on agents_enforcing of agents_total."
  int agents_enforcing = 0;
  int agents_total = 0;
  std::vector<AgentEnforcementView> enforcement;
};

struct CountedAgent {
  std::string agent_id;
  uint64_t events = 0;
};
struct CountedUser {
  std::string user;  // raw bytes as logged
  uint64_t attempts = 0;
};
struct PrefixScoreView {
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  double score = 0;  // sum of the decayed scores of its scored members
  uint32_t members = 0;
};

// rampartctl ip ADDRESS.
struct IpLookup {
  IpAddress address;
  KeyInfo key;  // score, servers in the cross-server window, covering ban
  double ban_threshold = 0;
  std::optional<AllowEntry> allow;
  bool self_address = false;
  std::optional<BanView> active_ban;
  // Bans of prefixes containing the address, newest first (at most 100).
  std::vector<BanView> bans;
  std::vector<AuthEvent> recent_events;  // newest first
  bool events_truncated = false;
  std::vector<CountedAgent> agents_hit;  // most events first
  std::vector<CountedUser> users_tried;  // most attempts first, at most 100
  std::vector<PrefixScoreView> prefix_scores;
};

// An account in a report or list.
struct AccountView {
  std::string user;
  uint32_t distinct_ips = 0;
  uint32_t distinct_servers = 0;
  uint64_t failures = 0;
  bool locked_out = false;
  absl::Time first_seen = absl::UnixEpoch();
  absl::Time last_seen = absl::UnixEpoch();
  std::vector<Protocol> protocols;
  std::vector<std::string> agent_ids;
  std::vector<std::string> sample_ips;
  bool compromise_suspected = false;
  // Filled by AdminQueries::AddAccountEvidence (empty otherwise): events
  // for the account, newest first.
  std::vector<AuthEvent> evidence;
};

struct Offender {
  IpAddress address;
  uint64_t events = 0;
  // Peak of the base score (event weights with decay, without the
  // cross-server multiplier) in the period, or the live score if higher.
  double peak_score = 0;
  uint32_t distinct_servers = 0;
  uint32_t distinct_users = 0;
  bool banned = false;
};

struct ProtocolCount {
  Protocol protocol = Protocol::kUnknown;
  uint64_t auth_failures = 0;
  uint64_t lockouts = 0;
  uint64_t total = 0;
};

// rampartctl report --since D.
struct Report {
  absl::Time period_start = absl::UnixEpoch();
  absl::Time period_end = absl::UnixEpoch();
  std::vector<Offender> top_offenders;  // by events
  std::vector<BanView> new_bans;        // newest first, at most top_n
  uint64_t new_bans_total = 0;
  std::vector<AccountView> targeted_accounts;      // by distinct addresses
  std::vector<CompromiseAlert> compromise_alerts;  // newest first
  std::vector<ProtocolCount> per_protocol;         // by protocol number
  uint64_t events_total = 0;
  // The scan stopped at max_scan_events: counts are lower bounds.
  bool truncated = false;
};

struct StatusView {
  StatusFacts facts;
  absl::Time now = absl::UnixEpoch();
  uint64_t current_revision = 0;
  uint64_t journal_oldest_revision = 0;
  uint64_t active_bans = 0;
  uint64_t permanent_bans = 0;
  uint64_t allow_entries = 0;
  uint32_t agents_total = 0;
  uint32_t agents_connected = 0;
  uint32_t agents_current = 0;
  uint64_t events_last_hour = 0;
  // Compromise alerts raised in the last 24 hours (alerts have no
  // acknowledgement yet, so "open" means recent).
  uint64_t open_alerts = 0;
};

// One agent for rampartctl agents list.
struct AgentView {
  AgentStatus status;
  std::optional<AgentFacts> facts;
  // Its peer / approved / claimed addresses (ProtectedAddresses).
  AgentAddressView addresses;
};

struct AddBanOutcome {
  Ban ban;
  uint64_t revision = 0;
  bool created = false;  // false: an existing ban was extended or kept
};
struct RemoveBanOutcome {
  Ban ban;  // as it was
  uint64_t revision = 0;
};
struct AddAllowOutcome {
  AllowEntry entry;
  std::vector<Ban> removed_bans;
  uint64_t revision = 0;  // of the last removal; 0 if none
};

// ---------------------------------------------------------------------------
// Export / import (pure functions; see docs/protocol.md "Admin API").

enum class ExportFormat : uint8_t { kPlain, kNft, kNetsh, kCsv };

// All active bans at one revision, sorted by prefix.
struct ExportSnapshot {
  uint64_t revision = 0;
  std::vector<BanView> bans;
};

// Addresses per netsh rule.
inline constexpr size_t kNetshAddressesPerRule = 200;

// Renders `snapshot` in `format` as chunks of at most `max_chunk_bytes`
// (>= 4096) that each end at a line boundary; at least one chunk. `now`
// turns expiries into nft timeouts. Every line ends in "\n" ("\r\n" for CSV,
// RFC 4180).
std::vector<std::string> RenderExport(ExportFormat format,
                                      const ExportSnapshot& snapshot,
                                      absl::Time now, size_t max_chunk_bytes);

// "198.51.100.7/32": a prefix always with its length (IpPrefix::ToString
// prints host prefixes bare).
std::string CidrText(const IpPrefix& prefix);

// True if `prefix` is broader than the admin limit: /16 for IPv4, /32 for
// IPv6 (AddBanRequest.allow_broad_prefix lifts it).
bool IsBroadPrefix(const IpPrefix& prefix);

enum class ImportFormat : uint8_t { kPlain, kCsv };

// Import limits: longer lines are per-line errors; more lines reject the
// whole text.
inline constexpr size_t kMaxImportLineBytes = 4096;
inline constexpr size_t kMaxImportLines = 200'000;
inline constexpr size_t kMaxReasonBytes = 256;
inline constexpr absl::Duration kMaxBanDuration = absl::Hours(24 * 3650);

struct ImportDefaults {
  // Lifetime for lines that carry none. has_lifetime = false: the request
  // gave none (PLAIN lines are then errors; CSV lines need an expires_at).
  bool has_lifetime = false;
  std::optional<absl::Duration> duration;  // nullopt: permanent
  std::string reason;  // 1..256 bytes, checked by the caller
};

enum class ImportOutcome : uint8_t { kAdded, kUpdated, kSkipped, kError };

struct ImportLine {
  uint32_t line_number = 0;  // 1-based
  ImportOutcome outcome = ImportOutcome::kAdded;
  std::string message;  // for kSkipped / kError, at most 256 bytes
  uint64_t ban_id = 0;  // kAdded / kUpdated
  // Parsed (valid for lines not in error).
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  std::optional<absl::Duration> duration;  // nullopt: permanent
  // A CSV line's expires_at: the ban ends exactly then (duration holds
  // the time left when the line was parsed, for the dry run).
  std::optional<absl::Time> expires_at;
  std::string reason;
};

// Parsed lines in text order: comment and blank lines are omitted; lines
// that failed to parse (or name a prefix broader than /16 IPv4, /32 IPv6)
// have outcome kError, repeats of an earlier line's prefix kSkipped, the
// others kAdded (tentative: ApplyImport decides). InvalidArgument (naming
// the problem) when the whole text is unusable: more than kMaxImportLines
// lines, a CSV without a header naming a `prefix` column.
absl::StatusOr<std::vector<ImportLine>> ParseImport(
    ImportFormat format, std::string_view text, const ImportDefaults& defaults,
    absl::Time now);

struct ImportSummary {
  std::vector<ImportLine> lines;  // every parsed line, outcome decided
  uint32_t added = 0;
  uint32_t updated = 0;
  uint32_t skipped = 0;
  uint32_t errors = 0;
  uint64_t revision = 0;  // last revision written; 0 for a dry run / none
};

// ---------------------------------------------------------------------------

class AdminQueries {
 public:
  // The references must outlive the object.
  AdminQueries(const AdminQueriesOptions& options, Correlator& correlator,
               Store& store, BanDistributor& distributor, Clock& clock,
               ServerFacts facts);

  AdminQueries(const AdminQueries&) = delete;
  AdminQueries& operator=(const AdminQueries&) = delete;

  const AdminQueriesOptions& options() const { return options_; }

  // Never fails: store problems show in the store health fields.
  StatusView Status() const;

  // Bans matching `filter`, ordered by created descending then id
  // descending. Inactive bans come from the newest max_journal_scan journal
  // entries. Store errors are returned as is.
  absl::StatusOr<std::vector<BanView>> ListBans(const BanFilter& filter) const;
  // NotFound if no ban with that id is active or in the journal window.
  absl::StatusOr<BanDetail> GetBanById(uint64_t id) const;
  // The most specific active ban containing `target`; with
  // `include_inactive` and none active, the most recent past ban of a
  // prefix containing it. NotFound otherwise.
  absl::StatusOr<BanDetail> GetBanByTarget(const IpPrefix& target,
                                           bool include_inactive) const;

  // Bans `prefix`. FailedPrecondition if it is broader than /16 (IPv4) or
  // /32 (IPv6) and !allow_broad, overlaps a self address, or overlaps the
  // allowlist. An existing active ban of the prefix that already lasts as
  // long is returned unchanged (created = false, nothing audited). Store
  // errors (kUnavailable: nothing changed) as is. `override_protected`
  // (the caller checks the admin role): an agent's protected address (peer
  // or approved) does not refuse the ban, which is audited once more as
  // "ban.override_protected" naming it; the server's own and loopback
  // prefixes are never overridden.
  absl::StatusOr<AddBanOutcome> AddBan(const IpPrefix& prefix,
                                       std::optional<absl::Duration> duration,
                                       std::string reason, std::string actor,
                                       bool allow_broad,
                                       BanOrigin origin = BanOrigin::kManual,
                                       std::string peer = "",
                                       bool override_protected = false);
  // Lifts the active ban with this id / exact prefix. NotFound (naming any
  // covering bans) if there is none.
  // `peer` (all mutations): the admin connection's peer, for the audit log.
  absl::StatusOr<RemoveBanOutcome> RemoveBanById(uint64_t id,
                                                 std::string reason,
                                                 std::string actor,
                                                 std::string peer = "");
  absl::StatusOr<RemoveBanOutcome> RemoveBanByPrefix(const IpPrefix& prefix,
                                                     std::string reason,
                                                     std::string actor,
                                                     std::string peer = "");

  // Allowlist entries ordered by prefix (lapsed ones only if asked).
  std::vector<AllowEntry> Allowlist(bool include_expired) const;
  // Adds an entry and lifts the active bans inside it (and, with
  // remove_covering, those strictly covering it). AlreadyExists if the
  // prefix is allowlisted; FailedPrecondition if a ban strictly covers it
  // and !remove_covering, or if the prefix is broad (IsBroadPrefix: it would
  // switch banning off for a whole range) and !allow_broad. The caller
  // checks the admin role for broad entries; they are audited as
  // "allow.add.broad".
  absl::StatusOr<AddAllowOutcome> AddAllow(
      const IpPrefix& prefix, std::optional<absl::Duration> duration,
      std::string comment, bool remove_covering, std::string actor,
      std::string peer = "", bool allow_broad = false);
  // Removes the entry of exactly `prefix` / with AllowId() == id. NotFound.
  absl::StatusOr<AllowEntry> RemoveAllowByPrefix(const IpPrefix& prefix,
                                                 std::string actor,
                                                 std::string peer = "");
  absl::StatusOr<AllowEntry> RemoveAllowById(uint64_t id, std::string actor,
                                             std::string peer = "");
  // Stable id of an allowlist entry (a 63-bit hash of its prefix; the
  // domain keys entries by prefix), > 0.
  static uint64_t AllowId(const IpPrefix& prefix);

  // rampartctl ip. `window` bounds the history, `max_events` the events
  // returned (aggregates use up to max_list_rows * 10 events).
  absl::StatusOr<IpLookup> LookupIp(const IpAddress& ip, absl::Duration window,
                                    size_t max_events) const;

  // Agents known to the distributor (sorted by id) with application facts.
  std::vector<AgentView> Agents() const;
  // Approves `addresses` as protected for `agent_id` (protect) or withdraws
  // their protection (!protect; also of a peer entry). Audited as
  // "agent.protect" / "agent.unprotect". The caller checks the admin role.
  // FailedPrecondition without a ProtectedAddresses or beyond its caps.
  absl::StatusOr<AgentAddressView> SetAgentProtection(
      std::string_view agent_id, const std::vector<IpAddress>& addresses,
      bool protect, std::string actor, std::string peer);
  // Drops every protected entry of a revoked agent.
  absl::Status ForgetAgentAddresses(std::string_view agent_id);

  // Accounts under attack seen within `window`, with at least
  // `min_distinct_ips` addresses (0: every recorded account), ordered by
  // distinct_ips descending, then user.
  absl::StatusOr<std::vector<AccountView>> Accounts(
      absl::Duration window, uint32_t min_distinct_ips) const;
  // Adds to `account` (from Accounts) what its stored events show: up to
  // kAccountEvidence events for the account since `since`, newest first,
  // the protocols they used, and whether one was a lockout. The events are
  // those of its kAccountEvidenceAddresses most active sample addresses
  // (one indexed look-up each), so an account attacked from many addresses
  // shows its main attackers' evidence, not every event.
  absl::Status AddAccountEvidence(absl::Time since, AccountView& account) const;
  static constexpr size_t kAccountEvidence = 20;
  static constexpr size_t kAccountEvidenceAddresses = 5;

  // Alerts raised at or after `since`, id descending (newest
  // max_list_rows).
  absl::StatusOr<std::vector<CompromiseAlert>> Alerts(absl::Time since) const;

  // Audit records at or after `since` matching the non-empty filters, id
  // descending (newest max_list_rows).
  absl::StatusOr<std::vector<AuditRecord>> Audit(absl::Time since,
                                                 std::string_view actor,
                                                 std::string_view action) const;

  // Report over [now - period, now], top lists of `top_n`.
  absl::StatusOr<Report> BuildReport(absl::Duration period, size_t top_n) const;

  // All active bans at one revision.
  ExportSnapshot Snapshot() const;

  // Decides each parsed line against the live state and, unless `dry_run`,
  // adds the accepted ones (origin kImport). Bans are added one by one, so
  // an import of n lines writes up to n revisions and n audit records.
  // Unavailable if the store fails before anything was committed; a later
  // failure marks the remaining lines as errors.
  absl::StatusOr<ImportSummary> ApplyImport(std::vector<ImportLine> lines,
                                            bool dry_run, std::string actor,
                                            std::string peer = "");

  // Policy dry run (ReplayPolicies with the live allowlist) over [from, to).
  // ResourceExhausted while another dry run is running.
  absl::StatusOr<ReplayReport> DryRun(const Policy& candidate, absl::Time from,
                                      absl::Time to);

  // Reason of an audit record, read from its before/after JSON ("" if none).
  static std::string AuditReason(const AuditRecord& record);

 private:
  // Journal entries of the newest max_journal_scan revisions (ascending).
  absl::StatusOr<std::vector<JournalEntry>> RecentJournal() const;
  // Active bans joined with their revisions.
  std::vector<BanView> ActiveViews() const;
  absl::StatusOr<BanDetail> Detail(BanView view) const;
  // Text naming the self prefix `prefix` overlaps, or nullopt. Without
  // `agents`, agents' protected addresses are not looked at (the override).
  std::optional<std::string> SelfOverlap(const IpPrefix& prefix,
                                         bool agents = true) const;
  std::vector<AgentFacts> AgentFactsNow() const;
  // Revision of the journal entry `op` of ban `ban_id` committed after
  // revision `after` (the Correlator returns the ban, not its revision);
  // falls back to the current revision.
  uint64_t RevisionOf(uint64_t ban_id, JournalEntry::Op op,
                      uint64_t after) const;

  const AdminQueriesOptions options_;
  Correlator& correlator_;
  Store& store_;
  BanDistributor& distributor_;
  Clock& clock_;
  const ServerFacts facts_;
  std::atomic<bool> dry_run_running_{false};
};

// ---------------------------------------------------------------------------
// AlertsHub: feeds WatchAlerts streams.
//
// The Correlator does not announce alerts as it raises them (and is not ours
// to change), so each watcher polls Store::ListAlerts with a cursor (the id
// and time of the last alert it delivered) every `poll_interval`, waiting on
// a CondVar in between. Notify() (a hook for the ingest path: call it when
// IngestResult::alerts > 0) and Shutdown() wake every watcher at once, so
// delivery is immediate when the hook is wired and at most one interval late
// otherwise; nothing busy-loops. The interval is a delivery cadence, not
// domain time, so it runs on the real clock (absl::CondVar timeouts).
//
// Thread-safety: thread-safe. Each Watch is used by one thread (its RPC
// handler); Notify/Shutdown may be called from any thread.
class AlertsHub {
 public:
  struct Options {
    absl::Duration poll_interval = absl::Seconds(1);
    int max_watchers = 64;
    // Most alerts one subscription replays (after_alert_id) or one poll
    // delivers; more is OutOfRange (resume with ListAlerts).
    size_t max_batch = 10'000;
  };

  class Watch {
   public:
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

    // Blocks until alerts newer than the cursor exist, then returns them in
    // increasing id order (replayed ones first). Cancelled once `stop()`
    // returns true (checked at least every poll interval); Unavailable after
    // Shutdown(); OutOfRange if more than max_batch alerts arrived between
    // two polls; store errors as is.
    absl::StatusOr<std::vector<CompromiseAlert>> Next(
        const std::function<bool()>& stop);

    uint64_t cursor() const { return cursor_id_; }

   private:
    friend class AlertsHub;
    explicit Watch(AlertsHub& hub) : hub_(hub) {}

    AlertsHub& hub_;
    uint64_t cursor_id_ = 0;
    absl::Time cursor_time_ = absl::UnixEpoch();
    std::vector<CompromiseAlert> pending_;  // replay, ascending
  };

  AlertsHub(const Options& options, Store& store);
  AlertsHub(const AlertsHub&) = delete;
  AlertsHub& operator=(const AlertsHub&) = delete;

  // Registers a watcher. after_alert_id = 0: only alerts raised from now on;
  // else alerts with id > after_alert_id are replayed first.
  // ResourceExhausted beyond max_watchers; OutOfRange if the replay would
  // exceed max_batch or starts before the oldest retained alert;
  // Unavailable after Shutdown(); store errors as is.
  absl::StatusOr<std::unique_ptr<Watch>> Subscribe(uint64_t after_alert_id);

  // Wakes every watcher to poll now.
  void Notify() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every watch (Next returns Unavailable) and refuses new ones.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  int watchers() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until exactly `count` watchers are registered or `timeout`
  // passes; returns whether the count was reached.
  bool AwaitWatchersForTest(int count, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Alerts with id > cursor (ascending), read from the store.
  absl::StatusOr<std::vector<CompromiseAlert>> Poll(Watch& watch);

  const Options options_;
  Store& store_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int watchers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rampart::server
