// The agent daemon end to end against a REAL in-process rampart server
// (AgentService + IngestPipeline + Correlator + BanDistributor +
// InMemoryStore) on 127.0.0.1: Domino lines written to a temp log are
// tailed, parsed, spooled, sent and acknowledged; bans pushed by the server
// reach the agent's (dry-run) firewall; a restarted agent resumes with a
// delta; failover; the 10k-event spool acceptance; local fallback.
//
// Time: agent and server share one SimulatedClock that only the test
// advances. The agent's loop is driven by explicit PollOnce() calls; the
// network is real, so waits are bounded waits on conditions (WaitUntil polls
// the condition and the agent every few milliseconds, with a deadline).

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "agent/daemon/agent_app.h"
#include "agent/daemon/conversions.h"
#include "agent/daemon/event_source.h"
#include "agent/firewall/dry_run_firewall.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "server/core/correlator.h"
#include "server/grpc/agent_service.h"
#include "server/store/in_memory_store.h"
#include "tests/fakes/flaky_store.h"

namespace rampart::agent {
namespace {

using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());
constexpr absl::Duration kWait = absl::Seconds(30);

// A free TCP port on 127.0.0.1 (nobody listens on it afterwards).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// One family-A line: an SMTP auth failure of `user` from `ip` at kT0.
std::string FailureLine(const std::string& user, const std::string& ip) {
  return absl::StrFormat(
      "[1234:0002-0A1B] 03/06/2024 10:00:00 AM  smtp: %s [%s] "
      "authentication failure using internet password\n",
      user, ip);
}

class InProcessServer {
 public:
  explicit InProcessServer(SimulatedClock& clock) : clock_(clock) {}
  ~InProcessServer() { Stop(); }

  // Starts on 127.0.0.1:`port` (0: any free port).
  void Start(int port = 0) {
    distributor_ = std::make_unique<server::BanDistributor>(
        server::BanDistributor::Options{}, clock_);
    server::CorrelatorOptions co;
    co.policy.ban_jitter = 0;
    correlator_ =
        *server::Correlator::Create(co, flaky_, clock_, *distributor_);
    pipeline_ = std::make_unique<server::IngestPipeline>(
        server::IngestPipelineOptions{}, *correlator_, clock_, registry_);
    server::AgentServiceOptions so{.server_id = "test-server",
                                   .ban_list_epoch = 42,
                                   .sweep_interval = absl::ZeroDuration()};
    so.unavailable_retry_after = absl::Milliseconds(30);
    service_ = std::make_unique<server::AgentService>(
        so, *distributor_, *pipeline_, clock_, registry_);
    grpc::ServerBuilder builder;
    server::AgentService::ConfigureServerBuilder(builder, so);
    builder.AddListeningPort(absl::StrFormat("127.0.0.1:%d", port),
                             grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void Stop() {
    if (service_ != nullptr) {
      service_->Shutdown(absl::Seconds(10));
    }
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
      server_.reset();
    }
    if (pipeline_ != nullptr) {
      pipeline_->Stop();
    }
    service_.reset();
  }

  server::Ban AddBan(const char* prefix) {
    absl::StatusOr<server::Ban> b = correlator_->AddBan(
        *IpPrefix::FromString(prefix), absl::Hours(1), "test", "tester");
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *b : server::Ban{};
  }

  int StoredEvents() {
    int n = 0;
    EXPECT_TRUE(store_
                    .ForEachEvent(kT0 - absl::Hours(24), kT0 + absl::Hours(24),
                                  [&](const server::AuthEvent&) {
                                    ++n;
                                    return absl::OkStatus();
                                  })
                    .ok());
    return n;
  }

  // While set, every store call fails (database down).
  void SetStoreDown(bool down) { flaky_.SetDown(down); }

  std::string address() const { return absl::StrFormat("127.0.0.1:%d", port_); }
  int port() const { return port_; }

 private:
  SimulatedClock& clock_;
  server::InMemoryStore store_;
  server::FlakyStore flaky_{store_};
  metrics::Registry registry_;
  std::unique_ptr<server::BanDistributor> distributor_;
  std::unique_ptr<server::Correlator> correlator_;
  std::unique_ptr<server::IngestPipeline> pipeline_;
  std::unique_ptr<server::AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

class DaemonClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrFormat(
               "rampart-daemon-%d-%d", getpid(),
               ::testing::UnitTest::GetInstance()->random_seed() + counter_++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "logs");
    log_path_ = (dir_ / "logs" / "console.log").string();
    firewall_ = std::make_unique<DryRunFirewall>(clock_);
  }

  void TearDown() override {
    app_.reset();
    server_.Stop();
    std::filesystem::remove_all(dir_);
  }

  AgentConfig Config(std::vector<std::string> servers) {
    AgentConfig c;
    c.servers = std::move(servers);
    c.agent_id = "mail1";
    c.site = "test";
    c.time_zone = "UTC";
    c.logs = {LogSourceConfig{.path = log_path_}};
    c.read_existing_logs = true;
    c.state_dir = (dir_ / "state").string();
    c.firewall.backend = "dry-run";
    c.spool_fsync = FsyncPolicy::kNever;
    c.backoff_min = absl::Milliseconds(10);
    c.backoff_max = absl::Milliseconds(50);
    c.insecure = true;  // the fake server is plaintext
    return c;
  }

