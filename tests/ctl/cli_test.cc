// rampartctl against a real in-process gRPC server hosting FakeAdminService:
// the requests each command sends, what it prints, and its exit codes.

#include "ctl/cli.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "ctl/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/ctl/ctl_test_util.h"

namespace rampart::ctl {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using testing::FakeServer;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using testing::Ts;
using Json = nlohmann::json;

v1::BanEntry MakeBan(uint64_t id, const std::string& prefix) {
  v1::BanEntry b;
  b.set_id(id);
  b.set_prefix(prefix);
  *b.mutable_created_at() = Ts(testing::TestNow() - absl::Hours(1));
  *b.mutable_expires_at() = Ts(testing::TestNow() + absl::Hours(2));
  b.set_reason("31 AUTH_FAILURE on 4 servers");
  b.set_origin(v1::BAN_ORIGIN_AUTO);
  b.set_scope(v1::BAN_SCOPE_ALL_PORTS);
  b.set_escalation_level(1);
  b.set_revision(17);
  return b;
}

v1::Alert MakeAlert(uint64_t id, const std::string& user) {
  v1::Alert a;
  a.set_id(id);
  a.set_kind(v1::ALERT_KIND_SUCCESS_AFTER_FAILURES);
  *a.mutable_raised_at() = Ts(testing::TestNow() - absl::Minutes(5));
  a.set_user(user);
  a.set_ip("198.51.100.7");
  a.set_agent_id("mail1");
  a.set_summary("success after 12 failures");
  return a;
}

class CtlTest : public ::testing::Test {
 protected:
  CtlTest() : clock_(testing::TestNow()) { env_.clock = &clock_; }

  void SetUp() override { ASSERT_TRUE(server_.ok()); }

  void TearDown() override {
    if (!release_.HasBeenNotified()) {
      release_.Notify();
    }
  }

  // Runs rampartctl against the fake server; output in out_ / err_.
  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--insecure", "--server", server_.address()});
    return RunRaw(std::move(args));
  }
  // Runs rampartctl with exactly `args`.
  int RunRaw(const std::vector<std::string>& args) {
    out_.str("");
    err_.str("");
    return RunCtl(args, out_, err_, env_);
  }
  Json OutJson() const { return Json::parse(out_.str()); }

  // A fresh path in the test's temporary directory.
  std::string TempPath(const std::string& name) {
    const std::string dir =
        ::testing::TempDir() + "rampartctl_test_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
    return dir + "/" + name;
  }
  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = TempPath(name);
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  testing::FakeAdminService& service() { return server_.service(); }

  // Released in TearDown so that a failing test never leaves a handler
  // blocked. Declared before server_ so that it outlives the server: a
  // handler woken by Notify() may still be inside WaitForNotification()
  // until the server's shutdown has waited for it.
  absl::Notification release_;
  SimulatedClock clock_;
  CtlEnvironment env_;
  FakeServer server_;
  std::ostringstream out_;
  std::ostringstream err_;
};

// ---------------------------------------------------------------------------
// status

v1::StatusResponse MakeStatus() {
  v1::StatusResponse s;
  s.set_server_version("0.1.0");
  s.set_server_id("srv-a");
  *s.mutable_started_at() = Ts(testing::TestNow() - absl::Hours(76));
  s.mutable_uptime()->set_seconds(76 * 3600);
  s.set_ban_list_epoch(3);
  s.set_current_revision(42);
  s.set_journal_oldest_revision(30);
  s.set_active_bans(120);
  s.set_permanent_bans(5);
  s.set_allow_entries(2);
  s.set_agents_total(14);
  s.set_agents_connected(13);
  s.set_agents_current(12);
  s.set_events_last_hour(5321);
  s.set_open_alerts(1);
  s.mutable_store()->set_state(v1::STORE_STATE_OK);
  *s.mutable_store()->mutable_last_commit_at() =
      Ts(testing::TestNow() - absl::Seconds(3));
  s.mutable_policy()->set_ban_threshold(10);
  return s;
}

TEST_F(CtlTest, StatusTable) {
  service().status.Respond(MakeStatus());
  ASSERT_EQ(Run({"status"}), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "Server:             rampart-server 0.1.0 (id srv-a)\n"
            "Started:            2024-11-20T05:00:00Z (up 3d4h)\n"
            "Store:              ok (last commit 3s ago, 0 writes pending)\n"
            "Ban list:           revision 42, epoch 3 (journal from revision "
            "30)\n"
            "Active bans:        120 (5 permanent)\n"
            "Allowlist entries:  2\n"
            "Agents:             14 known, 13 connected, 12 current\n"
            "Events last hour:   5321\n"
            "Correlator queue:   0\n"
            "Open alerts:        1\n"
            "Ban threshold:      10.00\n");
  EXPECT_EQ(err_.str(), "");
  EXPECT_EQ(service().status.requests().size(), 1u);
}

TEST_F(CtlTest, StatusJson) {
  service().status.Respond(MakeStatus());
  ASSERT_EQ(Run({"status", "--json"}), kExitOk) << err_.str();
  const Json j = OutJson();
  EXPECT_EQ(j["server_version"], "0.1.0");
  EXPECT_EQ(j["started_at"], "2024-11-20T05:00:00Z");
  EXPECT_EQ(j["uptime_seconds"], 76 * 3600);
  EXPECT_EQ(j["current_revision"], 42);
  EXPECT_EQ(j["agents"]["connected"], 13);
  EXPECT_EQ(j["store"]["state"], "ok");
  EXPECT_EQ(j["store"]["last_commit_at"], "2024-11-23T08:59:57Z");
  EXPECT_EQ(j["policy"]["ban_threshold"], 10.0);
}

TEST_F(CtlTest, GlobalFlagsWorkBeforeTheCommand) {
  service().status.Respond(MakeStatus());
  ASSERT_EQ(RunRaw({"--json", "--insecure", "--server", server_.address(),
                    "--timeout", "30s", "status"}),
            kExitOk)
      << err_.str();
  EXPECT_EQ(OutJson()["server_id"], "srv-a");
}

TEST_F(CtlTest, ServerFromEnvironment) {
  service().status.Respond(MakeStatus());
  env_.server = server_.address();
  ASSERT_EQ(RunRaw({"--insecure", "status"}), kExitOk) << err_.str();
  EXPECT_EQ(service().status.requests().size(), 1u);
}

TEST_F(CtlTest, InvalidServerInEnvironmentIsAUsageError) {
  env_.server = "mail.example.com";
  EXPECT_EQ(RunRaw({"status"}), kExitUsage);
  EXPECT_THAT(err_.str(), StartsWith("rampartctl: RAMPART_SERVER: invalid "
                                     "server \"mail.example.com\": missing "
                                     ":PORT"));
}

TEST_F(CtlTest, NoTlsMaterialIsAUsageErrorNotPlaintext) {
  EXPECT_EQ(RunRaw({"--server", server_.address(), "status"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("no TLS material: pass --ca-file"));
  EXPECT_EQ(service().calls(), 0);
  EXPECT_EQ(RunRaw({"--insecure", "--ca-file", "/x", "--server",
                    server_.address(), "status"}),
            kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--insecure excludes"));
  EXPECT_EQ(RunRaw({"--server", server_.address(), "--ca-file",
                    "/nonexistent/ca.pem", "status"}),
            kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("--ca-file /nonexistent/ca.pem"));
}

TEST_F(CtlTest, ServerFlagBeatsEnvironment) {
  env_.server = "127.0.0.1:1";
  service().status.Respond(MakeStatus());
  ASSERT_EQ(Run({"status"}), kExitOk) << err_.str();
}

// ---------------------------------------------------------------------------
// Transport errors and exit codes

// A TCP port on 127.0.0.1 that refuses connections for as long as the
// object lives: bound, never listening.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      socklen_t len = sizeof(addr);
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
      port_ = ntohs(addr.sin_port);
    }
  }
  ~ClosedPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(CtlTest, UnreachableServerExits3NamingTheAddress) {
  ClosedPort closed;
  ASSERT_GT(closed.port(), 0);
  const std::string address = "127.0.0.1:" + std::to_string(closed.port());
  EXPECT_EQ(RunRaw({"--insecure", "--server", address, "bans", "list"}),
            kExitUnreachable);
  EXPECT_THAT(err_.str(),
              StartsWith("rampartctl: cannot reach rampart-server at " +
                         address + " ("));
  EXPECT_EQ(out_.str(), "");
}

TEST_F(CtlTest, UnreachableServerExits3WithJsonToo) {
  ClosedPort closed;
  env_.server = "127.0.0.1:" + std::to_string(closed.port());
  EXPECT_EQ(RunRaw({"status", "--json", "--insecure"}), kExitUnreachable);
  EXPECT_THAT(err_.str(), HasSubstr("cannot reach rampart-server"));
}

TEST_F(CtlTest, ServerSideUnavailableExits3) {
  service().add_ban.Fail(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "store down"));
  EXPECT_EQ(
      Run({"bans", "add", "198.51.100.7", "--for", "1h", "--reason", "x"}),
      kExitUnreachable);
  EXPECT_EQ(err_.str(),
            "rampartctl: bans add: server unavailable: store down (nothing "
            "was changed; try again later)\n");
}

