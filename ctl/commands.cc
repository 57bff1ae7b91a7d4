#include "ctl/commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "ctl/duration.h"
#include "ctl/exit_codes.h"
#include "ctl/render.h"
#include "ctl/text.h"
#include "grpcpp/support/sync_stream.h"
#include "rampart/v1/limits.h"

namespace rampart::ctl {
namespace {

using Align = Table::Align;

std::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// Fetches a list RPC page by page into `all` (the first page's response with
// the items of later pages appended) until `limit` items (0 = no limit) or
// the last page. Sets *truncated if items were left on the server.
template <typename Request, typename Response, typename Prepare, typename Call,
          typename Items>
grpc::Status FetchPages(Request request, size_t limit, const Prepare& prepare,
                        const Call& call, const Items& items, Response* all,
                        bool* truncated) {
  *truncated = false;
  bool first = true;
  while (true) {
    const size_t have = first ? 0 : static_cast<size_t>(items(all)->size());
    const size_t room = limit == 0 ? v1::kMaxPageSize : limit - have;
    request.set_page_size(static_cast<int32_t>(
        std::min<size_t>(room, static_cast<size_t>(v1::kMaxPageSize))));
    Response page;
    grpc::ClientContext context;
    prepare(&context);
    if (grpc::Status s = call(&context, request, &page); !s.ok()) {
      return s;
    }
    std::string token = page.next_page_token();
    if (first) {
      *all = std::move(page);
      first = false;
    } else {
      for (auto& item : *items(&page)) {
        *items(all)->Add() = std::move(item);
      }
    }
    auto* got = items(all);
    if (limit != 0 && static_cast<size_t>(got->size()) >= limit) {
      if (static_cast<size_t>(got->size()) > limit) {
        got->DeleteSubrange(static_cast<int>(limit),
                            got->size() - static_cast<int>(limit));
        *truncated = true;
      }
      *truncated = *truncated || !token.empty();
      break;
    }
    if (token.empty()) {
      break;
    }
    if (token == request.page_token()) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          "the server returned the same page token twice");
    }
    request.set_page_token(std::move(token));
  }
  all->clear_next_page_token();
  return grpc::Status::OK;
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return absl::StrFormat("%d %s", n, n == 1 ? one : many);
}

std::string TimeCell(bool present, const google::protobuf::Timestamp& t) {
  return present ? FormatTimestamp(t) : "-";
}

std::string AgoCell(bool present, const google::protobuf::Timestamp& t,
                    absl::Time now) {
  return present ? FormatRelative(ToTime(t), now) : "-";
}

Table BanTable() {
  return Table({{"ID", Align::kRight},
                {"PREFIX"},
                {"ORIGIN"},
                {"SCOPE"},
                {"LEVEL", Align::kRight},
                {"CREATED"},
                {"EXPIRES"},
                {"REASON"}});
}

void AddBanRow(Table& table, const v1::BanEntry& b, absl::Time now) {
  table.AddRow({std::to_string(b.id()), b.prefix(), EnumName(b.origin()),
                EnumName(b.scope()), std::to_string(b.escalation_level()),
                TimeCell(b.has_created_at(), b.created_at()),
                ExpiryCell(b, now), b.reason()});
}

Table EventTable() {
  return Table({{"TIME"}, {"AGENT"}, {"KIND"}, {"PROTOCOL"}, {"IP"}, {"USER"}});
}

void AddEventRow(Table& table, const v1::AuthEventRecord& r) {
  const v1::AuthEvent& e = r.event();
  const bool has_time = e.has_time() || e.has_observed_at();
  table.AddRow({TimeCell(has_time, e.has_time() ? e.time() : e.observed_at()),
                r.agent_id(), EnumName(e.kind()), EnumName(e.protocol()),
                e.ip().empty() ? "-" : e.ip(), e.user()});
}

Table AlertTable() {
  return Table({{"ID", Align::kRight},
                {"RAISED"},
                {"USER"},
                {"IP"},
                {"AGENT"},
                {"SUMMARY"}});
}

void AddAlertRow(Table& table, const v1::Alert& a) {
  table.AddRow({std::to_string(a.id()),
                TimeCell(a.has_raised_at(), a.raised_at()), a.user(), a.ip(),
                a.agent_id(), a.summary()});
}

Table AccountTable() {
  return Table({{"USER"},
                {"IPS", Align::kRight},
                {"SERVERS", Align::kRight},
                {"FAILURES", Align::kRight},
                {"LOCKED"},
                {"ALERT"},
                {"LAST SEEN"},
                {"PROTOCOLS"}});
}

void AddAccountRow(Table& table, const v1::AccountInfo& a, absl::Time now) {
  std::vector<std::string> protocols;
  for (int p : a.protocols()) {
    protocols.push_back(EnumName(static_cast<v1::Protocol>(p)));
  }
  table.AddRow({a.user(), std::to_string(a.distinct_ips()),
                std::to_string(a.distinct_servers()),
                std::to_string(a.failures()), YesNo(a.locked_out()),
                a.compromise_suspected() ? "COMPROMISE?" : "-",
                AgoCell(a.has_last_seen(), a.last_seen(), now),
                absl::StrJoin(protocols, ",")});
}

void Heading(std::ostream& out, std::string_view title) {
  out << '\n' << title << '\n';
}

// Renders a list: the table (or `empty` if there are no rows) or a JSON
// object {"<key>": [...], "truncated": bool} plus `extra` members.
template <typename Item, typename ToJson, typename AddRow>
void RenderList(std::ostream& out, OutputFormat format, std::string_view key,
                const google::protobuf::RepeatedPtrField<Item>& items,
                bool truncated, Table table, std::string_view empty,
                const ToJson& to_json, const AddRow& add_row,
                Json extra = Json::object()) {
  if (format == OutputFormat::kJson) {
    Json list = Json::array();
    for (const Item& item : items) {
      list.push_back(to_json(item));
    }
    Json doc = {{std::string(key), std::move(list)}};
    for (auto& [k, v] : extra.items()) {
      doc[k] = v;
    }
    doc["truncated"] = truncated;
    WriteJson(out, doc);
    return;
  }
  if (items.empty()) {
    out << empty << '\n';
    return;
  }
  for (const Item& item : items) {
    add_row(table, item);
  }
  table.Render(out);
}

