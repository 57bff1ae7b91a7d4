// AgentConfig loader: defaults, every section, strictness (unknown keys with
// line:col and did-you-mean, durations with units, ranges) and flags.

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_format.h"
#include "agent/daemon/agent_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(AgentConfigTest, EmptyFileGivesDefaults) {
  absl::StatusOr<AgentConfig> c = ParseAgentConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state_dir, "/var/lib/rampart-agent");
  EXPECT_EQ(c->firewall.backend, "nftables");
  EXPECT_TRUE(c->leave_rules_on_stop);
  EXPECT_EQ(c->max_events_per_batch, 1000);
  EXPECT_EQ(c->batch_flush_interval, absl::Milliseconds(500));
  EXPECT_EQ(c->backoff_min, absl::Seconds(1));
  EXPECT_EQ(c->backoff_max, absl::Seconds(60));
  EXPECT_EQ(c->local_fallback.activate_after, absl::Seconds(60));
  EXPECT_TRUE(c->local_fallback.enabled);
  EXPECT_EQ(c->spool_fsync, FsyncPolicy::kEveryAppend);
}

TEST(AgentConfigTest, FullFile) {
  absl::StatusOr<AgentConfig> c = ParseAgentConfig(R"(
servers: ["rampart1.example:7443", "[2001:db8::1]:7443"]
agent_id: mail1
site: hq-1
time_zone: Europe/Berlin
logs:
  - path: /local/notesdata/IBM_TECHNICAL_SUPPORT/console.log
    date_order: dmy
  - /other/console.log
read_existing_logs: true
parser: {successes: true, tls_failures: false, sessions: false}
state_dir: /srv/agent
firewall:
  backend: dry-run
  leave_rules_on_stop: false
  repair_interval: 5m
allowlist: ["192.0.2.0/24", "2001:db8::5"]
batch: {max_events: 200, flush_interval: 250ms}
spool: {max_bytes: 16777216, fsync: explicit}
reconnect: {backoff_min: 500ms, backoff_max: 2m, heartbeat_interval: 30s}
local_fallback:
  enabled: false
  activate_after: 2m
  failures: 5
  window: 15m
  ban_duration: 30m
  max_bans: 10
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->servers.size(), 2u);
  EXPECT_EQ(c->agent_id, "mail1");
  ASSERT_EQ(c->logs.size(), 2u);
  EXPECT_EQ(c->logs[0].date_order, DateOrder::kDmy);
  EXPECT_EQ(c->logs[1].path, "/other/console.log");
  EXPECT_TRUE(c->read_existing_logs);
  EXPECT_TRUE(c->successes);
  EXPECT_FALSE(c->tls_failures);
  EXPECT_FALSE(c->sessions);
  EXPECT_EQ(c->firewall.backend, "dry-run");
  EXPECT_FALSE(c->leave_rules_on_stop);
  EXPECT_EQ(c->repair_interval, absl::Minutes(5));
  ASSERT_EQ(c->allowlist.size(), 2u);
  EXPECT_EQ(c->allowlist[1].ToString(), "2001:db8::5");
  EXPECT_EQ(c->max_events_per_batch, 200);
  EXPECT_EQ(c->batch_flush_interval, absl::Milliseconds(250));
  EXPECT_EQ(c->spool_max_bytes, 16777216u);
  EXPECT_EQ(c->spool_fsync, FsyncPolicy::kExplicit);
  EXPECT_EQ(c->backoff_min, absl::Milliseconds(500));
  EXPECT_EQ(c->backoff_max, absl::Minutes(2));
  EXPECT_EQ(c->heartbeat_interval, absl::Seconds(30));
  EXPECT_FALSE(c->local_fallback.enabled);
  EXPECT_EQ(c->local_fallback.failures, 5);
  EXPECT_EQ(c->local_fallback.window, absl::Minutes(15));
  EXPECT_EQ(c->local_fallback.ban_duration, absl::Minutes(30));
  EXPECT_EQ(c->local_fallback.max_bans, 10);
}

struct BadCase {
  const char* yaml;
  const char* expect;
};

class AgentConfigErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(AgentConfigErrorTest, Rejected) {
  absl::StatusOr<AgentConfig> c = ParseAgentConfig(GetParam().yaml);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(c.status()), HasSubstr(GetParam().expect));
}

