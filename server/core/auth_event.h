#pragma once

// AuthEvent: one event as the server sees it, after edge validation.
// Domain type: no protobuf, no SQL. Thread-safety: value type.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "common/event_types.h"
#include "common/ip_address.h"

namespace rampart::server {

// Longest user name kept, in bytes (longer names are cut at the edge).
inline constexpr size_t kMaxUserBytes = 256;
// Longest agent (Domino server) id, in bytes.
inline constexpr size_t kMaxAgentIdBytes = 128;

struct AuthEvent {
  // The Domino server (agent) that saw it.
  std::string agent_id;
  EventKind kind = EventKind::kAuthFailure;
  Protocol protocol = Protocol::kUnknown;
  // nullopt: non-actionable (no valid address in the log line).
  std::optional<IpAddress> ip;
  // Attacker-controlled bytes, at most kMaxUserBytes.
  std::string user;
  // When it happened (the log line's time, converted by the agent).
  absl::Time time;

  friend bool operator==(const AuthEvent&, const AuthEvent&) = default;
};

}  // namespace rampart::server
