#include "agent/daemon/conversions.h"

#include "absl/strings/str_format.h"

namespace rampart::agent {

google::protobuf::Timestamp TimeToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t ns = absl::ToUnixNanos(t);
  ts.set_seconds(ns >= 0 ? ns / 1'000'000'000
                         : -((-ns + 999'999'999) / 1'000'000'000));
  ts.set_nanos(static_cast<int32_t>(ns - ts.seconds() * 1'000'000'000));
  return ts;
}

absl::Time TimeFromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

google::protobuf::Duration DurationToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t s = absl::ToInt64Seconds(d);  // truncates toward zero
  out.set_seconds(s);
  out.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(s))));
  return out;
}

absl::Duration DurationFromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

v1::AuthEvent ToProto(const AgentEvent& e) {
  v1::AuthEvent p;
  p.set_kind(static_cast<v1::EventKind>(static_cast<int>(e.kind)));
  p.set_protocol(static_cast<v1::Protocol>(static_cast<int>(e.protocol)));
  if (e.ip.has_value()) {
    p.set_ip(e.ip->ToString());
  }
  p.set_user(e.user);
  if (e.time.has_value()) {
    *p.mutable_time() = TimeToProto(*e.time);
  }
  *p.mutable_observed_at() = TimeToProto(e.observed_at);
  p.set_log_source_id(e.log_source_id);
  p.set_line_offset(e.line_offset);
  return p;
}

absl::StatusOr<BanItem> ToDomain(const v1::BanEntry& entry) {
  BanItem item;
  item.id = entry.id();
  if (item.id == 0) {
    return absl::InvalidArgumentError("ban entry without id");
  }
  absl::StatusOr<IpPrefix> prefix = IpPrefix::FromString(entry.prefix());
  if (!prefix.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ban %d: bad prefix: %s", entry.id(), prefix.status().message()));
  }
  item.prefix = *prefix;
  if (entry.has_expires_at()) {
    item.expires = TimeFromProto(entry.expires_at());
  }
  return item;
}

absl::StatusOr<BanChange> ToDomain(const v1::BanChange& change) {
  BanChange c;
  switch (change.op()) {
    case v1::BAN_CHANGE_OP_ADD:
      c.op = BanChange::Op::kAdd;
      break;
    case v1::BAN_CHANGE_OP_REMOVE:
      c.op = BanChange::Op::kRemove;
      break;
    case v1::BAN_CHANGE_OP_UPDATE:
      c.op = BanChange::Op::kUpdate;
      break;
    default:
      return absl::InvalidArgumentError("ban change without op");
  }
  absl::StatusOr<BanItem> item = ToDomain(change.entry());
  if (!item.ok()) {
    return item.status();
  }
  c.item = *item;
  return c;
}

v1::BanEntry ToProto(const LocalBan& ban) {
  v1::BanEntry e;
  e.set_id(0);
  e.set_prefix(ban.prefix.ToString());
  if (ban.created != absl::InfinitePast()) {
    *e.mutable_created_at() = TimeToProto(ban.created);
  }
  if (ban.expires != absl::InfiniteFuture()) {
    *e.mutable_expires_at() = TimeToProto(ban.expires);
  }
  e.set_reason("local fallback: server unreachable");
  e.set_origin(v1::BAN_ORIGIN_LOCAL_FALLBACK);
  e.set_scope(v1::BAN_SCOPE_ALL_PORTS);
  e.set_revision(0);
  return e;
}

std::string ProtoBatchEncoder::Encode(const std::vector<AgentEvent>& events,
                                      absl::Time sealed_at) const {
  v1::EventBatch batch;
  batch.mutable_events()->Reserve(static_cast<int>(events.size()));
  for (const AgentEvent& e : events) {
    *batch.add_events() = ToProto(e);
  }
  *batch.mutable_sealed_at() = TimeToProto(sealed_at);
  return batch.SerializeAsString();
}

}  // namespace rampart::agent