INSTANTIATE_TEST_SUITE_P(
    Table, AgentConfigErrorTest,
    ::testing::Values(
        BadCase{"servrs: [a:1]",
                "1:1: servrs: unknown key (did you mean \"servers\"?)"},
        BadCase{"batch:\n  flush_intervall: 1s",
                "2:3: batch.flush_intervall: unknown key (did you mean "
                "\"flush_interval\"?)"},
        BadCase{"batch: {flush_interval: 500}", "missing unit"},
        BadCase{"batch: {flush_interval: 10ms}", "outside"},
        BadCase{"batch: {max_events: 6000}", "outside [1, 5000]"},
        BadCase{"batch: {max_events: ten}", "not an integer"},
        BadCase{"servers: [\"nohost\"]", "missing port"},
        BadCase{"servers: [\"2001:db8::1:7443\"]", "brackets"},
        BadCase{"servers: [\"h:70000\"]", "1..65535"},
        BadCase{"agent_id: Mail1", "agent_id"},
        BadCase{"time_zone: Mars/Base", "unknown time zone"},
        BadCase{"logs: [relative/console.log]", "absolute path"},
        BadCase{"logs: [{path: /a, date_order: ydm}]", "auto, mdy, dmy"},
        BadCase{"allowlist: [\"300.1.1.1/8\"]", "allowlist[0]"},
        BadCase{"spool: {fsync: sometimes}", "every_append"},
        BadCase{"firewall: {leave_rules_on_stop: yes}", "true or false"},
        BadCase{"reconnect: {backoff_min: 2m, backoff_max: 1m}",
                "must not exceed"},
        BadCase{"local_fallback: {activate_after: 5s}", "outside"},
        BadCase{"local_fallback: {failures: 1}", "outside [3, 10000]"},
        BadCase{"firewall: {min_prefix_ipv4: 4}", "outside [8, 32]"},
        BadCase{"firewall: {min_prefix_ipv6: 8}", "outside [16, 128]"},
        BadCase{"firewall: {max_blocked_ipv4_addresses: 0}", "outside"},
        BadCase{"firewall: {max_blocked_ipv6_subnets: -1}", "outside"},
        BadCase{"firewall: {protect_gateway: maybe}", "true or false"},
        BadCase{"firewall: {min_prefix_ipv5: 16}",
                "did you mean \"min_prefix_ipv4\""},
        BadCase{"servers: [a:1", "YAML"},
        BadCase{"- a\n- b", "must be a map"}));

TEST(AgentConfigTest, DurationParser) {
  EXPECT_EQ(*ParseAgentDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseAgentDuration("2d"), absl::Hours(48));
  EXPECT_EQ(*ParseAgentDuration("1s500ms"), absl::Milliseconds(1500));
  EXPECT_FALSE(ParseAgentDuration("").ok());
  EXPECT_FALSE(ParseAgentDuration("-1s").ok());
  EXPECT_FALSE(ParseAgentDuration("1.5s").ok());
  EXPECT_FALSE(ParseAgentDuration("30m1h").ok());
  EXPECT_FALSE(ParseAgentDuration("1w").ok());
}

TEST(AgentConfigTest, FlagsOverrideAndCompleteValidation) {
  AgentConfig c;
  AgentFlags flags;
  EXPECT_THAT(Msg(FinishAgentConfig(flags, &c)), HasSubstr("no server"));
  flags.servers = {"127.0.0.1:7443"};
  EXPECT_THAT(Msg(FinishAgentConfig(flags, &c)), HasSubstr("no log file"));
  flags.logs = {"/var/log/console.log"};
  flags.agent_id = "mail9";
  flags.state_dir = "/tmp/x";
  flags.firewall = "bogus";
  EXPECT_THAT(Msg(FinishAgentConfig(flags, &c)), HasSubstr("dry-run"));
  flags.firewall = "dry-run";
  ASSERT_TRUE(FinishAgentConfig(flags, &c).ok());
  EXPECT_EQ(c.agent_id, "mail9");
  EXPECT_EQ(c.state_dir, "/tmp/x");
  EXPECT_EQ(c.logs.at(0).path, "/var/log/console.log");
  EXPECT_EQ(c.firewall.backend, "dry-run");
  // TLS files default to what `rampart-agent enroll` writes.
  EXPECT_FALSE(c.insecure);
  EXPECT_EQ(c.tls_ca_file, "/tmp/x/tls/ca.pem");
  EXPECT_EQ(c.tls_cert_file, "/tmp/x/tls/agent.pem");
  EXPECT_EQ(c.tls_key_file, "/tmp/x/tls/agent.key");
}

