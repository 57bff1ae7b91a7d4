#pragma once

// Detector: the pure detection model of the correlator. It turns events into
// decisions (bans, account-under-attack records, compromise alerts) and keeps
// the state that needs: decaying per-key scores, the servers each key hit,
// prefix ladders, account windows, ban history and the active ban list.
//
// It performs no I/O and reads no clock: every call takes `now`. The
// Correlator (correlator.h) owns one, persists its Decisions and only then
// publishes them. Replays (crash recovery, policy dry-run) drive it with
// event times.
//
// Thread-safety: not thread-safe; the Correlator serialises access
// (docs/threading.md).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "server/core/auth_event.h"
#include "server/core/ban.h"
#include "server/core/durable_state.h"
#include "server/core/policy.h"
#include "server/core/protected_addresses.h"
#include "server/core/records.h"

namespace rampart::server {

// What one or more Detector calls decided, in order.
struct Decisions {
  std::vector<JournalEntry> journal;
  std::vector<CompromiseAlert> alerts;
  std::vector<AccountAttack> accounts;
  bool empty() const {
    return journal.empty() && alerts.empty() && accounts.empty();
  }
};

// Explanation of one address for `rampartctl ip` and tests.
struct KeyInfo {
  IpPrefix key = IpPrefix::Host(IpAddress());  // /32, or the IPv6 /64
  double score = 0;                            // decayed to `now`
  uint32_t events = 0;  // scoring events since the score was last reset
  int servers_in_window = 0;
  std::vector<std::string> servers;  // in the window
  std::optional<absl::Time> last_failure;
  std::optional<Ban> covering_ban;
  std::optional<AllowEntry> allowed_by;
  int next_ban_level = 0;
};

// Abuse limits on automatic bans (docs/security.md "Abuse limits"). The
// defaults impose none besides the prefix-width limit, which always holds:
// the detector never auto-bans a prefix broader than /16 (IPv4) or /32
// (IPv6), whatever the policy's ladders say.
struct DetectorLimits {
  // Most new automatic bans per minute that one agent's evidence alone may
  // cause (the offender was seen by no other agent within server_window);
  // further ones are withheld and counted. 0: no cap.
  int agent_new_bans_per_minute = 0;
  // Never auto-banned when set (not owned; must outlive the Detector).
  const ProtectedAddresses* protect = nullptr;
  // Memory budget (docs/security.md "Abuse limits"): score entries (kept
  // for the compromise look-back) and account entries are keyed by values an
  // attacker chooses. At most this many of each are kept; a new key beyond
  // it first evicts the lowest decayed scores (a tenth of the cap at once,
  // so the cost is amortised). max_score_entries also caps each prefix
  // ladder registry (stalest blocks first). 0: no cap.
  size_t max_score_entries = 0;
  size_t max_account_entries = 0;
  // Most new score keys, and separately most new account keys, one agent's
  // events may create per clock minute; an event whose key would exceed it
  // is not tracked under that key (counted as refused). 0: no cap.
  int agent_new_keys_per_minute = 0;
};

// Automatic bans the limits withheld, since construction.
struct DetectorStats {
  uint64_t bans_capped = 0;
  uint64_t bans_refused_protected = 0;
  uint64_t bans_refused_broad = 0;
  // The agent (and what was refused) of the latest capped / protected
  // refusal, for the correlator's warnings.
  std::string last_capped_agent;
  std::string last_protected;
  // Memory budget (DetectorLimits): entries evicted by the caps, and new
  // keys refused by the per-agent rate, by kind.
  uint64_t score_evictions = 0;
  uint64_t account_evictions = 0;
  uint64_t score_keys_refused = 0;
  uint64_t account_keys_refused = 0;
};

class Detector {
 public:
  // REQUIRES: ValidatePolicy(policy).ok().
  explicit Detector(const Policy& policy, const DetectorLimits& limits = {});

  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  // Restores the durable part (bans, history, allowlist, counters) after a
  // restart; scores are then rebuilt with Observe(..., decide=false).
  void Restore(const DurableState& state);

  // Processes one event at time `now`. With decide=false only state is
  // updated (rebuild); with decide=true decisions are appended to *out.
  void Observe(const AuthEvent& event, absl::Time now, bool decide,
               Decisions* out);

  // Administrative ban of `prefix` until `expires` (InfiniteFuture:
  // permanent). Extends an active ban of the same prefix (kUpdate) if the
  // new expiry is later. FailedPrecondition if it overlaps the allowlist;
  // AlreadyExists if an active ban already lasts at least as long.
  absl::StatusOr<Ban> AddBan(const IpPrefix& prefix, absl::Time expires,
                             BanOrigin origin, std::string reason,
                             std::string actor, absl::Time now, Decisions* out);
  // Lifts the active ban of exactly `prefix` and forgives the scores and
  // prefix evidence inside it. NotFound if there is no such active ban.
  absl::StatusOr<Ban> RemoveBan(const IpPrefix& prefix, std::string reason,
                                std::string actor, absl::Time now,
                                Decisions* out);

  // Allowlist. Entries are never banned whatever their score; a prefix ban
  // that would overlap one is not made.
  void PutAllow(const AllowEntry& entry);
  // Returns the removed entry, or NotFound.
  absl::StatusOr<AllowEntry> DeleteAllow(const IpPrefix& prefix);

  // Drops expired bans and allowlist entries and idle state. Call
  // periodically (e.g. every minute); cost linear in the tracked state.
  void Expire(absl::Time now);

