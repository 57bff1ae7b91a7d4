#pragma once

// The agent's record of the ban list it last enforced, kept in the state
// directory so that a restarted agent re-applies it before it can reach the
// server (docs/agent.md, "Enforcement").
//
// The state file; EnforcedStateStore (enforced_state_store.h) adds a journal
// of deltas next to it. Format, version 1 (text, one record per line, '\n'
// endings):
//
//   rampart-enforced-bans 1
//   epoch <ban_list_epoch>
//   revision <revision>
//   count <n>
//   <id> <prefix/len> <expires: unix microseconds, or '-' = permanent>   (n
//   times) checksum <FNV-1a 64 of every byte above, 16 lower-case hex digits>
//
// The file is replaced atomically (temp + fsync + rename + directory fsync),
// so a crash leaves the old or the new version. A file that does not parse
// or fails its checksum is DataLoss; a higher version is FailedPrecondition
// (written by a newer agent).
//
// Thread-safety: pure functions; concurrent writers of one path must be
// serialised by the caller.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/firewall/ban_item.h"

namespace rampart::agent {

struct EnforcedState {
  // Welcome.ban_list_epoch of the list; 0 = never enforced one.
  uint64_t epoch = 0;
  // Revision of `items`; 0 = none.
  uint64_t revision = 0;
  // The server's list at `revision` (guard-refused entries included: the
  // guard re-evaluates them at load).
  std::vector<BanItem> items;

  friend bool operator==(const EnforcedState&, const EnforcedState&) = default;
};

// Largest state file accepted by ReadEnforcedState: 64 MiB (about 900k
// entries).
inline constexpr size_t kMaxEnforcedStateBytes = 64u << 20;

// The version-1 encoding of `state`.
std::string EncodeEnforcedState(const EnforcedState& state);

// Parses an encoding. DataLoss on any malformed, truncated or checksum-failing
// input (the message says what and where); FailedPrecondition for a version
// other than 1.
absl::StatusOr<EnforcedState> DecodeEnforcedState(std::string_view text);

// Atomically replaces `path` with the encoding of `state` (temp + fsync +
// rename + directory fsync when `sync`) and removes its journal
// (`path`.journal, see enforced_state_store.h). Errors as ErrnoStatus.
absl::Status WriteEnforcedState(const std::string& path,
                                const EnforcedState& state, bool sync = true);

// The list as the Enforcer would load it: `path` decoded, plus the deltas
// of its journal (`path`.journal) that chain from it. NotFound if `path` is
// absent, else as DecodeEnforcedState.
absl::StatusOr<EnforcedState> ReadEnforcedState(const std::string& path);

}  // namespace rampart::agent
