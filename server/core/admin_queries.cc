#include "server/core/admin_queries.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "common/hash.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8.h"
#include "common/version.h"
#include "nlohmann/json.hpp"

namespace rampart::server {
namespace {

// Journal entries read per store call.
constexpr size_t kJournalPage = 10'000;
// Events kept as evidence of one ban.
constexpr size_t kEvidenceEvents = 50;
// Bans listed by LookupIp.
constexpr size_t kLookupBans = 100;
// Users listed by LookupIp.
constexpr size_t kLookupUsers = 100;
// Members summed per aggregation prefix in LookupIp.
constexpr size_t kPrefixMembers = 256;
// Compromise alerts listed by a report.
constexpr size_t kReportAlerts = 1'000;
// Longest per-line import message.
constexpr size_t kMaxMessageBytes = 256;
// Clock slack when polling alerts by time (alerts carry the ingest clock).
constexpr absl::Duration kAlertPollSlack = absl::Minutes(5);

bool Overlaps(const IpPrefix& a, const IpPrefix& b) {
  return a.Contains(b) || b.Contains(a);
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

std::string ExpiryText(absl::Time t) {
  return t == absl::InfiniteFuture() ? "never" : Rfc3339(t);
}

// Newest first: created descending, then id descending.
bool NewerBan(const BanView& a, const BanView& b) {
  if (a.ban.created != b.ban.created) {
    return a.ban.created > b.ban.created;
  }
  return a.ban.id > b.ban.id;
}

bool IsFailureKind(EventKind kind) {
  return kind == EventKind::kAuthFailure || kind == EventKind::kLockout ||
         kind == EventKind::kPolicyReject || kind == EventKind::kTlsFailure;
}

// Inserts into a set that stops growing at `cap`.
template <typename Set, typename V>
void InsertCapped(Set& set, const V& v, size_t cap) {
  if (set.size() < cap) {
    set.insert(v);
  }
}

std::string Truncated(std::string s, size_t max) {
  if (s.size() <= max) {
    return s;
  }
  size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  s.resize(cut);
  return s + "...";
}

}  // namespace

// ---------------------------------------------------------------------------
// Free helpers

std::string CidrText(const IpPrefix& prefix) {
  std::string out = prefix.address().ToString();
  absl::StrAppendFormat(&out, "/%d", prefix.length());
  return out;
}

bool IsBroadPrefix(const IpPrefix& prefix) {
  return prefix.address().is_v4() ? prefix.length() < 16 : prefix.length() < 32;
}

// ---------------------------------------------------------------------------
// Export

namespace {

// RFC 4180 field: quoted when it contains a comma, quote, CR or LF.
void AppendCsvField(std::string* out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(field);
    return;
  }
  out->push_back('"');
  for (char c : field) {
    if (c == '"') {
      out->push_back('"');
    }
    out->push_back(c);
  }
  out->push_back('"');
}

std::string CsvLine(const BanView& v) {
  std::string line;
  absl::StrAppendFormat(&line, "%d,%s,%s,", v.ban.id, CidrText(v.ban.prefix),
                        Rfc3339(v.ban.created));
  if (v.ban.expires != absl::InfiniteFuture()) {
    line += Rfc3339(v.ban.expires);
  }
  absl::StrAppendFormat(&line, ",%s,all_ports,%d,", BanOriginName(v.ban.origin),
                        v.ban.level);
  AppendCsvField(&line, v.ban.reason);
  line += "\r\n";
  return line;
}

// Whole seconds until `expires`, rounded up, at least 1.
int64_t TimeoutSeconds(absl::Time expires, absl::Time now) {
  const absl::Duration left = expires - now;
  const int64_t s = absl::ToInt64Seconds(absl::Ceil(left, absl::Seconds(1)));
  return std::max<int64_t>(s, 1);
}

// Appends lines to chunks of at most `max` bytes, split at line boundaries.
class Chunker {
 public:
  explicit Chunker(size_t max) : max_(max) {}
  void Add(std::string_view line) {
    if (!current_.empty() && current_.size() + line.size() > max_) {
      chunks_.push_back(std::move(current_));
      current_.clear();
    }
    current_.append(line);
  }
  std::vector<std::string> Finish() && {
    if (!current_.empty() || chunks_.empty()) {
      chunks_.push_back(std::move(current_));
    }
    return std::move(chunks_);
  }

 private:
  const size_t max_;
  std::string current_;
  std::vector<std::string> chunks_;
};

}  // namespace

std::vector<std::string> RenderExport(ExportFormat format,
                                      const ExportSnapshot& snapshot,
                                      absl::Time now, size_t max_chunk_bytes) {
  Chunker chunks(std::max<size_t>(max_chunk_bytes, 4096));
  switch (format) {
    case ExportFormat::kPlain:
      for (const BanView& v : snapshot.bans) {
        chunks.Add(CidrText(v.ban.prefix) + "\n");
      }
      break;
    case ExportFormat::kCsv:
      chunks.Add(
          "id,prefix,created_at,expires_at,origin,scope,escalation_level,"
          "reason\r\n");
      for (const BanView& v : snapshot.bans) {
        chunks.Add(CsvLine(v));
      }
      break;
    case ExportFormat::kNft:
      chunks.Add(absl::StrFormat(
          "#!/usr/sbin/nft -f\n"
          "# Rampart ban list, revision %d, %d entries. Load with: nft -f "
          "FILE\n"
          "table inet rampart {\n"
          "  set rampart_v4 { type ipv4_addr; flags interval, timeout; }\n"
          "  set rampart_v6 { type ipv6_addr; flags interval, timeout; }\n"
          "}\n",
          snapshot.revision, snapshot.bans.size()));
      for (const BanView& v : snapshot.bans) {
        std::string line = absl::StrFormat(
            "add element inet rampart %s { %s",
            v.ban.prefix.address().is_v4() ? "rampart_v4" : "rampart_v6",
            CidrText(v.ban.prefix));
        if (v.ban.expires != absl::InfiniteFuture()) {
          absl::StrAppendFormat(&line, " timeout %ds",
                                TimeoutSeconds(v.ban.expires, now));
        }
        line += " }\n";
        chunks.Add(line);
      }
      break;
    case ExportFormat::kNetsh: {
      chunks.Add(absl::StrFormat(
          "# Rampart ban list, revision %d, %d entries: Windows Firewall "
          "block rules,\n"
          "# %d addresses per rule. Run in an elevated PowerShell. Windows "
          "rules do\n"
          "# not expire: export again to refresh. Earlier Rampart rules are "
          "removed first.\n"
          "Get-NetFirewallRule -DisplayName 'rampart-block-*' -ErrorAction "
          "SilentlyContinue | Remove-NetFirewallRule\n",
          snapshot.revision, snapshot.bans.size(), kNetshAddressesPerRule));
      int rule = 0;
      for (const bool v4 : {true, false}) {
        std::vector<std::string> batch;
        const auto flush = [&] {
          if (batch.empty()) {
            return;
          }
          std::string line = absl::StrFormat(
              "netsh advfirewall firewall add rule name=rampart-block-%04d "
              "dir=in action=block remoteip=",
              ++rule);
          for (size_t i = 0; i < batch.size(); ++i) {
            if (i > 0) {
              line += ',';
            }
            line += batch[i];
          }
          line += '\n';
          chunks.Add(line);
          batch.clear();
        };
        for (const BanView& v : snapshot.bans) {
          if (v.ban.prefix.address().is_v4() != v4) {
            continue;
          }
          batch.push_back(CidrText(v.ban.prefix));
          if (batch.size() == kNetshAddressesPerRule) {
            flush();
          }
        }
        flush();
      }
      break;
    }
  }
  return std::move(chunks).Finish();
}

// ---------------------------------------------------------------------------
// Import parsing

namespace {

// Splits one CSV record (RFC 4180, within one line). InvalidArgument on an
// unterminated or misplaced quote.
absl::StatusOr<std::vector<std::string>> SplitCsv(std::string_view line) {
  std::vector<std::string> fields;
  std::string field;
  size_t i = 0;
  while (true) {
    field.clear();
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) {
          return absl::InvalidArgumentError("unterminated quoted field");
        }
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(line[i++]);
      }
      if (i < line.size() && line[i] != ',') {
        return absl::InvalidArgumentError("text after a closing quote");
      }
    } else {
      while (i < line.size() && line[i] != ',') {
        if (line[i] == '"') {
          return absl::InvalidArgumentError("quote inside an unquoted field");
        }
        field.push_back(line[i++]);
      }
    }
    fields.push_back(field);
    if (i >= line.size()) {
      return fields;
    }
    ++i;  // the comma
  }
}