// The closing line of a stream of alerts printed as text.
std::string AlertLine(const v1::Alert& a) {
  return SanitizeForTerminal(
      absl::StrFormat("%s  alert %d  user %s from %s on %s: %s",
                      TimeCell(a.has_raised_at(), a.raised_at()), a.id(),
                      a.user(), a.ip().empty() ? "-" : a.ip(),
                      a.agent_id().empty() ? "-" : a.agent_id(), a.summary()));
}

std::string ReportDetailFlags(const v1::AccountInfo& a) {
  std::vector<std::string> flags;
  if (a.locked_out()) {
    flags.push_back("locked_out");
  }
  if (a.compromise_suspected()) {
    flags.push_back("compromise_suspected");
  }
  return absl::StrJoin(flags, ";");
}

// report --csv: one long-format RFC 4180 table (docs/rampartctl.md).
void WriteReportCsv(std::ostream& out, const v1::ReportResponse& r) {
  WriteCsvRow(out, {"section", "rank", "subject", "at", "events", "score",
                    "distinct_ips", "distinct_servers", "distinct_users",
                    "banned", "origin", "expires_at", "ip", "detail"});
  struct Row {
    std::string section, rank, subject, at, events, score, ips, servers, users,
        banned, origin, expires_at, ip, detail;
  };
  const auto write = [&](const Row& row) {
    WriteCsvRow(out, {row.section, row.rank, row.subject, row.at, row.events,
                      row.score, row.ips, row.servers, row.users, row.banned,
                      row.origin, row.expires_at, row.ip, row.detail});
  };
  const auto time = [](bool present, const google::protobuf::Timestamp& t) {
    return present ? FormatTimestamp(t) : std::string();
  };
  write({.section = "summary",
         .subject = "period_start",
         .at = time(r.has_period_start(), r.period_start())});
  write({.section = "summary",
         .subject = "period_end",
         .at = time(r.has_period_end(), r.period_end())});
  write({.section = "summary",
         .subject = "events_total",
         .events = std::to_string(r.events_total())});
  write({.section = "summary",
         .subject = "new_bans_total",
         .events = std::to_string(r.new_bans_total())});
  write({.section = "summary",
         .subject = "compromise_alerts",
         .events = std::to_string(r.compromise_alerts_size())});
  for (const v1::ProtocolCount& p : r.per_protocol()) {
    write({.section = "protocol",
           .subject = EnumName(p.protocol()),
           .events = std::to_string(p.total()),
           .detail = absl::StrFormat("auth_failures=%d;lockouts=%d",
                                     p.auth_failures(), p.lockouts())});
  }
  int rank = 0;
  for (const v1::Offender& o : r.top_offenders()) {
    write({.section = "offender",
           .rank = std::to_string(++rank),
           .subject = CsvText(o.address()),
           .events = std::to_string(o.events()),
           .score = FormatScore(o.peak_score()),
           .servers = std::to_string(o.distinct_servers()),
           .users = std::to_string(o.distinct_users()),
           .banned = o.banned() ? "true" : "false"});
  }
  rank = 0;
  for (const v1::BanEntry& b : r.new_bans()) {
    write({.section = "new_ban",
           .rank = std::to_string(++rank),
           .subject = CsvText(b.prefix()),
           .at = time(b.has_created_at(), b.created_at()),
           .origin = EnumName(b.origin()),
           .expires_at = time(b.has_expires_at(), b.expires_at()),
           .detail = CsvText(b.reason())});
  }
  rank = 0;
  for (const v1::AccountInfo& a : r.targeted_accounts()) {
    write({.section = "account",
           .rank = std::to_string(++rank),
           .subject = CsvText(a.user()),
           .at = time(a.has_last_seen(), a.last_seen()),
           .events = std::to_string(a.failures()),
           .ips = std::to_string(a.distinct_ips()),
           .servers = std::to_string(a.distinct_servers()),
           .detail = ReportDetailFlags(a)});
  }
  rank = 0;
  for (const v1::Alert& a : r.compromise_alerts()) {
    write({.section = "alert",
           .rank = std::to_string(++rank),
           .subject = CsvText(a.user()),
           .at = time(a.has_raised_at(), a.raised_at()),
           .ip = CsvText(a.ip()),
           .detail = CsvText(a.summary())});
  }
}

}  // namespace

AdminCommands::AdminCommands(v1::AdminService::StubInterface& stub,
                             const CommandContext& context, std::ostream& out,
                             std::ostream& err)
    : stub_(stub), context_(context), out_(out), err_(err) {}

void AdminCommands::PrepareContext(grpc::ClientContext* context) const {
  // gRPC deadlines are wall-clock instants; this is transport plumbing, not
  // domain time, so the real clock is right here.
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(context_.timeout));
  AddCredentials(context);
}

void AdminCommands::AddCredentials(grpc::ClientContext* context) const {
  if (!context_.token.empty()) {
    context->AddMetadata("authorization", "Bearer " + context_.token);
  }
}

void AdminCommands::NoteTruncated(bool truncated,
                                  const ListOptions& list) const {
  if (truncated && context_.format == OutputFormat::kTable) {
    err_ << "rampartctl: showing the first " << list.limit
         << "; more exist (use --limit N, or --limit 0 for all)\n";
  }
}

