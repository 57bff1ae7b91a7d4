#include "server/config/server_config.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::server {
namespace {

constexpr std::string_view kSource = "cfg.yaml";

std::string Message(const absl::Status& s) {
  return std::string(s.message().data(), s.message().size());
}

std::string ReadSourceFile(std::string_view relative) {
  const std::string path =
      absl::StrFormat("%s/%s", RAMPART_SOURCE_DIR, relative);
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A scratch directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ =
        (std::filesystem::temp_directory_path() / "rampart-config-XXXXXX")
            .string();
    EXPECT_NE(::mkdtemp(templ.data()), nullptr);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Write(std::string_view name, std::string_view text) const {
    const std::string file = (path_ / name).string();
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// ---------------------------------------------------------------------------
// Whole documents: good inputs.

struct GoodCase {
  std::string name;
  std::string yaml;
  std::function<void(const ServerConfig&)> check;
};

void PrintTo(const GoodCase& c, std::ostream* os) { *os << c.name; }

std::vector<GoodCase> GoodCases() {
  const std::string defaults = ServerConfigToYaml(ServerConfig{});
  auto is_default = [defaults](const ServerConfig& c) {
    EXPECT_EQ(ServerConfigToYaml(c), defaults);
  };
  return {
      {"Empty", "", is_default},
      {"OnlyComments", "# nothing here\n\n# still nothing\n", is_default},
      {"NullDocument", "~\n", is_default},
      {"ExplicitEmptyDocument", "---\n...\n", is_default},
      {"EmptySections",
       "server:\npolicy:\nallowlist:\nretention:\ndistribution:\nlimits:\n",
       is_default},
      {"QuotedKeys", "\"policy\":\n  'half_life': 1h\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.policy.half_life, absl::Hours(1));
       }},
      {"FlowStyle", "policy: {half_life: 1h, v6_ladder: [60, 52]}\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.policy.half_life, absl::Hours(1));
         EXPECT_EQ(c.policy.v6_ladder, (std::vector<int>{60, 52}));
       }},
      {"AnchorsAndAliases",
       "policy:\n  half_life: &d 2h\n  server_window: *d\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.policy.half_life, absl::Hours(2));
         EXPECT_EQ(c.policy.server_window, absl::Hours(2));
       }},
      {"EmptyLadders", "policy:\n  v4_ladder: []\n  v6_ladder: []\n",
       [](const ServerConfig& c) {
         EXPECT_TRUE(c.policy.v4_ladder.empty());
         EXPECT_TRUE(c.policy.v6_ladder.empty());
       }},
      {"TwoKeysTogether", "policy:\n  ban_base: 60d\n  ban_max: 90d\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.policy.ban_base, absl::Hours(24 * 60));
         EXPECT_EQ(c.policy.ban_max, absl::Hours(24 * 90));
       }},
      {"SamePortOnDifferentAddresses",
       "server:\n  listen: 10.0.0.1:7443\n  http_listen: 10.0.0.2:7443\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.listen.ToString(), "10.0.0.1:7443");
         EXPECT_EQ(c.http_listen.ToString(), "10.0.0.2:7443");
       }},
      {"Ipv6WildcardAndPortZero",
       "server:\n  listen: '[::]:7443'\n  http_listen: 127.0.0.1:0\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.listen, (HostPort{.host = "::", .port = 7443}));
         EXPECT_EQ(c.http_listen.port, 0);
       }},
      {"PostgresDatabase",
       "server:\n  db: postgresql://rampart@db.example/rampart\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.database.kind, DatabaseTarget::Kind::kPostgres);
         EXPECT_EQ(c.database.pg_dsn,
                   "postgresql://rampart@db.example/rampart");
       }},
      {"Allowlist",
       "allowlist:\n"
       "  - cidr: 192.0.2.0/24\n"
       "    comment: \"monitoring \\\"net\\\" \xc3\xa9\"\n"
       "  - cidr: 2001:db8::/48\n"
       "    expires: 2030-01-01T00:00:00Z\n"
       "  - cidr: 198.51.100.7\n",
       [](const ServerConfig& c) {
         ASSERT_EQ(c.allowlist_seed.size(), 3u);
         EXPECT_EQ(c.allowlist_seed[0].prefix.ToString(), "192.0.2.0/24");
         EXPECT_EQ(c.allowlist_seed[0].comment, "monitoring \"net\" \xc3\xa9");
         EXPECT_EQ(c.allowlist_seed[0].expires, std::nullopt);
         EXPECT_EQ(c.allowlist_seed[0].actor, "config");
         EXPECT_EQ(c.allowlist_seed[1].prefix.ToString(), "2001:db8::/48");
         EXPECT_EQ(c.allowlist_seed[1].expires,
                   absl::FromCivil(absl::CivilSecond(2030, 1, 1, 0, 0, 0),
                                   absl::UTCTimeZone()));
         EXPECT_EQ(c.allowlist_seed[2].prefix.ToString(), "198.51.100.7");
         EXPECT_EQ(c.allowlist_seed[2].prefix.length(), 32);
       }},
      {"NumbersInEveryForm",
       "policy:\n  ban_threshold: 12\n  weight_lockout: 2.5\n"
       "  weight_tls_failure: 1e-3\n  ban_jitter: 0\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.policy.ban_threshold, 12.0);
         EXPECT_EQ(c.policy.weight_lockout, 2.5);
         EXPECT_EQ(c.policy.weight_tls_failure, 0.001);
         EXPECT_EQ(c.policy.ban_jitter, 0.0);
       }},
      {"RangeEdges",
       "retention:\n  events: 1d\n  journal_revisions: 1000\n"
       "housekeeping_interval: 1h\n"
       "limits:\n  max_agents: 100000\n  max_message_bytes: 67108864\n"
       "  max_events_per_batch: 1\n",
       [](const ServerConfig& c) {
         EXPECT_EQ(c.retention.events, absl::Hours(24));
         EXPECT_EQ(c.retention.journal_revisions, 1000);
         EXPECT_EQ(c.housekeeping_interval, absl::Hours(1));
         EXPECT_EQ(c.limits.max_agents, 100000);
         EXPECT_EQ(c.limits.max_message_bytes, 64 * 1024 * 1024);
         EXPECT_EQ(c.limits.max_events_per_batch, 1);
       }},
  };
}

class GoodConfigTest : public testing::TestWithParam<GoodCase> {};

