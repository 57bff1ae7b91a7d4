#pragma once

// AgentEvent: one recognised log line as the agent reports it (the domain
// twin of v1::AuthEvent), and BatchEncoder, the seam through which the
// proto-free EventSource turns a sealed batch into spool bytes (the gRPC
// edge, agent/daemon/conversions.h, implements it with the wire format).
//
// Thread-safety: value types; BatchEncoder implementations are immutable
// and thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/event_types.h"
#include "common/ip_address.h"

namespace rampart::agent {

struct AgentEvent {
  EventKind kind = EventKind::kAuthFailure;
  Protocol protocol = Protocol::kUnknown;
  // nullopt: no valid address in the line (non-actionable).
  std::optional<IpAddress> ip;
  // Verbatim bytes, at most 256 (cut by the EventSource).
  std::string user;
  // The line's local time converted with the configured zone; nullopt if
  // the line had none.
  std::optional<absl::Time> time;
  // Agent clock when the line was read.
  absl::Time observed_at;
  // Hello.log_sources id of the file.
  uint32_t log_source_id = 0;
  // Offset of the line in the file (traceability).
  uint64_t line_offset = 0;
};

class BatchEncoder {
 public:
  virtual ~BatchEncoder() = default;
  // The spool payload of one sealed batch (without its sequence, which the
  // spool assigns). Never fails.
  virtual std::string Encode(const std::vector<AgentEvent>& events,
                             absl::Time sealed_at) const = 0;
};

}  // namespace rampart::agent
