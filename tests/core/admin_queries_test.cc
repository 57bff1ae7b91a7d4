#include "server/core/admin_queries.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/in_memory_store.h"

namespace rampart::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());

IpPrefix Prefix(const char* s) { return *IpPrefix::FromString(s); }
IpAddress Ip(const char* s) { return *IpAddress::Parse(s); }

AuthEvent Event(const char* ip, EventKind kind, const char* user,
                const char* agent, absl::Time t,
                Protocol protocol = Protocol::kSmtp) {
  return AuthEvent{.agent_id = agent,
                   .kind = kind,
                   .protocol = protocol,
                   .ip = IpAddress::Parse(ip),
                   .user = user,
                   .time = t};
}

std::vector<AuthEvent> Failures(const char* ip, int n, const char* user,
                                const char* agent, absl::Time t) {
  std::vector<AuthEvent> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(Event(ip, EventKind::kAuthFailure, user, agent, t));
  }
  return out;
}

// --- Pure functions ----------------------------------------------------------

TEST(CidrTextTest, AlwaysCarriesTheLength) {
  EXPECT_EQ(CidrText(Prefix("198.51.100.7")), "198.51.100.7/32");
  EXPECT_EQ(CidrText(Prefix("2001:db8::/64")), "2001:db8::/64");
  EXPECT_EQ(CidrText(Prefix("2001:db8::1")), "2001:db8::1/128");
}

TEST(IsBroadPrefixTest, SixteenForV4ThirtyTwoForV6) {
  EXPECT_FALSE(IsBroadPrefix(Prefix("10.1.0.0/16")));
  EXPECT_TRUE(IsBroadPrefix(Prefix("10.0.0.0/15")));
  EXPECT_FALSE(IsBroadPrefix(Prefix("2001:db8::/32")));
  EXPECT_TRUE(IsBroadPrefix(Prefix("2001:db8::/31")));
}

ExportSnapshot GoldenSnapshot() {
  ExportSnapshot s;
  s.revision = 7;
  s.bans.push_back(BanView{.ban = Ban{.id = 2,
                                      .prefix = Prefix("198.51.100.7"),
                                      .created = kT0,
                                      .expires = kT0 + absl::Hours(1),
                                      .origin = BanOrigin::kManual,
                                      .reason = "spam, \"lots\""},
                           .revision = 5,
                           .active = true});
  s.bans.push_back(BanView{.ban = Ban{.id = 1,
                                      .prefix = Prefix("203.0.113.0/24"),
                                      .created = kT0 - absl::Hours(1),
                                      .origin = BanOrigin::kAuto,
                                      .level = 2,
                                      .reason = "score 12"},
                           .revision = 3,
                           .active = true});
  s.bans.push_back(BanView{.ban = Ban{.id = 3,
                                      .prefix = Prefix("2001:db8::/64"),
                                      .created = kT0,
                                      .expires = kT0 + absl::Seconds(90),
                                      .origin = BanOrigin::kImport,
                                      .reason = "list"},
                           .revision = 6,
                           .active = true});
  return s;
}

std::string Join(const std::vector<std::string>& chunks) {
  std::string out;
  for (const std::string& c : chunks) {
    out += c;
  }
  return out;
}

TEST(RenderExportTest, PlainIsOneCidrPerLine) {
  EXPECT_EQ(
      Join(RenderExport(ExportFormat::kPlain, GoldenSnapshot(), kT0, 1 << 20)),
      "198.51.100.7/32\n203.0.113.0/24\n2001:db8::/64\n");
}

TEST(RenderExportTest, CsvHasHeaderAndQuotesRfc4180) {
  EXPECT_EQ(
      Join(RenderExport(ExportFormat::kCsv, GoldenSnapshot(), kT0, 1 << 20)),
      "id,prefix,created_at,expires_at,origin,scope,escalation_level,reason\r\n"
      "2,198.51.100.7/32,2024-03-06T10:00:00Z,2024-03-06T11:00:00Z,manual,"
      "all_ports,0,\"spam, \"\"lots\"\"\"\r\n"
      "1,203.0.113.0/24,2024-03-06T09:00:00Z,,auto,all_ports,2,score 12\r\n"
      "3,2001:db8::/64,2024-03-06T10:00:00Z,2024-03-06T10:01:30Z,import,"
      "all_ports,0,list\r\n");
}

TEST(RenderExportTest, NftAddsElementsWithTimeouts) {
  EXPECT_EQ(
      Join(RenderExport(ExportFormat::kNft, GoldenSnapshot(),
                        kT0 + absl::Milliseconds(500), 1 << 20)),
      "#!/usr/sbin/nft -f\n"
      "# Rampart ban list, revision 7, 3 entries. Load with: nft -f FILE\n"
      "table inet rampart {\n"
      "  set rampart_v4 { type ipv4_addr; flags interval, timeout; }\n"
      "  set rampart_v6 { type ipv6_addr; flags interval, timeout; }\n"
      "}\n"
      "add element inet rampart rampart_v4 { 198.51.100.7/32 timeout 3600s }\n"
      "add element inet rampart rampart_v4 { 203.0.113.0/24 }\n"
      "add element inet rampart rampart_v6 { 2001:db8::/64 timeout 90s }\n");
}