  void StartApp(const AgentConfig& config) {
    app_.reset();
    AgentEnvironment env{.clock = &clock_,
                         .metrics = &metrics_,
                         .firewall = firewall_.get(),
                         .host_addresses = &hosts_,
                         .uniform01 = [this] { return uniform_(rng_); },
                         .run_loop_thread = false};
    absl::StatusOr<std::unique_ptr<AgentApp>> app =
        AgentApp::Create(config, env);
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app);
    ASSERT_TRUE(app_->Start().ok());
  }

  void Append(int first, int count, const std::string& ip = "") {
    std::ofstream out(log_path_, std::ios::app);
    for (int i = first; i < first + count; ++i) {
      out << FailureLine(
          absl::StrFormat("user%d", i),
          ip.empty() ? absl::StrFormat("198.51.100.%d", i % 250 + 1) : ip);
    }
  }

  // Polls the agent (advancing the shared clock by the flush interval each
  // round, so open batches get sealed) until `done` holds or kWait passes.
  bool WaitUntil(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline) {
      if (app_ != nullptr) {
        (void)app_->PollOnce();
      }
      if (done()) {
        return true;
      }
      clock_.Advance(absl::Milliseconds(500));
      absl::SleepFor(absl::Milliseconds(5));
    }
    return done();
  }

  std::vector<std::string> Enforced() {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<FirewallEntry>> list = firewall_->ListEnforced();
    if (list.ok()) {
      for (const FirewallEntry& e : *list) {
        out.push_back(absl::StrFormat("%s/%d", e.prefix.address().ToString(),
                                      e.prefix.length()));
      }
    }
    return out;
  }

  bool Settled() {
    const SpoolStats s = app_->spool().stats();
    return s.unacked_batches == 0 && app_->source_stats().lines > 0;
  }

  static inline int counter_ = 0;
  SimulatedClock clock_{kT0};
  InProcessServer server_{clock_};
  metrics::Registry metrics_;
  StaticHostAddressSource hosts_{{*IpAddress::Parse("192.0.2.1")}};
  std::mt19937_64 rng_{
      static_cast<uint64_t>(::testing::UnitTest::GetInstance()->random_seed())};
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  std::filesystem::path dir_;
  std::string log_path_;
  std::unique_ptr<DryRunFirewall> firewall_;
  std::unique_ptr<AgentApp> app_;
};

TEST_F(DaemonClientTest, EventsFlowAndAreAcked) {
  server_.Start();
  StartApp(Config({server_.address()}));
  Append(0, 2500);
  ASSERT_TRUE(WaitUntil([&] { return server_.StoredEvents() == 2500; }));
  ASSERT_TRUE(WaitUntil([&] { return Settled(); }));
  EXPECT_EQ(app_->client().stats().batches_rejected, 0u);
  EXPECT_GE(app_->client().stats().welcomes, 1u);
}

TEST_F(DaemonClientTest, BanPushedByServerReachesFirewall) {
  server_.Start();
  StartApp(Config({server_.address()}));
  ASSERT_TRUE(WaitUntil([&] { return app_->client().connected(); }));
  server_.AddBan("203.0.113.0/24");
  ASSERT_TRUE(WaitUntil([&] {
    const std::vector<std::string> e = Enforced();
    return std::find(e.begin(), e.end(), "203.0.113.0/24") != e.end();
  }));
  EXPECT_EQ(app_->enforcer().ListRevision().first, 42u);
}

TEST_F(DaemonClientTest, GuardRefusesOwnAddressWhateverTheServerSays) {
  server_.Start();
  StartApp(Config({server_.address()}));
  ASSERT_TRUE(WaitUntil([&] { return app_->client().connected(); }));
  server_.AddBan("192.0.2.1/32");  // the agent host's own address
  server_.AddBan("198.51.100.9/32");
  ASSERT_TRUE(WaitUntil([&] {
    const std::vector<std::string> e = Enforced();
    return std::find(e.begin(), e.end(), "198.51.100.9/32") != e.end();
  }));
  EXPECT_THAT(Enforced(), Not(Contains("192.0.2.1/32")));
}

TEST_F(DaemonClientTest, RestartReappliesListAndResumesWithDelta) {
  server_.Start();
  const AgentConfig config = Config({server_.address()});
  StartApp(config);
  server_.AddBan("203.0.113.7/32");
  ASSERT_TRUE(WaitUntil([&] {
    return app_->enforcer().ListRevision().second >= 1 && !Enforced().empty();
  }));
  app_.reset();
  server_.AddBan("203.0.113.8/32");

  // A fresh backend: the restarted agent re-applies its saved list at
  // Start(), before it reaches the server.
  firewall_ = std::make_unique<DryRunFirewall>(clock_);
  StartApp(config);
  EXPECT_THAT(Enforced(), Contains("203.0.113.7/32"));
  ASSERT_TRUE(WaitUntil([&] {
    const std::vector<std::string> e = Enforced();
    return std::find(e.begin(), e.end(), "203.0.113.8/32") != e.end() &&
           app_->client().stats().deltas_applied >= 1;
  }));
  const ServerClientStats stats = app_->client().stats();
  EXPECT_GE(stats.deltas_applied, 1u);
  EXPECT_EQ(stats.snapshots_applied, 0u);
  EXPECT_THAT(Enforced(), Contains("203.0.113.7/32"));
}