int AdminCommands::ReportRpcError(std::string_view what,
                                  const grpc::Status& status) {
  if (status.ok()) {
    return kExitOk;
  }
  const std::string message = SanitizeForTerminal(status.error_message());
  const grpc::StatusCode code = status.error_code();
  const bool transport = code == grpc::StatusCode::UNAVAILABLE ||
                         code == grpc::StatusCode::DEADLINE_EXCEEDED;
  const bool connected = context_.channel != nullptr &&
                         context_.channel->GetState(/*try_to_connect=*/false) ==
                             GRPC_CHANNEL_READY;
  if (transport && context_.channel != nullptr && !connected) {
    err_ << "rampartctl: cannot reach rampart-server at "
         << SanitizeForTerminal(context_.server) << " (" << message
         << "); is it running? Set the address with --server or "
            "RAMPART_SERVER.\n";
    return kExitUnreachable;
  }
  err_ << "rampartctl: " << what << ": ";
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
      err_ << "server unavailable: " << message
           << " (nothing was changed; try again later)\n";
      return kExitUnreachable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      err_ << "no answer within " << FormatDurationShort(context_.timeout)
           << " (--timeout); a change may or may not have been applied\n";
      return kExitError;
    case grpc::StatusCode::NOT_FOUND:
      err_ << "not found: " << message << '\n';
      return kExitNotFound;
    case grpc::StatusCode::UNAUTHENTICATED:
      err_ << "UNAUTHENTICATED: " << message
           << " (give a token with --token-file, --token or RAMPART_TOKEN; "
              "docs/security.md)\n";
      return kExitDenied;
    case grpc::StatusCode::PERMISSION_DENIED:
      err_ << "PERMISSION_DENIED: " << message << '\n';
      return kExitDenied;
    default:
      err_ << CodeName(code) << ": " << message << '\n';
      return kExitError;
  }
}

int AdminCommands::Status() {
  v1::StatusResponse s;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.Status(&context, v1::StatusRequest(), &s);
      !st.ok()) {
    return ReportRpcError("status", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_, StatusToJson(s));
    return kExitOk;
  }
  const v1::StoreHealth& store = s.store();
  std::string store_text = EnumName(store.state());
  if (!store.message().empty()) {
    store_text += ": " + store.message();
  }
  std::vector<std::string> store_details;
  if (store.has_last_commit_at()) {
    store_details.push_back(
        "last commit " + FormatRelative(ToTime(store.last_commit_at()), Now()));
  }
  store_details.push_back(Plural(store.pending_writes(), "write", "writes") +
                          " pending");
  store_text += " (" + absl::StrJoin(store_details, ", ") + ")";

  Fields f;
  f.Add("Server", absl::StrFormat("rampart-server %s (id %s)",
                                  s.server_version(), s.server_id()));
  f.Add("Started",
        s.has_started_at()
            ? absl::StrFormat("%s (up %s)", FormatTimestamp(s.started_at()),
                              FormatDurationShort(ToDuration(s.uptime())))
            : "-");
  f.Add("Store", store_text);
  f.Add("Ban list",
        absl::StrFormat("revision %d, epoch %d (journal from revision %d)",
                        s.current_revision(), s.ban_list_epoch(),
                        s.journal_oldest_revision()));
  f.Add("Active bans", absl::StrFormat("%d (%d permanent)", s.active_bans(),
                                       s.permanent_bans()));
  f.Add("Allowlist entries", std::to_string(s.allow_entries()));
  f.Add("Agents",
        absl::StrFormat("%d known, %d connected, %d current", s.agents_total(),
                        s.agents_connected(), s.agents_current()));
  f.Add("Events last hour", std::to_string(s.events_last_hour()));
  f.Add("Correlator queue", std::to_string(s.correlator_queue_depth()));
  f.Add("Open alerts", std::to_string(s.open_alerts()));
  if (s.has_policy() && s.policy().has_ban_threshold()) {
    f.Add("Ban threshold", FormatScore(s.policy().ban_threshold()));
  }
  f.Render(out_);
  return kExitOk;
}

int AdminCommands::ListBans(v1::ListBansRequest request,
                            const ListOptions& list) {
  v1::ListBansResponse all;
  bool truncated = false;
  grpc::Status st = FetchPages(
      std::move(request), list.limit,
      [this](grpc::ClientContext* c) { PrepareContext(c); },
      [this](grpc::ClientContext* c, const v1::ListBansRequest& r,
             v1::ListBansResponse* resp) { return stub_.ListBans(c, r, resp); },
      [](v1::ListBansResponse* r) { return r->mutable_bans(); }, &all,
      &truncated);
  if (!st.ok()) {
    return ReportRpcError("bans list", st);
  }
  const absl::Time now = Now();
  RenderList(
      out_, context_.format, "bans", all.bans(), truncated, BanTable(),
      "No bans match.", BanToJson,
      [now](Table& t, const v1::BanEntry& b) { AddBanRow(t, b, now); },
      Json{{"total_size", all.total_size()}});
  NoteTruncated(truncated, list);
  return kExitOk;
}