struct CsvColumns {
  size_t count = 0;
  size_t prefix = 0;
  std::optional<size_t> expires_at;
  std::optional<size_t> reason;
  std::optional<size_t> scope;
};

absl::StatusOr<CsvColumns> ParseCsvHeader(std::string_view line) {
  absl::StatusOr<std::vector<std::string>> fields = SplitCsv(line);
  if (!fields.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("text: CSV header: %s", fields.status().message()));
  }
  CsvColumns c;
  c.count = fields->size();
  std::optional<size_t> prefix;
  for (size_t i = 0; i < fields->size(); ++i) {
    const std::string name = AsciiLower(StripWhitespace((*fields)[i]));
    if (name == "prefix") {
      prefix = i;
    } else if (name == "expires_at") {
      c.expires_at = i;
    } else if (name == "reason") {
      c.reason = i;
    } else if (name == "scope") {
      c.scope = i;
    }
  }
  if (!prefix) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "text: the first CSV line must be a header naming a \"prefix\" column "
        "(got \"%s\")",
        Abbreviate(line, 80)));
  }
  c.prefix = *prefix;
  return c;
}

}  // namespace

absl::StatusOr<std::vector<ImportLine>> ParseImport(
    ImportFormat format, std::string_view text, const ImportDefaults& defaults,
    absl::Time now) {
  const size_t lines =
      static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) +
      (!text.empty() && text.back() != '\n' ? 1 : 0);
  if (lines > kMaxImportLines) {
    return absl::InvalidArgumentError(
        absl::StrFormat("text: more than %d lines; split it into several "
                        "imports",
                        kMaxImportLines));
  }
  std::vector<ImportLine> out;
  std::optional<CsvColumns> columns;
  absl::flat_hash_map<IpPrefix, uint32_t> first_line;
  uint32_t number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (!raw.empty() && raw.back() == '\r') {
      raw.remove_suffix(1);
    }
    const std::string_view stripped = StripWhitespace(raw);
    if (stripped.empty() || stripped.front() == '#') {
      continue;  // blank or comment-only
    }
    ImportLine line;
    line.line_number = number;
    const auto fail = [&](std::string message) {
      line.outcome = ImportOutcome::kError;
      line.message = Truncated(std::move(message), kMaxMessageBytes);
      out.push_back(std::move(line));
    };
    if (raw.size() > kMaxImportLineBytes) {
      fail(absl::StrFormat("line longer than %d bytes", kMaxImportLineBytes));
      continue;
    }
    if (format == ImportFormat::kCsv && !columns) {
      ASSIGN_OR_RETURN(columns, ParseCsvHeader(raw));
      continue;
    }
    std::string_view target;
    std::string reason;
    bool has_lifetime = defaults.has_lifetime;
    std::optional<absl::Duration> duration = defaults.duration;
    std::optional<absl::Time> expires_at;
    std::vector<std::string> fields;
    if (format == ImportFormat::kPlain) {
      std::string_view rest = stripped;
      if (const size_t hash = rest.find('#'); hash != std::string_view::npos) {
        reason = std::string(StripWhitespace(rest.substr(hash + 1)));
        rest = StripWhitespace(rest.substr(0, hash));
      }
      target = rest;
    } else {
      absl::StatusOr<std::vector<std::string>> split = SplitCsv(raw);
      if (!split.ok()) {
        fail(std::string(split.status().message()));
        continue;
      }
      fields = std::move(*split);
      if (fields.size() > columns->count) {
        fail(absl::StrFormat("%d fields, the header names %d", fields.size(),
                             columns->count));
        continue;
      }
      fields.resize(columns->count);
      target = StripWhitespace(fields[columns->prefix]);
      if (columns->reason) {
        reason = std::string(StripWhitespace(fields[*columns->reason]));
      }
      if (columns->scope) {
        const std::string scope =
            AsciiLower(StripWhitespace(fields[*columns->scope]));
        if (!scope.empty() && scope != "all_ports") {
          fail(absl::StrFormat("scope \"%s\" is not supported (only all_ports)",
                               Abbreviate(scope, 40)));
          continue;
        }
      }
      if (columns->expires_at) {
        const std::string_view expires =
            StripWhitespace(fields[*columns->expires_at]);
        if (!expires.empty()) {
          absl::Time t;
          std::string err;
          if (!absl::ParseTime(absl::RFC3339_full, ToAbsl(expires), &t, &err)) {
            fail(absl::StrFormat("expires_at \"%s\" is not an RFC 3339 time",
                                 Abbreviate(expires, 40)));
            continue;
          }
          if (t <= now) {
            fail(absl::StrFormat("expires_at %s is in the past", Rfc3339(t)));
            continue;
          }
          if (t - now > kMaxBanDuration) {
            fail(absl::StrFormat("expires_at %s is more than 3650 days ahead",
                                 Rfc3339(t)));
            continue;
          }
          has_lifetime = true;
          duration = t - now;
          expires_at = t;
        }
      }
    }
    if (target.empty()) {
      fail("no IP or CIDR");
      continue;
    }
    absl::StatusOr<IpPrefix> prefix = IpPrefix::FromString(target);
    if (!prefix.ok()) {
      fail(absl::StrFormat("invalid IP or CIDR \"%s\": %s",
                           Abbreviate(target, 60), prefix.status().message()));
      continue;
    }
    if (IsBroadPrefix(*prefix)) {
      fail(absl::StrFormat(
          "%s is broader than /%d: import refuses broad prefixes (use "
          "AddBan with allow_broad_prefix)",
          CidrText(*prefix), prefix->address().is_v4() ? 16 : 32));
      continue;
    }
    if (!has_lifetime) {
      fail(format == ImportFormat::kCsv
               ? "no expires_at and the request gives no lifetime"
               : "the request gives no lifetime");
      continue;
    }
    if (reason.empty()) {
      reason = defaults.reason;
    }
    if (reason.size() > kMaxReasonBytes || !IsValidUtf8(reason)) {
      fail(absl::StrFormat("reason must be valid UTF-8 of at most %d bytes",
                           kMaxReasonBytes));
      continue;
    }
    line.prefix = *prefix;
    line.duration = duration;
    line.expires_at = expires_at;
    line.reason = std::move(reason);
    if (const auto [it, inserted] = first_line.emplace(*prefix, number);
        !inserted) {
      line.outcome = ImportOutcome::kSkipped;
      line.message = absl::StrFormat("duplicate of line %d", it->second);
    }
    out.push_back(std::move(line));
  }
  if (format == ImportFormat::kCsv && !columns) {
    return absl::InvalidArgumentError(
        "text: no CSV header (a first line naming a \"prefix\" column)");
  }
  return out;
}

// ---------------------------------------------------------------------------
// AdminQueries

AdminQueries::AdminQueries(const AdminQueriesOptions& options,
                           Correlator& correlator, Store& store,
                           BanDistributor& distributor, Clock& clock,
                           ServerFacts facts)
    : options_(options),
      correlator_(correlator),
      store_(store),
      distributor_(distributor),
      clock_(clock),
      facts_(std::move(facts)) {}

std::vector<AgentFacts> AdminQueries::AgentFactsNow() const {
  return facts_.agents ? facts_.agents() : std::vector<AgentFacts>{};
}

std::optional<std::string> AdminQueries::SelfOverlap(const IpPrefix& prefix,
                                                     bool agents) const {
  for (const IpPrefix& p : options_.self_prefixes) {
    if (Overlaps(p, prefix)) {
      return absl::StrFormat("the server's own prefix %s", CidrText(p));
    }
  }
  if (options_.protect != nullptr) {
    for (const IpPrefix& p : options_.protect->fixed()) {
      if (Overlaps(p, prefix)) {
        return absl::StrFormat("the server's own prefix %s", CidrText(p));
      }
    }
    if (agents) {
      // Only proven addresses (peer, approved): what an agent merely claims
      // in its Hello protects nothing (issue 16).
      if (std::optional<std::string> why =
              options_.protect->AgentOverlap(prefix)) {
        return why;
      }
    }
  }
  return std::nullopt;
}

