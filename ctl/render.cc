#include "ctl/render.h"

#include <string>

#include "absl/strings/str_format.h"
#include "ctl/duration.h"
#include "ctl/text.h"
#include "google/protobuf/util/json_util.h"

namespace rampart::ctl {
namespace {

Json Strings(const google::protobuf::RepeatedPtrField<std::string>& items) {
  Json list = Json::array();
  for (const std::string& s : items) {
    list.push_back(BytesToUtf8(s));
  }
  return list;
}

// A JSON document stored in a string field: parsed, null if empty, or the
// raw text if it is not JSON.
Json EmbeddedJson(const std::string& text) {
  if (text.empty()) {
    return nullptr;
  }
  Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return BytesToUtf8(text);
  }
  return parsed;
}

Json BanExplanationToJson(const v1::BanExplanation& e) {
  Json contributions = Json::array();
  for (const v1::ScoreContribution& c : e.contributions()) {
    contributions.push_back({{"kind", EnumName(c.kind())},
                             {"protocol", EnumName(c.protocol())},
                             {"events", c.events()},
                             {"points", c.points()}});
  }
  Json evidence = Json::array();
  for (const v1::AuthEventRecord& r : e.evidence()) {
    evidence.push_back(EventRecordToJson(r));
  }
  return {{"summary", BytesToUtf8(e.summary())},
          {"score", e.score()},
          {"threshold", e.threshold()},
          {"contributions", std::move(contributions)},
          {"distinct_servers", e.distinct_servers()},
          {"cross_server_multiplier", e.cross_server_multiplier()},
          {"computed_duration_seconds", DurationSeconds(e.computed_duration())},
          {"aggregated_members", Strings(e.aggregated_members())},
          {"evidence", std::move(evidence)}};
}

}  // namespace

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

std::string FormatTimestamp(const google::protobuf::Timestamp& t) {
  return FormatUtc(ToTime(t));
}

std::string FormatRelative(absl::Time t, absl::Time now) {
  const absl::Duration d = t - now;
  if (absl::AbsDuration(d) < absl::Seconds(1)) {
    return "now";
  }
  // Whole seconds read better than "1m30s250ms". Rounded to the nearest
  // second, not truncated: a ban made with --for 2h and printed a few
  // milliseconds later is "in 2h", not "in 1h59m" (the two largest units
  // are shown, so truncating 1h59m59.99s would lose almost a minute).
  const absl::Duration rounded = absl::Trunc(
      absl::AbsDuration(d) + absl::Milliseconds(500), absl::Seconds(1));
  return d > absl::ZeroDuration() ? "in " + FormatDurationShort(rounded)
                                  : FormatDurationShort(rounded) + " ago";
}

std::string FormatScore(double value) { return absl::StrFormat("%.2f", value); }

std::string EnumName(const google::protobuf::EnumDescriptor* descriptor,
                     int value) {
  const google::protobuf::EnumValueDescriptor* v =
      descriptor->FindValueByNumber(value);
  if (v == nullptr) {
    return std::to_string(value);
  }
  std::string name = v->name();
  const google::protobuf::EnumValueDescriptor* zero =
      descriptor->FindValueByNumber(0);
  if (zero != nullptr && zero->name().ends_with("UNSPECIFIED")) {
    const std::string& z = zero->name();
    const std::string prefix = z.substr(0, z.size() - 11);
    if (name.starts_with(prefix)) {
      name = name.substr(prefix.size());
    }
  }
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return name;
}

Json JsonTime(bool present, const google::protobuf::Timestamp& t) {
  if (!present) {
    return nullptr;
  }
  return FormatTimestamp(t);
}

int64_t DurationSeconds(const google::protobuf::Duration& d) {
  return d.seconds();
}

Json BanToJson(const v1::BanEntry& ban) {
  return {{"id", ban.id()},
          {"prefix", ban.prefix()},
          {"created_at", JsonTime(ban.has_created_at(), ban.created_at())},
          {"expires_at", JsonTime(ban.has_expires_at(), ban.expires_at())},
          {"reason", BytesToUtf8(ban.reason())},
          {"origin", EnumName(ban.origin())},
          {"scope", EnumName(ban.scope())},
          {"escalation_level", ban.escalation_level()},
          {"revision", ban.revision()}};
}

