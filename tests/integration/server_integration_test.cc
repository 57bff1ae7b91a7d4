// Process-level integration tests: a real rampart-server binary on
// 127.0.0.1 with a real PostgreSQL (RAMPART_TEST_PG_DSN; each test gets its
// own database) and simulated agents (tests/fakes/fake_agent.h).
//
// Covers the server issue's acceptance: a ban reported via agent A reaches
// agent B; B reconnecting with an old revision receives exactly the missing
// delta; a revision older than the journal window gets a snapshot; duplicate
// batches do not double-count; a malformed batch gets a clear status and
// nothing else is affected; /metrics parses; SIGTERM drains; SIGKILL and
// restart keep bans and the revision sequence.

#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "rampart/v1/admin.grpc.pb.h"
#include "tests/fakes/fake_agent.h"
#include "tests/integration/server_process.h"
#include "tests/integration/throwaway_database.h"
#include "tests/server/pg_test_env.h"

namespace rampart::testing {
namespace {

using ::testing::HasSubstr;

// Admin token the server takes from --bootstrap-token-file.
constexpr char kAdminToken[] = "it-admin-token-0123456789abcdef0123456789";

constexpr char kPolicyYaml[] = R"(
policy:
  ban_threshold: 5
  ban_jitter: 0
distribution:
  journal_window: 4
  max_delta: 1000
housekeeping_interval: 1s
)";

class ServerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dsn = server::RequirePgTestDsn();
    if (dsn.empty()) {
      return;
    }
    auto db = ThrowawayDatabase::Create(dsn, "it");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    config_path_ = absl::StrFormat(
        "%s/rampart-it-%d-%s.yaml", ::testing::TempDir(), getpid(),
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::ofstream(config_path_) << kPolicyYaml;
    token_path_ = config_path_ + ".token";
    std::ofstream(token_path_) << kAdminToken << "\n";
    chmod(token_path_.c_str(), 0600);
    StartServer();
  }

  void TearDown() override {
    server_.reset();
    if (!config_path_.empty()) {
      std::remove(config_path_.c_str());
      std::remove(token_path_.c_str());
    }
  }