TEST_F(CtlTest, NotFoundExits4) {
  service().get_ban.Fail(
      grpc::Status(grpc::StatusCode::NOT_FOUND, "no ban with id 99"));
  EXPECT_EQ(Run({"bans", "show", "99"}), kExitNotFound);
  EXPECT_EQ(err_.str(),
            "rampartctl: bans show: not found: no ban with id 99\n");
}

TEST_F(CtlTest, OtherServerErrorsExit1WithTheCode) {
  service().add_ban.Fail(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      "10.0.0.0/8 overlaps the allowlist"));
  EXPECT_EQ(Run({"bans", "add", "10.0.0.0/8", "--permanent", "--reason", "x",
                 "--allow-broad"}),
            kExitError);
  EXPECT_EQ(err_.str(),
            "rampartctl: bans add: FAILED_PRECONDITION: 10.0.0.0/8 overlaps "
            "the allowlist\n");
}

TEST_F(CtlTest, DeniedCallsExit6) {
  service().remove_ban.Fail(grpc::Status(
      grpc::StatusCode::PERMISSION_DENIED,
      "token:ci has role read-only; RemoveBan needs role operator"));
  EXPECT_EQ(Run({"bans", "remove", "7", "--reason", "x"}), kExitDenied);
  EXPECT_EQ(err_.str(),
            "rampartctl: bans remove: PERMISSION_DENIED: token:ci has role "
            "read-only; RemoveBan needs role operator\n");
  service().status.Fail(
      grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no admin token"));
  EXPECT_EQ(Run({"status"}), kExitDenied);
  EXPECT_THAT(err_.str(), HasSubstr("UNAUTHENTICATED: no admin token"));
  EXPECT_THAT(err_.str(), HasSubstr("--token-file"));
}

TEST_F(CtlTest, TokenFromFlagFileOrEnvironmentIsSentAsBearer) {
  service().status.Respond(v1::StatusResponse());
  ASSERT_EQ(Run({"status"}), kExitOk) << err_.str();
  EXPECT_EQ(service().last_authorization(), "");
  env_.token = "from-env";
  ASSERT_EQ(Run({"status"}), kExitOk) << err_.str();
  EXPECT_EQ(service().last_authorization(), "Bearer from-env");
  const std::string file = WriteFile("token", "  from-file \nsecond line\n");
  ASSERT_EQ(Run({"--token-file", file, "status"}), kExitOk) << err_.str();
  EXPECT_EQ(service().last_authorization(), "Bearer from-file");
  ASSERT_EQ(Run({"status", "--token", "from-flag"}), kExitOk) << err_.str();
  EXPECT_EQ(service().last_authorization(), "Bearer from-flag");
  EXPECT_EQ(Run({"--token", "a", "--token-file", file, "status"}), kExitUsage);
  EXPECT_EQ(Run({"--token-file", TempPath("missing"), "status"}), kExitUsage);
  EXPECT_EQ(Run({"--token", "has space", "status"}), kExitUsage);
}

TEST_F(CtlTest, ServerMessagesAreSanitized) {
  service().remove_ban.Fail(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad \x1b[31mred"));
  EXPECT_EQ(Run({"bans", "remove", "7", "--reason", "x"}), kExitError);
  EXPECT_THAT(err_.str(), HasSubstr("bad \\x1b[31mred"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("\x1b")));
}

TEST_F(CtlTest, DeadlineOnAReachableServerExits1) {
  service().status.HoldUntil(&release_);
  EXPECT_EQ(Run({"--timeout", "1s", "status"}), kExitError);
  EXPECT_EQ(err_.str(),
            "rampartctl: status: no answer within 1s (--timeout); a change "
            "may or may not have been applied\n");
}

// ---------------------------------------------------------------------------
// Usage errors: exit 2, nothing sent.

struct UsageCase {
  std::vector<std::string> args;
  std::string message;  // expected substring of stderr
};

void PrintTo(const UsageCase& c, std::ostream* os) {
  for (const std::string& a : c.args) {
    *os << a << ' ';
  }
}

class CtlUsageTest : public CtlTest,
                     public ::testing::WithParamInterface<UsageCase> {};

TEST_P(CtlUsageTest, Exits2WithoutAnyCall) {
  const std::vector<std::string>& args = GetParam().args;
  const bool own_server =
      std::find(args.begin(), args.end(), "--server") != args.end();
  EXPECT_EQ(own_server ? RunRaw(args) : Run(args), kExitUsage) << out_.str();
  EXPECT_THAT(err_.str(), HasSubstr(GetParam().message));
  EXPECT_THAT(err_.str(), HasSubstr("--help' for usage."));
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(service().calls(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Commands, CtlUsageTest,
    ::testing::Values(
        UsageCase{{"bogus"}, "unknown command \"bogus\""},
        UsageCase{{"--json", "bans", "lst"}, "unknown command \"lst\""},
        UsageCase{{"bans"}, "A subcommand is required"},
        UsageCase{{"bans", "list", "--frobnicate"}, "--frobnicate"},
        UsageCase{
            {"bans", "add", "198.51.100.300", "--for", "1h", "--reason", "x"},
            "not a valid IPv4 or IPv6 address"},
        UsageCase{
            {"bans", "add", "198.51.100.7/24", "--for", "1h", "--reason", "x"},
            "host bits set; did you mean 198.51.100.0/24?"},
        UsageCase{
            {"bans", "add", "198.51.100.7", "--for", "2x", "--reason", "x"},
            "invalid duration \"2x\""},
        UsageCase{
            {"bans", "add", "198.51.100.7", "--for", "1.5h", "--reason", "x"},
            "invalid duration"},
        UsageCase{
            {"bans", "add", "198.51.100.7", "--for", "3651d", "--reason", "x"},
            "out of range"},
        UsageCase{
            {"bans", "add", "198.51.100.7", "--for", "0s", "--reason", "x"},
            "out of range"},
        UsageCase{{"bans", "add", "198.51.100.7", "--reason", "x"},
                  "a lifetime is required"},
        UsageCase{{"bans", "add", "198.51.100.7", "--for", "1h", "--permanent",
                   "--reason", "x"},
                  "not both"},
        UsageCase{{"bans", "add", "198.51.100.7", "--for", "1h"},
                  "--reason is required"},
        UsageCase{{"bans", "add", "198.51.100.7", "--for", "1h", "--reason",
                   std::string(257, 'r')},
                  "257 bytes long; at most 256"},
        UsageCase{{"bans", "add", "198.51.100.7", "--for", "1h", "--reason",
                   "x", "--scope", "smtp"},
                  "unknown value \"smtp\" (one of: all_ports, mail, "
                  "directory, web)"},
        UsageCase{{"bans", "remove", "198.51.100.7"}, "--reason is required"},
        UsageCase{{"bans", "remove", "0", "--reason", "x"}, "ids start at 1"},
        UsageCase{{"bans", "show", "example.com"}, "not a valid IPv4"},
        UsageCase{{"bans", "list", "--covering", "1.2.3"}, "--covering"},
        UsageCase{{"bans", "list", "--origin", "robot"}, "unknown value"},
        UsageCase{{"bans", "list", "--limit", "-1"}, "--limit"},
        UsageCase{{"ip", "198.51.100.0/24"}, "is a prefix"},
        UsageCase{{"ip", "198.51.100.7", "--window", "31d"}, "out of range"},
        UsageCase{{"ip", "198.51.100.7", "--events", "1001"}, "--events"},
        UsageCase{{"allow", "add", "10.0.0.1/8"}, "host bits set"},
        UsageCase{{"agents", "enroll", "Mail_1"}, "invalid agent name"},
        UsageCase{{"agents", "enroll", "mail1", "--ttl", "8d"}, "out of range"},
        UsageCase{{"agents", "revoke", "mail1"}, "--reason is required"},
        UsageCase{{"alerts", "--since", "yesterday"}, "--since"},
        UsageCase{{"alerts", "--watch", "--since", "1h"},
                  "do not apply to --watch"},
        UsageCase{{"report", "--since", "91d"}, "out of range"},
        UsageCase{{"report", "--json", "--csv"}, "not both"},
        UsageCase{{"export"}, "--format is required"},
        UsageCase{{"export", "--format", "iptables"}, "unknown value"},
        UsageCase{{"export", "--format", "plain", "--json"},
                  "does not print JSON"},
        UsageCase{{"import", "/nonexistent/rampart.txt", "--for", "1h",
                   "--reason", "x"},
                  "cannot open /nonexistent/rampart.txt"},
        UsageCase{{"--timeout", "0s", "status"}, "--timeout"},
        UsageCase{{"--insecure", "--server", "localhost", "status"},
                  "missing :PORT"},
        UsageCase{{"--insecure", "--server", "::1:7443", "status"},
                  "[brackets]"}));

TEST_F(CtlTest, NoArgumentsPrintsHelpAndExits2) {
  EXPECT_EQ(RunRaw({}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("Usage: rampartctl"));
}

TEST_F(CtlTest, HelpExits0) {
  EXPECT_EQ(RunRaw({"bans", "add", "--help"}), kExitOk);
  EXPECT_THAT(out_.str(), AllOf(HasSubstr("rampartctl bans add"),
                                HasSubstr("--for"), HasSubstr("--reason")));
  EXPECT_EQ(service().calls(), 0);
}

// ---------------------------------------------------------------------------
// bans

TEST_F(CtlTest, BansListSendsFiltersAndPrintsATable) {
  v1::ListBansResponse page;
  *page.add_bans() = MakeBan(42, "198.51.100.0/24");
  v1::BanEntry permanent = MakeBan(7, "2001:db8::/64");
  permanent.clear_expires_at();
  permanent.set_origin(v1::BAN_ORIGIN_MANUAL);
  permanent.set_escalation_level(0);
  permanent.set_reason("scanner");
  *page.add_bans() = permanent;
  page.set_total_size(2);
  service().list_bans.Respond(page);

  ASSERT_EQ(Run({"bans", "list", "--all", "--covering", "198.51.100.7",
                 "--within", "2001:DB8::/32", "--origin", "manual"}),
            kExitOk)
      << err_.str();
  const std::vector<v1::ListBansRequest> requests =
      service().list_bans.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].state(), v1::BAN_STATE_FILTER_ALL);
  EXPECT_EQ(requests[0].covering(), "198.51.100.7");
  EXPECT_EQ(requests[0].within(), "2001:db8::/32");  // canonicalised
  EXPECT_EQ(requests[0].origin(), v1::BAN_ORIGIN_MANUAL);
  EXPECT_EQ(requests[0].page_size(), 1000);
  EXPECT_EQ(requests[0].page_token(), "");
  EXPECT_EQ(out_.str(),
            "ID  PREFIX           ORIGIN  SCOPE      LEVEL  CREATED           "
            "    EXPIRES    REASON\n"
            "42  198.51.100.0/24  auto    all_ports      1  "
            "2024-11-23T08:00:00Z  in 2h      31 AUTH_FAILURE on 4 servers\n"
            " 7  2001:db8::/64    manual  all_ports      0  "
            "2024-11-23T08:00:00Z  permanent  scanner\n");
}

TEST_F(CtlTest, BansListDefaultsToActive) {
  ASSERT_EQ(Run({"bans", "list"}), kExitOk) << err_.str();
  ASSERT_EQ(service().list_bans.requests().size(), 1u);
  EXPECT_EQ(service().list_bans.requests()[0].state(),
            v1::BAN_STATE_FILTER_ACTIVE);
  EXPECT_EQ(out_.str(), "No bans match.\n");
}

TEST_F(CtlTest, BansListJson) {
  v1::ListBansResponse page;
  *page.add_bans() = MakeBan(42, "198.51.100.0/24");
  v1::BanEntry permanent = MakeBan(7, "2001:db8::/64");
  permanent.clear_expires_at();
  *page.add_bans() = permanent;
  page.set_total_size(2);
  service().list_bans.Respond(page);
  ASSERT_EQ(Run({"bans", "list", "--json"}), kExitOk) << err_.str();
  const Json j = OutJson();
  ASSERT_EQ(j["bans"].size(), 2u);
  EXPECT_EQ(j["bans"][0], Json::parse(R"({"id":42,"prefix":"198.51.100.0/24",
              "created_at":"2024-11-23T08:00:00Z",
              "expires_at":"2024-11-23T11:00:00Z",
              "reason":"31 AUTH_FAILURE on 4 servers","origin":"auto",
              "scope":"all_ports","escalation_level":1,"revision":17})"));
  EXPECT_TRUE(j["bans"][1]["expires_at"].is_null());
  EXPECT_EQ(j["total_size"], 2);
  EXPECT_EQ(j["truncated"], false);
}

TEST_F(CtlTest, BansListFollowsPagesUpToTheLimit) {
  v1::ListBansResponse p1, p2, p3;
  *p1.add_bans() = MakeBan(5, "192.0.2.5/32");
  *p1.add_bans() = MakeBan(4, "192.0.2.4/32");
  p1.set_next_page_token("t1");
  *p2.add_bans() = MakeBan(3, "192.0.2.3/32");
  *p2.add_bans() = MakeBan(2, "192.0.2.2/32");
  p2.set_next_page_token("t2");
  *p3.add_bans() = MakeBan(1, "192.0.2.1/32");
  service().list_bans.RespondPages({p1, p2, p3});

  ASSERT_EQ(Run({"bans", "list", "--limit", "3", "--json"}), kExitOk)
      << err_.str();
  const std::vector<v1::ListBansRequest> requests =
      service().list_bans.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].page_size(), 3);
  EXPECT_EQ(requests[1].page_size(), 1);
  EXPECT_EQ(requests[1].page_token(), "t1");
  const Json j = OutJson();
  ASSERT_EQ(j["bans"].size(), 3u);
  EXPECT_EQ(j["bans"][2]["id"], 3);
  EXPECT_EQ(j["truncated"], true);
}

TEST_F(CtlTest, BansListAllPages) {
  v1::ListBansResponse p1, p2;
  *p1.add_bans() = MakeBan(2, "192.0.2.2/32");
  p1.set_next_page_token("t1");
  *p2.add_bans() = MakeBan(1, "192.0.2.1/32");
  service().list_bans.RespondPages({p1, p2});
  ASSERT_EQ(Run({"bans", "list", "--limit", "0"}), kExitOk) << err_.str();
  EXPECT_EQ(service().list_bans.requests().size(), 2u);
  EXPECT_THAT(out_.str(),
              AllOf(HasSubstr("192.0.2.2/32"), HasSubstr("192.0.2.1/32")));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CtlTest, BansListTruncationIsNotedOnStderr) {
  v1::ListBansResponse p1;
  *p1.add_bans() = MakeBan(2, "192.0.2.2/32");
  p1.set_next_page_token("t1");
  service().list_bans.Respond(p1);
  ASSERT_EQ(Run({"bans", "list", "--limit", "1"}), kExitOk);
  EXPECT_THAT(err_.str(), HasSubstr("showing the first 1; more exist"));
}

TEST_F(CtlTest, BansListRepeatedPageTokenIsAnError) {
  v1::ListBansResponse p1;
  *p1.add_bans() = MakeBan(2, "192.0.2.2/32");
  p1.set_next_page_token("same");
  service().list_bans.Respond(p1);  // repeats forever
  EXPECT_EQ(Run({"bans", "list", "--limit", "0"}), kExitError);
  EXPECT_THAT(err_.str(), HasSubstr("same page token twice"));
}

TEST_F(CtlTest, BansShowById) {
  v1::GetBanResponse r;
  *r.mutable_ban() = MakeBan(42, "198.51.100.0/24");
  r.set_active(true);
  r.set_agents_enforcing(13);
  r.set_agents_total(14);
  v1::BanExplanation* e = r.mutable_explanation();
  e->set_summary("score 12.4 >= 10: 31 AUTH_FAILURE on 4 servers");
  e->set_score(12.4);
  e->set_threshold(10);
  e->set_distinct_servers(4);
  e->set_cross_server_multiplier(2);
  v1::ScoreContribution* c = e->add_contributions();
  c->set_kind(v1::EVENT_KIND_AUTH_FAILURE);
  c->set_protocol(v1::PROTOCOL_SMTP);
  c->set_events(31);
  c->set_points(12.4);
  v1::AuthEventRecord* ev = e->add_evidence();
  ev->set_agent_id("mail1");
  ev->mutable_event()->set_kind(v1::EVENT_KIND_AUTH_FAILURE);
  ev->mutable_event()->set_protocol(v1::PROTOCOL_SMTP);
  ev->mutable_event()->set_ip("198.51.100.7");
  ev->mutable_event()->set_user("admin");
  *ev->mutable_event()->mutable_time() =
      Ts(testing::TestNow() - absl::Minutes(61));
  v1::BanHistoryEvent* h = r.add_history();
  *h->mutable_at() = Ts(testing::TestNow() - absl::Hours(1));
  h->set_action(v1::BAN_HISTORY_ACTION_CREATED);
  h->set_actor("correlator");
  h->set_revision(17);
  h->set_reason("auto");
  v1::AgentEnforcement* a = r.add_enforcement();
  a->set_agent_id("mail1");
  a->set_site("fra");
  a->set_enforced(true);
  a->set_enforced_revision(17);
  a->set_connected(true);
  service().get_ban.Respond(r);

  ASSERT_EQ(Run({"bans", "show", "42"}), kExitOk) << err_.str();
  ASSERT_EQ(service().get_ban.requests().size(), 1u);
  EXPECT_EQ(service().get_ban.requests()[0].id(), 42u);
  EXPECT_EQ(service().get_ban.requests()[0].selector_case(),
            v1::GetBanRequest::kId);
  const std::string text = out_.str();
  EXPECT_THAT(text, StartsWith("Ban 42: 198.51.100.0/24 (active)\n"));
  EXPECT_THAT(text, HasSubstr("Enforced:     live on 13 of 14 agents\n"));
  EXPECT_THAT(text, HasSubstr("Expires:      2024-11-23T11:00:00Z (in 2h)\n"));
  EXPECT_THAT(text,
              HasSubstr("Score:        12.40 (threshold 10.00, 4 servers, "
                        "cross-server x2.00)\n"));
  EXPECT_THAT(text, HasSubstr("\nScore contributions\n"
                              "KIND          PROTOCOL  EVENTS  POINTS\n"
                              "auth_failure  smtp          31   12.40\n"));
  EXPECT_THAT(text, HasSubstr("\nHistory\nAT                    ACTION   ACTOR "
                              "      REVISION  EXPIRES  REASON\n"
                              "2024-11-23T08:00:00Z  created  correlator      "
                              "  17  -        auto\n"));
  EXPECT_THAT(text, HasSubstr("\nEnforcement\n"));
  EXPECT_THAT(text, HasSubstr("mail1  fra   yes        yes             17\n"));
  EXPECT_THAT(text, HasSubstr("\nEvidence (newest first)\n"));

  ASSERT_EQ(Run({"bans", "show", "42", "--json"}), kExitOk);
  const Json j = OutJson();
  EXPECT_EQ(j["ban"]["id"], 42);
  EXPECT_EQ(j["active"], true);
  EXPECT_EQ(j["explanation"]["contributions"][0]["kind"], "auth_failure");
  EXPECT_EQ(j["explanation"]["evidence"][0]["user"], "admin");
  EXPECT_EQ(j["history"][0]["action"], "created");
  EXPECT_EQ(j["enforcement"]["agents_enforcing"], 13);
  EXPECT_EQ(j["enforcement"]["agents"][0]["agent_id"], "mail1");
}

TEST_F(CtlTest, BansShowByAddress) {
  v1::GetBanResponse r;
  *r.mutable_ban() = MakeBan(42, "198.51.100.0/24");
  service().get_ban.Respond(r);
  ASSERT_EQ(Run({"bans", "show", "198.51.100.7", "--inactive"}), kExitOk)
      << err_.str();
  ASSERT_EQ(service().get_ban.requests().size(), 1u);
  EXPECT_EQ(service().get_ban.requests()[0].address(), "198.51.100.7");
  EXPECT_TRUE(service().get_ban.requests()[0].include_inactive());
  EXPECT_THAT(out_.str(), StartsWith("Ban 42: 198.51.100.0/24 (inactive)\n"));
}

TEST_F(CtlTest, BansAddSendsAValidatedRequest) {
  v1::AddBanResponse r;
  *r.mutable_ban() = MakeBan(43, "2001:db8::1/128");
  *r.mutable_ban()->mutable_expires_at() =
      Ts(testing::TestNow() + absl::Hours(2));
  r.set_created(true);
  r.set_revision(18);
  service().add_ban.Respond(r);

  ASSERT_EQ(Run({"bans", "add", "2001:DB8:0::1", "--for", "2h", "--reason",
                 "phishing kit", "--scope", "mail"}),
            kExitOk)
      << err_.str();
  const std::vector<v1::AddBanRequest> requests = service().add_ban.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target(), "2001:db8::1");
  EXPECT_EQ(requests[0].lifetime_case(), v1::AddBanRequest::kDuration);
  EXPECT_EQ(requests[0].duration().seconds(), 7200);
  EXPECT_EQ(requests[0].reason(), "phishing kit");
  EXPECT_EQ(requests[0].scope(), v1::BAN_SCOPE_MAIL);
  EXPECT_FALSE(requests[0].allow_broad_prefix());
  EXPECT_EQ(out_.str(),
            "Banned 2001:db8::1/128 until 2024-11-23T11:00:00Z (in 2h): ban "
            "43, scope all_ports, revision 18\n");
}

TEST_F(CtlTest, BansAddPermanentCompoundDurationAndJson) {
  v1::AddBanResponse r;
  *r.mutable_ban() = MakeBan(9, "203.0.113.0/24");
  r.mutable_ban()->clear_expires_at();
  r.set_created(false);
  r.set_revision(19);
  service().add_ban.Respond(r);
  ASSERT_EQ(
      Run({"bans", "add", "203.0.113.0/24", "--permanent", "--reason", "x"}),
      kExitOk);
  EXPECT_EQ(service().add_ban.requests()[0].lifetime_case(),
            v1::AddBanRequest::kPermanent);
  EXPECT_EQ(out_.str(),
            "Updated existing ban of 203.0.113.0/24 permanently: ban 9, "
            "scope all_ports, revision 19\n");

  ASSERT_EQ(Run({"bans", "add", "203.0.113.0/24", "--for", "1d12h", "--reason",
                 "x", "--json"}),
            kExitOk);
  EXPECT_EQ(service().add_ban.requests()[1].duration().seconds(), 36 * 3600);
  const Json j = OutJson();
  EXPECT_EQ(j["created"], false);
  EXPECT_EQ(j["revision"], 19);
  EXPECT_EQ(j["ban"]["id"], 9);
}

TEST_F(CtlTest, BansRemoveByTargetAndById) {
  v1::RemoveBanResponse r;
  *r.mutable_removed() = MakeBan(42, "198.51.100.7/32");
  r.set_revision(20);
  service().remove_ban.Respond(r);
  ASSERT_EQ(Run({"bans", "remove", "198.51.100.7", "--reason",
                 "false "
                 "positive",
                 "--forgive"}),
            kExitOk)
      << err_.str();
  ASSERT_EQ(Run({"bans", "remove", "42", "--reason", "x"}), kExitOk);
  const std::vector<v1::RemoveBanRequest> requests =
      service().remove_ban.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].target(), "198.51.100.7");
  EXPECT_EQ(requests[0].reason(), "false positive");
  EXPECT_TRUE(requests[0].forgive_score());
  EXPECT_EQ(requests[1].id(), 42u);
  EXPECT_FALSE(requests[1].forgive_score());
  EXPECT_EQ(out_.str(), "Removed ban 42 (198.51.100.7/32), revision 20\n");
}