Json AllowToJson(const v1::AllowEntry& entry) {
  return {{"id", entry.id()},
          {"prefix", entry.prefix()},
          {"created_at", JsonTime(entry.has_created_at(), entry.created_at())},
          {"expires_at", JsonTime(entry.has_expires_at(), entry.expires_at())},
          {"comment", BytesToUtf8(entry.comment())},
          {"created_by", BytesToUtf8(entry.created_by())}};
}

Json EventRecordToJson(const v1::AuthEventRecord& record) {
  const v1::AuthEvent& e = record.event();
  return {
      {"agent_id", record.agent_id()},
      {"time", JsonTime(e.has_time(), e.time())},
      {"observed_at", JsonTime(e.has_observed_at(), e.observed_at())},
      {"received_at", JsonTime(record.has_received_at(), record.received_at())},
      {"kind", EnumName(e.kind())},
      {"protocol", EnumName(e.protocol())},
      {"ip", e.ip()},
      {"user", BytesToUtf8(e.user())},
      {"log_time_text", BytesToUtf8(e.log_time_text())}};
}

Json AgentToJson(const v1::AgentInfo& a) {
  return {{"agent_id", a.agent_id()},
          {"site", a.site()},
          {"hostname", BytesToUtf8(a.hostname())},
          {"agent_version", BytesToUtf8(a.agent_version())},
          {"connected", a.connected()},
          {"connected_since",
           JsonTime(a.has_connected_since(), a.connected_since())},
          {"last_seen", JsonTime(a.has_last_seen(), a.last_seen())},
          {"peer_address", a.peer_address()},
          {"host_addresses", Strings(a.host_addresses())},
          {"protected_addresses", Strings(a.protected_addresses())},
          {"unapproved_addresses", Strings(a.unapproved_addresses())},
          {"enforced_revision", a.enforced_revision()},
          {"revision_lag", a.revision_lag()},
          {"time_lag_seconds", DurationSeconds(a.time_lag())},
          {"apply_errors", a.apply_errors()},
          {"spool_depth_batches", a.spool_depth_batches()},
          {"spool_dropped_batches", a.spool_dropped_batches()},
          {"tailer_lag_seconds", DurationSeconds(a.tailer_lag())},
          {"clock_skew_seconds", DurationSeconds(a.clock_skew())},
          {"firewall_backend", BytesToUtf8(a.firewall_backend())},
          {"local_fallback_bans", a.local_fallback_bans()},
          {"enrollment", EnumName(a.enrollment())},
          {"durable_through", a.durable_through()}};
}

Json AccountToJson(const v1::AccountInfo& a) {
  Json protocols = Json::array();
  for (int p : a.protocols()) {
    protocols.push_back(EnumName(static_cast<v1::Protocol>(p)));
  }
  Json evidence = Json::array();
  for (const v1::AuthEventRecord& r : a.evidence()) {
    evidence.push_back(EventRecordToJson(r));
  }
  return {{"user", BytesToUtf8(a.user())},
          {"distinct_ips", a.distinct_ips()},
          {"distinct_servers", a.distinct_servers()},
          {"failures", a.failures()},
          {"locked_out", a.locked_out()},
          {"compromise_suspected", a.compromise_suspected()},
          {"first_seen", JsonTime(a.has_first_seen(), a.first_seen())},
          {"last_seen", JsonTime(a.has_last_seen(), a.last_seen())},
          {"window_seconds", DurationSeconds(a.window())},
          {"protocols", std::move(protocols)},
          {"agent_ids", Strings(a.agent_ids())},
          {"sample_ips", Strings(a.sample_ips())},
          {"evidence", std::move(evidence)}};
}

Json AlertToJson(const v1::Alert& a) {
  Json evidence = Json::array();
  for (const v1::AuthEventRecord& r : a.evidence()) {
    evidence.push_back(EventRecordToJson(r));
  }
  return {{"id", a.id()},
          {"kind", EnumName(a.kind())},
          {"raised_at", JsonTime(a.has_raised_at(), a.raised_at())},
          {"user", BytesToUtf8(a.user())},
          {"ip", a.ip()},
          {"agent_id", a.agent_id()},
          {"summary", BytesToUtf8(a.summary())},
          {"evidence", std::move(evidence)}};
}

