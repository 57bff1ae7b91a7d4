#pragma once

// LocalFallback: the conservative policy the agent applies on its own while
// the server has been unreachable longer than `activate_after`
// (docs/agent.md "Client and fallback", docs/protocol.md "Local fallback").
//
// It counts failures (auth failures and lockouts with an address) per
// address over a sliding `window`, always, so an attack in progress when
// the server goes away is not forgotten. While active, an address reaching
// `failures` within the window gets a local ban for `ban_duration` (at most
// `max_bans` in force). Each ban remembers the spool sequence that will
// hold its evidence; it is removed when it expires, or once the server is
// back, its ban list has been applied again and every batch up to that
// sequence is durably acknowledged (the server has then seen the same
// evidence and decided itself). Bans never bypass the enforcement Guard:
// they are enforced through the Enforcer like the server's list.
//
// Pure decision logic with an injected Clock: no I/O, no threads.
//
// Thread-safety: thread-safe (one mutex): Observe runs on the agent's loop
// thread, Reconcile and bans() on the loop thread too, and the gRPC client
// thread may read bans() for LocalBanReport.

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/daemon/agent_config.h"
#include "agent/daemon/agent_event.h"
#include "common/clock.h"
#include "common/ip_address.h"

namespace rampart::agent {

// One local-fallback ban.
struct LocalBan {
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  absl::Time created;
  absl::Time expires;
  // The ban may be reconciled away once every batch <= this is acked.
  uint64_t evidence_sequence = 0;

  friend bool operator==(const LocalBan&, const LocalBan&) = default;
};

class LocalFallback {
 public:
  // Most addresses tracked at once; beyond it new addresses are not
  // counted until old ones leave the window (bounded memory under a flood).
  static constexpr size_t kMaxTrackedAddresses = 100'000;

  // `clock` must outlive the LocalFallback.
  LocalFallback(const LocalFallbackConfig& config, Clock& clock);

  // Counts `event` (if it is a failure with an address) and, when active,
  // bans its address once it reaches the threshold. `pending_sequence`: the
  // spool sequence the event's batch will get.
  void Observe(const AgentEvent& event, uint64_t pending_sequence)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Updates activation: active iff enabled and the server has been
  // unreachable since `unreachable_since` for at least activate_after
  // (nullopt = connected). Returns whether it is active now.
  bool UpdateReachability(std::optional<absl::Time> unreachable_since)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Drops expired bans and, if `server_list_applied` (a server ban list was
  // applied since the last reconnect), every ban whose evidence_sequence is
  // <= acked_through. Returns true if the set of bans changed since the
  // last call of Reconcile or TakeChanged.
  bool Reconcile(bool server_list_applied, uint64_t acked_through)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Whether the set changed since the last call, and clears the flag.
  bool TakeChanged() ABSL_LOCKS_EXCLUDED(mu_);

  // Bans in force (creation order).
  std::vector<LocalBan> bans() const ABSL_LOCKS_EXCLUDED(mu_);
  bool active() const ABSL_LOCKS_EXCLUDED(mu_);

  // Re-installs bans found in the enforced state after a restart.
  void Restore(std::vector<LocalBan> bans) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const LocalFallbackConfig config_;
  Clock& clock_;

  mutable absl::Mutex mu_;
  bool active_ ABSL_GUARDED_BY(mu_) = false;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<IpAddress, std::deque<absl::Time>> failures_
      ABSL_GUARDED_BY(mu_);
  std::vector<LocalBan> bans_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::agent