StatusView AdminQueries::Status() const {
  StatusView v;
  v.facts = facts_.status ? facts_.status() : StatusFacts{};
  if (v.facts.server_version.empty()) {
    v.facts.server_version = std::string(kVersion);
  }
  v.now = clock_.Now();
  v.current_revision = correlator_.revision();
  const auto store_down = [&](const absl::Status& s) {
    v.facts.store_state = StoreHealthState::kDown;
    v.facts.store_message = std::string(s.message());
  };
  if (absl::StatusOr<uint64_t> oldest = store_.OldestRevision(); oldest.ok()) {
    v.journal_oldest_revision = *oldest;
  } else {
    store_down(oldest.status());
  }
  for (const Ban& b : correlator_.ActiveBans()) {
    ++v.active_bans;
    v.permanent_bans += b.expires == absl::InfiniteFuture() ? 1 : 0;
  }
  v.allow_entries = Allowlist(/*include_expired=*/false).size();
  const uint64_t head = distributor_.revision();
  for (const AgentStatus& a : distributor_.Agents()) {
    ++v.agents_total;
    if (a.connected) {
      ++v.agents_connected;
      v.agents_current += a.enforced_revision >= head ? 1 : 0;
    }
  }
  if (v.facts.events_last_hour) {
    v.events_last_hour = *v.facts.events_last_hour;
  } else {
    uint64_t n = 0;
    const absl::Status s = store_.ForEachEvent(
        v.now - absl::Hours(1), absl::InfiniteFuture(), [&](const AuthEvent&) {
          if (++n >= options_.max_scan_events) {
            return absl::ResourceExhaustedError("scan limit");
          }
          return absl::OkStatus();
        });
    if (!s.ok() && s.code() != absl::StatusCode::kResourceExhausted) {
      store_down(s);
    }
    v.events_last_hour = n;
  }
  if (auto alerts =
          store_.ListAlerts(v.now - absl::Hours(24), options_.max_list_rows);
      alerts.ok()) {
    v.open_alerts = alerts->size();
  } else {
    store_down(alerts.status());
  }
  if (correlator_.degraded() &&
      v.facts.store_state != StoreHealthState::kDown) {
    v.facts.store_state = StoreHealthState::kDown;
    v.facts.store_message =
        "correlator degraded: the last store write failed and no rebuild has "
        "succeeded since";
  }
  return v;
}

absl::StatusOr<std::vector<JournalEntry>> AdminQueries::RecentJournal() const {
  const uint64_t head = correlator_.revision();
  uint64_t after =
      head > options_.max_journal_scan ? head - options_.max_journal_scan : 0;
  std::vector<JournalEntry> out;
  while (out.size() < options_.max_journal_scan) {
    ASSIGN_OR_RETURN(std::vector<JournalEntry> page,
                     store_.JournalSince(after, kJournalPage));
    if (page.empty()) {
      break;
    }
    after = page.back().revision;
    const bool last = page.size() < kJournalPage;
    out.insert(out.end(), std::make_move_iterator(page.begin()),
               std::make_move_iterator(page.end()));
    if (last) {
      break;
    }
  }
  return out;
}

std::vector<BanView> AdminQueries::ActiveViews() const {
  absl::flat_hash_map<uint64_t, uint64_t> revisions;
  for (const VersionedBan& vb : distributor_.Active()) {
    revisions[vb.ban.id] = vb.revision;
  }
  std::vector<BanView> out;
  for (Ban& b : correlator_.ActiveBans()) {
    const auto it = revisions.find(b.id);
    out.push_back(BanView{.ban = std::move(b),
                          .revision = it == revisions.end() ? 0 : it->second,
                          .active = true});
  }
  return out;
}

uint64_t AdminQueries::RevisionOf(uint64_t ban_id, JournalEntry::Op op,
                                  uint64_t after) const {
  if (absl::StatusOr<std::vector<JournalEntry>> entries =
          store_.JournalSince(after, kJournalPage);
      entries.ok()) {
    for (auto it = entries->rbegin(); it != entries->rend(); ++it) {
      if (it->ban.id == ban_id && it->op == op) {
        return it->revision;
      }
    }
  }
  return correlator_.revision();
}

namespace {

// Latest state of every ban in `journal` (ascending), by id.
std::map<uint64_t, BanView> JournalViews(
    const std::vector<JournalEntry>& journal) {
  std::map<uint64_t, BanView> views;
  for (const JournalEntry& e : journal) {
    BanView& v = views[e.ban.id];
    if (e.op == JournalEntry::Op::kRemove) {
      if (v.ban.id == 0) {
        v.ban = e.ban;  // added before the window: keep what we have
      }
      v.removed_at = e.at;
    } else {
      v.ban = e.ban;
      v.revision = e.revision;
      v.removed_at.reset();
    }
  }
  return views;
}

}  // namespace

absl::StatusOr<std::vector<BanView>> AdminQueries::ListBans(
    const BanFilter& filter) const {
  std::vector<BanView> all = ActiveViews();
  if (filter.include_inactive) {
    absl::flat_hash_set<uint64_t> active_ids;
    for (const BanView& v : all) {
      active_ids.insert(v.ban.id);
    }
    ASSIGN_OR_RETURN(std::vector<JournalEntry> journal, RecentJournal());
    for (auto& [id, v] : JournalViews(journal)) {
      if (!active_ids.contains(id)) {
        all.push_back(std::move(v));
      }
    }
  }
  std::vector<BanView> out;
  for (BanView& v : all) {
    if (filter.covering && !v.ban.prefix.Contains(*filter.covering)) {
      continue;
    }
    if (filter.within && !filter.within->Contains(v.ban.prefix)) {
      continue;
    }
    if (filter.origin && v.ban.origin != *filter.origin) {
      continue;
    }
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), NewerBan);
  return out;
}

absl::StatusOr<BanDetail> AdminQueries::Detail(BanView view) const {
  BanDetail d;
  const absl::Time now = clock_.Now();
  ASSIGN_OR_RETURN(std::vector<JournalEntry> journal, RecentJournal());
  absl::flat_hash_map<uint64_t, const JournalEntry*> last_of;
  absl::flat_hash_set<uint64_t> removed;
  for (const JournalEntry& e : journal) {
    if (e.ban.prefix != view.ban.prefix) {
      continue;
    }
    BanHistoryStep step{.ban_id = e.ban.id,
                        .at = e.at,
                        .actor = e.ban.actor,
                        .reason = e.ban.reason,
                        .revision = e.revision};
    switch (e.op) {
      case JournalEntry::Op::kAdd:
        step.action = BanHistoryStep::Action::kCreated;
        step.expires = e.ban.expires;
        break;
      case JournalEntry::Op::kUpdate:
        step.action = BanHistoryStep::Action::kUpdated;
        step.expires = e.ban.expires;
        break;
      case JournalEntry::Op::kRemove:
        step.action = BanHistoryStep::Action::kRemoved;
        removed.insert(e.ban.id);
        break;
    }
    last_of[e.ban.id] = &e;
    d.history.push_back(std::move(step));
  }
  for (const auto& [id, e] : last_of) {
    if (!removed.contains(id) && e->ban.expires <= now) {
      d.history.push_back(
          BanHistoryStep{.ban_id = id,
                         .at = e->ban.expires,
                         .action = BanHistoryStep::Action::kExpired,
                         .actor = "correlator",
                         .reason = "expired",
                         .expires = e->ban.expires});
    }
  }
  if (!last_of.contains(view.ban.id)) {
    // Older than the journal window: what the ban itself says.
    d.history.push_back(
        BanHistoryStep{.ban_id = view.ban.id,
                       .at = view.ban.created,
                       .action = BanHistoryStep::Action::kCreated,
                       .actor = view.ban.actor,
                       .reason = view.ban.reason,
                       .revision = view.revision,
                       .expires = view.ban.expires});
  }
  std::stable_sort(d.history.begin(), d.history.end(),
                   [](const BanHistoryStep& a, const BanHistoryStep& b) {
                     return a.at < b.at;
                   });
  ASSIGN_OR_RETURN(d.evidence,
                   store_.EventsForPrefix(view.ban.prefix,
                                          view.ban.created - absl::Hours(24),
                                          kEvidenceEvents));
  absl::flat_hash_set<std::string> servers;
  for (const AuthEvent& e : d.evidence) {
    servers.insert(e.agent_id);
  }
  d.evidence_servers = static_cast<int>(servers.size());
  absl::flat_hash_map<std::string, std::string> sites;
  for (const AgentFacts& f : AgentFactsNow()) {
    sites[f.agent_id] = f.site;
  }
  for (const AgentStatus& a : distributor_.Agents()) {
    AgentEnforcementView e{.agent_id = a.agent_id,
                           .connected = a.connected,
                           .enforced_revision = a.enforced_revision,
                           .enforced = view.active && view.revision > 0 &&
                                       a.enforced_revision >= view.revision};
    if (const auto it = sites.find(a.agent_id); it != sites.end()) {
      e.site = it->second;
    }
    ++d.agents_total;
    d.agents_enforcing += e.enforced ? 1 : 0;
    d.enforcement.push_back(std::move(e));
  }
  d.view = std::move(view);
  return d;
}