  void StartServer(int grpc_port = 0, int http_port = 0) {
    auto server = ServerProcess::Start(
        ServerBinary(),
        {"--insecure", "--config", config_path_, "--db", db_->db_flag(),
         "--listen", absl::StrFormat("127.0.0.1:%d", grpc_port),
         "--http-listen", absl::StrFormat("127.0.0.1:%d", http_port),
         "--bootstrap-token-file", token_path_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::shared_ptr<grpc::Channel> Channel() {
    return grpc::CreateChannel(server_->grpc_target(),
                               grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<FakeAgent> Connect(
      const std::string& id, uint64_t epoch = 0, uint64_t revision = 0,
      std::map<uint64_t, v1::BanEntry> bans = {}) {
    auto agent = std::make_unique<FakeAgent>(Channel());
    EXPECT_TRUE(
        agent->Open(FakeAgent::MakeHello(id, epoch, revision), bans).ok());
    auto welcome = agent->WaitFor(v1::ServerMessage::kWelcome);
    EXPECT_TRUE(welcome.ok()) << welcome.status() << "\n" << server_->log();
    return agent;
  }

  // `n` SMTP failures from `ip`, now.
  static std::vector<v1::AuthEvent> Failures(const std::string& ip, int n) {
    std::vector<v1::AuthEvent> events;
    for (int i = 0; i < n; ++i) {
      events.push_back(
          MakeAuthFailure(ip, absl::Now(), "user" + std::to_string(i)));
    }
    return events;
  }

  metrics::ParsedMetrics Scrape() {
    httplib::Client client("127.0.0.1", server_->http_port());
    client.set_connection_timeout(5, 0);
    client.set_read_timeout(5, 0);
    auto res = client.Get("/metrics");
    EXPECT_TRUE(res);
    if (!res) {
      return {};
    }
    EXPECT_EQ(res->status, 200);
    auto parsed = metrics::ParsePrometheusText(res->body);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed.ok() ? *parsed : metrics::ParsedMetrics{};
  }

  std::unique_ptr<ThrowawayDatabase> db_;
  std::string config_path_;
  std::string token_path_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(ServerIntegrationTest, BanReportedByOneAgentReachesAnother) {
  auto b = Connect("mx2");
  auto a = Connect("mx1");
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 6)));
  ASSERT_TRUE(a->WaitForAck(1).ok());
  ASSERT_TRUE(b->WaitForBan("198.51.100.7/32").ok()) << server_->log();
  ASSERT_TRUE(a->WaitForBan("198.51.100.7/32").ok());
  EXPECT_TRUE(b->protocol_error().ok()) << b->protocol_error();

  // The enforced report makes the ban "live on 2 of 2".
  ASSERT_TRUE(a->SendEnforced());
  ASSERT_TRUE(b->SendEnforced());
  auto stub = v1::AdminService::NewStub(Channel());
  bool live_on_both = false;
  for (int i = 0; i < 100 && !live_on_both; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    ctx.AddMetadata("authorization", std::string("Bearer ") + kAdminToken);
    v1::ListAgentsRequest req;
    v1::ListAgentsResponse resp;
    ASSERT_TRUE(stub->ListAgents(&ctx, req, &resp).ok());
    int enforced = 0;
    for (const auto& agent : resp.agents()) {
      enforced += agent.enforced_revision() >= b->revision() ? 1 : 0;
    }
    live_on_both = enforced == 2;
    if (!live_on_both) {
      // Reports travel asynchronously; re-poll a bounded number of times.
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  EXPECT_TRUE(live_on_both);
}

TEST_F(ServerIntegrationTest,
       ReconnectWithOldRevisionGetsExactlyTheMissingDelta) {
  auto a = Connect("mx1");
  auto b = Connect("mx2");
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 6)));
  ASSERT_TRUE(b->WaitForBan("198.51.100.7/32").ok());
  const uint64_t epoch = b->ban_list_epoch();
  const uint64_t old_revision = b->revision();
  const auto old_bans = b->bans();
  b.reset();  // B goes away

  ASSERT_TRUE(a->SendBatch(2, Failures("203.0.113.9", 6)));
  ASSERT_TRUE(a->WaitForBan("203.0.113.9/32").ok());
  const uint64_t new_revision = a->revision();
  ASSERT_GT(new_revision, old_revision);

  auto b2 = Connect("mx2", epoch, old_revision, old_bans);
  ASSERT_TRUE(b2->WaitForRevision(new_revision).ok());
  std::vector<v1::ServerMessage> lists;
  for (const auto& m : b2->received()) {
    if (m.has_delta() || m.has_snapshot()) {
      lists.push_back(m);
    }
  }
  ASSERT_EQ(lists.size(), 1u);
  ASSERT_TRUE(lists[0].has_delta()) << lists[0].DebugString();
  EXPECT_EQ(lists[0].delta().from_revision(), old_revision);
  EXPECT_EQ(lists[0].delta().to_revision(), new_revision);
  ASSERT_EQ(lists[0].delta().changes_size(), 1);
  EXPECT_EQ(lists[0].delta().changes(0).entry().prefix(), "203.0.113.9/32");
  EXPECT_EQ(b2->banned_prefixes(),
            (std::set<std::string>{"198.51.100.7/32", "203.0.113.9/32"}));
}

TEST_F(ServerIntegrationTest, RevisionOlderThanTheJournalWindowGetsASnapshot) {
  auto a = Connect("mx1");
  // journal_window is 4: six bans push revision 1 out of it. Two per /24,
  // below the prefix-aggregation k of 3. Unusual host numbers: the server
  // never bans its own interface addresses, and test hosts may hold low
  // documentation addresses (192.0.2.2, ...).
  const char* ips[] = {"192.0.2.201",    "192.0.2.202",   "198.51.100.201",
                       "198.51.100.202", "203.0.113.201", "203.0.113.202"};
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(a->SendBatch(i + 1, Failures(ips[i], 6)));
    ASSERT_TRUE(a->WaitForBan(absl::StrCat(ips[i], "/32")).ok()) << ips[i];
  }
  auto b = Connect("mx2", a->ban_list_epoch(), 1);
  ASSERT_TRUE(b->WaitForRevision(a->revision()).ok());
  bool snapshot = false;
  for (const auto& m : b->received()) {
    snapshot = snapshot || m.has_snapshot();
    EXPECT_FALSE(m.has_delta() && m.delta().from_revision() == 1);
  }
  EXPECT_TRUE(snapshot);
  EXPECT_EQ(b->banned_prefixes().size(), 6u);
}

TEST_F(ServerIntegrationTest, DuplicateBatchesDoNotDoubleCount) {
  auto a = Connect("mx1");
  // 3 failures twice with the same sequence: below the threshold of 5 if
  // counted once, above it if counted twice.
  const auto events = Failures("198.51.100.20", 3);
  ASSERT_TRUE(a->SendBatch(1, events));
  ASSERT_TRUE(a->WaitForAcks(1, 1).ok());
  ASSERT_TRUE(a->SendBatch(1, events));
  ASSERT_TRUE(a->WaitForAcks(1, 2).ok());
  const auto m = Scrape();
  EXPECT_EQ(m.Value("rampart_events_total",
                    {{"protocol", "smtp"}, {"kind", "auth_failure"}}, 0),
            3);
  EXPECT_TRUE(a->banned_prefixes().empty());
  // A new sequence with 3 more does cross it.
  ASSERT_TRUE(a->SendBatch(2, Failures("198.51.100.20", 3)));
  EXPECT_TRUE(a->WaitForBan("198.51.100.20/32").ok());
}

TEST_F(ServerIntegrationTest,
       MalformedBatchIsRejectedClearlyAndNothingElseIsAffected) {
  auto a = Connect("mx1");
  auto b = Connect("mx2");
  // Sequence 0 is invalid for a batch.
  ASSERT_TRUE(a->SendBatch(0, Failures("198.51.100.30", 6)));
  ASSERT_TRUE(a->WaitForAck(0).ok());
  const auto rejections = a->rejections();
  ASSERT_EQ(rejections.count(0), 1u);
  EXPECT_EQ(rejections.at(0).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(rejections.at(0).message(), HasSubstr("sequence"));
  // The same stream and the other agent carry on.
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.31", 6)));
  ASSERT_TRUE(b->WaitForBan("198.51.100.31/32").ok());
  EXPECT_EQ(b->banned_prefixes(), (std::set<std::string>{"198.51.100.31/32"}));
  EXPECT_FALSE(a->ended());
}

TEST_F(ServerIntegrationTest, MetricsEndpointParsesAndCountsWhatHappened) {
  auto a = Connect("mx1");
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.40", 6)));
  ASSERT_TRUE(a->WaitForBan("198.51.100.40/32").ok());
  // The ban is pushed from inside the commit; the counters are updated just
  // before the ack, so wait for the ack before scraping.
  ASSERT_TRUE(a->WaitForAck(1).ok());
  const auto m = Scrape();
  EXPECT_EQ(m.types.at("rampart_events_total"), "counter");
  EXPECT_EQ(m.Value("rampart_events_total",
                    {{"protocol", "smtp"}, {"kind", "auth_failure"}}, 0),
            6);
  EXPECT_EQ(m.Value("rampart_active_bans"), 1);
  EXPECT_EQ(m.Value("rampart_agents_connected"), 1);
  EXPECT_EQ(m.Value("rampart_agent_connected", {{"agent", "mx1"}}), 1);
  EXPECT_GE(m.Value("rampart_ingest_latency_seconds_count"), 1);
  EXPECT_GE(m.Value("rampart_store_seconds_count", {{"op", "commit"}}), 1);
  EXPECT_EQ(m.types.at("rampart_agent_push_latency_seconds"), "histogram");
  // Memory budget (issue 16 item 5): entries, evictions, refused keys.
  EXPECT_EQ(m.types.at("rampart_correlator_entries"), "gauge");
  EXPECT_EQ(m.Value("rampart_correlator_entries", {{"kind", "score"}}), 1);
  EXPECT_EQ(m.Value("rampart_correlator_entries", {{"kind", "account"}}), 6);
  EXPECT_EQ(m.types.at("rampart_correlator_entries_evicted_total"), "counter");
  EXPECT_EQ(
      m.Value("rampart_correlator_entries_evicted_total", {{"kind", "score"}}),
      0);
  EXPECT_EQ(m.Value("rampart_correlator_new_keys_refused_total",
                    {{"kind", "account"}}, -1),
            0);

  httplib::Client client("127.0.0.1", server_->http_port());
  auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
}

TEST_F(ServerIntegrationTest, SigtermDrainsAndExitsCleanly) {
  auto a = Connect("mx1");
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.50", 2)));
  ASSERT_TRUE(a->WaitForAck(1).ok());
  auto status = server_->Terminate();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status)) << server_->log();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << server_->log();
  auto end = a->WaitForEnd();
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServerIntegrationTest, KilledServerRestartsWithBansAndRevision) {
  auto a = Connect("mx1");
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.60", 6)));
  ASSERT_TRUE(a->WaitForBan("198.51.100.60/32").ok());
  const uint64_t epoch = a->ban_list_epoch();
  const uint64_t revision = a->revision();
  const auto bans = a->bans();
  a.reset();
  server_->Kill();
  StartServer();

  // Same epoch and revision: nothing to send.
  auto b = Connect("mx1", epoch, revision, bans);
  EXPECT_EQ(b->ban_list_epoch(), epoch);
  ASSERT_TRUE(b->SendBatch(2, Failures("198.51.100.61", 6)));
  ASSERT_TRUE(b->WaitForBan("198.51.100.61/32").ok());
  EXPECT_EQ(b->revision(), revision + 1);
  EXPECT_EQ(b->banned_prefixes(),
            (std::set<std::string>{"198.51.100.60/32", "198.51.100.61/32"}));
}

