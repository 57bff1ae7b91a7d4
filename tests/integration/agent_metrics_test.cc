// The agent's metrics endpoint (issue 17): a real rampart-agent (dry-run
// firewall, plaintext loopback) with `--metrics-listen 127.0.0.1:PORT`
// next to a real rampart-server (SQLite), scraped over HTTP. Checks that
// /metrics serves the agent's own rampart_agent_* series and that they move
// with what the agent reads and enforces (a forged line dropped, a ban
// enforced), that /healthz answers, and that the binary refuses a
// non-loopback address without --metrics-allow-non-loopback. The default
// (off) is covered by AgentConfigTest.MetricsEndpointIsOffByDefault.

#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/e2e/estate_process.h"
#include "tests/fakes/temp_files.h"
#include "tests/integration/dry_run_estate.h"
#include "tests/integration/server_process.h"

namespace rampart::testing {
namespace {

constexpr char kAttacker[] = "198.51.100.7";
constexpr char kVictim[] = "203.0.113.99";

std::string BLine(const std::string& user, const std::string& host) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S   ", absl::Now(),
                          absl::UTCTimeZone()) +
         "SMTP Server: Authentication failed for user " + user +
         " ; connecting host " + host + "\n";
}

// GET http://127.0.0.1:PORT/PATH; nullopt if there is no answer.
std::optional<httplib::Result> Get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  httplib::Result r = client.Get(path);
  if (!r) {
    return std::nullopt;
  }
  return r;
}

// The value of `name` with `labels` in a /metrics page, read with the
// project's strict parser (a malformed page fails the test); nullopt if the
// series is absent.
std::optional<double> Value(const std::string& page, const std::string& name,
                            const metrics::Labels& labels = {}) {
  absl::StatusOr<metrics::ParsedMetrics> parsed =
      metrics::ParsePrometheusText(page);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) {
    return std::nullopt;
  }
  for (const metrics::ParsedSample& s : parsed->samples) {
    if (s.name == name && s.labels == labels) {
      return s.value;
    }
  }
  return std::nullopt;
}

constexpr char kDropped[] = "rampart_agent_log_lines_dropped_total";
const metrics::Labels kMarkerInUser = {{"reason", "marker_in_user"}};
constexpr char kBans[] = "rampart_agent_firewall_bans";

TEST(AgentMetricsTest, LiveAgentServesItsMetricsAndTheyMove) {
  TempDir dir("rampart-agent-metrics");
  absl::StatusOr<DryRunEstate> estate = StartDryRunEstate(dir, "metrics-01");
  ASSERT_TRUE(estate.ok()) << estate.status();
  const std::string& log = estate->log;
  const int port = PickFreePort();
  auto agent = e2e::Child::Spawn(
      {RAMPART_AGENT_BIN, "run", "--config", estate->config, "--metrics-listen",
       absl::StrFormat("127.0.0.1:%d", port)},
      dir.path() + "/agent.log");
  ASSERT_TRUE(agent.ok()) << agent.status();
  e2e::Child& a = **agent;
  ASSERT_TRUE(a.WaitForLog("connected to ", absl::Seconds(120))) << a.log();
  ASSERT_NE(
      a.log().find(absl::StrFormat(
          "metrics endpoint listening on http://127.0.0.1:%d/metrics", port)),
      std::string::npos)
      << a.log();

  std::optional<httplib::Result> health = Get(port, "/healthz");
  ASSERT_TRUE(health.has_value()) << a.log();
  EXPECT_EQ((*health)->status, 200);
  std::optional<httplib::Result> before = Get(port, "/metrics");
  ASSERT_TRUE(before.has_value());
  ASSERT_EQ((*before)->status, 200);
  EXPECT_NE((*before)->get_header_value("Content-Type").find("text/plain"),
            std::string::npos);
  const std::string& page = (*before)->body;
  EXPECT_NE(page.find("# TYPE rampart_agent_firewall_bans gauge"),
            std::string::npos)
      << page;
  EXPECT_EQ(Value(page, kDropped, kMarkerInUser), 0.0) << page;
  EXPECT_EQ(Value(page, kBans), 0.0) << page;
  // Only the agent's registry: no server series.
  EXPECT_EQ(page.find("rampart_store_"), std::string::npos);

  // A forged line (dropped, counted) and a real attack (banned, enforced).
  AppendToFile(log, BLine(std::string("admin ; connecting host ") + kVictim,
                          "192.0.2.66"));
  for (int i = 0; i < 15; ++i) {
    AppendToFile(log, BLine("admin", kAttacker));
  }
  std::optional<double> dropped;
  std::optional<double> bans;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    std::optional<httplib::Result> r = Get(port, "/metrics");
    ASSERT_TRUE(r.has_value()) << a.log();
    dropped = Value((*r)->body, kDropped, kMarkerInUser);
    bans = Value((*r)->body, kBans);
    if (dropped.value_or(0) >= 1 && bans.value_or(0) >= 1) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(dropped, 1.0) << a.log();
  EXPECT_GE(bans.value_or(0), 1.0) << a.log();

  EXPECT_TRUE(a.Stop(SIGTERM, absl::Seconds(60)));
  EXPECT_FALSE(Get(port, "/healthz").has_value()) << "still serving";
  ASSERT_TRUE(estate->server->Terminate().ok());
}

TEST(AgentMetricsTest, NonLoopbackAddressIsRefusedWithoutTheFlag) {
  TempDir dir("rampart-agent-metrics-refused");
  const std::string log = dir.path() + "/console.log";
  AppendToFile(log, "");
  absl::StatusOr<ProcessResult> r =
      RunProcess(RAMPART_AGENT_BIN,
                 {"run", "--server", "127.0.0.1:1", "--log", log, "--state-dir",
                  dir.path() + "/agent", "--insecure", "--firewall", "dry-run",
                  "--metrics-listen", "192.0.2.10:9102"},
                 absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(WIFEXITED(r->status)) << r->err;
  EXPECT_EQ(WEXITSTATUS(r->status), 2) << r->err;
  EXPECT_NE(r->err.find("not a loopback address"), std::string::npos) << r->err;
}

}  // namespace
}  // namespace rampart::testing