absl::StatusOr<BanDetail> AdminQueries::GetBanById(uint64_t id) const {
  for (BanView& v : ActiveViews()) {
    if (v.ban.id == id) {
      return Detail(std::move(v));
    }
  }
  ASSIGN_OR_RETURN(std::vector<JournalEntry> journal, RecentJournal());
  std::map<uint64_t, BanView> views = JournalViews(journal);
  if (auto it = views.find(id); it != views.end()) {
    return Detail(std::move(it->second));
  }
  return absl::NotFoundError(absl::StrFormat(
      "no ban with id %d (neither active nor in the last %d revisions)", id,
      options_.max_journal_scan));
}

absl::StatusOr<BanDetail> AdminQueries::GetBanByTarget(
    const IpPrefix& target, bool include_inactive) const {
  std::optional<BanView> best;
  for (BanView& v : ActiveViews()) {
    if (v.ban.prefix.Contains(target) &&
        (!best || v.ban.prefix.length() > best->ban.prefix.length())) {
      best = std::move(v);
    }
  }
  if (best) {
    return Detail(std::move(*best));
  }
  if (include_inactive) {
    for (int len = target.length(); len >= 0; --len) {
      ASSIGN_OR_RETURN(std::vector<Ban> bans,
                       store_.BansFor(IpPrefix::Of(target.address(), len)));
      for (Ban& b : bans) {
        BanView v{.ban = std::move(b)};
        if (!best || NewerBan(v, *best)) {
          best = std::move(v);
        }
      }
    }
    if (best) {
      ASSIGN_OR_RETURN(std::vector<JournalEntry> journal, RecentJournal());
      std::map<uint64_t, BanView> views = JournalViews(journal);
      if (auto it = views.find(best->ban.id); it != views.end()) {
        best->revision = it->second.revision;
        best->removed_at = it->second.removed_at;
      }
      return Detail(std::move(*best));
    }
  }
  return absl::NotFoundError(absl::StrFormat("no %sban covers %s",
                                             include_inactive ? "" : "active ",
                                             CidrText(target)));
}

absl::StatusOr<AddBanOutcome> AdminQueries::AddBan(
    const IpPrefix& prefix, std::optional<absl::Duration> duration,
    std::string reason, std::string actor, bool allow_broad, BanOrigin origin,
    std::string peer, bool override_protected) {
  if (!allow_broad && IsBroadPrefix(prefix)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is broader than /%d; set allow_broad_prefix to ban it",
        CidrText(prefix), prefix.address().is_v4() ? 16 : 32));
  }
  if (std::optional<std::string> own = SelfOverlap(prefix, /*agents=*/false)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s overlaps %s, which is never banned", CidrText(prefix), *own));
  }
  if (std::optional<std::string> agent = SelfOverlap(prefix);
      agent && !override_protected) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s overlaps %s, which is never banned (an admin may set "
        "override_protected)",
        CidrText(prefix), *agent));
  }
  std::optional<std::string> overridden;
  if (override_protected && options_.protect != nullptr) {
    overridden = options_.protect->AgentOverlap(prefix);
  }
  const std::string audit_actor = actor;
  const std::string audit_peer = peer;
  std::optional<Ban> before;
  for (Ban& b : correlator_.ActiveBans()) {
    if (b.prefix == prefix) {
      before = std::move(b);
    }
  }
  const uint64_t revision_before = correlator_.revision();
  absl::StatusOr<Ban> ban =
      correlator_.AddBan(prefix, duration, std::move(reason), std::move(actor),
                         origin, std::move(peer));
  if (!ban.ok()) {
    if (ban.status().code() == absl::StatusCode::kAlreadyExists && before) {
      // Already banned at least as long: nothing to change.
      uint64_t revision = 0;
      for (const VersionedBan& vb : distributor_.Active()) {
        if (vb.ban.id == before->id) {
          revision = vb.revision;
        }
      }
      return AddBanOutcome{
          .ban = *before, .revision = revision, .created = false};
    }
    return ban.status();
  }
  const bool created = !before || before->id != ban->id;
  const uint64_t revision = RevisionOf(
      ban->id, created ? JournalEntry::Op::kAdd : JournalEntry::Op::kUpdate,
      revision_before);
  if (overridden) {
    nlohmann::json after = {{"overrides", *overridden},
                            {"ban_id", ban->id},
                            {"reason", ban->reason}};
    RETURN_IF_ERROR(store_.Commit(
        CommitRecord{.audit = {AuditRecord{.time = clock_.Now(),
                                           .actor = audit_actor,
                                           .action = "ban.override_protected",
                                           .target = CidrText(prefix),
                                           .after = after.dump(),
                                           .peer = audit_peer}}}));
  }
  return AddBanOutcome{
      .ban = std::move(*ban), .revision = revision, .created = created};
}

absl::StatusOr<RemoveBanOutcome> AdminQueries::RemoveBanById(uint64_t id,
                                                             std::string reason,
                                                             std::string actor,
                                                             std::string peer) {
  for (const Ban& b : correlator_.ActiveBans()) {
    if (b.id == id) {
      return RemoveBanByPrefix(b.prefix, std::move(reason), std::move(actor),
                               std::move(peer));
    }
  }
  return absl::NotFoundError(absl::StrFormat("no active ban with id %d", id));
}

absl::StatusOr<RemoveBanOutcome> AdminQueries::RemoveBanByPrefix(
    const IpPrefix& prefix, std::string reason, std::string actor,
    std::string peer) {
  std::optional<Ban> before;
  std::vector<std::string> covering;
  for (Ban& b : correlator_.ActiveBans()) {
    if (b.prefix == prefix) {
      before = std::move(b);
    } else if (b.prefix.Contains(prefix)) {
      covering.push_back(
          absl::StrFormat("%s (id %d)", CidrText(b.prefix), b.id));
    }
  }
  const uint64_t revision_before = correlator_.revision();
  absl::StatusOr<Ban> removed = correlator_.RemoveBan(
      prefix, std::move(reason), std::move(actor), std::move(peer));
  if (!removed.ok()) {
    if (removed.status().code() == absl::StatusCode::kNotFound &&
        !covering.empty()) {
      std::string list;
      for (const std::string& c : covering) {
        list += list.empty() ? c : ", " + c;
      }
      return absl::NotFoundError(
          absl::StrFormat("no active ban of exactly %s; it is covered by %s",
                          CidrText(prefix), list));
    }
    return removed.status();
  }
  // The journal entry carries the removal's reason and actor; report the ban
  // as it was.
  Ban as_was = before ? *before : *removed;
  return RemoveBanOutcome{
      .ban = std::move(as_was),
      .revision =
          RevisionOf(removed->id, JournalEntry::Op::kRemove, revision_before)};
}

std::vector<AllowEntry> AdminQueries::Allowlist(bool include_expired) const {
  const absl::Time now = clock_.Now();
  std::vector<AllowEntry> out;
  for (AllowEntry& a : correlator_.Allowlist()) {
    if (include_expired || a.ActiveAt(now)) {
      out.push_back(std::move(a));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const AllowEntry& a, const AllowEntry& b) {
              return a.prefix < b.prefix;
            });
  return out;
}

uint64_t AdminQueries::AllowId(const IpPrefix& prefix) {
  const uint64_t h = Fnv1a64(CidrText(prefix)) & 0x7fffffffffffffffull;
  return h == 0 ? 1 : h;
}

