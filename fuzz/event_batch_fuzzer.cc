// libFuzzer target for the agent stream's conversions, both directions.
//
// The first input byte selects the direction, the rest is a serialized
// message as it arrives off the wire (gRPC hands the service exactly these
// bytes, at most 4 MiB):
//   even: an AgentMessage, as the server receives it: Hello ->
//         ValidateHello; EventBatch -> ToDomain (the whole per-batch
//         validation of AgentService, server/grpc/conversions.h).
//   odd:  a ServerMessage, as the agent receives it: BanListDelta changes
//         and BanListSnapshot entries -> agent ToDomain
//         (agent/daemon/conversions.h).
// Beyond "no crash, no sanitizer report" it checks properties: rejections
// are InvalidArgument; an accepted batch has 1..kMaxEventsPerBatch events,
// accepted + rejected = sent, rejected indices strictly increase, accepted
// events are within the declared bounds (user length, time window, agent
// id) and round-trip through both the agent's encoder (agent ToProto) and
// a direct re-encoding back to the same domain event; accepted ban entries
// have an id and a prefix whose text parses back to itself, and a server
// Ban built from them round-trips through the server's ToProto and the
// agent's ToDomain.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>

#include "agent/daemon/agent_event.h"
#include "agent/daemon/conversions.h"
#include "rampart/v1/agent.pb.h"
#include "rampart/v1/limits.h"
#include "server/grpc/agent_service.h"
#include "server/grpc/conversions.h"

