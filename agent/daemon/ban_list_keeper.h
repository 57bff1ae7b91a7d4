#pragma once

// BanListKeeper: what the agent enforces = the server's ban list + the
// local-fallback bans, both through one Enforcer (agent/firewall/enforcer.h,
// which owns the Guard, the backend, persistence and drift repair).
//
// The Enforcer holds one list at (epoch, revision). Local bans ride in it
// with ids >= kLocalIdBase (server ids never get there), so they are
// guarded, persisted and restored after a restart like server bans, while
// the revision reported to the server stays the server's. The keeper
// mirrors the server's items so that a change of the local set can be
// applied as a snapshot at the unchanged revision, and adds the local items
// to every server snapshot. Server deltas pass straight through.
//
// Thread-safety: thread-safe (one mutex, held across Enforcer calls; lock
// order keeper -> enforcer). Server lists arrive on the client's reader
// thread, local changes on the agent's loop thread.

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/daemon/local_fallback.h"
#include "agent/firewall/enforcer.h"

namespace rampart::agent {

class BanListKeeper {
 public:
  static constexpr uint64_t kLocalIdBase = uint64_t{1} << 62;

  // `enforcer` must outlive the keeper.
  explicit BanListKeeper(Enforcer& enforcer);

  // Reads the Enforcer's state file (call before Enforcer::Start) and
  // returns the local bans it held; server items seed the mirror. A missing
  // or unreadable file yields no bans.
  std::vector<LocalBan> LoadState(uint64_t evidence_sequence)
      ABSL_LOCKS_EXCLUDED(mu_);

  // A complete server list (final snapshot chunk). Enforcer errors as in
  // Enforcer::ApplySnapshot.
  absl::StatusOr<ApplyReport> ApplyServerSnapshot(
      uint64_t epoch, uint64_t revision, const std::vector<BanItem>& items)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A server delta; FailedPrecondition when it does not continue the list
  // (the caller reconnects for a snapshot).
  absl::StatusOr<ApplyReport> ApplyServerDelta(
      uint64_t epoch, uint64_t from_revision, uint64_t to_revision,
      const std::vector<BanChange>& changes) ABSL_LOCKS_EXCLUDED(mu_);

  // Replaces the local-fallback bans (a snapshot at the current revision).
  absl::Status SetLocalBans(const std::vector<LocalBan>& bans)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The server list's (epoch, revision) as enforced.
  std::pair<uint64_t, uint64_t> ListRevision() const;
  // Successful server applies so far (snapshots and deltas).
  uint64_t server_applies() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::vector<BanItem> CombinedLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Enforcer& enforcer_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, BanItem> server_ ABSL_GUARDED_BY(mu_);
  std::vector<BanItem> local_ ABSL_GUARDED_BY(mu_);
  uint64_t server_applies_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rampart::agent
