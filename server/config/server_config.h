#pragma once

// ServerConfig: everything rampart-server reads from its YAML config file and
// command line, validated once in main() and handed down as option structs
// (CONVENTIONS 7). docs/configuration.md documents every key; keep it, the
// key tables in server_config.cc and deploy/rampart-server.example.yaml in
// step (server_config_test checks that every key is documented and that the
// example file yields the defaults).
//
// main() calls, in order:
//   1. ResolveServerConfig(flags): the file (if --config) + flag overrides;
//      on error print the status message and exit 2.
//   2. ServerConfigToYaml(config) (or config.database.ToLogString()) to log
//      what is in effect; never log DatabaseTarget::pg_dsn.
//   3. `migrate`: run the migrations on config.database and exit.
//   4. MakeCorrelatorOptions(config) and MakeBanDistributorOptions(config)
//      for the Correlator and BanDistributor; AllowlistSeedToApply() after
//      the Correlator is up; the plain fields (listen, http_listen, limits,
//      retention, housekeeping_interval) for the gRPC server and timers.
//
// Thread-safety: value types and pure functions; safe to call concurrently.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "server/core/ban.h"
#include "server/core/ban_distributor.h"
#include "server/core/correlator.h"
#include "server/core/policy.h"

namespace rampart::server {

// Largest config file accepted; larger input is rejected before parsing.
// yaml-cpp queues every token of a flow collection ("[a, b, ...]") before
// the first event, at roughly 150 bytes per input byte, so this also bounds
// the parser's transient memory (about 40 MB).
inline constexpr size_t kMaxConfigBytes = 256 * 1024;
// Most YAML nodes (keys, values, list items; an alias counts once per use) in
// a config document. Checked while parsing, before any node tree is built, so
// it bounds memory as well as the work of walking hostile input. Leaves room
// for an allowlist seed of about 1000 entries.
inline constexpr int kMaxConfigNodes = 10000;
// Deepest nesting of mappings and lists (the schema needs 3).
inline constexpr int kMaxConfigDepth = 32;
// Longest duration ParseConfigDuration accepts (100 years).
inline constexpr absl::Duration kMaxConfigDuration = absl::Hours(24 * 36500);

// Where the server keeps its state: the parsed form of `--db` / `server.db`.
struct DatabaseTarget {
  enum class Kind : uint8_t {
    kSqlite = 1,    // "sqlite:PATH"
    kPostgres = 2,  // "postgresql://...", "postgres://...", "postgresql:k=v"
  };
  Kind kind = Kind::kSqlite;
  // kSqlite: the database file, relative to the working directory unless
  // absolute. "sqlite:" alone means "rampart.db". Empty for kPostgres.
  std::string sqlite_path = "rampart.db";
  // kPostgres: the connection string for libpq, unchanged: a URI
  // ("postgresql://user@host/db?sslmode=verify-full") or, for the
  // "postgresql:" key=value form, the part after the prefix
  // ("host=db dbname=rampart"). Empty for kSqlite.
  std::string pg_dsn;

  // The target as the user would write it ("sqlite:rampart.db",
  // "postgresql://rampart:***@db/rampart"), with every password (URI user
  // info, `password`/`sslpassword` keywords and query parameters) replaced by
  // "***". Safe to log; never log `pg_dsn` itself. ParseDatabaseTarget
  // accepts the result, and redacting it again changes nothing.
  std::string ToLogString() const;

  friend bool operator==(const DatabaseTarget&,
                         const DatabaseTarget&) = default;
};

// Parses "sqlite:PATH", a "postgresql://" or "postgres://" URI, or a libpq
// key=value string prefixed "postgresql:". Returns InvalidArgument explaining
// the accepted forms otherwise (also for control characters or invalid
// UTF-8). Error messages never quote a PostgreSQL connection string (it may
// hold a password).
absl::StatusOr<DatabaseTarget> ParseDatabaseTarget(std::string_view text);

// A listen address "HOST:PORT".
struct HostPort {
  // An IP literal in canonical form (IPv6 without brackets, "::1"), or a DNS
  // name in lower case.
  std::string host;
  // 0..65535; 0 asks the OS for a free port (tests).
  int port = 0;