Json AuditToJson(const v1::AuditRecord& r) {
  return {{"id", r.id()},
          {"at", JsonTime(r.has_at(), r.at())},
          {"actor", BytesToUtf8(r.actor())},
          {"action", BytesToUtf8(r.action())},
          {"target", BytesToUtf8(r.target())},
          {"reason", BytesToUtf8(r.reason())},
          {"peer", BytesToUtf8(r.peer())},
          {"before", EmbeddedJson(r.before_json())},
          {"after", EmbeddedJson(r.after_json())}};
}

Json StatusToJson(const v1::StatusResponse& s) {
  Json policy = nullptr;
  if (s.has_policy()) {
    std::string text;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    if (google::protobuf::util::MessageToJsonString(s.policy(), &text, options)
            .ok()) {
      policy = Json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (policy.is_discarded()) {
        policy = nullptr;
      }
    }
  }
  const v1::StoreHealth& store = s.store();
  return {{"server_version", BytesToUtf8(s.server_version())},
          {"server_id", BytesToUtf8(s.server_id())},
          {"started_at", JsonTime(s.has_started_at(), s.started_at())},
          {"uptime_seconds", DurationSeconds(s.uptime())},
          {"ban_list_epoch", s.ban_list_epoch()},
          {"current_revision", s.current_revision()},
          {"journal_oldest_revision", s.journal_oldest_revision()},
          {"active_bans", s.active_bans()},
          {"permanent_bans", s.permanent_bans()},
          {"allow_entries", s.allow_entries()},
          {"agents",
           {{"total", s.agents_total()},
            {"connected", s.agents_connected()},
            {"current", s.agents_current()}}},
          {"events_last_hour", s.events_last_hour()},
          {"correlator_queue_depth", s.correlator_queue_depth()},
          {"open_alerts", s.open_alerts()},
          {"store",
           {{"state", EnumName(store.state())},
            {"message", BytesToUtf8(store.message())},
            {"last_commit_at",
             JsonTime(store.has_last_commit_at(), store.last_commit_at())},
            {"pending_writes", store.pending_writes()}}},
          {"policy", std::move(policy)}};
}

Json GetBanToJson(const v1::GetBanResponse& r) {
  Json agents = Json::array();
  for (const v1::AgentEnforcement& e : r.enforcement()) {
    agents.push_back({{"agent_id", e.agent_id()},
                      {"site", e.site()},
                      {"enforced", e.enforced()},
                      {"enforced_revision", e.enforced_revision()},
                      {"connected", e.connected()},
                      {"apply_error", BytesToUtf8(e.apply_error())}});
  }
  Json history = Json::array();
  for (const v1::BanHistoryEvent& h : r.history()) {
    history.push_back(
        {{"at", JsonTime(h.has_at(), h.at())},
         {"action", EnumName(h.action())},
         {"actor", BytesToUtf8(h.actor())},
         {"reason", BytesToUtf8(h.reason())},
         {"revision", h.revision()},
         {"expires_at", JsonTime(h.has_expires_at(), h.expires_at())}});
  }
  return {{"ban", BanToJson(r.ban())},
          {"active", r.active()},
          {"explanation", r.has_explanation()
                              ? BanExplanationToJson(r.explanation())
                              : Json(nullptr)},
          {"history", std::move(history)},
          {"enforcement",
           {{"agents_enforcing", r.agents_enforcing()},
            {"agents_total", r.agents_total()},
            {"agents", std::move(agents)}}},
          {"local_agent_id", r.local_agent_id()}};
}

