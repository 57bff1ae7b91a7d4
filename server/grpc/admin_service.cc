#include "server/grpc/admin_service.h"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/hash.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8.h"
#include "server/grpc/conversions.h"
#include "server/grpc/peer_identity.h"

namespace rampart::server {
namespace {

// The audit log's "peer": the caller's address and, over mutual TLS, the
// client certificate it presented (the bearer token is the actor).
std::string AuditPeer(const grpc::ServerContext& context) {
  std::string peer = context.peer();
  if (std::optional<PeerCertificate> cert = PeerCertificateOf(context)) {
    absl::StrAppend(&peer, " cert:", cert->common_name);
  }
  return peer;
}

// ---------------------------------------------------------------------------
// Bounds of the admin contract (admin.proto comments).

constexpr absl::Duration kMinute = absl::Minutes(1);
constexpr absl::Duration kDay = absl::Hours(24);
constexpr size_t kMaxAddressText = 64;  // longer than any IP/CIDR text
constexpr size_t kMaxFilterText = 256;  // actor / action filters
constexpr size_t kMaxPageToken = 1024;

// ---------------------------------------------------------------------------
// Time

absl::StatusOr<absl::Time> TimeField(std::string_view field,
                                     const google::protobuf::Timestamp& t) {
  // 0001-01-01 .. 9999-12-31, as google.protobuf.Timestamp defines.
  if (t.seconds() < -62135596800 || t.seconds() > 253402300799 ||
      t.nanos() < 0 || t.nanos() > 999999999) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not a valid timestamp", field));
  }
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// A duration within [min, max].
absl::StatusOr<absl::Duration> DurationField(
    std::string_view field, const google::protobuf::Duration& d,
    absl::Duration min, absl::Duration max) {
  const bool sign_ok = (d.seconds() >= 0 && d.nanos() >= 0) ||
                       (d.seconds() <= 0 && d.nanos() <= 0);
  if (!sign_ok || d.nanos() < -999999999 || d.nanos() > 999999999 ||
      d.seconds() < -315576000000 || d.seconds() > 315576000000) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not a valid duration", field));
  }
  const absl::Duration v =
      absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s is outside [%s, %s]", field, absl::FormatDuration(v),
        absl::FormatDuration(min), absl::FormatDuration(max)));
  }
  return v;
}

// ---------------------------------------------------------------------------
// Input fields

absl::StatusOr<IpPrefix> PrefixField(std::string_view field,
                                     std::string_view text) {
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: an IP or CIDR is required", field));
  }
  if (text.size() > kMaxAddressText) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: longer than %d bytes", field, kMaxAddressText));
  }
  absl::StatusOr<IpPrefix> p = IpPrefix::FromString(StripWhitespace(text));
  if (!p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s", field, p.status().message()));
  }
  return p;
}

absl::StatusOr<IpAddress> AddressField(std::string_view field,
                                       std::string_view text) {
  if (text.empty() || text.size() > kMaxAddressText) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: a single IP address is required", field));
  }
  std::optional<IpAddress> ip = IpAddress::Parse(StripWhitespace(text));
  if (!ip) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: \"%s\" is not a single IP address", field, Abbreviate(text, 64)));
  }
  return *ip;
}

// UTF-8 text of at most kMaxReasonBytes; required: at least one byte.
absl::Status TextField(std::string_view field, std::string_view text,
                       bool required) {
  if (required && text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: required (1-%d bytes)", field, kMaxReasonBytes));
  }
  if (text.size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %d bytes, at most %d", field, text.size(), kMaxReasonBytes));
  }
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not valid UTF-8", field));
  }
  return absl::OkStatus();
}

absl::Status ScopeField(std::string_view field, v1::BanScope scope) {
  if (scope == v1::BAN_SCOPE_UNSPECIFIED || scope == v1::BAN_SCOPE_ALL_PORTS) {
    return absl::OkStatus();
  }
  if (!v1::BanScope_IsValid(scope)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: unknown scope %d", field, static_cast<int>(scope)));
  }
  return absl::UnimplementedError(absl::StrFormat(
      "%s: %s is not supported yet; bans block all ports (BAN_SCOPE_ALL_PORTS)",
      field, v1::BanScope_Name(scope)));
}

// ---------------------------------------------------------------------------
// Paging: keyset tokens. Each list is sorted by a key string (ascending);
// the token holds the key of the last item returned and a fingerprint of
// the filters, so a token cannot be replayed against another query.

struct Page {
  size_t size = 0;
  std::string after;  // key of the last item of the previous page
};

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::string Hex64(uint64_t v) { return absl::StrFormat("%016x", v); }

// Descending order of `v` as an ascending key.
std::string Desc64(uint64_t v) { return Hex64(~v); }

absl::StatusOr<Page> PageField(int32_t page_size, const std::string& token,
                               std::string_view fingerprint) {
  if (page_size < 0) {
    return absl::InvalidArgumentError("page_size: must not be negative");
  }
  Page page;
  page.size = page_size == 0 ? static_cast<size_t>(v1::kDefaultPageSize)
                             : std::min(static_cast<size_t>(page_size),
                                        static_cast<size_t>(v1::kMaxPageSize));
  if (token.empty()) {
    return page;
  }
  std::string raw;
  const std::string fp = Hex64(Fnv1a64(fingerprint));
  if (token.size() > kMaxPageToken ||
      !absl::WebSafeBase64Unescape(ToAbsl(token), &raw) ||
      raw.size() <= fp.size() || raw.compare(0, fp.size(), fp) != 0) {
    return absl::InvalidArgumentError(
        "page_token: malformed, or used with different filters");
  }
  page.after = raw.substr(fp.size());
  return page;
}