  uint64_t revision() const { return revision_; }
  std::vector<Ban> ActiveBans(absl::Time now) const;
  std::optional<Ban> CoveringBan(const IpAddress& ip, absl::Time now) const;
  std::optional<AllowEntry> AllowedBy(const IpPrefix& prefix,
                                      absl::Time now) const;
  const std::vector<AllowEntry>& allowlist() const { return allow_; }
  KeyInfo Explain(const IpAddress& ip, absl::Time now) const;
  size_t tracked_keys() const { return scores_.size(); }
  const DetectorStats& stats() const { return stats_; }
  size_t tracked_accounts() const { return accounts_.size(); }

  // The scoring key of an address: the address itself (IPv4) or its
  // v6_score_prefix block (IPv6).
  IpPrefix KeyOf(const IpAddress& ip) const;

 private:
  static constexpr int kServerSlots = 6;
  static constexpr int kAccountIpSlots = 32;
  static constexpr int kAccountServerSlots = 16;

  // 52 bytes: float score and second-resolution times keep a tracked address
  // under 200 bytes including the hash-map slot (docs/benchmarks.md).
  struct ScoreEntry {
    float score = 0;              // as of updated_s
    uint32_t updated_s = 0;       // Unix seconds
    uint32_t last_failure_s = 0;  // Unix seconds of the newest scoring event
    uint32_t events = 0;
    std::array<uint16_t, kServerSlots> server = {};
    std::array<uint32_t, kServerSlots> server_seen_s = {};  // 0: empty slot
  };
  struct History {
    int last_level = 0;
    int bans = 0;
    int64_t last_end_us = 0;
  };
  struct ChildMark {
    IpPrefix child;
    int64_t last_bad_s;
  };
  struct AccountState {
    int64_t first_us = 0;
    int64_t last_us = 0;
    int64_t failures = 0;
    std::vector<std::pair<IpAddress, int64_t>> ips;     // bounded
    std::vector<std::pair<uint16_t, int64_t>> servers;  // bounded
    int reported_ips = 0;
    int reported_servers = 0;
    bool under_attack = false;
  };

  uint16_t ServerIndex(std::string_view agent_id);
  // The entry of `key`, created within the memory budget (evicting if the
  // cap is reached); nullptr if `server` exceeded its new-key rate.
  ScoreEntry* ScoreSlot(const IpAddress& key, uint16_t server, int64_t now_s);
  AccountState* AccountSlot(const std::string& user, uint16_t server,
                            int64_t now_s);
  // Whether `server` may create one more key of the kind (false: score,
  // true: account) in the minute of now_s; counts it if so.
  bool NewKeyAllowed(uint16_t server, bool account, int64_t now_s);
  void EvictScores(int64_t now_s);
  void EvictAccounts(int64_t now_s);
  double AccountWeight(const AccountState& a, int64_t now_us) const;
  double Decayed(const ScoreEntry& e, int64_t now_s) const;
  int ServersInWindow(const ScoreEntry& e, int64_t now_s) const;
  int NextLevel(const IpPrefix& prefix, absl::Time now) const;
  absl::Duration BanDuration(const IpPrefix& prefix, int level,
                             uint64_t id) const;
  // Makes an automatic ban; returns false if allowlisted or already covered.
  bool AutoBan(const IpPrefix& prefix, BanOrigin origin, std::string reason,
               absl::Time now, Decisions* out);
  void Journal(JournalEntry::Op op, const Ban& ban, absl::Time now,
               Decisions* out);
  // Records `child` as bad on ladder rung `rung` and bans the parent when
  // prefix_k children are bad.
  void MarkBadChild(const IpPrefix& child, size_t rung, absl::Time now,
                    bool decide, Decisions* out);
  bool PrefixEvidence(const IpAddress& ip, int64_t now_s) const;
  void ObserveAccount(const AuthEvent& e, uint16_t server, int64_t event_us,
                      int64_t now_s, bool decide, Decisions* out);
  void CheckCompromise(const AuthEvent& e, absl::Time now, Decisions* out);
  const std::vector<int>& Ladder(const IpAddress& ip) const;

  const Policy policy_;
  const DetectorLimits limits_;
  const int64_t half_life_us_;
  DetectorStats stats_;
  // The agent whose event is being observed and whether it alone saw the
  // offender (for the per-agent new-ban cap); 0 outside Observe().
  uint16_t cause_server_ = 0;
  bool cause_alone_ = false;
  // Per agent (server index): Unix seconds of its uncorroborated new bans
  // within the last minute.
  absl::flat_hash_map<uint16_t, std::vector<int64_t>> recent_bans_;
  // Per agent (server index): new keys created in the minute `minute`.
  struct KeyBudget {
    int64_t minute = -1;
    int scores = 0;
    int accounts = 0;
  };
  absl::flat_hash_map<uint16_t, KeyBudget> key_budget_;

  absl::flat_hash_map<IpAddress, ScoreEntry> scores_;
  absl::flat_hash_map<IpPrefix, Ban> active_;  // by exact prefix
  // Number of active bans per (family, length), to find covering bans.
  std::array<int, 129> v4_lengths_ = {};
  std::array<int, 129> v6_lengths_ = {};
  absl::flat_hash_map<IpPrefix, History> history_;
  // One registry per ladder rung (v4 rungs first, then v6), keyed by parent.
  std::vector<absl::flat_hash_map<IpPrefix, std::vector<ChildMark>>> rungs_;
  absl::flat_hash_map<std::string, AccountState> accounts_;
  std::vector<AllowEntry> allow_;
  absl::flat_hash_map<std::string, uint16_t> server_ids_;
  std::vector<std::string> server_names_;

  uint64_t revision_ = 0;
  uint64_t next_ban_id_ = 1;
  uint64_t next_alert_id_ = 1;
};

// ASCII lower case, surrounding blanks removed: the account key.
std::string NormaliseUser(std::string_view user);

}  // namespace rampart::server