TEST(ServerCommandLineTest, MigrateCreatesTheSchemaAndBadConfigIsExit2) {
  const std::string dir = ::testing::TempDir();
  const std::string db =
      absl::StrFormat("%s/rampart-migrate-%d.db", dir, getpid());
  auto migrate =
      RunProcess(ServerBinary(), {"migrate", "--db", "sqlite:" + db});
  ASSERT_TRUE(migrate.ok()) << migrate.status();
  EXPECT_TRUE(WIFEXITED(migrate->status) && WEXITSTATUS(migrate->status) == 0)
      << migrate->err;
  EXPECT_THAT(migrate->err, HasSubstr("up to date"));
  // Migrating again is a no-op.
  migrate = RunProcess(ServerBinary(), {"migrate", "--db", "sqlite:" + db});
  ASSERT_TRUE(migrate.ok());
  EXPECT_EQ(WEXITSTATUS(migrate->status), 0) << migrate->err;

  const std::string config =
      absl::StrFormat("%s/rampart-bad-%d.yaml", dir, getpid());
  std::ofstream(config) << "policy:\n  half_lfe: 30m\n";
  auto bad =
      RunProcess(ServerBinary(), {"--config", config, "--db", "sqlite:" + db});
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_TRUE(WIFEXITED(bad->status) && WEXITSTATUS(bad->status) == 2)
      << bad->err;
  EXPECT_THAT(bad->err, HasSubstr(":2:3"));
  EXPECT_THAT(bad->err, HasSubstr("did you mean half_life"));

  auto bad_flag = RunProcess(ServerBinary(),
                             {"--listen", "nohost", "--db", "sqlite:" + db});
  ASSERT_TRUE(bad_flag.ok());
  EXPECT_EQ(WEXITSTATUS(bad_flag->status), 2) << bad_flag->err;
  EXPECT_THAT(bad_flag->err, HasSubstr("--listen"));
  std::remove(config.c_str());
  std::remove(db.c_str());
  std::remove((db + "-wal").c_str());
  std::remove((db + "-shm").c_str());
}

TEST(ServerCommandLineTest, PortInUseIsARuntimeErrorNamingTheAddress) {
  const std::string dir = ::testing::TempDir();
  const std::string db =
      absl::StrFormat("%s/rampart-port-%d.db", dir, getpid());
  auto first = ServerProcess::Start(
      ServerBinary(), {"--insecure", "--db", "sqlite:" + db, "--listen",
                       "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = RunProcess(
      ServerBinary(), {"--insecure", "--db", "sqlite:" + db + "2", "--listen",
                       absl::StrFormat("127.0.0.1:%d", (*first)->grpc_port()),
                       "--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(WEXITSTATUS(second->status), 1) << second->err;
  EXPECT_THAT(second->err, HasSubstr(absl::StrFormat("127.0.0.1:%d",
                                                     (*first)->grpc_port())));
  for (const std::string& f : {db, db + "2"}) {
    std::remove(f.c_str());
    std::remove((f + "-wal").c_str());
    std::remove((f + "-shm").c_str());
  }
}

}  // namespace
}  // namespace rampart::testing