// Items paired with their sort keys; sorts them and returns one page.
template <typename T>
std::vector<T> TakePage(std::vector<std::pair<std::string, T>> items,
                        const Page& page, std::string_view fingerprint,
                        std::string* next_token) {
  std::sort(items.begin(), items.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  auto it = items.begin();
  if (!page.after.empty()) {
    it = std::upper_bound(items.begin(), items.end(), page.after,
                          [](const std::string& key, const auto& item) {
                            return key < item.first;
                          });
  }
  std::vector<T> out;
  for (; it != items.end() && out.size() < page.size; ++it) {
    out.push_back(std::move(it->second));
  }
  next_token->clear();
  if (it != items.end() && !out.empty()) {
    const std::string raw = Hex64(Fnv1a64(fingerprint)) + (it - 1)->first;
    *next_token = absl::WebSafeBase64Escape(ToAbsl(raw));
  }
  return out;
}

std::string BanKey(const BanView& v) {
  const auto created =
      static_cast<uint64_t>(absl::ToUnixMicros(v.ban.created)) ^ (1ull << 63);
  return Desc64(created) + Desc64(v.ban.id);
}

std::string PrefixKey(const IpPrefix& p) {
  const std::array<uint8_t, 16>& b = p.address().bytes();
  return Hex(std::string_view(reinterpret_cast<const char*>(b.data()),
                              b.size())) +
         absl::StrFormat("%02x%02x", static_cast<int>(p.address().family()),
                         p.length());
}

// ---------------------------------------------------------------------------
// Domain -> proto

v1::BanEntry BanToProto(const BanView& v) {
  v1::BanEntry out = ToProto(v.ban, v.revision);
  out.set_prefix(CidrText(v.ban.prefix));  // always with its length
  return out;
}

v1::AllowEntry AllowToProto(const AllowEntry& a) {
  v1::AllowEntry out;
  out.set_id(AdminQueries::AllowId(a.prefix));
  out.set_prefix(CidrText(a.prefix));
  SetTime(out.mutable_created_at(), a.created);
  if (a.expires) {
    SetTime(out.mutable_expires_at(), *a.expires);
  }
  out.set_comment(a.comment);
  out.set_created_by(a.actor);
  return out;
}

v1::AuthEventRecord EventToProto(const AuthEvent& e) {
  v1::AuthEventRecord out;
  out.set_agent_id(e.agent_id);
  v1::AuthEvent* ev = out.mutable_event();
  ev->set_kind(ToProto(e.kind));
  ev->set_protocol(ToProto(e.protocol));
  if (e.ip) {
    ev->set_ip(e.ip->ToString());
  }
  ev->set_user(e.user);
  SetTime(ev->mutable_time(), e.time);
  return out;
}

v1::Alert AlertToProto(const CompromiseAlert& a) {
  v1::Alert out;
  out.set_id(a.id);
  out.set_kind(v1::ALERT_KIND_SUCCESS_AFTER_FAILURES);
  SetTime(out.mutable_raised_at(), a.time);
  out.set_user(a.user);
  out.set_ip(a.ip.ToString());
  out.set_agent_id(a.agent_id);
  out.set_summary(a.evidence);
  return out;
}

v1::AccountInfo AccountToProto(const AccountView& a, absl::Duration window) {
  v1::AccountInfo out;
  out.set_user(a.user);
  out.set_distinct_ips(a.distinct_ips);
  out.set_distinct_servers(a.distinct_servers);
  out.set_failures(a.failures);
  out.set_locked_out(a.locked_out);
  SetTime(out.mutable_first_seen(), a.first_seen);
  SetTime(out.mutable_last_seen(), a.last_seen);
  SetDuration(out.mutable_window(), window);
  for (Protocol p : a.protocols) {
    out.add_protocols(ToProto(p));
  }
  for (size_t i = 0; i < a.agent_ids.size() && i < 100; ++i) {
    out.add_agent_ids(a.agent_ids[i]);
  }
  for (size_t i = 0; i < a.sample_ips.size() && i < 20; ++i) {
    out.add_sample_ips(a.sample_ips[i]);
  }
  out.set_compromise_suspected(a.compromise_suspected);
  for (const AuthEvent& e : a.evidence) {
    *out.add_evidence() = EventToProto(e);
  }
  return out;
}

v1::BanHistoryAction HistoryActionToProto(BanHistoryStep::Action a) {
  switch (a) {
    case BanHistoryStep::Action::kCreated:
      return v1::BAN_HISTORY_ACTION_CREATED;
    case BanHistoryStep::Action::kUpdated:
      return v1::BAN_HISTORY_ACTION_UPDATED;
    case BanHistoryStep::Action::kRemoved:
      return v1::BAN_HISTORY_ACTION_REMOVED;
    case BanHistoryStep::Action::kExpired:
      return v1::BAN_HISTORY_ACTION_EXPIRED;
  }
  return v1::BAN_HISTORY_ACTION_UNSPECIFIED;
}

v1::StoreState StoreStateToProto(StoreHealthState s) {
  switch (s) {
    case StoreHealthState::kOk:
      return v1::STORE_STATE_OK;
    case StoreHealthState::kDegraded:
      return v1::STORE_STATE_DEGRADED;
    case StoreHealthState::kDown:
      return v1::STORE_STATE_DOWN;
    case StoreHealthState::kUnknown:
      break;
  }
  return v1::STORE_STATE_UNSPECIFIED;
}

std::optional<BanOrigin> OriginFromProto(v1::BanOrigin o) {
  switch (o) {
    case v1::BAN_ORIGIN_AUTO:
      return BanOrigin::kAuto;
    case v1::BAN_ORIGIN_MANUAL:
      return BanOrigin::kManual;
    case v1::BAN_ORIGIN_IMPORT:
      return BanOrigin::kImport;
    case v1::BAN_ORIGIN_PREFIX:
      return BanOrigin::kPrefix;
    default:
      return std::nullopt;
  }
}

// ---------------------------------------------------------------------------
// Policy. The wire Policy and the correlator's Policy overlap but are not
// the same model (e.g. the correlator multiplies by 1 + server_factor *
// (servers - 1) where the wire has one multiplier above a server count). A
// field maps when it means the same thing on both sides; the others are
// left unset in outputs and refused (UNIMPLEMENTED) in dry-run candidates.

v1::Policy PolicyToProto(const Policy& p) {
  v1::Policy out;
  SetDuration(out.mutable_half_life(), p.half_life);
  out.set_ban_threshold(p.ban_threshold);
  const std::array<std::pair<v1::EventKind, double>, 7> kinds = {{
      {v1::EVENT_KIND_AUTH_FAILURE, p.weight_auth_failure},
      {v1::EVENT_KIND_LOCKOUT, p.weight_lockout},
      {v1::EVENT_KIND_POLICY_REJECT, p.weight_policy_reject},
      {v1::EVENT_KIND_CONNECT, 0},
      {v1::EVENT_KIND_DISCONNECT, 0},
      {v1::EVENT_KIND_TLS_FAILURE, p.weight_tls_failure},
      {v1::EVENT_KIND_AUTH_SUCCESS, 0},
  }};
  for (const auto& [kind, weight] : kinds) {
    v1::KindWeight* w = out.add_kind_weights();
    w->set_kind(kind);
    w->set_weight(weight);
  }
  const std::array<std::pair<v1::Protocol, double>, 6> protocols = {{
      {v1::PROTOCOL_UNSPECIFIED, p.protocol_unknown},
      {v1::PROTOCOL_SMTP, p.protocol_smtp},
      {v1::PROTOCOL_IMAP, p.protocol_imap},
      {v1::PROTOCOL_POP3, p.protocol_pop3},
      {v1::PROTOCOL_LDAP, p.protocol_ldap},
      {v1::PROTOCOL_HTTP, p.protocol_http},
  }};
  for (const auto& [protocol, multiplier] : protocols) {
    v1::ProtocolWeight* w = out.add_protocol_weights();
    w->set_protocol(protocol);
    w->set_multiplier(multiplier);
  }
  SetDuration(out.mutable_cross_server_window(), p.server_window);
  SetDuration(out.mutable_ban_base_duration(), p.ban_base);
  out.set_escalation_factor(p.ban_factor);
  SetDuration(out.mutable_ban_max_duration(), p.ban_max);
  out.set_jitter_fraction(p.ban_jitter);
  SetDuration(out.mutable_history_clean_period(), p.history_clean_period);
  v1::PrefixAggregation* agg = out.mutable_prefix_aggregation();
  agg->set_enabled(!p.v4_ladder.empty() || !p.v6_ladder.empty());
  if (p.v4_ladder.size() == 1) {
    agg->set_v4_prefix_length(static_cast<uint32_t>(p.v4_ladder.front()));
  }
  agg->set_v4_min_addresses(static_cast<uint32_t>(p.prefix_k));
  agg->set_v6_prefix_length(static_cast<uint32_t>(p.v6_score_prefix));
  if (p.v6_ladder.size() == 1) {
    agg->set_v6_widen_prefix_length(static_cast<uint32_t>(p.v6_ladder.front()));
  }
  agg->set_v6_widen_min_prefixes(static_cast<uint32_t>(p.prefix_k));
  v1::AccountPolicy* acc = out.mutable_accounts();
  SetDuration(acc->mutable_window(), p.account_window);
  acc->set_min_distinct_ips(static_cast<uint32_t>(p.account_min_ips));
  // The correlator alerts on a success after any failure in the lookback.
  acc->set_success_after_failures_min_failures(1);
  SetDuration(acc->mutable_success_after_failures_window(),
              p.compromise_lookback);
  return out;
}

absl::Status NotMapped(std::string_view field, std::string_view why) {
  return absl::UnimplementedError(absl::StrFormat(
      "policy.%s: not supported by this server's correlator (%s)", field, why));
}

absl::Status InRange(std::string_view field, double v, double min, double max,
                     bool min_open = false) {
  if (!(min_open ? v > min : v >= min) || !(v <= max)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("policy.%s: %g is outside %s%g, %g]", field, v,
                        min_open ? "(" : "[", min, max));
  }
  return absl::OkStatus();
}