int AdminCommands::ShowBan(const v1::GetBanRequest& request) {
  v1::GetBanResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.GetBan(&context, request, &r); !st.ok()) {
    return ReportRpcError("bans show", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_, GetBanToJson(r));
    return kExitOk;
  }
  const absl::Time now = Now();
  const v1::BanEntry& b = r.ban();
  out_ << SanitizeForTerminal(
              absl::StrFormat("Ban %d: %s (%s)", b.id(), b.prefix(),
                              r.active() ? "active" : "inactive"))
       << '\n';
  Fields f;
  f.Add("Origin", absl::StrFormat("%s (escalation level %d)",
                                  EnumName(b.origin()), b.escalation_level()));
  f.Add("Scope", EnumName(b.scope()));
  f.Add("Created", TimeCell(b.has_created_at(), b.created_at()));
  f.Add("Expires",
        b.has_expires_at()
            ? absl::StrFormat("%s (%s)", FormatTimestamp(b.expires_at()),
                              ExpiryCell(b, now))
            : "permanent");
  f.Add("Revision", std::to_string(b.revision()));
  f.Add("Reason", b.reason());
  f.Add("Enforced", absl::StrFormat("live on %d of %d agents",
                                    r.agents_enforcing(), r.agents_total()));
  if (!r.local_agent_id().empty()) {
    f.Add("Local agent", r.local_agent_id());
  }
  if (r.has_explanation()) {
    const v1::BanExplanation& e = r.explanation();
    f.Add("Explanation", e.summary());
    if (e.score() > 0 || e.threshold() > 0) {
      f.Add("Score",
            absl::StrFormat("%s (threshold %s, %d servers, cross-server x%s)",
                            FormatScore(e.score()), FormatScore(e.threshold()),
                            e.distinct_servers(),
                            FormatScore(e.cross_server_multiplier())));
    }
    if (e.has_computed_duration()) {
      f.Add("Computed duration",
            FormatDurationShort(ToDuration(e.computed_duration())));
    }
    if (!e.aggregated_members().empty()) {
      f.Add("Aggregated from", absl::StrJoin(e.aggregated_members(), ", "));
    }
  }
  f.Render(out_);
  if (r.has_explanation() && !r.explanation().contributions().empty()) {
    Heading(out_, "Score contributions");
    Table t({{"KIND"},
             {"PROTOCOL"},
             {"EVENTS", Align::kRight},
             {"POINTS", Align::kRight}});
    for (const v1::ScoreContribution& c : r.explanation().contributions()) {
      t.AddRow({EnumName(c.kind()), EnumName(c.protocol()),
                std::to_string(c.events()), FormatScore(c.points())});
    }
    t.Render(out_);
  }
  if (!r.history().empty()) {
    Heading(out_, "History");
    Table t({{"AT"},
             {"ACTION"},
             {"ACTOR"},
             {"REVISION", Align::kRight},
             {"EXPIRES"},
             {"REASON"}});
    for (const v1::BanHistoryEvent& h : r.history()) {
      t.AddRow({TimeCell(h.has_at(), h.at()), EnumName(h.action()), h.actor(),
                std::to_string(h.revision()),
                h.has_expires_at() ? FormatTimestamp(h.expires_at()) : "-",
                h.reason()});
    }
    t.Render(out_);
  }
  if (!r.enforcement().empty()) {
    Heading(out_, "Enforcement");
    Table t({{"AGENT"},
             {"SITE"},
             {"CONNECTED"},
             {"ENFORCED"},
             {"REVISION", Align::kRight},
             {"ERROR"}});
    for (const v1::AgentEnforcement& e : r.enforcement()) {
      t.AddRow({e.agent_id(), e.site(), YesNo(e.connected()),
                YesNo(e.enforced()), std::to_string(e.enforced_revision()),
                e.apply_error()});
    }
    t.Render(out_);
  }
  if (r.has_explanation() && !r.explanation().evidence().empty()) {
    Heading(out_, "Evidence (newest first)");
    Table t = EventTable();
    for (const v1::AuthEventRecord& e : r.explanation().evidence()) {
      AddEventRow(t, e);
    }
    t.Render(out_);
  }
  return kExitOk;
}

int AdminCommands::AddBan(const v1::AddBanRequest& request) {
  v1::AddBanResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.AddBan(&context, request, &r); !st.ok()) {
    return ReportRpcError("bans add", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_, {{"created", r.created()},
                     {"revision", r.revision()},
                     {"ban", BanToJson(r.ban())}});
    return kExitOk;
  }
  const v1::BanEntry& b = r.ban();
  const std::string until =
      b.has_expires_at()
          ? absl::StrFormat("until %s (%s)", FormatTimestamp(b.expires_at()),
                            ExpiryCell(b, Now()))
          : "permanently";
  out_ << SanitizeForTerminal(absl::StrFormat(
              "%s %s %s: ban %d, scope %s, revision %d",
              r.created() ? "Banned" : "Updated existing ban of", b.prefix(),
              until, b.id(), EnumName(b.scope()), r.revision()))
       << '\n';
  return kExitOk;
}

int AdminCommands::RemoveBan(const v1::RemoveBanRequest& request) {
  v1::RemoveBanResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.RemoveBan(&context, request, &r); !st.ok()) {
    return ReportRpcError("bans remove", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_, {{"removed", BanToJson(r.removed())},
                     {"revision", r.revision()}});
    return kExitOk;
  }
  out_ << SanitizeForTerminal(absl::StrFormat(
              "Removed ban %d (%s), revision %d", r.removed().id(),
              r.removed().prefix(), r.revision()))
       << '\n';
  return kExitOk;
}

