#include "server/grpc/conversions.h"

#include "absl/strings/str_format.h"
#include "common/strings.h"
#include "rampart/v1/limits.h"

namespace rampart::server {

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void SetTime(google::protobuf::Timestamp* out, absl::Time t) {
  const int64_t ns = absl::ToUnixNanos(t);
  int64_t seconds = ns / 1000000000;
  int64_t nanos = ns % 1000000000;
  if (nanos < 0) {
    --seconds;
    nanos += 1000000000;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(nanos));
}

void SetDuration(google::protobuf::Duration* out, absl::Duration d) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

namespace {

absl::StatusOr<EventKind> KindFromProto(v1::EventKind k) {
  switch (k) {
    case v1::EVENT_KIND_AUTH_FAILURE:
      return EventKind::kAuthFailure;
    case v1::EVENT_KIND_LOCKOUT:
      return EventKind::kLockout;
    case v1::EVENT_KIND_POLICY_REJECT:
      return EventKind::kPolicyReject;
    case v1::EVENT_KIND_CONNECT:
      return EventKind::kConnect;
    case v1::EVENT_KIND_DISCONNECT:
      return EventKind::kDisconnect;
    case v1::EVENT_KIND_TLS_FAILURE:
      return EventKind::kTlsFailure;
    case v1::EVENT_KIND_AUTH_SUCCESS:
      return EventKind::kAuthSuccess;
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "kind: unknown or unset event kind %d", static_cast<int>(k)));
  }
}

absl::StatusOr<Protocol> ProtocolFromProto(v1::Protocol p) {
  switch (p) {
    case v1::PROTOCOL_UNSPECIFIED:
      return Protocol::kUnknown;
    case v1::PROTOCOL_SMTP:
      return Protocol::kSmtp;
    case v1::PROTOCOL_IMAP:
      return Protocol::kImap;
    case v1::PROTOCOL_POP3:
      return Protocol::kPop3;
    case v1::PROTOCOL_LDAP:
      return Protocol::kLdap;
    case v1::PROTOCOL_HTTP:
      return Protocol::kHttp;
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "protocol: unknown protocol %d", static_cast<int>(p)));
  }
}

}  // namespace

absl::StatusOr<AuthEvent> ToDomain(const v1::AuthEvent& e,
                                   std::string_view agent_id, absl::Time now) {
  AuthEvent out;
  if (agent_id.empty() || agent_id.size() > kMaxAgentIdBytes) {
    return absl::InvalidArgumentError("agent id must be 1..128 bytes");
  }
  out.agent_id = std::string(agent_id);
  absl::StatusOr<EventKind> kind = KindFromProto(e.kind());
  if (!kind.ok()) {
    return kind.status();
  }
  out.kind = *kind;
  absl::StatusOr<Protocol> protocol = ProtocolFromProto(e.protocol());
  if (!protocol.ok()) {
    return protocol.status();
  }
  out.protocol = *protocol;
  if (!e.ip().empty()) {
    absl::StatusOr<IpAddress> ip = IpAddress::FromString(e.ip());
    if (!ip.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("ip: %s", ip.status().message()));
    }
    out.ip = *ip;
  }
  if (e.user().size() > static_cast<size_t>(v1::kMaxUserBytes)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "user: %d bytes, at most %d", e.user().size(), v1::kMaxUserBytes));
  }
  out.user = e.user();
  // The log's own time, unless it is missing or implausibly later than when
  // the agent observed the line (a wrong zone or date order on the Domino
  // server): then the agent's observation time (docs/protocol.md).
  const bool has_observed = e.has_observed_at();
  if (has_observed &&
      (e.observed_at().nanos() < 0 || e.observed_at().nanos() > 999999999)) {
    return absl::InvalidArgumentError("observed_at: nanos out of range");
  }
  if (e.has_time() && (e.time().nanos() < 0 || e.time().nanos() > 999999999)) {
    return absl::InvalidArgumentError("time: nanos out of range");
  }
  if (!e.has_time() && !has_observed) {
    return absl::InvalidArgumentError("time: missing (and no observed_at)");
  }
  out.time = e.has_time() ? FromProto(e.time()) : FromProto(e.observed_at());
  if (e.has_time() && has_observed &&
      out.time > FromProto(e.observed_at()) + absl::Minutes(5)) {
    out.time = FromProto(e.observed_at());
  }
  if (out.time < now - kMaxEventAge) {
    return absl::InvalidArgumentError(
        absl::StrFormat("time: %s is older than %s", absl::FormatTime(out.time),
                        absl::FormatDuration(kMaxEventAge)));
  }
  if (out.time > now + kMaxClockSkew) {
    return absl::InvalidArgumentError(
        absl::StrFormat("time: %s is in the future (server time %s)",
                        absl::FormatTime(out.time), absl::FormatTime(now)));
  }
  return out;
}