// `live` with the candidate's present fields applied.
absl::StatusOr<Policy> CandidatePolicy(const v1::Policy& c, Policy p) {
  if (c.has_half_life()) {
    ASSIGN_OR_RETURN(
        p.half_life,
        DurationField("policy.half_life", c.half_life(), kMinute, 7 * kDay));
  }
  if (c.has_ban_threshold()) {
    RETURN_IF_ERROR(
        InRange("ban_threshold", c.ban_threshold(), 0, 1e6, /*min_open=*/true));
    p.ban_threshold = c.ban_threshold();
  }
  absl::flat_hash_set<int> seen;
  for (const v1::KindWeight& w : c.kind_weights()) {
    if (w.kind() == v1::EVENT_KIND_UNSPECIFIED ||
        !v1::EventKind_IsValid(w.kind()) || !seen.insert(w.kind()).second) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "policy.kind_weights: kind %d is unset, unknown or repeated",
          static_cast<int>(w.kind())));
    }
    RETURN_IF_ERROR(InRange("kind_weights.weight", w.weight(), 0, 100));
    switch (w.kind()) {
      case v1::EVENT_KIND_AUTH_FAILURE:
        p.weight_auth_failure = w.weight();
        break;
      case v1::EVENT_KIND_LOCKOUT:
        p.weight_lockout = w.weight();
        break;
      case v1::EVENT_KIND_POLICY_REJECT:
        p.weight_policy_reject = w.weight();
        break;
      case v1::EVENT_KIND_TLS_FAILURE:
        p.weight_tls_failure = w.weight();
        break;
      default:
        if (w.weight() != 0) {
          return NotMapped("kind_weights",
                           "connect, disconnect and success never score");
        }
    }
  }
  seen.clear();
  for (const v1::ProtocolWeight& w : c.protocol_weights()) {
    if (!v1::Protocol_IsValid(w.protocol()) ||
        !seen.insert(w.protocol()).second) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "policy.protocol_weights: protocol %d is unknown or repeated",
          static_cast<int>(w.protocol())));
    }
    RETURN_IF_ERROR(
        InRange("protocol_weights.multiplier", w.multiplier(), 0, 10));
    switch (w.protocol()) {
      case v1::PROTOCOL_SMTP:
        p.protocol_smtp = w.multiplier();
        break;
      case v1::PROTOCOL_IMAP:
        p.protocol_imap = w.multiplier();
        break;
      case v1::PROTOCOL_POP3:
        p.protocol_pop3 = w.multiplier();
        break;
      case v1::PROTOCOL_LDAP:
        p.protocol_ldap = w.multiplier();
        break;
      case v1::PROTOCOL_HTTP:
        p.protocol_http = w.multiplier();
        break;
      default:
        p.protocol_unknown = w.multiplier();
        break;
    }
  }
  if (c.has_cross_server_multiplier() || c.has_cross_server_min_servers()) {
    return NotMapped(c.has_cross_server_multiplier()
                         ? "cross_server_multiplier"
                         : "cross_server_min_servers",
                     "it scales by 1 + server_factor * (servers - 1)");
  }
  if (c.has_cross_server_window()) {
    ASSIGN_OR_RETURN(p.server_window,
                     DurationField("policy.cross_server_window",
                                   c.cross_server_window(), kMinute, 7 * kDay));
  }
  if (c.has_ban_base_duration()) {
    ASSIGN_OR_RETURN(p.ban_base,
                     DurationField("policy.ban_base_duration",
                                   c.ban_base_duration(), kMinute, 365 * kDay));
  }
  if (c.has_escalation_factor()) {
    RETURN_IF_ERROR(
        InRange("escalation_factor", c.escalation_factor(), 1, 100));
    p.ban_factor = c.escalation_factor();
  }
  if (c.has_ban_max_duration()) {
    ASSIGN_OR_RETURN(p.ban_max, DurationField("policy.ban_max_duration",
                                              c.ban_max_duration(), p.ban_base,
                                              3650 * kDay));
  }
  if (c.has_jitter_fraction()) {
    RETURN_IF_ERROR(InRange("jitter_fraction", c.jitter_fraction(), 0, 0.5));
    p.ban_jitter = c.jitter_fraction();
  }
  if (c.has_history_clean_period()) {
    ASSIGN_OR_RETURN(
        p.history_clean_period,
        DurationField("policy.history_clean_period", c.history_clean_period(),
                      absl::Hours(1), 3650 * kDay));
  }
  if (c.has_prefix_aggregation()) {
    const v1::PrefixAggregation& a = c.prefix_aggregation();
    if (a.has_v4_prefix_length()) {
      RETURN_IF_ERROR(InRange("prefix_aggregation.v4_prefix_length",
                              a.v4_prefix_length(), 16, 31));
      p.v4_ladder = {static_cast<int>(a.v4_prefix_length())};
    }
    if (a.has_v6_prefix_length()) {
      RETURN_IF_ERROR(InRange("prefix_aggregation.v6_prefix_length",
                              a.v6_prefix_length(), 32, 128));
      p.v6_score_prefix = static_cast<int>(a.v6_prefix_length());
    }
    if (a.has_v6_widen_prefix_length()) {
      RETURN_IF_ERROR(InRange("prefix_aggregation.v6_widen_prefix_length",
                              a.v6_widen_prefix_length(), 16,
                              p.v6_score_prefix - 1));
      p.v6_ladder = {static_cast<int>(a.v6_widen_prefix_length())};
    }
    if (a.has_v4_min_addresses()) {
      RETURN_IF_ERROR(InRange("prefix_aggregation.v4_min_addresses",
                              a.v4_min_addresses(), 2, 256));
      p.prefix_k = static_cast<int>(a.v4_min_addresses());
    }
    if (a.has_v6_widen_min_prefixes()) {
      RETURN_IF_ERROR(InRange("prefix_aggregation.v6_widen_min_prefixes",
                              a.v6_widen_min_prefixes(), 2, 65536));
      if (a.has_v4_min_addresses() &&
          a.v4_min_addresses() != a.v6_widen_min_prefixes()) {
        return NotMapped("prefix_aggregation.v6_widen_min_prefixes",
                         "one threshold serves IPv4 and IPv6");
      }
      p.prefix_k = static_cast<int>(a.v6_widen_min_prefixes());
    }
    if (a.has_enabled() && !a.enabled()) {
      p.v4_ladder.clear();
      p.v6_ladder.clear();
    }
  }
  if (c.has_accounts()) {
    const v1::AccountPolicy& a = c.accounts();
    if (a.has_window()) {
      ASSIGN_OR_RETURN(p.account_window,
                       DurationField("policy.accounts.window", a.window(),
                                     kMinute, 7 * kDay));
    }
    if (a.has_min_distinct_ips()) {
      RETURN_IF_ERROR(InRange("accounts.min_distinct_ips", a.min_distinct_ips(),
                              1, 100000));
      p.account_min_ips = static_cast<int>(a.min_distinct_ips());
    }
    if (a.has_min_failures()) {
      return NotMapped("accounts.min_failures",
                       "it counts distinct servers, not failures");
    }
    if (a.has_success_after_failures_min_failures()) {
      RETURN_IF_ERROR(InRange("accounts.success_after_failures_min_failures",
                              a.success_after_failures_min_failures(), 1,
                              10000));
      if (a.success_after_failures_min_failures() != 1) {
        return NotMapped("accounts.success_after_failures_min_failures",
                         "any failure in the lookback raises the alert");
      }
    }
    if (a.has_success_after_failures_window()) {
      ASSIGN_OR_RETURN(
          p.compromise_lookback,
          DurationField("policy.accounts.success_after_failures_window",
                        a.success_after_failures_window(), kMinute, 7 * kDay));
    }
  }
  if (absl::Status s = ValidatePolicy(p); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "candidate policy, as the correlator sees it: %s", s.message()));
  }
  return p;
}

void DryRunBanToProto(const Ban& b, v1::DryRunBan* out) {
  out->set_prefix(CidrText(b.prefix));
  SetTime(out->mutable_at(), b.created);
  if (b.expires != absl::InfiniteFuture()) {
    SetDuration(out->mutable_duration(), b.expires - b.created);
  }
  out->set_escalation_level(static_cast<uint32_t>(b.level));
}

constexpr std::array<const char*, 17> kCodeNames = {"OK",
                                                    "CANCELLED",
                                                    "UNKNOWN",
                                                    "INVALID_ARGUMENT",
                                                    "DEADLINE_EXCEEDED",
                                                    "NOT_FOUND",
                                                    "ALREADY_EXISTS",
                                                    "PERMISSION_DENIED",
                                                    "RESOURCE_EXHAUSTED",
                                                    "FAILED_PRECONDITION",
                                                    "ABORTED",
                                                    "OUT_OF_RANGE",
                                                    "UNIMPLEMENTED",
                                                    "INTERNAL",
                                                    "UNAVAILABLE",
                                                    "DATA_LOSS",
                                                    "UNAUTHENTICATED"};

}  // namespace

// ---------------------------------------------------------------------------

AdminService::AdminService(const AdminServiceOptions& options,
                           Correlator& correlator, Store& store,
                           BanDistributor& distributor, Clock& clock,
                           metrics::Registry& metrics, AdminAuthenticator& auth,
                           ServerFacts facts)
    : options_(options),
      clock_(clock),
      distributor_(distributor),
      metrics_(metrics),
      watchers_gauge_(
          metrics.GetGauge("rampart_admin_alert_watchers",
                           "Open AdminService.WatchAlerts streams")),
      auth_(auth),
      queries_(options.queries, correlator, store, distributor, clock,
               std::move(facts)),
      alerts_(options.alerts, store) {}

AdminService::~AdminService() { alerts_.Shutdown(); }

void AdminService::Shutdown() { alerts_.Shutdown(); }

void AdminService::NotifyAlerts() { alerts_.Notify(); }