// ---------------------------------------------------------------------------
// ip

TEST_F(CtlTest, IpLookup) {
  v1::LookupIpResponse r;
  r.set_address("198.51.100.7");
  r.set_score(12.4);
  r.set_ban_threshold(10);
  *r.mutable_active_ban() = MakeBan(42, "198.51.100.0/24");
  *r.add_bans() = MakeBan(42, "198.51.100.0/24");
  v1::AgentHitCount* hit = r.add_agents_hit();
  hit->set_agent_id("mail1");
  hit->set_events(30);
  hit = r.add_agents_hit();
  hit->set_agent_id("mail2");
  hit->set_events(1);
  v1::UserAttemptCount* user = r.add_users_tried();
  user->set_user("admin");
  user->set_attempts(20);
  user = r.add_users_tried();
  user->set_user("evil\x1b]52;c;AAAA\x07\xff");  // terminal escape, not UTF-8
  user->set_attempts(3);
  service().lookup_ip.Respond(r);

  ASSERT_EQ(Run({"ip", "198.51.100.7", "--window", "7d", "--events", "50"}),
            kExitOk)
      << err_.str();
  const std::vector<v1::LookupIpRequest> requests =
      service().lookup_ip.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].address(), "198.51.100.7");
  EXPECT_EQ(requests[0].window().seconds(), 7 * 86400);
  EXPECT_EQ(requests[0].max_events(), 50u);
  const std::string text = out_.str();
  EXPECT_THAT(text, StartsWith("Address:      198.51.100.7\n"
                               "Score:        12.40 (ban threshold 10.00)\n"
                               "Allowlisted:  no\n"
                               "Own address:  no\n"
                               "Active ban:   198.51.100.0/24 (ban 42, in "
                               "2h): 31 AUTH_FAILURE on 4 servers\n"));
  EXPECT_THAT(text, HasSubstr("\nServers hit\nAGENT  EVENTS\nmail1      30\n"
                              "mail2       1\n"));
  EXPECT_THAT(text, HasSubstr("\nUsers tried\nATTEMPTS  USER\n"
                              "      20  admin\n"
                              "       3  evil\\x1b]52;c;AAAA\\x07\\xff\n"));
  EXPECT_THAT(text, Not(HasSubstr("\x1b")));

  ASSERT_EQ(Run({"ip", "198.51.100.7", "--json"}), kExitOk);
  const Json j = OutJson();
  EXPECT_EQ(j["address"], "198.51.100.7");
  EXPECT_EQ(j["active_ban"]["id"], 42);
  EXPECT_TRUE(j["allow"].is_null());
  EXPECT_EQ(j["servers_hit"][0]["agent_id"], "mail1");
  EXPECT_EQ(j["users_tried"][0]["attempts"], 20);
  // Not UTF-8: the 0xff byte is decoded as Latin-1 (U+00FF).
  EXPECT_EQ(j["users_tried"][1]["user"], "evil\x1b]52;c;AAAA\x07\xc3\xbf");
}