namespace {

namespace v1 = rampart::v1;
using rampart::IpPrefix;

// A fixed server clock: seeds carry event times close to it.
const absl::Time kNow = absl::FromUnixSeconds(1732352400);  // 2024-11-23
constexpr char kAgentId[] = "mail1.example";
constexpr uint64_t kSpoolEpoch = 42;

void Check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

void SetTime(google::protobuf::Timestamp* ts, absl::Time t) {
  const absl::Duration since = t - absl::UnixEpoch();
  const int64_t seconds = absl::ToInt64Seconds(since);
  int64_t nanos = absl::ToInt64Nanoseconds(since - absl::Seconds(seconds));
  int64_t s = seconds;
  if (nanos < 0) {
    nanos += 1000000000;
    s -= 1;
  }
  ts->set_seconds(s);
  ts->set_nanos(static_cast<int32_t>(nanos));
}

// The server's view of an accepted event, encoded again as the agent would
// (agent ToProto) and directly; both must convert back to `e`.
void CheckEventRoundTrip(const rampart::server::AuthEvent& e) {
  rampart::agent::AgentEvent agent_event;
  agent_event.kind = e.kind;
  agent_event.protocol = e.protocol;
  agent_event.ip = e.ip;
  agent_event.user = e.user;
  agent_event.time = e.time;
  agent_event.observed_at = e.time;
  const absl::StatusOr<rampart::server::AuthEvent> via_agent =
      rampart::server::ToDomain(rampart::agent::ToProto(agent_event), kAgentId,
                                kNow);
  Check(via_agent.ok());
  Check(*via_agent == e);

  v1::AuthEvent direct;
  direct.set_kind(rampart::server::ToProto(e.kind));
  direct.set_protocol(rampart::server::ToProto(e.protocol));
  if (e.ip.has_value()) {
    direct.set_ip(e.ip->ToString());
  }
  direct.set_user(e.user);
  SetTime(direct.mutable_time(), e.time);
  const absl::StatusOr<rampart::server::AuthEvent> again =
      rampart::server::ToDomain(direct, kAgentId, kNow);
  Check(again.ok());
  Check(*again == e);
}

void CheckBatch(const v1::EventBatch& batch) {
  const absl::StatusOr<rampart::server::ConvertedBatch> converted =
      rampart::server::ToDomain(batch, kAgentId, kSpoolEpoch, kNow);
  if (!converted.ok()) {
    Check(converted.status().code() == absl::StatusCode::kInvalidArgument);
    Check(!converted.status().message().empty());
    Check(batch.sequence() == 0 || batch.events_size() == 0 ||
          batch.events_size() > v1::kMaxEventsPerBatch);
    return;
  }
  Check(batch.sequence() >= 1);
  Check(batch.events_size() >= 1 &&
        batch.events_size() <= v1::kMaxEventsPerBatch);
  Check(converted->id.agent_id == kAgentId);
  Check(converted->id.spool_epoch == kSpoolEpoch);
  Check(converted->id.sequence == batch.sequence());
  Check(converted->events.size() + converted->rejected.size() ==
        static_cast<size_t>(batch.events_size()));
  int previous = -1;
  for (const auto& [index, reason] : converted->rejected) {
    Check(index > previous && index < batch.events_size());
    Check(!reason.empty());
    previous = index;
  }
  for (const rampart::server::AuthEvent& e : converted->events) {
    Check(e.agent_id == kAgentId);
    Check(e.user.size() <= static_cast<size_t>(v1::kMaxUserBytes));
    Check(e.time >= kNow - rampart::server::kMaxEventAge);
    Check(e.time <= kNow + rampart::server::kMaxClockSkew);
    if (e.ip.has_value()) {
      const std::optional<rampart::IpAddress> parsed =
          rampart::IpAddress::Parse(e.ip->ToString());
      Check(parsed.has_value() && *parsed == *e.ip);
    }
    CheckEventRoundTrip(e);
  }
}

void CheckHello(const v1::Hello& hello) {
  const absl::Status status = rampart::server::ValidateHello(hello);
  if (!status.ok()) {
    Check(status.code() == absl::StatusCode::kInvalidArgument);
    Check(status.message().substr(0, 6) == "hello.");
    return;
  }
  Check(!hello.agent_id().empty() && hello.agent_id().size() <= 63);
  Check(hello.spool_epoch() != 0);
  Check(hello.host_addresses_size() <= 64);
  Check(hello.log_sources_size() <= 16);
}

void CheckAgentMessage(const v1::AgentMessage& m) {
  switch (m.payload_case()) {
    case v1::AgentMessage::kHello:
      CheckHello(m.hello());
      break;
    case v1::AgentMessage::kEventBatch:
      CheckBatch(m.event_batch());
      break;
    default:
      break;
  }
}

// An accepted ban entry, as the agent enforces it.
void CheckBanItem(const v1::BanEntry& entry,
                  const rampart::agent::BanItem& item) {
  Check(item.id != 0 && item.id == entry.id());
  const absl::StatusOr<IpPrefix> reparsed =
      IpPrefix::FromString(item.prefix.ToString());
  Check(reparsed.ok() && *reparsed == item.prefix);
  Check(item.expires.has_value() == entry.has_expires_at());

  // The server's encoding of the same ban converts back to the same item.
  rampart::server::Ban ban;
  ban.id = item.id;
  ban.prefix = item.prefix;
  ban.created = kNow;
  // The wire carries nanoseconds since 1970 in an int64 (until 2262).
  if (item.expires.has_value() && *item.expires >= absl::UnixEpoch() &&
      *item.expires <
          absl::FromUnixNanos(std::numeric_limits<int64_t>::max())) {
    ban.expires = *item.expires;
  }
  ban.reason = entry.reason();
  const v1::BanEntry wire = rampart::server::ToProto(ban, 1);
  Check(wire.reason().size() <= static_cast<size_t>(v1::kMaxReasonBytes));
  Check(wire.prefix().size() <= static_cast<size_t>(v1::kMaxPrefixBytes));
  const absl::StatusOr<rampart::agent::BanItem> back =
      rampart::agent::ToDomain(wire);
  Check(back.ok());
  Check(back->id == ban.id && back->prefix == ban.prefix);
  if (ban.expires == absl::InfiniteFuture()) {
    Check(!back->expires.has_value());
  } else {
    Check(back->expires.has_value() && *back->expires == ban.expires);
  }
}

void CheckServerMessage(const v1::ServerMessage& m) {
  if (m.has_delta()) {
    for (const v1::BanChange& change : m.delta().changes()) {
      const absl::StatusOr<rampart::agent::BanChange> c =
          rampart::agent::ToDomain(change);
      if (!c.ok()) {
        Check(c.status().code() == absl::StatusCode::kInvalidArgument);
        continue;
      }
      CheckBanItem(change.entry(), c->item);
    }
  } else if (m.has_snapshot()) {
    for (const v1::BanEntry& entry : m.snapshot().entries()) {
      const absl::StatusOr<rampart::agent::BanItem> item =
          rampart::agent::ToDomain(entry);
      if (!item.ok()) {
        Check(item.status().code() == absl::StatusCode::kInvalidArgument);
        continue;
      }
      CheckBanItem(entry, *item);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > static_cast<size_t>(v1::kMaxMessageBytes)) {
    return 0;
  }
  const bool to_agent = (data[0] & 1) != 0;
  const void* payload = data + 1;
  const int length = static_cast<int>(size - 1);
  if (to_agent) {
    v1::ServerMessage m;
    if (m.ParseFromArray(payload, length)) {
      CheckServerMessage(m);
    }
  } else {
    v1::AgentMessage m;
    if (m.ParseFromArray(payload, length)) {
      CheckAgentMessage(m);
    }
  }
  return 0;
}