void AdminService::SetAgentIdentity(
    EnrollmentManager* manager,
    std::function<bool(const std::string& agent_id)> end_agent_stream) {
  absl::MutexLock lock(&identity_mu_);
  enrollment_ = manager;
  end_agent_stream_ = std::move(end_agent_stream);
}

absl::StatusOr<Principal> AdminService::Authorize(
    const grpc::ServerContext& context, AdminRole needed,
    std::string_view method) {
  const auto& md = context.client_metadata();
  std::optional<std::string_view> authorization;
  if (const auto it = md.find("authorization"); it != md.end()) {
    authorization = std::string_view(it->second.data(), it->second.size());
  }
  absl::StatusOr<Principal> who =
      auth_.Authenticate(authorization, PeerAddress(context));
  if (!who.ok()) {
    const absl::StatusCode code = who.status().code();
    if (code == absl::StatusCode::kUnauthenticated ||
        code == absl::StatusCode::kResourceExhausted) {
      // A flood of bad tokens must not become a flood of log lines.
      if (const AdminAuthenticator::LogDecision d = auth_.ShouldLogRefusal();
          d.log) {
        RAMPART_LOG(Warning)
            << "AdminService." << method << ": refused caller at "
            << context.peer() << ": " << who.status().message()
            << (d.suppressed > 0
                    ? absl::StrFormat(" (%d earlier refusals not logged)",
                                      d.suppressed)
                    : std::string());
      }
    }
    return who.status();
  }
  RETURN_IF_ERROR(AdminAuthenticator::Authorize(*who, needed, method));
  return who;
}

grpc::Status AdminService::Done(std::string_view method,
                                const absl::Status& status) {
  const auto code = static_cast<size_t>(status.code());
  metrics_
      .GetCounter(
          "rampart_admin_requests_total",
          "AdminService calls by method and final status code",
          {{"method", std::string(method)},
           {"code", code < kCodeNames.size() ? kCodeNames[code] : "UNKNOWN"}})
      .Increment();
  // Caller mistakes (bad input, unknown ban, refused preconditions) are the
  // caller's to report; log what an operator of the server must see.
  const absl::StatusCode c = status.code();
  if (c == absl::StatusCode::kInternal || c == absl::StatusCode::kUnknown ||
      c == absl::StatusCode::kDataLoss || c == absl::StatusCode::kAborted ||
      (c == absl::StatusCode::kUnavailable && method != "WatchAlerts")) {
    RAMPART_LOG(Warning) << "AdminService." << method << ": "
                         << status.ToString();
  }
  return ToGrpcStatus(status);
}

// --- Status ----------------------------------------------------------------

grpc::Status AdminService::Status(grpc::ServerContext* context,
                                  const v1::StatusRequest*,
                                  v1::StatusResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "Status");
  if (!who.ok()) {
    return Done("Status", who.status());
  }
  const StatusView v = queries_.Status();
  response->set_server_version(v.facts.server_version);
  response->set_server_id(v.facts.server_id);
  SetTime(response->mutable_started_at(), v.facts.started_at);
  SetDuration(response->mutable_uptime(),
              std::max(absl::ZeroDuration(), v.now - v.facts.started_at));
  response->set_ban_list_epoch(v.facts.ban_list_epoch);
  response->set_current_revision(v.current_revision);
  response->set_journal_oldest_revision(v.journal_oldest_revision);
  response->set_active_bans(v.active_bans);
  response->set_permanent_bans(v.permanent_bans);
  response->set_allow_entries(v.allow_entries);
  response->set_agents_total(v.agents_total);
  response->set_agents_connected(v.agents_connected);
  response->set_agents_current(v.agents_current);
  response->set_events_last_hour(v.events_last_hour);
  response->set_correlator_queue_depth(v.facts.correlator_queue_depth);
  response->set_open_alerts(v.open_alerts);
  v1::StoreHealth* store = response->mutable_store();
  store->set_state(StoreStateToProto(v.facts.store_state));
  store->set_message(v.facts.store_message);
  if (v.facts.last_commit_at) {
    SetTime(store->mutable_last_commit_at(), *v.facts.last_commit_at);
  }
  store->set_pending_writes(v.facts.pending_writes);
  *response->mutable_policy() = PolicyToProto(queries_.options().policy);
  return Done("Status", absl::OkStatus());
}

// --- Bans ------------------------------------------------------------------

grpc::Status AdminService::ListBans(grpc::ServerContext* context,
                                    const v1::ListBansRequest* request,
                                    v1::ListBansResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "ListBans");
  if (!who.ok()) {
    return Done("ListBans", who.status());
  }
  const auto run = [&]() -> absl::Status {
    BanFilter filter;
    switch (request->state()) {
      case v1::BAN_STATE_FILTER_UNSPECIFIED:
      case v1::BAN_STATE_FILTER_ACTIVE:
        break;
      case v1::BAN_STATE_FILTER_ALL:
        filter.include_inactive = true;
        break;
      default:
        return absl::InvalidArgumentError("state: unknown filter");
    }
    if (!request->covering().empty()) {
      ASSIGN_OR_RETURN(filter.covering,
                       PrefixField("covering", request->covering()));
    }
    if (!request->within().empty()) {
      ASSIGN_OR_RETURN(filter.within, PrefixField("within", request->within()));
    }
    if (request->origin() != v1::BAN_ORIGIN_UNSPECIFIED) {
      filter.origin = OriginFromProto(request->origin());
      if (!filter.origin) {
        return absl::InvalidArgumentError(
            absl::StrFormat("origin: %d is not a server-side origin",
                            static_cast<int>(request->origin())));
      }
    }
    const std::string fingerprint =
        absl::StrFormat("bans|%d|%s|%s|%d", filter.include_inactive ? 1 : 0,
                        filter.covering ? CidrText(*filter.covering) : "",
                        filter.within ? CidrText(*filter.within) : "",
                        static_cast<int>(request->origin()));
    ASSIGN_OR_RETURN(Page page, PageField(request->page_size(),
                                          request->page_token(), fingerprint));
    ASSIGN_OR_RETURN(std::vector<BanView> bans, queries_.ListBans(filter));
    response->set_total_size(bans.size());
    std::vector<std::pair<std::string, BanView>> keyed;
    keyed.reserve(bans.size());
    for (BanView& v : bans) {
      std::string key = BanKey(v);
      keyed.emplace_back(std::move(key), std::move(v));
    }
    for (const BanView& v : TakePage(std::move(keyed), page, fingerprint,
                                     response->mutable_next_page_token())) {
      *response->add_bans() = BanToProto(v);
    }
    return absl::OkStatus();
  };
  return Done("ListBans", run());
}

grpc::Status AdminService::GetBan(grpc::ServerContext* context,
                                  const v1::GetBanRequest* request,
                                  v1::GetBanResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "GetBan");
  if (!who.ok()) {
    return Done("GetBan", who.status());
  }
  const auto run = [&]() -> absl::Status {
    absl::StatusOr<BanDetail> detail;
    switch (request->selector_case()) {
      case v1::GetBanRequest::kId:
        if (request->id() == 0) {
          return absl::InvalidArgumentError("id: must be > 0");
        }
        detail = queries_.GetBanById(request->id());
        break;
      case v1::GetBanRequest::kAddress: {
        ASSIGN_OR_RETURN(IpPrefix target,
                         PrefixField("address", request->address()));
        detail = queries_.GetBanByTarget(target, request->include_inactive());
        break;
      }
      default:
        return absl::InvalidArgumentError(
            "selector: exactly one of id or address is required");
    }
    if (!detail.ok()) {
      return detail.status();
    }
    const BanView& v = detail->view;
    *response->mutable_ban() = BanToProto(v);
    response->set_active(v.active);
    v1::BanExplanation* ex = response->mutable_explanation();
    ex->set_summary(v.ban.reason);
    ex->set_threshold(queries_.options().policy.ban_threshold);
    ex->set_distinct_servers(static_cast<uint32_t>(detail->evidence_servers));
    ex->set_cross_server_multiplier(1);
    if (v.ban.expires != absl::InfiniteFuture()) {
      SetDuration(ex->mutable_computed_duration(),
                  v.ban.expires - v.ban.created);
    }
    for (const AuthEvent& e : detail->evidence) {
      *ex->add_evidence() = EventToProto(e);
    }
    for (const BanHistoryStep& h : detail->history) {
      v1::BanHistoryEvent* out = response->add_history();
      SetTime(out->mutable_at(), h.at);
      out->set_action(HistoryActionToProto(h.action));
      out->set_actor(h.actor);
      out->set_reason(h.reason);
      out->set_revision(h.revision);
      if (h.expires && *h.expires != absl::InfiniteFuture()) {
        SetTime(out->mutable_expires_at(), *h.expires);
      }
    }
    response->set_agents_enforcing(
        static_cast<uint32_t>(detail->agents_enforcing));
    response->set_agents_total(static_cast<uint32_t>(detail->agents_total));
    for (const AgentEnforcementView& e : detail->enforcement) {
      v1::AgentEnforcement* out = response->add_enforcement();
      out->set_agent_id(e.agent_id);
      out->set_site(e.site);
      out->set_enforced(e.enforced);
      out->set_enforced_revision(e.enforced_revision);
      out->set_connected(e.connected);
    }
    return absl::OkStatus();
  };
  return Done("GetBan", run());
}