Json LookupIpToJson(const v1::LookupIpResponse& r) {
  Json bans = Json::array();
  for (const v1::BanEntry& b : r.bans()) {
    bans.push_back(BanToJson(b));
  }
  Json events = Json::array();
  for (const v1::AuthEventRecord& e : r.recent_events()) {
    events.push_back(EventRecordToJson(e));
  }
  Json servers = Json::array();
  for (const v1::AgentHitCount& h : r.agents_hit()) {
    servers.push_back({{"agent_id", h.agent_id()}, {"events", h.events()}});
  }
  Json users = Json::array();
  for (const v1::UserAttemptCount& u : r.users_tried()) {
    users.push_back(
        {{"user", BytesToUtf8(u.user())}, {"attempts", u.attempts()}});
  }
  Json prefixes = Json::array();
  for (const v1::PrefixScore& p : r.prefix_scores()) {
    prefixes.push_back({{"prefix", p.prefix()},
                        {"score", p.score()},
                        {"members", p.members()}});
  }
  return {{"address", r.address()},
          {"score", r.score()},
          {"ban_threshold", r.ban_threshold()},
          {"allow", r.has_allow() ? AllowToJson(r.allow()) : Json(nullptr)},
          {"self_address", r.self_address()},
          {"active_ban",
           r.has_active_ban() ? BanToJson(r.active_ban()) : Json(nullptr)},
          {"bans", std::move(bans)},
          {"servers_hit", std::move(servers)},
          {"users_tried", std::move(users)},
          {"prefix_scores", std::move(prefixes)},
          {"recent_events", std::move(events)},
          {"events_truncated", r.events_truncated()}};
}

Json ReportToJson(const v1::ReportResponse& r) {
  Json offenders = Json::array();
  for (const v1::Offender& o : r.top_offenders()) {
    offenders.push_back({{"address", o.address()},
                         {"events", o.events()},
                         {"peak_score", o.peak_score()},
                         {"distinct_servers", o.distinct_servers()},
                         {"distinct_users", o.distinct_users()},
                         {"banned", o.banned()}});
  }
  Json bans = Json::array();
  for (const v1::BanEntry& b : r.new_bans()) {
    bans.push_back(BanToJson(b));
  }
  Json accounts = Json::array();
  for (const v1::AccountInfo& a : r.targeted_accounts()) {
    accounts.push_back(AccountToJson(a));
  }
  Json alerts = Json::array();
  for (const v1::Alert& a : r.compromise_alerts()) {
    alerts.push_back(AlertToJson(a));
  }
  Json protocols = Json::array();
  for (const v1::ProtocolCount& p : r.per_protocol()) {
    protocols.push_back({{"protocol", EnumName(p.protocol())},
                         {"auth_failures", p.auth_failures()},
                         {"lockouts", p.lockouts()},
                         {"total", p.total()}});
  }
  return {{"period_start", JsonTime(r.has_period_start(), r.period_start())},
          {"period_end", JsonTime(r.has_period_end(), r.period_end())},
          {"events_total", r.events_total()},
          {"per_protocol", std::move(protocols)},
          {"top_offenders", std::move(offenders)},
          {"new_bans_total", r.new_bans_total()},
          {"new_bans", std::move(bans)},
          {"targeted_accounts", std::move(accounts)},
          {"compromise_alerts", std::move(alerts)}};
}

Json ImportToJson(const v1::ImportResponse& r, bool dry_run) {
  Json results = Json::array();
  for (const v1::ImportLineResult& l : r.results()) {
    results.push_back({{"line", l.line_number()},
                       {"outcome", EnumName(l.outcome())},
                       {"message", BytesToUtf8(l.message())},
                       {"ban_id", l.ban_id()}});
  }
  return {{"dry_run", dry_run},           {"added", r.added()},
          {"updated", r.updated()},       {"skipped", r.skipped()},
          {"errors", r.errors()},         {"revision", r.revision()},
          {"results", std::move(results)}};
}

std::string ExpiryCell(bool has_expiry, const google::protobuf::Timestamp& t,
                       absl::Time now) {
  if (!has_expiry) {
    return "permanent";
  }
  const absl::Time at = ToTime(t);
  if (at <= now) {
    return "expired " + FormatRelative(at, now);
  }
  return FormatRelative(at, now);
}

std::string ExpiryCell(const v1::BanEntry& ban, absl::Time now) {
  return ExpiryCell(ban.has_expires_at(), ban.expires_at(), now);
}

std::string LagCell(const v1::AgentInfo& agent) {
  if (agent.revision_lag() == 0) {
    return "-";
  }
  return absl::StrFormat("%d rev, %s", agent.revision_lag(),
                         FormatDurationShort(ToDuration(agent.time_lag())));
}

}  // namespace rampart::ctl