absl::StatusOr<AddAllowOutcome> AdminQueries::AddAllow(
    const IpPrefix& prefix, std::optional<absl::Duration> duration,
    std::string comment, bool remove_covering, std::string actor,
    std::string peer, bool allow_broad) {
  const bool broad = IsBroadPrefix(prefix);
  if (broad && !allow_broad) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is broader than /%d; allowlisting it switches banning off for the "
        "whole range: set allow_broad_prefix (admin role) to add it",
        CidrText(prefix), prefix.address().is_v4() ? 16 : 32));
  }
  const absl::Time now = clock_.Now();
  for (const AllowEntry& a : Allowlist(/*include_expired=*/false)) {
    if (a.prefix == prefix) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "%s is already allowlisted (%s)", CidrText(prefix), a.comment));
    }
  }
  std::vector<Ban> lift;
  for (Ban& b : correlator_.ActiveBans()) {
    if (prefix.Contains(b.prefix)) {
      lift.push_back(std::move(b));
    } else if (b.prefix.Contains(prefix)) {
      if (!remove_covering) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "%s lies inside active ban %s (id %d); set remove_covering_bans "
            "to lift it too",
            CidrText(prefix), CidrText(b.prefix), b.id));
      }
      lift.push_back(std::move(b));
    }
  }
  AllowEntry entry{.prefix = prefix, .comment = std::move(comment)};
  if (duration) {
    entry.expires = now + *duration;
  }
  RETURN_IF_ERROR(correlator_.AddAllow(entry, actor, peer, broad));
  AddAllowOutcome out;
  out.entry = entry;
  for (const AllowEntry& a : correlator_.Allowlist()) {
    if (a.prefix == prefix) {
      out.entry = a;
    }
  }
  for (const Ban& b : lift) {
    absl::StatusOr<RemoveBanOutcome> r = RemoveBanByPrefix(
        b.prefix, absl::StrFormat("allowlisted %s", CidrText(prefix)), actor,
        peer);
    if (r.ok()) {
      out.revision = r->revision;
      out.removed_bans.push_back(std::move(r->ban));
    } else if (r.status().code() != absl::StatusCode::kNotFound) {
      return absl::Status(
          r.status().code(),
          absl::StrFormat("%s was allowlisted but lifting ban %s failed: %s",
                          CidrText(prefix), CidrText(b.prefix),
                          r.status().message()));
    }
  }
  return out;
}

absl::StatusOr<AllowEntry> AdminQueries::RemoveAllowByPrefix(
    const IpPrefix& prefix, std::string actor, std::string peer) {
  std::optional<AllowEntry> before;
  for (AllowEntry& a : correlator_.Allowlist()) {
    if (a.prefix == prefix) {
      before = std::move(a);
    }
  }
  if (!before) {
    return absl::NotFoundError(
        absl::StrFormat("%s is not in the allowlist", CidrText(prefix)));
  }
  RETURN_IF_ERROR(
      correlator_.RemoveAllow(prefix, std::move(actor), std::move(peer)));
  return *before;
}

absl::StatusOr<AllowEntry> AdminQueries::RemoveAllowById(uint64_t id,
                                                         std::string actor,
                                                         std::string peer) {
  for (const AllowEntry& a : correlator_.Allowlist()) {
    if (AllowId(a.prefix) == id) {
      return RemoveAllowByPrefix(a.prefix, std::move(actor), std::move(peer));
    }
  }
  return absl::NotFoundError(
      absl::StrFormat("no allowlist entry with id %d", id));
}

absl::StatusOr<IpLookup> AdminQueries::LookupIp(const IpAddress& ip,
                                                absl::Duration window,
                                                size_t max_events) const {
  const absl::Time now = clock_.Now();
  const absl::Time since = now - window;
  IpLookup out;
  out.address = ip;
  out.key = correlator_.Explain(ip);
  out.ban_threshold = options_.policy.ban_threshold;
  out.allow = out.key.allowed_by;
  out.self_address = SelfOverlap(IpPrefix::Host(ip)).has_value();
  const IpPrefix host = IpPrefix::Host(ip);
  absl::flat_hash_map<uint64_t, BanView> active;
  for (BanView& v : ActiveViews()) {
    if (v.ban.prefix.Contains(host)) {
      if (!out.active_ban ||
          v.ban.prefix.length() > out.active_ban->ban.prefix.length()) {
        out.active_ban = v;
      }
      active[v.ban.id] = std::move(v);
    }
  }
  for (int len = ip.bits(); len >= 0; --len) {
    ASSIGN_OR_RETURN(std::vector<Ban> bans,
                     store_.BansFor(IpPrefix::Of(ip, len)));
    for (Ban& b : bans) {
      if (auto it = active.find(b.id); it != active.end()) {
        out.bans.push_back(it->second);
      } else {
        out.bans.push_back(BanView{.ban = std::move(b)});
      }
    }
  }
  std::sort(out.bans.begin(), out.bans.end(), NewerBan);
  if (out.bans.size() > kLookupBans) {
    out.bans.resize(kLookupBans);
  }

  const size_t aggregate_limit =
      std::max(max_events + 1, options_.max_list_rows * 10);
  ASSIGN_OR_RETURN(std::vector<AuthEvent> events,
                   store_.EventsForPrefix(host, since, aggregate_limit));
  absl::flat_hash_map<std::string, uint64_t> agents, users;
  for (const AuthEvent& e : events) {
    ++agents[e.agent_id];
    if (!e.user.empty() && (users.size() < options_.max_distinct_per_key ||
                            users.contains(e.user))) {
      ++users[e.user];
    }
  }
  out.events_truncated = events.size() > max_events;
  if (out.events_truncated) {
    events.resize(max_events);
  }
  out.recent_events = std::move(events);
  for (auto& [id, n] : agents) {
    out.agents_hit.push_back(CountedAgent{.agent_id = id, .events = n});
  }
  std::sort(out.agents_hit.begin(), out.agents_hit.end(),
            [](const CountedAgent& a, const CountedAgent& b) {
              return a.events != b.events ? a.events > b.events
                                          : a.agent_id < b.agent_id;
            });
  for (auto& [user, n] : users) {
    out.users_tried.push_back(CountedUser{.user = user, .attempts = n});
  }
  std::sort(out.users_tried.begin(), out.users_tried.end(),
            [](const CountedUser& a, const CountedUser& b) {
              return a.attempts != b.attempts ? a.attempts > b.attempts
                                              : a.user < b.user;
            });
  if (out.users_tried.size() > kLookupUsers) {
    out.users_tried.resize(kLookupUsers);
  }

  // Aggregation prefixes: the sum of their scored members' live scores.
  const Policy& p = options_.policy;
  const std::vector<int>& ladder = ip.is_v4() ? p.v4_ladder : p.v6_ladder;
  for (int len : ladder) {
    const IpPrefix prefix = IpPrefix::Of(ip, len);
    ASSIGN_OR_RETURN(
        std::vector<AuthEvent> member_events,
        store_.EventsForPrefix(prefix, since, options_.max_list_rows * 10));
    absl::flat_hash_set<IpAddress> members;
    for (const AuthEvent& e : member_events) {
      if (e.ip && members.size() < kPrefixMembers) {
        members.insert(e.ip->is_v4()
                           ? *e.ip
                           : IpPrefix::Of(*e.ip, p.v6_score_prefix).address());
      }
    }
    PrefixScoreView view{.prefix = prefix};
    for (const IpAddress& m : members) {
      const double score = correlator_.Explain(m).score;
      if (score > 0) {
        view.score += score;
        ++view.members;
      }
    }
    out.prefix_scores.push_back(view);
  }
  return out;
}

std::vector<AgentView> AdminQueries::Agents() const {
  std::map<std::string, AgentView> by_id;
  for (AgentStatus& s : distributor_.Agents()) {
    const std::string id = s.agent_id;
    by_id[id].status = std::move(s);
  }
  for (AgentFacts& f : AgentFactsNow()) {
    AgentView& v = by_id[f.agent_id];
    if (v.status.agent_id.empty()) {
      v.status.agent_id = f.agent_id;
    }
    v.facts = std::move(f);
  }
  std::vector<AgentView> out;
  for (auto& [id, v] : by_id) {
    if (options_.protect != nullptr) {
      v.addresses = options_.protect->Of(id);
    } else if (v.facts) {
      v.addresses.claimed = v.facts->host_addresses;
    }
    out.push_back(std::move(v));
  }
  return out;
}