grpc::Status AdminService::AddBan(grpc::ServerContext* context,
                                  const v1::AddBanRequest* request,
                                  v1::AddBanResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kOperator, "AddBan");
  if (!who.ok()) {
    return Done("AddBan", who.status());
  }
  const auto run = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(IpPrefix target, PrefixField("target", request->target()));
    if (request->override_protected()) {
      RETURN_IF_ERROR(AdminAuthenticator::Authorize(
          *who, AdminRole::kAdmin,
          absl::StrFormat("banning %s over an agent's protected address",
                          CidrText(target))));
    }
    if (IsBroadPrefix(target)) {
      RETURN_IF_ERROR(AdminAuthenticator::Authorize(
          *who, AdminRole::kAdmin,
          absl::StrFormat("banning %s (broader than /%d)", CidrText(target),
                          target.address().is_v4() ? 16 : 32)));
    }
    std::optional<absl::Duration> duration;
    switch (request->lifetime_case()) {
      case v1::AddBanRequest::kDuration: {
        ASSIGN_OR_RETURN(duration,
                         DurationField("duration", request->duration(),
                                       absl::Seconds(1), kMaxBanDuration));
        break;
      }
      case v1::AddBanRequest::kPermanent:
        if (!request->permanent()) {
          return absl::InvalidArgumentError(
              "permanent: must be true when set (or give a duration)");
        }
        break;
      default:
        return absl::InvalidArgumentError(
            "lifetime: exactly one of duration or permanent is required");
    }
    RETURN_IF_ERROR(TextField("reason", request->reason(), /*required=*/true));
    RETURN_IF_ERROR(ScopeField("scope", request->scope()));
    ASSIGN_OR_RETURN(
        AddBanOutcome r,
        queries_.AddBan(target, duration, request->reason(), who->actor,
                        request->allow_broad_prefix(), BanOrigin::kManual,
                        AuditPeer(*context), request->override_protected()));
    *response->mutable_ban() = BanToProto(
        BanView{.ban = r.ban, .revision = r.revision, .active = true});
    response->set_created(r.created);
    response->set_revision(r.revision);
    return absl::OkStatus();
  };
  return Done("AddBan", run());
}

grpc::Status AdminService::RemoveBan(grpc::ServerContext* context,
                                     const v1::RemoveBanRequest* request,
                                     v1::RemoveBanResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kOperator, "RemoveBan");
  if (!who.ok()) {
    return Done("RemoveBan", who.status());
  }
  const auto run = [&]() -> absl::Status {
    RETURN_IF_ERROR(TextField("reason", request->reason(), /*required=*/true));
    absl::StatusOr<RemoveBanOutcome> r;
    switch (request->selector_case()) {
      case v1::RemoveBanRequest::kId:
        if (request->id() == 0) {
          return absl::InvalidArgumentError("id: must be > 0");
        }
        r = queries_.RemoveBanById(request->id(), request->reason(), who->actor,
                                   AuditPeer(*context));
        break;
      case v1::RemoveBanRequest::kTarget: {
        ASSIGN_OR_RETURN(IpPrefix target,
                         PrefixField("target", request->target()));
        r = queries_.RemoveBanByPrefix(target, request->reason(), who->actor,
                                       AuditPeer(*context));
        break;
      }
      default:
        return absl::InvalidArgumentError(
            "selector: exactly one of id or target is required");
    }
    if (!r.ok()) {
      return r.status();
    }
    *response->mutable_removed() = BanToProto(BanView{.ban = r->ban});
    response->set_revision(r->revision);
    return absl::OkStatus();
  };
  return Done("RemoveBan", run());
}

// --- LookupIp --------------------------------------------------------------

grpc::Status AdminService::LookupIp(grpc::ServerContext* context,
                                    const v1::LookupIpRequest* request,
                                    v1::LookupIpResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "LookupIp");
  if (!who.ok()) {
    return Done("LookupIp", who.status());
  }
  const auto run = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(IpAddress ip, AddressField("address", request->address()));
    absl::Duration window = kDay;
    if (request->has_window()) {
      ASSIGN_OR_RETURN(window, DurationField("window", request->window(),
                                             kMinute, 30 * kDay));
    }
    if (request->max_events() > 1000) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "max_events: %d is above 1000", request->max_events()));
    }
    const size_t max_events =
        request->max_events() == 0 ? 100 : request->max_events();
    ASSIGN_OR_RETURN(IpLookup l, queries_.LookupIp(ip, window, max_events));
    response->set_address(l.address.ToString());
    response->set_score(l.key.score);
    response->set_ban_threshold(l.ban_threshold);
    if (l.allow) {
      *response->mutable_allow() = AllowToProto(*l.allow);
    }
    response->set_self_address(l.self_address);
    if (l.active_ban) {
      *response->mutable_active_ban() = BanToProto(*l.active_ban);
    }
    for (const BanView& b : l.bans) {
      *response->add_bans() = BanToProto(b);
    }
    for (const AuthEvent& e : l.recent_events) {
      *response->add_recent_events() = EventToProto(e);
    }
    response->set_events_truncated(l.events_truncated);
    for (const CountedAgent& a : l.agents_hit) {
      v1::AgentHitCount* out = response->add_agents_hit();
      out->set_agent_id(a.agent_id);
      out->set_events(a.events);
    }
    for (const CountedUser& u : l.users_tried) {
      v1::UserAttemptCount* out = response->add_users_tried();
      out->set_user(u.user);
      out->set_attempts(u.attempts);
    }
    for (const PrefixScoreView& p : l.prefix_scores) {
      v1::PrefixScore* out = response->add_prefix_scores();
      out->set_prefix(CidrText(p.prefix));
      out->set_score(p.score);
      out->set_members(p.members);
    }
    return absl::OkStatus();
  };
  return Done("LookupIp", run());
}

// --- Allowlist -------------------------------------------------------------

grpc::Status AdminService::ListAllow(grpc::ServerContext* context,
                                     const v1::ListAllowRequest* request,
                                     v1::ListAllowResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "ListAllow");
  if (!who.ok()) {
    return Done("ListAllow", who.status());
  }
  const auto run = [&]() -> absl::Status {
    const std::string fingerprint =
        absl::StrFormat("allow|%d", request->include_expired() ? 1 : 0);
    ASSIGN_OR_RETURN(Page page, PageField(request->page_size(),
                                          request->page_token(), fingerprint));
    std::vector<std::pair<std::string, AllowEntry>> keyed;
    for (AllowEntry& a : queries_.Allowlist(request->include_expired())) {
      std::string key = PrefixKey(a.prefix);
      keyed.emplace_back(std::move(key), std::move(a));
    }
    for (const AllowEntry& a : TakePage(std::move(keyed), page, fingerprint,
                                        response->mutable_next_page_token())) {
      *response->add_entries() = AllowToProto(a);
    }
    return absl::OkStatus();
  };
  return Done("ListAllow", run());
}

grpc::Status AdminService::AddAllow(grpc::ServerContext* context,
                                    const v1::AddAllowRequest* request,
                                    v1::AddAllowResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kOperator, "AddAllow");
  if (!who.ok()) {
    return Done("AddAllow", who.status());
  }
  const auto run = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(IpPrefix prefix, PrefixField("cidr", request->cidr()));
    if (IsBroadPrefix(prefix)) {
      // Same rule as AddBan: a broad entry switches banning off for a range.
      RETURN_IF_ERROR(AdminAuthenticator::Authorize(
          *who, AdminRole::kAdmin,
          absl::StrFormat("allowlisting %s (broader than /%d)",
                          CidrText(prefix),
                          prefix.address().is_v4() ? 16 : 32)));
    }
    std::optional<absl::Duration> duration;
    if (request->has_duration()) {
      ASSIGN_OR_RETURN(duration,
                       DurationField("duration", request->duration(),
                                     absl::Seconds(1), kMaxBanDuration));
    }
    RETURN_IF_ERROR(
        TextField("comment", request->comment(), /*required=*/false));
    ASSIGN_OR_RETURN(
        AddAllowOutcome r,
        queries_.AddAllow(prefix, duration, request->comment(),
                          request->remove_covering_bans(), who->actor,
                          AuditPeer(*context), request->allow_broad_prefix()));
    *response->mutable_entry() = AllowToProto(r.entry);
    for (const Ban& b : r.removed_bans) {
      *response->add_removed_bans() = BanToProto(BanView{.ban = b});
    }
    response->set_revision(r.revision);
    return absl::OkStatus();
  };
  return Done("AddAllow", run());
}