// ---------------------------------------------------------------------------
// allow

TEST_F(CtlTest, AllowListAddRemove) {
  v1::ListAllowResponse list;
  v1::AllowEntry* e = list.add_entries();
  e->set_id(3);
  e->set_prefix("10.0.0.0/8");
  *e->mutable_created_at() = Ts(testing::TestNow() - absl::Hours(24));
  e->set_comment("office");
  e->set_created_by("local:0");
  service().list_allow.Respond(list);
  ASSERT_EQ(Run({"allow", "list", "--all"}), kExitOk) << err_.str();
  EXPECT_TRUE(service().list_allow.requests()[0].include_expired());
  EXPECT_EQ(out_.str(),
            "ID  PREFIX      EXPIRES    CREATED               BY       "
            "COMMENT\n"
            " 3  10.0.0.0/8  permanent  2024-11-22T09:00:00Z  local:0  "
            "office\n");

  v1::AddAllowResponse added;
  *added.mutable_entry() = *e;
  *added.add_removed_bans() = MakeBan(42, "10.1.2.3/32");
  added.set_revision(21);
  service().add_allow.Respond(added);
  ASSERT_EQ(Run({"allow", "add", "10.0.0.0/8", "--for", "30d", "--comment",
                 "office", "--remove-covering-bans"}),
            kExitOk)
      << err_.str();
  const v1::AddAllowRequest req = service().add_allow.requests()[0];
  EXPECT_EQ(req.cidr(), "10.0.0.0/8");
  EXPECT_EQ(req.duration().seconds(), 30 * 86400);
  EXPECT_EQ(req.comment(), "office");
  EXPECT_TRUE(req.remove_covering_bans());
  EXPECT_EQ(out_.str(),
            "Allowlisted 10.0.0.0/8 (entry 3, permanent)\n"
            "Removed 1 ban in revision 21: 10.1.2.3/32\n");

  v1::RemoveAllowResponse removed;
  *removed.mutable_removed() = *e;
  service().remove_allow.Respond(removed);
  ASSERT_EQ(Run({"allow", "remove", "10.0.0.0/8", "--json"}), kExitOk);
  EXPECT_EQ(service().remove_allow.requests()[0].cidr(), "10.0.0.0/8");
  EXPECT_EQ(OutJson()["removed"]["id"], 3);
  ASSERT_EQ(Run({"allow", "remove", "3"}), kExitOk);
  EXPECT_EQ(service().remove_allow.requests()[1].id(), 3u);
  EXPECT_EQ(out_.str(), "Removed allowlist entry 3 (10.0.0.0/8)\n");
}

