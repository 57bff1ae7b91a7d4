// AdminService through a real gRPC server on 127.0.0.1:0 and the generated
// stub, over InMemoryStore + Correlator + BanDistributor + SimulatedClock.

#include "server/grpc/admin_service.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rampart/v1/admin.grpc.pb.h"
#include "server/core/protected_addresses.h"
#include "server/enroll/enrollment_manager.h"
#include "server/store/in_memory_store.h"

namespace rampart::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());

google::protobuf::Duration Hours(int h) {
  google::protobuf::Duration d;
  d.set_seconds(int64_t{h} * 3600);
  return d;
}

std::vector<AuthEvent> Failures(const char* ip, int n, const char* user,
                                const char* agent, absl::Time t) {
  std::vector<AuthEvent> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(AuthEvent{.agent_id = agent,
                            .kind = EventKind::kAuthFailure,
                            .protocol = Protocol::kSmtp,
                            .ip = IpAddress::Parse(ip),
                            .user = user,
                            .time = t});
  }
  return out;
}

class AdminServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CorrelatorOptions copts;
    copts.policy.ban_jitter = 0;
    absl::StatusOr<std::unique_ptr<Correlator>> c =
        Correlator::Create(copts, store_, clock_, distributor_);
    ASSERT_TRUE(c.ok()) << c.status();
    correlator_ = std::move(*c);
    AdminServiceOptions options;
    options.queries.policy = copts.policy;
    options.queries.self_prefixes = {*IpPrefix::FromString("192.0.2.10")};
    options.queries.protect = &protect_;
    // Short enough that watches notice cancellation quickly, long enough
    // not to spin; no test depends on its length.
    options.alerts.poll_interval = absl::Milliseconds(50);
    for (const auto& [name, role] :
         std::vector<std::pair<std::string, AdminRole>>{
             {"alice", AdminRole::kAdmin},
             {"bob", AdminRole::kOperator},
             {"carol", AdminRole::kOperator},
             {"eve", AdminRole::kOperator},
             {"reader", AdminRole::kReadOnly}}) {
      ASSERT_TRUE(auth_.EnsureToken(name, role, Secret(name.c_str())).ok());
    }
    service_ = std::make_unique<AdminService>(
        options, *correlator_, store_, distributor_, clock_, registry_, auth_,
        ServerFacts{.status =
                        [] {
                          return StatusFacts{.server_version = "9.9.9",
                                             .server_id = "srv-1",
                                             .started_at = kT0 - absl::Hours(2),
                                             .ban_list_epoch = 42,
                                             .correlator_queue_depth = 3};
                        },
                    .agents =
                        [] {
                          return std::vector<AgentFacts>{
                              AgentFacts{.agent_id = "mail1",
                                         .site = "hq",
                                         .hostname = "mail1.example",
                                         .version = "0.1.0",
                                         // Claimed in its Hello, unproven.
                                         .host_addresses = {*IpAddress::Parse(
                                             "198.51.100.50")}},
                              AgentFacts{.agent_id = "mail2",
                                         .site = "branch",
                                         .version = "0.0.9"}};
                        }});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    stub_ = v1::AdminService::NewStub(
        grpc::CreateChannel(absl::StrFormat("127.0.0.1:%d", port),
                            grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    service_->Shutdown();
    server_->Shutdown();
  }

  // The secret of the test token `name` (created in SetUp).
  static std::string Secret(const char* name) {
    return absl::StrFormat("test-token-%s-0123456789abcdef0123456789", name);
  }

  // A context with a bounded deadline and the bearer token of `actor`
  // (none for nullptr).
  std::unique_ptr<grpc::ClientContext> Ctx(const char* actor = "alice") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(60));
    if (actor != nullptr) {
      ctx->AddMetadata("authorization", "Bearer " + Secret(actor));
    }
    return ctx;
  }

  void Ingest(std::vector<AuthEvent> events) {
    absl::StatusOr<IngestResult> r =
        correlator_->Ingest(std::nullopt, std::move(events));
    ASSERT_TRUE(r.ok()) << r.status();
  }

  void RaiseAlert(const char* ip, const char* user) {
    std::vector<AuthEvent> events = Failures(ip, 3, user, "mail1", kT0);
    events.push_back(AuthEvent{.agent_id = "mail1",
                               .kind = EventKind::kAuthSuccess,
                               .protocol = Protocol::kImap,
                               .ip = IpAddress::Parse(ip),
                               .user = user,
                               .time = clock_.Now()});
    Ingest(std::move(events));
  }

  grpc::Status AddBan(const std::string& target, int hours,
                      v1::AddBanResponse* out, const char* reason = "spam") {
    v1::AddBanRequest req;
    req.set_target(target);
    if (hours > 0) {
      *req.mutable_duration() = Hours(hours);
    } else {
      req.set_permanent(true);
    }
    req.set_reason(reason);
    return stub_->AddBan(Ctx().get(), req, out);
  }

  std::string ExportText(v1::ExportFormat format, uint64_t* revision) {
    v1::ExportRequest req;
    req.set_format(format);
    auto ctx = Ctx();
    std::unique_ptr<grpc::ClientReader<v1::ExportChunk>> reader =
        stub_->Export(ctx.get(), req);
    std::string text;
    v1::ExportChunk chunk;
    bool final_seen = false;
    while (reader->Read(&chunk)) {
      text += chunk.data();
      *revision = chunk.revision();
      final_seen = chunk.final_chunk();
    }
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_TRUE(final_seen);
    return text;
  }

  SimulatedClock clock_{kT0};
  InMemoryStore store_;
  ProtectedAddresses protect_{{}, &store_};
  BanDistributor distributor_{BanDistributor::Options{}, clock_};
  metrics::Registry registry_;
  AdminAuthenticator auth_{AdminAuthenticator::Options{}, store_, clock_};
  std::unique_ptr<Correlator> correlator_;
  std::unique_ptr<AdminService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

// --- Bans --------------------------------------------------------------------