// --- Protected agent addresses (issue 16) ----------------------------------

absl::StatusOr<AgentAddressView> AdminQueries::SetAgentProtection(
    std::string_view agent_id, const std::vector<IpAddress>& addresses,
    bool protect, std::string actor, std::string peer) {
  if (options_.protect == nullptr) {
    return absl::FailedPreconditionError(
        "this server keeps no protected addresses");
  }
  const auto texts = [](const std::vector<IpAddress>& ips) {
    nlohmann::json a = nlohmann::json::array();
    for (const IpAddress& ip : ips) {
      a.push_back(ip.ToString());
    }
    return a;
  };
  const AgentAddressView before = options_.protect->Of(agent_id);
  RETURN_IF_ERROR(protect ? options_.protect->Approve(agent_id, addresses,
                                                      actor, clock_.Now())
                          : options_.protect->Unprotect(agent_id, addresses));
  AgentAddressView after = options_.protect->Of(agent_id);
  const nlohmann::json before_json = {{"protected", texts(before.Protecting())},
                                      {"addresses", texts(addresses)}};
  const nlohmann::json after_json = {{"protected", texts(after.Protecting())},
                                     {"addresses", texts(addresses)}};
  RETURN_IF_ERROR(store_.Commit(
      CommitRecord{.audit = {AuditRecord{
                       .time = clock_.Now(),
                       .actor = std::move(actor),
                       .action = protect ? "agent.protect" : "agent.unprotect",
                       .target = std::string(agent_id),
                       .before = before_json.dump(),
                       .after = after_json.dump(),
                       .peer = std::move(peer)}}}));
  return after;
}

absl::Status AdminQueries::ForgetAgentAddresses(std::string_view agent_id) {
  return options_.protect == nullptr ? absl::OkStatus()
                                     : options_.protect->ForgetAgent(agent_id);
}

absl::StatusOr<std::vector<AccountView>> AdminQueries::Accounts(
    absl::Duration window, uint32_t min_distinct_ips) const {
  const absl::Time since = clock_.Now() - window;
  ASSIGN_OR_RETURN(std::vector<AccountAttack> rows,
                   store_.ListAccounts(since, options_.max_list_rows));
  ASSIGN_OR_RETURN(std::vector<CompromiseAlert> alerts,
                   store_.ListAlerts(since, options_.max_list_rows));
  absl::flat_hash_set<std::string> alerted;
  for (const CompromiseAlert& a : alerts) {
    alerted.insert(NormaliseUser(a.user));
  }
  std::vector<AccountView> out;
  for (AccountAttack& a : rows) {
    if (static_cast<uint32_t>(a.distinct_ips) < min_distinct_ips) {
      continue;
    }
    const bool suspected = alerted.contains(a.user);
    out.push_back(AccountView{
        .user = std::move(a.user),
        .distinct_ips = static_cast<uint32_t>(a.distinct_ips),
        .distinct_servers = static_cast<uint32_t>(a.distinct_servers),
        .failures = static_cast<uint64_t>(a.failures),
        .first_seen = a.first_seen,
        .last_seen = a.last_seen,
        .agent_ids = std::move(a.servers),
        .sample_ips = std::move(a.sample_ips),
        .compromise_suspected = suspected});
  }
  std::sort(out.begin(), out.end(),
            [](const AccountView& a, const AccountView& b) {
              return a.distinct_ips != b.distinct_ips
                         ? a.distinct_ips > b.distinct_ips
                         : a.user < b.user;
            });
  return out;
}

absl::Status AdminQueries::AddAccountEvidence(absl::Time since,
                                              AccountView& account) const {
  // Events of one address scanned per look-up: enough to find the account
  // among the other users the address tried.
  constexpr size_t kPerAddress = 500;
  std::vector<AuthEvent> found;
  absl::flat_hash_set<Protocol> protocols;
  for (size_t i = 0;
       i < account.sample_ips.size() && i < kAccountEvidenceAddresses; ++i) {
    const std::optional<IpAddress> ip = IpAddress::Parse(account.sample_ips[i]);
    if (!ip) {
      continue;  // the store holds what the correlator wrote; never expected
    }
    ASSIGN_OR_RETURN(
        std::vector<AuthEvent> events,
        store_.EventsForPrefix(IpPrefix::Host(*ip), since, kPerAddress));
    for (AuthEvent& e : events) {
      if (NormaliseUser(e.user) != account.user) {
        continue;
      }
      protocols.insert(e.protocol);
      account.locked_out = account.locked_out || e.kind == EventKind::kLockout;
      found.push_back(std::move(e));
    }
  }
  std::stable_sort(
      found.begin(), found.end(),
      [](const AuthEvent& a, const AuthEvent& b) { return a.time > b.time; });
  if (found.size() > kAccountEvidence) {
    found.resize(kAccountEvidence);
  }
  account.evidence = std::move(found);
  account.protocols.assign(protocols.begin(), protocols.end());
  std::sort(account.protocols.begin(), account.protocols.end());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CompromiseAlert>> AdminQueries::Alerts(
    absl::Time since) const {
  ASSIGN_OR_RETURN(std::vector<CompromiseAlert> alerts,
                   store_.ListAlerts(since, options_.max_list_rows));
  std::sort(alerts.begin(), alerts.end(),
            [](const CompromiseAlert& a, const CompromiseAlert& b) {
              return a.id > b.id;
            });
  return alerts;
}

absl::StatusOr<std::vector<AuditRecord>> AdminQueries::Audit(
    absl::Time since, std::string_view actor, std::string_view action) const {
  ASSIGN_OR_RETURN(std::vector<AuditRecord> rows,
                   store_.ListAudit(since, options_.max_list_rows));
  std::vector<AuditRecord> out;
  for (AuditRecord& r : rows) {
    if ((actor.empty() || r.actor == actor) &&
        (action.empty() || r.action == action)) {
      out.push_back(std::move(r));
    }
  }
  std::sort(
      out.begin(), out.end(),
      [](const AuditRecord& a, const AuditRecord& b) { return a.id > b.id; });
  return out;
}

std::string AdminQueries::AuditReason(const AuditRecord& record) {
  for (const std::string* text : {&record.after, &record.before}) {
    if (text->empty()) {
      continue;
    }
    const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_object()) {
      continue;
    }
    for (const char* key : {"reason", "comment"}) {
      if (const auto it = j.find(key); it != j.end() && it->is_string()) {
        return it->get<std::string>();
      }
    }
  }
  return "";
}