  // The IP address when `host` is an IP literal.
  std::optional<IpAddress> ip() const { return IpAddress::Parse(host); }
  // True for a loopback IP literal or "localhost".
  bool IsLoopback() const;
  // "127.0.0.1:7443", "[::1]:7443", "rampart.example:7443": the form gRPC's
  // AddListeningPort takes, and ParseHostPort reads back to an equal value.
  std::string ToString() const;

  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// Parses "HOST:PORT": "127.0.0.1:7443", "[::1]:7443", "rampart.example:7443",
// "0.0.0.0:7443", "[::]:7443". Returns InvalidArgument for a missing/empty
// host or port, a port outside 0..65535, an IPv6 address without brackets
// or with a %zone, or a host that is neither an IP literal nor a DNS name.
absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

// Parses a config duration: one or more <digits><unit> groups with units
// d, h, m, s, each at most once and largest first ("90s", "15m", "2h", "7d",
// "1h30m", "0s"). Rejects empty input, signs (so negatives), fractions,
// whitespace, a missing or unknown unit ("90", "5ms", "1w"), and anything
// above kMaxConfigDuration (including digit strings that overflow), with an
// InvalidArgument message quoting the input.
absl::StatusOr<absl::Duration> ParseConfigDuration(std::string_view text);

// Formats `d` the way ParseConfigDuration reads it ("1h30m", "0s"); whole
// seconds in [0, kMaxConfigDuration] round-trip exactly. Anything else
// (negative, fractional, infinite) falls back to absl::FormatDuration.
std::string FormatConfigDuration(absl::Duration d);

// The validated server configuration. Defaults are the initializers below
// and are what an empty config file yields; docs/configuration.md has the
// accepted ranges. YAML keys in comments.
struct ServerConfig {
  // --- server: --------------------------------------------------------------
  // server.listen: gRPC endpoint for agents and rampartctl.
  HostPort listen = {.host = "127.0.0.1", .port = 7443};
  // server.http_listen: HTTP endpoint (health, metrics). Must not collide with
  // `listen` (same non-zero port on overlapping addresses).
  HostPort http_listen = {.host = "127.0.0.1", .port = 9443};
  // server.db: where the state lives (default sqlite:rampart.db in the
  // working directory).
  DatabaseTarget database;
  // server.insecure / --insecure: serve plaintext gRPC (no TLS, no agent
  // identity). Only for loopback tests and the quickstart; the tls section
  // must then be empty. Default false: TLS material is required.
  bool insecure = false;
  // server.allow_insecure_non_loopback / --allow-insecure-non-loopback:
  // permits `insecure` on a listen address that is not loopback. Default
  // false (refused at start-up).
  bool allow_insecure_non_loopback = false;
  // server.reflection: serve gRPC server reflection
  // (grpc.reflection.v1alpha.ServerReflection) on `listen`, so generic
  // clients (grpcurl) can list and describe the services without the .proto
  // files. Default false: it hands every caller, before any authentication,
  // a map of the admin API; the .proto files ship with the source.
  bool reflection = false;

  // --- tls: -----------------------------------------------------------------
  // Mutual TLS on the gRPC listener (docs/security.md). All paths are PEM
  // files read at start-up.
  struct Tls {
    // tls.cert_file: the server certificate chain (leaf first).
    std::string cert_file;
    // tls.key_file: its private key.
    std::string key_file;
    // tls.client_ca_file: CA bundle that agent and admin client certificates
    // must chain to; also handed to agents at enrollment.
    std::string client_ca_file;
    // tls.ca_key_file: private key of the first certificate in
    // client_ca_file; signs enrollment CSRs. "" = enrollment disabled
    // (agents get certificates from deploy/make-certs.sh instead).
    std::string ca_key_file;
    // tls.cert_ttl: lifetime of certificates issued at enrollment. 1h..825d.
    absl::Duration cert_ttl = absl::Hours(24 * 90);
    friend bool operator==(const Tls&, const Tls&) = default;
  };
  Tls tls;

  // --- policy: --------------------------------------------------------------
  // Correlator policy; keys are the Policy field names. ValidatePolicy holds.
  Policy policy;

  // --- allowlist: -----------------------------------------------------------
  // Allowlist seed, in file order, no duplicate prefixes, no /0. actor is
  // "config", created is absl::UnixEpoch() (the Correlator stamps it).
  // main() applies it at start-up with AllowlistSeedToApply (below).
  std::vector<AllowEntry> allowlist_seed;

  // --- retention: -----------------------------------------------------------
  struct Retention {
    // retention.events: stored events older than this are deleted
    // (Correlator::PruneEvents, which never deletes inside the rebuild
    // horizon). 1d..100y.
    absl::Duration events = absl::Hours(24 * 30);
    // retention.journal_revisions: ban-list journal revisions kept in the
    // store (Store::PruneJournal(revision - journal_revisions + 1)). Should
    // be >= distribution.journal_window so a restart refills the window.
    // 1000..10^12.
    int64_t journal_revisions = 1'000'000;
  };
  Retention retention;

  // housekeeping_interval: how often expiry (Correlator::Expire) and
  // retention run. 1s..1h.
  absl::Duration housekeeping_interval = absl::Minutes(1);