TEST_F(AdminServiceTest, AddShowListRemoveBans) {
  v1::AddBanResponse added;
  ASSERT_TRUE(AddBan("198.51.100.7", 1, &added).ok());
  EXPECT_TRUE(added.created());
  EXPECT_EQ(added.revision(), 1u);
  EXPECT_EQ(added.ban().prefix(), "198.51.100.7/32");
  EXPECT_EQ(added.ban().origin(), v1::BAN_ORIGIN_MANUAL);
  EXPECT_EQ(added.ban().scope(), v1::BAN_SCOPE_ALL_PORTS);
  EXPECT_EQ(added.ban().expires_at().seconds(),
            absl::ToUnixSeconds(kT0 + absl::Hours(1)));

  v1::AddBanResponse cidr;
  ASSERT_TRUE(AddBan("203.0.113.0/24", 0, &cidr).ok());
  EXPECT_EQ(cidr.ban().prefix(), "203.0.113.0/24");
  EXPECT_FALSE(cidr.ban().has_expires_at());  // permanent

  // Extending: same ban, created = false.
  v1::AddBanResponse extended;
  ASSERT_TRUE(AddBan("198.51.100.7", 3, &extended).ok());
  EXPECT_FALSE(extended.created());
  EXPECT_EQ(extended.ban().id(), added.ban().id());
  EXPECT_EQ(extended.revision(), 3u);

  v1::GetBanRequest get;
  get.set_address("203.0.113.9");
  v1::GetBanResponse shown;
  ASSERT_TRUE(stub_->GetBan(Ctx().get(), get, &shown).ok());
  EXPECT_EQ(shown.ban().id(), cidr.ban().id());
  EXPECT_TRUE(shown.active());
  EXPECT_EQ(shown.explanation().summary(), "spam");
  ASSERT_THAT(shown.history(), SizeIs(1));
  EXPECT_EQ(shown.history(0).action(), v1::BAN_HISTORY_ACTION_CREATED);
  EXPECT_EQ(shown.history(0).actor(), "token:alice");

  v1::ListBansResponse list;
  ASSERT_TRUE(stub_->ListBans(Ctx().get(), v1::ListBansRequest(), &list).ok());
  ASSERT_THAT(list.bans(), SizeIs(2));
  EXPECT_EQ(list.total_size(), 2u);
  EXPECT_EQ(list.bans(0).id(), cidr.ban().id());  // newest first (id desc)
  EXPECT_TRUE(list.next_page_token().empty());

  v1::ListBansRequest covering;
  covering.set_covering("198.51.100.7");
  ASSERT_TRUE(stub_->ListBans(Ctx().get(), covering, &list).ok());
  ASSERT_THAT(list.bans(), SizeIs(1));
  EXPECT_EQ(list.bans(0).prefix(), "198.51.100.7/32");

  v1::RemoveBanRequest remove;
  remove.set_target("203.0.113.0/24");
  remove.set_reason("false positive");
  v1::RemoveBanResponse removed;
  ASSERT_TRUE(stub_->RemoveBan(Ctx().get(), remove, &removed).ok());
  EXPECT_EQ(removed.removed().id(), cidr.ban().id());
  EXPECT_EQ(removed.revision(), 4u);
  v1::RemoveBanRequest by_id;
  by_id.set_id(added.ban().id());
  by_id.set_reason("done");
  ASSERT_TRUE(stub_->RemoveBan(Ctx().get(), by_id, &removed).ok());
  EXPECT_EQ(removed.removed().prefix(), "198.51.100.7/32");

  ASSERT_TRUE(stub_->ListBans(Ctx().get(), v1::ListBansRequest(), &list).ok());
  EXPECT_THAT(list.bans(), IsEmpty());
  v1::ListBansRequest all;
  all.set_state(v1::BAN_STATE_FILTER_ALL);
  ASSERT_TRUE(stub_->ListBans(Ctx().get(), all, &list).ok());
  EXPECT_THAT(list.bans(), SizeIs(2));

  // Unknown bans.
  grpc::Status s = stub_->RemoveBan(Ctx().get(), by_id, &removed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::GetBanRequest unknown;
  unknown.set_id(999);
  EXPECT_EQ(stub_->GetBan(Ctx().get(), unknown, &shown).error_code(),
            grpc::StatusCode::NOT_FOUND);
  get.set_address("198.51.100.200");
  EXPECT_EQ(stub_->GetBan(Ctx().get(), get, &shown).error_code(),
            grpc::StatusCode::NOT_FOUND);
  get.set_include_inactive(true);
  get.set_address("198.51.100.7");
  ASSERT_TRUE(stub_->GetBan(Ctx().get(), get, &shown).ok());
  EXPECT_FALSE(shown.active());
  ASSERT_THAT(shown.history(), SizeIs(3));  // created, updated, removed
  EXPECT_EQ(shown.history(2).action(), v1::BAN_HISTORY_ACTION_REMOVED);
}

TEST_F(AdminServiceTest, LiveOnCountsFollowEnforcedRevisions) {
  distributor_.Connect("mail1", [](const std::vector<JournalEntry>&) {});
  distributor_.Connect("mail2", [](const std::vector<JournalEntry>&) {});
  v1::AddBanResponse added;
  ASSERT_TRUE(AddBan("198.51.100.7", 1, &added).ok());
  ASSERT_EQ(added.ban().revision(), 1u);

  v1::GetBanRequest get;
  get.set_id(added.ban().id());
  v1::GetBanResponse shown;
  ASSERT_TRUE(stub_->GetBan(Ctx().get(), get, &shown).ok());
  EXPECT_EQ(shown.agents_enforcing(), 0u);
  EXPECT_EQ(shown.agents_total(), 2u);

  distributor_.ReportEnforced("mail1", 1);  // the fake agent applied it
  ASSERT_TRUE(stub_->GetBan(Ctx().get(), get, &shown).ok());
  EXPECT_EQ(shown.agents_enforcing(), 1u);  // live on 1 of 2
  EXPECT_EQ(shown.agents_total(), 2u);
  ASSERT_THAT(shown.enforcement(), SizeIs(2));
  EXPECT_EQ(shown.enforcement(0).agent_id(), "mail1");
  EXPECT_TRUE(shown.enforcement(0).enforced());
  EXPECT_EQ(shown.enforcement(0).site(), "hq");
  EXPECT_TRUE(shown.enforcement(0).connected());
  EXPECT_FALSE(shown.enforcement(1).enforced());

  // ListBans carries each ban's revision; ListAgents the enforced ones.
  v1::ListBansResponse list;
  ASSERT_TRUE(stub_->ListBans(Ctx().get(), v1::ListBansRequest(), &list).ok());
  ASSERT_THAT(list.bans(), SizeIs(1));
  EXPECT_EQ(list.bans(0).revision(), 1u);
  v1::ListAgentsResponse agents;
  ASSERT_TRUE(
      stub_->ListAgents(Ctx().get(), v1::ListAgentsRequest(), &agents).ok());
  EXPECT_EQ(agents.current_revision(), 1u);
  ASSERT_THAT(agents.agents(), SizeIs(2));
  EXPECT_EQ(agents.agents(0).agent_id(), "mail1");
  EXPECT_EQ(agents.agents(0).agent_version(), "0.1.0");
  EXPECT_EQ(agents.agents(0).hostname(), "mail1.example");
  EXPECT_TRUE(agents.agents(0).connected());
  EXPECT_EQ(agents.agents(0).enforced_revision(), 1u);
  EXPECT_EQ(agents.agents(0).revision_lag(), 0u);
  EXPECT_EQ(agents.agents(1).revision_lag(), 1u);
  EXPECT_EQ(agents.agents(0).last_seen().seconds(), absl::ToUnixSeconds(kT0));

  distributor_.ReportEnforced("mail2", 1);
  ASSERT_TRUE(stub_->GetBan(Ctx().get(), get, &shown).ok());
  EXPECT_EQ(shown.agents_enforcing(), 2u);

  v1::ListAgentsRequest branch;
  branch.set_site("branch");
  ASSERT_TRUE(stub_->ListAgents(Ctx().get(), branch, &agents).ok());
  ASSERT_THAT(agents.agents(), SizeIs(1));
  EXPECT_EQ(agents.agents(0).agent_id(), "mail2");
}

TEST_F(AdminServiceTest, InvalidInputsNameTheField) {
  v1::AddBanResponse out;
  struct Case {
    std::string target;
    int hours;
    std::string reason;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {"", 1, "r", "target"},
           {"198.51.100.300", 1, "r", "target"},
           {"198.51.100.7/24", 1, "r", "target"},  // host bits set
           {"198.51.100.7", 1, "", "reason"},
           {"198.51.100.7", 1, std::string(257, 'x'), "reason"},
       }) {
    grpc::Status s = AddBan(c.target, c.hours, &out, c.reason.c_str());
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.target;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field)) << c.target;
  }
  v1::AddBanRequest req;
  req.set_target("198.51.100.7");
  req.set_reason("r");
  grpc::Status s = stub_->AddBan(Ctx().get(), req, &out);  // no lifetime
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("lifetime"));
  req.mutable_duration()->set_seconds(-5);
  s = stub_->AddBan(Ctx().get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("duration"));
  req.mutable_duration()->set_seconds(int64_t{3651} * 86400);
  EXPECT_EQ(stub_->AddBan(Ctx().get(), req, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  req.set_permanent(false);
  EXPECT_EQ(stub_->AddBan(Ctx().get(), req, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  req.set_permanent(true);
  req.set_scope(v1::BAN_SCOPE_MAIL);
  EXPECT_EQ(stub_->AddBan(Ctx().get(), req, &out).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);

  // Broad and self targets are preconditions, not argument errors.
  EXPECT_EQ(AddBan("10.0.0.0/8", 1, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  req.set_scope(v1::BAN_SCOPE_UNSPECIFIED);
  req.set_target("10.0.0.0/8");
  req.set_allow_broad_prefix(true);
  EXPECT_TRUE(stub_->AddBan(Ctx().get(), req, &out).ok());
  EXPECT_EQ(AddBan("192.0.2.10", 1, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  v1::ListBansRequest list;
  v1::ListBansResponse listed;
  list.set_page_size(-1);
  s = stub_->ListBans(Ctx().get(), list, &listed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_size"));
  list.set_page_size(0);
  list.set_page_token("garbage!");
  s = stub_->ListBans(Ctx().get(), list, &listed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));
  list.set_page_token("");
  list.set_within("not-a-cidr");
  s = stub_->ListBans(Ctx().get(), list, &listed);
  EXPECT_THAT(s.error_message(), HasSubstr("within"));

  v1::GetBanResponse got;
  EXPECT_EQ(stub_->GetBan(Ctx().get(), v1::GetBanRequest(), &got).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::RemoveBanRequest remove;
  remove.set_target("198.51.100.7");
  v1::RemoveBanResponse removed;
  s = stub_->RemoveBan(Ctx().get(), remove, &removed);  // no reason
  EXPECT_THAT(s.error_message(), HasSubstr("reason"));

  v1::LookupIpRequest lookup;
  lookup.set_address("203.0.113.0/24");
  v1::LookupIpResponse looked;
  s = stub_->LookupIp(Ctx().get(), lookup, &looked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("address"));
  lookup.set_address("203.0.113.9");
  *lookup.mutable_window() = Hours(24 * 31);
  s = stub_->LookupIp(Ctx().get(), lookup, &looked);
  EXPECT_THAT(s.error_message(), HasSubstr("window"));

  v1::ReportRequest report;
  report.set_top_n(1001);
  v1::ReportResponse reported;
  s = stub_->Report(Ctx().get(), report, &reported);
  EXPECT_THAT(s.error_message(), HasSubstr("top_n"));

  v1::ExportRequest exp;
  auto ctx = Ctx();
  auto reader = stub_->Export(ctx.get(), exp);
  v1::ExportChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("format"));
}

TEST_F(AdminServiceTest, PagingWalksEveryBanOnce) {
  for (int i = 0; i < 7; ++i) {
    v1::AddBanResponse out;
    ASSERT_TRUE(AddBan(absl::StrFormat("198.51.100.%d", 10 + i), 1, &out).ok());
    clock_.Advance(absl::Seconds(1));
  }
  v1::ListBansRequest req;
  req.set_page_size(3);
  std::vector<uint64_t> ids;
  for (int page = 0; page < 10; ++page) {
    v1::ListBansResponse resp;
    ASSERT_TRUE(stub_->ListBans(Ctx().get(), req, &resp).ok());
    EXPECT_EQ(resp.total_size(), 7u);
    for (const v1::BanEntry& b : resp.bans()) {
      ids.push_back(b.id());
    }
    if (resp.next_page_token().empty()) {
      break;
    }
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_THAT(ids, ElementsAre(7, 6, 5, 4, 3, 2, 1));
  // A token is bound to its filters.
  req.set_covering("198.51.100.10");
  v1::ListBansResponse resp;
  EXPECT_EQ(stub_->ListBans(Ctx().get(), req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// --- LookupIp ----------------------------------------------------------------

TEST_F(AdminServiceTest, LookupAfterIngest) {
  std::vector<AuthEvent> events =
      Failures("198.51.100.7", 4, "admin", "mail1", kT0);
  std::vector<AuthEvent> more =
      Failures("198.51.100.7", 2, "postmaster", "mail2", kT0);
  events.insert(events.end(), more.begin(), more.end());
  Ingest(std::move(events));
  v1::LookupIpRequest req;
  req.set_address("198.51.100.7");
  v1::LookupIpResponse resp;
  ASSERT_TRUE(stub_->LookupIp(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.address(), "198.51.100.7");
  EXPECT_GT(resp.score(), 0);
  EXPECT_EQ(resp.ban_threshold(), 10.0);
  EXPECT_THAT(resp.recent_events(), SizeIs(6));
  EXPECT_FALSE(resp.events_truncated());
  EXPECT_EQ(resp.recent_events(0).event().ip(), "198.51.100.7");
  ASSERT_THAT(resp.agents_hit(), SizeIs(2));
  EXPECT_EQ(resp.agents_hit(0).agent_id(), "mail1");
  EXPECT_EQ(resp.agents_hit(0).events(), 4u);
  ASSERT_THAT(resp.users_tried(), SizeIs(2));
  EXPECT_EQ(resp.users_tried(0).user(), "admin");
  EXPECT_EQ(resp.users_tried(1).user(), "postmaster");
  EXPECT_FALSE(resp.has_active_ban());
  ASSERT_THAT(resp.prefix_scores(), SizeIs(1));
  EXPECT_EQ(resp.prefix_scores(0).prefix(), "198.51.100.0/24");

  // Ban it: the lookup shows the ban.
  v1::AddBanResponse added;
  ASSERT_TRUE(AddBan("198.51.100.0/24", 1, &added).ok());
  req.set_max_events(2);
  ASSERT_TRUE(stub_->LookupIp(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.active_ban().prefix(), "198.51.100.0/24");
  ASSERT_THAT(resp.bans(), SizeIs(1));
  EXPECT_THAT(resp.recent_events(), SizeIs(2));
  EXPECT_TRUE(resp.events_truncated());
}

// --- Allowlist -------------------------------------------------------------

TEST_F(AdminServiceTest, AllowlistCrud) {
  v1::AddBanResponse banned;
  ASSERT_TRUE(AddBan("198.51.100.7", 1, &banned).ok());
  v1::AddAllowRequest add;
  add.set_cidr("198.51.100.0/24");
  add.set_comment("office NAT");
  v1::AddAllowResponse added;
  ASSERT_TRUE(stub_->AddAllow(Ctx().get(), add, &added).ok());
  EXPECT_EQ(added.entry().prefix(), "198.51.100.0/24");
  EXPECT_EQ(added.entry().created_by(), "token:alice");
  EXPECT_GT(added.entry().id(), 0u);
  ASSERT_THAT(added.removed_bans(), SizeIs(1));
  EXPECT_EQ(added.removed_bans(0).id(), banned.ban().id());
  EXPECT_EQ(added.revision(), 2u);
  EXPECT_EQ(stub_->AddAllow(Ctx().get(), add, &added).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::AddBanResponse refused;
  EXPECT_EQ(AddBan("198.51.100.9", 1, &refused).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  v1::AddAllowRequest temp;
  temp.set_cidr("2001:db8::/48");
  *temp.mutable_duration() = Hours(2);
  ASSERT_TRUE(stub_->AddAllow(Ctx().get(), temp, &added).ok());
  EXPECT_EQ(added.entry().expires_at().seconds(),
            absl::ToUnixSeconds(kT0 + absl::Hours(2)));

  v1::ListAllowResponse list;
  ASSERT_TRUE(
      stub_->ListAllow(Ctx().get(), v1::ListAllowRequest(), &list).ok());
  ASSERT_THAT(list.entries(), SizeIs(2));
  EXPECT_EQ(list.entries(0).prefix(), "198.51.100.0/24");  // v4 sorts first
  EXPECT_EQ(list.entries(1).prefix(), "2001:db8::/48");

  clock_.Advance(absl::Hours(3));  // the v6 entry lapses
  ASSERT_TRUE(
      stub_->ListAllow(Ctx().get(), v1::ListAllowRequest(), &list).ok());
  EXPECT_THAT(list.entries(), SizeIs(1));
  v1::ListAllowRequest with_expired;
  with_expired.set_include_expired(true);
  ASSERT_TRUE(stub_->ListAllow(Ctx().get(), with_expired, &list).ok());
  EXPECT_THAT(list.entries(), SizeIs(2));

  v1::RemoveAllowRequest remove;
  remove.set_id(list.entries(0).id());
  v1::RemoveAllowResponse removed;
  ASSERT_TRUE(stub_->RemoveAllow(Ctx().get(), remove, &removed).ok());
  EXPECT_EQ(removed.removed().prefix(), "198.51.100.0/24");
  EXPECT_EQ(stub_->RemoveAllow(Ctx().get(), remove, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  remove.set_cidr("2001:db8::/48");
  ASSERT_TRUE(stub_->RemoveAllow(Ctx().get(), remove, &removed).ok());
  remove.set_cidr("nope");
  EXPECT_EQ(stub_->RemoveAllow(Ctx().get(), remove, &removed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(
      stub_->ListAllow(Ctx().get(), v1::ListAllowRequest(), &list).ok());
  EXPECT_THAT(list.entries(), IsEmpty());
}

// --- Accounts, alerts
// ----------------------------------------------------------

TEST_F(AdminServiceTest, AccountsUnderAttack) {
  std::vector<AuthEvent> spray;
  for (int i = 0; i < 6; ++i) {
    std::vector<AuthEvent> one =
        Failures(absl::StrFormat("203.0.113.%d", 10 + i).c_str(), 1, "ceo",
                 "mail1", kT0);
    spray.insert(spray.end(), one.begin(), one.end());
  }
  Ingest(std::move(spray));
  v1::ListAccountsResponse resp;
  ASSERT_TRUE(
      stub_->ListAccounts(Ctx().get(), v1::ListAccountsRequest(), &resp).ok());
  ASSERT_THAT(resp.accounts(), SizeIs(1));
  EXPECT_EQ(resp.accounts(0).user(), "ceo");
  EXPECT_EQ(resp.accounts(0).distinct_ips(), 6u);
  EXPECT_EQ(resp.accounts(0).window().seconds(), 3600);
  EXPECT_THAT(resp.accounts(0).agent_ids(), ElementsAre("mail1"));
  v1::ListAccountsRequest strict;
  strict.set_min_distinct_ips(7);
  ASSERT_TRUE(stub_->ListAccounts(Ctx().get(), strict, &resp).ok());
  EXPECT_THAT(resp.accounts(), IsEmpty());
}

TEST_F(AdminServiceTest, ListAlerts) {
  RaiseAlert("192.0.2.55", "bob");
  RaiseAlert("192.0.2.56", "eve");
  v1::ListAlertsResponse resp;
  ASSERT_TRUE(
      stub_->ListAlerts(Ctx().get(), v1::ListAlertsRequest(), &resp).ok());
  ASSERT_THAT(resp.alerts(), SizeIs(2));
  EXPECT_EQ(resp.alerts(0).id(), 2u);  // id descending
  EXPECT_EQ(resp.alerts(0).user(), "eve");
  EXPECT_EQ(resp.alerts(0).ip(), "192.0.2.56");
  EXPECT_EQ(resp.alerts(0).kind(), v1::ALERT_KIND_SUCCESS_AFTER_FAILURES);
  EXPECT_FALSE(resp.alerts(0).summary().empty());

  // Paging with the default `since` survives the clock moving on.
  v1::ListAlertsRequest paged;
  paged.set_page_size(1);
  ASSERT_TRUE(stub_->ListAlerts(Ctx().get(), paged, &resp).ok());
  ASSERT_THAT(resp.alerts(), SizeIs(1));
  EXPECT_EQ(resp.alerts(0).id(), 2u);
  clock_.Advance(absl::Minutes(1));
  paged.set_page_token(resp.next_page_token());
  ASSERT_TRUE(stub_->ListAlerts(Ctx().get(), paged, &resp).ok());
  ASSERT_THAT(resp.alerts(), SizeIs(1));
  EXPECT_EQ(resp.alerts(0).id(), 1u);
  EXPECT_TRUE(resp.next_page_token().empty());
}

TEST_F(AdminServiceTest, WatchDeliversNewAlertsAndEndsOnCancel) {
  RaiseAlert("192.0.2.55", "old");
  auto ctx = Ctx();
  std::unique_ptr<grpc::ClientReader<v1::WatchAlertsResponse>> reader =
      stub_->WatchAlerts(ctx.get(), v1::WatchAlertsRequest());
  // The server sends initial metadata once the watch is registered.
  reader->WaitForInitialMetadata();
  ASSERT_TRUE(
      service_->AlertsHubForTest().AwaitWatchersForTest(1, absl::Seconds(60)));

  RaiseAlert("192.0.2.56", "new");  // found by the next poll
  v1::WatchAlertsResponse got;
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.alert().id(), 2u);
  EXPECT_EQ(got.alert().user(), "new");

  RaiseAlert("192.0.2.57", "newer");
  service_->NotifyAlerts();  // the ingest hook: delivered at once
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.alert().id(), 3u);

  ctx->TryCancel();
  EXPECT_FALSE(reader->Read(&got));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The server side ends too.
  EXPECT_TRUE(
      service_->AlertsHubForTest().AwaitWatchersForTest(0, absl::Seconds(60)));
}

TEST_F(AdminServiceTest, WatchReplaysAndEndsOnShutdown) {
  RaiseAlert("192.0.2.55", "a");
  RaiseAlert("192.0.2.56", "b");
  v1::WatchAlertsRequest req;
  req.set_after_alert_id(1);
  auto ctx = Ctx();
  auto reader = stub_->WatchAlerts(ctx.get(), req);
  v1::WatchAlertsResponse got;
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.alert().id(), 2u);
  service_->Shutdown();
  EXPECT_FALSE(reader->Read(&got));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

// --- Report ------------------------------------------------------------------

TEST_F(AdminServiceTest, ReportContents) {
  Ingest(Failures("198.51.100.7", 12, "admin", "mail1", kT0));  // auto ban
  Ingest(Failures("198.51.100.8", 3, "root", "mail2", kT0));
  RaiseAlert("192.0.2.55", "bob");
  v1::ReportRequest req;
  *req.mutable_since() = Hours(24);
  req.set_top_n(2);
  v1::ReportResponse resp;
  ASSERT_TRUE(stub_->Report(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.period_end().seconds(), absl::ToUnixSeconds(kT0));
  EXPECT_EQ(resp.period_start().seconds(),
            absl::ToUnixSeconds(kT0 - absl::Hours(24)));
  EXPECT_EQ(resp.events_total(), 12u + 3u + 4u);
  ASSERT_THAT(resp.top_offenders(), SizeIs(2));
  EXPECT_EQ(resp.top_offenders(0).address(), "198.51.100.7");
  EXPECT_EQ(resp.top_offenders(0).events(), 12u);
  EXPECT_TRUE(resp.top_offenders(0).banned());
  EXPECT_EQ(resp.top_offenders(0).distinct_users(), 1u);
  EXPECT_EQ(resp.new_bans_total(), 1u);
  ASSERT_THAT(resp.new_bans(), SizeIs(1));
  EXPECT_EQ(resp.new_bans(0).origin(), v1::BAN_ORIGIN_AUTO);
  ASSERT_THAT(resp.targeted_accounts(), SizeIs(2));
  EXPECT_EQ(resp.targeted_accounts(0).user(), "admin");
  ASSERT_THAT(resp.compromise_alerts(), SizeIs(1));
  EXPECT_EQ(resp.compromise_alerts(0).user(), "bob");
  ASSERT_THAT(resp.per_protocol(), SizeIs(2));
  EXPECT_EQ(resp.per_protocol(0).protocol(), v1::PROTOCOL_SMTP);
  EXPECT_EQ(resp.per_protocol(0).auth_failures(), 18u);
  EXPECT_EQ(resp.per_protocol(1).protocol(), v1::PROTOCOL_IMAP);
  EXPECT_EQ(resp.per_protocol(1).total(), 1u);
}

// --- Export / import ---------------------------------------------------------

TEST_F(AdminServiceTest, ExportFormats) {
  v1::AddBanResponse out;
  ASSERT_TRUE(AddBan("203.0.113.0/24", 0, &out, "scanner, \"big\"").ok());
  ASSERT_TRUE(AddBan("198.51.100.7", 1, &out).ok());
  ASSERT_TRUE(AddBan("2001:db8::/64", 2, &out).ok());
  uint64_t revision = 0;
  EXPECT_EQ(ExportText(v1::EXPORT_FORMAT_PLAIN, &revision),
            "198.51.100.7/32\n203.0.113.0/24\n2001:db8::/64\n");
  EXPECT_EQ(revision, 3u);
  EXPECT_EQ(
      ExportText(v1::EXPORT_FORMAT_CSV, &revision),
      "id,prefix,created_at,expires_at,origin,scope,escalation_level,reason\r\n"
      "2,198.51.100.7/32,2024-03-06T10:00:00Z,2024-03-06T11:00:00Z,manual,"
      "all_ports,0,spam\r\n"
      "1,203.0.113.0/24,2024-03-06T10:00:00Z,,manual,all_ports,0,"
      "\"scanner, \"\"big\"\"\"\r\n"
      "3,2001:db8::/64,2024-03-06T10:00:00Z,2024-03-06T12:00:00Z,manual,"
      "all_ports,0,spam\r\n");
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(
      ExportText(v1::EXPORT_FORMAT_NFT, &revision),
      "#!/usr/sbin/nft -f\n"
      "# Rampart ban list, revision 3, 3 entries. Load with: nft -f FILE\n"
      "table inet rampart {\n"
      "  set rampart_v4 { type ipv4_addr; flags interval, timeout; }\n"
      "  set rampart_v6 { type ipv6_addr; flags interval, timeout; }\n"
      "}\n"
      "add element inet rampart rampart_v4 { 198.51.100.7/32 timeout 3000s }\n"
      "add element inet rampart rampart_v4 { 203.0.113.0/24 }\n"
      "add element inet rampart rampart_v6 { 2001:db8::/64 timeout 6600s }\n");
  EXPECT_EQ(
      ExportText(v1::EXPORT_FORMAT_NETSH, &revision),
      "# Rampart ban list, revision 3, 3 entries: Windows Firewall block "
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

TEST_F(AdminServiceTest, ImportPlainAndCsvWithBadLines) {
  v1::ImportRequest plain;
  plain.set_format(v1::IMPORT_FORMAT_PLAIN);
  plain.set_text(
      "# from the old fail2ban\n"
      "198.51.100.7\n"
      "198.51.100.300\n"
      "\n"
      "203.0.113.0/24 # scanner\n"
      "192.0.2.10\n");
  *plain.mutable_duration() = Hours(6);
  plain.set_reason("legacy list");
  v1::ImportResponse resp;
  ASSERT_TRUE(stub_->Import(Ctx("carol").get(), plain, &resp).ok());
  EXPECT_EQ(resp.added(), 2u);
  EXPECT_EQ(resp.errors(), 1u);
  EXPECT_EQ(resp.skipped(), 1u);  // the server's own address
  EXPECT_EQ(resp.revision(), 2u);
  ASSERT_THAT(resp.results(), SizeIs(2));  // only lines not added
  EXPECT_EQ(resp.results(0).line_number(), 3u);
  EXPECT_EQ(resp.results(0).outcome(), v1::IMPORT_LINE_OUTCOME_ERROR);
  EXPECT_EQ(resp.results(1).line_number(), 6u);
  EXPECT_EQ(resp.results(1).outcome(), v1::IMPORT_LINE_OUTCOME_SKIPPED);

  v1::ImportRequest csv;
  csv.set_format(v1::IMPORT_FORMAT_CSV);
  csv.set_text(
      "prefix,expires_at,reason\n"
      "198.51.100.7,2024-03-07T10:00:00Z,longer now\n"
      "198.51.100.9,,\"from \"\"csv\"\"\"\n"
      "bogus,,\n"
      "198.51.100.10,yesterday,\n");
  csv.set_reason("csv import");
  csv.set_report_all_lines(true);
  ASSERT_TRUE(stub_->Import(Ctx("carol").get(), csv, &resp).ok());
  EXPECT_EQ(resp.updated(), 1u);
  EXPECT_EQ(resp.added(), 0u);
  EXPECT_EQ(resp.errors(), 3u);  // no lifetime for line 3, bogus, bad time
  ASSERT_THAT(resp.results(), SizeIs(4));
  EXPECT_EQ(resp.results(0).outcome(), v1::IMPORT_LINE_OUTCOME_UPDATED);
  EXPECT_GT(resp.results(0).ban_id(), 0u);
  EXPECT_THAT(resp.results(1).message(), HasSubstr("lifetime"));

  csv.set_permanent(true);
  csv.set_dry_run(true);
  ASSERT_TRUE(stub_->Import(Ctx("carol").get(), csv, &resp).ok());
  EXPECT_EQ(resp.added(), 1u);
  EXPECT_EQ(resp.revision(), 0u);

  v1::ImportRequest bad;
  bad.set_format(v1::IMPORT_FORMAT_PLAIN);
  bad.set_reason("r");
  bad.set_text("198.51.100.7\n");
  grpc::Status s = stub_->Import(Ctx().get(), bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("lifetime"));
  bad.set_format(v1::IMPORT_FORMAT_UNSPECIFIED);
  EXPECT_EQ(stub_->Import(Ctx().get(), bad, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_format(v1::IMPORT_FORMAT_PLAIN);
  bad.set_permanent(true);
  bad.set_text(std::string(v1::kMaxImportTextBytes + 1, '\n'));
  s = stub_->Import(Ctx().get(), bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("text"));
}

// Issue 16 item 4: an allowlist entry as wide as 0.0.0.0/0 or ::/0 switches
// banning off. Entries broader than /16 IPv4 or /32 IPv6 need the admin role
// AND allow_broad_prefix, and are audited as "allow.add.broad".
TEST_F(AdminServiceTest, BroadAllowNeedsAdminAndFlagAndIsAudited) {
  for (const char* cidr : {"0.0.0.0/0", "::/0", "198.0.0.0/15"}) {
    SCOPED_TRACE(cidr);
    v1::AddAllowRequest add;
    add.set_cidr(cidr);
    add.set_comment("everything");
    v1::AddAllowResponse added;
    // Operator: refused with or without the flag.
    EXPECT_EQ(stub_->AddAllow(Ctx("bob").get(), add, &added).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    add.set_allow_broad_prefix(true);
    EXPECT_EQ(stub_->AddAllow(Ctx("bob").get(), add, &added).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    // Admin without the flag: refused.
    add.set_allow_broad_prefix(false);
    const grpc::Status no_flag = stub_->AddAllow(Ctx().get(), add, &added);
    EXPECT_EQ(no_flag.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(no_flag.error_message(), HasSubstr("allow_broad_prefix"));
  }
  v1::ListAllowResponse list;
  ASSERT_TRUE(
      stub_->ListAllow(Ctx().get(), v1::ListAllowRequest(), &list).ok());
  EXPECT_THAT(list.entries(), SizeIs(0));

  // Narrow entries stay an operator's business.
  v1::AddAllowRequest narrow;
  narrow.set_cidr("198.51.100.0/24");
  v1::AddAllowResponse added;
  EXPECT_TRUE(stub_->AddAllow(Ctx("bob").get(), narrow, &added).ok());
  narrow.set_cidr("2001:db8::/32");
  EXPECT_TRUE(stub_->AddAllow(Ctx("bob").get(), narrow, &added).ok());

  // Admin with the flag: added and audited as broad.
  v1::AddAllowRequest add;
  add.set_cidr("::/0");
  add.set_comment("maintenance");
  add.set_allow_broad_prefix(true);
  ASSERT_TRUE(stub_->AddAllow(Ctx().get(), add, &added).ok());
  EXPECT_EQ(added.entry().prefix(), "::/0");
  v1::ListAuditResponse audit;
  ASSERT_TRUE(
      stub_->ListAudit(Ctx().get(), v1::ListAuditRequest(), &audit).ok());
  ASSERT_THAT(audit.records(), SizeIs(3));
  EXPECT_EQ(audit.records(0).action(), "allow.add.broad");
  EXPECT_EQ(audit.records(0).actor(), "token:alice");
  EXPECT_EQ(audit.records(0).target(), "::/0");
  EXPECT_EQ(audit.records(1).action(), "allow.add");
}

// Issue 16 item 3: Hello.host_addresses went straight into the protected
// set, so a stolen agent key made any address unbannable, even by an admin.
// A claimed address protects nothing: an operator bans it.
TEST_F(AdminServiceTest, ClaimedHostAddressDoesNotBlockAdminBans) {
  v1::AddBanResponse out;
  v1::AddBanRequest req;
  req.set_target("198.51.100.50");  // mail1's claimed host address
  *req.mutable_duration() = Hours(1);
  req.set_reason("stolen key claimed it");
  const grpc::Status s = stub_->AddBan(Ctx("bob").get(), req, &out);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.ban().prefix(), "198.51.100.50/32");
}

// Proven addresses (peer, admin-approved) protect; approval is the admin's,
// audited; the override bans one anyway (admin only, audited); revoking the
// agent drops its entries, here and in the store.
TEST_F(AdminServiceTest, ApprovedAddressesProtectUntilOverriddenOrRevoked) {
  ASSERT_TRUE(protect_
                  .AgentConnected("mail1", *IpAddress::Parse("203.0.113.5"),
                                  {*IpAddress::Parse("198.51.100.50"),
                                   *IpAddress::Parse("198.51.100.60")},
                                  kT0)
                  .ok());
  v1::SetAgentProtectionRequest approve;
  approve.set_agent_id("mail1");
  approve.add_addresses("198.51.100.60");
  v1::SetAgentProtectionResponse approved;
  EXPECT_EQ(stub_->SetAgentProtection(Ctx("bob").get(), approve, &approved)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(stub_->SetAgentProtection(Ctx().get(), approve, &approved).ok());
  EXPECT_THAT(approved.protected_addresses(),
              ElementsAre("203.0.113.5", "198.51.100.60"));
  EXPECT_THAT(approved.unapproved_addresses(), ElementsAre("198.51.100.50"));
  approve.set_addresses(0, "198.51.100.0/24");  // a prefix: refused
  EXPECT_EQ(
      stub_->SetAgentProtection(Ctx().get(), approve, &approved).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);

  // agents list shows what protects and what is only claimed.
  v1::ListAgentsResponse agents;
  ASSERT_TRUE(
      stub_->ListAgents(Ctx().get(), v1::ListAgentsRequest(), &agents).ok());
  ASSERT_GE(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).agent_id(), "mail1");
  EXPECT_THAT(agents.agents(0).protected_addresses(),
              ElementsAre("203.0.113.5", "198.51.100.60"));
  EXPECT_THAT(agents.agents(0).unapproved_addresses(),
              ElementsAre("198.51.100.50"));

  // Peer and approved addresses refuse a ban; claimed ones do not.
  v1::AddBanResponse out;
  for (const char* target : {"203.0.113.5", "198.51.100.60"}) {
    const grpc::Status s = AddBan(target, 1, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << target;
    EXPECT_THAT(s.error_message(), HasSubstr("override_protected"));
  }
  EXPECT_TRUE(AddBan("198.51.100.50", 1, &out).ok());

  // The override: admin only, audited.
  v1::AddBanRequest over;
  over.set_target("198.51.100.60");
  *over.mutable_duration() = Hours(1);
  over.set_reason("agent host compromised");
  over.set_override_protected(true);
  EXPECT_EQ(stub_->AddBan(Ctx("bob").get(), over, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(stub_->AddBan(Ctx().get(), over, &out).ok());
  EXPECT_EQ(out.ban().prefix(), "198.51.100.60/32");
  // Never the server's own prefix.
  over.set_target("192.0.2.10");
  EXPECT_EQ(stub_->AddBan(Ctx().get(), over, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::ListAuditResponse audit;
  ASSERT_TRUE(
      stub_->ListAudit(Ctx().get(), v1::ListAuditRequest(), &audit).ok());
  std::vector<std::string> actions;
  for (const v1::AuditRecord& r : audit.records()) {
    actions.push_back(r.action() + " " + r.target());
  }
  EXPECT_THAT(actions, ::testing::IsSupersetOf(
                           {"agent.protect mail1",
                            "ban.override_protected 198.51.100.60/32"}));

  // Revocation drops every entry of the agent, also from the store.
  ASSERT_TRUE(store_
                  .PutEnrollment(AgentEnrollment{
                      .agent_id = "mail1", .site = "hq", .cert_sha256 = "ab"})
                  .ok());
  EnrollmentManager manager(EnrollmentManagerOptions{}, store_, store_, nullptr,
                            clock_);
  ASSERT_TRUE(manager.LoadRecords().ok());
  service_->SetAgentIdentity(&manager,
                             [](const std::string&) { return false; });
  v1::RevokeAgentRequest revoke;
  revoke.set_agent_id("mail1");
  revoke.set_reason("key stolen");
  v1::RevokeAgentResponse revoked;
  ASSERT_TRUE(stub_->RevokeAgent(Ctx().get(), revoke, &revoked).ok());
  EXPECT_FALSE(protect_.Overlap(*IpPrefix::FromString("203.0.113.5")));
  EXPECT_FALSE(protect_.Overlap(*IpPrefix::FromString("198.51.100.60")));
  EXPECT_THAT(*store_.ListProtectedAddresses(), ::testing::IsEmpty());
  service_->SetAgentIdentity(nullptr, nullptr);
}

// --- Audit, status, the rest -------------------------------------------------

TEST_F(AdminServiceTest, AuditShowsMutationsWithActor) {
  v1::AddBanResponse out;
  ASSERT_TRUE(AddBan("198.51.100.7", 1, &out, "brute force").ok());
  v1::RemoveBanRequest remove;
  remove.set_target("198.51.100.7");
  remove.set_reason("mistake");
  v1::RemoveBanResponse removed;
  ASSERT_TRUE(stub_->RemoveBan(Ctx("bob").get(), remove, &removed).ok());
  v1::AddAllowRequest allow;
  allow.set_cidr("203.0.113.0/24");
  allow.set_comment("partner");
  v1::AddAllowResponse allowed;
  ASSERT_TRUE(stub_->AddAllow(Ctx("carol").get(), allow, &allowed).ok());
  v1::RemoveAllowRequest unallow;
  unallow.set_cidr("203.0.113.0/24");
  v1::RemoveAllowResponse unallowed;
  ASSERT_TRUE(stub_->RemoveAllow(Ctx("eve").get(), unallow, &unallowed).ok());

  v1::ListAuditResponse audit;
  ASSERT_TRUE(
      stub_->ListAudit(Ctx().get(), v1::ListAuditRequest(), &audit).ok());
  ASSERT_THAT(audit.records(), SizeIs(4));
  EXPECT_EQ(audit.records(3).action(), "ban.add");
  EXPECT_EQ(audit.records(3).actor(), "token:alice");
  EXPECT_EQ(audit.records(3).target(), "198.51.100.7");
  EXPECT_EQ(audit.records(3).reason(), "brute force");
  EXPECT_THAT(audit.records(3).after_json(), HasSubstr("brute force"));
  EXPECT_EQ(audit.records(2).action(), "ban.remove");
  EXPECT_EQ(audit.records(2).actor(), "token:bob");
  EXPECT_THAT(audit.records(2).before_json(), HasSubstr("198.51.100.7"));
  EXPECT_EQ(audit.records(2).after_json(), "");
  EXPECT_EQ(audit.records(1).action(), "allow.add");
  EXPECT_EQ(audit.records(1).actor(), "token:carol");
  EXPECT_THAT(audit.records(1).peer(), HasSubstr("127.0.0.1"));
  EXPECT_EQ(audit.records(1).reason(), "partner");
  EXPECT_EQ(audit.records(0).action(), "allow.remove");
  EXPECT_EQ(audit.records(0).actor(), "token:eve");
  EXPECT_THAT(audit.records(0).before_json(), HasSubstr("partner"));

  v1::ListAuditRequest by_actor;
  by_actor.set_actor("token:bob");
  ASSERT_TRUE(stub_->ListAudit(Ctx().get(), by_actor, &audit).ok());
  ASSERT_THAT(audit.records(), SizeIs(1));
  EXPECT_EQ(audit.records(0).action(), "ban.remove");
  v1::ListAuditRequest paged;
  paged.set_page_size(3);
  ASSERT_TRUE(stub_->ListAudit(Ctx().get(), paged, &audit).ok());
  EXPECT_THAT(audit.records(), SizeIs(3));
  paged.set_page_token(audit.next_page_token());
  ASSERT_TRUE(stub_->ListAudit(Ctx().get(), paged, &audit).ok());
  ASSERT_THAT(audit.records(), SizeIs(1));
  EXPECT_EQ(audit.records(0).action(), "ban.add");
}

TEST_F(AdminServiceTest, StatusReportsFactsAndCounts) {
  distributor_.Connect("mail1", [](const std::vector<JournalEntry>&) {});
  v1::AddBanResponse out;
  ASSERT_TRUE(AddBan("198.51.100.7", 0, &out).ok());
  distributor_.ReportEnforced("mail1", 1);
  Ingest(Failures("198.51.100.20", 2, "admin", "mail1", kT0));
  v1::StatusResponse resp;
  ASSERT_TRUE(stub_->Status(Ctx().get(), v1::StatusRequest(), &resp).ok());
  EXPECT_EQ(resp.server_version(), "9.9.9");
  EXPECT_EQ(resp.server_id(), "srv-1");
  EXPECT_EQ(resp.uptime().seconds(), 7200);
  EXPECT_EQ(resp.ban_list_epoch(), 42u);
  EXPECT_EQ(resp.current_revision(), 1u);
  EXPECT_EQ(resp.journal_oldest_revision(), 1u);
  EXPECT_EQ(resp.active_bans(), 1u);
  EXPECT_EQ(resp.permanent_bans(), 1u);
  EXPECT_EQ(resp.agents_total(), 1u);
  EXPECT_EQ(resp.agents_connected(), 1u);
  EXPECT_EQ(resp.agents_current(), 1u);
  EXPECT_EQ(resp.events_last_hour(), 2u);
  EXPECT_EQ(resp.correlator_queue_depth(), 3u);
  EXPECT_EQ(resp.store().state(), v1::STORE_STATE_OK);
  EXPECT_EQ(resp.policy().ban_threshold(), 10.0);
  EXPECT_EQ(resp.policy().half_life().seconds(), 1800);

  // Every call was counted.
  absl::StatusOr<metrics::ParsedMetrics> m =
      metrics::ParsePrometheusText(registry_.Render());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Value("rampart_admin_requests_total",
                     {{"method", "AddBan"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(m->Value("rampart_admin_requests_total",
                     {{"method", "Status"}, {"code", "OK"}}),
            1);
}

// Without SetAgentIdentity (a plaintext server) there is no agent identity
// to manage; tests/enroll and tests/integration/tls_integration_test.cc
// cover the real thing.
TEST_F(AdminServiceTest, EnrollAndRevokeNeedAgentIdentity) {
  v1::EnrollAgentResponse enrolled;
  grpc::Status s =
      stub_->EnrollAgent(Ctx().get(), v1::EnrollAgentRequest(), &enrolled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("mutual TLS"));
  v1::RevokeAgentResponse revoked;
  s = stub_->RevokeAgent(Ctx().get(), v1::RevokeAgentRequest(), &revoked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(AdminServiceTest, DryRunPolicy) {
  Ingest(Failures("198.51.100.7", 6, "admin", "mail1", kT0));
  v1::DryRunPolicyRequest req;
  req.mutable_policy()->set_ban_threshold(5);
  req.mutable_start()->set_seconds(absl::ToUnixSeconds(kT0 - absl::Hours(1)));
  req.mutable_end()->set_seconds(absl::ToUnixSeconds(kT0 + absl::Hours(1)));
  v1::DryRunPolicyResponse resp;
  ASSERT_TRUE(stub_->DryRunPolicy(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.events_replayed(), 6u);
  ASSERT_THAT(resp.candidate_only(), SizeIs(1));
  EXPECT_EQ(resp.candidate_only(0).prefix(), "198.51.100.7/32");
  EXPECT_EQ(resp.candidate_only_total(), 1u);
  EXPECT_THAT(resp.live_only(), IsEmpty());
  EXPECT_EQ(resp.effective_policy().ban_threshold(), 5.0);

  // Fields the correlator cannot express, and out-of-range ones.
  req.mutable_policy()->set_cross_server_multiplier(3);
  grpc::Status s = stub_->DryRunPolicy(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s.error_message(), HasSubstr("cross_server_multiplier"));
  req.mutable_policy()->clear_cross_server_multiplier();
  req.mutable_policy()->set_ban_threshold(-1);
  s = stub_->DryRunPolicy(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("ban_threshold"));
  req.mutable_policy()->set_ban_threshold(5);
  req.clear_start();
  s = stub_->DryRunPolicy(Ctx().get(), req, &resp);
  EXPECT_THAT(s.error_message(), HasSubstr("start"));
}

// --- Authorization (docs/security.md "Admin authorization") ------------------

TEST_F(AdminServiceTest, MissingUnknownOrRevokedTokenIsUnauthenticated) {
  v1::StatusResponse st;
  grpc::Status s = stub_->Status(Ctx(nullptr).get(), {}, &st);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("no admin token"));
  EXPECT_EQ(stub_->Status(Ctx("mallory").get(), {}, &st).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto garbled = Ctx(nullptr);
  garbled->AddMetadata("authorization", "Basic YWxpY2U6eA==");
  EXPECT_EQ(stub_->Status(garbled.get(), {}, &st).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  ASSERT_TRUE(stub_->Status(Ctx("reader").get(), {}, &st).ok());
  ASSERT_TRUE(auth_.RevokeToken("reader").ok());
  s = stub_->Status(Ctx("reader").get(), {}, &st);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("revoked"));
}

TEST_F(AdminServiceTest, ReadOnlyTokenCanListButCannotUnban) {
  v1::AddBanResponse added;
  ASSERT_TRUE(AddBan("198.51.100.7", 1, &added).ok());
  v1::ListBansResponse bans;
  ASSERT_TRUE(stub_->ListBans(Ctx("reader").get(), {}, &bans).ok());
  EXPECT_THAT(bans.bans(), SizeIs(1));

  v1::RemoveBanRequest remove;
  remove.set_target("198.51.100.7");
  remove.set_reason("let me in");
  v1::RemoveBanResponse removed;
  const grpc::Status s =
      stub_->RemoveBan(Ctx("reader").get(), remove, &removed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("token:reader has role read-only; RemoveBan needs "
                        "role operator"));
  ASSERT_TRUE(stub_->ListBans(Ctx("reader").get(), {}, &bans).ok());
  EXPECT_THAT(bans.bans(), SizeIs(1));  // still banned
  // Nothing refused is audited as done.
  v1::ListAuditResponse audit;
  ASSERT_TRUE(stub_->ListAudit(Ctx("reader").get(), {}, &audit).ok());
  ASSERT_THAT(audit.records(), SizeIs(1));
  EXPECT_EQ(audit.records(0).action(), "ban.add");
  // Enrollment is for admins only.
  v1::EnrollAgentResponse enrolled;
  v1::EnrollAgentRequest enroll;
  enroll.set_agent_id("mail9");
  EXPECT_EQ(
      stub_->EnrollAgent(Ctx("bob").get(), enroll, &enrolled).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AdminServiceTest, OperatorCannotBanASlash8ButAnAdminCan) {
  v1::AddBanRequest req;
  req.set_target("10.0.0.0/8");
  *req.mutable_duration() = Hours(1);
  req.set_reason("abuse from a whole network");
  req.set_allow_broad_prefix(true);
  v1::AddBanResponse out;
  grpc::Status s = stub_->AddBan(Ctx("bob").get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("needs role admin"));
  // A /16 is within an operator's reach.
  v1::AddBanRequest narrow = req;
  narrow.set_target("10.1.0.0/16");
  narrow.set_allow_broad_prefix(false);
  EXPECT_TRUE(stub_->AddBan(Ctx("bob").get(), narrow, &out).ok());

  ASSERT_TRUE(stub_->AddBan(Ctx("alice").get(), req, &out).ok());
  EXPECT_EQ(out.ban().prefix(), "10.0.0.0/8");
  v1::ListAuditRequest by_action;
  by_action.set_action("ban.add");
  v1::ListAuditResponse audit;
  ASSERT_TRUE(stub_->ListAudit(Ctx("reader").get(), by_action, &audit).ok());
  ASSERT_THAT(audit.records(), SizeIs(2));
  EXPECT_EQ(audit.records(0).actor(), "token:alice");
  EXPECT_EQ(audit.records(0).target(), "10.0.0.0/8");
  EXPECT_EQ(audit.records(0).before_json(), "");
  EXPECT_THAT(audit.records(0).after_json(), HasSubstr("10.0.0.0/8"));
  EXPECT_EQ(audit.records(1).actor(), "token:bob");
}

TEST_F(AdminServiceTest, LoopbackAndSelfAddressesAreNeverBanned) {
  v1::AddBanResponse out;
  grpc::Status s = AddBan("192.0.2.10", 1, &out);  // self_prefixes
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("never banned"));
}

}  // namespace
}  // namespace rampart::server