int AdminCommands::LookupIp(const v1::LookupIpRequest& request) {
  v1::LookupIpResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.LookupIp(&context, request, &r); !st.ok()) {
    return ReportRpcError("ip", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_, LookupIpToJson(r));
    return kExitOk;
  }
  const absl::Time now = Now();
  Fields f;
  f.Add("Address", r.address());
  f.Add("Score",
        absl::StrFormat("%s (ban threshold %s)", FormatScore(r.score()),
                        FormatScore(r.ban_threshold())));
  f.Add("Allowlisted",
        r.has_allow()
            ? absl::StrFormat(
                  "yes: %s (entry %d%s%s)", r.allow().prefix(), r.allow().id(),
                  r.allow().comment().empty() ? "" : ", ", r.allow().comment())
            : "no");
  f.Add("Own address", YesNo(r.self_address()));
  f.Add("Active ban",
        r.has_active_ban()
            ? absl::StrFormat("%s (ban %d, %s): %s", r.active_ban().prefix(),
                              r.active_ban().id(),
                              ExpiryCell(r.active_ban(), now),
                              r.active_ban().reason())
            : "none");
  f.Render(out_);
  if (!r.agents_hit().empty()) {
    Heading(out_, "Servers hit");
    Table t({{"AGENT"}, {"EVENTS", Align::kRight}});
    for (const v1::AgentHitCount& h : r.agents_hit()) {
      t.AddRow({h.agent_id(), std::to_string(h.events())});
    }
    t.Render(out_);
  }
  if (!r.users_tried().empty()) {
    Heading(out_, "Users tried");
    Table t({{"ATTEMPTS", Align::kRight}, {"USER"}});
    for (const v1::UserAttemptCount& u : r.users_tried()) {
      t.AddRow({std::to_string(u.attempts()), u.user()});
    }
    t.Render(out_);
  }
  if (!r.prefix_scores().empty()) {
    Heading(out_, "Prefix scores");
    Table t({{"PREFIX"}, {"SCORE", Align::kRight}, {"MEMBERS", Align::kRight}});
    for (const v1::PrefixScore& p : r.prefix_scores()) {
      t.AddRow(
          {p.prefix(), FormatScore(p.score()), std::to_string(p.members())});
    }
    t.Render(out_);
  }
  if (!r.bans().empty()) {
    Heading(out_, "Bans (newest first)");
    Table t = BanTable();
    for (const v1::BanEntry& b : r.bans()) {
      AddBanRow(t, b, now);
    }
    t.Render(out_);
  }
  if (!r.recent_events().empty()) {
    Heading(out_, r.events_truncated() ? "Recent events (newest first, cut)"
                                       : "Recent events (newest first)");
    Table t = EventTable();
    for (const v1::AuthEventRecord& e : r.recent_events()) {
      AddEventRow(t, e);
    }
    t.Render(out_);
  }
  return kExitOk;
}

int AdminCommands::ListAllow(v1::ListAllowRequest request,
                             const ListOptions& list) {
  v1::ListAllowResponse all;
  bool truncated = false;
  grpc::Status st = FetchPages(
      std::move(request), list.limit,
      [this](grpc::ClientContext* c) { PrepareContext(c); },
      [this](grpc::ClientContext* c, const v1::ListAllowRequest& r,
             v1::ListAllowResponse* resp) {
        return stub_.ListAllow(c, r, resp);
      },
      [](v1::ListAllowResponse* r) { return r->mutable_entries(); }, &all,
      &truncated);
  if (!st.ok()) {
    return ReportRpcError("allow list", st);
  }
  const absl::Time now = Now();
  RenderList(out_, context_.format, "entries", all.entries(), truncated,
             Table({{"ID", Align::kRight},
                    {"PREFIX"},
                    {"EXPIRES"},
                    {"CREATED"},
                    {"BY"},
                    {"COMMENT"}}),
             "The allowlist is empty.", AllowToJson,
             [now](Table& t, const v1::AllowEntry& e) {
               t.AddRow({std::to_string(e.id()), e.prefix(),
                         ExpiryCell(e.has_expires_at(), e.expires_at(), now),
                         TimeCell(e.has_created_at(), e.created_at()),
                         e.created_by(), e.comment()});
             });
  NoteTruncated(truncated, list);
  return kExitOk;
}

int AdminCommands::AddAllow(const v1::AddAllowRequest& request) {
  v1::AddAllowResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.AddAllow(&context, request, &r); !st.ok()) {
    return ReportRpcError("allow add", st);
  }
  if (context_.format == OutputFormat::kJson) {
    Json removed = Json::array();
    for (const v1::BanEntry& b : r.removed_bans()) {
      removed.push_back(BanToJson(b));
    }
    WriteJson(out_, {{"entry", AllowToJson(r.entry())},
                     {"removed_bans", std::move(removed)},
                     {"revision", r.revision()}});
    return kExitOk;
  }
  const v1::AllowEntry& e = r.entry();
  out_ << SanitizeForTerminal(absl::StrFormat(
              "Allowlisted %s (entry %d, %s)", e.prefix(), e.id(),
              e.has_expires_at() ? "until " + FormatTimestamp(e.expires_at())
                                 : std::string("permanent")))
       << '\n';
  if (!r.removed_bans().empty()) {
    std::vector<std::string> prefixes;
    for (const v1::BanEntry& b : r.removed_bans()) {
      prefixes.push_back(b.prefix());
    }
    out_ << SanitizeForTerminal(
                absl::StrFormat("Removed %s in revision %d: %s",
                                Plural(r.removed_bans_size(), "ban", "bans"),
                                r.revision(), absl::StrJoin(prefixes, ", ")))
         << '\n';
  }
  return kExitOk;
}

int AdminCommands::RemoveAllow(const v1::RemoveAllowRequest& request) {
  v1::RemoveAllowResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.RemoveAllow(&context, request, &r); !st.ok()) {
    return ReportRpcError("allow remove", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_, {{"removed", AllowToJson(r.removed())}});
    return kExitOk;
  }
  out_ << SanitizeForTerminal(absl::StrFormat("Removed allowlist entry %d (%s)",
                                              r.removed().id(),
                                              r.removed().prefix()))
       << '\n';
  return kExitOk;
}