absl::StatusOr<ConvertedBatch> ToDomain(const v1::EventBatch& batch,
                                        std::string_view agent_id,
                                        uint64_t spool_epoch, absl::Time now) {
  if (batch.sequence() == 0) {
    return absl::InvalidArgumentError("batch sequence must be >= 1");
  }
  if (batch.events_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("batch %d has no events", batch.sequence()));
  }
  if (batch.events_size() > v1::kMaxEventsPerBatch) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "batch %d has %d events, at most %d allowed", batch.sequence(),
        batch.events_size(), v1::kMaxEventsPerBatch));
  }
  ConvertedBatch out;
  out.id = BatchId{.agent_id = std::string(agent_id),
                   .spool_epoch = spool_epoch,
                   .sequence = batch.sequence()};
  out.events.reserve(static_cast<size_t>(batch.events_size()));
  for (int i = 0; i < batch.events_size(); ++i) {
    absl::StatusOr<AuthEvent> e = ToDomain(batch.events(i), agent_id, now);
    if (e.ok()) {
      out.events.push_back(std::move(*e));
    } else {
      out.rejected.emplace_back(i, std::string(e.status().message()));
    }
  }
  return out;
}

v1::EventKind ToProto(EventKind kind) {
  return static_cast<v1::EventKind>(static_cast<int>(kind));
}

v1::Protocol ToProto(Protocol protocol) {
  return static_cast<v1::Protocol>(static_cast<int>(protocol));
}

v1::BanOrigin ToProto(BanOrigin origin) {
  switch (origin) {
    case BanOrigin::kAuto:
      return v1::BAN_ORIGIN_AUTO;
    case BanOrigin::kPrefix:
      return v1::BAN_ORIGIN_PREFIX;
    case BanOrigin::kManual:
      return v1::BAN_ORIGIN_MANUAL;
    case BanOrigin::kImport:
      return v1::BAN_ORIGIN_IMPORT;
  }
  return v1::BAN_ORIGIN_UNSPECIFIED;
}

v1::BanEntry ToProto(const Ban& ban, uint64_t revision) {
  v1::BanEntry out;
  out.set_id(ban.id);
  // The contract always carries the length ("198.51.100.7/32"), while
  // IpPrefix prints a host as the bare address.
  out.set_prefix(
      ban.prefix.is_host()
          ? absl::StrFormat("%s/%d", ban.prefix.ToString(), ban.prefix.length())
          : ban.prefix.ToString());
  SetTime(out.mutable_created_at(), ban.created);
  if (ban.expires != absl::InfiniteFuture()) {
    SetTime(out.mutable_expires_at(), ban.expires);
  }
  // Reasons are bounded on the wire; the full text stays in the store.
  std::string reason = ban.reason;
  if (reason.size() > static_cast<size_t>(v1::kMaxReasonBytes)) {
    size_t cut = static_cast<size_t>(v1::kMaxReasonBytes) - 3;
    while (cut > 0 &&
           (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) {
      --cut;  // do not split a UTF-8 sequence
    }
    reason = reason.substr(0, cut) + "...";
  }
  out.set_reason(reason);
  out.set_origin(ToProto(ban.origin));
  out.set_escalation_level(static_cast<uint32_t>(ban.level));
  out.set_scope(v1::BAN_SCOPE_ALL_PORTS);
  out.set_revision(revision);
  return out;
}

v1::BanChange ToProto(const JournalEntry& entry) {
  v1::BanChange out;
  switch (entry.op) {
    case JournalEntry::Op::kAdd:
      out.set_op(v1::BAN_CHANGE_OP_ADD);
      break;
    case JournalEntry::Op::kRemove:
      out.set_op(v1::BAN_CHANGE_OP_REMOVE);
      break;
    case JournalEntry::Op::kUpdate:
      out.set_op(v1::BAN_CHANGE_OP_UPDATE);
      break;
  }
  *out.mutable_entry() = ToProto(entry.ban, entry.revision);
  return out;
}

std::vector<v1::BanListDelta> ToDeltas(const std::vector<JournalEntry>& entries,
                                       uint64_t ban_list_epoch) {
  std::vector<v1::BanListDelta> out;
  for (size_t i = 0; i < entries.size();
       i += static_cast<size_t>(v1::kMaxDeltaChanges)) {
    const size_t end =
        std::min(entries.size(), i + static_cast<size_t>(v1::kMaxDeltaChanges));
    v1::BanListDelta& d = out.emplace_back();
    d.set_ban_list_epoch(ban_list_epoch);
    d.set_from_revision(entries[i].revision - 1);
    d.set_to_revision(entries[end - 1].revision);
    for (size_t k = i; k < end; ++k) {
      *d.add_changes() = ToProto(entries[k]);
    }
  }
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) {
    return grpc::Status::OK;
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace rampart::server