  // --- distribution: --------------------------------------------------------
  // distribution.journal_window / distribution.max_delta; defaults are
  // BanDistributor::Options' own. Each 1..10^6.
  BanDistributor::Options distribution;

  // --- limits: --------------------------------------------------------------
  struct Limits {
    // limits.max_agents: most concurrently connected (authenticated) agents;
    // a Hello beyond it is refused with RESOURCE_EXHAUSTED
    // (AgentServiceOptions::max_agents). 1..100000.
    int max_agents = 5000;
    // limits.max_message_bytes: largest gRPC message accepted or sent (any
    // RPC). 4 MiB (the protocol's floor) .. 64 MiB.
    int64_t max_message_bytes = 4 * 1024 * 1024;
    // limits.max_events_per_batch: advertised in StreamLimits; larger batches
    // are rejected. 1..5000 (the protocol's maximum).
    int max_events_per_batch = 5000;
    // limits.agent_send_queue: ban-list messages queued per agent stream;
    // beyond it the queued deltas are replaced by one snapshot, so a slow
    // agent costs bounded memory (AgentServiceOptions::max_outbound_messages).
    // 4..10000.
    int agent_send_queue = 64;
    // limits.heartbeat_timeout: an agent stream silent this long ends with
    // UNAVAILABLE (3 x the agent's default 15s heartbeat;
    // AgentServiceOptions::heartbeat_timeout). 15s..1h.
    absl::Duration heartbeat_timeout = absl::Seconds(45);
    // limits.keepalive_time: the server pings an idle connection this often
    // (GRPC_ARG_KEEPALIVE_TIME_MS). 10s..2h.
    absl::Duration keepalive_time = absl::Seconds(30);
    // limits.keepalive_timeout: and closes it if the ping is not answered
    // within this (GRPC_ARG_KEEPALIVE_TIMEOUT_MS). 1s..5m.
    absl::Duration keepalive_timeout = absl::Seconds(10);
    // limits.keepalive_min_agent_interval: agents may ping this often
    // (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS); more frequent
    // pings end the connection. Must stay below the agents' keepalive (30s).
    // 1s..1h.
    absl::Duration keepalive_min_agent_interval = absl::Seconds(10);
    // limits.agent_events_per_second / limits.agent_events_burst: token
    // bucket per agent id (all its streams together). A batch that finds too
    // few tokens is refused with RESOURCE_EXHAUSTED (the agent keeps it and
    // resends later); other agents are unaffected. 1..10^6 / 1..10^7.
    int agent_events_per_second = 5000;
    int agent_events_burst = 50'000;
    // limits.agent_new_bans_per_minute: most new automatic bans one agent's
    // evidence alone may cause per minute (bans corroborated by another
    // agent do not count); beyond it no ban is made, a warning is logged and
    // rampart_correlator_bans_withheld_total{reason="capped"} counts it.
    // 1..100000.
    int agent_new_bans_per_minute = 60;
    // limits.hello_timeout: an agent stream that sent no Hello this long
    // after it opened ends with DEADLINE_EXCEEDED; also the TLS handshake
    // timeout of the listener (AgentServiceOptions::hello_timeout). 1s..5m.
    absl::Duration hello_timeout = absl::Seconds(10);
    // limits.max_unauthenticated_streams / ..._per_address /
    // ..._per_connection: agent streams whose Hello is not yet accepted, in
    // all, per source address and per HTTP/2 connection; further streams are
    // refused at once with RESOURCE_EXHAUSTED. Only authenticated streams
    // count against max_agents. 1..100000 each.
    int max_unauthenticated_streams = 512;
    int max_unauthenticated_streams_per_address = 32;
    int max_unauthenticated_streams_per_connection = 4;
    // limits.max_score_entries / limits.max_account_entries: memory budget
    // of the correlator's per-address scores and per-user account windows
    // (both keyed by attacker-chosen values); beyond it the entries of lowest
    // decayed score are evicted (DetectorLimits). About 200 and 300 bytes an
    // entry (docs/benchmarks.md "Memory budget"). 1000..100000000.
    int max_score_entries = 1'000'000;
    int max_account_entries = 500'000;
    // limits.agent_new_keys_per_minute: most new addresses, and separately
    // most new user names, one agent's events may start tracking per minute;
    // beyond it they are not tracked (counted in
    // rampart_correlator_new_keys_refused_total). 1..10000000.
    int agent_new_keys_per_minute = 20'000;
  };
  Limits limits;