TEST(RenderExportTest, NetshGroupsAddressesPerFamily) {
  EXPECT_EQ(
      Join(RenderExport(ExportFormat::kNetsh, GoldenSnapshot(), kT0, 1 << 20)),
      "# Rampart ban list, revision 7, 3 entries: Windows Firewall block "
      "rules,\n"
      "# 200 addresses per rule. Run in an elevated PowerShell. Windows rules "
      "do\n"
      "# not expire: export again to refresh. Earlier Rampart rules are "
      "removed first.\n"
      "Get-NetFirewallRule -DisplayName 'rampart-block-*' -ErrorAction "
      "SilentlyContinue | Remove-NetFirewallRule\n"
      "netsh advfirewall firewall add rule name=rampart-block-0001 dir=in "
      "action=block remoteip=198.51.100.7/32,203.0.113.0/24\n"
      "netsh advfirewall firewall add rule name=rampart-block-0002 dir=in "
      "action=block remoteip=2001:db8::/64\n");
}

TEST(RenderExportTest, NetshChunksTwoHundredAddressesPerRule) {
  ExportSnapshot s;
  for (uint32_t i = 0; i < 450; ++i) {
    s.bans.push_back(BanView{
        .ban = Ban{.id = i + 1,
                   .prefix = IpPrefix::Host(IpAddress::V4(0xC6336400u + i))}});
  }
  const std::string text =
      Join(RenderExport(ExportFormat::kNetsh, s, kT0, 1 << 20));
  int rules = 0;
  size_t pos = 0;
  while ((pos = text.find("add rule", pos)) != std::string::npos) {
    ++rules;
    ++pos;
  }
  EXPECT_EQ(rules, 3);  // 200 + 200 + 50
  EXPECT_THAT(text, HasSubstr("name=rampart-block-0003"));
}

TEST(RenderExportTest, ChunksEndAtLineBoundariesAndStayUnderTheLimit) {
  ExportSnapshot s;
  for (uint32_t i = 0; i < 2000; ++i) {
    s.bans.push_back(BanView{
        .ban = Ban{.id = i + 1,
                   .prefix = IpPrefix::Host(IpAddress::V4(0x0A000000u + i))}});
  }
  const std::vector<std::string> chunks =
      RenderExport(ExportFormat::kPlain, s, kT0, 4096);
  EXPECT_GT(chunks.size(), 1u);
  size_t lines = 0;
  for (const std::string& c : chunks) {
    EXPECT_LE(c.size(), 4096u);
    ASSERT_FALSE(c.empty());
    EXPECT_EQ(c.back(), '\n');
    lines += static_cast<size_t>(std::count(c.begin(), c.end(), '\n'));
  }
  EXPECT_EQ(lines, 2000u);
}

TEST(RenderExportTest, EmptyListIsOneEmptyChunk) {
  EXPECT_THAT(RenderExport(ExportFormat::kPlain, {}, kT0, 1 << 20),
              ElementsAre(""));
}

ImportDefaults OneHour() {
  return ImportDefaults{
      .has_lifetime = true, .duration = absl::Hours(1), .reason = "imported"};
}

TEST(ParseImportTest, PlainSkipsCommentsAndReportsLineNumbers) {
  const std::string text =
      "# blocklist of 2024-03-06\n"
      "\n"
      "198.51.100.7\n"
      "203.0.113.0/24   # scanner range\n"
      "198.51.100.300\n"
      "203.0.113.5/24\n"
      "   \r\n"
      "198.51.100.7/32\n"
      "10.0.0.0/8\n"
      "2001:db8::/48 # v6\r\n";
  absl::StatusOr<std::vector<ImportLine>> lines =
      ParseImport(ImportFormat::kPlain, text, OneHour(), kT0);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_THAT(*lines, SizeIs(7));
  EXPECT_EQ((*lines)[0].line_number, 3u);
  EXPECT_EQ((*lines)[0].outcome, ImportOutcome::kAdded);
  EXPECT_EQ((*lines)[0].prefix, Prefix("198.51.100.7"));
  EXPECT_EQ((*lines)[0].reason, "imported");
  EXPECT_EQ((*lines)[0].duration, absl::Hours(1));
  EXPECT_EQ((*lines)[1].line_number, 4u);
  EXPECT_EQ((*lines)[1].reason, "scanner range");
  EXPECT_EQ((*lines)[2].line_number, 5u);
  EXPECT_EQ((*lines)[2].outcome, ImportOutcome::kError);
  EXPECT_THAT((*lines)[2].message, HasSubstr("198.51.100.300"));
  EXPECT_EQ((*lines)[3].line_number, 6u);  // host bits set
  EXPECT_EQ((*lines)[3].outcome, ImportOutcome::kError);
  EXPECT_EQ((*lines)[4].line_number, 8u);
  EXPECT_EQ((*lines)[4].outcome, ImportOutcome::kSkipped);
  EXPECT_EQ((*lines)[4].message, "duplicate of line 3");
  EXPECT_EQ((*lines)[5].line_number, 9u);  // broader than /16
  EXPECT_EQ((*lines)[5].outcome, ImportOutcome::kError);
  EXPECT_THAT((*lines)[5].message, HasSubstr("broader than /16"));
  EXPECT_EQ((*lines)[6].line_number, 10u);
  EXPECT_EQ((*lines)[6].outcome, ImportOutcome::kAdded);
  EXPECT_EQ((*lines)[6].reason, "v6");
}

TEST(ParseImportTest, PlainWithoutLifetimeIsAnErrorPerLine) {
  absl::StatusOr<std::vector<ImportLine>> lines =
      ParseImport(ImportFormat::kPlain, "198.51.100.7\n",
                  ImportDefaults{.reason = "x"}, kT0);
  ASSERT_TRUE(lines.ok());
  ASSERT_THAT(*lines, SizeIs(1));
  EXPECT_EQ((*lines)[0].outcome, ImportOutcome::kError);
}