TEST_P(GoodConfigTest, Loads) {
  const GoodCase& c = GetParam();
  absl::StatusOr<ServerConfig> config = LoadServerConfig(c.yaml, kSource);
  ASSERT_TRUE(config.ok()) << config.status();
  c.check(*config);
  // Whatever loads, dumps to YAML that loads to the same configuration.
  const std::string yaml = ServerConfigToYaml(*config);
  absl::StatusOr<ServerConfig> again = LoadServerConfig(yaml, "dump");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << yaml;
  EXPECT_EQ(ServerConfigToYaml(*again), yaml);
}

INSTANTIATE_TEST_SUITE_P(Table, GoodConfigTest, testing::ValuesIn(GoodCases()),
                         [](const testing::TestParamInfo<GoodCase>& param) {
                           return param.param.name;
                         });

// ---------------------------------------------------------------------------
// Whole documents: bad inputs. Every error names the source, line:column and
// (where there is one) the key path.

struct BadCase {
  std::string yaml;
  // Each must appear in the message.
  std::vector<std::string> expected;
  // Must not appear in the message (secrets).
  std::string absent = "";
};

// One line of letters, digits and a few safe punctuation marks: ctest shows
// it in the test name, and CMake chokes on quotes, brackets and ';'.
void PrintTo(const BadCase& c, std::ostream* os) {
  std::string shown;
  for (char ch : c.yaml.substr(0, 48)) {
    const bool safe =
        (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9') ||
        std::string_view(" :.-_/").find(ch) != std::string_view::npos;
    shown += ch == '\n' ? '|' : (safe ? ch : '_');
  }
  *os << shown;
}

std::vector<BadCase> BadCases() {
  return {
      // Unknown keys, with suggestions.
      {"policy:\n  half_lfe: 30m\n",
       {"cfg.yaml:2:3: policy.half_lfe: unknown key (did you mean "
        "half_life?)"}},
      {"polcy:\n  half_life: 1h\n",
       {"cfg.yaml:1:1: polcy: unknown key (did you mean policy?)"}},
      {"half_life: 30m\n",
       {"cfg.yaml:1:1: half_life: unknown key (did you mean "
        "policy.half_life?)"}},
      {"server:\n  http-listen: 127.0.0.1:1\n",
       {"cfg.yaml:2:3: server.http-listen: unknown key (did you mean "
        "http_listen?)"}},
      {"limits:\n  Max_Agents: 5\n",
       {"cfg.yaml:2:3: limits.Max_Agents: unknown key (did you mean "
        "max_agents?)"}},
      {"server:\n  tls_cert: x\n",
       {"cfg.yaml:2:3: server.tls_cert: unknown key (valid keys: listen, "
        "http_listen, db, insecure, allow_insecure_non_loopback, "
        "reflection)"}},
      {"allowlist:\n  - cidr: 10.0.0.0/8\n    coment: x\n",
       {"cfg.yaml:3:5: allowlist[0].coment: unknown key (did you mean "
        "comment?)"}},
      // Duplicate keys.
      {"server:\n  listen: 127.0.0.1:7443\n  listen: 127.0.0.1:7444\n",
       {"cfg.yaml:3:3: server.listen: duplicate key (first at 2:3)"}},
      // Durations.
      {"policy:\n  half_life: 90\n",
       {"cfg.yaml:2:14: policy.half_life: invalid duration \"90\": missing "
        "unit"}},
      {"policy:\n  half_life: -5m\n",
       {"cfg.yaml:2:14: policy.half_life: invalid duration \"-5m\": negative"}},
      {"policy:\n  half_life: 1.5h\n", {"2:14: policy.half_life:", "fraction"}},
      {"policy:\n  half_life: 99999999999999999999d\n",
       {"2:14: policy.half_life:", "too large"}},
      {"policy:\n  half_life: 0s\n",
       {"cfg.yaml:2:14: policy.half_life: must be > 0"}},
      {"retention:\n  events: 12h\n",
       {"cfg.yaml:2:11: retention.events: must be between 1d and 36500d (got "
        "12h)"}},
      {"housekeeping_interval: 2h\n",
       {"cfg.yaml:1:24: housekeeping_interval: must be between 1s and 1h "
        "(got 2h)"}},
      {"limits:\n  keepalive_time: 5s\n",
       {"cfg.yaml:2:19: limits.keepalive_time: must be between 10s and 2h"}},
      // Policy validation from ValidatePolicy, pointed at the key.
      {"policy:\n  max_servers_counted: 7\n",
       {"cfg.yaml:2:24: policy.max_servers_counted: must be between 1 and 6 "
        "(got 7)"}},
      {"policy:\n  v4_ladder: [16, 24]\n",
       {"cfg.yaml:2:14: policy.v4_ladder: must be strictly decreasing"}},
      {"policy:\n  ban_jitter: 1\n",
       {"cfg.yaml:2:15: policy.ban_jitter: must be in [0, 1)"}},
      {"policy:\n  ban_base: 60d\n",
       {"cfg.yaml:1:1: policy.ban_max: must be >= ban_base",
        "policy.ban_max is not set"}},
      {"policy:\n  v6_score_prefix: 48\n",
       {"cfg.yaml:1:1: policy.v6_ladder: must be strictly decreasing"}},
      // Types.
      {"policy:\n  ban_threshold: \"10\"\n",
       {"cfg.yaml:2:18: policy.ban_threshold: expected a finite number, got "
        "the quoted string \"10\" (remove the quotes)"}},
      {"policy:\n  ban_threshold: .inf\n",
       {"2:18: policy.ban_threshold: expected a finite number"}},
      {"policy:\n  prefix_k: 3.5\n",
       {"cfg.yaml:2:13: policy.prefix_k: expected an integer, got \"3.5\""}},
      {"policy:\n  v4_ladder: 24\n",
       {"cfg.yaml:2:14: policy.v4_ladder: expected a list of integers"}},
      {"policy:\n  v4_ladder: [24, x]\n",
       {"cfg.yaml:2:19: policy.v4_ladder[1]: expected an integer"}},
      {"limits:\n  max_agents: 007\n",
       {"cfg.yaml:2:15: limits.max_agents: expected an integer, got \"007\" "
        "(no leading zeros)"}},
      {"limits:\n  max_agents: 99999999999999999999999\n",
       {"cfg.yaml:2:15: limits.max_agents: must be between 1 and 100000"}},
      {"limits:\n  max_message_bytes: 1024\n",
       {"cfg.yaml:2:22: limits.max_message_bytes: must be between 4194304 "
        "and 67108864 (got 1024)"}},
      {"limits:\n  max_events_per_batch: 5001\n",
       {"limits.max_events_per_batch: must be between 1 and 5000"}},
      {"retention:\n  journal_revisions: 999\n",
       {"retention.journal_revisions: must be between 1000"}},
      {"distribution:\n  max_delta: 0\n",
       {"cfg.yaml:2:14: distribution.max_delta: must be between 1 and "
        "1000000"}},
      {"limits:\n  max_agents:\n",
       {"cfg.yaml:2:3: limits.max_agents: missing value (expected an "
        "integer)"}},
      {"limits:\n  max_score_entries: 999\n",
       {"limits.max_score_entries: must be between 1000 and 100000000"}},
      {"limits:\n  max_account_entries: 100000001\n",
       {"limits.max_account_entries: must be between 1000 and 100000000"}},
      {"limits:\n  agent_new_keys_per_minute: 0\n",
       {"limits.agent_new_keys_per_minute: must be between 1 and 10000000"}},
      {"server: [1, 2]\n",
       {"cfg.yaml:1:9: server: expected a mapping, got a list"}},
      {"- a\n- b\n",
       {"cfg.yaml:1:1: expected a mapping of sections at the top level, got "
        "a list"}},
      {"policy:\n  half_life: !!str 30m\n",
       {"cfg.yaml:2:14: policy.half_life: YAML tags are not supported"}},
      {"policy:\n  ? [a]\n  : x\n",
       {"cfg.yaml:2:5: policy: keys must be plain strings, got a list"}},
      // Addresses.
      {"server:\n  listen: \"::1:7443\"\n",
       {"cfg.yaml:2:11: server.listen: invalid address \"::1:7443\": an IPv6 "
        "address needs brackets"}},
      {"server:\n  listen: 127.0.0.1:9443\n",
       {"cfg.yaml:2:11: server.listen: the gRPC and HTTP listen addresses "
        "collide"}},
      {"server:\n  listen: 127.0.0.1:7443\n  http_listen: 0.0.0.0:7443\n",
       {"cfg.yaml:3:16: server.http_listen: the gRPC and HTTP listen "
        "addresses collide (127.0.0.1:7443 and 0.0.0.0:7443)"}},
      // Databases; a password never appears in a message.
      {"server:\n  db: mysql://x\n",
       {"cfg.yaml:2:7: server.db: unsupported database scheme \"mysql:\""}},
      {"server:\n  db: \"postgresql:host=db password=hunter2 oops\"\n",
       {"cfg.yaml:2:7: server.db: libpq key=value string: missing \"=\""},
       "hunter2"},
      {"server:\n  db: \"host=db password=hunter2:x\"\n",
       {"cfg.yaml:2:7: server.db: prefix a libpq key=value string with "
        "postgresql:"},
       "hunter2"},
      {"server:\n  db: \"postgresql://u:hunter2@db/x y\"\n",
       {"cfg.yaml:2:7: server.db: PostgreSQL URI has a space"},
       "hunter2"},
      // Allowlist.
      {"allowlist:\n  - cidr: 10.0.0.1/8\n",
       {"cfg.yaml:2:11: allowlist[0].cidr:"}},
      {"allowlist:\n  - cidr: 192.0.2.0/abcdefghijklmnopqrstu\n",
       {"cfg.yaml:2:11: allowlist[0].cidr: invalid prefix length"}},
      {"allowlist:\n  - cidr: 192.0.2.0/33\n",
       {"cfg.yaml:2:11: allowlist[0].cidr: invalid prefix length"}},
      {"allowlist:\n  - comment: x\n",
       {"cfg.yaml:2:5: allowlist[0]: missing required key cidr"}},
      {"allowlist:\n  - cidr: 10.0.0.0/8\n  - cidr: 10.0.0.0/8\n",
       {"cfg.yaml:3:11: allowlist[1].cidr: duplicate allowlist entry "
        "10.0.0.0/8 (first at allowlist[0], 2:11)"}},
      {"allowlist:\n  - cidr: 0.0.0.0/0\n",
       {"cfg.yaml:2:11: allowlist[0].cidr: a /0 entry"}},
      {"allowlist:\n  - cidr: 10.0.0.0/8\n    expires: tomorrow\n",
       {"cfg.yaml:3:14: allowlist[0].expires: expected an RFC 3339 time"}},
      {"allowlist:\n  - cidr: 10.0.0.0/8\n    expires: infinite-future\n",
       {"allowlist[0].expires: expected an RFC 3339 time"}},
      {"allowlist:\n  - cidr: 10.0.0.0/8\n    comment: \"a\\x01b\"\n",
       {"cfg.yaml:3:14: allowlist[0].comment: control character 0x01"}},
      {"allowlist:\n  - cidr: 10.0.0.0/8\n    comment: " +
           std::string(257, 'x') + "\n",
       {"allowlist[0].comment: longer than 256 bytes (257)"}},
      {"allowlist: 10.0.0.0/8\n",
       {"cfg.yaml:1:12: allowlist: expected a list of entries"}},
      {"allowlist:\n  - 10.0.0.0/8\n",
       {"cfg.yaml:2:5: allowlist[0]: expected a mapping with cidr"}},
      // YAML itself and hostile input.
      {"policy: {half_life: 30m\n", {"cfg.yaml:", "YAML syntax error"}},
      {"policy:\n\thalf_life: 30m\n",
       {"cfg.yaml:2:", "YAML syntax error", "YAML indents with spaces only"}},
      {"server:\n  listen: *nope\n", {"cfg.yaml:2:", "YAML syntax error"}},
      {"a: 1\n---\nb: 2\n", {"cfg.yaml:", "more than one YAML document"}},
      {std::string("policy:\n  half_life: 30m\n\0", 26),
       {"cfg.yaml:3:1: NUL byte"}},
      {"a: \xff\n", {"cfg.yaml:1:4: invalid UTF-8"}},
      {"a: \xc2\x85\n", {"cfg.yaml:1:4: control character U+0085"}},
  };
}

class BadConfigTest : public testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, FailsWithLocation) {
  const BadCase& c = GetParam();
  absl::StatusOr<ServerConfig> config = LoadServerConfig(c.yaml, kSource);
  ASSERT_FALSE(config.ok()) << c.yaml;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message = Message(config.status());
  for (const std::string& part : c.expected) {
    EXPECT_NE(message.find(part), std::string::npos)
        << "message: " << message << "\nexpected: " << part;
  }
  if (!c.absent.empty()) {
    EXPECT_EQ(message.find(c.absent), std::string::npos) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BadConfigTest, testing::ValuesIn(BadCases()));

// ---------------------------------------------------------------------------
// Every key, set to a non-default value, lands in its own field.

TEST(ServerConfigTest, EveryKeyIsRead) {
  const std::string yaml = R"(
server:
  listen: "[2001:db8::1]:1"
  http_listen: rampart.example:2
  db: sqlite:/var/lib/rampart/r.db
  insecure: true
  allow_insecure_non_loopback: true
  reflection: true
policy:
  half_life: 1m
  ban_threshold: 2
  weight_auth_failure: 3
  weight_lockout: 4
  weight_policy_reject: 5
  weight_tls_failure: 6
  protocol_smtp: 7
  protocol_imap: 8
  protocol_pop3: 9
  protocol_ldap: 10
  protocol_http: 11
  protocol_unknown: 12
  server_window: 2m
  server_factor: 13
  max_servers_counted: 2
  ban_base: 3m
  ban_factor: 14
  ban_max: 4m
  ban_jitter: 0.25
  history_clean_period: 5m
  v6_score_prefix: 60
  v4_ladder: [20, 16]
  v6_ladder: [44]
  prefix_k: 4
  prefix_member_fraction: 0.75
  prefix_window: 6m
  account_window: 7m
  account_min_ips: 6
  account_min_servers: 4
  compromise_lookback: 8m
allowlist:
  - cidr: 192.0.2.0/24
    expires: "2031-02-03T04:05:06+01:00"
    comment: ops
retention:
  events: 2d
  journal_revisions: 2000
housekeeping_interval: 9s
distribution:
  journal_window: 500
  max_delta: 50
limits:
  max_agents: 7
  max_message_bytes: 8388608
  max_events_per_batch: 100
  agent_send_queue: 8
  heartbeat_timeout: 1m
  keepalive_time: 11s
  keepalive_timeout: 12s
  keepalive_min_agent_interval: 13s
  agent_events_per_second: 14
  agent_events_burst: 15
  agent_new_bans_per_minute: 16
  hello_timeout: 17s
  max_unauthenticated_streams: 18
  max_unauthenticated_streams_per_address: 19
  max_unauthenticated_streams_per_connection: 20
  max_score_entries: 17000
  max_account_entries: 18000
  agent_new_keys_per_minute: 19
admin:
  bootstrap_token_file: /etc/rampart/admin.token
tls:
  cert_file: /etc/rampart/server.pem
  key_file: /etc/rampart/server.key
  client_ca_file: /etc/rampart/ca.pem
  ca_key_file: /etc/rampart/ca.key
  cert_ttl: 30d
)";
  absl::StatusOr<ServerConfig> c = LoadServerConfig(yaml, kSource);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, (HostPort{.host = "2001:db8::1", .port = 1}));
  EXPECT_EQ(c->http_listen, (HostPort{.host = "rampart.example", .port = 2}));
  EXPECT_EQ(c->database,
            (DatabaseTarget{.kind = DatabaseTarget::Kind::kSqlite,
                            .sqlite_path = "/var/lib/rampart/r.db"}));
  const Policy& p = c->policy;
  EXPECT_EQ(p.half_life, absl::Minutes(1));
  EXPECT_EQ(p.ban_threshold, 2);
  EXPECT_EQ(p.weight_auth_failure, 3);
  EXPECT_EQ(p.weight_lockout, 4);
  EXPECT_EQ(p.weight_policy_reject, 5);
  EXPECT_EQ(p.weight_tls_failure, 6);
  EXPECT_EQ(p.protocol_smtp, 7);
  EXPECT_EQ(p.protocol_imap, 8);
  EXPECT_EQ(p.protocol_pop3, 9);
  EXPECT_EQ(p.protocol_ldap, 10);
  EXPECT_EQ(p.protocol_http, 11);
  EXPECT_EQ(p.protocol_unknown, 12);
  EXPECT_EQ(p.server_window, absl::Minutes(2));
  EXPECT_EQ(p.server_factor, 13);
  EXPECT_EQ(p.max_servers_counted, 2);
  EXPECT_EQ(p.ban_base, absl::Minutes(3));
  EXPECT_EQ(p.ban_factor, 14);
  EXPECT_EQ(p.ban_max, absl::Minutes(4));
  EXPECT_EQ(p.ban_jitter, 0.25);
  EXPECT_EQ(p.history_clean_period, absl::Minutes(5));
  EXPECT_EQ(p.v6_score_prefix, 60);
  EXPECT_EQ(p.v4_ladder, (std::vector<int>{20, 16}));
  EXPECT_EQ(p.v6_ladder, (std::vector<int>{44}));
  EXPECT_EQ(p.prefix_k, 4);
  EXPECT_EQ(p.prefix_member_fraction, 0.75);
  EXPECT_EQ(p.prefix_window, absl::Minutes(6));
  EXPECT_EQ(p.account_window, absl::Minutes(7));
  EXPECT_EQ(p.account_min_ips, 6);
  EXPECT_EQ(p.account_min_servers, 4);
  EXPECT_EQ(p.compromise_lookback, absl::Minutes(8));
  ASSERT_EQ(c->allowlist_seed.size(), 1u);
  EXPECT_EQ(c->allowlist_seed[0].prefix.ToString(), "192.0.2.0/24");
  EXPECT_EQ(c->allowlist_seed[0].expires,
            absl::FromCivil(absl::CivilSecond(2031, 2, 3, 3, 5, 6),
                            absl::UTCTimeZone()));
  EXPECT_EQ(c->allowlist_seed[0].comment, "ops");
  EXPECT_EQ(c->retention.events, absl::Hours(48));
  EXPECT_EQ(c->retention.journal_revisions, 2000);
  EXPECT_EQ(c->housekeeping_interval, absl::Seconds(9));
  EXPECT_EQ(c->distribution.journal_window, 500u);
  EXPECT_EQ(c->distribution.max_delta, 50u);
  EXPECT_EQ(c->limits.max_agents, 7);
  EXPECT_EQ(c->limits.max_message_bytes, 8 * 1024 * 1024);
  EXPECT_EQ(c->limits.max_events_per_batch, 100);
  EXPECT_EQ(c->limits.agent_send_queue, 8);
  EXPECT_EQ(c->limits.heartbeat_timeout, absl::Minutes(1));
  EXPECT_EQ(c->limits.keepalive_time, absl::Seconds(11));
  EXPECT_EQ(c->limits.keepalive_timeout, absl::Seconds(12));
  EXPECT_EQ(c->limits.keepalive_min_agent_interval, absl::Seconds(13));
  EXPECT_EQ(c->limits.agent_events_per_second, 14);
  EXPECT_EQ(c->limits.agent_events_burst, 15);
  EXPECT_EQ(c->limits.agent_new_bans_per_minute, 16);
  EXPECT_EQ(c->limits.hello_timeout, absl::Seconds(17));
  EXPECT_EQ(c->limits.max_unauthenticated_streams, 18);
  EXPECT_EQ(c->limits.max_unauthenticated_streams_per_address, 19);
  EXPECT_EQ(c->limits.max_unauthenticated_streams_per_connection, 20);
  EXPECT_EQ(c->limits.max_score_entries, 17000);
  EXPECT_EQ(c->limits.max_account_entries, 18000);
  EXPECT_EQ(c->limits.agent_new_keys_per_minute, 19);
  EXPECT_EQ(c->admin.bootstrap_token_file, "/etc/rampart/admin.token");

  // Every key of the table was set, so every line of the dump differs from
  // the default dump (allowlist aside, which is a list).
  std::istringstream got(ServerConfigToYaml(*c));
  std::istringstream defaults(ServerConfigToYaml(ServerConfig{}));
  std::string got_line;
  std::string default_line;
  std::vector<std::string> same;
  while (std::getline(defaults, default_line)) {
    if (default_line.ends_with(":") || default_line.starts_with("allowlist")) {
      continue;
    }
    got.clear();
    got.seekg(0);
    while (std::getline(got, got_line)) {
      if (got_line == default_line) {
        same.push_back(got_line);
      }
    }
  }
  EXPECT_TRUE(same.empty())
      << "keys still at their default: " << testing::PrintToString(same);

  // The products carry the values.
  const CorrelatorOptions correlator = MakeCorrelatorOptions(*c);
  EXPECT_EQ(correlator.policy.half_life, absl::Minutes(1));
  EXPECT_EQ(correlator.policy.v4_ladder, (std::vector<int>{20, 16}));
  EXPECT_EQ(correlator.rebuild_horizon, absl::ZeroDuration());
  const BanDistributor::Options distributor = MakeBanDistributorOptions(*c);
  EXPECT_EQ(distributor.journal_window, 500u);
  EXPECT_EQ(distributor.max_delta, 50u);
}