TEST(AgentConfigTest, InsecureAndTlsKeys) {
  absl::StatusOr<AgentConfig> c = ParseAgentConfig(
      "tls:\n  ca_file: /etc/r/ca.pem\n  cert_file: /etc/r/a.pem\n"
      "  key_file: /etc/r/a.key\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls_cert_file, "/etc/r/a.pem");
  AgentFlags flags{.servers = {"127.0.0.1:7443"},
                   .agent_id = "mail9",
                   .logs = {"/var/log/console.log"},
                   .insecure = true};
  EXPECT_THAT(Msg(FinishAgentConfig(flags, &*c)),
              HasSubstr("insecure excludes"));
  c = ParseAgentConfig("insecure: true\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(FinishAgentConfig(flags, &*c).ok());
  EXPECT_TRUE(c->insecure);
  EXPECT_EQ(c->tls_ca_file, "");
  EXPECT_FALSE(ParseAgentConfig("tls:\n  ca_fil: x\n").ok());
}

// The metrics endpoint (issue 17): off unless metrics.listen is set,
// loopback when only a port is given, a non-loopback address refused unless
// allow_non_loopback (or its flag) says so.
AgentFlags MinimalFlags() {
  return AgentFlags{.servers = {"127.0.0.1:7443"},
                    .agent_id = "mail9",
                    .logs = {"/var/log/console.log"},
                    .insecure = true};
}

TEST(AgentConfigTest, MetricsEndpointIsOffByDefault) {
  absl::StatusOr<AgentConfig> c = ParseAgentConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(FinishAgentConfig(MinimalFlags(), &*c).ok());
  EXPECT_EQ(c->metrics.listen, "");
  EXPECT_EQ(c->metrics.host, "");  // main() starts no endpoint
  EXPECT_FALSE(c->metrics.allow_non_loopback);
}

TEST(AgentConfigTest, MetricsEndpointIsLoopbackByDefaultWhenOn) {
  for (const char* listen : {"9102", ":9102", "localhost:9102"}) {
    absl::StatusOr<AgentConfig> c = ParseAgentConfig(
        absl::StrFormat("metrics: {listen: \"%s\"}\n", listen));
    ASSERT_TRUE(c.ok()) << listen << ": " << c.status();
    ASSERT_TRUE(FinishAgentConfig(MinimalFlags(), &*c).ok()) << listen;
    EXPECT_EQ(c->metrics.host, "127.0.0.1") << listen;
    EXPECT_EQ(c->metrics.port, 9102) << listen;
  }
  absl::StatusOr<AgentConfig> c =
      ParseAgentConfig("metrics: {listen: \"[::1]:0\"}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(FinishAgentConfig(MinimalFlags(), &*c).ok());
  EXPECT_EQ(c->metrics.host, "::1");
  EXPECT_EQ(c->metrics.port, 0);
}

TEST(AgentConfigTest, MetricsEndpointRefusesNonLoopbackWithoutTheFlag) {
  for (const char* listen :
       {"192.0.2.10:9102", "0.0.0.0:9102", "[::]:9102", "[2001:db8::1]:9102"}) {
    absl::StatusOr<AgentConfig> c = ParseAgentConfig(
        absl::StrFormat("metrics: {listen: \"%s\"}\n", listen));
    ASSERT_TRUE(c.ok()) << listen << ": " << c.status();
    EXPECT_THAT(Msg(FinishAgentConfig(MinimalFlags(), &*c)),
                HasSubstr("not a loopback address"))
        << listen;
    c = ParseAgentConfig(absl::StrFormat(
        "metrics: {listen: \"%s\", allow_non_loopback: true}\n", listen));
    ASSERT_TRUE(c.ok()) << listen << ": " << c.status();
    ASSERT_TRUE(FinishAgentConfig(MinimalFlags(), &*c).ok()) << listen;
    EXPECT_EQ(c->metrics.port, 9102);
  }
  // The same through the flags.
  AgentConfig c;
  AgentFlags flags = MinimalFlags();
  flags.metrics_listen = "198.51.100.4:9102";
  EXPECT_THAT(Msg(FinishAgentConfig(flags, &c)),
              HasSubstr("not a loopback address"));
  flags.metrics_allow_non_loopback = true;
  ASSERT_TRUE(FinishAgentConfig(flags, &c).ok());
  EXPECT_EQ(c.metrics.host, "198.51.100.4");
  // A flag "" turns off what the file turned on.
  absl::StatusOr<AgentConfig> on =
      ParseAgentConfig("metrics: {listen: \"9102\"}\n");
  ASSERT_TRUE(on.ok());
  flags = MinimalFlags();
  flags.metrics_listen = "";
  ASSERT_TRUE(FinishAgentConfig(flags, &*on).ok());
  EXPECT_EQ(on->metrics.host, "");
}

TEST(AgentConfigTest, MetricsEndpointRejectsMalformedAddresses) {
  for (const char* listen :
       {"mail.example:9102", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
        "127.0.0.1:-1", "::1:9102", "[::1:9102", "[127.0.0.1]:9102", "x",
        "127.0.0.1:9102 "}) {
    EXPECT_FALSE(
        ParseAgentConfig(absl::StrFormat("metrics: {listen: \"%s\"}\n", listen))
            .ok())
        << listen;
  }
  EXPECT_THAT(Msg(ParseAgentConfig("metrics: {listn: \"9102\"}\n").status()),
              HasSubstr("listen"));
}

TEST(AgentConfigTest, DefaultAgentIdIsTheHostName) {
  AgentConfig c;
  AgentFlags flags{.servers = {"127.0.0.1:7443"},
                   .logs = {"/var/log/console.log"}};
  absl::Status s = FinishAgentConfig(flags, &c);
  if (s.ok()) {
    EXPECT_FALSE(c.agent_id.empty());
  } else {
    EXPECT_THAT(Msg(s), HasSubstr("host name"));
  }
}

// Issue 16 item 7: the agent's own limits on the server's list.
TEST(AgentConfigTest, EnforcementLimits) {
  absl::StatusOr<AgentConfig> d = ParseAgentConfig("");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->limits.min_prefix_v4, 16);
  EXPECT_EQ(d->limits.min_prefix_v6, 32);
  EXPECT_EQ(d->limits.max_blocked_ipv4_addresses, uint64_t{1} << 24);
  EXPECT_EQ(d->limits.max_blocked_ipv6_subnets, uint64_t{1} << 40);
  EXPECT_TRUE(d->limits.protect_gateway);
  EXPECT_TRUE(d->limits.protect_dns_resolvers);
  absl::StatusOr<AgentConfig> c = ParseAgentConfig(R"(
firewall:
  min_prefix_ipv4: 24
  min_prefix_ipv6: 48
  max_blocked_ipv4_addresses: 100000
  max_blocked_ipv6_subnets: 4096
  protect_gateway: false
  protect_dns_resolvers: false
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.min_prefix_v4, 24);
  EXPECT_EQ(c->limits.min_prefix_v6, 48);
  EXPECT_EQ(c->limits.max_blocked_ipv4_addresses, 100000u);
  EXPECT_EQ(c->limits.max_blocked_ipv6_subnets, 4096u);
  EXPECT_FALSE(c->limits.protect_gateway);
  EXPECT_FALSE(c->limits.protect_dns_resolvers);
}

// The shipped example is a valid file whose limits are the defaults.
TEST(AgentConfigTest, ExampleFileParsesWithDefaultLimits) {
  std::ifstream in(std::string(RAMPART_SOURCE_DIR) +
                   "/deploy/rampart-agent.example.yaml");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<AgentConfig> c = ParseAgentConfig(text.str());
  ASSERT_TRUE(c.ok()) << c.status();
  const EnforcementLimitsConfig defaults;
  EXPECT_EQ(c->limits.min_prefix_v4, defaults.min_prefix_v4);
  EXPECT_EQ(c->limits.min_prefix_v6, defaults.min_prefix_v6);
  EXPECT_EQ(c->limits.max_blocked_ipv4_addresses,
            defaults.max_blocked_ipv4_addresses);
  EXPECT_EQ(c->limits.max_blocked_ipv6_subnets,
            defaults.max_blocked_ipv6_subnets);
  EXPECT_TRUE(c->limits.protect_gateway);
  EXPECT_TRUE(c->limits.protect_dns_resolvers);
}

TEST(AgentConfigTest, KeysAreListed) {
  const std::vector<std::string> keys = AgentConfigKeys();
  EXPECT_THAT(keys, ::testing::Contains("local_fallback.activate_after"));
  EXPECT_THAT(keys, ::testing::Contains("servers"));
  EXPECT_THAT(keys, ::testing::Contains("firewall.leave_rules_on_stop"));
}

}  // namespace
}  // namespace rampart::agent