TEST_F(CtlTest, AllowAddBroadSetsTheFlag) {
  v1::AddAllowResponse added;
  added.mutable_entry()->set_prefix("0.0.0.0/0");
  service().add_allow.Respond(added);
  ASSERT_EQ(Run({"allow", "add", "198.51.100.0/24"}), kExitOk) << err_.str();
  EXPECT_FALSE(service().add_allow.requests()[0].allow_broad_prefix());
  ASSERT_EQ(Run({"allow", "add", "0.0.0.0/0", "--broad"}), kExitOk)
      << err_.str();
  EXPECT_TRUE(service().add_allow.requests()[1].allow_broad_prefix());
}

TEST_F(CtlTest, AgentsProtectAndBanOverride) {
  v1::SetAgentProtectionResponse r;
  r.add_protected_addresses("192.0.2.10");
  r.add_protected_addresses("192.0.2.25");
  service().set_agent_protection.Respond(r);
  ASSERT_EQ(Run({"agents", "protect", "mail1", "192.0.2.25"}), kExitOk)
      << err_.str();
  const v1::SetAgentProtectionRequest req =
      service().set_agent_protection.requests()[0];
  EXPECT_EQ(req.agent_id(), "mail1");
  EXPECT_THAT(req.addresses(), ElementsAre("192.0.2.25"));
  EXPECT_FALSE(req.unprotect());
  EXPECT_EQ(out_.str(),
            "Agent mail1: protected 192.0.2.10, 192.0.2.25; unapproved "
            "(none)\n");
  ASSERT_EQ(Run({"agents", "unprotect", "mail1", "192.0.2.25"}), kExitOk);
  EXPECT_TRUE(service().set_agent_protection.requests()[1].unprotect());
  // Only single addresses, checked before anything is sent.
  EXPECT_NE(Run({"agents", "protect", "mail1", "192.0.2.0/24"}), kExitOk);
  EXPECT_EQ(service().set_agent_protection.requests().size(), 2u);

  ASSERT_EQ(Run({"bans", "add", "192.0.2.25", "--for", "1h", "--reason", "x",
                 "--override-protected"}),
            kExitOk)
      << err_.str();
  EXPECT_TRUE(service().add_ban.requests()[0].override_protected());
}

TEST_F(CtlTest, AllowAddAlreadyExistsExits1) {
  service().add_allow.Fail(
      grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "10.0.0.0/8 exists"));
  EXPECT_EQ(Run({"allow", "add", "10.0.0.0/8"}), kExitError);
  EXPECT_EQ(err_.str(),
            "rampartctl: allow add: ALREADY_EXISTS: 10.0.0.0/8 exists\n");
  EXPECT_FALSE(service().add_allow.requests()[0].has_duration());
}

// ---------------------------------------------------------------------------
// agents

TEST_F(CtlTest, AgentsList) {
  v1::ListAgentsResponse r;
  r.set_current_revision(42);
  v1::AgentInfo* a = r.add_agents();
  a->set_agent_id("mail1");
  a->set_site("fra");
  a->set_hostname("mail1.example.com");
  a->set_agent_version("0.1.0");
  a->set_connected(true);
  *a->mutable_last_seen() = Ts(testing::TestNow() - absl::Seconds(12));
  a->set_enforced_revision(42);
  a->set_enrollment(v1::ENROLLMENT_STATE_ENROLLED);
  a = r.add_agents();
  a->set_agent_id("mail2");
  a->set_agent_version("0.0.9");
  *a->mutable_last_seen() = Ts(testing::TestNow() - absl::Hours(3));
  a->set_enforced_revision(39);
  a->set_revision_lag(3);
  a->mutable_time_lag()->set_seconds(130);
  a->set_apply_errors(2);
  service().list_agents.Respond(r);

  ASSERT_EQ(Run({"agents", "list", "--connected", "--site", "fra"}), kExitOk)
      << err_.str();
  EXPECT_TRUE(service().list_agents.requests()[0].connected_only());
  EXPECT_EQ(service().list_agents.requests()[0].site(), "fra");
  EXPECT_EQ(out_.str(),
            "AGENT  SITE  VERSION  STATE         LAST SEEN  REVISION  LAG     "
            "      ERRORS  HOST\n"
            "mail1  fra   0.1.0    connected     12s ago          42  -       "
            "           0  mail1.example.com\n"
            "mail2  -     0.0.9    disconnected  3h ago           39  3 rev, "
            "2m10s       2\n");

  ASSERT_EQ(Run({"agents", "list", "--json"}), kExitOk);
  const Json j = OutJson();
  EXPECT_EQ(j["current_revision"], 42);
  EXPECT_EQ(j["agents"][1]["revision_lag"], 3);
  EXPECT_EQ(j["agents"][1]["time_lag_seconds"], 130);
  EXPECT_EQ(j["agents"][0]["enrollment"], "enrolled");
  EXPECT_EQ(j["agents"][0]["last_seen"], "2024-11-23T08:59:48Z");
}

