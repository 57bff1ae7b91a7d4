#pragma once

// The agent's gRPC edge conversions (CONVENTIONS 3): domain types of the
// agent <-> rampart.v1 protos. Only this file and server_client link
// generated code.
//
// Thread-safety: pure functions; ProtoBatchEncoder is immutable.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/daemon/agent_event.h"
#include "agent/daemon/local_fallback.h"
#include "agent/firewall/ban_item.h"
#include "rampart/v1/agent.pb.h"

namespace rampart::agent {

// Well-known time types (a Timestamp's nanos in [0, 1e9); a Duration's
// seconds and nanos share the sign).
google::protobuf::Timestamp TimeToProto(absl::Time t);
absl::Time TimeFromProto(const google::protobuf::Timestamp& ts);
google::protobuf::Duration DurationToProto(absl::Duration d);
absl::Duration DurationFromProto(const google::protobuf::Duration& d);

v1::AuthEvent ToProto(const AgentEvent& event);

// InvalidArgument for an entry without a valid id or prefix.
absl::StatusOr<BanItem> ToDomain(const v1::BanEntry& entry);
absl::StatusOr<BanChange> ToDomain(const v1::BanChange& change);

// A LocalBanReport entry (id 0, origin LOCAL_FALLBACK).
v1::BanEntry ToProto(const LocalBan& ban);

// Spool payloads are serialized v1::EventBatch messages without a sequence.
class ProtoBatchEncoder final : public BatchEncoder {
 public:
  // BatchEncoder
  std::string Encode(const std::vector<AgentEvent>& events,
                     absl::Time sealed_at) const override;
};

}  // namespace rampart::agent
