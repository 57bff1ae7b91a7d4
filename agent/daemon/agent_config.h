#pragma once

// AgentConfig: the validated configuration of `rampart-agent run`, parsed
// once in main() from a YAML file plus command-line overrides (CONVENTIONS
// 7) and handed down as option structs. Every key, its default and its
// range are documented in docs/agent.md "Configuration" and in
// deploy/rampart-agent.example.yaml.
//
// The loader is strict: an unknown key is an error naming its line:column
// and the closest known key ("did you mean"), durations must carry a unit
// ("500ms", "90s", "1h30m"), and every value is range-checked.
//
// Thread-safety: value types and pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/domino/domino_parser.h"
#include "agent/firewall/firewall_factory.h"
#include "agent/spool/spool.h"
#include "common/ip_address.h"

namespace rampart::agent {

// One log file the agent tails.
struct LogSourceConfig {
  // Absolute path of a Domino console.log. YAML: logs[].path.
  std::string path;
  // notes.ini DateOrder of that server. YAML: logs[].date_order
  // (auto|mdy|dmy|ymd). Default auto.
  DateOrder date_order = DateOrder::kAuto;
};

// The conservative policy applied to this agent's own events while the
// server is unreachable (docs/agent.md "Client and fallback").
struct LocalFallbackConfig {
  // YAML local_fallback.enabled. Default true.
  bool enabled = true;
  // Start deciding locally after the server has been unreachable this long,
  // [10s, 1d]. YAML local_fallback.activate_after. Default 60s.
  absl::Duration activate_after = absl::Seconds(60);
  // Failures (auth failures and lockouts) from one address within `window`
  // that trigger a local ban, [3, 10000]. YAML local_fallback.failures.
  // Default 20.
  int failures = 20;
  // [1m, 1d]. YAML local_fallback.window. Default 10m.
  absl::Duration window = absl::Minutes(10);
  // Local bans last this long, [1m, 7d]. YAML local_fallback.ban_duration.
  // Default 1h.
  absl::Duration ban_duration = absl::Hours(1);
  // Most local bans in force at once, [0, 5000]. YAML
  // local_fallback.max_bans. Default 1000.
  int max_bans = 1000;
};

// What the agent refuses to enforce, whatever the server's list says
// (docs/agent.md "Guard"; issue 16 item 7). Refusals are logged and counted
// in rampart_agent_firewall_guard_refused_total{reason}.
struct EnforcementLimitsConfig {
  // Bans wider than these are refused. YAML firewall.min_prefix_ipv4
  // [8, 32], default 16; firewall.min_prefix_ipv6 [16, 128], default 32
  // (the server's own limits for automatic and operator bans).
  int min_prefix_v4 = 16;
  int min_prefix_v6 = 32;
  // Caps on what the list may block in total (IPv4 addresses, IPv6 /64s).
  // YAML firewall.max_blocked_ipv4_addresses [1, 2^32], default 2^24;
  // firewall.max_blocked_ipv6_subnets [1, 2^48], default 2^40.
  uint64_t max_blocked_ipv4_addresses = uint64_t{1} << 24;
  uint64_t max_blocked_ipv6_subnets = uint64_t{1} << 40;
  // Never ban the default gateways / the DNS resolvers of the host
  // (/proc/net/route, /etc/resolv.conf). YAML firewall.protect_gateway,
  // firewall.protect_dns_resolvers. Default true.
  bool protect_gateway = true;
  bool protect_dns_resolvers = true;
};

// The agent's own HTTP side port for Prometheus (docs/agent.md "Metrics
// endpoint"; issue 17): GET /metrics, /healthz and /readyz. Off by default.
struct MetricsEndpointConfig {
  // YAML metrics.listen; flag --metrics-listen. "" (default) = off.
  // "PORT" or ":PORT" = 127.0.0.1:PORT; "HOST:PORT" with HOST an IP literal
  // ("[v6]:PORT" for IPv6) or "localhost". PORT 0..65535 (0: any free port,
  // logged; for tests).
  std::string listen;
  // Serve on a non-loopback address (the metrics name the log files' event
  // counts and ban sizes; Prometheus normally scrapes through a local
  // proxy or a firewall rule). YAML metrics.allow_non_loopback; flag
  // --metrics-allow-non-loopback. Default false: such an address is a
  // configuration error.
  bool allow_non_loopback = false;
  // Filled by FinishAgentConfig from `listen` when it is set.
  std::string host;
  int port = 0;
};

struct AgentConfig {
  // Rampart servers "HOST:PORT", tried in order (failover). At least one.
  // YAML servers; flag --server (repeatable, replaces the list).
  std::vector<std::string> servers;
  // Hello.agent_id: 1-63 bytes of [a-z0-9._-]. YAML agent_id; flag
  // --agent-id. Default: the host name, lower-cased.
  std::string agent_id;
  // Hello.site: 0-63 bytes of [A-Za-z0-9._-]. YAML site. Default "".
  std::string site;
  // IANA zone of the Domino log times. YAML time_zone. Default "" = the
  // host's local zone (TZ, /etc/localtime).
  std::string time_zone;
  // At least one, at most 16. YAML logs; flag --log (repeatable, replaces).
  std::vector<LogSourceConfig> logs;
  // Read logs that exist at the first start from their beginning instead of
  // their end. YAML read_existing_logs. Default false.
  bool read_existing_logs = false;
  // Parser families. YAML parser.successes (default false),
  // parser.tls_failures (default true), parser.sessions (default true).
  bool successes = false;
  bool tls_failures = true;
  bool sessions = true;
  // Spool, tail positions and enforced-ban state live here. YAML
  // state_dir; flag --state-dir. Default /var/lib/rampart-agent.
  std::string state_dir = "/var/lib/rampart-agent";
  // Backend and its options. YAML firewall.backend (nftables|ipset|
  // windows-netsh|exec|dry-run; default nftables), firewall.nftables_table,
  // firewall.exec_add / exec_remove / exec_flush (argv lists),
  // firewall.netsh_output_dir. Flag --firewall.
  FirewallOptions firewall;
  // Leave the enforced rules in place when the agent stops. YAML
  // firewall.leave_rules_on_stop. Default true.
  bool leave_rules_on_stop = true;
  // Drift repair period, [10s, 1d]. YAML firewall.repair_interval.
  // Default 60s.
  absl::Duration repair_interval = absl::Seconds(60);
  // Agent-side limits on the server's list. YAML firewall.min_prefix_*,
  // firewall.max_blocked_*, firewall.protect_*.
  EnforcementLimitsConfig limits;
  // Never banned, whatever the server says. YAML allowlist (CIDRs).
  std::vector<IpPrefix> allowlist;
  // Seal a batch at this many events, [1, 5000]. YAML batch.max_events.
  // Default 1000 (the server's PolicyHint may lower it).
  int max_events_per_batch = 1000;
  // Seal a non-empty batch after this long, [50ms, 60s]. YAML
  // batch.flush_interval. Default 500ms.
  absl::Duration batch_flush_interval = absl::Milliseconds(500);
  // Spool cap in bytes, [8 MiB, 64 GiB]. YAML spool.max_bytes. Default
  // 256 MiB.
  uint64_t spool_max_bytes = 256ull << 20;
  // YAML spool.fsync (every_append|explicit|never). Default every_append.
  FsyncPolicy spool_fsync = FsyncPolicy::kEveryAppend;
  // Reconnect backoff, [10ms, 1h], min <= max. YAML reconnect.backoff_min
  // (default 1s), reconnect.backoff_max (default 60s).
  absl::Duration backoff_min = absl::Seconds(1);
  absl::Duration backoff_max = absl::Seconds(60);
  // Heartbeat period until the server's PolicyHint says otherwise,
  // [5s, 300s]. YAML reconnect.heartbeat_interval. Default 15s.
  absl::Duration heartbeat_interval = absl::Seconds(15);
  LocalFallbackConfig local_fallback;
  // Plaintext to the server, no client certificate (a server started with
  // --insecure; loopback tests only). YAML insecure; flag --insecure.
  // Default false: the tls files below are required.
  bool insecure = false;
  // Mutual TLS (docs/security.md). YAML tls.ca_file, tls.cert_file,
  // tls.key_file; flags --ca-file, --cert, --key. Defaults: what
  // `rampart-agent enroll` writes, <state_dir>/tls/ca.pem, agent.pem and
  // agent.key.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // The metrics endpoint. YAML metrics.*.
  MetricsEndpointConfig metrics;
};

// Command-line overrides; unset fields keep the file's value.
struct AgentFlags {
  std::string config_path;  // --config; "" = no file (defaults + flags)
  std::vector<std::string> servers;
  std::string agent_id;
  std::vector<std::string> logs;
  std::string state_dir;
  std::string firewall;
  bool insecure = false;                      // --insecure
  std::string ca_file;                        // --ca-file
  std::string cert_file;                      // --cert
  std::string key_file;                       // --key
  std::optional<std::string> metrics_listen;  // --metrics-listen
  bool metrics_allow_non_loopback = false;    // --metrics-allow-non-loopback
};

// Parses "<digits><unit>" groups, largest unit first, units d h m s ms
// ("500ms", "90s", "1h30m"). InvalidArgument quoting the input otherwise.
absl::StatusOr<absl::Duration> ParseAgentDuration(std::string_view text);

// Checks "HOST:PORT" ("rampart.example:7443", "192.0.2.10:7443",
// "[2001:db8::1]:7443"), port 1..65535. InvalidArgument otherwise.
absl::Status ValidateServerAddress(std::string_view text);

// Resolves metrics.listen (see MetricsEndpointConfig) into `host` and
// `port`; InvalidArgument for a malformed address, a host name other than
// localhost, or a non-loopback address without allow_non_loopback.
absl::Status ResolveMetricsListen(MetricsEndpointConfig* metrics);

// Parses YAML text into a config (defaults for absent keys) and validates
// it, except for requirements flags may still satisfy (servers, logs).
// InvalidArgument with "line:col: key: problem" messages.
absl::StatusOr<AgentConfig> ParseAgentConfig(std::string_view yaml_text);

// Applies flags, fills the default agent id, and validates the result
// completely (at least one server and one log). InvalidArgument.
absl::Status FinishAgentConfig(const AgentFlags& flags, AgentConfig* config);

// Reads flags.config_path (if set), then FinishAgentConfig.
absl::StatusOr<AgentConfig> ResolveAgentConfig(const AgentFlags& flags);

// Every YAML key, dotted ("local_fallback.window"), for docs and tests.
std::vector<std::string> AgentConfigKeys();

}  // namespace rampart::agent