TEST_F(CtlTest, AgentsEnrollAndRevoke) {
  v1::EnrollAgentResponse token;
  token.set_token("rmp_1234abcd");
  *token.mutable_expires_at() = Ts(testing::TestNow() + absl::Hours(24));
  service().enroll_agent.Respond(token);
  ASSERT_EQ(Run({"agents", "enroll", "mail3", "--site", "fra", "--ttl", "2h",
                 "--reenroll"}),
            kExitOk)
      << err_.str();
  const v1::EnrollAgentRequest req = service().enroll_agent.requests()[0];
  EXPECT_EQ(req.agent_id(), "mail3");
  EXPECT_EQ(req.site(), "fra");
  EXPECT_EQ(req.token_ttl().seconds(), 7200);
  EXPECT_TRUE(req.reenroll());
  EXPECT_EQ(out_.str(),
            "Enrollment token for mail3 (one use; expires "
            "2024-11-24T09:00:00Z, in 1d):\nrmp_1234abcd\n");

  v1::RevokeAgentResponse revoked;
  *revoked.mutable_revoked_at() = Ts(testing::TestNow());
  revoked.set_was_connected(true);
  service().revoke_agent.Respond(revoked);
  ASSERT_EQ(Run({"agents", "revoke", "mail3", "--reason", "decommissioned",
                 "--json"}),
            kExitOk);
  EXPECT_EQ(service().revoke_agent.requests()[0].reason(), "decommissioned");
  const Json j = OutJson();
  EXPECT_EQ(j, Json::parse(R"({"agent_id":"mail3",
      "revoked_at":"2024-11-23T09:00:00Z","was_connected":true})"));

  service().revoke_agent.Fail(
      grpc::Status(grpc::StatusCode::NOT_FOUND, "no agent mail9"));
  EXPECT_EQ(Run({"agents", "revoke", "mail9", "--reason", "x"}), kExitNotFound);
}

// ---------------------------------------------------------------------------
// accounts, alerts

TEST_F(CtlTest, AccountsList) {
  v1::ListAccountsResponse r;
  v1::AccountInfo* a = r.add_accounts();
  a->set_user("jdoe");
  a->set_distinct_ips(57);
  a->set_distinct_servers(4);
  a->set_failures(310);
  a->set_locked_out(true);
  a->set_compromise_suspected(true);
  *a->mutable_last_seen() = Ts(testing::TestNow() - absl::Minutes(2));
  a->add_protocols(v1::PROTOCOL_SMTP);
  a->add_protocols(v1::PROTOCOL_HTTP);
  service().list_accounts.Respond(r);
  ASSERT_EQ(Run({"accounts", "list", "--window", "6h", "--min-ips", "5"}),
            kExitOk)
      << err_.str();
  const v1::ListAccountsRequest req = service().list_accounts.requests()[0];
  EXPECT_EQ(req.window().seconds(), 6 * 3600);
  EXPECT_EQ(req.min_distinct_ips(), 5u);
  EXPECT_EQ(out_.str(),
            "USER  IPS  SERVERS  FAILURES  LOCKED  ALERT        LAST SEEN  "
            "PROTOCOLS\n"
            "jdoe   57        4       310  yes     COMPROMISE?  2m ago     "
            "smtp,http\n");
  ASSERT_EQ(Run({"accounts", "list", "--json"}), kExitOk);
  EXPECT_EQ(OutJson()["accounts"][0]["protocols"],
            Json::parse(R"(["smtp","http"])"));
}

TEST_F(CtlTest, AlertsListWithSince) {
  v1::ListAlertsResponse r;
  *r.add_alerts() = MakeAlert(12, "jdoe");
  service().list_alerts.Respond(r);
  ASSERT_EQ(
      Run({"alerts", "--since", "24h", "--kind", "success_after_failures"}),
      kExitOk)
      << err_.str();
  const v1::ListAlertsRequest req = service().list_alerts.requests()[0];
  EXPECT_EQ(ToTime(req.since()), testing::TestNow() - absl::Hours(24));
  EXPECT_EQ(req.kind(), v1::ALERT_KIND_SUCCESS_AFTER_FAILURES);
  EXPECT_EQ(out_.str(),
            "ID  RAISED                USER  IP            AGENT  SUMMARY\n"
            "12  2024-11-23T08:55:00Z  jdoe  198.51.100.7  mail1  success "
            "after 12 failures\n");

  ASSERT_EQ(Run({"alerts", "--since", "2024-11-01T00:00:00Z", "--json"}),
            kExitOk);
  EXPECT_EQ(ToTime(service().list_alerts.requests()[1].since()),
            absl::FromUnixSeconds(1730419200));
  EXPECT_EQ(OutJson()["alerts"][0]["kind"], "success_after_failures");
}

TEST_F(CtlTest, AlertsWatchStreamsUntilTheServerEndsTheStream) {
  std::vector<v1::WatchAlertsResponse> messages(2);
  *messages[0].mutable_alert() = MakeAlert(6, "jdoe");
  *messages[1].mutable_alert() = MakeAlert(7, "asmith");
  absl::Notification written;
  service().watch_alerts.Respond(messages);
  service().watch_alerts.HoldUntil(&release_, &written);

  testing::LineSignalBuf buf;
  std::ostream out(&buf);
  std::ostringstream err;
  std::atomic<bool> done{false};
  int code = -1;
  std::thread watcher([&] {
    code = RunCtl({"--insecure", "--server", server_.address(), "alerts",
                   "--watch", "--after", "5"},
                  out, err, env_);
    done = true;
  });
  // Both alerts are printed while the server still holds the stream open.
  buf.WaitForLines(2);
  EXPECT_FALSE(done.load());
  release_.Notify();
  watcher.join();
  EXPECT_EQ(code, kExitOk) << err.str();
  ASSERT_EQ(service().watch_alerts.requests().size(), 1u);
  EXPECT_EQ(service().watch_alerts.requests()[0].after_alert_id(), 5u);
  EXPECT_EQ(buf.str(),
            "2024-11-23T08:55:00Z  alert 6  user jdoe from 198.51.100.7 on "
            "mail1: success after 12 failures\n"
            "2024-11-23T08:55:00Z  alert 7  user asmith from 198.51.100.7 "
            "on mail1: success after 12 failures\n");
}

TEST_F(CtlTest, AlertsWatchJsonLinesAndDrain) {
  std::vector<v1::WatchAlertsResponse> messages(2);
  *messages[0].mutable_alert() = MakeAlert(6, "jdoe");
  *messages[1].mutable_alert() = MakeAlert(7, "asmith");
  service().watch_alerts.Respond(
      messages, grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  EXPECT_EQ(Run({"alerts", "--watch", "--json"}), kExitUnreachable);
  EXPECT_THAT(err_.str(), HasSubstr("server unavailable: draining"));
  std::istringstream lines(out_.str());
  std::string line;
  std::vector<uint64_t> ids;
  while (std::getline(lines, line)) {
    ids.push_back(Json::parse(line)["id"].get<uint64_t>());
  }
  EXPECT_THAT(ids, ElementsAre(6u, 7u));
}

TEST_F(CtlTest, AlertsWatchOutOfRange) {
  service().watch_alerts.Respond(
      {}, grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "too old"));
  EXPECT_EQ(Run({"alerts", "--watch", "--after", "1"}), kExitError);
  EXPECT_THAT(err_.str(), HasSubstr("list what you missed with `rampartctl "
                                    "alerts`"));
}

// ---------------------------------------------------------------------------
// report