int AdminCommands::ListAgents(v1::ListAgentsRequest request,
                              const ListOptions& list) {
  v1::ListAgentsResponse all;
  bool truncated = false;
  grpc::Status st = FetchPages(
      std::move(request), list.limit,
      [this](grpc::ClientContext* c) { PrepareContext(c); },
      [this](grpc::ClientContext* c, const v1::ListAgentsRequest& r,
             v1::ListAgentsResponse* resp) {
        return stub_.ListAgents(c, r, resp);
      },
      [](v1::ListAgentsResponse* r) { return r->mutable_agents(); }, &all,
      &truncated);
  if (!st.ok()) {
    return ReportRpcError("agents list", st);
  }
  const absl::Time now = Now();
  RenderList(
      out_, context_.format, "agents", all.agents(), truncated,
      Table({{"AGENT"},
             {"SITE"},
             {"VERSION"},
             {"STATE"},
             {"LAST SEEN"},
             {"REVISION", Align::kRight},
             {"LAG"},
             {"ERRORS", Align::kRight},
             {"HOST"}}),
      "No agents.", AgentToJson,
      [now](Table& t, const v1::AgentInfo& a) {
        std::string state = a.connected() ? "connected" : "disconnected";
        if (a.enrollment() == v1::ENROLLMENT_STATE_REVOKED ||
            a.enrollment() == v1::ENROLLMENT_STATE_PENDING) {
          state = EnumName(a.enrollment());
        }
        t.AddRow({a.agent_id(), a.site().empty() ? "-" : a.site(),
                  a.agent_version(), state,
                  AgoCell(a.has_last_seen(), a.last_seen(), now),
                  std::to_string(a.enforced_revision()), LagCell(a),
                  std::to_string(a.apply_errors()), a.hostname()});
      },
      Json{{"current_revision", all.current_revision()}});
  if (context_.format != OutputFormat::kJson) {
    // Claimed host addresses protect nothing until approved (issue 16).
    for (const v1::AgentInfo& a : all.agents()) {
      if (!a.unapproved_addresses().empty()) {
        err_ << SanitizeForTerminal(absl::StrFormat(
                    "note: %s claims %s, not protected until approved "
                    "(rampartctl agents protect %s ADDRESS...)",
                    a.agent_id(), absl::StrJoin(a.unapproved_addresses(), ", "),
                    a.agent_id()))
             << '\n';
      }
    }
  }
  NoteTruncated(truncated, list);
  return kExitOk;
}

int AdminCommands::EnrollAgent(const v1::EnrollAgentRequest& request) {
  v1::EnrollAgentResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.EnrollAgent(&context, request, &r); !st.ok()) {
    return ReportRpcError("agents enroll", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_,
              {{"agent_id", request.agent_id()},
               {"token", r.token()},
               {"expires_at", JsonTime(r.has_expires_at(), r.expires_at())}});
    return kExitOk;
  }
  out_ << SanitizeForTerminal(absl::StrFormat(
              "Enrollment token for %s (one use; expires %s, %s):",
              request.agent_id(), TimeCell(r.has_expires_at(), r.expires_at()),
              AgoCell(r.has_expires_at(), r.expires_at(), Now())))
       << '\n'
       << SanitizeForTerminal(r.token()) << '\n';
  return kExitOk;
}

int AdminCommands::SetAgentProtection(
    const v1::SetAgentProtectionRequest& request) {
  const char* what =
      request.unprotect() ? "agents unprotect" : "agents protect";
  v1::SetAgentProtectionResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.SetAgentProtection(&context, request, &r);
      !st.ok()) {
    return ReportRpcError(what, st);
  }
  if (context_.format == OutputFormat::kJson) {
    const auto list = [](const auto& items) {
      Json a = Json::array();
      for (const std::string& s : items) {
        a.push_back(s);
      }
      return a;
    };
    WriteJson(out_, {{"agent_id", request.agent_id()},
                     {"protected_addresses", list(r.protected_addresses())},
                     {"unapproved_addresses", list(r.unapproved_addresses())}});
    return kExitOk;
  }
  out_ << SanitizeForTerminal(absl::StrFormat(
              "Agent %s: protected %s; unapproved %s", request.agent_id(),
              r.protected_addresses().empty()
                  ? "(none)"
                  : absl::StrJoin(r.protected_addresses(), ", "),
              r.unapproved_addresses().empty()
                  ? "(none)"
                  : absl::StrJoin(r.unapproved_addresses(), ", ")))
       << '\n';
  return kExitOk;
}

int AdminCommands::RevokeAgent(const v1::RevokeAgentRequest& request) {
  v1::RevokeAgentResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.RevokeAgent(&context, request, &r); !st.ok()) {
    return ReportRpcError("agents revoke", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_,
              {{"agent_id", request.agent_id()},
               {"revoked_at", JsonTime(r.has_revoked_at(), r.revoked_at())},
               {"was_connected", r.was_connected()}});
    return kExitOk;
  }
  out_ << SanitizeForTerminal(absl::StrFormat(
              "Revoked agent %s at %s%s", request.agent_id(),
              TimeCell(r.has_revoked_at(), r.revoked_at()),
              r.was_connected() ? "; its live stream was ended" : ""))
       << '\n';
  return kExitOk;
}

int AdminCommands::ListAccounts(v1::ListAccountsRequest request,
                                const ListOptions& list) {
  v1::ListAccountsResponse all;
  bool truncated = false;
  grpc::Status st = FetchPages(
      std::move(request), list.limit,
      [this](grpc::ClientContext* c) { PrepareContext(c); },
      [this](grpc::ClientContext* c, const v1::ListAccountsRequest& r,
             v1::ListAccountsResponse* resp) {
        return stub_.ListAccounts(c, r, resp);
      },
      [](v1::ListAccountsResponse* r) { return r->mutable_accounts(); }, &all,
      &truncated);
  if (!st.ok()) {
    return ReportRpcError("accounts list", st);
  }
  const absl::Time now = Now();
  RenderList(
      out_, context_.format, "accounts", all.accounts(), truncated,
      AccountTable(), "No accounts under attack.", AccountToJson,
      [now](Table& t, const v1::AccountInfo& a) { AddAccountRow(t, a, now); });
  NoteTruncated(truncated, list);
  return kExitOk;
}