grpc::Status AdminService::RemoveAllow(grpc::ServerContext* context,
                                       const v1::RemoveAllowRequest* request,
                                       v1::RemoveAllowResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kOperator, "RemoveAllow");
  if (!who.ok()) {
    return Done("RemoveAllow", who.status());
  }
  const auto run = [&]() -> absl::Status {
    absl::StatusOr<AllowEntry> removed;
    switch (request->selector_case()) {
      case v1::RemoveAllowRequest::kId:
        if (request->id() == 0) {
          return absl::InvalidArgumentError("id: must be > 0");
        }
        removed = queries_.RemoveAllowById(request->id(), who->actor,
                                           AuditPeer(*context));
        break;
      case v1::RemoveAllowRequest::kCidr: {
        ASSIGN_OR_RETURN(IpPrefix prefix, PrefixField("cidr", request->cidr()));
        removed = queries_.RemoveAllowByPrefix(prefix, who->actor,
                                               AuditPeer(*context));
        break;
      }
      default:
        return absl::InvalidArgumentError(
            "selector: exactly one of id or cidr is required");
    }
    if (!removed.ok()) {
      return removed.status();
    }
    *response->mutable_removed() = AllowToProto(*removed);
    return absl::OkStatus();
  };
  return Done("RemoveAllow", run());
}

// --- Agents, accounts, alerts ------------------------------------------------

grpc::Status AdminService::ListAgents(grpc::ServerContext* context,
                                      const v1::ListAgentsRequest* request,
                                      v1::ListAgentsResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "ListAgents");
  if (!who.ok()) {
    return Done("ListAgents", who.status());
  }
  const auto run = [&]() -> absl::Status {
    if (request->site().size() > kMaxFilterText) {
      return absl::InvalidArgumentError("site: too long");
    }
    const std::string fingerprint = absl::StrFormat(
        "agents|%d|%s", request->connected_only() ? 1 : 0, request->site());
    ASSIGN_OR_RETURN(Page page, PageField(request->page_size(),
                                          request->page_token(), fingerprint));
    response->set_current_revision(distributor_.revision());
    std::vector<std::pair<std::string, AgentView>> keyed;
    for (AgentView& a : queries_.Agents()) {
      if (request->connected_only() && !a.status.connected) {
        continue;
      }
      if (!request->site().empty() &&
          (!a.facts || a.facts->site != request->site())) {
        continue;
      }
      std::string key = Hex(a.status.agent_id);
      keyed.emplace_back(std::move(key), std::move(a));
    }
    for (const AgentView& a : TakePage(std::move(keyed), page, fingerprint,
                                       response->mutable_next_page_token())) {
      v1::AgentInfo* out = response->add_agents();
      out->set_agent_id(a.status.agent_id);
      out->set_connected(a.status.connected);
      if (a.status.last_seen > absl::UnixEpoch()) {
        SetTime(out->mutable_last_seen(), a.status.last_seen);
      }
      out->set_enforced_revision(a.status.enforced_revision);
      out->set_revision_lag(a.status.lag_revisions);
      SetDuration(out->mutable_time_lag(), a.status.lag_time);
      if (a.facts) {
        const AgentFacts& f = *a.facts;
        out->set_site(f.site);
        out->set_hostname(f.hostname);
        out->set_agent_version(f.version);
        if (a.status.connected && f.connected_since) {
          SetTime(out->mutable_connected_since(), *f.connected_since);
        }
        out->set_peer_address(f.peer_address);
        for (const IpAddress& ip : f.host_addresses) {
          out->add_host_addresses(ip.ToString());
        }
        out->set_apply_errors(f.apply_errors);
        out->set_spool_depth_batches(f.spool_depth_batches);
        out->set_spool_dropped_batches(f.spool_dropped_batches);
        SetDuration(out->mutable_tailer_lag(), f.tailer_lag);
        SetDuration(out->mutable_clock_skew(), f.clock_skew);
        out->set_firewall_backend(f.firewall_backend);
        out->set_local_fallback_bans(f.local_fallback_bans);
        out->set_durable_through(f.durable_through);
      }
      for (const IpAddress& ip : a.addresses.Protecting()) {
        out->add_protected_addresses(ip.ToString());
      }
      for (const IpAddress& ip : a.addresses.Unapproved()) {
        out->add_unapproved_addresses(ip.ToString());
      }
    }
    return absl::OkStatus();
  };
  return Done("ListAgents", run());
}

grpc::Status AdminService::ListAccounts(grpc::ServerContext* context,
                                        const v1::ListAccountsRequest* request,
                                        v1::ListAccountsResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "ListAccounts");
  if (!who.ok()) {
    return Done("ListAccounts", who.status());
  }
  const auto run = [&]() -> absl::Status {
    absl::Duration window = queries_.options().policy.account_window;
    if (request->has_window()) {
      ASSIGN_OR_RETURN(window, DurationField("window", request->window(),
                                             kMinute, 30 * kDay));
    }
    const std::string fingerprint =
        absl::StrFormat("accounts|%d|%d", absl::ToInt64Seconds(window),
                        request->min_distinct_ips());
    ASSIGN_OR_RETURN(Page page, PageField(request->page_size(),
                                          request->page_token(), fingerprint));
    ASSIGN_OR_RETURN(std::vector<AccountView> accounts,
                     queries_.Accounts(window, request->min_distinct_ips()));
    std::vector<std::pair<std::string, AccountView>> keyed;
    for (AccountView& a : accounts) {
      std::string key = absl::StrFormat("%08x", ~a.distinct_ips) + Hex(a.user);
      keyed.emplace_back(std::move(key), std::move(a));
    }
    for (AccountView& a : TakePage(std::move(keyed), page, fingerprint,
                                   response->mutable_next_page_token())) {
      RETURN_IF_ERROR(queries_.AddAccountEvidence(clock_.Now() - window, a));
      *response->add_accounts() = AccountToProto(a, window);
    }
    return absl::OkStatus();
  };
  return Done("ListAccounts", run());
}

grpc::Status AdminService::ListAlerts(grpc::ServerContext* context,
                                      const v1::ListAlertsRequest* request,
                                      v1::ListAlertsResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "ListAlerts");
  if (!who.ok()) {
    return Done("ListAlerts", who.status());
  }
  const auto run = [&]() -> absl::Status {
    absl::Time since = clock_.Now() - 7 * kDay;
    if (request->has_since()) {
      ASSIGN_OR_RETURN(since, TimeField("since", request->since()));
    }
    if (request->kind() != v1::ALERT_KIND_UNSPECIFIED &&
        request->kind() != v1::ALERT_KIND_SUCCESS_AFTER_FAILURES) {
      return absl::InvalidArgumentError("kind: unknown alert kind");
    }
    // The request's own fields: the default `since` moves with the clock.
    const std::string fingerprint = absl::StrFormat(
        "alerts|%s|%d",
        request->has_since() ? std::to_string(absl::ToUnixMicros(since)) : "-",
        static_cast<int>(request->kind()));
    ASSIGN_OR_RETURN(Page page, PageField(request->page_size(),
                                          request->page_token(), fingerprint));
    ASSIGN_OR_RETURN(std::vector<CompromiseAlert> alerts,
                     queries_.Alerts(since));
    std::vector<std::pair<std::string, CompromiseAlert>> keyed;
    for (CompromiseAlert& a : alerts) {
      std::string key = Desc64(a.id);
      keyed.emplace_back(std::move(key), std::move(a));
    }
    for (const CompromiseAlert& a :
         TakePage(std::move(keyed), page, fingerprint,
                  response->mutable_next_page_token())) {
      *response->add_alerts() = AlertToProto(a);
    }
    return absl::OkStatus();
  };
  return Done("ListAlerts", run());
}