absl::StatusOr<Report> AdminQueries::BuildReport(absl::Duration period,
                                                 size_t top_n) const {
  Report r;
  r.period_end = clock_.Now();
  r.period_start = r.period_end - period;
  const Policy& policy = options_.policy;
  const double half_life_s = absl::ToDoubleSeconds(policy.half_life);
  const size_t cap = options_.max_distinct_per_key;

  struct IpAgg {
    uint64_t events = 0;
    double score = 0;
    double peak = 0;
    absl::Time last = absl::InfinitePast();
    absl::flat_hash_set<std::string> servers;
    absl::flat_hash_set<std::string> users;
  };
  struct UserAgg {
    uint64_t failures = 0;
    bool locked_out = false;
    absl::Time first = absl::InfiniteFuture();
    absl::Time last = absl::InfinitePast();
    absl::flat_hash_set<IpAddress> ips;
    absl::flat_hash_set<std::string> servers;
    uint32_t protocols = 0;  // bit per Protocol
  };
  absl::flat_hash_map<IpAddress, IpAgg> ips;
  absl::flat_hash_map<std::string, UserAgg> users;
  std::array<ProtocolCount, 6> per_protocol;
  for (size_t i = 0; i < per_protocol.size(); ++i) {
    per_protocol[i].protocol = static_cast<Protocol>(i);
  }

  const absl::Status scan = store_.ForEachEvent(
      r.period_start, r.period_end + absl::Microseconds(1),
      [&](const AuthEvent& e) {
        if (r.events_total >= options_.max_scan_events) {
          r.truncated = true;
          return absl::ResourceExhaustedError("report scan limit");
        }
        ++r.events_total;
        ProtocolCount& pc =
            per_protocol[static_cast<size_t>(e.protocol) % per_protocol.size()];
        ++pc.total;
        pc.auth_failures += e.kind == EventKind::kAuthFailure ? 1 : 0;
        pc.lockouts += e.kind == EventKind::kLockout ? 1 : 0;
        if (e.ip && IsFailureKind(e.kind)) {
          auto it = ips.find(*e.ip);
          if (it == ips.end() && ips.size() < options_.max_report_keys) {
            it = ips.emplace(*e.ip, IpAgg{}).first;
          }
          if (it != ips.end()) {
            IpAgg& a = it->second;
            ++a.events;
            if (a.last != absl::InfinitePast() && half_life_s > 0) {
              const double dt =
                  std::max(0.0, absl::ToDoubleSeconds(e.time - a.last));
              a.score *= std::exp2(-dt / half_life_s);
            }
            a.score += policy.Weight(e.kind, e.protocol);
            a.last = std::max(a.last, e.time);
            a.peak = std::max(a.peak, a.score);
            InsertCapped(a.servers, e.agent_id, cap);
            if (!e.user.empty()) {
              InsertCapped(a.users, e.user, cap);
            }
          }
        }
        if ((e.kind == EventKind::kAuthFailure ||
             e.kind == EventKind::kLockout) &&
            !e.user.empty()) {
          std::string user = NormaliseUser(e.user);
          auto it = users.find(user);
          if (it == users.end() && users.size() < options_.max_report_keys) {
            it = users.emplace(std::move(user), UserAgg{}).first;
          }
          if (it != users.end()) {
            UserAgg& u = it->second;
            ++u.failures;
            u.locked_out |= e.kind == EventKind::kLockout;
            u.first = std::min(u.first, e.time);
            u.last = std::max(u.last, e.time);
            if (e.ip) {
              InsertCapped(u.ips, *e.ip, cap);
            }
            InsertCapped(u.servers, e.agent_id, cap);
            u.protocols |= 1u << (static_cast<unsigned>(e.protocol) & 31u);
          }
        }
        return absl::OkStatus();
      });
  if (!scan.ok() && !r.truncated) {
    return scan;
  }
  if (r.truncated) {
    RAMPART_LOG(Warning) << "report scan stopped at "
                         << options_.max_scan_events << " events";
  }

  // Top offenders by events.
  std::vector<std::pair<IpAddress, const IpAgg*>> order;
  order.reserve(ips.size());
  for (const auto& [ip, agg] : ips) {
    order.emplace_back(ip, &agg);
  }
  const size_t n_offenders = std::min(top_n, order.size());
  std::partial_sort(order.begin(), order.begin() + n_offenders, order.end(),
                    [](const auto& a, const auto& b) {
                      return a.second->events != b.second->events
                                 ? a.second->events > b.second->events
                                 : a.first < b.first;
                    });
  const std::vector<BanView> active = ActiveViews();
  for (size_t i = 0; i < n_offenders; ++i) {
    const IpAgg& a = *order[i].second;
    Offender o{.address = order[i].first,
               .events = a.events,
               .peak_score = a.peak,
               .distinct_servers = static_cast<uint32_t>(a.servers.size()),
               .distinct_users = static_cast<uint32_t>(a.users.size())};
    o.peak_score = std::max(o.peak_score, correlator_.Explain(o.address).score);
    for (const BanView& v : active) {
      o.banned |= v.ban.prefix.Contains(o.address);
    }
    r.top_offenders.push_back(std::move(o));
  }

  // New bans: journal additions in the period.
  ASSIGN_OR_RETURN(std::vector<JournalEntry> journal, RecentJournal());
  absl::flat_hash_set<uint64_t> active_ids;
  for (const BanView& v : active) {
    active_ids.insert(v.ban.id);
  }
  std::map<uint64_t, BanView> views = JournalViews(journal);
  for (auto& [id, v] : views) {
    if (v.ban.created < r.period_start || v.ban.created > r.period_end) {
      continue;
    }
    ++r.new_bans_total;
    v.active = active_ids.contains(id);
    r.new_bans.push_back(std::move(v));
  }
  std::sort(r.new_bans.begin(), r.new_bans.end(), NewerBan);
  if (r.new_bans.size() > top_n) {
    r.new_bans.resize(top_n);
  }

  // Compromise alerts in the period.
  ASSIGN_OR_RETURN(r.compromise_alerts, Alerts(r.period_start));
  if (r.compromise_alerts.size() > kReportAlerts) {
    r.compromise_alerts.resize(kReportAlerts);
  }
  absl::flat_hash_set<std::string> alerted;
  for (const CompromiseAlert& a : r.compromise_alerts) {
    alerted.insert(NormaliseUser(a.user));
  }

  // Targeted accounts by distinct addresses, then failures.
  std::vector<AccountView> accounts;
  accounts.reserve(users.size());
  for (auto& [user, u] : users) {
    AccountView v{.user = user,
                  .distinct_ips = static_cast<uint32_t>(u.ips.size()),
                  .distinct_servers = static_cast<uint32_t>(u.servers.size()),
                  .failures = u.failures,
                  .locked_out = u.locked_out,
                  .first_seen = u.first,
                  .last_seen = u.last,
                  .compromise_suspected = alerted.contains(user)};
    for (unsigned b = 0; b < 6; ++b) {
      if (u.protocols & (1u << b)) {
        v.protocols.push_back(static_cast<Protocol>(b));
      }
    }
    v.agent_ids.assign(u.servers.begin(), u.servers.end());
    std::sort(v.agent_ids.begin(), v.agent_ids.end());
    std::vector<IpAddress> sample(u.ips.begin(), u.ips.end());
    std::sort(sample.begin(), sample.end());
    for (size_t i = 0; i < sample.size() && i < 20; ++i) {
      v.sample_ips.push_back(sample[i].ToString());
    }
    accounts.push_back(std::move(v));
  }
  const size_t n_accounts = std::min(top_n, accounts.size());
  std::partial_sort(accounts.begin(), accounts.begin() + n_accounts,
                    accounts.end(),
                    [](const AccountView& a, const AccountView& b) {
                      if (a.distinct_ips != b.distinct_ips) {
                        return a.distinct_ips > b.distinct_ips;
                      }
                      if (a.failures != b.failures) {
                        return a.failures > b.failures;
                      }
                      return a.user < b.user;
                    });
  accounts.resize(n_accounts);
  r.targeted_accounts = std::move(accounts);

  for (const ProtocolCount& pc : per_protocol) {
    if (pc.total > 0) {
      r.per_protocol.push_back(pc);
    }
  }
  return r;
}

ExportSnapshot AdminQueries::Snapshot() const {
  ExportSnapshot s;
  // The revision and the list are read separately; retry until both belong
  // to the same revision (admin writes are rare, so this converges at once).
  for (int attempt = 0; attempt < 5; ++attempt) {
    const uint64_t before = correlator_.revision();
    s.bans = ActiveViews();
    s.revision = correlator_.revision();
    if (s.revision == before) {
      break;
    }
  }
  std::sort(s.bans.begin(), s.bans.end(),
            [](const BanView& a, const BanView& b) {
              return a.ban.prefix < b.ban.prefix;
            });
  return s;
}