int AdminCommands::ListAlerts(v1::ListAlertsRequest request,
                              const ListOptions& list) {
  v1::ListAlertsResponse all;
  bool truncated = false;
  grpc::Status st = FetchPages(
      std::move(request), list.limit,
      [this](grpc::ClientContext* c) { PrepareContext(c); },
      [this](grpc::ClientContext* c, const v1::ListAlertsRequest& r,
             v1::ListAlertsResponse* resp) {
        return stub_.ListAlerts(c, r, resp);
      },
      [](v1::ListAlertsResponse* r) { return r->mutable_alerts(); }, &all,
      &truncated);
  if (!st.ok()) {
    return ReportRpcError("alerts", st);
  }
  RenderList(out_, context_.format, "alerts", all.alerts(), truncated,
             AlertTable(), "No alerts.", AlertToJson,
             [](Table& t, const v1::Alert& a) { AddAlertRow(t, a); });
  NoteTruncated(truncated, list);
  return kExitOk;
}

int AdminCommands::WatchAlerts(const v1::WatchAlertsRequest& request) {
  // No deadline: the stream is meant to stay open until the server ends it
  // (or the user interrupts rampartctl).
  grpc::ClientContext context;
  AddCredentials(&context);
  std::unique_ptr<grpc::ClientReaderInterface<v1::WatchAlertsResponse>> reader =
      stub_.WatchAlerts(&context, request);
  if (context_.format == OutputFormat::kTable) {
    err_ << "rampartctl: watching alerts on "
         << SanitizeForTerminal(context_.server) << " (Ctrl-C to stop)\n";
  }
  v1::WatchAlertsResponse message;
  while (reader->Read(&message)) {
    if (context_.format == OutputFormat::kJson) {
      WriteJsonLine(out_, AlertToJson(message.alert()));
    } else {
      out_ << AlertLine(message.alert()) << std::endl;
    }
  }
  const grpc::Status st = reader->Finish();
  if (st.error_code() == grpc::StatusCode::OUT_OF_RANGE) {
    err_ << "rampartctl: alerts --watch: OUT_OF_RANGE: "
         << SanitizeForTerminal(st.error_message())
         << " (the resume point is older than the server keeps; list what "
            "you missed with `rampartctl alerts`)\n";
    return kExitError;
  }
  return ReportRpcError("alerts --watch", st);
}

int AdminCommands::Report(const v1::ReportRequest& request) {
  v1::ReportResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.Report(&context, request, &r); !st.ok()) {
    return ReportRpcError("report", st);
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_, ReportToJson(r));
    return kExitOk;
  }
  if (context_.format == OutputFormat::kCsv) {
    WriteReportCsv(out_, r);
    return kExitOk;
  }
  const absl::Time now = Now();
  const absl::Duration period =
      r.has_period_start() && r.has_period_end()
          ? ToTime(r.period_end()) - ToTime(r.period_start())
          : absl::ZeroDuration();
  out_ << absl::StrFormat("Report %s .. %s (%s)\n",
                          TimeCell(r.has_period_start(), r.period_start()),
                          TimeCell(r.has_period_end(), r.period_end()),
                          FormatDurationShort(period));
  out_ << absl::StrFormat("Events: %d   New bans: %d   Compromise alerts: %d\n",
                          r.events_total(), r.new_bans_total(),
                          r.compromise_alerts_size());
  if (!r.per_protocol().empty()) {
    Heading(out_, "Events per protocol");
    Table t({{"PROTOCOL"},
             {"FAILURES", Align::kRight},
             {"LOCKOUTS", Align::kRight},
             {"TOTAL", Align::kRight}});
    for (const v1::ProtocolCount& p : r.per_protocol()) {
      t.AddRow({EnumName(p.protocol()), std::to_string(p.auth_failures()),
                std::to_string(p.lockouts()), std::to_string(p.total())});
    }
    t.Render(out_);
  }
  Heading(out_, "Top offenders");
  if (r.top_offenders().empty()) {
    out_ << "None.\n";
  } else {
    Table t({{"#", Align::kRight},
             {"ADDRESS"},
             {"EVENTS", Align::kRight},
             {"PEAK SCORE", Align::kRight},
             {"SERVERS", Align::kRight},
             {"USERS", Align::kRight},
             {"BANNED"}});
    int rank = 0;
    for (const v1::Offender& o : r.top_offenders()) {
      t.AddRow({std::to_string(++rank), o.address(), std::to_string(o.events()),
                FormatScore(o.peak_score()),
                std::to_string(o.distinct_servers()),
                std::to_string(o.distinct_users()), YesNo(o.banned())});
    }
    t.Render(out_);
  }
  Heading(out_, r.new_bans_size() < static_cast<int>(r.new_bans_total())
                    ? absl::StrFormat("New bans (newest %d of %d)",
                                      r.new_bans_size(), r.new_bans_total())
                    : std::string("New bans"));
  if (r.new_bans().empty()) {
    out_ << "None.\n";
  } else {
    Table t = BanTable();
    for (const v1::BanEntry& b : r.new_bans()) {
      AddBanRow(t, b, now);
    }
    t.Render(out_);
  }
  Heading(out_, "Targeted accounts");
  if (r.targeted_accounts().empty()) {
    out_ << "None.\n";
  } else {
    Table t = AccountTable();
    for (const v1::AccountInfo& a : r.targeted_accounts()) {
      AddAccountRow(t, a, now);
    }
    t.Render(out_);
  }
  Heading(out_, "Compromise alerts");
  if (r.compromise_alerts().empty()) {
    out_ << "None.\n";
  } else {
    Table t = AlertTable();
    for (const v1::Alert& a : r.compromise_alerts()) {
      AddAlertRow(t, a);
    }
    t.Render(out_);
  }
  return kExitOk;
}