grpc::Status AdminService::WatchAlerts(
    grpc::ServerContext* context, const v1::WatchAlertsRequest* request,
    grpc::ServerWriter<v1::WatchAlertsResponse>* writer) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "WatchAlerts");
  if (!who.ok()) {
    return Done("WatchAlerts", who.status());
  }
  absl::StatusOr<std::unique_ptr<AlertsHub::Watch>> watch =
      alerts_.Subscribe(request->after_alert_id());
  if (!watch.ok()) {
    return Done("WatchAlerts", watch.status());
  }
  watchers_gauge_.Add(1);
  // The initial metadata tells the client the watch is registered: every
  // alert raised after it arrives is delivered.
  writer->SendInitialMetadata();
  absl::Status status;
  while (true) {
    absl::StatusOr<std::vector<CompromiseAlert>> alerts =
        (*watch)->Next([context] { return context->IsCancelled(); });
    if (!alerts.ok()) {
      status = alerts.status();
      break;
    }
    bool written = true;
    for (const CompromiseAlert& a : *alerts) {
      v1::WatchAlertsResponse out;
      *out.mutable_alert() = AlertToProto(a);
      if (!writer->Write(out)) {
        written = false;
        break;
      }
    }
    if (!written) {
      status = absl::CancelledError("client went away");
      break;
    }
  }
  watch->reset();
  watchers_gauge_.Add(-1);
  return Done("WatchAlerts", status);
}

// --- Report ----------------------------------------------------------------

grpc::Status AdminService::Report(grpc::ServerContext* context,
                                  const v1::ReportRequest* request,
                                  v1::ReportResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "Report");
  if (!who.ok()) {
    return Done("Report", who.status());
  }
  const auto run = [&]() -> absl::Status {
    absl::Duration since = kDay;
    if (request->has_since()) {
      ASSIGN_OR_RETURN(
          since, DurationField("since", request->since(), kMinute, 90 * kDay));
    }
    if (request->top_n() > 1000) {
      return absl::InvalidArgumentError(
          absl::StrFormat("top_n: %d is above 1000", request->top_n()));
    }
    const size_t top_n = request->top_n() == 0 ? 20 : request->top_n();
    ASSIGN_OR_RETURN(server::Report r, queries_.BuildReport(since, top_n));
    SetTime(response->mutable_period_start(), r.period_start);
    SetTime(response->mutable_period_end(), r.period_end);
    for (const Offender& o : r.top_offenders) {
      v1::Offender* out = response->add_top_offenders();
      out->set_address(o.address.ToString());
      out->set_events(o.events);
      out->set_peak_score(o.peak_score);
      out->set_distinct_servers(o.distinct_servers);
      out->set_distinct_users(o.distinct_users);
      out->set_banned(o.banned);
    }
    for (const BanView& b : r.new_bans) {
      *response->add_new_bans() = BanToProto(b);
    }
    response->set_new_bans_total(r.new_bans_total);
    for (const AccountView& a : r.targeted_accounts) {
      *response->add_targeted_accounts() = AccountToProto(a, since);
    }
    for (const CompromiseAlert& a : r.compromise_alerts) {
      *response->add_compromise_alerts() = AlertToProto(a);
    }
    for (const server::ProtocolCount& p : r.per_protocol) {
      v1::ProtocolCount* out = response->add_per_protocol();
      out->set_protocol(ToProto(p.protocol));
      out->set_auth_failures(p.auth_failures);
      out->set_lockouts(p.lockouts);
      out->set_total(p.total);
    }
    response->set_events_total(r.events_total);
    return absl::OkStatus();
  };
  return Done("Report", run());
}

// --- Export / import -------------------------------------------------------

grpc::Status AdminService::Export(grpc::ServerContext* context,
                                  const v1::ExportRequest* request,
                                  grpc::ServerWriter<v1::ExportChunk>* writer) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "Export");
  if (!who.ok()) {
    return Done("Export", who.status());
  }
  const auto run = [&]() -> absl::Status {
    server::ExportFormat format;
    switch (request->format()) {
      case v1::EXPORT_FORMAT_PLAIN:
        format = server::ExportFormat::kPlain;
        break;
      case v1::EXPORT_FORMAT_NFT:
        format = server::ExportFormat::kNft;
        break;
      case v1::EXPORT_FORMAT_NETSH:
        format = server::ExportFormat::kNetsh;
        break;
      case v1::EXPORT_FORMAT_CSV:
        format = server::ExportFormat::kCsv;
        break;
      default:
        return absl::InvalidArgumentError(
            "format: one of PLAIN, NFT, NETSH or CSV is required");
    }
    const ExportSnapshot snapshot = queries_.Snapshot();
    const std::vector<std::string> chunks =
        RenderExport(format, snapshot, clock_.Now(),
                     std::min(options_.export_chunk_bytes,
                              static_cast<size_t>(v1::kMaxExportChunkBytes)));
    for (size_t i = 0; i < chunks.size(); ++i) {
      v1::ExportChunk chunk;
      chunk.set_data(chunks[i]);
      chunk.set_revision(snapshot.revision);
      chunk.set_chunk_index(static_cast<uint32_t>(i));
      if (i + 1 == chunks.size()) {
        chunk.set_final_chunk(true);
        chunk.set_entry_count(snapshot.bans.size());
      }
      if (!writer->Write(chunk)) {
        return absl::CancelledError("client went away");
      }
    }
    return absl::OkStatus();
  };
  return Done("Export", run());
}

grpc::Status AdminService::Import(grpc::ServerContext* context,
                                  const v1::ImportRequest* request,
                                  v1::ImportResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kOperator, "Import");
  if (!who.ok()) {
    return Done("Import", who.status());
  }
  const auto run = [&]() -> absl::Status {
    if (request->text().size() > static_cast<size_t>(v1::kMaxImportTextBytes)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "text: %d bytes, at most %d (split the list into several imports)",
          request->text().size(), v1::kMaxImportTextBytes));
    }
    server::ImportFormat format;
    switch (request->format()) {
      case v1::IMPORT_FORMAT_PLAIN:
        format = server::ImportFormat::kPlain;
        break;
      case v1::IMPORT_FORMAT_CSV:
        format = server::ImportFormat::kCsv;
        break;
      default:
        return absl::InvalidArgumentError(
            "format: one of PLAIN or CSV is required");
    }
    ImportDefaults defaults;
    switch (request->lifetime_case()) {
      case v1::ImportRequest::kDuration: {
        defaults.has_lifetime = true;
        ASSIGN_OR_RETURN(defaults.duration,
                         DurationField("duration", request->duration(),
                                       absl::Seconds(1), kMaxBanDuration));
        break;
      }
      case v1::ImportRequest::kPermanent:
        if (!request->permanent()) {
          return absl::InvalidArgumentError(
              "permanent: must be true when set (or give a duration)");
        }
        defaults.has_lifetime = true;
        break;
      default:
        if (format == server::ImportFormat::kPlain) {
          return absl::InvalidArgumentError(
              "lifetime: duration or permanent is required for PLAIN");
        }
    }
    RETURN_IF_ERROR(TextField("reason", request->reason(), /*required=*/true));
    RETURN_IF_ERROR(ScopeField("scope", request->scope()));
    defaults.reason = request->reason();
    ASSIGN_OR_RETURN(
        std::vector<ImportLine> lines,
        ParseImport(format, request->text(), defaults, clock_.Now()));
    ASSIGN_OR_RETURN(ImportSummary summary,
                     queries_.ApplyImport(std::move(lines), request->dry_run(),
                                          who->actor, AuditPeer(*context)));
    size_t reported = 0;
    for (const ImportLine& l : summary.lines) {
      const bool ok = l.outcome == ImportOutcome::kAdded ||
                      l.outcome == ImportOutcome::kUpdated;
      if ((ok && !request->report_all_lines()) ||
          reported >= options_.max_import_results) {
        continue;
      }
      ++reported;
      v1::ImportLineResult* out = response->add_results();
      out->set_line_number(l.line_number);
      switch (l.outcome) {
        case ImportOutcome::kAdded:
          out->set_outcome(v1::IMPORT_LINE_OUTCOME_ADDED);
          break;
        case ImportOutcome::kUpdated:
          out->set_outcome(v1::IMPORT_LINE_OUTCOME_UPDATED);
          break;
        case ImportOutcome::kSkipped:
          out->set_outcome(v1::IMPORT_LINE_OUTCOME_SKIPPED);
          break;
        case ImportOutcome::kError:
          out->set_outcome(v1::IMPORT_LINE_OUTCOME_ERROR);
          break;
      }
      out->set_message(l.message);
      out->set_ban_id(l.ban_id);
    }
    response->set_added(summary.added);
    response->set_updated(summary.updated);
    response->set_skipped(summary.skipped);
    response->set_errors(summary.errors);
    response->set_revision(summary.revision);
    return absl::OkStatus();
  };
  return Done("Import", run());
}