  // --- admin: ---------------------------------------------------------------
  struct Admin {
    // admin.bootstrap_token_file: a file holding one admin API token secret
    // (32+ characters of [A-Za-z0-9._~+/=-], surrounding blanks ignored). At
    // start-up the server makes it the admin token named "bootstrap"
    // (replacing an older bootstrap token). The file must not be readable
    // by group or others. Empty: none (create tokens with
    // `rampart-server token create`).
    std::string bootstrap_token_file;
  };
  Admin admin;
};

// Parses and validates a YAML config document. `source_name` (usually the
// file path) prefixes every error message, which also gives line:column and
// the key's YAML path, e.g.
//   rampart.yaml:12:3: policy.half_lfe: unknown key (did you mean half_life?)
// Empty input or a missing section yields the defaults.
// Returns InvalidArgument for: input over kMaxConfigBytes, NUL and other
// control bytes or invalid UTF-8, YAML syntax errors, more than one
// document, more than kMaxConfigNodes nodes or kMaxConfigDepth levels, YAML
// tags, unknown or duplicate keys, wrong types, values out of range
// (including any ValidatePolicy failure), invalid or duplicate allowlist
// prefixes, and colliding listen addresses. ResourceExhausted if memory runs
// out. No exception escapes.
absl::StatusOr<ServerConfig> LoadServerConfig(std::string_view yaml_text,
                                              std::string_view source_name);

// Reads `path` (a regular file of at most kMaxConfigBytes) and calls
// LoadServerConfig with `path` as the source name. File errors carry the path
// and the OS reason, with the code from absl::ErrnoToStatusCode (NotFound,
// PermissionDenied, ...); a file that is not regular or too large is
// InvalidArgument.
absl::StatusOr<ServerConfig> LoadServerConfigFile(const std::string& path);

// The command line of `rampart-server [migrate] [--config FILE]
// [--listen HOST:PORT] [--http-listen HOST:PORT] [--db TARGET]`, as main()
// parsed it (unset: not given). Precedence: flag > file > default.
struct ServerFlags {
  std::optional<std::string> config;       // --config FILE
  std::optional<std::string> listen;       // --listen HOST:PORT
  std::optional<std::string> http_listen;  // --http-listen HOST:PORT
  std::optional<std::string> db;           // --db sqlite:PATH|postgresql://...
  // --bootstrap-token-file PATH (admin.bootstrap_token_file)
  std::optional<std::string> bootstrap_token_file;
  bool insecure = false;                     // --insecure
  bool allow_insecure_non_loopback = false;  // --allow-insecure-non-loopback
};

// Validates every set override in `flags` (`flags.config` is ignored) and,
// only if all are valid, writes them into `*config`. Returns InvalidArgument
// naming the flag ("--db: ...") and leaves `*config` unchanged otherwise,
// including when the result would have colliding listen addresses.
absl::Status ApplyFlagOverrides(const ServerFlags& flags, ServerConfig* config);

// The whole start-up resolution: LoadServerConfigFile(*flags.config) if set
// (else the defaults), then ApplyFlagOverrides. Errors as those functions.
absl::StatusOr<ServerConfig> ResolveServerConfig(const ServerFlags& flags);

// The transport rules checked before the server listens (main() and
// ServerApp::Start): exactly one of `insecure` or a complete tls section
// (cert_file, key_file, client_ca_file); `insecure` only on a loopback listen
// address unless allow_insecure_non_loopback. InvalidArgument with a message
// saying what to do otherwise.
absl::Status ValidateTransport(const ServerConfig& config);

// The options the Correlator is constructed with (rebuild horizon derived
// from the policy).
CorrelatorOptions MakeCorrelatorOptions(const ServerConfig& config);
// The options the BanDistributor is constructed with.
BanDistributor::Options MakeBanDistributorOptions(const ServerConfig& config);

// The allowlist seed entries main() must put at start-up, each with
// Correlator::AddAllow(entry, "config") (audited): those of `seed` whose
// prefix is not on `current` (Correlator::Allowlist()) with the same expiry
// and comment, in seed order. So a restart with an unchanged file changes
// nothing; an edited entry in the file overwrites the live one; entries added
// with rampartctl stay; deleting an entry from the file does not remove it
// from the store (use rampartctl).
std::vector<AllowEntry> AllowlistSeedToApply(
    const std::vector<AllowEntry>& seed,
    const std::vector<AllowEntry>& current);

// The effective configuration as a YAML document with every key, in
// documentation order, the database redacted with ToLogString(). For the
// start-up log and `--print-config`-style output. LoadServerConfig accepts it
// and yields the same configuration (the database up to redaction).
std::string ServerConfigToYaml(const ServerConfig& config);

// Every key LoadServerConfig accepts, as dotted YAML paths in documentation
// order ("server.listen", ..., "policy.half_life", ...,
// "allowlist[].cidr", ...).
std::vector<std::string> ServerConfigKeys();

}  // namespace rampart::server