TEST(ServerConfigTest, DefaultsMatchTheLibraries) {
  const ServerConfig c;
  EXPECT_EQ(c.listen.ToString(), "127.0.0.1:7443");
  EXPECT_EQ(c.http_listen.ToString(), "127.0.0.1:9443");
  EXPECT_EQ(c.database.ToLogString(), "sqlite:rampart.db");
  EXPECT_TRUE(ValidatePolicy(c.policy).ok());
  const BanDistributor::Options distributor;
  EXPECT_EQ(c.distribution.journal_window, distributor.journal_window);
  EXPECT_EQ(c.distribution.max_delta, distributor.max_delta);
  const CorrelatorOptions correlator = MakeCorrelatorOptions(c);
  EXPECT_EQ(correlator.rebuild_horizon, CorrelatorOptions{}.rebuild_horizon);
}

// ---------------------------------------------------------------------------
// Hostile input is bounded.

TEST(ServerConfigTest, SizeCap) {
  const std::string big = "# " + std::string(kMaxConfigBytes, 'x') + "\n";
  absl::StatusOr<ServerConfig> c = LoadServerConfig(big, kSource);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(
      Message(c.status())
          .find(absl::StrFormat("the limit is %d bytes", kMaxConfigBytes)),
      std::string::npos)
      << c.status();
}