// --- Audit -----------------------------------------------------------------

grpc::Status AdminService::ListAudit(grpc::ServerContext* context,
                                     const v1::ListAuditRequest* request,
                                     v1::ListAuditResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kReadOnly, "ListAudit");
  if (!who.ok()) {
    return Done("ListAudit", who.status());
  }
  const auto run = [&]() -> absl::Status {
    absl::Time since = absl::UnixEpoch();
    if (request->has_since()) {
      ASSIGN_OR_RETURN(since, TimeField("since", request->since()));
    }
    if (request->actor().size() > kMaxFilterText) {
      return absl::InvalidArgumentError("actor: too long");
    }
    if (request->action().size() > kMaxFilterText) {
      return absl::InvalidArgumentError("action: too long");
    }
    const std::string fingerprint =
        absl::StrFormat("audit|%d|%s|%s", absl::ToUnixMicros(since),
                        Hex(request->actor()), Hex(request->action()));
    ASSIGN_OR_RETURN(Page page, PageField(request->page_size(),
                                          request->page_token(), fingerprint));
    ASSIGN_OR_RETURN(
        std::vector<AuditRecord> records,
        queries_.Audit(since, request->actor(), request->action()));
    std::vector<std::pair<std::string, AuditRecord>> keyed;
    for (AuditRecord& r : records) {
      std::string key = Desc64(r.id);
      keyed.emplace_back(std::move(key), std::move(r));
    }
    for (const AuditRecord& r : TakePage(std::move(keyed), page, fingerprint,
                                         response->mutable_next_page_token())) {
      v1::AuditRecord* out = response->add_records();
      out->set_id(r.id);
      SetTime(out->mutable_at(), r.time);
      out->set_actor(r.actor);
      out->set_action(r.action);
      out->set_target(r.target);
      out->set_before_json(r.before);
      out->set_after_json(r.after);
      out->set_reason(AdminQueries::AuditReason(r));
      out->set_peer(r.peer);
    }
    return absl::OkStatus();
  };
  return Done("ListAudit", run());
}

// --- Enrollment (later) ----------------------------------------------------

namespace {
absl::Status NoAgentIdentity() {
  return absl::FailedPreconditionError(
      "agent enrollment needs mutual TLS: this server runs --insecure "
      "(docs/security.md)");
}
}  // namespace

grpc::Status AdminService::EnrollAgent(grpc::ServerContext* context,
                                       const v1::EnrollAgentRequest* request,
                                       v1::EnrollAgentResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kAdmin, "EnrollAgent");
  if (!who.ok()) {
    return Done("EnrollAgent", who.status());
  }
  EnrollmentManager* enrollment = nullptr;
  {
    absl::MutexLock lock(&identity_mu_);
    enrollment = enrollment_;
  }
  if (enrollment == nullptr) {
    return Done("EnrollAgent", NoAgentIdentity());
  }
  std::optional<absl::Duration> ttl;
  if (request->has_token_ttl()) {
    ttl = absl::Seconds(request->token_ttl().seconds()) +
          absl::Nanoseconds(request->token_ttl().nanos());
  }
  absl::StatusOr<IssuedToken> token = enrollment->IssueToken(
      request->agent_id(), request->site(), ttl, request->reenroll(),
      who->actor, AuditPeer(*context));
  if (!token.ok()) {
    return Done("EnrollAgent", token.status());
  }
  response->set_token(token->token);
  SetTime(response->mutable_expires_at(), token->expires_at);
  return Done("EnrollAgent", absl::OkStatus());
}

grpc::Status AdminService::RevokeAgent(grpc::ServerContext* context,
                                       const v1::RevokeAgentRequest* request,
                                       v1::RevokeAgentResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kAdmin, "RevokeAgent");
  if (!who.ok()) {
    return Done("RevokeAgent", who.status());
  }
  EnrollmentManager* enrollment = nullptr;
  std::function<bool(const std::string&)> end_agent_stream;
  {
    absl::MutexLock lock(&identity_mu_);
    enrollment = enrollment_;
    end_agent_stream = end_agent_stream_;
  }
  if (enrollment == nullptr) {
    return Done("RevokeAgent", NoAgentIdentity());
  }
  absl::StatusOr<absl::Time> at = enrollment->Revoke(
      request->agent_id(), request->reason(), who->actor, AuditPeer(*context));
  if (!at.ok()) {
    return Done("RevokeAgent", at.status());
  }
  SetTime(response->mutable_revoked_at(), *at);
  response->set_was_connected(end_agent_stream != nullptr &&
                              end_agent_stream(request->agent_id()));
  // A revoked key's addresses protect nothing (the stream is ended first,
  // so its Hello cannot add them back).
  if (absl::Status s = queries_.ForgetAgentAddresses(request->agent_id());
      !s.ok()) {
    return Done("RevokeAgent", s);
  }
  return Done("RevokeAgent", absl::OkStatus());
}

grpc::Status AdminService::SetAgentProtection(
    grpc::ServerContext* context, const v1::SetAgentProtectionRequest* request,
    v1::SetAgentProtectionResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kAdmin, "SetAgentProtection");
  if (!who.ok()) {
    return Done("SetAgentProtection", who.status());
  }
  const auto run = [&]() -> absl::Status {
    if (request->agent_id().empty() || request->agent_id().size() > 128) {
      return absl::InvalidArgumentError("agent_id: 1-128 bytes required");
    }
    if (request->addresses().empty() || request->addresses().size() > 64) {
      return absl::InvalidArgumentError("addresses: 1-64 required");
    }
    std::vector<IpAddress> addresses;
    for (int i = 0; i < request->addresses_size(); ++i) {
      ASSIGN_OR_RETURN(IpAddress ip,
                       AddressField(absl::StrFormat("addresses[%d]", i),
                                    request->addresses(i)));
      addresses.push_back(ip);
    }
    ASSIGN_OR_RETURN(AgentAddressView v,
                     queries_.SetAgentProtection(
                         request->agent_id(), addresses, !request->unprotect(),
                         who->actor, AuditPeer(*context)));
    for (const IpAddress& ip : v.Protecting()) {
      response->add_protected_addresses(ip.ToString());
    }
    for (const IpAddress& ip : v.Unapproved()) {
      response->add_unapproved_addresses(ip.ToString());
    }
    return absl::OkStatus();
  };
  return Done("SetAgentProtection", run());
}

// --- Policy dry run --------------------------------------------------------

grpc::Status AdminService::DryRunPolicy(grpc::ServerContext* context,
                                        const v1::DryRunPolicyRequest* request,
                                        v1::DryRunPolicyResponse* response) {
  const absl::StatusOr<Principal> who =
      Authorize(*context, AdminRole::kOperator, "DryRunPolicy");
  if (!who.ok()) {
    return Done("DryRunPolicy", who.status());
  }
  const auto run = [&]() -> absl::Status {
    const absl::Time now = clock_.Now();
    if (!request->has_start()) {
      return absl::InvalidArgumentError("start: required");
    }
    ASSIGN_OR_RETURN(absl::Time start, TimeField("start", request->start()));
    absl::Time end = now;
    if (request->has_end()) {
      ASSIGN_OR_RETURN(end, TimeField("end", request->end()));
    }
    if (end <= start) {
      return absl::InvalidArgumentError("end: must be after start");
    }
    if (end - start > 30 * kDay) {
      return absl::InvalidArgumentError(
          "end: the range may span at most 30 days");
    }
    if (request->max_results() > 10000) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "max_results: %d is above 10000", request->max_results()));
    }
    const size_t max_results =
        request->max_results() == 0 ? 1000 : request->max_results();
    ASSIGN_OR_RETURN(
        Policy candidate,
        CandidatePolicy(request->policy(), queries_.options().policy));
    ASSIGN_OR_RETURN(ReplayReport r, queries_.DryRun(candidate, start, end));
    for (size_t i = 0; i < r.only_candidate.size() && i < max_results; ++i) {
      DryRunBanToProto(r.only_candidate[i], response->add_candidate_only());
    }
    for (size_t i = 0; i < r.only_live.size() && i < max_results; ++i) {
      DryRunBanToProto(r.only_live[i], response->add_live_only());
    }
    response->set_both(r.both);
    response->set_candidate_only_total(r.only_candidate.size());
    response->set_live_only_total(r.only_live.size());
    response->set_events_replayed(r.events);
    *response->mutable_effective_policy() = PolicyToProto(candidate);
    return absl::OkStatus();
  };
  return Done("DryRunPolicy", run());
}

}  // namespace rampart::server