int AdminCommands::Export(const ExportOptions& options) {
  std::ofstream file;
  std::string temp_path;
  std::ostream* dest = &out_;
  if (!options.output_path.empty()) {
    temp_path = options.output_path + ".rampartctl-partial";
    file.open(temp_path, std::ios::binary | std::ios::trunc);
    if (!file) {
      err_ << "rampartctl: export: cannot write "
           << SanitizeForTerminal(temp_path) << '\n';
      return kExitError;
    }
    dest = &file;
  }
  const auto discard = [&] {
    if (!temp_path.empty()) {
      file.close();
      std::error_code ignored;
      std::filesystem::remove(temp_path, ignored);
    }
  };
  v1::ExportRequest request;
  request.set_format(options.format);
  grpc::ClientContext context;
  PrepareContext(&context);
  std::unique_ptr<grpc::ClientReaderInterface<v1::ExportChunk>> reader =
      stub_.Export(&context, request);
  v1::ExportChunk chunk;
  uint32_t next_index = 0;
  std::optional<uint64_t> revision;
  bool final_seen = false;
  uint64_t entries = 0;
  std::string problem;
  while (reader->Read(&chunk)) {
    if (!problem.empty()) {
      continue;  // drain; the export is already refused
    }
    if (final_seen) {
      problem = "chunk after the final chunk";
    } else if (chunk.chunk_index() != next_index) {
      problem = absl::StrFormat("chunk %d arrived where %d was expected",
                                chunk.chunk_index(), next_index);
    } else if (revision.has_value() && *revision != chunk.revision()) {
      problem = absl::StrFormat("revision changed from %d to %d mid-export",
                                *revision, chunk.revision());
    }
    if (!problem.empty()) {
      context.TryCancel();
      continue;
    }
    revision = chunk.revision();
    ++next_index;
    dest->write(chunk.data().data(),
                static_cast<std::streamsize>(chunk.data().size()));
    if (chunk.final_chunk()) {
      final_seen = true;
      entries = chunk.entry_count();
    }
  }
  const grpc::Status st = reader->Finish();
  if (!problem.empty()) {
    discard();
    err_ << "rampartctl: export: malformed stream from the server: " << problem
         << '\n';
    return kExitError;
  }
  if (!st.ok()) {
    discard();
    return ReportRpcError("export", st);
  }
  if (!final_seen) {
    discard();
    err_ << "rampartctl: export: the stream ended before its final chunk; "
            "the export is incomplete\n";
    return kExitError;
  }
  dest->flush();
  if (!*dest) {
    discard();
    err_ << "rampartctl: export: write failed\n";
    return kExitError;
  }
  if (!temp_path.empty()) {
    file.close();
    std::error_code ec;
    std::filesystem::rename(temp_path, options.output_path, ec);
    if (ec) {
      discard();
      err_ << "rampartctl: export: cannot move " << temp_path << " to "
           << options.output_path << ": " << ec.message() << '\n';
      return kExitError;
    }
    out_ << SanitizeForTerminal(
                absl::StrFormat("Exported %s at revision %d to %s",
                                Plural(entries, "ban", "bans"),
                                revision.value_or(0), options.output_path))
         << '\n';
  }
  return kExitOk;
}

int AdminCommands::Import(const ImportOptions& options) {
  v1::ImportResponse r;
  grpc::ClientContext context;
  PrepareContext(&context);
  if (grpc::Status st = stub_.Import(&context, options.request, &r); !st.ok()) {
    return ReportRpcError("import", st);
  }
  const bool dry_run = options.request.dry_run();
  const int code = r.errors() > 0 ? kExitPartial : kExitOk;
  if (code == kExitPartial) {
    err_ << "rampartctl: import: the server rejected "
         << Plural(r.errors(), "line", "lines")
         << (dry_run ? " (dry run)\n" : "; the other lines were committed\n");
  }
  if (context_.format == OutputFormat::kJson) {
    WriteJson(out_, ImportToJson(r, dry_run));
    return code;
  }
  out_ << SanitizeForTerminal(absl::StrFormat(
              "%s %s: %d added, %d updated, %d skipped, %d rejected; %s",
              dry_run ? "Checked" : "Imported", options.file_name, r.added(),
              r.updated(), r.skipped(), r.errors(),
              dry_run ? std::string("dry run, nothing committed")
              : r.revision() == 0
                  ? std::string("nothing to commit")
                  : absl::StrFormat("revision %d", r.revision())))
       << '\n';
  if (!r.results().empty()) {
    Table t({{"LINE", Align::kRight},
             {"OUTCOME"},
             {"BAN", Align::kRight},
             {"MESSAGE"}});
    for (const v1::ImportLineResult& l : r.results()) {
      t.AddRow({std::to_string(l.line_number()), EnumName(l.outcome()),
                l.ban_id() == 0 ? "-" : std::to_string(l.ban_id()),
                l.message()});
    }
    out_ << '\n';
    t.Render(out_);
  }
  return code;
}

int AdminCommands::ListAudit(v1::ListAuditRequest request,
                             const ListOptions& list) {
  v1::ListAuditResponse all;
  bool truncated = false;
  grpc::Status st = FetchPages(
      std::move(request), list.limit,
      [this](grpc::ClientContext* c) { PrepareContext(c); },
      [this](grpc::ClientContext* c, const v1::ListAuditRequest& r,
             v1::ListAuditResponse* resp) {
        return stub_.ListAudit(c, r, resp);
      },
      [](v1::ListAuditResponse* r) { return r->mutable_records(); }, &all,
      &truncated);
  if (!st.ok()) {
    return ReportRpcError("audit", st);
  }
  RenderList(out_, context_.format, "records", all.records(), truncated,
             Table({{"ID", Align::kRight},
                    {"AT"},
                    {"ACTOR"},
                    {"ACTION"},
                    {"TARGET"},
                    {"PEER"},
                    {"REASON"}}),
             "No audit records.", AuditToJson,
             [](Table& t, const v1::AuditRecord& a) {
               t.AddRow({std::to_string(a.id()), TimeCell(a.has_at(), a.at()),
                         a.actor(), a.action(), a.target(),
                         a.peer().empty() ? "-" : a.peer(), a.reason()});
             });
  NoteTruncated(truncated, list);
  return kExitOk;
}

}  // namespace rampart::ctl