TEST(ServerConfigTest, NodeCap) {
  std::string yaml = "policy:\n  v4_ladder: [";
  for (int i = 0; i < kMaxConfigNodes; ++i) {
    yaml += "1, ";
  }
  yaml += "1]\n";
  absl::StatusOr<ServerConfig> c = LoadServerConfig(yaml, kSource);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c.status()).find("more than 10000 YAML nodes"),
            std::string::npos)
      << c.status();
}

TEST(ServerConfigTest, DepthCap) {
  const std::string yaml =
      "policy: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  absl::StatusOr<ServerConfig> c = LoadServerConfig(yaml, kSource);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c.status()).find("nested more than 32 deep"),
            std::string::npos)
      << c.status();
}

TEST(ServerConfigTest, AliasBombIsCheap) {
  // "Billion laughs": each level doubles the expanded size; with 40 levels
  // the expansion is 2^40 nodes, the document a few hundred bytes.
  std::string yaml = "a0: &a0 [x, x]\n";
  for (int i = 1; i <= 40; ++i) {
    yaml += absl::StrFormat("a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
  }
  yaml += "allowlist: *a40\n";
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<ServerConfig> c = LoadServerConfig(yaml, kSource);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);

  // The same through a key the reader accepts (a list of integers).
  std::string ladder = "a0: &a0 [24, 24]\n";
  for (int i = 1; i <= 40; ++i) {
    ladder += absl::StrFormat("a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
  }
  c = LoadServerConfig(ladder, kSource);
  ASSERT_FALSE(c.ok());
}

TEST(ServerConfigTest, CyclicAliasIsAnError) {
  for (const char* yaml : {"allowlist: &x [*x]\n", "policy: &x {a: *x}\n",
                           "policy:\n  v4_ladder: &x [*x]\n"}) {
    absl::StatusOr<ServerConfig> c = LoadServerConfig(yaml, kSource);
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// ---------------------------------------------------------------------------
// Durations.

TEST(ConfigDurationTest, AcceptsEveryForm) {
  const struct {
    std::string_view text;
    absl::Duration want;
  } kCases[] = {
      {"0s", absl::ZeroDuration()},
      {"90s", absl::Seconds(90)},
      {"15m", absl::Minutes(15)},
      {"2h", absl::Hours(2)},
      {"7d", absl::Hours(24 * 7)},
      {"1h30m", absl::Minutes(90)},
      {"1d2h3m4s", absl::Seconds(86400 + 7200 + 180 + 4)},
      {"1d4s", absl::Seconds(86404)},
      {"0005m", absl::Minutes(5)},
      {"36500d", kMaxConfigDuration},
      {"3153600000s", kMaxConfigDuration},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<absl::Duration> d = ParseConfigDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(*d, c.want) << c.text;
    // Formatting round-trips.
    absl::StatusOr<absl::Duration> again =
        ParseConfigDuration(FormatConfigDuration(*d));
    ASSERT_TRUE(again.ok()) << FormatConfigDuration(*d);
    EXPECT_EQ(*again, *d);
  }
  EXPECT_EQ(FormatConfigDuration(absl::Minutes(90)), "1h30m");
  EXPECT_EQ(FormatConfigDuration(absl::Hours(24 * 30)), "30d");
  EXPECT_EQ(FormatConfigDuration(absl::ZeroDuration()), "0s");
}

TEST(ConfigDurationTest, RejectsEverythingElse) {
  const struct {
    std::string_view text;
    std::string_view why;
  } kCases[] = {
      {"", "empty"},
      {"-5m", "negative"},
      {"-0s", "negative"},
      {"+5m", "expected a number"},
      {"90", "missing unit"},
      {"1h30", "missing unit"},
      {"1.5h", "fractions"},
      {"1,5h", "fractions"},
      {"5ms", "milliseconds"},
      {"1w", "unknown unit"},
      {"5M", "unknown unit"},
      {"5 m", "unknown unit"},
      {" 5m", "expected a number"},
      {"5m ", "expected a number"},
      {"m", "expected a number"},
      {"1m1h", "largest first"},
      {"1h1h", "largest first"},
      {"36500d1s", "too large"},
      {"36501d", "too large"},
      {"3153600001s", "too large"},
      {"9223372036854775807s", "too large"},
      {"99999999999999999999999999s", "too large"},
      {"1e3s", "unknown unit"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<absl::Duration> d = ParseConfigDuration(c.text);
    ASSERT_FALSE(d.ok()) << "accepted \"" << c.text << "\"";
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(Message(d.status()).find(c.why), std::string::npos)
        << c.text << ": " << d.status();
  }
}

// ---------------------------------------------------------------------------
// Database targets.

TEST(ConfigDatabaseTargetTest, Parses) {
  using Kind = DatabaseTarget::Kind;
  const struct {
    std::string_view text;
    DatabaseTarget want;
  } kCases[] = {
      {"sqlite:", {.kind = Kind::kSqlite, .sqlite_path = "rampart.db"}},
      {"sqlite:state.db", {.kind = Kind::kSqlite, .sqlite_path = "state.db"}},
      {"sqlite:/var/lib/rampart/rampart.db",
       {.kind = Kind::kSqlite, .sqlite_path = "/var/lib/rampart/rampart.db"}},
      {"postgresql://rampart@db/rampart?sslmode=verify-full",
       {.kind = Kind::kPostgres,
        .sqlite_path = "",
        .pg_dsn = "postgresql://rampart@db/rampart?sslmode=verify-full"}},
      {"postgres://db/rampart",
       {.kind = Kind::kPostgres,
        .sqlite_path = "",
        .pg_dsn = "postgres://db/rampart"}},
      {"postgresql: host=db dbname=rampart ",
       {.kind = Kind::kPostgres,
        .sqlite_path = "",
        .pg_dsn = "host=db dbname=rampart"}},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<DatabaseTarget> t = ParseDatabaseTarget(c.text);
    ASSERT_TRUE(t.ok()) << c.text << ": " << t.status();
    EXPECT_EQ(*t, c.want) << c.text;
  }
}

TEST(ConfigDatabaseTargetTest, Rejects) {
  const struct {
    std::string_view text;
    std::string_view why;
  } kCases[] = {
      {"", "empty"},
      {"rampart.db", "did you mean sqlite:rampart.db?"},
      {"sqlite://x.db", "not a URL"},
      {"mysql://db/x", "unsupported database scheme \"mysql:\""},
      {"postgres:host=db", "prefixed postgresql: (not postgres:)"},
      {"postgresql:", "empty"},
      {"postgresql:host", "missing \"=\""},
      {"postgresql:host='db", "unterminated"},
      {"postgresql:=x", "expected a keyword"},
      {"postgresql://db/x y", "space"},
      {"host=db dbname=x", "prefix a libpq key=value string"},
      {"sqlite:a\tb", "control character"},
      {"sqlite:\xff", "invalid UTF-8"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<DatabaseTarget> t = ParseDatabaseTarget(c.text);
    ASSERT_FALSE(t.ok()) << "accepted " << c.text;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(Message(t.status()).find(c.why), std::string::npos)
        << c.text << ": " << t.status();
  }
}

TEST(ConfigDatabaseTargetTest, ErrorsNeverQuoteSecrets) {
  for (std::string_view text : {
           "password=s3cret host=db",
           "password=s3cret host=db:5432",
           "postgresql:host=db password=s3cret s3cret",
           "postgresql:host=db password='s3cret",
           "postgresql://u:s3cret@db/x y",
           "pgsql://u:s3cret@db/x",
           "u:s3cret@db",
       }) {
    absl::StatusOr<DatabaseTarget> t = ParseDatabaseTarget(text);
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_EQ(Message(t.status()).find("s3cret"), std::string::npos)
        << t.status();
  }
}

TEST(ConfigDatabaseTargetTest, ToLogStringRedactsPasswords) {
  const struct {
    std::string_view text;
    std::string_view want;
  } kCases[] = {
      {"sqlite:", "sqlite:rampart.db"},
      {"postgres://rampart@db/rampart", "postgres://rampart@db/rampart"},
      {"postgresql://rampart:s3cret@db.example:5432/"
       "rampart?sslmode=verify-full",
       "postgresql://rampart:***@db.example:5432/rampart?sslmode=verify-full"},
      {"postgresql://u:p%40s3cret@db/x?password=s3cret&sslpassword=s3cret&"
       "application_name=r",
       "postgresql://u:***@db/x?password=***&sslpassword=***&application_"
       "name=r"},
      // Unencoded '/', '@' or '#' in the password still hide all of it.
      {"postgresql://u:pa/s3cret@db/x", "postgresql://u:***@db/x"},
      {"postgresql://u:a@s3cret@db/x", "postgresql://u:***@db/x"},
      {"postgresql://u:a#s3cret@db/x", "postgresql://u:***@db/x"},
      // libpq decodes parameter names.
      {"postgresql://db/x?pass%77ord=s3cret",
       "postgresql://db/x?pass%77ord=***"},
      {"postgresql://db/x?PASSWORD=s3cret", "postgresql://db/x?PASSWORD=***"},
      {"postgresql:host=db password=s3cret dbname=r",
       "postgresql:host=db password=*** dbname=r"},
      {"postgresql:host=db password='s3 cret' sslpassword=s3cret",
       "postgresql:host=db password=*** sslpassword=***"},
      {"postgresql:host='my host' password = s3cret",
       "postgresql:host='my host' password=***"},
      {"postgresql:host=db password=s\\ 3cret",
       "postgresql:host=db password=***"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<DatabaseTarget> t = ParseDatabaseTarget(c.text);
    ASSERT_TRUE(t.ok()) << c.text << ": " << t.status();
    const std::string logged = t->ToLogString();
    EXPECT_EQ(logged, c.want) << c.text;
    EXPECT_EQ(logged.find("s3cret"), std::string::npos) << logged;
    EXPECT_EQ(logged.find("cret"), std::string::npos) << logged;
    // The logged form parses, and redacting it again changes nothing.
    absl::StatusOr<DatabaseTarget> again = ParseDatabaseTarget(logged);
    ASSERT_TRUE(again.ok()) << logged << ": " << again.status();
    EXPECT_EQ(again->ToLogString(), logged);
  }
}

// ---------------------------------------------------------------------------
// Listen addresses.

TEST(ConfigHostPortTest, Parses) {
  const struct {
    std::string_view text;
    HostPort want;
    std::string_view canonical;
  } kCases[] = {
      {"127.0.0.1:7443", {"127.0.0.1", 7443}, "127.0.0.1:7443"},
      {"0.0.0.0:0", {"0.0.0.0", 0}, "0.0.0.0:0"},
      {"[::1]:7443", {"::1", 7443}, "[::1]:7443"},
      {"[::]:65535", {"::", 65535}, "[::]:65535"},
      {"[2001:DB8:0:0::1]:443", {"2001:db8::1", 443}, "[2001:db8::1]:443"},
      {"Rampart.Example:8080",
       {"rampart.example", 8080},
       "rampart.example:8080"},
      {"localhost:07443", {"localhost", 7443}, "localhost:7443"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<HostPort> hp = ParseHostPort(c.text);
    ASSERT_TRUE(hp.ok()) << c.text << ": " << hp.status();
    EXPECT_EQ(*hp, c.want) << c.text;
    EXPECT_EQ(hp->ToString(), c.canonical);
    absl::StatusOr<HostPort> again = ParseHostPort(hp->ToString());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *hp);
  }
}

TEST(ConfigHostPortTest, Rejects) {
  const struct {
    std::string_view text;
    std::string_view why;
  } kCases[] = {
      {"", "empty"},
      {"127.0.0.1", "missing :PORT"},
      {":7443", "missing host"},
      {"::1:7443", "needs brackets"},
      {"[::1]", "expected :PORT"},
      {"[::1]7443", "expected :PORT"},
      {"[::1:7443", "missing \"]\""},
      {"[127.0.0.1]:1", "not a valid IPv6 address"},
      {"[fe80::1%eth0]:1", "zone"},
      {"[zzz]:1", "not a valid IPv6 address"},
      {"host:65536", "port must be"},
      {"host:-1", "port must be"},
      {"host:abc", "port must be"},
      {"host:", "port must be"},
      {"host:123456", "port must be"},
      {"1.2.3:80", "neither an IP address nor a DNS name"},
      {"256.1.1.1:80", "neither an IP address nor a DNS name"},
      {"bad_host:80", "neither an IP address nor a DNS name"},
      {"-x:80", "neither an IP address nor a DNS name"},
      {"a..b:80", "neither an IP address nor a DNS name"},
      {"1.2.3.4%x:80", "neither an IP address nor a DNS name"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<HostPort> hp = ParseHostPort(c.text);
    ASSERT_FALSE(hp.ok()) << "accepted " << c.text;
    EXPECT_EQ(hp.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(Message(hp.status()).find(c.why), std::string::npos)
        << c.text << ": " << hp.status();
  }
}

TEST(ConfigHostPortTest, IsLoopback) {
  EXPECT_TRUE(ParseHostPort("127.0.0.1:1")->IsLoopback());
  EXPECT_TRUE(ParseHostPort("127.8.9.10:1")->IsLoopback());
  EXPECT_TRUE(ParseHostPort("[::1]:1")->IsLoopback());
  EXPECT_TRUE(ParseHostPort("LocalHost:1")->IsLoopback());
  EXPECT_FALSE(ParseHostPort("0.0.0.0:1")->IsLoopback());
  EXPECT_FALSE(ParseHostPort("[::]:1")->IsLoopback());
  EXPECT_FALSE(ParseHostPort("rampart.example:1")->IsLoopback());
}

// ---------------------------------------------------------------------------
// Flags: flag > file > default.

TEST(ConfigFlagOverridesTest, Precedence) {
  TempDir dir;
  const std::string file =
      dir.Write("server.yaml",
                "server:\n  listen: 10.0.0.1:7000\n  db: sqlite:file.db\n");

  // Defaults only.
  absl::StatusOr<ServerConfig> c = ResolveServerConfig(ServerFlags{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen.ToString(), "127.0.0.1:7443");
  EXPECT_EQ(c->http_listen.ToString(), "127.0.0.1:9443");
  EXPECT_EQ(c->database.ToLogString(), "sqlite:rampart.db");

  // File over defaults; defaults where the file is silent.
  c = ResolveServerConfig(ServerFlags{.config = file});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen.ToString(), "10.0.0.1:7000");
  EXPECT_EQ(c->http_listen.ToString(), "127.0.0.1:9443");
  EXPECT_EQ(c->database.sqlite_path, "file.db");

  // Flags over the file, and over defaults.
  c = ResolveServerConfig(ServerFlags{
      .config = file,
      .listen = "[::1]:7001",
      .http_listen = "127.0.0.1:9001",
      .db = "postgresql://rampart@db/rampart",
  });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen.ToString(), "[::1]:7001");
  EXPECT_EQ(c->http_listen.ToString(), "127.0.0.1:9001");
  EXPECT_EQ(c->database.pg_dsn, "postgresql://rampart@db/rampart");

  // A flag alone, without a file.
  c = ResolveServerConfig(ServerFlags{.db = "sqlite:"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->database.sqlite_path, "rampart.db");
}

TEST(ConfigFlagOverridesTest, BadFlagNamesItAndChangesNothing) {
  const struct {
    ServerFlags flags;
    std::string_view want;
  } kCases[] = {
      {{.listen = "::1:7443"}, "--listen: invalid address"},
      {{.http_listen = "nope"}, "--http-listen: invalid address"},
      {{.db = "mysql://x"}, "--db: unsupported database scheme"},
      {{.listen = "127.0.0.1:9443"},
       "--listen: the gRPC and HTTP listen addresses collide"},
      {{.listen = "0.0.0.0:1", .http_listen = "127.0.0.1:1"},
       "--http-listen: the gRPC and HTTP listen addresses collide"},
      // Valid --listen, bad --db: nothing is applied.
      {{.listen = "127.0.0.1:1", .db = "x"}, "--db:"},
  };
  for (const auto& c : kCases) {
    ServerConfig config;
    const std::string before = ServerConfigToYaml(config);
    const absl::Status s = ApplyFlagOverrides(c.flags, &config);
    ASSERT_FALSE(s.ok()) << c.want;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(Message(s).find(c.want), std::string::npos) << s;
    EXPECT_EQ(ServerConfigToYaml(config), before);
  }
}

TEST(ConfigFlagOverridesTest, FileMustBeValidOnItsOwn) {
  TempDir dir;
  // The file moves listen onto the default HTTP port; a flag moving the HTTP
  // endpoint away does not rescue it (the file is checked as written).
  const std::string file =
      dir.Write("server.yaml", "server:\n  listen: 127.0.0.1:9443\n");
  absl::StatusOr<ServerConfig> c = ResolveServerConfig(
      ServerFlags{.config = file, .http_listen = "127.0.0.1:9000"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c.status()).find(file + ":2:11: server.listen"),
            std::string::npos)
      << c.status();
}

TEST(LoadServerConfigFileTest, FileErrors) {
  TempDir dir;
  absl::StatusOr<ServerConfig> c =
      LoadServerConfigFile(dir.path() + "/missing.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Message(c.status()).find("missing.yaml: cannot open config file"),
            std::string::npos)
      << c.status();

  c = LoadServerConfigFile(dir.path());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Message(c.status()).find("not a regular file"), std::string::npos);

  const std::string big =
      dir.Write("big.yaml", std::string(kMaxConfigBytes + 1, '#'));
  c = LoadServerConfigFile(big);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c.status()).find("the limit is"), std::string::npos);

  const std::string bad = dir.Write("bad.yaml", "policy:\n  half_lfe: 1m\n");
  c = LoadServerConfigFile(bad);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c.status()).find(bad + ":2:3: policy.half_lfe"),
            std::string::npos)
      << c.status();
}

// ---------------------------------------------------------------------------
// Allowlist seed application.

TEST(ConfigAllowlistSeedTest, OnlyNewOrChangedEntries) {
  auto entry = [](std::string_view cidr, std::string comment,
                  std::optional<absl::Time> expires = std::nullopt) {
    AllowEntry e;
    e.prefix = *IpPrefix::FromString(cidr);
    e.comment = std::move(comment);
    e.expires = expires;
    return e;
  };
  const std::vector<AllowEntry> seed = {
      entry("192.0.2.0/24", "same"),
      entry("198.51.100.0/24", "new comment"),
      entry("203.0.113.0/24", "new"),
      entry("2001:db8::/48", "expiry", absl::FromUnixSeconds(2000000000)),
  };
  const std::vector<AllowEntry> current = {
      entry("192.0.2.0/24", "same"),
      entry("198.51.100.0/24", "old comment"),
      entry("2001:db8::/48", "expiry"),
      entry("10.0.0.0/8", "added with rampartctl"),
  };
  const std::vector<AllowEntry> apply = AllowlistSeedToApply(seed, current);
  ASSERT_EQ(apply.size(), 3u);
  EXPECT_EQ(apply[0].prefix.ToString(), "198.51.100.0/24");
  EXPECT_EQ(apply[1].prefix.ToString(), "203.0.113.0/24");
  EXPECT_EQ(apply[2].prefix.ToString(), "2001:db8::/48");
  EXPECT_TRUE(AllowlistSeedToApply(seed, seed).empty());
}

// ---------------------------------------------------------------------------
// Transport: TLS or an explicit --insecure, never silent plaintext.

using ::testing::HasSubstr;

TEST(ServerTransportConfigTest, TlsSectionAndInsecureKeysLoad) {
  absl::StatusOr<ServerConfig> c = LoadServerConfig(
      "server:\n  insecure: true\n  allow_insecure_non_loopback: true\n"
      "tls:\n  cert_ttl: 30d\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->insecure);
  EXPECT_TRUE(c->allow_insecure_non_loopback);
  EXPECT_EQ(c->tls.cert_ttl, absl::Hours(24 * 30));
  c = LoadServerConfig(
      "tls:\n  cert_file: /etc/s.pem\n  key_file: k\n"
      "  client_ca_file: ca\n  ca_key_file: cak\n",
      "t.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.cert_file, "/etc/s.pem");
  EXPECT_EQ(c->tls.ca_key_file, "cak");
  EXPECT_THAT(LoadServerConfig("server:\n  insecure: yes\n", "t.yaml")
                  .status()
                  .message(),
              HasSubstr("expected true or false"));
  EXPECT_THAT(
      LoadServerConfig("tls:\n  cert_ttl: 30m\n", "t.yaml").status().message(),
      HasSubstr("tls.cert_ttl"));
}

TEST(ServerTransportConfigTest, ValidateTransport) {
  ServerConfig c;
  EXPECT_THAT(ValidateTransport(c).message(), HasSubstr("no TLS material"));
  c.insecure = true;
  EXPECT_TRUE(ValidateTransport(c).ok());  // 127.0.0.1 by default
  c.listen = HostPort{.host = "0.0.0.0", .port = 7443};
  EXPECT_THAT(ValidateTransport(c).message(),
              HasSubstr("not a loopback address"));
  c.allow_insecure_non_loopback = true;
  EXPECT_TRUE(ValidateTransport(c).ok());
  c.tls.cert_file = "s.pem";
  EXPECT_THAT(ValidateTransport(c).message(), HasSubstr("exclude each other"));
  c.insecure = false;
  EXPECT_THAT(ValidateTransport(c).message(), HasSubstr("no TLS material"));
  c.tls.key_file = "s.key";
  c.tls.client_ca_file = "ca.pem";
  EXPECT_TRUE(ValidateTransport(c).ok());
}

TEST(ServerTransportConfigTest, InsecureFlagsApply) {
  ServerConfig c;
  ASSERT_TRUE(
      ApplyFlagOverrides(
          ServerFlags{.insecure = true, .allow_insecure_non_loopback = true},
          &c)
          .ok());
  EXPECT_TRUE(c.insecure);
  EXPECT_TRUE(c.allow_insecure_non_loopback);
}

// ---------------------------------------------------------------------------
// The example file and the documentation stay in step with the loader.

TEST(ServerConfigDocsTest, ExampleFileYieldsTheDefaults) {
  const std::string path = absl::StrFormat(
      "%s/deploy/rampart-server.example.yaml", RAMPART_SOURCE_DIR);
  absl::StatusOr<ServerConfig> c = LoadServerConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(ServerConfigToYaml(*c), ServerConfigToYaml(ServerConfig{}));
}

TEST(ServerConfigDocsTest, ExampleFileSetsEveryKey) {
  const std::string example =
      ReadSourceFile("deploy/rampart-server.example.yaml");
  for (const std::string& key : ServerConfigKeys()) {
    const std::string leaf = key.substr(key.rfind('.') + 1);
    EXPECT_NE(example.find(leaf + ":"), std::string::npos)
        << key << " is missing from deploy/rampart-server.example.yaml";
  }
}

TEST(ServerConfigDocsTest, EveryKeyIsDocumented) {
  const std::string docs = ReadSourceFile("docs/configuration.md");
  const std::vector<std::string> keys = ServerConfigKeys();
  EXPECT_GT(keys.size(), 40u);
  for (const std::string& key : keys) {
    EXPECT_NE(docs.find("`" + key + "`"), std::string::npos)
        << key << " is not documented in docs/configuration.md";
  }
}

}  // namespace
}  // namespace rampart::server