v1::ReportResponse MakeReport() {
  v1::ReportResponse r;
  *r.mutable_period_start() = Ts(testing::TestNow() - absl::Hours(24));
  *r.mutable_period_end() = Ts(testing::TestNow());
  r.set_events_total(5000);
  v1::ProtocolCount* p = r.add_per_protocol();
  p->set_protocol(v1::PROTOCOL_SMTP);
  p->set_auth_failures(4000);
  p->set_lockouts(10);
  p->set_total(4500);
  v1::Offender* o = r.add_top_offenders();
  o->set_address("198.51.100.7");
  o->set_events(900);
  o->set_peak_score(55.5);
  o->set_distinct_servers(4);
  o->set_distinct_users(120);
  o->set_banned(true);
  *r.add_new_bans() = MakeBan(42, "198.51.100.0/24");
  r.set_new_bans_total(17);
  v1::AccountInfo* a = r.add_targeted_accounts();
  a->set_user("=HYPERLINK(\"http://x\")");
  a->set_distinct_ips(57);
  a->set_distinct_servers(4);
  a->set_failures(310);
  a->set_locked_out(true);
  *r.add_compromise_alerts() = MakeAlert(12, "jdoe");
  return r;
}

TEST_F(CtlTest, ReportTable) {
  service().report.Respond(MakeReport());
  ASSERT_EQ(Run({"report", "--since", "24h", "--top", "10"}), kExitOk)
      << err_.str();
  const v1::ReportRequest req = service().report.requests()[0];
  EXPECT_EQ(req.since().seconds(), 86400);
  EXPECT_EQ(req.top_n(), 10u);
  const std::string text = out_.str();
  EXPECT_THAT(text, StartsWith("Report 2024-11-22T09:00:00Z .. "
                               "2024-11-23T09:00:00Z (1d)\n"
                               "Events: 5000   New bans: 17   Compromise "
                               "alerts: 1\n"));
  EXPECT_THAT(text, HasSubstr("\nTop offenders\n"
                              "#  ADDRESS       EVENTS  PEAK SCORE  SERVERS  "
                              "USERS  BANNED\n"
                              "1  198.51.100.7     900       55.50        4  "
                              "  120  yes\n"));
  EXPECT_THAT(text, HasSubstr("\nNew bans (newest 1 of 17)\n"));
  EXPECT_THAT(text, HasSubstr("\nTargeted accounts\n"));
  EXPECT_THAT(text, HasSubstr("\nCompromise alerts\n"));
}

TEST_F(CtlTest, ReportJson) {
  service().report.Respond(MakeReport());
  ASSERT_EQ(Run({"report", "--json"}), kExitOk) << err_.str();
  EXPECT_FALSE(service().report.requests()[0].has_since());
  const Json j = OutJson();
  EXPECT_EQ(j["period_start"], "2024-11-22T09:00:00Z");
  EXPECT_EQ(j["events_total"], 5000);
  EXPECT_EQ(j["top_offenders"][0]["peak_score"], 55.5);
  EXPECT_EQ(j["new_bans_total"], 17);
  EXPECT_EQ(j["new_bans"][0]["id"], 42);
  EXPECT_EQ(j["targeted_accounts"][0]["distinct_ips"], 57);
  EXPECT_EQ(j["compromise_alerts"][0]["id"], 12);
  EXPECT_EQ(j["per_protocol"][0]["protocol"], "smtp");
}

TEST_F(CtlTest, ReportCsv) {
  service().report.Respond(MakeReport());
  ASSERT_EQ(Run({"report", "--csv"}), kExitOk) << err_.str();
  EXPECT_EQ(
      out_.str(),
      "section,rank,subject,at,events,score,distinct_ips,distinct_servers,"
      "distinct_users,banned,origin,expires_at,ip,detail\r\n"
      "summary,,period_start,2024-11-22T09:00:00Z,,,,,,,,,,\r\n"
      "summary,,period_end,2024-11-23T09:00:00Z,,,,,,,,,,\r\n"
      "summary,,events_total,,5000,,,,,,,,,\r\n"
      "summary,,new_bans_total,,17,,,,,,,,,\r\n"
      "summary,,compromise_alerts,,1,,,,,,,,,\r\n"
      "protocol,,smtp,,4500,,,,,,,,,auth_failures=4000;lockouts=10\r\n"
      "offender,1,198.51.100.7,,900,55.50,,4,120,true,,,,\r\n"
      "new_ban,1,198.51.100.0/24,2024-11-23T08:00:00Z,,,,,,,auto,"
      "2024-11-23T11:00:00Z,,31 AUTH_FAILURE on 4 servers\r\n"
      // Formula-looking user names are defused for spreadsheets.
      "account,1,\"'=HYPERLINK(\"\"http://x\"\")\",,310,,57,4,,,,,,"
      "locked_out\r\n"
      "alert,1,jdoe,2024-11-23T08:55:00Z,,,,,,,,,198.51.100.7,success after "
      "12 failures\r\n");
}

// ---------------------------------------------------------------------------
// export

v1::ExportChunk Chunk(uint32_t index, std::string data, bool final_chunk,
                      uint64_t entries = 0) {
  v1::ExportChunk c;
  c.set_data(std::move(data));
  c.set_revision(42);
  c.set_chunk_index(index);
  c.set_final_chunk(final_chunk);
  c.set_entry_count(entries);
  return c;
}

struct ExportCase {
  std::string flag;
  v1::ExportFormat format;
  std::vector<std::string> chunks;  // the server's golden text, split
};

void PrintTo(const ExportCase& c, std::ostream* os) { *os << c.flag; }

class CtlExportTest : public CtlTest,
                      public ::testing::WithParamInterface<ExportCase> {};

TEST_P(CtlExportTest, WritesTheServersChunksVerbatim) {
  const ExportCase& c = GetParam();
  std::vector<v1::ExportChunk> chunks;
  std::string golden;
  for (size_t i = 0; i < c.chunks.size(); ++i) {
    chunks.push_back(Chunk(static_cast<uint32_t>(i), c.chunks[i],
                           i + 1 == c.chunks.size(), 3));
    golden += c.chunks[i];
  }
  service().export_chunks.Respond(chunks);
  ASSERT_EQ(Run({"export", "--format", c.flag}), kExitOk) << err_.str();
  ASSERT_EQ(service().export_chunks.requests().size(), 1u);
  EXPECT_EQ(service().export_chunks.requests()[0].format(), c.format);
  EXPECT_EQ(out_.str(), golden);
  EXPECT_EQ(err_.str(), "");
}

INSTANTIATE_TEST_SUITE_P(
    Formats, CtlExportTest,
    ::testing::Values(
        ExportCase{"plain",
                   v1::EXPORT_FORMAT_PLAIN,
                   {"198.51.100.0/24\n198.51.100.7/32\n", "2001:db8::/64\n"}},
        ExportCase{"nft",
                   v1::EXPORT_FORMAT_NFT,
                   {"add table inet rampart\n"
                    "add set inet rampart rampart_v4 { type ipv4_addr; "
                    "flags interval,timeout; }\n",
                    "add element inet rampart rampart_v4 { 198.51.100.0/24 "
                    "timeout 7200s }\n"}},
        ExportCase{"netsh",
                   v1::EXPORT_FORMAT_NETSH,
                   {"netsh advfirewall firewall add rule name=\"Rampart 42\" "
                    "dir=in action=block remoteip=198.51.100.0/24\r\n"}},
        ExportCase{"csv",
                   v1::EXPORT_FORMAT_CSV,
                   {"id,prefix,created_at,expires_at,origin,scope,"
                    "escalation_level,reason\r\n",
                    "42,198.51.100.0/24,2024-11-23T08:00:00Z,,auto,"
                    "all_ports,1,\"a, b\"\r\n"}}));

TEST_F(CtlTest, ExportToAFileReplacesItOnlyWhenComplete) {
  const std::string path = TempPath("bans.nft");
  std::ofstream(path) << "old\n";
  service().export_chunks.Respond(
      {Chunk(0, "a\n", false), Chunk(1, "b\n", true, 2)});
  ASSERT_EQ(Run({"export", "--format", "nft", "-o", path}), kExitOk)
      << err_.str();
  EXPECT_EQ(out_.str(), "Exported 2 bans at revision 42 to " + path + "\n");
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "a\nb\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".rampartctl-partial"));

  // Stream ends without its final chunk: the old file stays.
  service().export_chunks.Respond({Chunk(0, "c\n", false)});
  EXPECT_EQ(Run({"export", "--format", "nft", "-o", path}), kExitError);
  EXPECT_THAT(err_.str(), HasSubstr("ended before its final chunk"));
  std::ifstream again(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(again), {}), "a\nb\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".rampartctl-partial"));
}