TEST_F(DaemonClientTest, DatabaseDownStreamsDoNotResetTheBackoff) {
  server_.Start();
  server_.SetStoreDown(true);
  Append(0, 5);
  StartApp(Config({server_.address()}));
  // Welcomed, the batch fails to store, the server ends the stream with a
  // retry hint: each such stream keeps the backoff growing (no reconnect
  // storm while the database is down).
  ASSERT_TRUE(WaitUntil(
      [&] { return app_->client().stats().unhealthy_streams_ended >= 3; }));
  ServerClientStats s = app_->client().stats();
  EXPECT_EQ(s.healthy_streams_ended, 0u);
  EXPECT_EQ(s.last_retry_after, absl::Milliseconds(30));
  EXPECT_EQ(server_.StoredEvents(), 0);
  // The database is back: the batch is stored once.
  server_.SetStoreDown(false);
  ASSERT_TRUE(WaitUntil([&] { return Settled(); }));
  EXPECT_EQ(server_.StoredEvents(), 5);
}

TEST_F(DaemonClientTest, FailsOverToTheSecondAddress) {
  server_.Start();
  const std::string dead = absl::StrFormat("127.0.0.1:%d", FreePort());
  StartApp(Config({dead, server_.address()}));
  Append(0, 10);
  ASSERT_TRUE(WaitUntil([&] { return server_.StoredEvents() == 10; }));
  const ServerClientStats stats = app_->client().stats();
  EXPECT_EQ(stats.server, server_.address());
  EXPECT_GE(stats.connect_attempts, 2u);
}

// Acceptance: with the server down, 10k events are logged and the agent is
// restarted twice; when the server is back it holds exactly those 10k.
TEST_F(DaemonClientTest, SpoolAcceptanceTenThousandEventsAcrossTwoRestarts) {
  const int port = FreePort();
  const AgentConfig config = Config({absl::StrFormat("127.0.0.1:%d", port)});
  StartApp(config);
  Append(0, 4000);
  ASSERT_TRUE(WaitUntil([&] { return app_->source_stats().lines == 4000; }));
  Append(4000, 1000);  // read by the next incarnation
  app_.reset();        // restart 1 (clean stop: flush, positions saved)

  StartApp(config);
  ASSERT_TRUE(WaitUntil([&] { return app_->source_stats().lines == 1000; }));
  Append(5000, 3000);
  ASSERT_TRUE(WaitUntil([&] { return app_->source_stats().lines == 4000; }));
  app_.reset();  // restart 2

  StartApp(config);
  Append(8000, 2000);
  ASSERT_TRUE(WaitUntil([&] { return app_->source_stats().lines == 2000; }));
  EXPECT_EQ(app_->spool().stats().acked_through, 0u);
  EXPECT_FALSE(app_->client().connected());

  server_.Start(port);
  ASSERT_TRUE(WaitUntil([&] {
    return app_->spool().stats().unacked_batches == 0 &&
           server_.StoredEvents() >= 10000;
  }));
  EXPECT_EQ(server_.StoredEvents(), 10000);
}

TEST_F(DaemonClientTest, LocalFallbackBansWhileDownAndReconcilesWhenBack) {
  const int port = FreePort();
  AgentConfig config = Config({absl::StrFormat("127.0.0.1:%d", port)});
  config.local_fallback.activate_after = absl::Seconds(10);
  config.local_fallback.failures = 3;
  StartApp(config);
  ASSERT_TRUE(app_->PollOnce().ok());
  EXPECT_FALSE(app_->fallback().active());

  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(app_->PollOnce().ok());
  EXPECT_TRUE(app_->fallback().active());

  Append(0, 3, "203.0.113.50");
  Append(3, 3, "127.0.0.1");  // loopback: the guard refuses it
  ASSERT_TRUE(WaitUntil([&] { return app_->fallback().bans().size() == 2; }));
  ASSERT_TRUE(app_->PollOnce().ok());
  EXPECT_THAT(Enforced(), Contains("203.0.113.50/32"));
  EXPECT_THAT(Enforced(), Not(Contains("127.0.0.1/32")));

  server_.Start(port);
  ASSERT_TRUE(WaitUntil([&] {
    return app_->client().server_list_current() &&
           app_->fallback().bans().empty();
  }));
  EXPECT_FALSE(app_->fallback().active());
  EXPECT_THAT(Enforced(), Not(Contains("127.0.0.1/32")));
}

}  // namespace
}  // namespace rampart::agent
