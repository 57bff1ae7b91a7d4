#pragma once

// EnforcedStateStore: where the Enforcer keeps the ban list it last
// enforced, so that a restarted agent re-applies it at once (docs/agent.md,
// "Enforcement"). Two files:
//
//   <state>          the whole list at some revision (enforced_state.h
//                    format), replaced atomically: temp + fsync + rename +
//                    directory fsync (the Enforcer's is
//                    <state_dir>/enforced-bans.state);
//   <state>.journal  deltas applied since, appended and fdatasync'ed one
//                    record each:
//
//     delta <epoch> <from_revision> <to_revision> <count>
//     + <id> <prefix/len> <expires: unix microseconds, or '-'>  (add/update)
//     - <id>                                                     (remove)
//     end <FNV-1a 64 of the record's bytes before this line, 16 hex digits>
//
// So persisting a delta costs O(changes), not O(list). Load() replays the
// records that chain from the state file's (epoch, revision) and stops at
// the first torn or corrupt record (a crash mid-append). WriteSnapshot()
// replaces the state file and deletes the journal; callers compact that way
// when ShouldCompact() says the journal has grown.
//
// Thread-safety: not thread-safe; the Enforcer calls it under its mutex.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/firewall/ban_item.h"
#include "agent/firewall/enforced_state.h"

namespace rampart::agent {

class EnforcedStateStore {
 public:
  // `state_path`'s directory must exist. `sync`: fsync/fdatasync as
  // described above.
  EnforcedStateStore(std::string state_path, bool sync);

  // The state file plus every journal record that chains from it. NotFound
  // without a state file; the state file's own errors (DataLoss,
  // FailedPrecondition) otherwise. A bad journal is not an error: replay
  // stops there, and the next write compacts.
  absl::StatusOr<EnforcedState> Load();

  // Replaces the state file with `state` and removes the journal.
  absl::Status WriteSnapshot(const EnforcedState& state);

  // Appends one delta record (fdatasync). The caller ensures it chains:
  // `from_revision` is the revision of the state file plus the journal.
  absl::Status AppendDelta(uint64_t epoch, uint64_t from_revision,
                           uint64_t to_revision,
                           const std::vector<BanChange>& changes);

  // True when the journal is larger than half the state file (at least
  // 1 MiB), or Load() found a torn or unchained record.
  bool ShouldCompact() const;

  const std::string& state_path() const { return state_path_; }
  std::string journal_path() const { return state_path_ + ".journal"; }

  // One journal record (exposed for tests).
  static std::string EncodeDelta(uint64_t epoch, uint64_t from_revision,
                                 uint64_t to_revision,
                                 const std::vector<BanChange>& changes);

 private:
  const std::string state_path_;
  const bool sync_;
  uint64_t state_bytes_ = 0;
  uint64_t journal_bytes_ = 0;
  bool journal_damaged_ = false;
};

}  // namespace rampart::agent
