#pragma once

// Conversions between the wire contract (proto/rampart/v1) and the domain
// types of server/core, for the server's gRPC edge. The only place besides the
// service implementations that sees generated types. Every input is hostile:
// each function validates bounds and returns InvalidArgument naming the field.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "rampart/v1/agent.pb.h"
#include "rampart/v1/common.pb.h"
#include "server/core/auth_event.h"
#include "server/core/ban.h"
#include "server/core/store.h"

namespace rampart::server {

// Bounds on event times relative to the server's clock: older events are
// dropped (a spool can be days old, not years), future ones beyond the skew
// are refused.
inline constexpr absl::Duration kMaxEventAge = absl::Hours(24 * 30);
inline constexpr absl::Duration kMaxClockSkew = absl::Hours(24);

// Well-known time types. The setters give valid messages (nanos in
// [0, 1e9) for a Timestamp, the sign of the seconds for a Duration).
absl::Time FromProto(const google::protobuf::Timestamp& t);
absl::Duration FromProto(const google::protobuf::Duration& d);
void SetTime(google::protobuf::Timestamp* out, absl::Time t);
void SetDuration(google::protobuf::Duration* out, absl::Duration d);

// One event from agent `agent_id`, validated against `now`.
absl::StatusOr<AuthEvent> ToDomain(const v1::AuthEvent& event,
                                   std::string_view agent_id, absl::Time now);

// A converted batch: the events that passed validation and, for each one
// that did not, its index and reason (the agent is told in a Notice; one bad
// event never sinks the batch).
struct ConvertedBatch {
  BatchId id;
  std::vector<AuthEvent> events;
  std::vector<std::pair<int, std::string>> rejected;
};

// Validates the batch as a whole (sequence >= 1, 1..kMaxEventsPerBatch
// events: else InvalidArgument, nothing converted) and converts its events.
// This is the whole per-batch validation of the agent stream (AgentService
// and fuzz/event_batch_fuzzer share it).
absl::StatusOr<ConvertedBatch> ToDomain(const v1::EventBatch& batch,
                                        std::string_view agent_id,
                                        uint64_t spool_epoch, absl::Time now);

v1::BanEntry ToProto(const Ban& ban, uint64_t revision);
v1::BanChange ToProto(const JournalEntry& entry);
// Deltas for entries (ascending revisions), split into messages of at most
// kMaxDeltaChanges changes.
std::vector<v1::BanListDelta> ToDeltas(const std::vector<JournalEntry>& entries,
                                       uint64_t ban_list_epoch);

v1::EventKind ToProto(EventKind kind);
v1::Protocol ToProto(Protocol protocol);
v1::BanOrigin ToProto(BanOrigin origin);

// absl::Status -> grpc::Status (the codes share numbering).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace rampart::server
