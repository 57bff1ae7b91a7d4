#pragma once

// The values the core persists through Store (server/core/store.h) and
// reads back at start-up: batch ids for at-least-once dedup, the record of
// one correlator step (CommitRecord), per-prefix ban history and the
// DurableState a Correlator rebuilds from. They live in core so that the
// stores (server/store/) depend on core and never the reverse.
// Domain types: no protobuf, no SQL. Thread-safety: value types.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/ip_address.h"
#include "server/core/auth_event.h"
#include "server/core/ban.h"
#include "server/core/records.h"

namespace rampart::server {

// Identifies one agent batch for at-least-once dedup.
struct BatchId {
  std::string agent_id;
  // Random id of the agent's spool (see docs/protocol.md): a reset agent
  // starts a new epoch so its sequence numbers do not collide.
  uint64_t spool_epoch = 0;
  uint64_t sequence = 0;
  friend bool operator==(const BatchId&, const BatchId&) = default;
};

// Everything one step produced; written atomically by Commit().
struct CommitRecord {
  // The agent batches whose events these are (group commit: one transaction
  // for many batches). If any of them was committed before, or one appears
  // twice, Commit() writes nothing and returns kAlreadyExists.
  std::vector<BatchId> batches;
  std::vector<AuthEvent> events;
  // Ban-list changes, in increasing revision order, each revision exactly one
  // more than the previous (and than the stored maximum).
  std::vector<JournalEntry> journal;
  std::vector<CompromiseAlert> alerts;
  // Upserts keyed by user.
  std::vector<AccountAttack> accounts;
  // Upserts keyed by prefix, and deletions.
  std::vector<AllowEntry> allow_put;
  std::vector<IpPrefix> allow_delete;
  std::vector<AuditRecord> audit;

  bool empty() const {
    return batches.empty() && events.empty() && journal.empty() &&
           alerts.empty() && accounts.empty() && allow_put.empty() &&
           allow_delete.empty() && audit.empty();
  }
};

// Per-prefix ban history, for escalation after a restart.
struct BanHistory {
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  int bans = 0;                             // bans ever recorded
  int last_level = 0;                       // Ban::level of the most recent ban
  absl::Time last_end = absl::UnixEpoch();  // end of the most recent ban:
                                            // min(removed_at, expires)
  friend bool operator==(const BanHistory&, const BanHistory&) = default;
};

// What the server needs at start-up to continue where it stopped.
struct DurableState {
  uint64_t revision = 0;    // highest journal revision (0: empty journal)
  uint64_t max_ban_id = 0;  // highest ban id ever assigned
  uint64_t max_alert_id = 0;
  // Bans not removed and not expired at `now`, by id.
  std::vector<Ban> active_bans;
  std::vector<BanHistory> history;
  std::vector<AllowEntry> allowlist;
};

}  // namespace rampart::server