absl::StatusOr<ImportSummary> AdminQueries::ApplyImport(
    std::vector<ImportLine> lines, bool dry_run, std::string actor,
    std::string peer) {
  const absl::Time now = clock_.Now();
  absl::flat_hash_map<IpPrefix, Ban> active;
  for (Ban& b : correlator_.ActiveBans()) {
    const IpPrefix prefix = b.prefix;
    active.emplace(prefix, std::move(b));
  }
  const std::vector<AllowEntry> allow = Allowlist(/*include_expired=*/false);
  ImportSummary out;
  bool committed = false;
  std::optional<absl::Status> failed;
  for (ImportLine& line : lines) {
    const auto skip = [&](std::string message) {
      line.outcome = ImportOutcome::kSkipped;
      line.message = Truncated(std::move(message), kMaxMessageBytes);
    };
    if (line.outcome != ImportOutcome::kAdded) {
      // Decided by the parser.
    } else if (failed) {
      line.outcome = ImportOutcome::kError;
      line.message =
          Truncated(absl::StrFormat("not imported: %s", failed->message()),
                    kMaxMessageBytes);
    } else if (std::optional<std::string> self = SelfOverlap(line.prefix)) {
      skip(absl::StrFormat("overlaps %s", *self));
    } else if (auto a = std::find_if(allow.begin(), allow.end(),
                                     [&](const AllowEntry& e) {
                                       return Overlaps(e.prefix, line.prefix);
                                     });
               a != allow.end()) {
      skip(absl::StrFormat("overlaps allowlist entry %s", CidrText(a->prefix)));
    } else if (dry_run) {
      const absl::Time expires = line.expires_at ? *line.expires_at
                                 : line.duration ? now + *line.duration
                                                 : absl::InfiniteFuture();
      if (auto it = active.find(line.prefix); it != active.end()) {
        if (it->second.expires >= expires) {
          skip(absl::StrFormat("already banned until %s",
                               ExpiryText(it->second.expires)));
        } else {
          line.outcome = ImportOutcome::kUpdated;
          line.ban_id = it->second.id;
        }
      }
    } else {
      const auto before = active.find(line.prefix);
      // Ban ids are > 0, so 0 means "no active ban of the prefix".
      const uint64_t before_id = before == active.end() ? 0 : before->second.id;
      absl::StatusOr<Ban> ban =
          line.expires_at
              ? correlator_.AddBanUntil(line.prefix, *line.expires_at,
                                        line.reason, actor, BanOrigin::kImport,
                                        peer)
              : correlator_.AddBan(line.prefix, line.duration, line.reason,
                                   actor, BanOrigin::kImport, peer);
      if (ban.ok()) {
        committed = true;
        line.ban_id = ban->id;
        line.outcome = before_id == ban->id ? ImportOutcome::kUpdated
                                            : ImportOutcome::kAdded;
      } else if (ban.status().code() == absl::StatusCode::kAlreadyExists ||
                 ban.status().code() == absl::StatusCode::kFailedPrecondition) {
        skip(std::string(ban.status().message()));
      } else if (ban.status().code() == absl::StatusCode::kInvalidArgument) {
        line.outcome = ImportOutcome::kError;
        line.message =
            Truncated(std::string(ban.status().message()), kMaxMessageBytes);
      } else {
        if (!committed) {
          return ban.status();
        }
        failed = ban.status();
        line.outcome = ImportOutcome::kError;
        line.message =
            Truncated(absl::StrFormat("not imported: %s", failed->message()),
                      kMaxMessageBytes);
      }
    }
    switch (line.outcome) {
      case ImportOutcome::kAdded:
        ++out.added;
        break;
      case ImportOutcome::kUpdated:
        ++out.updated;
        break;
      case ImportOutcome::kSkipped:
        ++out.skipped;
        break;
      case ImportOutcome::kError:
        ++out.errors;
        break;
    }
  }
  if (committed) {
    out.revision = correlator_.revision();
  }
  out.lines = std::move(lines);
  return out;
}

absl::StatusOr<ReplayReport> AdminQueries::DryRun(const Policy& candidate,
                                                  absl::Time from,
                                                  absl::Time to) {
  if (dry_run_running_.exchange(true)) {
    return absl::ResourceExhaustedError(
        "another policy dry run is running; try again when it has finished");
  }
  absl::StatusOr<ReplayReport> r = ReplayPolicies(
      store_, from, to, options_.policy, candidate, correlator_.Allowlist());
  dry_run_running_.store(false);
  return r;
}

// ---------------------------------------------------------------------------
// AlertsHub

AlertsHub::AlertsHub(const Options& options, Store& store)
    : options_(options), store_(store) {}

AlertsHub::Watch::~Watch() {
  absl::MutexLock lock(&hub_.mu_);
  --hub_.watchers_;
  hub_.cv_.SignalAll();
}

absl::StatusOr<std::unique_ptr<AlertsHub::Watch>> AlertsHub::Subscribe(
    uint64_t after_alert_id) {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) {
      return absl::UnavailableError("server is shutting down");
    }
    if (watchers_ >= options_.max_watchers) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "already %d alert watchers (the maximum)", options_.max_watchers));
    }
    ++watchers_;
  }
  std::unique_ptr<Watch> watch(new Watch(*this));
  if (after_alert_id == 0) {
    ASSIGN_OR_RETURN(std::vector<CompromiseAlert> newest,
                     store_.ListAlerts(absl::UnixEpoch(), 1));
    if (!newest.empty()) {
      watch->cursor_id_ = newest.front().id;
      watch->cursor_time_ = newest.front().time;
    }
    return watch;
  }
  ASSIGN_OR_RETURN(
      std::vector<CompromiseAlert> retained,
      store_.ListAlerts(absl::UnixEpoch(), options_.max_batch + 1));
  const bool all_retained = retained.size() <= options_.max_batch;
  uint64_t min_id = UINT64_MAX;
  watch->cursor_id_ = after_alert_id;
  for (CompromiseAlert& a : retained) {
    min_id = std::min(min_id, a.id);
    watch->cursor_time_ = std::max(watch->cursor_time_, a.time);
    if (a.id > after_alert_id) {
      watch->pending_.push_back(std::move(a));
    }
  }
  if (!all_retained && watch->pending_.size() == retained.size()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "more than %d alerts after id %d; resume with ListAlerts",
        options_.max_batch, after_alert_id));
  }
  if (all_retained && !retained.empty() && min_id > after_alert_id + 1) {
    return absl::OutOfRangeError(absl::StrFormat(
        "alert %d is older than the oldest retained alert (%d); resume with "
        "ListAlerts",
        after_alert_id + 1, min_id));
  }
  std::sort(watch->pending_.begin(), watch->pending_.end(),
            [](const CompromiseAlert& a, const CompromiseAlert& b) {
              return a.id < b.id;
            });
  if (!watch->pending_.empty()) {
    watch->cursor_id_ = watch->pending_.back().id;
  }
  return watch;
}

absl::StatusOr<std::vector<CompromiseAlert>> AlertsHub::Poll(Watch& watch) {
  const absl::Time since =
      std::max(absl::UnixEpoch(), watch.cursor_time_ - kAlertPollSlack);
  ASSIGN_OR_RETURN(std::vector<CompromiseAlert> rows,
                   store_.ListAlerts(since, options_.max_batch + 1));
  std::vector<CompromiseAlert> out;
  for (CompromiseAlert& a : rows) {
    if (a.id > watch.cursor_id_) {
      out.push_back(std::move(a));
    }
  }
  if (rows.size() > options_.max_batch && out.size() == rows.size()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "more than %d alerts raised since the last poll; resume with "
        "ListAlerts after id %d",
        options_.max_batch, watch.cursor_id_));
  }
  std::sort(out.begin(), out.end(),
            [](const CompromiseAlert& a, const CompromiseAlert& b) {
              return a.id < b.id;
            });
  for (const CompromiseAlert& a : out) {
    watch.cursor_id_ = std::max(watch.cursor_id_, a.id);
    watch.cursor_time_ = std::max(watch.cursor_time_, a.time);
  }
  return out;
}

absl::StatusOr<std::vector<CompromiseAlert>> AlertsHub::Watch::Next(
    const std::function<bool()>& stop) {
  if (!pending_.empty()) {
    return std::exchange(pending_, {});
  }
  while (true) {
    uint64_t generation = 0;
    {
      absl::MutexLock lock(&hub_.mu_);
      if (hub_.shutdown_) {
        return absl::UnavailableError("server is shutting down");
      }
      generation = hub_.generation_;
    }
    if (stop()) {
      return absl::CancelledError("alert watch cancelled");
    }
    ASSIGN_OR_RETURN(std::vector<CompromiseAlert> alerts, hub_.Poll(*this));
    if (!alerts.empty()) {
      return alerts;
    }
    absl::MutexLock lock(&hub_.mu_);
    while (!hub_.shutdown_ && hub_.generation_ == generation) {
      if (hub_.cv_.WaitWithTimeout(&hub_.mu_, hub_.options_.poll_interval)) {
        break;  // timed out: poll again
      }
    }
  }
}

void AlertsHub::Notify() {
  absl::MutexLock lock(&mu_);
  ++generation_;
  cv_.SignalAll();
}

void AlertsHub::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  cv_.SignalAll();
}

int AlertsHub::watchers() const {
  absl::MutexLock lock(&mu_);
  return watchers_;
}

bool AlertsHub::AwaitWatchersForTest(int count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto reached = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return watchers_ == count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

}  // namespace rampart::server