TEST(ParseImportTest, LongLinesAndTooManyLinesAreBounded) {
  std::string text = "198.51.100.7 # " + std::string(5000, 'x') + "\n";
  absl::StatusOr<std::vector<ImportLine>> lines =
      ParseImport(ImportFormat::kPlain, text, OneHour(), kT0);
  ASSERT_TRUE(lines.ok());
  ASSERT_THAT(*lines, SizeIs(1));
  EXPECT_EQ((*lines)[0].outcome, ImportOutcome::kError);
  EXPECT_THAT((*lines)[0].message, HasSubstr("longer than 4096"));

  const std::string many(kMaxImportLines + 1, '\n');
  EXPECT_EQ(
      ParseImport(ImportFormat::kPlain, many, OneHour(), kT0).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ParseImportTest, CsvReadsExportedColumnsAndQuotedFields) {
  const std::string text =
      "id,prefix,created_at,expires_at,origin,scope,escalation_level,reason\r\n"
      "2,198.51.100.7/32,2024-03-06T10:00:00Z,2024-03-06T12:00:00Z,manual,"
      "all_ports,0,\"spam, \"\"lots\"\"\"\r\n"
      "1,203.0.113.0/24,2024-03-06T09:00:00Z,,auto,all_ports,2,\r\n"
      "3,192.0.2.1,,2024-03-06T09:00:00Z,,,,\r\n"
      "4,192.0.2.2,,,,mail,,\r\n"
      "5,\"192.0.2.3,,,,,,,\r\n"
      "# comment\r\n"
      "6,192.0.2.4,,,,,,,extra\r\n";
  absl::StatusOr<std::vector<ImportLine>> lines =
      ParseImport(ImportFormat::kCsv, text, OneHour(), kT0);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_THAT(*lines, SizeIs(6));
  EXPECT_EQ((*lines)[0].line_number, 2u);
  EXPECT_EQ((*lines)[0].outcome, ImportOutcome::kAdded);
  EXPECT_EQ((*lines)[0].reason, "spam, \"lots\"");
  EXPECT_EQ((*lines)[0].duration, absl::Hours(2));  // expires_at wins
  EXPECT_EQ((*lines)[1].outcome, ImportOutcome::kAdded);
  EXPECT_EQ((*lines)[1].duration, absl::Hours(1));  // the request's
  EXPECT_EQ((*lines)[1].reason, "imported");
  EXPECT_EQ((*lines)[2].outcome, ImportOutcome::kError);  // expired
  EXPECT_THAT((*lines)[2].message, HasSubstr("in the past"));
  EXPECT_EQ((*lines)[3].outcome, ImportOutcome::kError);  // scope
  EXPECT_EQ((*lines)[4].outcome, ImportOutcome::kError);  // quote
  EXPECT_EQ((*lines)[5].line_number, 8u);
  EXPECT_EQ((*lines)[5].outcome, ImportOutcome::kError);  // extra field
}

TEST(ParseImportTest, CsvNeedsAPrefixHeader) {
  EXPECT_EQ(
      ParseImport(ImportFormat::kCsv, "ip,reason\n1.2.3.4,x\n", OneHour(), kT0)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ParseImport(ImportFormat::kCsv, "# only a comment\n", OneHour(), kT0)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ParseImportTest, CsvWithoutLifetimeNeedsExpiresAt) {
  absl::StatusOr<std::vector<ImportLine>> lines = ParseImport(
      ImportFormat::kCsv,
      "prefix,expires_at\n192.0.2.1,\n192.0.2.2,2024-03-07T10:00:00Z\n",
      ImportDefaults{.reason = "r"}, kT0);
  ASSERT_TRUE(lines.ok());
  ASSERT_THAT(*lines, SizeIs(2));
  EXPECT_EQ((*lines)[0].outcome, ImportOutcome::kError);
  EXPECT_EQ((*lines)[1].outcome, ImportOutcome::kAdded);
  EXPECT_EQ((*lines)[1].duration, absl::Hours(24));
}

// --- AdminQueries over a real Correlator
// ---------------------------------------

class AdminQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CorrelatorOptions options;
    options.policy.ban_jitter = 0;
    absl::StatusOr<std::unique_ptr<Correlator>> c =
        Correlator::Create(options, store_, clock_, distributor_);
    ASSERT_TRUE(c.ok()) << c.status();
    correlator_ = std::move(*c);
    AdminQueriesOptions q{.policy = options.policy,
                          .self_prefixes = {Prefix("192.0.2.10")}};
    queries_ = std::make_unique<AdminQueries>(
        q, *correlator_, store_, distributor_, clock_,
        ServerFacts{.agents = [] {
          return std::vector<AgentFacts>{
              AgentFacts{.agent_id = "mail1",
                         .site = "hq",
                         .host_addresses = {Ip("192.0.2.21")}}};
        }});
  }

  void Ingest(std::vector<AuthEvent> events) {
    absl::StatusOr<IngestResult> r =
        correlator_->Ingest(std::nullopt, std::move(events));
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // Failures then a success for `user` from `ip`: one compromise alert.
  void RaiseAlert(const char* ip, const char* user) {
    std::vector<AuthEvent> events = Failures(ip, 3, user, "mail1", kT0);
    events.push_back(
        Event(ip, EventKind::kAuthSuccess, user, "mail1", clock_.Now()));
    Ingest(std::move(events));
  }

  SimulatedClock clock_{kT0};
  InMemoryStore store_;
  BanDistributor distributor_{BanDistributor::Options{}, clock_};
  std::unique_ptr<Correlator> correlator_;
  std::unique_ptr<AdminQueries> queries_;
};

TEST_F(AdminQueriesTest, AddBanRefusesBroadAndSelfPrefixes) {
  EXPECT_EQ(queries_
                ->AddBan(Prefix("10.0.0.0/8"), absl::Hours(1), "r", "alice",
                         /*allow_broad=*/false)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(queries_
                  ->AddBan(Prefix("10.0.0.0/8"), absl::Hours(1), "r", "alice",
                           /*allow_broad=*/true)
                  .ok());
  absl::StatusOr<AddBanOutcome> self = queries_->AddBan(
      Prefix("192.0.2.0/24"), absl::Hours(1), "r", "alice", false);
  EXPECT_EQ(self.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(self.status().message(), HasSubstr("192.0.2.10/32"));
  // Agent Hello addresses are only claims (issue 16: a stolen agent key
  // could make any address unbannable): they refuse nothing.
  absl::StatusOr<AddBanOutcome> agent = queries_->AddBan(
      Prefix("192.0.2.21"), absl::Hours(1), "r", "alice", false);
  EXPECT_TRUE(agent.ok()) << agent.status();
}

TEST_F(AdminQueriesTest, AddBanReportsCreatedUpdatedAndRevisions) {
  absl::StatusOr<AddBanOutcome> a = queries_->AddBan(
      Prefix("198.51.100.7"), absl::Hours(1), "first", "alice", false);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->created);
  EXPECT_EQ(a->revision, 1u);
  absl::StatusOr<AddBanOutcome> b = queries_->AddBan(
      Prefix("198.51.100.7"), absl::Hours(2), "longer", "alice", false);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(b->created);
  EXPECT_EQ(b->ban.id, a->ban.id);
  EXPECT_EQ(b->revision, 2u);
  absl::StatusOr<AddBanOutcome> c = queries_->AddBan(
      Prefix("198.51.100.7"), absl::Minutes(5), "shorter", "alice", false);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->created);
  EXPECT_EQ(c->ban.expires, kT0 + absl::Hours(2));
  EXPECT_EQ(c->revision, 2u);
  EXPECT_EQ(correlator_->revision(), 2u);
}

TEST_F(AdminQueriesTest, RemoveBanNamesCoveringBans) {
  ASSERT_TRUE(queries_
                  ->AddBan(Prefix("203.0.113.0/24"), absl::Hours(1), "r",
                           "alice", false)
                  .ok());
  absl::StatusOr<RemoveBanOutcome> r =
      queries_->RemoveBanByPrefix(Prefix("203.0.113.9"), "oops", "alice");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("203.0.113.0/24 (id 1)"));
  absl::StatusOr<RemoveBanOutcome> ok =
      queries_->RemoveBanById(1, "done", "bob");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->ban.reason, "r");  // as it was
  EXPECT_EQ(ok->revision, 2u);
  EXPECT_EQ(queries_->RemoveBanById(1, "again", "bob").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(AdminQueriesTest, ListBansIncludesInactiveFromTheJournal) {
  ASSERT_TRUE(
      queries_
          ->AddBan(Prefix("198.51.100.7"), absl::Hours(1), "a", "alice", false)
          .ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(
      queries_
          ->AddBan(Prefix("198.51.100.8"), absl::Hours(1), "b", "alice", false)
          .ok());
  ASSERT_TRUE(
      queries_->RemoveBanByPrefix(Prefix("198.51.100.7"), "gone", "bob").ok());
  absl::StatusOr<std::vector<BanView>> active = queries_->ListBans({});
  ASSERT_TRUE(active.ok());
  ASSERT_THAT(*active, SizeIs(1));
  EXPECT_EQ((*active)[0].ban.prefix, Prefix("198.51.100.8"));
  EXPECT_EQ((*active)[0].revision, 2u);
  absl::StatusOr<std::vector<BanView>> all =
      queries_->ListBans(BanFilter{.include_inactive = true});
  ASSERT_TRUE(all.ok());
  ASSERT_THAT(*all, SizeIs(2));
  EXPECT_EQ((*all)[1].ban.prefix, Prefix("198.51.100.7"));
  EXPECT_FALSE((*all)[1].active);
  EXPECT_TRUE((*all)[1].removed_at.has_value());
  EXPECT_EQ((*all)[1].ban.reason, "a");
  absl::StatusOr<std::vector<BanView>> within = queries_->ListBans(
      BanFilter{.include_inactive = true, .within = Prefix("198.51.100.8")});
  ASSERT_TRUE(within.ok());
  EXPECT_THAT(*within, SizeIs(1));
}

TEST_F(AdminQueriesTest, GetBanShowsHistoryAndEnforcement) {
  distributor_.Connect("mail1", [](const std::vector<JournalEntry>&) {});
  distributor_.Connect("mail2", [](const std::vector<JournalEntry>&) {});
  Ingest(Failures("198.51.100.7", 10, "admin", "mail1", kT0));  // auto ban
  ASSERT_EQ(correlator_->revision(), 1u);
  distributor_.ReportEnforced("mail1", 1);
  absl::StatusOr<BanDetail> d =
      queries_->GetBanByTarget(Prefix("198.51.100.7"), false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->view.ban.origin, BanOrigin::kAuto);
  EXPECT_EQ(d->agents_enforcing, 1);
  EXPECT_EQ(d->agents_total, 2);
  ASSERT_THAT(d->enforcement, SizeIs(2));
  EXPECT_TRUE(d->enforcement[0].enforced);
  EXPECT_EQ(d->enforcement[0].site, "hq");
  EXPECT_FALSE(d->enforcement[1].enforced);
  EXPECT_THAT(d->evidence, SizeIs(10));
  EXPECT_EQ(d->evidence_servers, 1);
  ASSERT_THAT(d->history, SizeIs(1));
  EXPECT_EQ(d->history[0].action, BanHistoryStep::Action::kCreated);

  // It expires: history says so, and it is found only as inactive.
  clock_.Advance(absl::Hours(48));
  correlator_->Expire();
  EXPECT_EQ(
      queries_->GetBanByTarget(Prefix("198.51.100.7"), false).status().code(),
      absl::StatusCode::kNotFound);
  d = queries_->GetBanByTarget(Prefix("198.51.100.7"), true);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->view.active);
  EXPECT_EQ(d->agents_enforcing, 0);
  ASSERT_THAT(d->history, SizeIs(2));
  EXPECT_EQ(d->history[1].action, BanHistoryStep::Action::kExpired);
  EXPECT_TRUE(queries_->GetBanById(d->view.ban.id).ok());
  EXPECT_EQ(queries_->GetBanById(99).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(AdminQueriesTest, AddAllowLiftsBansInsideAndRefusesCoveredPrefix) {
  ASSERT_TRUE(
      queries_
          ->AddBan(Prefix("198.51.100.7"), absl::Hours(1), "r", "alice", false)
          .ok());
  ASSERT_TRUE(queries_
                  ->AddBan(Prefix("203.0.113.0/24"), absl::Hours(1), "r",
                           "alice", false)
                  .ok());
  absl::StatusOr<AddAllowOutcome> a = queries_->AddAllow(
      Prefix("198.51.100.0/24"), std::nullopt, "office", false, "alice");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_THAT(a->removed_bans, SizeIs(1));
  EXPECT_EQ(a->removed_bans[0].prefix, Prefix("198.51.100.7"));
  EXPECT_EQ(a->revision, 3u);
  EXPECT_EQ(a->entry.actor, "alice");
  EXPECT_EQ(queries_
                ->AddAllow(Prefix("198.51.100.0/24"), std::nullopt, "again",
                           false, "alice")
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(
      queries_
          ->AddAllow(Prefix("203.0.113.9"), std::nullopt, "x", false, "alice")
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<AddAllowOutcome> covering = queries_->AddAllow(
      Prefix("203.0.113.9"), absl::Hours(1), "x", true, "alice");
  ASSERT_TRUE(covering.ok()) << covering.status();
  EXPECT_THAT(covering->removed_bans, SizeIs(1));
  EXPECT_THAT(correlator_->ActiveBans(), IsEmpty());
  EXPECT_THAT(queries_->Allowlist(false), SizeIs(2));
  const uint64_t id = AdminQueries::AllowId(Prefix("203.0.113.9"));
  EXPECT_GT(id, 0u);
  absl::StatusOr<AllowEntry> removed = queries_->RemoveAllowById(id, "bob");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->prefix, Prefix("203.0.113.9"));
  EXPECT_EQ(queries_->RemoveAllowById(id, "bob").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(AdminQueriesTest, LookupAggregatesServersUsersAndHistory) {
  std::vector<AuthEvent> events;
  for (int i = 0; i < 3; ++i) {
    events.push_back(
        Event("198.51.100.7", EventKind::kAuthFailure, "admin", "mail1", kT0));
  }
  events.push_back(Event("198.51.100.7", EventKind::kAuthFailure, "root",
                         "mail2", kT0, Protocol::kImap));
  events.push_back(
      Event("198.51.100.8", EventKind::kAuthFailure, "admin", "mail1", kT0));
  Ingest(std::move(events));
  absl::StatusOr<IpLookup> l =
      queries_->LookupIp(Ip("198.51.100.7"), absl::Hours(24), 2);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_GT(l->key.score, 0);
  EXPECT_EQ(l->ban_threshold, 10.0);
  EXPECT_THAT(l->recent_events, SizeIs(2));
  EXPECT_TRUE(l->events_truncated);
  ASSERT_THAT(l->agents_hit, SizeIs(2));
  EXPECT_EQ(l->agents_hit[0].agent_id, "mail1");
  EXPECT_EQ(l->agents_hit[0].events, 3u);
  ASSERT_THAT(l->users_tried, SizeIs(2));
  EXPECT_EQ(l->users_tried[0].user, "admin");
  EXPECT_EQ(l->users_tried[0].attempts, 3u);
  EXPECT_FALSE(l->active_ban.has_value());
  ASSERT_THAT(l->prefix_scores, SizeIs(1));
  EXPECT_EQ(l->prefix_scores[0].prefix, Prefix("198.51.100.0/24"));
  EXPECT_EQ(l->prefix_scores[0].members, 2u);
  EXPECT_FALSE(l->self_address);
  EXPECT_TRUE(
      queries_->LookupIp(Ip("192.0.2.10"), absl::Hours(1), 10)->self_address);
}

TEST_F(AdminQueriesTest, ReportSummarisesThePeriod) {
  Ingest(Failures("198.51.100.7", 12, "admin", "mail1", kT0));  // banned
  std::vector<AuthEvent> spray;
  for (int i = 0; i < 6; ++i) {
    const std::string ip = "203.0.113." + std::to_string(10 + i);
    spray.push_back(Event(ip.c_str(), EventKind::kAuthFailure, "ceo",
                          i % 2 ? "mail1" : "mail2", kT0, Protocol::kImap));
  }
  spray.push_back(
      Event("203.0.113.10", EventKind::kLockout, "ceo", "mail1", kT0));
  Ingest(std::move(spray));
  RaiseAlert("192.0.2.55", "bob");
  // Outside the period.
  clock_.Advance(absl::Hours(30));
  Ingest(Failures("198.51.100.99", 2, "x", "mail1", clock_.Now()));
  absl::StatusOr<Report> r = queries_->BuildReport(absl::Hours(29), 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->events_total, 2u);
  r = queries_->BuildReport(absl::Hours(31), 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->truncated);
  EXPECT_EQ(r->events_total, 12u + 7u + 4u + 2u);
  ASSERT_THAT(r->top_offenders, SizeIs(3));
  EXPECT_EQ(r->top_offenders[0].address, Ip("198.51.100.7"));
  EXPECT_EQ(r->top_offenders[0].events, 12u);
  // "Banned at the end of the period": its 30-minute ban has lapsed.
  EXPECT_FALSE(r->top_offenders[0].banned);
  EXPECT_GE(r->top_offenders[0].peak_score, 10.0);
  EXPECT_EQ(r->new_bans_total, 1u);
  ASSERT_THAT(r->new_bans, SizeIs(1));
  EXPECT_EQ(r->new_bans[0].ban.prefix, Prefix("198.51.100.7"));
  ASSERT_FALSE(r->targeted_accounts.empty());
  EXPECT_EQ(r->targeted_accounts[0].user, "ceo");
  EXPECT_EQ(r->targeted_accounts[0].distinct_ips, 6u);
  EXPECT_EQ(r->targeted_accounts[0].distinct_servers, 2u);
  EXPECT_TRUE(r->targeted_accounts[0].locked_out);
  ASSERT_THAT(r->compromise_alerts, SizeIs(1));
  EXPECT_EQ(r->compromise_alerts[0].user, "bob");
  // Per protocol: smtp (12 + 3 + 1 success + 1 lockout + 2), imap (6).
  ASSERT_THAT(r->per_protocol, SizeIs(2));
  EXPECT_EQ(r->per_protocol[0].protocol, Protocol::kSmtp);
  EXPECT_EQ(r->per_protocol[0].lockouts, 1u);
  EXPECT_EQ(r->per_protocol[1].protocol, Protocol::kImap);
  EXPECT_EQ(r->per_protocol[1].auth_failures, 6u);
}

TEST_F(AdminQueriesTest, ReportScanIsBounded) {
  AdminQueriesOptions q;
  q.max_scan_events = 5;
  AdminQueries small(q, *correlator_, store_, distributor_, clock_, {});
  Ingest(Failures("198.51.100.7", 8, "admin", "mail1", kT0));
  absl::StatusOr<Report> r = small.BuildReport(absl::Hours(1), 10);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->events_total, 5u);
}

TEST_F(AdminQueriesTest, AccountsAndAlerts) {
  std::vector<AuthEvent> spray;
  for (int i = 0; i < 6; ++i) {
    const std::string ip = "203.0.113." + std::to_string(10 + i);
    spray.push_back(
        Event(ip.c_str(), EventKind::kAuthFailure, "ceo", "mail1", kT0));
  }
  Ingest(std::move(spray));
  RaiseAlert("203.0.113.10", "CEO");
  absl::StatusOr<std::vector<AccountView>> accounts =
      queries_->Accounts(absl::Hours(1), 0);
  ASSERT_TRUE(accounts.ok()) << accounts.status();
  ASSERT_THAT(*accounts, SizeIs(1));
  EXPECT_EQ((*accounts)[0].user, "ceo");
  EXPECT_GE((*accounts)[0].distinct_ips, 5u);
  EXPECT_TRUE((*accounts)[0].compromise_suspected);
  EXPECT_THAT(*queries_->Accounts(absl::Hours(1), 100), IsEmpty());
  absl::StatusOr<std::vector<CompromiseAlert>> alerts =
      queries_->Alerts(kT0 - absl::Hours(1));
  ASSERT_TRUE(alerts.ok());
  ASSERT_THAT(*alerts, SizeIs(1));
  EXPECT_EQ((*alerts)[0].user, "CEO");
}

TEST_F(AdminQueriesTest, AccountEvidenceComesFromItsAttackers) {
  std::vector<AuthEvent> events;
  for (int i = 0; i < 6; ++i) {
    const std::string ip = "203.0.113." + std::to_string(10 + i);
    events.push_back(Event(ip.c_str(), EventKind::kAuthFailure, "ceo", "mail1",
                           kT0 + absl::Seconds(i)));
  }
  // The same attacker tries another account (not evidence for "ceo"), and
  // locks "ceo" out over IMAP.
  events.push_back(Event("203.0.113.10", EventKind::kAuthFailure, "hr", "mail1",
                         kT0 + absl::Seconds(10)));
  AuthEvent lockout = Event("203.0.113.10", EventKind::kLockout, "CEO", "mail2",
                            kT0 + absl::Seconds(20));
  lockout.protocol = Protocol::kImap;
  events.push_back(lockout);
  Ingest(std::move(events));
  absl::StatusOr<std::vector<AccountView>> accounts =
      queries_->Accounts(absl::Hours(1), 2);
  ASSERT_TRUE(accounts.ok()) << accounts.status();
  ASSERT_THAT(*accounts, SizeIs(1));
  AccountView ceo = (*accounts)[0];
  ASSERT_EQ(ceo.user, "ceo");
  EXPECT_THAT(ceo.evidence, IsEmpty());  // only on request
  ASSERT_TRUE(queries_->AddAccountEvidence(kT0 - absl::Hours(1), ceo).ok());
  // Five sample addresses are looked up: the lockout and five failures.
  ASSERT_THAT(ceo.evidence, SizeIs(6));
  EXPECT_EQ(ceo.evidence[0].kind, EventKind::kLockout);  // newest first
  for (size_t i = 1; i < ceo.evidence.size(); ++i) {
    EXPECT_GE(ceo.evidence[i - 1].time, ceo.evidence[i].time);
    EXPECT_EQ(ceo.evidence[i].user, "ceo");
  }
  EXPECT_TRUE(ceo.locked_out);
  EXPECT_THAT(ceo.protocols, SizeIs(2));

  // Events before `since` are not evidence.
  AccountView later = (*accounts)[0];
  ASSERT_TRUE(
      queries_->AddAccountEvidence(kT0 + absl::Seconds(15), later).ok());
  ASSERT_THAT(later.evidence, SizeIs(1));
  EXPECT_EQ(later.evidence[0].kind, EventKind::kLockout);
}

TEST_F(AdminQueriesTest, AuditFiltersAndReasons) {
  ASSERT_TRUE(queries_
                  ->AddBan(Prefix("198.51.100.7"), absl::Hours(1), "spam",
                           "alice", false)
                  .ok());
  ASSERT_TRUE(
      queries_->RemoveBanByPrefix(Prefix("198.51.100.7"), "done", "bob").ok());
  absl::StatusOr<std::vector<AuditRecord>> all =
      queries_->Audit(absl::UnixEpoch(), "", "");
  ASSERT_TRUE(all.ok());
  ASSERT_THAT(*all, SizeIs(2));
  EXPECT_EQ((*all)[0].action, "ban.remove");  // newest first
  EXPECT_EQ((*all)[1].actor, "alice");
  EXPECT_EQ(AdminQueries::AuditReason((*all)[1]), "spam");
  EXPECT_THAT(*queries_->Audit(absl::UnixEpoch(), "bob", ""), SizeIs(1));
  EXPECT_THAT(*queries_->Audit(absl::UnixEpoch(), "", "ban.add"), SizeIs(1));
}

TEST_F(AdminQueriesTest, ApplyImportDecidesEachLine) {
  ASSERT_TRUE(queries_
                  ->AddBan(Prefix("198.51.100.8"), absl::Hours(5), "long",
                           "alice", false)
                  .ok());
  ASSERT_TRUE(queries_
                  ->AddAllow(Prefix("203.0.113.0/24"), std::nullopt, "ok",
                             false, "alice")
                  .ok());
  const std::string text =
      "198.51.100.7\n198.51.100.8\n203.0.113.5\n192.0.2.10\nbogus\n"
      "198.51.100.7\n";
  absl::StatusOr<std::vector<ImportLine>> lines =
      ParseImport(ImportFormat::kPlain, text, OneHour(), kT0);
  ASSERT_TRUE(lines.ok());
  absl::StatusOr<ImportSummary> dry =
      queries_->ApplyImport(*lines, /*dry_run=*/true, "carol");
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_EQ(dry->added, 1u);
  EXPECT_EQ(dry->skipped, 4u);  // already banned, allowlisted, self, dup
  EXPECT_EQ(dry->errors, 1u);
  EXPECT_EQ(dry->revision, 0u);
  EXPECT_EQ(correlator_->revision(), 1u);

  absl::StatusOr<ImportSummary> real =
      queries_->ApplyImport(*lines, /*dry_run=*/false, "carol");
  ASSERT_TRUE(real.ok()) << real.status();
  EXPECT_EQ(real->added, 1u);
  EXPECT_EQ(real->skipped, 4u);
  EXPECT_EQ(real->errors, 1u);
  EXPECT_EQ(real->revision, 2u);
  EXPECT_EQ(real->lines[0].outcome, ImportOutcome::kAdded);
  EXPECT_GT(real->lines[0].ban_id, 0u);
  EXPECT_THAT(real->lines[1].message, HasSubstr("already banned"));
  EXPECT_THAT(real->lines[2].message, HasSubstr("allowlist"));
  EXPECT_THAT(real->lines[3].message, HasSubstr("192.0.2.10/32"));
  EXPECT_EQ(correlator_->ActiveBans().back().origin, BanOrigin::kImport);
}

TEST_F(AdminQueriesTest, CsvImportKeepsTheFilesExpiryExactly) {
  const absl::Time expires = kT0 + absl::Hours(3) + absl::Microseconds(7);
  const std::string text =
      "prefix,expires_at\n198.51.100.7," +
      absl::FormatTime(absl::RFC3339_full, expires, absl::UTCTimeZone()) + "\n";
  absl::StatusOr<std::vector<ImportLine>> lines =
      ParseImport(ImportFormat::kCsv, text, OneHour(), clock_.Now());
  ASSERT_TRUE(lines.ok()) << lines.status();
  clock_.Advance(absl::Milliseconds(1234));  // parse and commit differ
  absl::StatusOr<ImportSummary> real =
      queries_->ApplyImport(*lines, /*dry_run=*/false, "carol");
  ASSERT_TRUE(real.ok()) << real.status();
  ASSERT_EQ(real->added, 1u) << real->lines[0].message;
  ASSERT_THAT(correlator_->ActiveBans(), SizeIs(1));
  EXPECT_EQ(correlator_->ActiveBans()[0].expires, expires);

  // An expiry that passed between parse and commit is an error, not a ban.
  absl::StatusOr<std::vector<ImportLine>> soon = ParseImport(
      ImportFormat::kCsv,
      "prefix,expires_at\n198.51.100.9," +
          absl::FormatTime(absl::RFC3339_full, clock_.Now() + absl::Seconds(1),
                           absl::UTCTimeZone()) +
          "\n",
      OneHour(), clock_.Now());
  ASSERT_TRUE(soon.ok()) << soon.status();
  clock_.Advance(absl::Seconds(2));
  absl::StatusOr<ImportSummary> late =
      queries_->ApplyImport(*soon, /*dry_run=*/false, "carol");
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->errors, 1u);
  EXPECT_THAT(late->lines[0].message, HasSubstr("not in the future"));
}

TEST_F(AdminQueriesTest, DryRunReplaysOneAtATime) {
  Ingest(Failures("198.51.100.7", 6, "admin", "mail1", kT0));
  Policy strict = queries_->options().policy;
  strict.ban_threshold = 5;
  absl::StatusOr<ReplayReport> r =
      queries_->DryRun(strict, kT0 - absl::Hours(1), kT0 + absl::Hours(1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->events, 6u);
  ASSERT_THAT(r->only_candidate, SizeIs(1));
  EXPECT_EQ(r->only_candidate[0].prefix, Prefix("198.51.100.7"));
}

TEST_F(AdminQueriesTest, StatusCountsWithoutFacts) {
  distributor_.Connect("mail1", [](const std::vector<JournalEntry>&) {});
  ASSERT_TRUE(
      queries_->AddBan(Prefix("198.51.100.7"), std::nullopt, "p", "a", false)
          .ok());
  Ingest(Failures("198.51.100.9", 2, "admin", "mail1", kT0));
  const StatusView s = queries_->Status();
  EXPECT_EQ(s.current_revision, 1u);
  EXPECT_EQ(s.active_bans, 1u);
  EXPECT_EQ(s.permanent_bans, 1u);
  EXPECT_EQ(s.agents_total, 1u);
  EXPECT_EQ(s.agents_connected, 1u);
  EXPECT_EQ(s.agents_current, 0u);
  EXPECT_EQ(s.events_last_hour, 2u);
  EXPECT_EQ(s.facts.store_state, StoreHealthState::kOk);
  EXPECT_FALSE(s.facts.server_version.empty());
}

// --- AlertsHub -------------------------------------------------------------

class AlertsHubTest : public AdminQueriesTest {
 protected:
  const std::function<bool()> kNever = [] { return false; };
};

TEST_F(AlertsHubTest, NewWatchSeesOnlyNewAlerts) {
  RaiseAlert("192.0.2.55", "bob");
  AlertsHub hub(AlertsHub::Options{.poll_interval = absl::Hours(1)}, store_);
  absl::StatusOr<std::unique_ptr<AlertsHub::Watch>> w = hub.Subscribe(0);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->cursor(), 1u);
  RaiseAlert("192.0.2.56", "eve");
  absl::StatusOr<std::vector<CompromiseAlert>> next = (*w)->Next(kNever);
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_THAT(*next, SizeIs(1));
  EXPECT_EQ((*next)[0].user, "eve");
  EXPECT_EQ((*next)[0].id, 2u);
}

TEST_F(AlertsHubTest, ReplaysAfterAnId) {
  RaiseAlert("192.0.2.55", "a");
  RaiseAlert("192.0.2.56", "b");
  RaiseAlert("192.0.2.57", "c");
  AlertsHub hub(AlertsHub::Options{}, store_);
  absl::StatusOr<std::unique_ptr<AlertsHub::Watch>> w = hub.Subscribe(1);
  ASSERT_TRUE(w.ok()) << w.status();
  absl::StatusOr<std::vector<CompromiseAlert>> next = (*w)->Next(kNever);
  ASSERT_TRUE(next.ok());
  ASSERT_THAT(*next, SizeIs(2));
  EXPECT_EQ((*next)[0].id, 2u);
  EXPECT_EQ((*next)[1].id, 3u);
  // Too many to replay.
  AlertsHub small(AlertsHub::Options{.max_batch = 1}, store_);
  EXPECT_EQ(small.Subscribe(1).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(AlertsHubTest, LimitsWatchers) {
  AlertsHub hub(AlertsHub::Options{.max_watchers = 1}, store_);
  absl::StatusOr<std::unique_ptr<AlertsHub::Watch>> w = hub.Subscribe(0);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(hub.Subscribe(0).status().code(),
            absl::StatusCode::kResourceExhausted);
  w->reset();
  EXPECT_EQ(hub.watchers(), 0);
  EXPECT_TRUE(hub.Subscribe(0).ok());
}

TEST_F(AlertsHubTest, StopEndsTheWatch) {
  AlertsHub hub(AlertsHub::Options{.poll_interval = absl::Hours(1)}, store_);
  absl::StatusOr<std::unique_ptr<AlertsHub::Watch>> w = hub.Subscribe(0);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->Next([] { return true; }).status().code(),
            absl::StatusCode::kCancelled);
}

TEST_F(AlertsHubTest, NotifyAndShutdownWakeAWaitingWatcher) {
  // With an hour-long poll interval only the CondVar can wake the watcher.
  AlertsHub hub(AlertsHub::Options{.poll_interval = absl::Hours(1)}, store_);
  absl::StatusOr<std::unique_ptr<AlertsHub::Watch>> w = hub.Subscribe(0);
  ASSERT_TRUE(w.ok());
  absl::StatusOr<std::vector<CompromiseAlert>> first;
  absl::StatusOr<std::vector<CompromiseAlert>> second;
  absl::Notification first_done;
  std::thread watcher([&] {
    first = (*w)->Next(kNever);
    first_done.Notify();
    second = (*w)->Next(kNever);
  });
  RaiseAlert("192.0.2.55", "bob");
  hub.Notify();
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(60)));
  // `second` waits until Shutdown wakes it.
  hub.Shutdown();
  watcher.join();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(*first, SizeIs(1));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(hub.Subscribe(0).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace rampart::server