TEST_F(CtlTest, ExportRejectsOutOfOrderChunks) {
  service().export_chunks.Respond(
      {Chunk(0, "a\n", false), Chunk(2, "b\n", true)});
  EXPECT_EQ(Run({"export", "--format", "plain"}), kExitError);
  EXPECT_THAT(err_.str(), HasSubstr("chunk 2 arrived where 1 was expected"));
}

TEST_F(CtlTest, ExportServerError) {
  service().export_chunks.Respond(
      {}, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad format"));
  EXPECT_EQ(Run({"export", "--format", "plain"}), kExitError);
  EXPECT_EQ(err_.str(), "rampartctl: export: INVALID_ARGUMENT: bad format\n");
}

// ---------------------------------------------------------------------------
// import

TEST_F(CtlTest, ImportPlainSendsTheFileAndReports) {
  const std::string text =
      "# threat feed 2024-11-23\n"
      "198.51.100.7  # smtp spray\n"
      "\n"
      "203.0.113.0/24\n"
      "2001:db8::1\n";
  const std::string path = WriteFile("feed.txt", text);
  v1::ImportResponse r;
  r.set_added(2);
  r.set_skipped(1);
  r.set_revision(50);
  v1::ImportLineResult* l = r.add_results();
  l->set_line_number(5);
  l->set_outcome(v1::IMPORT_LINE_OUTCOME_SKIPPED);
  l->set_message("allowlisted");
  service().import.Respond(r);

  ASSERT_EQ(Run({"import", path, "--for", "7d", "--reason", "feed", "--scope",
                 "mail"}),
            kExitOk)
      << err_.str();
  const v1::ImportRequest req = service().import.requests()[0];
  EXPECT_EQ(req.format(), v1::IMPORT_FORMAT_PLAIN);
  EXPECT_EQ(req.text(), text);
  EXPECT_EQ(req.duration().seconds(), 7 * 86400);
  EXPECT_EQ(req.reason(), "feed");
  EXPECT_EQ(req.scope(), v1::BAN_SCOPE_MAIL);
  EXPECT_FALSE(req.dry_run());
  EXPECT_EQ(out_.str(),
            "Imported " + path +
                ": 2 added, 0 updated, 1 skipped, 0 rejected; revision 50\n"
                "\n"
                "LINE  OUTCOME  BAN  MESSAGE\n"
                "   5  skipped    -  allowlisted\n");
}

TEST_F(CtlTest, ImportCsvIsDetectedAndPartialFailureExits5) {
  const std::string path = WriteFile(
      "bans.data",
      "\xEF\xBB\xBFprefix,expires_at,reason\r\n"
      "198.51.100.7,2025-01-01T00:00:00Z,spray\r\n"
      "198.51.100.8,2025-01-01T00:00:00Z,\"a, quoted \"\"reason\"\"\"\r\n");
  v1::ImportResponse r;
  r.set_added(1);
  r.set_errors(1);
  v1::ImportLineResult* l = r.add_results();
  l->set_line_number(3);
  l->set_outcome(v1::IMPORT_LINE_OUTCOME_ERROR);
  l->set_message("expires_at in the past");
  service().import.Respond(r);
  ASSERT_EQ(Run({"import", path, "--reason", "csv import", "--dry-run",
                 "--all-lines", "--json"}),
            kExitPartial)
      << err_.str();
  const v1::ImportRequest req = service().import.requests()[0];
  EXPECT_EQ(req.format(), v1::IMPORT_FORMAT_CSV);
  EXPECT_EQ(req.lifetime_case(), v1::ImportRequest::LIFETIME_NOT_SET);
  EXPECT_THAT(req.text(), StartsWith("prefix,"));  // BOM removed
  EXPECT_TRUE(req.dry_run());
  EXPECT_TRUE(req.report_all_lines());
  const Json j = OutJson();
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["errors"], 1);
  EXPECT_EQ(j["results"][0], Json::parse(R"({"line":3,"outcome":"error",
              "message":"expires_at in the past","ban_id":0})"));
  EXPECT_THAT(err_.str(), HasSubstr("the server rejected 1 line"));
}

TEST_F(CtlTest, ImportInvalidLinesAreUsageErrorsWithLineNumbers) {
  const std::string path = WriteFile("bad.txt",
                                     "198.51.100.7\n"
                                     "198.51.100.300\n"
                                     "10.0.0.1/8 # typo\n"
                                     "1.2.3.4 5.6.7.8\n");
  EXPECT_EQ(Run({"import", path, "--for", "1h", "--reason", "x"}), kExitUsage);
  EXPECT_EQ(service().calls(), 0);
  EXPECT_THAT(err_.str(), StartsWith("rampartctl: import: " + path +
                                     " has 3 invalid lines; nothing was "
                                     "sent:\n"));
  EXPECT_THAT(err_.str(), HasSubstr("  " + path + ":2: not a valid IPv4"));
  EXPECT_THAT(err_.str(), HasSubstr("  " + path +
                                    ":3: \"10.0.0.1/8\" has "
                                    "host bits set"));
  EXPECT_THAT(err_.str(), HasSubstr("  " + path + ":4: expected one IP"));
}

TEST_F(CtlTest, ImportPlainNeedsALifetime) {
  const std::string path = WriteFile("one.txt", "198.51.100.7\n");
  EXPECT_EQ(Run({"import", path, "--reason", "x"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("a lifetime is required"));
  EXPECT_EQ(service().calls(), 0);
}

TEST_F(CtlTest, ImportCsvWithoutExpiryNeedsALifetime) {
  const std::string path =
      WriteFile("b.csv", "prefix,expires_at\n198.51.100.7,\n");
  EXPECT_EQ(Run({"import", path, "--reason", "x"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr(path + ":2 has no expires_at"));
  EXPECT_EQ(service().calls(), 0);
}

TEST_F(CtlTest, ImportEmptyFileIsAUsageError) {
  const std::string path = WriteFile("empty.txt", "# nothing\n\n");
  EXPECT_EQ(Run({"import", path, "--for", "1h", "--reason", "x"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("contains no addresses"));
}

TEST_F(CtlTest, ImportOversizedFileIsRefusedBeforeReadingItAll) {
  const std::string path =
      WriteFile("huge.txt", std::string(3 * 1024 * 1024 + 10, '\n'));
  EXPECT_EQ(Run({"import", path, "--for", "1h", "--reason", "x"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("split it into several imports"));
  EXPECT_EQ(service().calls(), 0);
}

TEST_F(CtlTest, ImportFromStandardInput) {
  std::istringstream in("198.51.100.7\n");
  env_.in = &in;
  service().import.Respond(v1::ImportResponse());
  ASSERT_EQ(Run({"import", "-", "--permanent", "--reason", "x"}), kExitOk)
      << err_.str();
  const v1::ImportRequest req = service().import.requests()[0];
  EXPECT_EQ(req.text(), "198.51.100.7\n");
  EXPECT_TRUE(req.permanent());
  EXPECT_EQ(out_.str(),
            "Imported standard input: 0 added, 0 updated, 0 skipped, 0 "
            "rejected; nothing to commit\n");
}

// ---------------------------------------------------------------------------
// audit

TEST_F(CtlTest, Audit) {
  v1::ListAuditResponse r;
  v1::AuditRecord* a = r.add_records();
  a->set_id(9);
  *a->mutable_at() = Ts(testing::TestNow() - absl::Minutes(1));
  a->set_actor("local:0");
  a->set_action("ban.add");
  a->set_target("198.51.100.7/32");
  a->set_reason("spray");
  a->set_after_json(R"({"id":42})");
  service().list_audit.Respond(r);
  ASSERT_EQ(Run({"audit", "--since", "7d", "--actor", "local:0", "--action",
                 "ban.add", "--limit", "5"}),
            kExitOk)
      << err_.str();
  const v1::ListAuditRequest req = service().list_audit.requests()[0];
  EXPECT_EQ(ToTime(req.since()), testing::TestNow() - absl::Hours(24 * 7));
  EXPECT_EQ(req.actor(), "local:0");
  EXPECT_EQ(req.action(), "ban.add");
  EXPECT_EQ(req.page_size(), 5);
  EXPECT_EQ(out_.str(),
            "ID  AT                    ACTOR    ACTION   TARGET           PEER "
            " REASON\n"
            " 9  2024-11-23T08:59:00Z  local:0  ban.add  198.51.100.7/32  -    "
            " spray\n");
  ASSERT_EQ(Run({"audit", "--json"}), kExitOk);
  const Json j = OutJson();
  EXPECT_TRUE(j["records"][0]["before"].is_null());
  EXPECT_EQ(j["records"][0]["after"]["id"], 42);
}

}  // namespace
}  // namespace rampart::ctl
